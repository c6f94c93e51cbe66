// The Store interface's behaviour, as one suite that runs against every backend:
// test/storage.test.ts (LevelDB) and test/storage-etcd.test.ts (etcd) call storeConformance with
// a way to open a store on fresh storage. Backend-specific behaviour (LevelDB's group commit and
// persisted event log, etcd's multi-process semantics and compaction) is tested in those files.
import t from 'tap';
import type { KubeObject } from '../../kinds/types.js';
import { type Store, type StoreEvent, StoreError, type StoreErrorCode, type StoredObject } from '../../storage/store.js';

export type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

/** The store as the tests use it: both backends also say how far back a watch can resume. */
export type TestStore = Store & { oldestWatchableRV(): number };

export interface StoreOpenOptions {
  /** Events kept for watch resume. */
  historySize?: number;
}

export interface Fresh {
  store: TestStore;
  /** Opens the same storage again (a restart: the previous store is closed first by the caller). */
  reopen(opts?: StoreOpenOptions): Promise<TestStore>;
}

export interface Backend {
  name: string;
  /** A store on new, empty storage, closed (with its reopened successors) when `t` ends. */
  fresh(t: Tap, opts?: StoreOpenOptions): Promise<Fresh>;
  /** A new store starts at resourceVersion 0 (an etcd cluster has its own revision already). */
  startsAtZero: boolean;
  /** Concurrently issued writes get resourceVersions in the order they were issued. */
  orderedConcurrentWrites: boolean;
  /**
   * Runs after the history-trimming test with its store, for backend-specific follow-ups (LevelDB:
   * the trimmed history is persisted).
   */
  afterHistoryTrimming?(t: Tap, ctx: HistoryContext): Promise<void>;
}

export interface HistoryContext {
  store: TestStore;
  reopen: Fresh['reopen'];
  historySize: number;
  maxRound: number;
  maxKept: number;
}

export function thing(name: string, spec: Record<string, unknown> = {}, namespace?: string): KubeObject {
  return { apiVersion: 'test.ocm.software/v1', kind: 'Thing', metadata: { name, ...(namespace ? { namespace } : {}) }, spec };
}

/** A changed copy of a stored object (stored objects are immutable). */
export function changed(cur: StoredObject, spec: Record<string, unknown>): KubeObject {
  const o = structuredClone(cur.obj);
  o.spec = { ...(o.spec as Record<string, unknown>), ...spec };
  return o;
}

export async function expectCode(t: Tap, p: Promise<unknown> | (() => unknown), code: StoreErrorCode, msg: string) {
  try {
    await (typeof p === 'function' ? p() : p);
    t.fail(`${msg}: expected StoreError ${code}, got success`);
  } catch (e) {
    t.ok(e instanceof StoreError, `${msg}: is a StoreError`);
    t.equal((e as StoreError).code, code, `${msg}: ${code}`);
  }
}

/** Guards against hangs (not a timing assertion): rejects if p does not settle within ms. */
export function settles<T>(p: Promise<T>, what: string, ms = 5000): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms}ms`)), ms))),
  ]);
}

/** Every event a new watch replays (prefix, from rv), without staying subscribed. */
export function replay(s: Store, prefix: string, fromRV: number): StoreEvent[] {
  const evs: StoreEvent[] = [];
  s.watch(prefix, fromRV, (e) => evs.push(e)).stop();
  return evs;
}

export const rvs = (evs: { rv: number }[]) => evs.map((e) => e.rv);
export const keysOf = (items: StoredObject[]) => items.map((o) => o.key);
export const isIncreasing = (xs: number[]) => xs.every((x, i) => i === 0 || x > xs[i - 1]);
export const isContiguous = (xs: number[]) => xs.every((x, i) => i === 0 || x === xs[i - 1] + 1);

export function storeConformance(t: Tap, b: Backend) {
  t.test('create, get, update, delete', async (t) => {
    const { store: s } = await b.fresh(t);
    const base = s.currentRV();
    if (b.startsAtZero) t.equal(base, 0, 'a new store is at rv 0');
    const events: StoreEvent[] = [];
    s.watch('', base, (e) => events.push(e));

    const input = thing('a', { x: 1 }, 'ns1');
    input.metadata.resourceVersion = '999';
    const a = await s.create('/g/r/ns1/a', input);
    t.equal(a.key, '/g/r/ns1/a');
    t.ok(a.rv > base, 'gets a resourceVersion');
    t.equal(a.obj.metadata.resourceVersion, String(a.rv), 'resourceVersion is written into metadata (a given one is replaced)');
    t.equal(a.json, JSON.stringify(a.obj), 'json is the serialised object');
    t.same(JSON.parse(a.json).spec, { x: 1 });
    t.equal(s.currentRV(), a.rv, 'currentRV is the acknowledged write');

    const got = await s.get('/g/r/ns1/a');
    t.equal(got?.rv, a.rv);
    t.equal(got?.json, a.json);
    t.equal(await s.get('/g/r/ns1/missing'), undefined, 'get of a missing key is undefined');

    await expectCode(t, s.create('/g/r/ns1/a', thing('a', { x: 2 })), 'AlreadyExists', 'create of an existing key');
    t.equal(s.currentRV(), a.rv, 'a failed create writes nothing');
    t.same((await s.get('/g/r/ns1/a'))?.obj.spec, { x: 1 }, 'the existing object is untouched');

    let called = false;
    await expectCode(t, s.update('/g/r/ns1/missing', (c) => ((called = true), c.obj)), 'NotFound', 'update of a missing key');
    t.notOk(called, 'tryUpdate is not called for a missing key');
    await expectCode(t, s.delete('/g/r/ns1/missing'), 'NotFound', 'delete of a missing key');

    // resourceVersions are one counter across keys
    const b2 = await s.create('/g/r/ns2/b', thing('b', {}, 'ns2'));
    const c = await s.create('/other/kind/c', thing('c'));
    t.ok(a.rv < b2.rv && b2.rv < c.rv, 'resourceVersion increases across keys and prefixes');

    // a real update
    const a2 = await s.update('/g/r/ns1/a', (cur) => {
      t.equal(cur.rv, a.rv, 'tryUpdate sees the current state');
      return changed(cur, { x: 2 });
    });
    t.ok(a2.rv > c.rv, 'update gets a new, larger resourceVersion');
    t.equal(a2.obj.metadata.resourceVersion, String(a2.rv));
    t.same(a2.obj.spec, { x: 2 });
    t.equal((await s.get('/g/r/ns1/a'))?.rv, a2.rv);
    t.equal(a.obj.metadata.resourceVersion, String(a.rv), 'the earlier returned object is not mutated');
    t.same(a.obj.spec, { x: 1 });

    // no-op update: the same object back
    const before = s.currentRV();
    const evCount = events.length;
    const same = await s.update('/g/r/ns1/a', (cur) => cur.obj);
    t.equal(same.rv, a2.rv, 'a no-op update keeps the resourceVersion');
    t.equal(same.json, a2.json);
    t.equal(s.currentRV(), before, 'a no-op update writes nothing');
    t.equal(events.length, evCount, 'a no-op update sends no event');

    // tryUpdate throwing aborts
    const boom = new Error('precondition failed');
    await t.rejects(s.update('/g/r/ns1/a', () => { throw boom; }), boom, 'an error from tryUpdate is passed through');
    t.equal(s.currentRV(), before, 'an aborted update writes nothing');

    // update returning null deletes
    const bDel = await s.update('/g/r/ns2/b', () => null);
    t.ok(bDel.rv > before, 'deleting through update gets a new resourceVersion');
    t.equal(bDel.obj.metadata.resourceVersion, String(bDel.rv), 'the deleted object carries the deletion resourceVersion');
    t.equal(await s.get('/g/r/ns2/b'), undefined, 'update returning null deletes');
    t.equal(b2.obj.metadata.resourceVersion, String(b2.rv), 'the earlier returned object is not mutated by the delete');

    // delete with a failing check
    await t.rejects(s.delete('/g/r/ns1/a', () => { throw new Error('uid mismatch'); }), { message: 'uid mismatch' });
    t.equal((await s.get('/g/r/ns1/a'))?.rv, a2.rv, 'a failed check keeps the object');

    let checked: StoredObject | undefined;
    const aDel = await s.delete('/g/r/ns1/a', (cur) => void (checked = cur));
    t.equal(checked?.rv, a2.rv, 'check sees the current state');
    t.ok(aDel.rv > bDel.rv, 'delete gets a new resourceVersion');
    t.equal(aDel.obj.metadata.resourceVersion, String(aDel.rv), 'the deleted object carries the delete resourceVersion');
    t.same(aDel.obj.spec, { x: 2 }, 'the deleted object is the last state');
    t.equal(a2.obj.metadata.resourceVersion, String(a2.rv), 'the last stored state is not mutated by the delete');
    t.equal(await s.get('/g/r/ns1/a'), undefined);
    t.equal(s.currentRV(), aDel.rv);
    await expectCode(t, s.delete('/g/r/ns1/a'), 'NotFound', 'second delete');

    const again = await s.create('/g/r/ns1/a', thing('a', { x: 3 }, 'ns1'));
    t.ok(again.rv > aDel.rv, 'a deleted key can be created again');

    t.same(
      events.map((e) => [e.type, e.key, e.rv]),
      [
        ['ADDED', '/g/r/ns1/a', a.rv],
        ['ADDED', '/g/r/ns2/b', b2.rv],
        ['ADDED', '/other/kind/c', c.rv],
        ['MODIFIED', '/g/r/ns1/a', a2.rv],
        ['DELETED', '/g/r/ns2/b', bDel.rv],
        ['DELETED', '/g/r/ns1/a', aDel.rv],
        ['ADDED', '/g/r/ns1/a', again.rv],
      ],
      'one event per write, in order',
    );
    t.ok(isContiguous(rvs(events)), 'every resourceVersion is one write');
    t.equal(events[3].prev?.rv, a.rv, 'MODIFIED carries the previous state');
    t.equal(events[0].prev, null, 'ADDED has no previous state');
    t.equal(events[5].object.rv, aDel.rv, 'DELETED carries the last state with the delete resourceVersion');
    t.equal(events[5].object.json, aDel.json, 'the same JSON as the delete returned');
    t.equal(events[5].prev?.rv, a2.rv);
    t.equal(events[3].object.json, a2.json, 'an event carries the JSON the write returned');
  });

  t.test('concurrent writes: order, no lost update, reopening', async (t) => {
    const fresh = await b.fresh(t);
    let s = fresh.store;

    const N = 2000;
    const keys = Array.from({ length: N }, (_, i) => `/g/r/ns${i % 7}/obj-${String(i).padStart(5, '0')}`);
    const created = await Promise.all(keys.map((k, i) => s.create(k, thing(k.split('/')[4], { i }, `ns${i % 7}`))));
    t.equal(created.length, N, 'all creates succeed');
    t.equal(new Set(created.map((o) => o.rv)).size, N, 'resourceVersions are distinct');
    if (b.orderedConcurrentWrites) t.ok(isIncreasing(rvs(created)), 'resourceVersions increase in the order the writes were issued');
    t.ok(created.every((o) => o.obj.metadata.resourceVersion === String(o.rv)), 'each object carries its resourceVersion');
    t.equal(s.currentRV(), Math.max(...rvs(created)), 'currentRV is the last write');

    // concurrent creates of one key: exactly one wins
    const racing = await Promise.allSettled(Array.from({ length: 50 }, (_, i) => s.create('/g/r/race/one', thing('one', { i }))));
    t.equal(racing.filter((r) => r.status === 'fulfilled').length, 1, 'one of 50 concurrent creates of a key succeeds');
    t.ok(
      racing.every((r) => r.status === 'fulfilled' || (r.reason instanceof StoreError && r.reason.code === 'AlreadyExists')),
      'the others fail with AlreadyExists',
    );

    // concurrent updates of one key are serialised: no lost update
    await s.create('/g/r/counter/c', thing('c', { n: 0 }));
    const M = 200;
    const updates = await Promise.all(
      Array.from({ length: M }, () => s.update('/g/r/counter/c', (cur) => changed(cur, { n: (cur.obj.spec as { n: number }).n + 1 }))),
    );
    t.same((await s.get('/g/r/counter/c'))?.obj.spec, { n: M }, `${M} concurrent read-modify-write updates all apply`);
    t.ok(isIncreasing(rvs(updates)), 'their resourceVersions increase');

    // concurrent deletes of one key: exactly one wins
    const dels = await Promise.allSettled(Array.from({ length: 20 }, () => s.delete('/g/r/counter/c')));
    t.equal(dels.filter((r) => r.status === 'fulfilled').length, 1, 'one of 20 concurrent deletes succeeds, the rest get NotFound');
    t.ok(dels.every((r) => r.status === 'fulfilled' || (r.reason instanceof StoreError && r.reason.code === 'NotFound')));

    const rv = s.currentRV();
    const listed = await s.list('/g/r/');
    await s.close();
    s = await fresh.reopen();
    t.equal(s.currentRV(), rv, 'currentRV survives a restart');
    let wrong = 0;
    for (const o of created) {
      const g = await s.get(o.key);
      if (g?.rv !== o.rv || g.json !== o.json) wrong++;
    }
    t.equal(wrong, 0, `all ${N} objects are present after reopening, with their resourceVersion and content`);
    const relisted = await s.list('/g/r/');
    t.same(keysOf(relisted.items), keysOf(listed.items), 'the reopened store lists the same objects');
    t.same(relisted.items.map((o) => o.json), listed.items.map((o) => o.json));
    const next = await s.create('/g/r/after/restart', thing('restart'));
    t.equal(next.rv, rv + 1, 'the counter continues after a restart');
  });

  t.test('list', async (t) => {
    const { store: s } = await b.fresh(t);
    const names = ['e', 'a', 'd', 'b', 'f', 'c', 'h', 'g'];
    // interleaved creates across namespaces, resources and groups
    for (const n of names) {
      await s.create(`/g/r/ns1/${n}`, thing(n, { even: names.indexOf(n) % 2 === 0 }, 'ns1'));
      await s.create(`/g/r/ns2/${n}`, thing(n, {}, 'ns2'));
    }
    await s.create('/g/r/ns10/z', thing('z', {}, 'ns10'));
    await s.create('/g/r2/ns1/x', thing('x', {}, 'ns1'));
    await s.create('/g2/r/ns1/y', thing('y', {}, 'ns1'));
    const sorted = [...names].sort();

    t.test('prefix scoping and order', async (t) => {
      const ns1 = await s.list('/g/r/ns1/');
      t.same(keysOf(ns1.items), sorted.map((n) => `/g/r/ns1/${n}`), 'a namespace prefix lists only that namespace, sorted');
      t.equal(ns1.rv, s.currentRV(), 'a list reads at the current resourceVersion');
      t.equal(ns1.lastKey, undefined, 'no lastKey without a limit');
      const all = await s.list('/g/r/');
      t.same(
        keysOf(all.items),
        [...sorted.map((n) => `/g/r/ns1/${n}`), '/g/r/ns10/z', ...sorted.map((n) => `/g/r/ns2/${n}`)],
        'a resource prefix lists all its namespaces, sorted, and nothing of /g/r2/',
      );
      t.same(keysOf((await s.list('/g/')).items).filter((k) => !k.startsWith('/g/r/')), ['/g/r2/ns1/x'], 'a group prefix spans its resources');
      t.same(keysOf((await s.list('/g/r/ns1')).items).at(-1), '/g/r/ns10/z', 'a prefix is a plain string prefix');
      t.equal((await s.list('')).items.length, 2 * names.length + 3, 'the empty prefix lists everything');
      t.same((await s.list('/nothing/here/')).items, [], 'an unknown prefix lists nothing');
      t.ok(all.items.every((o) => o.obj.metadata.resourceVersion === String(o.rv)), 'items carry their resourceVersion');
      t.ok(all.items.every((o) => o.json === JSON.stringify(o.obj)), 'and their JSON');
    });

    t.test('limit, startAfter, filter', async (t) => {
      const pages: string[][] = [];
      let startAfter: string | undefined;
      for (;;) {
        const page = await s.list('/g/r/ns1/', { limit: 3, startAfter });
        pages.push(keysOf(page.items));
        if (!page.lastKey) break;
        t.equal(page.lastKey, page.items.at(-1)?.key, 'lastKey is the last key returned');
        startAfter = page.lastKey;
      }
      t.same(pages.map((p) => p.length), [3, 3, 2], 'pages of limit 3');
      t.same(pages.flat(), sorted.map((n) => `/g/r/ns1/${n}`), 'pages cover the list exactly once, in order');

      const exact = await s.list('/g/r/ns1/', { limit: names.length });
      t.equal(exact.items.length, names.length);
      t.equal(exact.lastKey, undefined, 'no lastKey when the limit is exactly the number of items');
      t.equal((await s.list('/g/r/ns1/', { limit: 0 })).items.length, names.length, 'limit 0 means no limit');
      t.same(keysOf((await s.list('/g/r/ns1/', { startAfter: '/g/r/ns1/c1' })).items), ['/g/r/ns1/d', '/g/r/ns1/e', '/g/r/ns1/f', '/g/r/ns1/g', '/g/r/ns1/h'], 'startAfter need not be an existing key');

      const even = (o: StoredObject) => (o.obj.spec as { even?: boolean }).even === true;
      const evenKeys = sorted.filter((n) => names.indexOf(n) % 2 === 0).map((n) => `/g/r/ns1/${n}`);
      const f1 = await s.list('/g/r/ns1/', { limit: 2, filter: even });
      t.same(keysOf(f1.items), evenKeys.slice(0, 2), 'only items passing the filter count towards the limit');
      t.equal(f1.lastKey, evenKeys[1]);
      const f2 = await s.list('/g/r/ns1/', { limit: 2, filter: even, startAfter: f1.lastKey });
      t.same(keysOf(f2.items), evenKeys.slice(2, 4));
      t.equal(f2.lastKey, undefined, 'no lastKey when no further item passes the filter, even if other keys follow');
    });

    t.test('at an older resourceVersion', async (t) => {
      const snapshotRV = s.currentRV();
      const snapshot = await s.list('/g/r/');
      // change things after the snapshot
      await s.create('/g/r/ns1/aa', thing('aa', {}, 'ns1')); // created later
      await s.delete('/g/r/ns1/b'); // deleted later
      await s.update('/g/r/ns1/c', (cur) => changed(cur, { v: 2 })); // modified later
      await s.update('/g/r/ns1/c', (cur) => changed(cur, { v: 3 })); // ... twice
      await s.create('/g/r/ns1/tmp', thing('tmp', {}, 'ns1')); // created and deleted later
      await s.delete('/g/r/ns1/tmp');
      await s.delete('/g/r/ns2/d'); // deleted and created again later
      await s.create('/g/r/ns2/d', thing('d', { reborn: true }, 'ns2'));
      await s.create('/g/r2/ns1/other', thing('other')); // under another prefix
      await s.delete('/g/r2/ns1/x');

      const old = await s.list('/g/r/', { atRV: snapshotRV });
      t.equal(old.rv, snapshotRV, 'the list is read at the requested resourceVersion');
      t.same(keysOf(old.items), keysOf(snapshot.items), 'the same keys as at that resourceVersion');
      t.same(old.items.map((o) => o.json), snapshot.items.map((o) => o.json), 'in their versions of then');
      t.same(old.items.map((o) => o.rv), snapshot.items.map((o) => o.rv));
      const now = await s.list('/g/r/');
      t.notSame(keysOf(now.items), keysOf(old.items), 'the current list differs');

      // paging at the snapshot while writes keep happening between pages
      const paged: StoredObject[] = [];
      let startAfter: string | undefined;
      let i = 0;
      for (;;) {
        const page = await s.list('/g/r/', { limit: 4, startAfter, atRV: snapshotRV });
        paged.push(...page.items);
        if (!page.lastKey) break;
        startAfter = page.lastKey;
        // the next page's keys change meanwhile
        const k = `/g/r/ns2/${sorted[i++ % sorted.length]}`;
        if (await s.get(k)) await s.update(k, (cur) => changed(cur, { page: i }));
        await s.create(`/g/r/ns1/zz${i}`, thing(`zz${i}`));
      }
      t.same(keysOf(paged), keysOf(snapshot.items), 'pages at one resourceVersion are consistent despite writes in between');
      t.same(paged.map((o) => o.json), snapshot.items.map((o) => o.json));

      const mid = await s.list('/g/r/ns1/', { atRV: snapshotRV + 3 });
      const c = mid.items.find((o) => o.key === '/g/r/ns1/c');
      t.same(c?.obj.spec, { even: false, v: 2 }, 'an intermediate resourceVersion sees the intermediate version');
      t.ok(mid.items.some((o) => o.key === '/g/r/ns1/aa'), 'and objects created before it');
      t.notOk(mid.items.some((o) => o.key === '/g/r/ns1/b'), 'but not objects deleted before it');

      const ns1Old = await s.list('/g/r/ns1/', { atRV: snapshotRV, limit: 2, filter: (o) => o.key > '/g/r/ns1/a' });
      t.same(keysOf(ns1Old.items), ['/g/r/ns1/b', '/g/r/ns1/c'], 'filter and limit apply to the old state (b was deleted since)');
      t.equal(ns1Old.lastKey, '/g/r/ns1/c');

      await expectCode(t, s.list('/g/r/', { atRV: s.currentRV() + 1 }), 'Unavailable', 'a list at a future resourceVersion');
      const tooLarge = await s.list('/g/r/', { atRV: s.currentRV() + 1 }).then(() => undefined, (e: Error) => e);
      t.match(tooLarge?.message, /^Too large resource version/, 'worded as kube words it (the API answers 504)');
      t.equal((await s.list('/g/r/', { atRV: s.currentRV() })).rv, s.currentRV(), 'a list at exactly the current resourceVersion works');
    });
  });

  t.test('watch', async (t) => {
    t.test('replay from a resourceVersion, then live, exactly once, in order', async (t) => {
      const { store: s } = await b.fresh(t);
      await s.create('/g/r/ns1/a', thing('a'));
      const from = s.currentRV();
      await s.create('/g/r/ns1/b', thing('b'));
      await s.update('/g/r/ns1/a', (c) => changed(c, { v: 1 }));
      await s.create('/g/r2/ns1/x', thing('x'));
      await s.create('/g/r/ns2/c', thing('c'));
      await s.delete('/g/r/ns1/b');

      const got: StoreEvent[] = [];
      const h = s.watch('/g/r/', from, (e) => got.push(e));
      t.same(got.map((e) => [e.type, e.key]), [
        ['ADDED', '/g/r/ns1/b'],
        ['MODIFIED', '/g/r/ns1/a'],
        ['ADDED', '/g/r/ns2/c'],
        ['DELETED', '/g/r/ns1/b'],
      ], 'replays the events after the resourceVersion under the prefix, synchronously');
      t.ok(got.every((e) => e.rv > from), 'only events after the resourceVersion');

      // live events, including concurrently issued ones
      const live = await Promise.all([
        s.create('/g/r/ns1/d', thing('d')),
        s.create('/g/r2/ns1/y', thing('y')),
        s.update('/g/r/ns2/c', (c) => changed(c, { v: 2 })),
        s.create('/g/r/ns3/e', thing('e')),
      ]);
      const expectLive = [
        ['ADDED', '/g/r/ns1/d', live[0].rv],
        ['MODIFIED', '/g/r/ns2/c', live[2].rv],
        ['ADDED', '/g/r/ns3/e', live[3].rv],
      ];
      if (b.orderedConcurrentWrites) t.same(got.slice(4).map((e) => [e.type, e.key, e.rv]), expectLive, 'then live events under the prefix');
      else t.same(got.slice(4).map((e) => [e.type, e.key, e.rv]), expectLive.sort((x, y) => (x[2] as number) - (y[2] as number)), 'then live events under the prefix, each delivered before its write is acknowledged');
      t.ok(isIncreasing(rvs(got)), 'in resourceVersion order, each once');
      t.equal(new Set(rvs(got)).size, got.length);

      const ns1: StoreEvent[] = [];
      s.watch('/g/r/ns1/', s.oldestWatchableRV(), (e) => ns1.push(e));
      t.ok(ns1.length > 0 && ns1.every((e) => e.key.startsWith('/g/r/ns1/')), 'a namespace prefix gets only its events');

      const fromNow: StoreEvent[] = [];
      s.watch('', s.currentRV(), (e) => fromNow.push(e));
      t.equal(fromNow.length, 0, 'a watch from the current resourceVersion replays nothing');

      h.stop();
      const n = got.length;
      await s.create('/g/r/ns1/f', thing('f'));
      t.equal(got.length, n, 'a stopped watch gets nothing');
      t.equal(fromNow.length, 1, 'other watches continue');

      // a throwing listener breaks neither the write nor other watches
      s.watch('', s.currentRV(), () => {
        throw new Error('broken watcher');
      });
      const ok = await s.create('/g/r/ns1/g', thing('g'));
      t.equal((await s.get('/g/r/ns1/g'))?.rv, ok.rv, 'a throwing listener does not break the write');
      t.equal(fromNow.at(-1)?.rv, ok.rv, 'nor delivery to other watches');
    });

    t.test('writes from watch callbacks are committed', async (t) => {
      const { store: s } = await b.fresh(t);
      // a listener that writes from a microtask (e.g. an async handler): its write must not wait for
      // some unrelated later write to be committed
      let follow: Promise<StoredObject> | undefined;
      s.watch('/g/r/ns/trigger', s.currentRV(), () => queueMicrotask(() => void (follow = s.create('/g/r/ns/follow', thing('follow')))));
      await s.create('/g/r/ns/trigger', thing('trigger'));
      await settles(Promise.resolve(), 'tick');
      t.ok(follow, 'the callback wrote');
      const f = await settles(follow!, 'a create issued from a watch callback').catch((e: Error) => e);
      t.notOk(f instanceof Error, `the write is acknowledged${f instanceof Error ? `: ${f.message}` : ''}`);

      // a listener that writes synchronously, to the key whose event it is handling
      let sync: Promise<StoredObject> | undefined;
      s.watch('/g/r/ns/self', s.currentRV(), (e) => {
        if (e.type === 'ADDED') sync = s.update('/g/r/ns/self', (c) => changed(c, { seen: true }));
      });
      await s.create('/g/r/ns/self', thing('self'));
      const u = await settles(sync!, 'an update issued synchronously from a watch callback').catch((e: Error) => e);
      t.notOk(u instanceof Error, `the write is acknowledged${u instanceof Error ? `: ${u.message}` : ''}`);

      // waiting for a watch to see something, then writing
      let seen!: () => void;
      const sawIt = new Promise<void>((r) => (seen = r));
      s.watch('/g/r/ns/signal', s.currentRV(), () => seen());
      const writer = (async () => {
        await sawIt;
        return s.create('/g/r/ns/reaction', thing('reaction'));
      })();
      await s.create('/g/r/ns/signal', thing('signal'));
      const r = await settles(writer, 'a create issued after awaiting a watch event').catch((e: Error) => e);
      t.notOk(r instanceof Error, `the write is acknowledged${r instanceof Error ? `: ${r.message}` : ''}`);
      t.ok(await s.get('/g/r/ns/reaction'), 'the reaction is stored');
    });

    t.test('too old resourceVersion and history trimming', async (t) => {
      const historySize = 100;
      const maxRound = 7;
      const fresh = await b.fresh(t, { historySize });
      const s = fresh.store;
      const initialOldest = s.oldestWatchableRV();
      let maxKept = 0;
      let lastOldest = 0;
      let consistent = true;
      let n = 0;
      for (let r = 0; r < 120; r++) {
        // rounds of 1..7 concurrent writes, so the history is sampled at every fill level
        await Promise.all(
          Array.from({ length: (r % maxRound) + 1 }, () => {
            const k = `/g/r/ns/o${n % 150}`;
            return n++ < 150 ? s.create(k, thing(k)) : s.update(k, (c) => changed(c, { r }));
          }),
        );
        const oldest = s.oldestWatchableRV();
        const evs = replay(s, '', oldest);
        maxKept = Math.max(maxKept, evs.length);
        consistent &&=
          oldest >= lastOldest &&
          evs.length === s.currentRV() - oldest &&
          isContiguous(rvs(evs)) &&
          (evs.length === 0 || (evs[0].rv === oldest + 1 && evs.at(-1)!.rv === s.currentRV()));
        lastOldest = oldest;
      }
      t.ok(consistent, 'the kept history is always every event from the oldest watchable resourceVersion to the current one');
      t.ok(maxKept <= historySize * 1.1, `at most historySize + 10% events are kept (max ${maxKept})`);
      const kept = replay(s, '', s.oldestWatchableRV()).length;
      t.ok(kept >= historySize, `at least historySize events are kept (${kept})`);

      const oldest = s.oldestWatchableRV();
      t.ok(oldest > initialOldest, 'old events were dropped');
      t.throws(() => s.watch('', initialOldest, () => t.fail('no events from an expired watch')), { code: 'Expired' }, 'a watch from before the history is Expired');
      await expectCode(t, () => s.watch('', oldest - 1, () => {}), 'Expired', 'one before the oldest watchable');
      t.equal(replay(s, '', oldest).length, s.currentRV() - oldest, 'a watch from the oldest watchable resourceVersion works');

      await b.afterHistoryTrimming?.(t, { store: s, reopen: fresh.reopen, historySize, maxRound, maxKept });
    });
  });

  t.test('close', async (t) => {
    const fresh = await b.fresh(t);
    let s = fresh.store;
    await s.create('/g/r/ns/existing', thing('existing'));
    // writes issued before close() are completed and durable
    const inflight = Array.from({ length: 100 }, (_, i) => s.create(`/g/r/ns/o${i}`, thing(`o${i}`)));
    const closing = s.close();
    await expectCode(t, s.create('/g/r/ns/late', thing('late')), 'Unavailable', 'create after close()');
    await expectCode(t, s.update('/g/r/ns/existing', (c) => changed(c, { v: 1 })), 'Unavailable', 'update after close()');
    await expectCode(t, s.delete('/g/r/ns/existing'), 'Unavailable', 'delete after close()');
    const done = await Promise.allSettled(inflight);
    await closing;
    t.ok(done.every((r) => r.status === 'fulfilled'), 'writes issued before close() are acknowledged');
    const lastRV = Math.max(...done.map((r) => (r.status === 'fulfilled' ? r.value.rv : -1)));
    await expectCode(t, s.create('/g/r/ns/later', thing('later')), 'Unavailable', 'create after close() has finished');
    await s.close();
    t.pass('closing twice is harmless');

    s = await fresh.reopen();
    t.equal(s.currentRV(), lastRV, 'no resourceVersion was used by the rejected writes');
    t.equal((await s.list('/g/r/ns/')).items.length, 101, 'the acknowledged writes are stored');
    t.equal(await s.get('/g/r/ns/late'), undefined, 'the rejected writes are not');
    t.same((await s.get('/g/r/ns/existing'))?.obj.spec, {}, 'the rejected update did not apply');
  });
}
