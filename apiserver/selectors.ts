// Label and field selectors as kube-apiserver parses them (k8s.io/apimachinery/pkg/labels, fields).
import type { KubeObject } from '../kinds/types.js';
import { badRequest } from './errors.js';

export type Matcher = (obj: KubeObject) => boolean;

interface LabelRequirement {
  key: string;
  op: 'exists' | '!exists' | '=' | '!=' | 'in' | 'notin';
  values: string[];
}

function splitTopLevel(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      parts.push(cur);
      cur = '';
    } else cur += ch;
  }
  parts.push(cur);
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
  if (!keyRe.test(req.key) || req.key.length > 317) throw bad(`invalid label key "${req.key}": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
  for (const v of req.values) if (!valueRe.test(v) || v.length > 63) throw bad(`invalid label value: "${v}": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character`);
  return req;
}

export function parseLabelSelector(sel: string | undefined): Matcher | undefined {
  if (!sel || !sel.trim()) return undefined;
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
  if (!sel || !sel.trim()) return undefined;
  const reqs = splitTopLevel(sel).map((raw) => {
    const m = /^([^=!]+?)\s*(==|=|!=)\s*(.*)$/.exec(raw);
    if (!m) throw badRequest(`invalid selector: '${sel}'; can't understand '${raw}'`);
    const get = getters[m[1]];
    if (!get) throw badRequest(`field label not supported: ${m[1]}`);
    return { get, neg: m[2] === '!=', value: m[3].replace(/\\(.)/g, '$1') };
  });
  return (obj) => reqs.every((r) => ((r.get(obj) ?? '') === r.value) !== r.neg);
}

/** The `metadata.name=X` value of a field selector, if it pins one name (kubectl wait/delete do). */
export function pinnedName(sel: string | undefined): string | undefined {
  if (!sel) return undefined;
  for (const p of splitTopLevel(sel)) {
    const m = /^metadata\.name\s*==?\s*(.*)$/.exec(p);
    if (m) return m[1];
  }
  return undefined;
}
