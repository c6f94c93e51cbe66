// One budget for the bytes of upstream content the process holds in memory (issue 15): compressed
// blobs read whole, inflated archive content, archives packed in memory, manifests, OCM configs,
// descriptor layers, tag lists, token responses and what parsing them makes, and the caches that
// keep any of it. A reconcile leases each amount before it holds the bytes, and never holds more
// than it leased; its leases are given back when its reconcile ends, whichever way it ends (a lease
// may be made smaller before, when less was read than leased). The budget is a hard cap:
//  - a reconcile's first lease waits its turn (FIFO) while the others hold the budget;
//  - a reconcile that already holds a lease and needs more takes it at once if it fits, else waits
//    ahead of the queue (the one holding most first); when every reconcile that holds a lease
//    waits for more, the one holding least fails with MEMORY_BUDGET_BUSY (its leases given back,
//    retried with backoff): holders that wait on nothing always finish, so reconciles never wait
//    on each other;
//  - a reconcile whose leases together would be more than the whole budget fails (ARCHIVE_TOO_LARGE).
// Caches (BudgetCache) hold what is left over: an entry is kept only while it fits beside the
// leases, and entries are evicted (least recently used first) before a lease waits. A value a
// reconcile takes from a cache is leased by the reconcile too, so an evicted value still in use
// is counted. Leases plus cached bytes are at most the total, at every moment.
import { AsyncLocalStorage } from 'node:async_hooks';
import { OciError } from './client.js';

/** Default total bytes of upstream content held by all reconciles together (`--memory-budget-mib`). */
export const MEMORY_BUDGET_BYTES = 512 << 20;
/** Largest single piece of content (an inflated archive, a blob) read into memory. */
export const MAX_ARCHIVE_IN_MEMORY_BYTES = 256 << 20;
/**
 * Heap that JSON.parse or YAML.parse makes of one byte of text, at most: `[{},{},...]` is 22 bytes
 * per byte as JSON, 23 as YAML flow, `[[[]],...]` 20, `- {}` lines 15, strings and numbers 3 to 6
 * (node 20, measured after a full GC). Leased before an upstream text is parsed, per copy held.
 */
export const PARSED_HEAP_PER_BYTE = 32;

/**
 * Bytes of memory parsing YAML holds per byte of text, leased from the in-memory budget before a
 * ConfigData, a file to edit or a component descriptor is parsed on the event loop (the `yaml`
 * package's documents: about 40 per byte, 116 MiB for 3 MiB of manifests).
 */
export const YAML_HEAP_PER_BYTE = 48;

/** A lease: `shrink` gives back what was leased and not held (idempotent, never grows). */
export interface Lease {
  readonly bytes: number;
  shrink(to: number): void;
}

const NO_LEASE: Lease = { bytes: 0, shrink() {} };

/** What one reconcile holds of the budget (its grants add up to `bytes`). */
export interface Holder {
  bytes: number;
}

/** A grant of the budget: call it to give back what it holds then (idempotent). */
type Grant = (() => void) & { n: number; holder?: Holder };

type Grower = { n: number; holder: Holder; go: () => void; fail: (e: Error) => void };

export class ByteBudget {
  /** Bytes leased by reconciles now. */
  used = 0;
  /** The most ever leased at once. */
  peak = 0;
  /** Bytes held by the caches registered with it; used + cached <= total. */
  cached = 0;
  private waiting: { n: number; holder?: Holder; go: () => void }[] = [];
  /** Holders waiting for more, the one holding most first (ties in arrival order). */
  private growers: Grower[] = [];
  /** Holders that hold bytes now. */
  private readonly holders = new Set<Holder>();
  private readonly caches: BudgetCache<unknown>[] = [];

  constructor(public total: number) {}

  get queued(): number {
    return this.waiting.length + this.growers.length;
  }

  /** Room beside the leases and the caches. */
  get free(): number {
    return this.total - this.used - this.cached;
  }

  /**
   * Takes `n` bytes for `holder` (none, or one holding nothing: a first lease, which waits FIFO);
   * returns the grant, whose release gives back what it holds then (idempotent).
   */
  async acquire(n: number, holder?: Holder): Promise<Grant> {
    const holding = holder?.bytes ?? 0;
    if (holding + n > this.total) {
      throw new OciError('ARCHIVE_TOO_LARGE', `content of ${holding + n} bytes held in memory at once (${n} more) is over the in-memory budget of ${this.total} bytes`);
    }
    const fits = () => this.reclaim(n) && this.used + n <= this.total - this.cached;
    if (holding === 0) {
      if (this.waiting.length > 0 || this.growers.length > 0 || !fits()) await new Promise<void>((go) => this.waiting.push({ n, holder, go }));
      else this.take(n, holder);
    } else if (fits()) this.take(n, holder);
    else {
      // Not retried by the OCI client when it fails: the reconcile must end, giving its leases back.
      await new Promise<void>((go, fail) => {
        const at = this.growers.findIndex((o) => o.holder.bytes < holding);
        this.growers.splice(at < 0 ? this.growers.length : at, 0, { n, holder: holder!, go, fail });
        this.unstick();
      });
    }
    const grant: Grant = Object.assign(
      () => {
        if (grant.n === 0) return;
        this.give(grant.holder, grant.n);
        grant.n = 0;
        this.wake();
      },
      { n, holder },
    );
    return grant;
  }

  /** Gives back `by` bytes of a grant early. */
  shrink(grant: Grant, by: number) {
    const d = Math.min(Math.max(0, by), grant.n);
    if (!d) return;
    grant.n -= d;
    this.give(grant.holder, d);
    this.wake();
  }

  register(cache: BudgetCache<unknown>) {
    this.caches.push(cache);
  }

  /** Evicts cache entries until `n` more bytes fit beside the leases (or the caches are empty); true. */
  private reclaim(n: number): true {
    for (const c of this.caches) {
      if (this.used + this.cached + n <= this.total) break;
      c.evictFor(this.used + this.cached + n - this.total);
    }
    return true;
  }

  private take(n: number, holder?: Holder) {
    this.used += n;
    if (this.used > this.peak) this.peak = this.used;
    if (holder) {
      holder.bytes += n;
      this.holders.add(holder);
    }
  }

  private give(holder: Holder | undefined, n: number) {
    this.used -= n;
    if (!holder) return;
    holder.bytes -= n;
    if (holder.bytes <= 0) this.holders.delete(holder);
  }

  /**
   * When every holder waits for more, none of them gives anything back: the one holding least
   * gives up (MEMORY_BUDGET_BUSY: its reconcile ends, releasing its leases, and is retried with
   * backoff). Holders that wait on nothing always finish, so reconciles never wait on each other.
   */
  private unstick() {
    if (!this.growers.length || new Set(this.growers.map((g) => g.holder)).size < this.holders.size) return;
    const g = this.growers.pop()!;
    g.fail(new OciError('MEMORY_BUDGET_BUSY', `${g.n} more bytes of content in memory: the in-memory budget of ${this.total} bytes is held by reconciles that all wait for more`));
  }

  private wake() {
    while (this.growers.length) {
      const g = this.growers[0];
      this.reclaim(g.n);
      if (this.used + this.cached + g.n > this.total) return this.unstick(); // nobody goes ahead of it
      this.growers.shift();
      this.take(g.n, g.holder);
      g.go();
    }
    while (this.waiting.length && this.reclaim(this.waiting[0].n) && this.used + this.cached + this.waiting[0].n <= this.total) {
      const w = this.waiting.shift()!;
      this.take(w.n, w.holder);
      w.go();
    }
  }
}

/**
 * A cache whose entries are counted in a budget (`bytes` as the caller estimates them, e.g. text
 * length times PARSED_HEAP_PER_BYTE): at most `maxBytes`, kept only in room the leases leave, never
 * while a reconcile waits for a lease, evicted least recently used first when a lease needs room.
 */
export class BudgetCache<V> {
  private readonly items = new Map<string, { value: V; bytes: number; at: number }>();
  bytes = 0;

  constructor(
    readonly maxBytes: number,
    private readonly budget: ByteBudget = memoryBudget,
    private readonly ttlMs = Infinity,
  ) {
    budget.register(this as BudgetCache<unknown>);
  }

  get size(): number {
    return this.items.size;
  }

  private fresh(key: string) {
    const e = this.items.get(key);
    if (e && Date.now() - e.at > this.ttlMs) {
      this.delete(key);
      return undefined;
    }
    return e;
  }

  /** The entry's bytes, without touching it (to lease them before taking the value). */
  bytesOf(key: string): number | undefined {
    return this.fresh(key)?.bytes;
  }

  get(key: string): V | undefined {
    const e = this.fresh(key);
    if (!e) return undefined;
    this.items.delete(key);
    this.items.set(key, e);
    return e.value;
  }

  /** Whether an entry of `bytes` could ever be kept. */
  accepts(bytes: number): boolean {
    return bytes <= Math.min(this.maxBytes, this.budget.total);
  }

  /**
   * Keeps the value `make` returns if `bytes` fit (evicting older entries of this cache; `make` is
   * called only then, so a copy is made only to be kept); returns whether it is kept.
   */
  set(key: string, make: () => V, bytes: number): boolean {
    this.delete(key);
    if (!this.accepts(bytes) || this.budget.queued > 0) return false;
    for (const [k, e] of this.items) {
      if (this.bytes + bytes <= this.maxBytes && bytes <= this.budget.free) break;
      this.drop(k, e.bytes);
    }
    if (this.bytes + bytes > this.maxBytes || bytes > this.budget.free) return false;
    this.items.set(key, { value: make(), bytes, at: Date.now() });
    this.bytes += bytes;
    this.budget.cached += bytes;
    return true;
  }

  delete(key: string) {
    const e = this.items.get(key);
    if (e) this.drop(key, e.bytes);
  }

  clear() {
    for (const [k, e] of this.items) this.drop(k, e.bytes);
  }

  /** Evicts least recently used entries until `n` bytes are freed or it is empty. */
  evictFor(n: number) {
    for (const [k, e] of this.items) {
      if (n <= 0) break;
      this.drop(k, e.bytes);
      n -= e.bytes;
    }
  }

  private drop(key: string, bytes: number) {
    this.items.delete(key);
    this.bytes -= bytes;
    this.budget.cached -= bytes;
  }
}

export const memoryBudget = new ByteBudget(MEMORY_BUDGET_BYTES);

/** Sets the total (the server's `--memory-budget-mib`), before any reconcile runs. */
export function setMemoryBudget(bytes: number) {
  memoryBudget.total = bytes;
}

type Held = { bytes: number; grants: Grant[] };
const leases = new AsyncLocalStorage<Held>();

/** Runs `fn` (one reconcile) with its own leases, all released when it settles. */
export async function withMemoryLeases<T>(fn: () => Promise<T>): Promise<T> {
  const held: Held = { bytes: 0, grants: [] };
  try {
    return await leases.run(held, fn);
  } finally {
    for (const g of held.grants) g();
  }
}

/**
 * Takes a lease of `n` bytes for the current reconcile (held until it ends, or shrunk before),
 * before the bytes are held. Outside a reconcile (the CLI, tests) there is nothing to bound and
 * nothing is taken.
 */
export async function leaseMemory(n: number, budget = memoryBudget): Promise<Lease> {
  const held = leases.getStore();
  if (!held || !(n > 0)) return NO_LEASE;
  const grant = await budget.acquire(n, held);
  held.grants.push(grant);
  return {
    get bytes() {
      return grant.n;
    },
    shrink(to: number) {
      const by = grant.n - Math.max(0, to);
      if (by > 0) budget.shrink(grant, by);
    },
  };
}

/** Whether the caller runs inside a reconcile (whose content is bounded by the budget). */
export const inReconcile = (): boolean => leases.getStore() !== undefined;
