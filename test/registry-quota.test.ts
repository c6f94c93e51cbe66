// Per-namespace limits of the snapshot registry (issue 15, registry/server-quota.ts) over real
// HTTPS and a real data directory: one namespace at its quota, out of upload slots or of files is
// refused (OCI distribution's error format) while another still pushes; deletes and GC give room
// back; a restart counts the same usage again; an upload past the quota is cut as it streams and
// its data deleted. Quota refusals are `403 DENIED` as Harbor answers its project quotas
// (goharbor/harbor#8797, #11527: docker does not retry DENIED); upload slots `429 TOOMANYREQUESTS`
// with Retry-After (distribution's registry/api/errcode ErrorCodeTooManyRequests); the data disk
// low `507`, as ENOSPC is.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { ensureCerts } from '../certs/index.js';
import { OciClient, OciError } from '../registry/client.js';
import { startRegistry, type Registry, type RegistryOptions } from '../registry/server.js';

const KiB = 1024;
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ocm-registry-quota-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const certs = await ensureCerts(path.join(tmp, 'certs'));
const limits = { namespaceBytes: 1024 * KiB, namespaceUploads: 3, namespaceFiles: 40, tagsPerRepository: 4, referrersPerSubject: 2 };
type Subject = { digest: string; size: number };
/** An image manifest of `config` and no layers, with these annotations, optionally a referrer of `subject`. */
const ociManifest = (config: Buffer, annotations: Record<string, string>, subject?: Subject) =>
  Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [],
      annotations,
      ...(subject ? { subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...subject } } : {}),
    }),
  );
const options = (dataDir: string, extra: Partial<RegistryOptions> = {}): RegistryOptions => ({
  dataDir,
  port: 0,
  host: '127.0.0.1',
  tls: { key: certs.serverKeyPem, cert: certs.serverCertPem, clientCA: certs.caCertPem },
  logLevel: 'silent',
  limits,
  ...extra,
});

interface Res {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  code?: string;
  message?: string;
}
function req(reg: Registry, method: string, p: string, body?: Buffer | string, headers: Record<string, string | number> = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const r = https.request(
      {
        host: '127.0.0.1',
        port: reg.port,
        method,
        path: p,
        headers: { ...(body !== undefined ? { 'Content-Length': Buffer.byteLength(body) } : {}), ...headers },
        ca: certs.caCertPem,
        cert: certs.adminCertPem,
        key: certs.adminKeyPem,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let first: { code?: string; message?: string } | undefined;
          try {
            first = JSON.parse(text).errors?.[0];
          } catch {
            // not an error body
          }
          resolve({ status: res.statusCode!, headers: res.headers, text, code: first?.code, message: first?.message });
        });
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const pushBlob = (reg: Registry, repo: string, data: Buffer) => req(reg, 'POST', `/v2/${repo}/blobs/uploads/?digest=${sha(data)}`, data, { 'Content-Type': 'application/octet-stream' });
const blobsOnDisk = (dataDir: string) => fs.readdirSync(path.join(dataDir, 'blobs', 'sha256')).length;
const dirEntries = (dataDir: string, sub: string) => fs.readdirSync(path.join(dataDir, sub));

t.test('bytes: a namespace at its quota is refused, another still pushes; deletes and GC give room back; a restart keeps the usage', async (t) => {
  const dataDir = path.join(tmp, 'bytes');
  let reg = await startRegistry(options(dataDir));
  t.teardown(() => reg.close());
  const a = [randomBytes(400 * KiB), randomBytes(400 * KiB), randomBytes(400 * KiB)];
  t.equal((await pushBlob(reg, 'team-a/app', a[0])).status, 201);
  t.equal((await pushBlob(reg, 'team-a/other', a[1])).status, 201, 'a second repository of the same namespace');
  let r = await pushBlob(reg, 'team-a/app', a[2]);
  t.equal(r.status, 403, '1200 KiB > the 1024 KiB quota');
  t.equal(r.code, 'DENIED');
  t.match(r.message, /namespace "team-a" is over its registry quota/);
  t.equal((await req(reg, 'HEAD', `/v2/team-a/app/blobs/${sha(a[2])}`)).status, 404, 'nothing stored');
  t.equal(blobsOnDisk(dataDir), 2, 'no blob file left behind');
  const b = randomBytes(900 * KiB);
  t.equal((await pushBlob(reg, 'team-b/app', b)).status, 201, 'team-b pushes 900 KiB meanwhile');

  // The same blob in a second repository of the namespace counts again (mount included).
  r = await req(reg, 'POST', `/v2/team-a/third/blobs/uploads/?mount=${sha(a[0])}&from=team-a/app`);
  t.equal(r.status, 403, 'a mount counts as the bytes it links');
  t.equal(r.code, 'DENIED');

  // Deleting a blob gives its bytes back at once.
  t.equal((await req(reg, 'DELETE', `/v2/team-a/other/blobs/${sha(a[1])}`)).status, 202);
  t.equal((await pushBlob(reg, 'team-a/app', a[2])).status, 201, 'room again after the delete');
  t.equal((await pushBlob(reg, 'team-a/app', randomBytes(400 * KiB))).status, 403, 'and full again');

  // A restart counts the same usage from disk.
  await reg.close();
  reg = await startRegistry(options(dataDir));
  r = await pushBlob(reg, 'team-a/app', randomBytes(400 * KiB));
  t.equal(r.status, 403, 'still full after a restart');
  t.equal(r.code, 'DENIED');
  t.equal((await pushBlob(reg, 'team-a/app', randomBytes(100 * KiB))).status, 201, 'what is left still fits');
  t.equal((await pushBlob(reg, 'team-b/app', randomBytes(100 * KiB))).status, 201, 'team-b still pushes after the restart');

  // GC: blobs no manifest names go (graceMs 0), and their links give the bytes back.
  const gc = await reg.gc({ graceMs: 0 });
  t.ok(gc.blobsDeleted >= 3, `gc deleted ${gc.blobsDeleted} blobs`);
  t.equal((await pushBlob(reg, 'team-a/app', randomBytes(900 * KiB))).status, 201, 'room after GC');
});

t.test('an upload past the quota is cut as it streams and its data deleted; the quota is as before', async (t) => {
  const dataDir = path.join(tmp, 'stream');
  const reg = await startRegistry(options(dataDir));
  t.teardown(() => reg.close());
  t.equal((await pushBlob(reg, 'team-a/app', randomBytes(600 * KiB))).status, 201);
  // Chunked upload: the first chunk fits, the second goes past the quota.
  let r = await req(reg, 'POST', '/v2/team-a/app/blobs/uploads/');
  t.equal(r.status, 202);
  const loc = r.headers.location as string;
  const c1 = randomBytes(300 * KiB);
  t.equal((await req(reg, 'PATCH', loc, c1, { 'Content-Type': 'application/octet-stream' })).status, 202, 'a chunk within the quota');
  r = await req(reg, 'PATCH', loc, randomBytes(300 * KiB), { 'Content-Type': 'application/octet-stream' });
  t.equal(r.status, 403, 'the chunk past the quota is refused');
  t.equal(r.code, 'DENIED');
  t.equal((await req(reg, 'GET', loc)).status, 404, 'the session is gone');
  t.same(dirEntries(dataDir, 'uploads'), [], 'and its data');
  // Monolithic streamed upload (chunked transfer encoding, no Content-Length): cut as it streams.
  const big = randomBytes(3 * 1024 * KiB);
  r = await new Promise<Res>((resolve, reject) => {
    const q = https.request(
      { host: '127.0.0.1', port: reg.port, method: 'POST', path: `/v2/team-a/app/blobs/uploads/?digest=${sha(big)}`, ca: certs.caCertPem, cert: certs.adminCertPem, key: certs.adminKeyPem, agent: false, headers: { 'Transfer-Encoding': 'chunked' } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text, code: JSON.parse(text).errors?.[0]?.code }));
      },
    );
    q.on('error', reject);
    for (let i = 0; i < big.length; i += 64 * KiB) q.write(big.subarray(i, i + 64 * KiB));
    q.end();
  });
  t.equal(r.status, 403, 'a 3 MiB stream is refused');
  t.equal(r.code, 'DENIED');
  t.same(dirEntries(dataDir, 'tmp'), [], 'its partial data deleted');
  t.equal(blobsOnDisk(dataDir), 1);
  t.equal((await pushBlob(reg, 'team-a/app', randomBytes(400 * KiB))).status, 201, 'the refused bytes were given back: 400 KiB still fit');
});

t.test('upload slots: one namespace holding all of its sessions does not block another', async (t) => {
  const dataDir = path.join(tmp, 'slots');
  const reg = await startRegistry(options(dataDir));
  t.teardown(() => reg.close());
  const open = async (repo: string) => req(reg, 'POST', `/v2/${repo}/blobs/uploads/`);
  const held: string[] = [];
  for (let i = 0; i < limits.namespaceUploads; i++) {
    const r = await open('team-a/app');
    t.equal(r.status, 202);
    held.push(r.headers.location as string);
  }
  const r = await open('team-a/other');
  t.equal(r.status, 429, 'team-a has all its sessions open');
  t.equal(r.code, 'TOOMANYREQUESTS');
  t.equal(r.headers['retry-after'], '60');
  t.match(r.message, /--registry-namespace-uploads/);
  // team-b pushes a blob through a session of its own, with the OCI client.
  const client = new OciClient({ ca: certs.caCertPem, cert: certs.adminCertPem, key: certs.adminKeyPem, retries: 0 });
  const data = randomBytes(700 * KiB);
  const pushed = await client.pushBlob(`127.0.0.1:${reg.port}/team-b/app`, data, sha(data), data.length);
  t.equal(pushed.digest, sha(data), 'team-b pushes meanwhile');
  // A cancelled session gives its slot back; so does a restart keep the count (sessions resume).
  t.equal((await req(reg, 'DELETE', held.pop()!)).status, 204);
  t.equal((await open('team-a/app')).status, 202, 'a slot again after a cancel');
  await reg.close();
  const again = await startRegistry(options(dataDir));
  t.teardown(() => again.close());
  t.equal((await req(again, 'POST', '/v2/team-a/app/blobs/uploads/')).status, 429, 'sessions found at start count');
  t.equal((await req(again, 'POST', '/v2/team-b/app/blobs/uploads/')).status, 202);
});

t.test('the OCI client closes a session whose PUT was refused (no slot held until GC)', async (t) => {
  // Two files of the namespace: each upload's PUT is refused before its body is read (the link
  // would be a third file), and the session stays resumable on the registry.
  const dataDir = path.join(tmp, 'client');
  const reg = await startRegistry(options(dataDir, { limits: { ...limits, namespaceFiles: 2 } }));
  t.teardown(() => reg.close());
  t.equal((await pushBlob(reg, 'team-a/app', Buffer.from('one'))).status, 201);
  t.equal((await pushBlob(reg, 'team-a/app', Buffer.from('two'))).status, 201);
  const client = new OciClient({ ca: certs.caCertPem, cert: certs.adminCertPem, key: certs.adminKeyPem, retries: 0 });
  for (let i = 0; i < limits.namespaceUploads + 2; i++) {
    const data = randomBytes(200 * KiB);
    const err = await client.pushBlob(`127.0.0.1:${reg.port}/team-a/app`, data, sha(data), data.length).catch((e: unknown) => e);
    t.ok(err instanceof OciError && err.code === 'DENIED', `push ${i + 1}: DENIED (${(err as Error).message})`);
  }
  t.same(dirEntries(dataDir, 'uploads'), [], 'no session left open');
  t.equal((await req(reg, 'POST', '/v2/team-a/app/blobs/uploads/')).status, 202, 'the namespace still has its slots');
});

t.test('files: links, manifests, tags and referrers are counted; tags per repository and referrers per subject are capped', async (t) => {
  const dataDir = path.join(tmp, 'files');
  const reg = await startRegistry(options(dataDir));
  t.teardown(() => reg.close());
  const config = Buffer.from('{}');
  t.equal((await pushBlob(reg, 'team-a/app', config)).status, 201);
  const manifest = (n: number, subject?: Subject) => ociManifest(config, { n: String(n) }, subject);
  const put = (ref: string, body: Buffer) => req(reg, 'PUT', `/v2/team-a/app/manifests/${ref}`, body, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
  for (let i = 0; i < limits.tagsPerRepository; i++) t.equal((await put(`v${i}`, manifest(i))).status, 201);
  let r = await put('one-more', manifest(99));
  t.equal(r.status, 403, `a tag past ${limits.tagsPerRepository} per repository`);
  t.equal(r.code, 'DENIED');
  t.equal((await req(reg, 'GET', '/v2/team-a/app/manifests/one-more')).status, 404);
  t.equal((await req(reg, 'GET', `/v2/team-a/app/manifests/${sha(manifest(99))}`)).status, 404, 'nor the manifest stored');
  t.equal((await put('v0', manifest(98))).status, 201, 'an existing tag still moves');
  const subject = { digest: sha(manifest(1)), size: manifest(1).length };
  for (let i = 0; i < limits.referrersPerSubject; i++) t.equal((await put(sha(manifest(200 + i, subject)), manifest(200 + i, subject))).status, 201);
  r = await put(sha(manifest(300, subject)), manifest(300, subject));
  t.equal(r.status, 403, `a referrer past ${limits.referrersPerSubject} per subject`);
  const refs = JSON.parse((await req(reg, 'GET', `/v2/team-a/app/referrers/${subject.digest}`)).text);
  t.equal(refs.manifests.length, limits.referrersPerSubject);
  // Files of the namespace: blobs linked one at a time until the limit.
  let refused: Res | undefined;
  for (let i = 0; i < limits.namespaceFiles && !refused; i++) {
    const res = await pushBlob(reg, `team-a/r${i % 3}`, Buffer.from(`blob ${i}`));
    if (res.status !== 201) refused = res;
  }
  t.equal(refused?.status, 403, `files past ${limits.namespaceFiles}`);
  t.match(refused?.message, /--registry-namespace-files/);
  t.equal((await pushBlob(reg, 'team-b/app', Buffer.from('b'))).status, 201, 'team-b is not counted with team-a');
  t.equal((await req(reg, 'DELETE', '/v2/team-a/app/manifests/v1')).status, 202, 'delete a tag');
  t.equal((await pushBlob(reg, 'team-a/r0', Buffer.from('after the delete'))).status, 201, 'its file is given back');
});

t.test('the data disk low: pushes are refused with 507 before they are written, pulls go on', async (t) => {
  const dataDir = path.join(tmp, 'disk');
  const st = fs.statfsSync(tmp);
  const free = st.bavail * st.bsize;
  // A guard just above what is free now: every write is refused, as it would be on a full disk.
  const reg = await startRegistry(options(dataDir, { limits: { ...limits, minFreeBytes: free + 1024 * 1024 * 1024 } }));
  t.teardown(() => reg.close());
  let r = await pushBlob(reg, 'team-a/app', Buffer.from('x'));
  t.equal(r.status, 507);
  t.equal(r.code, 'UNKNOWN');
  t.match(r.message, /--registry-min-free-mib/);
  r = await req(reg, 'POST', '/v2/team-a/app/blobs/uploads/');
  t.equal(r.status, 507, 'no upload session either');
  t.same(dirEntries(dataDir, 'uploads'), []);
  t.equal((await req(reg, 'GET', '/v2/')).status, 200, 'still serving');
});

t.test('referrers are answered in pages of at most 4 MiB (each may carry 4 MiB of annotations); the OCI client follows the Link', async (t) => {
  const dataDir = path.join(tmp, 'referrers');
  const reg = await startRegistry(options(dataDir, { limits: {} }));
  t.teardown(() => reg.close());
  const config = Buffer.from('{}');
  t.equal((await pushBlob(reg, 'team-a/app', config)).status, 201);
  const manifest = (annotations: Record<string, string>, subject?: Subject) => ociManifest(config, annotations, subject);
  const put = (body: Buffer) => req(reg, 'PUT', `/v2/team-a/app/manifests/${sha(body)}`, body, { 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' });
  const subject = manifest({ n: 'subject' });
  t.equal((await put(subject)).status, 201);
  const s = { digest: sha(subject), size: subject.length };
  for (let i = 0; i < 3; i++) t.equal((await put(manifest({ n: String(i), big: 'x'.repeat(1536 * KiB) }, s))).status, 201, `referrer ${i} with 1.5 MiB of annotations`);
  let r = await req(reg, 'GET', `/v2/team-a/app/referrers/${s.digest}`);
  t.equal(r.status, 200);
  t.equal(JSON.parse(r.text).manifests.length, 2, 'the first page: what fits 4 MiB');
  t.ok(r.text.length <= 4 * 1024 * KiB + 1024, `${r.text.length} bytes`);
  const link = /^<([^>]+)>; rel="next"$/.exec(String(r.headers.link))?.[1];
  t.ok(link, 'a Link to the next page');
  r = await req(reg, 'GET', link!);
  t.equal(JSON.parse(r.text).manifests.length, 1, 'the rest');
  t.notOk(r.headers.link, 'the last page');
  const client = new OciClient({ ca: certs.caCertPem, cert: certs.adminCertPem, key: certs.adminKeyPem, retries: 0 });
  t.equal((await client.referrers(`127.0.0.1:${reg.port}/team-a/app@${s.digest}`)).manifests.length, 3, 'the client reads all pages');
});

t.test('a data directory from before quotas (empty blob links): its usage is counted at start, and a delete gives it back', async (t) => {
  const dataDir = path.join(tmp, 'upgrade');
  let reg = await startRegistry(options(dataDir));
  const a = [randomBytes(500 * KiB), randomBytes(500 * KiB)];
  for (const b of a) t.equal((await pushBlob(reg, 'team-a/app', b)).status, 201);
  await reg.close();
  // As the code before left them: empty files.
  const links = path.join(dataDir, 'repositories', 'team-a', 'app', '_blobs');
  for (const f of fs.readdirSync(links)) fs.writeFileSync(path.join(links, f), '');
  reg = await startRegistry(options(dataDir));
  t.teardown(() => reg.close());
  t.equal((await pushBlob(reg, 'team-a/app', randomBytes(100 * KiB))).status, 403, '1000 KiB counted: 100 KiB more do not fit');
  t.equal(fs.readFileSync(path.join(links, sha(a[0]).slice(7)), 'utf8'), String(500 * KiB), 'the size written into the link');
  t.equal((await req(reg, 'DELETE', `/v2/team-a/app/blobs/${sha(a[0])}`)).status, 202);
  t.equal((await pushBlob(reg, 'team-a/app', randomBytes(400 * KiB))).status, 201, 'the delete gave its 500 KiB back');
});
