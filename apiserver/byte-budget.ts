// One byte budget (issue 15) for request bodies and answers in flight (apiserver/limits.ts) and for
// the upstream content that reconciles and caches hold in memory (registry/memory-budget.ts).
// A lease takes bytes before they are held and gives them back when released (idempotent) or
// shrunk; leases that do not fit wait their turn, first come first served. Holders (a reconcile's
// leases together) that need more while they hold some wait ahead of first leases, the one holding
// most first; when every holder waits for more, none gives anything back, so the one holding least
// is refused (`busy`) and must end, giving its leases back: reconciles never wait on each other.
// Caches registered with the budget hold what the leases leave (`cached`) and are asked to make
// room before a lease waits.

/** A lease: call it to give back what it holds (idempotent); `shrink` gives back what is over `to`. */
export interface Lease {
  (): void;
  readonly bytes: number;
  shrink(to: number): void;
}

/** What one holder (a reconcile) holds of the budget: its leases add up to `bytes`. */
export interface Holder {
  bytes: number;
}

/** What a lease waits for may end first (a response that closes, an aborted signal): then it leaves the queue. */
export type Until = AbortSignal | { readonly destroyed?: boolean; readonly writableFinished?: boolean; once(e: 'close', f: () => void): unknown; off(e: 'close', f: () => void): unknown };

/** A cache counted in the budget: it evicts at least `n` bytes when asked (or all it holds). */
export interface Evictable {
  evictFor(n: number): void;
}

export interface ByteBudgetOptions {
  /** A lease past the total: refused with this error (`holding` is what its holder holds); without it the lease is cut to the total (it gets the whole budget, alone). */
  tooLarge?: (n: number, holding: number, total: number) => Error;
  /** The error of the holder that gives up when every holder waits for more. */
  busy?: (n: number, total: number) => Error;
}

type Waiter = { n: number; holder?: Holder; grant: (l: Lease) => void; fail: (e: Error) => void };

const closedError = () => new Error('closed while it waited for memory');

export class ByteBudget {
  /** Bytes leased now. */
  used = 0;
  /** The most ever leased at once. */
  peak = 0;
  /** Bytes held by the caches registered with it; used + cached <= total. */
  cached = 0;
  /** First leases, in order. */
  private readonly queue: Waiter[] = [];
  /** Holders waiting for more, the one holding most first (ties in arrival order): ahead of the queue. */
  private readonly growers: Waiter[] = [];
  /** Holders that hold bytes now. */
  private readonly holders = new Set<Holder>();
  private readonly caches: Evictable[] = [];

  /** `total` <= 0: no bound. */
  constructor(
    public total: number,
    private readonly o: ByteBudgetOptions = {},
  ) {}

  /** Leases that wait. */
  get waiting(): number {
    return this.queue.length + this.growers.length;
  }

  /** Room beside the leases and the caches. */
  get free(): number {
    return this.total - this.used - this.cached;
  }

  register(cache: Evictable) {
    this.caches.push(cache);
  }

  /** A lease of `n` bytes now, or undefined when it does not fit or others wait ahead of it (a holder holding some goes ahead of them). */
  tryTake(n: number, holder?: Holder): Lease | undefined {
    if (this.total <= 0) return this.lease(0, undefined);
    n = this.size(n, holder);
    const first = !(holder && holder.bytes > 0);
    return (!first || this.waiting === 0) && this.fits(n) ? this.lease(n, holder) : undefined;
  }

  /**
   * A lease of `n` bytes, waiting its turn; rejects when `until` ends first, or (a holder that
   * holds some) with `busy` when every holder would wait.
   */
  take(n: number, until?: Until, holder?: Holder): Promise<Lease> {
    let now: Lease | undefined;
    try {
      now = this.tryTake(n, holder);
    } catch (e) {
      return Promise.reject(e);
    }
    if (now) return Promise.resolve(now);
    if (until && (until instanceof AbortSignal ? until.aborted : until.destroyed || until.writableFinished)) return Promise.reject(closedError());
    n = this.size(n, holder);
    return new Promise((resolve, reject) => {
      const done = () => {
        if (!until) return;
        if (until instanceof AbortSignal) until.removeEventListener('abort', gone);
        else until.off('close', gone);
      };
      const w: Waiter = {
        n,
        holder,
        grant: (l) => (done(), resolve(l)),
        fail: (e) => (done(), reject(e)),
      };
      const gone = () => {
        for (const q of [this.queue, this.growers]) {
          const i = q.indexOf(w);
          if (i >= 0) q.splice(i, 1);
        }
        w.fail(closedError());
        this.wake(); // one that waited behind it may fit now
      };
      if (until) {
        if (until instanceof AbortSignal) until.addEventListener('abort', gone, { once: true });
        else until.once('close', gone);
      }
      if (holder && holder.bytes > 0) {
        const at = this.growers.findIndex((g) => g.holder!.bytes < holder.bytes);
        this.growers.splice(at < 0 ? this.growers.length : at, 0, w);
        this.unstick();
      } else this.queue.push(w);
    });
  }

  private size(n: number, holder?: Holder): number {
    n = Math.max(0, n);
    const holding = holder?.bytes ?? 0;
    if (holding + n <= this.total) return n;
    if (this.o.tooLarge) throw this.o.tooLarge(n, holding, this.total);
    return Math.max(0, this.total - holding);
  }

  /** Whether `n` more fit beside the leases, once the caches have made what room they can. */
  private fits(n: number): boolean {
    for (const c of this.caches) {
      if (this.used + this.cached + n <= this.total) break;
      c.evictFor(this.used + this.cached + n - this.total);
    }
    return this.used + this.cached + n <= this.total;
  }

  private lease(n: number, holder: Holder | undefined): Lease {
    this.used += n;
    if (this.used > this.peak) this.peak = this.used;
    if (holder && n > 0) {
      holder.bytes += n;
      this.holders.add(holder);
    }
    let held = n;
    const give = (d: number) => {
      if (!(d > 0)) return;
      held -= d;
      this.used -= d;
      if (holder) {
        holder.bytes -= d;
        if (holder.bytes <= 0) this.holders.delete(holder);
      }
      this.wake();
    };
    return Object.assign(() => give(held), {
      get bytes() {
        return held;
      },
      shrink: (to: number) => give(held - Math.max(0, Math.min(to, held))),
    });
  }

  /** When every holder waits for more, the one holding least gives up (`busy`). */
  private unstick() {
    if (!this.growers.length || new Set(this.growers.map((g) => g.holder)).size < this.holders.size) return;
    const g = this.growers.pop()!;
    g.fail(this.o.busy?.(g.n, this.total) ?? new Error(`${g.n} more bytes: the budget of ${this.total} bytes is held by holders that all wait for more`));
  }

  private wake() {
    while (this.growers.length) {
      if (!this.fits(this.growers[0].n)) return this.unstick(); // nobody goes ahead of it
      const g = this.growers.shift()!;
      g.grant(this.lease(g.n, g.holder));
    }
    while (this.queue.length && this.fits(this.queue[0].n)) {
      const w = this.queue.shift()!;
      w.grant(this.lease(w.n, w.holder));
    }
  }
}
