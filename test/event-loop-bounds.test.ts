// run-tests: alone (it measures the event loop; see scripts/run-tests.mjs)
// Issue 15, "Nothing takes it down": no request holds the event loop for more than 100 ms. The
// worst bodies under the 3 MiB limit, of every shape (200,000 labels, annotations or data keys, a
// list of a million items, legal nesting 500 deep, managedFields, finalizers), through create,
// update, every patch type and apply (JSON and YAML, and `kubectl apply --server-side`), then the
// responses that carry them (get, list and watch of many such objects, as JSON, YAML and Table).
// Each is measured by the server itself (its nodejs_eventloop_lag_max_seconds, test/helpers/
// stall.ts); one over the bound is sent again alone up to 3 times, and fails only if over every time.
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { KUBECTL, startServer, type TestServer } from './helpers/server.js';
import { measured, quiet, reproduced, type Res, send } from './helpers/stall.js';

/** The README's bound (ms); STALL_BOUND_MS only to look at figures with another one. */
const BOUND_MS = Number(process.env.STALL_BOUND_MS ?? 100);
t.setTimeout(900_000); // (its own: over the runner's 300 s; tap's runner takes the file's)
const NS = 'stall';
const CM = `/api/v1/namespaces/${NS}/configmaps`;
const GV = 'delivery.ocm.software/v1alpha1';
const CFG = `/apis/${GV}/namespaces/${NS}/configurators`;
const N = 200_000; // `"k199999":"v",` is 14 bytes: 2.8 MB of labels, under the 3 MiB limit

let s: TestServer;
let agent: Agent;

const map = (n: number, key = (i: number) => `k${i}`, value = 'v') => {
  const o: Record<string, string> = {};
  for (let i = 0; i < n; i++) o[key(i)] = value;
  return o;
};
const cm = (name: string, extra: Record<string, unknown> = {}, meta: Record<string, unknown> = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ...meta }, ...extra });
const cfg = (name: string, values: unknown) => ({ apiVersion: GV, kind: 'Configurator', metadata: { name }, spec: { values } });
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const yaml = (v: unknown) => Buffer.from(YAML.stringify(v));
/** `{"a":{"a":...1...}}` 500 deep, as many times as fit in ~2.8 MB. */
const deepLegal = () => Array.from({ length: 900 }, () => JSON.parse('{"a":'.repeat(500) + '1' + '}'.repeat(500)));

const JSON_CT = { 'Content-Type': 'application/json' };
const req = (method: string, path: string, body?: Buffer, headers: Record<string, string> = JSON_CT) => send(agent, s.port, method, path, body, headers);
const ok = async (r: Promise<Res>, what: string) => {
  const x = await r;
  if (x.status >= 300) throw new Error(`${what}: ${x.status} ${x.text.slice(0, 300)}`);
  return x;
};

interface Case {
  name: string;
  /** Not measured: makes what the request needs (the object it updates). */
  setup?: (name: string) => Promise<unknown>;
  run: (name: string) => Promise<Res | { status: number; text: string }>;
  /** The expected status code. */
  status: number;
  /** Not yet within the bound (README "Limits"): measured once, reported as todo. */
  todo?: boolean;
}

const target = (name: string) => ok(req('POST', CM, json(cm(name, { data: { a: '1' } }))), 'target');
const labels = map(N);
/** Applied fields are recorded once more in managedFields: 90,000 labels make a 2.6 MB object. */
const applied = map(90_000);

const CASES: Case[] = [
  { name: 'create: 200,000 labels', run: (n) => req('POST', CM, json(cm(n, {}, { labels }))), status: 201 },
  { name: 'create: 200,000 labels, fieldValidation=Strict', run: (n) => req('POST', `${CM}?fieldValidation=Strict`, json(cm(n, {}, { labels }))), status: 201 },
  { name: 'create: 200,000 annotations (over 256 KiB: 422)', run: (n) => req('POST', CM, json(cm(n, {}, { annotations: labels }))), status: 422 },
  { name: 'create: 200,000 data keys', run: (n) => req('POST', CM, json(cm(n, { data: labels }))), status: 201 },
  { name: 'create: 200,000 finalizers', run: (n) => req('POST', CM, json(cm(n, {}, { finalizers: Array.from({ length: N }, (_, i) => `f/${i}`) }))), status: 201 },
  {
    name: 'create: 20,000 managedFields entries',
    run: (n) => req('POST', CM, json(cm(n, {}, { managedFields: Array.from({ length: 20_000 }, (_, i) => ({ manager: `m${i}`, operation: 'Update', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:data': { [`f:k${i}`]: {} } } })) }))),
    status: 201,
  },
  { name: 'create: a list of 900,000 maps', run: (n) => req('POST', CFG, json(cfg(n, Array.from({ length: 900_000 }, () => ({}))))), status: 201 },
  { name: 'create: a list of 1,400,000 numbers (each one invalid: 422)', run: (n) => req('POST', CFG, json(cfg(n, Array.from({ length: 1_400_000 }, () => 1)))), status: 422 },
  { name: 'create: 200,000 keys under spec', run: (n) => req('POST', CFG, json(cfg(n, labels))), status: 201 },
  { name: 'create: 900 maps nested 500 deep', run: (n) => req('POST', CFG, json(cfg(n, deepLegal()))), status: 201 },
  { name: 'create as YAML: 200,000 labels', run: (n) => req('POST', CM, yaml(cm(n, {}, { labels })), { 'Content-Type': 'application/yaml' }), status: 201 },
  { name: 'update: 200,000 labels', setup: target, run: (n) => req('PUT', `${CM}/${n}`, json(cm(n, {}, { labels }))), status: 200 },
  { name: 'merge patch: 200,000 labels', setup: target, run: (n) => req('PATCH', `${CM}/${n}`, json({ metadata: { labels } }), { 'Content-Type': 'application/merge-patch+json' }), status: 200 },
  { name: 'strategic merge patch: 200,000 labels', setup: target, run: (n) => req('PATCH', `${CM}/${n}`, json({ metadata: { labels } }), { 'Content-Type': 'application/strategic-merge-patch+json' }), status: 200 },
  {
    name: 'strategic merge patch: 20,000 finalizers and their order (merged as a set)',
    setup: target,
    run: (n) => {
      const fins = Array.from({ length: 20_000 }, (_, i) => `f/${i}`);
      return req('PATCH', `${CM}/${n}`, json({ metadata: { finalizers: fins, '$setElementOrder/finalizers': [...fins].reverse() } }), { 'Content-Type': 'application/strategic-merge-patch+json' });
    },
    status: 200,
  },
  { name: 'delete: an object of 200,000 labels', setup: (n) => ok(req('POST', CM, json(cm(n, {}, { labels }))), 'big object'), run: (n) => req('DELETE', `${CM}/${n}`), status: 200 },
  // Writes over an object that is already this large
  { name: 'update: 200,000 labels over 200,000 labels', setup: (n) => ok(req('POST', CM, json(cm(n, {}, { labels }))), 'big object'), run: (n) => req('PUT', `${CM}/${n}`, json(cm(n, {}, { labels: { ...labels, changed: 'yes' } }))), status: 200 },
  { name: 'merge patch: one label of an object of 200,000 labels', setup: (n) => ok(req('POST', CM, json(cm(n, {}, { labels }))), 'big object'), run: (n) => req('PATCH', `${CM}/${n}`, json({ metadata: { labels: { changed: 'yes' } } }), { 'Content-Type': 'application/merge-patch+json' }), status: 200 },
  { name: 'JSON patch: one add of 200,000 labels', setup: target, run: (n) => req('PATCH', `${CM}/${n}`, json([{ op: 'add', path: '/metadata/labels', value: labels }]), { 'Content-Type': 'application/json-patch+json' }), status: 200 },
  {
    name: 'JSON patch: 10,000 operations',
    setup: target,
    run: (n) => req('PATCH', `${CM}/${n}`, json(Array.from({ length: 10_000 }, (_, i) => ({ op: 'add', path: `/data/k${i}`, value: 'v' }))), { 'Content-Type': 'application/json-patch+json' }),
    status: 200,
  },
  { name: 'apply (JSON): 90,000 labels', run: (n) => req('PATCH', `${CM}/${n}?fieldManager=t`, json(cm(n, {}, { labels: applied })), { 'Content-Type': 'application/apply-patch+yaml' }), status: 201 },
  { name: 'apply (YAML): 90,000 labels', run: (n) => req('PATCH', `${CM}/${n}?fieldManager=t`, yaml(cm(n, {}, { labels: applied })), { 'Content-Type': 'application/apply-patch+yaml' }), status: 201 },
  {
    name: 're-apply: 90,000 other labels over 90,000',
    setup: (n) => ok(req('PATCH', `${CM}/${n}?fieldManager=t`, json(cm(n, {}, { labels: applied })), { 'Content-Type': 'application/apply-patch+yaml' }), 'apply'),
    run: (n) => req('PATCH', `${CM}/${n}?fieldManager=t`, json(cm(n, {}, { labels: map(90_000, (i) => `j${i}`) })), { 'Content-Type': 'application/apply-patch+yaml' }),
    status: 200,
  },
  {
    name: 'kubectl apply --server-side: 90,000 labels',
    run: async (n) => {
      const f = join(s.dataDir, `${n}.json`);
      writeFileSync(f, JSON.stringify({ ...cm(n), metadata: { name: n, namespace: NS, labels: applied } }));
      const r = await s.kubectl(['apply', '--server-side', '-f', f]);
      return { status: r.code === 0 ? 200 : 500, text: r.stdout + r.stderr };
    },
    status: 200,
  },
];

/** Reads a watch for `ms`, then closes it; the events' bytes. */
function watchFor(path: string, ms: number, accept?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve) => {
    let bytes = 0;
    const r = httpsRequest({ host: '127.0.0.1', port: s.port, method: 'GET', path, agent, servername: 'localhost', headers: accept ? { Accept: accept } : {} }, (res) => {
      res.on('data', (c: Buffer) => (bytes += c.length));
      setTimeout(() => {
        res.destroy();
        resolve({ status: res.statusCode ?? 0, text: `${bytes} bytes` });
      }, ms);
    });
    r.on('error', (e) => resolve({ status: -1, text: String(e) }));
    r.end();
  });
}

const READS: Case[] = [
  { name: 'get: an object of 200,000 labels', run: () => req('GET', `${CM}/big-0`), status: 200 },
  { name: 'get as YAML', run: () => req('GET', `${CM}/big-0`, undefined, { Accept: 'application/yaml' }), status: 200 },
  { name: 'get as Table', run: () => req('GET', `${CM}/big-0?includeObject=Object`, undefined, { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' }), status: 200 },
  { name: 'list: 4 objects of 200,000 labels', run: () => req('GET', `${CM}?labelSelector=k1`), status: 200 },
  { name: 'list as Table', run: () => req('GET', `${CM}?labelSelector=k1&includeObject=Object`, undefined, { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' }), status: 200 },
  { name: 'list as YAML (two of them)', run: () => req('GET', `${CM}?labelSelector=k1&limit=2`, undefined, { Accept: 'application/yaml' }), status: 200 },
  { name: 'watch from resourceVersion 0', run: () => watchFor(`${CM}?watch=true&resourceVersion=0`, 4000), status: 200 },
  { name: 'watch as Table from resourceVersion 0 (initial events)', run: () => watchFor(`${CM}?watch=true&resourceVersion=0&labelSelector=k1&includeObject=Object`, 4000, TABLE), status: 200 },
  { name: 'watch as PartialObjectMetadata from resourceVersion 0', run: () => watchFor(`${CM}?watch=true&resourceVersion=0&labelSelector=k1`, 4000, POM), status: 200 },
  { name: 'kubectl get', run: async () => { const r = await s.kubectl(['get', 'configmaps', '-n', NS, '-l', 'k1']); return { status: r.code === 0 ? 200 : 500, text: r.stderr }; }, status: 200 },
];

// Watches open while objects of these shapes are created, updated and deleted: every event is
// serialised for every watch (as Table, PartialObjectMetadata or the object). kube encodes each
// event once per format and shares it between watchers (k8s.io/apiserver/pkg/storage/cacher/
// caching_object.go, cachingObject.CacheEncode); each Table row converts the object first
// (k8s.io/apiserver/pkg/endpoints/handlers/watch.go, serveWatchHandler's transform).
const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io';
const POM = 'application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io';
const NSW = 'stall-watch';
const WCM = `/api/v1/namespaces/${NSW}/configmaps`;
const WCFG = `/apis/${GV}/namespaces/${NSW}/configurators`;

interface Watcher {
  /** Resolves once the response headers arrived (the watch is registered). */
  started: Promise<number>;
  /** The events' types so far, in order. */
  types: string[];
  bytes: number;
  waitFor(type: string, ms: number): Promise<boolean>;
  close(): void;
}

/** A watch read as it streams; only each event's type is kept (its first bytes), not its text. */
function openWatch(path: string, accept?: string): Watcher {
  const types: string[] = [];
  let head = '';
  let waiters: (() => void)[] = [];
  let r: ReturnType<typeof httpsRequest>;
  const w: Watcher = {
    types,
    bytes: 0,
    started: new Promise((resolve) => {
      r = httpsRequest({ host: '127.0.0.1', port: s.port, method: 'GET', path, agent: false, ca: agentOpts.ca, cert: agentOpts.cert, key: agentOpts.key, servername: 'localhost', headers: accept ? { Accept: accept } : {} }, (res) => {
        resolve(res.statusCode ?? 0);
        res.on('data', (c: Buffer) => {
          w.bytes += c.length;
          let at = 0;
          for (;;) {
            const nl = c.indexOf(10, at);
            if (head.length < 64) head += c.toString('latin1', at, nl < 0 ? Math.min(c.length, at + 64) : Math.min(nl, at + 64));
            if (nl < 0) break;
            types.push(/^\{"type":"(\w+)"/.exec(head)?.[1] ?? `?${head.slice(0, 40)}`);
            head = '';
            at = nl + 1;
          }
          for (const f of waiters) f();
        });
      });
      r.on('error', () => resolve(-1));
      r.end();
    }),
    async waitFor(type, ms) {
      const until = Date.now() + ms;
      while (!types.includes(type) && Date.now() < until) await new Promise<void>((res) => { waiters.push(res); setTimeout(res, 200); });
      waiters = [];
      return types.includes(type);
    },
    close: () => r.destroy(),
  };
  return w;
}

interface Shape {
  name: string;
  path: string;
  /** The object of this shape. */
  make: (name: string) => unknown;
  /** The same object without the large part. */
  small: (name: string) => unknown;
  /** Finalizers would keep it after the delete: the small one is deleted. */
  finalizers?: boolean;
}
const SHAPES: Shape[] = [
  { name: '200,000 labels', path: WCM, make: (n) => cm(n, {}, { labels }), small: (n) => cm(n, { data: { small: '1' } }) },
  { name: '200,000 data keys', path: WCM, make: (n) => cm(n, { data: labels }), small: (n) => cm(n, { data: { small: '1' } }) }, // (a Table's DATA column counts them)
  { name: '200,000 finalizers', path: WCM, make: (n) => cm(n, {}, { finalizers: Array.from({ length: N }, (_, i) => `f/${i}`) }), small: (n) => cm(n, { data: { small: '1' } }), finalizers: true },
  {
    name: '20,000 managedFields entries',
    path: WCM,
    make: (n) => cm(n, {}, { managedFields: Array.from({ length: 20_000 }, (_, i) => ({ manager: `m${i}`, operation: 'Update', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:data': { [`f:k${i}`]: {} } } })) }),
    small: (n) => cm(n, { data: { small: '1' } }),
  },
  { name: 'a list of 900,000 maps', path: WCFG, make: (n) => cfg(n, Array.from({ length: 900_000 }, () => ({}))), small: (n) => cfg(n, {}) },
  { name: '200,000 keys under spec', path: WCFG, make: (n) => cfg(n, labels), small: (n) => cfg(n, {}) },
  { name: '900 maps nested 500 deep', path: WCFG, make: (n) => cfg(n, deepLegal()), small: (n) => cfg(n, {}) },
];

const REPS: Record<string, { q: string; accept?: string }> = {
  'Table (includeObject=Object)': { q: '&includeObject=Object', accept: TABLE },
  Table: { q: '', accept: TABLE },
  PartialObjectMetadata: { q: '', accept: POM },
  JSON: { q: '' },
};

/**
 * Opens the watches, then creates an object of the shape, updates it to its small form and back,
 * and deletes it: every watch must see every event.
 */
async function watched(shape: Shape, n: string, reps: string[]) {
  const ws = reps.map((rep) => openWatch(`${shape.path}?watch=true&fieldSelector=metadata.name%3D${n}${REPS[rep].q}`, REPS[rep].accept));
  try {
    const codes = await Promise.all(ws.map((w) => w.started));
    if (codes.some((c) => c !== 200)) return { status: 500, text: `watch status ${codes.join(',')}` };
    await ok(req('POST', shape.path, json(shape.make(n))), 'create');
    await ok(req('PUT', `${shape.path}/${n}`, json(shape.small(n))), 'update to small');
    await ok(req('PUT', `${shape.path}/${n}`, json(shape.make(n))), 'update to large');
    if (shape.finalizers) await ok(req('PUT', `${shape.path}/${n}`, json(shape.small(n))), 'update to small');
    await ok(req('DELETE', `${shape.path}/${n}`), 'delete');
    const want = ['ADDED', 'MODIFIED', 'MODIFIED', ...(shape.finalizers ? ['MODIFIED'] : []), 'DELETED'].join(',');
    const seen = await Promise.all(ws.map((w) => w.waitFor('DELETED', 60_000)));
    const wrong = ws.map((w, i) => ({ rep: reps[i], types: w.types.join(','), bytes: w.bytes })).filter((x, i) => !seen[i] || x.types !== want);
    return wrong.length ? { status: 500, text: `events: ${JSON.stringify(wrong)}` } : { status: 200, text: ws.map((w, i) => `${reps[i]} ${w.bytes} bytes`).join('; ') };
  } finally {
    for (const w of ws) w.close();
  }
}

/** `kubectl get -w` (a Table watch) of the namespace, while `fn` runs; kubectl's output. */
async function kubectlWatching(fn: () => Promise<{ status: number; text: string }>, until: RegExp) {
  const child = spawn(KUBECTL, ['--kubeconfig', s.kubeconfig, '--cache-dir', join(s.dataDir, 'kubectl-cache'), 'get', 'configmaps', '-n', NSW, '-w', '--output-watch-events'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KUBECONFIG: s.kubeconfig, HOME: s.dataDir },
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const seen = async (re: RegExp) => {
    for (const until = Date.now() + 60_000; !re.test(out) && Date.now() < until; ) await new Promise((r) => setTimeout(r, 100));
    return re.test(out);
  };
  try {
    if (!(await seen(/anchor/))) return { status: 500, text: `kubectl get -w: ${out}` };
    const r = await fn();
    if (r.status !== 200) return r;
    return (await seen(until)) ? { status: 200, text: out } : { status: 500, text: `kubectl get -w: ${out.slice(0, 400)}` };
  } finally {
    child.kill('SIGTERM');
  }
}

const WATCHES: Case[] = [
  // (the writes alone: a watch case over the bound is the watch's, when these are within it)
  { name: `no watch: ${SHAPES[0].name}`, run: (n: string) => watched(SHAPES[0], n, []), status: 200 },
  ...Object.keys(REPS).map((rep) => ({ name: `watch as ${rep}: an object of 200,000 labels`, run: (n: string) => watched(SHAPES[0], n, [rep]), status: 200 })),
  ...SHAPES.map((shape) => ({ name: `8 watches (2 of each kind): ${shape.name}`, run: (n: string) => watched(shape, n, Object.keys(REPS).flatMap((r) => [r, r])), status: 200 })),
  {
    name: 'kubectl get -w: an object of 200,000 labels',
    run: (n: string) => kubectlWatching(() => watched(SHAPES[0], n, []), new RegExp(`DELETED\\s+${n}\\s`)),
    status: 200,
  },
];

const agentOpts: { ca?: Buffer; cert?: Buffer; key?: Buffer } = {};

t.before(async () => {
  // each case keeps objects of up to 3 MiB: more than the default storage quota (test/storage-quota.test.ts has its own)
  s = await startServer({ args: ['--namespace-storage-quota-mib', '0', '--storage-quota-mib', '0'] });
  const certs = join(s.dataDir, 'certs');
  Object.assign(agentOpts, { ca: readFileSync(join(certs, 'ca.crt')), cert: readFileSync(join(certs, 'admin.crt')), key: readFileSync(join(certs, 'admin.key')) });
  agent = new Agent({ keepAlive: true, maxSockets: 2, ...agentOpts });
  for (const name of [NS, NSW]) await ok(req('POST', '/api/v1/namespaces', json({ apiVersion: 'v1', kind: 'Namespace', metadata: { name } })), 'namespace');
});
t.teardown(async () => {
  agent?.destroy();
  await s?.stop();
});

let seq = 0;
async function bounded(t: any, c: Case) {
  const one = async () => {
    const name = `c${seq++}`;
    await c.setup?.(name);
    return measured(agent, s.port, () => c.run(name));
  };
  const first = await one();
  const todo = c.todo ? { todo: 'not yet within the bound' } : {};
  t.equal(first.value.status, c.status, `${c.name}: ${c.status} (${first.value.text.slice(0, 200)})`, todo);
  if (c.todo) return t.ok(first.ms <= BOUND_MS, `${c.name}: ${Math.round(first.ms)} ms`, todo);
  if (first.ms <= BOUND_MS) return t.pass(`${c.name}: ${Math.round(first.ms)} ms`);
  const again = await reproduced(BOUND_MS, async () => {
    await quiet(agent, s.port);
    return (await one()).ms;
  });
  t.ok(again.ms <= BOUND_MS, `${c.name}: ${Math.round(first.ms)} ms, then alone ${again.seen.join(', ')} ms (bound ${BOUND_MS} ms)`);
}

t.test('writes of the worst bodies under 3 MiB', { timeout: 240_000 }, async (t) => {
  for (const c of CASES) await bounded(t, c);
});

t.test('reads of many such objects', { timeout: 240_000 }, async (t) => {
  for (let i = 0; i < 4; i++) await ok(req('POST', CM, json(cm(`big-${i}`, {}, { labels }))), 'big object');
  for (const c of READS) await bounded(t, c);
});

t.test('watches while such objects are written', { timeout: 600_000 }, async (t) => {
  await ok(req('POST', WCM, json(cm('anchor', { data: { a: '1' } }))), 'anchor'); // (kubectl get -w prints it first)
  for (const c of WATCHES) await bounded(t, c);
});
