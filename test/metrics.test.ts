// /metrics: Prometheus text with kube-apiserver's request metrics (by verb, group, version,
// resource, subresource, scope and code), long-running requests, in-flight requests, storage
// latency, controller-runtime and workqueue metrics, registry bytes and blobs, process metrics;
// and only for users allowed to GET the non-resource URL /metrics.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import t from 'tap';
import { startServer, tempDir, type TestServer } from './helpers/server.js';

let s: TestServer;
let dir: string;
let registryPort: number;
const certs = () => join(s.dataDir, 'certs');

t.before(async () => {
  dir = tempDir('metrics-test-');
  writeFileSync(join(dir, 'tokens.csv'), 'bobtoken,bob,1001,"devs"\n');
  s = await startServer({ args: ['--token-auth-file', join(dir, 'tokens.csv')], reconcilers: 'ocmcomponent' });
  const ready = s.logs.map((l) => (l.startsWith('{') ? JSON.parse(l) : {})).find((j) => j.registry);
  registryPort = Number(String(ready.registry).split(':').pop());
});
t.teardown(async () => {
  await s?.stop();
  rmSync(dir, { recursive: true, force: true });
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) throw new Error(`not a Prometheus sample: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** The sum of the samples named `name` whose labels include `want`; undefined when there are none. */
function value(samples: Sample[], name: string, want: Record<string, string> = {}): number | undefined {
  const hits = samples.filter((x) => x.name === name && Object.entries(want).every(([k, v]) => x.labels[k] === v));
  return hits.length ? hits.reduce((n, x) => n + x.value, 0) : undefined;
}

async function scrape(): Promise<Sample[]> {
  const r = await s.request('GET', '/metrics');
  if (r.status !== 200) throw new Error(`/metrics: ${r.status} ${r.body}`);
  return parse(r.body);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function eventually(fn: (m: Sample[]) => boolean, ms = 20_000): Promise<Sample[]> {
  const until = Date.now() + ms;
  for (;;) {
    const m = await scrape();
    if (fn(m) || Date.now() > until) return m;
    await sleep(200);
  }
}

const core = (resource: string, extra: Record<string, string>) => ({ group: '', version: 'v1', resource, component: 'apiserver', ...extra });

t.test('/metrics needs an authenticated user allowed to GET it', async (t) => {
  const anon = await s.request('GET', '/metrics', { cert: null });
  t.equal(anon.status, 401);
  t.equal(anon.json().kind, 'Status');
  const bob = await s.request('GET', '/metrics', { cert: null, headers: { Authorization: 'Bearer bobtoken' } });
  t.equal(bob.status, 403);
  t.match(bob.json().message, /User "bob" cannot get path "\/metrics"/);
  const admin = await s.request('GET', '/metrics');
  t.equal(admin.status, 200);
  t.match(String(admin.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  t.doesNotThrow(() => parse(admin.body), 'the exposition parses');
});

t.test('request counters and latency by verb, resource, scope and code', async (t) => {
  const cm = '/api/v1/namespaces/default/configmaps';
  t.equal((await s.request('POST', cm, { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'm1' }, data: { a: '1' } } })).status, 201);
  t.equal((await s.request('GET', `${cm}/m1`)).status, 200);
  t.equal((await s.request('GET', cm)).status, 200);
  t.equal((await s.request('GET', `${cm}/nope`)).status, 404);
  t.equal((await s.request('PATCH', `${cm}/m1`, { body: { data: { b: '2' } }, headers: { 'Content-Type': 'application/merge-patch+json' } })).status, 200);
  t.equal((await s.request('GET', '/api/v1/namespaces')).status, 200);
  t.equal((await s.request('POST', cm, { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'Not_Valid' } } })).status, 422);
  const ocm = '/apis/delivery.ocm.software/v1alpha1/namespaces/default/ocmcomponents';
  const created = await s.request('POST', ocm, {
    body: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: { name: 'c1' }, spec: { name: 'github.com/acme/app', version: '1.0.0', repository: { url: 'http://127.0.0.1:1/nothing' }, interval: '1h' } },
  });
  t.equal(created.status, 201);
  const status = await s.request('PATCH', `${ocm}/c1/status`, { body: { status: { observedGeneration: 1 } }, headers: { 'Content-Type': 'application/merge-patch+json' } });
  t.equal(status.status, 200, status.body);
  t.equal((await s.request('DELETE', `${cm}/m1`)).status, 200);

  const m = await scrape();
  const total = 'apiserver_request_total';
  t.ok(value(m, total, { ...core('configmaps', { verb: 'POST', scope: 'resource', code: '201' }), subresource: '' })! >= 1, 'POST (create) has scope resource');
  t.ok(value(m, total, core('configmaps', { verb: 'GET', scope: 'resource', code: '200' }))! >= 1, 'GET');
  t.ok(value(m, total, core('configmaps', { verb: 'LIST', scope: 'namespace', code: '200' }))! >= 1, 'LIST in a namespace');
  t.ok(value(m, total, core('configmaps', { verb: 'GET', code: '404' }))! >= 1, '404');
  t.ok(value(m, total, core('configmaps', { verb: 'PATCH', code: '200' }))! >= 1, 'PATCH');
  t.ok(value(m, total, core('configmaps', { verb: 'POST', code: '422' }))! >= 1, '422');
  t.ok(value(m, total, core('configmaps', { verb: 'DELETE', code: '200' }))! >= 1, 'DELETE');
  t.ok(value(m, total, core('namespaces', { verb: 'LIST', scope: 'cluster', code: '200' }))! >= 1, 'cluster-scoped LIST');
  t.ok(value(m, total, { verb: 'PATCH', group: 'delivery.ocm.software', version: 'v1alpha1', resource: 'ocmcomponents', subresource: 'status', code: '200' })! >= 1, 'status subresource');
  t.ok(value(m, total, { verb: 'GET', resource: '', code: '401' })! >= 1, 'an unauthenticated request is counted');
  t.ok(value(m, total, { verb: 'GET', resource: '', code: '403' })! >= 1, 'a forbidden one too');
  t.ok(value(m, 'apiserver_request_duration_seconds_count', core('configmaps', { verb: 'POST', scope: 'resource' }))! >= 1, 'latency histogram count');
  t.equal(value(m, 'apiserver_request_duration_seconds_bucket', { ...core('configmaps', { verb: 'GET', scope: 'resource' }), le: '+Inf' }), value(m, 'apiserver_request_duration_seconds_count', core('configmaps', { verb: 'GET', scope: 'resource' })), '+Inf bucket = count');
  t.notOk(m.some((x) => x.name === 'apiserver_request_duration_seconds_bucket' && 'code' in x.labels), 'no code label on the histogram');
  t.ok(value(m, 'apiserver_storage_operation_duration_seconds_count', { operation: 'create', type: 'configmaps' })! >= 1, 'storage create of configmaps');
  t.ok(value(m, 'apiserver_storage_operation_duration_seconds_count', { operation: 'get', type: 'ocmcomponents.delivery.ocm.software' })! >= 1, 'storage get of ocmcomponents');
  t.ok(value(m, 'apiserver_current_inflight_requests', { request_kind: 'readOnly' })! >= 1, 'the scrape itself is in flight');
  t.equal(value(m, 'apiserver_current_inflight_requests', { request_kind: 'mutating' }), 0);
  t.ok(value(m, 'process_cpu_user_seconds_total')! > 0, 'process metrics');
  t.ok(value(m, 'nodejs_heap_size_used_bytes')! > 0, 'Node.js metrics');
});

t.test('watches are long-running requests', async (t) => {
  const before = await scrape();
  t.equal(value(before, 'apiserver_longrunning_requests', { verb: 'WATCH', resource: 'configmaps' }) ?? 0, 0);
  const certDir = certs();
  const req = httpsRequest({
    host: '127.0.0.1',
    port: s.port,
    path: '/api/v1/namespaces/default/configmaps?watch=true',
    ca: readFileSync(join(certDir, 'ca.crt')),
    cert: readFileSync(join(certDir, 'admin.crt')),
    key: readFileSync(join(certDir, 'admin.key')),
    servername: 'localhost',
    agent: false,
  });
  const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => req.on('response', resolve).on('error', reject).end());
  t.equal(res.statusCode, 200);
  res.resume();
  const open = await eventually((m) => value(m, 'apiserver_longrunning_requests', { verb: 'WATCH', resource: 'configmaps' }) === 1);
  t.equal(value(open, 'apiserver_longrunning_requests', { verb: 'WATCH', group: '', version: 'v1', resource: 'configmaps', scope: 'namespace' }), 1, 'one watch open');
  req.destroy();
  const closed = await eventually((m) => value(m, 'apiserver_longrunning_requests', { verb: 'WATCH', resource: 'configmaps' }) === 0);
  t.equal(value(closed, 'apiserver_longrunning_requests', { verb: 'WATCH', resource: 'configmaps' }), 0, 'gone when the client leaves');
  t.ok(value(closed, 'apiserver_request_total', { verb: 'WATCH', resource: 'configmaps', code: '200' })! >= 1, 'and counted when it ends');
});

t.test('reconciler metrics: reconciles, time and queue depth per controller', async (t) => {
  const m = await eventually((m) => (value(m, 'controller_runtime_reconcile_total', { controller: 'ocmcomponent' }) ?? 0) >= 1);
  t.ok(value(m, 'controller_runtime_reconcile_total', { controller: 'ocmcomponent' })! >= 1, 'c1 was reconciled (successfully or not)');
  t.ok(m.some((x) => x.name === 'controller_runtime_reconcile_total' && x.labels.result === 'error'), 'an error series exists');
  t.not(value(m, 'controller_runtime_reconcile_errors_total', { controller: 'ocmcomponent' }), undefined);
  t.ok(value(m, 'controller_runtime_reconcile_time_seconds_count', { controller: 'ocmcomponent' })! >= 1, 'reconcile time observed');
  t.not(value(m, 'workqueue_depth', { name: 'ocmcomponent' }), undefined, 'queue depth gauge');
  t.equal(value(m, 'workqueue_depth', { name: 'source' }), undefined, 'only enabled controllers');
});

function registryRequest(method: string, path: string, body?: Buffer): Promise<{ status: number; body: Buffer }> {
  const certDir = certs();
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: registryPort,
        method,
        path,
        ca: readFileSync(join(certDir, 'ca.crt')),
        cert: readFileSync(join(certDir, 'admin.crt')),
        key: readFileSync(join(certDir, 'admin.key')),
        servername: 'localhost',
        agent: false,
        headers: body ? { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length) } : {},
      },
      (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve({ status: r.statusCode ?? 0, body: Buffer.concat(chunks) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

t.test('registry bytes in and out, blob count', async (t) => {
  const before = await scrape();
  const blob = randomBytes(200_000);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const put = await registryRequest('POST', `/v2/metrics/test/blobs/uploads/?digest=${digest}`, blob);
  t.equal(put.status, 201);
  const got = await registryRequest('GET', `/v2/metrics/test/blobs/${digest}`);
  t.equal(got.status, 200);
  t.ok(got.body.equals(blob));
  const after = await eventually((m) => (value(m, 'registry_http_bytes_total', { direction: 'out' }) ?? 0) - (value(before, 'registry_http_bytes_total', { direction: 'out' }) ?? 0) >= blob.length);
  const delta = (dir: string) => value(after, 'registry_http_bytes_total', { direction: dir })! - value(before, 'registry_http_bytes_total', { direction: dir })!;
  t.ok(delta('in') >= blob.length, `bytes in grew by ${delta('in')} (the blob is ${blob.length})`);
  t.ok(delta('out') >= blob.length, `bytes out grew by ${delta('out')}`);
  t.ok(value(after, 'registry_blobs')! >= 1, 'blob count');
  t.ok(value(after, 'registry_http_requests_total', { method: 'POST', code: '201' })! >= 1, 'registry requests by method and code');
});
