// The status of a built-in provider (OCMResource, Localization, Configurator,
// KustomizationTemplate, HelmReleaseTemplate) is written by this reconciler only. A provider may
// be shared by any number of Sources or Actions, so its status says what holds for the provider
// itself: its spec was accepted (admission validated it; `ready: true`, Ready=True `Accepted`,
// observedGeneration = generation). What a consumer made of it (snapshot, digest, failure) is on
// that consumer and its Snapshot objects. Before, every consumer wrote its own result onto the
// shared provider: two failing consumers rewrote it in turn, each write re-queuing every consumer.
import type { KubeObject } from '../kinds/types.js';
import { type ReconcilerContext, resourceOf } from './context.js';
import type { ControllerSpec } from './runtime/controller.js';
import { setCondition } from './runtime/status.js';

/** Fields consumers used to write onto providers; a provider never has them now. */
const CONSUMER_FIELDS = ['snapshot', 'digest', 'ociRepository', 'kustomization', 'helmRelease'];

export function providerStatus(st: Record<string, unknown>, obj: KubeObject) {
  for (const f of CONSUMER_FIELDS) delete st[f];
  st.ready = true;
  const users = obj.kind === 'OCMResource' ? 'Source' : 'Action';
  setCondition(st, { type: 'Ready', status: 'True', reason: 'Accepted', message: `${obj.kind} accepted; each ${users} using it reports its own result` }, obj.metadata.generation);
}

/** One controller per built-in provider kind, named `providerstatus-<kind>` (`--reconcilers providerstatus` enables all). */
export function providerStatusControllers(ctx: ReconcilerContext, kinds: string[]): ControllerSpec[] {
  return kinds.map((kind) => {
    const R = resourceOf(ctx, kind);
    return {
      name: `providerstatus-${kind.toLowerCase()}`,
      resource: R,
      workers: 1,
      async reconcile(key) {
        const obj = await ctx.status.get(R, key);
        if (!obj || obj.metadata.deletionTimestamp) return;
        await ctx.status.update(R, key, (st, o) => providerStatus(st, o)); // written only when it changes
      },
    };
  });
}
