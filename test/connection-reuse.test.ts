// A request on a kept-alive connection is answered whatever state the previous answer's write is in.
// Node's HTTP server pauses a connection whose previous answer is still in its write queue when the
// next request's head arrives (pipelining flood protection, lib/_http_server.js parserOnIncoming),
// and on a TLS socket its parser, fed straight from the TLS layer, then got the rest of that burst
// while paused: HPE_PAUSED, a clientError, the connection destroyed mid-body (ECONNRESET, or
// "socket hang up"), the write lost. An answer over 16 KiB (the socket's high-water mark) followed
// by a body that arrives with its head in one burst is enough (Node's https client sends them so;
// kubectl's Go client writes the head first and was not seen cut). Neither client resends a write
// whose connection failed (Go: net/http transport.go `shouldRetryRequest`, idempotent requests
// only). kube-apiserver's Go server reads requests in order whatever its write side is doing
// (net/http server.go `conn.serve`).
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Agent } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import t from 'tap';
import { startServer, type TestServer } from './helpers/server.js';
import { send } from './helpers/stall.js';

let s: TestServer;
let agent: Agent;
const tlsOpts: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};
const CM = '/api/v1/namespaces/default/configmaps';
const JSON_CT = { 'Content-Type': 'application/json' };
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const cm = (name: string, data: Record<string, string>, finalizers?: string[]) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ...(finalizers ? { finalizers } : {}) }, data });

t.before(async () => {
  s = await startServer();
  const certs = join(s.dataDir, 'certs');
  Object.assign(tlsOpts, { ca: readFileSync(join(certs, 'ca.crt')), cert: readFileSync(join(certs, 'admin.crt')), key: readFileSync(join(certs, 'admin.key')) });
  agent = new Agent({ keepAlive: true, maxSockets: 1, ...tlsOpts });
});
t.teardown(async () => {
  agent?.destroy();
  await s?.stop();
});

t.test('answers over 16 KiB, each followed by a create and an update of 190 KB on the same connection, 80 times', async (t) => {
  // On the code before, 11 to 20 of the 80 updates were cut (ECONNRESET) in every run.
  const fins = Array.from({ length: 20_000 }, (_, i) => `f/${i}`);
  const failed: string[] = [];
  const expect = async (what: string, status: number, p: Promise<{ status: number; text: string }>) => {
    const r = await p;
    if (r.status !== status) failed.push(`${what}: ${r.status} ${r.text.slice(0, 80)}`);
  };
  await expect('mid', 201, send(agent, s.port, 'POST', CM, json(cm('mid', { a: 'x'.repeat(24_000) })), JSON_CT));
  for (let i = 0; i < 80; i++) {
    if (i % 2) await expect(`metrics ${i}`, 200, send(agent, s.port, 'GET', '/metrics', undefined, {}));
    else await expect(`get mid ${i}`, 200, send(agent, s.port, 'GET', `${CM}/mid`, undefined, {}));
    await expect(`create ${i}`, 201, send(agent, s.port, 'POST', CM, json(cm(`w${i}`, { a: '1' })), JSON_CT));
    await expect(`metrics ${i}`, 200, send(agent, s.port, 'GET', '/metrics', undefined, {}));
    await expect(`update ${i}`, 200, send(agent, s.port, 'PUT', `${CM}/w${i}`, json(cm(`w${i}`, { a: '2' }, fins)), JSON_CT));
    await expect(`get ${i}`, 200, send(agent, s.port, 'GET', `${CM}/w${i}`, undefined, {}));
  }
  t.same(failed, [], 'every request answered');
});

/** Sends `first`, stops reading while its answer is written, then sends `second` (head and body in one write). */
function whileAnswering(port: number, first: Buffer, second: Buffer): Promise<string> {
  return new Promise((resolve) => {
    const sock = tlsConnect({ ...tlsOpts, host: '127.0.0.1', servername: 'localhost', port }, async () => {
      sock.pause();
      sock.write(first);
      await new Promise((r) => setTimeout(r, 300)); // the answer fills the kernel's buffers and backs up in the server's queue
      sock.write(second);
      await new Promise((r) => setTimeout(r, 100));
      sock.resume();
    });
    let got = '';
    sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
    sock.on('error', (e: NodeJS.ErrnoException) => (got += ` <${e.code}>`));
    sock.on('close', () => resolve(got));
  });
}
const raw = (method: string, path: string, headers: Record<string, string | number> = {}, body?: Buffer) =>
  Buffer.concat([Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: localhost\r\n${Object.entries({ ...headers, ...(body ? { 'Content-Length': body.length } : {}) }).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`), body ?? Buffer.alloc(0)]);
const statuses = (answer: string) => [...answer.matchAll(/HTTP\/1\.1 (\d+)/g)].map((m) => Number(m[1]));

t.test('a write sent while a 16 MB answer is still being written on the same connection (API and snapshot registry)', async (t) => {
  // Deterministic: on the code before, every one of these connections was destroyed after the first answer.
  for (let i = 0; i < 8; i++) t.equal((await send(agent, s.port, 'POST', CM, json(cm(`big-${i}`, { b: 'y'.repeat(2_000_000) })), JSON_CT)).status, 201, `big-${i}`);
  const ready = s.logs.map((l) => JSON.parse(l) as { registry?: string }).find((j) => j.registry)!;
  const registry = Number(ready.registry!.split(':')[1]);
  const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
  const blob = randomBytes(20_000_000);
  const blobPath = `/v2/default/reuse/blobs/uploads/?digest=${sha(blob)}`;
  t.equal((await send(agent, registry, 'POST', blobPath, blob, { 'Content-Type': 'application/octet-stream' })).status, 201, 'a blob of 20 MB');
  for (let i = 0; i < 3; i++) {
    const api = await whileAnswering(s.port, raw('GET', CM), raw('POST', CM, { 'Content-Type': 'application/json', Connection: 'close' }, json(cm(`after-${i}`, { b: 'y'.repeat(190_000) }))));
    t.same(statuses(api), [200, 201], `API: the list, then the create (${api.slice(-60).replace(/[^ -~]/g, '.')})`);
    const b = randomBytes(190_000);
    const reg = await whileAnswering(registry, raw('GET', `/v2/default/reuse/blobs/${sha(blob)}`), raw('POST', `/v2/default/reuse/blobs/uploads/?digest=${sha(b)}`, { 'Content-Type': 'application/octet-stream', Connection: 'close' }, b));
    t.same(statuses(reg), [200, 201], `registry: the blob, then the push (${reg.slice(-60).replace(/[^ -~]/g, '.')})`);
  }
});

t.test('connections that send nothing are closed after the head timeout; an idle watch is not', async (t) => {
  // kube-apiserver reads the TLS handshake and each request head within ReadHeaderTimeout (Go's
  // net/http conn.serve; 32 s, k8s.io/apiserver/pkg/server/secure_serving.go). Node waited for ever
  // for a silent connection's first byte: on the code before, none of these was closed in 12 s.
  const q = await startServer({ args: ['--request-timeout', '3s'] }); // head timeout: min(request timeout, 32 s)
  t.teardown(() => q.stop());
  const certs = join(q.dataDir, 'certs');
  const opts = { ca: readFileSync(join(certs, 'ca.crt')), cert: readFileSync(join(certs, 'admin.crt')), key: readFileSync(join(certs, 'admin.key')) };
  const registry = Number(q.logs.map((l) => JSON.parse(l) as { registry?: string }).find((j) => j.registry)!.registry!.split(':')[1]);
  const t0 = Date.now();
  const closedAfter = (sock: Socket) => new Promise<number>((resolve) => sock.on('error', () => undefined).on('close', () => resolve(Date.now() - t0)));
  const silent = [q.port, registry].flatMap((port) => [
    closedAfter(tlsConnect({ ...opts, host: '127.0.0.1', servername: 'localhost', port })),
    closedAfter(netConnect(port, '127.0.0.1')), // no TLS handshake either
  ]);
  // a watch that sees no event for longer than the head timeout
  const watch = tlsConnect({ ...opts, host: '127.0.0.1', servername: 'localhost', port: q.port });
  let seen = '';
  watch.on('data', (d: Buffer) => (seen += d.toString()));
  const watchClosed = closedAfter(watch);
  watch.write('GET /api/v1/namespaces/default/configmaps?watch=1&resourceVersion=0 HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const limit = new Promise<number>((r) => setTimeout(() => r(-1), 12_000));
  const times = await Promise.all(silent.map((p) => Promise.race([p, limit])));
  for (const [i, ms] of times.entries()) t.ok(ms >= 2500 && ms < 9000, `${['API', 'API', 'registry', 'registry'][i]} ${i % 2 ? 'TCP without a handshake' : 'TLS, no request'}: ${ms < 0 ? 'still open after 12 s' : `closed after ${ms} ms`}`);
  await new Promise((r) => setTimeout(r, Math.max(0, t0 + 8000 - Date.now())));
  const qAgent = new Agent({ keepAlive: false, ...opts });
  t.equal((await send(qAgent, q.port, 'POST', CM, json(cm('seen-by-watch', {})), JSON_CT)).status, 201, 'an object created');
  await new Promise((r) => setTimeout(r, 1000));
  t.match(seen, /"type":"ADDED".*seen-by-watch/s, 'the watch, silent for 8 s, is still open and sees the next event');
  watch.destroy();
  await watchClosed;
});
