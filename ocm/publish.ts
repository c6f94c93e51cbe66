// Build, sign and push a component version from a small YAML description, without the Go `ocm` tool.
//
//   name: acme.org/podinfo            # or `components: [ ... ]` (the ocm tool's component-constructor.yaml)
//   version: 6.8.0
//   provider: acme.org                # or {name, labels}
//   labels: [...]
//   resources:
//   - name: manifests
//     type: kustomization
//     input: {type: dir, path: ./deploy}          # file | dir | utf8 (text) → localBlob; path relative to the spec
//   - name: image
//     type: ociImage
//     access: {type: ociArtifact, imageReference: ghcr.io/stefanprodan/podinfo:6.8.0}
//     digest: {...}                               # optional; fetched from the registry otherwise
//   componentReferences: [{name: backend, componentName: acme.org/backend, version: 1.0.0}]
//
// A dir input becomes a deterministic tar.gz (registry/snapshot.ts packSnapshot), media type
// application/x-tgz. Local blobs get genericBlobDigest/v1 digests, or ociArtifactDigest/v1 when they
// hold an OCI image layout; OCI artifacts get the digest of their manifest; references get the
// jsonNormalisation/v3 digest of the referenced descriptor, read from the target repository.
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { type OciClient, digestOf } from '../registry/client.js';
import { packSnapshot } from '../registry/snapshot.js';
import type { Access, ComponentDescriptor, ComponentReference, DigestSpec, Label, Provider, Resource, Source } from './descriptor.js';
import { descriptorDigest, type Normalisation } from './normalise.js';
import { accessKind, type OcmRepository } from './repository.js';
import { type SignatureAlgorithm, genericBlobDigest, ociArtifactDigest, signDescriptor } from './signing.js';

export interface InputSpec {
  type: 'file' | 'dir' | 'utf8';
  path?: string;
  text?: string;
  mediaType?: string;
}
export interface ArtifactSpec {
  name: string;
  version?: string;
  type: string;
  relation?: 'local' | 'external';
  extraIdentity?: Record<string, string>;
  labels?: Label[];
  srcRefs?: unknown[];
  input?: InputSpec;
  access?: Access;
  digest?: DigestSpec;
}
export interface ComponentSpec {
  name: string;
  version: string;
  provider: Provider;
  labels?: Label[];
  creationTime?: string;
  resources?: ArtifactSpec[];
  sources?: ArtifactSpec[];
  componentReferences?: Array<{ name: string; componentName: string; version: string; extraIdentity?: Record<string, string>; labels?: Label[]; digest?: DigestSpec }>;
}

export class PublishError extends Error {
  override name = 'PublishError';
}

const OCI_LAYOUT_TYPES = ['application/vnd.oci.image.manifest.v1+tar+gzip', 'application/vnd.oci.image.manifest.v1+tar', 'application/vnd.oci.image.index.v1+tar+gzip', 'application/vnd.oci.image.index.v1+tar'];

/** The component specs of a YAML file: one spec, or the ocm tool's `components:` list. */
export function loadComponentSpecs(text: string): ComponentSpec[] {
  let doc: any;
  try {
    doc = YAML.parse(text);
  } catch (e) {
    throw new PublishError(`component spec is not YAML: ${(e as Error).message}`);
  }
  const specs = Array.isArray(doc?.components) ? doc.components : [doc];
  for (const [i, s] of specs.entries()) {
    const where = specs.length > 1 ? `components[${i}]` : 'component spec';
    if (typeof s?.name !== 'string' || typeof s?.version !== 'string') throw new PublishError(`${where} needs a name and a version (strings)`);
    if (!s.provider) throw new PublishError(`${where} (${s.name}) needs a provider`);
  }
  return specs;
}

async function inputContent(input: InputSpec, baseDir: string, where: string): Promise<{ data: Buffer; mediaType: string }> {
  const file = () => {
    if (!input.path) throw new PublishError(`${where}: input of type ${input.type} needs a path`);
    return path.resolve(baseDir, input.path);
  };
  try {
    switch (input.type) {
      case 'file':
        return { data: await fsp.readFile(file()), mediaType: input.mediaType ?? 'application/octet-stream' };
      case 'dir':
        return { data: (await packSnapshot({ dir: file() })).tgz, mediaType: input.mediaType ?? 'application/x-tgz' };
      case 'utf8':
        if (typeof input.text !== 'string') throw new PublishError(`${where}: input of type utf8 needs a text`);
        return { data: Buffer.from(input.text), mediaType: input.mediaType ?? 'application/octet-stream' };
      default:
        throw new PublishError(`${where}: input type "${(input as InputSpec).type}" is not supported (file, dir, utf8)`);
    }
  } catch (e) {
    if (e instanceof PublishError) throw e;
    throw new PublishError(`${where}: reading input ${input.path ?? ''}: ${(e as Error).message}`, { cause: e });
  }
}

async function externalDigest(access: Access, client: OciClient | undefined, where: string): Promise<DigestSpec | undefined> {
  const kind = accessKind(access.type);
  if (kind === 'ociblob' && typeof access.digest === 'string') return { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'genericBlobDigest/v1', value: access.digest.split(':')[1] };
  if (kind !== 'ociartifact' || !client) return undefined;
  try {
    return await ociArtifactDigest({ client, ref: String(access.imageReference) });
  } catch (e) {
    throw new PublishError(`${where}: cannot compute the digest of ${access.imageReference} (give it as "digest" to publish offline): ${(e as Error).message}`, { cause: e });
  }
}

/**
 * The descriptor and local blobs of a component version. With a client, the digests of OCI artifact
 * resources are fetched from their registries; without, such resources keep the digest given in the spec.
 */
export async function buildComponentVersion(
  spec: ComponentSpec,
  baseDir: string,
  opts: { client?: OciClient; now?: Date } = {},
): Promise<{ descriptor: ComponentDescriptor; blobs: Map<string, { data: Buffer; mediaType: string }> }> {
  const blobs = new Map<string, { data: Buffer; mediaType: string }>();
  const artifact = async (a: ArtifactSpec, kind: 'resources' | 'sources', i: number) => {
    const where = `${kind}[${i}] (${a.name})`;
    if (!a?.name || !a.type) throw new PublishError(`${kind}[${i}] needs a name and a type`);
    if (!a.input === !a.access) throw new PublishError(`${where} needs exactly one of input and access`);
    const out: any = { name: a.name, version: a.version ?? spec.version, type: a.type };
    if (a.extraIdentity && Object.keys(a.extraIdentity).length) out.extraIdentity = { ...a.extraIdentity };
    if (a.labels?.length) out.labels = a.labels;
    if (kind === 'resources') out.relation = a.relation ?? (a.input ? 'local' : 'external');
    if (a.srcRefs?.length) out.srcRefs = a.srcRefs;
    if (a.input) {
      const { data, mediaType } = await inputContent(a.input, baseDir, where);
      const localReference = digestOf(data);
      blobs.set(localReference, { data, mediaType });
      out.access = { localReference, mediaType, type: 'localBlob' };
      if (kind === 'resources') out.digest = a.digest ?? (OCI_LAYOUT_TYPES.includes(mediaType) ? await ociArtifactDigest(data) : genericBlobDigest(data));
    } else {
      out.access = { ...a.access };
      if (kind === 'resources') {
        const d = a.digest ?? (await externalDigest(a.access!, opts.client, where));
        if (d) out.digest = d;
      }
    }
    return out;
  };
  const resources: Resource[] = [];
  for (const [i, r] of (spec.resources ?? []).entries()) resources.push(await artifact(r, 'resources', i));
  const sources: Source[] = [];
  for (const [i, s] of (spec.sources ?? []).entries()) sources.push(await artifact(s, 'sources', i));
  const componentReferences: ComponentReference[] = (spec.componentReferences ?? []).map((r, i) => {
    if (!r?.name || !r.componentName || !r.version) throw new PublishError(`componentReferences[${i}] needs name, componentName and version`);
    return { name: r.name, componentName: r.componentName, version: r.version, ...(r.extraIdentity && { extraIdentity: r.extraIdentity }), ...(r.labels?.length && { labels: r.labels }), ...(r.digest && { digest: r.digest }) };
  });
  const descriptor: ComponentDescriptor = {
    meta: { schemaVersion: 'v2' },
    component: {
      name: spec.name,
      version: spec.version,
      provider: spec.provider,
      ...(spec.labels?.length && { labels: spec.labels }),
      creationTime: spec.creationTime ?? (opts.now ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      repositoryContexts: [],
      resources,
      sources,
      componentReferences,
    },
  };
  return { descriptor, blobs };
}

/** Builds, optionally signs, and pushes a component version; referenced components must be in the repository. */
export async function publish(
  repo: OcmRepository,
  spec: ComponentSpec,
  baseDir: string,
  opts: { sign?: { name: string; privateKeyPem: string; algorithm?: SignatureAlgorithm; normalisation?: Normalisation }; overwrite?: boolean; creator?: string; now?: Date } = {},
): Promise<{ descriptor: ComponentDescriptor; manifestDigest: string; ref: string }> {
  let { descriptor, blobs } = await buildComponentVersion(spec, baseDir, { client: repo.client, now: opts.now });
  for (const ref of descriptor.component.componentReferences) {
    if (ref.digest) continue;
    try {
      ref.digest = descriptorDigest((await repo.getComponentVersion(ref.componentName, ref.version)).descriptor, 'jsonNormalisation/v3');
    } catch (e) {
      throw new PublishError(`component reference "${ref.name}": ${ref.componentName}:${ref.version} cannot be read from ${repo.baseUrl} (publish it first): ${(e as Error).message}`, { cause: e });
    }
  }
  if (opts.sign) descriptor = signDescriptor(descriptor, opts.sign);
  const pushed = await repo.pushComponentVersion(descriptor, blobs, { overwrite: opts.overwrite, creator: opts.creator });
  return { descriptor, ...pushed };
}
