// Watch streams: newline-delimited JSON watch events over a chunked response, as kube-apiserver
// sends them, with resume from a resourceVersion, bookmarks, initial events and selector-aware
// ADDED/DELETED translation.
import type { ServerResponse } from 'node:http';
import type { KubeObject } from '../kinds/types.js';
import type { Store, StoreEvent, StoredObject, WatchHandle } from '../storage/store.js';
import { StoreError } from '../storage/store.js';
import { ApiError, badRequest, expired, timeout } from './errors.js';
import type { Target } from './negotiate.js';
import { keyFor, type Resource } from './resources.js';
import { columnDefinitions, type IncludeObject, storedRowCells } from './table.js';
import { parseRV } from './rest.js';
import { memberJson, nextTurn, stringifyJson } from './json.js';
import type { Matcher } from './selectors.js';

export interface WatchParams {
  resource: Resource;
  namespace?: string;
  match?: Matcher;
  resourceVersion?: string;
  resourceVersionMatch?: string;
  sendInitialEvents?: boolean;
  allowWatchBookmarks: boolean;
  timeoutSeconds?: number;
  target: Target;
  include: IncludeObject;
}

const MAX_BUFFERED = 16 * 1024 * 1024;
/** An event's text up to this size is written at once, without waiting for a turn. */
const SMALL = 1 << 16;
const SLICE_MS = 8;

/**
 * The bodies of one stored object's events as each representation needs them, shared by every
 * watch (kube's cachingObject, k8s.io/apiserver/pkg/storage/cacher/caching_object.go, encodes an
 * event once per format): made once, in slices, kept as long as the stored object is.
 */
const bodies = new WeakMap<StoredObject, Map<string, Promise<string>>>();
function bodyOf(o: StoredObject, key: string, make: () => Promise<string>): Promise<string> {
  let m = bodies.get(o);
  if (!m) bodies.set(o, (m = new Map()));
  let b = m.get(key);
  if (!b) m.set(key, (b = make()));
  return b;
}

/**
 * A turn of its own for each caller, one after another: the work that follows may enumerate a map
 * of 200,000 keys at once (tens of ms), and two of those must not share a turn.
 */
let gate: Promise<void> = Promise.resolve();
function ownTurn(): Promise<void> {
  const p = gate.then(nextTurn);
  gate = p;
  return p;
}

/** The PartialObjectMetadata of a stored object, as JSON: its metadata's text cut out of the stored JSON. */
export const partialJson = (o: StoredObject) =>
  bodyOf(o, 'meta', async () => {
    await nextTurn(); // (not in the turn that wrote the object)
    const meta = (await memberJson(o.json, 'metadata')) ?? (await stringifyJson(o.obj.metadata));
    return `{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":${meta}}`;
  });

/** A Table of one row (its object as `include` says), as JSON; the column definitions on a watch's first. */
export async function tableJson(r: Resource, o: StoredObject, include: IncludeObject, withColumns: boolean): Promise<string> {
  const row = await bodyOf(o, `row:${r.apiVersion}/${r.def.plural}:${include}`, async () => {
    await ownTurn(); // (the cells in a turn of their own)
    const cells = await stringifyJson(await storedRowCells(r, o));
    const object = include === 'Object' ? o.json : include === 'Metadata' ? await partialJson(o) : undefined;
    return object === undefined ? `{"cells":${cells}}` : `{"cells":${cells},"object":${object}}`;
  });
  const cols = withColumns ? JSON.stringify(columnDefinitions(r)) : 'null';
  return `{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":${JSON.stringify({ resourceVersion: o.obj.metadata.resourceVersion })},"columnDefinitions":${cols},"rows":[${row}]}`;
}

/**
 * The writes of large events of every watch, one after another in the order they were queued,
 * giving the event loop back every SLICE_MS: an event of 3 MiB written to many watches is
 * encoded and encrypted once per socket, which must not all happen in one turn.
 */
class WriteQueue {
  private tail: Promise<void> = Promise.resolve();
  private until = 0;
  run(fn: () => void): Promise<void> {
    const p = this.tail.then(async () => {
      if (performance.now() >= this.until) {
        await nextTurn();
        this.until = performance.now() + SLICE_MS;
      }
      fn();
    });
    this.tail = p.catch(() => undefined);
    return p;
  }
}
const writes = new WriteQueue();

export class WatchHub {
  private readonly active = new Set<() => void>();
  bookmarkIntervalMs = 10_000;
  defaultTimeoutSeconds = 1800;

  constructor(private readonly store: Store) {}

  get count(): number {
    return this.active.size;
  }

  /** Ends every open watch cleanly (graceful shutdown). */
  closeAll() {
    for (const end of [...this.active]) end();
  }

  /** Validates parameters before anything is written, so a bad request still gets a normal 4xx. */
  static check(p: WatchParams) {
    if (p.sendInitialEvents !== undefined) {
      if (p.resourceVersionMatch !== 'NotOlderThan')
        throw badRequest(`sendInitialEvents is only supported with resourceVersionMatch=NotOlderThan`);
      if (p.sendInitialEvents && !p.allowWatchBookmarks) throw badRequest('sendInitialEvents requires allowWatchBookmarks=true');
    } else if (p.resourceVersionMatch) {
      throw badRequest(`resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided`);
    }
    if (p.resourceVersion !== undefined && p.resourceVersion !== '') parseRV(p.resourceVersion);
  }

  async serve(p: WatchParams, res: ServerResponse): Promise<void> {
    const r = p.resource;
    const prefix = keyFor(r, p.namespace);
    const match = p.match;
    const rvParam = p.resourceVersion ?? '';
    const legacyInitial = p.sendInitialEvents === undefined && (rvParam === '' || rvParam === '0');
    const initial = p.sendInitialEvents === true || legacyInitial;

    // Every event is serialised in slices (apiserver/json.ts), once per representation however many
    // watches carry it (bodyOf), and written in order: a watch's events wait in `queue` for their
    // text, then for their turn in the shared write queue (`writes`).
    let first = true;
    const render = (o: StoredObject): string | Promise<string> => {
      if (p.target.as === 'object') return o.json;
      if (p.target.as === 'PartialObjectMetadata') return partialJson(o);
      const withColumns = first;
      first = false;
      return tableJson(r, o, p.include, withColumns);
    };

    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();

    let handle: WatchHandle | undefined;
    let timer: NodeJS.Timeout | undefined;
    let bookmarks: NodeJS.Timeout | undefined;
    let ended = false;
    const end = () => {
      if (ended) return;
      ended = true;
      handle?.stop();
      clearTimeout(timer);
      clearInterval(bookmarks);
      this.active.delete(end);
      res.end();
    };
    this.active.add(end);
    res.on('close', end);
    // Bytes written and not yet sent, plus the stored size of events not yet written: over
    // MAX_BUFFERED a client too slow to keep up is cut off, as kube does.
    let pending = 0;
    let queue: Promise<void> = Promise.resolve();
    const over = () => res.writableLength + pending > MAX_BUFFERED;
    const write = (s: string) => {
      if (ended) return;
      res.write(s);
      if (over()) end();
    };
    /** Writes an event's line once its body is ready; resolves when it is written (or dropped). */
    const emit = (type: string, body: string | Promise<string>, size: number): Promise<void> => {
      if (ended) return queue;
      if (typeof body === 'string' && size <= SMALL && pending === 0) {
        write(`{"type":"${type}","object":${body}}\n`);
        return queue;
      }
      pending += size;
      if (over()) {
        end();
        return queue;
      }
      const prior = queue;
      queue = (async () => {
        await prior;
        let text: string;
        try {
          text = await body;
        } catch (err) {
          pending -= size;
          return void (ended || (res.write(`{"type":"ERROR","object":${JSON.stringify(new ApiError(500, 'InternalError', (err as Error).message).status)}}\n`), end()));
        }
        await writes.run(() => {
          pending -= size;
          write(`{"type":"${type}","object":${text}}\n`);
        });
      })();
      return queue;
    };
    const line = (type: string, o: StoredObject) => emit(type, render(o), o.json.length);
    const bookmark = (rv: number, initialEnd = false) => {
      const meta: Record<string, unknown> = { resourceVersion: String(rv) };
      if (initialEnd) meta.annotations = { 'k8s.io/initial-events-end': 'true' };
      void emit('BOOKMARK', JSON.stringify({ kind: r.def.kind, apiVersion: r.apiVersion, metadata: meta }), 0);
    };
    const fail = (e: ApiError) => {
      void emit('ERROR', JSON.stringify(e.status), 0).then(end);
    };

    let fromRV: number;
    try {
      if (initial) {
        const l = await this.store.list(prefix, { filter: match && ((o) => match(o.obj)) });
        if (rvParam !== '' && rvParam !== '0' && Number(rvParam) > l.rv) throw timeout(`Too large resource version: ${rvParam}, current: ${l.rv}`); // kube: 504, not 410 (which means re-list)
        for (const o of l.items) {
          if (ended) break;
          await line('ADDED', o); // (one at a time: a list of large objects is not all serialised at once)
        }
        fromRV = l.rv;
        if (p.sendInitialEvents) bookmark(fromRV, true);
      } else if (p.sendInitialEvents === false && (rvParam === '' || rvParam === '0')) fromRV = this.store.currentRV(); // kube: from any (the current) rv
      else fromRV = Number(rvParam);
      if (ended) return; // (closed while the initial events were written)
      handle = this.store.watch(prefix, fromRV, (ev) => this.deliver(ev, match, line), (err) => fail(expired(err.message)));
    } catch (err) {
      if (err instanceof StoreError && err.code === 'Expired') return fail(expired(`too old resource version: ${rvParam} (${this.oldest()})`));
      if (err instanceof ApiError) return fail(err);
      return fail(new ApiError(500, 'InternalError', (err as Error).message));
    }
    if (ended) return handle.stop();
    const secs = p.timeoutSeconds ?? this.defaultTimeoutSeconds * (1 + Math.random());
    timer = setTimeout(end, secs * 1000);
    if (p.allowWatchBookmarks) bookmarks = setInterval(() => bookmark(this.store.currentRV()), this.bookmarkIntervalMs);
  }

  private oldest(): number {
    const s = this.store as Store & { oldestWatchableRV?(): number };
    return s.oldestWatchableRV?.() ?? 0;
  }

  private deliver(ev: StoreEvent, match: Matcher | undefined, line: (t: string, o: StoredObject) => unknown) {
    if (!match) return void line(ev.type, ev.object);
    const now = match(ev.object.obj);
    if (ev.type === 'ADDED') {
      if (now) line('ADDED', ev.object);
    } else if (ev.type === 'DELETED') {
      if (now) line('DELETED', ev.object);
    } else {
      const before = ev.prev ? match(ev.prev.obj) : now;
      if (now && before) line('MODIFIED', ev.object);
      else if (now) line('ADDED', ev.object);
      else if (before) line('DELETED', ev.object);
    }
  }
}
