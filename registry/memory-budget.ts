// One budget for the bytes of upstream content the process holds in memory (issue 15): compressed
// blobs read whole, inflated archive content, archives packed in memory, manifests, OCM configs,
// descriptor layers, tag lists, token responses and what parsing them makes, and the caches that
// keep any of it. A reconcile leases each amount before it holds the bytes, and never holds more
// than it leased; its leases are given back when its reconcile ends, whichever way it ends (a lease
// may be made smaller before, when less was read than leased). The budget is a hard cap
// (apiserver/byte-budget.ts, the one byte budget, also of request bodies and answers):
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
import { ByteBudget, type Holder, type Lease } from '../apiserver/byte-budget.js';
import { OciError } from './client.js';

export type { Lease };

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

const NO_LEASE: Lease = Object.assign(() => {}, { bytes: 0, shrink() {} });

/** A budget of `total` bytes of upstream content, with the errors reconciles expect. */
export function newMemoryBudget(total: number): ByteBudget {
  return new ByteBudget(total, {
    tooLarge: (n, holding, total) => new OciError('ARCHIVE_TOO_LARGE', `content of ${holding + n} bytes held in memory at once (${n} more) is over the in-memory budget of ${total} bytes`),
    // Not retried by the OCI client: the reconcile must end, giving its leases back.
    busy: (n, total) => new OciError('MEMORY_BUDGET_BUSY', `${n} more bytes of content in memory: the in-memory budget of ${total} bytes is held by reconciles that all wait for more`),
  });
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
    budget.register(this);
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
    if (!this.accepts(bytes) || this.budget.waiting > 0) return false;
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

export const memoryBudget = newMemoryBudget(MEMORY_BUDGET_BYTES);

/** Sets the total (the server's `--memory-budget-mib`), before any reconcile runs. */
export function setMemoryBudget(bytes: number) {
  memoryBudget.total = bytes;
}

type Held = Holder & { leases: Lease[] };
const leases = new AsyncLocalStorage<Held>();

/** Runs `fn` (one reconcile) with its own leases, all released when it settles. */
export async function withMemoryLeases<T>(fn: () => Promise<T>): Promise<T> {
  const held: Held = { bytes: 0, leases: [] };
  try {
    return await leases.run(held, fn);
  } finally {
    for (const l of held.leases) l();
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
  const lease = await budget.take(n, undefined, held);
  held.leases.push(lease);
  return lease;
}

/** What the current reconcile holds of the budget (0 outside one). */
export const heldMemory = (): number => leases.getStore()?.bytes ?? 0;

/** Whether the caller runs inside a reconcile (whose content is bounded by the budget). */
export const inReconcile = (): boolean => leases.getStore() !== undefined;
