// What the Localization and Configurator providers share:
//
// - finding a component resource by identity, possibly in a referenced component (`referencePath`);
// - loading the component's ConfigData (`config.ocm.software/v1alpha1`, the format of the Go
//   ocm-controller: `configuration: {defaults, schema, rules}` and `localization: [...]`) from
//   `spec.configRef` or, without one, from the component's resource of type `configdata.ocm.software`;
// - editing YAML files of a snapshot at paths like `spec.template.spec.containers[0].image`, so
//   that every byte the edit does not need to touch stays as it was (comments, quoting, indentation,
//   document markers). See SnapshotEditor.
import zlib from 'node:zlib';
import YAML, { type Document, isAlias, isMap, isPair, isScalar, isSeq, type Node, type Pair, Scalar, YAMLMap, type YAMLSeq } from 'yaml';
import { readTar } from '../ocm/archive.js';
import { BudgetCache, leaseMemory, PARSED_HEAP_PER_BYTE, YAML_HEAP_PER_BYTE } from '../registry/memory-budget.js';
import { MAX_BYTES, PrescanError, prescanYaml } from '../apiserver/prescan.js';
import { type ComponentDescriptor, type Resource, findResource } from '../ocm/descriptor.js';
import { DigestMismatch, isDigestMismatch } from '../reconcilers/runtime/errors.js';
import { parseConfigDataOffThread } from './edit-worker.js';
import type { ActionContext, Files } from './types.js';

export const CONFIG_DATA_API_VERSION = 'config.ocm.software/v1alpha1';
export const CONFIG_DATA_KIND = 'ConfigData';
/** Resource type of a ConfigData resource; used when a provider has no configRef. */
export const CONFIG_DATA_RESOURCE_TYPE = 'configdata.ocm.software';
const MAX_CONFIG_DATA_BYTES = 16 << 20;
export { YAML_HEAP_PER_BYTE } from '../registry/memory-budget.js';
/** A text over prescan's limits (size, depth, anchors), as a TransformError naming it. */
function prescanned(text: Buffer | string, what: string, documents: number): void {
  try {
    prescanYaml(text, what, { maxBytes: MAX_BYTES, maxDocuments: documents });
  } catch (e) {
    if (e instanceof PrescanError) throw new TransformError(e.message);
    throw e;
  }
}

/** A rule or ConfigData that cannot be applied; the reconciler reports the message as a condition. */
export class TransformError extends Error {
  override name = 'TransformError';
}

/** A reference path step that names no component reference of the component it is at. */
export class ReferenceNotFound extends TransformError {
  override name = 'ReferenceNotFound';
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);
const q = (s: unknown) => JSON.stringify(s);

// ---------------------------------------------------------------------------------------------
// Components and resources
// ---------------------------------------------------------------------------------------------

/** A component version as getResourceContent needs it. */
export interface ComponentHandle {
  descriptor: ComponentDescriptor;
  manifest: unknown;
}

/** {name, extraIdentity?, referencePath?}: a resource by identity (kinds/common.ts ResourceReference). */
export interface ResourceRef {
  name: string;
  extraIdentity?: Record<string, string>;
  referencePath?: Array<Record<string, string>>;
}

export const componentName = (c: ComponentHandle) => `${c.descriptor.component.name}:${c.descriptor.component.version}`;

const identityText = (id: Record<string, string> | undefined) =>
  id && Object.keys(id).length ? ` with extraIdentity ${Object.entries(id).map(([k, v]) => `${k}=${v}`).join(',')}` : '';

/** `resource "image"`, `resource "image" with extraIdentity architecture=arm64`. */
export const resourceText = (ref: ResourceRef) =>
  `resource ${q(ref.name)}${identityText(ref.extraIdentity)}${ref.referencePath?.length ? ` (reference path ${ref.referencePath.map((s) => s.name).join('/')})` : ''}`;

/**
 * Resolves resources of the Action's component version and of the components it references.
 * Referenced component versions are read from the same repository, once per run, and checked
 * against the reference's digest when it has one.
 */
export class ComponentResolver {
  readonly root: ComponentHandle;
  private readonly cache = new Map<string, Promise<ComponentHandle>>();

  constructor(private readonly ctx: Pick<ActionContext, 'componentVersion' | 'repository'>) {
    this.root = ctx.componentVersion;
  }

  /** The component at the end of `path` (identities of component references), starting at `base`. */
  async follow(base: ComponentHandle, path: Array<Record<string, string>> | undefined): Promise<ComponentHandle> {
    let cur = base;
    for (const step of path ?? []) {
      if (!isRecord(step) || typeof step.name !== 'string') throw new TransformError(`reference path step ${q(step)} has no name`);
      const refs = cur.descriptor.component.componentReferences ?? [];
      const ref = refs.find(
        (r) =>
          r.name === step.name &&
          Object.entries(step).every(([k, v]) => k === 'name' || (k === 'version' ? r.version === v : (r.extraIdentity ?? {})[k] === v)),
      );
      if (!ref) {
        const have = refs.map((r) => r.name).join(', ') || 'none';
        throw new ReferenceNotFound(`component ${componentName(cur)} has no component reference ${q(step.name)}${identityText(Object.fromEntries(Object.entries(step).filter(([k]) => k !== 'name')))} (it has: ${have})`);
      }
      const key = `${ref.componentName}:${ref.version}:${ref.digest?.value ?? ''}`;
      let next = this.cache.get(key);
      if (!next) {
        next = (async () => {
          const child = await this.ctx.repository.getReferencedVersion(cur.descriptor, ref).catch((err) => {
            throw isDigestMismatch(err) ? new DigestMismatch((err as Error).message, 'DigestMismatch', { cause: err }) : err;
          });
          return { descriptor: child.descriptor, manifest: child.manifest };
        })();
        this.cache.set(key, next);
      }
      cur = await next;
    }
    return cur;
  }

  /** The resource `ref` names, in `base` or in the component its referencePath leads to. */
  async resource(base: ComponentHandle, ref: ResourceRef): Promise<{ resource: Resource; component: ComponentHandle }> {
    const component = await this.follow(base, ref.referencePath);
    const resource = findResource(component.descriptor, ref.name, ref.extraIdentity && Object.keys(ref.extraIdentity).length ? ref.extraIdentity : undefined);
    if (!resource) {
      const have = component.descriptor.component.resources
        .map((r) => r.name + (r.extraIdentity && Object.keys(r.extraIdentity).length ? `[${Object.entries(r.extraIdentity).map(([k, v]) => `${k}=${v}`).join(',')}]` : ''))
        .join(', ');
      throw new TransformError(`component ${componentName(component)} has no resource ${q(ref.name)}${identityText(ref.extraIdentity)} (it has: ${have || 'none'})`);
    }
    return { resource, component };
  }
}

/**
 * A resource reference as ConfigData and the kinds write it: `{name, extraIdentity?, referencePath?}`;
 * also the flat identity of the OCM library's localization format (`{name: image, architecture: arm64}`:
 * every other string attribute is extra identity) and a bare resource name.
 */
export function toResourceRef(v: unknown, where: string): ResourceRef {
  if (typeof v === 'string' && v) return { name: v };
  if (!isRecord(v) || typeof v.name !== 'string' || !v.name) throw new TransformError(`${where}: resource must name a resource ({name: ..., extraIdentity: {...}})`);
  const extra: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (k === 'name' || k === 'extraIdentity' || k === 'referencePath') continue;
    if (typeof val === 'string') extra[k] = val;
  }
  if (v.extraIdentity !== undefined && v.extraIdentity !== null) {
    if (!isRecord(v.extraIdentity) || Object.values(v.extraIdentity).some((x) => typeof x !== 'string')) throw new TransformError(`${where}: resource.extraIdentity must map names to strings`);
    Object.assign(extra, v.extraIdentity);
  }
  let referencePath: Array<Record<string, string>> | undefined;
  if (v.referencePath !== undefined && v.referencePath !== null) {
    if (!Array.isArray(v.referencePath) || v.referencePath.some((s) => !isRecord(s) || typeof s.name !== 'string')) {
      throw new TransformError(`${where}: resource.referencePath must be a list of component reference identities ({name: ...})`);
    }
    referencePath = v.referencePath as Array<Record<string, string>>;
  }
  return { name: v.name, ...(Object.keys(extra).length && { extraIdentity: extra }), ...(referencePath?.length && { referencePath }) };
}

// ---------------------------------------------------------------------------------------------
// ConfigData
// ---------------------------------------------------------------------------------------------

export interface ConfigRule {
  value: unknown;
  file: string;
  path: string;
}

export interface ConfigData {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; [k: string]: unknown };
  configuration?: {
    defaults?: Record<string, unknown>;
    schema?: Record<string, unknown> | boolean;
    rules?: ConfigRule[];
  };
  /** The rules, as written (checked when applied, so that the message can name the rule). */
  localization?: Array<Record<string, unknown>>;
}

/** A ConfigData and where it came from. */
export interface LoadedConfigData {
  config: ConfigData;
  /** The component holding the ConfigData resource: its localization rules name resources of that component. */
  component: ComponentHandle;
  resource: Resource;
  /** `ConfigData "name" (resource "config" of acme.org/app:1.0.0)`, for messages. */
  what: string;
}

/** YAML 1.1 as the Go tools read it (yes/no are booleans), timestamps left as strings. */
export const YAML_11: YAML.ParseOptions & YAML.DocumentOptions & YAML.SchemaOptions = {
  version: '1.1',
  merge: true,
  customTags: (tags) => tags.filter((t) => typeof t === 'string' || t.tag !== 'tag:yaml.org,2002:timestamp'),
};

/** A ConfigMap's or Secret's values (spec.valuesFrom); a Secret's error says only where it failed. */
export function parseValues(text: string, what: string, secret: boolean): unknown {
  try {
    // logLevel: the parser's warnings (an unknown tag, ...) go to stderr with the line they are on.
    return YAML.parse(text, { ...YAML_11, logLevel: 'error' });
  } catch (e) {
    // A parser message may quote the text (an alias name); for a Secret say only where it failed.
    const err = e as Error & { linePos?: { line: number; col: number }[] };
    const at = err.linePos?.[0] ? ` at line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
    throw new TransformError(`${what}: not valid YAML or JSON: ${secret ? `${err.name}${at}` : err.message.split('\n')[0]}`);
  }
}

// Parsed ConfigData by text: every Localization and Configurator run of a component version reads
// the same one. Failures are not kept (their message names where the text came from).
// Over 64 KiB the text is parsed in the worker thread of providers/edit-worker.ts (issue 15).
// Counted in the in-memory budget (its key, two bytes a character, and the parse), 16 MiB at most.
const parsedConfigs = new BudgetCache<ConfigData>(16 << 20);
async function parsedConfigData(text: Buffer, what: string): Promise<ConfigData> {
  if (text.length > 64 << 10) return parseConfigDataOffThread(text, what);
  const key = text.toString('utf8');
  let c = parsedConfigs.get(key);
  if (!c) {
    const parsed = parseConfigData(key, what);
    parsedConfigs.set(key, () => parsed, (2 + PARSED_HEAP_PER_BYTE) * key.length);
    c = parsed;
  }
  return structuredClone(c);
}

/** Parses and checks a ConfigData document. `what` names it in messages. */
export function parseConfigData(text: string | Buffer, what = 'ConfigData'): ConfigData {
  const s = Buffer.isBuffer(text) ? text.toString('utf8') : text;
  let doc: unknown;
  try {
    doc = YAML.parse(s, YAML_11);
  } catch (e) {
    throw new TransformError(`${what} is not valid YAML: ${(e as Error).message.split('\n')[0]}`);
  }
  if (!isRecord(doc)) throw new TransformError(`${what} is not a ConfigData: it must be a map with configuration and/or localization`);
  if (doc.apiVersion !== undefined && doc.apiVersion !== CONFIG_DATA_API_VERSION) {
    throw new TransformError(`${what} has apiVersion ${q(doc.apiVersion)}; expected ${CONFIG_DATA_API_VERSION}`);
  }
  if (doc.kind !== undefined && doc.kind !== CONFIG_DATA_KIND) throw new TransformError(`${what} has kind ${q(doc.kind)}; expected ${CONFIG_DATA_KIND}`);
  if (doc.kind === undefined && doc.apiVersion === undefined && doc.configuration === undefined && doc.localization === undefined) {
    throw new TransformError(`${what} is not a ConfigData: it has none of apiVersion, kind, configuration and localization`);
  }
  const errs: string[] = [];
  const c = doc.configuration;
  if (c !== undefined && c !== null) {
    if (!isRecord(c)) errs.push('configuration must be a map');
    else {
      if (c.defaults != null && !isRecord(c.defaults)) errs.push('configuration.defaults must be a map');
      if (c.schema != null && !isRecord(c.schema) && typeof c.schema !== 'boolean') errs.push('configuration.schema must be a JSON schema (a map)');
      if (c.rules != null) {
        if (!Array.isArray(c.rules)) errs.push('configuration.rules must be a list');
        else
          c.rules.forEach((r, i) => {
            if (!isRecord(r)) return void errs.push(`configuration.rules[${i}] must be a map with value, file and path`);
            if (!('value' in r)) errs.push(`configuration.rules[${i}].value is required`);
            for (const k of ['file', 'path']) if (typeof r[k] !== 'string' || !r[k]) errs.push(`configuration.rules[${i}].${k} is required (a string)`);
          });
      }
    }
  }
  if (doc.localization != null) {
    if (!Array.isArray(doc.localization)) errs.push('localization must be a list of rules');
    else doc.localization.forEach((r, i) => isRecord(r) || errs.push(`localization[${i}] must be a map`));
  }
  if (errs.length) throw new TransformError(`${what} is invalid: ${errs.join('; ')}`);
  return doc as ConfigData;
}

const isGzip = (b: Buffer) => b.length > 2 && b[0] === 0x1f && b[1] === 0x8b;
const isTar = (b: Buffer) => b.length >= 512 && b.toString('latin1', 257, 262) === 'ustar';

/** The ConfigData text in a resource's bytes: plain YAML/JSON, gzipped, or the one YAML file of a tar. */
async function configDataText(data: Buffer, what: string): Promise<Buffer> {
  let raw = data;
  // Each piece leased from the in-memory budget before it is held (registry/memory-budget.ts).
  if (isGzip(raw)) {
    await leaseMemory(MAX_CONFIG_DATA_BYTES);
    try {
      raw = zlib.gunzipSync(raw, { maxOutputLength: MAX_CONFIG_DATA_BYTES });
    } catch (e) {
      throw new TransformError(`${what}: cannot decompress: ${(e as Error).message}`);
    }
  }
  if (!isTar(raw)) return raw;
  await leaseMemory(raw.length);
  const files = await readTar(raw, MAX_CONFIG_DATA_BYTES);
  const all = [...files.entries()];
  if (all.length === 1) return all[0][1];
  const yamls = all.filter(([n]) => /\.(ya?ml|json)$/i.test(n));
  const configs = yamls.filter(([, b]) => /^kind:\s*ConfigData\s*$/m.test(b.toString('utf8')));
  const pick = configs.length === 1 ? configs : yamls;
  if (pick.length !== 1) throw new TransformError(`${what} is an archive of ${all.length} files (${all.map(([n]) => n).join(', ')}); cannot tell which one is the ConfigData`);
  return pick[0][1];
}

/**
 * The ConfigData of a provider: the resource `configRef` names (resolved from the Action's
 * component, following its referencePath), or without configRef the component's only resource of
 * type `configdata.ocm.software`.
 */
export async function loadConfigData(ctx: Pick<ActionContext, 'repository'>, resolver: ComponentResolver, configRef: unknown): Promise<LoadedConfigData> {
  let resource: Resource;
  let component: ComponentHandle;
  if (configRef !== undefined && configRef !== null) {
    const ref = toResourceRef(configRef, 'spec.configRef');
    try {
      ({ resource, component } = await resolver.resource(resolver.root, ref));
    } catch (e) {
      if (e instanceof TransformError) throw new TransformError(`spec.configRef: ${e.message}`);
      if (e instanceof DigestMismatch) throw new DigestMismatch(`spec.configRef: ${e.message}`, e.reason, { cause: e });
      throw e;
    }
  } else {
    component = resolver.root;
    const found = component.descriptor.component.resources.filter((r) => r.type?.toLowerCase().replace(/\/v\w+$/, '') === CONFIG_DATA_RESOURCE_TYPE);
    if (found.length !== 1) {
      throw new TransformError(
        found.length
          ? `component ${componentName(component)} has ${found.length} resources of type ${CONFIG_DATA_RESOURCE_TYPE} (${found.map((r) => r.name).join(', ')}); set spec.configRef to choose one`
          : `component ${componentName(component)} has no resource of type ${CONFIG_DATA_RESOURCE_TYPE}; set spec.configRef to the resource holding the ConfigData`,
      );
    }
    resource = found[0];
  }
  const where = `resource ${q(resource.name)} of ${componentName(component)}`;
  const content = await ctx.repository.getResourceContent(component, resource, { maxBytes: MAX_CONFIG_DATA_BYTES });
  const text = await configDataText(content.data, `ConfigData ${where}`);
  prescanned(text, `ConfigData ${where}`, 1);
  // the syntax tree, the value and the copy handed out
  await leaseMemory((YAML_HEAP_PER_BYTE + 2 * PARSED_HEAP_PER_BYTE) * text.length);
  const config = await parsedConfigData(text, `ConfigData ${where}`);
  const name = typeof config.metadata?.name === 'string' ? config.metadata.name : undefined;
  const what = name ? `ConfigData ${q(name)} (${where})` : `ConfigData (${where})`;
  return { config, component, resource, what };
}

// ---------------------------------------------------------------------------------------------
// YAML paths
// ---------------------------------------------------------------------------------------------

/** One step of a YAML path: a map key, a list index, or the list item whose `field` equals a value. */
export type PathSegment = { key: string } | { index: number } | { field: string; equals: string };

/**
 * Parses `spec.template.spec.containers[0].image`. Also: `a.0.b` and `a.[0]` (spiff style) for
 * indexes, `metadata.annotations["prometheus.io/port"]` or `a\.b` for keys with dots, and
 * `containers[name=backend].image` for the list item whose `name` is `backend`. A leading `.` is ignored.
 */
export function parseYamlPath(path: string): PathSegment[] {
  const segs: PathSegment[] = [];
  const bad = (why: string) => new TransformError(`invalid path ${q(path)}: ${why}`);
  let i = path.startsWith('.') ? 1 : 0;
  while (i < path.length) {
    const ch = path[i];
    if (ch === '[') {
      const end = findClose(path, i);
      if (end < 0) throw bad('unclosed [');
      const inner = path.slice(i + 1, end).trim();
      if (/^\d+$/.test(inner)) segs.push({ index: Number(inner) });
      else if (/^(["']).*\1$/s.test(inner)) segs.push({ key: unquote(inner) });
      else {
        const m = /^([^=]+?)\s*==?\s*(.*)$/s.exec(inner);
        if (!m || !m[2]) throw bad(`[${inner}] is neither an index, a quoted key nor field=value`);
        segs.push({ field: m[1].trim(), equals: /^(["']).*\1$/s.test(m[2]) ? unquote(m[2]) : m[2].trim() });
      }
      i = end + 1;
      if (i < path.length) {
        if (path[i] === '.') {
          i++;
          if (i >= path.length) throw bad('ends with .');
        } else if (path[i] !== '[') throw bad(`unexpected ${q(path[i])} after ]`);
      }
      continue;
    }
    // a key, up to the next unescaped . or [
    let key = '';
    while (i < path.length && path[i] !== '.' && path[i] !== '[') {
      if (path[i] === '\\' && i + 1 < path.length) i++;
      key += path[i++];
    }
    if (!key) {
      if (path[i] === '[') continue; // `a.[0]`
      throw bad('empty key');
    }
    segs.push({ key });
    if (path[i] === '.') {
      i++;
      if (i >= path.length) throw bad('ends with .');
    }
  }
  if (!segs.length) throw bad('empty');
  return segs;
}

function findClose(s: string, open: number): number {
  let quote = '';
  for (let i = open + 1; i < s.length; i++) {
    const c = s[i];
    if (quote) {
      if (c === '\\') i++;
      else if (c === quote) quote = '';
    } else if (c === '"' || c === "'") quote = c;
    else if (c === ']') return i;
  }
  return -1;
}

function unquote(s: string): string {
  if (s.startsWith('"')) {
    try {
      return JSON.parse(s);
    } catch {
      return s.slice(1, -1);
    }
  }
  return s.slice(1, -1).replace(/''/g, "'");
}

/** Reads a path from a plain JS value (the Configurator's values); `found: false` when absent. */
export function getValueAt(root: unknown, segs: PathSegment[]): { found: boolean; value?: unknown; ancestors: unknown[] } {
  let cur = root;
  const ancestors: unknown[] = [];
  for (const seg of segs) {
    ancestors.unshift(cur);
    if (isRecord(cur) && 'key' in seg && Object.hasOwn(cur, seg.key)) cur = cur[seg.key];
    else if (Array.isArray(cur)) {
      let idx: number | undefined;
      if ('index' in seg) idx = seg.index;
      else if ('key' in seg && /^\d+$/.test(seg.key)) idx = Number(seg.key);
      else if ('field' in seg) idx = cur.findIndex((it) => isRecord(it) && String(it[seg.field]) === seg.equals);
      if (idx === undefined || idx < 0 || idx >= cur.length) return { found: false, ancestors };
      cur = cur[idx];
    } else return { found: false, ancestors };
  }
  return { found: true, value: cur, ancestors };
}

// ---------------------------------------------------------------------------------------------
// Editing YAML files of a snapshot, keeping everything else byte for byte
// ---------------------------------------------------------------------------------------------

// Strings that YAML 1.1 readers (go-yaml v2, hence kubectl and Flux) take for something else: written quoted.
const YAML11_AMBIGUOUS = [
  /^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF|~|null|Null|NULL|)$/,
  /^[-+]?(?:[0-9_]+|0b[01_]+|0x[0-9a-fA-F_]+|0o?[0-7_]+)$/,
  /^[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?$/,
  /^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$/,
  /^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$/,
  /^\d{4}-\d\d?-\d\d?(?:$|[Tt ]\d\d?:\d\d?:\d\d?)/,
];
const ambiguous = (s: string) => YAML11_AMBIGUOUS.some((re) => re.test(s));

type Scalarish = string | number | boolean | null;
const isScalarValue = (v: unknown): v is Scalarish => v === null || ['string', 'number', 'boolean'].includes(typeof v);

/** A YAML node for a value, strings that YAML 1.1 would misread double-quoted. */
function createNode(doc: Document, value: unknown): Node {
  const node = doc.createNode(value) as Node;
  YAML.visit(node, {
    Scalar(_, s) {
      if (typeof s.value === 'string' && (s.value.includes('\n') ? false : ambiguous(s.value))) s.type = Scalar.QUOTE_DOUBLE;
    },
  });
  return node;
}

interface StringifyStyle {
  indent: number;
  indentSeq: boolean;
}

const stringifyOptions = (style: StringifyStyle): YAML.ToStringOptions => ({
  indent: style.indent,
  indentSeq: style.indentSeq,
  lineWidth: 0,
  minContentWidth: 0,
  flowCollectionPadding: false,
});

/** How the file indents: the first nested map's indentation, and whether lists under a key are indented. */
function detectStyle(src: string): StringifyStyle {
  const lines = src.split('\n');
  let indent = 0;
  let indentSeq: boolean | undefined;
  for (let i = 0; i + 1 < lines.length; i++) {
    const m = /^( *)(?:- +)?[^\s#-][^#]*:\s*(?:#.*)?$/.exec(lines[i]);
    if (!m) continue;
    const keyCol = lines[i].search(/[^\s-]/);
    let j = i + 1;
    while (j < lines.length && /^\s*(?:#.*)?$/.test(lines[j])) j++;
    if (j >= lines.length) break;
    const next = lines[j];
    const col = next.search(/\S/);
    if (next.slice(col).startsWith('- ') || next.slice(col) === '-') {
      if (indentSeq === undefined) indentSeq = col > keyCol;
    } else if (!indent && col > keyCol) indent = col - keyCol;
    if (indent && indentSeq !== undefined) break;
  }
  return { indent: indent || 2, indentSeq: indentSeq ?? true };
}

const col = (src: string, offset: number) => offset - (src.lastIndexOf('\n', offset - 1) + 1);

interface DocState {
  doc: Document.Parsed;
  /** Rewritten as a whole (an edit the byte-level splices cannot express). */
  structural: boolean;
  /** Scalars whose value changed in place (and whether they sit in a flow collection). */
  scalars: Map<Scalar, boolean>;
  /** Pairs added to block maps of the source. */
  inserts: Array<{ map: YAMLMap; pair: Pair }>;
  /** Values replaced by collections (or collections by values): the source range and how to write the new value there. */
  replaces: Replace[];
}

interface Replace {
  start: number;
  end: number;
  /**
   * `block`: a map entry's scalar value, written after the `:` (a collection on the following lines);
   * `lines`: the lines of a map entry's block collection, replaced by those of another collection;
   * `flow`: written in place, on one line.
   */
  mode: 'block' | 'lines' | 'flow';
  keyCol: number;
  /** `lines`: the column and kind of the replaced collection's items. */
  itemCol?: number;
  wasSeq?: boolean;
  inFlow: boolean;
  /** Source range of the replaced node: records of edits inside it are dropped. */
  oldRange: [number, number];
  /** The slot whose current value is written … */
  pair?: Pair;
  seq?: YAMLSeq;
  index?: number;
  /** … or a flow map of the source that got a new key, written again from the model. */
  node?: YAMLMap;
}

const inside = (r: readonly number[], outer: readonly number[]) => outer[0] <= r[0] && r[1] <= outer[1];

/** Forgets the edits recorded inside `range` (a node being replaced: the model holds what they did). */
function prune(d: DocState, range: readonly number[]): void {
  for (const s of [...d.scalars.keys()]) if (inside(s.range!, range)) d.scalars.delete(s);
  d.inserts = d.inserts.filter((i) => !inside(i.map.range!, range));
  d.replaces = d.replaces.filter((r) => !inside(r.oldRange, range));
}

/** Inside a flow map that is written again from the model. */
const covered = (d: DocState, range: readonly number[]) => d.replaces.some((r) => r.node && inside(range, r.oldRange));

interface FileState {
  name: string;
  src: string;
  docs: DocState[];
  style: StringifyStyle;
  json: boolean;
  changed: boolean;
}

type Walk =
  | { ok: true; node: unknown; pair?: Pair; seq?: YAMLSeq; index?: number; inFlow: boolean; concrete: Array<string | number> }
  | { ok: false; depth: number; reason: string; parentMap?: YAMLMap; parentNull?: boolean; key?: string; concrete: Array<string | number> };

function deref(doc: Document, node: unknown): unknown {
  return isAlias(node) ? node.resolve(doc) : node;
}

function scalarText(n: unknown): string | undefined {
  if (isScalar(n)) return n.value === null ? undefined : String(n.value);
  return undefined;
}

function findPair(map: YAMLMap, key: string): Pair | undefined {
  return (map.items as Pair[]).find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === key);
}

function walk(doc: Document, segs: PathSegment[]): Walk {
  let cur: unknown = doc.contents;
  let inFlow = false;
  const concrete: Array<string | number> = [];
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i];
    const last = i === segs.length - 1;
    cur = deref(doc, cur);
    const fail = (reason: string, extra: Partial<Extract<Walk, { ok: false }>> = {}): Walk => ({ ok: false, depth: i, reason, concrete, ...extra });
    const here = i === 0 ? 'the document' : q(concrete.map((c, j) => (typeof c === 'number' ? `[${c}]` : j ? `.${c}` : c)).join(''));
    if (isMap(cur)) {
      inFlow ||= !!cur.flow;
      const key = 'key' in seg ? seg.key : 'index' in seg ? String(seg.index) : undefined;
      if (key === undefined) return fail(`${here} is a map, not a list`);
      const pair = findPair(cur, key);
      if (!pair) return last ? fail(`${here} has no key ${q(key)}`, { parentMap: cur, key }) : fail(`${here} has no key ${q(key)}`);
      concrete.push(key);
      if (last) return { ok: true, node: pair.value, pair, inFlow, concrete };
      cur = pair.value;
    } else if (isSeq(cur)) {
      inFlow ||= !!cur.flow;
      let idx: number | undefined;
      if ('index' in seg) idx = seg.index;
      else if ('key' in seg && /^\d+$/.test(seg.key)) idx = Number(seg.key);
      else if ('field' in seg) {
        idx = cur.items.findIndex((it) => {
          const m = deref(doc, it);
          return isMap(m) && scalarText(deref(doc, m.get(seg.field, true))) === seg.equals;
        });
        if (idx < 0) return fail(`${here} has no item with ${seg.field}=${seg.equals}`);
      }
      if (idx === undefined) return fail(`${here} is a list, not a map`);
      if (idx >= cur.items.length) return fail(`${here} has ${cur.items.length} item${cur.items.length === 1 ? '' : 's'}, no index ${idx}`);
      concrete.push(idx);
      if (last) return { ok: true, node: cur.items[idx], seq: cur as YAMLSeq, index: idx, inFlow, concrete };
      cur = cur.items[idx];
    } else if (cur === null || cur === undefined || (isScalar(cur) && cur.value === null)) {
      if (last && 'key' in seg) return fail(`${here} is empty`, { parentNull: true, key: seg.key });
      return fail(`${here} is empty`);
    } else return fail(`${here} is a scalar`);
  }
  return { ok: false, depth: 0, reason: 'empty path', concrete };
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || (typeof a === 'number' && typeof b === 'number' && Number.isNaN(a) && Number.isNaN(b));
}

/** The text of a scalar written in place of `orig`, in its quoting style where that is possible. */
function inlineScalar(value: Scalarish, orig: Scalar, inFlow: boolean): string | undefined {
  const render = (type?: Scalar.Type) => {
    const s = new Scalar(value);
    if (type) s.type = type;
    return new YAML.Document(s).toString({ lineWidth: 0, minContentWidth: 0 }).replace(/\n$/, '');
  };
  let text: string;
  if (typeof value === 'string') {
    let type: Scalar.Type = Scalar.PLAIN;
    if (value.includes('\n') || ambiguous(value)) type = Scalar.QUOTE_DOUBLE;
    else if (orig.type === Scalar.QUOTE_DOUBLE || orig.type === Scalar.QUOTE_SINGLE) type = orig.type;
    text = render(type);
    if (inFlow && !/^["']/.test(text) && /[,[\]{}]/.test(text)) text = render(Scalar.QUOTE_DOUBLE);
  } else text = render();
  return text.includes('\n') || text.startsWith('---') ? undefined : text;
}

/**
 * The files of a snapshot, edited at YAML paths. Every document of a file is a candidate: a path
 * is set in every document where it exists. Where it exists nowhere, the last key is added to the
 * document whose parent map exists, when exactly one does (several: an error, the path is
 * ambiguous). List indexes and intermediate keys must exist.
 *
 * Output keeps the original bytes except the edited values: a changed scalar is replaced in place
 * (keeping its quoting style unless the new value needs quotes, strings that YAML 1.1 readers
 * would misread are double-quoted), a new key is inserted after the last entry of its block map
 * at that map's indentation. Edits that cannot be expressed that way (a scalar replaced by a map,
 * a key added to a flow map, a block scalar) rewrite only the documents they touch, with the
 * file's indentation. The result is parsed again and compared with the intended values.
 */
export class SnapshotEditor {
  private readonly states = new Map<string, FileState>();

  constructor(private readonly files: Files) {}

  has(file: string): boolean {
    return Object.hasOwn(this.files, normalizeFile(file));
  }

  /**
   * requireFile, after leasing what parsing the file holds from the in-memory budget (its syntax
   * tree, YAML_HEAP_PER_BYTE per byte); a file over 3 MiB is refused before.
   */
  async open(file: string, what: string): Promise<void> {
    const name = normalizeFile(file);
    const buf = Object.hasOwn(this.files, name) ? this.files[name] : undefined;
    if (buf && !this.states.has(name)) {
      if (buf.length > MAX_BYTES) throw new TransformError(`${what}: file ${q(name)} is ${buf.length} bytes; a file to edit is at most ${MAX_BYTES} bytes`);
      await leaseMemory(YAML_HEAP_PER_BYTE * buf.length);
    }
    this.requireFile(file, what);
  }

  /** Throws (naming `what`) unless `file` is in the snapshot and is YAML. */
  requireFile(file: string, what: string): void {
    this.checkPath(file, what);
    this.state(normalizeFile(file), what);
  }

  /** Throws (naming `what`) unless `file` is a relative path without `..`. */
  checkPath(file: string, what: string): void {
    const name = normalizeFile(file);
    if (name.split('/').includes('..') || name.startsWith('/')) throw new TransformError(`${what}: file ${q(file)} must be a path relative to the root of the snapshot, without '..'`);
  }

  /** Sets `path` in `file` to `value`; `what` names the rule in error messages. Returns the number of documents changed. */
  set(file: string, path: string, value: unknown, what: string): number {
    this.requireFile(file, what);
    const name = normalizeFile(file);
    const st = this.state(name, what);
    let segs: PathSegment[];
    try {
      segs = parseYamlPath(path);
    } catch (e) {
      throw new TransformError(`${what}: ${(e as Error).message}`);
    }
    const walks = st.docs.map((d) => (d.doc.contents === null ? undefined : walk(d.doc, segs)));
    const found = walks.flatMap((w, i) => (w?.ok ? [i] : []));
    let targets: number[] = found;
    if (!found.length) {
      const creatable = walks.flatMap((w, i) => (w && !w.ok && (w.parentMap || w.parentNull) ? [i] : []));
      if (creatable.length > 1) {
        throw new TransformError(
          `${what}: path ${q(path)} is in no document of file ${q(name)}, and ${creatable.length} documents (${creatable.map((i) => i + 1).join(', ')}) could take it; the rule is ambiguous`,
        );
      }
      if (!creatable.length) {
        const best = walks.filter((w): w is Extract<Walk, { ok: false }> => !!w && !w.ok).sort((a, b) => b.depth - a.depth)[0];
        const docs = st.docs.length > 1 ? `any of the ${st.docs.length} documents of file ${q(name)}` : `file ${q(name)}`;
        throw new TransformError(`${what}: path ${q(path)} is not in ${docs}${best ? ` (${best.reason})` : ' (the file is empty)'}`);
      }
      targets = creatable;
    }
    let changed = 0;
    for (const i of targets) if (this.apply(st, st.docs[i], walks[i]!, value)) changed++;
    if (changed) st.changed = true;
    return changed;
  }

  /** The edited files (unchanged files are the input's buffers). */
  result(): Files {
    const out: Files = { ...this.files };
    for (const st of this.states.values()) if (st.changed) out[st.name] = Buffer.from(render(st));
    return out;
  }

  private state(name: string, what: string): FileState {
    let st = this.states.get(name);
    if (st) return st;
    const buf = this.files[name];
    if (!buf) {
      const have = Object.keys(this.files).sort();
      const list = have.length > 20 ? `${have.slice(0, 20).join(', ')}, … (${have.length} files)` : have.join(', ') || 'none';
      throw new TransformError(`${what}: file ${q(name)} is not in the input snapshot (it has: ${list})`);
    }
    prescanned(buf, `${what}: file ${q(name)}`, 100_000);
    const src = buf.toString('utf8');
    const docs = YAML.parseAllDocuments(src, { uniqueKeys: false });
    if (!Array.isArray(docs)) throw new TransformError(`${what}: file ${q(name)} is not YAML`);
    const errors = docs.flatMap((d) => d.errors);
    if (errors.length) throw new TransformError(`${what}: file ${q(name)} is not valid YAML: ${errors[0].message.split('\n')[0]}`);
    st = {
      name,
      src,
      docs: docs.map((doc) => ({ doc, structural: false, scalars: new Map(), inserts: [], replaces: [] })),
      style: /\.json$/i.test(name) ? { indent: /^( +)\S/m.exec(src)?.[1].length ?? 2, indentSeq: true } : detectStyle(src),
      json: /\.json$/i.test(name),
      changed: false,
    };
    this.states.set(name, st);
    return st;
  }

  private apply(st: FileState, d: DocState, w: Walk, value: unknown): boolean {
    const doc = d.doc;
    if (w.ok) {
      const node = w.node;
      if (isScalar(node) && isScalarValue(value)) {
        if (sameValue(node.value, value)) return false;
        const block = node.type === Scalar.BLOCK_FOLDED || node.type === Scalar.BLOCK_LITERAL;
        const text = node.range ? inlineScalar(value, node, w.inFlow) : '';
        node.value = value;
        if (typeof value === 'string' && ambiguous(value) && !value.includes('\n')) node.type = Scalar.QUOTE_DOUBLE;
        else if (block && !(typeof value === 'string' && value.includes('\n'))) node.type = undefined;
        if (!node.range || covered(d, node.range)) return true;
        if (block || text === undefined) d.structural = true;
        else d.scalars.set(node, w.inFlow);
        return true;
      }
      if (!isScalarValue(value) && isCollectionNode(node) && sameValue(JSON.stringify(node.toJSON()), JSON.stringify(value))) return false;
      const fresh = createNode(doc, value);
      if (w.pair) w.pair.value = fresh;
      else if (w.seq && w.index !== undefined) w.seq.items[w.index] = fresh;
      const slot = (r: Replace) => (w.pair ? r.pair === w.pair : r.seq === w.seq && r.index === w.index);
      if (d.replaces.some(slot)) return true; // replaced before: written from the model
      if (!isNodeObject(node) || !node.range) {
        if (isNodeObject(node)) return true; // inside an added subtree: written with it
        d.structural = true;
        return true;
      }
      if (covered(d, node.range)) return true;
      prune(d, node.range);
      const plan = planReplace(st.src, w, node);
      if (plan) d.replaces.push({ ...plan, inFlow: w.inFlow, oldRange: [node.range[0], node.range[1]], pair: w.pair, seq: w.seq, index: w.index });
      else d.structural = true;
      return true;
    }
    if (w.parentMap && w.key !== undefined) {
      const map = w.parentMap;
      const pair = doc.createPair(w.key, null);
      pair.value = createNode(doc, value);
      map.items.push(pair);
      if (!map.range || covered(d, map.range)) return true; // written with an added or rewritten map
      const anchor = (map.items as Pair[]).filter((p) => isPair(p) && (p.key as Node | null)?.range).pop();
      if (map.flow) {
        prune(d, map.range);
        const r: [number, number] = [map.range[0], map.range[1]];
        d.replaces.push({ start: r[0], end: r[1], mode: 'flow', keyCol: 0, inFlow: true, oldRange: r, node: map });
      } else if (!anchor) d.structural = true;
      else d.inserts.push({ map, pair });
      return true;
    }
    // the parent is empty (`data:` or `data: null`): becomes a map holding the key
    const parentPath = w.concrete;
    doc.setIn(parentPath, createNode(doc, { [w.key!]: value }));
    d.structural = true;
    return true;
  }
}

const isNodeObject = (n: unknown): n is Node => isScalar(n) || isMap(n) || isSeq(n) || isAlias(n);
const isCollectionNode = (n: unknown): n is YAMLMap | YAMLSeq => isMap(n) || isSeq(n);

/** Where and how a value replaced by a collection (or a flow collection replaced by anything) is written. */
function planReplace(src: string, w: Extract<Walk, { ok: true }>, old: unknown): Omit<Replace, 'inFlow' | 'pair' | 'seq' | 'index' | 'oldRange' | 'node'> | undefined {
  if (!isNodeObject(old) || !old.range) return undefined;
  const blockScalar = isScalar(old) && (old.type === Scalar.BLOCK_FOLDED || old.type === Scalar.BLOCK_LITERAL);
  const key = w.pair?.key as Node | undefined;
  if (isCollectionNode(old) && !old.flow && !w.inFlow && key?.range && old.items.length) {
    // `key:  # comment` stays; the lines of the collection are replaced
    const m = /^[ \t]*:[ \t]*(?:#[^\n]*)?\r?\n/.exec(src.slice(key.range[1]));
    if (!m || src[old.range[1] - 1] !== '\n') return undefined;
    const start = key.range[1] + m[0].length;
    if (start > old.range[0]) return undefined;
    return { start, end: old.range[1], mode: 'lines', keyCol: col(src, key.range[0]), itemCol: col(src, old.range[0]), wasSeq: isSeq(old) };
  }
  if (blockScalar || isAlias(old) || (isCollectionNode(old) && !old.flow)) return undefined;
  if (isScalar(old) && !w.inFlow && key?.range) {
    let start = old.range[0];
    while (start > 0 && (src[start - 1] === ' ' || src[start - 1] === '\t')) start--;
    if (src[start - 1] !== ':') return undefined;
    return { start, end: old.range[1], mode: 'block', keyCol: col(src, key.range[0]) };
  }
  return { start: old.range[0], end: old.range[1], mode: 'flow', keyCol: 0 };
}

/** The text of a Replace, from the model's current value; undefined when it cannot be written in place. */
function replaceText(st: FileState, r: Replace): string | undefined {
  const cur = r.node ?? (r.pair ? r.pair.value : r.seq!.items[r.index!]);
  if (r.mode === 'lines') {
    if (!isCollectionNode(cur) || !cur.items.length) return undefined;
    const indent = isSeq(cur) === r.wasSeq ? r.itemCol! : r.keyCol + (isSeq(cur) && !st.style.indentSeq ? 0 : st.style.indent);
    const body = new YAML.Document(cur).toString(stringifyOptions(st.style));
    return body
      .replace(/\n$/, '')
      .split('\n')
      .map((l) => (l ? ' '.repeat(indent) + l : l))
      .join('\n')
      .concat('\n');
  }
  const sep = r.mode === 'block' ? ' ' : '';
  if (isScalar(cur)) {
    const text = isScalarValue(cur.value) ? inlineScalar(cur.value, cur, r.inFlow) : undefined;
    return text === undefined ? undefined : sep + text;
  }
  if (!isCollectionNode(cur)) return undefined;
  if (r.mode === 'flow' || cur.items.length === 0) {
    const flow = cur.clone() as YAMLMap | YAMLSeq;
    // its comments stay where they are in the source
    flow.comment = flow.commentBefore = undefined;
    flow.spaceBefore = false;
    YAML.visit(flow, {
      Map(_, n) {
        n.flow = true;
      },
      Seq(_, n) {
        n.flow = true;
      },
    });
    const text = new YAML.Document(flow).toString({ lineWidth: 0, minContentWidth: 0, flowCollectionPadding: false }).replace(/\n$/, '');
    return text.includes('\n') ? undefined : sep + text;
  }
  const indent = r.keyCol + (isSeq(cur) && !st.style.indentSeq ? 0 : st.style.indent);
  const body = new YAML.Document(cur).toString(stringifyOptions(st.style)).replace(/\n$/, '');
  return `\n${body
    .split('\n')
    .map((l) => (l ? ' '.repeat(indent) + l : l))
    .join('\n')}`;
}

export const normalizeFile = (f: string) => f.replace(/\\/g, '/').replace(/^(\.\/)+/, '').replace(/\/{2,}/g, '/');

function renderDocStructural(st: FileState, d: DocState): string {
  if (st.json) {
    const js = d.doc.toJS();
    const indent = st.style.indent;
    return JSON.stringify(js, null, indent) + '\n';
  }
  return d.doc.toString(stringifyOptions(st.style));
}

function render(st: FileState): string {
  const { src } = st;
  type Edit = { start: number; end: number; text: string; order: number };
  const edits: Edit[] = [];
  let order = 0;
  st.docs.forEach((d, i) => {
    const mine = d.structural ? undefined : docEdits(st, d, () => order++);
    if (mine) return void edits.push(...mine);
    const start = i === 0 ? 0 : st.docs[i - 1].doc.range[2];
    const end = i === st.docs.length - 1 ? src.length : d.doc.range[2];
    edits.push({ start, end, text: renderDocStructural(st, d), order: order++ });
  });
  edits.sort((a, b) => a.start - b.start || a.order - b.order);
  const crlf = src.includes('\r\n');
  let out = '';
  let pos = 0;
  for (const e of edits) {
    if (e.start < pos) return renderAll(st); // overlapping edits: rewrite
    out += src.slice(pos, e.start) + (crlf ? e.text.replace(/\r?\n/g, '\r\n') : e.text);
    pos = e.end;
  }
  out += src.slice(pos);
  return checked(st, out) ? out : renderAll(st);
}

/** The in-place edits of one document; undefined when one cannot be written in place. */
function docEdits(st: FileState, d: DocState, next: () => number): Array<{ start: number; end: number; text: string; order: number }> | undefined {
  const { src } = st;
  const edits: Array<{ start: number; end: number; text: string; order: number }> = [];
  // JSON stays JSON: values in place are written as JSON, anything else rewrites the file as JSON
  if (st.json && (d.replaces.length || d.inserts.length)) return undefined;
  for (const [s, inFlow] of d.scalars) {
    const text = st.json ? JSON.stringify(s.value) : inlineScalar(s.value as Scalarish, s, inFlow);
    if (text === undefined) return undefined;
    edits.push({ start: s.range![0], end: s.range![1], text, order: next() });
  }
  for (const r of d.replaces) {
    const text = replaceText(st, r);
    if (text === undefined) return undefined;
    edits.push({ start: r.start, end: r.end, text, order: next() });
  }
  for (const { map, pair } of d.inserts) {
    const anchor = (map.items as Pair[]).filter((p) => (p.key as Node | null)?.range).pop()!;
    const first = (map.items as Pair[])[0];
    const indent = col(src, (first.key as Node).range![0]);
    let at = Math.max((anchor.key as Node).range![2], (anchor.value as Node | null)?.range?.[2] ?? 0);
    let prefix = '';
    if (src[at - 1] !== '\n') {
      const nl = src.indexOf('\n', at);
      if (nl < 0) {
        at = src.length;
        prefix = '\n';
      } else at = nl + 1;
    }
    const tmp = new YAML.Document(new YAMLMap());
    (tmp.contents as YAMLMap).items.push(pair);
    const body = tmp
      .toString(stringifyOptions(st.style))
      .replace(/\n$/, '')
      .split('\n')
      .map((l) => (l ? ' '.repeat(indent) + l : l))
      .join('\n');
    edits.push({ start: at, end: at, text: `${prefix}${body}\n`, order: next() - indent * 1e6 });
  }
  return edits;
}

function renderAll(st: FileState): string {
  if (st.json && st.docs.length === 1) return renderDocStructural(st, st.docs[0]);
  const out = st.docs.map((d) => d.doc.toString(stringifyOptions(st.style))).join('');
  if (!checked(st, out)) throw new TransformError(`internal error: file ${q(st.name)} could not be rewritten faithfully`);
  return out;
}

/** The output parses to exactly the values the edits intended. */
function checked(st: FileState, out: string): boolean {
  try {
    const again = YAML.parseAllDocuments(out, { uniqueKeys: false });
    if (!Array.isArray(again) || again.some((d) => d.errors.length)) return false;
    const want = st.docs.filter((d) => d.doc.contents !== null).map((d) => d.doc.toJS());
    const got = again.filter((d) => d.contents !== null).map((d) => d.toJS());
    return JSON.stringify(want) === JSON.stringify(got);
  } catch {
    return false;
  }
}
