// What every reconciler gets: the store (its cache), the generic REST path for our own kinds, the
// host-cluster client for Secrets/Events/Flux objects, the status writer, and the snapshot registry.
import { ApiError } from '../apiserver/errors.js';
import { keyFor, type Resource, type ResourceRegistry } from '../apiserver/resources.js';
import { type GenericREST, internalOptions } from '../apiserver/rest.js';
import type { Condition, KubeObject, OwnerReference } from '../kinds/types.js';
import { credentialsFromDockerConfig, normalizeRegistryHost, OciClient, type Credentials } from '../registry/client.js';
import type * as k8s from '@kubernetes/client-node';
import type { UpstreamPolicy } from '../registry/upstream.js';
import { OcmRepository } from '../ocm/repository.js';
import { stalled } from './runtime/errors.js';
import type { Store } from '../storage/store.js';
import type { Logger, ObjectKey, Result } from './runtime/controller.js';
import type { EventRecorder } from './runtime/events.js';
import type { HostCluster } from './runtime/host.js';
import { ReconcileError, toReconcileError, WAITING_RETRY_MS } from './runtime/errors.js';
import { condition, removeCondition, setCondition, type StatusWriter } from './runtime/status.js';

export interface SnapshotStore {
  /** `host:port` of the registry that holds snapshots, as clients reach it. */
  host: string;
  client: OciClient;
  /** Snapshots kept per Source/Action (objects and registry tags). */
  history: number;
  /** `host:port` of the registry as clients in the cluster (Flux) reach it. */
  externalHost: string;
  /** Secret (created in each namespace that deploys) with ca.crt, tls.crt, tls.key for pulling. */
  tlsSecretName: string;
  /** The Secret's data for a namespace (a certificate that pulls that namespace only), given what it holds now. */
  tlsSecretData: (namespace: string, current: Record<string, string>) => Promise<Record<string, string>>;
  /** The server's key that signs snapshot attestations, and the certificate that verifies them. */
  attestationKeyPem: string;
  attestationCertPem: string;
  /** The CA of the embedded registry's serving certificate (for clients with a user's credentials there). */
  caCertPem?: string;
}

export interface ReconcilerContext {
  store: Store;
  rest: GenericREST;
  registry: ResourceRegistry;
  host: HostCluster;
  status: StatusWriter;
  events?: EventRecorder;
  log: Logger;
  snapshots: SnapshotStore;
  /** What widens tenancy (reconcilers/tenancy.ts); everything off when absent. */
  tenancy?: TenancyOptions;
}

export interface TenancyOptions {
  /** --allow-cross-namespace-refs: Sources/Actions may name an OCMComponent (and Flux templates objects) of another namespace. */
  allowCrossNamespaceRefs?: boolean;
  /** --allow-private-upstreams: user-supplied registries may be on loopback or private addresses. */
  allowPrivateUpstreams?: boolean;
  /** --upstream-stall-timeout: a read from a user's registry slower than 16 KiB per this long is cut. */
  upstreamStallTimeoutMs?: number;
  /** This server's own ports (API, registry), never reachable through a user-supplied URL. */
  ownPorts?: number[];
}

export const GROUP = 'delivery.ocm.software';
export const API_VERSION = `${GROUP}/v1alpha1`;

export { DigestMismatch, ReconcileError, type RetryPolicy } from './runtime/errors.js';

/** How soon a Source or Action whose provider is not ready yet is looked at again. */
export const NOT_READY_RETRY_MS = WAITING_RETRY_MS;

/**
 * A failed Source or Action run: `ready: false` and Ready=False with the reason on the object
 * itself, and Stalled=True when retrying cannot help (Flux's kstatus). Only the object's own
 * status: a provider shared by several consumers is never written by them (its status is its
 * own reconciler's). Throws again when the error wants a retry with backoff.
 */
export async function reportRunFailure(ctx: ReconcilerContext, r: Resource, key: ObjectKey, err: unknown): Promise<Result | void> {
  const e = toReconcileError(err, 'ReconcileFailed');
  let was: Condition | undefined;
  const written = await ctx.status.update(r, key, (st, o) => {
    was = condition(o);
    failureStatus(st, e, o.metadata.generation);
  });
  if (written) await eventOnNewMessage(ctx, written, was, e);
  if (e.policy === 'Transient') throw e;
  if (e.policy === 'Waiting') return { requeueAfterMs: e.requeueAfterMs };
}

/** Ready=False with the error's reason and message, and the kstatus conditions (failureConditions). */
export function failureStatus(st: Record<string, unknown>, e: ReconcileError, generation: number | undefined) {
  st.ready = false;
  setCondition(st, { type: 'Ready', status: 'False', reason: e.reason, message: e.message }, generation);
  failureConditions(st, e, generation);
}

/**
 * Flux's kstatus beside Ready=False: Stalled=True when retrying cannot help (until an input or the
 * interval brings it back); Reconciling=True while it is retried (ProgressingWithRetry, with
 * backoff) or looked at again (Progressing). Ready=True drops both (setCondition).
 */
export function failureConditions(st: Record<string, unknown>, e: ReconcileError, generation: number | undefined) {
  if (e.policy === 'Stalled') {
    setCondition(st, { type: 'Stalled', status: 'True', reason: e.reason, message: e.message }, generation);
    removeCondition(st, 'Reconciling');
  } else {
    removeCondition(st, 'Stalled');
    setCondition(st, { type: 'Reconciling', status: 'True', reason: e.policy === 'Transient' ? 'ProgressingWithRetry' : 'Progressing', message: e.message }, generation);
  }
}

/**
 * A Warning Event for a failure with the reason Ready already has but another message (another
 * resource, another error of the same upstream): the StatusWriter records one only when the
 * reason changes. A retry that fails the same way writes nothing (no status, no Event), so
 * `kubectl describe` shows each failure once, and the recovery.
 */
export async function eventOnNewMessage(ctx: ReconcilerContext, obj: KubeObject, was: Condition | undefined, e: ReconcileError): Promise<void> {
  if (was?.status !== 'False' || was.reason !== e.reason || was.message === e.message || !ctx.events) return;
  await ctx.events.record(obj, 'Warning', e.reason, e.message).catch((err: Error) => ctx.log.warn({ err: err.message }, 'recording an event failed'));
}

export function resourceOf(ctx: ReconcilerContext, kind: string, group = GROUP, version = 'v1alpha1'): Resource {
  const r = ctx.registry.all.find((x) => x.def.group === group && x.def.version === version && x.def.kind === kind);
  if (!r) throw new Error(`${group}/${version} ${kind} is not served`);
  return r;
}

export async function getObject(ctx: ReconcilerContext, r: Resource, namespace: string | undefined, name: string): Promise<KubeObject | undefined> {
  return (await ctx.store.get(keyFor(r, namespace, name)))?.obj;
}

export async function listObjects(ctx: ReconcilerContext, r: Resource, namespace?: string): Promise<KubeObject[]> {
  return (await ctx.store.list(keyFor(r, namespace))).items.map((i) => i.obj);
}

export const ownerRef = (owner: KubeObject): OwnerReference => ({
  apiVersion: owner.apiVersion,
  kind: owner.kind,
  name: owner.metadata.name!,
  uid: owner.metadata.uid!,
  controller: true,
  blockOwnerDeletion: true,
});

/**
 * Creates the object or brings its spec, labels, annotations and owners up to date (a no-op
 * when nothing differs). Returns the stored object.
 */
export async function applyObject(ctx: ReconcilerContext, r: Resource, desired: KubeObject): Promise<KubeObject> {
  const ns = desired.metadata.namespace;
  const name = desired.metadata.name!;
  const cur = await getObject(ctx, r, ns, name);
  if (!cur) {
    try {
      return (await ctx.rest.create(r, ns, structuredClone(desired), internalOptions())).obj;
    } catch (err) {
      if (!(err instanceof ApiError && err.status.reason === 'AlreadyExists')) throw err;
      return applyObject(ctx, r, desired);
    }
  }
  const next = structuredClone(cur);
  for (const [k, v] of Object.entries(desired)) if (k !== 'metadata' && k !== 'status' && k !== 'apiVersion' && k !== 'kind') next[k] = v;
  for (const f of ['labels', 'annotations', 'ownerReferences'] as const) if (desired.metadata[f]) next.metadata[f] = desired.metadata[f] as never;
  return (await ctx.rest.update(r, ns, name, next, false, internalOptions())).obj;
}

/** Reads one value of a Secret from the host cluster (decoded). */
export async function secretData(ctx: ReconcilerContext, namespace: string, name: string): Promise<Record<string, Buffer>> {
  let secret;
  try {
    secret = await ctx.host.core.readNamespacedSecret({ name, namespace });
  } catch (err) {
    const code = (err as { code?: number }).code;
    throw new ReconcileError('SecretNotFound', code === 404 ? `Secret ${namespace}/${name} not found` : `reading Secret ${namespace}/${name}: ${(err as Error).message}`, code !== 404);
  }
  const out: Record<string, Buffer> = {};
  for (const [k, v] of Object.entries(secret.data ?? {})) out[k] = Buffer.from(v, 'base64');
  return out;
}

const hostName = (h: string) => h.toLowerCase().replace(/^localhost(?=:|$)/, '127.0.0.1');

/** Whether `host` (host:port) names this server's snapshot registry. */
export function isOwnRegistry(ctx: ReconcilerContext, host: string): boolean {
  return [ctx.snapshots.host, ctx.snapshots.externalHost].map(hostName).includes(hostName(host));
}

/** Where a client acting for a user may connect (registry/upstream.ts). */
export function upstreamPolicy(ctx: ReconcilerContext): UpstreamPolicy {
  return { allowPrivate: ctx.tenancy?.allowPrivateUpstreams ?? false, ownPorts: ctx.tenancy?.ownPorts ?? [] };
}

/**
 * An OCI client for a user's repository: plain HTTP for `http://` URLs, credentials from a Secret
 * of `namespace` (bound to the repository's host). This server's own registry is read with the
 * server's identity only for repositories under `<namespace>/` (refused elsewhere); any other
 * host through the upstream policy, which also refuses this server's own ports (issue 16).
 */
export async function repositoryClient(ctx: ReconcilerContext, namespace: string, url: string, secretRef?: { name: string }): Promise<OciClient> {
  const bare = url.replace(/^(?:oci|https?):\/\//, '');
  const host = bare.split('/')[0];
  const own = isOwnRegistry(ctx, host);
  if (own) {
    const path = bare.split('/').slice(1).join('/');
    if (path !== namespace && !path.startsWith(`${namespace}/`))
      throw stalled('ForeignRepository', `${url} is in this server's own registry but outside namespace ${namespace}: objects of ${namespace} may read only its repositories under ${namespace}/`);
    if (!secretRef) return ctx.snapshots.client;
  }
  let credentials: ((host: string) => Credentials | undefined) | undefined;
  if (secretRef) {
    const data = await secretData(ctx, namespace, secretRef.name);
    if (data['.dockerconfigjson']) credentials = credentialsFromDockerConfig(data['.dockerconfigjson'].toString('utf8'));
    else if (data.username && data.password) {
      const c = { username: data.username.toString('utf8'), password: data.password.toString('utf8') };
      const repoHost = normalizeRegistryHost(host);
      credentials = (h) => (normalizeRegistryHost(h) === repoHost ? c : undefined);
    } else throw new ReconcileError('InvalidSecret', `Secret ${namespace}/${secretRef.name} has neither .dockerconfigjson nor username/password`, false);
  }
  return new OciClient({ insecureHttp: url.startsWith('http://'), credentials, retries: 3, ...(own ? { ca: ctx.snapshots.caCertPem } : { upstream: upstreamPolicy(ctx), stallTimeoutMs: ctx.tenancy?.upstreamStallTimeoutMs }) });
}

/** The client for a component's external accesses (ociBlob, ociArtifact): never the server's identity, always the upstream policy. */
export function accessClientFor(ctx: ReconcilerContext, repositoryClient: OciClient): OciClient {
  return repositoryClient === ctx.snapshots.client || !repositoryClient.guarded ? new OciClient({ retries: 3, upstream: upstreamPolicy(ctx), stallTimeoutMs: ctx.tenancy?.upstreamStallTimeoutMs }) : repositoryClient;
}

/**
 * The OCM repository of an object of `namespace`, with the clients for its accesses: one in the
 * repository's registry is read with the repository's client (in this server's own registry only
 * under `<namespace>/`), any other through accessClientFor. `close` closes what it opened.
 */
export async function ocmRepositoryFor(ctx: ReconcilerContext, namespace: string, url: string, secretRef?: { name: string }): Promise<{ repo: OcmRepository; close: () => void }> {
  const client = await repositoryClient(ctx, namespace, url, secretRef);
  const accessClient = accessClientFor(ctx, client);
  const repo = new OcmRepository(client, url, {
    accessClient,
    sameRegistry: (r) => !isOwnRegistry(ctx, r.host) || r.repository === namespace || r.repository.startsWith(`${namespace}/`),
  });
  return {
    repo,
    close: () => {
      if (client !== ctx.snapshots.client) client.close?.();
      if (accessClient !== client) accessClient.close();
    },
  };
}

const tlsSecretsEnsured = new Set<string>();

/** Keeps the Secret that lets Flux pull snapshots (CA + a client certificate) in a namespace. */
export async function ensureRegistryTlsSecret(ctx: ReconcilerContext, namespace: string): Promise<void> {
  const name = ctx.snapshots.tlsSecretName;
  if (tlsSecretsEnsured.has(namespace)) return;
  let cur: k8s.V1Secret | undefined;
  try {
    cur = await ctx.host.core.readNamespacedSecret({ name, namespace });
  } catch (err) {
    if ((err as { code?: number }).code !== 404) throw err;
  }
  const decoded = Object.fromEntries(Object.entries(cur?.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
  const wanted = await ctx.snapshots.tlsSecretData(namespace, decoded);
  const data = Object.fromEntries(Object.entries(wanted).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  const body = { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name, namespace, labels: { 'app.kubernetes.io/managed-by': 'ocm-apiserver' } }, data };
  if (!cur) await ctx.host.core.createNamespacedSecret({ namespace, body });
  else if (!Object.entries(data).every(([k, v]) => cur.data?.[k] === v))
    await ctx.host.core.replaceNamespacedSecret({ name, namespace, body: { ...body, metadata: { ...body.metadata, resourceVersion: cur.metadata?.resourceVersion } } });
  tlsSecretsEnsured.add(namespace);
}

/**
 * At start: re-ensures every registry Secret the server wrote (by its label), so that a new CA
 * reaches each namespace's Flux certificate at once, not only when its Actions run next.
 */
export async function refreshRegistryTlsSecrets(ctx: ReconcilerContext): Promise<number> {
  const list = await ctx.host.core.listSecretForAllNamespaces({ labelSelector: 'app.kubernetes.io/managed-by=ocm-apiserver' });
  const namespaces = list.items.filter((s) => s.metadata?.name === ctx.snapshots.tlsSecretName).map((s) => s.metadata!.namespace!);
  for (const ns of namespaces) {
    tlsSecretsEnsured.delete(ns);
    await ensureRegistryTlsSecret(ctx, ns);
  }
  return namespaces.length;
}
