// API benchmark (issue 2, "Performance"): a script, not a test. Starts a fresh server process on a
// temporary data dir, then
//   1. creates N OCMComponents from C concurrent keep-alive HTTPS clients (creates/s, p50/p99),
//   2. lists them in full and paginated (limit=500),
//   3. holds W watches from the list's resourceVersion while writing at a steady rate, and measures
//      per-event delivery latency (receive time minus the send time embedded in an annotation),
//   4. reads the server's VmRSS/VmHWM (and CPU time) from /proc after each phase,
// prints the figures and a table against the issue's targets (informational only), stops the
// server and removes the data dir. The phases are exported (bench/backends.ts runs them against
// the LevelDB and the etcd backend); `node dist/bench/api.js` runs them once, as below.
//
//   npm run bench
//   node dist/bench/api.js --count 500 --watchers 10          # quick smoke run
//   BENCH_SERVER_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' node dist/bench/api.js
//
// Flags: --count N (10000) --clients N (32) --watchers N (100) --writes N (1000, phase 3)
//        --rate N (writes/s in phase 3, 200) --page-limit N (500) --keep (keep the data dir)
// Env:   BENCH_SERVER_NODE_ARGS  extra node arguments for the server process (e.g. --cpu-prof)
//        BENCH_SERVER_ARGS       extra server arguments (e.g. --history-size 20000)
//        OCM_SERVER_ROOT, BENCH_RESULT_FILE: see bench/compare.ts
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import type { IncomingMessage } from 'node:http';
import os, { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { serverScript, startNodeProcess } from '../test/helpers/process.js';
import { writeBenchResult } from './result.js';
import { parseArgs } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/** What one run of the phases does (the flags of `node dist/bench/api.js`). */
export interface BenchConfig {
  count: number;
  clients: number;
  watchers: number;
  writes: number;
  rate: number;
  pageLimit: number;
  keep: boolean;
}

export const posInt = (name: string, v: string | undefined, min = 1): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be an integer >= ${min}, got ${v}`);
    process.exit(2);
  }
  return n;
};

/** The flags of this bench, which bench/backends.ts takes too. */
export const BENCH_OPTIONS = {
  count: { type: 'string', default: '10000' },
  clients: { type: 'string', default: '32' },
  watchers: { type: 'string', default: '100' },
  writes: { type: 'string', default: '1000' },
  rate: { type: 'string', default: '200' },
  'page-limit': { type: 'string', default: '500' },
  keep: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

function parseFlags(): BenchConfig {
  const { values: flags } = parseArgs({ options: BENCH_OPTIONS, strict: true });
  if (flags.help) {
    console.log('usage: node dist/bench/api.js [--count N] [--clients N] [--watchers N] [--writes N] [--rate N] [--page-limit N] [--keep]');
    process.exit(0);
  }
  return benchConfig(flags);
}

/** The checked BENCH_OPTIONS values. */
export function benchConfig(flags: { count?: string; clients?: string; watchers?: string; writes?: string; rate?: string; 'page-limit'?: string; keep?: boolean }): BenchConfig {
  return {
    count: posInt('count', flags.count),
    clients: posInt('clients', flags.clients),
    watchers: posInt('watchers', flags.watchers, 0),
    writes: posInt('writes', flags.writes, 0),
    rate: posInt('rate', flags.rate),
    pageLimit: posInt('page-limit', flags['page-limit']),
    keep: !!flags.keep,
  };
}

export const NS = 'bench';
export const API = 'delivery.ocm.software/v1alpha1';
export const COLLECTION = `/apis/${API}/namespaces/${NS}/ocmcomponents`;
const SENT_AT = 'bench.ocm.software/sent-at';
const MiB = 1024 * 1024;

/** Wall-clock milliseconds since the epoch with sub-millisecond resolution. */
export const epochMs = () => performance.timeOrigin + performance.now();
export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// statistics and formatting

export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

export function summary(values: number[] | Float64Array) {
  const s = Float64Array.from(values).sort();
  let sum = 0;
  for (const v of s) sum += v;
  return { n: s.length, p50: percentile(s, 50), p90: percentile(s, 90), p99: percentile(s, 99), max: s.length ? s[s.length - 1] : NaN, mean: s.length ? sum / s.length : NaN };
}

export const ms = (v: number) => (Number.isFinite(v) ? `${v.toFixed(v < 10 ? 2 : 1)} ms` : 'n/a');
export const mib = (kb: number) => `${(kb / 1024).toFixed(1)} MiB`;
const fmtBytes = (b: number) => (b >= MiB ? `${(b / MiB).toFixed(2)} MiB` : `${(b / 1024).toFixed(1)} KiB`);
export const latencyLine = (s: ReturnType<typeof summary>) => `p50 ${ms(s.p50)}, p90 ${ms(s.p90)}, p99 ${ms(s.p99)}, max ${ms(s.max)}, mean ${ms(s.mean)} (n=${s.n})`;

export function heading(s: string) {
  console.log(`\n== ${s}`);
}

// ---------------------------------------------------------------------------------------------
// the server process

export interface ProcStats {
  rssKb: number;
  hwmKb: number;
  /** user + system CPU seconds */
  cpuS: number;
  /** the same for its children it has waited for */
  childrenCpuS: number;
}

export interface Server {
  proc: ChildProcess;
  pid: number;
  port: number;
  dataDir: string;
  ca: string;
  cert: string;
  key: string;
  logs: string[];
  stats(): ProcStats;
  stop(): Promise<void>;
}

const CLK_TCK = 100; // Linux USER_HZ

export function readProc(pid: number | 'self'): ProcStats {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status)?.[1] ?? NaN);
  // /proc/<pid>/stat: fields after the parenthesised command; utime and stime are fields 14 and 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuS = (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  const childrenCpuS = (Number(rest[13]) + Number(rest[14])) / CLK_TCK;
  return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM'), cpuS, childrenCpuS };
}

export interface StartOptions {
  /** Server arguments before those of BENCH_SERVER_ARGS (e.g. --storage etcd --etcd-endpoints URL). */
  args?: string[];
  /** Keep the data dir if the server fails to start. */
  keep?: boolean;
}

/**
 * Starts `node dist/cli/server.js` on a fresh data dir with `--reconcilers none`, free ports,
 * BENCH_SERVER_NODE_ARGS as node arguments and opts.args + BENCH_SERVER_ARGS as server arguments,
 * and resolves once it logs that it is ready.
 */
export async function startServer(opts: StartOptions = {}): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), 'ocm-apiserver-bench-'));
  const serverArgs = [...(opts.args ?? []), ...(process.env.BENCH_SERVER_ARGS ?? '').split(/\s+/).filter(Boolean)];
  let p;
  try {
    p = await startNodeProcess({
      name: 'server',
      script: serverScript(),
      cwd: root,
      nodeArgs: (process.env.BENCH_SERVER_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
      args: ['--data-dir', dataDir, '--port', '0', '--registry-port', '0', '--reconcilers', 'none', '--log-level', 'info', ...serverArgs],
      ready: (j) => (typeof j.url === 'string' && typeof j.msg === 'string' && j.msg.includes('ready') ? j.url : undefined),
      keepLines: 200,
      echo: true,
      timeoutMs: 60_000,
    });
  } catch (err) {
    if (!opts.keep) rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
  const certDir = join(dataDir, 'certs');
  const pid = p.proc.pid!;
  return {
    proc: p.proc,
    pid,
    port: Number(new URL(p.ready).port),
    dataDir,
    ca: readFileSync(join(certDir, 'ca.crt'), 'utf8'),
    cert: readFileSync(join(certDir, 'admin.crt'), 'utf8'),
    key: readFileSync(join(certDir, 'admin.key'), 'utf8'),
    logs: p.logs,
    stats: () => readProc(pid),
    stop: p.stop,
  };
}

// ---------------------------------------------------------------------------------------------
// HTTPS client

export interface Reply {
  status: number;
  body: Buffer;
  ms: number;
}

export class Client {
  readonly agent: Agent;
  private readonly tls: { ca: string; cert: string; key: string; servername: string };

  constructor(
    private readonly srv: Server,
    maxSockets: number,
  ) {
    this.tls = { ca: srv.ca, cert: srv.cert, key: srv.key, servername: 'localhost' };
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, ...this.tls });
  }

  request(method: string, path: string, body?: string, contentType = 'application/json'): Promise<Reply> {
    return new Promise((resolveReply, reject) => {
      const t0 = performance.now();
      const headers: Record<string, string | number> = { Accept: 'application/json' };
      if (body !== undefined) {
        headers['Content-Type'] = contentType;
        headers['Content-Length'] = Buffer.byteLength(body);
      }
      const req = httpsRequest({ host: '127.0.0.1', port: this.srv.port, method, path, headers, agent: this.agent, ...this.tls }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolveReply({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), ms: performance.now() - t0 }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  /** A long-lived streaming GET on its own connection (not from the pool). */
  stream(path: string): Promise<{ res: IncomingMessage; destroy: () => void }> {
    return new Promise((resolveStream, reject) => {
      const req = httpsRequest({ host: '127.0.0.1', port: this.srv.port, method: 'GET', path, headers: { Accept: 'application/json' }, agent: false, ...this.tls }, (res) =>
        resolveStream({ res, destroy: () => req.destroy() }),
      );
      req.on('error', reject);
      req.end();
    });
  }

  close() {
    this.agent.destroy();
  }
}

export function componentBody(name: string, index: number, sentAt?: number): string {
  const metadata: Record<string, unknown> = { name, namespace: NS };
  if (sentAt !== undefined) metadata.annotations = { [SENT_AT]: String(sentAt) };
  return JSON.stringify({
    apiVersion: API,
    kind: 'OCMComponent',
    metadata,
    spec: { name: `github.com/acme/app-${index}`, version: '1.0.0', repository: { url: 'ghcr.io/acme' } },
  });
}

/** Counts non-2xx replies by status and keeps the first body of each. */
export class Failures {
  private readonly byStatus = new Map<number | string, { n: number; first: string }>();
  add(status: number | string, body: string) {
    const f = this.byStatus.get(status);
    if (f) f.n++;
    else this.byStatus.set(status, { n: 1, first: body.slice(0, 300) });
  }
  get total(): number {
    let n = 0;
    for (const f of this.byStatus.values()) n += f.n;
    return n;
  }
  report(what: string) {
    for (const [status, f] of this.byStatus) console.log(`  ! ${f.n} ${what} failed with ${status}; first: ${f.first}`);
  }
}

// ---------------------------------------------------------------------------------------------
// phases

export interface MemRow {
  phase: string;
  stats: ProcStats;
  wallS: number;
  /** this (client) process's user + system CPU seconds */
  clientCpuS: number;
}

const clientCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** The server's memory and CPU (and this process's CPU) after each phase. */
export class PhaseLog {
  readonly rows: MemRow[] = [];
  private phaseStart = performance.now();

  /** Records (and prints) the figures at the end of `phase`. */
  memory(srv: Server, phase: string) {
    memory(this, srv, phase);
  }

  get peakRssKb(): number {
    return Math.max(...this.rows.map((m) => m.stats.hwmKb));
  }

  /** @internal */
  restart(): number {
    const t = this.phaseStart;
    this.phaseStart = performance.now();
    return t;
  }
}

function memory(log: PhaseLog, srv: Server, phase: string) {
  const memRows = log.rows;
  const stats = srv.stats();
  const prev = memRows[memRows.length - 1];
  const wallS = (performance.now() - log.restart()) / 1000;
  const clientCpuS = clientCpu();
  memRows.push({ phase, stats, wallS, clientCpuS });
  const cpu = prev ? stats.cpuS - prev.stats.cpuS : stats.cpuS;
  const ccpu = prev ? clientCpuS - prev.clientCpuS : clientCpuS;
  const pct = (v: number) => `${((100 * v) / wallS).toFixed(0)}%`;
  console.log(`  server memory after ${phase}: VmRSS ${mib(stats.rssKb)}, VmHWM ${mib(stats.hwmKb)}`);
  if (prev)
    console.log(`  CPU over ${wallS.toFixed(2)} s: server ${cpu.toFixed(2)} s (${pct(cpu)} of one core), bench client ${ccpu.toFixed(2)} s (${pct(ccpu)}); ${os.availableParallelism()} cores`);
}

export interface Results {
  createsPerS: number;
  create: ReturnType<typeof summary>;
  createFailures: number;
  listFirstMs: number;
  listMedianMs: number;
  listBytes: number;
  listItems: number;
  pagedMs: number;
  pages: number;
  pagedItems: number;
  watch?: ReturnType<typeof summary>;
  watchEvents?: number;
  watchExpected?: number;
  peakRssKb: number;
}

/** Creates the benchmark's namespace (the standalone server refuses writes into a missing one). */
export async function ensureNamespace(client: Client): Promise<void> {
  const res = await client.request('POST', '/api/v1/namespaces', JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } }));
  if (res.status !== 201 && res.status !== 409) throw new Error(`creating namespace ${NS} failed with ${res.status}: ${res.body.toString().slice(0, 300)}`);
}

/** Phase 1: cfg.count creates from cfg.clients concurrent keep-alive clients. */
export async function phaseCreate(client: Client, cfg: BenchConfig, r: Partial<Results>) {
  const COUNT = cfg.count;
  const CLIENTS = cfg.clients;
  heading(`phase 1: create ${COUNT} OCMComponents from ${CLIENTS} concurrent keep-alive clients`);
  const lat = new Float64Array(COUNT);
  const failures = new Failures();
  let next = 0;
  let ok = 0;
  const t0 = performance.now();
  const worker = async () => {
    for (let i = next++; i < COUNT; i = next++) {
      try {
        const res = await client.request('POST', COLLECTION, componentBody(`app-${i}`, i));
        lat[i] = res.ms;
        if (res.status === 201) ok++;
        else failures.add(res.status, res.body.toString());
      } catch (err) {
        lat[i] = NaN;
        failures.add((err as Error).message, '');
      }
    }
  };
  await Promise.all(Array.from({ length: CLIENTS }, worker));
  const wall = (performance.now() - t0) / 1000;
  const s = summary(lat.filter((v) => !Number.isNaN(v)));
  r.createsPerS = ok / wall;
  r.create = s;
  r.createFailures = failures.total;
  console.log(`  ${ok} created in ${wall.toFixed(2)} s: ${r.createsPerS.toFixed(0)} creates/s`);
  console.log(`  create latency: ${latencyLine(s)}`);
  failures.report('creates');
}

/** Phase 2: five full lists and one paginated list; resolves to the first list's resourceVersion. */
export async function phaseList(client: Client, cfg: BenchConfig, r: Partial<Results>): Promise<string> {
  const PAGE_LIMIT = cfg.pageLimit;
  heading('phase 2: list');
  const runs: number[] = [];
  let rv = '';
  for (let i = 0; i < 5; i++) {
    const res = await client.request('GET', COLLECTION);
    if (res.status !== 200) throw new Error(`list failed with ${res.status}: ${res.body.toString().slice(0, 300)}`);
    runs.push(res.ms);
    if (i === 0) {
      const list = JSON.parse(res.body.toString()) as { metadata: { resourceVersion: string }; items: unknown[] };
      rv = list.metadata.resourceVersion;
      r.listBytes = res.body.length;
      r.listItems = list.items.length;
    }
  }
  r.listFirstMs = runs[0];
  r.listMedianMs = summary(runs).p50;
  console.log(`  full list: ${r.listItems} items, ${fmtBytes(r.listBytes!)} (${r.listBytes} bytes), resourceVersion ${rv}`);
  console.log(`  full list time: first ${ms(runs[0])}, median of ${runs.length} ${ms(r.listMedianMs)}, all [${runs.map((v) => v.toFixed(1)).join(', ')}] ms`);

  const t0 = performance.now();
  let pages = 0;
  let items = 0;
  let cont: string | undefined;
  const pageTimes: number[] = [];
  do {
    const q = `?limit=${PAGE_LIMIT}` + (cont ? `&continue=${encodeURIComponent(cont)}` : '');
    const res = await client.request('GET', COLLECTION + q);
    if (res.status !== 200) throw new Error(`paginated list failed with ${res.status}: ${res.body.toString().slice(0, 300)}`);
    const page = JSON.parse(res.body.toString()) as { metadata: { continue?: string }; items: unknown[] };
    pages++;
    items += page.items.length;
    pageTimes.push(res.ms);
    cont = page.metadata.continue || undefined;
  } while (cont);
  r.pagedMs = performance.now() - t0;
  r.pages = pages;
  r.pagedItems = items;
  const ps = summary(pageTimes);
  console.log(`  paginated list (limit=${PAGE_LIMIT}): ${items} items in ${pages} pages, total ${ms(r.pagedMs)} (per page p50 ${ms(ps.p50)}, max ${ms(ps.max)}; includes client-side parsing)`);
  return rv;
}

interface Watcher {
  events: number;
  typed: Map<string, number>;
  untimed: number;
  errors: string[];
  ended: boolean;
  destroy: () => void;
}

/** Phase 3: cfg.watchers watches from rv while cfg.writes writes go in at cfg.rate per second. */
export async function phaseWatch(client: Client, cfg: BenchConfig, rv: string, r: Partial<Results>) {
  const { count: COUNT, watchers: WATCHERS, writes: WRITES, rate: RATE } = cfg;
  heading(`phase 3: ${WATCHERS} watches from resourceVersion ${rv}, ${WRITES} writes at ${RATE}/s`);
  const delivery: number[] = [];
  const watchers: Watcher[] = [];
  const path = `${COLLECTION}?watch=true&resourceVersion=${rv}`;
  for (let w = 0; w < WATCHERS; w++) {
    const { res, destroy } = await client.stream(path);
    if (res.statusCode !== 200) throw new Error(`watch ${w} failed with ${res.statusCode}`);
    const watcher: Watcher = { events: 0, typed: new Map(), untimed: 0, errors: [], ended: false, destroy };
    watchers.push(watcher);
    let buf = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      const now = epochMs();
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line) continue;
        const ev = JSON.parse(line) as { type: string; object: { metadata?: { annotations?: Record<string, string> } } };
        watcher.typed.set(ev.type, (watcher.typed.get(ev.type) ?? 0) + 1);
        if (ev.type === 'ERROR' || ev.type === 'BOOKMARK') {
          if (ev.type === 'ERROR') watcher.errors.push(line.slice(0, 300));
          continue;
        }
        watcher.events++;
        const sent = Number(ev.object.metadata?.annotations?.[SENT_AT]);
        if (Number.isFinite(sent)) delivery.push(now - sent);
        else watcher.untimed++;
      }
    });
    res.on('end', () => (watcher.ended = true));
    res.on('error', () => (watcher.ended = true));
  }
  console.log(`  ${watchers.length} watches open`);

  // Open-loop writes at a steady rate: half creates of new objects, half merge patches of existing ones.
  const writeLat: number[] = [];
  const failures = new Failures();
  let ok = 0;
  const inflight: Promise<void>[] = [];
  const interval = 1000 / RATE;
  const t0 = performance.now();
  for (let i = 0; i < WRITES; i++) {
    const due = t0 + i * interval;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    const sentAt = epochMs();
    let p: Promise<Reply>;
    if (i % 2 === 0) {
      const idx = COUNT + i;
      p = client.request('POST', COLLECTION, componentBody(`app-${idx}`, idx, sentAt));
    } else {
      const target = (i * 7919) % COUNT;
      p = client.request('PATCH', `${COLLECTION}/app-${target}`, JSON.stringify({ metadata: { annotations: { [SENT_AT]: String(sentAt) } } }), 'application/merge-patch+json');
    }
    inflight.push(
      p.then(
        (res) => {
          writeLat.push(res.ms);
          if (res.status === 200 || res.status === 201) ok++;
          else failures.add(res.status, res.body.toString());
        },
        (err: Error) => failures.add(err.message, ''),
      ),
    );
  }
  await Promise.all(inflight);
  const writeWall = (performance.now() - t0) / 1000;
  const expected = ok * watchers.length;
  const received = () => watchers.reduce((n, w) => n + w.events, 0);
  const deadline = performance.now() + 15000;
  while (received() < expected && performance.now() < deadline && !watchers.every((w) => w.ended)) await sleep(20);
  for (const w of watchers) w.destroy();

  const ws = summary(writeLat);
  const ds = summary(delivery);
  const got = received();
  r.watch = ds;
  r.watchEvents = got;
  r.watchExpected = expected;
  console.log(`  ${ok} writes succeeded in ${writeWall.toFixed(2)} s (${(ok / writeWall).toFixed(0)}/s; ${Math.ceil(WRITES / 2)} creates, ${Math.floor(WRITES / 2)} merge patches)`);
  console.log(`  write latency: ${latencyLine(ws)}`);
  failures.report('writes');
  console.log(`  watch events received: ${got} of ${expected} expected (${watchers.length} watchers x ${ok} writes)`);
  const types = new Map<string, number>();
  for (const w of watchers) for (const [t, n] of w.typed) types.set(t, (types.get(t) ?? 0) + n);
  console.log(`  by type: ${[...types].map(([t, n]) => `${t} ${n}`).join(', ') || 'none'}`);
  const untimed = watchers.reduce((n, w) => n + w.untimed, 0);
  if (untimed) console.log(`  ! ${untimed} events carried no ${SENT_AT} annotation`);
  const errs = watchers.flatMap((w) => w.errors);
  if (errs.length) console.log(`  ! ${errs.length} ERROR events; first: ${errs[0]}`);
  const short = watchers.filter((w) => w.events < ok).length;
  if (short) console.log(`  ! ${short} watchers received fewer than ${ok} events`);
  console.log(`  watch delivery latency (receive - send time of the write): ${latencyLine(ds)}`);
}

// ---------------------------------------------------------------------------------------------

function printTargets(cfg: BenchConfig, log: PhaseLog, r: Partial<Results>) {
  const { count: COUNT, clients: CLIENTS, watchers: WATCHERS } = cfg;
  heading('summary against the targets of issue 2 (informational)');
  const rows: [string, string, string, boolean | undefined][] = [];
  const add = (what: string, value: string, target: string, met: boolean | undefined) => rows.push([what, value, target, met]);
  const full = COUNT === 10000 && CLIENTS === 32 && WATCHERS === 100;
  add(`creates/s (${CLIENTS} clients)`, r.createsPerS === undefined ? 'n/a' : r.createsPerS.toFixed(0), '>= 2000/s', r.createsPerS === undefined ? undefined : r.createsPerS >= 2000);
  add('create latency p99', r.create ? ms(r.create.p99) : 'n/a', '< 50 ms', r.create ? r.create.p99 < 50 : undefined);
  add(`full list of ${r.listItems ?? COUNT} (median of 5)`, r.listMedianMs === undefined ? 'n/a' : ms(r.listMedianMs), '< 500 ms', r.listMedianMs === undefined ? undefined : r.listMedianMs < 500);
  add(`full list, first run`, r.listFirstMs === undefined ? 'n/a' : ms(r.listFirstMs), '< 500 ms', r.listFirstMs === undefined ? undefined : r.listFirstMs < 500);
  add(`watch delivery p99 (${WATCHERS} watchers)`, r.watch ? ms(r.watch.p99) : 'n/a', '< 50 ms', r.watch && r.watch.n ? r.watch.p99 < 50 : undefined);
  add('watch events received', r.watchExpected === undefined ? 'n/a' : `${r.watchEvents}/${r.watchExpected}`, 'all', r.watchExpected === undefined ? undefined : r.watchEvents === r.watchExpected);
  add('server peak memory (VmHWM)', r.peakRssKb === undefined ? 'n/a' : mib(r.peakRssKb), '< 300 MiB', r.peakRssKb === undefined ? undefined : r.peakRssKb < 300 * 1024);

  const w = [0, 0, 0];
  for (const [a, b, c] of rows) [a, b, c].forEach((s, i) => (w[i] = Math.max(w[i], s.length)));
  const line = (a: string, b: string, c: string, d: string) => `  ${a.padEnd(w[0])}  ${b.padStart(w[1])}  ${c.padEnd(w[2])}  ${d}`;
  console.log(line('figure', 'value', 'target', 'result'));
  console.log(line('-'.repeat(w[0]), '-'.repeat(w[1]), '-'.repeat(w[2]), '-------'));
  for (const [a, b, c, met] of rows) console.log(line(a, b, c, met === undefined ? 'n/a' : met ? 'met' : 'NOT MET'));
  if (!full) console.log(`  (scaled run: --count ${COUNT} --clients ${CLIENTS} --watchers ${WATCHERS}; the targets are for 10000 / 32 / 100)`);

  heading('server memory by phase');
  for (const m of log.rows) console.log(`  ${m.phase.padEnd(22)} VmRSS ${mib(m.stats.rssKb).padStart(10)}   VmHWM ${mib(m.stats.hwmKb).padStart(10)}   CPU total ${m.stats.cpuS.toFixed(2)} s`);
}

/**
 * Runs the phases against a started server, printing as it goes, and records the figures in r
 * (r.peakRssKb at the end). Resolves to the error that aborted the run, if one did.
 */
export async function runPhases(srv: Server, cfg: BenchConfig, log: PhaseLog, r: Partial<Results>, afterPhase?: (phase: string) => void): Promise<unknown> {
  const client = new Client(srv, cfg.clients);
  let failed: unknown;
  const done = (phase: string) => {
    log.memory(srv, phase);
    afterPhase?.(phase);
  };
  try {
    await ensureNamespace(client);
    done('start');
    await phaseCreate(client, cfg, r);
    done('creates');
    const rv = await phaseList(client, cfg, r);
    done('lists');
    if (cfg.watchers > 0 && cfg.writes > 0) {
      await phaseWatch(client, cfg, rv, r);
      done('watches + writes');
    }
    r.peakRssKb = log.peakRssKb;
  } catch (err) {
    failed = err;
    console.error(`\nbenchmark aborted: ${(err as Error).stack ?? String(err)}`);
    try {
      log.memory(srv, 'abort');
    } catch {
      // the server may be gone
    }
  } finally {
    client.close();
  }
  return failed;
}

async function main() {
  const cfg = parseFlags();
  console.log(`ocm-apiserver API benchmark: --count ${cfg.count} --clients ${cfg.clients} --watchers ${cfg.watchers} --writes ${cfg.writes} --rate ${cfg.rate} --page-limit ${cfg.pageLimit}`);
  if (process.env.BENCH_SERVER_NODE_ARGS) console.log(`server node args: ${process.env.BENCH_SERVER_NODE_ARGS}`);
  const srv = await startServer({ keep: cfg.keep });
  console.log(`server pid ${srv.pid} on port ${srv.port}, data dir ${srv.dataDir}`);
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) return;
    interrupted = true;
    console.error('\ninterrupted: stopping the server');
    void srv.stop().then(() => {
      if (!cfg.keep) rmSync(srv.dataDir, { recursive: true, force: true });
      process.exit(130);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const log = new PhaseLog();
  const r: Partial<Results> = {};
  const failed = await runPhases(srv, cfg, log, r);
  printTargets(cfg, log, r);
  writeBenchResult('api', {
    'creates/s': { value: r.createsPerS, better: 'higher' },
    'create p99 ms': { value: r.create?.p99, better: 'lower' },
    'full list median ms': { value: r.listMedianMs, better: 'lower' },
    'paginated list ms': { value: r.pagedMs, better: 'lower' },
    'watch delivery p99 ms': { value: r.watch?.p99, better: 'lower' },
    'peak RSS MiB': { value: r.peakRssKb === undefined ? undefined : r.peakRssKb / 1024, better: 'lower' },
  });

  await srv.stop();
  if (srv.proc.exitCode !== 0 && srv.proc.exitCode !== null) console.log(`\nserver exited with ${srv.proc.exitCode}; last log lines:\n${srv.logs.slice(-20).join('\n')}`);
  if (cfg.keep) console.log(`\ndata dir kept: ${srv.dataDir}`);
  else rmSync(srv.dataDir, { recursive: true, force: true });
  process.exitCode = failed ? 1 : 0;
}

// Run only as a script (`node dist/bench/api.js`), not when imported (bench/backends.ts).
const isMain = (() => {
  try {
    return !!process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
})();
if (isMain) await main();
