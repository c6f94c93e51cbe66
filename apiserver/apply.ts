// Server-side apply (PATCH with application/apply-patch+yaml), the part that `kubectl apply
// --server-side` and GitOps controllers (Flux applies everything this way) rely on:
//   - the applied configuration names the fields its manager wants; they are set on the object;
//   - fields the same manager applied before and leaves out now are removed, unless another
//     manager also owns them;
//   - a field another manager applied with a different value is a conflict (409 naming the
//     manager and the field) unless `force=true`, which takes it over;
//   - ownership is recorded in metadata.managedFields as FieldsV1, one `Apply` entry per manager.
// Simplifications against kube's structured-merge-diff, stated so nobody is surprised: maps are
// merged key by key, lists are atomic (owned and replaced whole), and so are the maps a kind names
// atomic (KindDefinition.atomicFields, kube's `x-kubernetes-map-type: atomic`). Writes that are not applies
// (create, PUT, patches) record `Update` entries (recordUpdate below), as kube does.
import { isDeepStrictEqual } from 'node:util';
import type { KubeObject } from '../kinds/types.js';
import { ApiError } from './errors.js';

/** A FieldsV1 set: `f:<key>` children; an empty object is an owned leaf. */
export type FieldSet = { [key: string]: FieldSet };

export interface ManagedFieldsEntry {
  manager: string;
  operation: 'Apply' | 'Update';
  apiVersion?: string;
  time?: string;
  fieldsType?: 'FieldsV1';
  fieldsV1?: FieldSet;
  subresource?: string;
}

type Obj = Record<string, unknown>;
const isMap = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** What apply never sets through the object: identity, server-set metadata, and status. */
const SKIP_TOP = new Set(['apiVersion', 'kind', 'status']);
const SKIP_META = new Set(['name', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink']);

/** Paths (`spec.verify`) whose value is owned and replaced whole, as split paths. */
export type AtomicPaths = string[][];
const isAtomic = (atomic: AtomicPaths, p: string[]) => atomic.some((a) => a.length === p.length && a.every((k, i) => p[i] === k));

/** The fields an applied configuration names (an atomic map is one leaf). */
export function fieldsOf(applied: Obj, atomic: AtomicPaths = []): FieldSet {
  const walk = (o: Obj, skip?: Set<string>, at: string[] = []): FieldSet => {
    const out: FieldSet = {};
    for (const [k, v] of Object.entries(o)) {
      if (skip?.has(k) || v === undefined) continue;
      const p = [...at, k];
      out[`f:${k}`] = isMap(v) && Object.keys(v).length && !isAtomic(atomic, p) ? walk(v, undefined, p) : {};
    }
    return out;
  };
  const top = walk(Object.fromEntries(Object.entries(applied).filter(([k]) => k !== 'metadata')), SKIP_TOP);
  if (isMap(applied.metadata)) {
    const meta = walk(applied.metadata, SKIP_META);
    if (Object.keys(meta).length) top['f:metadata'] = meta;
  }
  return top;
}

/** Leaf paths (keys without the `f:` prefix). */
function leaves(fs: FieldSet, prefix: string[] = []): string[][] {
  const out: string[][] = [];
  for (const [k, child] of Object.entries(fs)) {
    if (!k.startsWith('f:')) continue;
    const p = [...prefix, k.slice(2)];
    if (Object.keys(child).length) out.push(...leaves(child, p));
    else out.push(p);
  }
  return out;
}

const isPrefix = (a: string[], b: string[]) => a.length <= b.length && a.every((k, i) => b[i] === k);
const overlaps = (a: string[], b: string[]) => isPrefix(a, b) || isPrefix(b, a);
const show = (p: string[]) => `.${p.join('.')}`;

function get(o: unknown, p: string[]): unknown {
  let cur = o;
  for (const k of p) {
    if (!isMap(cur)) return undefined;
    cur = cur[k];
  }
  return cur;
}

function remove(o: Obj, p: string[]): void {
  let cur: unknown = o;
  for (const k of p.slice(0, -1)) {
    if (!isMap(cur)) return;
    cur = cur[k];
  }
  if (isMap(cur)) delete cur[p[p.length - 1]];
}

function build(paths: string[][]): FieldSet {
  const root: FieldSet = {};
  for (const p of paths) {
    let cur = root;
    for (const k of p) cur = cur[`f:${k}`] ??= {};
  }
  return root;
}

/** Maps merged key by key; anything else (scalars, lists, atomic maps) replaced. */
function merge(into: Obj, from: Obj, atomic: AtomicPaths = [], at: string[] = []): void {
  for (const [k, v] of Object.entries(from)) {
    const p = [...at, k];
    if (isMap(v) && isMap(into[k]) && !isAtomic(atomic, p)) merge(into[k] as Obj, v, atomic, p);
    else into[k] = structuredClone(v);
  }
}

/** How kube names a manager in a conflict (fieldmanager internal/conflict.go printManager). */
function printManager(e: ManagedFieldsEntry): string {
  let s = JSON.stringify(e.manager);
  if (e.subresource) s += ` with subresource ${JSON.stringify(e.subresource)}`;
  if (e.operation === 'Update') s += e.time ? ` using ${e.apiVersion} at ${e.time}` : ` using ${e.apiVersion}`;
  return s;
}

/**
 * The object after `manager` applies `applied` to `live` (undefined: it does not exist yet), with
 * managedFields updated. A conflict with another manager is a 409 unless `force`.
 */
export function applyConfiguration(live: KubeObject | undefined, applied: KubeObject, manager: string, force: boolean, apiVersion: string, now: string, atomic: AtomicPaths = []): KubeObject {
  const wanted = fieldsOf(applied as unknown as Obj, atomic);
  const wantedLeaves = leaves(wanted);
  const entries = ((live?.metadata.managedFields ?? []) as ManagedFieldsEntry[]).filter((e) => isMap(e) && typeof e.manager === 'string');
  const others = entries.filter((e) => !(e.manager === manager && e.operation === 'Apply' && !e.subresource));
  const mine = entries.find((e) => e.manager === manager && e.operation === 'Apply' && !e.subresource);

  const conflicts: { manager: string; who: string; field: string[] }[] = [];
  const othersLeaves = others.map((e) => ({ e, leaves: leaves(e.fieldsV1 ?? {}) }));
  if (live) {
    for (const o of othersLeaves) {
      for (const q of o.leaves) {
        const p = wantedLeaves.find((w) => overlaps(w, q));
        if (!p) continue;
        const at = p.length <= q.length ? p : q;
        if (!isDeepStrictEqual(get(live, at), get(applied, at))) conflicts.push({ manager: o.e.manager, who: printManager(o.e), field: at });
      }
    }
  }
  if (conflicts.length && !force) {
    const err = new ApiError(
      409,
      'Conflict',
      `Apply failed with ${conflicts.length} conflict${conflicts.length === 1 ? '' : 's'}: ${conflicts.map((c) => `conflict with ${c.who}: ${show(c.field)}`).join('; ')}`,
    );
    err.status.details = {
      name: live?.metadata.name,
      kind: live?.kind?.toLowerCase(),
      causes: conflicts.map((c) => ({ reason: 'FieldManagerConflict', message: `conflict with ${c.who}`, field: show(c.field) })),
    };
    throw err;
  }

  // force: the conflicting fields change hands
  const kept = othersLeaves
    .map(({ e, leaves: ls }) => ({ e, leaves: force ? ls.filter((q) => !conflicts.some((c) => c.manager === e.manager && overlaps(c.field, q))) : ls, had: ls.length }))
    .filter((o) => o.leaves.length);

  const next: KubeObject = live ? structuredClone(live) : ({ apiVersion: applied.apiVersion, kind: applied.kind, metadata: {} } as KubeObject);
  const dropped = leaves(mine?.fieldsV1 ?? {}).filter((p) => !wantedLeaves.some((w) => overlaps(w, p)) && !kept.some((o) => o.leaves.some((q) => overlaps(q, p))));
  for (const p of dropped) remove(next as unknown as Obj, p);
  const { metadata, ...rest } = applied;
  for (const k of SKIP_TOP) delete (rest as Obj)[k];
  merge(next as unknown as Obj, rest as Obj, atomic);
  if (isMap(metadata)) merge(next.metadata as Obj, Object.fromEntries(Object.entries(metadata).filter(([k]) => !SKIP_META.has(k))));
  next.apiVersion = applied.apiVersion;
  next.kind = applied.kind;
  next.metadata.name = applied.metadata.name;
  if (applied.metadata.namespace !== undefined) next.metadata.namespace = applied.metadata.namespace;

  const managed: ManagedFieldsEntry[] = [
    ...entries.filter((e) => e !== mine && !others.includes(e)),
    ...kept.map(({ e, leaves: ls, had }) => (ls.length === had ? e : { ...e, fieldsV1: build(ls) })),
    // (the same fields again: the entry, and so the object, stays as it was)
    ...(!wantedLeaves.length ? [] : mine && isDeepStrictEqual(mine.fieldsV1, wanted) ? [mine] : [{ manager, operation: 'Apply' as const, apiVersion, time: now, fieldsType: 'FieldsV1' as const, fieldsV1: wanted }]),
  ];
  next.metadata.managedFields = managed;
  return next;
}

/**
 * A write that is not an apply (create, update, patch), as kube's fieldmanager records it
 * (structured-merge-diff merge/update.go Updater.Update): the fields it added or changed become
 * the manager's `Update` entry (with those it removed taken out), and leave every other manager's
 * set, so a later applier that wants them with another value gets a conflict. `status`: a write
 * to the status subresource, which only changes status fields (`statusFields`). Nothing changes
 * when the write changed no field.
 */
export function recordUpdate(old: KubeObject | undefined, next: KubeObject, manager: string, apiVersion: string, now: string, statusFields: string[], subresource?: 'status', atomic: AtomicPaths = []): void {
  const scope = (o: KubeObject | undefined): Obj => {
    if (!o) return {};
    if (subresource) return Object.fromEntries(statusFields.filter((f) => o[f] !== undefined).map((f) => [f, o[f]]));
    const { metadata, ...rest } = o as Obj;
    for (const f of statusFields) delete rest[f];
    return { ...rest, ...(isMap(metadata) ? { metadata } : {}) };
  };
  const before = scope(old);
  const after = scope(next);
  const skipStatus = (fs: FieldSet) => {
    if (!subresource) return fs;
    const out: FieldSet = {};
    for (const f of statusFields) if (fs[`f:${f}`]) out[`f:${f}`] = fs[`f:${f}`];
    return out;
  };
  const afterLeaves = leaves(subresource ? skipStatus(fieldsOfAll(after)) : fieldsOf(after, atomic));
  const beforeLeaves = leaves(subresource ? skipStatus(fieldsOfAll(before)) : fieldsOf(before, atomic));
  const changed = afterLeaves.filter((p) => !isDeepStrictEqual(get(before, p), get(after, p)));
  const removed = beforeLeaves.filter((p) => get(after, p) === undefined);
  if (!changed.length && !removed.length) return;
  const touched = [...changed, ...removed];
  const entries = ((next.metadata.managedFields ?? []) as ManagedFieldsEntry[]).filter((e) => isMap(e) && typeof e.manager === 'string');
  const isMine = (e: ManagedFieldsEntry) => e.manager === manager && e.operation === 'Update' && (e.subresource ?? undefined) === subresource;
  const mine = entries.find(isMine);
  const out: ManagedFieldsEntry[] = [];
  for (const e of entries) {
    if (e === mine) continue;
    const ls = leaves(e.fieldsV1 ?? {});
    const left = ls.filter((q) => !touched.some((p) => overlaps(p, q)));
    if (left.length === ls.length) out.push(e);
    else if (left.length) out.push({ ...e, fieldsV1: build(left) });
  }
  let set = leaves(mine?.fieldsV1 ?? {}).filter((q) => !removed.some((p) => overlaps(p, q)) && !changed.some((p) => overlaps(p, q)));
  set = [...set, ...changed];
  set = set.filter((q) => !set.some((p) => p !== q && p.length < q.length && isPrefix(p, q))); // a leaf replaces what was under it
  if (set.length) out.push({ manager, operation: 'Update', apiVersion, time: now, fieldsType: 'FieldsV1', fieldsV1: build(set), ...(subresource ? { subresource } : {}) });
  if (out.length) next.metadata.managedFields = out;
  else delete next.metadata.managedFields;
}

/** Every field of a value (fieldsOf without the apply exclusions; for status). */
function fieldsOfAll(o: Obj): FieldSet {
  const out: FieldSet = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[`f:${k}`] = isMap(v) && Object.keys(v).length ? fieldsOfAll(v) : {};
  return out;
}

/** kube's managerOrUserAgent: the fieldManager, else the User-Agent up to its first `/`. */
export function updateManager(fieldManager: string | undefined, userAgent: string | undefined): string | undefined {
  if (fieldManager) return fieldManager;
  const ua = (userAgent ?? '').split('/')[0].slice(0, 128);
  return ua || undefined;
}
