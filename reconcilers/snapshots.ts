// Storing a snapshot: pack the files deterministically, push them to the snapshot registry as
// layer 0 of an OCI artifact, check what the registry holds, and record a Snapshot object (owned
// by the Source or Action that made it) whose status tells where it came from. Unchanged
// content gives no new snapshot.
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labelValue } from '../providers/flux.js';
import type { Files } from '../providers/types.js';
import type { KubeObject } from '../kinds/types.js';
import { internalOptions } from '../apiserver/rest.js';
import { attachAttestation, verifyAttestation } from '../registry/attestation.js';
import { MEDIA_TYPES, OciError, parseReference } from '../registry/client.js';
import { packSnapshot, packSnapshotToFile, type ProducerKind, pushSnapshot, type SnapshotPlace, snapshotRepository } from '../registry/snapshot.js';
import { API_VERSION, applyObject, listObjects, ownerRef, type ReconcilerContext, resourceOf } from './context.js';
import { setCondition } from './runtime/status.js';
import { ReconcileError } from './runtime/errors.js';

export const CONTENT_DIGEST = 'delivery.ocm.software/content-digest';
export const PRODUCER_LABEL = 'delivery.ocm.software/producer';

export interface ChainLink {
  kind: string;
  name: string;
  componentVersion?: string;
  provider?: string;
  providerGeneration?: number;
  digest?: string;
}

export interface StoreSnapshotInput {
  producer: KubeObject;
  provider: { apiVersion: string; kind: string; name: string; generation?: number };
  component: KubeObject;
  componentVersion: string;
  identity: { resourceName?: string; extraIdentity?: Record<string, string> };
  files: Files;
  input?: { snapshot: string; digest?: string };
  /** Links before this producer's own (component, upstream steps). */
  chain: ChainLink[];
  /** The producer's current snapshot, if any. */
  current?: KubeObject;
}

function producerKind(producer: KubeObject): ProducerKind {
  if (producer.kind === 'Source' || producer.kind === 'Action') return producer.kind;
  throw new Error(`a ${producer.kind} cannot produce snapshots`);
}

const MAX_NAME = 253;

/**
 * The Snapshot object's name: `<producer>-<source|action>-<tag>`; when that is longer than 253
 * characters, `<producer prefix>-<source|action>-<16 hex of SHA-256(kind, name)>-<tag>`. Injective:
 * tags are digits and the kind has no dash, so from the right the tag, then the kind (readable) or
 * the hash (16 hex digits, never "source" or "action") say which form it is and what it holds.
 * (Before: `<producer>-<tag>`, shared by a Source and an Action of the same name.)
 */
export function snapshotObjectName(kind: ProducerKind, name: string, tag: string): string {
  const k = kind.toLowerCase();
  const readable = `${name}-${k}-${tag}`;
  if (readable.length <= MAX_NAME) return readable;
  const hash = createHash('sha256').update(JSON.stringify([kind, name])).digest('hex').slice(0, 16);
  const room = MAX_NAME - (k.length + hash.length + tag.length + 3);
  return `${name.slice(0, room).replace(/[-.]+$/, '')}-${k}-${hash}-${tag}`;
}

function summary(files: { path: string; size: number }[]): string {
  const names = files.map((f) => f.path);
  const shown = names.slice(0, 20).join(', ');
  return `${files.length} file${files.length === 1 ? '' : 's'}: ${shown}${names.length > 20 ? ', …' : ''}`;
}

export async function storeSnapshot(ctx: ReconcilerContext, s: StoreSnapshotInput): Promise<{ snapshot: KubeObject; created: boolean }> {
  // Small content is packed in memory (leased from the budget; pushed in one request and kept in
  // the client's content cache for the next step). Larger content goes to a file as it is packed
  // and is pushed from there: packing holds no second copy of the files (issue 15).
  let bytes = 0;
  for (const k in s.files) bytes += s.files[k].length;
  if (bytes <= SMALL_SNAPSHOT) {
    const packed = await packSnapshot({ files: s.files });
    return store(ctx, s, packed, packed.tgz);
  }
  const dir = await mkdtemp(join(tmpdir(), 'ocm-snapshot-'));
  try {
    const packed = await packSnapshotToFile({ files: s.files }, join(dir, 'snapshot.tar.gz'));
    return await store(ctx, s, packed, packed);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Content up to which a snapshot is packed in memory. */
const SMALL_SNAPSHOT = 4 << 20;

async function store(
  ctx: ReconcilerContext,
  s: StoreSnapshotInput,
  packed: { digest: string; files: { path: string; size: number }[] },
  tgz: Buffer | { file: string; digest: string; size: number },
): Promise<{ snapshot: KubeObject; created: boolean }> {
  const SNAP = resourceOf(ctx, 'Snapshot');
  const ns = s.producer.metadata.namespace!;
  const cur = s.current;
  const curStatus = (cur?.status ?? {}) as { tag?: string; digest?: string; repositoryURL?: string };
  const sameInput = (cur?.spec as { input?: { digest?: string } } | undefined)?.input?.digest === s.input?.digest;
  const place: SnapshotPlace = { namespace: ns, component: s.component.metadata.name!, kind: producerKind(s.producer), name: s.producer.metadata.name!, provider: s.provider.name };
  // A snapshot still in a place of the scheme before (which two producers could share) moves.
  const samePlace = curStatus.repositoryURL?.slice(curStatus.repositoryURL.indexOf('/') + 1) === snapshotRepository(place).repository;
  if (cur && cur.metadata.annotations?.[CONTENT_DIGEST] === packed.digest && sameInput && curStatus.digest && samePlace) return { snapshot: cur, created: false };

  const timestamp = Math.max(Math.floor(Date.now() / 1000), curStatus.tag && /^\d+$/.test(curStatus.tag) ? Number(curStatus.tag) + 1 : 0);
  try {
    return await push(ctx, s, packed, tgz, place, timestamp);
  } catch (e) {
    throw registryRefusal(e, ns) ?? e;
  }
}

/**
 * The snapshot registry refusing the namespace's push: its quota (`403 DENIED`), its upload slots
 * (`429`), its disk (`507`). Ready=False with a reason of its own, retried with the work queue's
 * backoff (up to 5 minutes): room comes back with deletes and GC, not by retrying at once.
 */
function registryRefusal(e: unknown, ns: string): ReconcileError | undefined {
  if (!(e instanceof OciError)) return undefined;
  const reason = e.code === 'DENIED' ? 'RegistryQuotaExceeded' : e.code === 'TOOMANYREQUESTS' ? 'RegistryBusy' : e.status === 507 ? 'RegistryStorageFull' : undefined;
  if (!reason) return undefined;
  return new ReconcileError(reason, `the snapshot registry refused a snapshot of namespace ${ns}: ${e.message}`, 'Transient', { cause: e });
}

async function push(
  ctx: ReconcilerContext,
  s: StoreSnapshotInput,
  packed: { digest: string; files: { path: string; size: number }[] },
  tgz: Buffer | { file: string; digest: string; size: number },
  place: SnapshotPlace,
  timestamp: number,
): Promise<{ snapshot: KubeObject; created: boolean }> {
  const SNAP = resourceOf(ctx, 'Snapshot');
  const ns = place.namespace;
  const pushed = await pushSnapshot(ctx.snapshots.client, {
    registry: ctx.snapshots.host,
    ...place,
    timestamp,
    tgz,
    annotations: { 'delivery.ocm.software/producer': `${s.producer.kind}/${s.producer.metadata.name}` },
  });
  // What the registry now serves under the tag must be what was pushed.
  const head = await ctx.snapshots.client.headManifest(`${ctx.snapshots.host}/${pushed.repository}:${pushed.tag}`);
  const verified = head?.digest === pushed.digest;
  // The core attests every snapshot: a signed in-toto statement as an OCI referrer of it.
  const repositoryRef = `${ctx.snapshots.host}/${pushed.repository}`;
  const attestation = await attachAttestation(ctx.snapshots.client, {
    repositoryRef,
    subject: { digest: pushed.digest, size: head?.size ?? 0, mediaType: MEDIA_TYPES.ociManifest },
    predicate: {
      component: { name: (s.component.spec as { name: string }).name, version: s.componentVersion },
      producer: { kind: s.producer.kind, name: s.producer.metadata.name!, namespace: ns },
      provider: { apiVersion: s.provider.apiVersion, kind: s.provider.kind, name: s.provider.name, ...(s.provider.generation !== undefined ? { generation: s.provider.generation } : {}) },
      ...(s.input?.digest ? { input: { digest: s.input.digest } } : {}),
      createdAt: new Date(timestamp * 1000).toISOString(),
    },
    signingKeyPem: ctx.snapshots.attestationKeyPem,
  });

  const name = snapshotObjectName(place.kind, place.name, pushed.tag);
  const snapshot = await applyObject(ctx, SNAP, {
    apiVersion: API_VERSION,
    kind: 'Snapshot',
    metadata: {
      name,
      namespace: ns,
      ownerReferences: [ownerRef(s.producer)],
      labels: { [PRODUCER_LABEL]: labelValue(`${s.producer.kind.toLowerCase()}.${s.producer.metadata.name}`) }, // long names: cut, with a hash
      annotations: { [CONTENT_DIGEST]: packed.digest, 'delivery.ocm.software/files': summary(packed.files) },
    },
    spec: {
      identity: { componentName: (s.component.spec as { name: string }).name, componentVersion: s.componentVersion, ...s.identity },
      producerRef: { kind: s.producer.kind, name: s.producer.metadata.name },
      providerRef: { apiVersion: s.provider.apiVersion, kind: s.provider.kind, name: s.provider.name },
      ...(s.input ? { input: s.input } : {}),
    },
  });
  const chain: ChainLink[] = [
    ...s.chain,
    {
      kind: s.producer.kind,
      name: s.producer.metadata.name!,
      provider: `${s.provider.kind}/${s.provider.name}`,
      ...(s.provider.generation !== undefined ? { providerGeneration: s.provider.generation } : {}),
      digest: pushed.digest,
    },
  ];
  const written = await ctx.status.update(SNAP, { namespace: ns, name }, (st) => {
    st.repositoryURL = `${ctx.snapshots.host}/${pushed.repository}`;
    st.tag = pushed.tag;
    st.digest = pushed.digest;
    st.size = pushed.size;
    st.createdAt = new Date(timestamp * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    st.chain = chain;
    st.attestation = { digest: attestation.digest, verified: true };
    setCondition(
      st,
      verified
        ? { type: 'Verified', status: 'True', reason: 'DigestVerified', message: `the registry serves ${pushed.repository}:${pushed.tag} as ${pushed.digest}` }
        : { type: 'Verified', status: 'False', reason: 'DigestMismatch', message: `the registry serves ${head?.digest ?? 'nothing'} for ${pushed.repository}:${pushed.tag}, expected ${pushed.digest}` },
      snapshot.metadata.generation,
    );
    setCondition(
      st,
      verified
        ? { type: 'Ready', status: 'True', reason: 'Stored', message: `${summary(packed.files)}; ${pushed.size} bytes at ${ctx.snapshots.host}/${pushed.repository}:${pushed.tag}` }
        : { type: 'Ready', status: 'False', reason: 'DigestMismatch', message: 'the stored snapshot does not match what was pushed' },
      snapshot.metadata.generation,
    );
  });
  await pruneSnapshots(ctx, s.producer);
  return { snapshot: written ?? snapshot, created: true };
}

/** Keeps the newest `history` Snapshot objects of a producer. */
async function pruneSnapshots(ctx: ReconcilerContext, producer: KubeObject) {
  const SNAP = resourceOf(ctx, 'Snapshot');
  const mine = (await listObjects(ctx, SNAP, producer.metadata.namespace)).filter((o) =>
    o.metadata.ownerReferences?.some((r) => r.uid === producer.metadata.uid),
  );
  const byTag = mine.sort((a, b) => Number((b.status as { tag?: string })?.tag ?? 0) - Number((a.status as { tag?: string })?.tag ?? 0));
  for (const old of byTag.slice(Math.max(1, ctx.snapshots.history))) {
    await ctx.rest.delete(SNAP, old.metadata.namespace, old.metadata.name!, {}, internalOptions()).catch(() => undefined);
  }
}

/** Checks the attestation of a snapshot before it is consumed (bound to the consumer's namespace); a reason when it does not hold. */
export async function checkAttestation(ctx: ReconcilerContext, repositoryURL: string, digest: string, namespace: string): Promise<string | undefined> {
  const r = await verifyAttestation(ctx.snapshots.client, { repositoryRef: repositoryURL, subjectDigest: digest, publicKeyPem: ctx.snapshots.attestationCertPem, namespace });
  return r.ok ? undefined : r.reason;
}

const loopbackName = (h: string) => h.toLowerCase().replace(/^localhost(?=:|$)/, '127.0.0.1');

/**
 * Why a snapshot reference may not be read for an object of `namespace` (undefined: it may): it
 * must be in the server's snapshot registry, in a repository under `<namespace>/`. The server
 * reads snapshots with its own identity, so this is what keeps one tenant from naming another's.
 */
export function foreignSnapshot(ctx: ReconcilerContext, ref: string, namespace: string): string | undefined {
  let r;
  try {
    r = parseReference(ref);
  } catch (err) {
    return (err as Error).message;
  }
  const own = [ctx.snapshots.host, ctx.snapshots.externalHost].map(loopbackName);
  if (!own.includes(loopbackName(r.host))) return `${r.host}/${r.repository} is not in this server's snapshot registry`;
  if (!r.repository.startsWith(`${namespace}/`)) return `${r.host}/${r.repository} is not a repository of namespace ${namespace}`;
  return undefined;
}
