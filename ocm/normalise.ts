// Component descriptor normalisation, byte for byte as the OCM Go library (the `ocm` tool) does it.
//
// jsonNormalisation/v3: the library's internal descriptor as JSON, with `meta`, `signatures`,
//   `nestedDigests`, `repositoryContexts`, every `access`, `srcRefs` and the digest of resources with
//   access type `none` dropped; labels kept only where `signing` is true (reduced to name, version,
//   value, signing; an emptied list disappears); then RFC 8785 (JCS). As in the library, the label
//   rule does not reach `componentReferences` (its rule is registered under "references"), so their
//   labels stay whole.
// jsonNormalisation/v2: v3 after the legacy defaulting: a resource whose name and extraIdentity
//   equal another one's gets its version added to its extraIdentity (the last of a group does not).
// jsonNormalisation/v1: the v2 schema struct (provider a string, `meta` kept, no `sources`, a missing
//   extraIdentity of resources and references written as null), every object as an array of
//   single-key objects sorted by key, Go's JSON encoding. `legacyV1` leaves out the nulls, as
//   older signers did.
import { createHash } from 'node:crypto';
import {
  type ComponentDescriptor,
  type DigestSpec,
  type Label,
  type ViewElements,
  goTimestamp,
  identityEquals,
  labelView,
  providerObject,
  v2Defaulted,
  v2View,
} from './descriptor.js';

export type Normalisation = 'jsonNormalisation/v1' | 'jsonNormalisation/v2' | 'jsonNormalisation/v3';
export const NORMALISATIONS: readonly Normalisation[] = ['jsonNormalisation/v1', 'jsonNormalisation/v2', 'jsonNormalisation/v3'];
export type HashAlgorithm = 'SHA-256' | 'SHA-512';

export class NormalisationError extends Error {
  override name = 'NormalisationError';
}

const isObj = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);

function signingLabels(labels: Label[] | undefined): Record<string, unknown>[] | undefined {
  const kept = (labels ?? [])
    .filter((l) => l.signing === true || (l.signing as unknown) === 'true')
    .map((l) => {
      const v = labelView(l);
      const out: Record<string, unknown> = {};
      for (const k of ['name', 'version', 'value', 'signing']) if (k in v) out[k] = v[k];
      return out;
    });
  return kept.length ? kept : undefined;
}

const isNoneAccess = (a: unknown) => isObj(a) && (a.type === 'none' || a.type === 'None');

function put(o: Record<string, unknown>, k: string, v: unknown): void {
  if (v !== undefined) o[k] = v;
}

function element(e: { name: string; version: string; extraIdentity?: Record<string, string> | null }, labels: unknown): Record<string, unknown> {
  const o: Record<string, unknown> = { name: e.name, version: e.version ?? '' };
  if (isObj(e.extraIdentity) && Object.keys(e.extraIdentity).length) o.extraIdentity = { ...e.extraIdentity };
  put(o, 'labels', labels);
  return o;
}

const digestOf = (d: DigestSpec | null | undefined) => (isObj(d) ? { hashAlgorithm: d.hashAlgorithm ?? '', normalisationAlgorithm: d.normalisationAlgorithm ?? '', value: d.value ?? '' } : undefined);

/** The fields of the library's internal descriptor that jsonNormalisation/v2 and v3 keep. */
function internalSigned(cd: ComponentDescriptor, els: ViewElements): unknown {
  const c = cd.component;
  const p = providerObject(c.provider);
  const provider: Record<string, unknown> = { name: p.name };
  put(provider, 'labels', signingLabels(p.labels));
  const comp: Record<string, unknown> = { name: c.name, version: c.version };
  put(comp, 'labels', signingLabels(c.labels));
  comp.provider = provider;
  if (c.creationTime) comp.creationTime = goTimestamp(c.creationTime);
  comp.sources = els.sources.map((s) => {
    const o = element(s, signingLabels(s.labels));
    o.type = s.type;
    if (s.referenceHints?.length) o.referenceHints = s.referenceHints;
    return o;
  });
  comp.componentReferences = els.componentReferences.map((r) => {
    const o = element(r, r.labels?.length ? r.labels.map(labelView) : undefined);
    o.componentName = r.componentName ?? '';
    put(o, 'digest', digestOf(r.digest));
    return o;
  });
  comp.resources = els.resources.map((r) => {
    const o = element(r, signingLabels(r.labels));
    o.type = r.type;
    if (r.referenceHints?.length) o.referenceHints = r.referenceHints;
    if (r.relation) o.relation = r.relation;
    if (!isNoneAccess(r.access)) put(o, 'digest', digestOf(r.digest));
    return o;
  });
  return { component: comp };
}

function legacyDefaulting(els: ViewElements): ViewElements {
  const out = structuredClone(els);
  const rs = out.resources;
  for (let i = 0; i < rs.length; i++) {
    for (let j = 0; j < rs.length; j++) {
      if (i === j || rs[j].name !== rs[i].name || !identityEquals(rs[j].extraIdentity, rs[i].extraIdentity)) continue;
      rs[i].extraIdentity = { ...(rs[i].extraIdentity ?? {}), version: rs[i].version };
      break;
    }
  }
  return out;
}

/** The v2 struct as jsonNormalisation/v1 sees it. */
function v1Signed(cd: ComponentDescriptor, els: ViewElements, legacy: boolean): unknown {
  const view = v2View(cd, els);
  const c = view.component;
  const comp: Record<string, unknown> = {};
  for (const [k, v] of Object.entries<any>(c)) {
    if (k === 'repositoryContexts' || k === 'sources') continue;
    if (k === 'labels') put(comp, k, signingLabels(v));
    else if (k === 'provider') {
      let p: unknown = v;
      try {
        const parsed = JSON.parse(v);
        if (isObj(parsed)) p = parsed;
      } catch {
        /* a plain name */
      }
      if (isObj(p)) {
        const { labels, ...rest } = p as any;
        p = rest;
        put(p as any, 'labels', signingLabels(labels));
      }
      comp.provider = p;
    } else if (k === 'resources' || k === 'componentReferences') {
      comp[k] = v.map((e: any, i: number) => {
        const o: Record<string, unknown> = {};
        for (const [ek, ev] of Object.entries<any>(e)) {
          if (ek === 'access' || ek === 'srcRefs') continue;
          if (ek === 'labels') put(o, ek, signingLabels(ev));
          else if (ek === 'digest' && k === 'resources' && isNoneAccess(els.resources[i].access)) continue;
          else o[ek] = ev;
        }
        if (!legacy && o.extraIdentity === undefined) o.extraIdentity = null;
        return o;
      });
    } else comp[k] = k === 'creationTime' ? goTimestamp(v) : v;
  }
  return { meta: view.meta, component: comp };
}

const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

function entries(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(entries);
  if (isObj(v)) return Object.keys(v).sort(utf8Order).map((k) => ({ [k]: entries(v[k]) }));
  return v;
}

/** RFC 8785: keys sorted by UTF-16 code units, ECMAScript number and string serialisation. */
export function jcs(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((e) => jcs(e === undefined ? null : e)).join(',')}]`;
  if (isObj(v)) {
    return `{${Object.keys(v)
      .filter((k) => v[k] !== undefined)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${jcs(v[k])}`)
      .join(',')}}`;
  }
  if (typeof v === 'number' && !Number.isFinite(v)) throw new NormalisationError('JSON cannot hold a non-finite number');
  return JSON.stringify(v) ?? 'null';
}

/** Go's encoding/json (escapeHTML off) for JSON-able values. */
const goJson = (v: unknown) => JSON.stringify(v).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);

export function normalise(cd: ComponentDescriptor, alg: Normalisation | string, opts: { legacyV1?: boolean } = {}): Buffer {
  const els = v2Defaulted(cd);
  switch (alg) {
    case 'jsonNormalisation/v3':
      return Buffer.from(jcs(internalSigned(cd, els)));
    case 'jsonNormalisation/v2':
      return Buffer.from(jcs(internalSigned(cd, legacyDefaulting(els))));
    case 'jsonNormalisation/v1': {
      // the legacy defaulting, then the conversion back to v2, which defaults again
      const again = v2Defaulted({ ...cd, component: { ...cd.component, ...legacyDefaulting(els) } });
      return Buffer.from(goJson(entries(v1Signed(cd, again, !!opts.legacyV1))));
    }
    default:
      throw new NormalisationError(`unsupported normalisation algorithm "${alg}" (supported: ${NORMALISATIONS.join(', ')})`);
  }
}

/** `SHA-256`/`sha256` → node's name; undefined when unsupported. */
export function nodeHash(hashAlgorithm: string): 'sha256' | 'sha512' | undefined {
  const h = hashAlgorithm.toLowerCase().replace('-', '');
  return h === 'sha256' || h === 'sha512' ? h : undefined;
}

export function hashHex(data: Buffer, hash: HashAlgorithm | string = 'SHA-256'): string {
  const h = nodeHash(hash);
  if (!h) throw new NormalisationError(`unsupported hash algorithm "${hash}" (supported: SHA-256, SHA-512)`);
  return createHash(h).update(data).digest('hex');
}

export function descriptorDigest(cd: ComponentDescriptor, alg: Normalisation | string = 'jsonNormalisation/v3', hash: HashAlgorithm | string = 'SHA-256', opts: { legacyV1?: boolean } = {}): DigestSpec {
  return { hashAlgorithm: hash, normalisationAlgorithm: alg, value: hashHex(normalise(cd, alg, opts), hash) };
}
