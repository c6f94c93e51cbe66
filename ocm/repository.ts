// An OCI-backed OCM repository, laid out as the OCM specification and the `ocm` tool do it:
//   repository <base>/component-descriptors/<component name>, tag = version with `+` as `.build-`;
//   an OCI image manifest whose config (application/vnd.ocm.software.component.config.v1+json) is
//   {"componentDescriptorLayer": <descriptor>}; layer 0 the component descriptor (a tar holding
//   component-descriptor.yaml, or plain YAML/JSON); a localBlob's localReference is the digest of a
//   layer of the same manifest, annotated with the identities of the elements stored in it.
import { Transform } from 'node:stream';
import semver from 'semver';
import { MEDIA_TYPES, OciClient, type OciClientOptions, OciError, type Reference, digestOf, formatReference, parseReference } from '../registry/client.js';
import { readTar, singleFileTar } from './archive.js';
import {
  COMPONENT_DESCRIPTOR_FILE,
  DescriptorError,
  MAX_DESCRIPTOR_BYTES,
  type ComponentDescriptor,
  type ComponentReference,
  type Resource,
  elementIdentity,
  parseDescriptor,
  serializeDescriptor,
  tagToVersion,
  versionToTag,
} from './descriptor.js';
import { BudgetCache, leaseMemory, MAX_ARCHIVE_IN_MEMORY_BYTES, PARSED_HEAP_PER_BYTE, YAML_HEAP_PER_BYTE } from '../registry/memory-budget.js';
import { parseDescriptorAsync } from './descriptor-worker.js';
import { descriptorDigest } from './normalise.js';
import { GENERIC_BLOB_DIGEST, isExcludedDigest, OCI_ARTIFACT_DIGEST, verifyResourceDigest } from './signing.js';

export const OCM_CONFIG_MEDIA_TYPE = 'application/vnd.ocm.software.component.config.v1+json';
export const LEGACY_CONFIG_MEDIA_TYPE = 'application/vnd.gardener.cloud.cnudie.component.config.v1+json';
export const DESCRIPTOR_TAR_MEDIA_TYPE = 'application/vnd.ocm.software.component-descriptor.v2+yaml+tar';
const DESCRIPTOR_MEDIA_TYPES = [
  DESCRIPTOR_TAR_MEDIA_TYPE,
  'application/vnd.ocm.software.component-descriptor.v2+yaml',
  'application/vnd.ocm.software.component-descriptor.v2+json',
  'application/vnd.gardener.cloud.cnudie.component-descriptor.v2+yaml+tar',
  'application/vnd.gardener.cloud.cnudie.component-descriptor.v2+json',
  'application/vnd.gardener.cloud.cnudie.component-descriptor.v2+yaml',
];
export const ANNOTATION_COMPONENT_VERSION = 'software.ocm.componentversion';
export const ANNOTATION_CREATOR = 'software.ocm.creator';
export const ANNOTATION_ARTIFACT = 'software.ocm.artifact';
// A descriptor layer: the descriptor (3 MiB at most, ocm/descriptor.ts) and, as a tar, its headers.
const MAX_DESCRIPTOR_LAYER_BYTES = MAX_DESCRIPTOR_BYTES + (64 << 10);

// Versions of one component (tags), and the bytes of its tag list over all pages (issue 15).
export const MAX_VERSIONS = 10_000;
const MAX_TAG_LIST_BYTES = 1 << 20;

// Parsed descriptors by the digest of the layer they came from (content addressed): every
// namespace with an OCMComponent of the same version parses the same YAML otherwise. Counted in
// the in-memory budget (PARSED_HEAP_PER_BYTE per byte of text), 64 MiB at most.
const parsed = new BudgetCache<ComponentDescriptor>(64 << 20);
/** Descriptors up to this size are parsed on the event loop (ocm/descriptor-worker.ts), their syntax tree in this heap. */
const IN_PLACE_DESCRIPTOR_BYTES = 64 << 10;
/**
 * The descriptor of `raw`, a copy of its own for the caller. Inside a reconcile it leases the copy
 * and, while it parses, the parse (and its syntax tree when parsed here, not in the worker).
 */
async function parsedDescriptor(layerDigest: string, raw: Buffer): Promise<ComponentDescriptor> {
  const copy = PARSED_HEAP_PER_BYTE * raw.length;
  const parse = ((raw.length <= IN_PLACE_DESCRIPTOR_BYTES ? YAML_HEAP_PER_BYTE : 0) + PARSED_HEAP_PER_BYTE) * raw.length;
  // a cached parse needs only the copy leased (unless the lease itself evicts it: then the parse too)
  const lease = await leaseMemory(copy + (parsed.bytesOf(layerDigest) === undefined ? parse : 0));
  let d = parsed.get(layerDigest);
  if (!d) {
    const parsing = lease.bytes < copy + parse ? await leaseMemory(parse) : undefined;
    const fresh = await parseDescriptorAsync(raw); // off the event loop when large (ocm/descriptor-worker.ts)
    parsed.set(layerDigest, () => fresh, PARSED_HEAP_PER_BYTE * raw.length);
    d = fresh;
    parsing?.shrink(0);
  }
  const out = structuredClone(d);
  lease.shrink(copy); // the parse is the cache's now, or gone
  return out;
}

export class OcmRepositoryError extends Error {
  override name = 'OcmRepositoryError';
  constructor(
    readonly code: 'NOT_FOUND' | 'NO_MATCH' | 'NOT_OCM' | 'INVALID' | 'DIGEST_MISMATCH' | 'UNSUPPORTED' | 'EXISTS',
    message: string,
    opts?: { cause?: unknown },
  ) {
    super(message, opts);
  }
}

export interface ComponentVersion {
  descriptor: ComponentDescriptor;
  manifestDigest: string;
  manifest: any;
  /** The descriptor file as stored. */
  raw: Buffer;
  /** What it holds in memory, at most (manifest and its parse, descriptor text and its parse). */
  bytes?: number;
}

export interface ResourceContent {
  data: Buffer;
  mediaType: string;
  /** For OCI artifacts (data is then the manifest). */
  manifestDigest?: string;
}

/** A blob's declared size (manifest layer, ociBlob access) when it is one; Infinity otherwise. */
const declaredSize = (n: unknown) => (Number.isSafeInteger(n) && (n as number) >= 0 ? (n as number) : Infinity);

/**
 * Reads a blob no further than its declared size (and the in-memory limit): an upstream streaming
 * more than it declared (endlessly, say) is cut there as a digest mismatch, not read to the limit.
 */
async function readDeclared(read: () => Promise<Buffer>, size: unknown, maxBytes: number, what: string): Promise<Buffer> {
  try {
    return await read();
  } catch (e) {
    if (e instanceof OciError && e.code === 'TOO_LARGE' && declaredSize(size) < maxBytes) throw new OciError('DIGEST_MISMATCH', `${what}: the registry sends more than the ${size} bytes declared for it`, { cause: e });
    throw e;
  }
}

const notFound = (e: unknown) => e instanceof OciError && (e.status === 404 || ['NAME_UNKNOWN', 'MANIFEST_UNKNOWN', 'NOT_FOUND'].includes(e.code));

/** Go's encoding/json string escaping (HTML characters too), for manifests byte-equal to the library's. */
const goJson = (v: unknown) => JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** `localBlob`, `localBlob/v1` → `localblob`; the OCI access types all → `ociartifact`. */
export function accessKind(type: string | undefined): string {
  const t = String(type ?? '').replace(/\/v\d+$/, '').toLowerCase();
  return ['ociartifact', 'ociregistry', 'ociimage'].includes(t) ? 'ociartifact' : t;
}

const digestRef = (s: unknown) => String(s ?? '').replace(/^(sha256|sha512)\./, '$1:');

type Parsed = { v: string; p: semver.SemVer | null };

/** Versions with their semver parse, yielding to the event loop every 500 (10,000 tags took 0.1 to 0.5 s in one go). */
async function parseVersions(vs: string[]): Promise<Parsed[]> {
  const out: Parsed[] = [];
  for (let i = 0; i < vs.length; i++) {
    if (i % 500 === 499) await new Promise((r) => setImmediate(r));
    out.push({ v: vs[i], p: semver.parse(vs[i], { loose: true }) });
  }
  return out;
}

/** Semver order, the others after them by name; each version parsed once, not in every comparison. */
const byVersion = (a: Parsed, b: Parsed) => (a.p && b.p ? a.p.compare(b.p) || a.v.localeCompare(b.v) : a.p ? -1 : b.p ? 1 : a.v.localeCompare(b.v));

/** A list of versions for a message, the newest 20 at most. */
const some = (vs: string[]) => (vs.length ? (vs.length > 20 ? `${vs.slice(-20).join(', ')} and ${vs.length - 20} older` : vs.join(', ')) : 'none');

export class OcmRepository {
  readonly host: string;
  /** Repository path prefix in the registry ('' for the registry root). */
  readonly prefix: string;

  /** Reads external accesses (ociBlob, ociArtifact): the repository's client unless given another. */
  readonly accessClient: OciClient;
  private readonly sameRegistry: (r: Reference) => boolean;

  /**
   * `sameRegistry`: whether an access in the repository's own registry may be read with the
   * repository's client (default: yes); other accesses always go through `accessClient`.
   */
  constructor(
    readonly client: OciClient,
    baseUrl: string,
    opts: { accessClient?: OciClient; sameRegistry?: (r: Reference) => boolean } = {},
  ) {
    this.accessClient = opts.accessClient ?? client;
    this.sameRegistry = opts.sameRegistry ?? (() => true);
    const s = baseUrl.trim().replace(/^(?:oci|https?):\/\//i, '').replace(/\/+$/, '');
    const slash = s.indexOf('/');
    this.host = (slash < 0 ? s : s.slice(0, slash)).toLowerCase();
    this.prefix = slash < 0 ? '' : s.slice(slash + 1);
    if (!this.host) throw new OcmRepositoryError('INVALID', `invalid OCM repository URL "${baseUrl}"`);
  }

  /** A repository with its own client; `http://` URLs talk plain HTTP. */
  static forUrl(baseUrl: string, opts: OciClientOptions = {}): OcmRepository {
    return new OcmRepository(new OciClient({ ...opts, insecureHttp: opts.insecureHttp ?? /^http:\/\//i.test(baseUrl) }), baseUrl);
  }

  get baseUrl(): string {
    return this.prefix ? `${this.host}/${this.prefix}` : this.host;
  }

  /** The OCI reference of a component (and version). */
  refOf(component: string, version?: string): Reference {
    const repository = `${this.prefix ? `${this.prefix}/` : ''}component-descriptors/${component}`;
    try {
      parseReference(`${this.host}/${repository}`);
    } catch {
      throw new OcmRepositoryError('INVALID', `component name "${component}" cannot be stored in an OCI registry (lower-case DNS-like names only)`);
    }
    return { host: this.host, repository, ...(version !== undefined && { tag: versionToTag(version) }) };
  }

  async listVersions(component: string): Promise<string[]> {
    try {
      const tags = await this.client.listTags(this.refOf(component), { maxTags: MAX_VERSIONS, maxBytes: MAX_TAG_LIST_BYTES });
      const versions = await parseVersions(tags.filter((t) => !/^sha(256|512)-/.test(t)).map(tagToVersion));
      return versions.sort(byVersion).map((x) => x.v);
    } catch (e) {
      if (notFound(e)) throw new OcmRepositoryError('NOT_FOUND', `component ${component} is not in ${this.baseUrl}`, { cause: e });
      throw e;
    }
  }

  /** An exact version, or the newest version matching a semver constraint (`v0.9.x`, `>=1.2 <2`). */
  async resolveVersion(component: string, constraint: string): Promise<string> {
    return (await this.candidateVersions(component, constraint))[0];
  }

  /**
   * The versions `constraint` admits, newest first: an exact version alone (matched exactly, build
   * metadata included), or every version matching a semver constraint. A NO_MATCH error when none.
   */
  async candidateVersions(component: string, constraint: string): Promise<string[]> {
    const c = constraint.trim();
    let versions: string[];
    try {
      versions = await this.listVersions(component);
    } catch (e) {
      // a registry that does not list tags can still serve an exact version
      if (semver.valid(c, { loose: true }) && !(e instanceof OcmRepositoryError)) return [c];
      throw e;
    }
    if (versions.includes(c)) return [c];
    // An exact version matches exactly: build metadata included (semver ranges ignore it, so
    // `1.2.0+build.6` would otherwise resolve to `1.2.0+build.5`); `v1.2.0` and `1.2.0` are the same.
    const exact = semver.parse(c, { loose: true });
    if (exact) {
      const same = (await parseVersions(versions)).find(({ p }) => p !== null && p.compare(exact) === 0 && p.build.join('.') === exact.build.join('.'));
      if (same) return [same.v];
      const have = some(versions);
      throw new OcmRepositoryError('NO_MATCH', `version ${c} of component ${component} is not in ${this.baseUrl} (versions: ${have})`);
    }
    const range = semver.validRange(c, { loose: true });
    if (range === null) throw new OcmRepositoryError('NO_MATCH', `"${c}" is neither a version of component ${component} in ${this.baseUrl} nor a semver constraint`);
    const r = new semver.Range(range, { loose: true });
    const matches = (await parseVersions(versions)).filter((x) => x.p !== null && r.test(x.p)).sort(byVersion).reverse().map((x) => x.v);
    if (!matches.length) {
      const have = some(versions);
      throw new OcmRepositoryError('NO_MATCH', `no version of component ${component} in ${this.baseUrl} matches "${c}" (versions: ${have})`);
    }
    return matches;
  }

  /** A component version by its tag or, with `digest`, by that manifest digest (the exact content). */
  async getComponentVersion(component: string, version: string, opts: { digest?: string } = {}): Promise<ComponentVersion> {
    const ref: Reference = opts.digest ? { ...this.refOf(component), digest: opts.digest } : this.refOf(component, version);
    const what = `component version ${component}:${version} in ${this.baseUrl}`;
    let m;
    try {
      m = await this.client.getManifest(ref, [MEDIA_TYPES.ociManifest, MEDIA_TYPES.dockerManifest]);
    } catch (e) {
      if (notFound(e)) throw new OcmRepositoryError('NOT_FOUND', `${what} does not exist`, { cause: e });
      throw e;
    }
    const manifest = m.manifest;
    const configType = manifest?.config?.mediaType;
    if (configType !== OCM_CONFIG_MEDIA_TYPE && configType !== LEGACY_CONFIG_MEDIA_TYPE) {
      throw new OcmRepositoryError('NOT_OCM', `${what} is not an OCM component version: its config media type is "${configType ?? m.mediaType}", not ${OCM_CONFIG_MEDIA_TYPE}`);
    }
    if (typeof manifest.config.digest !== 'string') throw new OcmRepositoryError('INVALID', `${what}: the digest of its OCM config is not a string`);
    let layer: any;
    try {
      const config = await this.client.getBlobBuffer(ref, manifest.config.digest, 1 << 20, { size: manifest.config.size });
      const parse = await leaseMemory(PARSED_HEAP_PER_BYTE * config.length);
      layer = JSON.parse(config.toString('utf8'))?.componentDescriptorLayer;
      parse.shrink(0); // only the layer descriptor is kept
    } catch (e) {
      if (e instanceof OciError) throw e;
      throw new OcmRepositoryError('INVALID', `${what}: the OCM config is not JSON`);
    }
    layer ??= (manifest.layers ?? []).find((l: any) => DESCRIPTOR_MEDIA_TYPES.includes(l?.mediaType));
    if (!layer?.digest) throw new OcmRepositoryError('INVALID', `${what} has no component descriptor layer`);
    if (typeof layer.digest !== 'string') throw new OcmRepositoryError('INVALID', `${what}: the digest of its component descriptor layer is not a string`);
    const tooLarge = (e: unknown) => {
      if (e instanceof OciError && e.code === 'TOO_LARGE') throw new OcmRepositoryError('INVALID', `${what}: the component descriptor is over the limit of ${MAX_DESCRIPTOR_BYTES} bytes`, { cause: new DescriptorError(e.message, 'DescriptorTooLarge') });
      throw e;
    };
    const blob = await this.client.getBlobBuffer(ref, layer.digest, MAX_DESCRIPTOR_LAYER_BYTES, { size: layer.size }).catch(tooLarge);
    let raw = blob;
    if (String(layer.mediaType).endsWith('+tar') || blob.toString('latin1', 257, 262) === 'ustar') {
      // The files (and their pieces while joined) and, for a tar.gz, the tar: leased while read, then the file kept.
      const untar = await leaseMemory(blob[0] === 0x1f && blob[1] === 0x8b ? 3 * MAX_DESCRIPTOR_LAYER_BYTES : 2 * blob.length);
      const file = (await readTar(blob, MAX_DESCRIPTOR_LAYER_BYTES).catch((e) => tooLarge(e instanceof RangeError || /maxOutputLength|larger than/i.test((e as Error).message) ? new OciError('TOO_LARGE', (e as Error).message) : e))).get(COMPONENT_DESCRIPTOR_FILE);
      if (!file) throw new OcmRepositoryError('INVALID', `${what}: the descriptor layer holds no ${COMPONENT_DESCRIPTOR_FILE}`);
      untar.shrink(file.length);
      raw = file;
    }
    let descriptor: ComponentDescriptor;
    try {
      descriptor = await parsedDescriptor(layer.digest, raw);
    } catch (e) {
      throw new OcmRepositoryError('INVALID', `${what}: ${(e as Error).message}`, { cause: e });
    }
    const c = descriptor.component;
    if (c.name !== component || versionToTag(c.version) !== versionToTag(version)) {
      throw new OcmRepositoryError('INVALID', `${what} holds the descriptor of ${c.name}:${c.version}`);
    }
    const bytes = (1 + PARSED_HEAP_PER_BYTE) * (m.body.length + raw.length);
    return { descriptor, manifestDigest: m.digest, manifest, raw, bytes };
  }

  /**
   * The content of a resource: a localBlob's layer, an ociBlob, or an OCI artifact's manifest (with
   * its digest). Checked against resource.digest when the descriptor has one (always, with requireDigest).
   * Inside a reconcile the blob's size (as the manifest or the access declares it, else maxBytes)
   * is leased by the OCI client before the blob is read, and the read stops there
   * (registry/memory-budget.ts); an OCI artifact's manifest likewise.
   */
  async getResourceContent(
    cv: { descriptor: ComponentDescriptor; manifest: any },
    resource: Resource,
    opts: { requireDigest?: boolean; maxBytes?: number } = {},
  ): Promise<ResourceContent> {
    const what = `resource "${resource.name}" of ${cv.descriptor.component.name}:${cv.descriptor.component.version}`;
    const content = await this.fetchAccess(cv, resource.access, what, opts.maxBytes);
    if (resource.digest) {
      const check = resource.digest.normalisationAlgorithm === OCI_ARTIFACT_DIGEST && content.manifestDigest ? { manifestDigest: content.manifestDigest } : content.data;
      const r = await verifyResourceDigest(resource, check);
      if (!r.ok) throw new OcmRepositoryError('DIGEST_MISMATCH', `${what}: ${r.reason}`);
    } else if (opts.requireDigest) {
      throw new OcmRepositoryError('DIGEST_MISMATCH', `${what} has no digest, so its content cannot be verified`);
    }
    return content;
  }

  /**
   * What getResourceContent with requireDigest checks for a localBlob, as the blob streams: nothing
   * is kept (but an OCI layout's index and manifests), at most its declared size and `maxBytes` (1 GiB)
   * are read. A
   * DIGEST_MISMATCH OcmRepositoryError when it differs; OciErrors (unreachable, the blob not
   * matching its own digest, TOO_LARGE) as they come.
   */
  async checkLocalBlobDigest(cv: { descriptor: ComponentDescriptor; manifest: any }, resource: Resource, opts: { maxBytes?: number } = {}): Promise<void> {
    const what = `resource "${resource.name}" of ${cv.descriptor.component.name}:${cv.descriptor.component.version}`;
    const access = resource.access ?? {};
    const digest = digestRef(access.localReference);
    const layer = (cv.manifest?.layers ?? []).find((l: any) => l?.digest === digest);
    if (accessKind(access.type) !== 'localblob' || (!layer && access.globalAccess)) return void (await this.getResourceContent(cv, resource, { requireDigest: true, maxBytes: opts.maxBytes }));
    if (!resource.digest) throw new OcmRepositoryError('DIGEST_MISMATCH', `${what} has no digest, so its content cannot be verified`);
    if (isExcludedDigest(resource.digest)) return;
    if (!/^sha(256|512):[a-f0-9]+$/.test(digest)) throw new OcmRepositoryError('INVALID', `${what}: localReference "${access.localReference}" is not a blob digest`);
    const limit = opts.maxBytes ?? 1 << 30;
    const max = Math.min(limit, declaredSize(layer?.size)); // no further than its declared size, as readDeclared
    const blob = await this.client.getBlob(this.refOf(cv.descriptor.component.name), digest);
    let n = 0;
    let failure: unknown;
    const metered = new Transform({
      transform(c: Buffer, _e, cb) {
        if ((n += c.length) <= max) return cb(null, c);
        failure =
          max < limit
            ? new OciError('DIGEST_MISMATCH', `${what}: the registry sends more than the ${layer?.size} bytes declared for it`)
            : new OciError('TOO_LARGE', `${what}: blob ${digest} is larger than ${max} bytes`);
        cb(failure as Error);
      },
    });
    blob.on('error', (e) => {
      failure ??= e;
      metered.destroy(e);
    });
    blob.pipe(metered);
    const r = await verifyResourceDigest(resource, metered);
    blob.destroy();
    if (failure) throw failure;
    if (!r.ok) throw new OcmRepositoryError('DIGEST_MISMATCH', `${what}: ${r.reason}`);
  }

  private async fetchAccess(cv: { descriptor: ComponentDescriptor; manifest: any }, access: any, what: string, maxBytes = MAX_ARCHIVE_IN_MEMORY_BYTES): Promise<ResourceContent> {
    /** The declared size (when it is one and under maxBytes): the client leases it and reads no further. */
    const leased = async (declared: unknown) => Math.min(declaredSize(declared), maxBytes);
    const kind = accessKind(access?.type);
    if (kind === 'localblob') {
      const digest = digestRef(access.localReference);
      const layer = (cv.manifest?.layers ?? []).find((l: any) => l?.digest === digest);
      if (!layer && access.globalAccess) return this.fetchAccess(cv, access.globalAccess, what, maxBytes);
      if (!/^sha(256|512):[a-f0-9]+$/.test(digest)) throw new OcmRepositoryError('INVALID', `${what}: localReference "${access.localReference}" is not a blob digest`);
      const data = await readDeclared(async () => this.client.getBlobBuffer(this.refOf(cv.descriptor.component.name), digest, await leased(layer?.size), { size: layer?.size }), layer?.size, maxBytes, what);
      return { data, mediaType: access.mediaType || layer?.mediaType || 'application/octet-stream' };
    }
    if (kind === 'ociblob') {
      const data = await readDeclared(async () => this.clientFor(String(access.ref)).getBlobBuffer(String(access.ref), String(access.digest), await leased(access.size), { size: access.size }), access.size, maxBytes, what);
      return { data, mediaType: access.mediaType || 'application/octet-stream' };
    }
    if (kind === 'ociartifact') {
      const m = await this.clientFor(String(access.imageReference)).getManifest(String(access.imageReference));
      return { data: m.body, mediaType: m.mediaType, manifestDigest: m.digest };
    }
    if (kind === 'none') throw new OcmRepositoryError('UNSUPPORTED', `${what} has no content (access type none)`);
    throw new OcmRepositoryError('UNSUPPORTED', `${what}: access type "${access?.type}" is not supported (localBlob, ociBlob, ociArtifact, ociRegistry)`);
  }

  /** The client for an access's reference: the repository's own for its registry (when allowed), else accessClient. */
  clientFor(ref: string): OciClient {
    const r = parseReference(ref);
    return r.host === this.host && this.sameRegistry(r) ? this.client : this.accessClient;
  }

  /**
   * Checks a resource with an OCI access (ociArtifact/ociRegistry, ociBlob) against its digest
   * without keeping its content: an artifact's manifest is fetched (by the reference; a digest in
   * the reference must match too) and its digest compared; an ociBlob's digest must be the
   * resource's and the blob is hashed as it streams (at most `maxBytes`). A DIGEST_MISMATCH
   * OcmRepositoryError when it differs; OciErrors (unreachable, not found) as they come.
   */
  async checkAccessDigest(cv: { descriptor: ComponentDescriptor }, resource: Resource, opts: { maxBytes?: number } = {}): Promise<void> {
    const what = `resource "${resource.name}" of ${cv.descriptor.component.name}:${cv.descriptor.component.version}`;
    const d = resource.digest;
    const access = resource.access ?? {};
    const kind = accessKind(access.type);
    const mismatch = (why: string) => new OcmRepositoryError('DIGEST_MISMATCH', `${what}: ${why}`);
    if (!d) throw mismatch('it has no digest, so its content cannot be verified');
    if (d.normalisationAlgorithm === 'EXCLUDE-FROM-SIGNATURE') return;
    const want = `${d.hashAlgorithm === 'SHA-512' ? 'sha512' : 'sha256'}:${String(d.value).toLowerCase()}`;
    if (kind === 'ociartifact') {
      const ref = String(access.imageReference ?? '');
      const r = parseReference(ref);
      // genericBlobDigest/v1 over the manifest bytes is the same hash (older descriptors have it)
      if (d.normalisationAlgorithm !== OCI_ARTIFACT_DIGEST && d.normalisationAlgorithm !== GENERIC_BLOB_DIGEST)
        throw mismatch(`its digest is ${d.normalisationAlgorithm}; an OCI artifact is checked by its ${OCI_ARTIFACT_DIGEST} digest`);
      if (r.digest && r.digest !== want) throw mismatch(`its reference ${ref} names manifest ${r.digest}, the descriptor says ${want}`);
      let m;
      try {
        m = await this.clientFor(ref).getManifest(r);
      } catch (e) {
        if (e instanceof OciError && e.code === 'DIGEST_MISMATCH') throw mismatch(e.message);
        throw e;
      }
      const actual = digestOf(m.body, want.split(':')[0]);
      if (actual !== want) throw mismatch(`digest mismatch: ${ref} is manifest ${actual} now, the descriptor says ${want}`);
      return;
    }
    if (kind === 'ociblob') {
      const ref = String(access.ref ?? '');
      const digest = String(access.digest ?? '');
      // another normalisation (an OCI layout in a blob: ociArtifactDigest/v1) needs the content
      if (d.normalisationAlgorithm !== GENERIC_BLOB_DIGEST) return void (await this.getResourceContent(cv as ComponentVersion, resource, { requireDigest: true }));
      if (digest !== want) throw mismatch(`digest mismatch: its access names blob ${digest || '(none)'}, the descriptor says ${want}`);
      const max = opts.maxBytes ?? 1 << 30;
      if (typeof access.size === 'number' && access.size > max) throw new OciError('TOO_LARGE', `${what}: blob ${digest} is ${access.size} bytes, over the limit of ${max}`);
      let n = 0;
      try {
        const stream = await this.clientFor(ref).getBlob(ref, digest);
        for await (const c of stream as AsyncIterable<Buffer>) {
          n += c.length;
          if (n > max) {
            stream.destroy();
            throw new OciError('TOO_LARGE', `${what}: blob ${digest} is larger than ${max} bytes`);
          }
        }
      } catch (e) {
        if (e instanceof OciError && e.code === 'DIGEST_MISMATCH') throw mismatch(`digest mismatch: ${e.message}`);
        throw e;
      }
      if (typeof access.size === 'number' && access.size !== n) throw mismatch(`blob ${digest} has ${n} bytes, its access says ${access.size}`);
      return;
    }
    throw new OcmRepositoryError('UNSUPPORTED', `${what}: access type "${access.type}" is not an OCI access`);
  }

  /**
   * Checks a referenced descriptor against the digest its parent records for it (a DIGEST_MISMATCH
   * error when it differs). Returns false when the parent records no digest: nothing to check.
   */
  checkReference(parent: ComponentDescriptor, ref: ComponentReference, child: ComponentDescriptor): boolean {
    if (!ref.digest) return false;
    const alg = ref.digest.normalisationAlgorithm;
    const forms = [descriptorDigest(child, alg, ref.digest.hashAlgorithm).value];
    if (alg === 'jsonNormalisation/v1') forms.push(descriptorDigest(child, alg, ref.digest.hashAlgorithm, { legacyV1: true }).value);
    if (!forms.includes(ref.digest.value)) {
      throw new OcmRepositoryError('DIGEST_MISMATCH', `digest mismatch: ${parent.component.name}:${parent.component.version} references ${ref.componentName}:${ref.version} with ${alg} digest ${ref.digest.value}, the stored descriptor's is ${forms[0]}`);
    }
    return true;
  }

  /** The component version a reference of `parent` names, checked against the digest the parent records. */
  async getReferencedVersion(parent: ComponentDescriptor, ref: ComponentReference): Promise<ComponentVersion> {
    const child = await this.getComponentVersion(ref.componentName, ref.version);
    this.checkReference(parent, ref, child.descriptor);
    return child;
  }

  /**
   * Every component version reachable through componentReferences (not the root), breadth first, each
   * once; a reference's digest, when present, is checked against the referenced descriptor.
   */
  async resolveReferences(cv: { descriptor: ComponentDescriptor }, opts: { maxDepth?: number } = {}): Promise<ComponentVersion[]> {
    return (await this.referenceGraph(cv, opts)).components;
  }

  /**
   * The reference graph below `cv`: every component version reachable (each fetched once) and every
   * reference edge, each checked against the digest its parent records, also when it leads to a
   * version already reached on another path; `digest: false` on an edge whose parent records none.
   */
  async referenceGraph(
    cv: { descriptor: ComponentDescriptor },
    opts: { maxDepth?: number } = {},
  ): Promise<{ components: ComponentVersion[]; edges: Array<{ parent: ComponentDescriptor; ref: ComponentReference; child: ComponentDescriptor; digest: boolean }> }> {
    const maxDepth = opts.maxDepth ?? 10;
    const key = (n: string, v: string) => `${n}:${versionToTag(v)}`;
    const byKey = new Map<string, ComponentDescriptor>([[key(cv.descriptor.component.name, cv.descriptor.component.version), cv.descriptor]]);
    const components: ComponentVersion[] = [];
    const edges: Array<{ parent: ComponentDescriptor; ref: ComponentReference; child: ComponentDescriptor; digest: boolean }> = [];
    let level = [cv.descriptor];
    for (let depth = 1; level.length; depth++) {
      const next: ComponentDescriptor[] = [];
      for (const parent of level) {
        for (const ref of parent.component.componentReferences ?? []) {
          const k = key(ref.componentName, ref.version);
          let child = byKey.get(k);
          if (!child) {
            if (depth > maxDepth) throw new OcmRepositoryError('INVALID', `component references of ${cv.descriptor.component.name} nest deeper than ${maxDepth} levels`);
            const c = await this.getComponentVersion(ref.componentName, ref.version);
            child = c.descriptor;
            byKey.set(k, child);
            components.push(c);
            next.push(child);
          }
          edges.push({ parent, ref, child, digest: this.checkReference(parent, ref, child) });
        }
      }
      level = next;
    }
    return { components, edges };
  }

  /**
   * Pushes a component version as the OCM Go library lays it out: blobs of localBlob resources and
   * sources (keyed by localReference), the descriptor tar, the config, then the manifest under the
   * version's tag. An existing version is kept unless `overwrite`.
   */
  async pushComponentVersion(
    cd: ComponentDescriptor,
    blobs: Map<string, { data: Buffer; mediaType: string }>,
    opts: { creator?: string; overwrite?: boolean } = {},
  ): Promise<{ manifestDigest: string; ref: string }> {
    const c = cd.component;
    const ref = this.refOf(c.name, c.version);
    if (!opts.overwrite && (await this.client.headManifest(ref))) {
      throw new OcmRepositoryError('EXISTS', `component version ${c.name}:${c.version} already exists in ${this.baseUrl}`);
    }
    const layers: Array<{ mediaType: string; digest: string; size: number; data: Buffer; artifacts: Array<{ kind: string; identity: Record<string, string> }> }> = [];
    const add = (kind: string, e: { name: string; version: string; extraIdentity?: Record<string, string> | null; access: any }, all: Array<typeof e>) => {
      if (accessKind(e.access?.type) !== 'localblob') return;
      const digest = digestRef(e.access.localReference);
      const blob = blobs.get(digest) ?? blobs.get(String(e.access.localReference));
      if (!blob) {
        throw new OcmRepositoryError('INVALID', `${kind} "${e.name}" refers to local blob ${e.access.localReference}, which is not among the blobs to push`);
      }
      if (digestOf(blob.data, digest.split(':')[0]) !== digest) throw new OcmRepositoryError('DIGEST_MISMATCH', `the blob given for ${digest} has another digest`);
      const id = elementIdentity(e, all);
      const identity = Object.fromEntries(Object.keys(id).sort().map((k) => [k, id[k]]));
      let layer = layers.find((l) => l.digest === digest);
      if (!layer) layers.push((layer = { mediaType: e.access.mediaType || blob.mediaType || 'application/octet-stream', digest, size: blob.data.length, data: blob.data, artifacts: [] }));
      layer.artifacts.push({ kind, identity });
    };
    for (const r of c.resources) add('resource', r, c.resources);
    for (const s of c.sources ?? []) add('source', s, c.sources);
    for (const l of layers) await this.client.pushBlob(ref, l.data, l.digest, l.size);

    const descriptorTar = singleFileTar(COMPONENT_DESCRIPTOR_FILE, Buffer.from(serializeDescriptor(cd)));
    const descriptorLayer = { mediaType: DESCRIPTOR_TAR_MEDIA_TYPE, digest: digestOf(descriptorTar), size: descriptorTar.length };
    const config = Buffer.from(goJson({ componentDescriptorLayer: descriptorLayer }));
    await this.client.pushBlob(ref, descriptorTar, descriptorLayer.digest, descriptorLayer.size);
    await this.client.pushBlob(ref, config, digestOf(config), config.length);
    const manifest = {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: OCM_CONFIG_MEDIA_TYPE, digest: digestOf(config), size: config.length },
      layers: [descriptorLayer, ...layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, annotations: { [ANNOTATION_ARTIFACT]: goJson(l.artifacts) } }))],
      annotations: { [ANNOTATION_COMPONENT_VERSION]: `${c.name}:${c.version}`, [ANNOTATION_CREATOR]: opts.creator ?? 'ocm-apiserver' },
    };
    const { digest } = await this.client.putManifest(ref, Buffer.from(goJson(manifest)), MEDIA_TYPES.ociManifest);
    return { manifestDigest: digest, ref: formatReference(ref) };
  }
}
