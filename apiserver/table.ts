// meta.k8s.io/v1 Table and PartialObjectMetadata conversion (what `kubectl get` asks for).
import { JSONPath } from 'jsonpath-plus';
import type { KubeObject, PrinterColumn } from '../kinds/types.js';
import type { StoredObject } from '../storage/store.js';
import { countMembers, memberRanges } from './json.js';
import type { Resource } from './resources.js';

export type IncludeObject = 'None' | 'Metadata' | 'Object';

const nameColumn = {
  name: 'Name',
  type: 'string',
  format: 'name',
  description: 'Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names',
  priority: 0,
};

export function columnDefinitions(r: Resource) {
  return [
    ...(r.def.nameColumn === false ? [] : [nameColumn]),
    ...r.def.columns.map((c) => ({ name: c.name, type: c.type === 'date' ? 'string' : c.type, format: c.format ?? (c.type === 'date' ? 'date' : ''), description: c.description, priority: c.priority ?? 0 })),
  ];
}

/** Human age as kubectl prints it (k8s.io/apimachinery/pkg/util/duration.HumanDuration). */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (h < 24 * 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (h < 24 * 365 * 2) return `${d}d`;
  const y = Math.floor(d / 365);
  if (h < 24 * 365 * 8) return d % 365 === 0 ? `${y}y` : `${y}y${d % 365}d`;
  return `${y}y`;
}

function cell(obj: KubeObject, c: PrinterColumn, now: number): unknown {
  if (c.value) return c.value(obj, (ts) => (typeof ts === 'string' && !Number.isNaN(Date.parse(ts)) ? humanDuration(now - Date.parse(ts)) : '<unknown>'));
  const found = JSONPath({ path: '$' + c.jsonPath, json: obj, wrap: true }) as unknown[];
  if (!found.length || found[0] === undefined || found[0] === null) return null;
  const v = found[0];
  if (c.type === 'date' && typeof v === 'string') {
    const t = Date.parse(v);
    return Number.isNaN(t) ? v : humanDuration(now - t);
  }
  if (typeof v === 'object') return JSON.stringify(v);
  if (c.type === 'string') return String(v);
  return v;
}

export function partialMetadata(obj: KubeObject) {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata };
}

/** A row's cells (the name first, unless the kind has no name column). */
export function rowCells(r: Resource, obj: KubeObject, now = Date.now()): unknown[] {
  const cells = r.def.columns.map((c) => cell(obj, c, now));
  return r.def.nameColumn === false ? cells : [obj.metadata.name, ...cells];
}

/** Keys counted per stored version (every Table watch and list of it shares the count). */
const keyCounts = new WeakMap<StoredObject, Map<string, Promise<number>>>();

function storedKeyCount(o: StoredObject, fields: string[]): Promise<number> {
  let m = keyCounts.get(o);
  if (!m) keyCounts.set(o, (m = new Map()));
  const k = fields.join(',');
  let n = m.get(k);
  if (!n)
    m.set(
      k,
      (n = (async () => {
        let sum = 0;
        const at = await memberRanges(o.json); // one scan for every field (a missing one would scan the whole text)
        for (const f of fields) {
          const r = at.get(f);
          if (r) sum += await countMembers(o.json.slice(r[0], r[1]));
        }
        return sum;
      })()),
    );
  return n;
}

/** rowCells of a stored object: a column counting a map's keys counts them in the stored JSON (countsKeysOf). */
export async function storedRowCells(r: Resource, o: StoredObject, now = Date.now()): Promise<unknown[]> {
  const cells: unknown[] = [];
  for (const c of r.def.columns) cells.push(c.countsKeysOf ? await storedKeyCount(o, c.countsKeysOf) : cell(o.obj, c, now));
  return r.def.nameColumn === false ? cells : [o.obj.metadata.name, ...cells];
}

export function tableRow(r: Resource, obj: KubeObject, include: IncludeObject, now = Date.now()) {
  const row: Record<string, unknown> = { cells: rowCells(r, obj, now) };
  if (include === 'Object') row.object = obj;
  else if (include === 'Metadata') row.object = partialMetadata(obj);
  return row;
}

export function table(r: Resource, objs: KubeObject[], include: IncludeObject, listMeta: Record<string, unknown>, withColumns = true) {
  const now = Date.now();
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: withColumns ? columnDefinitions(r) : null,
    rows: objs.map((o) => tableRow(r, o, include, now)),
  };
}
