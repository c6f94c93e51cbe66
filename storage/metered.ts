// A Store decorator that times every storage operation into a histogram
// (apiserver_storage_operation_duration_seconds{operation,type}), so that neither the API layer
// nor the backend knows about metrics. `type` is the resource of the key (`/<group>/<plural>/...`
// gives `<plural>.<group>`, core kinds just `<plural>`), as etcd_request_duration_seconds has it.
import type { KubeObject } from '../kinds/types.js';
import type { ListOptions, ListResult, Listener, Store, StoredObject, TryUpdate, WatchHandle } from './store.js';
import type { StoreError } from './store.js';

/** The part of a prom-client Histogram this needs. */
export interface DurationHistogram {
  observe(labels: { operation: string; type: string }, seconds: number): void;
}

export function storageType(key: string): string {
  const segs = key.split('/', 3); // ['', group, plural]
  if (segs.length < 3 || segs[0] !== '' || !segs[1] || !segs[2]) return 'unknown';
  return segs[1] === 'core' ? segs[2] : `${segs[2]}.${segs[1]}`;
}

export class MeteredStore implements Store {
  constructor(
    readonly inner: Store,
    private readonly hist: DurationHistogram,
  ) {}

  private async timed<T>(operation: string, key: string, f: () => Promise<T>): Promise<T> {
    const start = performance.now();
    try {
      return await f();
    } finally {
      this.hist.observe({ operation, type: storageType(key) }, (performance.now() - start) / 1000);
    }
  }

  currentRV(): number {
    return this.inner.currentRV();
  }

  get(key: string): Promise<StoredObject | undefined> {
    return this.timed('get', key, () => this.inner.get(key));
  }

  list(prefix: string, opts?: ListOptions): Promise<ListResult> {
    return this.timed('list', prefix, () => this.inner.list(prefix, opts));
  }

  create(key: string, obj: KubeObject): Promise<StoredObject> {
    return this.timed('create', key, () => this.inner.create(key, obj));
  }

  update(key: string, tryUpdate: TryUpdate): Promise<StoredObject> {
    return this.timed('update', key, () => this.inner.update(key, tryUpdate));
  }

  delete(key: string, check?: (current: StoredObject) => void): Promise<StoredObject> {
    return this.timed('delete', key, () => this.inner.delete(key, check));
  }

  watch(prefix: string, fromRV: number, listener: Listener, onError?: (err: StoreError) => void): WatchHandle {
    return this.inner.watch(prefix, fromRV, listener, onError);
  }

  check(): Promise<void> {
    return this.inner.check ? this.inner.check() : Promise.resolve();
  }

  checkQuota(key: string, next: KubeObject, cur?: StoredObject): void {
    this.inner.checkQuota?.(key, next, cur);
  }

  syncRV(maxWaitMs?: number): Promise<unknown> {
    return this.inner.syncRV ? this.inner.syncRV(maxWaitMs) : Promise.resolve();
  }

  /** Optional on backends (LevelStore has it): the watch layer's "too old resource version" message. */
  oldestWatchableRV(): number {
    const s = this.inner as Store & { oldestWatchableRV?(): number };
    return s.oldestWatchableRV?.() ?? 0;
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
