// The OCI client's low-speed limit (issue 15): a read that receives fewer than 16 KiB per
// stallTimeoutMs is cut with TIMEOUT, headers included (an upstream dripping a byte at a time kept
// the idle timeout from ever firing), while a reader that is slow itself is never cut. A cut read
// is not tried again inside the request, nor is a wait past one stall timeout taken there: the
// caller (a reconciler: Ready=False, then its work queue's backoff) sees it after one stall timeout,
// where 3 retries hid it for four.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { OciClient, OciError } from '../registry/client.js';

const blob = Buffer.alloc(4 << 20, 7);
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
const dripDigest = `sha256:${'d'.repeat(64)}`;
const open = new Set<http.ServerResponse>();
const hits = new Map<string, number>();
const srv = http.createServer((req, res) => {
  const what = req.url!.replace(/.*\/(manifests|blobs)\//, '');
  hits.set(what, (hits.get(what) ?? 0) + 1);
  open.add(res);
  res.on('close', () => open.delete(res));
  const drip = (head: boolean) => {
    const timer = setInterval(() => (head ? req.socket.write('x') : res.write('x')), 100);
    res.on('close', () => clearInterval(timer));
    req.socket.on('close', () => clearInterval(timer));
  };
  if (req.url!.includes('/manifests/drip')) {
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', 'content-length': '100000' });
    return drip(false);
  }
  if (req.url!.includes('/manifests/headers')) {
    req.socket.write('HTTP/1.1 200 OK\r\nx-slow: ');
    return drip(true);
  }
  if (req.url!.includes(`/blobs/${dripDigest}`)) {
    res.writeHead(200, { 'content-length': '100000' });
    return drip(false);
  }
  if (req.url!.includes('/manifests/busy')) return res.writeHead(429, { 'retry-after': '2' }).end();
  if (req.url!.includes('/manifests/flaky') && hits.get('flaky')! < 3) return res.writeHead(503).end();
  if (req.url!.includes(`/blobs/${digest}`)) return res.writeHead(200, { 'content-length': String(blob.length), 'docker-content-digest': digest }).end(blob);
  res.writeHead(404).end();
});

t.before(() => new Promise<void>((r) => srv.listen(0, '127.0.0.1', r)));
t.teardown(() => {
  for (const r of open) r.destroy();
  srv.closeAllConnections();
  srv.close();
});
const host = () => `127.0.0.1:${(srv.address() as AddressInfo).port}`;
const client = () => new OciClient({ insecureHttp: true, retries: 0, stallTimeoutMs: 500 });

for (const what of ['drip', 'headers'] as const) {
  t.test(`a response dripping its ${what === 'drip' ? 'body' : 'headers'} is cut`, async (t) => {
    const started = Date.now();
    const err = await client().getManifest(`${host()}/a/b:${what}`).then(() => undefined, (e) => e);
    t.ok(err instanceof OciError && err.code === 'TIMEOUT', `TIMEOUT (${err?.code}: ${err?.message})`);
    t.match(err?.message, /less than 16384 bytes in 500 ms/);
    t.ok(Date.now() - started < 3000, `cut after ${Date.now() - started} ms`);
  });
}

t.test('with retries: a cut read and a long Retry-After go to the caller at once, fast failures are retried', async (t) => {
  const c = new OciClient({ insecureHttp: true, retries: 3, retryBaseMs: 10, stallTimeoutMs: 500 });
  for (const [what, read] of [
    ['drip', () => c.getManifest(`${host()}/a/b:drip`)],
    ['headers', () => c.getManifest(`${host()}/a/b:headers`)],
    [dripDigest, () => c.getBlobBuffer(`${host()}/a/b`, dripDigest)],
  ] as const) {
    hits.clear();
    const started = Date.now();
    const err = await read().then(() => undefined, (e) => e);
    t.equal(err?.code, 'TIMEOUT', `${what}: ${err?.message}`);
    t.equal(hits.get(what), 1, `${what}: one request, not one per retry (nor a Range resume)`);
    t.ok(Date.now() - started < 1500, `${what}: failed after ${Date.now() - started} ms (one stall timeout: 500)`);
  }
  hits.clear();
  const started = Date.now();
  const busy = await c.getManifest(`${host()}/a/b:busy`).then(() => undefined, (e) => e);
  t.equal(busy?.status, 429, 'a Retry-After (2 s) longer than the stall timeout is not waited for in the request');
  t.equal(hits.get('busy'), 1);
  t.ok(Date.now() - started < 1000, `429 after ${Date.now() - started} ms`);
  hits.clear();
  const flaky = await c.getManifest(`${host()}/a/b:flaky`).then(() => undefined, (e) => e);
  t.equal(hits.get('flaky'), 3, 'two fast 503s retried within the request');
  t.equal(flaky?.code, 'NOT_FOUND', `then the answer (404): ${flaky?.message}`);
  c.close();
});

t.test('a reader slower than the limit is not cut: only the upstream counts', async (t) => {
  const stream = await client().getBlob(`${host()}/a/b`, digest);
  await new Promise((r) => setTimeout(r, 1500)); // the buffers fill, the reader is behind
  let n = 0;
  for await (const c of stream) {
    n += (c as Buffer).length;
    await new Promise((r) => setTimeout(r, 5));
  }
  t.equal(n, blob.length, 'the whole blob, verified');
});
