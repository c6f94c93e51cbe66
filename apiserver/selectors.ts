// Label and field selectors as kube-apiserver parses them (k8s.io/apimachinery/pkg/labels, fields).
import type { KubeObject } from '../kinds/types.js';
import { badRequest } from './errors.js';

export type Matcher = (obj: KubeObject) => boolean;

/** Longest label or field selector accepted (kube has none; a URL is bounded by the 64 KiB head). */
export const MAX_SELECTOR_BYTES = 16 * 1024;

function assertSelectorSize(sel: string, what: 'labelSelector' | 'fieldSelector') {
  if (sel.length > MAX_SELECTOR_BYTES) throw badRequest(`${what} is ${sel.length} characters, over the limit of ${MAX_SELECTOR_BYTES}`);
}

interface LabelRequirement {
  key: string;
  op: 'exists' | '!exists' | '=' | '!=' | 'in' | 'notin';
  values: string[];
}

/** Splits at commas outside parentheses: one pass, no regular expression. */
function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const ch = s.charCodeAt(i);
    if (ch === 0x28) depth++;
    else if (ch === 0x29) depth--;
    else if (ch === 0x2c && depth === 0) {
      parts.push(s.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(s.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

const keyRe = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$/;
const valueRe = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function parseRequirement(raw: string): LabelRequirement {
  const bad = (why: string) => badRequest(`unable to parse requirement: ${why}`);
  let m = /^(!?)\s*([^\s!=(),]+)$/.exec(raw);
  let req: LabelRequirement;
  if (m) req = { key: m[2], op: m[1] ? '!exists' : 'exists', values: [] };
  else if ((m = /^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/.exec(raw))) req = { key: m[1], op: m[2] === '!=' ? '!=' : '=', values: [m[3]] };
  else if ((m = /^([^\s!=(),]+)\s+(in|notin)\s*\(([^()]*)\)$/.exec(raw)))
    req = { key: m[1], op: m[2] as 'in' | 'notin', values: m[3].split(',').map((v) => v.trim()) };
  else throw bad(`found '${raw}', expected: !, identifier, or 'end of string'`);
  if (req.key.length > 317 || !keyRe.test(req.key)) throw bad(`invalid label key "${req.key}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
  for (const v of req.values) if (v.length > 63 || !valueRe.test(v)) throw bad(`invalid label value: "${v}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
  return req;
}

export function parseLabelSelector(sel: string | undefined): Matcher | undefined {
  if (!sel) return undefined;
  assertSelectorSize(sel, 'labelSelector');
  if (!sel.trim()) return undefined;
  const reqs = splitTopLevel(sel).map(parseRequirement);
  return (obj) => {
    const labels = obj.metadata.labels ?? {};
    return reqs.every((r) => {
      const has = Object.prototype.hasOwnProperty.call(labels, r.key);
      const v = labels[r.key];
      switch (r.op) {
        case 'exists':
          return has;
        case '!exists':
          return !has;
        case '=':
          return has && v === r.values[0];
        case '!=':
          return !has || v !== r.values[0];
        case 'in':
          return has && r.values.includes(v);
        case 'notin':
          return !has || !r.values.includes(v);
      }
    });
  };
}

export type FieldGetter = (obj: KubeObject) => string | undefined;

export const defaultFieldGetters: Record<string, FieldGetter> = {
  'metadata.name': (o) => o.metadata.name,
  'metadata.namespace': (o) => o.metadata.namespace,
};

/** Parses a field selector; `getters` are the fields this kind supports. */
export function parseFieldSelector(sel: string | undefined, getters: Record<string, FieldGetter>): Matcher | undefined {
  if (!sel) return undefined;
  assertSelectorSize(sel, 'fieldSelector');
  if (!sel.trim()) return undefined;
  const reqs = splitTopLevel(sel).map((raw) => {
    const t = splitFieldTerm(raw);
    if (!t) throw badRequest(`invalid selector: '${sel.length > 200 ? `${sel.slice(0, 200)}...` : sel}'; can't understand '${raw.length > 200 ? `${raw.slice(0, 200)}...` : raw}'`);
    const get = getters[t.field];
    if (!get) throw badRequest(`field label not supported: ${t.field.length > 200 ? `${t.field.slice(0, 200)}...` : t.field}`);
    return { get, neg: t.neg, value: t.value.replace(/\\(.)/g, '$1') };
  });
  return (obj) => reqs.every((r) => ((r.get(obj) ?? '') === r.value) !== r.neg);
}

/** `field op value` at the first `=` or `!=` (linear; `field` without its trailing blanks, `value` without leading ones). */
function splitFieldTerm(raw: string): { field: string; neg: boolean; value: string } | undefined {
  let i = 0;
  while (i < raw.length && raw[i] !== '=' && raw[i] !== '!') i++;
  if (i === 0 || i >= raw.length) return undefined;
  const neg = raw[i] === '!';
  if (neg && raw[i + 1] !== '=') return undefined;
  const field = raw.slice(0, i).trimEnd();
  if (!field) return undefined;
  const rest = raw.slice(i + (neg || raw[i + 1] === '=' ? 2 : 1));
  return { field, neg, value: rest.trimStart() };
}

/** The `metadata.name=X` value of a field selector, if it pins one name (kubectl wait/delete do). */
export function pinnedName(sel: string | undefined): string | undefined {
  if (!sel) return undefined;
  if (sel.length > MAX_SELECTOR_BYTES) return undefined;
  for (const p of splitTopLevel(sel)) {
    const t = splitFieldTerm(p);
    if (t && !t.neg && t.field === 'metadata.name') return t.value;
  }
  return undefined;
}
