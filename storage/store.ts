// The narrow storage interface the API layer is written against. Keys are opaque strings ordered
// bytewise; the API layer builds them as `/<group>/<resource>/<namespace>/<name>`.
import type { KubeObject } from '../kinds/types.js';

/** An object as stored: immutable once returned (callers clone before changing it). */
export interface StoredObject {
  key: string;
  rv: number;
  obj: KubeObject;
  /** The object serialised once at write time, so lists and watches never re-serialise. */
  json: string;
}

/**
 * The JSON of an object about to be written, already made by its writer (in slices, so a large
 * object is not serialised in one go): the text before and after the value of its
 * metadata.resourceVersion, which the store assigns. Only valid while the object is not changed.
 */
const serialized = new WeakMap<KubeObject, [string, string]>();
export const preSerialize = (obj: KubeObject, around: [string, string]) => void serialized.set(obj, around);

/** The length of the JSON serializeWithRV will make for `obj` with a resourceVersion of `rvDigits` digits. */
export function serializedLength(obj: KubeObject, rvDigits: number): number {
  const around = serialized.get(obj);
  if (around) return around[0].length + around[1].length + rvDigits + 2;
  const given = obj.metadata.resourceVersion;
  obj.metadata.resourceVersion = '0'.repeat(rvDigits);
  try {
    return JSON.stringify(obj).length;
  } finally {
    if (given === undefined) delete obj.metadata.resourceVersion;
    else obj.metadata.resourceVersion = given;
  }
}

/**
 * Objects the server writes about its own failures (a Ready=False status): the storage quota lets
 * them grow a namespace a little past its quota (storage/quota.ts), so that the condition saying
 * why a write was refused can still be written.
 */
const headroom = new WeakSet<KubeObject>();
export const allowQuotaHeadroom = (obj: KubeObject) => void headroom.add(obj);
export const hasQuotaHeadroom = (obj: KubeObject) => headroom.has(obj);

/** The object's JSON with `rv`: from preSerialize, or JSON.stringify. Sets metadata.resourceVersion. */
export function serializeWithRV(obj: KubeObject, rv: number): string {
  return serializeWithRVAt(obj, rv).json;
}

/** serializeWithRV, and where in the JSON the value of metadata.resourceVersion starts (when known). */
export function serializeWithRVAt(obj: KubeObject, rv: number): { json: string; rvAt?: number } {
  obj.metadata.resourceVersion = String(rv);
  const around = serialized.get(obj);
  if (!around) return { json: JSON.stringify(obj) };
  serialized.delete(obj);
  return { json: `${around[0]}"${rv}"${around[1]}`, rvAt: around[0].length };
}

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface StoreEvent {
  type: EventType;
  rv: number;
  key: string;
  /** The object after the change; for DELETED, the last state with the deletion's resourceVersion. */
  object: StoredObject;
  /** The state before the change (undefined when not known, e.g. events replayed after a restart). */
  prev?: StoredObject | null;
}

export interface ListOptions {
  limit?: number;
  /** Continue after this key (exclusive). */
  startAfter?: string;
  /** Read the state as of this resourceVersion (for consistent pagination). Expired if too old. */
  atRV?: number;
  /** Only items passing this count towards the limit (selectors). */
  filter?: (o: StoredObject) => boolean;
}

export interface ListResult {
  items: StoredObject[];
  /** The resourceVersion the list was read at. */
  rv: number;
  /** Set when there are more items: the last key returned. */
  lastKey?: string;
  /** With lastKey and no filter: how many items follow this page (kube's remainingItemCount). */
  remaining?: number;
}

export type Listener = (ev: StoreEvent) => void;

export interface WatchHandle {
  stop(): void;
}

/**
 * Computes the next state of an object from the current one (k8s GuaranteedUpdate). Returning
 * null deletes the object. Throwing aborts the update and nothing is written.
 */
export type TryUpdate = (current: StoredObject) => KubeObject | null;

export interface Store {
  /** The newest committed resourceVersion. */
  currentRV(): number;
  get(key: string): Promise<StoredObject | undefined>;
  list(prefix: string, opts?: ListOptions): Promise<ListResult>;
  /** Fails with AlreadyExists. Sets metadata.resourceVersion. */
  create(key: string, obj: KubeObject): Promise<StoredObject>;
  /** Fails with NotFound. The store serialises concurrent updates of one key. */
  update(key: string, tryUpdate: TryUpdate): Promise<StoredObject>;
  /** `check` may throw (e.g. a precondition); returns the deleted object with the delete's resourceVersion. */
  delete(key: string, check?: (current: StoredObject) => void): Promise<StoredObject>;
  /**
   * Delivers every event with rv > fromRV under prefix, in order, then live events.
   * Throws StoreError 'Expired' when events after fromRV are no longer kept.
   */
  watch(prefix: string, fromRV: number, listener: Listener, onError?: (err: StoreError) => void): WatchHandle;
  /** Waits until currentRV() has caught up with the backend (several replicas on one etcd). */
  syncRV?(maxWaitMs?: number): Promise<unknown>;
  /** The storage health check of /livez and /readyz: rejects when the backend cannot serve. */
  check?(): Promise<void>;
  /**
   * A dry-run write's quota check (storage/quota.ts): throws QuotaExceededError where creating
   * `next` (or updating `cur` to it) would, and reserves nothing.
   */
  checkQuota?(key: string, next: KubeObject, cur?: StoredObject): void;
  close(): Promise<void>;
}

export type StoreErrorCode = 'NotFound' | 'AlreadyExists' | 'Conflict' | 'Expired' | 'Unavailable' | 'QuotaExceeded';

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    readonly key?: string,
  ) {
    super(message);
  }
}

/** A write that would grow a namespace, or the whole store, past its storage quota (storage/quota.ts). */
export class QuotaExceededError extends StoreError {
  constructor(
    readonly quota: { name: string; namespace?: string; requested: number; used: number; limited: number; flag: string },
    key?: string,
  ) {
    super(
      'QuotaExceeded',
      `exceeded quota: ${quota.name}, requested: ${quota.requested} bytes, used: ${quota.used} bytes, limited: ${quota.limited} bytes (${quota.namespace !== undefined ? `the objects of namespace ${quota.namespace}` : 'all stored objects'}, ${quota.flag})`,
      key,
    );
  }
}
