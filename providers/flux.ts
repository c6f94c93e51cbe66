// Shared by the Flux deployers (KustomizationTemplate, HelmReleaseTemplate): the Flux objects they
// write into the host cluster, written through `ctx.host.objects` by create-or-replace (read, then
// create, or replace with the current resourceVersion; a 404 or 409 in between starts over), their
// readiness as Flux reports it, and their removal.
//
// Every object is named after the Action, lives in the Action's namespace, carries the Action as
// its controller ownerReference (so the garbage collector deletes it with the Action) and the
// labels below. An object of that name that another controller (or nobody) owns is never taken
// over: that is a FluxProviderError with reason FluxObjectConflict.
import { createHash } from 'node:crypto';
import type { KubernetesObject, V1DeleteOptions } from '@kubernetes/client-node';
import type { KubeObject, OwnerReference } from '../kinds/types.js';
import { ReconcileError } from '../reconcilers/context.js';
import type { HostCluster } from '../reconcilers/runtime/host.js';
import type { ActionContext } from './types.js';

export const OCI_REPOSITORY = { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'OCIRepository' } as const;
export const KUSTOMIZATION = { apiVersion: 'kustomize.toolkit.fluxcd.io/v1', kind: 'Kustomization' } as const;
export const HELM_RELEASE = { apiVersion: 'helm.toolkit.fluxcd.io/v2', kind: 'HelmRelease' } as const;
export type FluxKind = typeof OCI_REPOSITORY | typeof KUSTOMIZATION | typeof HELM_RELEASE;

/** Labels on every Flux object written for an Action. */
export const ACTION_LABEL = 'delivery.ocm.software/action';
export const PROVIDER_LABEL = 'delivery.ocm.software/provider';
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'ocm-apiserver';
/** Hash of the spec last written: a field dropped from the template is dropped from the object too. */
export const SPEC_HASH_ANNOTATION = 'delivery.ocm.software/spec-hash';
export const FIELD_MANAGER = 'ocm-apiserver';
export const DEFAULT_INTERVAL = '10m';

/**
 * A failure of a Flux deployer: a ReconcileError, so the Action reconciler puts `reason` on the
 * Action's Ready condition as it is; `retry: false` means nothing changes until someone edits
 * something (a conflicting object, an unusable chart), `retry: true` a transient host-cluster error.
 */
export class FluxProviderError extends ReconcileError {
  override name = 'FluxProviderError';
}

type Obj = KubernetesObject & { spec?: Record<string, unknown>; status?: Record<string, unknown> };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const statusCode = (err: unknown): number | undefined => {
  const c = (err as { code?: unknown; statusCode?: unknown })?.code ?? (err as { statusCode?: unknown })?.statusCode;
  return typeof c === 'number' ? c : undefined;
};
/** The Status message kube-apiserver sent, else the client's error text. */
function apiMessage(err: unknown): string {
  const body = (err as { body?: unknown })?.body;
  let parsed: unknown = body;
  if (typeof body === 'string') {
    try {
      parsed = JSON.parse(body);
    } catch {
      parsed = undefined;
    }
  }
  if (isRecord(parsed) && typeof parsed.message === 'string') return parsed.message;
  return (err as Error)?.message ?? String(err);
}
const hostError = (what: string, err: unknown) =>
  err instanceof FluxProviderError ? err : new FluxProviderError('HostClusterError', `${what}: ${statusCode(err) ? `${statusCode(err)} ` : ''}${apiMessage(err)}`);

/** `Kind/namespace/name`, as ActionOutput.wrote lists it. */
export const objectKey = (o: { kind?: string; metadata?: { namespace?: string; name?: string } }) => `${o.kind}/${o.metadata?.namespace}/${o.metadata?.name}`;

/** A label value (at most 63 characters) naming the Action; long names are cut and made unique with a hash. */
export function labelValue(s: string): string {
  if (s.length <= 63 && /^(?:[a-zA-Z0-9](?:[-_.a-zA-Z0-9]*[a-zA-Z0-9])?)?$/.test(s)) return s;
  const hash = createHash('sha256').update(s).digest('hex').slice(0, 10);
  const head = s.replace(/[^-_.a-zA-Z0-9]+/g, '-').slice(0, 52).replace(/^[^a-zA-Z0-9]+|[^a-zA-Z0-9]+$/g, '');
  return head ? `${head}-${hash}` : hash;
}

/** The Action as the controller owner of what its deployer writes. No blockOwnerDeletion: in a real
 * cluster that needs `update` on actions/finalizers (OwnerReferencesPermissionEnforcement). */
export function actionOwner(action: KubeObject): OwnerReference {
  const uid = action.metadata.uid;
  const name = action.metadata.name;
  if (!uid || !name) throw new FluxProviderError('InvalidAction', 'the Action has no metadata.uid/name yet; it cannot own the Flux objects', false);
  return { apiVersion: action.apiVersion || 'delivery.ocm.software/v1alpha1', kind: action.kind || 'Action', name, uid, controller: true };
}

/** Name and namespace of the Flux objects: those of the Action. */
export function target(action: Pick<KubeObject, 'metadata'>): { name: string; namespace: string } {
  const { name, namespace } = action.metadata;
  if (!name || !namespace) throw new FluxProviderError('InvalidAction', 'the Action has no metadata.name/namespace', false);
  return { name, namespace };
}

/** Stable JSON (sorted keys), for the spec hash. */
function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isRecord(v)) {
    return `{${Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v ?? null);
}
export const specHash = (spec: unknown) => `sha256:${createHash('sha256').update(canonical(spec)).digest('hex')}`;

/** Whether every field of `want` has the same value in `have` (extra fields in `have`, e.g. defaults a CRD adds, are fine). */
export function isSubset(want: unknown, have: unknown): boolean {
  if (Array.isArray(want)) return Array.isArray(have) && want.length === have.length && want.every((w, i) => isSubset(w, have[i]));
  if (isRecord(want)) return isRecord(have) && Object.entries(want).every(([k, w]) => w === undefined || isSubset(w, have[k]));
  return want === have;
}

/** The object a deployer wants in the cluster for this Action. */
export function desiredObject(ctx: Pick<ActionContext, 'action' | 'provider'>, kind: FluxKind, spec: Record<string, unknown>): Obj {
  const { name, namespace } = target(ctx.action);
  return {
    apiVersion: kind.apiVersion,
    kind: kind.kind,
    metadata: {
      name,
      namespace,
      labels: {
        [ACTION_LABEL]: labelValue(name),
        [PROVIDER_LABEL]: labelValue(`${ctx.provider.kind}.${ctx.provider.metadata.name ?? ''}`.toLowerCase()),
        [MANAGED_BY_LABEL]: MANAGED_BY,
      },
      annotations: { [SPEC_HASH_ANNOTATION]: specHash(spec) },
      ownerReferences: [actionOwner(ctx.action)],
    },
    spec,
  };
}

function describe(o: Obj) {
  return `${o.kind} ${o.metadata?.namespace}/${o.metadata?.name}`;
}

/** Refuses an object that is not ours: owned by another controller, or by nobody. */
function checkOwner(cur: Obj, owner: OwnerReference): void {
  const refs = (cur.metadata?.ownerReferences ?? []) as OwnerReference[];
  const controller = refs.find((r) => r.controller);
  if (controller?.uid === owner.uid) return;
  const by = controller ? `is controlled by ${controller.kind} ${controller.name} (uid ${controller.uid})` : 'exists and has no controller';
  throw new FluxProviderError(
    'FluxObjectConflict',
    `${describe(cur)} ${by}, not by ${owner.kind} ${owner.name} (uid ${owner.uid}); not taking it over: delete it or give the ${owner.kind} another name`,
    // A stale owner (an Action deleted and recreated under the same name) goes away by itself once the
    // garbage collector deletes the old object: worth retrying. An unowned object stays until someone acts.
    !!controller && controller.kind === owner.kind && controller.name === owner.name,
  );
}

function upToDate(cur: Obj, want: Obj): boolean {
  const meta = cur.metadata ?? {};
  const labels = want.metadata?.labels ?? {};
  const annotations = want.metadata?.annotations ?? {};
  return (
    Object.entries(labels).every(([k, v]) => meta.labels?.[k] === v) &&
    Object.entries(annotations).every(([k, v]) => meta.annotations?.[k] === v) &&
    !!(meta.ownerReferences ?? []).find((r) => r.uid === want.metadata!.ownerReferences![0].uid && r.controller) &&
    isSubset(want.spec, cur.spec)
  );
}

const ATTEMPTS = 6;

/**
 * Creates the object, or replaces the spec, our labels, annotations and owner reference of the one
 * there (keeping everything else: other labels, finalizers, status). A no-op when it is up to date.
 * Returns the object as the host cluster stores it (with its status).
 */
export async function createOrReplace(host: HostCluster, want: Obj): Promise<{ object: Obj; changed: boolean }> {
  const owner = want.metadata!.ownerReferences![0] as OwnerReference;
  const header = { apiVersion: want.apiVersion, kind: want.kind, metadata: { name: want.metadata!.name!, namespace: want.metadata!.namespace! } };
  let lastConflict = '';
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    let cur: Obj | undefined;
    try {
      cur = (await host.objects.read(header)) as Obj;
    } catch (err) {
      if (statusCode(err) !== 404) throw hostError(`reading ${describe(want)}`, err);
    }
    if (!cur) {
      try {
        return { object: (await host.objects.create(want, undefined, undefined, FIELD_MANAGER)) as Obj, changed: true };
      } catch (err) {
        if (statusCode(err) !== 409) throw hostError(`creating ${describe(want)}`, err);
        lastConflict = apiMessage(err);
        continue; // created meanwhile: read it and replace
      }
    }
    checkOwner(cur, owner);
    if (cur.metadata?.deletionTimestamp) {
      throw new FluxProviderError('FluxObjectTerminating', `${describe(cur)} is being deleted (finalizers: ${(cur.metadata.finalizers ?? []).join(', ') || 'none'}); it is written again once it is gone`);
    }
    if (upToDate(cur, want)) return { object: cur, changed: false };
    const meta = cur.metadata!;
    const body: Obj = {
      apiVersion: want.apiVersion,
      kind: want.kind,
      metadata: {
        ...meta,
        labels: { ...meta.labels, ...want.metadata!.labels },
        annotations: { ...meta.annotations, ...want.metadata!.annotations },
        ownerReferences: [owner, ...(meta.ownerReferences ?? []).filter((r) => r.uid !== owner.uid && !r.controller)],
        managedFields: undefined,
      },
      spec: want.spec,
    };
    try {
      return { object: (await host.objects.replace(body, undefined, undefined, FIELD_MANAGER)) as Obj, changed: true };
    } catch (err) {
      const code = statusCode(err);
      if (code !== 409 && code !== 404) throw hostError(`replacing ${describe(want)}`, err);
      lastConflict = apiMessage(err); // changed or deleted since we read it: start over
    }
  }
  throw new FluxProviderError('HostClusterConflict', `${describe(want)}: still conflicting after ${ATTEMPTS} attempts (${lastConflict})`);
}

/** Deletes the object if this Action controls it; gone already is fine. */
export async function deleteOwned(host: HostCluster, kind: FluxKind, action: KubeObject): Promise<boolean> {
  const { name, namespace } = target(action);
  const what = `${kind.kind} ${namespace}/${name}`;
  let cur: Obj;
  try {
    cur = (await host.objects.read({ apiVersion: kind.apiVersion, kind: kind.kind, metadata: { name, namespace } })) as Obj;
  } catch (err) {
    if (statusCode(err) === 404) return false;
    throw hostError(`reading ${what}`, err);
  }
  const uid = action.metadata.uid;
  const controller = ((cur.metadata?.ownerReferences ?? []) as OwnerReference[]).find((r) => r.controller);
  // Without the Action's uid, fall back to the name: the label and the owner name must both say it is ours.
  const ours = uid ? controller?.uid === uid : controller?.kind === (action.kind || 'Action') && controller?.name === name;
  if (!ours) return false;
  try {
    const options: V1DeleteOptions = { preconditions: { uid: cur.metadata!.uid } };
    await host.objects.delete(cur, undefined, undefined, undefined, undefined, 'Background', options);
    return true;
  } catch (err) {
    const code = statusCode(err);
    if (code === 404 || code === 409) return false; // gone, or replaced by another object meanwhile
    throw hostError(`deleting ${what}`, err);
  }
}

/** `oci://<registry host>/<repository>` from `host:port/repository` and the registry as the cluster reaches it. */
export function inClusterURL(repositoryURL: string, registryURL: string): string {
  const stripped = repositoryURL.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  const slash = stripped.indexOf('/');
  if (slash <= 0 || slash === stripped.length - 1) throw new FluxProviderError('InvalidInput', `input repository URL "${repositoryURL}" is not host/repository`, false);
  return `oci://${registryHost(registryURL)}/${stripped.slice(slash + 1).replace(/\/+$/, '')}`;
}

/** `host[:port]` of a registry given as `host:port`, `oci://host:port`, `https://host:port/...`. */
export function registryHost(url: string): string {
  const h = url.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/.*$/, '');
  if (!h) throw new FluxProviderError('InvalidInput', `snapshot registry URL "${url}" names no host`, false);
  return h;
}

/** The OCIRepository spec every deployer writes: the artifact pinned by digest, fetched over mTLS. */
export function ociRepositorySpec(o: { url: string; tag: string; digest: string; interval: string; tlsSecretName: string; mediaType: string; operation: 'extract' | 'copy' }) {
  return {
    url: o.url,
    // The digest pins the exact artifact (Flux prefers it over the tag and verifies what it pulls); the tag
    // names the same artifact for people and for `flux get sources oci`.
    ref: { tag: o.tag, digest: o.digest },
    interval: o.interval,
    ...(o.tlsSecretName ? { certSecretRef: { name: o.tlsSecretName } } : {}),
    layerSelector: { mediaType: o.mediaType, operation: o.operation },
  };
}

/** `spec.template` of the provider and `spec.waitForReady`. */
export function templateOf(provider: KubeObject): { template: Record<string, unknown>; waitForReady: boolean } {
  const spec = isRecord(provider.spec) ? provider.spec : {};
  return { template: isRecord(spec.template) ? { ...spec.template } : {}, waitForReady: spec.waitForReady === true };
}

export const intervalOf = (template: Record<string, unknown>) => (typeof template.interval === 'string' && template.interval ? template.interval : DEFAULT_INTERVAL);

interface Cond {
  type?: string;
  status?: string;
  reason?: string;
  message?: string;
}

/**
 * Readiness as Flux reports it (kstatus): `Ready=True` for the current generation, and, when Flux
 * says which artifact it applied, that it is the one just written (`revision` tells).
 */
export function fluxReadiness(o: Obj, appliedRevision: (status: Record<string, unknown>) => string | undefined, digest: string): { ready: boolean; message: string } {
  const what = describe(o);
  const st = isRecord(o.status) ? o.status : {};
  const conds = Array.isArray(st.conditions) ? (st.conditions as Cond[]) : [];
  const ready = conds.find((c) => c?.type === 'Ready');
  const generation = o.metadata?.generation;
  if (typeof generation === 'number' && typeof st.observedGeneration === 'number' && st.observedGeneration < generation) {
    return { ready: false, message: `waiting for Flux to reconcile ${what} (observed generation ${st.observedGeneration}, current ${generation})` };
  }
  if (!ready) return { ready: false, message: `waiting for ${what} to report Ready` };
  if (ready.status !== 'True') {
    return { ready: false, message: `${what} is not Ready (${ready.status}${ready.reason ? `, ${ready.reason}` : ''})${ready.message ? `: ${ready.message}` : ''}` };
  }
  const applied = appliedRevision(st);
  if (applied && !applied.endsWith(digest)) return { ready: false, message: `${what} is Ready with ${applied}; waiting for it to apply ${digest}` };
  return { ready: true, message: `${what} is Ready${ready.message ? `: ${ready.message}` : ''}` };
}
