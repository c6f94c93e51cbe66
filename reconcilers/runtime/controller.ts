// A small controller runtime (controller-runtime's shape): the server's own watch stream feeds a
// deduplicating work queue keyed by namespace/name; one worker per key at a time; failures are
// retried with per-key exponential backoff and jitter; successes may ask to run again later
// (spec.interval). On start every existing object is queued, so work pending at a crash resumes.
import { withMemoryLeases } from '../../registry/memory-budget.js';
import type { Resource } from '../../apiserver/resources.js';
import type { KubeObject } from '../../kinds/types.js';
import type { Store, WatchHandle } from '../../storage/store.js';

export interface ObjectKey {
  namespace?: string;
  name: string;
}

export interface Result {
  /** Run again after this long (e.g. the object's interval), even if nothing changes. */
  requeueAfterMs?: number;
}

export interface Logger {
  debug(o: object, msg: string): void;
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  error(o: object, msg: string): void;
}

export interface ControllerSpec {
  name: string;
  resource: Resource;
  reconcile(key: ObjectKey): Promise<Result | void>;
  /** Changes of other resources that concern objects of this one. */
  watches?: { resource: Resource; map(obj: KubeObject): ObjectKey[] | Promise<ObjectKey[]> }[];
  workers?: number;
}

export const keyOf = (k: ObjectKey) => (k.namespace ? `${k.namespace}/${k.name}` : k.name);
const parseKey = (s: string): ObjectKey => {
  const i = s.indexOf('/');
  return i < 0 ? { name: s } : { namespace: s.slice(0, i), name: s.slice(i + 1) };
};

/** client-go's workqueue semantics: a key queued while it is being processed runs again afterwards. */
export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly waiters: (() => void)[] = [];
  private stopped = false;

  constructor(
    readonly baseDelayMs = 100,
    readonly maxDelayMs = 5 * 60_000,
  ) {}

  get depth(): number {
    return this.queue.length;
  }

  add(key: string) {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.waiters.shift()?.();
  }

  addAfter(key: string, ms: number) {
    if (this.stopped) return;
    const existing = this.timers.get(key);
    if (existing) clearTimeout(existing);
    const t = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, ms);
    t.unref?.();
    this.timers.set(key, t);
  }

  /** Backs off exponentially per key, with jitter: 100ms, 200ms, ... up to 5 minutes. */
  addRateLimited(key: string) {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = Math.min(this.baseDelayMs * 2 ** n, this.maxDelayMs);
    this.addAfter(key, delay * (0.8 + Math.random() * 0.4));
  }

  forget(key: string) {
    this.failures.delete(key);
  }

  async get(): Promise<string | undefined> {
    while (!this.queue.length) {
      if (this.stopped) return undefined;
      await new Promise<void>((r) => this.waiters.push(r));
    }
    const key = this.queue.shift()!;
    this.queued.delete(key);
    this.processing.add(key);
    return key;
  }

  done(key: string) {
    this.processing.delete(key);
    if (this.dirty.delete(key)) this.add(key);
  }

  stop() {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    for (const w of this.waiters.splice(0)) w();
  }
}

export class Controller {
  readonly queue = new WorkQueue();
  private handles: WatchHandle[] = [];
  private workers: Promise<void>[] = [];
  reconciles = 0;
  errors = 0;

  constructor(
    readonly spec: ControllerSpec,
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  enqueue(k: ObjectKey) {
    this.queue.add(keyOf(k));
  }

  async start() {
    const rv = this.store.currentRV();
    const own = this.spec.resource;
    this.handles.push(this.store.watch(own.prefix, rv, (ev) => this.enqueue({ namespace: ev.object.obj.metadata.namespace, name: ev.object.obj.metadata.name! })));
    for (const w of this.spec.watches ?? []) {
      this.handles.push(
        this.store.watch(w.resource.prefix, rv, (ev) => {
          void Promise.resolve(w.map(ev.object.obj)).then(
            (keys) => keys.forEach((k) => this.enqueue(k)),
            (err) => this.log.error({ err, controller: this.spec.name }, 'mapping a watched object failed'),
          );
        }),
      );
    }
    for (const o of (await this.store.list(own.prefix)).items) this.enqueue({ namespace: o.obj.metadata.namespace, name: o.obj.metadata.name! });
    for (let i = 0; i < (this.spec.workers ?? 4); i++) this.workers.push(this.work());
  }

  private async work() {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      const started = Date.now();
      try {
        // Archive content read in memory is leased from one budget for the reconcile's duration.
        const res = await withMemoryLeases(() => this.spec.reconcile(parseKey(key)));
        this.reconciles++;
        this.queue.forget(key);
        if (res?.requeueAfterMs) this.queue.addAfter(key, res.requeueAfterMs);
        this.log.debug({ controller: this.spec.name, key, ms: Date.now() - started }, 'reconciled');
      } catch (err) {
        this.errors++;
        this.log.warn({ controller: this.spec.name, key, err: (err as Error).message }, 'reconcile failed; retrying with backoff');
        this.queue.addRateLimited(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  async stop() {
    for (const h of this.handles) h.stop();
    this.queue.stop();
    await Promise.all(this.workers);
  }
}

/** Runs a set of controllers; start() after stop() starts fresh ones (a regained leadership). */
export class ControllerManager {
  private readonly specs: ControllerSpec[] = [];
  controllers: Controller[] = [];

  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  add(spec: ControllerSpec) {
    this.specs.push(spec);
  }

  async start() {
    this.controllers = this.specs.map((s) => new Controller(s, this.store, this.log));
    for (const c of this.controllers) await c.start();
  }

  async stop() {
    await Promise.all(this.controllers.map((c) => c.stop()));
    this.controllers = [];
  }
}
