// The distributed store: etcd v3 (the `etcd3` client on grpc-js). An object is one etcd key,
// `<prefix><store key>`, holding the object's JSON with an empty metadata.resourceVersion; reads
// fill it in from the key's mod_revision, so resourceVersion is etcd's revision and several
// server processes on one etcd share one resourceVersion sequence.
//
// - Writes are transactions: create compares create_revision == 0; update and delete compare
//   mod_revision with the state they were computed from, and retry on a conflict with the fresh
//   state (so tryUpdate may run more than once, each time on the current object). Writes of one
//   key are serialised within this process, so retries come only from other processes.
// - One etcd watch on the whole prefix (started at open(), with prev_kv) feeds an in-memory ring of
//   recent events, like the LevelDB store's history: watch() replays from the ring synchronously
//   (or throws Expired) and then delivers live events in revision order. A write is acknowledged
//   only after its own event has come back through that watch, so currentRV() (the newest
//   revision the watch has delivered) is >= every write this process acknowledged, and every
//   listener has seen the write before its caller does.
// - get is a linearizable read. list reads every page at one revision (atRV, or the cluster's
//   revision at the first page): compacted -> Expired, newer than the cluster -> Unavailable "Too
//   large resource version".
// - A compactor (on by default, every 5 minutes, as kube-apiserver does) compacts etcd to the
//   revision seen one interval earlier; all processes on the prefix coordinate through one key,
//   so one of them compacts per interval. Known compactions also trim the ring.
import { readFileSync } from 'node:fs';
import { noop } from 'cockatiel';
import { Etcd3, type IKeyValue, type IOptions, type IRangeResponse, type IWatchRequest, type IWatchResponse, isRecoverableError } from 'etcd3';
import type { KubeObject } from '../kinds/types.js';
import {
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

export interface EtcdStoreOptions {
  /** Client URLs, e.g. `http://127.0.0.1:2379` or `https://etcd-0.etcd:2379`. */
  endpoints: string[];
  /** Key prefix of this store in etcd (default `/ocm-apiserver`); keys are `<prefix><store key>`. */
  prefix?: string;
  /** TLS: each a file path or PEM text. TLS is used when this is given or an endpoint is https://. */
  tls?: { ca?: string; cert?: string; key?: string };
  /** Events kept in memory for watch resume (default 10000). */
  historySize?: number;
  /** Bytes of JSON the kept events may hold, each its object and previous state (default 64 MiB). */
  historyBytes?: number;
  /** Milliseconds between compactions; 0 turns this process's compactor off (default 300000). */
  compactionIntervalMs?: number;
  /** How often an update is tried when other processes keep changing the object (default 100). */
  maxUpdateAttempts?: number;
  /**
   * Deadline of each etcd request in milliseconds (default 30000); also how long a committed write
   * waits for its event to come back through the watch before it is acknowledged anyway.
   */
  requestTimeoutMs?: number;
  /** Problems of the background watch and compactor (default: console.error). */
  onError?: (err: Error) => void;
}

/** Called when a watch can no longer deliver every event (etcd compacted history this process had not seen yet). */
export type WatchErrorHandler = (err: StoreError) => void;

interface Entry {
  prefix: string;
  fromRV: number;
  listener: Listener;
  onError?: WatchErrorHandler;
}

interface Waiter {
  rv: number;
  resolve: () => void;
}

type WatchStream = Awaited<ReturnType<Etcd3['watchClient']['watch']>>;

const DEFAULT_PREFIX = '/ocm-apiserver';
const LIST_BATCH = 500;
/** How long a list waits for the watch to catch up with the revision it read at (as kube's watch cache waits 3s). */
const LIST_SYNC_WAIT_MS = 3000;

function pem(v: string): Buffer {
  return v.includes('-----BEGIN') ? Buffer.from(v) : readFileSync(v);
}

/** The first key after every key that starts with `p` (etcd's prefix range_end). */
export function prefixEnd(p: Buffer): Buffer {
  const end = Buffer.from(p);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) {
      end[i]++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]); // all 0xff: to the end of the keyspace
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

const isCompacted = (err: unknown) => /required revision has been compacted/.test(message(err));
const isFutureRev = (err: unknown) => /required revision is a future revision/.test(message(err));

/** Puts back the resourceVersion a caller's object had before a write that did not happen. */
function restore(obj: KubeObject, given: string | undefined) {
  if (given === undefined) delete obj.metadata.resourceVersion;
  else obj.metadata.resourceVersion = given;
}

/** An etcd failure as a StoreError (StoreErrors and errors from callbacks pass through). */
function unavailable(err: unknown): never {
  if (err instanceof StoreError) throw err;
  throw new StoreError('Unavailable', `etcd: ${message(err)}`);
}

export class EtcdStore implements Store {
  private readonly root: string;
  private readonly watchStart: Buffer;
  private readonly watchEnd: Buffer;
  private readonly compactKey: Buffer;
  private readonly historySize: number;
  private readonly historyBytes: number;
  /** Bytes of JSON the ring holds (objects and previous states: this store keeps no current objects). */
  private ringBytes = 0;
  private readonly maxUpdateAttempts: number;
  private readonly ackTimeoutMs: number;
  private readonly onError: (err: Error) => void;

  /** Newest revision the watch has delivered (events or a confirmed progress notification). */
  private seenRV = 0;
  /** Events with rv > ringStart are all in the ring, in order. */
  private ringStart = 0;
  private ring: StoreEvent[] = [];
  private readonly listeners = new Set<Entry>();
  private waiters: Waiter[] = [];
  /** Waiters that ask for progress notifications (lists); writes wait for their own events. */
  private syncWanted = 0;

  private stream: WatchStream | undefined;
  private streamReady = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private backoffMs = 100;
  private progressPhase: 0 | 1 | 2 = 0;
  private progressRV = 0;
  private created: { resolve: () => void; reject: (e: Error) => void } | undefined;

  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly inflight = new Set<Promise<unknown>>();
  private compactTimer: NodeJS.Timeout | undefined;
  private compactTime = 0;
  private compactNextRev = 0;
  /** No new operations (close() was called). */
  private closed = false;
  /** The watch is stopped for good (close() has completed the in-flight writes). */
  private stopped = false;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly client: Etcd3,
    opts: EtcdStoreOptions,
  ) {
    this.root = (opts.prefix ?? DEFAULT_PREFIX).replace(/\/+$/, '');
    this.watchStart = Buffer.from(this.root + '/');
    this.watchEnd = prefixEnd(this.watchStart);
    // outside the watched range ('#' < '/'), so compaction bookkeeping is no object event
    this.compactKey = Buffer.from(this.root + '#compact-revision');
    this.historySize = opts.historySize ?? 10000;
    this.historyBytes = opts.historyBytes ?? 64 << 20;
    this.maxUpdateAttempts = opts.maxUpdateAttempts ?? 100;
    this.ackTimeoutMs = opts.requestTimeoutMs ?? 30000;
    this.onError = opts.onError ?? ((err) => console.error(`etcd store: ${err.message}`));
  }

  static async open(opts: EtcdStoreOptions): Promise<EtcdStore> {
    if (!opts.endpoints?.length) throw new Error('EtcdStore: no endpoints');
    const timeout = opts.requestTimeoutMs ?? 30000;
    const useTLS = !!opts.tls || opts.endpoints.some((e) => e.startsWith('https://'));
    const options: IOptions = {
      hosts: opts.endpoints,
      // no automatic retries: a retried transaction could apply twice. Reads retry themselves.
      faultHandling: { global: noop },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      grpcOptions: {
        'grpc.max_receive_message_length': 256 * 1024 * 1024,
        'grpc.max_send_message_length': 64 * 1024 * 1024,
        'grpc.keepalive_time_ms': 30000,
        'grpc.keepalive_timeout_ms': 10000,
      },
    };
    if (useTLS) {
      const tls = opts.tls ?? {};
      options.credentials = {
        // null: the system's roots
        rootCertificate: (tls.ca ? pem(tls.ca) : null) as Buffer,
        ...(tls.key ? { privateKey: pem(tls.key) } : {}),
        ...(tls.cert ? { certChain: pem(tls.cert) } : {}),
      };
    }
    const client = new Etcd3(options);
    const s = new EtcdStore(client, opts);
    try {
      const rv = await s.clusterRV();
      s.seenRV = s.ringStart = rv;
      await s.startWatch(timeout);
    } catch (err) {
      s.closed = true;
      s.stopWatch();
      client.close();
      unavailable(err);
    }
    const interval = opts.compactionIntervalMs ?? 300000;
    if (interval > 0) s.scheduleCompaction(interval);
    return s;
  }

  // ---- keys and objects ----------------------------------------------------------------------

  private etcdKey(key: string): Buffer {
    return Buffer.from(this.root + key);
  }

  /** Object keys are `/...` (the API's `/<group>/<resource>/...`): the watch covers `<prefix>/`. */
  private static checkKey(key: string) {
    if (!key.startsWith('/')) throw new Error(`EtcdStore: keys must start with '/': ${JSON.stringify(key)}`);
  }

  /** The etcd range holding the store keys that start with `prefix`. */
  private rangeOf(prefix: string): [Buffer, Buffer] | undefined {
    if (prefix === '') return [this.watchStart, this.watchEnd];
    if (!prefix.startsWith('/')) return undefined; // store keys all start with '/'
    const start = this.etcdKey(prefix);
    return [start, prefixEnd(start)];
  }

  private storeKey(k: Buffer): string {
    return k.toString('utf8').slice(this.root.length);
  }

  /** An object read from etcd, with its resourceVersion filled in. */
  private decode(key: string, value: Buffer, rv: number): StoredObject {
    const obj = JSON.parse(value.toString('utf8')) as KubeObject;
    obj.metadata ??= {} as KubeObject['metadata'];
    obj.metadata.resourceVersion = String(rv);
    return { key, rv, obj, json: JSON.stringify(obj) };
  }

  private fromKV(kv: IKeyValue): StoredObject {
    return this.decode(this.storeKey(kv.key), kv.value, Number(kv.mod_revision));
  }

  /**
   * The value to store: the object with an empty resourceVersion. The field stays in place, so the
   * JSON read back (with the revision filled in) is the JSON acknowledged to the writer.
   */
  private encode(obj: KubeObject): Buffer {
    obj.metadata.resourceVersion = '';
    return Buffer.from(JSON.stringify(obj));
  }

  private static stamp(key: string, obj: KubeObject, rv: number): StoredObject {
    obj.metadata.resourceVersion = String(rv);
    return { key, rv, obj, json: JSON.stringify(obj) };
  }

  // ---- reads -------------------------------------------------------------------------------

  /** A read, retried a few times on transient failures (reads are idempotent). */
  private async read<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (attempt >= 3 || !(err instanceof Error) || !isRecoverableError(err) || this.closed) throw err;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  }

  /** The cluster's current revision (a linearizable read). */
  private async clusterRV(): Promise<number> {
    const res = await this.read(() => this.client.kv.range({ key: this.compactKey, count_only: true }));
    return Number(res.header.revision);
  }

  /** A linearizable read of one key. */
  private async fetch(key: string): Promise<StoredObject | undefined> {
    const res = await this.read(() => this.client.kv.range({ key: this.etcdKey(key) }));
    const kv = res.kvs[0];
    return kv ? this.decode(key, kv.value, Number(kv.mod_revision)) : undefined;
  }

  currentRV(): number {
    return this.seenRV;
  }

  /** The oldest resourceVersion a watch can resume from. */
  /** Keys for leader election on this store's connection, outside the objects' range (`<prefix>#`). */
  electionNamespace(): import('etcd3').Namespace {
    return this.client.namespace(this.root + '#');
  }

  oldestWatchableRV(): number {
    return this.ringStart;
  }

  /**
   * The cluster's current revision, once this process's watch has caught up with it (so
   * currentRV() >= the result). For callers that must compare a client's resourceVersion, which
   * may come from another server process, with currentRV().
   */
  async syncRV(maxWaitMs = LIST_SYNC_WAIT_MS): Promise<number> {
    this.assertOpen();
    const rv = await this.clusterRV().catch(unavailable);
    await this.syncTo(rv, maxWaitMs);
    return rv;
  }

  async get(key: string): Promise<StoredObject | undefined> {
    this.assertOpen();
    return this.fetch(key).catch(unavailable);
  }

  async list(prefix: string, opts: ListOptions = {}): Promise<ListResult> {
    this.assertOpen();
    let rv = opts.atRV;
    if (rv !== undefined && rv > this.seenRV) {
      const cur = await this.clusterRV().catch(unavailable);
      if (rv > cur) throw new StoreError('Unavailable', `Too large resource version: ${rv}, current: ${cur}`);
    }
    const range = this.rangeOf(prefix);
    const items: StoredObject[] = [];
    let lastKey: string | undefined;
    let remaining: number | undefined;
    if (range) {
      const limit = opts.limit && opts.limit > 0 ? opts.limit : Infinity;
      let [start] = range;
      const end = range[1];
      if (opts.startAfter !== undefined) {
        const after = Buffer.concat([this.etcdKey(opts.startAfter), Buffer.from([0])]);
        if (Buffer.compare(after, start) > 0) start = after;
      }
      for (let done = false; !done && Buffer.compare(start, end) < 0; ) {
        // one more than still needed, so a full page knows whether another item follows
        const batch = limit === Infinity || opts.filter ? LIST_BATCH : Math.min(LIST_BATCH, limit - items.length + 1);
        const at = rv;
        let res: IRangeResponse;
        try {
          res = await this.read(() => this.client.kv.range({ key: start, range_end: end, limit: batch, ...(at !== undefined ? { revision: at } : {}) }));
        } catch (err) {
          if (isCompacted(err)) throw new StoreError('Expired', `The resourceVersion ${at} is too old to list at: etcd has compacted it`);
          if (isFutureRev(err)) throw new StoreError('Unavailable', `Too large resource version: ${at}, current: ${this.seenRV}`);
          unavailable(err);
        }
        rv ??= Number(res.header.revision);
        for (const [j, kv] of res.kvs.entries()) {
          const o = this.fromKV(kv);
          if (opts.filter && !opts.filter(o)) continue;
          if (items.length === limit) {
            lastKey = items[items.length - 1].key;
            if (!opts.filter) remaining = Number(res.count) - j; // count: every key of the range from this batch's start
            done = true;
            break;
          }
          items.push(o);
        }
        if (!res.more || res.kvs.length === 0) break;
        start = Buffer.concat([res.kvs[res.kvs.length - 1].key, Buffer.from([0])]);
      }
    }
    if (rv === undefined) rv = await this.clusterRV().catch(unavailable); // an empty range was not read
    // a list at the current revision: let currentRV() catch up, so the list's resourceVersion is
    // one this process's watches (and bookmarks) have reached
    if (opts.atRV === undefined) await this.syncTo(rv, LIST_SYNC_WAIT_MS);
    return { items, rv, lastKey, ...(remaining !== undefined ? { remaining } : {}) };
  }

  // ---- writes ------------------------------------------------------------------------------

  /** Runs the write's etcd part after earlier writes of the same key in this process. */
  private serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(key);
    const run = prev ? prev.then(fn, fn) : fn();
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(key, tail);
    void tail.then(() => {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    });
    return run;
  }

  /** Tracks a write for close(), and acknowledges it once the watch has delivered its revision. */
  private write(key: string, fn: () => Promise<{ result: StoredObject; rv: number }>): Promise<StoredObject> {
    this.assertOpen();
    EtcdStore.checkKey(key);
    const p = this.serial(key, fn).then(async ({ result, rv }) => {
      if (rv > this.seenRV) {
        // committed; normally its event is back within milliseconds. A watch that cannot catch up
        // (etcd unreachable for it) must not hold the write forever: acknowledge it anyway.
        let timer: NodeJS.Timeout | undefined;
        const late = await Promise.race([
          this.waitSeen(rv).then(() => false),
          new Promise<boolean>((r) => (timer = setTimeout(() => r(true), this.ackTimeoutMs))),
        ]);
        clearTimeout(timer);
        if (late) this.onError(new Error(`acknowledging ${key}@${rv} before the watch delivered it (the watch is at ${this.seenRV})`));
      }
      return result;
    });
    this.inflight.add(p);
    const untrack = () => void this.inflight.delete(p);
    p.then(untrack, untrack);
    return p;
  }

  async create(key: string, obj: KubeObject): Promise<StoredObject> {
    return this.write(key, async () => {
      const given = obj.metadata.resourceVersion;
      const k = this.etcdKey(key);
      let res;
      try {
        res = await this.client.kv.txn({
          compare: [{ key: k, target: 'Create', result: 'Equal', create_revision: 0 }],
          success: [{ request_put: { key: k, value: this.encode(obj) } }],
          failure: [],
        });
      } catch (err) {
        restore(obj, given);
        unavailable(err);
      }
      if (!res.succeeded) {
        restore(obj, given);
        throw new StoreError('AlreadyExists', `${key} already exists`, key);
      }
      const rv = Number(res.header.revision);
      return { result: EtcdStore.stamp(key, obj, rv), rv };
    });
  }

  async update(key: string, tryUpdate: TryUpdate): Promise<StoredObject> {
    return this.write(key, async () => {
      let cur = await this.fetch(key).catch(unavailable);
      for (let attempt = 1; ; attempt++) {
        if (!cur) throw new StoreError('NotFound', `${key} not found`, key);
        const next = tryUpdate(cur);
        if (next === cur.obj) return { result: cur, rv: 0 }; // no-op: no new resourceVersion, no event
        const r = next === null ? await this.txnDelete(key, cur) : await this.txnPut(key, cur, next);
        if (r.done) return r.done;
        cur = r.current;
        if (attempt >= this.maxUpdateAttempts) throw new StoreError('Conflict', `${key}: gave up after ${attempt} conflicting updates`, key);
        if (attempt > 3) await new Promise((res) => setTimeout(res, Math.random() * 5 * attempt));
      }
    });
  }

  async delete(key: string, check?: (current: StoredObject) => void): Promise<StoredObject> {
    return this.write(key, async () => {
      let cur = await this.fetch(key).catch(unavailable);
      for (let attempt = 1; ; attempt++) {
        if (!cur) throw new StoreError('NotFound', `${key} not found`, key);
        check?.(cur);
        const r = await this.txnDelete(key, cur);
        if (r.done) return r.done;
        cur = r.current;
        if (attempt >= this.maxUpdateAttempts) throw new StoreError('Conflict', `${key}: gave up after ${attempt} conflicting writes`, key);
        if (attempt > 3) await new Promise((res) => setTimeout(res, Math.random() * 5 * attempt));
      }
    });
  }

  private async txnPut(key: string, cur: StoredObject, next: KubeObject): Promise<{ done?: { result: StoredObject; rv: number }; current?: StoredObject }> {
    const k = this.etcdKey(key);
    const given = next.metadata.resourceVersion;
    let res;
    try {
      res = await this.client.kv.txn({
        compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: cur.rv }],
        success: [{ request_put: { key: k, value: this.encode(next) } }],
        failure: [{ request_range: { key: k } }],
      });
    } catch (err) {
      restore(next, given);
      unavailable(err);
    }
    if (res.succeeded) {
      const rv = Number(res.header.revision);
      return { done: { result: EtcdStore.stamp(key, next, rv), rv } };
    }
    restore(next, given);
    const kv = res.responses[0]?.response_range?.kvs[0];
    return { current: kv ? this.fromKV(kv) : undefined };
  }

  private async txnDelete(key: string, cur: StoredObject): Promise<{ done?: { result: StoredObject; rv: number }; current?: StoredObject }> {
    const k = this.etcdKey(key);
    let res;
    try {
      res = await this.client.kv.txn({
        compare: [{ key: k, target: 'Mod', result: 'Equal', mod_revision: cur.rv }],
        success: [{ request_delete_range: { key: k } }],
        failure: [{ request_range: { key: k } }],
      });
    } catch (err) {
      unavailable(err);
    }
    if (res.succeeded) {
      const rv = Number(res.header.revision);
      // the last state with the delete's resourceVersion (a copy: cur stays as it was)
      return { done: { result: EtcdStore.stamp(key, JSON.parse(cur.json) as KubeObject, rv), rv } };
    }
    const kv = res.responses[0]?.response_range?.kvs[0];
    return { current: kv ? this.fromKV(kv) : undefined };
  }

  // ---- the watch and the ring --------------------------------------------------------------

  watch(prefix: string, fromRV: number, listener: Listener, onError?: WatchErrorHandler): WatchHandle {
    if (fromRV < this.ringStart) throw new StoreError('Expired', `too old resource version: ${fromRV} (${this.ringStart})`);
    for (let i = this.eventIndexAfter(fromRV); i < this.ring.length; i++) {
      if (this.ring[i].key.startsWith(prefix)) listener(this.ring[i]);
    }
    const entry: Entry = { prefix, fromRV, listener, onError };
    this.listeners.add(entry);
    return { stop: () => this.listeners.delete(entry) };
  }

  private eventIndexAfter(rv: number): number {
    let lo = 0;
    let hi = this.ring.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.ring[mid].rv <= rv) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  private startWatch(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the etcd watch was not created within ${timeoutMs}ms`)), timeoutMs);
      this.created = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
      void this.connect();
    });
  }

  private async connect(): Promise<void> {
    this.reconnectTimer = undefined;
    if (this.stopped) return;
    let stream: WatchStream;
    try {
      stream = await this.client.watchClient.watch();
    } catch (err) {
      this.broken(undefined, err);
      return;
    }
    if (this.stopped) {
      stream.cancel();
      return;
    }
    this.stream = stream;
    this.streamReady = false;
    this.progressPhase = 0;
    stream.on('data', (res: IWatchResponse) => this.onResponse(stream, res));
    stream.on('error', (err: Error) => this.broken(stream, err));
    stream.on('end', () => this.broken(stream, new Error('the etcd watch stream ended')));
    this.send(stream, {
      create_request: { key: this.watchStart, range_end: this.watchEnd, start_revision: this.seenRV + 1, prev_kv: true },
    });
  }

  private send(stream: WatchStream, req: IWatchRequest) {
    try {
      stream.write(req);
    } catch (err) {
      this.broken(stream, err);
    }
  }

  /** The stream failed: reconnect from the last delivered revision after a backoff. */
  private broken(stream: WatchStream | undefined, err: unknown) {
    if (stream && stream !== this.stream) return;
    if (this.stream) {
      try {
        this.stream.cancel();
      } catch {
        // already gone
      }
    }
    this.stream = undefined;
    this.streamReady = false;
    this.progressPhase = 0;
    if (this.stopped) return;
    if (this.created) {
      // still opening: report instead of retrying forever
      this.created.reject(err instanceof Error ? err : new Error(String(err)));
      this.created = undefined;
      return;
    }
    this.onError(new Error(`watch on ${this.root}/ failed, reconnecting: ${message(err)}`));
    if (!this.reconnectTimer) {
      this.reconnectTimer = setTimeout(() => void this.connect(), this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, 5000);
    }
  }

  private onResponse(stream: WatchStream, res: IWatchResponse) {
    if (stream !== this.stream || this.stopped) return;
    if (res.canceled) {
      const compacted = Number(res.compact_revision);
      if (compacted > 0) return this.historyLost(stream, compacted);
      return this.broken(stream, new Error(`the etcd watch was cancelled: ${res.cancel_reason || 'no reason given'}`));
    }
    if (res.created) {
      this.streamReady = true;
      this.backoffMs = 100;
      this.created?.resolve();
      this.created = undefined;
      if (this.syncWanted > 0) this.requestProgress();
      return;
    }
    if (res.events.length === 0) return this.onProgress(Number(res.header.revision));
    let last = this.seenRV;
    for (const ev of res.events) {
      let e: StoreEvent;
      try {
        e = this.toEvent(ev.type, ev.kv, ev.prev_kv);
      } catch (err) {
        this.onError(new Error(`skipping an undecodable event for ${ev.kv.key.toString()}: ${message(err)}`));
        continue;
      }
      last = Math.max(last, e.rv);
      this.ring.push(e);
      this.ringBytes += EtcdStore.heldBy(e);
      // a copy: a watch started by a listener has already replayed this event
      for (const l of [...this.listeners]) {
        if (e.rv <= l.fromRV || !e.key.startsWith(l.prefix) || !this.listeners.has(l)) continue;
        try {
          l.listener(e);
        } catch {
          // a broken watcher must not break the others or the writes waiting for this event
        }
      }
    }
    this.trim();
    this.advance(last);
  }

  private toEvent(type: string, kv: IKeyValue, prevKV: IKeyValue | null | undefined): StoreEvent {
    const key = this.storeKey(kv.key);
    const rv = Number(kv.mod_revision);
    const prev = prevKV ? this.fromKV(prevKV) : undefined;
    if (type === 'Put') {
      const added = kv.create_revision === kv.mod_revision;
      return { type: added ? 'ADDED' : 'MODIFIED', rv, key, object: this.decode(key, kv.value, rv), prev: added ? null : prev };
    }
    // a delete: the last state, with the delete's revision
    const object = prevKV
      ? this.decode(key, prevKV.value, rv)
      : EtcdStore.stamp(key, { apiVersion: '', kind: '', metadata: { name: key.slice(key.lastIndexOf('/') + 1) } } as KubeObject, rv);
    return { type: 'DELETED', rv, key, object, prev };
  }

  private static heldBy(e: StoreEvent): number {
    return e.object.json.length + (e.prev?.json.length ?? 0);
  }

  /** The kept events: how many, and the bytes of JSON they hold. */
  historyStats(): { events: number; bytes: number; oldestRV: number } {
    return { events: this.ring.length, bytes: this.ringBytes, oldestRV: this.ringStart };
  }

  /** Drops the oldest events past the count (in steps of a tenth) or the bytes (down to nine tenths). */
  private trim() {
    let n = this.ring.length - this.historySize;
    if (n < Math.max(1, this.historySize / 10)) n = 0;
    if (this.ringBytes > this.historyBytes) {
      let bytes = this.ringBytes;
      for (let i = 0; i < n; i++) bytes -= EtcdStore.heldBy(this.ring[i]);
      while (n < this.ring.length && bytes > this.historyBytes * 0.9) bytes -= EtcdStore.heldBy(this.ring[n++]);
    }
    if (n <= 0) return;
    this.dropOldest(n);
  }

  private dropOldest(n: number) {
    const dropped = this.ring.splice(0, n);
    for (const e of dropped) this.ringBytes -= EtcdStore.heldBy(e);
    if (dropped.length) this.ringStart = Math.max(this.ringStart, dropped[dropped.length - 1].rv);
  }

  /** etcd compacted revisions this process's watch had not delivered yet: start over from there. */
  private historyLost(stream: WatchStream, compacted: number) {
    const err = new StoreError('Expired', `etcd compacted revisions up to ${compacted} before this process's watch (at ${this.seenRV}) delivered them`);
    this.onError(err);
    const victims = [...this.listeners];
    this.listeners.clear();
    this.ring = [];
    this.ringBytes = 0;
    this.ringStart = Math.max(this.ringStart, compacted - 1);
    this.advance(compacted - 1);
    for (const l of victims) {
      try {
        l.onError?.(err);
      } catch {
        // ignore
      }
    }
    this.broken(stream, err); // reconnects from seenRV + 1 == compacted
  }

  /** Records that the watch has delivered everything up to rv and wakes who waited for that. */
  private advance(rv: number) {
    if (rv <= this.seenRV) return;
    this.seenRV = rv;
    if (!this.waiters.length) return;
    const ready: Waiter[] = [];
    const rest: Waiter[] = [];
    for (const w of this.waiters) (w.rv <= rv ? ready : rest).push(w);
    this.waiters = rest;
    ready.sort((a, b) => a.rv - b.rv);
    for (const w of ready) w.resolve();
  }

  private waitSeen(rv: number): Promise<void> {
    if (rv <= this.seenRV) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ rv, resolve }));
  }

  /** Waits (at most maxWaitMs) until the watch has reached rv, asking etcd for progress notifications. */
  private async syncTo(rv: number, maxWaitMs: number): Promise<void> {
    if (rv <= this.seenRV) return;
    this.syncWanted++;
    let timer: NodeJS.Timeout | undefined;
    try {
      const seen = this.waitSeen(rv);
      this.requestProgress();
      await Promise.race([seen, new Promise<void>((r) => (timer = setTimeout(r, maxWaitMs)))]);
    } finally {
      clearTimeout(timer);
      this.syncWanted--;
    }
  }

  /**
   * Progress notifications say "every event up to revision R has been sent". Before etcd 3.4.25 /
   * 3.5.8 a requested one could overtake events already queued for the stream, so a
   * notification's revision is used only once a second request has made the round trip.
   */
  private requestProgress() {
    if (this.progressPhase !== 0 || !this.stream || !this.streamReady) return;
    this.progressPhase = 1;
    this.send(this.stream, { progress_request: {} });
  }

  private onProgress(rv: number) {
    if (this.progressPhase === 1) {
      this.progressRV = rv;
      this.progressPhase = 2;
      if (this.stream) this.send(this.stream, { progress_request: {} });
    } else if (this.progressPhase === 2) {
      this.progressPhase = 0;
      this.advance(this.progressRV);
      if (this.syncWanted > 0 && this.waiters.some((w) => w.rv > this.seenRV)) this.requestProgress();
    }
  }

  private stopWatch() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    const s = this.stream;
    this.stream = undefined;
    if (s) {
      try {
        s.end();
        s.cancel();
      } catch {
        // already gone
      }
    }
  }

  // ---- compaction --------------------------------------------------------------------------

  /**
   * Compacts etcd's history up to rv (default: currentRV()). Lists older than rv and watches from
   * before rv - 1 are Expired afterwards.
   */
  async compact(rv = this.seenRV): Promise<void> {
    this.assertOpen();
    try {
      await this.client.kv.compact({ revision: rv });
    } catch (err) {
      if (!isCompacted(err)) unavailable(err); // already compacted further: fine
    }
    this.noteCompacted(rv);
  }

  /** etcd has compacted up to rv: a watch from before rv - 1 could not be served by etcd either. */
  private noteCompacted(rv: number) {
    if (rv - 1 <= this.ringStart) return;
    const n = this.eventIndexAfter(rv - 1);
    this.dropOldest(n);
    this.ringStart = rv - 1;
  }

  private scheduleCompaction(intervalMs: number) {
    this.compactTimer = setTimeout(() => {
      void this.compactOnce().then(
        () => !this.closed && this.scheduleCompaction(intervalMs),
        (err) => {
          if (this.closed) return;
          this.onError(new Error(`compaction failed: ${message(err)}`));
          this.scheduleCompaction(intervalMs);
        },
      );
    }, intervalMs);
    this.compactTimer.unref();
  }

  /**
   * kube-apiserver's compactor: every process proposes, in one transaction on a shared key, to
   * compact to the revision it saw one interval ago; the key's version makes exactly one proposal
   * per interval win, and the others learn the revision compacted to from the key.
   */
  private async compactOnce(): Promise<void> {
    const key = this.compactKey;
    const res = await this.client.kv.txn({
      compare: [{ key, target: 'Version', result: 'Equal', version: this.compactTime }],
      success: [{ request_put: { key, value: Buffer.from(String(this.compactNextRev)) } }],
      failure: [{ request_range: { key } }],
    });
    const target = this.compactNextRev;
    this.compactNextRev = Number(res.header.revision);
    if (res.succeeded) {
      this.compactTime++;
      if (target > 0) {
        try {
          await this.client.kv.compact({ revision: target });
        } catch (err) {
          if (!isCompacted(err)) throw err;
        }
        this.noteCompacted(target);
      }
    } else {
      const kv = res.responses[0]?.response_range?.kvs[0];
      this.compactTime = kv ? Number(kv.version) : 0;
      const done = kv ? Number(kv.value.toString()) : 0;
      if (done > 0) this.noteCompacted(done);
    }
  }

  // ---- lifecycle ---------------------------------------------------------------------------

  /** A quorum read of the revision: etcd answers. */
  async check(): Promise<void> {
    this.assertOpen();
    await this.clusterRV();
  }

  private assertOpen() {
    if (this.closed) throw new StoreError('Unavailable', 'storage is shutting down');
  }

  /** Completes the writes already issued, then stops the watch and closes the connection. */
  close(): Promise<void> {
    this.closed = true;
    return (this.closing ??= (async () => {
      clearTimeout(this.compactTimer);
      while (this.inflight.size) await Promise.allSettled([...this.inflight]);
      this.stopWatch();
      for (const w of this.waiters) w.resolve();
      this.waiters = [];
      this.listeners.clear();
      this.client.close();
    })());
  }
}
