// Registry benchmark (issue 4, "Performance"): a script that prints figures, no assertions.
// In one run it starts
//   - our snapshot registry (registry/server.ts) in a child process (bench/registry-runner.ts), over
//     HTTPS with certificates from ensureCerts() in a temp dir; the client authenticates with the
//     admin client certificate (mTLS);
//   - Debian's docker-registry (the CNCF distribution registry, test/helpers/distribution.ts) on
//     loopback, HTTPS with the same certificates and client-certificate auth, with its own temp storage;
// then, for each registry and with the same OciClient (registry/client.ts):
//   1. push + pull of a reference blob of --big-mb/10 MiB (for the memory slope),
//   2. push + pull of a --big-mb MiB blob (random data generated once into a temp file, pushed as a
//      stream from that file and pulled as a stream that is counted and dropped: neither the bench
//      nor the client ever holds a whole blob in memory),
//   3. push + pull of --small blobs of --small-kb KiB with --concurrency parallel requests,
// reading the registry process's VmRSS/VmHWM from /proc during the transfers (VmHWM is reset through
// /proc/<pid>/clear_refs before each phase where the kernel allows it, and RSS is sampled every
// 20 ms as well), and prints a side-by-side table with the ratio ours/distribution for each figure
// and the issue's targets (informational only): throughput within 1.2x of distribution (ours/dist >=
// 0.83), and memory that does not grow with blob size (the peak RSS of the big transfers exceeds that
// of the reference transfers by less than max(0.25 x the size difference, 16 MiB)). An unmeasured
// warm-up with other blobs runs first; with --repeat N the phases run N times, interleaved between
// the two registries, each run into fresh repositories.
//
//   npm run bench:registry
//   node dist/bench/registry.js --big-mb 50 --small 200          # quick run
//   BENCH_REGISTRY_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' node dist/bench/registry.js
//
// Flags: --big-mb N (200) --small N (1000) --small-kb N (4) --concurrency N (8)
//        --repeat N (1; every figure is the median of N runs, memory the maximum) --keep (keep temp dir)
// Env:   BENCH_REGISTRY_NODE_ARGS  extra node arguments for our registry process (e.g. --cpu-prof)
//        BENCH_PHASES_FILE         write each phase's start/end (CLOCK_MONOTONIC us, as in .cpuprofile files) there
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { createReadStream, createWriteStream, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureCerts } from '../certs/index.js';
import { OciClient } from '../registry/client.js';
import { startDistribution, type Distribution } from '../test/helpers/distribution.js';
import { startNodeProcess } from '../test/helpers/process.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');

const { values: flags } = parseArgs({
  options: {
    'big-mb': { type: 'string', default: '200' },
    small: { type: 'string', default: '1000' },
    'small-kb': { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '8' },
    repeat: { type: 'string', default: '1' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (flags.help) {
  console.log('usage: node dist/bench/registry.js [--big-mb N] [--small N] [--small-kb N] [--concurrency N] [--repeat N] [--keep]');
  process.exit(0);
}
const posInt = (name: string, v: string | undefined, min = 1): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be an integer >= ${min}, got ${v}`);
    process.exit(2);
  }
  return n;
};
const BIG_MB = posInt('big-mb', flags['big-mb']);
const REF_MB = Math.max(1, Math.round(BIG_MB / 10));
const SMALL = posInt('small', flags.small);
const SMALL_KB = posInt('small-kb', flags['small-kb']);
const CONCURRENCY = posInt('concurrency', flags.concurrency);
const REPEAT = posInt('repeat', flags.repeat);

const MiB = 1024 * 1024;
const THROUGHPUT_TARGET = 1.2; // ours may be at most 1.2x slower than distribution
const SLOPE_TARGET = 0.25; // extra peak RSS per extra byte of blob size, above which memory "grows with blob size"
const MEM_NOISE_MIB = 16; // RSS differences below this are heap/allocator noise, not growth with blob size
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : NaN;
};

// ---------------------------------------------------------------------------------------------
// /proc

const CLK_TCK = 100; // Linux USER_HZ

interface ProcStats {
  rssKb: number;
  hwmKb: number;
  cpuS: number;
}

function readProc(pid: number): ProcStats {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? NaN);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), cpuS: (Number(rest[11]) + Number(rest[12])) / CLK_TCK };
}

/** Resets VmHWM to the current RSS (Linux >= 4.0, own processes); false when not allowed. */
function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}

/** The child of this process whose command line mentions `needle` (docker-registry's config path). */
function findChild(needle: string): number | undefined {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      if (readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(needle)) return Number(d);
    } catch {
      // gone
    }
  }
  return undefined;
}

/** Samples VmRSS every 20 ms while `fn` runs; also resets and reads VmHWM around it. */
async function withMemory<T>(pid: number, fn: () => Promise<T>): Promise<{ value: T; beforeKb: number; peakKb: number; cpuS: number; clientCpuS: number }> {
  const reset = resetPeak(pid);
  const before = readProc(pid);
  let peak = before.rssKb;
  let stop = false;
  const sampler = (async () => {
    while (!stop) {
      try {
        peak = Math.max(peak, readProc(pid).rssKb);
      } catch {
        return;
      }
      await sleep(20);
    }
  })();
  const c0 = process.cpuUsage();
  try {
    const value = await fn();
    const after = readProc(pid);
    const cu = process.cpuUsage(c0);
    peak = Math.max(peak, after.rssKb, reset ? after.hwmKb : 0);
    return { value, beforeKb: before.rssKb, peakKb: peak, cpuS: after.cpuS - before.cpuS, clientCpuS: (cu.user + cu.system) / 1e6 };
  } finally {
    stop = true;
    await sampler;
  }
}

// ---------------------------------------------------------------------------------------------
// test data

interface FileBlob {
  path: string;
  size: number;
  digest: string;
}

/** Writes `mb` MiB of random data to `path` in 1 MiB chunks, hashing as it goes. */
async function makeFile(path: string, mb: number): Promise<FileBlob> {
  const out = createWriteStream(path);
  const hash = createHash('sha256');
  const chunk = Buffer.allocUnsafe(MiB);
  for (let i = 0; i < mb; i++) {
    randomFillSync(chunk);
    hash.update(chunk);
    // a copy per write: the stream may still hold the previous buffer
    if (!out.write(Buffer.from(chunk))) await new Promise<void>((r) => out.once('drain', () => r()));
  }
  await new Promise<void>((res, rej) => out.end((err?: Error | null) => (err ? rej(err) : res())));
  return { path, size: mb * MiB, digest: `sha256:${hash.digest('hex')}` };
}

interface SmallBlob {
  data: Buffer;
  digest: string;
}

function makeSmall(n: number, kb: number): SmallBlob[] {
  return Array.from({ length: n }, () => {
    const data = randomFillSync(Buffer.allocUnsafe(kb * 1024));
    return { data, digest: `sha256:${createHash('sha256').update(data).digest('hex')}` };
  });
}

// ---------------------------------------------------------------------------------------------
// the registries

interface Target {
  name: string;
  label: string;
  host: string; // host:port as a reference host
  pid: number;
  client: OciClient;
  stop(): Promise<void>;
}

async function startOurs(dir: string): Promise<Target & { proc: ChildProcess; logs: string[] }> {
  const certDir = join(dir, 'certs');
  const certs = await ensureCerts(certDir);
  const dataDir = join(dir, 'ours');
  const p = await startNodeProcess({
    name: 'our registry',
    script: join(here, 'registry-runner.js'),
    cwd: root,
    nodeArgs: (process.env.BENCH_REGISTRY_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
    args: ['--data-dir', dataDir, '--cert-dir', certDir],
    ready: (j) => (typeof j.port === 'number' && j.pid ? j.port : undefined),
    echo: true,
  });
  const client = new OciClient({ ca: certs.caCertPem, cert: certs.adminCertPem, key: certs.adminKeyPem, retries: 0 });
  return { name: 'ours', label: 'ours (HTTPS+mTLS)', host: `127.0.0.1:${p.ready}`, pid: p.proc.pid!, client, proc: p.proc, logs: p.logs, stop: p.stop };
}

// Distribution serves TLS with the same certificates and requires the same client certificate, so
// both registries are measured doing the same work (TLS decryption alone costs the client about a
// third of a core at these rates).
async function startDist(certDir: string): Promise<Target & { dist: Distribution }> {
  const certs = await ensureCerts(certDir);
  const dist = await startDistribution({
    tls: { cert: certs.serverCertPem, key: certs.serverKeyPem, clientCa: certs.caCertPem, probe: { cert: certs.adminCertPem, key: certs.adminKeyPem } },
  });
  const pid = findChild(dist.dir);
  if (!pid) {
    await dist.stop();
    throw new Error('docker-registry started but its pid was not found under /proc');
  }
  const client = new OciClient({ ca: certs.caCertPem, cert: certs.adminCertPem, key: certs.adminKeyPem, retries: 0 });
  return { name: 'distribution', label: 'distribution (HTTPS+mTLS)', host: dist.host, pid, client, dist, stop: () => dist.stop() };
}

async function registryVersion(): Promise<string> {
  return new Promise((res) => {
    const p = spawn('/usr/bin/docker-registry', ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] });
    let out = '';
    p.stdout!.on('data', (d) => (out += d));
    p.on('error', () => res('unknown'));
    p.on('exit', () => res(out.trim() || 'unknown'));
  });
}

async function tlsInfo(port: number, dir: string): Promise<string> {
  const read = (f: string) => readFileSync(join(dir, 'certs', f), 'utf8');
  return new Promise((res) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: read('ca.crt'), cert: read('admin.crt'), key: read('admin.key') }, () => {
      const c = s.getCipher();
      res(`${s.getProtocol()} ${c.standardName ?? c.name}`);
      s.end();
    });
    s.on('error', (e) => res(`unknown (${e.message})`));
  });
}

// ---------------------------------------------------------------------------------------------
// phases

async function drainBlob(stream: Readable): Promise<number> {
  let n = 0;
  for await (const c of stream as AsyncIterable<Buffer>) n += c.length;
  return n;
}

async function pushFile(t: Target, repo: string, f: FileBlob): Promise<void> {
  await t.client.pushBlob(`${t.host}/${repo}`, () => createReadStream(f.path, { highWaterMark: 1 << 20 }), f.digest, f.size);
}

async function pullFile(t: Target, repo: string, f: FileBlob): Promise<void> {
  const n = await drainBlob(await t.client.getBlob(`${t.host}/${repo}`, f.digest));
  if (n !== f.size) throw new Error(`${t.name}: pulled ${n} bytes of ${f.size}`);
}

async function pool(n: number, concurrency: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < n; i = next++) await fn(i);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

interface Measure {
  seconds: number;
  beforeKb: number;
  peakKb: number;
  cpuS: number;
  clientCpuS: number;
}

async function measure(t: Target, fn: () => Promise<void>): Promise<Measure> {
  const t0 = performance.now();
  const m = await withMemory(t.pid, fn);
  return { seconds: (performance.now() - t0) / 1000, beforeKb: m.beforeKb, peakKb: m.peakKb, cpuS: m.cpuS, clientCpuS: m.clientCpuS };
}

const phaseWindows: { target: string; pid: number; phase: string; run: number; startUs: number; endUs: number }[] = [];

type PhaseName = 'refPush' | 'refPull' | 'bigPush' | 'bigPull' | 'smallPush' | 'smallPull';
const PHASES: PhaseName[] = ['refPush', 'refPull', 'bigPush', 'bigPull', 'smallPush', 'smallPull'];

interface Results {
  baselineKb: number;
  phases: Partial<Record<PhaseName, Measure[]>>;
  finalRssKb: number;
}

async function runPhase(t: Target, phase: PhaseName, run: number, ref: FileBlob, big: FileBlob, small: SmallBlob[], r: Results) {
  const repo = (kind: string) => `bench/${kind}-${run}`;
  let fn: () => Promise<void>;
  switch (phase) {
    case 'refPush':
      fn = () => pushFile(t, repo('ref'), ref);
      break;
    case 'refPull':
      fn = () => pullFile(t, repo('ref'), ref);
      break;
    case 'bigPush':
      fn = () => pushFile(t, repo('big'), big);
      break;
    case 'bigPull':
      fn = () => pullFile(t, repo('big'), big);
      break;
    case 'smallPush':
      fn = () => pool(small.length, CONCURRENCY, async (i) => void (await t.client.pushBlob(`${t.host}/${repo('small')}`, small[i].data, small[i].digest, small[i].data.length)));
      break;
    case 'smallPull':
      fn = () =>
        pool(small.length, CONCURRENCY, async (i) => {
          const n = await drainBlob(await t.client.getBlob(`${t.host}/${repo('small')}`, small[i].digest));
          if (n !== small[i].data.length) throw new Error(`${t.name}: pulled ${n} bytes of ${small[i].data.length}`);
        });
      break;
  }
  const start = process.hrtime.bigint();
  const m = await measure(t, fn);
  (r.phases[phase] ??= []).push(m);
  // CLOCK_MONOTONIC microseconds, the clock of V8's .cpuprofile timestamps, to slice a profile by phase
  phaseWindows.push({ target: t.name, pid: t.pid, phase, run, startUs: Number(start / 1000n), endUs: Number(process.hrtime.bigint() / 1000n) });
  return m;
}

// ---------------------------------------------------------------------------------------------
// output

const mibOf = (kb: number) => kb / 1024;
const fmt = (v: number, digits = 1) => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');

function phaseLine(t: Target, phase: PhaseName, m: Measure, bytes: number, count: number) {
  const rate = count > 1 ? `${fmt(count / m.seconds, 0)} blobs/s, ${fmt(bytes / MiB / m.seconds)} MiB/s` : `${fmt(bytes / MiB / m.seconds)} MiB/s`;
  console.log(
    `  ${t.name.padEnd(12)} ${phase.padEnd(9)} ${fmt(m.seconds, 2).padStart(7)} s  ${rate.padEnd(28)} RSS ${fmt(mibOf(m.beforeKb))} -> peak ${fmt(mibOf(m.peakKb))} MiB   CPU registry ${fmt(m.cpuS, 2)} s, bench ${fmt(m.clientCpuS, 2)} s`,
  );
}

interface Row {
  figure: string;
  ours: number;
  dist: number;
  unit: string;
  digits?: number;
  /** higher is better (throughput): the 1.2x target applies */
  target?: 'throughput';
}

function printTable(rows: Row[], notes: string[]) {
  const cells = rows.map((r) => {
    const ratio = r.ours > 0 && r.dist > 0 ? r.ours / r.dist : NaN;
    let result = '';
    // "within 1.2x": distribution may be at most 1.2 times as fast as ours
    if (r.target === 'throughput') result = `${r.dist / r.ours <= THROUGHPUT_TARGET ? 'met' : 'NOT MET'} (distribution ${fmt(r.dist / r.ours, 2)}x as fast)`;
    return [r.figure, `${fmt(r.ours, r.digits)} ${r.unit}`, `${fmt(r.dist, r.digits)} ${r.unit}`, Number.isFinite(ratio) ? `${fmt(ratio, 2)}x` : 'n/a', result];
  });
  const head = ['figure', 'ours', 'distribution', 'ours/dist', `target (within ${THROUGHPUT_TARGET}x)`];
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) => `  ${c[0].padEnd(w[0])}  ${c[1].padStart(w[1])}  ${c[2].padStart(w[2])}  ${c[3].padStart(w[3])}  ${c[4]}`;
  console.log(line(head));
  console.log(line(w.map((n) => '-'.repeat(n))));
  for (const c of cells) console.log(line(c));
  for (const n of notes) console.log(`  ${n}`);
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const dir = mkdtempSync(join(os.tmpdir(), 'ocm-registry-bench-'));
  const targets: Target[] = [];
  let interrupted = false;
  const cleanup = async () => {
    for (const t of targets) {
      t.client.close();
      await t.stop().catch(() => {});
    }
    if (!flags.keep) rmSync(dir, { recursive: true, force: true });
  };
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    console.error('\ninterrupted: stopping the registries');
    void cleanup().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let failed: unknown;
  try {
    const t0 = performance.now();
    const ref = await makeFile(join(dir, 'ref.bin'), REF_MB);
    const big = await makeFile(join(dir, 'big.bin'), BIG_MB);
    const small = makeSmall(SMALL, SMALL_KB);
    console.log(`test data: ${BIG_MB} MiB and ${REF_MB} MiB random files, ${SMALL} x ${SMALL_KB} KiB random blobs in ${((performance.now() - t0) / 1000).toFixed(1)} s (in ${dir})`);

    const ours = await startOurs(dir);
    targets.push(ours);
    const dist = await startDist(join(dir, 'certs'));
    targets.push(dist);
    for (const t of targets) await t.client.ping(t.host);

    heading('ocm-apiserver registry benchmark (issue 4)');
    console.log(`  --big-mb ${BIG_MB} --small ${SMALL} --small-kb ${SMALL_KB} --concurrency ${CONCURRENCY} --repeat ${REPEAT}; reference blob ${REF_MB} MiB`);
    const load0 = os.loadavg()[0];
    console.log(`  machine: ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? '?'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, node ${process.version}, ${os.tmpdir()} for storage`);
    console.log(`  load average at start: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}${load0 > os.availableParallelism() / 2 ? '  (WARNING: the machine is busy; figures will be noisy, consider --repeat N)' : ''}`);
    console.log(`  ours:         registry/server.ts in its own node process (pid ${ours.pid}, port ${ours.host.split(':')[1]}), HTTPS (${await tlsInfo(Number(ours.host.split(':')[1]), dir)}), client authenticated by the admin certificate (mTLS)`);
    if (process.env.BENCH_REGISTRY_NODE_ARGS) console.log(`                node args: ${process.env.BENCH_REGISTRY_NODE_ARGS}`);
    console.log(`  distribution: ${await registryVersion()} (pid ${dist.pid}, ${dist.host}), HTTPS (${await tlsInfo(dist.dist.port, dir)}) with the same`);
    console.log('                certificates, client certificate required (mTLS), filesystem storage');
    console.log('  NOTE: ours fsyncs every blob before it renames it in; distribution does not.');
    console.log('  client: registry/client.ts OciClient for both; push = HEAD + POST + one streaming PUT (digest known), pull = one streaming GET');
    console.log('          with digest verification; the bench runs in one node process sharing the cores with the registry under test.');

    const results = new Map<string, Results>();

    // Warm-up (not measured): JIT, buffer pools, connections, first directories.
    // Its blobs are not those measured later, so that no store already holds a measured blob.
    const warmBig = await makeFile(join(dir, 'warmup.bin'), REF_MB);
    const warmSmall = makeSmall(64, SMALL_KB);
    for (const t of targets) {
      await pushFile(t, 'bench/warmup', warmBig);
      await pullFile(t, 'bench/warmup', warmBig);
      await pool(warmSmall.length, CONCURRENCY, async (i) => {
        await t.client.pushBlob(`${t.host}/bench/warmup`, warmSmall[i].data, warmSmall[i].digest, warmSmall[i].data.length);
        await drainBlob(await t.client.getBlob(`${t.host}/bench/warmup`, warmSmall[i].digest));
      });
    }

    for (const t of targets) results.set(t.name, { baselineKb: readProc(t.pid).rssKb, phases: {}, finalRssKb: NaN });
    heading('runs (after an unmeasured warm-up; phases interleaved: each phase on ours, then on distribution)');
    for (let run = 0; run < REPEAT; run++) {
      for (const phase of PHASES) {
        for (const t of targets) {
          const m = await runPhase(t, phase, run, ref, big, small, results.get(t.name)!);
          const [bytes, count] = phase.startsWith('ref') ? [ref.size, 1] : phase.startsWith('big') ? [big.size, 1] : [SMALL * SMALL_KB * 1024, SMALL];
          phaseLine(t, phase, m, bytes, count);
        }
      }
    }
    for (const t of targets) {
      const s = readProc(t.pid);
      const r = results.get(t.name)!;
      r.finalRssKb = s.rssKb;
    }

    // ---- table
    const o = results.get('ours')!;
    const d = results.get('distribution')!;
    const med = (r: Results, p: PhaseName, f: (m: Measure) => number) => median((r.phases[p] ?? []).map(f));
    const max = (r: Results, p: PhaseName, f: (m: Measure) => number) => Math.max(...(r.phases[p] ?? []).map(f));
    const rows: Row[] = [];
    const both = (figure: string, unit: string, f: (r: Results) => number, extra: Partial<Row> = {}) => rows.push({ figure, unit, ours: f(o), dist: f(d), ...extra });
    const mbps = (p: PhaseName, bytes: number) => (r: Results) => med(r, p, (m) => bytes / MiB / m.seconds);
    const smallBytes = SMALL * SMALL_KB * 1024;
    both(`push ${BIG_MB} MiB blob`, 'MiB/s', mbps('bigPush', big.size), { target: 'throughput' });
    both(`pull ${BIG_MB} MiB blob`, 'MiB/s', mbps('bigPull', big.size), { target: 'throughput' });
    both(`push ${SMALL} x ${SMALL_KB} KiB (c=${CONCURRENCY})`, 'blobs/s', (r) => med(r, 'smallPush', (m) => SMALL / m.seconds), { target: 'throughput', digits: 0 });
    both(`pull ${SMALL} x ${SMALL_KB} KiB (c=${CONCURRENCY})`, 'blobs/s', (r) => med(r, 'smallPull', (m) => SMALL / m.seconds), { target: 'throughput', digits: 0 });
    both(`  (push small, bytes)`, 'MiB/s', mbps('smallPush', smallBytes), { digits: 2 });
    both(`  (pull small, bytes)`, 'MiB/s', mbps('smallPull', smallBytes), { digits: 2 });
    both(`push ${REF_MB} MiB blob (reference)`, 'MiB/s', mbps('refPush', ref.size));
    both(`pull ${REF_MB} MiB blob (reference)`, 'MiB/s', mbps('refPull', ref.size));
    both('registry RSS after start + warm-up', 'MiB', (r) => mibOf(r.baselineKb));
    both(`peak RSS, ${REF_MB} MiB push+pull`, 'MiB', (r) => mibOf(Math.max(max(r, 'refPush', (m) => m.peakKb), max(r, 'refPull', (m) => m.peakKb))));
    both(`peak RSS, ${BIG_MB} MiB push`, 'MiB', (r) => mibOf(max(r, 'bigPush', (m) => m.peakKb)));
    both(`peak RSS, ${BIG_MB} MiB pull`, 'MiB', (r) => mibOf(max(r, 'bigPull', (m) => m.peakKb)));
    both('peak RSS, small blobs', 'MiB', (r) => mibOf(Math.max(max(r, 'smallPush', (m) => m.peakKb), max(r, 'smallPull', (m) => m.peakKb))));
    both('highest RSS seen in the measured phases', 'MiB', (r) => mibOf(Math.max(...PHASES.flatMap((p) => (r.phases[p] ?? []).map((m) => m.peakKb)))));
    both('RSS at the end', 'MiB', (r) => mibOf(r.finalRssKb));
    /** Peak RSS of the big transfers minus that of the reference transfers, in MiB. */
    const growth = (r: Results) => {
      const refPeak = Math.max(max(r, 'refPush', (m) => m.peakKb), max(r, 'refPull', (m) => m.peakKb));
      const bigPeak = Math.max(max(r, 'bigPush', (m) => m.peakKb), max(r, 'bigPull', (m) => m.peakKb));
      return (bigPeak - refPeak) / 1024;
    };
    const slope = (r: Results) => (BIG_MB === REF_MB ? NaN : growth(r) / (BIG_MB - REF_MB));
    both(`peak RSS growth, ${REF_MB} -> ${BIG_MB} MiB blob`, 'MiB', growth);
    both(`  per MiB of blob size`, 'MiB/MiB', slope, { digits: 3 });
    const cpuPerGiB = (p: PhaseName, bytes: number) => (r: Results) => med(r, p, (m) => m.cpuS / (bytes / 2 ** 30));
    both(`registry CPU per GiB pushed (big)`, 's', cpuPerGiB('bigPush', big.size), { digits: 2 });
    both(`registry CPU per GiB pulled (big)`, 's', cpuPerGiB('bigPull', big.size), { digits: 2 });
    both(`registry CPU per 1000 small pushes`, 's', (r) => med(r, 'smallPush', (m) => (m.cpuS * 1000) / SMALL), { digits: 2 });
    both(`registry CPU per 1000 small pulls`, 's', (r) => med(r, 'smallPull', (m) => (m.cpuS * 1000) / SMALL), { digits: 2 });
    both(`bench client CPU, big push+pull`, 's', (r) => med(r, 'bigPush', (m) => m.clientCpuS) + med(r, 'bigPull', (m) => m.clientCpuS), { digits: 2 });

    heading('summary (ratio = ours / distribution; informational, no assertions)');
    // Memory grows with blob size if the extra peak is a sizeable part of the extra bytes; a few MiB
    // either way are heap and allocator noise (which dominates when --big-mb is small).
    const memoryMet = (r: Results) => growth(r) < Math.max(SLOPE_TARGET * (BIG_MB - REF_MB), MEM_NOISE_MIB);
    printTable(rows, [
      '',
      `throughput target (issue 4): ours within ${THROUGHPUT_TARGET}x of distribution (distribution/ours <= ${THROUGHPUT_TARGET}) for each throughput figure:`,
      `  ${rows.filter((r) => r.target).every((r) => r.dist / r.ours <= THROUGHPUT_TARGET) ? 'met' : 'NOT MET'} (ours/dist: ${rows
        .filter((r) => r.target)
        .map((r) => `${r.figure.split(' (')[0]} ${fmt(r.ours / r.dist, 2)}x`)
        .join(', ')})`,
      `memory target (issue 4): memory does not grow with blob size; met if the peak RSS of the ${BIG_MB} MiB transfers exceeds that of the`,
      `  ${REF_MB} MiB transfers by less than max(${SLOPE_TARGET} x ${BIG_MB - REF_MB} MiB, ${MEM_NOISE_MIB} MiB): ours ${fmt(growth(o))} MiB (${fmt(slope(o), 3)} MiB/MiB) -> ${memoryMet(o) ? 'met' : 'NOT MET'}` +
        ` (distribution ${fmt(growth(d))} MiB -> ${memoryMet(d) ? 'met' : 'NOT MET'})`,
      REPEAT > 1 ? `(throughput and CPU: median of ${REPEAT} runs; memory: maximum over the runs)` : '(one run per figure; use --repeat N for medians)',
    ]);
    if (REPEAT > 1) {
      const best = (r: Results, p: PhaseName, unit: number) => Math.max(...(r.phases[p] ?? []).map((m) => unit / m.seconds));
      const line = (what: string, p: PhaseName, unit: number, u: string) =>
        `  ${what.padEnd(26)} ours ${fmt(best(o, p, unit)).padStart(7)} ${u}, distribution ${fmt(best(d, p, unit)).padStart(7)} ${u}, ratio ${fmt(best(o, p, unit) / best(d, p, unit), 2)}x`;
      console.log(`\n  best of ${REPEAT} runs (least disturbed by other load):`);
      console.log(line(`push ${BIG_MB} MiB blob`, 'bigPush', big.size / MiB, 'MiB/s'));
      console.log(line(`pull ${BIG_MB} MiB blob`, 'bigPull', big.size / MiB, 'MiB/s'));
      console.log(line(`push ${SMALL} small`, 'smallPush', SMALL, 'blobs/s'));
      console.log(line(`pull ${SMALL} small`, 'smallPull', SMALL, 'blobs/s'));
    }
    console.log(`\n  load average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    console.log(`  bench process peak RSS (maxRSS): ${fmt(process.resourceUsage().maxRSS / 1024)} MiB`);
    if (process.env.BENCH_PHASES_FILE) {
      writeFileSync(process.env.BENCH_PHASES_FILE, JSON.stringify(phaseWindows, null, 1));
      console.log(`  phase windows (CLOCK_MONOTONIC us) written to ${process.env.BENCH_PHASES_FILE}`);
    }
  } catch (err) {
    failed = err;
    console.error(`\nbenchmark aborted: ${(err as Error).stack ?? String(err)}`);
  } finally {
    if (!interrupted) await cleanup();
  }
  if (flags.keep) console.log(`temp dir kept: ${dir}`);
  process.exitCode = failed ? 1 : 0;
}

function heading(s: string) {
  console.log(`\n== ${s}`);
}

await main();
