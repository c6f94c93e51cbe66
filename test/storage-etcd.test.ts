// EtcdStore against a real etcd (test/helpers/etcd.ts starts one on loopback): the shared Store
// conformance suite, then what only a distributed store has: several processes on one etcd
// (watches see each other's writes, in order; conflicting updates are retried, never lost),
// compaction (explicit and kube-apiserver's periodic compactor) making old lists and watches
// Expired, revisions written outside the store's prefix, a history that starts when a process
// starts, TLS with client certificates, and a watch that survives an etcd restart.
import t from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import { createCA, createClientCert, createServerCert, newKeys } from '../certs/pki.js';
import { EtcdStore, type EtcdStoreOptions } from '../storage/etcd.js';
import { type StoreEvent, StoreError, type StoredObject } from '../storage/store.js';
import { startEtcd, type TestEtcd } from './helpers/etcd.js';
import {
  type Backend,
  changed,
  expectCode,
  isIncreasing,
  keysOf,
  replay,
  rvs,
  settles,
  storeConformance,
  type Tap,
  thing,
} from './helpers/store-conformance.js';

const etcd = await startEtcd();
t.teardown(() => etcd.stop());

let prefixes = 0;
const newPrefix = () => `/ocm-test-${process.pid}-${prefixes++}`;

type Opts = Partial<EtcdStoreOptions>;

/** A store on the test etcd, closed when the test ends; no compactor unless asked for. */
async function openStore(t: Tap, prefix: string, opts: Opts = {}, on: TestEtcd = etcd): Promise<EtcdStore> {
  const s = await EtcdStore.open({ endpoints: on.endpoints, prefix, compactionIntervalMs: 0, ...opts });
  t.teardown(() => s.close());
  return s;
}

/** Waits until cond() holds (polling), failing the test with `what` if it does not within ms. */
async function until(t: Tap, cond: () => boolean | Promise<boolean>, what: string, ms = 10000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.fail(`${what} (not within ${ms}ms)`);
  return false;
}

const raw = new Etcd3({ hosts: etcd.endpoints });
t.teardown(() => raw.close());

const backend: Backend = {
  name: 'etcd',
  async fresh(t, opts) {
    const prefix = newPrefix();
    return { store: await openStore(t, prefix, opts), reopen: (o) => openStore(t, prefix, o ?? opts) };
  },
  startsAtZero: false,
  orderedConcurrentWrites: false,
};

t.test('conformance', async (t) => storeConformance(t, backend));

t.test('two processes on one etcd', async (t) => {
  const prefix = newPrefix();
  const a = await openStore(t, prefix);
  const b = await openStore(t, prefix);

  const seenByB: StoreEvent[] = [];
  b.watch('/g/r/', b.currentRV(), (e) => seenByB.push(e));
  const x = await a.create('/g/r/ns/x', thing('x', { n: 1 }));
  t.equal((await b.get('/g/r/ns/x'))?.json, x.json, 'a get through the other process sees the write at once (a linearizable read)');
  const listed = await b.list('/g/r/');
  t.same(keysOf(listed.items), ['/g/r/ns/x'], 'so does a list');
  t.ok(b.currentRV() >= listed.rv, "and afterwards the other process's currentRV has reached the list's resourceVersion");
  const x2 = await a.update('/g/r/ns/x', (c) => changed(c, { n: 2 }));
  const y = await a.create('/g/r/ns/y', thing('y'));
  await a.create('/g/other/ns/z', thing('z'));
  const xDel = await a.delete('/g/r/ns/x');
  await until(t, () => b.currentRV() >= xDel.rv, "the other process's watch catches up");
  t.same(
    seenByB.map((e) => [e.type, e.key, e.rv, e.object.json]),
    [
      ['ADDED', '/g/r/ns/x', x.rv, x.json],
      ['MODIFIED', '/g/r/ns/x', x2.rv, x2.json],
      ['ADDED', '/g/r/ns/y', y.rv, y.json],
      ['DELETED', '/g/r/ns/x', xDel.rv, xDel.json],
    ],
    "a watch on one process gets the other's writes, in order, with the JSON they returned",
  );
  t.equal(seenByB[1].prev?.json, x.json, 'MODIFIED carries the previous state');
  t.equal(seenByB[3].prev?.json, x2.json, 'DELETED carries the last state as prev too');

  // both write concurrently: both watches see the same sequence
  const onA: StoreEvent[] = [];
  const onB: StoreEvent[] = [];
  const from = Math.max(a.currentRV(), b.currentRV());
  a.watch('/g/r/mix/', from, (e) => onA.push(e));
  b.watch('/g/r/mix/', from, (e) => onB.push(e));
  const writes = await Promise.all([
    ...Array.from({ length: 50 }, (_, i) => a.create(`/g/r/mix/a${i}`, thing(`a${i}`))),
    ...Array.from({ length: 50 }, (_, i) => b.create(`/g/r/mix/b${i}`, thing(`b${i}`))),
  ]);
  const last = Math.max(...rvs(writes));
  await until(t, () => a.currentRV() >= last && b.currentRV() >= last, 'both watches catch up');
  t.equal(onA.length, 100, 'every write reaches the watch on the first process');
  t.same(rvs(onB), rvs(onA), 'and the second, in the same order');
  t.ok(isIncreasing(rvs(onA)), 'in resourceVersion order');
  t.same(new Set(rvs(onA)), new Set(rvs(writes)), 'one event per write');

  // concurrent creates of one key from both processes: one wins
  const racing = await Promise.allSettled([a, b, a, b].map((s, i) => s.create('/g/r/race/one', thing('one', { i }))));
  t.equal(racing.filter((r) => r.status === 'fulfilled').length, 1, 'one of the concurrent creates through two processes succeeds');
  t.ok(racing.every((r) => r.status === 'fulfilled' || (r.reason instanceof StoreError && r.reason.code === 'AlreadyExists')), 'the others get AlreadyExists');
});

t.test('conflicting updates from two processes are retried, never lost', async (t) => {
  const prefix = newPrefix();
  const stores = [await openStore(t, prefix), await openStore(t, prefix), await openStore(t, prefix)];
  await stores[0].create('/g/r/ns/counter', thing('counter', { n: 0 }));
  const PER = 60;
  let calls = 0;
  const results = await Promise.all(
    stores.flatMap((s) =>
      Array.from({ length: PER }, () =>
        s.update('/g/r/ns/counter', (cur) => {
          calls++;
          return changed(cur, { n: (cur.obj.spec as { n: number }).n + 1 });
        }),
      ),
    ),
  );
  const total = PER * stores.length;
  t.same((await stores[1].get('/g/r/ns/counter'))?.obj.spec, { n: total }, `${total} read-modify-write updates through three processes all apply`);
  t.same(
    results.map((r) => (r.obj.spec as { n: number }).n).sort((x, y) => x - y),
    Array.from({ length: total }, (_, i) => i + 1),
    'each update applied to the state left by exactly one other',
  );
  t.ok(calls > total, `conflicts were retried with the fresh object (${calls} tryUpdate calls for ${total} updates)`);

  // deletes (with a check) racing updates from other processes: the check runs again on the fresh
  // state, and an update never brings a deleted object back
  let retriedChecks = 0;
  for (let i = 0; i < 10; i++) {
    const k = `/g/r/ns/race${i}`;
    await stores[0].create(k, thing(k, { n: 0 }));
    const checked: number[] = [];
    const [del, upd] = await Promise.allSettled([
      stores[0].delete(k, (cur) => void checked.push((cur.obj.spec as { n: number }).n)),
      stores[1].update(k, (cur) => changed(cur, { n: 1000 })),
    ]);
    t.equal(del.status, 'fulfilled', `race ${i}: the delete succeeds`);
    t.ok(upd.status === 'fulfilled' || (upd.reason instanceof StoreError && upd.reason.code === 'NotFound'), `race ${i}: the update succeeds or finds the object gone`);
    t.equal(await stores[2].get(k), undefined, `race ${i}: the object is gone`);
    if (del.status === 'fulfilled' && upd.status === 'fulfilled') {
      t.same(del.value.obj.spec, { n: 1000 }, `race ${i}: the delete returns the state it deleted (after the update)`);
      t.equal(checked.at(-1), 1000, `race ${i}: the check saw that state`);
    }
    if (checked.length > 1) retriedChecks++;
  }
  t.comment(`${retriedChecks} of 10 deletes re-ran their check after a conflict`);
});

t.test('compaction', async (t) => {
  t.test('explicit', async (t) => {
    const s = await openStore(t, newPrefix());
    for (let i = 0; i < 5; i++) await s.create(`/g/r/ns/o${i}`, thing(`o${i}`));
    const rv0 = s.currentRV();
    const page1 = await s.list('/g/r/', { limit: 2 });
    for (let i = 0; i < 5; i++) await s.update(`/g/r/ns/o${i}`, (c) => changed(c, { v: 1 }));
    const rv1 = s.currentRV();
    t.equal((await s.list('/g/r/', { atRV: rv0 })).items.length, 5, 'before compaction an old resourceVersion can be listed at');
    await s.compact(rv1);
    await expectCode(t, s.list('/g/r/', { atRV: rv0 }), 'Expired', 'a list at a compacted resourceVersion');
    await expectCode(t, s.list('/g/r/', { atRV: page1.rv, startAfter: page1.lastKey, limit: 2 }), 'Expired', 'the next page of a list read at a compacted resourceVersion');
    t.equal((await s.list('/g/r/', { atRV: rv1 })).items.length, 5, 'the compaction revision itself can be listed at');
    t.throws(() => s.watch('/g/r/', rv0, () => t.fail('no events')), { code: 'Expired' }, 'a watch from a compacted resourceVersion is Expired (synchronously)');
    t.equal(s.oldestWatchableRV(), rv1 - 1, 'the oldest watchable resourceVersion is the one before the compaction revision');
    t.same(rvs(replay(s, '/g/r/', rv1 - 1)), [rv1], 'a watch from there works');
  });

  t.test('by another client', async (t) => {
    const prefix = newPrefix();
    const s = await openStore(t, prefix);
    await s.create('/g/r/ns/a', thing('a'));
    const rv0 = s.currentRV();
    await s.update('/g/r/ns/a', (c) => changed(c, { v: 1 }));
    await raw.kv.compact({ revision: s.currentRV() });
    await expectCode(t, s.list('/g/r/', { atRV: rv0 }), 'Expired', 'a list at a resourceVersion compacted by someone else');
    const later = await openStore(t, prefix);
    t.equal(later.oldestWatchableRV(), later.currentRV(), "a process's history starts when it opens");
    t.throws(() => later.watch('/g/r/', rv0, () => {}), { code: 'Expired' }, 'a watch from before is Expired');
  });

  t.test("kube-apiserver's periodic compactor, shared by two processes", async (t) => {
    const prefix = newPrefix();
    const a = await openStore(t, prefix, { compactionIntervalMs: 150 });
    const b = await openStore(t, prefix, { compactionIntervalMs: 150 });
    await a.create('/g/r/ns/x', thing('x'));
    const rv0 = a.currentRV();
    let v = 0;
    await until(
      t,
      async () => {
        await a.update('/g/r/ns/x', (c) => changed(c, { v: v++ }));
        return a.oldestWatchableRV() > rv0 && b.oldestWatchableRV() > rv0;
      },
      'both processes learn of a compaction past the first write',
    );
    await expectCode(t, b.list('/g/r/', { atRV: rv0 }), 'Expired', 'a list from before the compaction');
    t.throws(() => b.watch('/g/r/', rv0, () => {}), { code: 'Expired' }, 'a watch from before it');
    // the compactor's bookkeeping key is outside the prefix: no events, but the cluster revision moves
    const events: StoreEvent[] = [];
    a.watch('', a.currentRV(), (e) => events.push(e));
    await new Promise((r) => setTimeout(r, 400));
    t.same(events, [], 'compaction writes no objects');
    const l = await a.list('/g/r/');
    t.ok(a.currentRV() >= l.rv, `a list at the cluster's revision (${l.rv}) lets currentRV (${a.currentRV()}) catch up with it`);
  });
});

t.test('revisions outside the prefix', async (t) => {
  const s = await openStore(t, newPrefix());
  await s.create('/g/r/ns/a', thing('a'));
  const put = await raw.put('/not-ours/key').value('x').exec();
  const cluster = Number(put.header.revision);
  t.ok(cluster > s.currentRV(), 'someone else wrote outside the prefix');
  const l = await s.list('/g/r/');
  t.equal(l.rv, cluster, "a list is read at the cluster's current revision");
  t.ok(s.currentRV() >= cluster, "and brings currentRV up to it (a progress notification), so bookmarks and 'not older than' checks agree");
  await raw.put('/not-ours/key').value('y').exec();
  const synced = await s.syncRV();
  t.ok(synced > cluster && s.currentRV() >= synced, 'syncRV() does the same without listing');
  t.equal((await s.list('/g/r/', { atRV: synced })).items.length, 1, 'a list at that revision works');
  await expectCode(t, s.list('/g/r/', { atRV: synced + 100 }), 'Unavailable', 'a list beyond the cluster revision');
  const events: StoreEvent[] = [];
  s.watch('/g/r/', l.rv, (e) => events.push(e));
  const b = await s.create('/g/r/ns/b', thing('b'));
  t.same(rvs(events), [b.rv], "a watch from a list's revision gets what follows");
});

t.test('a process starts its history when it opens', async (t) => {
  const prefix = newPrefix();
  const first = await openStore(t, prefix);
  await first.create('/g/r/ns/a', thing('a', { v: 1 }));
  const rv0 = first.currentRV();
  const then = await first.list('/g/r/');
  await first.update('/g/r/ns/a', (c) => changed(c, { v: 2 }));
  await first.create('/g/r/ns/b', thing('b'));

  const second = await openStore(t, prefix);
  t.equal(second.currentRV(), first.currentRV(), 'a new process starts at the cluster revision');
  t.equal(second.oldestWatchableRV(), second.currentRV(), 'with an empty history');
  await expectCode(t, () => second.watch('/g/r/', rv0, () => {}), 'Expired', 'a watch from before it opened');
  const old = await second.list('/g/r/', { atRV: rv0 });
  t.same(old.items.map((o) => o.json), then.items.map((o) => o.json), 'but etcd still lists the state of before (until compacted)');

  // a watch from a resourceVersion not reached yet gets only what comes after it
  const future: StoreEvent[] = [];
  second.watch('', second.currentRV() + 1, (e) => future.push(e));
  await second.create('/g/r/ns/c', thing('c'));
  const d = await second.create('/g/r/ns/d', thing('d'));
  t.same(rvs(future), [d.rv], 'a watch from a future resourceVersion starts after it');
});

t.test('prefixes are separate stores', async (t) => {
  const base = newPrefix();
  const one = await openStore(t, base);
  const two = await openStore(t, base + '-2');
  const slash = await openStore(t, base + '/'); // a trailing slash is the same prefix
  const events: StoreEvent[] = [];
  one.watch('', one.currentRV(), (e) => events.push(e));
  await one.create('/g/r/ns/a', thing('a'));
  await two.create('/g/r/ns/b', thing('b'));
  t.same(keysOf((await one.list('')).items), ['/g/r/ns/a'], 'a store lists only its own prefix');
  t.same(keysOf((await two.list('')).items), ['/g/r/ns/b']);
  t.same(keysOf((await slash.list('')).items), ['/g/r/ns/a'], 'a trailing slash names the same prefix');
  t.same(events.map((e) => e.key), ['/g/r/ns/a'], 'and watches only its own prefix');
  t.same((await one.list('g/r/')).items, [], 'a prefix not starting with / matches no key');
  await t.rejects(one.create('g/r/ns/x', thing('x')), /must start with '\/'/, 'and such a key cannot be written');
  const stored = await raw.get(`${base}/g/r/ns/a`).string();
  t.ok(stored && JSON.parse(stored).metadata.resourceVersion === '', 'etcd holds the JSON with an empty resourceVersion');
});

t.test('TLS with client certificates', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ocm-etcd-tls-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const ca = createCA(await newKeys(), 'test etcd CA', 1);
  const server = createServerCert(ca, await newKeys(), 'etcd', ['127.0.0.1', 'localhost'], 1);
  const client = createClientCert(ca, await newKeys(), { commonName: 'ocm-apiserver' }, 1);
  const file = (name: string, pem: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, pem, { mode: 0o600 });
    return p;
  };
  const tls = {
    caFile: file('ca.crt', ca.certPem),
    certFile: file('server.crt', server.certPem),
    keyFile: file('server.key', server.keyPem),
    clientCertFile: file('client.crt', client.certPem),
    clientKeyFile: file('client.key', client.keyPem),
  };
  const secure = await startEtcd({ tls });
  t.teardown(() => secure.stop());
  t.match(secure.endpoints[0], /^https:/);

  const s = await openStore(t, newPrefix(), { tls: { ca: tls.caFile, cert: tls.clientCertFile, key: tls.clientKeyFile } }, secure);
  const events: StoreEvent[] = [];
  s.watch('', s.currentRV(), (e) => events.push(e));
  const a = await s.create('/g/r/ns/a', thing('a'));
  t.equal((await s.get('/g/r/ns/a'))?.json, a.json, 'files: writes and reads over TLS');
  t.same(rvs(events), [a.rv], 'and the watch');

  const p = await openStore(t, newPrefix(), { tls: { ca: ca.certPem, cert: client.certPem, key: client.keyPem } }, secure);
  await p.create('/g/r/ns/b', thing('b'));
  t.ok(await p.get('/g/r/ns/b'), 'PEM text works as well as files');

  const noCert = await EtcdStore.open({ endpoints: secure.endpoints, tls: { ca: tls.caFile }, requestTimeoutMs: 3000, compactionIntervalMs: 0 }).then(
    (st) => (void st.close(), undefined),
    (e: unknown) => e,
  );
  t.ok(noCert instanceof StoreError && noCert.code === 'Unavailable', `without a client certificate, open fails as Unavailable (${(noCert as Error)?.message})`);
});

t.test('the watch survives an etcd restart', async (t) => {
  const s = await openStore(t, newPrefix());
  const events: StoreEvent[] = [];
  s.watch('', s.currentRV(), (e) => events.push(e));
  const acked: StoredObject[] = [];
  for (let i = 0; i < 3; i++) acked.push(await s.create(`/g/r/ns/before${i}`, thing(`before${i}`)));
  await etcd.restart();
  // writes may fail while the client reconnects; retry until one goes through
  const retry = async (fn: () => Promise<StoredObject>) => {
    for (let i = 0; ; i++) {
      try {
        return await fn();
      } catch (e) {
        if (!(e instanceof StoreError) || e.code !== 'Unavailable' || i > 100) throw e;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  };
  for (let i = 0; i < 3; i++) {
    const k = `/g/r/ns/after${i}`;
    acked.push(await settles(retry(() => s.create(k, thing(`after${i}`)).catch(async (e) => {
      // a create whose answer was lost may have been applied
      if (e instanceof StoreError && e.code === 'AlreadyExists') return (await s.get(k))!;
      throw e;
    })), 'a write after the restart', 30000));
  }
  t.same(rvs(events), rvs(acked), 'the watch delivered every write, across the restart, in order');
  t.ok(events.every((e, i) => e.object.json === acked[i].json));
});

/** A TCP proxy to etcd that can cut every connection and refuse new ones for a while. */
async function cuttableProxy(t: Tap, target: URL) {
  const net = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  let server: import('node:net').Server | undefined;
  let port = 0;
  const listen = () =>
    new Promise<void>((resolve) => {
      server = net.createServer((c) => {
        const up = net.connect(Number(target.port), target.hostname);
        for (const s of [c, up]) {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
          s.on('error', () => s.destroy());
        }
        c.pipe(up);
        up.pipe(c);
        c.on('close', () => up.destroy());
        up.on('close', () => c.destroy());
      });
      server.listen(port, '127.0.0.1', () => {
        port = (server!.address() as import('node:net').AddressInfo).port;
        resolve();
      });
    });
  const cut = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server!.close(() => resolve());
    });
  await listen();
  t.teardown(() => (server?.listening ? cut() : undefined));
  return { url: () => `http://127.0.0.1:${port}`, cut, restore: listen };
}

t.test('history compacted while the watch was cut off', async (t) => {
  const proxy = await cuttableProxy(t, new URL(etcd.endpoints[0]));
  const prefix = newPrefix();
  const errors: Error[] = [];
  const s = await openStore(t, prefix, { endpoints: [proxy.url()], onError: (e) => errors.push(e) });
  await s.create('/g/r/ns/a', thing('a'));
  const from = s.currentRV();
  const got: StoreEvent[] = [];
  let watchError: StoreError | undefined;
  s.watch('/g/r/', from, (e) => got.push(e), (err) => (watchError = err));

  await proxy.cut();
  // meanwhile another process writes, and etcd compacts past those writes
  const other = await openStore(t, prefix);
  await other.create('/g/r/ns/b', thing('b'));
  await other.update('/g/r/ns/a', (c) => changed(c, { v: 1 }));
  const compactedTo = other.currentRV();
  await other.compact(compactedTo);
  await proxy.restore();

  await until(t, () => watchError !== undefined, 'the watch is told that it missed events', 30000);
  t.equal(watchError?.code, 'Expired', 'as Expired (the API ends such a watch with 410 Gone, and clients relist)');
  t.same(got, [], 'and it was given nothing it could not order');
  t.ok(errors.some((e) => /compacted/.test(e.message)), 'the store reported it');
  t.ok(s.oldestWatchableRV() >= compactedTo - 1, 'the history starts again after the compaction');
  t.throws(() => s.watch('/g/r/', from, () => {}), { code: 'Expired' }, 'a new watch from before it is Expired');

  // and the store carries on
  const later: StoreEvent[] = [];
  s.watch('/g/r/', s.oldestWatchableRV(), (e) => later.push(e));
  const c = await until(
    t,
    () => s.create('/g/r/ns/c', thing('c')).then(
      () => true,
      (e) => e instanceof StoreError && e.code === 'AlreadyExists', // an earlier attempt went through after all
    ),
    'writes work again',
    30000,
  );
  t.ok(c);
  t.same(later.map((e) => e.key).filter((k) => k === '/g/r/ns/c'), ['/g/r/ns/c'], 'and new watches get new events');
  t.equal((await s.list('/g/r/')).items.length, 3, 'lists see every object');
});
