// A small OCI distribution client (pull, push, tags, referrers) for any OCI registry.
// Auth: the distribution token flow (Bearer challenge -> token endpoint -> retry), Basic,
// or a fixed registry token. Every failure is an OciError.
import { createHash, type Hash } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable, Transform, pipeline } from 'node:stream';
import net from 'node:net';
import tls from 'node:tls';
import type { Lease } from '../apiserver/byte-budget.js';
import { BudgetCache, inReconcile, leaseMemory, PARSED_HEAP_PER_BYTE } from './memory-budget.js';
import { guardedLookup, type UpstreamPolicy, upstreamProblem } from './upstream.js';

export interface Credentials {
  username?: string;
  password?: string;
  identityToken?: string;
  registryToken?: string;
}

export interface OciClientOptions {
  /** Extra CA certificates (PEM), trusted in addition to the system roots. */
  ca?: string | string[];
  /** Client certificate and key (PEM) for mTLS. */
  cert?: string;
  key?: string;
  /** Talk plain HTTP instead of HTTPS. */
  insecureHttp?: boolean;
  credentials?: (registryHost: string) => Credentials | undefined;
  /** Retries of a failed idempotent request (and restarts of a failed upload); default 4. A read
   * retries only within one stallTimeoutMs in all, and never after a stall (see retryDelay). */
  retries?: number;
  /** First backoff step; it doubles per retry (with jitter) up to 10 s. Default 250 ms. */
  retryBaseMs?: number;
  userAgent?: string;
  /** Socket idle timeout; default 60 s. */
  timeoutMs?: number;
  /** A read (GET, HEAD) that receives fewer than 16 KiB in this long, while its reader wants more,
   * is cut (TIMEOUT): a registry dripping bytes cannot hold a reconcile forever. Default 30 s. */
  stallTimeoutMs?: number;
  /** Memory for content this client wrote or verified, served again when read by digest (default
   * 0: none). Content a registry deleted since is still served: for clients of a registry whose
   * content they own, such as the server's own snapshot client. */
  contentCacheBytes?: number;
  /** Push blobs up to this size with one POST carrying digest and content instead of HEAD, POST and
   * PUT (default 0: never). A registry that opens a session instead gets the PUT. */
  singlePostMaxBytes?: number;
  /** Put the registry's own error message (up to 512 characters) into errors: for the server's
   * snapshot registry only, never for user-supplied ones (their words would end up in status). */
  trustedErrorMessages?: boolean;
  /** For a client acting for a user: where it may connect (registry/upstream.ts); anywhere when absent. */
  upstream?: UpstreamPolicy;
}

export interface Reference {
  host: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export type Ref = string | Reference;

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;

const DEFAULT_ACCEPT = Object.values(MEDIA_TYPES);
const MAX_MANIFEST_BYTES = 4 << 20;
const MAX_JSON_BYTES = 16 << 20;
const MAX_TOKEN_BYTES = 1 << 20;
/** What is read of an error response (the spec's error code comes first). */
const MAX_ERROR_BODY_BYTES = 16 << 10;
const MAX_BACKOFF_MS = 10_000;
const MAX_RETRY_AFTER_MS = 60_000;
const DEFAULT_CHUNK = 8 << 20;
/** Fewer bytes than this per stallTimeoutMs is a stalled read (curl's --speed-limit, in effect). */
const LOW_SPEED_BYTES = 16 << 10;

export class OciError extends Error {
  override name = 'OciError';
  status?: number;
  /** A distribution spec error code (BLOB_UNKNOWN, MANIFEST_UNKNOWN, DENIED, ...) or one of ours:
   * NETWORK, TLS, TIMEOUT, UNAUTHORIZED, DIGEST_MISMATCH, SIZE_MISMATCH, TOO_LARGE, INVALID_REFERENCE,
   * INVALID_RESPONSE, NOT_FOUND, HTTP_<status>. */
  code: string;
  retryable: boolean;
  retryAfterMs?: number;
  detail?: unknown;
  constructor(code: string, message: string, o: { status?: number; retryable?: boolean; retryAfterMs?: number; detail?: unknown; cause?: unknown } = {}) {
    super(message, o.cause === undefined ? undefined : { cause: o.cause });
    this.code = code;
    this.status = o.status;
    this.retryable = o.retryable ?? false;
    this.retryAfterMs = o.retryAfterMs;
    this.detail = o.detail;
  }
}

// ---- references ---------------------------------------------------------------------------

const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const TAG_RE = /^\w[\w.-]{0,127}$/;
const DIGEST_RE = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com']);

/** Parses `[oci://]host[:port]/repo/path[:tag][@alg:hex]`; a name without a host is Docker Hub's. */
export function parseReference(ref: Ref): Reference {
  if (typeof ref !== 'string') return ref;
  const bad = (why: string) => new OciError('INVALID_REFERENCE', `invalid reference "${ref}": ${why}`);
  let s = ref.trim().replace(/^oci:\/\//, '');
  let digest: string | undefined;
  let tag: string | undefined;
  const at = s.indexOf('@');
  if (at >= 0) [s, digest] = [s.slice(0, at), s.slice(at + 1)];
  const colon = s.lastIndexOf(':');
  if (colon > s.lastIndexOf('/')) [s, tag] = [s.slice(0, colon), s.slice(colon + 1)];
  let host = DOCKER_HUB;
  let repository = s;
  const slash = s.indexOf('/');
  if (slash > 0) {
    const first = s.slice(0, slash);
    if (/[.:]/.test(first) || first === 'localhost' || first !== first.toLowerCase()) {
      host = first.toLowerCase();
      repository = s.slice(slash + 1);
    }
  }
  if (DOCKER_HUB_ALIASES.has(host)) {
    host = DOCKER_HUB;
    if (!repository.includes('/')) repository = `library/${repository}`;
  }
  if (!NAME_RE.test(repository) || repository.length > 255) throw bad(`repository "${repository}" does not match the OCI name rules`);
  if (tag !== undefined && !TAG_RE.test(tag)) throw bad(`tag "${tag}"`);
  if (digest !== undefined && !DIGEST_RE.test(digest)) throw bad(`digest "${digest}"`);
  return { host, repository, tag, digest };
}

export function formatReference(r: Reference): string {
  return `${r.host}/${r.repository}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

// ---- digests ------------------------------------------------------------------------------

const DIGEST_ALGS: Record<string, number> = { sha256: 64, sha512: 128 };

function hasherFor(digest: string): Hash {
  // a digest from a manifest or descriptor may be anything JSON holds
  if (typeof digest !== 'string') throw new OciError('DIGEST_INVALID', `malformed digest ${JSON.stringify(digest)?.slice(0, 100)} (not a string)`);
  const [alg, hex] = digest.split(':');
  if (!DIGEST_ALGS[alg]) throw new OciError('UNSUPPORTED', `unsupported digest algorithm in "${digest}"`);
  if (!new RegExp(`^[a-f0-9]{${DIGEST_ALGS[alg]}}$`).test(hex ?? '')) throw new OciError('DIGEST_INVALID', `malformed digest "${digest}"`);
  return createHash(alg);
}

export function digestOf(data: Buffer, alg = 'sha256'): string {
  return `${alg}:${createHash(alg).update(data).digest('hex')}`;
}

/** Bytes hashed per turn of the event loop by hashInSlices (about 1-3 ms of SHA-256). */
const HASH_SLICE = 1 << 20;

/**
 * The hex digest of `data`, hashed a slice per turn of the event loop (issue 15): one update of a
 * blob of up to 256 MiB held it for the whole hash (0.22 s idle on the test machine; 0.6 ms per slice).
 */
export async function hashInSlices(data: Buffer, alg = 'sha256'): Promise<string> {
  const h = createHash(alg);
  for (let at = 0; at < data.length; at += HASH_SLICE) {
    if (at) await new Promise<void>((r) => setImmediate(r));
    h.update(data.subarray(at, at + HASH_SLICE));
  }
  return h.digest('hex');
}

/** digestOf, a slice per turn (hashInSlices). */
export const digestOfAsync = async (data: Buffer, alg = 'sha256'): Promise<string> => `${alg}:${await hashInSlices(data, alg)}`;

const algOf = (digest?: string) => digest?.split(':')[0] ?? 'sha256';

// ---- docker config ------------------------------------------------------------------------

export function normalizeRegistryHost(s: string): string {
  const h = s.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
  return DOCKER_HUB_ALIASES.has(h) ? DOCKER_HUB : h;
}

/** Credentials from a `kubernetes.io/dockerconfigjson` (`{auths: {...}}`) or legacy `.dockercfg` secret. */
export function credentialsFromDockerConfig(json: string | Buffer | object): (host: string) => Credentials | undefined {
  let cfg: any;
  try {
    cfg = typeof json === 'string' || Buffer.isBuffer(json) ? JSON.parse(String(json)) : json;
  } catch {
    // Not the parser's message: V8's quotes the text around the error, i.e. part of a password.
    throw new OciError('INVALID_CONFIG', 'docker config is not valid JSON');
  }
  const auths = cfg && typeof cfg === 'object' ? (cfg.auths ?? cfg) : undefined;
  if (!auths || typeof auths !== 'object') throw new OciError('INVALID_CONFIG', 'docker config has no "auths"');
  const map = new Map<string, Credentials>();
  for (const [key, e] of Object.entries<any>(auths)) {
    if (!e || typeof e !== 'object') continue;
    const c: Credentials = {};
    if (typeof e.username === 'string') c.username = e.username;
    if (typeof e.password === 'string') c.password = e.password;
    if (typeof e.auth === 'string' && e.auth) {
      const decoded = Buffer.from(e.auth, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i < 0) throw new OciError('INVALID_CONFIG', `docker config: "auth" of ${key} is not base64 of user:password`);
      c.username = decoded.slice(0, i);
      c.password = decoded.slice(i + 1);
    }
    if (typeof e.identitytoken === 'string' && e.identitytoken) c.identityToken = e.identitytoken;
    if (typeof e.registrytoken === 'string' && e.registrytoken) c.registryToken = e.registrytoken;
    map.set(normalizeRegistryHost(key), c);
  }
  return (host) => map.get(normalizeRegistryHost(host));
}

// ---- auth challenges ----------------------------------------------------------------------

export interface Challenge {
  scheme: 'bearer' | 'basic';
  realm?: string;
  service?: string;
  scope?: string;
}

/** Parses `WWW-Authenticate`; prefers a Bearer challenge over Basic. */
export function parseChallenge(header: string | string[] | undefined): Challenge | undefined {
  const text = Array.isArray(header) ? header.join(', ') : header;
  if (!text) return undefined;
  const found: Challenge[] = [];
  for (const part of text.split(/(?:^|,)\s*(?=(?:bearer|basic)\b)/i)) {
    const m = /^(bearer|basic)\b(.*)$/is.exec(part.trim());
    if (!m) continue;
    const c: any = { scheme: m[1].toLowerCase() };
    for (const p of m[2].matchAll(/([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))/g)) {
      c[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
    }
    found.push(c);
  }
  return found.find((c) => c.scheme === 'bearer' && c.realm) ?? found.find((c) => c.scheme === 'basic');
}

// ---- HTTP helpers -------------------------------------------------------------------------

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'ERR_STREAM_PREMATURE_CLOSE', 'HPE_INVALID_CHUNK_SIZE']);

function toOciError(e: unknown, what = 'request'): OciError {
  if (e instanceof OciError) return e;
  const err = e as NodeJS.ErrnoException;
  const code = err?.code ?? '';
  const msg = `${what}: ${err?.message ?? String(e)}`;
  if (code === 'ERR_UPSTREAM_FORBIDDEN') return new OciError('UPSTREAM_FORBIDDEN', msg, { cause: e });
  if (/CERT|SIGNATURE|TLS|SSL/.test(code)) return new OciError('TLS', msg, { cause: e });
  const retryable = NETWORK_CODES.has(code) || /socket hang up|aborted|premature close/i.test(err?.message ?? '');
  return new OciError('NETWORK', msg, { retryable, cause: e });
}

function drain(res: IncomingMessage): void {
  res.on('error', () => {});
  res.resume();
}

async function readBody(res: IncomingMessage, max: number, what: string): Promise<Buffer> {
  const tooLarge = () => new OciError('TOO_LARGE', `${what}: response larger than ${max} bytes`, { status: res.statusCode });
  if (Number(res.headers['content-length']) > max) {
    res.destroy();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let n = 0;
  try {
    for await (const c of res) {
      n += c.length;
      if (n > max) throw tooLarge();
      chunks.push(c);
    }
  } catch (e) {
    throw toOciError(e, what);
  }
  return Buffer.concat(chunks, n);
}

function parseRetryAfter(v: string | undefined): number | undefined {
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - Date.now());
}

/** The error codes of the OCI distribution spec (and distribution's TOOMANYREQUESTS). */
const SPEC_ERROR_CODES = new Set(['BLOB_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'BLOB_UPLOAD_UNKNOWN', 'DIGEST_INVALID', 'MANIFEST_BLOB_UNKNOWN', 'MANIFEST_INVALID', 'MANIFEST_UNKNOWN', 'NAME_INVALID', 'NAME_UNKNOWN', 'SIZE_INVALID', 'UNAUTHORIZED', 'DENIED', 'UNSUPPORTED', 'TOOMANYREQUESTS']);

async function errorFrom(res: IncomingMessage, what: string, trusted = false): Promise<OciError> {
  const status = res.statusCode ?? 0;
  let body: Buffer | undefined;
  // Leased (inside a reconcile) while it is read and parsed, given back after; without room the
  // status alone says what went wrong (the body is dropped, its connection not reused).
  const lease = await leaseMemory(MAX_ERROR_BODY_BYTES * (1 + PARSED_HEAP_PER_BYTE)).catch(() => undefined);
  if (!lease) res.destroy();
  let first: any;
  if (lease) {
    try {
      try {
        body = await readBody(res, MAX_ERROR_BODY_BYTES, what);
      } catch {
        /* the status is enough */
      }
      try {
        const e = JSON.parse(body?.toString('utf8') ?? '')?.errors?.[0];
        first = { code: e?.code, message: typeof e?.message === 'string' ? e.message.slice(0, 512) : undefined }; // nothing else kept
      } catch {
        /* not a spec error body */
      }
    } finally {
      lease.shrink(0);
    }
  }
  const byStatus: Record<number, string> = { 401: 'UNAUTHORIZED', 403: 'DENIED', 404: 'NOT_FOUND', 429: 'TOOMANYREQUESTS' };
  // Only the spec's error codes, never the upstream's own words: messages end up in status, and
  // echoing response bodies there would let a user read whatever an address answers (issue 16).
  const code = typeof first?.code === 'string' && SPEC_ERROR_CODES.has(first.code) ? first.code : (byStatus[status] ?? `HTTP_${status}`);
  const retryAfterMs = parseRetryAfter(res.headers['retry-after']);
  const retryable = (status === 408 || status === 429 || (status >= 500 && status !== 501)) && !(retryAfterMs! > MAX_RETRY_AFTER_MS);
  // A registry the operator configured (the snapshot registry) may say why, e.g. which quota.
  const said = trusted && typeof first?.message === 'string' ? `: ${first.message.slice(0, 512)}` : '';
  return new OciError(code, `${what}: ${status} ${code}${said}`, { status, retryable, retryAfterMs });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Checks size and digest of the bytes flowing through; fails at the end on a mismatch. */
function verifier(digest: string | undefined, size: number | undefined, what: string): Transform {
  const h = digest ? hasherFor(digest) : createHash('sha256');
  let n = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      n += chunk.length;
      if (size !== undefined && n > size) return cb(new OciError('SIZE_MISMATCH', `${what}: more than the declared ${size} bytes`));
      h.update(chunk);
      cb(null, chunk);
    },
    flush(cb) {
      if (size !== undefined && n !== size) return cb(new OciError('SIZE_MISMATCH', `${what}: ${n} bytes, declared ${size}`));
      const actual = `${algOf(digest)}:${h.digest('hex')}`;
      if (digest && actual !== digest) return cb(new OciError('DIGEST_MISMATCH', `${what}: content has digest ${actual}, expected ${digest}`));
      cb();
    },
  });
}

/** Groups a byte stream into chunks of exactly `size` bytes (the last may be shorter). */
async function* chunked(src: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let parts: Buffer[] = [];
  let n = 0;
  for await (const c of src) {
    let b = Buffer.isBuffer(c) ? c : Buffer.from(c);
    while (n + b.length >= size) {
      parts.push(b.subarray(0, size - n));
      yield Buffer.concat(parts, size);
      b = b.subarray(size - n);
      parts = [];
      n = 0;
    }
    if (b.length) {
      parts.push(b);
      n += b.length;
    }
  }
  if (n) yield Buffer.concat(parts, n);
}

function nextLink(link: string | string[] | undefined, base: URL): URL | undefined {
  const m = link && /<([^>]+)>\s*;[^,]*rel="?next"?/i.exec([link].flat().join(', '));
  return m ? new URL(m[1], base) : undefined;
}

function withQuery(u: URL, key: string, value: string): URL {
  const out = new URL(u);
  out.search = `${out.search ? `${out.search}&` : '?'}${key}=${encodeURIComponent(value)}`;
  return out;
}

/** Content addressed by digest (so immutable) that this client has written or verified: reading
 * it again is served from memory. Least recently used out first, bounded in bytes and counted in
 * the in-memory budget (registry/memory-budget.ts: kept only in room the reconciles' leases leave,
 * evicted when a lease needs it). Keys name the registry and repository, so content is only ever
 * served for the repository it was seen in. */
class ContentCache {
  private readonly items: BudgetCache<{ body: Buffer; mediaType?: string }> | undefined;
  constructor(
    maxBytes: number,
    private readonly maxItem = 1 << 20,
  ) {
    this.items = maxBytes > 0 ? new BudgetCache(maxBytes) : undefined;
  }
  get(key: string) {
    return this.items?.get(key);
  }
  delete(key: string) {
    this.items?.delete(key);
  }
  accepts(bytes: number) {
    return !!this.items && bytes <= this.maxItem && this.items.accepts(bytes);
  }
  set(key: string, v: { body: Buffer; mediaType?: string }, copy = false) {
    if (this.accepts(v.body.length)) this.items!.set(key, copy ? () => ({ ...v, body: Buffer.from(v.body) }) : () => v, v.body.length);
  }
}
const contentKey = (kind: 'blob' | 'manifest', r: Reference, digest: string) => `${kind} ${r.host}/${r.repository}@${digest}`;

// ---- the client ---------------------------------------------------------------------------

type Body = Buffer | Readable | (() => Readable) | undefined;

interface Req {
  method: string;
  url: URL;
  /** The registry host (credentials, auth state); undefined: send no auth (token endpoint). */
  host?: string;
  scope?: string;
  headers?: Record<string, string>;
  body?: Body;
  expect: number[];
  /** Retry on retryable failures (idempotent requests only). */
  retry?: boolean;
  what: string;
  /** For requests without `host` (the token endpoint): the registry origin whose client certificate may go along. */
  certOrigin?: string;
}

const scopes = {
  pull: (repo: string) => `repository:${repo}:pull`,
  push: (repo: string) => `repository:${repo}:pull,push`,
  delete: (repo: string) => `repository:${repo}:delete`,
};

export class OciClient {
  private readonly opts: OciClientOptions;
  private readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly timeoutMs: number;
  private readonly stallTimeoutMs: number;
  private readonly userAgent: string;
  private readonly httpAgent = new http.Agent({ keepAlive: true });
  private readonly httpsAgent: https.Agent;
  /** Without the client certificate: for other origins (redirects, token endpoints elsewhere). */
  private readonly bareHttpsAgent: https.Agent;
  private readonly challenges = new Map<string, Challenge>();
  private readonly content: ContentCache;
  /** Registries that answered a POST with digest and content by opening an upload session instead. */
  private readonly noSinglePost = new Set<string>();
  private readonly tokens = new Map<string, { header: string; expires: number }>();

  constructor(opts: OciClientOptions = {}) {
    this.opts = opts;
    this.retries = opts.retries ?? 4;
    this.retryBaseMs = opts.retryBaseMs ?? 250;
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.stallTimeoutMs = opts.stallTimeoutMs ?? 30_000;
    this.userAgent = opts.userAgent ?? 'ocm-apiserver-oci-client/0.1';
    this.content = new ContentCache(opts.contentCacheBytes ?? 0);
    const ca = opts.ca === undefined ? undefined : [...tls.rootCertificates, ...[opts.ca].flat()];
    // One secure context for every connection: built per connection from ~150 CA certificates it
    // costs more than the request, and passing `ca` to the agent makes each request's pool key
    // the concatenation of all of them.
    const secureContext = ca || opts.cert || opts.key ? tls.createSecureContext({ ca, cert: opts.cert, key: opts.key }) : undefined;
    this.httpsAgent = new https.Agent({ keepAlive: true, secureContext });
    this.bareHttpsAgent = opts.cert || opts.key ? new https.Agent({ keepAlive: true, secureContext: ca ? tls.createSecureContext({ ca }) : undefined }) : this.httpsAgent;
  }

  /** Whether an upstream policy limits where this client connects. */
  get guarded(): boolean {
    return this.opts.upstream !== undefined;
  }

  /** Closes idle keep-alive connections. */
  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
    this.bareHttpsAgent.destroy();
  }

  // ---- plumbing ----

  private origin(host: string): URL {
    const h = host === DOCKER_HUB ? 'registry-1.docker.io' : host;
    return new URL(`${this.opts.insecureHttp ? 'http' : 'https'}://${h}`);
  }

  private url(r: Reference, path: string): URL {
    return new URL(`/v2/${r.repository}/${path}`, this.origin(r.host));
  }

  private credentials(host: string): Credentials | undefined {
    return this.opts.credentials?.(host);
  }

  /**
   * The wait before a read's next attempt within the request, or undefined when it goes to the
   * caller at once (issue 15): a failure that is not retryable or past `retries`, a stall or a
   * silence (TIMEOUT: it took a stall timeout already), or a wait that would take the request,
   * counted from `since`, past one stall timeout (a Retry-After longer than that). A reconciler
   * shows such a failure in its status (Ready=False) and its work queue retries with backoff,
   * as Flux's controllers do, instead of hiding several stall timeouts inside one request.
   */
  private retryDelay(err: OciError, attempt: number, since: number): number | undefined {
    if (!err.retryable || err.code === 'TIMEOUT' || attempt >= this.retries) return undefined;
    const ms = this.backoff(attempt, err.retryAfterMs);
    return Date.now() - since + ms < this.stallTimeoutMs ? ms : undefined;
  }

  private backoff(attempt: number, retryAfterMs?: number): number {
    if (retryAfterMs !== undefined) return retryAfterMs + Math.random() * 100;
    const exp = Math.min(MAX_BACKOFF_MS, this.retryBaseMs * 2 ** attempt);
    return exp / 2 + (Math.random() * exp) / 2;
  }

  private send(method: string, url: URL, headers: Record<string, string>, body: Buffer | Readable | undefined, what: string, withCert = true): Promise<IncomingMessage> {
    const isHttps = url.protocol === 'https:';
    const h: Record<string, string> = { 'user-agent': this.userAgent, ...headers };
    if ((body === undefined || Buffer.isBuffer(body)) && method !== 'GET' && method !== 'HEAD') h['content-length'] = String(body?.length ?? 0);
    const policy = this.opts.upstream;
    const port = Number(url.port) || (isHttps ? 443 : 80);
    if (policy) {
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const why = net.isIP(host) ? upstreamProblem(policy, host, port) : undefined;
      if (why) return Promise.reject(new OciError('UPSTREAM_FORBIDDEN', `${what}: ${why}`));
    }
    return new Promise((resolve, reject) => {
      const agent = isHttps ? (withCert ? this.httpsAgent : this.bareHttpsAgent) : this.httpAgent;
      const req = (isHttps ? https : http).request(url, { method, headers: h, agent, ...(policy ? { lookup: guardedLookup(policy, port) as never } : {}) });
      req.setTimeout(this.timeoutMs, () => req.destroy(new OciError('TIMEOUT', `${what}: no data for ${this.timeoutMs} ms`, { retryable: true })));
      if (method === 'GET' || method === 'HEAD') this.cutStalled(req, what);
      req.on('error', (e) => reject(toOciError(e, what)));
      req.on('response', resolve);
      if (body instanceof Readable) {
        body.on('error', (e) => req.destroy(e instanceof OciError ? e : new OciError('SOURCE', `${what}: reading the data to upload: ${e.message}`, { cause: e })));
        req.on('close', () => body.readableEnded || body.destroy());
        body.pipe(req);
      } else req.end(body);
    });
  }

  /** Cuts a read that receives fewer than LOW_SPEED_BYTES per stallTimeoutMs (windows in which
   * its reader is behind do not count), headers included. */
  private cutStalled(req: http.ClientRequest, what: string) {
    const ms = this.stallTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    let res: IncomingMessage | undefined;
    const stop = () => clearInterval(timer);
    req.once('socket', (sock: net.Socket) => {
      let mark = sock.bytesRead;
      timer = setInterval(() => {
        const now = sock.bytesRead;
        // a full buffer: the reader is the slow one (an async iterator counts as paused, so not isPaused())
        const readerBehind = res !== undefined && res.readableLength >= res.readableHighWaterMark;
        if (!readerBehind && now - mark < LOW_SPEED_BYTES) {
          stop();
          const err = new OciError('TIMEOUT', `${what}: less than ${LOW_SPEED_BYTES} bytes in ${ms} ms (a stalled or dripping response)`, { retryable: true });
          if (res) res.destroy(err);
          req.destroy(err);
        }
        mark = now;
      }, ms).unref();
    });
    req.once('response', (r: IncomingMessage) => {
      res = r;
      r.once('end', stop);
      r.once('close', stop);
    });
    req.once('close', () => (res ? undefined : stop()));
    req.once('error', stop);
  }

  private async authorization(host: string, scope: string): Promise<string | undefined> {
    const creds = this.credentials(host);
    if (creds?.registryToken) return `Bearer ${creds.registryToken}`;
    const ch = this.challenges.get(host);
    if (ch?.scheme === 'basic') return basicAuth(creds);
    if (ch?.scheme !== 'bearer') return undefined;
    const cached = this.tokens.get(`${host} ${scope}`);
    if (cached && cached.expires > Date.now()) return cached.header;
    return this.fetchToken(host, ch, scope, scope);
  }

  /** Answers a 401 challenge; throws UNAUTHORIZED when it cannot. */
  private async authenticate(host: string, scope: string, header: string | string[] | undefined, what: string): Promise<string> {
    const ch = parseChallenge(header);
    const creds = this.credentials(host);
    const fail = (why: string) => new OciError('UNAUTHORIZED', `${what}: 401 unauthorized (${why})`, { status: 401 });
    if (!ch) throw fail('no usable WWW-Authenticate challenge');
    if (creds?.registryToken) throw fail('the registry token was rejected');
    this.challenges.set(host, { scheme: ch.scheme, realm: ch.realm, service: ch.service });
    if (ch.scheme === 'basic') {
      const b = basicAuth(creds);
      if (!b) throw fail(`registry ${host} wants basic auth and no credentials are configured`);
      return b;
    }
    return this.fetchToken(host, ch, ch.scope || scope, scope);
  }

  private async fetchToken(host: string, ch: Challenge, scope: string, cacheScope: string): Promise<string> {
    const creds = this.credentials(host);
    const what = `token for ${host}${scope ? ` (${scope})` : ''}`;
    let realm: URL;
    try {
      realm = new URL(ch.realm!);
    } catch {
      throw new OciError('UNAUTHORIZED', `${what}: invalid realm "${ch.realm}"`);
    }
    const req: Req = { method: 'GET', url: realm, expect: [200], retry: true, what, certOrigin: this.origin(host).origin };
    const scopeList = scope.split(' ').filter(Boolean);
    if (creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.identityToken, client_id: 'ocm-apiserver' });
      if (ch.service) form.set('service', ch.service);
      if (scopeList.length) form.set('scope', scopeList.join(' '));
      Object.assign(req, { method: 'POST', body: Buffer.from(form.toString()), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    } else {
      if (ch.service) realm.searchParams.set('service', ch.service);
      for (const s of scopeList) realm.searchParams.append('scope', s);
      const b = basicAuth(creds);
      if (b) req.headers = { authorization: b };
    }
    let body: any;
    const lease = await leaseMemory(MAX_TOKEN_BYTES); // inside a reconcile; then what it is, and its parse
    try {
      const raw = await this.call(req, async (res) => readBody(res, MAX_TOKEN_BYTES, what));
      lease.shrink(raw.length);
      const parse = await leaseMemory(PARSED_HEAP_PER_BYTE * raw.length);
      body = parseJson(raw, what);
      const { token, access_token, expires_in } = body ?? {};
      body = { token, access_token, expires_in }; // the rest of the parse let go: its lease with it
      parse.shrink(0);
    } catch (e) {
      const err = toOciError(e, what);
      if (err.status === 401 || err.status === 403) throw new OciError('UNAUTHORIZED', `${what}: the token endpoint refused the credentials (${err.status})`, { status: 401, cause: err });
      throw err;
    }
    const token = body?.token || body?.access_token;
    if (typeof token !== 'string') throw new OciError('UNAUTHORIZED', `${what}: token endpoint returned no token`);
    const ttl = Math.max(60, Number(body.expires_in) || 60);
    const header = `Bearer ${token}`;
    this.tokens.set(`${host} ${cacheScope}`, { header, expires: Date.now() + (ttl - 10) * 1000 });
    return header;
  }

  /** One logical request: auth (answering one 401 challenge) and redirects. Returns any status. */
  private async exchange(r: Req): Promise<IncomingMessage> {
    // Credentials (Authorization, the client certificate) go only to the origin they are for:
    // scheme, host and port. A redirect elsewhere is followed without them (blob storage), and
    // never from https to http.
    const origin = r.host === undefined ? undefined : this.origin(r.host).origin;
    const certOrigin = origin ?? r.certOrigin;
    let auth = r.host === undefined ? undefined : await this.authorization(r.host, r.scope ?? '');
    let url = r.url;
    const first = url.origin;
    let challenged = false;
    for (let hops = 0; ; ) {
      const body = typeof r.body === 'function' ? r.body() : r.body;
      const sameOrigin = url.origin === origin;
      const { authorization: given, ...rest } = r.headers ?? {};
      const headers = { ...rest, ...(given && url.origin === first ? { authorization: given } : {}), ...(auth && sameOrigin ? { authorization: auth } : {}) };
      const res = await this.send(r.method, url, headers, body, r.what, url.origin === certOrigin);
      const status = res.statusCode ?? 0;
      if (status === 401 && sameOrigin && !challenged && !(r.body instanceof Readable)) {
        challenged = true;
        drain(res);
        if (body instanceof Readable) body.destroy();
        auth = await this.authenticate(r.host!, r.scope ?? '', res.headers['www-authenticate'], r.what);
        continue;
      }
      if ([301, 302, 303, 307, 308].includes(status) && res.headers.location && (r.method === 'GET' || r.method === 'HEAD') && hops++ < 5) {
        drain(res);
        const next = new URL(res.headers.location, url);
        if (url.protocol === 'https:' && next.protocol !== 'https:') throw new OciError('REDIRECT_REFUSED', `${r.what}: refused a redirect from https to ${next.protocol.replace(':', '')}`);
        if (next.protocol !== 'https:' && next.protocol !== 'http:') throw new OciError('REDIRECT_REFUSED', `${r.what}: refused a redirect to a ${next.protocol.replace(':', '')} URL`);
        url = next;
        continue;
      }
      if (body instanceof Readable && !r.expect.includes(status)) body.unpipe().destroy();
      return res;
    }
  }

  /** exchange() + status check + retries; `handle` runs inside the retry loop. */
  private async call<T>(r: Req, handle: (res: IncomingMessage) => Promise<T>): Promise<T> {
    const since = Date.now();
    for (let attempt = 0; ; attempt++) {
      let err: OciError;
      try {
        const res = await this.exchange(r);
        if (r.expect.includes(res.statusCode ?? 0)) return await handle(res);
        err = await errorFrom(res, r.what, this.opts.trustedErrorMessages);
      } catch (e) {
        err = toOciError(e, r.what);
      }
      const delay = r.retry && !(r.body instanceof Readable) ? this.retryDelay(err, attempt, since) : undefined;
      if (delay === undefined) throw err;
      await sleep(delay);
    }
  }

  // ---- API ----

  /** Checks that `host` speaks the distribution API (and that the credentials work). */
  async ping(host: string): Promise<void> {
    const h = normalizeRegistryHost(host.replace(/^oci:\/\//, ''));
    await this.call({ method: 'GET', url: new URL('/v2/', this.origin(h)), host: h, scope: '', expect: [200], retry: true, what: `ping ${h}` }, async (res) => drain(res));
  }

  async blobExists(ref: Ref, digest: string): Promise<boolean> {
    return (await this.statBlob(ref, digest)) !== undefined;
  }

  private async statBlob(ref: Ref, digest: string): Promise<number | undefined> {
    const r = parseReference(ref);
    hasherFor(digest);
    const what = `HEAD blob ${digest} in ${r.host}/${r.repository}`;
    return this.call({ method: 'HEAD', url: this.url(r, `blobs/${digest}`), host: r.host, scope: scopes.pull(r.repository), expect: [200, 404], retry: true, what }, async (res) => {
      drain(res);
      return res.statusCode === 200 ? Number(res.headers['content-length'] ?? NaN) : undefined;
    });
  }

  /** Streams a blob; the stream fails at its end with DIGEST_MISMATCH when the content is wrong.
   * A connection lost mid-way is resumed with a Range request. */
  async getBlob(ref: Ref, digest: string): Promise<Readable> {
    const r = parseReference(ref);
    const hash = hasherFor(digest);
    const what = `GET blob ${digest} from ${r.host}/${r.repository}`;
    const req: Req = { method: 'GET', url: this.url(r, `blobs/${digest}`), host: r.host, scope: scopes.pull(r.repository), expect: [200], retry: true, what };
    let res = await this.call(req, async (res) => res);
    let received = 0;
    let skip = 0;
    let attempt = 0;
    let finished = false;
    // Response chunks are pushed straight through (no per-chunk promise or generator step):
    // this is the hot path of every snapshot pull.
    let mismatch: OciError | undefined;
    const out = new Readable({
      highWaterMark: 1 << 20,
      read: () => {
        if (!mismatch) return void res.resume();
        // The error comes after every byte has been read, as a last "chunk"; the empty push keeps
        // the stream asking until its buffer is empty.
        if (out.readableLength === 0) out.destroy(mismatch);
        else out.push(Buffer.alloc(0));
      },
      destroy: (err, cb) => {
        finished = true;
        res.destroy();
        cb(err);
      },
    });
    const fail = (e: unknown) => {
      if (finished) return;
      const err = toOciError(e, what);
      // a connection lost mid-way is resumed; a stalled one is not (retryDelay)
      const delay = this.retryDelay(err, attempt++, Date.now());
      if (delay === undefined) return out.destroy(err);
      void (async () => {
        await sleep(delay);
        if (finished) return;
        const next = await this.call({ ...req, headers: { range: `bytes=${received}-` }, expect: [200, 206] }, async (res) => res);
        const start = next.statusCode === 206 ? Number(/bytes (\d+)-/.exec(String(next.headers['content-range']))?.[1]) : 0;
        if (start > received) {
          next.destroy();
          throw new OciError('INVALID_RESPONSE', `${what}: resumed at byte ${start}, wanted ${received}`);
        }
        if (finished) return void next.destroy(); // the reader went away meanwhile
        skip = received - start;
        attach(next);
      })().catch((e) => {
        if (!finished) out.destroy(toOciError(e, what));
      });
    };
    const attach = (r: IncomingMessage) => {
      res = r;
      let settled = false; // this response has ended or failed (an error is followed by close)
      const failed = (e: unknown) => {
        if (settled) return;
        settled = true;
        fail(e);
      };
      r.on('data', (chunk: Buffer) => {
        if (finished) return;
        if (skip) {
          const n = Math.min(skip, chunk.length);
          [chunk, skip] = [chunk.subarray(n), skip - n];
          if (!chunk.length) return;
        }
        hash.update(chunk);
        received += chunk.length;
        if (!out.push(chunk)) r.pause();
      });
      r.on('end', () => {
        if (!r.complete) return failed(new Error('aborted'));
        if (settled || finished) return;
        settled = finished = true;
        const actual = `${algOf(digest)}:${hash.digest('hex')}`;
        if (actual === digest) return void out.push(null);
        mismatch = new OciError('DIGEST_MISMATCH', `${what}: received content has digest ${actual}`);
        if (out.readableLength === 0) out.destroy(mismatch);
        else out.push(Buffer.alloc(0));
      });
      r.on('error', failed);
      r.on('close', () => failed(new Error('premature close')));
    };
    attach(res);
    return out;
  }

  /**
   * The whole blob in memory (verified); TOO_LARGE past maxBytes (default 256 MiB). Inside a
   * reconcile it is leased from the in-memory budget before the request: `size` (the size its
   * manifest or access declares, read into one buffer of that size), or else 1 MiB, doubled before
   * the bytes pass it; shrunk to what it is once read (with the copy that joins its pieces leased
   * while it is made).
   */
  async getBlobBuffer(ref: Ref, digest: string, maxBytes = 256 << 20, opts: { size?: number } = {}): Promise<Buffer> {
    const r = parseReference(ref);
    const tooLarge = () => new OciError('TOO_LARGE', `blob ${digest} is larger than ${maxBytes} bytes`);
    const cached = this.content.get(contentKey('blob', r, digest));
    if (cached) {
      if (cached.body.length > maxBytes) throw tooLarge();
      await leaseMemory(cached.body.length); // held by the caller too (the cache may let go of it)
      return cached.body;
    }
    const size = Number.isSafeInteger(opts.size) && opts.size! >= 0 && opts.size! <= maxBytes ? opts.size! : undefined;
    // Undeclared: leased as it grows (doubling from 1 MiB), not maxBytes up front, which let only
    // two such reads run at once in the whole budget.
    const lease = await leaseMemory(size ?? Math.min(maxBytes, 1 << 20));
    const growth: Lease[] = [];
    let leased = lease.bytes;
    const stream = await this.getBlob(r, digest);
    const one = size === undefined ? undefined : Buffer.allocUnsafe(size);
    const chunks: Buffer[] = [];
    let n = 0;
    try {
      for await (const c of stream as AsyncIterable<Buffer>) {
        if (n + c.length > (size ?? maxBytes)) {
          stream.destroy();
          throw size === undefined || size === maxBytes ? tooLarge() : new OciError('TOO_LARGE', `blob ${digest} is larger than the ${size} bytes declared for it`);
        }
        if (!one && n + c.length > leased && inReconcile()) {
          const more = await leaseMemory(Math.min(maxBytes, Math.max(2 * leased, n + c.length)) - leased);
          growth.push(more);
          leased += more.bytes;
        }
        if (one) c.copy(one, n);
        else chunks.push(c);
        n += c.length;
      }
    } catch (e) {
      throw toOciError(e, `GET blob ${digest}`);
    }
    let body: Buffer;
    if (one) {
      // shorter than declared: a slice would keep (and the cache count as n) the whole declared buffer
      if (n !== size) throw new OciError('SIZE_MISMATCH', `GET blob ${digest}: ${n} bytes, declared ${size}`);
      body = one;
    } else {
      const copy = await leaseMemory(Math.max(0, 2 * n - leased));
      body = Buffer.concat(chunks, n);
      chunks.length = 0;
      copy.shrink(0);
    }
    let keep = one ? one.length : n; // what stays held: the body, over the leases taken for it
    for (const l of [lease, ...growth]) {
      const k = Math.min(l.bytes, keep);
      l.shrink(k);
      keep -= k;
    }
    this.content.set(contentKey('blob', r, digest), { body });
    return body;
  }

  /**
   * Uploads a blob unless the registry has it. Known digest and size: POST + one streaming PUT;
   * otherwise chunked PATCHes (each chunk buffered, `chunkSize` default 8 MiB) and a closing PUT.
   * `mountFrom` (a repository reference on the same registry) tries a cross-repository mount first.
   * Buffers and stream factories restart the whole upload on a retryable failure; a one-shot
   * Readable cannot, but a failed chunk is resumed from the registry's upload status.
   */
  async pushBlob(
    ref: Ref,
    data: Buffer | Readable | (() => Readable),
    digest?: string,
    size?: number,
    opts: { mountFrom?: Ref; chunkSize?: number } = {},
  ): Promise<{ digest: string; size: number }> {
    const r = parseReference(ref);
    const pushed = await this.pushBlobUncached(r, data, digest, size, opts);
    if (Buffer.isBuffer(data)) this.content.set(contentKey('blob', r, pushed.digest), { body: data }, true); // a copy (made only if kept): the caller keeps its buffer
    return pushed;
  }

  private async pushBlobUncached(
    r: Reference,
    data: Buffer | Readable | (() => Readable),
    digest: string | undefined,
    size: number | undefined,
    opts: { mountFrom?: Ref; chunkSize?: number },
  ): Promise<{ digest: string; size: number }> {
    if (digest) hasherFor(digest);
    if (Buffer.isBuffer(data)) {
      const actual = await digestOfAsync(data, algOf(digest));
      if (digest && digest !== actual) throw new OciError('DIGEST_MISMATCH', `push blob: data has digest ${actual}, expected ${digest}`);
      if (size !== undefined && size !== data.length) throw new OciError('SIZE_MISMATCH', `push blob: data is ${data.length} bytes, expected ${size}`);
      [digest, size] = [actual, data.length];
    }
    const what = `push blob ${digest ?? ''} to ${r.host}/${r.repository}`;
    if (Buffer.isBuffer(data) && digest && data.length <= (this.opts.singlePostMaxBytes ?? 0) && !opts.mountFrom && !this.noSinglePost.has(r.host)) {
      // One request instead of HEAD + POST + PUT; a registry that only opens a session gets the PUT.
      const body = data;
      const url = withQuery(this.url(r, 'blobs/uploads/'), 'digest', digest);
      const headers = { 'content-type': 'application/octet-stream' };
      const session = await this.call({ method: 'POST', url, host: r.host, scope: scopes.push(r.repository), headers, body, expect: [201, 202], retry: true, what }, async (res) => {
        drain(res);
        if (res.statusCode === 201) return checkDigestHeader(res, digest, what);
        this.noSinglePost.add(r.host);
        return sessionOf(res, url, what);
      });
      if (session) await this.putMonolithic(r, session.location, body, digest, body.length, what);
      return { digest, size: body.length };
    }
    if (digest) {
      const have = await this.statBlob(r, digest);
      if (have !== undefined) return { digest, size: Number.isNaN(have) ? (size ?? have) : have };
    }
    let session: { location: URL; minChunk: number } | undefined;
    if (digest && opts.mountFrom) {
      const from = parseReference(opts.mountFrom);
      const url = new URL(`/v2/${r.repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from.repository)}`, this.origin(r.host));
      const scope = `${scopes.push(r.repository)} ${scopes.pull(from.repository)}`;
      const res = await this.call({ method: 'POST', url, host: r.host, scope, expect: [201, 202], retry: true, what: `mount ${digest} from ${from.repository} into ${r.repository}` }, async (res) => {
        drain(res);
        return res;
      });
      if (res.statusCode === 201) return { digest, size: size ?? (await this.statBlob(r, digest)) ?? 0 };
      session = sessionOf(res, url, what);
    }
    const restartable = !(data instanceof Readable);
    for (let attempt = 0; ; attempt++) {
      try {
        const s = session ?? (await this.startUpload(r, what));
        session = undefined;
        const src = typeof data === 'function' ? data() : data;
        if (digest && size !== undefined) return await this.putMonolithic(r, s.location, src, digest, size, what);
        return await this.uploadChunks(r, s.location, src, digest, size, Math.max(opts.chunkSize ?? DEFAULT_CHUNK, s.minChunk), what);
      } catch (e) {
        const err = toOciError(e, what);
        if (!restartable || !err.retryable || attempt >= this.retries) throw err;
        await sleep(this.backoff(attempt, err.retryAfterMs));
      }
    }
  }

  private async startUpload(r: Reference, what: string): Promise<{ location: URL; minChunk: number }> {
    const url = this.url(r, 'blobs/uploads/');
    return this.call({ method: 'POST', url, host: r.host, scope: scopes.push(r.repository), expect: [202], retry: true, what }, async (res) => {
      drain(res);
      return sessionOf(res, url, what);
    });
  }

  private async putMonolithic(r: Reference, location: URL, src: Buffer | Readable, digest: string, size: number, what: string) {
    const body = Buffer.isBuffer(src) ? src : pipeline(src, verifier(digest, size, what), () => {});
    const headers = { 'content-type': 'application/octet-stream', 'content-length': String(size) };
    try {
      await this.call({ method: 'PUT', url: withQuery(location, 'digest', digest), host: r.host, scope: scopes.push(r.repository), headers, body, expect: [201], what }, async (res) => {
        drain(res);
        checkDigestHeader(res, digest, what);
      });
    } catch (e) {
      // A failed upload's session is closed, not left holding one of the registry's upload slots
      // (a retry opens a new one).
      await this.call({ method: 'DELETE', url: location, host: r.host, scope: scopes.push(r.repository), expect: [204, 404], what }, async (res) => drain(res)).catch(() => {});
      throw e;
    }
    return { digest, size };
  }

  private async uploadChunks(r: Reference, location: URL, src: Buffer | Readable, digest: string | undefined, size: number | undefined, chunkSize: number, what: string) {
    const hash = digest ? hasherFor(digest) : createHash('sha256');
    let offset = 0;
    const source = Buffer.isBuffer(src) ? Readable.from([src]) : src;
    try {
      for await (const chunk of chunked(source, chunkSize)) {
        if (size !== undefined && offset + chunk.length > size) throw new OciError('SIZE_MISMATCH', `${what}: more than the declared ${size} bytes`);
        hash.update(chunk);
        location = await this.patchChunk(r, location, chunk, offset, what);
        offset += chunk.length;
      }
    } catch (e) {
      throw e instanceof OciError ? e : new OciError('SOURCE', `${what}: reading the data to upload: ${(e as Error).message}`, { cause: e });
    }
    const actual = `${algOf(digest)}:${hash.digest('hex')}`;
    const mismatch =
      size !== undefined && offset !== size ? new OciError('SIZE_MISMATCH', `${what}: ${offset} bytes, declared ${size}`)
      : digest && actual !== digest ? new OciError('DIGEST_MISMATCH', `${what}: content has digest ${actual}, expected ${digest}`)
      : undefined;
    if (mismatch) {
      await this.call({ method: 'DELETE', url: location, host: r.host, scope: scopes.push(r.repository), expect: [204, 404], what }, async (res) => drain(res)).catch(() => {});
      throw mismatch;
    }
    try {
      await this.call({ method: 'PUT', url: withQuery(location, 'digest', actual), host: r.host, scope: scopes.push(r.repository), expect: [201], what }, async (res) => {
        drain(res);
        checkDigestHeader(res, actual, what);
      });
    } catch (e) {
      // The upload may have completed with the answer lost.
      if (!(e as OciError).retryable || !(await this.blobExists(r, actual).catch(() => false))) throw e;
    }
    return { digest: actual, size: offset };
  }

  private async patchChunk(r: Reference, location: URL, chunk: Buffer, offset: number, what: string): Promise<URL> {
    const scope = scopes.push(r.repository);
    for (let attempt = 0; ; attempt++) {
      try {
        const headers = { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` };
        return await this.call({ method: 'PATCH', url: location, host: r.host, scope, headers, body: chunk, expect: [202], what }, async (res) => {
          drain(res);
          return sessionOf(res, location, what).location;
        });
      } catch (e) {
        const err = toOciError(e, what);
        if (!err.retryable || attempt >= this.retries) throw err;
        await sleep(this.backoff(attempt, err.retryAfterMs));
        // Ask how much arrived, then resend the chunk or move on.
        const st = await this.call({ method: 'GET', url: location, host: r.host, scope, expect: [204], retry: true, what: `${what} (upload status)` }, async (res) => {
          drain(res);
          const end = /^(?:bytes=)?0-(\d+)$/.exec(String(res.headers.range ?? ''));
          return { location: sessionOf(res, location, what).location, received: end && Number(end[1]) > 0 ? Number(end[1]) + 1 : 0 };
        });
        location = st.location;
        if (st.received === offset + chunk.length) return location;
        if (st.received !== offset) throw new OciError('UPLOAD_INTERRUPTED', `${what}: registry has ${st.received} bytes after a failed chunk at ${offset}`, { cause: err, retryable: true });
      }
    }
  }

  async getManifest(ref: Ref, accept: string[] = DEFAULT_ACCEPT): Promise<{ mediaType: string; digest: string; body: Buffer; manifest: any }> {
    const r = parseReference(ref);
    const id = r.digest ?? r.tag ?? 'latest';
    const what = `GET manifest ${formatReference(r)}`;
    const cached = r.digest ? this.content.get(contentKey('manifest', r, r.digest)) : undefined;
    if (cached && (!cached.mediaType || accept.includes(cached.mediaType))) {
      // held by the caller too (the cache may let go of it): leased, and its parse
      await leaseMemory(cached.body.length * (1 + PARSED_HEAP_PER_BYTE));
      return { mediaType: cached.mediaType ?? '', digest: r.digest!, body: cached.body, manifest: JSON.parse(cached.body.toString('utf8')) };
    }
    // Inside a reconcile: the most a manifest may be, leased before the request, then what it is.
    const lease = await leaseMemory(MAX_MANIFEST_BYTES);
    const got = await this.call({ method: 'GET', url: this.url(r, `manifests/${id}`), host: r.host, scope: scopes.pull(r.repository), headers: { accept: accept.join(', ') }, expect: [200], retry: true, what }, async (res) => {
      const body = await readBody(res, MAX_MANIFEST_BYTES, what);
      const header = res.headers['docker-content-digest'];
      const expected = r.digest ?? (typeof header === 'string' && header ? header : undefined);
      const digest = digestOf(body, algOf(expected));
      if (expected) {
        hasherFor(expected);
        if (digest !== expected) throw new OciError('DIGEST_MISMATCH', `${what}: manifest has digest ${digest}, ${r.digest ? 'requested' : 'registry says'} ${expected}`);
      }
      return { body, digest, expected, contentType: String(res.headers['content-type'] ?? '').split(';')[0].trim() };
    });
    const { body, digest } = got;
    lease.shrink(body.length);
    await leaseMemory(PARSED_HEAP_PER_BYTE * body.length);
    let manifest: any;
    try {
      manifest = JSON.parse(body.toString('utf8'));
    } catch {
      throw new OciError('MANIFEST_INVALID', `${what}: manifest is not JSON`);
    }
    const mediaType = manifest?.mediaType || got.contentType;
    if (got.expected) this.content.set(contentKey('manifest', r, digest), { body, mediaType });
    return { mediaType, digest, body, manifest };
  }

  async headManifest(ref: Ref): Promise<{ digest: string; mediaType: string; size: number } | undefined> {
    const r = parseReference(ref);
    const id = r.digest ?? r.tag ?? 'latest';
    const what = `HEAD manifest ${formatReference(r)}`;
    const head = await this.call({ method: 'HEAD', url: this.url(r, `manifests/${id}`), host: r.host, scope: scopes.pull(r.repository), headers: { accept: DEFAULT_ACCEPT.join(', ') }, expect: [200, 404], retry: true, what }, async (res) => {
      drain(res);
      if (res.statusCode === 404) return undefined;
      const d = res.headers['docker-content-digest'];
      return { digest: typeof d === 'string' ? d : '', mediaType: String(res.headers['content-type'] ?? '').split(';')[0].trim(), size: Number(res.headers['content-length'] ?? 0) };
    });
    if (head && (!head.digest || (r.digest && head.digest !== r.digest))) {
      const m = await this.getManifest(r);
      return { digest: m.digest, mediaType: m.mediaType, size: m.body.length };
    }
    return head;
  }

  async putManifest(ref: Ref, manifest: object | Buffer, mediaType: string): Promise<{ digest: string }> {
    const r = parseReference(ref);
    const body = Buffer.isBuffer(manifest) ? manifest : Buffer.from(JSON.stringify(manifest));
    const digest = digestOf(body, algOf(r.digest));
    const what = `PUT manifest ${formatReference(r)}`;
    if (r.digest && r.digest !== digest) throw new OciError('DIGEST_MISMATCH', `${what}: manifest has digest ${digest}`);
    await this.call({ method: 'PUT', url: this.url(r, `manifests/${r.tag ?? digest}`), host: r.host, scope: scopes.push(r.repository), headers: { 'content-type': mediaType }, body, expect: [201], retry: true, what }, async (res) => {
      drain(res);
      checkDigestHeader(res, digest, what);
    });
    this.content.set(contentKey('manifest', r, digest), { body, mediaType });
    return { digest };
  }

  /** Deletes the manifest; a tag is resolved to its digest first (so every tag of it goes too). */
  async deleteManifest(ref: Ref): Promise<void> {
    const r = parseReference(ref);
    let digest = r.digest;
    if (!digest) {
      digest = (await this.headManifest(r))?.digest;
      if (!digest) throw new OciError('MANIFEST_UNKNOWN', `DELETE manifest ${formatReference(r)}: no such manifest`, { status: 404 });
    }
    const what = `DELETE manifest ${r.host}/${r.repository}@${digest}`;
    this.content.delete(contentKey('manifest', r, digest));
    await this.call({ method: 'DELETE', url: this.url(r, `manifests/${digest}`), host: r.host, scope: scopes.delete(r.repository), expect: [200, 202, 204], retry: true, what }, async (res) => drain(res));
  }

  /** All tags of the repository, following `Link: <...>; rel="next"` pages. */
  /** Every tag (strings only), page after page; TOO_LARGE past `maxTags` or `maxBytes` over all
   * pages (a registry paging forever is cut there). */
  async listTags(repoRef: Ref, opts: { pageSize?: number; maxTags?: number; maxBytes?: number } = {}): Promise<string[]> {
    const r = parseReference(repoRef);
    let url: URL | undefined = this.url(r, `tags/list${opts.pageSize ? `?n=${opts.pageSize}` : ''}`);
    const tags: string[] = [];
    const seen = new Set<string>();
    const maxTags = opts.maxTags ?? Infinity;
    let budget = opts.maxBytes ?? Infinity;
    const what = `list tags of ${r.host}/${r.repository}`;
    while (url && !seen.has(url.href)) {
      seen.add(url.href);
      // Inside a reconcile each page is leased (the most it may be, then what it is, and its parse).
      const max = Math.min(MAX_JSON_BYTES, budget);
      const lease = await leaseMemory(max);
      const got: { body: Buffer; next?: URL } = await this.call({ method: 'GET', url, host: r.host, scope: scopes.pull(r.repository), expect: [200], retry: true, what }, async (res) => ({ body: await readBody(res, max, what), next: nextLink(res.headers.link, url!) }));
      lease.shrink(got.body.length);
      const parse = await leaseMemory(PARSED_HEAP_PER_BYTE * got.body.length);
      const json = parseJson(got.body, what);
      const page: { tags: unknown[]; next?: URL; bytes: number } = { tags: Array.isArray(json?.tags) ? json.tags : [], next: got.next, bytes: got.body.length };
      budget -= page.bytes;
      for (const t of page.tags) if (typeof t === 'string') tags.push(t);
      parse.shrink(0); // the tags kept are no larger than the page, leased above
      if (tags.length > maxTags) throw new OciError('TOO_LARGE', `${what}: more than ${maxTags} tags`);
      url = page.next;
    }
    return tags;
  }

  /** The referrers of a manifest as an OCI image index; falls back to the `<alg>-<hex>` tag schema. */
  async referrers(ref: Ref, artifactType?: string): Promise<any> {
    const r = parseReference(ref);
    const digest = r.digest ?? (await this.headManifest(r))?.digest;
    if (!digest) throw new OciError('MANIFEST_UNKNOWN', `referrers of ${formatReference(r)}: no such manifest`, { status: 404 });
    const what = `referrers of ${r.host}/${r.repository}@${digest}`;
    const index = { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] as any[] };
    const keep = (ms: any[]) => (artifactType ? ms.filter((m) => m?.artifactType === artifactType) : ms);
    let url: URL | undefined = this.url(r, `referrers/${digest}${artifactType ? `?artifactType=${encodeURIComponent(artifactType)}` : ''}`);
    const seen = new Set<string>();
    while (url && !seen.has(url.href)) {
      seen.add(url.href);
      const lease = await leaseMemory(MAX_JSON_BYTES); // inside a reconcile, as listTags' pages
      const got: { body: Buffer; next?: URL } | undefined = await this.call({ method: 'GET', url, host: r.host, scope: scopes.pull(r.repository), expect: [200, 404], retry: true, what }, async (res) => {
        if (res.statusCode === 404) {
          drain(res);
          return undefined;
        }
        return { body: await readBody(res, MAX_JSON_BYTES, what), next: nextLink(res.headers.link, url!) };
      });
      lease.shrink(got?.body.length ?? 0);
      let page: { manifests: any[]; next?: URL } | undefined;
      if (got) {
        await leaseMemory(PARSED_HEAP_PER_BYTE * got.body.length);
        const json = parseJson(got.body, what);
        page = { manifests: Array.isArray(json?.manifests) ? json.manifests : [], next: got.next };
      }
      if (!page) {
        if (seen.size > 1) throw new OciError('INVALID_RESPONSE', `${what}: a referrers page vanished`);
        const tag = digest.replace(':', '-').slice(0, 128);
        const m = await this.getManifest({ ...r, tag, digest: undefined }, [MEDIA_TYPES.ociIndex]).catch((e: OciError) => {
          if (e.status === 404) return undefined;
          throw e;
        });
        index.manifests = keep(Array.isArray(m?.manifest?.manifests) ? m.manifest.manifests : []);
        return index;
      }
      index.manifests.push(...keep(page.manifests));
      url = page.next;
    }
    return index;
  }
}

function basicAuth(c: Credentials | undefined): string | undefined {
  if (!c?.username && !c?.password) return undefined;
  return `Basic ${Buffer.from(`${c.username ?? ''}:${c.password ?? ''}`).toString('base64')}`;
}

function sessionOf(res: IncomingMessage, base: URL, what: string): { location: URL; minChunk: number } {
  const loc = res.headers.location;
  if (!loc) throw new OciError('INVALID_RESPONSE', `${what}: registry sent no upload Location`, { status: res.statusCode });
  return { location: new URL(loc, base), minChunk: Number(res.headers['oci-chunk-min-length']) || 0 };
}

function checkDigestHeader(res: IncomingMessage, digest: string, what: string): void {
  const h = res.headers['docker-content-digest'];
  if (typeof h === 'string' && h && algOf(h) === algOf(digest) && h !== digest) {
    throw new OciError('DIGEST_MISMATCH', `${what}: registry stored ${h}, expected ${digest}`);
  }
}

function parseJson(body: Buffer, what: string): any {
  try {
    return JSON.parse(body.toString('utf8'));
  } catch {
    throw new OciError('INVALID_RESPONSE', `${what}: response is not JSON`);
  }
}
