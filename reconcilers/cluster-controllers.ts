// What kube-controller-manager does for the objects of a standalone server: the namespace
// controller (empties a deleted namespace, then lets it go) and the garbage collector
// (reconcilers/garbage-collector.ts). In aggregated mode the real cluster's controllers do this.
import { ApiError } from '../apiserver/errors.js';
import { keyFor, type Resource, type ResourceRegistry } from '../apiserver/resources.js';
import { type GenericREST, internalOptions } from '../apiserver/rest.js';
import type { Store, WatchHandle } from '../storage/store.js';
import { GarbageCollector } from './garbage-collector.js';
import { WorkQueue } from './runtime/controller.js';

const ignoreNotFound = (err: unknown) => {
  if (!(err instanceof ApiError && err.status.code === 404)) throw err;
};

interface Log {
  info(o: object, msg: string): void;
  error(o: object, msg: string): void;
}

/** The runtime's work queue with one worker; `work` returning true means "look again later". */
class Queue {
  private readonly q = new WorkQueue(200, 10_000);
  private readonly done: Promise<void>;

  constructor(work: (key: string) => Promise<boolean>, log: Log) {
    this.done = (async () => {
      for (let key; (key = await this.q.get()) !== undefined; ) {
        let again: boolean;
        try {
          again = await work(key);
        } catch (err) {
          log.error({ err, key }, 'controller work failed');
          again = true;
        }
        if (again) this.q.addRateLimited(key);
        else this.q.forget(key);
        this.q.done(key);
      }
    })();
  }

  add(key: string) {
    this.q.add(key);
  }

  stop(): Promise<void> {
    this.q.stop();
    return this.done;
  }
}

export class ClusterControllers {
  private handles: WatchHandle[] = [];
  private nsQueue!: Queue;
  private gc?: GarbageCollector;
  private readonly stored: Resource[];

  constructor(
    private readonly store: Store,
    private readonly rest: GenericREST,
    private readonly registry: ResourceRegistry,
    private readonly log: Log,
  ) {
    this.stored = registry.all.filter((r) => !r.create);
  }

  async start() {
    this.nsQueue = new Queue((ns) => this.finalizeNamespace(ns), this.log);
    const nsRes = this.registry.lookup('', 'v1', 'namespaces');
    const rv = this.store.currentRV();
    if (nsRes) {
      this.handles.push(
        this.store.watch(nsRes.prefix, rv, (ev) => {
          if (ev.type !== 'DELETED' && ev.object.obj.metadata.deletionTimestamp) this.nsQueue.add(ev.object.obj.metadata.name!);
        }),
      );
      for (const o of (await this.store.list(nsRes.prefix)).items) if (o.obj.metadata.deletionTimestamp) this.nsQueue.add(o.obj.metadata.name!);
    }
    this.gc = new GarbageCollector(this.store, this.rest, this.registry, this.log);
    await this.gc.start();
  }

  async stop() {
    for (const h of this.handles) h.stop();
    this.handles = [];
    await Promise.all([this.nsQueue.stop(), this.gc?.stop()]);
  }

  /** Deletes everything in the namespace; once nothing is left, drops the namespace's finalizer. */
  private async finalizeNamespace(ns: string): Promise<boolean> {
    let remaining = 0;
    for (const r of this.stored) {
      if (!r.def.namespaced) continue;
      for (const o of (await this.store.list(keyFor(r, ns))).items) {
        remaining++;
        if (!o.obj.metadata.deletionTimestamp) await this.rest.delete(r, ns, o.obj.metadata.name!, {}, internalOptions()).catch(ignoreNotFound);
      }
    }
    if (remaining) return true;
    const nsRes = this.registry.lookup('', 'v1', 'namespaces')!;
    await this.rest.patch(nsRes, undefined, ns, 'merge-patch', '{"spec":{"finalizers":null}}', false, internalOptions()).catch(ignoreNotFound);
    return false;
  }
}
