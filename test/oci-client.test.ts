// OciClient against Debian's docker-registry (no auth, htpasswd, token auth with a test token
// server) and against an in-test fake registry for what a real one cannot stage (wrong content,
// 429/503, dropped connections, redirects, token response variants).
import t from 'tap';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  OciClient,
  OciError,
  credentialsFromDockerConfig,
  parseChallenge,
  parseReference,
  type OciClientOptions,
} from '../registry/client.js';
import { type Distribution, startDistribution, startTokenServer, sha256, type TokenServer } from './helpers/distribution.js';
import { FakeRegistry, readAll } from './helpers/fake-registry.js';

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'oci-client-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

function client(t: Tap, opts: OciClientOptions = {}): OciClient {
  const c = new OciClient({ insecureHttp: true, retryBaseMs: 10, ...opts });
  t.teardown(() => c.close());
  return c;
}

async function fake(t: Tap, setup: Partial<FakeRegistry> = {}): Promise<FakeRegistry> {
  const f = Object.assign(new FakeRegistry(), setup);
  await f.start();
  t.teardown(() => f.close());
  return f;
}

async function rejectsCode(t: Tap, p: Promise<unknown>, code: string, msg: string): Promise<OciError | undefined> {
  try {
    await p;
    t.fail(`${msg}: expected ${code}, it succeeded`);
  } catch (e) {
    t.ok(e instanceof OciError, `${msg}: an OciError`);
    t.equal((e as OciError).code, code, `${msg}: ${(e as Error).message}`);
    return e as OciError;
  }
}

async function hashStream(s: Readable): Promise<{ digest: string; size: number; maxChunk: number }> {
  const h = createHash('sha256');
  let size = 0;
  let maxChunk = 0;
  for await (const c of s as AsyncIterable<Buffer>) {
    h.update(c);
    size += c.length;
    maxChunk = Math.max(maxChunk, c.length);
  }
  return { digest: `sha256:${h.digest('hex')}`, size, maxChunk };
}

/** A deterministic pseudo-random stream of `size` bytes in 64 KiB chunks, never held in memory. */
function generated(size: number, seed = 'x'): () => Readable {
  return () =>
    Readable.from(
      (function* () {
        const cipher = createCipheriv('aes-128-ctr', createHash('md5').update(seed).digest(), Buffer.alloc(16));
        for (let off = 0; off < size; off += 65536) yield cipher.update(Buffer.alloc(Math.min(65536, size - off)));
      })(),
    );
}

function imageManifest(config: { digest: string; size: number }, layers: { digest: string; size: number }[], extra: object = {}) {
  return {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
    ...extra,
  };
}

// ---- pure functions -------------------------------------------------------------------------

t.test('parseReference', async (t) => {
  t.same(parseReference('oci://127.0.0.1:5000/a/b/c:v1'), { host: '127.0.0.1:5000', repository: 'a/b/c', tag: 'v1', digest: undefined });
  const d = `sha256:${'a'.repeat(64)}`;
  t.same(parseReference(`ghcr.io/org/repo@${d}`), { host: 'ghcr.io', repository: 'org/repo', tag: undefined, digest: d });
  t.same(parseReference(`localhost/x:t@${d}`), { host: 'localhost', repository: 'x', tag: 't', digest: d });
  t.same(parseReference('ubuntu'), { host: 'docker.io', repository: 'library/ubuntu', tag: undefined, digest: undefined });
  t.same(parseReference('index.docker.io/acme/app:1'), { host: 'docker.io', repository: 'acme/app', tag: '1', digest: undefined });
  for (const bad of ['host:5000/UPPER', 'h.io/a:bad tag', 'h.io/a@sha256', 'h.io/-a', '']) {
    t.throws(() => parseReference(bad), { code: 'INVALID_REFERENCE' }, bad);
  }
});

t.test('parseChallenge', async (t) => {
  t.same(parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull,push"'), {
    scheme: 'bearer',
    realm: 'https://auth.docker.io/token',
    service: 'registry.docker.io',
    scope: 'repository:library/ubuntu:pull,push',
  });
  t.same(parseChallenge('Basic realm="Registry Realm"'), { scheme: 'basic', realm: 'Registry Realm' });
  t.equal(parseChallenge(['Basic realm="x"', 'Bearer realm="https://t/token",service=s'])?.scheme, 'bearer', 'Bearer wins');
  t.equal(parseChallenge('Negotiate abc'), undefined);
});

t.test('credentialsFromDockerConfig', async (t) => {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const creds = credentialsFromDockerConfig(
    JSON.stringify({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hubuser:hub:pass') },
        'ghcr.io': { username: 'gh', password: 'pat' },
        'https://registry.example.com:5000/v2/': { auth: b64('u:p'), username: 'ignored', password: 'ignored' },
        'acr.example.io': { identitytoken: 'refresh-me' },
        'tok.example.io': { registrytoken: 'bearer-me' },
      },
    }),
  );
  t.same(creds('docker.io'), { username: 'hubuser', password: 'hub:pass' }, 'docker hub alias; password may contain ":"');
  t.same(creds('registry-1.docker.io'), creds('docker.io'));
  t.same(creds('GHCR.io'), { username: 'gh', password: 'pat' });
  t.same(creds('registry.example.com:5000'), { username: 'u', password: 'p' }, 'auth wins over username/password');
  t.equal(creds('registry.example.com'), undefined, 'the port matters');
  t.same(creds('acr.example.io'), { identityToken: 'refresh-me' });
  t.same(creds('tok.example.io'), { registryToken: 'bearer-me' });
  t.equal(creds('quay.io'), undefined);
  const legacy = credentialsFromDockerConfig({ 'quay.io': { auth: b64('q:w') } });
  t.same(legacy('quay.io'), { username: 'q', password: 'w' }, 'legacy .dockercfg layout');
  t.same(credentialsFromDockerConfig(Buffer.from(JSON.stringify({ auths: { 'h.io': { username: 'a', password: 'b' } } })))('h.io'), { username: 'a', password: 'b' });
  t.throws(() => credentialsFromDockerConfig('{nope'), { code: 'INVALID_CONFIG' });
  t.throws(() => credentialsFromDockerConfig({ auths: { 'h.io': { auth: b64('no-colon') } } }), { code: 'INVALID_CONFIG' });
});

// ---- docker-registry, no auth ----------------------------------------------------------------

t.test('docker-registry without auth', async (t) => {
  const reg = await startDistribution();
  t.teardown(() => reg.stop());
  const c = client(t);
  const repo = `${reg.host}/ocm/test`;

  t.test('ping', async () => c.ping(reg.host));

  t.test('small blob push, HEAD, pull', async (t) => {
    const data = Buffer.from('hello snapshot');
    const pushed = await c.pushBlob(repo, data);
    t.same(pushed, { digest: sha256(data), size: data.length });
    t.ok(await c.blobExists(repo, pushed.digest));
    t.notOk(await c.blobExists(repo, sha256('not there')));
    t.same(await c.getBlobBuffer(repo, pushed.digest), data);
    t.same(await c.pushBlob(repo, data), pushed, 'second push is a no-op');
    await rejectsCode(t, c.getBlobBuffer(repo, pushed.digest, 4), 'TOO_LARGE', 'maxBytes');
    await rejectsCode(t, c.getBlob(repo, sha256('missing')), 'BLOB_UNKNOWN', 'unknown blob');
    const empty = await c.pushBlob(repo, Buffer.alloc(0));
    t.same(await c.getBlobBuffer(repo, empty.digest), Buffer.alloc(0), 'empty blob');
  });

  t.test('20 MB blobs stream both ways', async (t) => {
    const size = 20 << 20;
    const src = generated(size, 'big');
    const expected = await hashStream(src());
    const rss0 = process.memoryUsage().rss;
    const mono = await c.pushBlob(repo, src, expected.digest, size);
    t.same(mono, { digest: expected.digest, size }, 'known digest and size: POST + streaming PUT');
    const chunked = await c.pushBlob(`${reg.host}/ocm/chunked`, src(), undefined, undefined, { chunkSize: 4 << 20 });
    t.same(chunked, { digest: expected.digest, size }, 'one-shot stream of unknown size: chunked PATCH');
    const pulled = await hashStream(await c.getBlob(`${reg.host}/ocm/chunked`, expected.digest));
    t.same({ digest: pulled.digest, size: pulled.size }, { digest: expected.digest, size });
    t.ok(pulled.maxChunk <= 1 << 20, `pulled in chunks of at most ${pulled.maxChunk} bytes`);
    t.comment(`rss grew by ${((process.memoryUsage().rss - rss0) / 1048576).toFixed(1)} MiB while moving 3 x 20 MiB`);
  });

  t.test('declared digest or size that does not match the data', async (t) => {
    const data = Buffer.from('abc');
    await rejectsCode(t, c.pushBlob(repo, data, sha256('abd')), 'DIGEST_MISMATCH', 'buffer');
    await rejectsCode(t, c.pushBlob(repo, () => Readable.from([data]), sha256('abd'), 3), 'DIGEST_MISMATCH', 'stream, known size');
    await rejectsCode(t, c.pushBlob(repo, () => Readable.from([data]), sha256('abc'), 4), 'SIZE_MISMATCH', 'stream shorter than declared');
    await rejectsCode(t, c.pushBlob(repo, Readable.from([data]), sha256('abd')), 'DIGEST_MISMATCH', 'chunked stream');
    t.notOk(await c.blobExists(repo, sha256('abd')));
  });

  t.test('manifests by tag and digest, HEAD, index', async (t) => {
    const layer = await c.pushBlob(repo, Buffer.from('layer'));
    const config = await c.pushBlob(repo, Buffer.from('{}'));
    const m = imageManifest(config, [layer], { annotations: { a: 'b' } });
    const { digest } = await c.putManifest(`${repo}:v1`, m, OCI_MANIFEST);
    const got = await c.getManifest(`${repo}:v1`);
    t.equal(got.digest, digest);
    t.equal(got.mediaType, OCI_MANIFEST);
    t.same(got.manifest, m);
    t.same(got.body, Buffer.from(JSON.stringify(m)), 'exact bytes');
    t.equal((await c.getManifest(`${repo}@${digest}`)).digest, digest, 'by digest (verified)');
    t.same(await c.headManifest(`${repo}:v1`), { digest, mediaType: OCI_MANIFEST, size: got.body.length });
    t.equal(await c.headManifest(`${repo}:nope`), undefined);
    await rejectsCode(t, c.getManifest(`${repo}:nope`), 'MANIFEST_UNKNOWN', 'unknown tag');
    const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_MANIFEST, digest, size: got.body.length }] }, null, 2));
    const idx = await c.putManifest(`${repo}:index`, body, OCI_INDEX);
    t.equal(idx.digest, sha256(body), 'Buffer manifests are stored byte for byte');
    t.equal((await c.getManifest(`${repo}:index`)).mediaType, OCI_INDEX);
    await rejectsCode(t, c.putManifest(`${repo}:bad`, imageManifest(config, [{ digest: sha256('absent'), size: 6 }]), OCI_MANIFEST), 'MANIFEST_BLOB_UNKNOWN', 'missing layer');
    await rejectsCode(t, c.putManifest(`${repo}@${sha256('other')}`, m, OCI_MANIFEST), 'DIGEST_MISMATCH', 'digest reference of other content');
  });

  t.test('tags, delete', async (t) => {
    const r = `${reg.host}/ocm/tags`;
    const config = await c.pushBlob(r, Buffer.from('{}'));
    const digests: string[] = [];
    for (let i = 0; i < 25; i++) {
      const layer = await c.pushBlob(r, Buffer.from(`layer ${i}`));
      digests.push((await c.putManifest(`${r}:t${String(i).padStart(2, '0')}`, imageManifest(config, [layer]), OCI_MANIFEST)).digest);
    }
    const tags = await c.listTags(r, { pageSize: 10 });
    t.same([...tags].sort(), Array.from({ length: 25 }, (_, i) => `t${String(i).padStart(2, '0')}`));
    await c.deleteManifest(`${r}:t03`);
    t.equal(await c.headManifest(`${r}:t03`), undefined, 'deleted by tag');
    await c.deleteManifest(`${r}@${digests[4]}`);
    await rejectsCode(t, c.getManifest(`${r}@${digests[4]}`), 'MANIFEST_UNKNOWN', 'deleted by digest');
    t.notOk((await c.listTags(r)).includes('t03'));
    await rejectsCode(t, c.deleteManifest(`${r}:t03`), 'MANIFEST_UNKNOWN', 'delete twice');
    await rejectsCode(t, c.listTags(`${reg.host}/no/such/repo`), 'NAME_UNKNOWN', 'unknown repository');
  });

  t.test('cross-repository mount', async (t) => {
    const data = randomBytes(1000);
    const src = await c.pushBlob(`${reg.host}/mount/src`, data);
    const res = await c.pushBlob(`${reg.host}/mount/dst`, () => Readable.from([data]), src.digest, data.length, { mountFrom: `${reg.host}/mount/src` });
    t.same(res, src);
    t.same(await c.getBlobBuffer(`${reg.host}/mount/dst`, src.digest), data);
  });

  t.test('referrers (tag schema fallback: this registry has no referrers API)', async (t) => {
    const r = `${reg.host}/ocm/refs`;
    const config = await c.pushBlob(r, Buffer.from('{}'));
    const layer = await c.pushBlob(r, Buffer.from('subject'));
    const subject = await c.putManifest(`${r}:subject`, imageManifest(config, [layer]), OCI_MANIFEST);
    t.same((await c.referrers(`${r}:subject`)).manifests, [], 'none yet');
    const refs = [];
    for (const artifactType of ['application/vnd.example.signature', 'application/vnd.example.sbom']) {
      const l = await c.pushBlob(r, Buffer.from(artifactType));
      const body = Buffer.from(JSON.stringify(imageManifest(config, [l], { subject: { mediaType: OCI_MANIFEST, digest: subject.digest, size: 1 } })));
      const { digest } = await c.putManifest(`${r}:${artifactType.split('.').pop()}`, body, OCI_MANIFEST);
      refs.push({ mediaType: OCI_MANIFEST, digest, size: body.length, artifactType });
    }
    await c.putManifest(`${r}:${subject.digest.replace(':', '-')}`, { schemaVersion: 2, mediaType: OCI_INDEX, manifests: refs }, OCI_INDEX);
    const all = await c.referrers(`${r}@${subject.digest}`);
    t.equal(all.mediaType, OCI_INDEX);
    t.same(all.manifests, refs);
    t.same((await c.referrers(`${r}:subject`, 'application/vnd.example.sbom')).manifests, [refs[1]], 'filtered by artifactType');
  });
});

// ---- docker-registry with htpasswd -----------------------------------------------------------

t.test('docker-registry with htpasswd basic auth', async (t) => {
  const reg = await startDistribution({ htpasswd: { alice: 's3cret pass' } });
  t.teardown(() => reg.stop());
  const config = { auths: { [`http://${reg.host}`]: { auth: Buffer.from('alice:s3cret pass').toString('base64') } } };
  const c = client(t, { credentials: credentialsFromDockerConfig(config) });
  const repo = `${reg.host}/secure/repo`;
  await c.ping(reg.host);
  const data = randomBytes(3000);
  const { digest } = await c.pushBlob(repo, data);
  t.same(await c.getBlobBuffer(repo, digest), data);
  await c.putManifest(`${repo}:v1`, imageManifest(await c.pushBlob(repo, Buffer.from('{}')), [{ digest, size: data.length }]), OCI_MANIFEST);
  t.same(await c.listTags(repo), ['v1']);

  await rejectsCode(t, client(t).getBlobBuffer(repo, digest), 'UNAUTHORIZED', 'no credentials');
  await rejectsCode(t, client(t, { credentials: () => ({ username: 'alice', password: 'wrong' }) }).getManifest(`${repo}:v1`), 'UNAUTHORIZED', 'wrong password');
  await rejectsCode(t, client(t, { credentials: () => ({ username: 'alice', password: 'wrong' }) }).ping(reg.host), 'UNAUTHORIZED', 'ping checks credentials');
});

// ---- docker-registry with token auth ---------------------------------------------------------

t.test('docker-registry with token auth (Bearer flow, JWTs from a test token server)', async (t) => {
  const tokens: TokenServer = await startTokenServer({ users: { bob: 'pw' }, dir: tmp, anonymousPull: true });
  t.teardown(() => tokens.close());
  const reg: Distribution = await startDistribution({ token: tokens });
  t.teardown(() => reg.stop());
  const c = client(t, { credentials: (h) => (h === reg.host ? { username: 'bob', password: 'pw' } : undefined) });
  const repo = `${reg.host}/tok/a`;

  await c.ping(reg.host);
  const data = randomBytes(5000);
  const { digest } = await c.pushBlob(repo, data);
  const before = tokens.requests.length;
  t.same(await c.getBlobBuffer(repo, digest), data);
  t.same(await c.getBlobBuffer(repo, digest), data);
  t.ok(await c.blobExists(repo, digest));
  t.equal(tokens.requests.length, before, 'pull token cached per scope');
  t.ok(tokens.requests.every((r) => r.account === 'bob'), 'token requests carry the basic credentials');

  const mounted = await c.pushBlob(`${reg.host}/tok/b`, data, undefined, undefined, { mountFrom: repo });
  t.equal(mounted.digest, digest);
  t.ok(
    tokens.requests.some((r) => r.scopes.includes(`repository:tok/b:pull,push`) && r.scopes.includes('repository:tok/a:pull')),
    'mount asks for both repositories in one token',
  );
  await c.putManifest(`${repo}:v1`, imageManifest(await c.pushBlob(repo, Buffer.from('{}')), [{ digest, size: data.length }]), OCI_MANIFEST);
  await c.deleteManifest(`${repo}:v1`);
  t.equal(await c.headManifest(`${repo}:v1`), undefined);

  const anon = client(t, { retries: 0 });
  t.same(await anon.getBlobBuffer(repo, digest), data, 'anonymous pull with an anonymous token');
  await rejectsCode(t, anon.pushBlob(repo, Buffer.from('nope')), 'UNAUTHORIZED', 'anonymous push');
  await rejectsCode(t, client(t, { credentials: () => ({ username: 'bob', password: 'bad' }) }).getBlobBuffer(repo, digest), 'UNAUTHORIZED', 'token endpoint refuses');
});

// ---- fake registry: auth protocol details ----------------------------------------------------

t.test('Bearer challenge -> anonymous token (access_token) -> retry, cached per scope', async (t) => {
  const f = await fake(t, { auth: { scheme: 'bearer', tokenField: 'access_token' } });
  const c = client(t);
  const data = Buffer.from('x');
  f.blobs.set(sha256(data), data);
  t.same(await c.getBlobBuffer(`${f.host}/a/b`, sha256(data)), data);
  t.same(await c.getBlobBuffer(`${f.host}/a/b`, sha256(data)), data);
  t.equal(f.tokenRequests.length, 1, 'one token for the pull scope');
  t.equal(f.tokenRequests[0].query.get('service'), 'fake');
  t.same(f.tokenRequests[0].query.getAll('scope'), ['repository:a/b:pull']);
  t.equal(f.tokenRequests[0].authorization, undefined, 'anonymous');
  await c.pushBlob(`${f.host}/a/b`, Buffer.from('y'));
  t.equal(f.tokenRequests.length, 2, 'a new token for the push scope');
  t.same(f.tokenRequests[1].query.getAll('scope'), ['repository:a/b:pull,push']);
  t.same(await c.getBlobBuffer(`${f.host}/c/d`, sha256(data)), data);
  t.equal(f.tokenRequests.length, 3, 'and for another repository');
  t.equal(f.count('GET /v2/c/d/'), 1, 'known realm: the token is fetched before the request, no 401 round trip');
  f.log.length = 0;
  await c.getBlobBuffer(`${f.host}/c/d`, sha256(data));
  t.same(f.log, [`GET /v2/c/d/blobs/${sha256(data)}`], 'cached token');
});

t.test('token endpoint variants: basic credentials, identity token, registry token, Basic challenge', async (t) => {
  const data = Buffer.from('z');
  const f = await fake(t, { auth: { scheme: 'bearer', users: { u: 'p' } } });
  f.blobs.set(sha256(data), data);
  await client(t, { credentials: () => ({ username: 'u', password: 'p' }) }).getBlobBuffer(`${f.host}/r`, sha256(data));
  t.equal(f.tokenRequests[0].authorization, `Basic ${Buffer.from('u:p').toString('base64')}`);
  await rejectsCode(t, client(t, { credentials: () => ({ username: 'u', password: 'x' }) }).getBlobBuffer(`${f.host}/r`, sha256(data)), 'UNAUTHORIZED', 'bad password');

  await client(t, { credentials: () => ({ identityToken: 'refresh' }) }).getBlobBuffer(`${f.host}/r`, sha256(data));
  const oauth = f.tokenRequests[f.tokenRequests.length - 1];
  t.equal(oauth.method, 'POST');
  t.equal(oauth.form?.get('grant_type'), 'refresh_token');
  t.equal(oauth.form?.get('refresh_token'), 'refresh');
  t.equal(oauth.form?.get('scope'), 'repository:r:pull');

  const n = f.tokenRequests.length;
  await rejectsCode(t, client(t, { credentials: () => ({ registryToken: 'not-issued' }) }).getBlobBuffer(`${f.host}/r`, sha256(data)), 'UNAUTHORIZED', 'rejected registry token');
  t.equal(f.tokenRequests.length, n, 'a registry token is used as is, never exchanged');
  t.equal(f.authHeaders[f.authHeaders.length - 1], 'Bearer not-issued');

  const b = await fake(t, { auth: { scheme: 'basic', users: { u: 'p' } } });
  b.blobs.set(sha256(data), data);
  t.same(await client(t, { credentials: () => ({ username: 'u', password: 'p' }) }).getBlobBuffer(`${b.host}/r`, sha256(data)), data, 'Basic challenge');
  await rejectsCode(t, client(t).getBlobBuffer(`${b.host}/r`, sha256(data)), 'UNAUTHORIZED', 'Basic challenge without credentials');
});

t.test('redirected blob downloads drop the Authorization header', async (t) => {
  const data = randomBytes(100);
  const cdn = await fake(t);
  const seen: (string | undefined)[] = [];
  cdn.hook = (req, res) => {
    seen.push(req.headers.authorization);
    res.writeHead(200, { 'content-length': String(data.length) }).end(data);
    return true;
  };
  const f = await fake(t, { auth: { scheme: 'bearer' } });
  f.hook = (req, res, url) => {
    if (!url.pathname.includes('/blobs/sha256:') || !req.headers.authorization) return false;
    res.writeHead(307, { location: `http://${cdn.host}/storage/blob?sig=1` }).end();
    return true;
  };
  t.same(await client(t).getBlobBuffer(`${f.host}/r`, sha256(data)), data);
  t.same(cdn.log, ['GET /storage/blob?sig=1'], 'followed the redirect');
  t.same(seen, [undefined], 'no Authorization sent to the other host');
});

// ---- fake registry: integrity ----------------------------------------------------------------

t.test('digest mismatch on pulled blobs and manifests', async (t) => {
  const f = await fake(t);
  const c = client(t);
  const good = randomBytes(300_000);
  const d = sha256(good);
  f.corrupt.set(d, Buffer.concat([good.subarray(0, 299_999), Buffer.from([good[299_999] ^ 1])]));
  const s = await c.getBlob(`${f.host}/r`, d);
  let got = 0;
  const err = await (async () => {
    try {
      for await (const chunk of s as AsyncIterable<Buffer>) got += chunk.length;
    } catch (e) {
      return e as OciError;
    }
  })();
  t.equal(err?.code, 'DIGEST_MISMATCH', 'the stream fails at its end');
  t.equal(got, 300_000, 'after streaming the data');
  await rejectsCode(t, c.getBlobBuffer(`${f.host}/r`, d), 'DIGEST_MISMATCH', 'getBlobBuffer');

  const body = Buffer.from('{"schemaVersion":2}');
  f.manifests.set(`r:${sha256('{"schemaVersion":3}')}`, { type: OCI_MANIFEST, body });
  await rejectsCode(t, c.getManifest(`${f.host}/r@${sha256('{"schemaVersion":3}')}`), 'DIGEST_MISMATCH', 'manifest by digest');
  f.hook = (req, res, url) => {
    if (!url.pathname.endsWith('/manifests/lying')) return false;
    res.writeHead(200, { 'content-type': OCI_MANIFEST, 'docker-content-digest': sha256('other') }).end(body);
    return true;
  };
  await rejectsCode(t, c.getManifest(`${f.host}/r:lying`), 'DIGEST_MISMATCH', 'manifest whose Docker-Content-Digest lies');
  f.hook = (req, res, url) => {
    if (!url.pathname.endsWith('/manifests/big')) return false;
    res.writeHead(200, { 'content-type': OCI_MANIFEST, 'content-length': String(5 << 20) }).end(Buffer.alloc(5 << 20));
    return true;
  };
  await rejectsCode(t, c.getManifest(`${f.host}/r:big`), 'TOO_LARGE', 'manifest over 4 MiB');
});

// ---- fake registry: retries ------------------------------------------------------------------

t.test('retries 503 and 429 (honouring Retry-After), not 4xx; gives up after `retries`', async (t) => {
  const f = await fake(t);
  const data = Buffer.from('retry me');
  f.blobs.set(sha256(data), data);
  let fails = 2;
  f.hook = (req, res) => {
    if (fails-- > 0) {
      res.writeHead(503).end('busy');
      return true;
    }
    return false;
  };
  t.same(await client(t).getBlobBuffer(`${f.host}/r`, sha256(data)), data);
  t.equal(f.count('GET /v2/r/blobs'), 3, '2 x 503, then 200');

  f.log.length = 0;
  let limited = 1;
  f.hook = (req, res) => {
    if (limited-- > 0) {
      res.writeHead(429, { 'retry-after': '1', 'content-type': 'application/json' }).end('{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}');
      return true;
    }
    return false;
  };
  const t0 = Date.now();
  t.same(await client(t).getManifest(`${f.host}/r:none`).catch((e: OciError) => e.code), 'MANIFEST_UNKNOWN');
  t.ok(Date.now() - t0 >= 950, `waited ${Date.now() - t0} ms for Retry-After: 1`);
  t.equal(f.count('GET /v2/r/manifests/none'), 2, '429 then 404; the 404 is not retried');

  f.log.length = 0;
  f.hook = (req, res) => {
    res.writeHead(502).end();
    return true;
  };
  const err = await rejectsCode(t, client(t, { retries: 2 }).headManifest(`${f.host}/r:x`), 'HTTP_502', 'persistent 502');
  t.equal(err?.retryable, true);
  t.equal(f.log.length, 3, '1 + 2 retries');

  f.log.length = 0;
  f.hook = (req, res) => {
    res.writeHead(429, { 'retry-after': '3600' }).end();
    return true;
  };
  await rejectsCode(t, client(t).getManifest(`${f.host}/r:x`), 'TOOMANYREQUESTS', 'Retry-After beyond a minute');
  t.equal(f.log.length, 1, 'not retried');
});

t.test('connection errors: reset, refused, timeout, cut mid-blob (resumed with Range)', async (t) => {
  const f = await fake(t);
  const c = client(t);
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }));
  f.manifests.set('r:v', { type: OCI_INDEX, body });
  let resets = 1;
  f.hook = (req) => {
    if (resets-- > 0) {
      req.socket.destroy();
      return true;
    }
    return false;
  };
  t.equal((await c.getManifest(`${f.host}/r:v`)).digest, sha256(body), 'socket hang up retried');

  const closed = await fake(t);
  const host = closed.host;
  await closed.close();
  const refused = await rejectsCode(t, client(t, { retries: 1 }).ping(host), 'NETWORK', 'connection refused');
  t.equal(refused?.retryable, true);

  f.hook = () => true; // never answers
  const slow = await rejectsCode(t, client(t, { retries: 1, timeoutMs: 200 }).getManifest(`${f.host}/r:v`), 'TIMEOUT', 'no answer');
  t.equal(slow?.retryable, true);

  const blob = randomBytes(1 << 20);
  f.blobs.set(sha256(blob), blob);
  let cuts = 2;
  const ranges: (string | undefined)[] = [];
  f.hook = (req, res, url) => {
    if (!url.pathname.includes('/blobs/')) return false;
    ranges.push(req.headers.range);
    if (cuts-- <= 0) return false;
    const start = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
    res.writeHead(start ? 206 : 200, { 'content-length': String(blob.length - start), ...(start ? { 'content-range': `bytes ${start}-${blob.length - 1}/${blob.length}` } : {}) });
    res.write(blob.subarray(start, start + 300_000), () => setTimeout(() => res.destroy(), 20));
    return true;
  };
  t.same(await c.getBlobBuffer(`${f.host}/r`, sha256(blob)), blob, 'complete and verified after two cuts');
  t.equal(ranges[0], undefined);
  t.match(ranges[1], /^bytes=\d+-$/, 'resumed with a Range request');
  t.ok(Number(/\d+/.exec(ranges[2] ?? '')?.[0]) > Number(/\d+/.exec(ranges[1] ?? '')?.[0]), 'from where it stopped');
});

t.test('uploads: a failed PUT restarts the upload only when the data can be replayed', async (t) => {
  const f = await fake(t);
  const data = randomBytes(10_000);
  let fails = 1;
  f.hook = async (req, res, url) => {
    if (req.method !== 'PUT' || !url.pathname.includes('/uploads/') || fails-- <= 0) return false;
    await readAll(req);
    res.writeHead(503).end();
    return true;
  };
  t.same(await client(t).pushBlob(`${f.host}/r`, data), { digest: sha256(data), size: data.length });
  t.equal(f.count('POST /v2/r/blobs/uploads/'), 2, 'Buffer: the whole upload was restarted');

  f.log.length = 0;
  fails = 1;
  const other = randomBytes(10_000);
  t.same(await client(t).pushBlob(`${f.host}/r`, () => Readable.from([other]), sha256(other), other.length), { digest: sha256(other), size: other.length });
  t.equal(f.count('POST /v2/r/blobs/uploads/'), 2, 'stream factory: restarted with a fresh stream');

  f.log.length = 0;
  fails = 1;
  const third = randomBytes(10_000);
  const err = await rejectsCode(t, client(t).pushBlob(`${f.host}/r`, Readable.from([third]), sha256(third), third.length), 'HTTP_503', 'one-shot stream');
  t.equal(err?.retryable, true, 'the caller may retry with new data');
  t.equal(f.count('POST /v2/r/blobs/uploads/'), 1, 'not restarted: the stream is consumed');
  t.equal(f.count('PUT'), 1);
});

t.test('uploads: a failed chunk of a one-shot stream resumes from the upload status', async (t) => {
  const f = await fake(t);
  const data = randomBytes(3 * 65536 + 100);
  let patches = 0;
  f.hook = async (req, res, url) => {
    if (req.method !== 'PATCH' || ++patches !== 2) return false;
    await readAll(req); // chunk 2 is lost
    res.writeHead(500).end();
    return true;
  };
  const res = await client(t).pushBlob(`${f.host}/r`, Readable.from([data]), undefined, undefined, { chunkSize: 65536 });
  t.same(res, { digest: sha256(data), size: data.length });
  t.same(f.blobs.get(sha256(data)), data);
  t.equal(f.count('POST'), 1, 'same upload session');
  t.equal(f.log.filter((l) => l.startsWith('GET /v2/r/blobs/uploads/')).length, 1, 'asked for the upload status once');
  t.equal(f.count('PATCH'), 5, '4 chunks + 1 resend');
});

// ---- fake registry: streaming, pagination, referrers API --------------------------------------

t.test('blobs stream: data flows before the transfer completes', async (t) => {
  const f = await fake(t);
  const size = 4 << 20;
  const blob = randomBytes(size);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  f.hook = async (req, res, url) => {
    if (req.method !== 'GET' || !url.pathname.includes('/blobs/sha256:')) return false;
    res.writeHead(200, { 'content-length': String(size) });
    res.write(blob.subarray(0, 1 << 20));
    await released; // the rest only after the client has seen data
    res.end(blob.subarray(1 << 20));
    return true;
  };
  const s = await client(t).getBlob(`${f.host}/r`, sha256(blob));
  const it = (s as AsyncIterable<Buffer>)[Symbol.asyncIterator]();
  const first = await Promise.race([it.next(), new Promise<never>((_, rej) => setTimeout(() => rej(new Error('no data before the end')), 5000))]);
  t.ok(first.value.length > 0, 'pull: first bytes arrive while the server holds back the rest');
  release();
  let n = first.value.length;
  for (let r = await it.next(); !r.done; r = await it.next()) n += r.value.length;
  t.equal(n, size);

  f.hook = undefined;
  let received = 0;
  f.hook = async (req, res, url) => {
    if (req.method !== 'PUT' || !url.pathname.includes('/uploads/')) return false;
    const parts: Buffer[] = [];
    for await (const c of req) {
      parts.push(c as Buffer);
      received += (c as Buffer).length;
    }
    const all = Buffer.concat(parts);
    f.blobs.set(sha256(all), all);
    res.writeHead(201, { 'docker-content-digest': sha256(all) }).end();
    return true;
  };
  const data = randomBytes(size);
  let early = false;
  const source = () =>
    Readable.from(
      (async function* () {
        for (let off = 0; off < size; off += 1 << 20) {
          if (off === size - (1 << 20)) {
            const until = Date.now() + 5000;
            while (received < 1 << 20 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
            early = received >= 1 << 20;
          }
          yield data.subarray(off, off + (1 << 20));
        }
      })(),
    );
  await client(t).pushBlob(`${f.host}/r`, source, sha256(data), size);
  t.ok(received >= size, 'push complete');
  t.same(f.blobs.get(sha256(data)), data);
  t.ok(early, 'push: the registry had bytes before the source produced its last chunk');
});

t.test('tag list pagination follows Link headers', async (t) => {
  const f = await fake(t);
  const tags = Array.from({ length: 23 }, (_, i) => `v${String(i).padStart(2, '0')}`);
  for (const tag of tags) f.manifests.set(`a/b:${tag}`, { type: OCI_MANIFEST, body: Buffer.from('{}') });
  t.same(await client(t).listTags(`${f.host}/a/b`, { pageSize: 5 }), tags);
  t.equal(f.count('GET /v2/a/b/tags/list'), 5, '5 pages');
  t.ok(f.log.some((l) => l.includes('last=v04')));
});

t.test('referrers API with pages, filtered on the client when the registry did not', async (t) => {
  const f = await fake(t);
  const subject = sha256('subject');
  const refs = [
    { mediaType: OCI_MANIFEST, digest: sha256('1'), size: 1, artifactType: 'a/sig' },
    { mediaType: OCI_MANIFEST, digest: sha256('2'), size: 1, artifactType: 'a/sbom' },
    { mediaType: OCI_MANIFEST, digest: sha256('3'), size: 1, artifactType: 'a/sig' },
  ];
  f.referrers.set(subject, refs);
  const c = client(t);
  t.same((await c.referrers(`${f.host}/r@${subject}`)).manifests, refs);
  t.same((await c.referrers(`${f.host}/r@${subject}`, 'a/sig')).manifests, [refs[0], refs[2]]);
  t.ok(f.log.some((l) => l.includes('artifactType=a%2Fsig')), 'filter passed to the registry');
});

// ---- the snapshot client's tuning: single-POST uploads, content cache ---------------------------

t.test('single-POST uploads: one request on a registry that supports them, POST + PUT on one that does not', async (t) => {
  const { startRegistry } = await import('../registry/server.js');
  const { ensureCerts } = await import('../certs/index.js');
  const certs = await ensureCerts(path.join(tmp, 'single-post-certs'));
  const seen: string[] = [];
  const reg = await startRegistry({
    dataDir: path.join(tmp, 'single-post-data'),
    port: 0,
    host: '127.0.0.1',
    tls: { key: certs.serverKeyPem, cert: certs.serverCertPem, clientCA: certs.caCertPem },
    tokenSecret: randomBytes(32),
    logLevel: 'silent',
    instrument: (app) => app.addHook('onRequest', async (req) => void seen.push(`${req.method} ${req.url.split('?')[0]}`)),
  });
  t.teardown(() => reg.close());
  const ours = new OciClient({ ca: certs.caCertPem, cert: certs.adminCertPem, key: certs.adminKeyPem, singlePostMaxBytes: 1 << 20 });
  t.teardown(() => ours.close());
  const host = `127.0.0.1:${reg.port}`;
  const small = randomBytes(10_000);
  const pushed = await ours.pushBlob(`${host}/sp/a`, small);
  t.same(seen, ['POST /v2/sp/a/blobs/uploads/'], 'one POST with digest and content');
  t.same(pushed, { digest: sha256(small), size: small.length });
  t.same(await ours.getBlobBuffer(`${host}/sp/a`, pushed.digest), small, 'stored and readable');
  seen.length = 0;
  await ours.pushBlob(`${host}/sp/a`, small);
  t.same(seen, ['POST /v2/sp/a/blobs/uploads/'], 'a repeat push is one request too');
  seen.length = 0;
  const big = randomBytes((1 << 20) + 1);
  await ours.pushBlob(`${host}/sp/a`, big);
  t.same(seen, ['HEAD /v2/sp/a/blobs/' + sha256(big), 'POST /v2/sp/a/blobs/uploads/', 'PUT /v2/sp/a/blobs/uploads/' + seen[2]?.split('/').pop()], 'above the limit: HEAD, POST, PUT');
  await rejectsCode(t, ours.pushBlob(`${host}/sp/a`, small, sha256(Buffer.from('other'))), 'DIGEST_MISMATCH', 'a wrong digest is still refused before sending');

  const f = await fake(t);
  const c = client(t, { singlePostMaxBytes: 1 << 20 });
  await c.pushBlob(`${f.host}/a/b`, Buffer.from('one'));
  t.equal(f.count('POST /v2/a/b/blobs/uploads/'), 1);
  t.equal(f.count('PUT /v2/a/b/blobs/uploads/'), 1, 'a 202 answer gets the content with PUT');
  t.same(f.blobs.get(sha256(Buffer.from('one'))), Buffer.from('one'));
  f.log.length = 0;
  await c.pushBlob(`${f.host}/a/b`, Buffer.from('two'));
  t.equal(f.log[0], `HEAD /v2/a/b/blobs/${sha256(Buffer.from('two'))}`, 'and that registry is not asked again: the usual HEAD first');
});

t.test('content cache: content read or written by digest is served from memory, within its budget', async (t) => {
  const f = await fake(t);
  const c = client(t, { contentCacheBytes: 64 << 10 });
  const data = randomBytes(1000);
  const { digest } = await c.pushBlob(`${f.host}/a/b`, data);
  f.log.length = 0;
  t.same(await c.getBlobBuffer(`${f.host}/a/b`, digest), data, 'a blob it pushed');
  t.same(f.log, [], 'without a request');
  await c.getBlobBuffer(`${f.host}/other/repo`, digest);
  t.same(f.log, [`GET /v2/other/repo/blobs/${digest}`], 'never for another repository');

  const other = randomBytes(2000);
  f.blobs.set(sha256(other), other);
  f.log.length = 0;
  t.same(await c.getBlobBuffer(`${f.host}/a/b`, sha256(other)), other);
  t.same(await c.getBlobBuffer(`${f.host}/a/b`, sha256(other)), other);
  t.equal(f.log.length, 1, 'a blob it read: fetched once');

  const manifest = imageManifest(await c.pushBlob(`${f.host}/a/b`, Buffer.from('{}')), [{ digest, size: data.length }]);
  const { digest: md } = await c.putManifest(`${f.host}/a/b:v1`, manifest, OCI_MANIFEST);
  f.log.length = 0;
  t.same((await c.getManifest(`${f.host}/a/b@${md}`)).manifest, manifest, 'a manifest by digest');
  t.same(f.log, [], 'without a request');
  await c.getManifest(`${f.host}/a/b:v1`);
  t.equal(f.log.length, 1, 'by tag always asks the registry');
  await c.deleteManifest(`${f.host}/a/b@${md}`);
  await rejectsCode(t, c.getManifest(`${f.host}/a/b@${md}`), 'MANIFEST_UNKNOWN', 'a manifest it deleted is gone');

  const huge = randomBytes(70 << 10);
  f.blobs.set(sha256(huge), huge);
  await c.getBlobBuffer(`${f.host}/a/b`, sha256(huge));
  f.log.length = 0;
  await c.getBlobBuffer(`${f.host}/a/b`, sha256(huge));
  t.equal(f.log.length, 1, 'more than the budget: not kept');
  for (let i = 0; i < 80; i++) await c.pushBlob(`${f.host}/a/b`, randomBytes(1000));
  f.log.length = 0;
  await c.getBlobBuffer(`${f.host}/a/b`, digest);
  t.equal(f.log.length, 1, 'the least recently used go first when the budget is spent');

  const plain = client(t);
  await plain.pushBlob(`${f.host}/a/b`, data);
  f.log.length = 0;
  await plain.getBlobBuffer(`${f.host}/a/b`, digest);
  t.equal(f.log.length, 1, 'off by default');
});
