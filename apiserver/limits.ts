// Load shedding and hostile-client limits, as kube-apiserver has them:
//  - max in-flight requests, read-only and mutating counted separately (--max-requests-inflight,
//    --max-mutating-requests-inflight); watches are long-running and not counted. Over the limit: 429
//    with `Retry-After: 1`, except for system:masters ("a system:master is so powerful that they
//    should always get an answer", k8s.io/apiserver's maxinflight filter);
//  - a deadline for every non-watch request (--request-timeout, lowered by a `timeout` query
//    parameter): 504 when it passes;
//  - a bound on the watches one user holds open at once: 429;
//  - on the Node server: header size, and how long a client may take to send its headers and its
//    whole request (a client that sends a byte a second is cut off);
//  - memory (issue 15): the bytes of request bodies in flight (--max-inflight-body-mib) and of
//    answers made per request (YAML, Table; --max-inflight-answer-mib) are leased from budgets, and
//    every answer is written in slices as the client reads it (backpressure), so neither many large
//    bodies at once nor many clients that do not read hold more than the budgets. kube bounds
//    memory only by the in-flight counts (k8s.io/apiserver pkg/server/filters/maxinflight.go); 200
//    mutating requests of 3 MiB, each held as ~16 times its size while parsed and stored, would be
//    10 GB here.
// Register the plugin after the authentication hook: it needs the user.
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { ApiError, badRequest, timeout as timeoutError } from './errors.js';
import type { UserInfo } from './auth.js';
import { infoOf } from './request-info.js';
import { globalPlugin, type InflightKind, type Metrics } from './metrics.js';
import { prescanBody } from './negotiate.js';
import { MAX_BYTES, MAX_DEPTH } from './prescan.js';
import { Slicer, textSlices } from './json.js';
import { ByteBudget } from './byte-budget.js';

export interface LimitOptions {
  /** Non-mutating requests in flight at once; 0: no limit. kube's default is 400. */
  maxRequestsInflight?: number;
  /** Mutating requests in flight at once; 0: no limit. kube's default is 200. */
  maxMutatingRequestsInflight?: number;
  /** Deadline of non-watch requests, and the time a client gets to send a whole request (ms). */
  requestTimeoutMs?: number;
  /** Watches one user may hold open at once; 0: no limit. */
  maxWatchesPerUser?: number;
  /** Largest request head (request line and headers) in bytes. */
  maxHeaderSize?: number;
  /** Bytes of request bodies in flight at once (declared Content-Length; 3 MiB for a chunked body); 0: no limit. */
  maxInflightBodyBytes?: number;
  /** Bytes of answers made per request (YAML, Table, metadata) held at once; 0: no limit. */
  maxInflightAnswerBytes?: number;
}

export const LIMIT_DEFAULTS: Required<LimitOptions> = {
  maxRequestsInflight: 400,
  maxMutatingRequestsInflight: 200,
  requestTimeoutMs: 60_000,
  maxWatchesPerUser: 100,
  maxHeaderSize: 64 * 1024,
  maxInflightBodyBytes: 8 << 20,
  maxInflightAnswerBytes: 64 << 20,
};

/** Go's http.Server ReadHeaderTimeout in kube-apiserver. */
export const MAX_HEADERS_TIMEOUT_MS = 32_000;

const PUBLIC_PATHS = /^\/(healthz|livez|readyz)(\/.*)?$/;
const CUT_LEASE = Symbol('cutBodyLease');
const READ_ONLY = new Set(['get', 'list', 'watch']);

const resolved = (o?: LimitOptions): Required<LimitOptions> => ({ ...LIMIT_DEFAULTS, ...Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined)) });

/**
 * Options for Node's HTTP(S) server, passed where it is created (the `https` options of fastify):
 * the head size limit, and the slow-client cutoffs. `connectionsCheckingInterval` is how often Node
 * looks for connections over their time; its default (30 s) would make the cutoff that much late.
 */
export function nodeServerOptions(o?: LimitOptions) {
  const l = resolved(o);
  const requestTimeout = l.requestTimeoutMs;
  const headersTimeout = Math.min(requestTimeout, MAX_HEADERS_TIMEOUT_MS);
  return {
    maxHeaderSize: l.maxHeaderSize,
    requestTimeout,
    headersTimeout,
    connectionsCheckingInterval: Math.max(250, Math.min(1000, Math.floor(headersTimeout / 4))),
  };
}

/** Go's time.ParseDuration, for `?timeout=` and `--request-timeout` ("1m0s", "30s", "1.5h", "500ms"). */
export function parseDuration(s: string): number {
  if (s === '0') return 0;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;
  let sign = 1;
  let i = 0;
  if (s[0] === '-' || s[0] === '+') {
    sign = s[0] === '-' ? -1 : 1;
    i = 1;
  }
  if (i >= s.length) throw new Error(`time: invalid duration ${JSON.stringify(s)}`);
  let ms = 0;
  while (i < s.length) {
    re.lastIndex = i;
    const m = re.exec(s);
    if (!m) throw new Error(m === null && /^[\d.]+$/.test(s.slice(i)) ? `time: missing unit in duration ${JSON.stringify(s)}` : `time: invalid duration ${JSON.stringify(s)}`);
    ms += Number(m[1]) * units[m[2]];
    i = re.lastIndex;
  }
  return sign * ms;
}

/** Go's Duration.String() for whole milliseconds: 60000 -> "1m0s", 1500 -> "1.5s", 250 -> "250ms". */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const s = (ms % 60_000) / 1000;
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${Number(s.toFixed(3))}s`;
}

/**
 * Deepest nesting accepted in an object. Kubernetes objects nest a few dozen levels; the
 * recursive code paths (validation, pruning, patching) overflow the stack somewhere past 3000.
 */
export const MAX_OBJECT_DEPTH = MAX_DEPTH;

const depthError = () => badRequest(`the object nests deeper than the limit of ${MAX_OBJECT_DEPTH} levels`);

/**
 * Nesting depth of a parsed value, stopping past `limit`: iterative (a deep value must not overflow
 * the check itself) and in slices that give the event loop back (apiserver/json.ts).
 */
export async function valueDepth(v: unknown, limit = Infinity): Promise<number> {
  const slicer = new Slicer();
  let max = 0;
  const vals: object[] = [];
  const depths: number[] = [];
  if (v !== null && typeof v === 'object') vals.push(v), depths.push(1);
  while (vals.length) {
    if (slicer.due()) await slicer.yield();
    const x = vals.pop()!;
    const d = depths.pop()!;
    if (d > max && (max = d) > limit) return max;
    if (Array.isArray(x)) {
      for (let i = 0; i < x.length; i++) if (x[i] !== null && typeof x[i] === 'object') vals.push(x[i]), depths.push(d + 1);
    } else {
      // one enumeration, then the values looked at in slices (a for-in over 200,000 keys and their
      // lookups held the event loop 60 to 70 ms in one go)
      const keys = Object.keys(x);
      slicer.count(keys.length);
      for (let i = 0; i < keys.length; i++) {
        if (slicer.due()) await slicer.yield();
        const c = (x as Record<string, unknown>)[keys[i]];
        if (c !== null && typeof c === 'object') vals.push(c), depths.push(d + 1);
      }
    }
  }
  return max;
}

/** Throws 400 when an object (a request body after decoding, or the result of a patch) nests too deep. */
export async function assertObjectDepthAsync(v: unknown) {
  if ((await valueDepth(v, MAX_OBJECT_DEPTH)) > MAX_OBJECT_DEPTH) throw depthError();
}

/**
 * `Warning` header values for warnings (`299 - "text"`), bounded as k8s.io/apiserver bounds them
 * (past 4 Ki characters in all, each is cut to 256 and the rest dropped) and ASCII-only: Node
 * refuses a header with characters outside Latin-1, and the text may quote a client's field names.
 */
export function warningHeaderValues(warnings: string[]): string[] {
  const unique = [...new Set(warnings)];
  const total = unique.reduce((n, w) => n + w.length, 0);
  const out: string[] = [];
  let used = 0;
  for (let w of unique) {
    if (total > 4096) {
      w = [...w].slice(0, 256).join('');
      if (used + w.length > 4096) break;
    }
    used += w.length;
    out.push(`299 - ${JSON.stringify(w).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)}`);
  }
  return out;
}

export function tooManyRequests(message: string): ApiError {
  const e = new ApiError(429, 'TooManyRequests', message, { retryAfterSeconds: 1 });
  e.headers['Retry-After'] = '1';
  return e;
}

/** Bytes per write of an answer: the socket takes the next slice only when the client read the last. */
export const ANSWER_SLICE = 64 * 1024;

// Texts are cut by json.ts textSlices (the same 64 KiB, never a surrogate pair split).

function* bufferSlices(b: Buffer): Generator<Buffer> {
  for (let i = 0; i < b.length; i += ANSWER_SLICE) yield b.subarray(i, i + ANSWER_SLICE);
}

/** An answer body as a stream of slices, read as the socket drains. */
export function answerStream(body: string | Buffer): Readable {
  return Readable.from(typeof body === 'string' ? textSlices(body) : bufferSlices(body), { objectMode: false, highWaterMark: ANSWER_SLICE });
}

/** In-flight and watch counts, read by the metrics and by graceful shutdown. */
export class RequestLimiter {
  readonly limits: Required<LimitOptions>;
  readonly inflight: Record<InflightKind, number> = { readOnly: 0, mutating: 0 };
  readonly watches = new Map<string, number>();
  /** Request bodies in flight (bytes). */
  readonly bodies: ByteBudget;
  /** Answers made per request and not yet sent (bytes). */
  readonly answers: ByteBudget;

  constructor(o?: LimitOptions) {
    this.limits = resolved(o);
    this.bodies = new ByteBudget(this.limits.maxInflightBodyBytes);
    this.answers = new ByteBudget(this.limits.maxInflightAnswerBytes);
  }

  get watchCount(): number {
    let n = 0;
    for (const v of this.watches.values()) n += v;
    return n;
  }

  /** Admits a watch of `user` or throws 429; returns the release function. */
  admitWatch(user: UserInfo): () => void {
    const max = this.limits.maxWatchesPerUser;
    const n = this.watches.get(user.name) ?? 0;
    if (max > 0 && n >= max) throw tooManyRequests(`Too many watches: user "${user.name}" has ${n} open (limit ${max}), please try again later.`);
    this.watches.set(user.name, n + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.watches.get(user.name) ?? 1) - 1;
      if (left > 0) this.watches.set(user.name, left);
      else this.watches.delete(user.name);
    };
  }

  /** Admits a non-watch request or throws 429; returns the release function. */
  admit(kind: InflightKind, user: UserInfo, metrics?: Metrics): () => void {
    const max = kind === 'mutating' ? this.limits.maxMutatingRequestsInflight : this.limits.maxRequestsInflight;
    if (max > 0 && this.inflight[kind] >= max && !user.groups.includes('system:masters')) {
      metrics?.dropped.inc({ request_kind: kind });
      throw tooManyRequests('Too many requests, please try again later.');
    }
    this.inflight[kind]++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inflight[kind]--;
    };
  }

  /** The deadline of a request: --request-timeout, or a shorter `timeout` query parameter. */
  deadlineMs(q: Record<string, string | undefined>): number {
    const max = this.limits.requestTimeoutMs;
    const raw = q.timeout;
    if (raw === undefined || raw === '') return max;
    let ms: number;
    try {
      ms = parseDuration(String(raw));
    } catch (e) {
      throw badRequest(`invalid timeout specified in the request URL - ${(e as Error).message}`);
    }
    return ms > 0 && ms < max ? ms : max;
  }
}

export interface LimitPluginOptions {
  limiter: RequestLimiter;
  metrics?: Metrics;
}

export const requestLimits = globalPlugin<LimitPluginOptions>(async (app, o) => {
  const { limiter, metrics } = o;
  metrics?.trackInflight(() => limiter.inflight);
  // Node's own HTTP server settings, in case the server was created without nodeServerOptions():
  // fastify sets requestTimeout itself (0, "none", by default).
  const server = app.server as unknown as { requestTimeout: number; headersTimeout: number };
  const node = nodeServerOptions(limiter.limits);
  server.requestTimeout = node.requestTimeout;
  server.headersTimeout = node.headersTimeout;

  app.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => {
    const path = req.url.split('?')[0];
    const user = req.user as UserInfo | undefined;
    if (!user || PUBLIC_PATHS.test(path)) return done(); // probes are never shed
    const a = infoOf(req);
    try {
      if (a.resourceRequest && a.verb === 'watch') {
        reply.raw.once('close', limiter.admitWatch(user));
        return done();
      }
      const ms = limiter.deadlineMs(a.query);
      const kind: InflightKind = READ_ONLY.has(a.verb) ? 'readOnly' : 'mutating';
      const release = limiter.admit(kind, user, metrics);
      const timer = setTimeout(() => {
        const res = reply.raw;
        if (res.writableFinished || res.destroyed) return;
        if (res.headersSent || reply.sent) {
          // A response already under way (a client not reading it): kube's timeout filter aborts
          // the connection, which also frees the in-flight slot the slow reader holds.
          req.log.warn({ url: req.url, timeoutMs: ms }, 'request timed out while sending its response; closing the connection');
          res.destroy();
          return;
        }
        req.log.warn({ url: req.url, timeoutMs: ms }, 'request timed out');
        reply.send(timeoutError(`Timeout: request did not complete within ${formatDuration(ms)}`));
      }, ms);
      reply.raw.once('close', () => {
        clearTimeout(timer);
        release();
      });
      admitBody(req, reply, user, kind).then(() => done(), (err) => done(err as Error));
    } catch (err) {
      done(err as Error);
    }
  });

  /**
   * The body's bytes leased before a byte of it is read (its declared length, or the most a body may
   * be when chunked; cut to what it was once read), held until the answer is sent: over the budget
   * a request gets 429 at once, its body read and dropped (apiserver/server.ts), as the in-flight
   * filter sheds; system:masters, never shed, waits its turn instead (its body unread meanwhile).
   */
  async function admitBody(req: FastifyRequest, reply: FastifyReply, user: UserInfo, kind: InflightKind): Promise<void> {
    const cl = req.headers['content-length'];
    const declared = cl !== undefined ? Number(cl) : req.headers['transfer-encoding'] !== undefined ? MAX_BYTES : 0;
    if (!(declared > 0) || declared > MAX_BYTES) return; // none, or a 413 before anything is read
    let release = limiter.bodies.tryTake(declared);
    if (!release) {
      if (!user.groups.includes('system:masters')) {
        metrics?.dropped.inc({ request_kind: kind });
        throw tooManyRequests(`Too many request bodies in flight (limit ${limiter.limits.maxInflightBodyBytes} bytes), please try again later.`);
      }
      release = await limiter.bodies.take(declared, reply.raw);
    }
    const r = release;
    reply.raw.once('close', r);
    if (cl === undefined) (req as unknown as Record<symbol, () => void>)[CUT_LEASE] = () => r.shrink(Buffer.isBuffer(req.body) ? req.body.length : 0);
  }

  app.addHook('preValidation', (req: FastifyRequest, _reply: FastifyReply, done: () => void) => {
    (req as unknown as Record<symbol, (() => void) | undefined>)[CUT_LEASE]?.();
    done();
  });

  // Every answer is written in slices as the client reads it: a string or Buffer written whole
  // would be copied and encrypted whole into the socket's queue, per client (a client that reads
  // nothing held ~3 copies of each object it was sent: 100 such clients of a 3 MiB object, 280 MB).
  app.addHook('onSend', (_req: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: Error | null, p?: unknown) => void) => {
    if ((typeof payload === 'string' && payload.length > ANSWER_SLICE) || (Buffer.isBuffer(payload) && payload.length > ANSWER_SLICE)) {
      reply.header('Content-Length', typeof payload === 'string' ? Buffer.byteLength(payload) : payload.length);
      return done(null, answerStream(payload));
    }
    done(null, payload);
  });

  // Every text body is checked against the prescan limits (size, depth, YAML anchors and documents)
  // before any code walks it (apiserver/prescan.ts); parseBody checks again for callers elsewhere,
  // and decoded protobuf bodies and patch results go through assertObjectDepthAsync in the REST layer.
  app.addHook('preHandler', (req: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void) => {
    const ct = req.headers['content-type'];
    if (!Buffer.isBuffer(req.body) || (ct !== undefined && /protobuf/i.test(ct))) return done();
    try {
      prescanBody(req.body, ct !== undefined && /yaml/i.test(ct));
    } catch (err) {
      return done(err as Error);
    }
    done();
  });
}, 'request-limits');
