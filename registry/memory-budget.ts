// One budget for the bytes of upstream content the reconcilers hold in memory at once (issue 15):
// compressed blobs read whole, inflated archive content, archives packed in memory. A reconcile
// leases each amount before it holds the bytes, and never holds more than it leased; its leases are
// given back when its reconcile ends, whichever way it ends. The budget is a hard cap:
//  - a reconcile's first lease waits its turn (FIFO) while the others hold the budget;
//  - a reconcile that already holds a lease and needs more takes it at once if it fits, else waits
//    ahead of the queue, but only one such reconcile waits at a time (a second one fails with
//    MEMORY_BUDGET_BUSY, retried with backoff): holders that wait on nothing always finish, so two
//    reconciles never wait on each other;
//  - a reconcile whose leases together would be more than the whole budget fails (ARCHIVE_TOO_LARGE).
import { AsyncLocalStorage } from 'node:async_hooks';
import { OciError } from './client.js';

/** Default total bytes of upstream content held by all reconciles together (`--memory-budget-mib`). */
export const MEMORY_BUDGET_BYTES = 512 << 20;
/** Largest single piece of content (an inflated archive, a blob) read into memory. */
export const MAX_ARCHIVE_IN_MEMORY_BYTES = 256 << 20;

export class ByteBudget {
  used = 0;
  /** The most ever leased at once. */
  peak = 0;
  private waiting: { n: number; go: () => void }[] = [];
  private grower: { n: number; go: () => void } | undefined;

  constructor(public total: number) {}

  get queued(): number {
    return this.waiting.length + (this.grower ? 1 : 0);
  }

  /**
   * Takes `n` bytes for a holder that already holds `holding` (0: a first lease, which waits FIFO);
   * returns the release function (idempotent).
   */
  async acquire(n: number, holding = 0): Promise<() => void> {
    if (holding + n > this.total) {
      throw new OciError('ARCHIVE_TOO_LARGE', `content of ${holding + n} bytes held in memory at once (${n} more) is over the in-memory budget of ${this.total} bytes`);
    }
    if (holding === 0) {
      if (this.waiting.length > 0 || this.grower || this.used + n > this.total) await new Promise<void>((go) => this.waiting.push({ n, go }));
      else this.take(n);
    } else if (this.used + n <= this.total) this.take(n);
    else if (this.grower) {
      throw new OciError('MEMORY_BUDGET_BUSY', `${n} more bytes of content in memory: the in-memory budget of ${this.total} bytes is in use by other reconciles`, { retryable: true });
    } else await new Promise<void>((go) => (this.grower = { n, go }));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.used -= n;
      this.wake();
    };
  }

  private take(n: number) {
    this.used += n;
    if (this.used > this.peak) this.peak = this.used;
  }

  private wake() {
    if (this.grower) {
      if (this.used + this.grower.n > this.total) return; // nobody goes ahead of it
      const g = this.grower;
      this.grower = undefined;
      this.take(g.n);
      g.go();
    }
    while (this.waiting.length && this.used + this.waiting[0].n <= this.total) {
      const w = this.waiting.shift()!;
      this.take(w.n);
      w.go();
    }
  }
}

export const memoryBudget = new ByteBudget(MEMORY_BUDGET_BYTES);

/** Sets the total (the server's `--memory-budget-mib`), before any reconcile runs. */
export function setMemoryBudget(bytes: number) {
  memoryBudget.total = bytes;
}

type Held = { bytes: number; releases: (() => void)[] };
const leases = new AsyncLocalStorage<Held>();

/** Runs `fn` (one reconcile) with its own leases, all released when it settles. */
export async function withMemoryLeases<T>(fn: () => Promise<T>): Promise<T> {
  const held: Held = { bytes: 0, releases: [] };
  try {
    return await leases.run(held, fn);
  } finally {
    for (const release of held.releases) release();
  }
}

/**
 * Takes a lease of `n` bytes for the current reconcile (held until it ends), before the bytes are
 * held. Outside a reconcile (the CLI, tests) there is nothing to bound and nothing is taken.
 */
export async function leaseMemory(n: number, budget = memoryBudget): Promise<void> {
  const held = leases.getStore();
  if (!held || n === 0) return;
  held.releases.push(await budget.acquire(n, held.bytes));
  held.bytes += n;
}

/** Whether the caller runs inside a reconcile (whose content is bounded by the budget). */
export const inReconcile = (): boolean => leases.getStore() !== undefined;
