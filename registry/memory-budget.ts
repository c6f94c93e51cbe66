// One budget for the bytes of archive content the reconcilers hold in memory at once (inflated
// snapshot and resource archives, issue 15): a reconcile that reads an archive takes a lease for
// its inflated size first, and waits (FIFO) while the others hold the budget; its leases are given
// back when its reconcile ends. A reconcile that already holds a lease is never made to wait for
// another (two waiting on each other would never finish): it may take the budget past its total,
// by at most one archive (MAX_ARCHIVE_IN_MEMORY_BYTES) per input it reads.
import { AsyncLocalStorage } from 'node:async_hooks';
import { OciError } from './client.js';

/** Total bytes of inflated archive content held by all reconciles together. */
export const MEMORY_BUDGET_BYTES = 512 << 20;
/** Largest inflated archive read into memory. */
export const MAX_ARCHIVE_IN_MEMORY_BYTES = 256 << 20;

export class ByteBudget {
  used = 0;
  private waiting: { n: number; go: () => void }[] = [];

  constructor(readonly total: number) {}

  get queued(): number {
    return this.waiting.length;
  }

  /** Takes `n` bytes, waiting for them unless `noWait`; returns the release function (idempotent). */
  async acquire(n: number, noWait = false): Promise<() => void> {
    if (n > this.total) throw new OciError('ARCHIVE_TOO_LARGE', `archive content of ${n} bytes is over the in-memory limit of ${this.total} bytes`);
    if (!noWait && (this.waiting.length > 0 || this.used + n > this.total)) await new Promise<void>((go) => this.waiting.push({ n, go }));
    else this.used += n;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= n;
      this.wake();
    };
  }

  private wake() {
    while (this.waiting.length && this.used + this.waiting[0].n <= this.total) {
      const w = this.waiting.shift()!;
      this.used += w.n;
      w.go();
    }
  }
}

export const memoryBudget = new ByteBudget(MEMORY_BUDGET_BYTES);

const leases = new AsyncLocalStorage<(() => void)[]>();

/** Runs `fn` (one reconcile) with its own leases, all released when it settles. */
export async function withMemoryLeases<T>(fn: () => Promise<T>): Promise<T> {
  const held: (() => void)[] = [];
  try {
    return await leases.run(held, fn);
  } finally {
    for (const release of held) release();
  }
}

/**
 * Takes a lease of `n` bytes for the current reconcile (held until it ends). Outside a reconcile
 * (the CLI, tests) there is nothing to bound and nothing is taken.
 */
export async function leaseMemory(n: number, budget = memoryBudget): Promise<void> {
  const held = leases.getStore();
  if (!held || n === 0) return;
  held.push(await budget.acquire(n, held.length > 0));
}
