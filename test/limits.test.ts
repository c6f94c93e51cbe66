// Load shedding and hostile clients: in-flight limits (read-only and mutating apart, watches not
// counted, system:masters never shed) answered with 429 + Retry-After; the request deadline (504,
// and `?timeout=`); a response the client does not read is cut at the deadline; slow clients
// (a byte a second) are disconnected; oversized headers refused; watches per user bounded; the
// server serves normally afterwards; and graceful shutdown (SIGTERM): in-flight requests finish,
// watches end cleanly, nothing acknowledged is lost.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { ClientRequest, IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import t from 'tap';
import { startServer, tempDir, type TestServer } from './helpers/server.js';

const REQUEST_TIMEOUT_S = 4;
let s: TestServer;
let dir: string;
let dataDir: string;
const BOB = { Authorization: 'Bearer bobtoken' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pem = (f: string) => readFileSync(join(dataDir, 'certs', f), 'utf8');

t.before(async () => {
  dir = tempDir('limits-test-');
  dataDir = join(dir, 'data');
  writeFileSync(join(dir, 'tokens.csv'), 'bobtoken,bob,1001,"devs"\n');
  writeFileSync(join(dir, 'policy.yaml'), "- users: [bob]\n  verbs: ['*']\n  apiGroups: ['']\n  resources: ['*']\n");
  s = await startServer({
    dataDir,
    args: [
      '--token-auth-file', join(dir, 'tokens.csv'),
      '--authorization-policy-file', join(dir, 'policy.yaml'),
      '--max-requests-inflight', '2',
      '--max-mutating-requests-inflight', '2',
      '--request-timeout', `${REQUEST_TIMEOUT_S}s`,
      '--max-watches-per-user', '3',
    ],
  });
});
t.teardown(async () => {
  await s?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A raw TLS connection, as bob (token in the request) or as admin (client certificate). */
function connect(admin = false): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const sock = tlsConnect({ host: '127.0.0.1', port: s.port, ca: pem('ca.crt'), servername: 'localhost', ...(admin ? { cert: pem('admin.crt'), key: pem('admin.key') } : {}) });
    sock.once('secureConnect', () => resolve(sock)).once('error', reject);
  });
}

/** Collects what a raw socket receives, and when it closes. */
function watchSocket(sock: TLSSocket) {
  const w = { data: '', closed: false, closedAt: 0 };
  sock.on('data', (d: Buffer) => (w.data += d.toString('latin1')));
  sock.on('error', () => {});
  sock.on('close', () => {
    w.closed = true;
    w.closedAt = Date.now();
  });
  return w;
}

/** A POST whose headers arrive at once and whose body never does (in flight until cut). */
async function stalledPost(path: string, admin = false, body = '{') {
  const sock = await connect(admin);
  const w = watchSocket(sock);
  sock.write(`POST ${path} HTTP/1.1\r\nHost: localhost\r\n${admin ? '' : 'Authorization: Bearer bobtoken\r\n'}Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n${body}`);
  return { sock, w };
}

interface Scraped {
  [name: string]: number;
}
/** Selected samples of /metrics (admin), keyed `name{labels}` as exposed. */
async function metrics(): Promise<Scraped> {
  const r = await s.request('GET', '/metrics');
  const out: Scraped = {};
  for (const line of r.body.split('\n')) {
    const m = /^(\S+)\s+(\S+)$/.exec(line);
    if (m && !line.startsWith('#')) out[m[1]] = Number(m[2]);
  }
  return out;
}
const INFLIGHT = (kind: string) => `apiserver_current_inflight_requests{request_kind="${kind}"}`;

async function until(what: string, fn: () => Promise<boolean>, ms = 10_000) {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const cm = (name: string, data: Record<string, string> = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data });

t.test('mutating requests over --max-mutating-requests-inflight get 429 + Retry-After', async (t) => {
  const held = [await stalledPost('/api/v1/namespaces/default/configmaps'), await stalledPost('/api/v1/namespaces/default/configmaps')];
  await until('two mutating requests in flight', async () => (await metrics())[INFLIGHT('mutating')] === 2);
  const shed = await s.request('POST', '/api/v1/namespaces/default/configmaps', { cert: null, headers: BOB, body: cm('shed') });
  t.equal(shed.status, 429);
  t.equal(shed.headers['retry-after'], '1');
  t.match(shed.json(), { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'TooManyRequests', code: 429, details: { retryAfterSeconds: 1 } });
  const read = await s.request('GET', '/api/v1/namespaces/default/configmaps', { cert: null, headers: BOB });
  t.equal(read.status, 200, 'read-only requests have their own limit');
  const masters = await s.request('POST', '/api/v1/namespaces/default/configmaps', { body: cm('by-admin') });
  t.equal(masters.status, 201, 'system:masters is never shed');
  for (const h of held) h.sock.destroy();
  await until('the slots are free', async () => (await metrics())[INFLIGHT('mutating')] === 0);
  const again = await s.request('POST', '/api/v1/namespaces/default/configmaps', { cert: null, headers: BOB, body: cm('after') });
  t.equal(again.status, 201, 'admitted again once the slots are free');
  const m = await metrics();
  t.ok(m['apiserver_dropped_requests_total{request_kind="mutating"}'] >= 1, 'dropped requests counted');
  t.ok(m['apiserver_request_total{verb="POST",group="",version="v1",resource="configmaps",subresource="",scope="resource",component="apiserver",code="429"}'] >= 1, '429 in apiserver_request_total');
});

t.test('read-only requests over --max-requests-inflight get 429; a response not read is cut at the deadline', async (t) => {
  // ~10 MiB of ConfigMaps: more than the socket buffers hold, so a client that does not read keeps its request in flight.
  t.equal((await s.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'big' } } })).status, 201);
  for (let i = 0; i < 6; i++) t.equal((await s.request('POST', '/api/v1/namespaces/big/configmaps', { body: cm(`big-${i}`, { x: 'x'.repeat(1_800_000) }) })).status, 201);
  const readers: { sock: TLSSocket; w: ReturnType<typeof watchSocket>; at: number }[] = [];
  for (let i = 0; i < 2; i++) {
    const sock = await connect();
    sock.pause(); // read nothing
    const w = { data: '', closed: false, closedAt: 0 };
    sock.on('error', () => {}).on('close', () => ((w.closed = true), (w.closedAt = Date.now())));
    sock.write('GET /api/v1/namespaces/big/configmaps HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer bobtoken\r\n\r\n');
    readers.push({ sock, w, at: Date.now() });
  }
  await until('two read-only requests in flight', async () => (await metrics())[INFLIGHT('readOnly')] >= 3); // the two, and the scrape
  const shed = await s.request('GET', '/api/v1/namespaces/default/configmaps', { cert: null, headers: BOB });
  t.equal(shed.status, 429);
  t.equal(shed.headers['retry-after'], '1');
  t.equal(shed.json().reason, 'TooManyRequests');
  const write = await s.request('POST', '/api/v1/namespaces/default/configmaps', { cert: null, headers: BOB, body: cm('while-reads-held') });
  t.equal(write.status, 201, 'mutating requests have their own limit');
  // The server cuts them at the deadline (a client that reads nothing cannot see that until it reads).
  await until('the stalled responses are cut', async () => (await metrics())[INFLIGHT('readOnly')] === 1, (REQUEST_TIMEOUT_S + 6) * 1000);
  const cutAfter = Date.now() - readers[0].at;
  t.ok(cutAfter < (REQUEST_TIMEOUT_S + 3) * 1000, `slots freed after ${cutAfter} ms`);
  let received = 0;
  for (const r of readers) r.sock.on('data', (d: Buffer) => (received += d.length)).resume();
  await until('the clients see the cut', async () => readers.every((r) => r.w.closed), 10_000);
  t.ok(received < 6 * 1_800_000, `the responses were cut short (${received} bytes received of more than ${6 * 1_800_000 * 2})`);
  t.equal((await s.request('GET', '/api/v1/namespaces/default/configmaps', { cert: null, headers: BOB })).status, 200, 'served again');
  t.equal((await s.request('DELETE', '/api/v1/namespaces/big')).status, 200);
});

t.test('the request deadline: 504 Status, ?timeout= lowers it, a bad one is a 400', async (t) => {
  const started = Date.now();
  const { w } = await stalledPost('/api/v1/namespaces/default/configmaps?timeout=1s', true);
  await until('an answer', async () => /\r\n\r\n\{.*\}/s.test(w.data) || w.closed, 5000);
  const ms = Date.now() - started;
  t.match(w.data, /^HTTP\/1\.1 504 /, '504');
  const body = JSON.parse(w.data.slice(w.data.indexOf('\r\n\r\n') + 4));
  t.match(body, { kind: 'Status', status: 'Failure', reason: 'Timeout', code: 504, message: 'Timeout: request did not complete within 1s' });
  t.ok(ms >= 900 && ms < 3500, `after ${ms} ms`);
  const bad = await s.request('GET', '/api/v1/namespaces/default/configmaps?timeout=soon');
  t.equal(bad.status, 400);
  t.match(bad.json().message, /^invalid timeout specified in the request URL/);
  t.equal((await s.request('GET', '/api/v1/namespaces/default/configmaps?timeout=10m')).status, 200, 'a longer timeout is capped, not refused');
});

t.test('slow clients are cut off', async (t) => {
  // Headers at a byte a second.
  const sock = await connect(true);
  const w = watchSocket(sock);
  const started = Date.now();
  const head = 'GET /api/v1/namespaces HTTP/1.1\r\nHost: localhost\r\nX-Slow: ' + 'a'.repeat(100);
  let i = 0;
  const timer = setInterval(() => {
    if (!w.closed && i < head.length) sock.write(head[i++]);
  }, 1000);
  await until('the slow client is disconnected', async () => w.closed, (REQUEST_TIMEOUT_S + 8) * 1000).finally(() => clearInterval(timer));
  const ms = w.closedAt - started;
  t.ok(ms < (REQUEST_TIMEOUT_S + 3) * 1000, `headers at a byte a second: disconnected after ${ms} ms (${i} bytes sent)`);
  t.notMatch(w.data, /^HTTP\/1\.1 200/, 'never served');

  // A body at a byte a second: the deadline answers 504 and the connection is cut.
  const b = await stalledPost('/api/v1/namespaces/default/configmaps', true, '');
  const bStarted = Date.now();
  const body = JSON.stringify(cm('slow-body'));
  let j = 0;
  const bTimer = setInterval(() => {
    if (!b.w.closed && j < body.length) b.sock.write(body[j++]);
  }, 1000);
  await until('the slow body is cut', async () => b.w.closed, (REQUEST_TIMEOUT_S + 8) * 1000).finally(() => clearInterval(bTimer));
  t.ok(b.w.closedAt - bStarted < (REQUEST_TIMEOUT_S + 3) * 1000, `body at a byte a second: disconnected after ${b.w.closedAt - bStarted} ms`);
  t.match(b.w.data, /^HTTP\/1\.1 (504|408) /, `answered ${b.w.data.split('\r\n')[0]}`);
  t.equal((await s.request('GET', '/api/v1/namespaces/default/configmaps/slow-body')).status, 404, 'nothing was created');
});

t.test('oversized request headers are refused', async (t) => {
  const big = await s.request('GET', '/api/v1/namespaces', { headers: { 'X-Big': 'a'.repeat(100_000) } }).catch((e: Error) => ({ status: -1, error: e.message }));
  t.ok(big.status === 431 || big.status === -1, `refused (${big.status})`);
  t.equal((await s.request('GET', '/api/v1/namespaces', { headers: { 'X-Fine': 'a'.repeat(8_000) } })).status, 200, 'large but allowed headers are fine');
});

function openWatch(headers: Record<string, string>): Promise<{ req: ClientRequest; res: IncomingMessage; body: () => string; ended: Promise<'end' | 'aborted'> }> {
  return new Promise((resolve, reject) => {
    const admin = !headers.Authorization;
    const req = httpsRequest({
      host: '127.0.0.1',
      port: s.port,
      path: '/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=false',
      ca: pem('ca.crt'),
      servername: 'localhost',
      agent: false,
      headers,
      ...(admin ? { cert: pem('admin.crt'), key: pem('admin.key') } : {}),
    });
    req.on('error', () => {});
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('error', () => {});
      const ended = new Promise<'end' | 'aborted'>((r) => {
        res.on('end', () => r('end'));
        res.on('aborted', () => r('aborted'));
        res.on('close', () => r(res.complete ? 'end' : 'aborted'));
      });
      resolve({ req, res, body: () => text, ended });
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('watches per user are bounded; watches do not count as in-flight requests', async (t) => {
  const open = [];
  for (let i = 0; i < 3; i++) {
    const w = await openWatch(BOB);
    t.equal(w.res.statusCode, 200, `watch ${i + 1}`);
    open.push(w);
  }
  const fourth = await openWatch(BOB);
  t.equal(fourth.res.statusCode, 429, 'the fourth watch of bob is refused');
  t.equal(fourth.res.headers['retry-after'], '1');
  await fourth.ended;
  t.match(JSON.parse(fourth.body()), { kind: 'Status', reason: 'TooManyRequests', code: 429 });
  const read = await s.request('GET', '/api/v1/namespaces/default/configmaps', { cert: null, headers: BOB });
  t.equal(read.status, 200, 'three watches open, and a list (limit 2) still passes');
  const admin = await openWatch({});
  t.equal(admin.res.statusCode, 200, 'the limit is per user');
  admin.req.destroy();
  open.pop()!.req.destroy();
  await until('a watch slot is free', async () => (await openWatch(BOB).then((w) => (w.req.destroy(), w.res.statusCode))) === 200);
  t.pass('bob may watch again after closing one');
  for (const w of open) w.req.destroy();
});

t.test('the server still serves normally', async (t) => {
  t.equal((await s.request('GET', '/healthz', { cert: null })).status, 200);
  t.equal((await s.request('GET', '/api/v1/namespaces/default/configmaps')).status, 200);
  t.equal((await s.request('POST', '/api/v1/namespaces/default/configmaps', { cert: null, headers: BOB, body: cm('at-the-end') })).status, 201);
  t.equal(s.proc.exitCode, null);
});

t.test('graceful shutdown: in-flight requests finish, watches end cleanly, writes are kept', async (t) => {
  const watch = await openWatch({});
  t.equal(watch.res.statusCode, 200);
  const body = JSON.stringify(cm('during-shutdown', { a: 'kept' }));
  const sock = await connect(true);
  const w = watchSocket(sock);
  sock.write(`POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
  await until('the write is in flight', async () => (await metrics())[INFLIGHT('mutating')] === 1);
  const exited = new Promise<number | null>((r) => s.proc.once('exit', (code) => r(code)));
  s.proc.kill('SIGTERM');
  t.equal(await watch.ended, 'end', 'the watch ended with a clean end of stream');
  const refused = await connect().then(
    (x) => (x.destroy(), false),
    () => true,
  );
  t.ok(refused, 'no new connections are accepted');
  sock.write(body.slice(10));
  await until('the in-flight write is answered', async () => /\r\n\r\n\{.*\}$/s.test(w.data) || w.closed, 5000);
  t.match(w.data, /^HTTP\/1\.1 201 /, 'the in-flight create finished');
  t.equal(await exited, 0, 'exit code 0');
  t.ok(s.logs.some((l) => /"msg":"shutdown complete"/.test(l) && /"drained":true/.test(l)), 'drained in time');

  s = await startServer({ dataDir });
  const back = await s.request('GET', '/api/v1/namespaces/default/configmaps/during-shutdown');
  t.equal(back.status, 200, 'the write acknowledged during shutdown is there after a restart');
  t.equal(back.json().data.a, 'kept');
});
