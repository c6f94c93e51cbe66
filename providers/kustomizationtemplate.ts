// Action provider KustomizationTemplate: deploys the input snapshot with Flux. Writes into the host
// cluster, named after the Action and owned by it:
//   - a Flux OCIRepository (source.toolkit.fluxcd.io/v1) pointing at the input snapshot in the
//     snapshot registry as the cluster reaches it (`ctx.snapshotRegistry.url`), pinned by
//     `ref.digest` (with `ref.tag` alongside), over TLS with `certSecretRef`, and a `layerSelector`
//     that has Flux extract our snapshot layer;
//   - a Flux Kustomization (kustomize.toolkit.fluxcd.io/v1): `spec.template` passed through as it
//     is, `sourceRef` set to that OCIRepository (interval defaults to 10m, prune to true).
// A new snapshot replaces the OCIRepository's ref in place. With `spec.waitForReady` the output is
// ready only once the Kustomization is Ready for the current generation and (when Flux reports
// `lastAppliedRevision`) has applied the input's digest.
import { SNAPSHOT_LAYER_MEDIA_TYPE } from '../registry/snapshot.js';
import {
  createOrReplace,
  deleteOwned,
  desiredObject,
  fluxReadiness,
  inClusterURL,
  intervalOf,
  KUSTOMIZATION,
  OCI_REPOSITORY,
  objectKey,
  ociRepositorySpec,
  target,
  templateOf,
} from './flux.js';
import type { ActionProvider } from './types.js';

export const kustomizationTemplateProvider: ActionProvider = {
  kind: 'KustomizationTemplate',

  async run(ctx) {
    const { template, waitForReady } = templateOf(ctx.provider);
    const { name } = target(ctx.action);
    const interval = intervalOf(template);

    const repo = desiredObject(
      ctx,
      OCI_REPOSITORY,
      ociRepositorySpec({
        url: inClusterURL(ctx.input.repositoryURL, ctx.snapshotRegistry.url),
        tag: ctx.input.tag,
        digest: ctx.input.digest,
        interval,
        tlsSecretName: ctx.snapshotRegistry.tlsSecretName,
        mediaType: SNAPSHOT_LAYER_MEDIA_TYPE,
        operation: 'extract',
      }),
    );
    delete template.sourceRef; // forbidden by the kind's validation; set here in any case
    const ks = desiredObject(ctx, KUSTOMIZATION, {
      ...template,
      interval,
      prune: typeof template.prune === 'boolean' ? template.prune : true,
      sourceRef: { kind: OCI_REPOSITORY.kind, name },
    });

    // The source first: a Kustomization never points at a missing or stale OCIRepository for long.
    const wroteRepo = await createOrReplace(ctx.host, repo);
    const wroteKs = await createOrReplace(ctx.host, ks);
    const wrote = [objectKey(wroteRepo.object), objectKey(wroteKs.object)];

    if (!waitForReady) {
      return { ready: true, message: `${wrote.join(' and ')} point at ${ctx.input.digest}`, wrote };
    }
    // Flux reports the artifact it applied as `<tag>@sha256:...` or `sha256:...`.
    const readiness = fluxReadiness(wroteKs.object, (st) => (typeof st.lastAppliedRevision === 'string' ? st.lastAppliedRevision : undefined), ctx.input.digest);
    return { ...readiness, wrote };
  },

  async cleanup(ctx) {
    // The Kustomization first, so Flux prunes what it applied while its source still exists.
    await deleteOwned(ctx.host, KUSTOMIZATION, ctx.action);
    await deleteOwned(ctx.host, OCI_REPOSITORY, ctx.action);
  },
};
