// The HTTPS server: TLS with client-certificate authentication, discovery, OpenAPI, health, and
// the resource routes, as fastify plugins over one ResourceRegistry and one Store.
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { KindDefinition } from '../kinds/types.js';
import { loggerOptions, type LogFormat } from './logging.js';
import type { Store } from '../storage/store.js';
import { connectionOptions, guardConnections } from './connections.js';
import { type Authenticator, type Authorizer, forbiddenError, impersonate, requestAttributes, type UserInfo } from './auth.js';
import { reviewHandlers, reviewKinds } from './reviews.js';
import { AGGREGATED_CONTENT_TYPE, aggregatedDiscovery, apiGroup, apiGroupList, apiResourceList, apiVersions } from './discovery.js';
import { ApiError, forbidden, internal, notFound, pathNotFound, tooLarge, unauthorized, unsupportedMediaType } from './errors.js';
import { negotiate } from './negotiate.js';
import { OpenAPI } from './openapi.js';
import { OpenAPIv2Server } from './openapi-proto.js';
import { ResourceHandler, resolve } from './resource-routes.js';
import { infoOf, parseQuery } from './request-info.js';
import { keyFor, ResourceRegistry } from './resources.js';
import { type LimitOptions, nodeServerOptions, RequestLimiter, requestLimits } from './limits.js';
import { type Metrics, observeRequests } from './metrics.js';
import { GenericREST } from './rest.js';
import { WatchHub } from './watch.js';

declare module 'fastify' {
  interface FastifyRequest {
    user?: UserInfo;
  }
}

export interface ServerOptions {
  store: Store;
  kinds: KindDefinition[];
  tls: { key: string; cert: string };
  authn: Authenticator;
  authz: Authorizer;
  /** Serve TokenReview/SubjectAccessReview & co. (standalone mode, where this server is the cluster). */
  serveReviews?: boolean;
  logLevel?: string;
  logFormat?: LogFormat;
  /** Largest accepted request body (kube-apiserver's limit is 3 MiB). */
  bodyLimit?: number;
  version?: string;
  /** Prometheus metrics (served on /metrics); none when absent. */
  metrics?: Metrics;
  /** In-flight, timeout, watch and header limits (apiserver/limits.ts); kube's defaults when absent. */
  limits?: LimitOptions;
}

export interface ApiServer {
  app: FastifyInstance;
  registry: ResourceRegistry;
  reloadTrust(): void;
  rest: GenericREST;
  watches: WatchHub;
  limiter: RequestLimiter;
  close(): Promise<void>;
}

const PUBLIC_PATHS = /^\/(healthz|livez|readyz)(\/.*)?$/;

function sendError(reply: FastifyReply, e: ApiError) {
  for (const [k, v] of Object.entries(e.headers)) reply.header(k, v);
  return reply.code(e.status.code).header('Content-Type', 'application/json').send(JSON.stringify(e.status));
}

/** Maps fastify's own errors (body limit, content type, bad JSON...) onto Status errors. */
const MAX_DRAIN_BYTES = 64 << 20;
const MAX_DRAIN_MS = 10_000;

/**
 * An answer sent before the request body was read (a 413): fastify then closes the connection,
 * and closing a socket with unread data makes the kernel send RST, which can destroy the answer
 * before the client reads it. Instead the rest of the body is read and dropped (at most 64 MiB,
 * 10 s) and the connection kept, as kube-apiserver's Go server does.
 */
function drainInsteadOfClose(req: FastifyRequest, reply: FastifyReply): void {
  const raw = req.raw;
  if (raw.complete || raw.destroyed || Number(req.headers['content-length']) > MAX_DRAIN_BYTES) return;
  reply.removeHeader('connection');
  let n = 0;
  const cut = () => raw.socket?.destroy();
  const timer = setTimeout(cut, MAX_DRAIN_MS);
  timer.unref();
  raw.on('data', (c: Buffer) => {
    n += c.length;
    if (n > MAX_DRAIN_BYTES) cut();
  });
  raw.once('close', () => clearTimeout(timer));
  raw.resume();
}

function toApiError(err: FastifyError, bodyLimit: number): ApiError {
  if (err instanceof ApiError) return err;
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return tooLarge(`Request entity too large: limit is ${bodyLimit}`); // kube's wording; fastify's message has no number
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return unsupportedMediaType(err.message);
  }
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return new ApiError(err.statusCode, 'BadRequest', err.message);
  return internal(err.message);
}

export async function createApiServer(opts: ServerOptions): Promise<ApiServer> {
  const registry = new ResourceRegistry([...opts.kinds, ...(opts.serveReviews ? reviewKinds : [])]);
  if (opts.serveReviews) for (const [def, create] of reviewHandlers(opts.authz, opts.authn.config.tokens)) registry.resourceOf(def).create = create;
  const rest = new GenericREST(opts.store);
  const namespaces = registry.lookup('', 'v1', 'namespaces');
  if (namespaces) {
    rest.namespaceCheck = async (ns) => {
      const o = await opts.store.get(keyFor(namespaces, undefined, ns));
      if (!o) throw notFound(namespaces.gr, ns);
      if (o.obj.metadata.deletionTimestamp) {
        const e = forbidden(`unable to create new content in namespace ${ns} because it is being terminated`);
        e.status.details = { name: ns, kind: 'namespaces', causes: [{ reason: 'NamespaceTerminating', message: `namespace ${ns} is being terminated`, field: 'metadata.namespace' }] };
        throw e;
      }
    };
  }
  const watches = new WatchHub(opts.store);
  const limiter = new RequestLimiter(opts.limits);
  const handler = new ResourceHandler(rest, watches, limiter.answers);
  const openapi = new OpenAPI(registry);
  const openapiV2 = new OpenAPIv2Server(() => openapi.v2()); // JSON or gnostic protobuf, by Accept

  const app = Fastify({
    https: { key: opts.tls.key, cert: opts.tls.cert, ca: opts.authn.trustedCAs(), requestCert: true, rejectUnauthorized: false, ...nodeServerOptions(opts.limits), ...connectionOptions(nodeServerOptions(opts.limits).headersTimeout) },
    logger: loggerOptions(opts.logLevel, opts.logFormat),
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: opts.bodyLimit ?? 3 * 1024 * 1024,
    routerOptions: { maxParamLength: 2048, querystringParser: parseQuery }, // first values, as kube reads them
    return503OnClosing: true,
    forceCloseConnections: true,
  });

  guardConnections(app.server as unknown as TlsServer, nodeServerOptions(opts.limits).headersTimeout);
  app.removeAllContentTypeParsers();
  // Raw bytes: protobuf bodies are binary; parseBody/parseRequestBody decode text formats from the Buffer.
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  app.setErrorHandler((err: FastifyError, req, reply) => {
    const e = toApiError(err, opts.bodyLimit ?? 3 * 1024 * 1024);
    if (e.status.code >= 500) req.log.error({ err, url: req.url }, 'request failed');
    drainInsteadOfClose(req, reply);
    return sendError(reply, e);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, pathNotFound(req.url.split('?')[0])));

  await app.register(observeRequests, { registry, metrics: opts.metrics }); // before authn: counts and logs 401s too
  app.addHook('onRequest', async (req) => {
    const path = req.url.split('?')[0];
    if (PUBLIC_PATHS.test(path)) return;
    const user = await opts.authn.authenticate(req.raw.socket as TLSSocket, req.raw.headersDistinct);
    if (!user) throw unauthorized();
    req.user = await impersonate(user, req.raw.headersDistinct, opts.authz);
    const attrs = requestAttributes(req.user, infoOf(req));
    const d = await opts.authz.authorize(attrs);
    if (!d.allowed) throw forbiddenError(attrs, d.reason);
  });
  await app.register(requestLimits, { limiter, metrics: opts.metrics }); // after authn: needs the user

  // Health as k8s.io/apiserver/pkg/server/healthz/healthz.go: `ok`, or with ?verbose one
  // `[+]check ok` line per check and `<name> check passed`; ?exclude=check; a failure is a 500
  // listing the checks with `[-]check failed: reason withheld`; /<name>/<check> runs one check.
  let closing = false;
  const storageCheck = async () => {
    await opts.store.check?.();
  };
  const base: [string, () => Promise<void>][] = [
    ['ping', async () => {}],
    ['log', async () => {}],
    ['storage', storageCheck],
  ];
  const shutdown: [string, () => Promise<void>] = ['shutdown', async () => {
    if (closing) throw new Error('process is shutting down');
  }];
  const healthChecks: Record<string, [string, () => Promise<void>][]> = { healthz: base, livez: base, readyz: [...base, shutdown] };
  for (const [name, checks] of Object.entries(healthChecks)) {
    app.get(`/${name}`, async (req, reply) => {
      const params = new URLSearchParams(req.url.split('?')[1] ?? '');
      const excluded = new Set(params.getAll('exclude').flatMap((v) => v.split(',')).filter(Boolean));
      let out = '';
      const failed: string[] = [];
      for (const [check, run] of checks) {
        if (excluded.delete(check)) {
          out += `[+]${check} excluded: ok\n`;
          continue;
        }
        try {
          await run();
          out += `[+]${check} ok\n`;
        } catch (err) {
          req.log.warn({ err, check }, `${name} check failed`);
          out += `[-]${check} failed: reason withheld\n`;
          failed.push(check);
        }
      }
      if (excluded.size) out += `warn: some health checks cannot be excluded: no matches for ${[...excluded].map((c) => `"${c}"`).join(',')}\n`;
      reply.header('X-Content-Type-Options', 'nosniff').type('text/plain; charset=utf-8');
      if (failed.length) return reply.code(500).send(`${out}${name} check failed\n`);
      return reply.send(params.has('verbose') ? `${out}${name} check passed\n` : 'ok');
    });
    app.get(`/${name}/*`, async (req, reply) => {
      const check = checks.find(([c]) => c === (req.params as { '*': string })['*']);
      if (!check) throw pathNotFound(req.url.split('?')[0]);
      reply.header('X-Content-Type-Options', 'nosniff').type('text/plain; charset=utf-8');
      try {
        await check[1]();
        return reply.send('ok');
      } catch (err) {
        return reply.code(500).send(`internal server error: ${(err as Error).message}\n`);
      }
    });
  }
  const version = async () => ({
    major: '1',
    minor: '32',
    gitVersion: `v1.32.0-ocm-apiserver-${opts.version ?? '0.1.0'}`,
    gitCommit: '',
    gitTreeState: 'clean',
    buildDate: '',
    goVersion: `node${process.versions.node}`,
    compiler: 'node',
    platform: `${process.platform}/${process.arch}`,
  });
  app.get('/version', version);
  app.get('/version/', version); // kube's mux serves both (Python's VersionApi asks for /version/)

  const discovery = (core: boolean) => async (req: FastifyRequest, reply: FastifyReply) => {
    const t = negotiate(req.headers.accept, ['APIGroupDiscoveryList']);
    // A Buffer, so that fastify sends the exact Content-Type (for a string it re-quotes the parameters and appends a charset).
    if (t.as === 'APIGroupDiscoveryList') return reply.header('Content-Type', AGGREGATED_CONTENT_TYPE).send(Buffer.from(JSON.stringify(aggregatedDiscovery(registry, core))));
    return reply.header('Content-Type', 'application/json').send(JSON.stringify(core ? apiVersions(registry) : apiGroupList(registry)));
  };
  app.get('/api', discovery(true));
  app.get('/apis', discovery(false));
  app.get('/apis/:group', async (req, reply) => {
    const g = apiGroup(registry, (req.params as { group: string }).group);
    if (!g) throw pathNotFound(req.url);
    return reply.header('Content-Type', 'application/json').send(JSON.stringify(g));
  });
  const groupVersion = (group: string, version: string, url: string) => {
    const rs = registry.groups().get(group)?.get(version);
    if (!rs) throw pathNotFound(url);
    return JSON.stringify(apiResourceList(group, version, rs));
  };
  app.get('/api/:version', async (req, reply) =>
    reply.header('Content-Type', 'application/json').send(groupVersion('', (req.params as { version: string }).version, req.url)),
  );
  app.get('/apis/:group/:version', async (req, reply) => {
    const { group, version } = req.params as { group: string; version: string };
    return reply.header('Content-Type', 'application/json').send(groupVersion(group, version, req.url));
  });

  const methods = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
  app.route({
    method: [...methods],
    url: '/apis/:group/:version/*',
    handler: async (req, reply) => {
      const { group, version, '*': rest } = req.params as { group: string; version: string; '*': string };
      return handler.handle(req, reply, resolve(registry, group, version, rest.split('/'), req.url.split('?')[0]));
    },
  });
  app.route({
    method: [...methods],
    url: '/api/:version/*',
    handler: async (req, reply) => {
      const { version, '*': rest } = req.params as { version: string; '*': string };
      return handler.handle(req, reply, resolve(registry, '', version, rest.split('/'), req.url.split('?')[0]));
    },
  });

  app.get('/openapi/v2', async (req, reply) => {
    const r = openapiV2.reply(req.headers.accept, req.headers['if-none-match']);
    return reply.code(r.status).headers(r.headers).send(r.body);
  });
  // kubectl's validation, for a kind in neither OpenAPI document (a misspelt kind), lists CRDs to
  // tell a CRD from a typo (cli-runtime QueryParamVerifier.HasSupport); this server has none.
  app.get('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', async (_req, reply) =>
    reply.header('Content-Type', 'application/json').send(JSON.stringify({ kind: 'CustomResourceDefinitionList', apiVersion: 'apiextensions.k8s.io/v1', metadata: {}, items: [] })),
  );
  app.get('/openapi/v3', async (_req, reply) => reply.header('Content-Type', 'application/json').send(JSON.stringify(openapi.v3Root())));
  app.get('/openapi/v3/*', async (req, reply) => {
    const doc = openapi.v3Doc((req.params as { '*': string })['*']);
    if (!doc) throw pathNotFound(req.url);
    return reply
      .header('Content-Type', 'application/json')
      .header('Etag', `"${doc.hash}"`)
      .header('Cache-Control', (req.query as Record<string, string>).hash ? 'public, immutable' : 'no-cache, private')
      .send(doc.body);
  });

  return {
    app,
    registry,
    /** Re-reads the authenticator's CAs into the TLS layer (after the host's CA bundle changed). */
    reloadTrust() {
      (app.server as import('node:https').Server).setSecureContext({ key: opts.tls.key, cert: opts.tls.cert, ca: opts.authn.trustedCAs() });
    },
    rest,
    watches,
    limiter,
    async close() {
      closing = true;
      watches.closeAll();
      await app.close();
    },
  };
}
