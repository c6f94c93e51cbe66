// What kube-controller-manager does for the objects of a standalone server: the namespace
// controller (empties a deleted namespace, then lets it go) and the garbage collector (deletes
// objects whose owners are all gone). In aggregated mode the real cluster's controllers do this.
import { ApiError } from '../apiserver/errors.js';
import { keyFor, type Resource, type ResourceRegistry } from '../apiserver/resources.js';
import { type GenericREST, internalOptions } from '../apiserver/rest.js';
import type { KubeObject } from '../kinds/types.js';
import type { Store, WatchHandle } from '../storage/store.js';
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
  private gcQueue!: Queue;
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
    this.gcQueue = new Queue((ns) => this.collect(ns === '' ? undefined : ns), this.log);
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
    // Any deletion may orphan dependents in the same namespace (or cluster-scoped ones).
    this.handles.push(
      this.store.watch('/', rv, (ev) => {
        if (ev.type === 'DELETED') this.gcQueue.add(ev.object.obj.metadata.namespace ?? '');
      }),
    );
    const namespaces = new Set<string>(['']);
    for (const r of this.stored) if (r.def.namespaced) for (const o of (await this.store.list(r.prefix)).items) namespaces.add(o.obj.metadata.namespace ?? '');
    for (const ns of namespaces) this.gcQueue.add(ns);
  }

  async stop() {
    for (const h of this.handles) h.stop();
    this.handles = [];
    await Promise.all([this.nsQueue.stop(), this.gcQueue.stop()]);
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

  /** Deletes objects (in one namespace, or cluster-scoped) all of whose owners are gone. */
  private async collect(ns: string | undefined): Promise<boolean> {
    const all: { r: Resource; o: KubeObject }[] = [];
    for (const r of this.stored) {
      if (r.def.namespaced !== (ns !== undefined)) continue;
      for (const o of (await this.store.list(keyFor(r, ns))).items) all.push({ r, o: o.obj });
    }
    const candidates = all.filter(({ o }) => o.metadata.ownerReferences?.length && !o.metadata.deletionTimestamp);
    if (!candidates.length) return false;
    const uids = new Set<string>();
    for (const { o } of all) uids.add(o.metadata.uid!);
    // Owners may also be cluster-scoped.
    if (ns !== undefined) for (const r of this.stored) if (!r.def.namespaced) for (const o of (await this.store.list(r.prefix)).items) uids.add(o.obj.metadata.uid!);
    for (const { r, o } of candidates) {
      if (o.metadata.ownerReferences!.some((ref) => uids.has(ref.uid))) continue;
      await this.rest.delete(r, ns, o.metadata.name!, { propagationPolicy: 'Background' }, internalOptions()).catch(ignoreNotFound);
    }
    return false;
  }
}
