// The OCI client's low-speed limit (issue 15): a read that receives fewer than 16 KiB per
// stallTimeoutMs is cut with TIMEOUT, headers included (an upstream dripping a byte at a time kept
// the idle timeout from ever firing), while a reader that is slow itself is never cut.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { OciClient, OciError } from '../registry/client.js';

const blob = Buffer.alloc(4 << 20, 7);
const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
const open = new Set<http.ServerResponse>();
const srv = http.createServer((req, res) => {
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
