// Component descriptor model: schema v2 (ocm.software/v2, `meta.schemaVersion: v2`) fully, and
// `ocm.software/v3alpha1` read and converted into the same model.
//
// YAML is read with YAML 1.1 semantics (yes/no/on/off are booleans, as the Go tool's yaml.v2 reads
// them) except that timestamps stay strings. serializeDescriptor writes what the Go library writes:
// the Go struct's fields (unknown fields dropped, empty optional fields omitted), keys sorted,
// sequences not indented, strings that YAML 1.1 would read as something else double-quoted.
import YAML from 'yaml';
import { MAX_BYTES, PrescanError, prescanYaml } from '../apiserver/prescan.js';

export interface Label {
  name: string;
  value?: unknown;
  version?: string;
  signing?: boolean;
  merge?: { algorithm: string; config?: unknown };
  [k: string]: unknown;
}
export interface Access {
  type: string;
  [k: string]: unknown;
}
export interface DigestSpec {
  hashAlgorithm: string;
  normalisationAlgorithm: string;
  value: string;
}
export interface Resource {
  name: string;
  version: string;
  type: string;
  relation?: 'local' | 'external';
  extraIdentity?: Record<string, string> | null;
  labels?: Label[];
  access: Access;
  digest?: DigestSpec | null;
  srcRefs?: unknown[];
  referenceHints?: unknown[];
}
export interface Source {
  name: string;
  version: string;
  type: string;
  extraIdentity?: Record<string, string> | null;
  labels?: Label[];
  access: Access;
  referenceHints?: unknown[];
}
export interface ComponentReference {
  name: string;
  componentName: string;
  version: string;
  extraIdentity?: Record<string, string> | null;
  labels?: Label[];
  digest?: DigestSpec | null;
}
export interface Signature {
  name: string;
  digest: DigestSpec;
  signature: { algorithm: string; value: string; mediaType: string; issuer?: string };
  timestamp?: unknown;
}
export type Provider = string | { name: string; labels?: Label[] };
export interface ComponentDescriptor {
  meta: { schemaVersion: string };
  component: {
    name: string;
    version: string;
    provider: Provider;
    labels?: Label[];
    repositoryContexts?: unknown[];
    resources: Resource[];
    sources: Source[];
    componentReferences: ComponentReference[];
    creationTime?: string;
  };
  signatures?: Signature[];
  nestedDigests?: unknown;
}

export const V3ALPHA1 = 'ocm.software/v3alpha1';
export const COMPONENT_DESCRIPTOR_FILE = 'component-descriptor.yaml';

/** Largest descriptor read: it is stored as a ComponentDescriptor object, which has the API's 3 MiB limit. */
export const MAX_DESCRIPTOR_BYTES = MAX_BYTES;
/** Most resources, sources or component references in one descriptor. */
export const MAX_DESCRIPTOR_ELEMENTS = 10_000;

export class DescriptorError extends Error {
  override name = 'DescriptorError';
  /** 'DescriptorTooLarge' when the descriptor is over one of the limits above or prescan's depth/alias limits. */
  constructor(
    message: string,
    readonly reason?: 'DescriptorTooLarge',
  ) {
    super(message);
  }
}

// ---- parsing ------------------------------------------------------------------------------

const YAML_READ: YAML.ParseOptions & YAML.DocumentOptions & YAML.SchemaOptions = {
  version: '1.1',
  customTags: (tags) => tags.filter((t) => typeof t === 'string' || t.tag !== 'tag:yaml.org,2002:timestamp'),
};

const isObj = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);

class Check {
  errors: string[] = [];
  str(o: any, key: string, where: string, required = true): void {
    const v = o?.[key];
    if (v === undefined || v === null) {
      if (required) this.errors.push(`${where}.${key} is required`);
    } else if (typeof v !== 'string') this.errors.push(`${where}.${key} must be a string, not ${JSON.stringify(v)}`);
  }
  list(o: any, key: string, where: string): any[] {
    const v = o?.[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.errors.push(`${where}.${key} must be a list`);
      return [];
    }
    return v;
  }
  labels(o: any, where: string): void {
    this.list(o, 'labels', where).forEach((l, i) => {
      if (!isObj(l)) this.errors.push(`${where}.labels[${i}] must be an object`);
      else this.str(l, 'name', `${where}.labels[${i}]`);
    });
  }
  identity(o: any, where: string): void {
    const id = o?.extraIdentity;
    if (id === undefined || id === null) return;
    if (!isObj(id) || Object.values(id).some((v) => typeof v !== 'string')) this.errors.push(`${where}.extraIdentity must map names to strings`);
  }
  digest(o: any, where: string): void {
    const d = o?.digest;
    if (d === undefined || d === null) return;
    if (!isObj(d)) return void this.errors.push(`${where}.digest must be an object`);
    for (const k of ['hashAlgorithm', 'normalisationAlgorithm', 'value']) this.str(d, k, `${where}.digest`);
  }
  access(o: any, where: string): void {
    if (!isObj(o?.access)) this.errors.push(`${where}.access is required (an object with a type)`);
    else this.str(o.access, 'type', `${where}.access`);
  }
}

function fromV3alpha1(doc: any): any {
  const m = doc.metadata ?? {};
  const spec = doc.spec ?? {};
  const out: any = {
    meta: { schemaVersion: doc.apiVersion },
    component: {
      name: m.name,
      version: m.version,
      provider: m.provider,
      ...(m.labels !== undefined && { labels: m.labels }),
      ...(m.creationTime !== undefined && { creationTime: m.creationTime }),
      repositoryContexts: doc.repositoryContexts ?? [],
      sources: spec.sources ?? [],
      componentReferences: spec.references ?? [],
      resources: spec.resources ?? [],
    },
  };
  if (doc.signatures !== undefined) out.signatures = doc.signatures;
  if (doc.nestedDigests !== undefined) out.nestedDigests = doc.nestedDigests;
  return out;
}

/** Parses a descriptor (YAML or JSON, schema v2 or ocm.software/v3alpha1) and checks its required fields. */
export function parseDescriptor(text: string | Buffer): ComponentDescriptor {
  // Size, depth and anchors before the YAML parser sees it (its recursion, not this, ends the process otherwise).
  try {
    prescanYaml(text, 'the component descriptor', { maxBytes: MAX_DESCRIPTOR_BYTES });
  } catch (e) {
    if (e instanceof PrescanError) throw new DescriptorError(e.message, 'DescriptorTooLarge');
    throw e;
  }
  const s = Buffer.isBuffer(text) ? text.toString('utf8') : text;
  let doc: any;
  try {
    doc = YAML.parse(s, YAML_READ);
  } catch (e) {
    throw new DescriptorError(`component descriptor is neither valid YAML nor JSON: ${(e as Error).message}`);
  }
  if (!isObj(doc)) throw new DescriptorError('component descriptor must be an object');
  if (typeof doc.apiVersion === 'string' && doc.kind === 'ComponentVersion') {
    if (doc.apiVersion !== V3ALPHA1) throw new DescriptorError(`unsupported component descriptor apiVersion "${doc.apiVersion}"`);
    doc = fromV3alpha1(doc);
  }
  const c = new Check();
  const schema = doc.meta?.schemaVersion;
  if (schema !== 'v2' && schema !== V3ALPHA1) {
    throw new DescriptorError(schema === undefined ? 'component descriptor has no meta.schemaVersion (expected v2 or ocm.software/v3alpha1)' : `unsupported component descriptor schema version "${schema}"`);
  }
  const comp = doc.component;
  if (!isObj(comp)) throw new DescriptorError('component descriptor has no component');
  for (const key of ['resources', 'sources', 'componentReferences']) {
    const n = Array.isArray(comp[key]) ? comp[key].length : 0;
    if (n > MAX_DESCRIPTOR_ELEMENTS) throw new DescriptorError(`the component descriptor has ${n} ${key}, over the limit of ${MAX_DESCRIPTOR_ELEMENTS}`, 'DescriptorTooLarge');
  }
  c.str(comp, 'name', 'component');
  c.str(comp, 'version', 'component');
  if (isObj(comp.provider)) c.str(comp.provider, 'name', 'component.provider');
  else c.str(comp, 'provider', 'component');
  c.labels(comp, 'component');
  if (isObj(comp.provider)) c.labels(comp.provider, 'component.provider');
  c.str(comp, 'creationTime', 'component', false);
  if (typeof comp.creationTime === 'string') {
    try {
      goTimestamp(comp.creationTime);
    } catch (e) {
      c.errors.push(`component.${(e as Error).message}`);
    }
  }
  const elements = (key: string, f: (e: any, where: string) => void) => {
    const list = c.list(comp, key, 'component');
    list.forEach((e, i) => {
      const where = `component.${key}[${i}]${isObj(e) && typeof e.name === 'string' ? ` (${e.name})` : ''}`;
      if (!isObj(e)) return void c.errors.push(`${where} must be an object`);
      c.str(e, 'name', where);
      c.str(e, 'version', where, false);
      c.identity(e, where);
      c.labels(e, where);
      f(e, where);
      if (e.version == null) e.version = '';
    });
    comp[key] = list;
  };
  elements('resources', (r, where) => {
    c.str(r, 'type', where);
    c.access(r, where);
    c.digest(r, where);
    if (r.relation != null && r.relation !== 'local' && r.relation !== 'external') c.errors.push(`${where}.relation must be local or external`);
  });
  elements('sources', (s, where) => {
    c.str(s, 'type', where);
    c.access(s, where);
  });
  elements('componentReferences', (r, where) => {
    c.str(r, 'componentName', where);
    c.digest(r, where);
  });
  if (comp.repositoryContexts == null) comp.repositoryContexts = [];
  c.list(doc, 'signatures', 'descriptor').forEach((sig, i) => {
    const where = `signatures[${i}]`;
    c.str(sig, 'name', where);
    c.digest(sig, where);
    if (!isObj(sig?.digest)) c.errors.push(`${where}.digest is required`);
    if (!isObj(sig?.signature)) c.errors.push(`${where}.signature is required`);
    else for (const k of ['algorithm', 'value', 'mediaType']) c.str(sig.signature, k, `${where}.signature`);
  });
  if (c.errors.length) throw new DescriptorError(`invalid component descriptor: ${c.errors.join('; ')}`);
  return doc as ComponentDescriptor;
}

// ---- the Go library's struct views ---------------------------------------------------------

/** A creationTime as the library keeps it: UTC, rounded to the second, RFC 3339. */
export function goTimestamp(s: string, strict = true): string {
  const ms = Date.parse(s);
  if (Number.isNaN(ms) || !/^\d{4}-\d\d-\d\dT/.test(s)) {
    if (strict) throw new DescriptorError(`creationTime "${s}" is not an RFC 3339 time`);
    return s;
  }
  return new Date(Math.round(ms / 1000) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const def = <T>(v: T | undefined | null, empty: (v: T) => boolean = () => false): T | undefined => (v === undefined || v === null || empty(v) ? undefined : v);
const emptyList = (v: unknown[]) => v.length === 0;
const emptyMap = (v: object) => Object.keys(v).length === 0;
const emptyStr = (v: string) => v === '';

/** Drops undefined fields (Go's omitempty) from a freshly built object. */
function compact<T extends Record<string, unknown>>(o: T): T {
  for (const k of Object.keys(o)) if (o[k] === undefined) delete o[k];
  return o;
}

export function labelView(l: Label): Record<string, unknown> {
  return compact({
    name: l.name,
    value: 'value' in l ? (l.value ?? null) : undefined,
    access: def(l.access as object),
    digest: def(l.digest as string, emptyStr),
    version: def(l.version, emptyStr),
    signing: l.signing === true || (l.signing as unknown) === 'true' ? true : undefined,
    merge: isObj(l.merge) ? compact({ algorithm: l.merge.algorithm ?? '', config: def(l.merge.config) }) : undefined,
  });
}

const labelsView = (ls: Label[] | undefined) => (ls?.length ? ls.map(labelView) : undefined);
const digestView = (d: DigestSpec | null | undefined) => (isObj(d) ? { hashAlgorithm: d.hashAlgorithm ?? '', normalisationAlgorithm: d.normalisationAlgorithm ?? '', value: d.value ?? '' } : undefined);
const idView = (id: Record<string, string> | null | undefined) => (isObj(id) && !emptyMap(id) ? { ...id } : undefined);
const srcRefView = (s: any) => compact({ identitySelector: def(s?.identitySelector, emptyMap), labels: labelsView(s?.labels) });

function elementView(e: { name: string; version: string; extraIdentity?: Record<string, string> | null; labels?: Label[] }) {
  return { name: e.name, version: e.version ?? '', extraIdentity: idView(e.extraIdentity), labels: labelsView(e.labels) };
}

export function providerObject(p: Provider): { name: string; labels?: Label[] } {
  if (isObj(p)) return p as { name: string; labels?: Label[] };
  try {
    const o = JSON.parse(p);
    if (isObj(o) && typeof o.name === 'string') return o as { name: string; labels?: Label[] };
  } catch {
    /* a plain provider name */
  }
  return { name: p };
}

/** v2's provider string: the name, or the provider as JSON when it has labels. */
export function providerString(p: Provider): string {
  const o = providerObject(p);
  return o.labels?.length ? JSON.stringify(compact({ name: o.name, labels: labelsView(o.labels) })) : o.name;
}

export interface ViewElements {
  resources: Resource[];
  sources: Source[];
  componentReferences: ComponentReference[];
}

/**
 * The component's elements after the v2 decoder's defaulting: a local resource without version gets
 * the component's, and a resource whose name and non-nil extraIdentity clash with another one
 * gets `version` added to its extraIdentity (its original version, as Go's copy semantics have it).
 */
export function v2Defaulted(cd: ComponentDescriptor): ViewElements {
  const copy = structuredClone({ resources: cd.component.resources ?? [], sources: cd.component.sources ?? [], componentReferences: cd.component.componentReferences ?? [] });
  const rs = copy.resources;
  rs.forEach((r, i) => {
    const original = r.version ?? '';
    if (r.relation === 'local' && !r.version) r.version = cd.component.version;
    const same = rs.filter((o) => o.name === r.name && identityEquals(o.extraIdentity, r.extraIdentity)).length;
    if (same > 1 && isObj(rs[i].extraIdentity) && !('version' in rs[i].extraIdentity!)) rs[i].extraIdentity!.version = original;
  });
  return copy;
}

export function identityEquals(a?: Record<string, string> | null, b?: Record<string, string> | null): boolean {
  const ka = Object.keys(a ?? {});
  return ka.length === Object.keys(b ?? {}).length && ka.every((k) => (b ?? {})[k] === (a ?? {})[k]);
}

/** JSON of the Go library's v2 struct for this descriptor (what it serialises and normalises with v1). */
export function v2View(cd: ComponentDescriptor, elements: ViewElements = v2Defaulted(cd)): any {
  const c = cd.component;
  return compact({
    meta: { schemaVersion: 'v2' },
    component: compact({
      name: c.name,
      version: c.version,
      labels: labelsView(c.labels),
      creationTime: c.creationTime ? goTimestamp(c.creationTime, false) : undefined,
      repositoryContexts: c.repositoryContexts ?? [],
      provider: providerString(c.provider),
      sources: elements.sources.map((s) => compact({ ...elementView(s), type: s.type, referenceHints: def(s.referenceHints, emptyList), access: s.access ?? null })),
      componentReferences: elements.componentReferences.map((r) => compact({ ...elementView(r), componentName: r.componentName ?? '', digest: digestView(r.digest) })),
      resources: elements.resources.map((r) =>
        compact({
          ...elementView(r),
          type: r.type,
          referenceHints: def(r.referenceHints, emptyList),
          relation: def(r.relation, emptyStr),
          srcRefs: r.srcRefs?.length ? r.srcRefs.map(srcRefView) : undefined,
          access: r.access ?? null,
          digest: digestView(r.digest),
        }),
      ),
    }),
    signatures: cd.signatures?.length ? cd.signatures.map(signatureView) : undefined,
    nestedDigests: def(cd.nestedDigests as unknown[], emptyList),
  });
}

function signatureView(s: Signature) {
  return compact({
    name: s.name,
    digest: digestView(s.digest),
    signature: compact({ algorithm: s.signature.algorithm, value: s.signature.value, mediaType: s.signature.mediaType, issuer: def(s.signature.issuer, emptyStr) }),
    timestamp: def(s.timestamp),
  });
}

function v3alpha1View(cd: ComponentDescriptor): any {
  const v2 = v2View(cd);
  const c = v2.component;
  const p = providerObject(cd.component.provider);
  return compact({
    apiVersion: V3ALPHA1,
    kind: 'ComponentVersion',
    metadata: compact({ name: c.name, version: c.version, labels: c.labels, provider: compact({ name: p.name, labels: labelsView(p.labels) }), creationTime: c.creationTime }),
    repositoryContexts: c.repositoryContexts,
    spec: compact({ sources: def(c.sources, emptyList), references: def(c.componentReferences, emptyList), resources: def(c.resources, emptyList) }),
    signatures: v2.signatures,
    nestedDigests: v2.nestedDigests,
  });
}

// Strings that go-yaml v2 (YAML 1.1) resolves to something else; it writes them double-quoted.
const GO_AMBIGUOUS = [
  /^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|~|null|Null|NULL|)$/,
  /^[-+]?(?:[0-9_]+|0b[01_]+|0x[0-9a-fA-F_]+|0o[0-7_]+)$/,
  /^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$/,
  /^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$/,
  /^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$/,
  /^\d{4}-\d\d?-\d\d?(?:$|[Tt ]\d\d?:\d\d?:\d\d?)/,
];

/** YAML as the Go library writes it (see the file comment). */
export function goYaml(value: unknown): string {
  const doc = new YAML.Document(value, { sortMapEntries: true });
  YAML.visit(doc, {
    Scalar(_, node) {
      if (typeof node.value === 'string' && !node.value.includes('\n') && GO_AMBIGUOUS.some((re) => re.test(node.value as string))) node.type = 'QUOTE_DOUBLE';
    },
  });
  return doc.toString({ indentSeq: false, lineWidth: 0, singleQuote: true });
}

/** The descriptor as YAML, in its own schema version, byte for byte as the OCM Go library writes it. */
export function serializeDescriptor(cd: ComponentDescriptor): string {
  return goYaml(cd.meta?.schemaVersion === V3ALPHA1 ? v3alpha1View(cd) : v2View(cd));
}

/** The resource with this name whose extraIdentity contains every given entry (all of them, when exact). */
export function findResource(cd: ComponentDescriptor, name: string, extraIdentity?: Record<string, string>, opts: { exact?: boolean } = {}): Resource | undefined {
  const matches = cd.component.resources.filter((r) => {
    if (r.name !== name) return false;
    const id = r.extraIdentity ?? {};
    if (opts.exact) return identityEquals(id, extraIdentity);
    return Object.entries(extraIdentity ?? {}).every(([k, v]) => (k === 'version' && !('version' in id) ? r.version === v : id[k] === v));
  });
  // without an extraIdentity, prefer the resource that has none
  return matches.length > 1 && !extraIdentity ? (matches.find((r) => !Object.keys(r.extraIdentity ?? {}).length) ?? matches[0]) : matches[0];
}

/** The identity the Go library records for an element: extraIdentity + name (+ version when it would clash). */
export function elementIdentity(e: { name: string; version: string; extraIdentity?: Record<string, string> | null }, all: Array<typeof e>): Record<string, string> {
  const id: Record<string, string> = { ...(e.extraIdentity ?? {}), name: e.name };
  if (all.filter((o) => o.name === e.name && identityEquals(o.extraIdentity, e.extraIdentity)).length > 1) id.version = e.version;
  return id;
}

/** An OCI tag for a component version (`+` is not allowed in tags). */
export const versionToTag = (v: string) => v.replace(/\+/g, '.build-');
export const tagToVersion = (t: string) => t.replace(/\.build-/g, '+');
