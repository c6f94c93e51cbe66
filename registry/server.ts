// The snapshot registry: an OCI Distribution Spec v1.1 registry over HTTPS (fastify), with mTLS or
// bearer-token auth. Storage layout: see blobstore.ts and server-repos.ts.
import { randomBytes } from 'node:crypto';
import { loggerOptions, type LogFormat } from '../apiserver/logging.js';
import { ByteBudget } from '../apiserver/byte-budget.js';
import { MAX_HEADERS_TIMEOUT_MS } from '../apiserver/limits.js';
import { connectionOptions, guardConnections } from '../apiserver/connections.js';
import type { FileHandle } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import tls, { type TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { BlobStore, digestHex, isDigest, sha256 } from './blobstore.js';
import { RegistryPolicy, SERVICE, Tokens, certPrincipal, parseScopes, type PullCheck, type Principal } from './server-auth.js';
import { RegistryError, regError, storageError } from './server-errors.js';
import { WriteGate, collectGarbage, type GcOptions, type GcResult } from './server-gc.js';
import { MAX_MANIFEST_BYTES, OCI_INDEX, parseManifest } from './server-manifest.js';
import { MAX_NAME, NAME_RE, Repos, TAG_RE, type Descriptor, type ManifestMeta } from './server-repos.js';
import { Quota, type RegistryLimits } from './server-quota.js';

export interface RegistryOptions {
  dataDir: string;
  port: number;
  host: string;
  tls: { key: string; cert: string; clientCA: string };
  anonymousPull?: boolean;
  tokenSecret?: Buffer;
  authenticateBasic?: (user: string, pass: string) => Promise<{ name: string; groups: string[] } | undefined>;
  /** May a user pull the repositories of a namespace (`get` on its snapshots, asked of the API's
   * authorizer)? Without it only the server's own certificate (and, with anonymousPull, anyone) pulls. */
  authorizePull?: PullCheck;
  /** Per-namespace quotas, upload slots, the free-disk guard (server-quota.ts; defaults there). */
  limits?: Partial<RegistryLimits>;
  /** How long a connection may take for its TLS handshake, and then stay silent before its first request (the API's head timeout). */
  headTimeoutMs?: number;
  logLevel?: string;
  logFormat?: LogFormat;
  /** Called with the fastify app before it listens (metrics hooks) and the blob store (blob count). */
  instrument?: (app: FastifyInstance, blobs: BlobStore) => void;
}

export interface Registry {
  port: number;
  url: string;
  close(): Promise<void>;
  gc(opts?: GcOptions): Promise<GcResult>;
}

export type { GcOptions, GcResult, RegistryLimits };

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
  }
}

const MAX_TOKEN_FORM = 64 * 1024;

type Query = Record<string, string | string[] | undefined>;
const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);
const all = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const tooBig = () => regError('SIZE_INVALID', `body larger than ${limit} bytes`, undefined, 413);
  if (Number(req.headers['content-length']) > limit) throw tooBig();
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n <= limit) chunks.push(c);
  }
  if (n > limit) throw tooBig();
  return Buffer.concat(chunks);
}

const SMALL_BLOB = 1 << 20;

const hasBody = (req: FastifyRequest) => req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;

/** `n`/`last` pagination over a sorted list; returns the page and the `last` for the next page, if any. */
function paginate(items: string[], q: Query): { page: string[]; n?: number; next?: string } {
  const last = first(q.last);
  const from = last === undefined ? items : items.filter((x) => x > last);
  const nRaw = first(q.n);
  const n = nRaw !== undefined && /^\d+$/.test(nRaw) ? Number(nRaw) : undefined;
  if (n === undefined || from.length <= n) return { page: from };
  const page = from.slice(0, n);
  return { page, n, next: page.length ? page[page.length - 1] : undefined };
}

function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  const m = header && /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  let start: number;
  let end: number;
  if (m[1] === '') {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  return start > end || start >= size ? 'unsatisfiable' : { start, end };
}

export async function startRegistry(opts: RegistryOptions): Promise<Registry> {
  const quota = new Quota(opts.dataDir, opts.limits);
  const store = new BlobStore(opts.dataDir, quota);
  await store.init();
  const repos = new Repos(opts.dataDir, store);
  await repos.init();
  const tokens = new Tokens(opts.tokenSecret ?? randomBytes(32));
  const gate = new WriteGate();
  const anonymousPull = opts.anonymousPull ?? false;
  const policy = new RegistryPolicy(opts.authorizePull, anonymousPull);

  const app = Fastify({
    https: {
      key: opts.tls.key,
      cert: opts.tls.cert,
      ca: opts.tls.clientCA,
      requestCert: true,
      rejectUnauthorized: false,
      // Bulk blob traffic: prefer AES-128-GCM (as Go's TLS stack, and so distribution, does) over
      // Node's default AES-256-GCM, about a third less cipher work per byte on both ends.
      ciphers: ['TLS_AES_128_GCM_SHA256', ...tls.DEFAULT_CIPHERS.split(':').filter((c) => c !== 'TLS_AES_128_GCM_SHA256')].join(':'),
      honorCipherOrder: true,
      ...connectionOptions(opts.headTimeoutMs ?? MAX_HEADERS_TIMEOUT_MS),
    },
    logger: loggerOptions(opts.logLevel, opts.logFormat),
    logController: new LogController({ disableRequestLogging: true }),
    routerOptions: { maxParamLength: 4096 },
    exposeHeadRoutes: false,
    return503OnClosing: true,
    forceCloseConnections: true,
  });
  opts.instrument?.(app, store);

  guardConnections(app.server as unknown as tls.Server, opts.headTimeoutMs ?? MAX_HEADERS_TIMEOUT_MS);
  // Bodies are never parsed by fastify: handlers stream req.raw themselves.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_req, _payload, done) => done(null));

  app.setErrorHandler((err: FastifyError | RegistryError, req, reply) => {
    let e: RegistryError;
    if (err instanceof RegistryError) e = err;
    else if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) e = regError('UNSUPPORTED', err.message, undefined, err.statusCode);
    else e = storageError(err);
    if (req.raw.destroyed || (err as NodeJS.ErrnoException).code === 'ECONNRESET') req.log.debug({ err, url: req.url }, 'client went away');
    else if (e.status >= 500) req.log.error({ err, url: req.url }, 'registry request failed');
    for (const [k, v] of Object.entries(e.headers)) reply.header(k, v);
    return reply.code(e.status).header('Content-Type', 'application/json').send(e.body());
  });
  app.setNotFoundHandler((req, reply) =>
    reply.code(404).header('Content-Type', 'application/json').send(regError('UNSUPPORTED', 'no such endpoint', { path: req.url.split('?')[0] }, 404).body()),
  );

  const realm = (req: FastifyRequest) => `https://${req.headers.host ?? `${opts.host}:${port}`}/token`;
  const unauthorized = (req: FastifyRequest, scope?: string, error?: string) =>
    regError('UNAUTHORIZED', 'authentication required', scope ? { scope } : undefined).withHeader(
      'WWW-Authenticate',
      `Bearer realm="${realm(req)}",service="${SERVICE}"${scope ? `,scope="${scope}"` : ''}${error ? `,error="${error}"` : ''}`,
    );

  app.addHook('onRequest', async (req, reply) => {
    reply.header('Docker-Distribution-API-Version', 'registry/2.0');
    if (!req.url.startsWith('/v2')) return;
    req.principal = certPrincipal(req.raw.socket as TLSSocket);
    const auth = req.headers.authorization;
    if (!req.principal && auth && /^bearer /i.test(auth)) {
      req.principal = tokens.verify(auth.slice(7).trim());
      if (!req.principal) throw unauthorized(req, undefined, 'invalid_token');
    }
    req.principal ??= { name: 'system:anonymous', groups: [], via: 'anonymous' };
  });

  async function authorize(req: FastifyRequest, type: 'repository' | 'registry', name: string, action: string) {
    const p = req.principal!;
    if (await policy.allowed(p, type, name, action)) return;
    const actions = type === 'registry' ? '*' : action === 'pull' ? 'pull' : `pull,${action}`;
    // A certificate is who the caller is, and a token would not say more: 403. Otherwise a token may.
    if (p.via === 'cert') throw regError('DENIED', 'requested access to the resource is denied', { type, name, action }, 403);
    throw unauthorized(req, `${type}:${name}:${actions}`, p.via === 'token' ? 'insufficient_scope' : undefined);
  }

  // ---- token endpoint ----------------------------------------------------------------------
  async function basicUser(user: string, pass: string) {
    const who = opts.authenticateBasic ? await opts.authenticateBasic(user, pass) : undefined;
    if (!who) throw regError('UNAUTHORIZED', 'invalid username or password').withHeader('WWW-Authenticate', `Basic realm="${SERVICE}"`);
    return who;
  }
  async function token(req: FastifyRequest, reply: FastifyReply) {
    let who: Principal | undefined = certPrincipal(req.raw.socket as TLSSocket);
    let scopes: string[];
    if (req.method === 'POST') {
      const form = new URLSearchParams((await readBody(req.raw, MAX_TOKEN_FORM)).toString('utf8'));
      if (form.get('grant_type') !== 'password') return reply.code(400).send({ error: 'unsupported_grant_type' });
      who = { ...(await basicUser(form.get('username') ?? '', form.get('password') ?? '')), via: 'password' };
      scopes = form.getAll('scope');
    } else {
      scopes = all((req.query as Query).scope);
      const auth = req.headers.authorization;
      if (auth && /^basic /i.test(auth)) {
        const plain = Buffer.from(auth.slice(6).trim(), 'base64').toString('utf8');
        const i = plain.indexOf(':');
        who = { ...(await basicUser(plain.slice(0, Math.max(i, 0)), i < 0 ? '' : plain.slice(i + 1))), via: 'password' };
      }
    }
    if (!who && !anonymousPull) throw regError('UNAUTHORIZED', 'authentication required').withHeader('WWW-Authenticate', `Basic realm="${SERVICE}"`);
    who ??= { name: 'system:anonymous', groups: [], via: 'anonymous' };
    const issued = tokens.issue(who, await policy.grant(who, parseScopes(scopes)));
    return reply.header('Cache-Control', 'no-store').send(issued);
  }
  app.get('/token', token);
  app.post('/token', token);

  // ---- /v2 ---------------------------------------------------------------------------------
  type Handler = (req: FastifyRequest, reply: FastifyReply, name: string, ref: string) => Promise<unknown>;
  const routes: { re: RegExp; methods: Record<string, Handler> }[] = [];
  const route = (re: RegExp, methods: Record<string, Handler>) => routes.push({ re, methods });

  app.route({
    method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
    url: '/v2*',
    handler: async (req, reply) => {
      const path = req.url.split('?')[0];
      for (const { re, methods } of routes) {
        const m = re.exec(path);
        if (!m) continue;
        let name = '';
        let ref = '';
        try {
          name = decodeURIComponent(m[1] ?? '');
          ref = decodeURIComponent(m[2] ?? '');
        } catch {
          throw regError('NAME_INVALID', 'malformed path');
        }
        if (m[1] !== undefined && (name.length > MAX_NAME || !NAME_RE.test(name))) throw regError('NAME_INVALID', 'invalid repository name', { name });
        const h = methods[req.method];
        if (!h) throw regError('UNSUPPORTED', `${req.method} is not supported here`).withHeader('Allow', Object.keys(methods).join(', '));
        // Writes wait until the quotas' usage is counted from disk (seconds for 100,000 links).
        if (req.method !== 'GET' && req.method !== 'HEAD') await repos.counted;
        return h(req, reply, name, ref);
      }
      throw regError('UNSUPPORTED', 'no such endpoint', { path }, 404);
    },
  });

  const base: Handler = async (req, reply) => {
    if (req.principal!.via === 'anonymous' && !anonymousPull) throw unauthorized(req);
    return reply.header('Content-Type', 'application/json').send('{}');
  };
  route(/^\/v2\/?$/, { GET: base, HEAD: base });

  route(/^\/v2\/_catalog$/, {
    GET: async (req, reply) => {
      await authorize(req, 'registry', 'catalog', '*');
      const { page, n, next } = paginate(await policy.readable(req.principal!, await repos.list()), req.query as Query);
      if (next !== undefined) reply.header('Link', `</v2/_catalog?n=${n}&last=${encodeURIComponent(next)}>; rel="next"`);
      return reply.header('Content-Type', 'application/json').send(JSON.stringify({ repositories: page }));
    },
  });

  // Blob uploads.
  const uploadHeaders = (reply: FastifyReply, name: string, id: string, size: number) =>
    reply
      .header('Location', `/v2/${name}/blobs/uploads/${id}`)
      .header('Range', `0-${Math.max(size - 1, 0)}`)
      .header('Docker-Upload-UUID', id);
  const blobCreated = (reply: FastifyReply, name: string, hex: string) =>
    reply.code(201).header('Location', `/v2/${name}/blobs/sha256:${hex}`).header('Docker-Content-Digest', `sha256:${hex}`).send();

  route(/^\/v2\/(.+)\/blobs\/uploads\/?$/, {
    POST: async (req, reply, name) => {
      await authorize(req, 'repository', name, 'push');
      const q = req.query as Query;
      const mount = first(q.mount);
      const from = first(q.from);
      if (isDigest(mount) && from && NAME_RE.test(from) && (await policy.allowed(req.principal!, 'repository', from, 'pull'))) {
        const hex = mount.slice(7);
        const mounted = await gate.run(async () => {
          const st = (await repos.hasBlob(from, hex)) ? await store.stat(hex) : undefined;
          if (!st) return false;
          await store.touch(hex);
          await repos.linkBlob(name, hex, st.size);
          return true;
        });
        if (mounted) return blobCreated(reply, name, hex);
      }
      const digest = first(q.digest);
      if (digest !== undefined) {
        const hex = digestHex(digest);
        const length = Number(req.headers['content-length']);
        // The bytes are the namespace's (its quota) from before they are written until the link.
        let size: number;
        if (req.headers['transfer-encoding'] === undefined && length <= SMALL_BLOB) {
          // Small content in memory: no temp-file stream, and nothing written when it is stored already.
          quota.check(name, length, 1);
          const body = await readBody(req.raw, SMALL_BLOB);
          const got = sha256(body);
          if (got !== hex) throw regError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: digest, actual: `sha256:${got}` });
          quota.take(name, body.length);
          try {
            await quota.admitDisk(body.length);
            await store.putBytes(body, got);
          } catch (e) {
            quota.give(name, body.length);
            throw e;
          }
          size = body.length;
        } else {
          quota.check(name, length > 0 ? length : 0, 1);
          await quota.admitDisk(0);
          size = await store.ingest(req.raw, hex, name);
        }
        await gate.run(() => repos.linkBlob(name, hex, size, true));
        return blobCreated(reply, name, hex);
      }
      // Fail fast (before any byte is sent) when the namespace is full already.
      quota.check(name, 1);
      const up = await store.createUpload(name);
      return uploadHeaders(reply.code(202), name, up.id, 0).send();
    },
  });

  const findUpload = async (name: string, id: string) => {
    const up = await store.getUpload(id, name);
    if (!up) throw regError('BLOB_UPLOAD_UNKNOWN', 'upload unknown', { uuid: id });
    return up;
  };
  /** Checks Content-Range against the upload's offset; returns the chunk length it announces. */
  function chunkLength(req: FastifyRequest, reply: FastifyReply, name: string, id: string, size: number): number | undefined {
    const cr = req.headers['content-range'];
    if (cr === undefined) return undefined;
    const m = /^(?:bytes )?(\d+)-(\d+)(?:\/(?:\d+|\*))?$/.exec(cr.trim());
    if (!m || Number(m[1]) !== size || Number(m[2]) < Number(m[1])) {
      uploadHeaders(reply, name, id, size);
      throw regError('BLOB_UPLOAD_INVALID', 'chunk out of order or malformed Content-Range', { contentRange: cr, offset: size }, 416);
    }
    const len = Number(m[2]) - Number(m[1]) + 1;
    const cl = req.headers['content-length'];
    if (cl !== undefined && Number(cl) !== len) throw regError('SIZE_INVALID', 'Content-Length does not match Content-Range', { contentRange: cr, contentLength: cl });
    return len;
  }

  route(/^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/, {
    GET: async (req, reply, name, id) => {
      await authorize(req, 'repository', name, 'push');
      const up = await findUpload(name, id);
      return uploadHeaders(reply.code(204), name, id, up.size).send();
    },
    PATCH: async (req, reply, name, id) => {
      await authorize(req, 'repository', name, 'push');
      const up = await findUpload(name, id);
      const len = chunkLength(req, reply, name, id, up.size);
      await store.append(up, req.raw, len);
      return uploadHeaders(reply.code(202), name, id, up.size).send();
    },
    PUT: async (req, reply, name, id) => {
      await authorize(req, 'repository', name, 'push');
      const up = await findUpload(name, id);
      const digest = first((req.query as Query).digest);
      if (digest === undefined) throw regError('DIGEST_INVALID', 'digest query parameter required');
      const hex = digestHex(digest);
      const len = hasBody(req) ? chunkLength(req, reply, name, id, up.size) : undefined;
      quota.check(name, 0, 1); // the link's file
      const size = await store.finish(up, hasBody(req) ? req.raw : undefined, hex, len);
      await gate.run(() => repos.linkBlob(name, hex, size, true));
      return blobCreated(reply, name, hex);
    },
    DELETE: async (req, reply, name, id) => {
      await authorize(req, 'repository', name, 'push');
      await store.cancel(await findUpload(name, id));
      return reply.code(204).send();
    },
  });

  // Blobs.
  const inRepo = async (name: string, hex: string) => (await repos.hasBlob(name, hex)) || (await repos.revisionBytes(name, hex)) !== undefined;
  const getBlob: Handler = async (req, reply, name, digest) => {
    await authorize(req, 'repository', name, 'pull');
    const hex = digestHex(digest);
    const blob = (await inRepo(name, hex)) ? await store.open(hex) : undefined;
    if (!blob) throw regError('BLOB_UNKNOWN', 'blob unknown to registry', { digest });
    const range = req.method === 'GET' ? parseRange(req.headers.range, blob.size) : undefined;
    reply
      .header('Content-Type', 'application/octet-stream')
      .header('Docker-Content-Digest', digest)
      .header('ETag', `"${digest}"`)
      .header('Accept-Ranges', 'bytes')
      .header('Cache-Control', 'max-age=31536000');
    if (range === 'unsatisfiable') {
      await blob.fh.close();
      throw regError('SIZE_INVALID', 'requested range not satisfiable', { size: blob.size }, 416).withHeader('Content-Range', `bytes */${blob.size}`);
    }
    if (req.method === 'HEAD') {
      await blob.fh.close();
      return reply.header('Content-Length', blob.size).send();
    }
    const [start, end] = range ? [range.start, range.end] : [0, blob.size - 1];
    if (range) reply.code(206).header('Content-Range', `bytes ${start}-${end}/${blob.size}`);
    reply.header('Content-Length', end - start + 1);
    reply.hijack();
    reply.raw.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string | number>);
    try {
      await sendRange(reply.raw, blob.fh, start, end);
    } catch (e) {
      req.log.debug({ err: e, digest }, 'blob download ended early');
      reply.raw.destroy();
    } finally {
      await blob.fh.close();
    }
  };
  route(/^\/v2\/(.+)\/blobs\/([^/]+)$/, {
    GET: getBlob,
    HEAD: getBlob,
    DELETE: async (req, reply, name, digest) => {
      await authorize(req, 'repository', name, 'delete');
      const hex = digestHex(digest);
      if (!(await gate.run(() => repos.unlinkBlob(name, hex)))) throw regError('BLOB_UNKNOWN', 'blob unknown to repository', { digest });
      return reply.code(202).send();
    },
  });

  // Manifests.
  const parseRef = (ref: string) => {
    if (ref.includes(':')) return { hex: digestHex(ref) };
    if (!TAG_RE.test(ref)) throw regError('MANIFEST_INVALID', 'invalid tag', { tag: ref });
    return { tag: ref };
  };
  const resolve = async (name: string, ref: string) => {
    const r = parseRef(ref);
    const digest = r.tag !== undefined ? await repos.resolveTag(name, r.tag) : `sha256:${r.hex}`;
    const hex = digest?.slice(7);
    // A revision keeps the manifest's annotations (up to 4 MiB): read and parsed under a lease, and
    // only its media type kept, so many requests at once do not each hold a copy.
    const bytes = hex ? await repos.revisionBytes(name, hex) : undefined;
    if (!hex || bytes === undefined) throw regError('MANIFEST_UNKNOWN', 'manifest unknown', { name, reference: ref });
    const release = await REVISION_READS.take(bytes * 4);
    let mediaType: string | undefined;
    try {
      mediaType = (await repos.getRevision(name, hex))?.mediaType;
    } finally {
      release();
    }
    if (mediaType === undefined) throw regError('MANIFEST_UNKNOWN', 'manifest unknown', { name, reference: ref });
    return { hex, mediaType };
  };
  const getManifest: Handler = async (req, reply, name, ref) => {
    await authorize(req, 'repository', name, 'pull');
    const { hex, mediaType } = await resolve(name, ref);
    const blob = await store.open(hex);
    if (!blob) throw regError('MANIFEST_UNKNOWN', 'manifest content missing', { name, reference: ref });
    reply.header('Content-Type', mediaType).header('Docker-Content-Digest', `sha256:${hex}`).header('ETag', `"sha256:${hex}"`).header('Content-Length', blob.size);
    if (req.method !== 'GET' || blob.size === 0) {
      await blob.fh.close();
      return reply.send();
    }
    // streamed from the file as blobs are (a manifest may be 4 MiB; one read whole per client that never reads held 8)
    reply.hijack();
    reply.raw.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string | number>);
    try {
      await sendRange(reply.raw, blob.fh, 0, blob.size - 1);
    } catch (e) {
      req.log.debug({ err: e, reference: ref }, 'manifest download ended early');
      reply.raw.destroy();
    } finally {
      await blob.fh.close();
    }
  };
  route(/^\/v2\/(.+)\/manifests\/([^/]+)$/, {
    GET: getManifest,
    HEAD: getManifest,
    PUT: async (req, reply, name, ref) => {
      await authorize(req, 'repository', name, 'push');
      const r = parseRef(ref);
      const body = await readBody(req.raw, MAX_MANIFEST_BYTES);
      const hex = sha256(body);
      if (r.hex !== undefined && r.hex !== hex) throw regError('DIGEST_INVALID', 'manifest digest does not match the reference', { expected: ref, actual: `sha256:${hex}` });
      const m = parseManifest(body, req.headers['content-type']);
      await gate.run(async () => {
        // Room for the manifest, its tag and its referrer entry, before anything is written.
        quota.check(name, body.length, 1 + (r.tag !== undefined ? 1 : 0) + (m.subject ? 1 : 0));
        if (r.tag !== undefined) await repos.roomForTag(name, r.tag);
        if (m.subject) await repos.roomForReferrer(name, m.subject.digest.slice(7), hex);
        await quota.admitDisk(body.length);
        for (const d of m.refs) {
          if (m.isIndex) {
            const child = await repos.getRevision(name, d.digest.slice(7));
            if (!child) throw regError('MANIFEST_BLOB_UNKNOWN', 'index names a manifest unknown to this repository', { digest: d.digest });
            if (child.size !== d.size) throw regError('MANIFEST_INVALID', 'descriptor size does not match the manifest', { digest: d.digest, size: d.size });
            continue;
          }
          if (d.urls?.length) continue; // non-distributable layer, fetched from its URLs
          const st = (await repos.hasBlob(name, d.digest.slice(7))) ? await store.stat(d.digest.slice(7)) : undefined;
          if (!st) throw regError('MANIFEST_BLOB_UNKNOWN', 'manifest names a blob unknown to this repository', { digest: d.digest });
          if (st.size !== d.size) throw regError('MANIFEST_INVALID', 'descriptor size does not match the blob', { digest: d.digest, size: d.size, actual: st.size });
        }
        const meta: ManifestMeta = {
          mediaType: m.mediaType,
          size: body.length,
          blobs: m.isIndex ? [] : m.refs.map((d) => d.digest),
          manifests: m.isIndex ? m.refs.map((d) => d.digest) : [],
        };
        if (m.subject) meta.subject = m.subject.digest;
        if (m.artifactType) meta.artifactType = m.artifactType;
        if (m.annotations) meta.annotations = m.annotations;
        await store.putBytes(body, hex);
        await repos.putRevision(name, hex, meta);
        if (m.subject) {
          const desc: Descriptor = { mediaType: m.mediaType, digest: `sha256:${hex}`, size: body.length };
          if (m.artifactType) desc.artifactType = m.artifactType;
          if (m.annotations) desc.annotations = m.annotations;
          await repos.putReferrer(name, m.subject.digest.slice(7), hex, desc);
        }
        if (r.tag !== undefined) await repos.putTag(name, r.tag, `sha256:${hex}`);
      });
      if (m.subject) reply.header('OCI-Subject', m.subject.digest);
      return reply.code(201).header('Location', `/v2/${name}/manifests/sha256:${hex}`).header('Docker-Content-Digest', `sha256:${hex}`).send();
    },
    DELETE: async (req, reply, name, ref) => {
      await authorize(req, 'repository', name, 'delete');
      const r = parseRef(ref);
      const done = await gate.run(() => (r.tag !== undefined ? repos.deleteTag(name, r.tag) : repos.deleteRevision(name, r.hex!)));
      if (!done) throw regError('MANIFEST_UNKNOWN', 'manifest unknown', { name, reference: ref });
      return reply.code(202).send();
    },
  });

  route(/^\/v2\/(.+)\/tags\/list$/, {
    GET: async (req, reply, name) => {
      await authorize(req, 'repository', name, 'pull');
      if (!(await repos.exists(name))) throw regError('NAME_UNKNOWN', 'repository name not known to registry', { name });
      const { page, n, next } = paginate(await repos.tags(name), req.query as Query);
      if (next !== undefined) reply.header('Link', `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(next)}>; rel="next"`);
      return reply.header('Content-Type', 'application/json').send(JSON.stringify({ name, tags: page }));
    },
  });

  route(/^\/v2\/(.+)\/referrers\/([^/]+)$/, {
    GET: async (req, reply, name, digest) => {
      await authorize(req, 'repository', name, 'pull');
      // Paged at 4 MiB of descriptors (each may carry its manifest's annotations): 1000 referrers
      // of 4 MiB manifests are never one answer held in memory. The spec's Link header says where
      // the next page is (the client follows it).
      const q = req.query as Query;
      const last = first(q.last);
      const page = await repos.referrers(name, digestHex(digest), last !== undefined && /^[a-f0-9]{64}$/.test(last) ? last : undefined, MAX_MANIFEST_BYTES);
      let manifests = page.manifests;
      const artifactType = first(q.artifactType);
      if (artifactType !== undefined) {
        manifests = manifests.filter((d) => d.artifactType === artifactType);
        reply.header('OCI-Filters-Applied', 'artifactType');
      }
      if (page.next !== undefined)
        reply.header('Link', `</v2/${name}/referrers/${digest}?last=${page.next}${artifactType !== undefined ? `&artifactType=${encodeURIComponent(artifactType)}` : ''}>; rel="next"`);
      return reply.header('Content-Type', OCI_INDEX).send(Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests })));
    },
  });

  await app.listen({ port: opts.port, host: opts.host });
  const port = (app.server.address() as AddressInfo).port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return {
    port,
    url: `https://${host}:${port}`,
    close: () => app.close(),
    gc: async (o) => {
      await repos.counted;
      return gate.exclusive(() => collectGarbage(store, repos, o));
    },
  };
}

/**
 * The big buffers of blob downloads, all together: a download holds two read buffers and the
 * encrypted copy of the one being written until its client reads it. 24 downloads at once get
 * 1 MiB buffers (fewer syscalls); the others 64 KiB ones, so clients that stop reading hold ~200 KiB
 * each, not 3 MiB (100 of them held 290 MiB).
 */
const DOWNLOAD_BUFFERS = new ByteBudget(72 << 20);
const BIG_CHUNK = 1 << 20;
/** Manifest revisions read at once, in bytes (4 per byte of the file: its text and parse). */
const REVISION_READS = new ByteBudget(32 << 20);
const SMALL_CHUNK = 64 << 10;

/** Writes bytes start..end (inclusive) of a file to the response through two reused buffers: the
 * next read overlaps the previous write, and a 200 MB pull allocates nothing per chunk. */
async function sendRange(res: ServerResponse, fh: FileHandle, start: number, end: number): Promise<void> {
  const release = end - start + 1 > SMALL_CHUNK ? DOWNLOAD_BUFFERS.tryTake(3 * BIG_CHUNK) : undefined;
  try {
    await sendRangeIn(res, fh, start, end, release ? BIG_CHUNK : SMALL_CHUNK);
  } finally {
    release?.();
  }
}

async function sendRangeIn(res: ServerResponse, fh: FileHandle, start: number, end: number, chunk: number): Promise<void> {
  const size = Math.min(chunk, end - start + 1);
  const bufs = [Buffer.allocUnsafeSlow(size), Buffer.allocUnsafeSlow(size)];
  const closed = new Promise<never>((_, reject) => res.once('close', () => reject(new Error('client went away'))));
  closed.catch(() => {});
  let writing: Promise<void> | undefined;
  for (let pos = start, i = 0; pos <= end; i++) {
    const buf = bufs[i & 1];
    const { bytesRead } = await fh.read(buf, 0, Math.min(size, end - pos + 1), pos);
    if (!bytesRead) throw new Error(`blob file shorter than expected at byte ${pos}`);
    pos += bytesRead;
    // The buffer read next round is the one this write frees.
    if (writing) await Promise.race([writing, closed]);
    writing = new Promise<void>((resolve, reject) => res.write(buf.subarray(0, bytesRead), (err) => (err ? reject(err) : resolve())));
    writing.catch(() => {}); // a failed write also closes the response: `closed` reports it
  }
  if (writing) await Promise.race([writing, closed]);
  await new Promise<void>((resolve) => res.end(resolve));
}
