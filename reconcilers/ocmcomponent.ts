// OCMComponent: resolve the version, fetch the component version, verify its signatures, and
// expose it (and every component it references) as ComponentDescriptor objects; the deploy
// package goes into a ConfigMap. A version that does not verify produces nothing downstream.
import { parseDuration } from '../kinds/common.js';
import { componentDescriptorName } from '../kinds/componentdescriptor.js';
import { type OCMComponentSpec, verifyRules } from '../kinds/ocmcomponent.js';
import type { KubeObject } from '../kinds/types.js';
import { type ComponentDescriptor, DescriptorError } from '../ocm/descriptor.js';
import { OcmRepository, OcmRepositoryError } from '../ocm/repository.js';
import { verifyDescriptor } from '../ocm/signing.js';
import {
  API_VERSION,
  applyObject,
  listObjects,
  ownerRef,
  ReconcileError,
  type ReconcilerContext,
  repositoryClient,
  resourceOf,
  secretData,
} from './context.js';
import { internalOptions } from '../apiserver/rest.js';
import type { ControllerSpec, Result } from './runtime/controller.js';
import { setCondition } from './runtime/status.js';

/** Resource types that carry a Flux deploy package (the design's "flux media type"). */
const DEPLOY_PACKAGE_TYPES = ['package.ocm.fluxcd.io', 'flux.package.ocm.software'];

/** A descriptor over a limit (size, depth, elements; ocm/descriptor.ts) is Ready=False DescriptorTooLarge, not retried until the interval. */
function tooLarge(err: unknown, what: string) {
  for (let e = err; e instanceof Error; e = e.cause) {
    if (e instanceof DescriptorError && e.reason) throw new ReconcileError(e.reason, `${what}: ${e.message}`, false);
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

export function ocmComponentController(ctx: ReconcilerContext): ControllerSpec {
  const R = resourceOf(ctx, 'OCMComponent');
  const CD = resourceOf(ctx, 'ComponentDescriptor');
  const CM = ctx.registry.lookup('', 'v1', 'configmaps');

  /**
   * Verifies every signature `spec.verify` asks for (list form: the named ones; object form without
   * a signature: one per data entry of the Secret, the entry's key naming the signature). Returns
   * the names verified; a ReconcileError (VerificationFailed, no retry) for the first that does not.
   */
  async function verifySignatures(ns: string, spec: OCMComponentSpec, descriptor: ComponentDescriptor, what: string): Promise<string[]> {
    const done: string[] = [];
    for (const rule of verifyRules(spec.verify)) {
      const data = await secretData(ctx, ns, rule.secretRef.name);
      const wanted = rule.signature !== undefined ? [{ signature: rule.signature, key: rule.key ?? rule.signature }] : Object.keys(data).sort().map((k) => ({ signature: k, key: k }));
      if (!wanted.length) throw new ReconcileError('VerificationFailed', `Secret ${ns}/${rule.secretRef.name} holds no public key (spec.verify names it without a signature: each of its entries names a signature that must verify)`, false);
      for (const w of wanted) {
        const pem = data[w.key];
        if (!pem) throw new ReconcileError('VerificationFailed', `Secret ${ns}/${rule.secretRef.name} has no key "${w.key}" with the public key for signature ${w.signature}`, false);
        const r = verifyDescriptor(descriptor, { name: w.signature, publicKeyPem: pem.toString('utf8') });
        if (!r.ok) throw new ReconcileError('VerificationFailed', `${what}: signature ${w.signature} does not verify: ${r.reason}`, false);
        done.push(w.signature);
      }
    }
    return done;
  }

  async function reconcile(obj: KubeObject): Promise<Result> {
    const ns = obj.metadata.namespace!;
    const spec = obj.spec as OCMComponentSpec;
    const interval = parseDuration(spec.interval ?? '10m') ?? 600_000;
    const client = await repositoryClient(ctx, ns, spec.repository.url, spec.repository.secretRef);
    try {
      const repo = new OcmRepository(client, spec.repository.url);
      let version: string;
      try {
        version = await repo.resolveVersion(spec.name, spec.version);
      } catch (err) {
        // No such component or no matching version is VersionNotFound; a repository that cannot be
        // read (refused, 5xx, 429, 401, a cut connection) is FetchFailed, whatever the version.
        throw new ReconcileError(err instanceof OcmRepositoryError ? 'VersionNotFound' : 'FetchFailed', `resolving ${spec.name} ${spec.version} in ${spec.repository.url}: ${(err as Error).message}`);
      }
      let cv;
      try {
        cv = await repo.getComponentVersion(spec.name, version);
      } catch (err) {
        tooLarge(err, `${spec.name}:${version}`);
        throw new ReconcileError('FetchFailed', `fetching ${spec.name}:${version} from ${spec.repository.url}: ${(err as Error).message}`);
      }
      const signatures = await verifySignatures(ns, spec, cv.descriptor, `${spec.name}:${version}`);

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
      const refs = await repo.resolveReferences(cv).catch((err: Error) => {
        tooLarge(err, `a component referenced by ${spec.name}:${version}`);
        throw new ReconcileError('ReferenceFailed', `resolving the component references of ${spec.name}:${version}: ${err.message}`);
      });
      const written = new Set([main.metadata.name!]);
      for (const ref of refs) written.add((await write(ref.descriptor)).metadata.name!);
      // Descriptors this OCMComponent wrote before (older versions, the older naming) and no longer shows.
      for (const old of await listObjects(ctx, CD, ns)) {
        const mine = old.metadata.ownerReferences?.some((o) => o.controller && o.uid === obj.metadata.uid);
        if (mine && !written.has(old.metadata.name!)) await ctx.rest.delete(CD, ns, old.metadata.name!, {}, internalOptions()).catch(() => undefined);
      }

      let deployPackage: { name: string; namespace: string; kind: string; apiVersion: string } | undefined;
      const pkg = cv.descriptor.component.resources.find((r) => DEPLOY_PACKAGE_TYPES.includes(r.type));
      if (pkg && CM) {
        const { data } = await repo.getResourceContent(cv, pkg);
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
      await ctx.status.update(R, { namespace: ns, name: obj.metadata.name! }, (st) => {
        st.resolvedVersion = version;
        st.componentDescriptor = { name: main.metadata.name, namespace: ns };
        if (deployPackage) st.deployPackage = deployPackage;
        else delete st.deployPackage;
        st.verified = verified;
        setCondition(
          st,
          {
            type: 'Ready',
            status: 'True',
            reason: 'Succeeded',
            message: `${spec.name}:${version} is available${verified ? `, signature${signatures.length > 1 ? 's' : ''} ${signatures.join(', ')} verified` : ''}`,
          },
          obj.metadata.generation,
        );
      });
      return { requeueAfterMs: interval };
    } finally {
      if (client !== ctx.snapshots.client) client.close?.();
    }
  }

  return {
    name: 'ocmcomponent',
    resource: R,
    async reconcile(key) {
      const obj = await ctx.status.get(R, key);
      if (!obj || obj.metadata.deletionTimestamp || (obj.spec as OCMComponentSpec).suspend) return;
      try {
        return await reconcile(obj);
      } catch (err) {
        const e = err instanceof ReconcileError ? err : new ReconcileError('ReconcileFailed', (err as Error).message);
        await ctx.status.update(R, key, (st) => {
          if (e.reason === 'VerificationFailed') st.verified = false;
          setCondition(st, { type: 'Ready', status: 'False', reason: e.reason, message: e.message }, obj.metadata.generation);
        });
        if (e.retry) throw e;
        return { requeueAfterMs: parseDuration((obj.spec as OCMComponentSpec).interval ?? '10m') ?? 600_000 };
      }
    },
  };
}
