// Storage backends side by side (issue 8, "Performance"): a script, not a test. In one run it
//   1. runs the API benchmark's phases (bench/api.ts: creates, full and paginated lists, watches
//      while writing) against a server on LevelDB (`--storage leveldb`, the default),
//   2. starts a real etcd (test/helpers/etcd.ts: Debian's etcd on loopback, a temporary data dir)
//      and runs the same phases against a server on it (`--storage etcd --etcd-endpoints URL`),
//   3. starts a fresh etcd and measures a raw baseline with the `etcd3` client, the client the
//      server's EtcdStore uses (one client, so one gRPC channel, as in the server): N puts from C
//      concurrent callers with values of the size of an OCMComponent as the server stored it in
//      step 2, the same as transactions that create a key only if it is absent (what
//      EtcdStore.create sends), a range read of the N keys (in one request, and in pages of 500 at
//      one revision as EtcdStore.list reads), and the delivery latency of one etcd watch (what
//      EtcdStore holds) while writing at the phase-3 rate,
//   4. prints one table: LevelDB, API on etcd, raw etcd, and the ratios API-on-etcd / raw etcd
//      (the cost the server adds over its store).
//
//   npm run bench:backends
//   node dist/bench/backends.js --count 1000 --watchers 10                   # quick run
//   BENCH_SERVER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' node dist/bench/backends.js
//
// Flags: --count N (10000) --clients N (32) --watchers N (100) --writes N (1000) --rate N (200)
//        --page-limit N (500) --backends leveldb,etcd,raw (all three) --keep (keep data dirs)
// Env:   BENCH_SERVER_NODE_ARGS, BENCH_SERVER_ARGS as for bench/api.ts (both servers get them);
//        ETCD_BIN (default /usr/bin/etcd; `bash scripts/ensure-debs.sh etcd-server`).
import { rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Etcd3, type IKeyValue, type IWatchResponse } from 'etcd3';
import { prefixEnd } from '../storage/etcd.js';
import { startEtcd, type TestEtcd } from '../test/helpers/etcd.js';
import {
  type BenchConfig,
  epochMs,
  heading,
  latencyLine,
  mib,
  ms,
  PhaseLog,
  type ProcStats,
  readProc,
  type Results,
  runPhases,
  type Server,
  sleep,
  startServer,
  summary,
  BENCH_OPTIONS,
  benchConfig,
} from './api.js';

const { values: flags } = parseArgs({
  options: { ...BENCH_OPTIONS, backends: { type: 'string', default: 'leveldb,etcd,raw' } },
  strict: true,
});
if (flags.help) {
  console.log('usage: node dist/bench/backends.js [--count N] [--clients N] [--watchers N] [--writes N] [--rate N] [--page-limit N] [--backends leveldb,etcd,raw] [--keep]');
  process.exit(0);
}
const cfg: BenchConfig = benchConfig(flags);
const which = new Set(flags.backends!.split(',').map((s) => s.trim()).filter(Boolean));
for (const b of which) {
  if (!['leveldb', 'etcd', 'raw'].includes(b)) {
    console.error(`--backends: unknown backend ${b} (leveldb, etcd, raw)`);
    process.exit(2);
  }
}

/** The etcd key prefix the API server on etcd uses (a fresh etcd anyway; a fresh prefix too). */
const API_PREFIX = `/bench-${process.pid}`;
const RAW_PREFIX = `/raw-${process.pid}`;

type Summary = ReturnType<typeof summary>;

// ---------------------------------------------------------------------------------------------
// cleanup on the way out (also on Ctrl-C)

const cleanups = new Set<() => Promise<void>>();
function onCleanup(fn: () => Promise<void>): () => Promise<void> {
  let done: Promise<void> | undefined;
  const once = () => {
    cleanups.delete(once);
    return (done ??= fn());
  };
  cleanups.add(once);
  return once;
}
let interrupted = false;
const onSignal = () => {
  if (interrupted) return;
  interrupted = true;
  console.error('\ninterrupted: stopping servers and etcd');
  void Promise.allSettled([...cleanups].map((f) => f())).then(() => process.exit(130));
};
process.on('SIGINT', onSignal);
process.on('SIGTERM', onSignal);

function etcdStats(etcd: TestEtcd): ProcStats | undefined {
  const pid = etcd.proc().pid;
  try {
    return pid ? readProc(pid) : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// the API benchmark on one backend

interface ApiRun {
  label: string;
  r: Partial<Results>;
  log: PhaseLog;
  failed?: unknown;
  serverPid: number;
  /** Server CPU seconds spent in the create phase. */
  createCpuS?: number;
  /** etcd's CPU seconds in the create phase and its memory at the end (etcd backend only). */
  etcdCreateCpuS?: number;
  etcdHwmKb?: number;
  /** A stored OCMComponent value as it is in etcd (etcd backend only). */
  sampleValue?: Buffer;
  storedValueBytes?: Summary;
}

async function runApi(label: string, args: string[], etcd?: TestEtcd): Promise<ApiRun> {
  heading(`${label}: API benchmark (server args: ${['--reconcilers', 'none', ...args, ...(process.env.BENCH_SERVER_ARGS ?? '').split(/\s+/).filter(Boolean)].join(' ')})`);
  const srv: Server = await startServer({ args, keep: cfg.keep });
  const stopServer = onCleanup(async () => {
    await srv.stop();
    if (!cfg.keep) rmSync(srv.dataDir, { recursive: true, force: true });
  });
  console.log(`server pid ${srv.pid} on port ${srv.port}, data dir ${srv.dataDir}`);
  const log = new PhaseLog();
  const r: Partial<Results> = {};
  const run: ApiRun = { label, r, log, serverPid: srv.pid };
  let etcdBefore: ProcStats | undefined;
  run.failed = await runPhases(srv, cfg, log, r, (phase) => {
    const e = etcd && etcdStats(etcd);
    if (e) console.log(`  etcd (pid ${etcd!.proc().pid}) after ${phase}: VmRSS ${mib(e.rssKb)}, VmHWM ${mib(e.hwmKb)}, CPU total ${e.cpuS.toFixed(2)} s`);
    if (phase === 'start') etcdBefore = e;
    if (phase === 'creates') {
      const rows = log.rows;
      run.createCpuS = rows[rows.length - 1].stats.cpuS - rows[rows.length - 2].stats.cpuS;
      if (e && etcdBefore) run.etcdCreateCpuS = e.cpuS - etcdBefore.cpuS;
    }
  });
  if (etcd) {
    run.etcdHwmKb = etcdStats(etcd)?.hwmKb;
    // the values the server stored: the raw baseline writes one of median size
    const client = new Etcd3({ hosts: etcd.endpoints, grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024 } });
    try {
      const kvs = (await client.getAll().prefix(`${API_PREFIX}/`).exec()).kvs.filter((kv) => /\/ocmcomponents\/bench\/app-\d+$/.test(kv.key.toString()));
      if (kvs.length) {
        kvs.sort((a, b) => a.value.length - b.value.length);
        run.sampleValue = Buffer.from(kvs[kvs.length >> 1].value);
        run.storedValueBytes = summary(kvs.map((kv) => kv.value.length));
        console.log(`  ${kvs.length} OCMComponents stored in etcd under ${API_PREFIX}/, value size p50 ${run.storedValueBytes.p50} bytes (min ${kvs[0].value.length}, max ${kvs[kvs.length - 1].value.length})`);
      }
    } catch (err) {
      console.log(`  ! could not read the stored values back from etcd: ${(err as Error).message}`);
    } finally {
      client.close();
    }
  }
  await stopServer();
  if (srv.proc.exitCode !== 0 && srv.proc.exitCode !== null) console.log(`\nserver exited with ${srv.proc.exitCode}; last log lines:\n${srv.logs.slice(-20).join('\n')}`);
  if (cfg.keep) console.log(`  data dir kept: ${srv.dataDir}`);
  return run;
}

// ---------------------------------------------------------------------------------------------
// the raw etcd baseline

interface RawRun {
  valueBytes: number;
  putsPerS: number;
  put: Summary;
  txnPerS: number;
  txn: Summary;
  /** client (this process) CPU seconds for the N puts; etcd's CPU seconds for them */
  putClientCpuS: number;
  putEtcdCpuS?: number;
  rangeFirstMs: number;
  rangeMedianMs: number;
  rangeItems: number;
  pagedMs: number;
  pages: number;
  pagedItems: number;
  watch?: Summary;
  watchEvents?: number;
  watchExpected?: number;
  etcdHwmKb?: number;
  failures: number;
}

const cpuNow = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** N operations from `clients` concurrent callers; latency of each. */
async function closedLoop(n: number, clients: number, op: (i: number) => Promise<void>): Promise<{ perS: number; lat: Summary; failures: number; firstError?: string }> {
  const lat = new Float64Array(n);
  let next = 0;
  let ok = 0;
  let failures = 0;
  let firstError: string | undefined;
  const t0 = performance.now();
  const worker = async () => {
    for (let i = next++; i < n; i = next++) {
      const s = performance.now();
      try {
        await op(i);
        ok++;
        lat[i] = performance.now() - s;
      } catch (err) {
        failures++;
        firstError ??= (err as Error).message;
        lat[i] = NaN;
      }
    }
  };
  await Promise.all(Array.from({ length: clients }, worker));
  const wall = (performance.now() - t0) / 1000;
  return { perS: ok / wall, lat: summary(lat.filter((v) => !Number.isNaN(v))), failures, firstError };
}


/** A stand-in for a stored OCMComponent when the etcd API run did not give one. */
function syntheticValue(): Buffer {
  return Buffer.from(
    JSON.stringify({
      apiVersion: 'delivery.ocm.software/v1alpha1',
      kind: 'OCMComponent',
      metadata: { name: 'app-0', namespace: 'bench', uid: '00000000-0000-4000-8000-000000000000', creationTimestamp: '2025-01-01T00:00:00Z', generation: 1, resourceVersion: '' },
      spec: { name: 'github.com/acme/app-0', version: '1.0.0', repository: { url: 'ghcr.io/acme' }, interval: '10m' },
    }).padEnd(600, ' '),
  );
}

async function runRaw(etcd: TestEtcd, value: Buffer): Promise<RawRun> {
  const N = cfg.count;
  const C = cfg.clients;
  heading(`raw etcd baseline: etcd3 client (one gRPC channel), ${C} concurrent callers, ${value.length}-byte values`);
  const client = new Etcd3({
    hosts: etcd.endpoints,
    grpcOptions: { 'grpc.max_receive_message_length': 256 * 1024 * 1024, 'grpc.max_send_message_length': 64 * 1024 * 1024 },
  });
  const closeClient = onCleanup(async () => client.close());
  const key = (space: string, i: number) => Buffer.from(`${RAW_PREFIX}/${space}/delivery.ocm.software/ocmcomponents/bench/app-${i}`);
  let failures = 0;
  try {
    // warm up the channel (connection setup is not what is measured)
    await client.kv.put({ key: Buffer.from(`${RAW_PREFIX}#warmup`), value });

    // 1. plain puts
    let e0 = etcdStats(etcd);
    let c0 = cpuNow();
    const put = await closedLoop(N, C, async (i) => void (await client.kv.put({ key: key('put', i), value })));
    const putClientCpuS = cpuNow() - c0;
    let e1 = etcdStats(etcd);
    const putEtcdCpuS = e0 && e1 ? e1.cpuS - e0.cpuS : undefined;
    failures += put.failures;
    console.log(`  put: ${N - put.failures} in ${((N - put.failures) / put.perS).toFixed(2)} s: ${put.perS.toFixed(0)} puts/s`);
    console.log(`  put latency: ${latencyLine(put.lat)}`);
    console.log(`  CPU: bench client ${putClientCpuS.toFixed(2)} s, etcd ${putEtcdCpuS?.toFixed(2) ?? 'n/a'} s`);
    if (put.failures) console.log(`  ! ${put.failures} puts failed; first: ${put.firstError}`);

    // 2. create-if-absent transactions (EtcdStore.create)
    e0 = etcdStats(etcd);
    c0 = cpuNow();
    const txn = await closedLoop(N, C, async (i) => {
      const k = key('txn', i);
      const res = await client.kv.txn({ compare: [{ key: k, target: 'Create', result: 'Equal', create_revision: 0 }], success: [{ request_put: { key: k, value } }], failure: [] });
      if (!res.succeeded) throw new Error(`${k.toString()} exists`);
    });
    e1 = etcdStats(etcd);
    failures += txn.failures;
    console.log(`  txn create (compare create_revision = 0, put): ${txn.perS.toFixed(0)}/s`);
    console.log(`  txn latency: ${latencyLine(txn.lat)}`);
    console.log(`  CPU: bench client ${(cpuNow() - c0).toFixed(2)} s, etcd ${e0 && e1 ? (e1.cpuS - e0.cpuS).toFixed(2) : 'n/a'} s`);
    if (txn.failures) console.log(`  ! ${txn.failures} txns failed; first: ${txn.firstError}`);

    // 3. range reads of the N put keys
    const start = Buffer.from(`${RAW_PREFIX}/put/`);
    const end = prefixEnd(start);
    const runs: number[] = [];
    let rangeItems = 0;
    for (let i = 0; i < 5; i++) {
      const t = performance.now();
      const res = await client.kv.range({ key: start, range_end: end });
      runs.push(performance.now() - t);
      rangeItems = res.kvs.length;
    }
    const rangeMedianMs = summary(runs).p50;
    console.log(`  range of ${rangeItems} keys in one request: first ${ms(runs[0])}, median of ${runs.length} ${ms(rangeMedianMs)}, all [${runs.map((v) => v.toFixed(1)).join(', ')}] ms`);
    const t0 = performance.now();
    let pages = 0;
    let pagedItems = 0;
    let rev: string | undefined;
    for (let from = start; ; ) {
      const res = await client.kv.range({ key: from, range_end: end, limit: cfg.pageLimit, ...(rev ? { revision: rev } : {}) });
      rev ??= res.header.revision;
      pages++;
      pagedItems += res.kvs.length;
      if (!res.more || res.kvs.length === 0) break;
      from = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
    }
    const pagedMs = performance.now() - t0;
    console.log(`  range in pages of ${cfg.pageLimit} at revision ${rev}: ${pagedItems} keys in ${pages} pages, total ${ms(pagedMs)}`);

    // 4. one watch on the prefix (what EtcdStore holds) while writing at the phase-3 rate:
    //    half puts of new keys, half overwrites of existing ones
    const raw: RawRun = {
      valueBytes: value.length,
      putsPerS: put.perS,
      put: put.lat,
      txnPerS: txn.perS,
      txn: txn.lat,
      putClientCpuS,
      putEtcdCpuS,
      rangeFirstMs: runs[0],
      rangeMedianMs,
      rangeItems,
      pagedMs,
      pages,
      pagedItems,
      failures,
    };
    if (cfg.writes > 0) {
      const stream = await client.watchClient.watch();
      const sent = new Map<string, number[]>();
      const delivery: number[] = [];
      let events = 0;
      let untimed = 0;
      let created!: () => void;
      const isCreated = new Promise<void>((r) => (created = r));
      stream.on('data', (res: IWatchResponse) => {
        const now = epochMs();
        if (res.created) return created();
        for (const ev of res.events) {
          const kv: IKeyValue = ev.kv;
          events++;
          const t = sent.get(kv.key.toString())?.shift();
          if (t === undefined) untimed++;
          else delivery.push(now - t);
        }
      });
      stream.on('error', () => {});
      stream.write({ create_request: { key: start, range_end: end, prev_kv: true } });
      await isCreated;
      heading(`raw etcd: 1 watch on ${start.toString()}, ${cfg.writes} writes at ${cfg.rate}/s`);
      const inflight: Promise<void>[] = [];
      let ok = 0;
      const interval = 1000 / cfg.rate;
      const tw = performance.now();
      for (let i = 0; i < cfg.writes; i++) {
        const wait = tw + i * interval - performance.now();
        if (wait > 1) await sleep(wait);
        const k = key('put', i % 2 === 0 ? N + i : (i * 7919) % N);
        const ks = k.toString();
        const q = sent.get(ks) ?? [];
        q.push(epochMs());
        sent.set(ks, q);
        inflight.push(
          client.kv.put({ key: k, value }).then(
            () => void ok++,
            () => void failures++,
          ),
        );
      }
      await Promise.all(inflight);
      const deadline = performance.now() + 15000;
      while (events < ok && performance.now() < deadline) await sleep(20);
      stream.end();
      raw.watch = summary(delivery);
      raw.watchEvents = events;
      raw.watchExpected = ok;
      console.log(`  ${ok} writes, ${events} events received${untimed ? ` (${untimed} untimed)` : ''}`);
      console.log(`  watch delivery latency (receive - send time of the put): ${latencyLine(raw.watch)}`);
    }
    raw.failures = failures;
    raw.etcdHwmKb = etcdStats(etcd)?.hwmKb;
    if (raw.etcdHwmKb) console.log(`  etcd memory: VmHWM ${mib(raw.etcdHwmKb)}`);
    return raw;
  } finally {
    await closeClient();
  }
}

// ---------------------------------------------------------------------------------------------
// the table

function printTable(level: ApiRun | undefined, onEtcd: ApiRun | undefined, raw: RawRun | undefined) {
  heading(`storage backends side by side: --count ${cfg.count} --clients ${cfg.clients} --watchers ${cfg.watchers} --writes ${cfg.writes} --rate ${cfg.rate} --page-limit ${cfg.pageLimit}`);
  type Cell = number | undefined;
  const rows: [string, string, string, string, string][] = [];
  const fmtMs = (v: Cell) => (v === undefined || !Number.isFinite(v) ? 'n/a' : ms(v));
  const fmtN = (v: Cell) => (v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(0));
  const fmtKb = (v: Cell) => (v === undefined || !Number.isFinite(v) ? 'n/a' : mib(v));
  const fmtCpu = (v: Cell) => (v === undefined || !Number.isFinite(v) ? 'n/a' : `${(v * 1000).toFixed(3)} ms`);
  /** API on etcd over raw etcd; for times also the difference. */
  const ratio = (a: Cell, b: Cell, diff: 'ms' | 'none' = 'none') => {
    if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return '';
    const x = a / b;
    const d = diff === 'ms' ? ` (${a >= b ? '+' : '-'}${ms(Math.abs(a - b))})` : '';
    return `${x >= 10 ? x.toFixed(0) : x.toFixed(2)}x${d}`;
  };
  const add = (what: string, l: string, e: string, r: string, x: string) => rows.push([what, l, e, r, x]);
  const L = level?.r;
  const E = onEtcd?.r;
  add(`creates/s (${cfg.clients} clients; raw: puts/s)`, fmtN(L?.createsPerS), fmtN(E?.createsPerS), fmtN(raw?.putsPerS), ratio(E?.createsPerS, raw?.putsPerS));
  add('create latency p50 (raw: put)', fmtMs(L?.create?.p50), fmtMs(E?.create?.p50), fmtMs(raw?.put.p50), ratio(E?.create?.p50, raw?.put.p50, 'ms'));
  add('create latency p99 (raw: put)', fmtMs(L?.create?.p99), fmtMs(E?.create?.p99), fmtMs(raw?.put.p99), ratio(E?.create?.p99, raw?.put.p99, 'ms'));
  add('  raw: txn create-if-absent/s', '', '', fmtN(raw?.txnPerS), ratio(E?.createsPerS, raw?.txnPerS));
  add('  raw: txn create p50', '', '', fmtMs(raw?.txn.p50), ratio(E?.create?.p50, raw?.txn.p50, 'ms'));
  add('  raw: txn create p99', '', '', fmtMs(raw?.txn.p99), ratio(E?.create?.p99, raw?.txn.p99, 'ms'));
  add(`full list of ${cfg.count}, median of 5 (raw: 1 range)`, fmtMs(L?.listMedianMs), fmtMs(E?.listMedianMs), fmtMs(raw?.rangeMedianMs), ratio(E?.listMedianMs, raw?.rangeMedianMs, 'ms'));
  add('full list, first run', fmtMs(L?.listFirstMs), fmtMs(E?.listFirstMs), fmtMs(raw?.rangeFirstMs), ratio(E?.listFirstMs, raw?.rangeFirstMs, 'ms'));
  add(`paginated list, limit=${cfg.pageLimit} (raw: ranges)`, fmtMs(L?.pagedMs), fmtMs(E?.pagedMs), fmtMs(raw?.pagedMs), ratio(E?.pagedMs, raw?.pagedMs, 'ms'));
  add(`watch delivery p50 (${cfg.watchers} watchers; raw: 1)`, fmtMs(L?.watch?.p50), fmtMs(E?.watch?.p50), fmtMs(raw?.watch?.p50), ratio(E?.watch?.p50, raw?.watch?.p50, 'ms'));
  add('watch delivery p99', fmtMs(L?.watch?.p99), fmtMs(E?.watch?.p99), fmtMs(raw?.watch?.p99), ratio(E?.watch?.p99, raw?.watch?.p99, 'ms'));
  const recv = (a?: number, b?: number) => (b === undefined ? 'n/a' : `${a}/${b}`);
  add('watch events received', recv(L?.watchEvents, L?.watchExpected), recv(E?.watchEvents, E?.watchExpected), recv(raw?.watchEvents, raw?.watchExpected), '');
  const lastRss = (run?: ApiRun) => run?.log.rows.at(-1)?.stats.rssKb;
  add('server RSS, peak (VmHWM)', fmtKb(L?.peakRssKb), fmtKb(E?.peakRssKb), 'n/a', '');
  add('server RSS at the end (VmRSS)', fmtKb(lastRss(level)), fmtKb(lastRss(onEtcd)), 'n/a', '');
  add('etcd RSS, peak (VmHWM)', 'n/a', fmtKb(onEtcd?.etcdHwmKb), fmtKb(raw?.etcdHwmKb), ratio(onEtcd?.etcdHwmKb, raw?.etcdHwmKb));
  const perCreate = (run?: ApiRun, cpu?: number) => (cpu === undefined || !run?.r.createsPerS ? undefined : cpu / cfg.count);
  add('server CPU per create (raw: client CPU per put)', fmtCpu(perCreate(level, level?.createCpuS)), fmtCpu(perCreate(onEtcd, onEtcd?.createCpuS)), fmtCpu(raw ? raw.putClientCpuS / cfg.count : undefined), ratio(perCreate(onEtcd, onEtcd?.createCpuS), raw ? raw.putClientCpuS / cfg.count : undefined));
  add('etcd CPU per create (raw: per put)', 'n/a', fmtCpu(perCreate(onEtcd, onEtcd?.etcdCreateCpuS)), fmtCpu(raw?.putEtcdCpuS === undefined ? undefined : raw.putEtcdCpuS / cfg.count), ratio(perCreate(onEtcd, onEtcd?.etcdCreateCpuS), raw?.putEtcdCpuS === undefined ? undefined : raw.putEtcdCpuS / cfg.count));

  const head: [string, string, string, string, string] = ['figure', 'LevelDB', 'API on etcd', 'raw etcd', 'API-on-etcd / raw'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `  ${r[0].padEnd(w[0])}  ${r[1].padStart(w[1])}  ${r[2].padStart(w[2])}  ${r[3].padStart(w[3])}  ${r[4].padEnd(w[4])}`.trimEnd();
  console.log(line(head));
  console.log(line(w.map((n) => '-'.repeat(n))));
  for (const r of rows) console.log(line(r));
  console.log('');
  if (raw) console.log(`  raw etcd: the etcd3 client in this process, one gRPC channel (as the server has), ${raw.valueBytes}-byte values${onEtcd?.storedValueBytes ? ' (the median OCMComponent the server stored)' : ' (synthetic: no etcd API run)'}; its list rows are bare etcd ranges (no JSON decoding), its watch row one etcd watch (the server holds one and fans it out).`);
  console.log('  Every process (bench client, server, etcd) shares this machine\'s cores; the CPU rows say where the time went.');
  if (level?.failed || onEtcd?.failed) console.log(`  ! aborted runs: ${[level, onEtcd].filter((x) => x?.failed).map((x) => x!.label).join(', ')}`);
  if (raw?.failures) console.log(`  ! ${raw.failures} raw etcd operations failed`);
  console.log(`  server pids (for --cpu-prof files): ${[level, onEtcd].filter(Boolean).map((x) => `${x!.label} ${x!.serverPid}`).join(', ')}`);
}

// ---------------------------------------------------------------------------------------------

async function main() {
  console.log(`ocm-apiserver storage backends benchmark: --count ${cfg.count} --clients ${cfg.clients} --watchers ${cfg.watchers} --writes ${cfg.writes} --rate ${cfg.rate} --page-limit ${cfg.pageLimit} --backends ${[...which].join(',')}`);
  if (process.env.BENCH_SERVER_NODE_ARGS) console.log(`server node args: ${process.env.BENCH_SERVER_NODE_ARGS}`);
  let level: ApiRun | undefined;
  let onEtcd: ApiRun | undefined;
  let raw: RawRun | undefined;
  let failed = false;
  try {
    if (which.has('leveldb')) {
      level = await runApi('LevelDB', []);
      failed ||= !!level.failed;
    }
    if (which.has('etcd')) {
      const etcd = await startEtcd();
      const stopEtcd = onCleanup(() => etcd.stop());
      console.log(`\netcd pid ${etcd.proc().pid} at ${etcd.endpoints.join(',')}, data dir ${etcd.dataDir}`);
      try {
        onEtcd = await runApi('etcd', ['--storage', 'etcd', '--etcd-endpoints', etcd.endpoints.join(','), '--etcd-prefix', API_PREFIX], etcd);
        failed ||= !!onEtcd.failed;
      } finally {
        await stopEtcd();
      }
    }
    if (which.has('raw')) {
      // a fresh etcd: the baseline does not run on a database the API run has filled
      const etcd = await startEtcd();
      const stopEtcd = onCleanup(() => etcd.stop());
      console.log(`\netcd pid ${etcd.proc().pid} at ${etcd.endpoints.join(',')}, data dir ${etcd.dataDir}`);
      try {
        raw = await runRaw(etcd, onEtcd?.sampleValue ?? syntheticValue());
        failed ||= raw.failures > 0;
      } finally {
        await stopEtcd();
      }
    }
  } catch (err) {
    failed = true;
    console.error(`\nbenchmark aborted: ${(err as Error).stack ?? String(err)}`);
  } finally {
    await Promise.allSettled([...cleanups].map((f) => f()));
  }
  printTable(level, onEtcd, raw);
  process.exitCode = failed ? 1 : 0;
}

await main();
