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
import { type IncludeObject, partialMetadata, table } from './table.js';
import { parseRV } from './rest.js';
import { nextTurn } from './json.js';
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

    let first = true;
    const encode = (type: string, obj: KubeObject): string => {
      let body: unknown = obj;
      if (p.target.as === 'Table') {
        body = table(r, [obj], p.include, { resourceVersion: obj.metadata.resourceVersion }, first);
        first = false;
      } else if (p.target.as === 'PartialObjectMetadata') body = partialMetadata(obj);
      return `{"type":"${type}","object":${JSON.stringify(body)}}\n`;
    };
    const line = (type: string, o: StoredObject) =>
      p.target.as === 'object' ? `{"type":"${type}","object":${o.json}}\n` : encode(type, o.obj);

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
    const write = (s: string) => {
      if (ended) return;
      res.write(s);
      if (res.writableLength > MAX_BUFFERED) end(); // a client too slow to keep up is cut off, as kube does
    };
    const bookmark = (rv: number, initialEnd = false) => {
      const meta: Record<string, unknown> = { resourceVersion: String(rv) };
      if (initialEnd) meta.annotations = { 'k8s.io/initial-events-end': 'true' };
      write(`{"type":"BOOKMARK","object":${JSON.stringify({ kind: r.def.kind, apiVersion: r.apiVersion, metadata: meta })}}\n`);
    };
    const fail = (e: ApiError) => {
      write(`{"type":"ERROR","object":${JSON.stringify(e.status)}}\n`);
      end();
    };

    let fromRV: number;
    try {
      if (initial) {
        const l = await this.store.list(prefix, { filter: match && ((o) => match(o.obj)) });
        if (rvParam !== '' && rvParam !== '0' && Number(rvParam) > l.rv) throw timeout(`Too large resource version: ${rvParam}, current: ${l.rv}`); // kube: 504, not 410 (which means re-list)
        for (const o of l.items) {
          write(line('ADDED', o));
          if (o.json.length > 1 << 16) await nextTurn(); // (each large object in a turn of its own)
        }
        fromRV = l.rv;
        if (p.sendInitialEvents) bookmark(fromRV, true);
      } else if (p.sendInitialEvents === false && (rvParam === '' || rvParam === '0')) fromRV = this.store.currentRV(); // kube: from any (the current) rv
      else fromRV = Number(rvParam);
      if (ended) return; // (closed while the initial events were written)
      handle = this.store.watch(prefix, fromRV, (ev) => this.deliver(ev, match, line, write), (err) => fail(expired(err.message)));
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

  private deliver(ev: StoreEvent, match: Matcher | undefined, line: (t: string, o: StoredObject) => string, write: (s: string) => void) {
    if (!match) return write(line(ev.type, ev.object));
    const now = match(ev.object.obj);
    if (ev.type === 'ADDED') {
      if (now) write(line('ADDED', ev.object));
    } else if (ev.type === 'DELETED') {
      if (now) write(line('DELETED', ev.object));
    } else {
      const before = ev.prev ? match(ev.prev.obj) : now;
      if (now && before) write(line('MODIFIED', ev.object));
      else if (now) write(line('ADDED', ev.object));
      else if (before) write(line('DELETED', ev.object));
    }
  }
}
