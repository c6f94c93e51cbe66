// Crash safety: several keep-alive HTTPS clients create and update OCMComponents while the server
// is killed with SIGKILL at random moments (3 times) and restarted on the same data dir. Checked:
//  - every write that got a 2xx is there after the restart, with the content of the latest
//    acknowledged write (a write in flight at the kill may or may not have happened; either way it
//    is resolved against what the server has, and a write answered with an error never happened);
//  - resourceVersions only grow: every acknowledged write has a resourceVersion above every one
//    any client had seen before it was sent, across restarts;
//  - a watch resumed after each restart from the last resourceVersion it saw gets every later
//    event exactly once (no gap, no duplicate, no event of a write that did not happen) or an
//    ERROR 410; a watch from the first resourceVersion replays the whole history in order;
//  - with a small --history-size, a resume from a resourceVersion that is gone is a 410, not a gap.
import { rmSync } from 'node:fs';
import t, { type Test } from 'tap';
import { ApiClient, openWatch, sleep, type WatchLine } from './helpers/load-client.js';
import { startServer, tempDir, type TestServer } from './helpers/server.js';

const NS = 'crash';
const BASE = `/apis/delivery.ocm.software/v1alpha1/namespaces/${NS}/ocmcomponents`;
const CLIENTS = 4;
const KILLS = 3;

interface Known {
  token: string;
  rv: number;
  version: string;
  obj: any;
}
interface Pending {
  name: string;
  token: string;
  version: string;
  create: boolean;
}
interface ClientState {
  id: number;
  next: number;
  objects: Map<string, Known>;
  pending?: Pending;
}

const dataDir = tempDir('ocm-crash-');
let s: TestServer;
let api: ApiClient;
let down = false;
let seq = 0;
let maxSeenRV = 0;
const violations: string[] = [];
const clients: ClientState[] = Array.from({ length: CLIENTS }, (_, id) => ({ id, next: 0, objects: new Map() }));
/** Writes that happened: `name|token` -> resourceVersion. */
const happened = new Map<string, number>();
const rejected = new Set<string>();
const counts = { acked: 0, rejected: 0, inFlightAtKill: 0, inFlightApplied: 0, inFlightLost: 0, transportErrors: 0 };
const rvLog: { phase: number; rv: number }[] = [];
let phase = 0;

const key = (name: string, token: string) => `${name}|${token}`;
const tokenOf = (o: any): string => o?.metadata?.annotations?.token;

function componentBody(name: string, token: string, version: string) {
  return {
    apiVersion: 'delivery.ocm.software/v1alpha1',
    kind: 'OCMComponent',
    metadata: { name, namespace: NS, annotations: { token } },
    spec: { name: 'ocm.software/crash/app', version, interval: '10m', repository: { url: 'ghcr.io/acme/ocm' } },
  };
}

async function runClient(st: ClientState): Promise<void> {
  while (!down) {
    const n = seq++;
    const token = `t${st.id}-${n}`;
    const version = `1.${st.id}.${n}`;
    const create = st.objects.size < 3 || Math.random() < 0.25;
    let name: string;
    let method: string;
    let path: string;
    let body: unknown;
    let ct = 'application/json';
    if (create) {
      name = `c${st.id}-${st.next++}`;
      method = 'POST';
      path = BASE;
      body = componentBody(name, token, version);
    } else {
      const names = [...st.objects.keys()];
      name = names[Math.floor(Math.random() * names.length)];
      const cur = st.objects.get(name)!;
      path = `${BASE}/${name}`;
      if (Math.random() < 0.5) {
        method = 'PUT'; // optimistic concurrency: with the resourceVersion last acknowledged
        const o = structuredClone(cur.obj);
        o.metadata.annotations = { ...o.metadata.annotations, token };
        o.spec.version = version;
        body = o;
      } else {
        method = 'PATCH';
        ct = 'application/merge-patch+json';
        body = { metadata: { annotations: { token } }, spec: { version } };
      }
    }
    st.pending = { name, token, version, create };
    const sentMax = maxSeenRV;
    let a;
    try {
      a = await api.send(method, path, body, ct);
    } catch {
      counts.transportErrors++;
      return; // outcome unknown: resolved after the restart
    }
    if (a.status >= 200 && a.status < 300) {
      const o = JSON.parse(a.text);
      const rv = Number(o.metadata.resourceVersion);
      if (!(rv > sentMax)) violations.push(`${method} ${name} (${token}) acknowledged with resourceVersion ${rv}, not above ${sentMax} seen before it was sent`);
      if (tokenOf(o) !== token || o.spec.version !== version) violations.push(`${method} ${name} answered with content ${tokenOf(o)}/${o.spec.version}, sent ${token}/${version}`);
      st.objects.set(name, { token, rv, version, obj: o });
      happened.set(key(name, token), rv);
      rvLog.push({ phase, rv });
      maxSeenRV = Math.max(maxSeenRV, rv);
      counts.acked++;
    } else {
      counts.rejected++;
      rejected.add(key(name, token));
      if (create) st.next--; // the name is free again
      violations.push(`${method} ${name} answered ${a.status}: ${a.text.slice(0, 200)}`);
    }
    st.pending = undefined;
  }
}

/** After a restart: what each client knows must be there; what was in flight is looked up. */
async function reconcileWithServer(t: Test) {
  const list = JSON.parse((await api.send('GET', BASE)).text);
  const listRV = Number(list.metadata.resourceVersion);
  if (listRV < maxSeenRV) violations.push(`after restart ${phase} the store's resourceVersion is ${listRV}, below ${maxSeenRV} seen before the kill`);
  const onServer = new Map<string, any>(list.items.map((o: any) => [o.metadata.name, o]));
  let checked = 0;
  for (const st of clients) {
    const p = st.pending;
    if (p) counts.inFlightAtKill++;
    for (const [name, known] of st.objects) {
      const o = onServer.get(name);
      checked++;
      if (!o) {
        violations.push(`${name}: acknowledged (last ${known.token} at rv ${known.rv}) but gone after restart ${phase}`);
        continue;
      }
      const tok = tokenOf(o);
      if (tok === known.token) {
        if (Number(o.metadata.resourceVersion) !== known.rv || o.spec.version !== known.version)
          violations.push(`${name}: has ${tok} at rv ${o.metadata.resourceVersion} version ${o.spec.version}, acknowledged at rv ${known.rv} version ${known.version}`);
      } else if (p && p.name === name && tok === p.token && o.spec.version === p.version) {
        const rv = Number(o.metadata.resourceVersion);
        if (!(rv > known.rv)) violations.push(`${name}: the in-flight write ${p.token} has rv ${rv}, not above the acknowledged ${known.rv}`);
        st.objects.set(name, { token: tok, rv, version: p.version, obj: o });
        happened.set(key(name, tok), rv);
        maxSeenRV = Math.max(maxSeenRV, rv);
        counts.inFlightApplied++;
      } else {
        violations.push(`${name}: has ${tok} (version ${o.spec.version}) after restart ${phase}, but the latest acknowledged write is ${known.token}${p?.name === name ? ` (in flight: ${p.token})` : ''}`);
      }
    }
    if (p && p.create && !st.objects.has(p.name)) {
      const o = onServer.get(p.name);
      if (o) {
        if (tokenOf(o) !== p.token) violations.push(`${p.name}: in-flight create ${p.token} but the server has ${tokenOf(o)}`);
        const rv = Number(o.metadata.resourceVersion);
        st.objects.set(p.name, { token: p.token, rv, version: p.version, obj: o });
        happened.set(key(p.name, p.token), rv);
        maxSeenRV = Math.max(maxSeenRV, rv);
        counts.inFlightApplied++;
      } else counts.inFlightLost++;
    } else if (p && !p.create && st.objects.get(p.name)?.token !== p.token) counts.inFlightLost++;
    st.pending = undefined;
  }
  for (const [name, o] of onServer) {
    const k = key(name, tokenOf(o));
    if (!happened.has(k)) violations.push(`${name}: the server has ${tokenOf(o)}, a write nobody sent or that was refused${rejected.has(k) ? ' (it was answered with an error)' : ''}`);
  }
  t.ok(checked > 0, `restart ${phase}: ${checked} acknowledged objects checked against the server`);
}

// ---- the resumed watch --------------------------------------------------------------------

const watched: { type: string; name: string; token: string; rv: number }[] = [];
let watchRV = 0;
let startRV = 0;
const expiredWindows: [number, number][] = [];
let watchErrors: string[] = [];
let watch: ReturnType<typeof openWatch> | undefined;

function onWatchLine(l: WatchLine) {
  if (l.type === 'BOOKMARK') {
    watchRV = Math.max(watchRV, Number(l.object.metadata.resourceVersion));
    return;
  }
  if (l.type === 'ERROR') {
    watchErrors.push(`${l.object.code} ${l.object.reason}: ${l.object.message}`);
    return;
  }
  const rv = Number(l.object.metadata.resourceVersion);
  if (!(rv > watchRV)) violations.push(`watch: ${l.type} ${l.object.metadata.name} at rv ${rv} after rv ${watchRV} (a duplicate or out of order)`);
  watched.push({ type: l.type, name: l.object.metadata.name, token: tokenOf(l.object), rv });
  watchRV = Math.max(watchRV, rv);
  maxSeenRV = Math.max(maxSeenRV, rv);
}

async function resumeWatch() {
  watchErrors = [];
  watch = openWatch(s.port, dataDir, `${BASE}?watch=1&allowWatchBookmarks=true&resourceVersion=${watchRV}`, onWatchLine);
  // A 410 arrives at once; give it a moment, then re-list if it came (as client-go's reflector does).
  await sleep(300);
  if (watchErrors.some((e) => e.startsWith('410'))) {
    const list = JSON.parse((await api.send('GET', BASE)).text);
    const rv = Number(list.metadata.resourceVersion);
    expiredWindows.push([watchRV, rv]);
    watchRV = rv;
    watch = openWatch(s.port, dataDir, `${BASE}?watch=1&allowWatchBookmarks=true&resourceVersion=${watchRV}`, onWatchLine);
  }
}

t.teardown(async () => {
  down = true;
  watch?.close();
  api?.close();
  await s?.stop().catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
});

t.test(`${CLIENTS} clients writing through ${KILLS} kill -9s: nothing acknowledged is lost`, async (t) => {
  s = await startServer({ dataDir });
  api = new ApiClient(s.port, dataDir);
  const ns = await api.send('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  t.equal(ns.status, 201, 'namespace created');
  startRV = watchRV = maxSeenRV = Number(JSON.parse(ns.text).metadata.resourceVersion);
  await resumeWatch();

  for (phase = 1; phase <= KILLS; phase++) {
    down = false;
    const running = clients.map(runClient);
    await sleep(1200 + Math.random() * 2500);
    down = true;
    await s.kill9();
    api.close();
    await Promise.all(running);
    await watch!.done;
    s = await startServer({ dataDir });
    api = new ApiClient(s.port, dataDir);
    await reconcileWithServer(t);
    await resumeWatch();
  }
  // Writes after the last restart still get higher resourceVersions than anything seen before.
  const before = maxSeenRV;
  down = false;
  const running = clients.map(runClient);
  await sleep(1000);
  down = true;
  await Promise.all(running);
  t.ok(rvLog.some((r) => r.phase === KILLS + 1 && r.rv > before), 'writes after the last restart are acknowledged above every earlier resourceVersion');
  t.same(violations, [], 'no acknowledged write lost or changed, no resourceVersion going back, no write answered with an error');
  t.ok(counts.acked > 100, `${counts.acked} writes acknowledged`);
  t.comment(JSON.stringify(counts));
});

t.test('the watch, resumed after every restart, saw every write exactly once', async (t) => {
  const lastRV = Math.max(...happened.values());
  const until = Date.now() + 10_000;
  while (watchRV < lastRV && Date.now() < until) await sleep(100);
  t.ok(watchRV >= lastRV, `the watch caught up to rv ${lastRV} (at ${watchRV})`);
  t.same(
    watchErrors.filter((e) => !e.startsWith('410')),
    [],
    'no watch error other than 410',
  );
  const inWindow = (rv: number) => expiredWindows.some(([a, b]) => rv > a && rv <= b);
  const seen = new Map<string, number[]>();
  for (const e of watched) seen.set(key(e.name, e.token), [...(seen.get(key(e.name, e.token)) ?? []), e.rv]);
  const missing: string[] = [];
  const dup: string[] = [];
  for (const [k, rv] of happened) {
    const got = seen.get(k) ?? [];
    if (got.length === 0 && !inWindow(rv)) missing.push(`${k}@${rv}`);
    if (got.length > 1) dup.push(`${k}@${got.join(',')}`);
    if (got.length === 1 && got[0] !== rv) dup.push(`${k}: event rv ${got[0]}, write rv ${rv}`);
  }
  const phantom = [...seen.keys()].filter((k) => !happened.has(k));
  t.same(missing, [], 'no gap: every write that happened has an event');
  t.same(dup, [], 'no duplicate');
  t.same(phantom, [], 'no event of a write that did not happen');
  t.equal(watched.filter((e, i) => i > 0 && e.rv <= watched[i - 1].rv).length, 0, 'events in strictly increasing resourceVersion order');
  t.comment(`${watched.length} events over ${KILLS + 1} watch connections, ${expiredWindows.length} resumed with 410`);
  watch?.close();
});

t.test('a watch from the first resourceVersion replays the whole history in order', async (t) => {
  const lines: WatchLine[] = [];
  const w = openWatch(s.port, dataDir, `${BASE}?watch=1&resourceVersion=${startRV}`, (l) => lines.push(l));
  const lastRV = Math.max(...happened.values());
  const until = Date.now() + 10_000;
  while (!lines.some((l) => l.type === 'ERROR' || Number(l.object.metadata.resourceVersion) >= lastRV) && Date.now() < until) await sleep(100);
  w.close();
  const expected = [...happened.entries()].sort((a, b) => a[1] - b[1]).map(([k, rv]) => `${k}@${rv}`);
  const got = lines.filter((l) => l.type !== 'BOOKMARK').map((l) => (l.type === 'ERROR' ? `ERROR ${l.object.code}` : `${key(l.object.metadata.name, tokenOf(l.object))}@${l.object.metadata.resourceVersion}`));
  if (got[0] === 'ERROR 410') t.pass('410: the history is gone (allowed)');
  else t.same(got, expected, `${expected.length} events, each write once, in order`);
});

t.test('with a small --history-size, resuming from a trimmed resourceVersion is a 410, never a gap', async (t) => {
  const lastRV = Math.max(...happened.values());
  await s.kill9();
  api.close();
  s = await startServer({ dataDir, args: ['--history-size', '20'] });
  api = new ApiClient(s.port, dataDir);
  const old: WatchLine[] = [];
  const w1 = openWatch(s.port, dataDir, `${BASE}?watch=1&resourceVersion=${startRV}`, (l) => old.push(l));
  const r1 = await Promise.race([w1.done, sleep(5000).then(() => undefined)]);
  w1.close();
  t.ok(r1, 'the stream ended by itself');
  t.equal(old.length, 1, 'exactly one line');
  t.equal(old[0]?.type, 'ERROR');
  t.equal(old[0]?.object?.code, 410, old[0]?.object?.message);
  t.equal(old[0]?.object?.reason, 'Expired');

  // The last events are still there: a resume from 5 writes back gets exactly those.
  const tail = [...happened.entries()].sort((a, b) => a[1] - b[1]).slice(-6);
  const from = tail[0][1];
  const recent: WatchLine[] = [];
  const w2 = openWatch(s.port, dataDir, `${BASE}?watch=1&resourceVersion=${from}`, (l) => recent.push(l));
  const until = Date.now() + 5000;
  while (!recent.some((l) => l.type === 'ERROR' || Number(l.object.metadata.resourceVersion) >= lastRV) && Date.now() < until) await sleep(50);
  w2.close();
  t.same(
    recent.map((l) => (l.type === 'ERROR' ? `ERROR ${l.object.code}` : `${key(l.object.metadata.name, tokenOf(l.object))}@${l.object.metadata.resourceVersion}`)),
    tail.slice(1).map(([k, rv]) => `${k}@${rv}`),
    'the 5 events after the resume point, once each',
  );
});
