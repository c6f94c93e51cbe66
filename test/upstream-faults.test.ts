// Upstream faults, with the reconcilers on: OCM repositories (the in-memory fake registry holding
// component versions published with ocm/publish.ts) that are down (connection refused), answer
// 500 or 429, drop the connection in the middle of a blob, or drip bytes (the component's every
// read, or only the resource blob a Source reads). For each: the failing object (OCMComponent, or
// the Source) reports it in its Ready condition (the reason and the message name the problem, with
// observedGeneration) and Reconciling=True (ProgressingWithRetry) while it is retried, and in a
// Warning event; the Source downstream of a failing component
// says so; the reconcilers back off (requests that reach the registry, and reconcile attempts, are
// counted over a window and bounded); once the repository is back they recover by themselves,
// ending Ready (Reconciling gone) with exactly one Snapshot, and `kubectl describe` tells it. A
// dripping registry is in the status after one --upstream-stall-timeout (3 s here), as Flux's
// controllers report each failed attempt (fluxcd/source-controller's OCIRepository reconciler marks
// Ready=False with the fetch error and returns it, and controller-runtime requeues with backoff);
// before, the client's 3 retries inside the request hid it for 4 stall timeouts (2 minutes with
// the default 30 s). The cases run side by side on one server.
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { type Fault, FaultyRegistry } from './helpers/faulty-registry.js';
import { startServer, type TestServer } from './helpers/server.js';

const G = '/apis/delivery.ocm.software/v1alpha1';
const WINDOW_MS = 6000;
const STALL_MS = 3000; // --upstream-stall-timeout
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let s: TestServer;
let reg: FaultyRegistry; // 500, 429 and cut, chosen per component path
let downReg: FaultyRegistry; // closed and reopened
const work = mkdtempSync(join(tmpdir(), 'upstream-faults-'));

interface Scenario {
  key: string; // component ocm.software/faults/<key>, namespace f-<key>
  registry: () => FaultyRegistry;
  fault?: Fault; // none: the registry is down
  failing: 'OCMComponent' | 'Source';
  problem: RegExp; // what the message must say
  reason: RegExp; // what the reason must say
  /** The registry path the fault is on (default: the component's, `faults/<key>`). */
  faultPath?: () => string;
  /** The fault goes on once the OCMComponent is Ready, before the Source exists. */
  afterReady?: boolean;
  /** The failing object's Ready=False comes within this long of its creation. */
  withinMs?: number;
}

const DRIP = /less than 16384 bytes in 3000 ms \(a stalled or dripping response\)/;

const scenarios: Scenario[] = [
  { key: 'refused', registry: () => downReg, failing: 'OCMComponent', problem: /ECONNREFUSED|connection refused/i, reason: /Unavailable|Unreachable|Network|Connect|Fetch|Repository/ },
  { key: 'http500', registry: () => reg, fault: { mode: '500' }, failing: 'OCMComponent', problem: /\b500\b/, reason: /Unavailable|Fetch|Repository|Server|Upstream/ },
  { key: 'http429', registry: () => reg, fault: { mode: '429', retryAfterSeconds: 1 }, failing: 'OCMComponent', problem: /\b429\b|TOOMANYREQUESTS|rate limit/i, reason: /Unavailable|Fetch|Repository|RateLimit|TooMany|Throttl|Upstream/ },
  // the OCMComponent reads every resource blob to check its digest before it is verified, so a cut blob stops it first
  { key: 'cutblob', registry: () => reg, fault: { mode: 'cut', atByte: 40_000 }, failing: 'OCMComponent', problem: /aborted|premature|socket hang up|ECONNRESET|closed|terminated/i, reason: /Unavailable|Fetch|Provider|Network|Download|Repository/ },
  // every read of the component drips (its tag list first): one stall timeout, then FetchFailed
  { key: 'drip', registry: () => reg, fault: { mode: 'drip' }, failing: 'OCMComponent', problem: DRIP, reason: /^FetchFailed$/, withinMs: STALL_MS + 4000 },
  // the resource blob drips once the OCMComponent has verified it: the Source's own read is cut
  { key: 'dripblob', registry: () => reg, fault: { mode: 'drip' }, faultPath: () => `faults/dripblob/blobs/${blobDigest('dripblob')}`, afterReady: true, failing: 'Source', problem: DRIP, reason: /^(FetchFailed|ProviderFailed)$/, withinMs: STALL_MS + 4000 },
];

interface Facts {
  key: string;
  ns: string;
  failedAfterMs?: number;
  condition?: { reason: string; message: string; status: string; observedGeneration?: number };
  generation?: number;
  reconciling?: { status: string; reason: string; message: string };
  reconcilingAfter?: unknown;
  describe?: string;
  downstream?: { reason: string; message: string };
  warningEvents: { reason: string; message: string; count: number }[];
  requestsInWindow?: number;
  attemptsInWindow: number;
  attemptGapsMs: number[];
  recoveredAfterMs?: number;
  readyComponent?: boolean;
  readySource?: boolean;
  snapshots?: string[];
  snapshotsLater?: string[];
  sourceSnapshot?: string;
  normalEvents: { reason: string; kind: string }[];
  error?: string;
}

const blobText = (key: string) => Array.from({ length: 4000 }, (_, i) => `${key} line ${i} of a resource big enough to be cut in the middle\n`).join('');
const blobDigest = (key: string) => `sha256:${createHash('sha256').update(blobText(key)).digest('hex')}`;

async function get(path: string): Promise<any> {
  const r = await s.request('GET', path);
  return r.status === 200 ? r.json() : undefined;
}
const ready = (o: any) => o?.status?.conditions?.find((c: any) => c.type === 'Ready');

async function waitFor<T>(fn: () => Promise<T | undefined>, ms: number): Promise<T | undefined> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > until) return undefined;
    await sleep(200);
  }
}

/** Reconcile attempts that failed, from the server's logs: `reconcile failed; retrying with backoff` for this key. */
function failedAttempts(controller: string, key: string): number[] {
  const out: number[] = [];
  for (const l of s.logs) {
    if (!l.includes('reconcile failed')) continue;
    try {
      const j = JSON.parse(l);
      if (j.controller === controller && j.key === key) out.push(j.time);
    } catch {
      // not JSON
    }
  }
  return out;
}

async function run(sc: Scenario): Promise<Facts> {
  const ns = `f-${sc.key}`;
  const facts: Facts = { key: sc.key, ns, warningEvents: [], normalEvents: [], attemptsInWindow: 0, attemptGapsMs: [] };
  const r = sc.registry();
  const compPath = sc.faultPath?.() ?? `faults/${sc.key}`;
  try {
    await s.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } });
    // The fault goes on before the objects exist (or, afterReady, before the Source does): the first reconcile meets it.
    const faultOn = async () => {
      if (sc.fault) r.faults.set(compPath, sc.fault);
      else await r.down();
    };
    if (!sc.afterReady) await faultOn();
    const objs = [
      {
        apiVersion: 'delivery.ocm.software/v1alpha1',
        kind: 'OCMComponent',
        metadata: { name: 'app', namespace: ns },
        spec: { name: `ocm.software/faults/${sc.key}`, version: '>=1.0.0', interval: '10m', repository: { url: `http://${r.host}/ocm` } },
      },
      { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMResource', metadata: { name: 'data-res', namespace: ns }, spec: { resource: 'data' } },
      {
        apiVersion: 'delivery.ocm.software/v1alpha1',
        kind: 'Source',
        metadata: { name: 'data', namespace: ns },
        spec: { componentRef: { name: 'app' }, providerRef: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMResource', name: 'data-res' } },
      },
    ];
    let started = Date.now();
    for (const o of objs) {
      const res = await s.request('POST', `${G}/namespaces/${ns}/${o.kind.toLowerCase()}s`, { body: o });
      if (res.status !== 201) throw new Error(`creating ${o.kind}: ${res.status} ${res.body}`);
      if (sc.afterReady && o.kind === 'OCMComponent') {
        const up = await waitFor(async () => (ready(await get(`${G}/namespaces/${ns}/ocmcomponents/app`))?.status === 'True' ? true : undefined), 30_000);
        if (!up) throw new Error('the OCMComponent did not become Ready before the fault');
        await faultOn();
        started = Date.now();
      }
    }
    const failingPath = sc.failing === 'OCMComponent' ? `${G}/namespaces/${ns}/ocmcomponents/app` : `${G}/namespaces/${ns}/sources/data`;
    const failed = await waitFor(async () => {
      const o = await get(failingPath);
      const c = ready(o);
      return c?.status === 'False' && c.reason !== 'ComponentNotReady' ? o : undefined;
    }, 30_000);
    if (!failed) throw new Error(`no Ready=False condition on the ${sc.failing} in 30 s: ${JSON.stringify((await get(failingPath))?.status)}`);
    facts.failedAfterMs = Date.now() - started;
    facts.condition = ready(failed);
    facts.generation = failed.metadata.generation;
    facts.reconciling = failed.status.conditions.find((c: any) => c.type === 'Reconciling');
    if (sc.failing === 'OCMComponent') {
      // the Source may still say why from before the component's condition (its watch re-queues it)
      let last: any;
      const src = await waitFor(async () => {
        const c = (last = ready(await get(`${G}/namespaces/${ns}/sources/data`)));
        return c?.status === 'False' && sc.problem.test(c.message) ? c : undefined;
      }, 10_000);
      const d = src ?? last;
      if (d) facts.downstream = { reason: d.reason, message: d.message };
    }

    // Watch the retries for a while with the fault still on.
    const from = Date.now();
    await sleep(WINDOW_MS);
    const to = Date.now();
    const controller = sc.failing === 'OCMComponent' ? 'ocmcomponent' : 'source';
    const attempts = failedAttempts(controller, `${ns}/${sc.failing === 'OCMComponent' ? 'app' : 'data'}`);
    facts.attemptsInWindow = attempts.filter((a) => a >= from && a < to).length;
    facts.attemptGapsMs = attempts.slice(1).map((a, i) => a - attempts[i]);
    if (sc.fault) facts.requestsInWindow = r.count(compPath, from, to);
    const events = (await get(`/api/v1/namespaces/${ns}/events`))?.items ?? [];
    facts.warningEvents = events
      .filter((e: any) => e.type === 'Warning' && e.involvedObject?.kind === sc.failing)
      .map((e: any) => ({ reason: e.reason, message: e.message, count: e.count ?? 1 }));

    // The repository is back: recovery by itself.
    const back = Date.now();
    if (sc.fault) r.faults.delete(compPath);
    else await r.up();
    const ok = await waitFor(async () => {
      const src = await get(`${G}/namespaces/${ns}/sources/data`);
      return ready(src)?.status === 'True' && src.status.snapshot ? src : undefined;
    }, 60_000);
    if (ok) facts.recoveredAfterMs = Date.now() - back;
    facts.sourceSnapshot = ok?.status?.snapshot;
    facts.readySource = !!ok;
    facts.readyComponent = ready(await get(`${G}/namespaces/${ns}/ocmcomponents/app`))?.status === 'True';
    facts.reconcilingAfter = (await get(failingPath))?.status?.conditions?.find((c: any) => c.type === 'Reconciling');
    facts.snapshots = ((await get(`${G}/namespaces/${ns}/snapshots`))?.items ?? []).map((x: any) => x.metadata.name);
    await sleep(3000); // late duplicates from retries still in the queue would show up here
    facts.snapshotsLater = ((await get(`${G}/namespaces/${ns}/snapshots`))?.items ?? []).map((x: any) => x.metadata.name);
    facts.normalEvents = ((await get(`/api/v1/namespaces/${ns}/events`))?.items ?? [])
      .filter((e: any) => e.type === 'Normal')
      .map((e: any) => ({ reason: e.reason, kind: e.involvedObject?.kind }));
    const d = await s.kubectl(['describe', sc.failing.toLowerCase(), sc.failing === 'OCMComponent' ? 'app' : 'data', '-n', ns]);
    facts.describe = d.code === 0 ? d.stdout.slice(d.stdout.indexOf('Events:')) : `kubectl describe failed: ${d.stderr}`;
  } catch (err) {
    facts.error = (err as Error).stack ?? String(err);
  } finally {
    r.faults.delete(compPath);
  }
  return facts;
}

let results: Facts[] = [];

t.before(async () => {
  reg = await new FaultyRegistry().start();
  downReg = await new FaultyRegistry().start();
  for (const sc of scenarios) {
    const r = sc.registry();
    const repo = new OcmRepository(new OciClient({ insecureHttp: true }), `http://${r.host}/ocm`);
    await publish(
      repo,
      { name: `ocm.software/faults/${sc.key}`, version: '1.0.0', provider: 'acme', resources: [{ name: 'data', version: '1.0.0', type: 'blob', input: { type: 'utf8', text: blobText(sc.key), mediaType: 'text/plain' } }] },
      work,
      {},
    );
    repo.client.close();
  }
  for (const sc of scenarios) if (sc.faultPath && !sc.registry().fake.blobs.has(sc.faultPath().split('/blobs/')[1])) throw new Error(`${sc.key}: no blob at ${sc.faultPath()}`);
  s = await startServer({ reconcilers: 'all', args: ['--allow-private-upstreams', '--upstream-stall-timeout', `${STALL_MS / 1000}s`] }); // the upstream registry is on 127.0.0.1
  results = await Promise.all(scenarios.map(run));
});

t.teardown(async () => {
  await s?.stop();
  await reg?.close();
  await downReg?.close();
});

for (const [i, sc] of scenarios.entries()) {
  t.test(`${sc.key}: ${sc.failing} reports it, backs off, recovers with exactly one Snapshot`, async (t) => {
    const f = results[i];
    t.comment(JSON.stringify({ ...f, warningEvents: f.warningEvents.map((e) => `${e.reason} x${e.count}`), normalEvents: f.normalEvents.map((e) => `${e.kind}/${e.reason}`) }));
    t.notOk(f.error, f.error ?? 'ran to the end');
    t.ok(f.condition, `Ready=False on the ${sc.failing}`);
    t.match(f.condition?.message, sc.problem, `the message names the problem: ${f.condition?.message}`);
    t.match(f.condition?.reason, sc.reason, `the reason names the problem: ${f.condition?.reason}`);
    t.notMatch(f.condition?.reason, /NotFound|Verification|Digest/, 'the reason does not blame something else');
    t.equal(f.condition?.observedGeneration, f.generation, 'for the generation it saw');
    if (sc.withinMs !== undefined) t.ok(f.failedAfterMs! <= sc.withinMs, `Ready=False after ${f.failedAfterMs} ms, within one stall timeout and a margin (${sc.withinMs} ms)`);
    t.equal(f.reconciling?.status, 'True', 'Reconciling=True while it is retried');
    t.equal(f.reconciling?.reason, 'ProgressingWithRetry');
    if (sc.failing === 'OCMComponent') {
      t.equal(f.downstream?.reason, 'ComponentNotReady', 'the Source says its component is not ready');
      t.match(f.downstream?.message, sc.problem, 'and why');
    }
    t.ok(
      f.warningEvents.some((e) => e.reason === f.condition?.reason && sc.problem.test(e.message)),
      `a Warning event with the reason and the problem (${f.warningEvents.map((e) => e.reason).join(', ')})`,
    );
    t.ok(f.attemptsInWindow >= 1, `retried while it lasted (${f.attemptsInWindow} attempts in ${WINDOW_MS / 1000} s)`);
    t.ok(f.attemptsInWindow <= 8, `backed off: ${f.attemptsInWindow} reconcile attempts in ${WINDOW_MS / 1000} s (gaps ${f.attemptGapsMs.join(', ')} ms)`);
    if (f.requestsInWindow !== undefined) t.ok(f.requestsInWindow <= 40, `backed off: ${f.requestsInWindow} requests reached the registry in ${WINDOW_MS / 1000} s`);
    t.ok(f.readyComponent, 'the OCMComponent is Ready again');
    t.ok(f.readySource, `the Source is Ready again (after ${f.recoveredAfterMs} ms)`);
    t.same(f.snapshots, f.sourceSnapshot ? [f.sourceSnapshot] : ['<one>'], 'exactly one Snapshot, the Source\'s');
    t.same(f.snapshotsLater, f.snapshots, 'and still only that one a few seconds later');
    t.ok(f.normalEvents.some((e) => e.kind === sc.failing && e.reason === 'Succeeded'), 'a Normal event on recovery');
    t.notOk(f.reconcilingAfter, 'Ready again: no longer Reconciling');
    t.match(f.describe, new RegExp(`Warning\\s+${f.condition?.reason}\\b`), 'kubectl describe: the failure');
    t.match(f.describe, /Normal\s+Succeeded/, 'kubectl describe: the recovery');
  });
}
