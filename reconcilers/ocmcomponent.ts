// OCMComponent: resolve the version, fetch the component version, verify it, and expose it (and
// every component it references) as ComponentDescriptor objects; the deploy package goes into a
// ConfigMap. Verified means all of it: every signature spec.verify names (on the component, or on
// the referenced components it names), every referenced component against the digest its parent
// records, every resource against its digest (stored with a component version, or, when signatures
// are to verify, elsewhere: an image or ociBlob in another registry, checked once per interval). A
// version that fails any of it produces nothing downstream.
import semver from 'semver';
import { parseDuration } from '../kinds/common.js';
import { componentDescriptorName } from '../kinds/componentdescriptor.js';
import { type OCMComponentSpec, verifyRules } from '../kinds/ocmcomponent.js';
import type { KubeObject } from '../kinds/types.js';
import { type ComponentDescriptor, DescriptorError } from '../ocm/descriptor.js';
import { accessKind, type ComponentVersion, OcmRepository, OcmRepositoryError } from '../ocm/repository.js';
import { verifyDescriptor } from '../ocm/signing.js';
import {
  API_VERSION,
  applyObject,
  eventOnNewMessage,
  failureConditions,
  getObject,
  listObjects,
  ownerRef,
  ReconcileError,
  type ReconcilerContext,
  ocmRepositoryFor,
  resourceOf,
  secretData,
} from './context.js';
import { internalOptions } from '../apiserver/rest.js';
import type { ControllerSpec, Result } from './runtime/controller.js';
import { DigestMismatch, isDigestMismatch, stalled, toReconcileError } from './runtime/errors.js';
import { condition, removeCondition, setCondition } from './runtime/status.js';

/** Resource types that carry a Flux deploy package (the design's "flux media type"). */
const DEPLOY_PACKAGE_TYPES = ['package.ocm.fluxcd.io', 'flux.package.ocm.software'];

/** Label of a component version that allows downgrades to versions matching its value (ocm-k8s-toolkit's). */
export const DOWNGRADABLE_LABEL = 'ocm.software/ocm-k8s-toolkit/downgradable';

/** Failures of one candidate version after which an older matching version is tried. */
const SKIPPABLE = ['VerificationFailed', 'DigestMismatch', 'ReferenceDigestMismatch', 'InvalidComponentVersion', 'DescriptorTooLarge'];

interface Skipped {
  version: string;
  reason: string;
  message: string;
}
interface Loaded {
  version: string;
  cv: ComponentVersion;
  graph: Awaited<ReturnType<OcmRepository['referenceGraph']>>;
  signatures: string[];
  problems: string[];
  checked: number;
  external: number;
}
interface PreviousStatus {
  resolvedVersion?: string;
  manifestDigest?: string;
  skippedVersions?: Skipped[];
  componentDescriptor?: { name: string };
}

/** Reasons of failures that mean the content is not verified (status.verified false). */
const NOT_VERIFIED = ['VerificationFailed', 'DigestMismatch', 'ReferenceDigestMismatch', 'ResourceUnreachable', 'ResourceFetchFailed'];

/** A descriptor over a limit (size, depth, elements; ocm/descriptor.ts) is Ready=False DescriptorTooLarge, not retried until the interval. */
function tooLarge(err: unknown, what: string) {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (e instanceof DescriptorError && e.reason) throw new ReconcileError(e.reason, `${what}: ${e.message}`, 'Stalled');
  }
}

/** The ComponentDescriptor object's spec: the descriptor with `provider` as `{name}`. */
export function descriptorSpec(cd: ComponentDescriptor): Record<string, unknown> {
  const c = cd.component;
  return {
    schemaVersion: cd.meta?.schemaVersion ?? 'v2',
    name: c.name,
    version: c.version,
    provider: typeof c.provider === 'string' ? { name: c.provider } : c.provider,
    ...(c.creationTime ? { creationTime: c.creationTime } : {}),
    ...(c.labels?.length ? { labels: c.labels } : {}),
    ...(c.repositoryContexts?.length ? { repositoryContexts: c.repositoryContexts } : {}),
    resources: c.resources ?? [],
    sources: c.sources ?? [],
    componentReferences: c.componentReferences ?? [],
    ...(cd.signatures?.length ? { signatures: cd.signatures } : {}),
  };
}

const hostOf = (ref: unknown) => String(ref ?? '').replace(/^(?:oci|https?):\/\//, '').split('/')[0].toLowerCase();

/**
 * Resource digests checked against the bytes, per component version manifest (content addressed:
 * the same manifest digest is the same descriptor and the same local blobs).
 */
const checkedResources = new Map<string, Promise<{ checked: number; missing: string[] }>>();

/**
 * Checks every local blob of the component version against its digest, by fetching it: a
 * DIGEST_MISMATCH error when one differs (content addressed, so once per manifest). Returns how
 * many were checked and which resources have no digest to check against.
 */
function checkResources(repo: OcmRepository, cv: ComponentVersion, tenant: string): Promise<{ checked: number; missing: string[] }> {
  // per namespace and credentials too: a tenant never relies on another's fetch
  const key = `${tenant}|${repo.baseUrl}|${cv.descriptor.component.name}|${cv.manifestDigest}`;
  let hit = checkedResources.get(key);
  if (!hit) {
    hit = (async () => {
      const c = cv.descriptor.component;
      let checked = 0;
      const missing: string[] = [];
      for (const r of c.resources ?? []) {
        const kind = accessKind(r.access?.type);
        if (kind === 'none') continue;
        if (!r.digest) {
          missing.push(`resource "${r.name}" of ${c.name}:${c.version} has no digest`);
          continue;
        }
        if (kind !== 'localblob') continue;
        await repo.checkLocalBlobDigest(cv, r); // hashed as it streams, never held (issue 15)
        checked++;
      }
      return { checked, missing };
    })();
    if (checkedResources.size >= 512) checkedResources.clear();
    checkedResources.set(key, hit);
    hit.catch(() => checkedResources.delete(key));
  }
  return hit;
}

/**
 * OCI accesses checked (per tenant, component version manifest and scope), and when: a tag can
 * move under the same descriptor, so they are checked again once per interval, not per reconcile.
 */
const checkedAccesses = new Map<string, { at: number; value: Promise<{ here: number; external: number }> }>();

/**
 * Checks the resources with an OCI access (ociArtifact/ociRegistry, ociBlob) against their digests
 * (OcmRepository.checkAccessDigest): those in the component's own registry always, those elsewhere
 * (an image in its own registry) with `external` (when signatures are to verify: `verified`
 * covers them). A ReconcileError naming the resource: DigestMismatch, ResourceUnreachable
 * (transient: the registry did not answer) or ResourceFetchFailed.
 */
function checkAccesses(repo: OcmRepository, cv: ComponentVersion, tenant: string, external: boolean, ttlMs: number): Promise<{ here: number; external: number }> {
  const key = `${tenant}|${repo.baseUrl}|${cv.descriptor.component.name}|${cv.manifestDigest}|${external}`;
  const hit = checkedAccesses.get(key);
  if (hit && Date.now() - hit.at < ttlMs) return hit.value;
  const value = (async () => {
    const c = cv.descriptor.component;
    const n = { here: 0, external: 0 };
    for (const r of c.resources ?? []) {
      const kind = accessKind(r.access?.type);
      if ((kind !== 'ociartifact' && kind !== 'ociblob') || !r.digest) continue;
      const ref = String((kind === 'ociblob' ? r.access?.ref : r.access?.imageReference) ?? '');
      const here = hostOf(ref) === repo.host;
      if (!here && !external) continue;
      const what = `resource "${r.name}" of ${c.name}:${c.version} (${kind === 'ociblob' ? `ociBlob ${ref}@${r.access?.digest}` : ref})`;
      try {
        await repo.checkAccessDigest(cv, r);
      } catch (err) {
        if (isDigestMismatch(err)) throw new DigestMismatch((err as Error).message, 'DigestMismatch', { cause: err });
        if (err instanceof OcmRepositoryError) throw stalled('VerificationFailed', `${what}: ${err.message}`, err);
        const e = toReconcileError(err, 'ResourceFetchFailed', `${what} cannot be read`);
        throw e.retry ? new ReconcileError('ResourceUnreachable', e.message, 'Transient', { cause: err }) : e;
      }
      n[here ? 'here' : 'external']++;
    }
    return n;
  })();
  if (checkedAccesses.size >= 512) for (const [k, v] of checkedAccesses) if (Date.now() - v.at >= ttlMs) checkedAccesses.delete(k);
  checkedAccesses.set(key, { at: Date.now(), value });
  value.catch(() => checkedAccesses.delete(key));
  return value;
}

export function ocmComponentController(ctx: ReconcilerContext): ControllerSpec {
  const R = resourceOf(ctx, 'OCMComponent');
  const CD = resourceOf(ctx, 'ComponentDescriptor');
  const CM = ctx.registry.lookup('', 'v1', 'configmaps');

  /**
   * Verifies every signature `spec.verify` asks for (list form: the named ones; object form without
   * a signature: one per data entry of the Secret, the entry's key naming the signature), on the
   * component itself or, with `component`, on every referenced version of that component. Returns
   * what verified; a Stalled VerificationFailed for the first that does not.
   */
  async function verifySignatures(ns: string, spec: OCMComponentSpec, root: ComponentDescriptor, refs: ComponentDescriptor[]): Promise<string[]> {
    const done: string[] = [];
    for (const rule of verifyRules(spec.verify)) {
      const data = await secretData(ctx, ns, rule.secretRef.name);
      const wanted = rule.signature !== undefined ? [{ signature: rule.signature, key: rule.key ?? rule.signature }] : Object.keys(data).sort().map((k) => ({ signature: k, key: k }));
      if (!wanted.length) throw stalled('VerificationFailed', `Secret ${ns}/${rule.secretRef.name} holds no public key (spec.verify names it without a signature: each of its entries names a signature that must verify)`);
      const targets = rule.component === undefined || rule.component === root.component.name ? [root] : refs.filter((d) => d.component.name === rule.component);
      if (!targets.length) throw stalled('VerificationFailed', `spec.verify names signatures of component ${rule.component}, which ${root.component.name}:${root.component.version} does not reference`);
      for (const w of wanted) {
        const pem = data[w.key];
        if (!pem) throw stalled('VerificationFailed', `Secret ${ns}/${rule.secretRef.name} has no key "${w.key}" with the public key for signature ${w.signature}`);
        for (const d of targets) {
          const r = verifyDescriptor(d, { name: w.signature, publicKeyPem: pem.toString('utf8') });
          if (!r.ok) throw stalled('VerificationFailed', `${d.component.name}:${d.component.version}: signature ${w.signature} does not verify: ${r.reason}`);
          done.push(d === root ? w.signature : `${w.signature} (${d.component.name}:${d.component.version})`);
        }
      }
    }
    return done;
  }

  /** Fetches and verifies one version: a ReconcileError naming why it is not usable. */
  async function load(repo: OcmRepository, ns: string, spec: OCMComponentSpec, version: string, seen: (manifestDigest: string) => void): Promise<Loaded> {
    let cv;
    try {
      cv = await repo.getComponentVersion(spec.name, version);
    } catch (err) {
      tooLarge(err, `${spec.name}:${version}`);
      throw new ReconcileError(err instanceof OcmRepositoryError && err.code !== 'NOT_FOUND' ? 'InvalidComponentVersion' : 'FetchFailed', `fetching ${spec.name}:${version} from ${spec.repository.url}: ${(err as Error).message}`, !(err instanceof OcmRepositoryError));
    }
    seen(cv.manifestDigest);
    // The reference graph, every edge against the digest its parent records.
    let graph;
    try {
      graph = await repo.referenceGraph(cv);
    } catch (err) {
      tooLarge(err, `a component referenced by ${spec.name}:${version}`);
      if (isDigestMismatch(err)) throw new DigestMismatch(`${spec.name}:${version}: ${(err as Error).message}`, 'ReferenceDigestMismatch', { cause: err });
      throw toReconcileError(err, 'ReferenceFailed', `resolving the component references of ${spec.name}:${version}`);
    }
    const signatures = await verifySignatures(ns, spec, cv.descriptor, graph.components.map((c) => c.descriptor));
    // Resource digests against the bytes, of the component and of every component it references.
    const problems = graph.edges.filter((e) => !e.digest).map((e) => `${e.parent.component.name}:${e.parent.component.version} references ${e.ref.componentName}:${e.ref.version} (${e.ref.name}) without a digest`);
    let checked = 0;
    let external = 0;
    const tenant = `${ns}|${spec.repository.secretRef?.name ?? ''}`;
    const interval = parseDuration(spec.interval ?? '10m') ?? 600_000;
    for (const c of [cv, ...graph.components]) {
      try {
        const r = await checkResources(repo, c, tenant);
        checked += r.checked;
        problems.push(...r.missing);
      } catch (err) {
        if (isDigestMismatch(err)) throw new DigestMismatch(`${spec.name}:${version}: ${(err as Error).message}`, 'DigestMismatch', { cause: err });
        throw toReconcileError(err, 'FetchFailed', `checking the resources of ${c.descriptor.component.name}:${c.descriptor.component.version}`);
      }
      // Resources elsewhere (an image in its own registry) too when signatures are to verify:
      // `verified` covers every resource's bytes.
      try {
        const r = await checkAccesses(repo, c, tenant, signatures.length > 0, interval);
        checked += r.here;
        external += r.external;
      } catch (err) {
        const e = toReconcileError(err, 'ResourceFetchFailed');
        throw new ReconcileError(e.reason, `${spec.name}:${version}: ${e.message}`, e.policy, { cause: err });
      }
    }
    if (signatures.length && problems.length) {
      throw stalled('VerificationFailed', `${spec.name}:${version} cannot be verified: ${problems.join('; ')}`);
    }
    return { version, cv, graph, signatures, problems, checked, external };
  }

  const event = (obj: KubeObject, type: 'Normal' | 'Warning', reason: string, message: string) =>
    ctx.events?.record(obj, type, reason, message).catch((err: Error) => ctx.log.warn({ err: err.message }, 'recording an event failed'));

  /**
   * Names each newly skipped version in an Event and in status.skippedVersions; a content change
   * under the same version gets a Warning Event and the ContentChanged condition.
   */
  async function reportSkipped(obj: KubeObject, skipped: Skipped[], change: { from: string; to: string } | undefined) {
    const before = ((obj.status ?? {}) as PreviousStatus).skippedVersions ?? [];
    for (const x of skipped) {
      if (!before.some((b) => b.version === x.version && b.reason === x.reason)) await event(obj, 'Warning', 'VersionSkipped', `${x.version} skipped: ${x.message}`);
    }
    const name = (obj.spec as OCMComponentSpec).name;
    const version = (obj.status as PreviousStatus | undefined)?.resolvedVersion;
    const contentMessage = change && `the content of ${name}:${version} changed under the same version: manifest ${change.from} is now ${change.to}`;
    const old = condition(obj, 'ContentChanged');
    if (contentMessage && old?.message?.startsWith(contentMessage) !== true) await event(obj, 'Warning', 'ContentChanged', `${contentMessage}; it flows on only once the new content verifies`);
    await ctx.status.update(R, { namespace: obj.metadata.namespace, name: obj.metadata.name! }, (st) => {
      if (skipped.length) st.skippedVersions = skipped.map((x) => ({ version: x.version, reason: x.reason, message: x.message.slice(0, 1024) }));
      else delete st.skippedVersions;
      if (contentMessage && old?.message?.startsWith(contentMessage) !== true) {
        setCondition(st, { type: 'ContentChanged', status: 'True', reason: 'ManifestDigestChanged', message: contentMessage }, obj.metadata.generation);
      }
    }, { observe: false }); // the outcome's write sets observedGeneration
  }

  /**
   * A move to an older version than the one in use follows spec.downgradePolicy, as the OCM
   * controller (ocm-k8s-toolkit) has it: Deny (default) refuses; Allow when the version in use
   * carries the label `ocm.software/ocm-k8s-toolkit/downgradable` with a semver constraint the
   * new version satisfies; Enforce always. An allowed downgrade is a Warning Event.
   */
  async function checkDowngrade(obj: KubeObject, spec: OCMComponentSpec, prev: PreviousStatus, version: string, skipped: Skipped[]) {
    const cur = prev.resolvedVersion;
    if (!cur || !semver.valid(cur, { loose: true }) || !semver.valid(version, { loose: true }) || semver.compare(version, cur, { loose: true }) >= 0) return;
    const policy = spec.downgradePolicy ?? 'Deny';
    const why = skipped.length ? `newer matching versions do not verify (${skipped.map((x) => x.version).join(', ')})` : `${cur} is no longer among the versions "${spec.version}" admits`;
    const what = `${spec.name}: ${cur} -> ${version} is a downgrade (${why})`;
    let allowed = policy === 'Enforce';
    let detail = '';
    if (policy === 'Allow') {
      const cdName = prev.componentDescriptor?.name;
      const cd = cdName ? await getObject(ctx, CD, obj.metadata.namespace, cdName) : undefined;
      const label = ((cd?.spec as { labels?: Array<{ name: string; value: unknown }> } | undefined)?.labels ?? []).find((l) => l.name === DOWNGRADABLE_LABEL);
      const range = typeof label?.value === 'string' ? semver.validRange(label.value, { loose: true }) : null;
      allowed = range !== null && semver.satisfies(version, range, { loose: true });
      detail = label ? `${cur} allows downgrades to "${String(label.value)}"` : `${cur} has no label ${DOWNGRADABLE_LABEL}`;
    }
    if (!allowed) {
      throw stalled('DowngradeDenied', `${what}, which spec.downgradePolicy ${policy}${policy === 'Deny' ? ' (the default)' : ''} refuses${detail ? `: ${detail}` : ''}; staying on ${cur}`);
    }
    await event(obj, 'Warning', 'Downgraded', `${what}; spec.downgradePolicy ${policy} allows it${detail ? ` (${detail})` : ''}`);
  }

  async function reconcile(obj: KubeObject): Promise<Result> {
    const ns = obj.metadata.namespace!;
    const spec = obj.spec as OCMComponentSpec;
    const interval = parseDuration(spec.interval ?? '10m') ?? 600_000;
    const { repo, close } = await ocmRepositoryFor(ctx, ns, spec.repository.url, spec.repository.secretRef);
    try {
      const prev = (obj.status ?? {}) as PreviousStatus;
      let candidates: string[];
      try {
        candidates = await repo.candidateVersions(spec.name, spec.version);
      } catch (err) {
        // No such component or no matching version is VersionNotFound; a repository that cannot be
        // read (refused, 5xx, 429, 401, a cut connection) is FetchFailed, whatever the version.
        throw new ReconcileError(err instanceof OcmRepositoryError ? 'VersionNotFound' : 'FetchFailed', `resolving ${spec.name} ${spec.version} in ${spec.repository.url}: ${(err as Error).message}`);
      }
      // The newest candidate that verifies; the ones that do not are skipped (and named).
      const skipped: Skipped[] = [];
      let loaded: Loaded | undefined;
      let contentChange: { from: string; to: string } | undefined;
      for (const v of candidates) {
        try {
          loaded = await load(repo, ns, spec, v, (digest) => {
            if (v === prev.resolvedVersion && prev.manifestDigest && prev.manifestDigest !== digest) contentChange = { from: prev.manifestDigest, to: digest };
          });
          break;
        } catch (err) {
          const e = toReconcileError(err, 'ReconcileFailed');
          if (!SKIPPABLE.includes(e.reason) || candidates.length === 1) {
            // an exact version (or the only match) is not skipped: it fails
            await reportSkipped(obj, [], contentChange);
            throw e;
          }
          skipped.push({ version: v, reason: e.reason, message: e.message });
        }
      }
      await reportSkipped(obj, skipped, contentChange);
      if (!loaded) {
        const [first, ...rest] = skipped;
        throw new ReconcileError(first.reason, `${first.message}${rest.length ? `; older matching versions do not verify either: ${rest.map((x) => `${x.version} (${x.reason})`).join(', ')}` : ''}`, 'Stalled');
      }
      const { version, cv, graph, signatures, problems, checked, external } = loaded;
      await checkDowngrade(obj, spec, prev, version, skipped);
      const refs = graph.components;

      const owner = ownerRef(obj);
      const write = (cd: ComponentDescriptor) =>
        applyObject(ctx, CD, {
          apiVersion: API_VERSION,
          kind: 'ComponentDescriptor',
          metadata: {
            name: componentDescriptorName(obj.metadata.name!, cd.component.name, cd.component.version),
            namespace: ns,
            ownerReferences: [owner],
            labels: { 'delivery.ocm.software/ocmcomponent': obj.metadata.name! },
          },
          spec: descriptorSpec(cd),
        });
      const main = await write(cv.descriptor);
      const written = new Set([main.metadata.name!]);
      for (const ref of refs) written.add((await write(ref.descriptor)).metadata.name!);
      // Each descriptor object says whether it is part of what verified (the whole graph is, or none).
      for (const name of written) {
        await ctx.status.update(CD, { namespace: ns, name }, (st, o) => {
          st.verified = signatures.length > 0;
          setCondition(st, signatures.length > 0
            ? { type: 'Verified', status: 'True', reason: 'Succeeded', message: `verified as part of ${spec.name}:${version} for OCMComponent ${obj.metadata.name}` }
            : { type: 'Verified', status: 'False', reason: 'NotRequested', message: `OCMComponent ${obj.metadata.name} asks for no verification` }, o.metadata.generation);
        });
      }
      // Descriptors this OCMComponent wrote before (older versions, the older naming) and no longer shows.
      for (const old of await listObjects(ctx, CD, ns)) {
        const mine = old.metadata.ownerReferences?.some((o) => o.controller && o.uid === obj.metadata.uid);
        if (mine && !written.has(old.metadata.name!)) await ctx.rest.delete(CD, ns, old.metadata.name!, {}, internalOptions()).catch(() => undefined);
      }

      let deployPackage: { name: string; namespace: string; kind: string; apiVersion: string } | undefined;
      const pkg = cv.descriptor.component.resources.find((r) => DEPLOY_PACKAGE_TYPES.includes(r.type));
      if (pkg && CM) {
        let data: Buffer;
        try {
          ({ data } = await repo.getResourceContent(cv, pkg, { maxBytes: 3 << 20 })); // a ConfigMap holds at most 3 MiB
        } catch (err) {
          throw toReconcileError(err, 'FetchFailed', `reading the deploy package ${pkg.name} of ${spec.name}:${version}`);
        }
        const name = `${main.metadata.name!.slice(0, 230).replace(/[-.]+$/, '')}-deploy-package`;
        await applyObject(ctx, CM, {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name, namespace: ns, ownerReferences: [owner], labels: { 'delivery.ocm.software/ocmcomponent': obj.metadata.name! } },
          data: { [pkg.name.replace(/[^-._a-zA-Z0-9]/g, '-')]: data.toString('utf8') },
        });
        deployPackage = { apiVersion: 'v1', kind: 'ConfigMap', name, namespace: ns };
      }

      const verified = signatures.length > 0;
      const plural = (n: number, w: string) => `${n} ${w}${n === 1 ? '' : 's'}`;
      const integrity = `digests of ${plural(checked, 'stored resource')}${external ? `, ${plural(external, 'external resource')}` : ''} and ${plural(graph.edges.length, 'reference')} matched`;
      await ctx.status.update(R, { namespace: ns, name: obj.metadata.name! }, (st) => {
        st.resolvedVersion = version;
        st.manifestDigest = cv.manifestDigest;
        st.componentDescriptor = { name: main.metadata.name, namespace: ns };
        if (deployPackage) st.deployPackage = deployPackage;
        else delete st.deployPackage;
        st.verified = verified;
        setCondition(
          st,
          verified
            ? { type: 'Verified', status: 'True', reason: 'Succeeded', message: `signature${signatures.length > 1 ? 's' : ''} ${signatures.join(', ')} verified; ${integrity}` }
            : { type: 'Verified', status: 'False', reason: 'NotRequested', message: `spec.verify names no signature, so ${spec.name}:${version} is not verified${problems.length ? ` (and could not be: ${problems.join('; ')})` : ''}; ${integrity}` },
          obj.metadata.generation,
        );
        setCondition(
          st,
          {
            type: 'Ready',
            status: 'True',
            reason: 'Succeeded',
            message: `${spec.name}:${version} is available${verified ? `, signature${signatures.length > 1 ? 's' : ''} ${signatures.join(', ')} verified` : ', not verified'}`,
          },
          obj.metadata.generation,
        );
        if (prev.resolvedVersion !== version) removeCondition(st, 'ContentChanged');
        else if (contentChange) {
          setCondition(st, { type: 'ContentChanged', status: 'True', reason: 'ContentVerified', message: `the content of ${spec.name}:${version} changed under the same version: manifest ${contentChange.from} is now ${contentChange.to}; the new content verified and flows on` }, obj.metadata.generation);
        }
      });
      if (prev.resolvedVersion && prev.resolvedVersion !== version) {
        const up = semver.valid(prev.resolvedVersion, { loose: true }) && semver.valid(version, { loose: true }) ? semver.compare(version, prev.resolvedVersion, { loose: true }) : 0;
        await event(obj, 'Normal', 'VersionChanged', `${spec.name}: ${prev.resolvedVersion} -> ${version}${up > 0 ? ' (upgrade)' : up < 0 ? ' (downgrade)' : ''}`);
      } else if (contentChange) {
        await event(obj, 'Normal', 'ContentVerified', `the new content of ${spec.name}:${version} (manifest ${contentChange.to}) verified; Sources and Actions move to it`);
      }
      return { requeueAfterMs: interval };
    } finally {
      close();
    }
  }

  return {
    name: 'ocmcomponent',
    resource: R,
    async reconcile(key) {
      const obj = await ctx.status.get(R, key);
      if (!obj || obj.metadata.deletionTimestamp || (obj.spec as OCMComponentSpec).suspend) return;
      try {
        await ctx.status.progressing(R, key); // Reconciling=True / Ready=Unknown before the work, once per generation
        return await reconcile(obj);
      } catch (err) {
        const e = toReconcileError(err, 'ReconcileFailed');
        const notVerified = NOT_VERIFIED.includes(e.reason);
        // kubectl describe names what failed: a new Ready reason is an Event by itself (StatusWriter);
        // the same reason with another message (another resource, another digest) gets one (eventOnNewMessage).
        const was = condition(obj, 'Ready');
        const written = await ctx.status.update(R, key, (st) => {
          if (notVerified) {
            st.verified = false;
            setCondition(st, { type: 'Verified', status: 'False', reason: e.reason, message: e.message }, obj.metadata.generation);
          }
          setCondition(st, { type: 'Ready', status: 'False', reason: e.reason, message: e.message }, obj.metadata.generation);
          failureConditions(st, e, obj.metadata.generation);
        });
        if (written) await eventOnNewMessage(ctx, written, was, e);
        if (e.retry) throw e;
        return { requeueAfterMs: parseDuration((obj.spec as OCMComponentSpec).interval ?? '10m') ?? 600_000 };
      }
    },
  };
}
