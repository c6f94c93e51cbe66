// Structural-schema machinery shared by every kind: pruning of unknown fields (what
// fieldValidation=Strict/Warn report), schema defaults and validation (ajv), and ObjectMeta rules.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import type { FieldError, KindDefinition, KubeObject, ObjectMeta } from '../kinds/types.js';
import { Slicer } from './json.js';

type Schema = Record<string, any>;

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const ajv = addFormats(new Ajv({ strict: false, allErrors: true, useDefaults: true, coerceTypes: false }));

/** Joins a JSON pointer into kube's field path notation: /spec/list/0/name -> spec.list[0].name */
export function fieldPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^\d+$/.test(seg)) out += `[${seg}]`;
    else out += out ? `.${seg}` : seg;
  }
  return out;
}

const join = (base: string, key: string) => (base ? `${base}.${key}` : key);

/**
 * Removes fields the schema does not know, in place, and returns their paths. Stops at
 * x-kubernetes-preserve-unknown-fields and at schemas without structure (anyOf etc.).
 */
export function prune(value: unknown, schema: Schema | undefined, path: string, unknown: string[]): void {
  if (!schema || schema['x-kubernetes-preserve-unknown-fields'] === true) return;
  if (Array.isArray(value)) {
    if (schema.items) value.forEach((v, i) => prune(v, schema.items, `${path}[${i}]`, unknown));
    return;
  }
  if (value === null || typeof value !== 'object') return;
  const obj = value as Record<string, unknown>;
  const props: Schema | undefined = schema.properties;
  const extra: Schema | undefined =
    typeof schema.additionalProperties === 'object'
      ? schema.additionalProperties
      : schema.patternProperties
        ? (Object.values(schema.patternProperties)[0] as Schema)
        : undefined;
  if (!props && !extra) {
    if (schema.type === 'object' && schema.additionalProperties !== true) for (const k of Object.keys(obj)) unknown.push(join(path, k)), delete obj[k];
    return;
  }
  // a map whose values' schema has no fields (a ConfigMap's data): nothing in it to prune, and no
  // enumeration of its keys (200,000 of them take 40 ms)
  if (!props && extra && extra.type !== 'object' && !extra.properties && !extra.items && !extra.patternProperties && typeof extra.additionalProperties !== 'object') return;
  for (const k of Object.keys(obj)) {
    const s = props?.[k] ?? extra;
    if (s) prune(obj[k], s, join(path, k), unknown);
    else if (schema.additionalProperties !== true) {
      unknown.push(join(path, k));
      delete obj[k];
    }
  }
}

function describeValue(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v) ?? 'null';
}

function valueAt(root: unknown, pointer: string): unknown {
  let cur: any = root;
  for (const raw of pointer.split('/').slice(1)) {
    if (cur == null) return undefined;
    cur = cur[raw.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return cur;
}

export function ajvToFieldErrors(errors: ErrorObject[], root: unknown): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    const field = fieldPath(e.instancePath);
    const value = valueAt(root, e.instancePath);
    let fe: FieldError;
    switch (e.keyword) {
      case 'required':
        fe = { type: 'FieldValueRequired', field: join(field, e.params.missingProperty), message: 'Required value' };
        break;
      case 'enum':
        fe = {
          type: 'FieldValueNotSupported',
          field,
          message: `Unsupported value: ${describeValue(value)}: supported values: ${(e.params.allowedValues as unknown[]).map(describeValue).join(', ')}`,
        };
        break;
      case 'type':
        fe = { type: 'FieldValueTypeInvalid', field, message: `Invalid value: ${describeValue(value)}: ${field} in body must be of type ${e.params.type}` };
        break;
      case 'pattern':
        fe = { type: 'FieldValueInvalid', field, message: `Invalid value: ${describeValue(value)}: ${field} in body should match '${e.params.pattern}'` };
        break;
      case 'maxLength':
      case 'maxItems':
        fe = { type: 'FieldValueTooLong', field, message: `Too long: ${field} in body ${e.message}` };
        break;
      case 'anyOf':
      case 'oneOf':
        continue; // the branch errors say more
      default:
        fe = { type: 'FieldValueInvalid', field, message: `Invalid value: ${describeValue(value)}: ${field} in body ${e.message}` };
    }
    const id = `${fe.field}|${fe.message}`;
    if (!seen.has(id)) seen.add(id), out.push(fe);
  }
  return out;
}

export interface CompiledKind {
  /** Validates (and applies schema defaults to) the kind-specific top-level fields. */
  validate(obj: KubeObject): FieldError[];
  /** Prunes unknown fields in place (metadata included); returns their paths. */
  prune(obj: KubeObject): string[];
}

const META_FIELDS: Schema = {
  type: 'object',
  properties: Object.fromEntries(
    [
      'name', 'generateName', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp',
      'deletionGracePeriodSeconds', 'selfLink',
    ].map((k) => [k, {}]).concat([
      ['labels', { 'x-kubernetes-preserve-unknown-fields': true }],
      ['annotations', { 'x-kubernetes-preserve-unknown-fields': true }],
      ['finalizers', { 'x-kubernetes-preserve-unknown-fields': true }],
      ['ownerReferences', { 'x-kubernetes-preserve-unknown-fields': true }],
      ['managedFields', { 'x-kubernetes-preserve-unknown-fields': true }],
    ]),
  ),
};

/** `Type.Record(Type.String(), Type.String())`: a map of strings, nothing more. */
const isStringMap = (s: Schema): boolean => {
  const pp = s?.patternProperties;
  if (s?.type !== 'object' || !pp || Object.keys(s).some((k) => k !== 'type' && k !== 'patternProperties' && k !== 'description')) return false;
  const keys = Object.keys(pp);
  return keys.length === 1 && (keys[0] === '^(.*)$' || keys[0] === '^.*$') && Object.keys(pp[keys[0]]).length === 1 && pp[keys[0]].type === 'string';
};
const escapePointer = (k: string) => k.replace(/~/g, '~0').replace(/\//g, '~1');

export function compileKind(def: KindDefinition): CompiledKind {
  const body: Schema = { type: 'object', properties: { ...(def.schema as Schema).properties } };
  if ((def.schema as Schema).required) body.required = (def.schema as Schema).required;
  // Top-level maps of strings (a ConfigMap's data) are checked by a plain loop, with the errors ajv
  // gives: ajv's pattern match per key held the event loop 40-90 ms over 200,000 keys (issue 15).
  const stringMaps = Object.keys(body.properties).filter((k) => isStringMap(body.properties[k]));
  const ajvBody: Schema = { ...body, properties: { ...body.properties } };
  for (const k of stringMaps) ajvBody.properties[k] = { type: 'object' };
  const check: ValidateFunction = ajv.compile(ajvBody);
  const order = new Map(Object.keys(body.properties).map((k, i) => [k, i]));
  const pruneSchema: Schema = {
    type: 'object',
    properties: { apiVersion: {}, kind: {}, metadata: META_FIELDS, ...body.properties },
  };
  return {
    validate(obj) {
      const rest: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(obj)) if (k !== 'apiVersion' && k !== 'kind' && k !== 'metadata') rest[k] = v;
      const errors: ErrorObject[] = check(rest) ? [] : [...(check.errors ?? [])];
      let looped = false;
      for (const p of stringMaps) {
        const m = rest[p];
        if (m === null || typeof m !== 'object' || Array.isArray(m)) continue; // ajv's type error
        for (const k in m as Record<string, unknown>)
          if (typeof (m as Record<string, unknown>)[k] !== 'string') {
            looped = true;
            errors.push({ keyword: 'type', instancePath: `/${escapePointer(p)}/${escapePointer(k)}`, schemaPath: `#/properties/${p}/patternProperties/^(.*)$/type`, params: { type: 'string' }, message: 'must be string' });
          }
      }
      if (looped) {
        // in ajv's order: errors of the object itself, then field by field in the schema's order
        const rank = (e: ErrorObject) => {
          const seg = e.instancePath.split('/')[1];
          return seg === undefined ? -1 : (order.get(seg.replace(/~1/g, '/').replace(/~0/g, '~')) ?? -1);
        };
        errors.sort((a, b) => rank(a) - rank(b));
      }
      const errs = errors.length ? ajvToFieldErrors(errors, rest) : [];
      Object.assign(obj, rest); // schema defaults
      return errs;
    },
    prune(obj) {
      const unknown: string[] = [];
      prune(obj, pruneSchema, '', unknown);
      return unknown;
    },
  };
}

// ---- ObjectMeta rules (k8s.io/apimachinery/pkg/api/validation) ----

const DNS1123_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?';
const DNS1123_SUBDOMAIN = `${DNS1123_LABEL}(\\.${DNS1123_LABEL})*`;
const subdomainRe = new RegExp(`^${DNS1123_SUBDOMAIN}$`);
const labelRe = new RegExp(`^${DNS1123_LABEL}$`);

export function validateSubdomain(value: string): string | undefined {
  if (value.length > 253) return 'must be no more than 253 characters';
  if (!subdomainRe.test(value))
    return `a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '${DNS1123_SUBDOMAIN}')`;
  return undefined;
}

export function validateLabel(value: string): string | undefined {
  if (value.length > 63) return 'must be no more than 63 characters';
  if (!labelRe.test(value))
    return `a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '${DNS1123_LABEL}')`;
  return undefined;
}

const isAlnum = (c: number) => (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
/** `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]` (qualifiedNameRe, labelValueRe) as a loop: no regex per key. */
function isQualifiedNamePart(v: string, from = 0, to = v.length): boolean {
  if (to <= from || !isAlnum(v.charCodeAt(from)) || !isAlnum(v.charCodeAt(to - 1))) return false;
  for (let i = from + 1; i < to - 1; i++) {
    const c = v.charCodeAt(i);
    if (!isAlnum(c) && c !== 0x2d && c !== 0x5f && c !== 0x2e) return false;
  }
  return true;
}

export function validateQualifiedName(value: string): string | undefined {
  const slash = value.indexOf('/');
  // the common case, a name of at most 63 characters without a prefix: no split, no regex
  if (slash < 0 && value.length <= 63 && isQualifiedNamePart(value)) return undefined;
  const parts = slash < 0 ? [value] : value.split('/');
  let name = value;
  if (parts.length === 2) {
    const prefixErr = parts[0].length === 0 ? 'prefix part must be non-empty' : validateSubdomain(parts[0]);
    if (prefixErr) return `prefix part ${prefixErr}`;
    name = parts[1];
  } else if (parts.length > 2) {
    return "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')";
  }
  if (name.length === 0) return 'name part must be non-empty';
  if (name.length > 63) return 'name part must be no more than 63 characters';
  if (!isQualifiedNamePart(name))
    return "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
  return undefined;
}

const invalidValue = (field: string, value: unknown, why: string): FieldError => ({
  type: 'FieldValueInvalid',
  field,
  message: `Invalid value: ${describeValue(value)}: ${why}`,
});

/** In slices: a lookup of each of 200,000 keys after their enumeration, in the same turn, took 10 to 20 ms more. */
async function allStrings(m: Record<string, unknown>, keys: string[], slicer: Slicer): Promise<boolean> {
  for (let i = 0; i < keys.length; i++) {
    if (slicer.due()) await slicer.yield();
    if (typeof m[keys[i]] !== 'string') return false;
  }
  return true;
}

const MAX_ANNOTATIONS_BYTES = 256 * 1024;

/** Validates the user-settable parts of ObjectMeta, in slices (apiserver/json.ts). `nameRule` is the kind's name format. */
export async function validateObjectMeta(meta: ObjectMeta, namespaced: boolean, nameRule: (v: string) => string | undefined = validateSubdomain): Promise<FieldError[]> {
  const slicer = new Slicer();
  const errs: FieldError[] = [];
  if (typeof meta.name !== 'string' || meta.name === '') {
    errs.push({ type: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' });
  } else {
    const e = nameRule(meta.name);
    if (e) errs.push(invalidValue('metadata.name', meta.name, e));
  }
  if (namespaced && meta.namespace !== undefined) {
    const e = typeof meta.namespace === 'string' ? validateLabel(meta.namespace) : 'must be a string';
    if (e) errs.push(invalidValue('metadata.namespace', meta.namespace, e));
  }
  for (const [field, allowValue] of [['labels', true], ['annotations', false]] as const) {
    const m = meta[field];
    if (m === undefined || m === null) continue;
    // One enumeration of the map (Object.keys of 200,000 keys takes tens of ms; for-in more)
    const keys = m !== null && typeof m === 'object' && !Array.isArray(m) ? Object.keys(m) : undefined;
    if (keys) slicer.count(keys.length); // (the lookups after it in a turn of their own)
    if (!keys || !(await allStrings(m as Record<string, unknown>, keys, slicer))) {
      errs.push({ type: 'FieldValueTypeInvalid', field: `metadata.${field}`, message: `Invalid value: ${describeValue(m)}: must be a map of string keys to string values` });
      continue;
    }
    let size = 0;
    for (let i = 0; i < keys.length; i++) {
      if (slicer.due()) await slicer.yield();
      const k = keys[i];
      const v = m[k];
      const ke = validateQualifiedName(k);
      if (ke) errs.push(invalidValue(`metadata.${field}`, k, ke));
      if (allowValue) {
        if (v.length > 63) errs.push(invalidValue(`metadata.labels`, v, 'must be no more than 63 characters'));
        else if (v !== '' && !isQualifiedNamePart(v))
          errs.push(invalidValue(`metadata.labels`, v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
      }
      size += k.length + v.length;
    }
    if (!allowValue && size > MAX_ANNOTATIONS_BYTES)
      errs.push({ type: 'FieldValueTooLong', field: 'metadata.annotations', message: `Too long: must have at most ${MAX_ANNOTATIONS_BYTES} bytes` });
  }
  if (meta.finalizers !== undefined) {
    if (!Array.isArray(meta.finalizers) || meta.finalizers.some((f) => typeof f !== 'string')) {
      errs.push({ type: 'FieldValueTypeInvalid', field: 'metadata.finalizers', message: 'Invalid value: must be a list of strings' });
    } else {
      for (let i = 0; i < meta.finalizers.length; i++) {
        if (slicer.due()) await slicer.yield();
        const f = meta.finalizers[i];
        const e = validateQualifiedName(f);
        if (e) errs.push(invalidValue(`metadata.finalizers[${i}]`, f, e));
      }
      // apimachinery pkg/api/validation/objectmeta.go ValidateFinalizers
      if (meta.finalizers.includes('orphan') && meta.finalizers.includes('foregroundDeletion'))
        errs.push(invalidValue('metadata.finalizers', meta.finalizers, 'finalizer orphan and foregroundDeletion cannot be both set'));
    }
  }
  if (meta.ownerReferences !== undefined) {
    if (!Array.isArray(meta.ownerReferences)) {
      errs.push({ type: 'FieldValueTypeInvalid', field: 'metadata.ownerReferences', message: 'Invalid value: must be a list' });
    } else {
      let controllers = 0;
      meta.ownerReferences.forEach((r, i) => {
        for (const f of ['apiVersion', 'kind', 'name', 'uid'] as const)
          if (typeof r?.[f] !== 'string' || r[f] === '') errs.push({ type: 'FieldValueRequired', field: `metadata.ownerReferences[${i}].${f}`, message: 'Required value' });
        if (r?.controller === true) controllers++;
      });
      if (controllers > 1)
        errs.push(invalidValue('metadata.ownerReferences', meta.ownerReferences.length, 'Only one reference can have Controller set to true'));
    }
  }
  return errs;
}
