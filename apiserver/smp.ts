// Strategic merge patch (application/strategic-merge-patch+json) for the built-in types this
// server serves, as k8s.io/apimachinery/pkg/util/strategicpatch/patch.go applies it:
//   - maps merge key by key, `null` deletes; other values (and lists without a strategy) replace;
//   - lists whose field has patchStrategy "merge" (struct tags of k8s.io/api) merge: lists of maps
//     by their patchMergeKey, lists of scalars as a union;
//   - directives: `$patch: replace | delete | merge` in a map or a list element,
//     `$deleteFromPrimitiveList/<field>`, `$setElementOrder/<field>`, `$retainKeys`.
// No npm library does this (the official clients leave it to the server), hence this small one.
// Simplification: `$setElementOrder` puts the patch's elements in its order and keeps the
// others where they were relative to each other (kube interleaves them by the live order).
import { badRequest } from './errors.js';
import { Slicer } from './json.js';

/** patchStrategy "merge" fields, by dotted path from the object's root: the merge key of a list of maps, or '' for scalars. */
export type PatchStrategies = Record<string, string>;

/** ObjectMeta's (k8s.io/apimachinery/pkg/apis/meta/v1/types.go): finalizers merge, ownerReferences merge by uid. */
export const META_STRATEGIES: PatchStrategies = { 'metadata.finalizers': '', 'metadata.ownerReferences': 'uid' };

type Obj = Record<string, unknown>;
const isMap = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);
// Own properties only, written as data properties: a `__proto__` key in a patch is a field name,
// never the prototype (no prototype pollution through a patch).
const own = (o: Obj, k: string): unknown => (Object.hasOwn(o, k) ? o[k] : undefined);
const put = (o: Obj, k: string, v: unknown) => {
  if (k === '__proto__') Object.defineProperty(o, k, { value: v, writable: true, enumerable: true, configurable: true });
  else o[k] = v; // (a data property already, or a new one: defineProperty is slower, and only __proto__ needs it)
};
const DELETE_LIST = '$deleteFromPrimitiveList/';
const ORDER = '$setElementOrder/';

/**
 * `owned`: `original` is a copy the patch may change in place. In slices that give the event loop
 * back (apiserver/json.ts's Slicer): a patch of 200,000 labels held it 160-360 ms in one go (issue 15).
 */
export async function strategicMergePatch(original: Obj, patch: Obj, strategies: PatchStrategies, owned = false): Promise<Obj> {
  return (await mergeMap(owned ? original : structuredClone(original), patch, '', strategies, new Slicer())) ?? {};
}

async function mergeMap(orig: Obj, patch: Obj, path: string, st: PatchStrategies, sl: Slicer): Promise<Obj | undefined> {
  const directive = patch.$patch;
  if (directive !== undefined) {
    if (directive === 'delete') return undefined;
    if (directive === 'replace') {
      const { $patch: _, ...rest } = patch;
      return clean(rest, sl);
    }
    if (directive !== 'merge') throw badRequest(`Unknown patch type: ${JSON.stringify(directive)} in map: ${JSON.stringify(patch)}`);
  }
  const retain = patch.$retainKeys;
  if (retain !== undefined && (!Array.isArray(retain) || retain.some((k) => typeof k !== 'string'))) throw badRequest('$retainKeys must be a list of strings');
  const orders: Record<string, unknown[]> = {};
  for (const k of Object.keys(patch)) {
    if (sl.due()) await sl.yield();
    const v = patch[k];
    if (k === '$patch' || k === '$retainKeys') continue;
    if (k.startsWith(ORDER)) {
      if (!Array.isArray(v)) throw badRequest(`${k} must be a list`);
      orders[k.slice(ORDER.length)] = v;
      continue;
    }
    if (k.startsWith(DELETE_LIST)) {
      const field = k.slice(DELETE_LIST.length);
      if (!Array.isArray(v)) throw badRequest(`${k} must be a list`);
      const cur = own(orig, field);
      const del = new Set(v.map(idOf));
      if (Array.isArray(cur)) put(orig, field, cur.filter((x) => !del.has(idOf(x))));
      continue;
    }
    if (k.startsWith('$')) throw badRequest(`unknown patch directive: ${k}`);
    const p = path ? `${path}.${k}` : k;
    if (v === null) {
      delete orig[k];
    } else if (isMap(v)) {
      const cur = own(orig, k);
      const merged = await mergeMap(isMap(cur) ? cur : {}, v, p, st, sl);
      if (merged === undefined) delete orig[k];
      else put(orig, k, merged);
    } else if (Array.isArray(v) && Object.hasOwn(st, p)) {
      const cur = own(orig, k);
      put(orig, k, await mergeList(Array.isArray(cur) ? cur : [], v, p, st[p], st, sl));
    } else put(orig, k, v !== null && typeof v === 'object' ? await clean(v, sl) : v);
  }
  for (const [field, order] of Object.entries(orders)) {
    const p = path ? `${path}.${field}` : field;
    const cur = own(orig, field);
    if (Array.isArray(cur)) put(orig, field, applyOrder(cur, order, Object.hasOwn(st, p) ? st[p] : ''));
  }
  if (Array.isArray(retain)) {
    const keep = new Set(retain as string[]);
    for (const k of Object.keys(orig)) if (!keep.has(k)) delete orig[k];
  }
  return orig;
}

// Elements are found by their JSON (what `equal` compares) in Maps: a list of 20,000 finalizers or
// ownerReferences must not compare every element with every other one (issue 15).
const GONE = Symbol('deleted');

async function mergeList(orig: unknown[], patch: unknown[], path: string, mergeKey: string, st: PatchStrategies, sl: Slicer): Promise<unknown[]> {
  // `{$patch: replace}` as an element: the rest of the patch list is the list
  if (patch.some((e) => isMap(e) && e.$patch === 'replace')) return clean(patch.filter((e) => !(isMap(e) && e.$patch === 'replace')), sl);
  const out: unknown[] = [...orig];
  if (!mergeKey) {
    const seen = new Set(out.map(idOf));
    for (const e of patch) {
      if (isMap(e)) throw badRequest(`${path}: a list of scalars cannot merge a map`);
      const id = idOf(e);
      if (!seen.has(id)) out.push(e), seen.add(id);
    }
    return out;
  }
  // merge key -> the indexes of the elements that have it, in order (the first one live is the one)
  const at = new Map<string, number[]>();
  const index = (x: unknown, i: number) => {
    if (!isMap(x)) return;
    const k = own(x, mergeKey);
    if (k === undefined) return;
    const id = idOf(k);
    const l = at.get(id);
    if (l) l.push(i);
    else at.set(id, [i]);
  };
  out.forEach(index);
  const find = (id: string) => {
    const l = at.get(id);
    while (l?.length && out[l[0]] === GONE) l.shift();
    return l?.length ? l[0] : -1;
  };
  for (const e of patch) {
    if (sl.due()) await sl.yield();
    if (!isMap(e)) throw badRequest(`${path}: an element without the merge key ${mergeKey}`);
    const key = own(e, mergeKey);
    if (key === undefined) throw badRequest(`map: ${JSON.stringify(e)} does not contain declared merge key: ${mergeKey}`);
    const i = find(idOf(key));
    if (e.$patch === 'delete') {
      if (i >= 0) out[i] = GONE;
      continue;
    }
    if (i >= 0) {
      const merged = await mergeMap(out[i] as Obj, e, path, st, sl);
      out[i] = merged === undefined ? GONE : merged;
    } else {
      const added = await mergeMap({}, e, path, st, sl);
      out.push(added);
      index(added, out.length - 1);
    }
  }
  return out.filter((x) => x !== GONE);
}

/** `$setElementOrder`: the listed elements in that order, the others kept at their relative place. */
function applyOrder(list: unknown[], order: unknown[], mergeKey: string): unknown[] {
  const keyOf = (x: unknown) => (mergeKey && isMap(x) ? x[mergeKey] : x);
  const ranks = new Map<string, number>();
  order.forEach((o, i) => {
    const id = idOf(keyOf(o));
    if (!ranks.has(id)) ranks.set(id, i);
  });
  const rank = (x: unknown) => ranks.get(idOf(keyOf(x))) ?? -1;
  const r = list.map(rank);
  // each other element goes back right after the listed element that preceded it in the list
  const lead: unknown[] = [];
  const after = new Map<number, unknown[]>(); // index in `list` of a listed element -> the others after it
  const listed: number[] = [];
  let last = -1;
  list.forEach((x, i) => {
    if (r[i] >= 0) {
      listed.push(i);
      last = i;
    } else if (last < 0) lead.push(x);
    else (after.get(last) ?? after.set(last, []).get(last)!).push(x);
  });
  listed.sort((a, b) => r[a] - r[b] || a - b);
  const out = lead;
  for (const i of listed) {
    out.push(list[i]);
    for (const x of after.get(i) ?? []) out.push(x);
  }
  return out;
}

/** A copy without directives (they never stay in the result), in slices. */
async function clean<T>(v: T, sl: Slicer): Promise<T> {
  if (Array.isArray(v)) {
    const out: unknown[] = [];
    for (const x of v) {
      if (sl.due()) await sl.yield();
      out.push(x !== null && typeof x === 'object' ? await clean(x, sl) : x);
    }
    return out as T;
  }
  if (!isMap(v)) return v;
  const out: Obj = {};
  for (const k of Object.keys(v)) {
    if (sl.due()) await sl.yield();
    const x = v[k];
    if (!k.startsWith('$')) put(out, k, x !== null && typeof x === 'object' ? await clean(x, sl) : x);
  }
  return out as T;
}

const idOf = (x: unknown): string => String(JSON.stringify(x));

