// The snapshot registry server (registry/server.ts) over real HTTPS: every endpoint, every bad input
// (rejected with the spec's code, nothing stored, server still serving), restart and crash leftovers,
// GC, and interoperability with skopeo (mTLS and the bearer token flow).
import t from 'tap';
import { execFile } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { ensureCerts } from '../certs/index.js';
import { startRegistry, type RegistryOptions } from '../registry/server.js';

const exec = promisify(execFile);
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ocm-registry-'));
const certs = await ensureCerts(path.join(tmp, 'certs'));
const dataDir = path.join(tmp, 'data');
const secret = randomBytes(32);
const baseOpts: RegistryOptions = {
  dataDir,
  port: 0,
  host: '127.0.0.1',
  tls: { key: certs.serverKeyPem, cert: certs.serverCertPem, clientCA: certs.caCertPem },
  tokenSecret: secret,
  authenticateBasic: async (u, p) => (u === 'alice' && p === 'secret' ? { name: 'alice', groups: ['devs'] } : undefined),
  // The API's authorizer, as the server passes it: alice may read the snapshots of every namespace but "private".
  authorizePull: async (u, ns) => u.name === 'alice' && ns !== 'private',
  logLevel: 'silent',
};
let reg = await startRegistry(baseOpts);
t.teardown(async () => {
  await reg.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

// ---- helpers ---------------------------------------------------------------------------------

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  text: string;
  json<T = any>(): T;
  code?: string;
}
interface ReqOpts {
  headers?: Record<string, string | number>;
  body?: Buffer | string;
  /** Client certificate (default: the admin certificate); false for none. */
  cert?: boolean;
  token?: string;
  basic?: string;
  port?: number;
  /** Send the body with chunked transfer encoding. */
  chunked?: boolean;
}

function req(method: string, p: string, o: ReqOpts = {}): Promise<Res> {
  const headers: Record<string, string | number> = { ...o.headers };
  if (o.token) headers.Authorization = `Bearer ${o.token}`;
  if (o.basic) headers.Authorization = `Basic ${Buffer.from(o.basic).toString('base64')}`;
  if (o.body !== undefined && !o.chunked && headers['Content-Length'] === undefined) headers['Content-Length'] = Buffer.byteLength(o.body);
  const withCert = o.cert ?? !o.token;
  return new Promise((resolve, reject) => {
    const r = https.request(
      {
        host: '127.0.0.1',
        port: o.port ?? reg.port,
        method,
        path: p,
        headers,
        ca: certs.caCertPem,
        ...(withCert ? { cert: certs.adminCertPem, key: certs.adminKeyPem } : {}),
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          const text = body.toString('utf8');
          let code: string | undefined;
          try {
            code = JSON.parse(text).errors?.[0]?.code;
          } catch {
            // not an error body
          }
          resolve({ status: res.statusCode!, headers: res.headers, body, text, json: () => JSON.parse(text), code });
        });
        res.on('error', reject);
      },
    );
    r.on('error', reject);
    if (o.chunked && o.body !== undefined) r.write(o.body);
    r.end(o.chunked ? undefined : o.body);
  });
}

/** Sends headers announcing `declared` bytes, writes `sent`, then drops the connection. */
function abortedRequest(method: string, p: string, declared: number, sent: Buffer, headers: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve) => {
    const r = https.request({
      host: '127.0.0.1',
      port: reg.port,
      method,
      path: p,
      headers: { ...headers, 'Content-Length': declared },
      ca: certs.caCertPem,
      cert: certs.adminCertPem,
      key: certs.adminKeyPem,
      agent: false,
    });
    r.on('error', () => {});
    r.on('response', () => {});
    r.write(sent);
    setTimeout(() => {
      r.destroy();
      resolve();
    }, 150);
  });
}

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const blobFiles = () => fs.readdirSync(path.join(dataDir, 'blobs', 'sha256')).sort();
const tmpFiles = () => fs.readdirSync(path.join(dataDir, 'tmp'));
const uploadDirs = () => fs.readdirSync(path.join(dataDir, 'uploads'));
async function eventually(cond: () => boolean | Promise<boolean>, ms = 3000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return cond();
}

async function pushBlob(repo: string, data: Buffer | string, o: ReqOpts = {}) {
  const digest = sha(data);
  const r = await req('POST', `/v2/${repo}/blobs/uploads/?digest=${digest}`, { ...o, body: data, headers: { 'Content-Type': 'application/octet-stream' } });
  if (r.status !== 201) throw new Error(`push blob: ${r.status} ${r.text}`);
  return { digest, size: Buffer.byteLength(data) };
}

type Desc = { digest: string; size: number; mediaType?: string };
function imageManifest(config: Desc, layers: Desc[], extra: Record<string, unknown> = {}, mediaType?: string) {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      ...(mediaType ? { mediaType } : {}),
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...l })),
      ...extra,
    }),
  );
}
async function putManifest(repo: string, ref: string, body: Buffer | string, ct = OCI_MANIFEST, o: ReqOpts = {}) {
  return req('PUT', `/v2/${repo}/manifests/${ref}`, { ...o, body, headers: { 'Content-Type': ct } });
}
/** Pushes a config and one layer and a manifest tagged `tag`; returns the manifest digest. */
async function pushImage(repo: string, tag: string, content = tag, extra: Record<string, unknown> = {}) {
  const config = await pushBlob(repo, JSON.stringify({ content }));
  const layer = await pushBlob(repo, `layer of ${content}`);
  const body = imageManifest(config, [layer], extra);
  const r = await putManifest(repo, tag, body);
  if (r.status !== 201) throw new Error(`push manifest: ${r.status} ${r.text}`);
  return { digest: sha(body), size: body.length, config, layer, body };
}

// ---- tests -----------------------------------------------------------------------------------

t.test('GET /v2/ and authentication', async (t) => {
  let r = await req('GET', '/v2/');
  t.equal(r.status, 200, 'admin certificate');
  t.equal(r.headers['docker-distribution-api-version'], 'registry/2.0');

  r = await req('GET', '/v2/', { cert: false });
  t.equal(r.status, 401);
  t.equal(r.code, 'UNAUTHORIZED');
  t.equal(r.headers['www-authenticate'], `Bearer realm="https://127.0.0.1:${reg.port}/token",service="ocm-apiserver-registry"`);
  t.equal(r.headers['docker-distribution-api-version'], 'registry/2.0');

  r = await req('GET', '/v2/', { token: 'garbage' });
  t.equal(r.status, 401, 'malformed token');
  t.match(r.headers['www-authenticate'], /error="invalid_token"/);

  const forge = (claims: object, key = secret) => {
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    return `${payload}.${createHmac('sha256', key).update(payload).digest('base64url')}`;
  };
  const now = Math.floor(Date.now() / 1000);
  const claims = { aud: 'ocm-apiserver-registry', sub: 'x', groups: [], access: [{ type: 'repository', name: 'a', actions: ['pull', 'push'] }], iat: now, exp: now + 60 };
  t.equal((await req('GET', '/v2/', { token: forge(claims) })).status, 200, 'well-signed token');
  t.equal((await req('GET', '/v2/', { token: forge(claims, randomBytes(32)) })).status, 401, 'token signed with another key');
  t.equal((await req('GET', '/v2/', { token: forge({ ...claims, exp: now - 1 }) })).status, 401, 'expired token');
  t.equal((await req('GET', '/v2/', { token: forge({ ...claims, aud: 'other' }) })).status, 401, 'token for another service');
  const good = forge(claims);
  t.equal((await req('GET', '/v2/', { token: good.slice(0, -2) + (good.endsWith('AA') ? 'BB' : 'AA') })).status, 401, 'tampered signature');

  r = await req('POST', '/v2/a/blobs/uploads/?digest=' + sha('x'), { cert: false, body: 'x' });
  t.equal(r.status, 401, 'push without auth');
  t.match(r.headers['www-authenticate'], /scope="repository:a:pull,push"/);
  r = await req('GET', '/v2/a/tags/list', { cert: false });
  t.equal(r.status, 401, 'pull without auth (anonymous pull is off)');
  t.match(r.headers['www-authenticate'], /scope="repository:a:pull"/);
  t.notOk(fs.existsSync(path.join(dataDir, 'repositories', 'a')), 'nothing stored');
});

t.test('token endpoint', async (t) => {
  let r = await req('GET', '/token?service=ocm-apiserver-registry&scope=repository:tok/a:pull,push', { cert: false });
  t.equal(r.status, 401, 'no credentials');
  t.equal(r.code, 'UNAUTHORIZED');
  r = await req('GET', '/token?scope=repository:tok/a:pull,push', { cert: false, basic: 'alice:wrong' });
  t.equal(r.status, 401, 'wrong password');

  r = await req('GET', '/token?service=ocm-apiserver-registry&scope=repository:tok/a:pull,push', { cert: false, basic: 'alice:secret' });
  t.equal(r.status, 200, 'basic auth');
  const tok = r.json();
  t.type(tok.token, 'string');
  t.equal(tok.access_token, tok.token);
  t.type(tok.expires_in, 'number');
  t.ok(Date.parse(tok.issued_at) > 0, 'issued_at is a date');

  // Granted: what alice may do, not what she asked for. Pull, as the authorizer allows; push never
  // (snapshots are the server's to write): fewer actions, not an error, as docker's token servers do.
  r = await req('POST', `/v2/tok/a/blobs/uploads/?digest=${sha('with a token')}`, { token: tok.token, body: 'with a token' });
  t.equal(r.status, 401, 'push refused: not granted');
  t.match(r.headers['www-authenticate'], /scope="repository:tok\/a:pull,push",error="insufficient_scope"/);
  await pushBlob('tok/a', 'with a token'); // the server's certificate
  r = await req('GET', `/v2/tok/a/blobs/${sha('with a token')}`, { token: tok.token });
  t.equal(r.text, 'with a token', 'pull with the token');
  r = await req('GET', '/v2/tok/b/tags/list', { token: tok.token });
  t.equal(r.status, 401, 'repository outside the token scope');
  t.match(r.headers['www-authenticate'], /scope="repository:tok\/b:pull",error="insufficient_scope"/);
  r = await req('GET', '/v2/_catalog', { token: tok.token });
  t.equal(r.status, 401, 'catalog needs registry:catalog:*');
  const priv = (await req('GET', '/token?scope=repository:private/a:pull,push,delete', { cert: false, basic: 'alice:secret' })).json().token;
  t.equal((await req('GET', '/v2/private/a/tags/list', { token: priv })).status, 401, 'a namespace alice may not read: nothing granted');
  const top = (await req('GET', '/token?scope=repository:toplevel:pull', { cert: false, basic: 'alice:secret' })).json().token;
  t.same(JSON.parse(Buffer.from(top.split('.')[0], 'base64url').toString('utf8')).access, [], 'a name without a namespace: the server\'s alone');

  r = await req('GET', '/token?scope=repository:tok/a:pull&scope=registry:catalog:*', {});
  t.equal(r.status, 200, 'client certificate');
  const pullOnly = r.json().token;
  t.equal((await req('GET', '/v2/tok/a/tags/list', { token: pullOnly })).status, 200, 'pull allowed');
  t.equal((await req('GET', '/v2/_catalog', { token: pullOnly })).status, 200, 'catalog allowed');
  r = await req('POST', '/v2/tok/a/blobs/uploads/', { token: pullOnly });
  t.equal(r.status, 401, 'push denied with a pull token');
  t.match(r.headers['www-authenticate'], /insufficient_scope/);

  r = await req('POST', '/token', {
    cert: false,
    body: 'grant_type=password&username=alice&password=secret&service=ocm-apiserver-registry&scope=repository:tok/a:pull',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
  });
  t.equal(r.status, 200, 'OAuth2 password grant');
  t.equal((await req('GET', '/v2/tok/a/tags/list', { token: r.json().access_token })).status, 200);
  r = await req('POST', '/token', { cert: false, body: 'grant_type=refresh_token&refresh_token=x', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  t.equal(r.status, 400, 'unsupported grant');
  r = await req('POST', '/token', { cert: false, body: 'grant_type=password&username=alice&password=nope', headers: { 'Content-Type': 'application/x-www-form-urlencoded' } });
  t.equal(r.status, 401, 'password grant with a wrong password');
});

t.test('blob: monolithic upload, HEAD, GET, Range, DELETE', async (t) => {
  const data = randomBytes(100_000);
  const digest = sha(data);
  let r = await req('POST', `/v2/ns/component/source-provider/blobs/uploads/?digest=${digest}`, { body: data });
  t.equal(r.status, 201);
  t.equal(r.headers.location, `/v2/ns/component/source-provider/blobs/${digest}`);
  t.equal(r.headers['docker-content-digest'], digest);
  t.ok(blobFiles().includes(digest.slice(7)), 'stored under blobs/sha256/<hex>');

  r = await req('HEAD', `/v2/ns/component/source-provider/blobs/${digest}`);
  t.equal(r.status, 200);
  t.equal(r.headers['content-length'], '100000');
  t.equal(r.headers['docker-content-digest'], digest);
  t.equal(r.body.length, 0);

  r = await req('GET', `/v2/ns/component/source-provider/blobs/${digest}`);
  t.equal(r.status, 200);
  t.ok(r.body.equals(data), 'content');
  t.equal(r.headers['content-type'], 'application/octet-stream');

  r = await req('GET', `/v2/ns/component/source-provider/blobs/${digest}`, { headers: { Range: 'bytes=10-19' } });
  t.equal(r.status, 206);
  t.equal(r.headers['content-range'], 'bytes 10-19/100000');
  t.equal(r.headers['content-length'], '10');
  t.ok(r.body.equals(data.subarray(10, 20)));
  r = await req('GET', `/v2/ns/component/source-provider/blobs/${digest}`, { headers: { Range: 'bytes=99990-' } });
  t.ok(r.status === 206 && r.body.equals(data.subarray(99990)), 'open-ended range');
  r = await req('GET', `/v2/ns/component/source-provider/blobs/${digest}`, { headers: { Range: 'bytes=-5' } });
  t.ok(r.status === 206 && r.body.equals(data.subarray(99995)), 'suffix range');
  r = await req('GET', `/v2/ns/component/source-provider/blobs/${digest}`, { headers: { Range: 'bytes=200000-' } });
  t.equal(r.status, 416, 'unsatisfiable range');
  t.equal(r.headers['content-range'], 'bytes */100000');

  // POST then PUT with the whole body.
  const data2 = Buffer.from('post then put');
  r = await req('POST', '/v2/ns/component/source-provider/blobs/uploads/');
  t.equal(r.status, 202);
  r = await req('PUT', `${r.headers.location}?digest=${sha(data2)}`, { body: data2, headers: { 'Content-Type': 'application/octet-stream' } });
  t.equal(r.status, 201, 'POST + PUT');
  t.equal((await req('GET', `/v2/ns/component/source-provider/blobs/${sha(data2)}`)).text, 'post then put');

  // An empty blob.
  r = await req('POST', `/v2/ns/empty/blobs/uploads/?digest=${sha('')}`);
  t.equal(r.status, 201, 'empty blob');
  t.equal((await req('HEAD', `/v2/ns/empty/blobs/${sha('')}`)).headers['content-length'], '0');
  r = await req('GET', `/v2/ns/empty/blobs/${sha('')}`);
  t.ok(r.status === 200 && r.body.length === 0 && r.headers['content-length'] === '0', 'GET of the empty blob');

  // DELETE unlinks the blob from the repository (the content goes with GC).
  await pushBlob('ns/del', 'to delete');
  r = await req('DELETE', `/v2/ns/del/blobs/${sha('to delete')}`);
  t.equal(r.status, 202);
  t.equal((await req('HEAD', `/v2/ns/del/blobs/${sha('to delete')}`)).status, 404);
  t.equal((await req('DELETE', `/v2/ns/del/blobs/${sha('to delete')}`)).code, 'BLOB_UNKNOWN');
});

t.test('a client that goes away mid-download: the blob file is closed, the server keeps serving', async (t) => {
  const data = randomBytes(8 << 20);
  const digest = sha(data);
  await pushBlob('ns/big', data);
  const openFiles = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).includes(digest.slice(7));
    } catch {
      return false;
    }
  }).length;
  for (let i = 0; i < 3; i++) {
    const got = await new Promise<number>((resolve, reject) => {
      const r = https.get(
        { host: '127.0.0.1', port: reg.port, path: `/v2/ns/big/blobs/${digest}`, ca: certs.caCertPem, cert: certs.adminCertPem, key: certs.adminKeyPem, agent: false },
        (res) => {
          let n = 0;
          res.on('data', (c: Buffer) => {
            n += c.length;
            if (n >= 100_000) {
              r.destroy();
              resolve(n);
            }
          });
          res.on('error', () => {});
        },
      );
      r.on('error', (e) => (e.message.includes('socket hang up') ? undefined : reject(e)));
    });
    t.ok(got < data.length, `download ${i + 1} cut after ${got} of ${data.length} bytes`);
  }
  await eventually(() => openFiles() === 0);
  t.equal(openFiles(), 0, 'no blob file left open');
  const r = await req('GET', `/v2/ns/big/blobs/${digest}`);
  t.ok(r.status === 200 && r.body.equals(data), 'a whole download afterwards');
});

t.test('bad blob uploads are rejected and store nothing', async (t) => {
  const before = blobFiles();
  const data = Buffer.from('the real content');
  let r = await req('POST', `/v2/bad/blobs/uploads/?digest=${sha('something else')}`, { body: data });
  t.equal(r.status, 400, 'wrong digest');
  t.equal(r.code, 'DIGEST_INVALID');
  t.same(r.json().errors[0].detail, { expected: sha('something else'), actual: sha(data) }, 'detail names both digests');
  t.equal((await req('HEAD', `/v2/bad/blobs/${sha('something else')}`)).status, 404);
  t.equal((await req('HEAD', `/v2/bad/blobs/${sha(data)}`)).status, 404);

  r = await req('POST', `/v2/bad/blobs/uploads/?digest=${sha('complete content')}`, { body: 'complete' });
  t.equal(r.code, 'DIGEST_INVALID', 'truncated body');
  for (const d of ['sha256:abc', 'nonsense', `sha512:${'a'.repeat(128)}`, `sha256:${'A'.repeat(64)}`]) {
    r = await req('POST', `/v2/bad/blobs/uploads/?digest=${d}`, { body: 'x' });
    t.equal(r.status, 400, `malformed digest ${d}`);
    t.equal(r.code, 'DIGEST_INVALID');
  }
  r = await req('GET', `/v2/bad/blobs/${sha('never pushed')}`);
  t.equal(r.status, 404, 'unknown blob');
  t.equal(r.code, 'BLOB_UNKNOWN');
  const elsewhere = await pushBlob('other/repo', 'only in other/repo');
  t.equal((await req('GET', `/v2/bad/blobs/${elsewhere.digest}`)).code, 'BLOB_UNKNOWN', 'a blob of another repository is unknown here');

  // The client drops the connection half way through a monolithic upload.
  await abortedRequest('POST', `/v2/bad/blobs/uploads/?digest=${sha(randomBytes(10))}`, 1_000_000, randomBytes(50_000));
  t.ok(await eventually(() => tmpFiles().length === 0), 'temp file removed after the aborted upload');

  t.same(blobFiles(), [...before, elsewhere.digest.slice(7)].sort(), 'no blob stored by any bad upload');
  t.notOk(fs.existsSync(path.join(dataDir, 'repositories', 'bad')), 'repository bad not created');
  t.equal((await req('GET', '/v2/')).status, 200, 'still serving');
});

t.test('chunked upload: PATCH, status, out-of-order chunk, abort, PUT', async (t) => {
  const repo = 'chunks/app';
  const data = randomBytes(30_000);
  let r = await req('POST', `/v2/${repo}/blobs/uploads/`);
  t.equal(r.status, 202);
  const loc = r.headers.location as string;
  t.match(loc, new RegExp(`^/v2/${repo}/blobs/uploads/[a-f0-9-]{36}$`));
  t.equal(r.headers['docker-upload-uuid'], loc.split('/').pop());
  t.equal(r.headers.range, '0-0');

  r = await req('PATCH', loc, { body: data.subarray(0, 10_000), headers: { 'Content-Range': '0-9999', 'Content-Type': 'application/octet-stream' } });
  t.equal(r.status, 202, 'first chunk');
  t.equal(r.headers.range, '0-9999');
  t.equal(r.headers.location, loc);

  r = await req('GET', loc);
  t.equal(r.status, 204, 'upload status');
  t.equal(r.headers.range, '0-9999');
  t.equal(r.headers['docker-upload-uuid'], loc.split('/').pop());
  t.equal(r.headers.location, loc);

  r = await req('PATCH', loc, { body: data.subarray(20_000), headers: { 'Content-Range': '20000-29999' } });
  t.equal(r.status, 416, 'out-of-order chunk');
  t.equal(r.code, 'BLOB_UPLOAD_INVALID');
  t.equal(r.headers.range, '0-9999', 'tells where to resume');
  r = await req('PATCH', loc, { body: data.subarray(10_000, 20_000), headers: { 'Content-Range': '10000-29999' } });
  t.equal(r.status, 400, 'Content-Range length differs from Content-Length');
  t.equal(r.code, 'SIZE_INVALID');

  await abortedRequest('PATCH', loc, 10_000, data.subarray(10_000, 15_000), { 'Content-Range': '10000-19999' });
  t.ok(await eventually(async () => (await req('GET', loc)).headers.range === '0-9999'), 'aborted chunk undone');
  // the Range above is the committed size all along; cutting off the aborted bytes follows the abort
  t.ok(await eventually(() => fs.statSync(path.join(dataDir, 'uploads', loc.split('/').pop()!, 'data')).size === 10_000), 'aborted bytes cut off');

  r = await req('PATCH', loc, { body: data.subarray(10_000, 20_000), chunked: true });
  t.equal(r.status, 202, 'streamed chunk without Content-Range');
  t.equal(r.headers.range, '0-19999');

  r = await req('PUT', `${loc}?digest=${sha(data)}`, { body: data.subarray(20_000), headers: { 'Content-Range': '20000-29999' } });
  t.equal(r.status, 201, 'final PUT with the last chunk');
  t.equal(r.headers['docker-content-digest'], sha(data));
  t.ok((await req('GET', `/v2/${repo}/blobs/${sha(data)}`)).body.equals(data), 'assembled content');
  t.equal((await req('GET', loc)).code, 'BLOB_UPLOAD_UNKNOWN', 'upload closed');

  // A wrong digest at the end: nothing stored, the upload is gone.
  const before = blobFiles();
  r = await req('POST', `/v2/${repo}/blobs/uploads/`);
  const loc2 = r.headers.location as string;
  await req('PATCH', loc2, { body: 'some bytes', headers: { 'Content-Range': '0-9' } });
  r = await req('PUT', `${loc2}?digest=${sha('other bytes')}`);
  t.equal(r.status, 400);
  t.equal(r.code, 'DIGEST_INVALID');
  t.equal((await req('GET', loc2)).code, 'BLOB_UPLOAD_UNKNOWN');
  t.same(blobFiles(), before, 'nothing stored');
  t.notOk(uploadDirs().includes(loc2.split('/').pop()!), 'upload directory removed');
  t.equal((await req('HEAD', `/v2/${repo}/blobs/${sha('some bytes')}`)).status, 404);

  r = await req('POST', `/v2/${repo}/blobs/uploads/`);
  const loc3 = r.headers.location as string;
  t.equal((await req('PUT', loc3)).code, 'DIGEST_INVALID', 'PUT without digest');
  t.equal((await req('GET', loc3.replace(repo, 'chunks/other'))).code, 'BLOB_UPLOAD_UNKNOWN', 'upload of another repository');
  t.equal((await req('GET', `/v2/${repo}/blobs/uploads/00000000-0000-0000-0000-000000000000`)).code, 'BLOB_UPLOAD_UNKNOWN');
  t.equal((await req('GET', `/v2/${repo}/blobs/uploads/..%2F..%2Fblobs`)).status, 404, 'traversal in the upload id');
  r = await req('DELETE', loc3);
  t.equal(r.status, 204, 'cancel upload');
  t.equal((await req('GET', loc3)).code, 'BLOB_UPLOAD_UNKNOWN');
  t.equal((await req('DELETE', loc3)).code, 'BLOB_UPLOAD_UNKNOWN');
});

t.test('cross-repository mount', async (t) => {
  const blob = await pushBlob('mount/src', 'mount me');
  let r = await req('POST', `/v2/mount/dst/blobs/uploads/?mount=${blob.digest}&from=mount/src`);
  t.equal(r.status, 201, 'mounted');
  t.equal(r.headers.location, `/v2/mount/dst/blobs/${blob.digest}`);
  t.equal(r.headers['docker-content-digest'], blob.digest);
  t.equal((await req('GET', `/v2/mount/dst/blobs/${blob.digest}`)).text, 'mount me');

  r = await req('POST', `/v2/mount/dst2/blobs/uploads/?mount=${sha('not there')}&from=mount/src`);
  t.equal(r.status, 202, 'unknown blob: falls back to an upload');
  t.match(r.headers.location, /^\/v2\/mount\/dst2\/blobs\/uploads\//);
  await req('DELETE', r.headers.location as string);
  r = await req('POST', `/v2/mount/dst2/blobs/uploads/?mount=${blob.digest}&from=mount/nowhere`);
  t.equal(r.status, 202, 'blob not in the source repository: upload');
  await req('DELETE', r.headers.location as string);

  const tok = (await req('GET', '/token?scope=repository:mount/dst3:pull,push', {})).json().token; // the server's, without mount/src
  r = await req('POST', `/v2/mount/dst3/blobs/uploads/?mount=${blob.digest}&from=mount/src`, { token: tok });
  t.equal(r.status, 202, 'no pull access to the source repository: upload');
  t.equal((await req('HEAD', `/v2/mount/dst3/blobs/${blob.digest}`)).status, 404, 'not mounted');
  await req('DELETE', r.headers.location as string);
});

t.test('manifests: PUT, GET, HEAD, DELETE by tag and digest, all four media types', async (t) => {
  const repo = 'man/app';
  const img = await pushImage(repo, 'v1');
  let r = await req('GET', `/v2/${repo}/manifests/v1`);
  t.equal(r.status, 200);
  t.equal(r.headers['content-type'], OCI_MANIFEST);
  t.equal(r.headers['docker-content-digest'], img.digest);
  t.ok(r.body.equals(img.body), 'byte for byte');
  r = await req('GET', `/v2/${repo}/manifests/${img.digest}`);
  t.ok(r.status === 200 && r.body.equals(img.body), 'by digest');
  r = await req('HEAD', `/v2/${repo}/manifests/v1`);
  t.equal(r.status, 200);
  t.equal(r.headers['content-length'], String(img.size));
  t.equal(r.headers['docker-content-digest'], img.digest);
  t.equal(r.body.length, 0);

  // PUT response headers.
  const body = imageManifest(img.config, [img.layer], { annotations: { a: 'b' } });
  r = await putManifest(repo, 'v2', body);
  t.equal(r.status, 201);
  t.equal(r.headers.location, `/v2/${repo}/manifests/${sha(body)}`);
  t.equal(r.headers['docker-content-digest'], sha(body));
  r = await putManifest(repo, sha(body), body);
  t.equal(r.status, 201, 'PUT by digest');

  // Docker v2 schema 2 manifest and manifest list.
  const dockerBody = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: img.config.digest, size: img.config.size },
      layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', digest: img.layer.digest, size: img.layer.size }],
    }),
  );
  t.equal((await putManifest(repo, 'docker', dockerBody, DOCKER_MANIFEST)).status, 201, 'Docker schema 2');
  r = await req('GET', `/v2/${repo}/manifests/docker`);
  t.equal(r.headers['content-type'], DOCKER_MANIFEST, 'served with the stored media type');
  const listBody = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_LIST,
      manifests: [{ mediaType: DOCKER_MANIFEST, digest: sha(dockerBody), size: dockerBody.length, platform: { architecture: 'amd64', os: 'linux' } }],
    }),
  );
  t.equal((await putManifest(repo, 'list', listBody, DOCKER_LIST)).status, 201, 'Docker manifest list');
  t.equal((await req('HEAD', `/v2/${repo}/manifests/list`)).headers['content-type'], DOCKER_LIST);

  // OCI index over two manifests.
  const indexBody = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: img.digest, size: img.size },
        { mediaType: OCI_MANIFEST, digest: sha(body), size: body.length },
      ],
    }),
  );
  t.equal((await putManifest(repo, 'index', indexBody, OCI_INDEX)).status, 201, 'OCI index');
  t.equal((await req('GET', `/v2/${repo}/manifests/index`)).headers['content-type'], OCI_INDEX);

  // A manifest without a mediaType field, sent as plain JSON.
  const plain = imageManifest(img.config, [img.layer], { annotations: { plain: 'yes' } });
  t.equal((await putManifest(repo, 'plain', plain, 'application/json')).status, 201);
  t.equal((await req('HEAD', `/v2/${repo}/manifests/plain`)).headers['content-type'], OCI_MANIFEST);

  // Retagging moves the tag.
  t.equal((await putManifest(repo, 'v1', body)).status, 201);
  t.equal((await req('HEAD', `/v2/${repo}/manifests/v1`)).headers['docker-content-digest'], sha(body));

  // DELETE by tag removes only the tag; by digest removes the manifest and its tags.
  t.equal((await req('DELETE', `/v2/${repo}/manifests/plain`)).status, 202);
  t.equal((await req('GET', `/v2/${repo}/manifests/plain`)).code, 'MANIFEST_UNKNOWN');
  t.equal((await req('GET', `/v2/${repo}/manifests/${sha(plain)}`)).status, 200, 'still there by digest');
  t.equal((await req('DELETE', `/v2/${repo}/manifests/${sha(plain)}`)).status, 202);
  t.equal((await req('GET', `/v2/${repo}/manifests/${sha(plain)}`)).code, 'MANIFEST_UNKNOWN');
  t.equal((await req('DELETE', `/v2/${repo}/manifests/${sha(plain)}`)).code, 'MANIFEST_UNKNOWN');
  t.equal((await req('DELETE', `/v2/${repo}/manifests/v2`)).status, 202);
  t.equal((await req('DELETE', `/v2/${repo}/manifests/v1`)).status, 202);
  t.notOk((await req('GET', `/v2/${repo}/tags/list`)).json().tags.includes('v1'));
  t.equal((await req('GET', `/v2/${repo}/manifests/nope`)).code, 'MANIFEST_UNKNOWN');
  t.equal((await req('HEAD', `/v2/${repo}/manifests/nope`)).status, 404);
});

t.test('bad manifests are rejected with the spec codes and store nothing', async (t) => {
  const repo = 'badman/app';
  const img = await pushImage(repo, 'good');
  const other = await pushBlob('badman/other', 'layer only in another repository');
  const revDir = path.join(dataDir, 'repositories', 'badman', 'app', '_manifests', 'revisions');
  const before = { blobs: blobFiles(), revs: fs.readdirSync(revDir).sort(), tags: (await req('GET', `/v2/${repo}/tags/list`)).json().tags };

  const cases: [string, string | Buffer, string, number, string, string?][] = [
    ['malformed JSON', '{"schemaVersion": 2, "config": ', OCI_MANIFEST, 400, 'MANIFEST_INVALID'],
    ['not an object', '[1,2]', OCI_MANIFEST, 400, 'MANIFEST_INVALID'],
    ['schema version 1', JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }), OCI_MANIFEST, 400, 'MANIFEST_INVALID'],
    ['no layers', JSON.stringify({ schemaVersion: 2, config: { mediaType: 'x/y', digest: img.config.digest, size: img.config.size } }), OCI_MANIFEST, 400, 'MANIFEST_INVALID'],
    ['bad descriptor digest', imageManifest({ digest: 'sha256:123', size: 1 }, []), OCI_MANIFEST, 400, 'MANIFEST_INVALID'],
    ['negative size', imageManifest({ ...img.config, size: -1 }, []), OCI_MANIFEST, 400, 'MANIFEST_INVALID'],
    ['mediaType differs from Content-Type', imageManifest(img.config, [img.layer], {}, DOCKER_MANIFEST), OCI_MANIFEST, 400, 'MANIFEST_INVALID'],
    ['unsupported Content-Type', imageManifest(img.config, [img.layer]), 'application/vnd.example+json', 400, 'MANIFEST_INVALID'],
    ['missing config blob', imageManifest({ digest: sha('no config'), size: 9 }, [img.layer]), OCI_MANIFEST, 400, 'MANIFEST_BLOB_UNKNOWN'],
    ['missing layer', imageManifest(img.config, [{ digest: sha('no layer'), size: 8 }]), OCI_MANIFEST, 400, 'MANIFEST_BLOB_UNKNOWN'],
    ['layer of another repository', imageManifest(img.config, [other]), OCI_MANIFEST, 400, 'MANIFEST_BLOB_UNKNOWN'],
    ['wrong blob size', imageManifest(img.config, [{ ...img.layer, size: img.layer.size + 1 }]), OCI_MANIFEST, 400, 'MANIFEST_INVALID'],
    [
      'index naming a missing manifest',
      JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: sha('no manifest'), size: 3 }] }),
      OCI_INDEX,
      400,
      'MANIFEST_BLOB_UNKNOWN',
    ],
    ['index without manifests', JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX }), OCI_INDEX, 400, 'MANIFEST_INVALID'],
    ['too large', Buffer.alloc(4 * 1024 * 1024 + 1, 32), OCI_MANIFEST, 413, 'SIZE_INVALID'],
  ];
  for (const [what, body, ct, status, code] of cases) {
    const r = await putManifest(repo, 'bad', body, ct);
    t.equal(r.status, status, what);
    t.equal(r.code, code, what);
  }
  const good = imageManifest(img.config, [img.layer], { annotations: { x: 'y' } });
  let r = await putManifest(repo, sha('something else'), good);
  t.equal(r.code, 'DIGEST_INVALID', 'PUT by a digest that does not match the body');
  r = await putManifest(repo, 'bad%20tag', good);
  t.equal(r.code, 'MANIFEST_INVALID', 'invalid tag');
  r = await putManifest(repo, '-bad', good);
  t.equal(r.code, 'MANIFEST_INVALID', 'tag starting with a dash');

  t.same(blobFiles(), before.blobs, 'no blob stored');
  t.same(fs.readdirSync(revDir).sort(), before.revs, 'no manifest stored');
  t.same((await req('GET', `/v2/${repo}/tags/list`)).json().tags, before.tags, 'no tag stored');
  t.equal((await req('GET', `/v2/${repo}/manifests/good`)).status, 200, 'still serving');
});

t.test('referrers API and OCI-Subject', async (t) => {
  const repo = 'refs/app';
  const subject = await pushImage(repo, 'v1');
  const empty = await pushBlob(repo, '{}');
  const sbomLayer = await pushBlob(repo, 'sbom');
  const sig = imageManifest({ ...empty, mediaType: 'application/vnd.oci.empty.v1+json' }, [sbomLayer], {
    artifactType: 'application/vnd.example.sbom',
    subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size },
    annotations: { 'org.example': 'yes' },
  });
  let r = await putManifest(repo, sha(sig), sig);
  t.equal(r.status, 201);
  t.equal(r.headers['oci-subject'], subject.digest);
  // artifactType falls back to the config media type.
  const sig2 = imageManifest({ ...empty, mediaType: 'application/vnd.example.signature' }, [sbomLayer], {
    subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: subject.size },
  });
  t.equal((await putManifest(repo, sha(sig2), sig2)).status, 201);
  // The subject need not exist.
  const orphan = imageManifest(empty, [sbomLayer], { subject: { mediaType: OCI_MANIFEST, digest: sha('absent'), size: 6 } });
  t.equal((await putManifest(repo, sha(orphan), orphan)).status, 201, 'subject need not exist');

  r = await req('GET', `/v2/${repo}/referrers/${subject.digest}`);
  t.equal(r.status, 200);
  t.equal(r.headers['content-type'], OCI_INDEX);
  const idx = r.json();
  t.equal(idx.schemaVersion, 2);
  t.equal(idx.mediaType, OCI_INDEX);
  t.same(
    idx.manifests.sort((a: any, b: any) => a.artifactType.localeCompare(b.artifactType)),
    [
      { mediaType: OCI_MANIFEST, digest: sha(sig), size: sig.length, artifactType: 'application/vnd.example.sbom', annotations: { 'org.example': 'yes' } },
      { mediaType: OCI_MANIFEST, digest: sha(sig2), size: sig2.length, artifactType: 'application/vnd.example.signature' },
    ],
  );
  t.notOk(r.headers['oci-filters-applied']);
  r = await req('GET', `/v2/${repo}/referrers/${subject.digest}?artifactType=application/vnd.example.sbom`);
  t.equal(r.headers['oci-filters-applied'], 'artifactType');
  t.same(
    r.json().manifests.map((m: any) => m.digest),
    [sha(sig)],
  );
  r = await req('GET', `/v2/${repo}/referrers/${sha('nobody refers to this')}`);
  t.equal(r.status, 200);
  t.same(r.json().manifests, [], 'empty index');
  t.equal((await req('GET', `/v2/${repo}/referrers/not-a-digest`)).code, 'DIGEST_INVALID');

  t.equal((await req('DELETE', `/v2/${repo}/manifests/${sha(sig)}`)).status, 202);
  t.same(
    (await req('GET', `/v2/${repo}/referrers/${subject.digest}`)).json().manifests.map((m: any) => m.digest),
    [sha(sig2)],
    'deleted referrer leaves the list',
  );
});

t.test('tag list and catalog with pagination', async (t) => {
  const repo = 'page/app';
  const img = await pushImage(repo, 'a');
  for (const tag of ['b', 'c', 'd', 'e']) t.equal((await putManifest(repo, tag, img.body)).status, 201);
  let r = await req('GET', `/v2/${repo}/tags/list`);
  t.same(r.json(), { name: repo, tags: ['a', 'b', 'c', 'd', 'e'] });
  t.notOk(r.headers.link);
  r = await req('GET', `/v2/${repo}/tags/list?n=2`);
  t.same(r.json().tags, ['a', 'b']);
  t.equal(r.headers.link, `</v2/${repo}/tags/list?n=2&last=b>; rel="next"`);
  r = await req('GET', `/v2/${repo}/tags/list?n=2&last=b`);
  t.same(r.json().tags, ['c', 'd']);
  r = await req('GET', `/v2/${repo}/tags/list?n=2&last=d`);
  t.same(r.json().tags, ['e']);
  t.notOk(r.headers.link, 'last page has no Link');
  r = await req('GET', `/v2/${repo}/tags/list?last=c`);
  t.same(r.json().tags, ['d', 'e']);
  r = await req('GET', `/v2/${repo}/tags/list?n=0`);
  t.same(r.json().tags, []);

  r = await req('GET', `/v2/page/unknown/tags/list`);
  t.equal(r.status, 404);
  t.equal(r.code, 'NAME_UNKNOWN');

  r = await req('GET', '/v2/_catalog');
  const repos: string[] = r.json().repositories;
  t.ok(repos.includes(repo) && repos.includes('ns/component/source-provider'), 'lists nested repositories');
  t.same(repos, [...repos].sort(), 'sorted');
  r = await req('GET', '/v2/_catalog?n=3');
  t.same(r.json().repositories, repos.slice(0, 3));
  t.equal(r.headers.link, `</v2/_catalog?n=3&last=${encodeURIComponent(repos[2])}>; rel="next"`);
  r = await req('GET', `/v2/_catalog?n=3&last=${encodeURIComponent(repos[2])}`);
  t.same(r.json().repositories, repos.slice(3, 6));
});

t.test('repository names, unknown endpoints and methods', async (t) => {
  for (const name of ['Upper/case', 'a//b', '-a', 'a-', 'a/_b', 'a..b', `${'a'.repeat(256)}`, 'a/b%2F..%2F..']) {
    const r = await req('GET', `/v2/${name}/tags/list`);
    t.equal(r.status, 400, name);
    t.equal(r.code, 'NAME_INVALID', name);
  }
  let r = await req('POST', `/v2/Bad/blobs/uploads/?digest=${sha('x')}`, { body: 'x' });
  t.equal(r.code, 'NAME_INVALID', 'on push');
  t.notOk(blobFiles().includes(sha('x').slice(7)), 'nothing stored');
  for (const name of ['a.b', 'a_b', 'a__b', 'a---b', 'x/y/z.w-v']) {
    t.equal((await req('POST', `/v2/${name}/blobs/uploads/?digest=${sha('ok')}`, { body: 'ok' })).status, 201, `valid name ${name}`);
  }
  r = await req('GET', '/v2/a/nothing');
  t.equal(r.status, 404);
  t.equal(r.code, 'UNSUPPORTED');
  r = await req('PATCH', `/v2/a/manifests/x`, { body: 'x' });
  t.equal(r.status, 405);
  t.equal(r.code, 'UNSUPPORTED');
  t.equal((await req('GET', '/elsewhere')).status, 404);
});

t.test('disk full (ENOSPC) is a clean error', async (t) => {
  const repo = 'full/app';
  let r = await req('POST', `/v2/${repo}/blobs/uploads/`);
  const loc = r.headers.location as string;
  t.equal((await req('PATCH', loc, { body: 'first', headers: { 'Content-Range': '0-4' } })).status, 202);
  const file = path.join(dataDir, 'uploads', loc.split('/').pop()!, 'data');
  const saved = fs.readFileSync(file);
  fs.rmSync(file);
  fs.symlinkSync('/dev/full', file); // every write fails with ENOSPC
  const before = blobFiles();
  r = await req('PATCH', loc, { body: randomBytes(100_000), headers: { 'Content-Range': '5-100004' } });
  t.equal(r.status, 507, 'insufficient storage');
  t.equal(r.code, 'UNKNOWN');
  t.match(r.json().errors[0].message, /out of disk space/);
  t.equal((await req('GET', loc)).headers.range, '0-4', 'upload offset unchanged');
  fs.rmSync(file);
  fs.writeFileSync(file, saved);
  r = await req('PUT', `${loc}?digest=${sha('first second')}`, { body: ' second' });
  t.equal(r.status, 201, 'the upload goes on once space is back');
  t.same(blobFiles(), [...before, sha('first second').slice(7)].sort());
  t.equal((await req('GET', '/v2/')).status, 200, 'still serving');
});

t.test('restart: content persists, crash leftovers stay invisible, uploads resume', async (t) => {
  const img = await pushImage('restart/app', '1');
  let r = await req('POST', '/v2/restart/app/blobs/uploads/');
  const loc = r.headers.location as string;
  await req('PATCH', loc, { body: 'resume ', headers: { 'Content-Range': '0-6' } });
  await reg.close();
  // What a crash mid-upload leaves behind: a temp file that never got its digest checked.
  fs.writeFileSync(path.join(dataDir, 'tmp', 'partial-upload'), 'half a blob');
  const before = blobFiles();
  reg = await startRegistry(baseOpts);
  t.same(tmpFiles(), [], 'temp files removed at start');
  t.same(blobFiles(), before);
  t.ok((await req('GET', '/v2/restart/app/manifests/1')).body.equals(img.body), 'manifest served after restart');
  t.equal((await req('GET', `/v2/restart/app/blobs/${img.layer.digest}`)).text, 'layer of 1');
  r = await req('GET', loc);
  t.equal(r.headers.range, '0-6', 'upload session survived');
  r = await req('PUT', `${loc}?digest=${sha('resume after restart')}`, { body: 'after restart' });
  t.equal(r.status, 201, 'and completes with the right digest');
});

t.test('anonymous pull when enabled', async (t) => {
  const anon = await startRegistry({ ...baseOpts, dataDir: path.join(tmp, 'anon'), anonymousPull: true });
  t.teardown(() => anon.close());
  const port = anon.port;
  await req('POST', `/v2/pub/app/blobs/uploads/?digest=${sha('public')}`, { body: 'public', port });
  t.equal((await req('GET', '/v2/', { cert: false, port })).status, 200);
  t.equal((await req('GET', `/v2/pub/app/blobs/${sha('public')}`, { cert: false, port })).text, 'public', 'pull without credentials');
  let r = await req('POST', `/v2/pub/app/blobs/uploads/?digest=${sha('nope')}`, { cert: false, port, body: 'nope' });
  t.equal(r.status, 401, 'push still needs authentication');
  t.equal((await req('DELETE', `/v2/pub/app/blobs/${sha('public')}`, { cert: false, port })).status, 401, 'delete too');
  t.equal((await req('GET', '/v2/_catalog', { cert: false, port })).status, 401, 'catalog too');
  r = await req('GET', '/token?scope=repository:pub/app:pull,push', { cert: false, port });
  t.equal(r.status, 200, 'anonymous token');
  const tok = r.json().token;
  r = await req('GET', `/v2/pub/app/tags/list`, { token: tok, port });
  t.same([r.status, r.json().tags], [200, []], 'pull scope granted');
  t.equal((await req('POST', `/v2/pub/app/blobs/uploads/`, { token: tok, port })).status, 401, 'push scope not granted');
});

t.test('gc: old tags, unreachable manifests, unreferenced blobs', async (t) => {
  // A registry of its own, so that the counts do not depend on the other tests; the helpers use `reg`.
  const main = reg;
  const gcDir = path.join(tmp, 'gc');
  reg = await startRegistry({ ...baseOpts, dataDir: gcDir });
  t.teardown(async () => {
    await reg.close();
    reg = main;
  });
  const blobCount = () => fs.readdirSync(path.join(gcDir, 'blobs', 'sha256')).length;
  const repo = 'gc/comp/src-provider';
  const imgs = [];
  for (const ts of ['1700000009', '1700000010', '1700000100', '1700000011']) imgs.push(await pushImage(repo, ts));
  t.equal((await putManifest(repo, 'latest', imgs[3].body)).status, 201);
  const other = await pushImage('gc/keep', 'x');
  const orphan = await pushBlob(repo, 'uploaded but never referenced');
  const idxChild = await pushImage('gc/idx', 'child');
  await req('DELETE', '/v2/gc/idx/manifests/child');
  const idx = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest: idxChild.digest, size: idxChild.size }] }));
  t.equal((await putManifest('gc/idx', 'top', idx, OCI_INDEX)).status, 201);
  const refd = await pushBlob('gc/idx', 'sig');
  const ref = imageManifest(refd, [refd], { subject: { mediaType: OCI_MANIFEST, digest: idxChild.digest, size: idxChild.size } });
  t.equal((await putManifest('gc/idx', sha(ref), ref)).status, 201);

  t.same(await reg.gc({ keepTags: 2, tagFilter: (_r, tag) => tag !== 'latest' && tag !== 'x' }), { blobsDeleted: 0, manifestsDeleted: 0, bytesFreed: 0 }, 'grace period protects new content');
  t.same((await req('GET', `/v2/${repo}/tags/list`)).json().tags, ['1700000011', '1700000100', 'latest'], 'kept the 2 newest timestamps (numeric order) and the filtered-out tag');

  const before = blobCount();
  const res = await reg.gc({ keepTags: 2, tagFilter: (r) => r === repo, graceMs: 0 });
  t.equal(res.manifestsDeleted, 2, 'the two untagged images');
  t.equal(res.blobsDeleted, 7, 'their manifests, configs and layers, and the orphan blob');
  const freed = [imgs[0], imgs[1]].reduce((n, i) => n + i.size + i.config.size + i.layer.size, orphan.size);
  t.equal(res.bytesFreed, freed);
  t.equal(blobCount(), before - 7);
  for (const gone of [imgs[0], imgs[1]]) {
    t.equal((await req('GET', `/v2/${repo}/manifests/${gone.digest}`)).code, 'MANIFEST_UNKNOWN');
    t.equal((await req('GET', `/v2/${repo}/blobs/${gone.config.digest}`)).code, 'BLOB_UNKNOWN');
  }
  t.equal((await req('HEAD', `/v2/${repo}/blobs/${orphan.digest}`)).status, 404, 'unreferenced blob collected');
  for (const kept of [imgs[2], imgs[3]]) {
    t.equal((await req('GET', `/v2/${repo}/manifests/${kept.digest}`)).status, 200);
    t.equal((await req('GET', `/v2/${repo}/blobs/${kept.layer.digest}`)).status, 200);
  }
  t.equal((await req('GET', `/v2/gc/keep/manifests/x`)).status, 200, 'other repositories untouched');
  t.equal((await req('GET', `/v2/gc/idx/manifests/${idxChild.digest}`)).status, 200, 'untagged manifest kept: an index names it');
  t.equal((await req('GET', `/v2/gc/idx/manifests/${sha(ref)}`)).status, 200, 'referrer kept: its subject exists');
  t.equal((await req('GET', `/v2/gc/idx/blobs/${idxChild.layer.digest}`)).status, 200);

  t.equal((await req('DELETE', '/v2/gc/idx/manifests/top')).status, 202);
  const res2 = await reg.gc({ graceMs: 0 });
  t.equal(res2.manifestsDeleted, 3, 'index gone: its child and the child\'s referrer follow');
  t.equal(res2.blobsDeleted, 6, 'three manifests, the child\'s config and layer, the referrer\'s blob');
  t.equal((await req('GET', `/v2/gc/idx/manifests/${sha(ref)}`)).code, 'MANIFEST_UNKNOWN');
  t.same(await reg.gc({ graceMs: 0 }), { blobsDeleted: 0, manifestsDeleted: 0, bytesFreed: 0 }, 'idempotent');
  t.equal((await req('GET', `/v2/${repo}/manifests/latest`)).status, 200, 'still serving');
});

// ---- skopeo ----------------------------------------------------------------------------------

async function tarGz(files: Record<string, string>) {
  const pack = tar.pack();
  for (const [name, content] of Object.entries(files)) pack.entry({ name, mtime: new Date(0), uid: 0, gid: 0 }, content);
  pack.finalize();
  const chunks: Buffer[] = [];
  for await (const c of pack) chunks.push(c as Buffer);
  const raw = Buffer.concat(chunks);
  return { raw, gz: zlib.gzipSync(raw) };
}

/** Writes a one-image OCI layout by hand; returns the manifest digest. */
async function writeLayout(dir: string, tag: string) {
  const layer = await tarGz({ 'hello.txt': 'hello from an OCI layout\n', 'data/config.yaml': 'a: 1\n' });
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer.raw)] }, config: {} }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer.gz), size: layer.gz.length }],
    }),
  );
  fs.mkdirSync(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  for (const b of [layer.gz, config, manifest]) fs.writeFileSync(path.join(dir, 'blobs', 'sha256', sha(b).slice(7)), b);
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  fs.writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [{ mediaType: OCI_MANIFEST, digest: sha(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }],
    }),
  );
  return { digest: sha(manifest), blobs: [sha(layer.gz), sha(config), sha(manifest)] };
}

t.test('gc: snapshot repositories of namespaces that are gone lose their snapshots', async (t) => {
  const main = reg;
  reg = await startRegistry({ ...baseOpts, dataDir: path.join(tmp, 'gc-ns') });
  t.teardown(async () => {
    await reg.close();
    reg = main;
  });
  const unix = (_r: string, tag: string) => /^\d{9,}$/.test(tag);
  const tags = async (repo: string) => (await req('GET', `/v2/${repo}/tags/list`)).json().tags ?? [];
  for (const ts of ['1700000001', '1700000002']) await pushImage('gone/comp/src-prov', ts);
  for (const ts of ['1700000001', '1700000002', '1700000003']) await pushImage('live/comp/src-prov', ts);
  await pushImage('gone/comp/source/src/prov', '1700000001'); // the places of today's scheme
  await pushImage(`gone/action/sha256/${'a'.repeat(64)}/chart`, '1700000001');
  await pushImage('live/comp/source/src/prov', '1700000001');
  await pushImage('gone/comp/descriptors', '1.0.0');
  await pushImage('gone/other', '1700000001');

  await reg.gc({ keepTags: 2, tagFilter: unix, namespaces: ['live'] });
  t.same(await tags('gone/comp/src-prov'), ['1700000001', '1700000002'], 'within the grace period nothing goes (the namespace may be new)');

  const res = await reg.gc({ keepTags: 2, tagFilter: unix, namespaces: ['live'], graceMs: 0 });
  t.same(await tags('gone/comp/src-prov'), [], 'a gone namespace: every snapshot tag');
  t.same(await tags('gone/comp/source/src/prov'), [], 'in places of either scheme');
  t.same(await tags(`gone/action/sha256/${'a'.repeat(64)}/chart`), []);
  t.same(await tags('live/comp/source/src/prov'), ['1700000001'], 'a live namespace keeps them');
  t.same(await tags('live/comp/src-prov'), ['1700000002', '1700000003'], 'a live one: the newest --snapshot-history');
  t.same(await tags('gone/comp/descriptors'), ['1.0.0'], 'tags the filter does not select stay');
  t.same(await tags('gone/other'), ['1700000001'], 'repositories not shaped <namespace>/<component>/<producer> stay');
  t.equal(res.manifestsDeleted, 5, "the gone namespace's four images and the live one's oldest");

  await reg.gc({ keepTags: 2, tagFilter: unix, graceMs: 0 });
  t.same(await tags('live/comp/src-prov'), ['1700000002', '1700000003'], 'without the namespace list: only --snapshot-history');
});

t.test('interoperability with skopeo', async (t) => {
  const found = await exec('skopeo', ['--version']).catch(() => undefined);
  if (!found) {
    t.fail('skopeo is not installed: run `bash scripts/ensure-debs.sh skopeo`');
    return;
  }
  const work = path.join(tmp, 'skopeo');
  const certDir = path.join(work, 'certs');
  const caOnly = path.join(work, 'ca-only');
  fs.mkdirSync(certDir, { recursive: true });
  fs.mkdirSync(caOnly, { recursive: true });
  fs.writeFileSync(path.join(certDir, 'client.cert'), certs.adminCertPem);
  fs.writeFileSync(path.join(certDir, 'client.key'), certs.adminKeyPem);
  fs.writeFileSync(path.join(certDir, 'ca.crt'), certs.caCertPem);
  fs.writeFileSync(path.join(caOnly, 'ca.crt'), certs.caCertPem);
  const env = { ...process.env, HOME: work, XDG_RUNTIME_DIR: work, REGISTRY_AUTH_FILE: path.join(work, 'auth.json') };
  const skopeo = async (...args: string[]) => {
    try {
      return (await exec('skopeo', ['--insecure-policy', ...args], { env, timeout: 120_000, maxBuffer: 16 << 20 })).stdout;
    } catch (e) {
      const err = e as { stderr?: string; message: string };
      throw new Error(`skopeo ${args.join(' ')}: ${err.stderr || err.message}`);
    }
  };

  const src = path.join(work, 'src');
  const layout = await writeLayout(src, 'v1');
  const ref = `docker://127.0.0.1:${reg.port}/ns/component/source-provider`;
  await skopeo('copy', '--preserve-digests', '--dest-cert-dir', certDir, `oci:${src}:v1`, `${ref}:1700000000`);
  let r = await req('HEAD', '/v2/ns/component/source-provider/manifests/1700000000');
  t.equal(r.status, 200, 'skopeo pushed with mTLS');
  t.equal(r.headers['docker-content-digest'], layout.digest, 'same manifest digest as the layout');

  const raw = await skopeo('inspect', '--raw', '--cert-dir', certDir, `${ref}:1700000000`);
  t.equal(sha(raw), layout.digest, 'inspect --raw returns the manifest byte for byte');
  const info = JSON.parse(await skopeo('inspect', '--cert-dir', certDir, `${ref}:1700000000`));
  t.equal(info.Digest, layout.digest);
  t.equal(info.Os, 'linux');

  const out = path.join(work, 'out');
  await skopeo('copy', '--preserve-digests', '--src-cert-dir', certDir, `${ref}:1700000000`, `oci:${out}:v1`);
  const outIndex = JSON.parse(fs.readFileSync(path.join(out, 'index.json'), 'utf8'));
  t.equal(outIndex.manifests[0].digest, layout.digest, 'copied back with the same digest');
  for (const d of layout.blobs) {
    const b = fs.readFileSync(path.join(out, 'blobs', 'sha256', d.slice(7)));
    t.equal(sha(b), d, `blob ${d.slice(0, 19)} round-tripped`);
  }

  const tags = JSON.parse(await skopeo('list-tags', '--cert-dir', certDir, ref));
  t.ok(tags.Tags.includes('1700000000'), 'list-tags');

  // Token flow: no client certificate, HTTP Basic at the token endpoint.
  const viaToken = JSON.parse(await skopeo('list-tags', '--cert-dir', caOnly, '--creds', 'alice:secret', ref));
  t.ok(viaToken.Tags.includes('1700000000'), 'list-tags with a bearer token');
  // Only the server writes: alice's token is down-scoped to pull and skopeo's push fails.
  await t.rejects(skopeo('copy', '--preserve-digests', '--dest-cert-dir', caOnly, '--dest-creds', 'alice:secret', `oci:${src}:v1`, `docker://127.0.0.1:${reg.port}/ns/tokens/app:1`), 'push with a bearer token is refused');
  t.equal((await req('HEAD', '/v2/ns/tokens/app/manifests/1')).status, 404, 'nothing pushed');
  // Registry to registry (containers/image tries cross-repository mounts), then delete.
  await skopeo('copy', '--preserve-digests', '--src-cert-dir', certDir, '--dest-cert-dir', certDir, `${ref}:1700000000`, `docker://127.0.0.1:${reg.port}/ns/copy/app:2`);
  t.equal((await req('HEAD', '/v2/ns/copy/app/manifests/2')).headers['docker-content-digest'], layout.digest, 'registry to registry copy');
  await skopeo('delete', '--cert-dir', certDir, `docker://127.0.0.1:${reg.port}/ns/copy/app:2`);
  t.equal((await req('GET', `/v2/ns/copy/app/manifests/${layout.digest}`)).code, 'MANIFEST_UNKNOWN', 'skopeo delete');

  await t.rejects(skopeo('inspect', '--raw', '--cert-dir', caOnly, '--creds', 'alice:wrong', `${ref}:1700000000`), 'wrong password is refused');
  await t.rejects(skopeo('inspect', '--raw', '--cert-dir', caOnly, `${ref}:1700000000`), 'no credentials are refused');
});
