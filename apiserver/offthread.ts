// A worker thread for synchronous parsing off the event loop (issue 15), shared by the YAML bodies
// and answers of the API (apiserver/yaml.ts), the descriptor parser (ocm/descriptor-worker.ts) and
// the YAML editor of Configurator and Localization (providers/edit-worker.ts). A request and its
// answer cross by postMessage: strings and plain values are copied once (a string of MBs is one
// memory copy; no serialising on the event loop), the ArrayBuffers given to call() and the one of
// a Uint8Array answer that owns it whole are moved, not copied. Started on first use, it answers
// requests one at a time in the order sent, with its own heap limit and, optionally, a time limit
// per request (a timer only while a request is out; none without a limit). A request over either
// limit ends the thread: that request fails with the caller's limit error, the others waiting
// behind it with a plain (retried) error; the next request starts a new thread.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

/** An error as it crosses the thread boundary. */
export interface WireError {
  message: string;
  name?: string;
  reason?: string;
}

type Reply = { id: number; ok: unknown } | { id: number; error: WireError };

/** In the thread started for `name` (and nowhere else): answers each request with what `handler` returns or throws. */
export function serveOffThread(name: string, handler: (req: never) => unknown): void {
  if (isMainThread || workerData?.offThread !== name) return;
  parentPort!.on('message', ({ id, req }: { id: number; req: never }) => {
    let reply: Reply;
    try {
      reply = { id, ok: handler(req) };
    } catch (e) {
      const err = e as Error & { reason?: string };
      reply = { id, error: { message: String(err?.message ?? err), name: err?.name, reason: err?.reason } };
    }
    const v = 'ok' in reply ? reply.ok : undefined;
    parentPort!.postMessage(reply, v instanceof Uint8Array && v.byteOffset === 0 && v.byteLength === v.buffer.byteLength && v.buffer instanceof ArrayBuffer ? [v.buffer] : []);
  });
}

export interface OffThreadOptions {
  /** Names the thread (workerData.offThread) for serveOffThread. */
  name: string;
  /** The module that calls serveOffThread(name, …) when loaded. */
  module: URL;
  heapMib: number;
  /** Longest a request may take once the thread has started on it; none when 0 or absent. */
  timeoutMs?: number;
  /** The error of a reply that is one. */
  fromWire: (e: WireError) => Error;
}

type Limit = (over: 'memory' | 'time') => Error;
interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  limit: Limit;
}

export class OffThread {
  private worker?: Worker;
  private nextId = 0;
  /** In the order sent: the first is the one the thread works on. */
  private readonly pending = new Map<number, Pending>();
  private timer?: NodeJS.Timeout;
  /** Counts the threads started: state a thread held is gone when this changes. */
  generation = 0;

  constructor(private opts: OffThreadOptions) {}

  /** New limits (tests): the thread ends, the next one has them. */
  configure(o: Partial<Pick<OffThreadOptions, 'heapMib' | 'timeoutMs'>>): void {
    this.opts = { ...this.opts, ...o };
    const w = this.worker;
    if (w) {
      this.fail(w, new Error(`the ${this.opts.name} thread was restarted with new limits`));
      void w.terminate();
    }
  }

  get heapMib(): number {
    return this.opts.heapMib;
  }

  get timeoutMs(): number {
    return this.opts.timeoutMs ?? 0;
  }

  /**
   * Sends `req`; resolves with the handler's value. `limit` makes the error of this request over a
   * limit. `transfer`: ArrayBuffers of `req` moved to the thread (unusable here afterwards).
   */
  call<T>(req: unknown, limit: Limit, transfer: ArrayBuffer[] = []): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const id = ++this.nextId;
      const w = this.thread();
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, limit });
      w.ref();
      w.postMessage({ id, req }, transfer);
      if (this.pending.size === 1) this.arm();
    });
  }

  /** Sends `req` without waiting for (or caring about) the answer. */
  post(req: unknown): void {
    if (!this.worker) return;
    this.call(req, () => new Error('stopped')).catch(() => undefined);
  }

  private arm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const ms = this.opts.timeoutMs ?? 0;
    const w = this.worker;
    if (!ms || !w || this.pending.size === 0) return;
    this.timer = setTimeout(() => {
      this.fail(w, 'time');
      void w.terminate();
    }, ms);
    this.timer.unref();
  }

  private thread(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(this.opts.module, { workerData: { offThread: this.opts.name }, resourceLimits: { maxOldGenerationSizeMb: this.opts.heapMib } });
    this.generation++;
    w.unref();
    w.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (this.pending.size === 0) w.unref();
      this.arm();
      if ('ok' in m) p?.resolve(m.ok);
      else p?.reject(this.opts.fromWire(m.error));
    });
    w.on('error', (err) => this.fail(w, (err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'memory' : err));
    w.on('exit', (code) => this.fail(w, new Error(`the ${this.opts.name} thread exited (${code})`)));
    this.worker = w;
    return w;
  }

  /** The thread `w` is gone: the request it worked on fails with `why`, the others with a plain error. */
  private fail(w: Worker, why: 'memory' | 'time' | Error): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    clearTimeout(this.timer);
    this.timer = undefined;
    let first = true;
    for (const p of this.pending.values()) {
      if (typeof why !== 'string') p.reject(why);
      else if (first) p.reject(p.limit(why));
      else p.reject(new Error(`the ${this.opts.name} thread was stopped by another request over its ${why === 'memory' ? 'memory' : 'time'} limit`));
      first = false;
    }
    this.pending.clear();
  }
}
