// The one byte budget (apiserver/byte-budget.ts) as the HTTP side uses it: request bodies and
// answers in flight (apiserver/limits.ts). The memory budget's rules are tested in archive-limits.
import { EventEmitter } from 'node:events';
import t from 'tap';
import { ByteBudget } from '../apiserver/byte-budget.js';

/** A response-like thing that closes. */
function closable() {
  const e = new EventEmitter() as EventEmitter & { destroyed: boolean; writableFinished: boolean };
  e.destroyed = false;
  e.writableFinished = false;
  return Object.assign(e, { close: () => ((e.destroyed = true), e.emit('close')) });
}
const tick = () => new Promise((r) => setImmediate(r));

t.test('tryTake and take: FIFO, cut to the total, release idempotent, shrink', async (t) => {
  const b = new ByteBudget(100);
  const a = b.tryTake(60)!;
  t.ok(a);
  t.equal(b.tryTake(50), undefined, 'does not fit: undefined (a 429)');
  const order: string[] = [];
  const w1 = b.take(50).then((l) => (order.push('50'), l));
  const w2 = b.take(10).then((l) => (order.push('10'), l));
  await tick();
  t.equal(b.tryTake(1), undefined, 'others wait: nothing jumps the queue');
  t.equal(b.waiting, 2);
  a();
  a();
  const [l1, l2] = await Promise.all([w1, w2]);
  t.same(order, ['50', '10']);
  t.equal(b.used, 60);
  l1.shrink(20);
  t.equal(b.used, 30, 'shrink gives back what is over');
  l1.shrink(40);
  t.equal(b.used, 30, 'shrink never grows');
  l1();
  l2();
  t.equal(b.used, 0);
  const big = b.tryTake(1000)!;
  t.equal(big.bytes, 100, 'a lease over the total is cut to it');
  big();
  t.equal(b.peak, 100);
  const none = new ByteBudget(0);
  t.ok(none.tryTake(1 << 30), 'total 0: no bound');
});

t.test('a waiter whose response closes leaves the queue, and the one behind it goes when it fits', async (t) => {
  const b = new ByteBudget(100);
  const held = b.tryTake(70)!;
  const res = closable();
  const gone = b.take(80, res);
  const behind = b.take(20);
  let got = false;
  void behind.then(() => (got = true));
  await tick();
  t.equal(got, false, 'behind the first waiter');
  res.close();
  await t.rejects(gone, /closed while it waited/);
  await tick();
  t.equal(got, true, 'the next waiter fits (70 + 20) and is not left waiting for a release');
  t.equal(b.waiting, 0);
  (await behind)();
  held();
  t.equal(b.used, 0);
  const closed = closable();
  closed.close();
  b.tryTake(100);
  await t.rejects(b.take(1, closed), /closed while it waited/, 'already closed: rejected at once');
  const ac = new AbortController();
  const aborted = b.take(1, ac.signal);
  ac.abort();
  await t.rejects(aborted, /closed while it waited/, 'an AbortSignal too');
});
