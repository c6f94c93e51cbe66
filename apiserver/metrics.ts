// Prometheus metrics (prom-client) named as kube-apiserver, controller-runtime and client-go's
// workqueue name theirs, and the per-request observer: one fastify hook that labels each request
// once (verb, group, version, resource, subresource, scope), counts and times it when its response
// closes, and logs it at debug level with the request id fastify's `req.log` carries.
import { performance } from 'node:perf_hooks';
import type { FastifyInstance, FastifyPluginAsync, FastifyPluginOptions, FastifyReply, FastifyRequest, RawServerBase } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { UserInfo } from './auth.js';
import { infoOf, type RequestInfo } from './request-info.js';
import type { ResourceRegistry } from './resources.js';
import { countTraffic, type TrafficSink } from '../registry/traffic.js';
import { memoryBudget } from '../registry/memory-budget.js';

/** kube-apiserver's buckets for apiserver_request_duration_seconds. */
const REQUEST_BUCKETS = [0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 45, 60];
/** The embedded store answers from memory; writes wait for an fsync. */
const STORAGE_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** controller-runtime's buckets for controller_runtime_reconcile_time_seconds. */
const RECONCILE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60];

const REQUEST_LABELS = ['verb', 'group', 'version', 'resource', 'subresource', 'scope', 'component'] as const;
type RequestLabel = (typeof REQUEST_LABELS)[number];
export type RequestLabels = Record<RequestLabel, string>;

/** What the metrics read from a controller (reconcilers/runtime/controller.ts's Controller). */
export interface ControllerStats {
  readonly spec: { readonly name: string };
  readonly reconciles: number;
  readonly errors: number;
  readonly queue: { readonly depth: number };
}

export type InflightKind = 'readOnly' | 'mutating';

/** Marks a plugin so that its hooks and routes apply to the whole app (what fastify-plugin does). */
export function globalPlugin<T extends FastifyPluginOptions>(fn: FastifyPluginAsync<T, RawServerBase>, name: string): FastifyPluginAsync<T, RawServerBase> {
  const f = fn as FastifyPluginAsync<T, RawServerBase> & Record<symbol, unknown>;
  f[Symbol.for('skip-override')] = true;
  f[Symbol.for('fastify.display-name')] = name;
  return f;
}

export class Metrics {
  readonly registry = new Registry();
  readonly requests: Counter<RequestLabel | 'code'>;
  readonly requestDuration: Histogram<RequestLabel>;
  readonly requestAborts: Counter<RequestLabel>;
  readonly longRunning: Gauge<RequestLabel>;
  readonly dropped: Counter<'request_kind'>;
  readonly storageDuration: Histogram<'operation' | 'type'>;
  readonly reconcileTime: Histogram<'controller'>;
  readonly registryBytes: Counter<'direction'>;
  readonly registryRequests: Counter<'method' | 'code'>;
  private inflightSource: () => Record<InflightKind, number> = () => ({ readOnly: 0, mutating: 0 });
  private controllerSource: () => readonly ControllerStats[] = () => [];
  private blobSource: (() => Promise<number>) | undefined;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: 'apiserver_request_total',
      help: 'Counter of apiserver requests broken out for each verb, API resource, client, and HTTP response code.',
      labelNames: [...REQUEST_LABELS, 'code'],
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'apiserver_request_duration_seconds',
      help: 'Response latency distribution in seconds for each verb, group, version, resource, subresource, scope and component.',
      labelNames: [...REQUEST_LABELS],
      buckets: REQUEST_BUCKETS,
      registers,
    });
    this.requestAborts = new Counter({
      name: 'apiserver_request_aborts_total',
      help: 'Number of requests which apiserver aborted possibly due to a timeout, for each group, version, verb, resource, subresource and scope',
      labelNames: [...REQUEST_LABELS],
      registers,
    });
    this.longRunning = new Gauge({
      name: 'apiserver_longrunning_requests',
      help: 'Gauge of all active long-running apiserver requests (watches) broken out by verb, group, version, resource, scope and component.',
      labelNames: [...REQUEST_LABELS],
      registers,
    });
    const self = this;
    new Gauge({
      name: 'apiserver_current_inflight_requests',
      help: 'Maximal number of currently used inflight request limit of this apiserver per request kind in last second.',
      labelNames: ['request_kind'],
      registers,
      collect() {
        const n = self.inflightSource();
        this.set({ request_kind: 'readOnly' }, n.readOnly);
        this.set({ request_kind: 'mutating' }, n.mutating);
      },
    });
    this.dropped = new Counter({
      name: 'apiserver_dropped_requests_total',
      help: 'Number of requests dropped with a "Try again later" response (429) by the max-in-flight filters.',
      labelNames: ['request_kind'],
      registers,
    });
    this.storageDuration = new Histogram({
      name: 'apiserver_storage_operation_duration_seconds',
      help: 'Storage operation latency in seconds for each operation and object type.',
      labelNames: ['operation', 'type'],
      buckets: STORAGE_BUCKETS,
      registers,
    });
    new Counter({
      name: 'controller_runtime_reconcile_total',
      help: 'Total number of reconciliations per controller',
      labelNames: ['controller', 'result'],
      registers,
      collect() {
        this.reset();
        for (const c of self.controllerSource()) {
          this.inc({ controller: c.spec.name, result: 'success' }, c.reconciles);
          this.inc({ controller: c.spec.name, result: 'error' }, c.errors);
        }
      },
    });
    new Counter({
      name: 'controller_runtime_reconcile_errors_total',
      help: 'Total number of reconciliation errors per controller',
      labelNames: ['controller'],
      registers,
      collect() {
        this.reset();
        for (const c of self.controllerSource()) this.inc({ controller: c.spec.name }, c.errors);
      },
    });
    this.reconcileTime = new Histogram({
      name: 'controller_runtime_reconcile_time_seconds',
      help: 'Length of time per reconciliation per controller',
      labelNames: ['controller'],
      buckets: RECONCILE_BUCKETS,
      registers,
    });
    new Gauge({
      name: 'workqueue_depth',
      help: 'Current depth of workqueue',
      labelNames: ['name'],
      registers,
      collect() {
        this.reset();
        for (const c of self.controllerSource()) this.set({ name: c.spec.name }, c.queue.depth);
      },
    });
    this.registryBytes = new Counter({
      name: 'registry_http_bytes_total',
      help: 'Bytes the snapshot registry received (in) and sent (out) over HTTP, headers included.',
      labelNames: ['direction'],
      registers,
    });
    this.registryBytes.inc({ direction: 'in' }, 0);
    this.registryBytes.inc({ direction: 'out' }, 0);
    this.registryRequests = new Counter({
      name: 'registry_http_requests_total',
      help: 'Requests the snapshot registry answered, by method and HTTP status code.',
      labelNames: ['method', 'code'],
      registers,
    });
    new Gauge({
      name: 'ocm_memory_budget_bytes',
      help: 'The in-memory budget for upstream content held by reconciles (registry/memory-budget.ts): its total, what reconciles lease now, what its caches hold, the most ever leased at once.',
      labelNames: ['state'],
      registers,
      collect() {
        this.set({ state: 'total' }, memoryBudget.total);
        this.set({ state: 'used' }, memoryBudget.used);
        this.set({ state: 'cached' }, memoryBudget.cached);
        this.set({ state: 'peak' }, memoryBudget.peak);
      },
    });
    new Gauge({
      name: 'ocm_memory_budget_waiting',
      help: 'Reconciles waiting for a lease of the in-memory budget.',
      registers,
      collect() {
        this.set(memoryBudget.waiting);
      },
    });
    new Gauge({
      name: 'registry_blobs',
      help: 'Blobs stored in the snapshot registry.',
      registers,
      async collect() {
        if (self.blobSource) this.set(await self.blobSource().catch(() => NaN));
      },
    });
  }

  /** Where apiserver_current_inflight_requests reads from (the in-flight limiter). */
  trackInflight(source: () => Record<InflightKind, number>) {
    this.inflightSource = source;
  }

  /** Controllers whose counters and queue depth are read at scrape time. */
  trackControllers(source: () => readonly ControllerStats[]) {
    this.controllerSource = source;
  }

  /** Times each reconcile of a controller spec (controller_runtime_reconcile_time_seconds). */
  timeReconciles<K, R, S extends { readonly name: string; reconcile(key: K): Promise<R> }>(spec: S): S {
    const inner = spec.reconcile;
    const hist = this.reconcileTime;
    return {
      ...spec,
      async reconcile(key: K): Promise<R> {
        const end = hist.startTimer({ controller: spec.name });
        try {
          return await inner.call(spec, key);
        } finally {
          end();
        }
      },
    };
  }

  /**
   * Counts the registry's HTTP bytes (cleartext, headers included: what each connection read and
   * wrote, attributed to the request that ended) and requests, and its blobs at scrape time.
   * Called with the registry's fastify app before it listens.
   */
  instrumentRegistry(app: FastifyInstance, blobs?: { listBlobs(): Promise<string[]> }) {
    if (blobs) this.blobSource = async () => (await blobs.listBlobs()).length;
    countTraffic(app, this.registryTraffic());
  }

  /** Where a registry (in-process or on its worker thread) reports its traffic. */
  registryTraffic(blobCount?: () => Promise<number>): TrafficSink {
    if (blobCount) this.blobSource = blobCount;
    return {
      bytes: (direction, n) => this.registryBytes.inc({ direction }, n),
      request: (method, code, count = 1) => this.registryRequests.inc({ method, code: String(code) }, count),
    };
  }

  async text(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** kube's RequestInfo, as metrics labels: only served resources get group/version/resource labels. */
export function requestLabels(registry: ResourceRegistry | undefined, method: string, a: RequestInfo, contentType?: string): RequestLabels & { name: string; namespace: string } {
  const known = a.resourceRequest && registry?.lookup(a.apiGroup, a.apiVersion, a.resource);
  if (!known) return { verb: method.toUpperCase(), group: '', version: '', resource: '', subresource: '', scope: '', component: 'apiserver', name: '', namespace: '' };
  let verb: string;
  switch (a.verb) {
    case 'list':
    case 'watch':
    case 'get':
    case 'deletecollection':
      verb = a.verb.toUpperCase();
      break;
    case 'patch':
      verb = /^application\/apply-patch/.test(contentType ?? '') ? 'APPLY' : 'PATCH';
      break;
    default:
      verb = method.toUpperCase(); // POST, PUT, DELETE
  }
  const scope = a.name || a.verb === 'create' ? 'resource' : a.namespace ? 'namespace' : 'cluster';
  return {
    verb,
    group: a.apiGroup,
    version: a.apiVersion,
    resource: a.resource,
    subresource: a.subresource === 'status' ? a.subresource : '',
    scope,
    component: 'apiserver',
    name: a.name,
    namespace: a.namespace,
  };
}

export interface ObserveOptions {
  registry: ResourceRegistry;
  metrics?: Metrics;
}

/**
 * The per-request observer; register it before the authentication hook so that rejected requests
 * are counted and timed too. Also serves `/metrics` (authorized like any non-resource URL: GET on
 * `/metrics`, which system:masters has).
 */
export const observeRequests = globalPlugin<ObserveOptions>(async (app, o) => {
  app.addHook('onRequest', (req: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const start = performance.now();
    const path = req.url.split('?')[0];
    const info = requestLabels(o.registry, req.method, infoOf(req), req.headers['content-type']);
    const { name, namespace, ...labels } = info;
    const watch = labels.verb === 'WATCH';
    if (watch) o.metrics?.longRunning.inc(labels);
    reply.raw.once('close', () => {
      const seconds = (performance.now() - start) / 1000;
      const res = reply.raw;
      const completed = res.writableFinished || (watch && res.headersSent);
      if (watch) o.metrics?.longRunning.dec(labels);
      if (o.metrics) {
        if (completed) {
          o.metrics.requests.inc({ ...labels, code: String(res.statusCode) });
          o.metrics.requestDuration.observe(labels, seconds);
        } else o.metrics.requestAborts.inc(labels);
      }
      if ((req.log as { isLevelEnabled?(level: string): boolean }).isLevelEnabled?.('debug') ?? true) {
        req.log.debug(
          {
            user: (req.user as UserInfo | undefined)?.name,
            verb: labels.verb,
            path,
            ...(labels.resource ? { resource: labels.group ? `${labels.resource}.${labels.group}` : labels.resource } : {}),
            ...(labels.subresource ? { subresource: labels.subresource } : {}),
            ...(namespace ? { namespace } : {}),
            ...(name ? { name } : {}),
            code: completed ? res.statusCode : 0,
            ...(completed ? {} : { aborted: true }),
            latencyMs: Math.round(seconds * 1e4) / 10,
          },
          'request completed',
        );
      }
    });
    done();
  });

  const metrics = o.metrics;
  if (metrics) {
    app.get('/metrics', async (_req, reply) => {
      const m = await metrics.text();
      return reply.header('Content-Type', m.contentType).send(Buffer.from(m.body));
    });
  }
}, 'observe-requests');
