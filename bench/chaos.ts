// Chaos figures (issue 7): a script that prints numbers, with no assertions.
//
//   1. Kills: C clients create and update OCMComponents while the server is killed with SIGKILL
//      N times at random moments and restarted on the same data dir. Printed: writes acknowledged,
//      acknowledged writes found afterwards (each one in the replayed event history, and the latest
//      per object in the stored state), writes in flight at a kill that did / did not happen.
//   2. Malformed input: fast-check generates malformed and hostile requests (random and broken
//      JSON/YAML, flipped bytes, truncation, deep nesting, huge strings, wrong types and content
//      types, odd names) against create/update/patch/status of ConfigMaps and OCMComponents.
//      Printed: inputs tried, answers by class, 5xx, 4xx without a Status, rejected requests that
//      changed the store, crashes (the process gone or not answering /healthz).
//   3. Overload: a small --max-requests-inflight / --max-mutating-requests-inflight, and many
//      concurrent clients of a user outside system:masters (who is exempt, as in kube) listing and
//      creating ConfigMaps. Printed: requests shed (429, with Retry-After), and p50/p99 latency of
//      the admitted ones; the same load as system:masters for comparison.
//   4. Every endpoint: test/fuzz-endpoints.test.ts's structure-aware requests (every kind, every content
//      type, hostile bodies), --endpoint-runs of them with a fresh seed. Printed: 5xx, 4xx without a
//      Status, the longest event-loop stall and the RSS the server reports, alive or not.
//   5. Hostile upstream registries: test/fuzz-upstream.test.ts's fuzzer, --upstream-rounds rounds of
//      --upstream-cases hostile component versions each (seed --upstream-seed, then seed+1, ...),
//      each read by an OCMComponent and a Source. Printed per round: reasons the objects ended
//      with, the broken invariants (5xx, Ready=True on corrupted content, no condition in time,
//      stall, RSS, canary, restart), the longest stall and the RSS.
//
//   npm run bench:chaos
//   node dist/bench/chaos.js --kills 5 --clients 8 --fuzz-runs 1000 --overload-clients 64 --max-inflight 4
import { writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import fc from 'fast-check';
import YAML from 'yaml';
import { ApiClient, type Answer, openWatch, percentile, sleep, type WatchLine } from '../test/helpers/load-client.js';
import { ENDPOINTS, hostileRequest, weird } from '../test/helpers/arbitraries.js';
import { startServer, tempDir, type TestServer } from '../test/helpers/server.js';
import { MAX_STALL_S } from '../test/helpers/invariants.js';
import { runUpstreamFuzz } from '../test/helpers/upstream-fuzz.js';

const { values: flags } = parseArgs({
  options: {
    kills: { type: 'string', default: '5' },
    clients: { type: 'string', default: '8' },
    'fuzz-runs': { type: 'string', default: '1000' },
    'overload-clients': { type: 'string', default: '64' },
    'overload-seconds': { type: 'string', default: '8' },
    'max-inflight': { type: 'string', default: '4' },
    'max-mutating-inflight': { type: 'string', default: '2' },
    'endpoint-runs': { type: 'string', default: '5000' },
    'upstream-seed': { type: 'string' },
    'upstream-cases': { type: 'string', default: '60' },
    'upstream-rounds': { type: 'string', default: '3' },
    'upstream-bound-seconds': { type: 'string', default: '90' },
    parts: { type: 'string', default: 'kills,malformed,overload,endpoints,upstream' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  console.log('node dist/bench/chaos.js [--kills N] [--clients N] [--fuzz-runs N] [--overload-clients N] [--overload-seconds N] [--max-inflight N] [--max-mutating-inflight N] [--endpoint-runs N] [--upstream-seed N] [--upstream-cases N] [--upstream-rounds N] [--upstream-bound-seconds N] [--parts kills,malformed,overload,endpoints,upstream]');
  process.exit(0);
}
const KILLS = Number(flags.kills);
const CLIENTS = Number(flags.clients);
const FUZZ_RUNS = Number(flags['fuzz-runs']);
const OVERLOAD_CLIENTS = Number(flags['overload-clients']);
const OVERLOAD_MS = Number(flags['overload-seconds']) * 1000;
const MAX_INFLIGHT = Number(flags['max-inflight']);
const MAX_MUTATING = Number(flags['max-mutating-inflight']);

const G = '/apis/delivery.ocm.software/v1alpha1';
const fmt = (n: number, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : '-');
const line = (k: string, v: string | number) => console.log(`  ${k.padEnd(58)} ${v}`);
const createNamespace = (api: ApiClient, name: string) => api.send('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });

// ---------------------------------------------------------------------------------------------
// 1. kill -9 under a write load
// ---------------------------------------------------------------------------------------------

async function kills() {
  const NS = 'chaos';
  const BASE = `${G}/namespaces/${NS}/ocmcomponents`;
  const dataDir = tempDir('ocm-chaos-');
  const args = ['--history-size', '1000000'];
  let s = await startServer({ dataDir, args });
  let api = new ApiClient(s.port, dataDir, { maxSockets: CLIENTS });
  const ns = await createNamespace(api, NS);
  const startRV = Number(JSON.parse(ns.text).metadata.resourceVersion);
  let down = false;
  let seq = 0;
  type Known = { token: string; rv: number };
  const latest = new Map<string, Known>(); // name -> latest acknowledged (or in-flight found) write
  const acked: { name: string; token: string; rv: number }[] = [];
  const pending = new Map<number, { name: string; token: string; create: boolean }>();
  const owned: string[][] = Array.from({ length: CLIENTS }, () => []);
  const f = { inFlight: 0, inFlightApplied: 0, inFlightLost: 0, rejected: 0, rvRegressions: 0, latestMissing: 0, latestChecked: 0 };
  let maxSeen = startRV;
  const restartMs: number[] = [];

  const client = async (id: number) => {
    while (!down) {
      const n = seq++;
      const token = `t${id}-${n}`;
      const create = owned[id].length < 3 || Math.random() < 0.2;
      const name = create ? `c${id}-${n}` : owned[id][Math.floor(Math.random() * owned[id].length)];
      pending.set(id, { name, token, create });
      const sentMax = maxSeen;
      let a: Answer;
      try {
        a = create
          ? await api.send('POST', BASE, { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: { name, namespace: NS, annotations: { token } }, spec: { name: 'ocm.software/chaos/app', version: `1.0.${n}`, repository: { url: 'ghcr.io/acme' } } })
          : await api.send('PATCH', `${BASE}/${name}`, { metadata: { annotations: { token } }, spec: { version: `1.0.${n}` } }, 'application/merge-patch+json');
      } catch {
        return; // in flight at the kill
      }
      pending.delete(id);
      if (a.status >= 300) {
        f.rejected++;
        continue;
      }
      const rv = Number(JSON.parse(a.text).metadata.resourceVersion);
      if (rv <= sentMax) f.rvRegressions++;
      maxSeen = Math.max(maxSeen, rv);
      if (create) owned[id].push(name);
      latest.set(name, { token, rv });
      acked.push({ name, token, rv });
    }
  };

  for (let k = 0; k < KILLS; k++) {
    down = false;
    const running = Array.from({ length: CLIENTS }, (_, i) => client(i));
    await sleep(500 + Math.random() * 2500);
    down = true;
    await s.kill9();
    api.close();
    await Promise.all(running);
    const t0 = Date.now();
    s = await startServer({ dataDir, args });
    restartMs.push(Date.now() - t0);
    api = new ApiClient(s.port, dataDir, { maxSockets: CLIENTS });
    const items = new Map<string, any>(JSON.parse((await api.send('GET', BASE)).text).items.map((o: any) => [o.metadata.name, o]));
    for (const [id, p] of pending) {
      f.inFlight++;
      const o = items.get(p.name);
      if (o?.metadata.annotations?.token === p.token) {
        f.inFlightApplied++;
        latest.set(p.name, { token: p.token, rv: Number(o.metadata.resourceVersion) });
        if (p.create) owned[id].push(p.name);
      } else f.inFlightLost++;
    }
    pending.clear();
    for (const [name, l] of latest) {
      f.latestChecked++;
      if (items.get(name)?.metadata.annotations?.token !== l.token) f.latestMissing++;
    }
  }
  // Every acknowledged write, one by one, in the event history replayed from the first resourceVersion.
  const lastRV = Math.max(...acked.map((a) => a.rv));
  const seen = new Map<string, number>();
  let replayed = 0;
  const w = openWatch(s.port, dataDir, `${BASE}?watch=1&resourceVersion=${startRV}`, (l: WatchLine) => {
    if (l.type === 'ERROR') return;
    const k = `${l.object.metadata.name}|${l.object.metadata.annotations?.token}@${l.object.metadata.resourceVersion}`;
    seen.set(k, (seen.get(k) ?? 0) + 1);
    replayed = Math.max(replayed, Number(l.object.metadata.resourceVersion));
  });
  const until = Date.now() + 30_000;
  while (replayed < lastRV && Date.now() < until) await sleep(100);
  w.close();
  const found = acked.filter((a) => seen.get(`${a.name}|${a.token}@${a.rv}`) === 1).length;
  const duplicated = [...seen.values()].filter((n) => n > 1).length;
  await s.stop();
  rmSync(dataDir, { recursive: true, force: true });

  console.log(`\n1. kill -9 under a write load (${CLIENTS} clients, ${KILLS} kills)`);
  line('writes acknowledged (2xx)', acked.length);
  line('acknowledged writes found in the replayed event history', `${found} (${acked.length - found} missing, ${duplicated} duplicated)`);
  line('objects checked after each restart / missing latest ack', `${f.latestChecked} / ${f.latestMissing}`);
  line('writes in flight at a kill: happened / did not', `${f.inFlightApplied} / ${f.inFlightLost}`);
  line('writes answered with an error', f.rejected);
  line('acks with a resourceVersion not above every one seen', f.rvRegressions);
  line('restart to ready (ms, mean / max)', `${fmt(restartMs.reduce((a, b) => a + b, 0) / restartMs.length, 0)} / ${Math.max(...restartMs)}`);
}

// ---------------------------------------------------------------------------------------------
// 2. malformed input
// ---------------------------------------------------------------------------------------------

const meta = (name: string) =>
  fc.record({ name: fc.oneof({ weight: 4, arbitrary: fc.constant(name) }, { weight: 1, arbitrary: weird }), namespace: fc.oneof(fc.constant('fuzz'), weird), labels: fc.oneof(fc.dictionary(fc.string({ maxLength: 70 }), weird, { maxKeys: 3 }), weird), annotations: weird, resourceVersion: weird, uid: weird, finalizers: weird, ownerReferences: weird }, { requiredKeys: [] });
const cmArb = (name: string) =>
  fc.record({ apiVersion: fc.oneof({ weight: 5, arbitrary: fc.constant('v1') }, { weight: 1, arbitrary: weird }), kind: fc.oneof({ weight: 5, arbitrary: fc.constant('ConfigMap') }, { weight: 1, arbitrary: weird }), metadata: fc.oneof({ weight: 5, arbitrary: meta(name) }, { weight: 1, arbitrary: weird }), data: fc.oneof(fc.dictionary(fc.string({ maxLength: 10 }), weird, { maxKeys: 4 }), weird), binaryData: weird, extra: fc.jsonValue({ maxDepth: 3 }) }, { requiredKeys: ['apiVersion', 'kind'] });
const compArb = (name: string) =>
  fc.record({
    apiVersion: fc.oneof({ weight: 5, arbitrary: fc.constant('delivery.ocm.software/v1alpha1') }, { weight: 1, arbitrary: weird }),
    kind: fc.oneof({ weight: 5, arbitrary: fc.constant('OCMComponent') }, { weight: 1, arbitrary: weird }),
    metadata: fc.oneof({ weight: 5, arbitrary: meta(name) }, { weight: 1, arbitrary: weird }),
    spec: fc.oneof(fc.record({ name: fc.oneof(fc.constant('ocm.software/x'), weird), version: fc.oneof(fc.constantFrom('1.0.0', '>=1', 'latest'), weird), repository: fc.oneof(fc.record({ url: fc.oneof(fc.constant('ghcr.io/a'), weird), secretRef: weird }, { requiredKeys: [] }), weird), interval: weird, verify: weird, suspend: weird }, { requiredKeys: [] }), weird),
    status: weird,
  }, { requiredKeys: ['apiVersion', 'kind'] });

type Body = { body: string | Buffer; ct: string; label: string };
const bodyOf = (obj: fc.Arbitrary<unknown>): fc.Arbitrary<Body> =>
  fc.oneof(
    { weight: 4, arbitrary: obj.map((o) => ({ body: JSON.stringify(o), ct: 'application/json', label: 'structured JSON' })) },
    { weight: 2, arbitrary: obj.map((o) => ({ body: YAML.stringify(o), ct: 'application/yaml', label: 'structured YAML' })) },
    { weight: 2, arbitrary: fc.tuple(obj, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([o, at, b]) => { const x = Buffer.from(JSON.stringify(o)); if (x.length) x[at % x.length] = b; return { body: x, ct: 'application/json', label: 'flipped byte' }; }) },
    { weight: 1, arbitrary: fc.tuple(obj, fc.nat()).map(([o, n]) => ({ body: JSON.stringify(o).slice(0, n % 80), ct: 'application/json', label: 'truncated JSON' })) },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 4 }).map((v) => ({ body: JSON.stringify(v), ct: 'application/json', label: 'random JSON' })) },
    { weight: 1, arbitrary: fc.string({ maxLength: 300 }).map((x) => ({ body: x, ct: 'application/yaml', label: 'random YAML text' })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((x) => ({ body: Buffer.from(x), ct: 'application/json', label: 'random bytes' })) },
    { weight: 1, arbitrary: fc.tuple(fc.integer({ min: 100, max: 100_000 }), fc.constantFrom('[', '{"a":')).map(([n, open]) => ({ body: open.repeat(n), ct: 'application/json', label: 'deep nesting' })) },
    { weight: 1, arbitrary: fc.integer({ min: 1, max: 6 }).map((mb) => ({ body: JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'huge' }, data: { x: 'x'.repeat(mb << 20) } }), ct: 'application/json', label: 'huge string' })) },
    { weight: 1, arbitrary: fc.tuple(obj, fc.constantFrom('text/plain', 'application/xml', 'application/vnd.kubernetes.protobuf', '', 'application/apply-patch+yaml', 'multipart/form-data')).map(([o, ct]) => ({ body: JSON.stringify(o), ct, label: 'wrong content type' })) },
  );

async function malformed() {
  const dataDir = tempDir('ocm-chaos-fuzz-');
  let s: TestServer = await startServer({ dataDir });
  let api = new ApiClient(s.port, dataDir, { maxSockets: 2 });
  await createNamespace(api, 'fuzz');
  const CM = '/api/v1/namespaces/fuzz/configmaps';
  const OC = `${G}/namespaces/fuzz/ocmcomponents`;
  await api.send('POST', CM, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'target' }, data: { a: '1' } });
  await api.send('POST', OC, { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: { name: 'target' }, spec: { name: 'ocm.software/x', version: '1.0.0', repository: { url: 'ghcr.io/a' } } });
  const nameArb = fc.oneof({ weight: 3, arbitrary: fc.constant('target') }, { weight: 1, arbitrary: fc.string({ maxLength: 30 }).map(encodeURIComponent) }, { weight: 1, arbitrary: fc.constantFrom('..', '%2e%2e', 'a%2Fb', '%00', 'x'.repeat(300), 'TARGET') });
  const request = fc.tuple(
    fc.constantFrom<[string, string, (n: string) => fc.Arbitrary<unknown>]>(['ConfigMap', CM, cmArb], ['OCMComponent', OC, compArb]),
    fc.constantFrom('POST', 'PUT', 'PATCH', 'PUT /status', 'PATCH /status'),
    nameArb,
    fc.constantFrom('application/merge-patch+json', 'application/json-patch+json', 'application/strategic-merge-patch+json'),
    fc.nat(),
  );
  const cases = fc.sample(request.chain(([[kind, base, arb], verb, name, patchType, seed]) => bodyOf(arb(name)).map((b) => ({ kind, base, verb, name, patchType, seed, b }))), { numRuns: FUZZ_RUNS, seed: 42 });
  const st = { tried: 0, c2xx: 0, c4xx: 0, c5xx: 0, other: 0, notStatus: 0, movedOnReject: 0, transport: 0, oversized: 0, crashes: 0, maxMs: 0 };
  const byLabel = new Map<string, number>();
  const examples: string[] = [];
  const rv = async () => JSON.parse((await api.send('GET', `${CM}?limit=1`)).text).metadata.resourceVersion as string;
  for (const c of cases) {
    st.tried++;
    byLabel.set(c.b.label, (byLabel.get(c.b.label) ?? 0) + 1);
    const [method, sub] = c.verb.split(' ');
    const path = method === 'POST' ? c.base : `${c.base}/${c.name}${sub ?? ''}`;
    const ct = method === 'PATCH' && !/json$|yaml$/.test(c.b.ct) ? c.b.ct : method === 'PATCH' ? c.patchType : c.b.ct;
    let before = '';
    try {
      before = await rv();
      const a = await api.send(method, path, c.b.body, ct);
      st.maxMs = Math.max(st.maxMs, a.ms);
      const after = await rv();
      if (a.status >= 500) {
        st.c5xx++;
        if (examples.length < 5) examples.push(`${a.status} ${method} ${path} [${ct}] ${c.b.label}: ${a.text.slice(0, 160)}`);
      } else if (a.status >= 400) {
        st.c4xx++;
        let j: any;
        try {
          j = JSON.parse(a.text);
        } catch {
          // not JSON
        }
        if (j?.kind !== 'Status' || j.code !== a.status) st.notStatus++;
        if (after !== before) st.movedOnReject++;
      } else if (a.status >= 200) st.c2xx++;
      else st.other++;
    } catch (err) {
      // Over the 3 MiB body limit the server answers 413 and closes while a client still sends:
      // Node's client then reports EPIPE instead of the answer (curl shows the 413).
      if (c.b.body.length > 3 << 20) st.oversized++;
      else {
        st.transport++;
        if (examples.length < 8) examples.push(`no answer: ${method} ${path} [${ct}] ${c.b.label}, ${c.b.body.length} bytes: ${(err as Error).message}`);
      }
      const alive = s.proc.exitCode === null && s.proc.signalCode === null && (await api.send('GET', '/healthz').then((r) => r.status === 200, () => false));
      if (!alive) {
        st.crashes++;
        examples.push(`crash after ${method} ${path} [${ct}] ${c.b.label}: ${(err as Error).message}`);
        await s.kill9().catch(() => {});
        api.close();
        s = await startServer({ dataDir });
        api = new ApiClient(s.port, dataDir, { maxSockets: 2 });
      }
    }
  }
  const healthy = (await api.send('GET', '/healthz').catch(() => undefined))?.status === 200;
  await s.stop();
  rmSync(dataDir, { recursive: true, force: true });

  console.log(`\n2. malformed input (fast-check, seed 42)`);
  line('malformed inputs tried', st.tried);
  line('  of which', [...byLabel].map(([k, v]) => `${k} ${v}`).join(', '));
  line('answers 2xx / 4xx / 5xx / other', `${st.c2xx} / ${st.c4xx} / ${st.c5xx} / ${st.other}`);
  line('4xx without a well-formed Status', st.notStatus);
  line('rejections that changed the store', st.movedOnReject);
  line('bodies over 3 MiB cut off (413, connection closed)', st.oversized);
  line('other connections dropped without an answer', st.transport);
  line('crashes seen (process gone or /healthz down)', st.crashes);
  line('slowest answer (ms)', fmt(st.maxMs, 0));
  line('server healthy at the end', healthy ? 'yes' : 'NO');
  for (const e of examples) console.log(`    ${e}`);
}

// ---------------------------------------------------------------------------------------------
// 3. overload and load shedding
// ---------------------------------------------------------------------------------------------

async function overload() {
  const dataDir = tempDir('ocm-chaos-load-');
  const token = 'load-tester-token-0123456789';
  writeFileSync(join(dataDir, 'tokens.csv'), `${token},loadtester,1001,"load-testers"\n`);
  writeFileSync(join(dataDir, 'policy.yaml'), YAML.stringify([{ users: ['loadtester'], verbs: ['*'], apiGroups: ['*'], resources: ['*'] }]));
  const s = await startServer({
    dataDir,
    args: ['--max-requests-inflight', String(MAX_INFLIGHT), '--max-mutating-requests-inflight', String(MAX_MUTATING), '--token-auth-file', join(dataDir, 'tokens.csv'), '--authorization-policy-file', join(dataDir, 'policy.yaml')],
  });
  const admin = new ApiClient(s.port, dataDir, { maxSockets: OVERLOAD_CLIENTS });
  await createNamespace(admin, 'load');
  const CM = '/api/v1/namespaces/load/configmaps';
  const filler = 'x'.repeat(2048);
  for (let i = 0; i < 300; i += 20) await Promise.all(Array.from({ length: 20 }, (_, j) => admin.send('POST', CM, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `seed-${i + j}` }, data: { filler } })));

  const run = async (api: ApiClient, who: string) => {
    const r = { sent: 0, shed: { readOnly: 0, mutating: 0 }, sent429WithoutRetryAfter: 0, admitted: [] as number[], errors: 0, other: new Map<number, number>() };
    const end = Date.now() + OVERLOAD_MS;
    let n = 0;
    const worker = async (id: number) => {
      while (Date.now() < end) {
        const mutating = Math.random() < 0.3;
        r.sent++;
        try {
          const a = mutating
            ? await api.send('POST', CM, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `${who}-${id}-${n++}` }, data: { filler } })
            : await api.send('GET', CM);
          if (a.status === 429) {
            r.shed[mutating ? 'mutating' : 'readOnly']++;
            if (!a.headers['retry-after']) r.sent429WithoutRetryAfter++;
            await sleep(5); // a client that retries at once, not after Retry-After: the worst case
          } else {
            r.admitted.push(a.ms);
            if (a.status >= 300) r.other.set(a.status, (r.other.get(a.status) ?? 0) + 1);
          }
        } catch {
          r.errors++;
        }
      }
    };
    await Promise.all(Array.from({ length: OVERLOAD_CLIENTS }, (_, i) => worker(i)));
    r.admitted.sort((a, b) => a - b);
    return r;
  };
  const user = new ApiClient(s.port, dataDir, { maxSockets: OVERLOAD_CLIENTS, cert: null, token });
  const limited = await run(user, 'user');
  const metrics = (await admin.send('GET', '/metrics')).text.split('\n').filter((l) => l.startsWith('apiserver_dropped_requests_total'));
  const masters = await run(admin, 'admin');
  user.close();
  admin.close();
  await s.stop();
  rmSync(dataDir, { recursive: true, force: true });

  const shed = limited.shed.readOnly + limited.shed.mutating;
  console.log(`\n3. overload (--max-requests-inflight ${MAX_INFLIGHT}, --max-mutating-requests-inflight ${MAX_MUTATING}; ${OVERLOAD_CLIENTS} clients for ${OVERLOAD_MS / 1000} s, 70% list of 300+ ConfigMaps, 30% create)`);
  line('user outside system:masters: requests sent', limited.sent);
  line('  shed with 429 (read-only / mutating)', `${shed} (${fmt((100 * shed) / limited.sent)}%): ${limited.shed.readOnly} / ${limited.shed.mutating}`);
  line('  429 without Retry-After', limited.sent429WithoutRetryAfter);
  line('  admitted', `${limited.admitted.length} (${fmt(limited.admitted.length / (OVERLOAD_MS / 1000))}/s)`);
  line('  admitted latency p50 / p99 / max (ms)', `${fmt(percentile(limited.admitted, 50))} / ${fmt(percentile(limited.admitted, 99))} / ${fmt(limited.admitted.at(-1) ?? NaN)}`);
  line('  transport errors; other statuses', `${limited.errors}; ${[...limited.other].map(([k, v]) => `${k}x${v}`).join(' ') || 'none'}`);
  line('  /metrics', metrics.join('; ') || '(none)');
  line('system:masters (exempt), same load: sent / shed', `${masters.sent} / ${masters.shed.readOnly + masters.shed.mutating}`);
  line('  latency p50 / p99 / max (ms)', `${fmt(percentile(masters.admitted, 50))} / ${fmt(percentile(masters.admitted, 99))} / ${fmt(masters.admitted.at(-1) ?? NaN)}`);
}

/**
 * 4. Every endpoint (issue 15): test/fuzz-endpoints.test.ts's structure-aware requests, many more
 * of them, with a seed of the moment. Printed: requests, 5xx, 4xx without a Status, the longest
 * event-loop stall and the resident memory the server reports, whether it is alive.
 */
async function endpoints() {
  const dataDir = tempDir('ocm-chaos-endpoints-');
  const s: TestServer = await startServer({ dataDir });
  const api = new ApiClient(s.port, dataDir, { maxSockets: 2 });
  await createNamespace(api, 'fz');
  for (const e of ENDPOINTS.filter((e) => e.stored)) await api.send('POST', e.collection('fz'), e.sample('x'));
  const metric = async (name: string) => Number(((await api.send('GET', '/metrics')).text.split('\n').find((l) => l.startsWith(`${name} `)) ?? ' NaN').split(' ')[1]);
  await metric('nodejs_eventloop_lag_max_seconds');
  const seed = Date.now() % 2 ** 31;
  let sent = 0;
  let fivexx = 0;
  let noStatus = 0;
  let maxStall = 0;
  let maxRss = 0;
  const first: string[] = [];
  await fc.assert(
    fc.asyncProperty(hostileRequest('fz'), async (q) => {
      const a = await api.send(q.method, q.path, q.body ?? Buffer.alloc(0), q.contentType).catch((e: Error) => ({ status: -1, text: String(e) }) as Answer);
      sent++;
      if (a.status < 0 || a.status >= 500) {
        fivexx++;
        if (first.length < 5) first.push(`${q.method} ${q.path} [${q.contentType}] ${a.status}: ${a.text.slice(0, 160)}`);
      } else if (a.status >= 400 && !/"kind":"Status"/.test(a.text)) noStatus++;
      if (sent % 500 === 0) {
        maxStall = Math.max(maxStall, await metric('nodejs_eventloop_lag_max_seconds'));
        maxRss = Math.max(maxRss, await metric('process_resident_memory_bytes'));
      }
      return true;
    }),
    { numRuns: Number(flags['endpoint-runs']), seed },
  );
  maxStall = Math.max(maxStall, await metric('nodejs_eventloop_lag_max_seconds'));
  maxRss = Math.max(maxRss, await metric('process_resident_memory_bytes'));
  console.log(`\n4. every endpoint, every content type (seed ${seed})`);
  line('requests', sent);
  line('5xx or dropped / 4xx without a Status', `${fivexx} / ${noStatus}`);
  for (const f of first) line('  ', f);
  line('longest event-loop stall (ms) / resident memory (MiB)', `${fmt(maxStall * 1000, 0)} / ${fmt(maxRss / 2 ** 20, 0)}`);
  line('alive afterwards', String(s.proc.exitCode === null && (await api.send('GET', '/healthz')).status === 200));
  await s.stop();
  rmSync(dataDir, { recursive: true, force: true });
}

async function upstream() {
  const first = flags['upstream-seed'] ? Number(flags['upstream-seed']) : Math.floor(Math.random() * 2 ** 31);
  console.log(`\n5. hostile upstream registries (${flags['upstream-rounds']} rounds of ${flags['upstream-cases']} cases)`);
  for (let k = 0; k < Number(flags['upstream-rounds']); k++) {
    const seed = first + k;
    const r = await runUpstreamFuzz({ seed, cases: Number(flags['upstream-cases']), boundMs: Number(flags['upstream-bound-seconds']) * 1000, serverArgs: ['--upstream-stall-timeout', '5s'] });
    const reasons = new Map<string, number>();
    for (const o of r.outcomes.values()) reasons.set(`${o.component} / ${o.source}`, (reasons.get(`${o.component} / ${o.source}`) ?? 0) + 1);
    const problems = [...r.problems, ...(r.stallMs > MAX_STALL_S * 1000 ? [`the longest event-loop stall was ${fmt(r.stallMs, 0)} ms (bound ${MAX_STALL_S * 1000} ms)`] : [])];
    line(`seed ${seed}: broken invariants`, problems.length);
    for (const p of problems.slice(0, 10)) line('  ', p.slice(0, 240));
    line('  OCMComponent / Source reasons', [...reasons].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ×${v}`).join('; '));
    line('  longest event-loop stall (ms) / resident memory (MiB)', `${fmt(r.stallMs, 0)} / ${fmt(r.rssMiB, 0)}`);
    line('  requests to the hostile registry', r.requests);
    for (const w of r.slowest) line(`  stall ${fmt(w.ms, 0)} ms at ${fmt(w.at / 1000)} s, serving`, w.served.join(', ').slice(0, 200));
  }
}

const started = Date.now();
console.log('ocm-apiserver chaos figures');
const PARTS = { kills, malformed, overload, endpoints, upstream } as const;
for (const [name, part] of Object.entries(PARTS).filter(([n]) => flags.parts!.split(',').includes(n))) {
  try {
    await part();
  } catch (err) {
    console.log(`\n${name}: failed to run: ${(err as Error).stack}`);
  }
}
console.log(`\n(${fmt((Date.now() - started) / 1000)} s)`);
process.exit(0); // a server left running by a part that failed must not keep the script alive
