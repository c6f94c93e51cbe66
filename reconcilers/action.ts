// Action: consumes the snapshot of a Source or another Action, runs its provider on it, and
// either stores the result as a new snapshot (transformers) or reports what it deployed
// (deployers). A chain re-runs by itself when anything upstream changes, and only then: an
// unchanged input gives no new snapshot. A cycle or a missing upstream is a condition.
import { actionInputRef, type ActionSpec } from '../kinds/action.js';
import { parseDuration } from '../kinds/common.js';
import type { KubeObject } from '../kinds/types.js';
import { TransformError } from '../providers/configdata.js';
import { archiveToFiles } from '../providers/content.js';
import type { ActionOutput, ActionProvider, Files } from '../providers/types.js';
import { pullSnapshot } from '../registry/snapshot.js';
import { announceVersionChange, componentState, readyComponent, withComponentVersion } from './components.js';
import { API_VERSION, ensureRegistryTlsSecret, getObject, listObjects, NOT_READY_RETRY_MS, ReconcileError, type ReconcilerContext, reportRunFailure, resourceOf } from './context.js';
import { stalled, toReconcileError, waiting } from './runtime/errors.js';
import { runExternalProvider } from './external.js';
import type { ControllerSpec, ObjectKey, Result } from './runtime/controller.js';
import { isReady, setCondition, WorkStarts } from './runtime/status.js';
import { refuseCrossNamespaceRefs } from './tenancy.js';
import { type ChainLink, checkAttestation, foreignSnapshot, storeSnapshot } from './snapshots.js';

export function actionController(ctx: ReconcilerContext, providers: ActionProvider[]): ControllerSpec {
  const ACT = resourceOf(ctx, 'Action');
  const SRC = resourceOf(ctx, 'Source');
  const SNAP = resourceOf(ctx, 'Snapshot');
  const COMP = resourceOf(ctx, 'OCMComponent');
  const builtIn = new Map(providers.map((p) => [p.kind, p]));
  const providerResources = providers.map((p) => resourceOf(ctx, p.kind));
  const done = new Map<string, string>();
  const starts = new WorkStarts();

  /** Actions matching pred, in one namespace (inputs and providers are namespace-local) or in all (components may be referenced across). */
  const actionsWhere = async (pred: (a: KubeObject) => boolean, namespace?: string): Promise<ObjectKey[]> =>
    (await listObjects(ctx, ACT, namespace)).filter(pred).map((a) => ({ namespace: a.metadata.namespace, name: a.metadata.name! }));

  /** Follows the input chain; a ReconcileError when it comes back to `self`. */
  async function checkCycle(self: KubeObject) {
    const seen = [self.metadata.name!];
    let ref = actionInputRef(self);
    while (ref?.kind === 'Action') {
      if (seen.includes(ref.name)) throw stalled('DependencyCycle', `input chain ${[...seen, ref.name].join(' → ')} is a cycle`);
      seen.push(ref.name);
      const next = await getObject(ctx, ACT, self.metadata.namespace, ref.name);
      ref = next && actionInputRef(next);
    }
  }

  async function input(action: KubeObject) {
    const ns = action.metadata.namespace!;
    const ref = actionInputRef(action)!;
    const upstream = await getObject(ctx, ref.kind === 'Source' ? SRC : ACT, ns, ref.name);
    if (!upstream) throw stalled('InputNotFound', `${ref.kind} ${ns}/${ref.name} not found`);
    const st = (upstream.status ?? {}) as { ready?: boolean; snapshot?: string; digest?: string };
    if (!st.ready || !st.snapshot) throw stalled('InputNotReady', `${ref.kind} ${ns}/${ref.name} has no ready snapshot yet`);
    const snapshot = await getObject(ctx, SNAP, ns, st.snapshot);
    const ss = (snapshot?.status ?? {}) as { repositoryURL?: string; tag?: string; digest?: string; chain?: ChainLink[] };
    if (!snapshot || !ss.repositoryURL || !ss.tag || !ss.digest) throw stalled('InputNotReady', `Snapshot ${ns}/${st.snapshot} of ${ref.kind} ${ref.name} is not stored yet`);
    if (ss.digest !== st.digest) throw stalled('InputNotReady', `${ref.kind} ${ref.name} names digest ${st.digest} but its Snapshot holds ${ss.digest}`);
    const foreign = foreignSnapshot(ctx, ss.repositoryURL, ns);
    if (foreign) throw stalled('ForeignSnapshot', `input Snapshot ${ns}/${st.snapshot}: ${foreign}`);
    return { upstream, snapshot, repositoryURL: ss.repositoryURL, tag: ss.tag, digest: ss.digest, chain: ss.chain ?? [] };
  }

  async function pullInput(i: Awaited<ReturnType<typeof input>>): Promise<Files> {
    const bad = await checkAttestation(ctx, i.repositoryURL, i.digest, i.snapshot.metadata.namespace!);
    if (bad) throw stalled('AttestationInvalid', `input snapshot ${i.snapshot.metadata.name} is not attested by this server: ${bad}`);
    try {
      return await archiveToFiles(await pullSnapshot(ctx.snapshots.client, `${i.repositoryURL}@${i.digest}`, { expectedDigest: i.digest }));
    } catch (err) {
      // Typed: the OCI client's DIGEST_MISMATCH is InputDigestMismatch (Stalled); others by their own retryability.
      throw toReconcileError(err, 'InputUnavailable', `input snapshot ${i.snapshot.metadata.name}`, 'InputDigestMismatch');
    }
  }

  async function readValue(ns: string, kind: 'ConfigMap' | 'Secret', name: string, key: string): Promise<string | undefined> {
    try {
      if (kind === 'ConfigMap') return (await ctx.host.core.readNamespacedConfigMap({ name, namespace: ns })).data?.[key];
      const v = (await ctx.host.core.readNamespacedSecret({ name, namespace: ns })).data?.[key];
      return v === undefined ? undefined : Buffer.from(v, 'base64').toString('utf8');
    } catch (err) {
      if ((err as { code?: number }).code === 404) return undefined;
      throw err;
    }
  }

  /** `begin` is called with the inputs once the preconditions hold, before the work (pulling the input, the provider). */
  async function reconcile(action: KubeObject, begin: (inputs: string) => Promise<void>): Promise<Result | void> {
    const ns = action.metadata.namespace!;
    const spec = action.spec as ActionSpec;
    const every = spec.interval ? parseDuration(spec.interval) : undefined;
    refuseCrossNamespaceRefs(ctx, action);
    await checkCycle(action);
    const i = await input(action);
    const rc = await readyComponent(ctx, spec.componentRef, ns);
    const pref = spec.providerRef;
    const provider = pref.apiVersion === API_VERSION ? builtIn.get(pref.kind) : undefined;
    if (pref.apiVersion === API_VERSION && !provider) throw stalled('UnsupportedProvider', `${pref.kind} is not an Action provider`);

    let out: ActionOutput;
    let providerObj: KubeObject;
    if (provider) {
      const found = await getObject(ctx, resourceOf(ctx, pref.kind), ns, pref.name);
      if (!found) throw stalled('ProviderNotFound', `${pref.kind} ${ns}/${pref.name} not found`);
      providerObj = found;
      refuseCrossNamespaceRefs(ctx, providerObj);
      const inputs = [action.metadata.generation, providerObj.metadata.uid, providerObj.metadata.generation, i.digest, rc.version, componentState(rc.component)].join('|');
      if (done.get(action.metadata.uid!) === inputs && isReady(action) && !every) return;
      await begin(inputs);
      const files = await pullInput(i);
      await ensureRegistryTlsSecret(ctx, ns);
      try {
        out = await withComponentVersion(ctx, rc, (repo, cv) =>
          provider.run({
            action,
            provider: providerObj,
            component: rc.component,
            descriptor: cv.descriptor,
            repository: repo,
            componentVersion: cv,
            input: { files, snapshot: i.snapshot, repositoryURL: i.repositoryURL, tag: i.tag, digest: i.digest },
            readValue: (kind, name, key) => readValue(ns, kind, name, key),
            host: ctx.host,
            snapshotRegistry: { url: ctx.snapshots.externalHost, tlsSecretName: ctx.snapshots.tlsSecretName },
            snapshotClient: ctx.snapshots.client,
            snapshotHost: ctx.snapshots.host,
          }),
        );
      } catch (err) {
        if (err instanceof ReconcileError) throw err;
        // A rule or value that cannot be applied stays so until someone edits it.
        if (err instanceof TransformError) throw stalled('ProviderFailed', `${pref.kind}/${pref.name}: ${err.message}`, err);
        throw toReconcileError(err, 'ProviderFailed', `${pref.kind}/${pref.name}`);
      }
      if (out.ready !== false) done.set(action.metadata.uid!, inputs);
    } else {
      const ext = await runExternalProvider(ctx, pref, ns, 'Action');
      providerObj = ext.provider;
      if (!ext.ready) throw waiting('ProviderNotReady', ext.message);
      out = { files: ext.files, ready: true };
    }

    let snapshot: KubeObject | undefined;
    if (out.files) {
      const cur = (action.status as { snapshot?: string } | undefined)?.snapshot;
      snapshot = (
        await storeSnapshot(ctx, {
          producer: action,
          provider: { apiVersion: pref.apiVersion, kind: pref.kind, name: pref.name, generation: providerObj.metadata.generation },
          component: rc.component,
          componentVersion: rc.version,
          identity: (i.snapshot.spec as { identity?: { resourceName?: string; extraIdentity?: Record<string, string> } }).identity ?? {},
          files: out.files,
          input: { snapshot: i.snapshot.metadata.name!, digest: i.digest },
          chain: i.chain,
          current: cur ? await getObject(ctx, SNAP, ns, cur) : undefined,
        })
      ).snapshot;
    }
    const ready = out.ready !== false;
    const digest = (snapshot?.status as { digest?: string } | undefined)?.digest;
    const unnamed = (out.wrote ?? []).filter((w) => !out.message?.includes(w)); // objects the provider's message does not name yet
    const message = !ready
      ? (out.message ?? 'waiting for what was deployed to become ready')
      : snapshot
        ? `snapshot ${snapshot.metadata.name} (${digest!.slice(0, 19)}) from ${i.snapshot.metadata.name}`
        : `${out.message ?? `deployed ${i.snapshot.metadata.name}`}${unnamed.length ? `: ${unnamed.join(', ')}` : ''}`;
    await announceVersionChange(ctx, action, action.status as { componentVersion?: string; componentDigest?: string } | undefined, rc);
    // Only the Action's own status: its provider may serve other Actions too (providerStatusController).
    await ctx.status.update(ACT, { namespace: ns, name: action.metadata.name! }, (st, o) => {
      st.ready = ready;
      if (snapshot) {
        st.snapshot = snapshot.metadata.name;
        st.digest = digest;
      }
      setCondition(st, { type: 'Ready', status: ready ? 'True' : 'False', reason: ready ? 'Succeeded' : 'Progressing', message }, o.metadata.generation);
      // still progressing while what it deployed becomes ready (Ready=True drops it)
      if (!ready) setCondition(st, { type: 'Reconciling', status: 'True', reason: 'Progressing', message }, o.metadata.generation);
      st.inputSnapshot = i.snapshot.metadata.name;
      st.inputDigest = i.digest;
      st.componentVersion = rc.version;
        if (rc.manifestDigest) st.componentDigest = rc.manifestDigest;
    });
    if (!ready || !provider) return { requeueAfterMs: every ?? NOT_READY_RETRY_MS };
    return every ? { requeueAfterMs: every } : undefined;
  }

  return {
    name: 'action',
    resource: ACT,
    watches: [
      { resource: SRC, map: (s) => actionsWhere((a) => actionInputRef(a)?.kind === 'Source' && actionInputRef(a)?.name === s.metadata.name, s.metadata.namespace) },
      { resource: ACT, map: (u) => actionsWhere((a) => actionInputRef(a)?.kind === 'Action' && actionInputRef(a)?.name === u.metadata.name, u.metadata.namespace) },
      {
        resource: COMP,
        map: (c) => actionsWhere((a) => ((a.spec as ActionSpec).componentRef.namespace ?? a.metadata.namespace) === c.metadata.namespace && (a.spec as ActionSpec).componentRef.name === c.metadata.name),
      },
      ...providerResources.map((r) => ({
        resource: r,
        map: (p: KubeObject) =>
          actionsWhere((a) => (a.spec as ActionSpec).providerRef.kind === p.kind && (a.spec as ActionSpec).providerRef.name === p.metadata.name, p.metadata.namespace),
      })),
    ],
    async reconcile(key) {
      const action = await ctx.status.get(ACT, key);
      if (!action || (action.spec as ActionSpec).suspend) return;
      if (action.metadata.deletionTimestamp) return;
      let begun = false;
      const begin = async (inputs: string) => {
        begun = true;
        if (starts.start(action.metadata.uid!, inputs)) await ctx.status.progressing(ACT, key, true); // a Ready=False made stale
      };
      try {
        await ctx.status.progressing(ACT, key); // Reconciling=True / Ready=Unknown before the work, once per generation
        return await reconcile(action, begin);
      } catch (err) {
        if (!begun) starts.notStarted(action.metadata.uid!);
        done.delete(action.metadata.uid!);
        return reportRunFailure(ctx, ACT, key, err);
      }
    },
  };
}
