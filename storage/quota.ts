// The storage quota (issue 15): the bytes of JSON stored, in the whole store and per namespace, as
// etcd's --quota-backend-bytes bounds a cluster's database and a ResourceQuota a namespace. A Store
// decorator, so both backends and every writer (users, the server's own reconcilers) are counted.
//
// - Usage is counted at open (one list of everything) and kept up to date from a watch of the whole
//   store: on etcd that watch sees the writes of every replica, so each replica's numbers follow the
//   others' within the watch's delay.
// - A create, or an update that grows an object, is refused (QuotaExceededError) when it would take
//   its namespace past the namespace quota or the store past the total. The check and a reservation
//   of the growth happen in the same synchronous step as the backend's own sequencing (tryUpdate),
//   so on one process concurrent writes cannot together pass the quota; writes of other replicas in
//   flight at the same moment can (each at most one object, 3 MiB).
// - Deletes, updates that do not grow an object, and the update that marks an object deleted
//   (metadata.deletionTimestamp set) always pass. The server's statuses reporting failures may use
//   `headroomBytes` past the quota (allowQuotaHeadroom), so a Ready=False QuotaExceeded can be written.
import type { KubeObject } from '../kinds/types.js';
import {
  hasQuotaHeadroom,
  type ListOptions,
  type ListResult,
  type Listener,
  QuotaExceededError,
  type Store,
  type StoreError,
  type StoreEvent,
  type StoredObject,
  serializedLength,
  type TryUpdate,
  type WatchHandle,
} from './store.js';

export interface QuotaOptions {
  /** Bytes of JSON all stored objects together may take; 0: no limit. */
  totalBytes: number;
  /** Bytes of JSON the objects of one namespace may take; 0: no limit. */
  namespaceBytes: number;
  /** How far the server's own failure statuses may go past either quota (default 1 MiB). */
  headroomBytes?: number;
  /** Items per page of the count at open; 0: one list (the embedded store holds every object in memory anyway). */
  pageSize?: number;
  /** Flags named in the refusal. */
  totalFlag?: string;
  namespaceFlag?: string;
  onError?: (err: Error) => void;
}

/** The namespace of a store key `/<group>/<resource>/<namespace>/<name>`; '' for cluster-scoped keys. */
export function namespaceOf(key: string): string {
  const parts = key.split('/', 6);
  return parts.length >= 5 ? parts[3] : '';
}

const digits = (n: number) => String(n).length;

export class QuotaStore implements Store {
  private used = new Map<string, number>();
  private total = 0;
  private readonly reserved = new Map<string, number>();
  private reservedTotal = 0;
  private handle: WatchHandle | undefined;
  private recounting: Promise<void> | undefined;
  private closed = false;
  private readonly headroom: number;
  private readonly onError: (err: Error) => void;

  private constructor(
    readonly inner: Store,
    private readonly opts: QuotaOptions,
  ) {
    this.headroom = opts.headroomBytes ?? 1 << 20;
    this.onError = opts.onError ?? ((err) => console.error(`storage quota: ${err.message}`));
  }

  static async open(inner: Store, opts: QuotaOptions): Promise<QuotaStore> {
    const q = new QuotaStore(inner, opts);
    await q.recount();
    return q;
  }

  /** Bytes stored now: all together and per namespace ('' for cluster-scoped objects). */
  usage(): { total: number; namespaces: ReadonlyMap<string, number> } {
    return { total: this.total, namespaces: this.used };
  }

  get limits(): { totalBytes: number; namespaceBytes: number } {
    return { totalBytes: this.opts.totalBytes, namespaceBytes: this.opts.namespaceBytes };
  }

  /** Counts everything stored, then follows the changes from the revision counted at. */
  private async recount(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.handle?.stop();
      this.handle = undefined;
      const used = new Map<string, number>();
      let total = 0;
      let rv: number | undefined;
      let startAfter: string | undefined;
      for (;;) {
        const page = await this.inner.list('', { limit: this.opts.pageSize || undefined, startAfter, atRV: rv });
        rv ??= page.rv;
        for (const o of page.items) {
          const ns = namespaceOf(o.key);
          used.set(ns, (used.get(ns) ?? 0) + o.json.length);
          total += o.json.length;
        }
        if (page.lastKey === undefined) break;
        startAfter = page.lastKey;
      }
      if (this.closed) return;
      this.used = used;
      this.total = total;
      try {
        this.handle = this.inner.watch('', rv, (e) => this.onEvent(e), () => this.again());
        return;
      } catch (err) {
        if (attempt >= 5) throw err; // the history moved past rv while counting: count again
      }
    }
  }

  private again() {
    if (this.recounting || this.closed) return;
    this.recounting = this.recount()
      .catch((err) => this.onError(new Error(`recounting the stored bytes failed: ${(err as Error).message}`)))
      .finally(() => (this.recounting = undefined));
  }

  private onEvent(e: StoreEvent) {
    const ns = namespaceOf(e.key);
    if (e.type === 'ADDED') return this.add(ns, e.object.json.length);
    // the change needs the previous state; without it (not known to the backend) count again
    if (!e.prev) return this.again();
    this.add(ns, (e.type === 'DELETED' ? 0 : e.object.json.length) - e.prev.json.length);
  }

  private add(ns: string, d: number) {
    const n = (this.used.get(ns) ?? 0) + d;
    if (n > 0) this.used.set(ns, n);
    else this.used.delete(ns);
    this.total += d;
  }

  private reserve(ns: string, d: number) {
    if (d <= 0) return;
    this.reserved.set(ns, (this.reserved.get(ns) ?? 0) + d);
    this.reservedTotal += d;
  }

  private release(ns: string, d: number) {
    if (d <= 0) return;
    const n = (this.reserved.get(ns) ?? 0) - d;
    if (n > 0) this.reserved.set(ns, n);
    else this.reserved.delete(ns);
    this.reservedTotal -= d;
  }

  /** Throws QuotaExceededError when `delta` more bytes under `key` go past a quota. */
  private admit(key: string, ns: string, delta: number, obj: KubeObject) {
    if (delta <= 0) return;
    const extra = hasQuotaHeadroom(obj) ? this.headroom : 0;
    const { namespaceBytes, totalBytes } = this.opts;
    if (ns && namespaceBytes > 0) {
      const used = (this.used.get(ns) ?? 0) + (this.reserved.get(ns) ?? 0);
      if (used + delta > namespaceBytes + extra)
        throw new QuotaExceededError({ name: 'namespace-storage', namespace: ns, requested: delta, used, limited: namespaceBytes, flag: this.opts.namespaceFlag ?? '--namespace-storage-quota-mib' }, key);
    }
    if (totalBytes > 0) {
      const used = this.total + this.reservedTotal;
      if (used + delta > totalBytes + extra)
        throw new QuotaExceededError({ name: 'storage', requested: delta, used, limited: totalBytes, flag: this.opts.totalFlag ?? '--storage-quota-mib' }, key);
    }
  }

  /**
   * A dry-run create or update (`?dryRun=All`): refused as the write would be, nothing reserved.
   * kube's ResourceQuota admission checks dry-run requests too and charges nothing
   * (k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go checkQuotas: checkRequest,
   * then "Don't update quota for admissionAttributes that correspond to dry-run requests").
   */
  checkQuota(key: string, next: KubeObject, cur?: StoredObject): void {
    if (cur && (next === cur.obj || (next.metadata.deletionTimestamp && !cur.obj.metadata.deletionTimestamp))) return;
    const rv = cur ? Math.max(this.inner.currentRV(), cur.rv) : this.inner.currentRV();
    this.admit(key, namespaceOf(key), serializedLength(next, digits(rv + 1)) - (cur?.json.length ?? 0), next);
  }

  currentRV(): number {
    return this.inner.currentRV();
  }

  get(key: string): Promise<StoredObject | undefined> {
    return this.inner.get(key);
  }

  list(prefix: string, opts?: ListOptions): Promise<ListResult> {
    return this.inner.list(prefix, opts);
  }

  async create(key: string, obj: KubeObject): Promise<StoredObject> {
    const ns = namespaceOf(key);
    const size = serializedLength(obj, digits(this.inner.currentRV() + 1));
    this.admit(key, ns, size, obj);
    this.reserve(ns, size);
    try {
      return await this.inner.create(key, obj);
    } finally {
      this.release(ns, size);
    }
  }

  async update(key: string, tryUpdate: TryUpdate): Promise<StoredObject> {
    const ns = namespaceOf(key);
    let held = 0;
    try {
      return await this.inner.update(key, (cur) => {
        this.release(ns, held); // an earlier try (a conflict on etcd)
        held = 0;
        const next = tryUpdate(cur);
        if (next === null || next === cur.obj) return next;
        if (next.metadata.deletionTimestamp && !cur.obj.metadata.deletionTimestamp) return next; // a delete
        const delta = serializedLength(next, digits(Math.max(this.inner.currentRV(), cur.rv) + 1)) - cur.json.length;
        this.admit(key, ns, delta, next);
        this.reserve(ns, delta);
        held = Math.max(0, delta);
        return next;
      });
    } finally {
      this.release(ns, held);
    }
  }

  delete(key: string, check?: (current: StoredObject) => void): Promise<StoredObject> {
    return this.inner.delete(key, check);
  }

  watch(prefix: string, fromRV: number, listener: Listener, onError?: (err: StoreError) => void): WatchHandle {
    return this.inner.watch(prefix, fromRV, listener, onError);
  }

  syncRV(maxWaitMs?: number): Promise<unknown> {
    return this.inner.syncRV ? this.inner.syncRV(maxWaitMs) : Promise.resolve();
  }

  check(): Promise<void> {
    return this.inner.check ? this.inner.check() : Promise.resolve();
  }

  oldestWatchableRV(): number {
    const s = this.inner as Store & { oldestWatchableRV?(): number };
    return s.oldestWatchableRV?.() ?? 0;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.handle?.stop();
    await this.inner.close();
  }
}
