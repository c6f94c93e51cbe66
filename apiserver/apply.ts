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
import { cloneJson, deepEqualJson, Slicer } from './json.js';

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

// Sets of field paths are walked as tries (no path compared with every other one: 200,000 labels
// are 200,000 paths), and every loop over fields gives the event loop back now and then.

/** Paths (`spec.verify`) whose value is owned and replaced whole, as split paths. */
export type AtomicPaths = string[][];
const isAtomic = (atomic: AtomicPaths, at: string[], k: string) => atomic.some((a) => a.length === at.length + 1 && a[at.length] === k && at.every((x, i) => a[i] === x));

/**
 * The fields of a map (`skip`: keys left out), each map value a set of its own (an atomic map one
 * leaf), the rest leaves. `paths`: the leaf paths (as `leaves` gives them, in another order) are
 * added to it in the same pass, under `prefix`.
 */
async function walkFields(o: Obj, slicer: Slicer, skip?: Set<string>, atomic: AtomicPaths = [], at: string[] = [], paths?: string[][], prefix: string[] = []): Promise<FieldSet> {
  const out: FieldSet = {};
  const keys = Object.keys(o);
  for (let i = 0; i < keys.length; i++) {
    if (slicer.due()) await slicer.yield();
    const k = keys[i];
    const v = o[k];
    if (skip?.has(k) || v === undefined) continue;
    if (isMap(v) && !(atomic.length && isAtomic(atomic, at, k))) {
      const sub = await walkFields(v, slicer, undefined, atomic, atomic.length ? [...at, k] : at, paths, paths ? [...prefix, k] : prefix);
      out[`f:${k}`] = sub;
      if (paths && isEmptySet(sub)) paths.push([...prefix, k]);
    } else {
      out[`f:${k}`] = {};
      paths?.push([...prefix, k]);
    }
  }
  return out;
}

const isEmptySet = (fs: FieldSet) => {
  for (const _ in fs) return false;
  return true;
};

/** The fields an applied configuration names (an atomic map is one leaf); `paths` as walkFields. */
export async function fieldsOf(applied: Obj, atomic: AtomicPaths = [], slicer = new Slicer(), paths?: string[][]): Promise<FieldSet> {
  const { metadata, ...rest } = applied;
  const top = await walkFields(rest, slicer, SKIP_TOP, atomic, [], paths);
  if (isMap(metadata)) {
    const meta = await walkFields(metadata, slicer, SKIP_META, [], [], paths, ['metadata']);
    for (const _ in meta) {
      top['f:metadata'] = meta;
      break;
    }
  }
  return top;
}

/** Leaf paths (keys without the `f:` prefix). */
async function leaves(fs: FieldSet, slicer = new Slicer()): Promise<string[][]> {
  const out: string[][] = [];
  const stack: [FieldSet, string[]][] = [[fs, []]];
  while (stack.length) {
    const [set, prefix] = stack.pop()!;
    const keys = Object.keys(set);
    const deeper: [FieldSet, string[]][] = [];
    for (let i = 0; i < keys.length; i++) {
      if (slicer.due()) await slicer.yield();
      const k = keys[i];
      if (!k.startsWith('f:')) continue;
      const child = set[k];
      const p = [...prefix, k.slice(2)];
      let leaf = true;
      for (const _ in child) {
        leaf = false;
        break;
      }
      if (leaf) out.push(p);
      else deeper.push([child, p]);
    }
    for (let i = deeper.length - 1; i >= 0; i--) stack.push(deeper[i]);
  }
  return out;
}

interface TrieNode {
  end: boolean;
  kids: Map<string, TrieNode>;
}

/** A trie of paths; a path ends at a node marked `end`. */
async function trieOf(slicer: Slicer, ...lists: string[][][]): Promise<TrieNode> {
  const root: TrieNode = { end: false, kids: new Map() };
  for (const paths of lists)
    for (const p of paths) {
      if (slicer.due()) await slicer.yield();
      let n = root;
      for (const k of p) {
        let c = n.kids.get(k);
        if (!c) n.kids.set(k, (c = { end: false, kids: new Map() }));
        n = c;
      }
      n.end = true;
    }
  return root;
}

/**
 * Where `p` overlaps a path of the trie (one a prefix of the other): the shorter of the two, or
 * undefined when none does.
 */
function overlapAt(t: TrieNode, p: string[]): string[] | undefined {
  let n = t;
  for (let i = 0; i < p.length; i++) {
    const c = n.kids.get(p[i]);
    if (!c) return undefined;
    if (c.end) return p.slice(0, i + 1);
    n = c;
  }
  return p;
}

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

/** The FieldSet of leaf paths; a leaf replaces what was under it. */
async function build(paths: string[][], slicer: Slicer): Promise<FieldSet> {
  const root: FieldSet = {};
  const stack: [TrieNode, FieldSet][] = [[await trieOf(slicer, paths), root]];
  while (stack.length) {
    const [n, out] = stack.pop()!;
    for (const [k, c] of n.kids) {
      if (slicer.due()) await slicer.yield();
      const o: FieldSet = {};
      out[`f:${k}`] = o;
      if (!c.end) stack.push([c, o]);
    }
  }
  return root;
}

/** Paths of `ls` that overlap no path of `t`. */
async function outside(ls: string[][], t: TrieNode, slicer: Slicer): Promise<string[][]> {
  const out: string[][] = [];
  for (const q of ls) {
    if (slicer.due()) await slicer.yield();
    if (!overlapAt(t, q)) out.push(q);
  }
  return out;
}

const setOwn = (o: Obj, k: string, v: unknown) => {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v;
};

/**
 * Maps merged key by key; anything else (scalars, lists, atomic maps) replaced by a copy. A map
 * where `into` has none is copied key by key too (structuredClone of 90,000 labels is one turn).
 */
async function merge(into: Obj, from: Obj, slicer: Slicer, atomic: AtomicPaths = [], at: string[] = []): Promise<void> {
  const keys = Object.keys(from);
  for (let i = 0; i < keys.length; i++) {
    if (slicer.due()) await slicer.yield();
    const k = keys[i];
    const v = from[k];
    if (isMap(v) && !(atomic.length && isAtomic(atomic, at, k))) {
      let cur = Object.hasOwn(into, k) ? into[k] : undefined;
      if (!isMap(cur)) setOwn(into, k, (cur = {}));
      await merge(cur as Obj, v, slicer, atomic, atomic.length ? [...at, k] : at);
    } else setOwn(into, k, v !== null && typeof v === 'object' ? structuredClone(v) : v);
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
export async function applyConfiguration(
  live: KubeObject | undefined,
  applied: KubeObject,
  manager: string,
  force: boolean,
  apiVersion: string,
  now: string,
  atomic: AtomicPaths = [],
  liveJson?: string,
): Promise<KubeObject> {
  const slicer = new Slicer(256);
  const wantedLeaves: string[][] = [];
  const wanted = await fieldsOf(applied as unknown as Obj, atomic, slicer, wantedLeaves);
  const wantedTrie = await trieOf(slicer, wantedLeaves);
  const entries = ((live?.metadata.managedFields ?? []) as ManagedFieldsEntry[]).filter((e) => isMap(e) && typeof e.manager === 'string');
  const others = entries.filter((e) => !(e.manager === manager && e.operation === 'Apply' && !e.subresource));
  const mine = entries.find((e) => e.manager === manager && e.operation === 'Apply' && !e.subresource);

  const conflicts: { manager: string; who: string; field: string[] }[] = [];
  const othersLeaves: { e: ManagedFieldsEntry; leaves: string[][] }[] = [];
  for (const e of others) othersLeaves.push({ e, leaves: await leaves(e.fieldsV1 ?? {}, slicer) });
  if (live) {
    for (const o of othersLeaves) {
      for (const q of o.leaves) {
        if (slicer.due()) await slicer.yield();
        const at = overlapAt(wantedTrie, q);
        if (!at) continue;
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
  const conflictsOf = new Map<string, string[][]>();
  for (const c of conflicts) {
    if (!conflictsOf.has(c.manager)) conflictsOf.set(c.manager, []);
    conflictsOf.get(c.manager)!.push(c.field);
  }
  const kept: { e: ManagedFieldsEntry; leaves: string[][]; had: number }[] = [];
  for (const { e, leaves: ls } of othersLeaves) {
    const lost = force && conflictsOf.has(e.manager) ? await trieOf(slicer, conflictsOf.get(e.manager)!) : undefined;
    const left = lost ? await outside(ls, lost, slicer) : ls;
    if (left.length) kept.push({ e, leaves: left, had: ls.length });
  }

  const next: KubeObject = live ? await cloneJson(live, liveJson) : ({ apiVersion: applied.apiVersion, kind: applied.kind, metadata: {} } as KubeObject);
  const keptTrie = await trieOf(slicer, ...kept.map((o) => o.leaves));
  for (const p of await leaves(mine?.fieldsV1 ?? {}, slicer)) {
    if (slicer.due()) await slicer.yield();
    if (!overlapAt(wantedTrie, p) && !overlapAt(keptTrie, p)) remove(next as unknown as Obj, p);
  }
  const { metadata, ...rest } = applied;
  for (const k of SKIP_TOP) delete (rest as Obj)[k];
  await merge(next as unknown as Obj, rest as Obj, slicer, atomic);
  if (isMap(metadata)) {
    const m: Obj = {};
    for (const k of Object.keys(metadata)) if (!SKIP_META.has(k)) m[k] = metadata[k];
    await merge(next.metadata as Obj, m, slicer);
  }
  next.apiVersion = applied.apiVersion;
  next.kind = applied.kind;
  next.metadata.name = applied.metadata.name;
  if (applied.metadata.namespace !== undefined) next.metadata.namespace = applied.metadata.namespace;

  const managed: ManagedFieldsEntry[] = entries.filter((e) => e !== mine && !others.includes(e));
  for (const { e, leaves: ls, had } of kept) managed.push(ls.length === had ? e : { ...e, fieldsV1: await build(ls, slicer) });
  managed.push(
    // (the same fields again: the entry, and so the object, stays as it was)
    ...(!wantedLeaves.length ? [] : mine && (await deepEqualJson(mine.fieldsV1, wanted)) ? [mine] : [{ manager, operation: 'Apply' as const, apiVersion, time: now, fieldsType: 'FieldsV1' as const, fieldsV1: wanted }]),
  );
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
export async function recordUpdate(
  old: KubeObject | undefined,
  next: KubeObject,
  manager: string,
  apiVersion: string,
  now: string,
  statusFields: string[],
  subresource?: 'status',
  atomic: AtomicPaths = [],
): Promise<void> {
  const slicer = new Slicer(256);
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
  // every field, for status (fieldsOf without the apply exclusions)
  const fields = async (o: Obj) => leaves(subresource ? skipStatus(await walkFields(o, slicer)) : await fieldsOf(o, atomic, slicer), slicer);
  const changed: string[][] = [];
  for (const p of await fields(after)) {
    if (slicer.due()) await slicer.yield();
    if (!isDeepStrictEqual(get(before, p), get(after, p))) changed.push(p);
  }
  const removed: string[][] = [];
  for (const p of await fields(before)) {
    if (slicer.due()) await slicer.yield();
    if (get(after, p) === undefined) removed.push(p);
  }
  if (!changed.length && !removed.length) return;
  const touched = await trieOf(slicer, changed, removed);
  const entries = ((next.metadata.managedFields ?? []) as ManagedFieldsEntry[]).filter((e) => isMap(e) && typeof e.manager === 'string');
  const isMine = (e: ManagedFieldsEntry) => e.manager === manager && e.operation === 'Update' && (e.subresource ?? undefined) === subresource;
  const mine = entries.find(isMine);
  const out: ManagedFieldsEntry[] = [];
  for (const e of entries) {
    if (e === mine) continue;
    const ls = await leaves(e.fieldsV1 ?? {}, slicer);
    const left = await outside(ls, touched, slicer);
    if (left.length === ls.length) out.push(e);
    else if (left.length) out.push({ ...e, fieldsV1: await build(left, slicer) });
  }
  const set = (await outside(await leaves(mine?.fieldsV1 ?? {}, slicer), touched, slicer)).concat(changed);
  // (build: a leaf replaces what was under it)
  if (set.length) out.push({ manager, operation: 'Update', apiVersion, time: now, fieldsType: 'FieldsV1', fieldsV1: await build(set, slicer), ...(subresource ? { subresource } : {}) });
  if (out.length) next.metadata.managedFields = out;
  else delete next.metadata.managedFields;
}

/** kube's managerOrUserAgent: the fieldManager, else the User-Agent up to its first `/`. */
export function updateManager(fieldManager: string | undefined, userAgent: string | undefined): string | undefined {
  if (fieldManager) return fieldManager;
  const ua = (userAgent ?? '').split('/')[0].slice(0, 128);
  return ua || undefined;
}
