// LevelStore on real LevelDB in temporary directories. The Store interface's behaviour is the
// shared conformance suite (test/helpers/store-conformance.ts, also run against etcd); here are
// LevelDB's own: group commit, history persisted across restarts (watch resume, trimming, lists
// at older resourceVersions), and durability of acknowledged writes when the writing process is
// SIGKILLed.
import t from 'tap';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Level } from 'level';
import { LevelStore, type LevelStoreOptions } from '../storage/leveldb.js';
import type { StoreEvent } from '../storage/store.js';
import {
  type Backend,
  changed,
  expectCode,
  isContiguous,
  isIncreasing,
  replay,
  rvs,
  storeConformance,
  type Tap,
  thing,
} from './helpers/store-conformance.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'ocm-storage-'));
t.teardown(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirs = 0;
const newDir = () => path.join(tmpRoot, `db${dirs++}`);

/** Opens a store that is closed when the test ends (closing twice is harmless). */
async function openStore(t: Tap, dir: string, opts?: LevelStoreOptions): Promise<LevelStore> {
  const s = await LevelStore.open(dir, opts);
  t.teardown(() => s.close());
  return s;
}

/** Counts LevelDB batch writes of every store by spying on the library's public `batch` (no store internals). */
function countBatches(t: Tap): { readonly count: number } {
  const proto = Level.prototype as unknown as { batch: (...args: unknown[]) => unknown };
  const original = proto.batch;
  const counter = { count: 0 };
  proto.batch = function (this: unknown, ...args: unknown[]) {
    if (Array.isArray(args[0])) counter.count++;
    return original.apply(this, args);
  };
  t.teardown(() => {
    delete (proto as { batch?: unknown }).batch;
  });
  return counter;
}


const leveldb: Backend = {
  name: 'leveldb',
  async fresh(t, opts) {
    const dir = newDir();
    return { store: await openStore(t, dir, opts), reopen: (o) => openStore(t, dir, o) };
  },
  startsAtZero: true,
  orderedConcurrentWrites: true,
  async afterHistoryTrimming(t, { store, reopen, historySize, maxRound }) {
    // trimming is persisted: a reopened store with a larger history finds only a bounded event log
    let s = store;
    const rv = s.currentRV();
    await s.close();
    s = await reopen({ historySize: 100000 });
    const onDisk = replay(s, '', s.oldestWatchableRV());
    t.ok(onDisk.length <= historySize * 1.1 + maxRound, `the persisted event log is trimmed too (${onDisk.length} events for ${rv} writes)`);
    t.ok(isContiguous(rvs(onDisk)) && onDisk.at(-1)?.rv === rv, 'and ends at the last write without gaps');
    await s.close();
    s = await reopen({ historySize: 30 });
    const reloaded = replay(s, '', s.oldestWatchableRV());
    t.equal(reloaded.length, 30, 'a reopened store keeps historySize events');
    t.equal(s.oldestWatchableRV(), rv - 30);
    await expectCode(t, () => s.watch('', rv - 31, () => {}), 'Expired', 'older than the reloaded history');
  },
};

storeConformance(t, leveldb);

t.test('group commit', async (t) => {
  const s = await openStore(t, newDir());
  const batches = countBatches(t);
  const N = 2000;
  const keys = Array.from({ length: N }, (_, i) => `/g/r/ns${i % 7}/obj-${String(i).padStart(5, '0')}`);
  const created = await Promise.all(keys.map((k, i) => s.create(k, thing(k.split('/')[4], { i }, `ns${i % 7}`))));
  t.ok(isIncreasing(rvs(created)), 'resourceVersions increase in the order the writes were issued');
  t.equal(s.currentRV(), created[N - 1].rv, 'currentRV is the last write');
  t.ok(batches.count >= 1 && batches.count <= 10, `${N} concurrent creates share a few fsync'd batches (${batches.count})`);
});

t.test('list: too old resourceVersion', async (t) => {
  const dir = newDir();
  let small = await openStore(t, dir, { historySize: 20 });
  await small.create('/g/r/ns/first', thing('first'));
  const first = small.currentRV();
  for (let i = 0; i < 60; i++) await small.create(`/g/r/ns/o${i}`, thing(`o${i}`));
  await expectCode(t, small.list('/g/r/', { atRV: first }), 'Expired', 'a list older than the kept history');
  const oldest = small.oldestWatchableRV();
  t.ok(oldest > first);
  t.equal((await small.list('/g/r/', { atRV: oldest })).items.length, 1 + 60 - (small.currentRV() - oldest), 'the oldest kept resourceVersion can still be listed at');
  await expectCode(t, small.list('/g/r/', { atRV: oldest - 1 }), 'Expired', 'one before the oldest kept');

  // after a restart the previous states are unknown: older lists expire, current ones work
  const rv = small.currentRV();
  await small.close();
  small = await openStore(t, dir, { historySize: 20 });
  await expectCode(t, small.list('/g/r/', { atRV: rv - 1 }), 'Expired', 'a list at a resourceVersion from before a restart');
  t.equal((await small.list('/g/r/', { atRV: rv })).items.length, 61, 'a list at the current resourceVersion after a restart works');
  await small.create('/g/r/ns/later', thing('later'));
  const atRestart = await small.list('/g/r/', { atRV: rv });
  t.equal(atRestart.items.length, 61, 'and later lists at it exclude newer objects');
});

t.test('watch: resume across a restart', async (t) => {
  const dir = newDir();
  let s = await openStore(t, dir);
  await s.create('/g/r/ns/a', thing('a'));
  const from = s.currentRV();
  const before: StoreEvent[] = [];
  s.watch('/g/r/', from, (e) => before.push(e));
  await s.create('/g/r/ns/b', thing('b', { n: 1 }));
  await s.update('/g/r/ns/a', (c) => changed(c, { n: 2 }));
  await s.create('/g/other/ns/x', thing('x'));
  await s.delete('/g/r/ns/b');
  await Promise.all([s.create('/g/r/ns/c', thing('c')), s.update('/g/r/ns/a', (c) => changed(c, { n: 3 }))]);
  const rv = s.currentRV();
  await s.close();

  s = await openStore(t, dir);
  t.equal(s.currentRV(), rv);
  const after: StoreEvent[] = [];
  s.watch('/g/r/', from, (e) => after.push(e));
  t.same(
    after.map((e) => [e.type, e.key, e.rv, e.object.rv, e.object.json]),
    before.map((e) => [e.type, e.key, e.rv, e.object.rv, e.object.json]),
    'a watch from before the restart replays the persisted events, identical',
  );
  const del = after.find((e) => e.type === 'DELETED');
  t.equal(del?.object.obj.metadata.resourceVersion, String(del?.rv), 'a replayed DELETED carries the delete resourceVersion');
  t.same(del?.object.obj.spec, { n: 1 }, 'and the last state');
  t.ok(after.every((e) => e.object.obj.metadata.resourceVersion === String(e.rv)));
  const live = await s.create('/g/r/ns/d', thing('d'));
  t.equal(after.at(-1)?.rv, live.rv, 'then live events follow');
  t.equal(live.rv, rv + 1);
});

t.test('acknowledged writes survive SIGKILL', async (t) => {
  const dir = newDir();
  const storeURL = new URL('../storage/leveldb.js', import.meta.url).href;
  const script = path.join(tmpRoot, 'crash-writer.mjs');
  // Creates in WORKERS parallel loops (so batches hold several writes) and prints each key, rv and
  // JSON only after its create is acknowledged. Bounded so that an orphan cannot run forever.
  fs.writeFileSync(
    script,
    `import { LevelStore } from ${JSON.stringify(storeURL)};
const [dir, round, workers] = process.argv.slice(2);
const s = await LevelStore.open(dir);
process.stdout.write('open ' + s.currentRV() + '\\n');
let i = 0;
async function worker() {
  while (i < 50000) {
    const n = i++;
    const key = '/crash/things/r' + round + '/k' + String(n).padStart(6, '0');
    const o = await s.create(key, {
      apiVersion: 'test.ocm.software/v1', kind: 'Thing',
      metadata: { name: 'k' + n, namespace: 'r' + round },
      spec: { n, round: Number(round), payload: 'x'.repeat(n % 300) },
    });
    process.stdout.write(JSON.stringify({ key, rv: o.rv, json: o.json }) + '\\n');
  }
}
await Promise.all(Array.from({ length: Number(workers) }, worker));
process.stdout.write('done\\n');
`,
  );

  interface Ack { key: string; rv: number; json: string }
  const acked: Ack[] = [];

  for (let round = 0; round < 3; round++) {
    const killAt = 200 + Math.floor(Math.random() * 600);
    const res = await new Promise<{ acks: Ack[]; signal: NodeJS.Signals | null; code: number | null; stderr: string; lines: string[] }>((resolve) => {
      const child = spawn(process.execPath, [script, dir, String(round), '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const stop = () => child.kill('SIGKILL');
      t.teardown(stop);
      const acks: Ack[] = [];
      const lines: string[] = [];
      let buf = '';
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.stdout.setEncoding('utf8').on('data', (d: string) => {
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.startsWith('{')) acks.push(JSON.parse(line) as Ack);
          else lines.push(line);
        }
        if (acks.length >= killAt && child.exitCode === null && child.signalCode === null) stop();
      });
      child.on('close', (code, signal) => resolve({ acks, signal, code, stderr, lines }));
    });
    t.equal(res.signal, 'SIGKILL', `round ${round}: the writer was killed (exit ${res.code}${res.stderr ? `, stderr: ${res.stderr}` : ''})`);
    t.ok(res.acks.length >= killAt, `round ${round}: ${res.acks.length} acknowledged creates before the kill (kill after ${killAt})`);
    acked.push(...res.acks);

    const s = await LevelStore.open(dir);
    try {
      const maxAcked = Math.max(...acked.map((a) => a.rv));
      t.ok(s.currentRV() >= maxAcked, `round ${round}: currentRV ${s.currentRV()} >= last acknowledged ${maxAcked}`);
      t.equal(new Set(acked.map((a) => a.rv)).size, acked.length, `round ${round}: acknowledged resourceVersions are distinct`);
      const lost: string[] = [];
      for (const a of acked) {
        const o = await s.get(a.key);
        if (!o || o.rv !== a.rv || o.json !== a.json || o.obj.metadata.resourceVersion !== String(a.rv)) lost.push(`${a.key}@${a.rv}: ${o ? `found rv ${o.rv}` : 'missing'}`);
      }
      t.same(lost, [], `round ${round}: all ${acked.length} acknowledged objects (all rounds) are present with their resourceVersion and content`);
      const mine = await s.list(`/crash/things/r${round}/`);
      t.ok(mine.items.every((o) => o.rv <= s.currentRV()), `round ${round}: nothing newer than currentRV (${mine.items.length} objects, ${res.acks.length} acknowledged)`);

      // the event log agrees with the objects
      const evs = replay(s, '', s.oldestWatchableRV());
      t.ok(isContiguous(rvs(evs)) && (evs.length === 0 || evs.at(-1)!.rv === s.currentRV()), `round ${round}: the event log is gapless up to currentRV`);
      const evByRV = new Map(evs.map((e) => [e.rv, e]));
      const inLog = acked.filter((a) => a.rv > s.oldestWatchableRV());
      t.ok(
        inLog.every((a) => evByRV.get(a.rv)?.key === a.key && evByRV.get(a.rv)?.object.json === a.json),
        `round ${round}: every acknowledged create still in the history has its event`,
      );

      const rv = s.currentRV();
      const fresh = await s.create(`/crash/after/r${round}/x`, thing('x'));
      t.equal(fresh.rv, rv + 1, `round ${round}: creating again works and continues the counter`);
      await expectCode(t, s.create(acked[acked.length - 1].key, thing('dup')), 'AlreadyExists', `round ${round}: an acknowledged key`);
    } finally {
      await s.close();
    }
  }
});

t.test('the history is bounded in bytes too: updates of a big object (issue 15)', async (t) => {
  const dir = newDir();
  const big = (i: number) => thing('big', { v: 'x'.repeat(100_000), i });
  let s = await openStore(t, dir, { historyBytes: 1 << 20 });
  const first = await s.create('/g/r/ns/big', big(0));
  for (let i = 1; i <= 50; i++) await s.update('/g/r/ns/big', () => big(i));
  const held = s.historyStats();
  t.ok(held.bytes <= 1 << 20, `the events hold ${held.bytes} bytes beyond the current object (at most 1 MiB; 50 versions were 5 MB)`);
  t.ok(held.events >= 8 && held.events < 12, `${held.events} events kept: what fits in 1 MiB down to 9/10 of it`);
  await expectCode(t, () => s.watch('', first.rv, () => {}), 'Expired', 'a watch from before the kept events');
  await expectCode(t, s.list('/g/r/', { atRV: first.rv }), 'Expired', 'a list at a dropped resourceVersion');
  t.equal(replay(s, '', s.currentRV() - 5).length, 5, 'a watch from a kept resourceVersion replays');
  const rv = s.currentRV();
  await s.close();
  s = await openStore(t, dir, { historyBytes: 100000000 });
  const onDisk = replay(s, '', s.oldestWatchableRV());
  t.ok(onDisk.length <= 12, `the persisted event log is trimmed too (${onDisk.length} events)`);
  t.equal(onDisk.at(-1)?.rv, rv);
  await s.close();
  s = await openStore(t, dir, { historyBytes: 350_000 });
  const reloaded = s.historyStats();
  t.ok(reloaded.events === 3 && reloaded.bytes <= 350_000, `a reopened store loads what fits its bytes (${reloaded.events} events, ${reloaded.bytes} bytes)`);
  t.equal(s.oldestWatchableRV(), rv - 3);
  await expectCode(t, () => s.watch('', rv - 4, () => {}), 'Expired', 'older than the reloaded history');
  t.equal(replay(s, '', rv - 3).length, 3);
});
