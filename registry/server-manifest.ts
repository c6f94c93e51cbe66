// Manifest parsing and structural validation (existence of referenced content is checked by the server).
import { isDigest } from './blobstore.js';
import { regError } from './server-errors.js';
import type { Descriptor } from './server-repos.js';

export const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const IMAGE_TYPES = new Set([OCI_MANIFEST, DOCKER_MANIFEST]);
const INDEX_TYPES = new Set([OCI_INDEX, DOCKER_LIST]);
const GENERIC_TYPES = new Set(['', 'application/json', 'application/octet-stream', 'text/plain']);

export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface ParsedManifest {
  mediaType: string;
  isIndex: boolean;
  /** config + layers, or the index's child manifests. */
  refs: Descriptor[];
  subject?: Descriptor;
  artifactType?: string;
  annotations?: Record<string, string>;
}

const invalid = (message: string, detail?: unknown) => regError('MANIFEST_INVALID', message, detail);
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function annotations(v: unknown, where: string): Record<string, string> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== 'string')) throw invalid(`${where}.annotations must map strings to strings`);
  return v as Record<string, string>;
}

function descriptor(v: unknown, where: string): Descriptor {
  if (!isObject(v)) throw invalid(`${where} must be a descriptor object`);
  const { mediaType, digest, size, artifactType, urls } = v;
  if (typeof mediaType !== 'string' || !mediaType) throw invalid(`${where}.mediaType must be a non-empty string`);
  if (!isDigest(digest)) throw invalid(`${where}.digest must be a sha256 digest`, { digest });
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`${where}.size must be a non-negative integer`);
  if (artifactType !== undefined && typeof artifactType !== 'string') throw invalid(`${where}.artifactType must be a string`);
  if (urls !== undefined && (!Array.isArray(urls) || urls.some((u) => typeof u !== 'string'))) throw invalid(`${where}.urls must be strings`);
  const d: Descriptor = { mediaType, digest, size };
  if (artifactType) d.artifactType = artifactType;
  const a = annotations(v.annotations, where);
  if (a) d.annotations = a;
  if (urls) d.urls = urls as string[];
  return d;
}

/** The media type a manifest is stored and served with: the request's Content-Type, else the body's mediaType. */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch (e) {
    throw invalid('manifest is not valid JSON', { error: (e as Error).message });
  }
  if (!isObject(json)) throw invalid('manifest must be a JSON object');
  if (json.schemaVersion !== 2) throw invalid('unsupported schemaVersion (only 2)', { schemaVersion: json.schemaVersion });
  const ct = (contentType ?? '').split(';')[0].trim().toLowerCase();
  const bodyType = json.mediaType;
  if (bodyType !== undefined && typeof bodyType !== 'string') throw invalid('mediaType must be a string');
  let mediaType: string;
  if (IMAGE_TYPES.has(ct) || INDEX_TYPES.has(ct)) {
    if (bodyType !== undefined && bodyType !== ct) throw invalid('mediaType does not match Content-Type', { contentType: ct, mediaType: bodyType });
    mediaType = ct;
  } else if (GENERIC_TYPES.has(ct)) {
    mediaType = bodyType ?? (json.manifests !== undefined ? OCI_INDEX : OCI_MANIFEST);
  } else {
    throw invalid('unsupported manifest media type', { contentType: ct });
  }
  if (!IMAGE_TYPES.has(mediaType) && !INDEX_TYPES.has(mediaType)) throw invalid('unsupported manifest media type', { mediaType });

  const isIndex = INDEX_TYPES.has(mediaType);
  const out: ParsedManifest = { mediaType, isIndex, refs: [] };
  if (json.artifactType !== undefined) {
    if (typeof json.artifactType !== 'string') throw invalid('artifactType must be a string');
    out.artifactType = json.artifactType;
  }
  out.annotations = annotations(json.annotations, 'manifest');
  if (json.subject !== undefined) out.subject = descriptor(json.subject, 'subject');
  if (isIndex) {
    if (!Array.isArray(json.manifests)) throw invalid('an index needs a manifests array');
    out.refs = json.manifests.map((m, i) => descriptor(m, `manifests[${i}]`));
  } else {
    if (json.config === undefined) throw invalid('an image manifest needs a config descriptor');
    if (!Array.isArray(json.layers)) throw invalid('an image manifest needs a layers array');
    const config = descriptor(json.config, 'config');
    out.refs = [config, ...json.layers.map((l, i) => descriptor(l, `layers[${i}]`))];
    out.artifactType ??= mediaType === OCI_MANIFEST ? config.mediaType : undefined;
  }
  if (out.artifactType === undefined) delete out.artifactType;
  if (out.annotations === undefined) delete out.annotations;
  return out;
}
