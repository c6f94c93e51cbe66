// The embedded store: LevelDB on disk, the whole current state and a bounded event history in
// memory (like kube-apiserver's watch cache). Writes are sequenced synchronously (so checks and
// resourceVersion assignment never race) and committed in groups: every write queued while one
// fsync'd batch is in flight goes into the next batch, so many clients share one fsync and a
// write is acknowledged only after its batch is durable.
import { Level } from 'level';
import type { KubeObject } from '../kinds/types.js';
import {
  serializeWithRVAt,
  type ListOptions,
  type ListResult,
  type Listener,
  type Store,
  type StoreEvent,
  StoreError,
  type StoredObject,
  type TryUpdate,
  type WatchHandle,
} from './store.js';

export interface LevelStoreOptions {
  /** How many events are kept for watch resume and consistent pagination. */
  historySize?: number;
  /**
   * How many bytes of JSON the kept events may hold beyond the current objects (default 64 MiB):
   * the states they replaced and the last states of deleted objects. Older events are dropped.
   */
  historyBytes?: number;
}

export const DEFAULT_HISTORY_BYTES = 64 << 20;

interface PendingWrite {
  key: string;
  next: StoredObject | null;
  event: StoreEvent;
  resolve: (o: StoredObject) => void;
  reject: (e: unknown) => void;
}

type BatchOp = { type: 'put'; key: string; value: string } | { type: 'del'; key: string };

const OBJ = 'o'; // o<key> -> object JSON
const EVT = 'e'; // e<16-digit rv> -> event JSON
const RV_KEY = 'mrv';
const evKey = (rv: number) => EVT + String(rv).padStart(16, '0');

/** Objects are grouped by `/<group>/<resource>/` so a list scans only its own resource. */
function bucketOf(key: string): string {
  let i = 0;
  for (let n = 0; n < 2; n++) {
    i = key.indexOf('/', i + 1);
    if (i < 0) return key;
  }
  return key.slice(0, i + 1);
}

/** Where the value of metadata.resourceVersion starts in a stored object's JSON, when known. */
const rvAt = new WeakMap<StoredObject, number>();

function stored(key: string, obj: KubeObject, rv: number): StoredObject {
  const s = serializeWithRVAt(obj, rv);
  const o = { key, rv, obj, json: s.json };
  if (s.rvAt !== undefined) rvAt.set(o, s.rvAt);
  return o;
}

/**
 * The last state of a deleted object, with the deletion's resourceVersion: a copy of its top level
 * and metadata (the rest is shared: stored objects are not changed), and its JSON with the new
 * resourceVersion spliced in where it is known. A deep copy and JSON.stringify of a 3 MiB object
 * held the event loop 150-300 ms (issue 15).
 */
function storedDeleted(cur: StoredObject, rv: number): StoredObject {
  const obj: KubeObject = { ...cur.obj, metadata: { ...cur.obj.metadata, resourceVersion: String(rv) } };
  const at = rvAt.get(cur);
  const old = JSON.stringify(cur.obj.metadata.resourceVersion);
  const known = at !== undefined && cur.json.startsWith(old, at);
  const o = { key: cur.key, rv, obj, json: known ? cur.json.slice(0, at) + JSON.stringify(String(rv)) + cur.json.slice(at + old.length) : JSON.stringify(obj) };
  if (known) rvAt.set(o, at);
  return o;
}

class Bucket {
  readonly objects = new Map<string, StoredObject>();
  private sorted: string[] | undefined;
  set(key: string, o: StoredObject) {
    if (!this.objects.has(key)) this.sorted = undefined;
    this.objects.set(key, o);
  }
  delete(key: string) {
    if (this.objects.delete(key)) this.sorted = undefined;
  }
  keys(): string[] {
    return (this.sorted ??= [...this.objects.keys()].sort());
  }
}

export class LevelStore implements Store {
  private readonly buckets = new Map<string, Bucket>();
  /** Sequenced but not yet durable writes: consulted by writers only, never by readers. */
  private readonly pending = new Map<string, StoredObject | null>();
  private readonly pendingWrites = new Map<string, Promise<StoredObject>>();
  private queue: PendingWrite[] = [];
  private flushing: Promise<void> | undefined;
  private committedRV = 0;
  private nextRV = 1;
  /** Events in rv order; events with rv <= compactedRV are gone. */
  private events: StoreEvent[] = [];
  private compactedRV = 0;
  /** Pagination at an older rv needs each event's previous state, known only for events of this process. */
  private listCompactedRV = 0;
  private trimOps: BatchOp[] = [];
  private readonly listeners = new Set<{ prefix: string; listener: Listener }>();
  private readonly historySize: number;
  private readonly historyBytes: number;
  /** Bytes of JSON the kept events hold that no current object shares (what each event adds: `held`). */
  private heldBytes = 0;
  private readonly held = new WeakMap<StoreEvent, number>();
  private closed = false;

  private constructor(
    private readonly db: Level<string, string>,
    opts: LevelStoreOptions,
  ) {
    this.historySize = opts.historySize ?? 10000;
    this.historyBytes = opts.historyBytes ?? DEFAULT_HISTORY_BYTES;
  }

  /** The kept events: how many, and the bytes of JSON they hold beyond the current objects. */
  historyStats(): { events: number; bytes: number; oldestRV: number } {
    return { events: this.events.length, bytes: this.heldBytes, oldestRV: this.compactedRV };
  }

  private hold(e: StoreEvent, bytes: number) {
    if (bytes <= 0) return;
    this.held.set(e, bytes);
    this.heldBytes += bytes;
  }

  /** A write failed: the database is closed and opened again before the next one. */
  private reopen = false;

  static async open(dir: string, opts: LevelStoreOptions = {}): Promise<LevelStore> {
    const db = new Level<string, string>(dir, { valueEncoding: 'utf8' });
    await db.open();
    const s = new LevelStore(db, opts);
    await s.load();
    return s;
  }

  private async load() {
    const rv = await this.db.get(RV_KEY);
    this.committedRV = rv ? Number(rv) : 0;
    for await (const [k, v] of this.db.iterator({ gt: OBJ, lt: OBJ + '\xff' })) {
      const key = k.slice(OBJ.length);
      const obj = JSON.parse(v) as KubeObject;
      this.bucket(key).set(key, { key, rv: Number(obj.metadata.resourceVersion), obj, json: v });
    }
    // The newest events first, as many as fit the history's count and bytes (each a copy of its own).
    const evs: StoreEvent[] = [];
    let bytes = 0;
    let cut: string | undefined;
    for await (const [k, v] of this.db.iterator({ gt: EVT, lt: EVT + '\xff', reverse: true })) {
      const e = JSON.parse(v) as { t: StoreEvent['type']; k: string; o: KubeObject };
      const json = JSON.stringify(e.o);
      if (evs.length >= this.historySize || bytes + json.length > this.historyBytes) {
        cut = k;
        break;
      }
      const rv = Number(k.slice(EVT.length));
      const ev: StoreEvent = { type: e.t, rv, key: e.k, object: { key: e.k, rv, obj: e.o, json } };
      evs.push(ev);
      bytes += json.length;
      this.hold(ev, json.length);
    }
    this.events = evs.reverse();
    if (cut !== undefined) await this.db.clear({ gte: EVT, lte: cut });
    this.compactedRV = this.events.length ? this.events[0].rv - 1 : this.committedRV;
    this.listCompactedRV = this.committedRV;
    this.nextRV = this.committedRV + 1;
  }

  private bucket(key: string): Bucket {
    const b = bucketOf(key);
    let bucket = this.buckets.get(b);
    if (!bucket) this.buckets.set(b, (bucket = new Bucket()));
    return bucket;
  }

  private latest(key: string): StoredObject | undefined {
    if (this.pending.has(key)) return this.pending.get(key) ?? undefined;
    return this.buckets.get(bucketOf(key))?.objects.get(key);
  }

  currentRV(): number {
    return this.committedRV;
  }

  async get(key: string): Promise<StoredObject | undefined> {
    return this.buckets.get(bucketOf(key))?.objects.get(key);
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListResult> {
    const rv = opts.atRV ?? this.committedRV;
    if (rv > this.committedRV) throw new StoreError('Unavailable', `Too large resource version: ${rv}, current: ${this.committedRV}`);
    if (rv < this.listCompactedRV || rv < this.compactedRV)
      throw new StoreError('Expired', `The resourceVersion ${rv} is too old to list at; the oldest available is ${Math.max(this.listCompactedRV, this.compactedRV)}`);
    // Keys changed after rv, mapped to their state as of rv.
    const past = new Map<string, StoredObject | null>();
    if (rv < this.committedRV) {
      for (let i = this.eventIndexAfter(rv); i < this.events.length; i++) {
        const e = this.events[i];
        if (e.key.startsWith(prefix) && !past.has(e.key)) past.set(e.key, e.prev ?? null);
      }
    }
    const keys = this.keysUnder(prefix, past);
    const items: StoredObject[] = [];
    const limit = opts.limit && opts.limit > 0 ? opts.limit : Infinity;
    let lastKey: string | undefined;
    let i = opts.startAfter === undefined ? 0 : upperBound(keys, opts.startAfter);
    for (; i < keys.length; i++) {
      const k = keys[i];
      const o = past.has(k) ? past.get(k) : this.buckets.get(bucketOf(k))?.objects.get(k);
      if (!o || (opts.filter && !opts.filter(o))) continue;
      if (items.length === limit) {
        lastKey = items[items.length - 1].key;
        break;
      }
      items.push(o);
    }
    let remaining: number | undefined;
    if (lastKey !== undefined && !opts.filter) {
      remaining = 0;
      for (; i < keys.length; i++) if (past.has(keys[i]) ? past.get(keys[i]) : this.buckets.get(bucketOf(keys[i]))?.objects.has(keys[i])) remaining++;
    }
    return { items, rv, lastKey, ...(remaining !== undefined ? { remaining } : {}) };
  }

  /** Sorted keys under prefix, including keys that existed at an older rv (`past`). */
  private keysUnder(prefix: string, past: Map<string, unknown>): string[] {
    const b = bucketOf(prefix);
    let keys: string[];
    if (b.split('/').length === 4 && prefix.startsWith(b)) {
      const all = this.buckets.get(b)?.keys() ?? [];
      keys = prefix === b ? all : all.slice(lowerBound(all, prefix), upperBoundPrefix(all, prefix));
    } else {
      keys = [];
      for (const [name, bucket] of this.buckets) if (name.startsWith(prefix) || prefix.startsWith(name)) for (const k of bucket.keys()) if (k.startsWith(prefix)) keys.push(k);
      keys.sort();
    }
    const extra = [...past.keys()].filter((k) => !this.buckets.get(bucketOf(k))?.objects.has(k));
    if (extra.length) keys = [...new Set([...keys, ...extra])].sort();
    return keys;
  }

  private eventIndexAfter(rv: number): number {
    let lo = 0;
    let hi = this.events.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.events[mid].rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  async create(key: string, obj: KubeObject): Promise<StoredObject> {
    this.assertOpen();
    if (this.latest(key)) throw new StoreError('AlreadyExists', `${key} already exists`, key);
    const rv = this.nextRV++;
    const next = stored(key, obj, rv);
    return this.enqueue(key, next, { type: 'ADDED', rv, key, object: next, prev: null });
  }

  async update(key: string, tryUpdate: TryUpdate): Promise<StoredObject> {
    this.assertOpen();
    const cur = this.latest(key);
    if (!cur) throw new StoreError('NotFound', `${key} not found`, key);
    const obj = tryUpdate(cur);
    if (obj === null) return this.remove(key, cur);
    if (obj === cur.obj) return this.durable(key, cur); // no-op: no new resourceVersion, no event
    const rv = this.nextRV++;
    const next = stored(key, obj, rv);
    return this.enqueue(key, next, { type: 'MODIFIED', rv, key, object: next, prev: cur });
  }

  async delete(key: string, check?: (current: StoredObject) => void): Promise<StoredObject> {
    this.assertOpen();
    const cur = this.latest(key);
    if (!cur) throw new StoreError('NotFound', `${key} not found`, key);
    check?.(cur);
    return this.remove(key, cur);
  }

  private remove(key: string, cur: StoredObject): Promise<StoredObject> {
    const rv = this.nextRV++;
    const last = storedDeleted(cur, rv);
    return this.enqueue(key, null, { type: 'DELETED', rv, key, object: last, prev: cur });
  }

  /** Resolves with `cur` once the write that produced it (if still pending) is durable. */
  private durable(key: string, cur: StoredObject): Promise<StoredObject> {
    const p = this.pending.has(key) ? this.pendingWrites.get(key) : undefined;
    return p ? p.then(() => cur) : Promise.resolve(cur);
  }

  private enqueue(key: string, next: StoredObject | null, event: StoreEvent): Promise<StoredObject> {
    this.pending.set(key, next);
    const done = this.enqueueWrite(key, next, event);
    this.pendingWrites.set(key, done);
    return done;
  }

  private enqueueWrite(key: string, next: StoredObject | null, event: StoreEvent): Promise<StoredObject> {
    return new Promise((resolve, reject) => {
      this.queue.push({ key, next, event, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue;
      this.queue = [];
      const ops: BatchOp[] = this.trimOps;
      this.trimOps = [];
      for (const w of batch) {
        const e = w.event;
        ops.push(w.next ? { type: 'put', key: OBJ + w.key, value: w.next.json } : { type: 'del', key: OBJ + w.key });
        ops.push({ type: 'put', key: evKey(e.rv), value: `{"t":"${e.type}","k":${JSON.stringify(e.key)},"o":${e.object.json}}` });
      }
      ops.push({ type: 'put', key: RV_KEY, value: String(batch[batch.length - 1].event.rv) });
      try {
        // After a failed write LevelDB's log may end in a torn record, and a record appended after
        // it is acknowledged but dropped when the log is recovered at the next start (a full disk
        // lost the write after it, issue 15): reopen first, which recovers the log into a table and
        // starts a new one. While that fails (the disk still full), writes fail as before.
        if (this.reopen) {
          await this.db.close();
          await this.db.open();
          this.reopen = false;
        }
        await this.db.batch(ops, { sync: true });
      } catch (err) {
        this.reopen = true;
        // Nothing of this batch is durable, and queued writes may build on it: fail them all.
        const failed = [...batch, ...this.queue];
        this.queue = [];
        this.pending.clear();
        this.pendingWrites.clear();
        this.nextRV = this.committedRV + 1;
        const e = new StoreError('Unavailable', `storage write failed: ${(err as Error).message}`);
        for (const w of failed) w.reject(e);
        continue;
      }
      for (const w of batch) this.commit(w);
      this.trim();
    }
    // Cleared in the same synchronous step as the empty-queue check: a write queued by a callback
    // that runs later (even in a microtask before a .finally would run) starts the next flush.
    this.flushing = undefined;
  }

  private commit(w: PendingWrite) {
    const b = this.bucket(w.key);
    if (w.next) b.set(w.key, w.next);
    else b.delete(w.key);
    if (this.pending.get(w.key) === w.next) {
      this.pending.delete(w.key);
      this.pendingWrites.delete(w.key);
    }
    this.committedRV = w.event.rv;
    this.events.push(w.event);
    // what the event holds that is no current object: the state it replaced, a deleted object's last state
    this.hold(w.event, (w.event.prev?.json.length ?? 0) + (w.next ? 0 : w.event.object.json.length));
    // A copy: a watch started by a listener has already replayed this event.
    for (const l of [...this.listeners]) {
      if (!w.key.startsWith(l.prefix) || !this.listeners.has(l)) continue;
      try {
        l.listener(w.event);
      } catch {
        // a broken watcher must not break the commit path
      }
    }
    w.resolve(w.next ?? w.event.object);
  }

  /** Drops the oldest events past the count (in steps of a tenth) or the bytes (down to nine tenths). */
  private trim() {
    let n = this.events.length - this.historySize;
    if (n < Math.max(1, this.historySize / 10)) n = 0;
    if (this.heldBytes > this.historyBytes) {
      let bytes = this.heldBytes;
      for (let i = 0; i < n; i++) bytes -= this.held.get(this.events[i]) ?? 0;
      while (n < this.events.length && bytes > this.historyBytes * 0.9) bytes -= this.held.get(this.events[n++]) ?? 0;
    }
    if (n <= 0) return;
    const dropped = this.events.splice(0, n);
    for (const e of dropped) {
      this.heldBytes -= this.held.get(e) ?? 0;
      this.trimOps.push({ type: 'del', key: evKey(e.rv) });
    }
    this.compactedRV = dropped[dropped.length - 1].rv;
  }

  /** The oldest resourceVersion a watch can resume from. */
  oldestWatchableRV(): number {
    return this.compactedRV;
  }

  watch(prefix: string, fromRV: number, listener: Listener): WatchHandle {
    if (fromRV < this.compactedRV)
      throw new StoreError('Expired', `too old resource version: ${fromRV} (${this.compactedRV})`);
    for (let i = this.eventIndexAfter(fromRV); i < this.events.length; i++) {
      if (this.events[i].key.startsWith(prefix)) listener(this.events[i]);
    }
    const entry = { prefix, listener };
    this.listeners.add(entry);
    return { stop: () => this.listeners.delete(entry) };
  }

  async check(): Promise<void> {
    this.assertOpen();
  }

  private assertOpen() {
    if (this.closed) throw new StoreError('Unavailable', 'storage is shutting down');
  }

  async close(): Promise<void> {
    this.closed = true;
    while (this.flushing) await this.flushing;
    this.listeners.clear();
    await this.db.close();
  }
}

/** First index whose key is > k. */
function upperBound(keys: string[], k: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (keys[mid] <= k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function lowerBound(keys: string[], k: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (keys[mid] < k) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function upperBoundPrefix(keys: string[], prefix: string): number {
  return lowerBound(keys, prefix + '\uffff');
}
