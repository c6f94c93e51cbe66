// Raw HTTP watch streams against a started server, as client-go and kubectl use them: resume
// from a resourceVersion, 410 Expired for a version older than the kept history, bookmarks,
// sendInitialEvents, selector-aware ADDED/DELETED, Table streams, timeouts, namespace scoping.
// The server runs with a small history (--history-size 20) so that expiry is cheap to reach;
// every resume below happens within fewer writes than that.
import { readFileSync } from 'node:fs';
import https from 'node:https';
import t from 'tap';
import { type HttpResult, startServer } from './helpers/server.js';

type T = Parameters<Parameters<typeof t.test>[0]>[0];
type Obj = Record<string, any>;
interface WatchEvent {
  type: string;
  object: Obj;
}

const GROUP = 'delivery.ocm.software';
const GV = `${GROUP}/v1alpha1`;
const API = `/apis/${GV}`;
const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io';
const MERGE = { 'Content-Type': 'application/merge-patch+json' };

const server = await startServer({ args: ['--history-size', '20'] });
const watches: Watch[] = [];
t.teardown(async () => {
  for (const w of watches) w.close();
  await server.stop();
});
const req = server.request;
const certDir = `${server.dataDir}/certs/`;
const tlsOpts = { ca: readFileSync(certDir + 'ca.crt'), cert: readFileSync(certDir + 'admin.crt'), key: readFileSync(certDir + 'admin.key') };

/** Creates namespaces (a standalone server refuses writes into missing ones, as kube does). */
async function ensureNamespaces(names: string[]) {
  for (const name of names) {
    const r = await req('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } });
    if (r.status !== 201 && r.status !== 409 && r.status !== 404) throw new Error(`create namespace ${name}: ${r.status} ${r.body}`);
  }
}
await ensureNamespaces(['w1', 'w2', 'w3', 'w4', 'w5a', 'w5b', 'w6', 'w7', 'w10', 'w11']);

const col = (ns: string, q = '') => `${API}/namespaces/${ns}/ocmcomponents${q}`;
const one = (ns: string, name: string, q = '') => `${col(ns)}/${name}${q}`;

function comp(name: string, labels?: Record<string, string>): Obj {
  return {
    apiVersion: GV,
    kind: 'OCMComponent',
    metadata: { name, ...(labels ? { labels } : {}) },
    spec: { name: 'github.com/acme/app', version: 'v1.0.0', repository: { url: 'ghcr.io/acme' } },
  };
}

async function create(ns: string, name: string, labels?: Record<string, string>): Promise<Obj> {
  const res = await req('POST', col(ns), { body: comp(name, labels) });
  if (res.status !== 201) throw new Error(`create ${ns}/${name}: ${res.status} ${res.body}`);
  return res.json();
}
async function patch(ns: string, name: string, body: Obj, sub = ''): Promise<Obj> {
  const res = await req('PATCH', one(ns, name, sub), { body, headers: MERGE });
  if (res.status !== 200) throw new Error(`patch ${ns}/${name}: ${res.status} ${res.body}`);
  return res.json();
}
async function del(ns: string, name: string): Promise<Obj> {
  const res = await req('DELETE', one(ns, name));
  if (res.status !== 200) throw new Error(`delete ${ns}/${name}: ${res.status} ${res.body}`);
  return res.json();
}
async function listRV(ns?: string): Promise<string> {
  const res = await req('GET', ns ? col(ns) : `${API}/ocmcomponents`);
  return res.json().metadata.resourceVersion;
}

/** A streaming watch: newline-delimited JSON events as they arrive. */
class Watch {
  events: WatchEvent[] = [];
  status = 0;
  headers: Record<string, string | string[] | undefined> = {};
  /** The body when the server did not answer 200. */
  body = '';
  readonly ended: Promise<void>;
  readonly started: Promise<void>;
  private waiters = new Set<() => void>();
  private req!: ReturnType<typeof https.request>;
  private done = false;

  constructor(path: string, headers: Record<string, string> = {}) {
    let endedResolve!: () => void;
    this.ended = new Promise((r) => (endedResolve = r));
    this.started = new Promise((startedResolve, startedReject) => {
      this.req = https.request(
        { host: '127.0.0.1', port: server.port, path, method: 'GET', servername: 'localhost', agent: false, headers, ...tlsOpts },
        (res) => {
          this.status = res.statusCode ?? 0;
          this.headers = res.headers;
          startedResolve();
          let buf = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => {
            if (this.status !== 200) {
              this.body += chunk;
              return;
            }
            buf += chunk;
            let i;
            while ((i = buf.indexOf('\n')) >= 0) {
              const line = buf.slice(0, i).trim();
              buf = buf.slice(i + 1);
              if (line) this.events.push(JSON.parse(line));
            }
            this.notify();
          });
          const finish = () => {
            this.done = true;
            endedResolve();
            this.notify();
          };
          res.on('end', finish);
          res.on('close', finish);
        },
      );
      this.req.on('error', (err) => {
        this.done = true;
        endedResolve();
        this.notify();
        startedReject(err);
      });
      this.req.end();
    });
    watches.push(this);
  }

  private notify() {
    for (const w of [...this.waiters]) w();
  }

  /** Waits until `pred(events)` holds; fails after timeoutMs with what arrived. */
  async until(pred: (evs: WatchEvent[]) => boolean, timeoutMs = 5000, what = 'events'): Promise<WatchEvent[]> {
    await this.started;
    if (pred(this.events)) return this.events;
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred(this.events)) {
          cleanup();
          resolve(this.events);
        } else if (this.done) {
          cleanup();
          reject(new Error(`stream ended waiting for ${what}; got ${this.summary()}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${this.summary()}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
    });
  }

  /** Waits for at least n events. */
  count(n: number, timeoutMs = 5000) {
    return this.until((e) => e.length >= n, timeoutMs, `${n} events`);
  }

  /** Resolves after ms, for checking that nothing else arrives. */
  async quiet(ms = 300): Promise<WatchEvent[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.events;
  }

  summary(): string {
    return JSON.stringify(this.events.map(short));
  }

  close() {
    this.req.destroy();
  }
}

const short = (e: WatchEvent) => `${e.type} ${e.object?.metadata?.name ?? e.object?.kind ?? ''}@${e.object?.metadata?.resourceVersion ?? ''}`;
const typesNames = (evs: WatchEvent[]) => evs.map((e) => `${e.type} ${e.object.metadata?.name}`);
const rvs = (evs: WatchEvent[]) => evs.map((e) => Number(e.object.metadata.resourceVersion));
const nonBookmark = (evs: WatchEvent[]) => evs.filter((e) => e.type !== 'BOOKMARK');

function isIncreasing(t: T, evs: WatchEvent[], what = 'resourceVersions strictly increase') {
  const r = rvs(evs);
  t.ok(
    r.every((v, i) => Number.isInteger(v) && v > 0 && (i === 0 || v > r[i - 1])),
    `${what}: ${r.join(',')}`,
  );
}

function isStatus(t: T, res: HttpResult | { status: number; body: string }, code: number, reason: string, what = ''): Obj {
  t.equal(res.status, code, `${what} HTTP ${code} (got ${res.status}: ${res.body.slice(0, 300)})`);
  let s: Obj = {};
  try {
    s = JSON.parse(res.body);
  } catch {
    t.fail(`${what} body is a Status, not ${res.body.slice(0, 200)}`);
  }
  t.match(s, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, code }, `${what} is a Status ${code} ${reason}`);
  return s;
}

// Started first so that the ~10 s bookmark interval elapses while the other tests run.
const bookmarkWatch = new Watch(`${API}/ocmcomponents?watch=1&allowWatchBookmarks=true&resourceVersion=${await listRV()}`);
const bookmarkStart = Date.now();

// ---------------------------------------------------------------------------------------------

t.test('watch from a list resourceVersion gets exactly the later events, in order', async (t) => {
  await create('w1', 'before');
  const rv = await listRV('w1');
  const live = new Watch(col('w1', `?watch=true&resourceVersion=${rv}`));
  await live.started;
  t.equal(live.status, 200, 'watch answers 200');
  t.match(String(live.headers['content-type']), /^application\/json/, 'JSON stream');
  t.equal(live.headers['transfer-encoding'], 'chunked', 'chunked');

  const a = await create('w1', 'a');
  const b = await create('w1', 'b');
  await create('w1', 'c');
  const a2 = await patch('w1', 'a', { metadata: { labels: { step: '2' } } });
  await patch('w1', 'b', { status: { resolvedVersion: 'v1.0.0' } }, '/status');
  const bd = await del('w1', 'b');
  const expected = ['ADDED a', 'ADDED b', 'ADDED c', 'MODIFIED a', 'MODIFIED b', 'DELETED b'];

  const evs = await live.count(expected.length);
  t.same(typesNames(await live.quiet()), expected, 'live: exactly the later events, nothing before the list rv');
  isIncreasing(t, evs);
  t.ok(rvs(evs)[0] > Number(rv), 'first event is newer than the list');
  t.match(evs[0].object, { apiVersion: GV, kind: 'OCMComponent', metadata: { uid: a.metadata.uid }, spec: { name: 'github.com/acme/app' } }, 'events carry the full object');
  t.equal(evs[3].object.metadata.resourceVersion, a2.metadata.resourceVersion, 'MODIFIED carries the object at its new resourceVersion');
  t.equal(evs[4].object.status?.resolvedVersion, 'v1.0.0', 'status writes are MODIFIED events');
  t.equal(evs[5].object.metadata.uid, b.metadata.uid);
  t.ok(Number(evs[5].object.metadata.resourceVersion) >= Number(bd.metadata.resourceVersion), 'DELETED carries the deletion resourceVersion');

  // The same, replayed from the history by a watch opened after the writes.
  const replay = new Watch(col('w1', `?watch=true&resourceVersion=${rv}`));
  await replay.count(expected.length);
  t.same(typesNames(await replay.quiet()), expected, 'replayed from the history: the same events');
  t.same(rvs(replay.events), rvs(evs), 'with the same resourceVersions');

  // Resume from the middle: every later event exactly once.
  const mid = evs[2].object.metadata.resourceVersion;
  const resumed = new Watch(col('w1', `?watch=true&resourceVersion=${mid}`));
  await resumed.count(3);
  t.same(typesNames(await resumed.quiet()), expected.slice(3), 'resume from the middle: every later event exactly once');
  await create('w1', 'd');
  await resumed.count(4);
  t.same(typesNames(await resumed.quiet()), [...expected.slice(3), 'ADDED d'], 'then live events');
  isIncreasing(t, resumed.events);
  for (const w of [live, replay, resumed]) w.close();
});

t.test('watch without a resourceVersion starts with the current state', async (t) => {
  await create('w2', 'x');
  await create('w2', 'y');
  const w = new Watch(col('w2', '?watch=1'));
  await w.count(2);
  t.same(typesNames(w.events).sort(), ['ADDED x', 'ADDED y'], 'ADDED for every existing object');
  await del('w2', 'x');
  await w.count(3);
  t.same(typesNames(await w.quiet()).slice(2), ['DELETED x'], 'then live events');
  const w0 = new Watch(col('w2', '?watch=1&resourceVersion=0'));
  await w0.count(1);
  t.same(typesNames(await w0.quiet()), ['ADDED y'], 'resourceVersion=0 also starts with the current state');
  w.close();
  w0.close();
});

t.test('label-selector watch: objects moving out of / into the selector', async (t) => {
  const rv = await listRV('w3');
  const w = new Watch(col('w3', `?watch=1&resourceVersion=${rv}&labelSelector=${encodeURIComponent('app=x')}`));
  await w.started;
  await create('w3', 'plain');
  await create('w3', 'sel', { app: 'x' });
  await patch('w3', 'sel', { spec: { suspend: true } });
  await patch('w3', 'sel', { metadata: { labels: { app: 'y' } } });
  await patch('w3', 'sel', { spec: { suspend: false } }); // outside: not seen
  await patch('w3', 'sel', { metadata: { labels: { app: 'x' } } });
  await patch('w3', 'plain', { metadata: { labels: { app: 'x' } } });
  await del('w3', 'sel');
  const expected = ['ADDED sel', 'MODIFIED sel', 'DELETED sel', 'ADDED sel', 'ADDED plain', 'DELETED sel'];
  await w.count(expected.length);
  t.same(typesNames(await w.quiet()), expected, 'relabelled out arrives as DELETED, back in as ADDED');
  t.equal(w.events[2].object.metadata.labels.app, 'y', 'the DELETED event carries the object as it is now');
  isIncreasing(t, w.events);
  w.close();
});

t.test('fieldSelector metadata.name watch (what kubectl wait uses)', async (t) => {
  await create('w4', 'target');
  const list = (await req('GET', col('w4', '?fieldSelector=metadata.name%3Dtarget'))).json();
  t.same(
    list.items.map((i: Obj) => i.metadata.name),
    ['target'],
  );
  const w = new Watch(col('w4', `?watch=1&fieldSelector=metadata.name%3Dtarget&resourceVersion=${list.metadata.resourceVersion}&allowWatchBookmarks=true`));
  await w.started;
  await create('w4', 'other');
  await patch('w4', 'other', { metadata: { labels: { a: 'b' } } });
  const ready = { type: 'Ready', status: 'True', reason: 'Succeeded', message: 'ok', lastTransitionTime: '2024-01-01T00:00:00Z' };
  await patch('w4', 'target', { status: { conditions: [ready] } }, '/status');
  await w.until((e) => nonBookmark(e).length >= 1);
  t.same(typesNames(nonBookmark(await w.quiet())), ['MODIFIED target'], 'only the named object');
  t.same(nonBookmark(w.events)[0].object.status.conditions, [ready], 'with the condition kubectl waits for');
  // All namespaces, by name and namespace.
  const wa = new Watch(`${API}/ocmcomponents?watch=1&fieldSelector=${encodeURIComponent('metadata.name=target,metadata.namespace=w4')}&resourceVersion=${list.metadata.resourceVersion}`);
  await wa.count(1);
  t.same(typesNames(await wa.quiet()), ['MODIFIED target']);
  w.close();
  wa.close();
});

t.test('deletion with finalizers: MODIFIED, then DELETED once the last finalizer is gone', async (t) => {
  const rv = await listRV('w11');
  const w = new Watch(col('w11', `?watch=1&resourceVersion=${rv}`));
  await w.started;
  await req('POST', col('w11'), { body: { ...comp('fin'), metadata: { name: 'fin', finalizers: ['example.com/hold'] } } });
  await del('w11', 'fin');
  await patch('w11', 'fin', { metadata: { finalizers: null } });
  await w.count(3);
  t.same(typesNames(await w.quiet()), ['ADDED fin', 'MODIFIED fin', 'DELETED fin']);
  t.ok(w.events[1].object.metadata.deletionTimestamp, 'MODIFIED carries the deletionTimestamp');
  isIncreasing(t, w.events);
  w.close();
});

t.test('watch across all namespaces vs one namespace', async (t) => {
  const rv = await listRV();
  const all = new Watch(`${API}/ocmcomponents?watch=1&resourceVersion=${rv}`);
  const nsA = new Watch(col('w5a', `?watch=1&resourceVersion=${rv}`));
  await Promise.all([all.started, nsA.started]);
  await create('w5a', 'one');
  await create('w5b', 'two');
  await create('w5a', 'three');
  await all.count(3);
  await nsA.count(2);
  t.same(
    (await all.quiet()).map((e) => `${e.object.metadata.namespace}/${e.object.metadata.name}`),
    ['w5a/one', 'w5b/two', 'w5a/three'],
    'the cluster-wide watch sees every namespace',
  );
  t.same(
    (await nsA.quiet()).map((e) => `${e.object.metadata.namespace}/${e.object.metadata.name}`),
    ['w5a/one', 'w5a/three'],
    'the namespaced watch sees only its namespace',
  );
  // A namespace whose name is a prefix of another's must not leak.
  const w5 = new Watch(col('w5', `?watch=1&resourceVersion=${rv}`));
  await w5.quiet(200);
  t.same(w5.events, [], 'namespace w5 does not see w5a or w5b');
  for (const w of [all, nsA, w5]) w.close();
});

t.test('sendInitialEvents', async (t) => {
  await create('w6', 'i1');
  await create('w6', 'i2');
  const w = new Watch(col('w6', '?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion='));
  await w.until((e) => e.some((x) => x.type === 'BOOKMARK'), 5000, 'the initial-events-end bookmark');
  const evs = w.events;
  const bm = evs.findIndex((e) => e.type === 'BOOKMARK');
  t.same(typesNames(evs.slice(0, bm)).sort(), ['ADDED i1', 'ADDED i2'], 'ADDED for every existing object first');
  t.match(evs[bm].object, { kind: 'OCMComponent', apiVersion: GV, metadata: { resourceVersion: /^\d+$/, annotations: { 'k8s.io/initial-events-end': 'true' } } }, 'then a BOOKMARK annotated k8s.io/initial-events-end');
  t.ok(Number(evs[bm].object.metadata.resourceVersion) >= Math.max(...rvs(evs.slice(0, bm))), 'bookmark rv covers the initial events');
  await create('w6', 'i3');
  await w.until((e) => e.length > bm + 1);
  t.same(typesNames(nonBookmark((await w.quiet()).slice(bm + 1))), ['ADDED i3'], 'then live events');

  const w0 = new Watch(col('w6', '?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=0'));
  await w0.until((e) => e.some((x) => x.type === 'BOOKMARK'));
  t.equal(w0.events.filter((e) => e.type === 'ADDED').length, 3, 'resourceVersion=0 works too');

  const sel = new Watch(col('w6', `?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&fieldSelector=metadata.name%3Di2`));
  await sel.until((e) => e.some((x) => x.type === 'BOOKMARK'));
  t.same(typesNames(nonBookmark(sel.events)), ['ADDED i2'], 'initial events honour selectors');

  // sendInitialEvents=false: a plain watch from "now" (kube: resourceVersion unset or 0 means any,
  // i.e. the current one) - no initial events, no replay of the history.
  for (const rvq of ['', '&resourceVersion=', '&resourceVersion=0']) {
    const nf = new Watch(col('w6', `?watch=1&sendInitialEvents=false&resourceVersionMatch=NotOlderThan${rvq}`));
    await nf.started;
    t.equal(nf.status, 200, `sendInitialEvents=false${rvq} answers 200`);
    await patch('w6', 'i1', { metadata: { labels: { rv: rvq.length ? String(rvq.length) : 'none' } } });
    await nf.count(1);
    t.same(typesNames(await nf.quiet(150)), ['MODIFIED i1'], `sendInitialEvents=false${rvq}: only events after the watch started`);
    nf.close();
  }

  // A resourceVersion newer than the server's: kube waits up to 3 s, then an ERROR event with a
  // 504 Timeout Status ("Too large resource version"); a client must not be told 410 (re-list).
  const future = Number(await listRV()) + 1000;
  const tooNew = new Watch(col('w6', `?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&resourceVersion=${future}`));
  await tooNew.started;
  await Promise.race([tooNew.ended, new Promise((r) => setTimeout(r, 6000))]);
  const err = tooNew.events.find((e) => e.type === 'ERROR');
  t.match(err?.object, { kind: 'Status', code: 504, reason: 'Timeout', message: /Too large resource version/ }, 'too new resourceVersion: ERROR event with 504 Timeout');
  tooNew.close();

  const noMatch = await req('GET', col('w6', '?watch=1&sendInitialEvents=true&allowWatchBookmarks=true'));
  isStatus(t, noMatch, 400, 'BadRequest', 'sendInitialEvents without resourceVersionMatch');
  const noBm = await req('GET', col('w6', '?watch=1&sendInitialEvents=true&resourceVersionMatch=NotOlderThan'));
  isStatus(t, noBm, 400, 'BadRequest', 'sendInitialEvents without allowWatchBookmarks');
  const rvm = await req('GET', col('w6', '?watch=1&resourceVersionMatch=NotOlderThan'));
  isStatus(t, rvm, 400, 'BadRequest', 'resourceVersionMatch without sendInitialEvents');
  for (const x of [w, w0, sel]) x.close();
});

t.test('Table watch streams Table objects with one row', async (t) => {
  const rv = await listRV('w7');
  const w = new Watch(col('w7', `?watch=1&resourceVersion=${rv}`), { Accept: `${TABLE},application/json` });
  await w.started;
  t.equal(w.status, 200);
  await create('w7', 'tab-a', { k: 'v' });
  await create('w7', 'tab-b');
  await del('w7', 'tab-a');
  await w.count(3);
  t.same(
    w.events.map((e) => e.type),
    ['ADDED', 'ADDED', 'DELETED'],
  );
  for (const e of w.events) {
    t.match(e.object, { kind: 'Table', apiVersion: 'meta.k8s.io/v1' }, `${e.type} is a Table`);
    t.equal(e.object.rows.length, 1, 'with one row');
  }
  const first = w.events[0].object;
  t.equal(first.columnDefinitions[0].name, 'Name', 'the first event carries the column definitions');
  t.equal(first.rows[0].cells[0], 'tab-a');
  t.equal(first.rows[0].cells.length, first.columnDefinitions.length);
  t.match(first.rows[0].object, { kind: 'PartialObjectMetadata', metadata: { name: 'tab-a', labels: { k: 'v' }, resourceVersion: /^\d+$/ } }, 'row carries PartialObjectMetadata');
  t.equal(w.events[1].object.rows[0].cells[0], 'tab-b');

  const pm = new Watch(col('w7', `?watch=1&resourceVersion=${rv}`), { Accept: 'application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io,application/json' });
  await pm.count(3);
  t.match(pm.events[0].object, { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'tab-a' } }, 'PartialObjectMetadata watch');
  t.notOk(pm.events[0].object.spec);
  const bad = await req('GET', col('w7', '?watch=1'), { headers: { Accept: 'application/vnd.kubernetes.protobuf' } });
  isStatus(t, bad, 406, 'NotAcceptable', 'protobuf-only watch');
  w.close();
  pm.close();
});

t.test('timeoutSeconds ends the stream', async (t) => {
  const start = Date.now();
  const w = new Watch(col('w8', `?watch=1&timeoutSeconds=1&resourceVersion=${await listRV()}`));
  await w.started;
  t.equal(w.status, 200);
  await Promise.race([w.ended, new Promise((r) => setTimeout(r, 5000))]);
  const took = Date.now() - start;
  t.ok(took >= 900 && took < 3000, `stream ended after about a second (${took} ms)`);
});

t.test('bad watch parameters', async (t) => {
  isStatus(t, await req('GET', col('w9', '?watch=1&resourceVersion=abc')), 400, 'BadRequest', 'non-numeric resourceVersion');
  isStatus(t, await req('GET', col('w9', '?watch=1&labelSelector=a%20in%20b')), 400, 'BadRequest', 'bad label selector');
  isStatus(t, await req('GET', col('w9', '?watch=1&fieldSelector=spec.version%3Dv1')), 400, 'BadRequest', 'unsupported field selector');
  // apimachinery/pkg/runtime/conversion.go Convert_Slice_string_To_bool: only "0" and "false" (any case) are false
  const maybe = await req('GET', col('w9', '?watch=maybe&timeoutSeconds=1'));
  t.equal(maybe.status, 200, 'watch=maybe is a watch, as in kube');
  t.notOk(maybe.body.includes('"kind":"OCMComponentList"'), 'not a list');
});

t.test('too old resourceVersion: ERROR event with 410 Expired; old continue token 410', async (t) => {
  const old = await listRV();
  for (let i = 0; i < 10; i++) await create('w10', `p-${i}`);
  const page = (await req('GET', col('w10', '?limit=3'))).json();
  t.ok(page.metadata.continue, 'a continue token');
  // 100 writes, 10 at a time (they share group commits, so this stays fast on a slow disk).
  for (let i = 0; i < 100; i += 10) await Promise.all(Array.from({ length: 10 }, (_, j) => patch('w10', `p-${j}`, { metadata: { labels: { n: String(i + j) } } })));

  const w = new Watch(col('w10', `?watch=1&resourceVersion=${old}`));
  await w.started;
  t.equal(w.status, 200, 'the watch itself answers 200 (as kube-apiserver’s watch cache does)');
  await w.count(1);
  await w.ended;
  t.equal(w.events.length, 1, 'exactly one event, then the stream ends');
  t.equal(w.events[0].type, 'ERROR');
  t.match(w.events[0].object, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410 }, 'a 410 Expired Status');
  t.match(w.events[0].object.message, /too old resource version/);

  const wAll = new Watch(`${API}/ocmcomponents?watch=1&resourceVersion=${old}`);
  await wAll.count(1);
  t.match(wAll.events[0], { type: 'ERROR', object: { code: 410, reason: 'Expired' } }, 'cluster-wide too');

  const recent = await listRV();
  const ok = new Watch(col('w10', `?watch=1&resourceVersion=${recent}`));
  await ok.started;
  await patch('w10', 'p-1', { metadata: { labels: { fresh: 'yes' } } });
  await ok.count(1);
  t.same(typesNames(ok.events), ['MODIFIED p-1'], 'a recent resourceVersion still works');
  ok.close();

  const next = await req('GET', col('w10', `?limit=3&continue=${encodeURIComponent(page.metadata.continue)}`));
  if (process.env.TEST_STORAGE === 'etcd') {
    // On etcd a page reads at the token's revision until etcd compacts it (as kube-apiserver on etcd).
    t.equal(next.status, 200, 'on etcd an old continue token reads at its revision');
  } else {
    const s = isStatus(t, next, 410, 'Expired', 'continue token older than the history');
    t.match(s.message, /continue/);
  }
});

t.test('bookmarks with allowWatchBookmarks=true', async (t) => {
  try {
    await bookmarkWatch.until((e) => e.some((x) => x.type === 'BOOKMARK'), Math.max(1000, 13000 - (Date.now() - bookmarkStart)), 'a BOOKMARK');
  } catch (err) {
    t.fail(`${(err as Error).message} (${Date.now() - bookmarkStart} ms after the watch started; server exit code ${server.proc.exitCode})`, {
      serverLog: server.logs.filter((l) => !l.includes('"level":30')).slice(-20),
    });
    return;
  }
  const bm = bookmarkWatch.events.find((e) => e.type === 'BOOKMARK')!;
  t.match(bm.object, { kind: 'OCMComponent', apiVersion: GV, metadata: { resourceVersion: /^\d+$/ } }, 'BOOKMARK carries an object of the kind with a resourceVersion');
  t.notOk(bm.object.spec, 'and nothing else');
  const before = bookmarkWatch.events.slice(0, bookmarkWatch.events.indexOf(bm));
  if (before.length) t.ok(Number(bm.object.metadata.resourceVersion) >= Math.max(...rvs(before)), 'bookmark rv is not older than the events before it');
  t.notOk(
    nonBookmark(bookmarkWatch.events).length === 0,
    'the bookmark watch also got the data events',
  );
});
