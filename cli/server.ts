#!/usr/bin/env node
// `npm start -- [--mode standalone|aggregated] [--kubeconfig FILE] [--data-dir DIR] [--cert-dir DIR]
//   [--port N] [--registry-port N] [--bind ADDR] [--log-level L] [--history-size N]
//   [--token-auth-file FILE] [--authorization-policy-file FILE]`
import { mkdirSync, readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { Authenticator, type AuthnConfig, type Authorizer, CachingAuthorizer, parsePemBundle, type PolicyRule, StaticAuthorizer, type UserInfo } from '../apiserver/auth.js';
import { authenticationConfigMap, ensureObject, STANDARD_NAMESPACES } from '../apiserver/bootstrap.js';
import { internalOptions } from '../apiserver/rest.js';
import { createApiServer } from '../apiserver/server.js';
import { ensureCerts, namespacePullCert, writeKubeconfig } from '../certs/index.js';
import { coreKinds } from '../kinds/core/index.js';
import { fluxKinds } from '../kinds/flux/index.js';
import { ocmKinds } from '../kinds/index.js';
import { configuratorProvider } from '../providers/configurator.js';
import { helmReleaseTemplateProvider } from '../providers/helmreleasetemplate.js';
import { kustomizationTemplateProvider } from '../providers/kustomizationtemplate.js';
import { localizationProvider } from '../providers/localization.js';
import { actionController } from '../reconcilers/action.js';
import { ClusterControllers } from '../reconcilers/cluster-controllers.js';
import type { ReconcilerContext } from '../reconcilers/context.js';
import { ocmComponentController } from '../reconcilers/ocmcomponent.js';
import { ControllerManager } from '../reconcilers/runtime/controller.js';
import { AlwaysLeader, EtcdElector, type LeaderElector, LeaseElector } from '../reconcilers/runtime/leader.js';
import { EtcdStore } from '../storage/etcd.js';
import { EventRecorder, plainEvent } from '../reconcilers/runtime/events.js';
import { listObjects, refreshRegistryTlsSecrets, resourceOf } from '../reconcilers/context.js';
import type * as k8s from '@kubernetes/client-node';
import { StatusWriter } from '../reconcilers/runtime/status.js';
import { providerStatusControllers } from '../reconcilers/providers.js';
import { sourceController } from '../reconcilers/source.js';
import { credentialsFromDockerConfig, OciClient } from '../registry/client.js';
import { startRegistryWorker } from '../registry/worker.js';
import { pullCheck } from '../registry/server-auth.js';
import { HostCluster } from '../reconcilers/runtime/host.js';
import { DEFAULT_HISTORY_BYTES, LevelStore } from '../storage/leveldb.js';
import { QuotaStore } from '../storage/quota.js';
import { Gauge } from 'prom-client';
import { LIMIT_DEFAULTS, nodeServerOptions, parseDuration } from '../apiserver/limits.js';
import { Metrics } from '../apiserver/metrics.js';
import { MeteredStore } from '../storage/metered.js';

const SNAPSHOT_CLIENT_TUNING = { contentCacheBytes: 32 << 20, singlePostMaxBytes: 1 << 20, trustedErrorMessages: true };
import { isWatchUrl, RequestTracker, shutdown } from './shutdown.js';
import { resolveLogFormat } from '../apiserver/logging.js';
import { MEMORY_BUDGET_BYTES, setMemoryBudget } from '../registry/memory-budget.js';
import { REGISTRY_LIMIT_DEFAULTS } from '../registry/server-quota.js';

const OPTIONS = {
  mode: { type: 'string', default: 'standalone' },
  kubeconfig: { type: 'string' },
  'data-dir': { type: 'string', default: './data' },
  'cert-dir': { type: 'string' },
  port: { type: 'string', default: '8443' },
  'registry-port': { type: 'string', default: '5001' },
  bind: { type: 'string', default: '127.0.0.1' },
  'log-level': { type: 'string', default: 'info' },
  'log-format': { type: 'string', default: 'auto' },
  'history-size': { type: 'string', default: '10000' },
  'history-mib': { type: 'string', default: String(DEFAULT_HISTORY_BYTES >> 20) },
  'storage-quota-mib': { type: 'string', default: '256' },
  'namespace-storage-quota-mib': { type: 'string', default: '64' },
  'token-auth-file': { type: 'string' },
  'authorization-policy-file': { type: 'string' },
  'registry-anonymous-pull': { type: 'boolean', default: false },
  'allow-cross-namespace-refs': { type: 'boolean', default: false },
  'allow-private-upstreams': { type: 'boolean', default: false },
  'upstream-stall-timeout': { type: 'string', default: '30s' },
  reconcilers: { type: 'string', default: 'all' },
  'registry-external-host': { type: 'string' },
  'leader-elect': { type: 'boolean' },
  storage: { type: 'string', default: 'leveldb' },
  'etcd-endpoints': { type: 'string', default: 'http://127.0.0.1:2379' },
  'etcd-prefix': { type: 'string', default: '/ocm-apiserver' },
  'etcd-cafile': { type: 'string' },
  'etcd-certfile': { type: 'string' },
  'etcd-keyfile': { type: 'string' },
  'snapshot-registry': { type: 'string' },
  'snapshot-registry-config': { type: 'string' },
  'leader-election-namespace': { type: 'string', default: 'ocm-system' },
  'snapshot-history': { type: 'string', default: '5' },
  'registry-gc-interval': { type: 'string', default: '600' },
  'max-requests-inflight': { type: 'string', default: String(LIMIT_DEFAULTS.maxRequestsInflight) },
  'max-mutating-requests-inflight': { type: 'string', default: String(LIMIT_DEFAULTS.maxMutatingRequestsInflight) },
  'request-timeout': { type: 'string', default: '1m0s' },
  'max-watches-per-user': { type: 'string', default: String(LIMIT_DEFAULTS.maxWatchesPerUser) },
  'max-inflight-body-mib': { type: 'string', default: String(LIMIT_DEFAULTS.maxInflightBodyBytes / 1048576) },
  'max-inflight-answer-mib': { type: 'string', default: String(LIMIT_DEFAULTS.maxInflightAnswerBytes / 1048576) },
  'memory-budget-mib': { type: 'string', default: String(MEMORY_BUDGET_BYTES >> 20) },
  'registry-namespace-quota-mib': { type: 'string', default: String(REGISTRY_LIMIT_DEFAULTS.namespaceBytes / 1048576) },
  'registry-namespace-files': { type: 'string', default: String(REGISTRY_LIMIT_DEFAULTS.namespaceFiles) },
  'registry-namespace-uploads': { type: 'string', default: String(REGISTRY_LIMIT_DEFAULTS.namespaceUploads) },
  'registry-min-free-mib': { type: 'string', default: String(REGISTRY_LIMIT_DEFAULTS.minFreeBytes / 1048576) },
  help: { type: 'boolean', short: 'h' },
} as const;
const { values } = parseArgs({ options: OPTIONS, strict: true });

if (values.help) {
  process.stdout.write(`Usage: npm start -- [flags]   (README.md "Command line" has the full table)

  --mode standalone|aggregated      standalone: the whole cluster the product needs; aggregated: behind kube-apiserver
  --kubeconfig FILE                 the host cluster (aggregated; default: in-cluster service account)
  --data-dir DIR                    storage and key material (default ./data); --cert-dir DIR: key material elsewhere
  --port N, --registry-port N       HTTPS ports of the API (8443) and of the snapshot registry (5001); 0 picks one
  --bind ADDR                       listen address (127.0.0.1)
  --token-auth-file FILE            standalone: static tokens, token,user,uid,"group1,group2" per line
  --authorization-policy-file FILE  standalone: YAML policy rules
  --registry-anonymous-pull         let clients without credentials pull snapshots. WARNING: every tenant's
                                    snapshots (blobs, manifests, tags) become public to anyone who reaches
                                    the registry port, whatever the authorizer says
  --snapshot-registry HOST[:PORT]   keep snapshots in an external OCI registry (--snapshot-registry-config FILE)
  --storage leveldb|etcd            storage backend (--etcd-endpoints, --etcd-prefix, --etcd-cafile/certfile/keyfile)
  --reconcilers all|none|LIST       which reconcilers run (all)
  --allow-cross-namespace-refs      let Sources/Actions name an OCMComponent of another namespace
  --allow-private-upstreams         let user-supplied registries be on loopback/private addresses
  also: ${Object.keys(OPTIONS).filter((k) => !['mode', 'kubeconfig', 'data-dir', 'cert-dir', 'port', 'registry-port', 'bind', 'token-auth-file', 'authorization-policy-file', 'registry-anonymous-pull', 'snapshot-registry', 'snapshot-registry-config', 'storage', 'reconcilers', 'allow-cross-namespace-refs', 'allow-private-upstreams', 'help'].includes(k) && !k.startsWith('etcd-')).map((k) => `--${k}`).join(', ')}
`);
  process.exit(0);
}

const mode = values.mode;
const budgetMiB = Number(values['memory-budget-mib']);
if (!Number.isSafeInteger(budgetMiB) || budgetMiB < 1) throw new Error(`--memory-budget-mib must be a positive whole number of MiB, not ${values['memory-budget-mib']}`);
setMemoryBudget(budgetMiB * 1048576);
const wholeFlag = (name: keyof typeof values, min: number) => {
  const n = Number(values[name]);
  if (!Number.isSafeInteger(n) || n < min) throw new Error(`--${name} must be a whole number ${min ? 'above 0' : 'of 0 or more'}, not ${values[name]}`);
  return n;
};
const registryLimits = {
  namespaceBytes: wholeFlag('registry-namespace-quota-mib', 1) * 1048576,
  namespaceFiles: wholeFlag('registry-namespace-files', 1),
  namespaceUploads: wholeFlag('registry-namespace-uploads', 1),
  minFreeBytes: wholeFlag('registry-min-free-mib', 0) * 1048576,
};
const logFormat = resolveLogFormat(values['log-format']);
if (mode !== 'standalone' && mode !== 'aggregated') throw new Error(`--mode must be standalone or aggregated, not ${mode}`);
const dataDir = resolve(values['data-dir']!);
const port = Number(values.port);
const bind = values.bind!;
mkdirSync(dataDir, { recursive: true });

const certs = await ensureCerts(resolve(values['cert-dir'] ?? join(dataDir, 'certs')), { hosts: bind === '0.0.0.0' || bind === '::' ? [] : [bind] });
const metrics = new Metrics();
const etcdTLS =
  values['etcd-cafile'] || values['etcd-certfile']
    ? { ca: values['etcd-cafile'], cert: values['etcd-certfile'], key: values['etcd-keyfile'] }
    : undefined;
const etcdEndpoints = values['etcd-endpoints']!.split(',').map((e) => e.trim()).filter(Boolean);
if (values.storage !== 'leveldb' && values.storage !== 'etcd') throw new Error(`--storage must be leveldb or etcd, not ${values.storage}`);
/** A flag of whole MiB (0 allowed where it means no limit), in bytes. */
function mibFlag(name: keyof typeof values, zeroOk: boolean): number {
  const v = Number(values[name]);
  if (!Number.isSafeInteger(v) || v < (zeroOk ? 0 : 1)) throw new Error(`--${name} must be a ${zeroOk ? 'non-negative' : 'positive'} whole number of MiB, not ${values[name]}`);
  return v * 1048576;
}
const history = { historySize: Number(values['history-size']), historyBytes: mibFlag('history-mib', false) };
const backend =
  values.storage === 'etcd'
    ? await EtcdStore.open({ endpoints: etcdEndpoints, prefix: values['etcd-prefix'], tls: etcdTLS, ...history })
    : await LevelStore.open(join(dataDir, 'db'), history);
const quota = await QuotaStore.open(backend, {
  totalBytes: mibFlag('storage-quota-mib', true),
  namespaceBytes: mibFlag('namespace-storage-quota-mib', true),
  pageSize: values.storage === 'etcd' ? 500 : 0,
});
const store = new MeteredStore(quota, metrics.storageDuration);
new Gauge({
  name: 'ocm_storage_used_bytes',
  help: 'Bytes of JSON stored, per namespace (namespace="" for cluster-scoped objects); the storage quota counts these.',
  labelNames: ['namespace'],
  registers: [metrics.registry],
  collect() {
    this.reset();
    for (const [ns, n] of quota.usage().namespaces) this.set({ namespace: ns }, n);
  },
});
new Gauge({
  name: 'ocm_storage_quota_bytes',
  help: 'The storage quota: scope="total" for all stored objects (--storage-quota-mib), scope="namespace" for each namespace (--namespace-storage-quota-mib); 0: none.',
  labelNames: ['scope'],
  registers: [metrics.registry],
  collect() {
    this.set({ scope: 'total' }, quota.limits.totalBytes);
    this.set({ scope: 'namespace' }, quota.limits.namespaceBytes);
  },
});
new Gauge({
  name: 'ocm_storage_history_bytes',
  help: 'Bytes of JSON the watch history holds beyond the current objects (bounded by --history-mib).',
  registers: [metrics.registry],
  collect() {
    this.set(backend.historyStats().bytes);
  },
});
const requestTimeoutMs = /^\d+$/.test(values['request-timeout']!) ? Number(values['request-timeout']) * 1000 : parseDuration(values['request-timeout']!); // seconds, or a Go duration like kube's
const limits = {
  maxRequestsInflight: Number(values['max-requests-inflight']),
  maxMutatingRequestsInflight: Number(values['max-mutating-requests-inflight']),
  requestTimeoutMs,
  maxWatchesPerUser: Number(values['max-watches-per-user']),
  maxInflightBodyBytes: Math.round(Number(values['max-inflight-body-mib']) * 1048576),
  maxInflightAnswerBytes: Math.round(Number(values['max-inflight-answer-mib']) * 1048576),
};
for (const [k, v] of Object.entries(limits)) if (!Number.isFinite(v) || v < 0) throw new Error(`invalid value for ${k}: ${v}`);
if (requestTimeoutMs <= 0) throw new Error('--request-timeout must be positive');
const upstreamStallTimeoutMs = parseDuration(values['upstream-stall-timeout']!);
if (!upstreamStallTimeoutMs || upstreamStallTimeoutMs <= 0) throw new Error('--upstream-stall-timeout must be a positive duration (30s, 1m)');

/** kube's static token file: `token,user,uid,"group1,group2"` per line. */
function readTokenFile(file: string): Map<string, UserInfo> {
  const users = new Map<string, UserInfo>();
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim() || line.startsWith('#')) continue;
    const cols = [...line.matchAll(/"([^"]*)"|([^,]+)/g)].map((m) => (m[1] ?? m[2]).trim());
    const [token, name, uid, groups] = cols;
    users.set(token, { name, uid, groups: groups ? groups.split(',').map((g) => g.trim()).filter(Boolean) : [] });
  }
  return users;
}

function readPolicy(file: string): PolicyRule[] {
  const doc = YAML.parse(readFileSync(file, 'utf8'));
  return Array.isArray(doc) ? doc : (doc?.rules ?? []);
}

let authnConfig: AuthnConfig;
let authz: Authorizer;
let host: HostCluster | undefined;
const ownCA = parsePemBundle(certs.caCertPem);

if (mode === 'aggregated') {
  host = HostCluster.load(values.kubeconfig);
  const cfg = await host.authenticationConfig();
  const tokenCache = new Map<string, { u: UserInfo | undefined; until: number }>();
  authnConfig = {
    clientCAs: [...parsePemBundle(cfg.clientCA), ...ownCA],
    requestHeader: cfg.requestHeaderCA
      ? { cas: parsePemBundle(cfg.requestHeaderCA), allowedNames: cfg.allowedNames, usernameHeaders: cfg.usernameHeaders, groupHeaders: cfg.groupHeaders, extraHeaderPrefixes: cfg.extraHeaderPrefixes }
      : undefined,
    tokens: async (token) => {
      const hit = tokenCache.get(token);
      if (hit && hit.until > Date.now()) return hit.u;
      const u = await host!.tokenReview(token);
      if (tokenCache.size > 10_000) tokenCache.clear();
      tokenCache.set(token, { u, until: Date.now() + 10_000 });
      return u;
    },
  };
  authz = new CachingAuthorizer({ authorize: (a) => host!.subjectAccessReview(a) });
} else {
  const tokens = values['token-auth-file'] ? readTokenFile(values['token-auth-file']) : new Map<string, UserInfo>();
  authnConfig = {
    clientCAs: ownCA,
    requestHeader: {
      cas: parsePemBundle(certs.frontProxyCACertPem),
      allowedNames: ['front-proxy-client'],
      usernameHeaders: ['X-Remote-User'],
      groupHeaders: ['X-Remote-Group'],
      extraHeaderPrefixes: ['X-Remote-Extra-'],
    },
    tokens: async (t) => tokens.get(t),
  };
  authz = new StaticAuthorizer(values['authorization-policy-file'] ? readPolicy(values['authorization-policy-file']) : []);
}

const server = await createApiServer({
  store,
  kinds: mode === 'standalone' ? [...ocmKinds, ...coreKinds, ...fluxKinds] : ocmKinds,
  tls: { key: certs.serverKeyPem, cert: certs.serverCertPem },
  authn: new Authenticator(authnConfig),
  authz,
  serveReviews: mode === 'standalone',
  logLevel: values['log-level'],
  logFormat,
  metrics,
  limits,
});
const apiRequests = new RequestTracker(server.app.server, isWatchUrl); // for draining at shutdown

let controllers: ClusterControllers | undefined;
if (mode === 'standalone') {
  for (const name of STANDARD_NAMESPACES) await ensureObject(server.rest, server.registry, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  await ensureObject(server.rest, server.registry, authenticationConfigMap(certs.caCertPem, certs.frontProxyCACertPem, ['front-proxy-client']), ['data']);
  controllers = new ClusterControllers(store, server.rest, server.registry, server.app.log);
}

await server.app.listen({ port, host: bind });
const addr = server.app.server.address();
const actualPort = typeof addr === 'object' && addr ? addr.port : port;
const hostname = bind === '0.0.0.0' || bind === '::' ? '127.0.0.1' : bind.includes(':') ? `[${bind}]` : bind;
const url = `https://${hostname}:${actualPort}`;
// Under the data dir, not the cert dir: in a cluster the cert dir is a read-only Secret mount.
mkdirSync(join(dataDir, 'certs'), { recursive: true, mode: 0o700 });
const kubeconfig = join(dataDir, 'certs', 'admin.kubeconfig');
writeKubeconfig(kubeconfig, { server: url, caCertPem: certs.caCertPem, clientCertPem: certs.adminCertPem, clientKeyPem: certs.adminKeyPem });

// The snapshot registry, on its own thread, and the reconcilers that fill it.
const registry = await startRegistryWorker({
  dataDir: join(dataDir, 'registry'),
  port: Number(values['registry-port']),
  host: bind,
  tls: { key: certs.serverKeyPem, cert: certs.serverCertPem, clientCA: certs.caCertPem },
  anonymousPull: values['registry-anonymous-pull'],
  limits: registryLimits,
  headTimeoutMs: nodeServerOptions(limits).headersTimeout,
  // `docker login`-style clients: the password is a bearer token this server accepts.
  authenticateBasic: async (_user, pass) => (authnConfig.tokens ? authnConfig.tokens(pass) : undefined),
  // Pulling <ns>/... is `get` on snapshots in <ns>, decided by the API's own authorizer.
  authorizePull: pullCheck(authz),
  logLevel: values['log-level'],
  logFormat,
  traffic: metrics.registryTraffic(() => registry.blobCount()),
  onExit: (err) => {
    server.app.log.fatal({ err }, 'the snapshot registry thread died; exiting');
    process.exit(1);
  },
});
const snapshotHistory = Number(values['snapshot-history']);
/** The namespaces that exist (standalone: ours; aggregated: the cluster's), or undefined when that cannot be read. */
async function existingNamespaces(): Promise<string[] | undefined> {
  try {
    if (mode === 'standalone') return (await listObjects(ctx, resourceOf(ctx, 'Namespace', '', 'v1'))).map((n) => n.metadata.name!);
    return (await host!.core.listNamespace()).items.map((n) => n.metadata!.name!);
  } catch (err) {
    server.app.log.debug({ err }, 'registry gc: namespaces not readable; snapshots of deleted namespaces are kept');
    return undefined;
  }
}
const gcTimer = setInterval(async () => {
  // Snapshot tags are unix times; OCM component versions stored in the registry are never collected.
  // Snapshot repositories of namespaces that are gone lose their snapshots.
  registry.gc({ keepTags: snapshotHistory, tagPattern: /^\d{9,}$/, namespaces: await existingNamespaces() }).then(
    (r) => r.blobsDeleted + r.manifestsDeleted > 0 && server.app.log.info(r, 'registry garbage collected'),
    (err) => server.app.log.error({ err }, 'registry garbage collection failed'),
  );
}, Number(values['registry-gc-interval']) * 1000);
gcTimer.unref();
const registryHost = `${hostname}:${registry.port}`;
if (mode === 'standalone') {
  // Where the snapshot registry is, for tools (npm run example) that only have a kubeconfig.
  await ensureObject(server.rest, server.registry, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ocm-apiserver', namespace: 'kube-public' }, data: { registry: registryHost } }, ['data']);
}
host ??= HostCluster.load(kubeconfig);
const log = server.app.log.child({ component: 'reconcilers' });
// Standalone, the host cluster is this server: its Events skip the HTTPS round trip to itself.
const eventResource = server.registry.all.find((r) => r.def.group === '' && r.def.kind === 'Event');
const events = new EventRecorder(
  mode === 'standalone' && eventResource
    ? {
        create: async (ns, ev) => (await server.rest.create(eventResource, ns, plainEvent(ev), internalOptions('Strict'))).obj as unknown as k8s.CoreV1Event,
        replace: async (ns, name, ev) => (await server.rest.update(eventResource, ns, name, plainEvent(ev), false, internalOptions('Strict'))).obj as unknown as k8s.CoreV1Event,
      }
    : host,
);
const ctx: ReconcilerContext = {
  store,
  rest: server.rest,
  registry: server.registry,
  host,
  events,
  log,
  status: new StatusWriter(store, server.rest, events, log),
  snapshots: {
    host: values['snapshot-registry']?.replace(/^(?:oci|https?):\/\//, '') ?? registryHost,
    history: snapshotHistory,
    // The server owns the snapshots: what it wrote or verified is read again from memory, and small
    // blobs go up in one request.
    client: values['snapshot-registry']
      ? new OciClient({
          insecureHttp: values['snapshot-registry'].startsWith('http://'),
          credentials: values['snapshot-registry-config'] ? credentialsFromDockerConfig(readFileSync(values['snapshot-registry-config'], 'utf8')) : undefined,
          retries: 3,
          ...SNAPSHOT_CLIENT_TUNING,
        })
      : new OciClient({ ca: certs.caCertPem, cert: certs.adminCertPem, key: certs.adminKeyPem, retries: 3, ...SNAPSHOT_CLIENT_TUNING }),
    // Where Flux reaches the registry: the Service in a cluster, this address standalone.
    externalHost: values['registry-external-host'] ?? values['snapshot-registry']?.replace(/^(?:oci|https?):\/\//, '') ?? (mode === 'aggregated' ? `ocm-apiserver.ocm-system.svc:${values['registry-port']}` : registryHost),
    tlsSecretName: 'ocm-registry-tls',
    // One certificate per namespace, pulling that namespace's snapshots only; reissued with a new CA.
    tlsSecretData: async (ns, cur) => {
      const c = await namespacePullCert({ certPem: certs.caCertPem, keyPem: certs.caKeyPem }, ns, { certPem: cur['tls.crt'], keyPem: cur['tls.key'] });
      return { 'ca.crt': certs.caCertPem, 'tls.crt': c.certPem, 'tls.key': c.keyPem };
    },
    attestationKeyPem: certs.attestationKeyPem,
    attestationCertPem: certs.attestationPublicKeyPem,
    caCertPem: certs.caCertPem,
  },
  tenancy: { allowCrossNamespaceRefs: values['allow-cross-namespace-refs'], allowPrivateUpstreams: values['allow-private-upstreams'], upstreamStallTimeoutMs, ownPorts: [actualPort, registry.port] },
};
// `--reconcilers none` serves the API alone (API conformance tests and benchmarks).
const manager = new ControllerManager(store, log);
const enabled = values.reconcilers === 'all' ? undefined : new Set(values.reconcilers!.split(',').map((x) => x.trim()).filter((x) => x && x !== 'none'));
const actionProviders = [localizationProvider, configuratorProvider, kustomizationTemplateProvider, helmReleaseTemplateProvider];
for (const make of [ocmComponentController, sourceController, (c: ReconcilerContext) => actionController(c, actionProviders)]) {
  const spec = make(ctx);
  if (!enabled || enabled.has(spec.name)) manager.add(metrics.timeReconciles(spec));
}
for (const spec of providerStatusControllers(ctx, ['OCMResource', ...actionProviders.map((p) => p.kind)])) {
  if (!enabled || enabled.has('providerstatus') || enabled.has(spec.name)) manager.add(metrics.timeReconciles(spec));
}
metrics.trackControllers(() => manager.controllers);
// Only the leader reconciles; a single embedded replica always is one.
// Aggregated: a Lease in the host cluster. Standalone on etcd: an etcd election. Else: one replica.
const identity = `${osHostname()}_${process.pid}`;
let elector: LeaderElector;
if (values['leader-elect'] === false) elector = new AlwaysLeader();
else if (mode === 'aggregated') elector = new LeaseElector(host, values['leader-election-namespace']!, 'ocm-apiserver-reconcilers', identity, log);
else if (values.storage === 'etcd') {
  elector = new EtcdElector((backend as EtcdStore).electionNamespace(), 'reconcilers', identity, log);
} else elector = new AlwaysLeader();
await elector.start(
  async () => {
    await controllers?.start();
    await manager.start();
    // A new CA: the Flux certificates of every namespace are reissued now.
    refreshRegistryTlsSecrets(ctx).catch((err) => log.error({ err }, 'refreshing the registry TLS Secrets failed'));
  },
  async () => {
    await controllers?.stop();
    await manager.stop();
  },
);

server.app.log.info(
  { url, registry: registryHost, kubeconfig, dataDir, mode, resourceVersion: store.currentRV() },
  `ocm-apiserver ready at ${url} (snapshot registry ${registryHost}); export KUBECONFIG=${kubeconfig}`,
);

let stopping = false;
// Graceful shutdown (cli/shutdown.ts): reconcilers, then stop accepting, end watches, drain
// in-flight requests (bounded), flush storage; within the pod's 30 s terminationGracePeriodSeconds.
const stop = async (signal: string) => {
  if (stopping) return;
  stopping = true;
  server.app.log.info({ signal }, 'shutting down');
  clearInterval(gcTimer);
  setTimeout(() => {
    server.app.log.error({}, 'shutdown did not finish in 28s; exiting');
    process.exit(1);
  }, 28_000).unref();
  const http = [
    { name: 'api', stopAccepting: () => void server.app.server.close(), idle: (ms: number) => apiRequests.idle(ms), endLongRunning: () => server.watches.closeAll(), close: () => server.close() },
    { name: 'registry', stopAccepting: () => registry.stopAccepting(), idle: (ms: number) => registry.idle(ms), close: () => registry.close() },
  ];
  await shutdown({ log: server.app.log, stopReconcilers: () => elector.stop(), http, closeStorage: () => store.close(), reconcilersTimeoutMs: 5000, drainTimeoutMs: Math.min(requestTimeoutMs, 15_000) });
  process.exit(0);
};
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
