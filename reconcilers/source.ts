// Source: runs its provider (built-in OCMResource) on the verified component version of its
// OCMComponent, stores the result as a snapshot, and sets the contract fields (ready, snapshot,
// digest) on the Source. The provider's status is its own reconciler's (providerStatusController):
// a provider may serve several Sources, which never write to it. A new component version, or new
// content under the same version, flows through by itself: the Source is re-queued whenever its
// OCMComponent or provider changes.
import { parseDuration } from '../kinds/common.js';
import type { SourceSpec } from '../kinds/source.js';
import type { KubeObject } from '../kinds/types.js';
import { ocmResourceProvider, ReferenceNotFound, ResourceNotFound } from '../providers/ocmresource.js';
import type { SourceProvider } from '../providers/types.js';
import { announceVersionChange, componentState, readyComponent, withComponentVersion } from './components.js';
import { runExternalProvider } from './external.js';
import { API_VERSION, getObject, listObjects, type ReconcilerContext, reportRunFailure, resourceOf } from './context.js';
import { stalled, toReconcileError, waiting } from './runtime/errors.js';
import type { ControllerSpec, ObjectKey, Result } from './runtime/controller.js';
import { isReady, setCondition, WorkStarts } from './runtime/status.js';
import { storeSnapshot } from './snapshots.js';
import { refuseCrossNamespaceRefs } from './tenancy.js';

const builtIn: Record<string, SourceProvider> = { OCMResource: ocmResourceProvider };

export function sourceController(ctx: ReconcilerContext): ControllerSpec {
  const SRC = resourceOf(ctx, 'Source');
  const COMP = resourceOf(ctx, 'OCMComponent');
  const SNAP = resourceOf(ctx, 'Snapshot');
  const providerResources = Object.keys(builtIn).map((k) => resourceOf(ctx, k));

  const sourcesWhere = async (pred: (s: SourceSpec, src: KubeObject) => boolean, namespace?: string): Promise<ObjectKey[]> =>
    (await listObjects(ctx, SRC, namespace)).filter((s) => pred(s.spec as SourceSpec, s)).map((s) => ({ namespace: s.metadata.namespace, name: s.metadata.name! }));
  /** What the last successful run was made from, so status echoes don't refetch the resource. */
  const done = new Map<string, string>();
  const starts = new WorkStarts();

  /** `begin` is called with the inputs once the preconditions hold, before the work (the fetch). */
  async function reconcile(src: KubeObject, begin: (inputs: string) => Promise<void>): Promise<Result | void> {
    const ns = src.metadata.namespace!;
    const spec = src.spec as SourceSpec;
    refuseCrossNamespaceRefs(ctx, src);
    const pref = spec.providerRef;
    const provider = pref.apiVersion === API_VERSION ? builtIn[pref.kind] : undefined;
    if (!provider && pref.apiVersion === API_VERSION) throw stalled('UnsupportedProvider', `${pref.kind} is not a Source provider`);
    if (!provider) return external(src);
    const PR = resourceOf(ctx, pref.kind);
    const providerObj = await getObject(ctx, PR, ns, pref.name);
    if (!providerObj) throw stalled('ProviderNotFound', `${pref.kind} ${ns}/${pref.name} not found`);

    const rc = await readyComponent(ctx, spec.componentRef, ns);
    const comp = rc.component;
    const inputs = [src.metadata.generation, providerObj.metadata.uid, providerObj.metadata.generation, comp.metadata.uid, rc.version, componentState(comp)].join('|');
    const every = spec.interval ? parseDuration(spec.interval) : undefined;
    if (done.get(src.metadata.uid!) === inputs && isReady(src) && !every) return;
    await begin(inputs);
    return withComponentVersion(ctx, rc, async (repo, cv) => {
      let out;
      try {
        out = await provider.produce({ source: src, provider: providerObj, component: comp, descriptor: cv.descriptor, repository: repo, componentVersion: cv });
      } catch (err) {
        if (err instanceof ResourceNotFound) throw stalled('ResourceNotFound', err.message, err);
        if (err instanceof ReferenceNotFound) throw stalled('ReferenceNotFound', err.message, err);
        // Typed, not by message: a digest mismatch (OCM repository or OCI client) is DigestMismatch.
        throw toReconcileError(err, 'ProviderFailed', `${pref.kind}/${pref.name}`);
      }
      const status = (src.status ?? {}) as { snapshot?: string };
      const current = status.snapshot ? await getObject(ctx, SNAP, ns, status.snapshot) : undefined;
      const { snapshot } = await storeSnapshot(ctx, {
        producer: src,
        provider: { apiVersion: pref.apiVersion, kind: pref.kind, name: pref.name, generation: providerObj.metadata.generation },
        component: comp,
        componentVersion: rc.version,
        identity: out.identity,
        files: out.files,
        chain: [{ kind: 'OCMComponent', name: comp.metadata.name!, componentVersion: `${rc.name}:${rc.version}` }],
        current,
      });
      const snap = snapshot.status as { digest: string; tag: string };
      const what = `${out.identity.resourceName ?? 'the resource'} from ${rc.name}:${rc.version}`;
      await announceVersionChange(ctx, src, src.status as { componentVersion?: string; componentDigest?: string } | undefined, rc);
      await ctx.status.update(SRC, { namespace: ns, name: src.metadata.name! }, (st, o) => {
        st.ready = true;
        st.snapshot = snapshot.metadata.name;
        st.digest = snap.digest;
        setCondition(st, { type: 'Ready', status: 'True', reason: 'Succeeded', message: `snapshot ${snapshot.metadata.name} (${snap.digest.slice(0, 19)}) of ${what}` }, o.metadata.generation);
        st.componentVersion = rc.version;
        if (rc.manifestDigest) st.componentDigest = rc.manifestDigest;
      });
      done.set(src.metadata.uid!, inputs);
      return every ? { requeueAfterMs: every } : undefined;
    });
  }

  /** A provider of another API group: validate its contract status, pull and verify its snapshot. */
  async function external(src: KubeObject): Promise<Result> {
    const ns = src.metadata.namespace!;
    const spec = src.spec as SourceSpec;
    const rc = await readyComponent(ctx, spec.componentRef, ns);
    const ext = await runExternalProvider(ctx, spec.providerRef, ns, 'Source');
    if (!ext.ready) throw waiting('ProviderNotReady', ext.message);
    const cur = (src.status as { snapshot?: string } | undefined)?.snapshot;
    const { snapshot } = await storeSnapshot(ctx, {
      producer: src,
      provider: { ...spec.providerRef, generation: ext.provider.metadata.generation },
      component: rc.component,
      componentVersion: rc.version,
      identity: {},
      files: ext.files!,
      chain: [{ kind: 'OCMComponent', name: rc.component.metadata.name!, componentVersion: `${rc.name}:${rc.version}` }],
      current: cur ? await getObject(ctx, SNAP, ns, cur) : undefined,
    });
    const digest = (snapshot.status as { digest: string }).digest;
    await ctx.status.update(SRC, { namespace: ns, name: src.metadata.name! }, (st, o) => {
      st.ready = true;
      st.snapshot = snapshot.metadata.name;
      st.digest = digest;
      st.componentVersion = rc.version;
        if (rc.manifestDigest) st.componentDigest = rc.manifestDigest;
      setCondition(st, { type: 'Ready', status: 'True', reason: 'Succeeded', message: `snapshot ${snapshot.metadata.name} from ${spec.providerRef.kind} ${spec.providerRef.name} (${ext.snapshot}, digest verified)` }, o.metadata.generation);
    });
    // External objects live in the host cluster, outside this server's watch: look again soon.
    return { requeueAfterMs: spec.interval ? (parseDuration(spec.interval) ?? 30_000) : 30_000 };
  }

  return {
    name: 'source',
    resource: SRC,
    watches: [
      {
        resource: COMP,
        map: (c) => sourcesWhere((s, src) => s.componentRef.name === c.metadata.name && (s.componentRef.namespace ?? src.metadata.namespace) === c.metadata.namespace),
      },
      ...providerResources.map((r) => ({
        resource: r,
        map: (p: KubeObject) =>
          sourcesWhere((s) => s.providerRef.kind === p.kind && s.providerRef.name === p.metadata.name, p.metadata.namespace),
      })),
    ],
    async reconcile(key) {
      const src = await ctx.status.get(SRC, key);
      if (!src || src.metadata.deletionTimestamp || (src.spec as SourceSpec).suspend) return;
      let begun = false;
      const begin = async (inputs: string) => {
        begun = true;
        if (starts.start(src.metadata.uid!, inputs)) await ctx.status.progressing(SRC, key, true); // a Ready=False made stale
      };
      try {
        await ctx.status.progressing(SRC, key); // Reconciling=True / Ready=Unknown before the work, once per generation
        return await reconcile(src, begin);
      } catch (err) {
        if (!begun) starts.notStarted(src.metadata.uid!);
        done.delete(src.metadata.uid!);
        return reportRunFailure(ctx, SRC, key, err);
      }
    },
  };
}
