// One run of the hostile-upstream fuzzer (issue 15), for test/fuzz-upstream.test.ts (fixed seed)
// and bench/chaos.ts (longer, any seed): a HostileRegistry serving `cases` component versions
// built from `seed`, a server with the reconcilers on (and --allow-private-upstreams: the registry
// is on loopback), an OCMComponent (which must verify signature `fz`) and a Source per case,
// created with kubectl. Returns every broken invariant: a 5xx or a Status-less error from the
// API, an OCMComponent Ready=True verified:true on corrupted content, an object without a Ready
// condition with a reason after `boundMs`, a ComponentDescriptor written for corrupted content, the
// RSS over the bound, the process gone, the canary changed; then the same after a restart with the
// poisoned objects in place (unless `restart: false`). The longest event-loop stall is returned for
// the caller to judge (the test repeats a run over the bound before it fails: the machine is shared).
import { generateKeyPair } from '../../ocm/signing.js';
import { type Case, HostileRegistry, REPO_PREFIX, SIGNATURE } from './hostile-registry.js';
import { apiProblem, MAX_RSS, metricValue } from './invariants.js';
import { startServer, tempDir, type TestServer, yamlDocs } from './server.js';

const G = '/apis/delivery.ocm.software/v1alpha1';
const NS = 'fz-up';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface UpstreamFuzzReport {
  cases: Case[];
  problems: string[];
  /** case index -> final Ready reason of its OCMComponent / Source */
  outcomes: Map<number, { component?: string; source?: string; verified?: boolean; ms?: number }>;
  stallMs: number;
  /** The slowest polling windows: when (ms into the run), the stall, what the registry served meanwhile. */
  slowest: { at: number; ms: number; served: string[] }[];
  rssMiB: number;
  requests: number;
}

type Cond = { type: string; status: string; reason?: string; message?: string };
/** Messages of a program error that escaped (a bug even when the process survives it). */
const INTERNAL = /is not a function|Cannot read propert|Cannot convert|is not iterable|is not defined|Maximum call stack|Invalid array length|TypeError|RangeError|ReferenceError/;
/** A Source's reasons while its OCMComponent is not (yet) usable. */
const WAITING = ['ComponentNotReady', 'ComponentNotVerified'];
const ready = (o: any): Cond | undefined => o?.status?.conditions?.find((c: Cond) => c.type === 'Ready');

/** A case found once and kept: case `i` of run `seed`, of the families named `only`. */
export interface Regression {
  i: number;
  seed: number;
  only: string;
  found: string;
}

export async function runUpstreamFuzz(o: { seed: number; cases: number; boundMs: number; only?: string; regressions?: Regression[]; restart?: boolean; serverArgs?: string[]; log?: (s: string) => void }): Promise<UpstreamFuzzReport> {
  const log = o.log ?? (() => {});
  const reg = await new HostileRegistry().start();
  const keys = generateKeyPair(2048);
  const cases = reg.cases(o.seed, o.cases, keys, { only: o.only });
  for (const x of o.regressions ?? []) cases.push(...reg.cases(x.seed, 1, keys, { first: x.i, only: x.only }));
  const problems: string[] = [];
  const outcomes: UpstreamFuzzReport['outcomes'] = new Map();
  const dataDir = tempDir('fuzz-upstream-');
  const args = ['--allow-private-upstreams', ...(o.serverArgs ?? [])];
  let s: TestServer | undefined;
  let stallMs = NaN;
  const windows: UpstreamFuzzReport['slowest'] = [];
  let rssMiB = NaN;
  try {
    s = await startServer({ dataDir, reconcilers: 'all', args });
    reg.self = `127.0.0.1:${s.port}`;
    const api = async (method: string, path: string, body?: unknown) => {
      const r = await s!.request(method, path, body === undefined ? {} : { body }).catch((e: Error) => ({ status: -1, body: String(e), json: () => undefined, headers: {} }));
      const p = path === '/healthz' || path === '/metrics' ? (r.status === 200 ? undefined : `${r.status}`) : apiProblem({ status: r.status, text: r.body });
      if (p) problems.push(`${method} ${path}: ${p}`);
      return r;
    };
    const metrics = async () => {
      const t = (await api('GET', '/metrics')).body;
      return { stall: metricValue(t, 'nodejs_eventloop_lag_max_seconds'), rss: metricValue(t, 'process_resident_memory_bytes') };
    };
    await metrics(); // resets the server's maximum stall (start-up is not under test)

    const canaryPath = `/api/v1/namespaces/${NS}/configmaps/canary`;
    const objs: unknown[] = [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'fz-key', namespace: NS }, data: { [SIGNATURE]: Buffer.from(keys.publicKeyPem).toString('base64') } },
      { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'canary', namespace: NS, labels: { keep: 'me' } }, data: { a: '1' } },
    ];
    for (const c of cases) {
      objs.push(
        { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: { name: `c${c.i}`, namespace: NS }, spec: { name: c.name, version: c.version, interval: '10m', repository: { url: `http://${reg.host}/${REPO_PREFIX}` }, verify: [{ signature: SIGNATURE, secretRef: { name: 'fz-key' } }] } },
        { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMResource', metadata: { name: `r${c.i}`, namespace: NS }, spec: { resource: 'data' } },
        { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'Source', metadata: { name: `s${c.i}`, namespace: NS }, spec: { componentRef: { name: `c${c.i}` }, providerRef: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMResource', name: `r${c.i}` } } },
      );
    }
    await metrics();
    const started = Date.now();
    const applied = await s.kubectl(['apply', '-f', '-'], { input: yamlDocs(...objs), timeoutMs: 60_000 });
    if (applied.code !== 0) problems.push(`kubectl apply: ${applied.stderr.slice(0, 500)}`);
    const canary = (await api('GET', canaryPath)).body;
    const afterApply = await metrics();
    windows.push({ at: 0, ms: afterApply.stall * 1000, served: ['(kubectl apply, and the first reconciles meanwhile)'] });

    // Until every OCMComponent and Source shows what its case requires, or the bound.
    const settled = new Set<number>();
    const flagged = new Set<string>();
    let windowStart = Date.now();
    for (;;) {
      // the stall of this window (the scrape resets the server's maximum), and what was served in it
      const w = await metrics();
      const served = reg.requests.filter((q) => q.at >= windowStart).map((q) => `${q.path.replace(/^\/v2\/ocm\/component-descriptors\//, '')}${q.trick ? ` (${q.trick})` : ''}`);
      windows.push({ at: windowStart - started, ms: w.stall * 1000, served: [...new Set(served)].slice(0, 12) });
      windowStart = Date.now();
      const comps = new Map<string, any>(((await api('GET', `${G}/namespaces/${NS}/ocmcomponents`)).json()?.items ?? []).map((x: any) => [x.metadata.name, x]));
      const srcs = new Map<string, any>(((await api('GET', `${G}/namespaces/${NS}/sources`)).json()?.items ?? []).map((x: any) => [x.metadata.name, x]));
      for (const c of cases) {
        const comp = comps.get(`c${c.i}`);
        const src = srcs.get(`s${c.i}`);
        const rc = ready(comp);
        const rs = ready(src);
        outcomes.set(c.i, { component: rc && `${rc.status}/${rc.reason}`, source: rs && `${rs.status}/${rs.reason}`, verified: comp?.status?.verified, ms: outcomes.get(c.i)?.ms });
        const flag = (what: string) => {
          if (!flagged.has(`${c.i} ${what}`)) problems.push(`case ${c.i} (${c.what}): ${what}`);
          flagged.add(`${c.i} ${what}`);
        };
        for (const [kind, cond] of [['OCMComponent', rc], ['Source', rs]] as const) {
          if (cond?.message && INTERNAL.test(cond.message)) flag(`${kind} condition shows an internal error, not a reason: ${cond.reason}: ${cond.message.slice(0, 300)}`);
        }
        if (c.expect === 'component' && rc?.status === 'True') flag(`OCMComponent Ready=True${comp.status.verified ? ' verified:true' : ''} on corrupted content: ${rc.message}`);
        if (c.expect !== 'any' && rs?.status === 'True') flag(`Source Ready=True on corrupted content: ${rs.message}`);
        const compDone = !!rc?.reason && (c.expect !== 'component' || rc.status === 'False');
        const srcDone = !!rs?.reason && (c.expect === 'any' || (rs.status === 'False' && (rc?.status !== 'True' || !WAITING.includes(rs.reason!))));
        if (compDone && srcDone && !settled.has(c.i)) {
          settled.add(c.i);
          outcomes.get(c.i)!.ms = Date.now() - started;
        }
      }
      if (settled.size === cases.length || Date.now() - started > o.boundMs) break;
      await sleep(500);
    }
    for (const c of cases) {
      if (!settled.has(c.i)) problems.push(`case ${c.i} (${c.what}): not settled within ${o.boundMs} ms: OCMComponent ${outcomes.get(c.i)?.component ?? 'no Ready condition'}, Source ${outcomes.get(c.i)?.source ?? 'no Ready condition'}`);
    }
    log(`settled ${settled.size}/${cases.length} in ${Date.now() - started} ms`);

    // Nothing written downstream of corrupted content.
    const cds = (await api('GET', `${G}/namespaces/${NS}/componentdescriptors`)).json()?.items ?? [];
    for (const c of cases.filter((x) => x.expect === 'component')) {
      const mine = cds.filter((d: any) => d.metadata.labels?.['delivery.ocm.software/ocmcomponent'] === `c${c.i}`);
      if (mine.length) problems.push(`case ${c.i} (${c.what}): ComponentDescriptor ${mine[0].metadata.name} written for corrupted content`);
    }
    const m = await metrics();
    stallMs = Math.max(m.stall * 1000, ...windows.map((x) => x.ms));
    rssMiB = m.rss / 2 ** 20;
    if (!(m.rss <= MAX_RSS)) problems.push(`resident memory ${rssMiB.toFixed(0)} MiB (bound ${MAX_RSS / 2 ** 20} MiB)`);
    if (s.proc.exitCode !== null) problems.push(`the server exited (${s.proc.exitCode}): ${s.logs.slice(-5).join('\n')}`);
    const now = JSON.parse((await api('GET', canaryPath)).body);
    const was = JSON.parse(canary);
    if (JSON.stringify([now.metadata?.resourceVersion, now.metadata?.labels, now.data]) !== JSON.stringify([was.metadata?.resourceVersion, was.metadata?.labels, was.data])) problems.push('the canary ConfigMap changed');

    // A restart with the poisoned objects in place: it starts, reads the hostile registry again, keeps serving.
    if (o.restart === false) return { cases, problems, outcomes, stallMs, slowest: [...windows].sort((a, b) => b.ms - a.ms).slice(0, 3), rssMiB, requests: reg.requests.length };
    await s.stop();
    const before = reg.requests.length;
    s = await startServer({ dataDir, reconcilers: 'all', args });
    reg.self = `127.0.0.1:${s.port}`;
    const until = Date.now() + 15_000;
    while (reg.requests.length === before && Date.now() < until) await sleep(250);
    await sleep(3000);
    if (reg.requests.length === before) problems.push('after the restart the reconcilers did not read the registry again');
    if (s.proc.exitCode !== null) problems.push(`after the restart the server exited (${s.proc.exitCode}): ${s.logs.slice(-5).join('\n')}`);
    if ((await api('GET', '/healthz')).status !== 200) problems.push('after the restart /healthz is not 200');
    const comps = (await api('GET', `${G}/namespaces/${NS}/ocmcomponents`)).json()?.items ?? [];
    for (const c of cases.filter((x) => x.expect === 'component')) {
      const rc = ready(comps.find((x: any) => x.metadata.name === `c${c.i}`));
      if (rc?.status !== 'False') problems.push(`after the restart, case ${c.i} (${c.what}): OCMComponent Ready ${rc?.status ?? 'missing'}`);
    }
    return { cases, problems, outcomes, stallMs, slowest: [...windows].sort((a, b) => b.ms - a.ms).slice(0, 3), rssMiB, requests: reg.requests.length };
  } finally {
    await s?.stop().catch(() => undefined);
    await reg.close();
    const { rmSync } = await import('node:fs');
    rmSync(dataDir, { recursive: true, force: true });
  }
}
