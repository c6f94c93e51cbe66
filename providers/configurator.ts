// Action provider Configurator: applies configuration values to the files of the input snapshot.
//
// Values, lowest precedence first, merged deep (maps merge key by key, anything else replaces):
//   1. `configuration.defaults` of the ConfigData (spec.configRef, or the component's resource of
//      type configdata.ocm.software);
//   2. `spec.values`: a map, or a list of maps merged in order;
//   3. `spec.valuesFrom`: ConfigMap/Secret entries (YAML or JSON maps), in order; a missing object
//      or key fails the run unless the entry is `optional`.
// Strings of the form `(( expression ))` in the merged values are evaluated (spiff style, below),
// then the values are validated against `configuration.schema` (JSON schema, ajv; errors name the
// path of the offending value), then each of `configuration.rules` ({value, file, path}) writes its
// value, usually `(( name ))`, at `path` in `file` (providers/configdata.ts SnapshotEditor: only
// the changed values change in the file).
//
// Expressions (a subset of spiff's dynaml): references to values (`a.b.c`, `list[0]`, `list.[0]`,
// resolved from the innermost enclosing map outwards, as spiff does), string literals ("…"),
// numbers, true/false/nil, juxtaposition to concatenate (`(( "v" version ))`), + - * / % on
// numbers, parentheses, and `a || b` (b when a is undefined or nil). `((! …))` is a literal.
import { BudgetCache, PARSED_HEAP_PER_BYTE } from '../registry/memory-budget.js';
import { Ajv, type AnySchema, type ErrorObject, type ValidateFunction } from 'ajv';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { configuratorValues } from '../kinds/configurator.js';
import { isRecord, specOf } from '../kinds/common.js';
import { ComponentResolver, type ConfigData, TransformError, getValueAt, loadConfigData, parseValues, parseYamlPath } from './configdata.js';
import { parseValuesOffThread, SnapshotEdits } from './edit-worker.js';
import type { ActionContext, ActionProvider } from './types.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;
const q = (s: unknown) => JSON.stringify(s);

// ---------------------------------------------------------------------------------------------
// Merging values
// ---------------------------------------------------------------------------------------------

/** Deep merge: maps merge key by key, lists and scalars of `over` replace those of `base`. Inputs are not changed. */
export function mergeValues(base: unknown, over: unknown): unknown {
  if (isRecord(base) && isRecord(over)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(over)) out[k] = Object.hasOwn(base, k) ? mergeValues(base[k], v) : structuredClone(v);
    return out;
  }
  return structuredClone(over);
}

/** Reads the maps of spec.valuesFrom through ctx.readValue, in order. */
async function valuesFrom(ctx: Pick<ActionContext, 'readValue'>, refs: unknown): Promise<Record<string, unknown>[]> {
  if (refs === undefined || refs === null) return [];
  if (!Array.isArray(refs)) throw new TransformError('spec.valuesFrom must be a list');
  const out: Record<string, unknown>[] = [];
  for (const [i, ref] of refs.entries()) {
    const r = (ref ?? {}) as { kind?: string; name?: string; key?: string; optional?: boolean };
    const key = r.key || 'values.yaml';
    const what = `spec.valuesFrom[${i}] (${r.kind} ${q(r.name)}, key ${q(key)})`;
    if (r.kind !== 'ConfigMap' && r.kind !== 'Secret') throw new TransformError(`${what}: kind must be ConfigMap or Secret`);
    if (!r.name) throw new TransformError(`${what}: name is required`);
    const text = await ctx.readValue(r.kind, r.name, key);
    if (text === undefined) {
      if (r.optional) continue;
      throw new TransformError(`${what}: ${r.kind} ${q(r.name)} or its key ${q(key)} does not exist (set optional: true to go on without it)`);
    }
    // over 64 KiB parsed in the worker thread of providers/edit-worker.ts (issue 15)
    const v = text.length > 64 << 10 ? await parseValuesOffThread(text, what, r.kind === 'Secret') : parseValues(text, what, r.kind === 'Secret');
    if (v === null || v === undefined) continue;
    if (!isRecord(v)) throw new TransformError(`${what}: must hold a map of values, not ${Array.isArray(v) ? 'a list' : typeof v}`);
    out.push(v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// (( expressions ))
// ---------------------------------------------------------------------------------------------

class Undefined extends Error {}

type Token = { t: 'num'; v: number } | { t: 'str'; v: string } | { t: 'ref'; v: string } | { t: 'op'; v: string };

function tokenize(src: string, what: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  const bad = (why: string) => new TransformError(`${what}: cannot parse (( ${src} )): ${why}`);
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (src.startsWith('||', i)) {
      out.push({ t: 'op', v: '||' });
      i += 2;
    } else if ('()+-*/%'.includes(c)) {
      out.push({ t: 'op', v: c });
      i++;
    } else if (c === '"') {
      let j = i + 1;
      let s = '';
      while (j < src.length && src[j] !== '"') {
        if (src[j] === '\\' && j + 1 < src.length) {
          const e = src[++j];
          s += e === 'n' ? '\n' : e === 't' ? '\t' : e;
        } else s += src[j];
        j++;
      }
      if (j >= src.length) throw bad('unterminated string');
      out.push({ t: 'str', v: s });
      i = j + 1;
    } else if (/[0-9]/.test(c)) {
      const m = /^[0-9]+(?:\.[0-9]+)?/.exec(src.slice(i))!;
      out.push({ t: 'num', v: Number(m[0]) });
      i += m[0].length;
    } else if (/[A-Za-z_$~]/.test(c)) {
      // a reference: identifiers with - and _, dots, [index] / [field=value] / ["key"]
      let j = i;
      while (j < src.length) {
        if (/[A-Za-z0-9_$~.-]/.test(src[j])) j++;
        else if (src[j] === '[') {
          const end = src.indexOf(']', j);
          if (end < 0) throw bad('unclosed [');
          j = end + 1;
        } else break;
      }
      out.push({ t: 'ref', v: src.slice(i, j) });
      i = j;
    } else throw bad(`unexpected ${q(c)}`);
  }
  return out;
}

interface Scope {
  /** Enclosing maps/lists of the expression, innermost first; the last is the root of the values. */
  scopes: unknown[];
  depth: number;
  what: string;
  root: unknown;
}

/** Evaluates a string that is a whole `(( … ))` expression; anything else is returned as it is (collections resolved deep). */
function resolve(value: unknown, sc: Scope): unknown {
  if (sc.depth > 32) throw new TransformError(`${sc.what}: expressions refer to each other in a cycle`);
  if (typeof value === 'string') {
    const m = /^\(\(([\s\S]*)\)\)$/.exec(value.trim());
    if (!m) return value;
    if (m[1].startsWith('!')) return `((${m[1].slice(1)}))`;
    return evaluate(m[1], sc);
  }
  if (Array.isArray(value)) return value.map((v) => resolve(v, { ...sc, scopes: [value, ...sc.scopes] }));
  if (isRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = resolve(v, { ...sc, scopes: [value, ...sc.scopes] });
    return out;
  }
  return value;
}

function evaluate(src: string, sc: Scope): unknown {
  const toks = tokenize(src, sc.what);
  let pos = 0;
  const peek = () => toks[pos];
  const isOp = (v: string) => peek()?.t === 'op' && peek()!.v === v;
  const err = (why: string) => new TransformError(`${sc.what}: (( ${src.trim()} )): ${why}`);
  // Each parse function returns a thunk, so that `||` can evaluate its left side lazily.
  type Thunk = () => unknown;
  const orExpr = (): Thunk => {
    let left = concat();
    while (isOp('||')) {
      pos++;
      const l = left;
      const r = concat();
      left = () => {
        try {
          const v = l();
          return v === null || v === undefined ? r() : v;
        } catch (e) {
          if (e instanceof Undefined) return r();
          throw e;
        }
      };
    }
    return left;
  };
  const startsPrimary = () => {
    const t = peek();
    return !!t && (t.t !== 'op' || t.v === '(');
  };
  const concat = (): Thunk => {
    const parts = [additive()];
    while (startsPrimary()) parts.push(additive());
    if (parts.length === 1) return parts[0];
    return () => {
      const vals = parts.map((p) => p());
      if (vals.every(Array.isArray)) return (vals as unknown[][]).flat(1);
      if (vals.every((v) => ['string', 'number', 'boolean'].includes(typeof v))) return vals.map(String).join('');
      throw err('only strings, numbers and booleans (or only lists) can be concatenated');
    };
  };
  const arith = (next: () => Thunk, ops: string[]) => (): Thunk => {
    let left = next();
    while (peek()?.t === 'op' && ops.includes(String(peek()!.v))) {
      const op = String(toks[pos++].v);
      const l = left;
      const r = next();
      left = () => {
        const a = l();
        const b = r();
        if (typeof a !== 'number' || typeof b !== 'number') throw err(`${op} needs numbers, not ${q(a)} and ${q(b)}`);
        if ((op === '/' || op === '%') && b === 0) throw err('division by zero');
        switch (op) {
          case '+':
            return a + b;
          case '-':
            return a - b;
          case '*':
            return a * b;
          case '/':
            return Number.isInteger(a) && Number.isInteger(b) ? Math.trunc(a / b) : a / b;
          default:
            return a % b;
        }
      };
    }
    return left;
  };
  const primary = (): Thunk => {
    const t = toks[pos++];
    if (!t) throw err('unexpected end');
    if (t.t === 'num' || t.t === 'str') return () => t.v;
    if (t.t === 'op' && t.v === '-') {
      const inner = primary();
      return () => {
        const v = inner();
        if (typeof v !== 'number') throw err(`- needs a number, not ${q(v)}`);
        return -v;
      };
    }
    if (t.t === 'op' && t.v === '(') {
      const inner = orExpr();
      if (!isOp(')')) throw err('missing )');
      pos++;
      return inner;
    }
    if (t.t === 'ref') {
      if (t.v === 'true' || t.v === 'false') return () => t.v === 'true';
      if (t.v === 'nil' || t.v === '~') return () => null;
      return () => reference(t.v);
    }
    throw err(`unexpected ${q(t.v)}`);
  };
  const multiplicative = arith(primary, ['*', '/', '%']);
  const additive = arith(multiplicative, ['+', '-']);

  const reference = (path: string): unknown => {
    let segs;
    try {
      segs = parseYamlPath(path);
    } catch (e) {
      throw err((e as Error).message);
    }
    const first = segs[0];
    for (const scope of sc.scopes) {
      if (!(isRecord(scope) && 'key' in first && Object.hasOwn(scope, first.key))) continue;
      const hit = getValueAt(scope, segs);
      if (!hit.found) break;
      // the value may itself be an expression, evaluated in its own scope
      const scopes = [...hit.ancestors, ...sc.scopes.slice(sc.scopes.indexOf(scope) + 1)];
      return resolve(hit.value, { ...sc, scopes, depth: sc.depth + 1 });
    }
    const keys = isRecord(sc.root) ? Object.keys(sc.root) : [];
    throw new Undefined(`${q(path)} is not defined in the values (top-level keys: ${keys.join(', ') || 'none'})`);
  };

  const thunk = orExpr();
  if (pos < toks.length) throw err(`unexpected ${q(toks[pos].v)}`);
  try {
    return thunk();
  } catch (e) {
    if (e instanceof Undefined) throw err(e.message);
    throw e;
  }
}

/** Evaluates the `(( … ))` expressions of the merged values (they may refer to each other). */
export function resolveValues(values: Record<string, unknown>, what = 'values'): Record<string, unknown> {
  return resolve(values, { scopes: [], depth: 0, what, root: values }) as Record<string, unknown>;
}

/** A rule's value: an expression evaluated against the values, or a literal. */
export function ruleValue(value: unknown, values: Record<string, unknown>, what: string): unknown {
  return resolve(value, { scopes: [values], depth: 0, what, root: values });
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

function errorPath(e: ErrorObject): string {
  const parts = e.instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'));
  const extra =
    e.keyword === 'additionalProperties'
      ? (e.params as { additionalProperty: string }).additionalProperty
      : e.keyword === 'required'
        ? (e.params as { missingProperty: string }).missingProperty
        : e.keyword === 'unevaluatedProperties'
          ? (e.params as { unevaluatedProperty: string }).unevaluatedProperty
          : undefined;
  if (extra !== undefined) parts.push(extra);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : /^[A-Za-z0-9_-]+$/.test(p) ? (out ? `.${p}` : p) : `[${q(p)}]`;
  return out || '(root)';
}

function errorText(e: ErrorObject): string {
  switch (e.keyword) {
    case 'additionalProperties':
    case 'unevaluatedProperties':
      return 'is not allowed by the schema (no such property)';
    case 'required':
      return 'is required';
    case 'enum':
      return `must be one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => q(v)).join(', ')}`;
    default:
      return e.message ?? e.keyword;
  }
}

// Compiled validators by dialect and schema text: compiling (a new Ajv with its meta-schemas, then
// code generation) costs far more than validating, and every pipeline run of a component version
// sees the same schema.
// Counted in the in-memory budget as its schema text's parse twice over (the schema and its code), 32 MiB at most.
const compiled = new BudgetCache<ValidateFunction>(32 << 20);

/** Validates values against a ConfigData's JSON schema; throws naming each offending path. */
export function validateValues(values: unknown, schema: Record<string, unknown> | boolean, what: string): void {
  let s: AnySchema = schema;
  let AjvClass: typeof Ajv = Ajv;
  if (isRecord(schema) && typeof schema.$schema === 'string') {
    if (schema.$schema.includes('2020-12')) AjvClass = Ajv2020 as unknown as typeof Ajv;
    else if (schema.$schema.includes('2019-09')) AjvClass = Ajv2019 as unknown as typeof Ajv;
    else if (!/draft-0[67]/.test(schema.$schema)) {
      // draft-04 and unknown dialects: validated with draft-07 rules
      const { $schema: _, ...rest } = schema;
      s = rest;
    }
  }
  const cacheKey = `${AjvClass.name}\0${JSON.stringify(s)}`;
  let validate = compiled.get(cacheKey);
  if (!validate) {
    try {
      validate = addFormats(new AjvClass({ strict: false, allErrors: true })).compile(s);
    } catch (e) {
      throw new TransformError(`${what}: configuration.schema is not a valid JSON schema: ${(e as Error).message}`);
    }
    const made = validate;
    compiled.set(cacheKey, () => made, (2 + 2 * PARSED_HEAP_PER_BYTE) * cacheKey.length);
  }
  if (validate(values)) return;
  // `if` only says that `then`/`else` failed, which is reported on its own
  const msgs = [...new Set((validate.errors ?? []).filter((e) => e.keyword !== 'if').map((e) => `${errorPath(e)}: ${errorText(e)}`))];
  throw new TransformError(`configuration values do not match the schema of ${what}: ${msgs.join('; ')}`);
}

// ---------------------------------------------------------------------------------------------
// The provider
// ---------------------------------------------------------------------------------------------

/** The merged, evaluated values a Configurator applies (exported for tests and status). */
export async function configurationValues(ctx: Pick<ActionContext, 'readValue' | 'provider'>, config: ConfigData, what: string): Promise<Record<string, unknown>> {
  const spec = specOf(ctx.provider);
  const layers: Record<string, unknown>[] = [config.configuration?.defaults ?? {}, ...configuratorValues(ctx.provider), ...(await valuesFrom(ctx, spec.valuesFrom))];
  const merged = layers.reduce<Record<string, unknown>>((acc, l) => mergeValues(acc, l) as Record<string, unknown>, {});
  const values = resolveValues(merged);
  const schema = config.configuration?.schema;
  if (schema !== undefined && schema !== null) validateValues(values, schema, what);
  return values;
}

export const configuratorProvider: ActionProvider = {
  kind: 'Configurator',
  async run(ctx) {
    const spec = specOf(ctx.provider);
    const resolver = new ComponentResolver(ctx);
    const cfg = await loadConfigData(ctx, resolver, spec.configRef);
    const values = await configurationValues(ctx, cfg.config, cfg.what);
    const editor = new SnapshotEdits(ctx.input.files); // large files edited off the event loop
    try {
      for (const [i, rule] of (cfg.config.configuration?.rules ?? []).entries()) {
        const label = `configuration rule ${i} of ${cfg.what} (file ${q(rule.file)}, path ${q(rule.path)})`;
        await editor.open(rule.file, label);
        const value = ruleValue(rule.value, values, label);
        await editor.set(rule.file, rule.path, value, label);
      }
      return { files: await editor.result() };
    } finally {
      editor.close();
    }
  },
};
