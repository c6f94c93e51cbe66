// External providers: a providerRef to a kind of another API group is an object some other
// controller reconciles in the host cluster. Its status must follow the provider contract
// (`ready` boolean; `snapshot` + `digest` required for Sources, optional for Actions); the
// snapshot it names is pulled and its digest verified before anything downstream uses it.
import type { KubeObject } from '../kinds/types.js';
import { archiveToFiles } from '../providers/content.js';
import type { Files } from '../providers/types.js';
import { pullSnapshot } from '../registry/snapshot.js';
import { ReconcileError, type ReconcilerContext } from './context.js';
import { toReconcileError } from './runtime/errors.js';
import { foreignSnapshot } from './snapshots.js';

export type ExternalResult = { ready: false; message: string; provider: KubeObject } | { ready: true; provider: KubeObject; files?: Files; digest?: string; snapshot?: string };

export async function runExternalProvider(
  ctx: ReconcilerContext,
  ref: { apiVersion: string; kind: string; name: string },
  namespace: string,
  role: 'Source' | 'Action',
): Promise<ExternalResult> {
  let provider: KubeObject;
  try {
    provider = (await ctx.host.objects.read({ apiVersion: ref.apiVersion, kind: ref.kind, metadata: { name: ref.name, namespace } })) as unknown as KubeObject;
  } catch (err) {
    const code = (err as { code?: number }).code;
    if (code === 404) throw new ReconcileError('ProviderNotFound', `${ref.kind} ${namespace}/${ref.name} (${ref.apiVersion}) not found in the cluster`, false);
    throw new ReconcileError('ProviderUnavailable', `reading ${ref.kind} ${namespace}/${ref.name}: ${(err as Error).message}`);
  }
  const st = (provider.status ?? {}) as Record<string, unknown>;
  const where = `${ref.kind} ${namespace}/${ref.name}`;
  if (st.ready === undefined) return { ready: false, message: `${where} has not reported status.ready yet`, provider };
  if (typeof st.ready !== 'boolean') throw new ReconcileError('InvalidProviderStatus', `${where}: status.ready must be a boolean, got ${JSON.stringify(st.ready)}`, false);
  if (!st.ready) return { ready: false, message: `${where} is not ready`, provider };
  const snapshot = st.snapshot;
  const digest = st.digest;
  if (role === 'Source' || snapshot !== undefined) {
    if (typeof snapshot !== 'string' || !snapshot) throw new ReconcileError('InvalidProviderStatus', `${where}: status.snapshot must name the snapshot OCI artifact`, false);
    if (typeof digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(digest))
      throw new ReconcileError('InvalidProviderStatus', `${where}: status.digest must be the snapshot's sha256 digest, got ${JSON.stringify(digest)}`, false);
  }
  if (typeof snapshot !== 'string') return { ready: true, provider };
  // Anyone who may write the provider's status names this snapshot: only one of the consumer's own namespace is read.
  const foreign = foreignSnapshot(ctx, snapshot, namespace);
  if (foreign) throw new ReconcileError('ForeignSnapshot', `${where}: snapshot ${snapshot}: ${foreign}`, false);
  let tgz: Buffer;
  try {
    tgz = await pullSnapshot(ctx.snapshots.client, snapshot.replace(/^oci:\/\//, ''), { expectedDigest: digest as string });
  } catch (err) {
    // Typed: the OCI client's DIGEST_MISMATCH is DigestMismatch (Stalled); others by their retryability.
    throw toReconcileError(err, 'SnapshotUnavailable', `${where}: snapshot ${snapshot}`);
  }
  return { ready: true, provider, files: await archiveToFiles(tgz), digest: digest as string, snapshot };
}
