// kube-controller-manager's garbage collector for the objects of a standalone server
// (k8s.io/kubernetes pkg/controller/garbagecollector: graph_builder.go, garbagecollector.go).
// A graph of owner references, kept from the store's watch, says who depends on whom; two kinds
// of work run on it, one at a time:
//  - attempt to delete (attemptToDeleteItem): an object whose owners are all gone is deleted (with
//    the policy its own GC finalizers ask for, Background otherwise); references to owners that
//    are gone or deleted in the foreground are dropped while a live owner remains; an owner deleted
//    in the foreground (`foregroundDeletion` finalizer) has its dependents deleted and loses the
//    finalizer once no dependent with `blockOwnerDeletion: true` is left (processDeletingDependentsItem).
//  - attempt to orphan (attemptToOrphanWorker): an owner with the `orphan` finalizer has its
//    references removed from its dependents, then loses the finalizer.
// The server's delete (apiserver/rest.ts gcFinalizers) sets those finalizers from the DeleteOptions.
import { isDeepStrictEqual } from 'node:util';
import { ApiError } from '../apiserver/errors.js';
import { keyFor, type Resource, type ResourceRegistry } from '../apiserver/resources.js';
import { FINALIZER_FOREGROUND, FINALIZER_ORPHAN, type GenericREST, internalOptions } from '../apiserver/rest.js';
import type { KubeObject, OwnerReference } from '../kinds/types.js';
import type { Store, StoreEvent, StoredObject, WatchHandle } from '../storage/store.js';
import { WorkQueue } from './runtime/controller.js';

interface Log {
  info(o: object, msg: string): void;
  error(o: object, msg: string): void;
}

interface GNode {
  uid: string;
  r: Resource;
  ns?: string;
  name: string;
  rv: number;
  owners: OwnerReference[];
  deleting: boolean;
  finalizers: string[];
}

const deletingDependents = (n: { deleting: boolean; finalizers: string[] }) => n.deleting && n.finalizers.includes(FINALIZER_FOREGROUND);
const metaState = (o: KubeObject) => ({ deleting: !!o.metadata.deletionTimestamp, finalizers: o.metadata.finalizers ?? [] });
const groupOf = (apiVersion: string) => (apiVersion.includes('/') ? apiVersion.split('/')[0] : '');

/** Errors that mean "the world moved on": the watch brings the next state, or a retry does. */
const benign = (err: unknown) => err instanceof ApiError && (err.status.code === 404 || err.status.code === 409);

export class GarbageCollector {
  private readonly nodes = new Map<string, GNode>();
  private readonly dependents = new Map<string, Set<string>>();
  private readonly byPrefix = new Map<string, Resource>();
  private readonly q = new WorkQueue(200, 10_000);
  private handle?: WatchHandle;
  private done?: Promise<void>;
  private stopped = false;

  constructor(
    private readonly store: Store,
    private readonly rest: GenericREST,
    private readonly registry: ResourceRegistry,
    private readonly log: Log,
  ) {
    for (const r of registry.all) if (!r.create) this.byPrefix.set(r.prefix, r);
  }

  async start() {
    this.done = this.work();
    await this.sync();
  }

  async stop() {
    this.stopped = true;
    this.handle?.stop();
    this.q.stop();
    await this.done;
  }

  /** Lists everything and follows the watch; events seen during the list are applied after it. */
  private async sync() {
    this.handle?.stop();
    this.nodes.clear();
    this.dependents.clear();
    let buffered: StoreEvent[] | undefined = [];
    this.handle = this.store.watch(
      '/',
      this.store.currentRV(),
      (ev) => (buffered ? buffered.push(ev) : this.apply(ev)),
      (err) => {
        if (this.stopped) return;
        this.log.error({ err }, 'garbage collector watch failed; resyncing');
        setTimeout(() => void this.sync().catch((e) => this.log.error({ err: e }, 'garbage collector resync failed')), 1000).unref();
      },
    );
    for (const r of this.byPrefix.values()) for (const o of (await this.store.list(r.prefix)).items) this.upsert(r, o);
    const evs = buffered;
    buffered = undefined;
    for (const ev of evs) this.apply(ev);
  }

  private resourceOfKey(key: string): Resource | undefined {
    const i = key.indexOf('/', key.indexOf('/', 1) + 1);
    return i < 0 ? undefined : this.byPrefix.get(key.slice(0, i + 1));
  }

  private apply(ev: StoreEvent) {
    const r = this.resourceOfKey(ev.key);
    if (!r) return;
    if (ev.type === 'DELETED') this.remove(ev.object);
    else this.upsert(r, ev.object);
  }

  private enqueue(kind: 'delete' | 'orphan', uid: string) {
    this.q.add(`${kind}/${uid}`);
  }

  private depsOf(uid: string): GNode[] {
    return [...(this.dependents.get(uid) ?? [])].map((d) => this.nodes.get(d)).filter((d): d is GNode => !!d);
  }

  /** graph_builder.go processGraphChanges for an added or updated object. */
  private upsert(r: Resource, so: StoredObject) {
    const o = so.obj;
    const uid = o.metadata.uid;
    if (!uid) return;
    const old = this.nodes.get(uid);
    if (old && old.rv >= so.rv) return;
    const n: GNode = { uid, r, ns: o.metadata.namespace, name: o.metadata.name!, rv: so.rv, owners: Array.isArray(o.metadata.ownerReferences) ? o.metadata.ownerReferences : [], ...metaState(o) };
    this.nodes.set(uid, n);
    const oldOwners = old?.owners ?? [];
    for (const ref of oldOwners) if (!n.owners.some((x) => x.uid === ref.uid)) this.dependents.get(ref.uid)?.delete(uid);
    for (const ref of n.owners) {
      let s = this.dependents.get(ref.uid);
      if (!s) this.dependents.set(ref.uid, (s = new Set()));
      s.add(uid);
    }
    if (!old || !isDeepStrictEqual(oldOwners, n.owners)) {
      if (n.owners.length) this.enqueue('delete', uid); // an owner may be absent or waiting
      // A reference removed or made non-blocking may be what an owner in foreground deletion waits for.
      for (const ref of [...oldOwners, ...n.owners]) {
        const owner = this.nodes.get(ref.uid);
        if (owner && deletingDependents(owner)) this.enqueue('delete', owner.uid);
      }
    }
    if (n.deleting && n.finalizers.includes(FINALIZER_ORPHAN)) this.enqueue('orphan', uid);
    if (deletingDependents(n) && !(old && deletingDependents(old))) {
      for (const d of this.depsOf(uid)) this.enqueue('delete', d.uid);
      this.enqueue('delete', uid);
    }
  }

  private remove(so: StoredObject) {
    const uid = so.obj.metadata.uid;
    const n = uid ? this.nodes.get(uid) : undefined;
    if (!n) return;
    this.nodes.delete(n.uid);
    for (const ref of n.owners) {
      this.dependents.get(ref.uid)?.delete(n.uid);
      const owner = this.nodes.get(ref.uid);
      if (owner && deletingDependents(owner)) this.enqueue('delete', owner.uid);
    }
    for (const d of this.depsOf(n.uid)) this.enqueue('delete', d.uid);
  }

  private async work() {
    for (let key; (key = await this.q.get()) !== undefined; ) {
      let again = false;
      try {
        const [kind, uid] = [key.slice(0, key.indexOf('/')), key.slice(key.indexOf('/') + 1)];
        again = kind === 'orphan' ? await this.attemptToOrphan(uid) : await this.attemptToDelete(uid);
      } catch (err) {
        if (!benign(err)) this.log.error({ err, key }, 'garbage collection failed');
        again = true;
      }
      if (again) this.q.addRateLimited(key);
      else this.q.forget(key);
      this.q.done(key);
    }
  }

  private async latest(n: GNode): Promise<StoredObject | undefined> {
    const cur = await this.store.get(keyFor(n.r, n.ns, n.name));
    return cur && cur.obj.metadata.uid === n.uid ? cur : undefined;
  }

  /** Writes `change(obj)` back if it changed anything (a conflict retries the work item). */
  private async modify(n: GNode, cur: StoredObject, change: (o: KubeObject) => void) {
    const next = structuredClone(cur.obj);
    change(next);
    if (isDeepStrictEqual(next, cur.obj)) return;
    if (Array.isArray(next.metadata.ownerReferences) && !next.metadata.ownerReferences.length) delete next.metadata.ownerReferences;
    if (Array.isArray(next.metadata.finalizers) && !next.metadata.finalizers.length) delete next.metadata.finalizers;
    await this.rest.update(n.r, n.ns, n.name, next, false, internalOptions());
  }

  private async deleteObject(n: GNode, propagationPolicy: string) {
    await this.rest.delete(n.r, n.ns, n.name, { propagationPolicy, preconditions: { uid: n.uid } }, internalOptions());
  }

  /** The served, stored kind an owner reference names, or undefined when it cannot be resolved. */
  private ownerResource(ref: OwnerReference, dependentNamespaced: boolean): Resource | undefined {
    if (typeof ref.apiVersion !== 'string' || typeof ref.kind !== 'string') return undefined;
    const group = groupOf(ref.apiVersion);
    const r = [...this.byPrefix.values()].find((x) => x.apiVersion === ref.apiVersion && x.def.kind === ref.kind) ?? [...this.byPrefix.values()].find((x) => x.def.group === group && x.def.kind === ref.kind);
    // A cluster-scoped dependent with a namespaced owner is an unresolvable reference (kube 1.20+).
    if (!r || (r.def.namespaced && !dependentNamespaced)) return undefined;
    return r;
  }

  private async attemptToDelete(uid: string): Promise<boolean> {
    const n = this.nodes.get(uid);
    if (!n) return false;
    const cur = await this.latest(n);
    if (!cur) return false; // the watch brings the deletion
    const state = metaState(cur.obj);
    // "Being deleted is a one-way trip": nothing to do until it is gone, unless it waits for dependents.
    if (state.deleting && !deletingDependents(state)) return false;
    if (deletingDependents(state)) return this.processDeletingDependents(n, cur);
    const refs = Array.isArray(cur.obj.metadata.ownerReferences) ? cur.obj.metadata.ownerReferences : [];
    if (!refs.length) return false;
    // classifyReferences
    const solid: OwnerReference[] = [];
    const dangling: OwnerReference[] = [];
    const waiting: OwnerReference[] = [];
    for (const ref of refs) {
      const or = this.ownerResource(ref, n.r.def.namespaced);
      if (!or) {
        solid.push(ref); // kube cannot resolve it either, and so never collects the object
        continue;
      }
      const owner = await this.store.get(keyFor(or, or.def.namespaced ? n.ns : undefined, ref.name));
      if (!owner || owner.obj.metadata.uid !== ref.uid) dangling.push(ref);
      else if (deletingDependents(metaState(owner.obj))) waiting.push(ref);
      else solid.push(ref);
    }
    if (solid.length) {
      if (!dangling.length && !waiting.length) return false;
      const drop = new Set([...dangling, ...waiting].map((r) => r.uid));
      await this.modify(n, cur, (o) => {
        o.metadata.ownerReferences = (o.metadata.ownerReferences ?? []).filter((r) => !drop.has(r.uid));
      });
      return false;
    }
    const deps = this.depsOf(uid).filter((d) => d.uid !== uid);
    if (waiting.length && deps.length) {
      // A dependent already deleting its own dependents may wait for us: a cycle. Unblock our
      // references so the owner waiting for us does not wait for this chain (kube does the same).
      if (deps.some(deletingDependents))
        await this.modify(n, cur, (o) => {
          for (const r of o.metadata.ownerReferences ?? []) if (r.blockOwnerDeletion) r.blockOwnerDeletion = false;
        });
      await this.deleteObject(n, 'Foreground');
      return false;
    }
    const policy = state.finalizers.includes(FINALIZER_ORPHAN) ? 'Orphan' : state.finalizers.includes(FINALIZER_FOREGROUND) ? 'Foreground' : 'Background';
    await this.deleteObject(n, policy);
    return false;
  }

  private async processDeletingDependents(n: GNode, cur: StoredObject): Promise<boolean> {
    // An object that names itself as a blocking owner would wait for itself forever; kube's graph
    // has the same edge, here it does not block.
    const blocking = this.depsOf(n.uid).filter((d) => d.uid !== n.uid && d.owners.some((r) => r.uid === n.uid && r.blockOwnerDeletion === true));
    if (!blocking.length) {
      await this.modify(n, cur, (o) => {
        o.metadata.finalizers = (o.metadata.finalizers ?? []).filter((f) => f !== FINALIZER_FOREGROUND);
      });
      return false;
    }
    for (const d of blocking) if (!deletingDependents(d)) this.enqueue('delete', d.uid);
    return false;
  }

  private async attemptToOrphan(uid: string): Promise<boolean> {
    const n = this.nodes.get(uid);
    if (!n) return false;
    const cur = await this.latest(n);
    if (!cur || !cur.obj.metadata.deletionTimestamp || !(cur.obj.metadata.finalizers ?? []).includes(FINALIZER_ORPHAN)) return false;
    for (const d of this.depsOf(uid)) {
      if (d.uid === uid) continue;
      const dc = await this.latest(d);
      if (!dc) continue;
      try {
        await this.modify(d, dc, (o) => {
          o.metadata.ownerReferences = (o.metadata.ownerReferences ?? []).filter((r) => r.uid !== uid);
        });
      } catch (err) {
        if (!(err instanceof ApiError && err.status.code === 404)) throw err;
      }
    }
    const fresh = await this.latest(n);
    if (!fresh) return false;
    await this.modify(n, fresh, (o) => {
      o.metadata.finalizers = (o.metadata.finalizers ?? []).filter((f) => f !== FINALIZER_ORPHAN);
      // A self-reference is removed with the finalizer, in the same write.
      if (o.metadata.ownerReferences) o.metadata.ownerReferences = o.metadata.ownerReferences.filter((r) => r.uid !== uid);
    });
    return false;
  }
}
