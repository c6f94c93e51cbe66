// Pipeline figures (issue 6, "Performance"): a script that prints numbers, with no assertions.
//
// A standalone server with every reconciler, the sample component published into its embedded
// registry (`node dist/cli/example.js --kubeconfig FILE`, which also makes the key pair and the
// verify Secret), and, before any timing, once more for each namespace below, in-process
// (publishSample): the server reads its own registry for an object only under the object's
// namespace, so namespace N gets its own copy at `<registry>/N/ocm` (its image under N/images/).
// Then:
//   1. one pipeline at a time: the examples/podinfo/*.yaml objects moved to namespace pipe-i
//      (OCMComponent pointed at `<registry>/pipe-i/ocm`, with a copy of the verify Secret),
//      applied with ONE `kubectl apply -f -`; the time until the Flux Kustomization of that
//      pipeline exists (seen on a watch on kustomizations).
//   2. N independent pipelines at once (namespaces many-0..N-1, a few parallel kubectl applies):
//      the time until all N Kustomizations exist.
//   3. idle CPU: the server's utime+stime (/proc/<pid>/stat) over 10 s with nothing changing.
//
//   npm run bench:pipeline
//   node dist/bench/pipeline.js --runs 20 --many 200
// Env: OCM_SERVER_ROOT, BENCH_RESULT_FILE: see bench/compare.ts
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { ensureKeys, publishSample } from '../cli/example.js';
import { OciClient } from '../registry/client.js';
import { openWatch, percentile, sleep, type WatchLine } from '../test/helpers/load-client.js';
import { startServer } from '../test/helpers/server.js';
import { runCommand } from '../test/helpers/process.js';
import { readProc } from './api.js';
import { writeBenchResult } from './result.js';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: '20' },
    many: { type: 'string', default: '200' },
    parallel: { type: 'string', default: '4' },
    'publish-parallel': { type: 'string', default: '4' },
    'idle-seconds': { type: 'string', default: '10' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  console.log('node dist/bench/pipeline.js [--runs N] [--many N] [--parallel N] [--publish-parallel N] [--idle-seconds N]');
  process.exit(0);
}
const RUNS = Number(flags.runs);
const MANY = Number(flags.many);
const PARALLEL = Math.max(1, Number(flags.parallel));
const IDLE_S = Number(flags['idle-seconds']);
const PUBLISH_PARALLEL = Math.max(1, Number(flags['publish-parallel']));

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLE = join(root, 'examples', 'podinfo');
const NS = 'podinfo';
const DEFAULT_REGISTRY = '127.0.0.1:5001';
const KS_PATH = '/apis/kustomize.toolkit.fluxcd.io/v1/kustomizations';

const ms = (n: number) => `${n.toFixed(0)} ms`;

/** A command run in the repository root, as the README's commands are (npm needs INIT_CWD there). */
const run = (cmd: string, args: string[], timeoutMs: number) => runCommand(cmd, args, { cwd: root, env: { ...process.env, INIT_CWD: root }, timeoutMs });

const cpuS = (pid: number) => readProc(pid).cpuS;
const kubectlCpuS = () => readProc('self').childrenCpuS; // the kubectl processes, once waited for
/** Busy and total jiffies of the whole machine (/proc/stat, first line). */
function machineTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - (f[4] ?? 0), total }; // minus idle and iowait
}

// BENCH_NODE_ARGS: extra node options for the server (e.g. '--cpu-prof --cpu-prof-dir=/tmp/prof').
const s = await startServer({ reconcilers: 'all', nodeArgs: (process.env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean) });
let stopped = false;
const stop = async () => {
  if (!stopped) {
    stopped = true;
    await s.stop();
  }
};
process.on('SIGINT', () => void stop().then(() => process.exit(130)));
try {
  const registry = s.logs.map((l) => /"registry":"([^"]+)"/.exec(l)?.[1]).find(Boolean)!;
  console.log(`server ${s.url} (pid ${s.proc.pid}), registry ${registry}`);

  // ---- publish the sample component once ----------------------------------------------------
  let t0 = performance.now();
  const pub = await run(process.execPath, [join(root, 'dist', 'cli', 'example.js'), '--kubeconfig', s.kubeconfig], 240_000);
  if (pub.code !== 0) throw new Error(`example.js failed:\n${pub.out}`);
  console.log(`published the sample component in ${ms(performance.now() - t0)}`);

  // ---- and once per namespace of the bench, not timed -----------------------------------------
  const pipeNames = Array.from({ length: RUNS }, (_, i) => `pipe-${i}`);
  const names = Array.from({ length: MANY }, (_, i) => `many-${i}`);
  const repoUrls = new Map<string, string>();
  {
    const certs = join(s.dataDir, 'certs');
    const client = new OciClient({ ca: readFileSync(join(certs, 'ca.crt'), 'utf8'), cert: readFileSync(join(certs, 'admin.crt'), 'utf8'), key: readFileSync(join(certs, 'admin.key'), 'utf8'), retries: 2 });
    const { privateKeyPem } = ensureKeys(join(root, 'examples', '.keys')); // example.js's default: the key the Secret holds
    const queue = [...pipeNames, ...names];
    t0 = performance.now();
    try {
      await Promise.all(
        Array.from({ length: PUBLISH_PARALLEL }, async () => {
          for (let ns = queue.shift(); ns; ns = queue.shift()) repoUrls.set(ns, (await publishSample(client, registry, { privateKeyPem, namespace: ns })).repositoryUrl);
        }),
      );
    } finally {
      client.close();
    }
    console.log(`published it under ${repoUrls.size} namespaces (${RUNS} pipe-i, ${MANY} many-i) in ${ms(performance.now() - t0)} (not part of any figure)`);
  }

  const secretRes = await s.request('GET', `/api/v1/namespaces/${NS}/secrets/ocm-example-key`);
  if (secretRes.status !== 200) throw new Error(`GET secret: ${secretRes.status} ${secretRes.body}`);
  const srcSecret = secretRes.json();
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: srcSecret.metadata.name }, type: srcSecret.type, data: srcSecret.data };

  const templates: any[] = [];
  for (const f of readdirSync(EXAMPLE).filter((f) => f.endsWith('.yaml')).sort()) {
    const text = readFileSync(join(EXAMPLE, f), 'utf8').replaceAll(`${DEFAULT_REGISTRY}/`, `${registry}/`);
    for (const d of YAML.parseAllDocuments(text)) {
      const o = d.toJS();
      if (o) templates.push(o);
    }
  }
  const pipelineYaml = (ns: string) => {
    const objs: any[] = [];
    for (const t of templates) {
      const o = structuredClone(t);
      if (o.kind === 'Namespace') {
        o.metadata.name = ns;
        objs.push(o, { ...structuredClone(secret), metadata: { name: secret.metadata.name, namespace: ns } });
        continue;
      }
      o.metadata.namespace = ns;
      if (o.kind === 'OCMComponent') o.spec.repository.url = repoUrls.get(ns);
      if (o.kind === 'KustomizationTemplate' && o.spec?.template?.targetNamespace === NS) o.spec.template.targetNamespace = ns;
      objs.push(o);
    }
    return objs.map((o) => YAML.stringify(o)).join('---\n');
  };

  // ---- a watch on Kustomizations: the first time each namespace's one is seen ----------------
  const seen = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  const list = await s.request('GET', KS_PATH);
  if (list.status !== 200) throw new Error(`list kustomizations: ${list.status} ${list.body}`);
  for (const o of list.json().items) seen.set(o.metadata.namespace, performance.now());
  const watch = openWatch(s.port, s.dataDir, `${KS_PATH}?watch=1&allowWatchBookmarks=false&resourceVersion=${list.json().metadata.resourceVersion}`, (l: WatchLine) => {
    const o: any = (l as any).object;
    if (l.type !== 'ADDED' && l.type !== 'MODIFIED') return;
    const ns = o?.metadata?.namespace;
    if (!ns || seen.has(ns)) return;
    seen.set(ns, performance.now());
    waiters.get(ns)?.();
    waiters.delete(ns);
  });
  const waitFor = (ns: string, timeoutMs: number) =>
    new Promise<number>((res, rej) => {
      const done = () => {
        clearTimeout(timer);
        res(seen.get(ns)!);
      };
      const timer = setTimeout(() => {
        waiters.delete(ns);
        rej(new Error(`no Kustomization in ${ns} after ${timeoutMs} ms`));
      }, timeoutMs);
      if (seen.has(ns)) done();
      else waiters.set(ns, done);
    });

  // ---- 1. one pipeline at a time -------------------------------------------------------------
  console.log(`\n1. one pipeline at a time, ${RUNS} runs`);
  const times: number[] = [];
  const applyTimes: number[] = [];
  for (const ns of pipeNames) {
    const i = times.length;
    const input = pipelineYaml(ns);
    const start = performance.now();
    const waiting = waitFor(ns, 120_000);
    const a = await s.kubectl(['apply', '-f', '-'], { input, timeoutMs: 120_000 });
    const applied = performance.now();
    if (a.code !== 0) throw new Error(`kubectl apply ${ns}: ${a.stderr}`);
    const at = await waiting;
    times.push(at - start);
    applyTimes.push(applied - start);
    console.log(`  run ${String(i).padStart(2)}: ${ms(at - start).padStart(8)}  (kubectl apply itself ${ms(applied - start)})`);
  }
  const sorted = [...times].sort((a, b) => a - b);
  const p50 = percentile(sorted, 50);
  const p90 = percentile(sorted, 90);
  const max = sorted[sorted.length - 1];
  const sortedApply = [...applyTimes].sort((a, b) => a - b);
  console.log(`  apply -> Kustomization: p50 ${ms(p50)}, p90 ${ms(p90)}, max ${ms(max)}  (kubectl apply alone p50 ${ms(percentile(sortedApply, 50))})`);

  // ---- 2. many pipelines at once -------------------------------------------------------------
  console.log(`\n2. ${MANY} independent pipelines at once (${PARALLEL} parallel kubectl applies)`);
  const chunks: string[][] = Array.from({ length: PARALLEL }, () => []);
  names.forEach((n, i) => chunks[i % PARALLEL].push(n));
  const inputs = chunks.filter((c) => c.length).map((c) => c.map(pipelineYaml).join('---\n'));
  t0 = performance.now();
  const cpuBefore = cpuS(s.proc.pid!);
  const kubectlBefore = kubectlCpuS();
  const machineBefore = machineTicks();
  const allSeen = Promise.all(names.map((n) => waitFor(n, 600_000)));
  const applies = await Promise.all(inputs.map((input) => s.kubectl(['apply', '-f', '-'], { input, timeoutMs: 600_000 })));
  const appliedAt = performance.now() - t0;
  for (const a of applies) if (a.code !== 0) throw new Error(`kubectl apply: ${a.stderr}`);
  const seenAt = (await allSeen).map((t) => t - t0).sort((a, b) => a - b);
  const manyTotal = seenAt[seenAt.length - 1];
  const manyCpuS = cpuS(s.proc.pid!) - cpuBefore;
  console.log(`  kubectl applies done after ${ms(appliedAt)}`);
  console.log(`  Kustomizations: first ${ms(seenAt[0])}, half ${ms(percentile(seenAt, 50))}, all ${MANY} ${ms(manyTotal)}`);
  const kubectlS = kubectlCpuS() - kubectlBefore;
  const machineAfter = machineTicks();
  const busyPct = (100 * (machineAfter.busy - machineBefore.busy)) / (machineAfter.total - machineBefore.total);
  console.log(`  CPU in this phase: server ${manyCpuS.toFixed(1)} s (${((1000 * manyCpuS) / MANY).toFixed(0)} ms per pipeline), kubectl ${kubectlS.toFixed(1)} s; the machine's cores ${busyPct.toFixed(0)} % busy`);
  watch.close();

  // ---- 3. idle CPU ---------------------------------------------------------------------------
  console.log(`\n3. idle CPU over ${IDLE_S} s`);
  await sleep(2000); // let the last status writes settle
  const pid = s.proc.pid!;
  const c0 = cpuS(pid);
  const w0 = performance.now();
  await sleep(IDLE_S * 1000);
  const idleCpuS = cpuS(pid) - c0;
  const wallS = (performance.now() - w0) / 1000;
  const cpuPct = (100 * idleCpuS) / wallS;
  console.log(`  server CPU ${idleCpuS.toFixed(2)} s in ${wallS.toFixed(1)} s: ${cpuPct.toFixed(2)} %`);

  // ---- summary -------------------------------------------------------------------------------
  const IDLE_TARGET = 1; // percent of one core: "near zero"
  const rows = [
    ['one pipeline, p50', '< 1 s', ms(p50), p50 < 1000],
    [`${MANY} pipelines at once`, MANY === 200 ? '< 30 s' : `< 30 s (for 200; ran ${MANY})`, ms(manyTotal), manyTotal < 30_000],
    ['idle CPU', `near zero (< ${IDLE_TARGET} %)`, `${cpuPct.toFixed(2)} %`, cpuPct < IDLE_TARGET],
  ] as const;
  writeBenchResult('pipeline', {
    'one pipeline p50 ms': { value: p50, better: 'lower' },
    [`${MANY} pipelines ms`]: { value: manyTotal, better: 'lower' },
    [`server CPU per pipeline ms (${MANY} at once)`]: { value: (1000 * manyCpuS) / MANY, better: 'lower' },
    'idle CPU %': { value: cpuPct, better: 'lower' },
  });
  console.log('\nsummary against issue 6 targets');
  console.log(`  ${'figure'.padEnd(26)} ${'target'.padEnd(28)} ${'measured'.padEnd(12)} result`);
  for (const [name, target, got, ok] of rows) console.log(`  ${name.padEnd(26)} ${target.padEnd(28)} ${got.padEnd(12)} ${ok ? 'met' : 'NOT MET'}`);
} finally {
  await stop();
}
