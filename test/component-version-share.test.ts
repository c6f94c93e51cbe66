// A component version read under way is shared only by reconciles that hold nothing of the memory
// budget (reconcilers/components.ts): an Action holding its input snapshot that waited on a
// Source's read, while that read waited for the budget the Action held, waited for ever.
import t from 'tap';
import type { ComponentVersion } from '../ocm/repository.js';
import { componentVersion } from '../reconcilers/components.js';
import { leaseMemory, memoryBudget, setMemoryBudget, withMemoryLeases } from '../registry/memory-budget.js';
import { OciError } from '../registry/client.js';

t.test('a holder does not wait on a read that waits for what it holds', async (t) => {
  setMemoryBudget(100);
  const cv = { bytes: 0 } as unknown as ComponentVersion;
  const read = (n: number) => async () => (await leaseMemory(n), cv);
  let holderHolds!: () => void;
  const holds = new Promise<void>((r) => (holderHolds = r));
  let sourceReads!: () => void;
  const reads = new Promise<void>((r) => (sourceReads = r));
  // The Action: holds 70 (its input), then needs the component version (20 more would fit).
  const action = withMemoryLeases(async () => {
    await leaseMemory(70);
    holderHolds();
    await reads;
    return componentVersion('k', read(20));
  });
  // The Source: holds nothing, reads the component version (40: waits while the Action holds 70).
  await holds;
  const source = withMemoryLeases(async () => {
    const p = componentVersion('k', read(40));
    sourceReads();
    return p;
  });
  const outcome = (p: Promise<unknown>) => p.then(() => 'ok', (e) => (e instanceof OciError ? e.code : String(e)));
  let timer!: NodeJS.Timeout;
  const timeout = new Promise((r) => (timer = setTimeout(() => r('hung'), 3000)));
  const got = await Promise.race([Promise.all([outcome(action), outcome(source)]), timeout]);
  clearTimeout(timer);
  t.not(got, 'hung', 'neither waits for ever');
  t.same(got, ['ok', 'ok'], 'the Action reads on its own, then the Source');
  t.equal(memoryBudget.used, 0, 'all given back');
  t.equal(memoryBudget.waiting, 0);
});
