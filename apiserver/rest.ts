// The one generic REST store: every verb for every kind (k8s.io/apiserver's registry/generic),
// written against storage/store.ts and driven by the kind definitions.
import { randomUUID } from 'node:crypto';
import fastJsonPatch from 'fast-json-patch';
import type { FieldError, KubeObject } from '../kinds/types.js';
import type { Store, StoredObject } from '../storage/store.js';
import { allowQuotaHeadroom, preSerialize, StoreError } from '../storage/store.js';
import {
  ApiError,
  alreadyExists,
  badRequest,
  conflict,
  expired,
  internal,
  invalid,
  notFound,
  serviceUnavailable,
  staleConflict,
  timeout,
  tooLarge,
  unsupportedMediaType,
} from './errors.js';
import { MAX_BYTES } from './prescan.js';
import { type BodyType, parseBody, parseBodyAsync, parseMediaType, parseProtobufBody } from './negotiate.js';
import { cloneJson, deepEqualJson, memberRanges, nextTurn, Slicer, stringifyJson, stringifyJsonAround } from './json.js';
import { keyFor, type Resource } from './resources.js';
import { type Matcher, parseFieldSelector, parseLabelSelector } from './selectors.js';
import { validateObjectMeta } from './validation.js';
import { type AtomicPaths, applyConfiguration, recordUpdate, updateManager } from './apply.js';

/** The JSON nextState made of a next state (around its resourceVersion), for its size check and the store. */
const serialized = new WeakMap<KubeObject, [string, string]>();

const atomicPaths = (r: Resource): AtomicPaths => (r.def.atomicFields ?? []).map((f) => f.split('.'));
import { assertObjectDepthAsync } from './limits.js';
import { queryBool } from './request-info.js';
import { META_STRATEGIES, strategicMergePatch } from './smp.js';

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

/** Per-request options and the warnings to return (`Warning: 299 - "..."` headers). */
export interface RequestOptions {
  dryRun: boolean;
  fieldValidation: FieldValidation;
  warnings: string[];
  /** Who makes the change (`?fieldManager=`); required for server-side apply. */
  fieldManager?: string;
  /** Server-side apply: take over fields other managers own (`?force=true`). */
  force?: boolean;
  /** The client's User-Agent: the manager of a non-apply write without fieldManager. */
  userAgent?: string;
  /** The server's own status writes: may go a little past the storage quota (storage/quota.ts). */
  quotaHeadroom?: boolean;
}

export interface ListQuery {
  labelSelector?: string;
  fieldSelector?: string;
  limit?: number;
  continue?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
}

export interface ListPage {
  items: StoredObject[];
  resourceVersion: string;
  continue?: string;
  /** Items after this page, when the list has no selector (kube's remainingItemCount). */
  remainingItemCount?: number;
}

const clone = <T>(v: T): T => structuredClone(v);
const now = () => new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

export function generateName(prefix: string): string {
  let s = prefix.length > 58 ? prefix.slice(0, 58) : prefix;
  for (let i = 0; i < 5; i++) s += NAME_CHARS[Math.floor(Math.random() * NAME_CHARS.length)];
  return s;
}

/** kube's maxJSONPatchOperations (k8s.io/apiserver pkg/endpoints/handlers/patch.go): more is a 413. */
export const MAX_JSON_PATCH_OPERATIONS = 10_000;
/** kube's JSONPatchMaxCopyBytes (pkg/server/config.go): the bytes all `copy` operations of one patch may copy. */
export const MAX_JSON_PATCH_COPY_BYTES = 3 * 1024 * 1024;
/** Largest object stored, whoever writes it (users, the server's own reconcilers): kube's request limit. */
export const MAX_OBJECT_BYTES = MAX_BYTES;

/**
 * Throws 413 when an object about to be stored is over MAX_OBJECT_BYTES. Serialises it once, in
 * slices, and hands that to the store (preSerialize), with a hole where the store puts its
 * resourceVersion (the field is added, empty, where the store would add it).
 */
export async function assertStoredSize(obj: KubeObject, made?: [string, string]): Promise<[string, string]> {
  obj.metadata.resourceVersion ??= '';
  const around = made ?? (await stringifyJsonAround(obj, obj.metadata, 'resourceVersion'));
  const len = around[0].length + around[1].length;
  const n = len > MAX_OBJECT_BYTES / 3 ? Buffer.byteLength(around[0]) + Buffer.byteLength(around[1]) : len; // (UTF-16 units: at most 3 bytes each)
  if (n > MAX_OBJECT_BYTES) throw tooLarge(`Request entity too large: the object is ${n} bytes, over the limit of ${MAX_OBJECT_BYTES} bytes for a stored object`);
  preSerialize(obj, around);
  return around;
}

/** fieldValidation for fields a JSON body repeats: Strict rejects, Warn warns, Ignore keeps the last. */
export function checkDuplicates(dups: string[], opts: RequestOptions) {
  if (opts.fieldValidation === 'Ignore' || !dups.length) return;
  const msgs = dups.map((d) => `duplicate field "${d}"`);
  if (opts.fieldValidation === 'Strict') throw badRequest(`strict decoding error: ${msgs.join(', ')}`, dups.map((f) => ({ reason: 'FieldValueDuplicate', message: `duplicate field "${f}"`, field: f })));
  opts.warnings.push(...msgs);
}

/** Thrown inside a store's update when the object changed since the next state was computed from it. */
class Stale extends Error {
  constructor(readonly latest: StoredObject) {
    super('the object changed meanwhile');
  }
}

/**
 * The library's validation of an operation, without its walk of the whole value for `undefined`
 * (never in a value read from JSON; for a value of 200,000 keys a pass of its own).
 */
const light = (op: fastJsonPatch.Operation): fastJsonPatch.Operation => {
  const v = (op as { value?: unknown }).value;
  return v !== null && typeof v === 'object' ? ({ ...op, value: 0 } as fastJsonPatch.Operation) : op;
};
const validateLight: fastJsonPatch.Validator<unknown> = (op, i, doc, existing) => fastJsonPatch.validator(light(op), i, doc, existing);

/** RFC 7386 merge patch (json-merge-patch's apply), in slices; `__proto__` is a field like any other. */
async function applyMergePatch(target: unknown, patch: unknown, slicer = new Slicer()): Promise<unknown> {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const t = (target !== null && typeof target === 'object' && !Array.isArray(target) ? target : {}) as Record<string, unknown>;
  const p = patch as Record<string, unknown>;
  const keys = Object.keys(p);
  for (let i = 0; i < keys.length; i++) {
    if (slicer.due()) await slicer.yield();
    const k = keys[i];
    const v = p[k];
    if (v === null) delete t[k];
    else {
      const merged = await applyMergePatch(Object.hasOwn(t, k) ? t[k] : undefined, v, slicer);
      if (k === '__proto__') Object.defineProperty(t, k, { value: merged, writable: true, enumerable: true, configurable: true });
      else t[k] = merged;
    }
  }
  return t;
}

/**
 * Applies a JSON patch one operation at a time with kube's bounds: the operation count was checked
 * before; the bytes `copy` operations add up to at most MAX_JSON_PATCH_COPY_BYTES (40 self-copies of
 * a ConfigMap would otherwise make 2^40 of it). Throws the library's errors, or a 422 for the copies.
 */
async function applyJsonPatch(doc: unknown, ops: fastJsonPatch.Operation[]): Promise<unknown> {
  let copied = 0;
  const slicer = new Slicer();
  for (let i = 0; i < ops.length; i++) {
    if (slicer.due()) await slicer.yield();
    const op = ops[i];
    if (op.op === 'copy') {
      let v: unknown;
      try {
        v = fastJsonPatch.getValueByPointer(doc, op.from);
      } catch {
        v = undefined; // the library reports the bad path
      }
      copied += v === undefined ? 0 : Buffer.byteLength(JSON.stringify(v) ?? '');
      if (copied > MAX_JSON_PATCH_COPY_BYTES)
        throw new ApiError(422, 'Invalid', `Unable to copy, the accumulated size increase of copy is ${copied}, exceeding the limit ${MAX_JSON_PATCH_COPY_BYTES}`);
    }
    doc = fastJsonPatch.applyOperation(doc, op, validateLight, true, true, i).newDocument;
  }
  return doc;
}

export function mapStoreError(err: unknown, r: Resource, name: string): never {
  if (err instanceof ApiError) throw err;
  if (err instanceof StoreError) {
    switch (err.code) {
      case 'NotFound':
        throw notFound(r.gr, name);
      case 'AlreadyExists':
        throw alreadyExists(r.gr, name);
      case 'Conflict':
        throw staleConflict(r.gr, name);
      case 'Expired':
        throw expired(err.message);
      case 'QuotaExceeded':
        // as ResourceQuota admission refuses (k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go)
      {
        const e = new ApiError(403, 'Forbidden', `${r.gr.group ? `${r.gr.resource}.${r.gr.group}` : r.gr.resource} "${name}" is forbidden: ${err.message}`, { name, group: r.gr.group, kind: r.gr.resource });
        e.cause = err; // reconcilers report it as QuotaExceeded (reconcilers/runtime/errors.ts)
        throw e;
      }
      case 'Unavailable':
        throw err.message.startsWith('Too large') ? timeout(err.message) : serviceUnavailable(err.message);
    }
  }
  throw internal((err as Error)?.message ?? String(err));
}

function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({ v: 'meta.k8s.io/v1', rv, start })).toString('base64url');
}

function decodeContinue(token: string): { rv: number; start: string } {
  try {
    const t = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
    if (t.v !== 'meta.k8s.io/v1' || typeof t.rv !== 'number' || typeof t.start !== 'string') throw new Error('bad token');
    return { rv: t.rv, start: t.start };
  } catch {
    throw badRequest(`continue key is not valid: ${token.length > 64 ? token.slice(0, 64) + '...' : token}`);
  }
}

export function parseRV(v: string, what = 'resourceVersion'): number {
  if (!/^\d+$/.test(v)) throw badRequest(`Invalid value: "${v}": ${what}: must be a non-negative integer`);
  return Number(v);
}

/**
 * Whether `v`, whose JSON is `text`, equals the stored value whose JSON is `stored` (`old`): the
 * same text is the same value (kube compares the bytes it would store); a text of another length
 * another value (a different key order changes neither length nor value); only texts of the same
 * length that differ are compared by walking both (deepEqualJson). Two walks of 200,000 labels,
 * each enumerating both maps, held the event loop 100 to 300 ms.
 */
async function equalsStored(v: unknown, text: string | undefined, stored: string | undefined, old: unknown): Promise<boolean> {
  if (text !== undefined && stored !== undefined) {
    if (text === stored) return true;
    if (text.length !== stored.length) return false;
  }
  return deepEqualJson(v, old);
}

/** The JSON of an object with its resourceVersion, [before, after] around it (stringifyJsonAround). */
const withRV = (around: [string, string], rv: unknown) => `${around[0]}${JSON.stringify(rv)}${around[1]}`;

/** Fields that the main resource may change (everything but metadata, apiVersion, kind and status). */
function specPart(r: Resource, obj: KubeObject): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) if (k !== 'metadata' && k !== 'apiVersion' && k !== 'kind' && !r.statusFields.includes(k)) out[k] = v;
  return out;
}

/**
 * A built-in type's missing kind/apiVersion, from the endpoint: kube decodes built-in bodies with
 * the endpoint's GroupVersionKind as defaults (apimachinery/pkg/runtime/serializer/json/json.go,
 * gvkWithDefaults); custom resources get `Object 'Kind' is missing` instead.
 */
export function fillTypeMeta(r: Resource, obj: KubeObject) {
  if (obj.kind === undefined || obj.kind === '') obj.kind = r.def.kind;
  if (obj.apiVersion === undefined || obj.apiVersion === '') obj.apiVersion = r.apiVersion;
}

/**
 * Empty maps and lists of ObjectMeta are absent, as kube stores them (Go's omitempty on the typed
 * ObjectMeta, which custom resources' metadata is round-tripped through too): removing the last
 * label leaves no `labels: {}`.
 */
const isEmpty = (o: object) => Object.keys(o).length === 0; // (for-in first collects every key too, and slower)

export function dropEmptyMeta(obj: KubeObject) {
  const m = obj.metadata as Record<string, unknown>;
  for (const k of ['labels', 'annotations', 'finalizers', 'ownerReferences', 'managedFields']) {
    const v = m[k];
    if (v === null || (Array.isArray(v) && v.length === 0) || (v && typeof v === 'object' && !Array.isArray(v) && isEmpty(v))) delete m[k];
  }
}

export class GenericREST {
  constructor(private readonly store: Store) {}

  private blocksDeletion(r: Resource, obj: KubeObject): boolean {
    return (obj.metadata.finalizers?.length ?? 0) > 0 || !!r.def.strategy?.deletionPending?.(obj);
  }

  /** Set in standalone mode: refuses namespaced writes into missing or terminating namespaces. */
  namespaceCheck?: (namespace: string) => Promise<void>;

  matcher(r: Resource, q: ListQuery): Matcher | undefined {
    const l = parseLabelSelector(q.labelSelector);
    const f = parseFieldSelector(q.fieldSelector, r.fieldGetters);
    if (l && f) return (o) => l(o) && f(o);
    return l ?? f;
  }

  async get(r: Resource, ns: string | undefined, name: string): Promise<StoredObject> {
    const o = await this.store.get(keyFor(r, ns, name));
    if (!o) throw notFound(r.gr, name);
    return o;
  }

  async list(r: Resource, ns: string | undefined, q: ListQuery): Promise<ListPage> {
    const match = this.matcher(r, q);
    let atRV: number | undefined;
    let startAfter: string | undefined;
    if (q.continue) {
      if (q.resourceVersion && q.resourceVersion !== '0') throw badRequest('specifying resource version is not allowed when using continue');
      const t = decodeContinue(q.continue);
      if (!t.start.startsWith(keyFor(r, ns))) throw badRequest('continue key is not valid: it does not belong to this list');
      atRV = t.rv;
      startAfter = t.start;
    } else if (q.resourceVersion && q.resourceVersionMatch === 'Exact') {
      atRV = parseRV(q.resourceVersion);
    } else if (q.resourceVersionMatch && !['Exact', 'NotOlderThan'].includes(q.resourceVersionMatch)) {
      throw badRequest(`Unsupported value: "${q.resourceVersionMatch}": resourceVersionMatch: supported values: "Exact", "NotOlderThan"`);
    } else if (q.resourceVersion && q.resourceVersion !== '0') {
      const min = parseRV(q.resourceVersion);
      if (min > this.store.currentRV()) await this.store.syncRV?.(3000); // another replica may be ahead
      if (min > this.store.currentRV()) throw timeout(`Too large resource version: ${min}, current: ${this.store.currentRV()}`);
    }
    let res;
    try {
      res = await this.store.list(keyFor(r, ns), { limit: q.limit, startAfter, atRV, filter: match && ((o) => match(o.obj)) });
    } catch (err) {
      if (err instanceof StoreError && err.code === 'Expired' && q.continue)
        throw expired(
          'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.',
        );
      mapStoreError(err, r, '');
    }
    return {
      items: res.items,
      resourceVersion: String(res.rv),
      continue: res.lastKey ? encodeContinue(res.rv, res.lastKey) : undefined,
      ...(res.lastKey && res.remaining !== undefined ? { remainingItemCount: res.remaining } : {}),
    };
  }

  /** Validates a body's apiVersion/kind/namespace/name against the request. */
  private checkIdentity(r: Resource, body: unknown, ns: string | undefined, name?: string, apply = false): KubeObject {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw badRequest(`expected a JSON object of kind ${r.def.kind}, got ${Array.isArray(body) ? 'an array' : typeof body}`);
    const obj = body as KubeObject;
    if (r.builtin && !apply) fillTypeMeta(r, obj); // an apply patch must name its version (fieldmanager's Apply)
    if (obj.kind === undefined || obj.kind === '') throw badRequest(`Object 'Kind' is missing in the request body`);
    if (obj.apiVersion === undefined || obj.apiVersion === '') throw badRequest(`Object 'apiVersion' is missing in the request body`);
    if (obj.apiVersion !== r.apiVersion) throw badRequest(`the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${r.apiVersion})`);
    if (obj.kind !== r.def.kind) throw badRequest(`the kind in the data (${String(obj.kind)}) does not match the expected kind (${r.def.kind})`);
    if (obj.metadata === undefined || obj.metadata === null) obj.metadata = {};
    if (typeof obj.metadata !== 'object' || Array.isArray(obj.metadata)) throw badRequest('metadata must be an object');
    if (r.def.namespaced) {
      if (obj.metadata.namespace !== undefined && obj.metadata.namespace !== '' && obj.metadata.namespace !== ns)
        throw badRequest('the namespace of the provided object does not match the namespace sent on the request');
      obj.metadata.namespace = ns;
    } else delete obj.metadata.namespace;
    if (name !== undefined && obj.metadata.name !== undefined && obj.metadata.name !== name)
      throw badRequest(`the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${name})`);
    return obj;
  }

  private pruneUnknown(r: Resource, obj: KubeObject, opts: RequestOptions) {
    const unknown = r.compiled.prune(obj);
    if (!unknown.length || opts.fieldValidation === 'Ignore') return;
    const msgs = unknown.map((p) => `unknown field "${p}"`);
    if (opts.fieldValidation === 'Strict') throw badRequest(`strict decoding error: ${msgs.join(', ')}`, unknown.map((f) => ({ reason: 'FieldValueInvalid', message: `unknown field "${f}"`, field: f })));
    opts.warnings.push(...msgs);
  }

  /** Each pass over the object in a turn of the event loop of its own. */
  private async validateAll(r: Resource, obj: KubeObject, old?: KubeObject): Promise<FieldError[]> {
    const errs = await validateObjectMeta(obj.metadata, r.def.namespaced);
    await nextTurn();
    const more = (list: FieldError[]) => {
      for (const e of list) errs.push(e); // (push(...list) overflows the stack past ~100,000 errors)
    };
    more(r.compiled.validate(obj));
    await nextTurn();
    if (r.def.strategy?.validate) more(r.def.strategy.validate(obj));
    if (old && r.def.strategy?.validateUpdate) more(r.def.strategy.validateUpdate(obj, old));
    await nextTurn(); // (the next pass starts in a turn of its own)
    return errs;
  }

  /** `depthChecked`: the body's parser has bounded its nesting (a JSON text, apiserver/json.ts). */
  async create(r: Resource, ns: string | undefined, body: unknown, opts: RequestOptions, keepManagedFields = false, depthChecked = false): Promise<StoredObject> {
    if (!depthChecked) await assertObjectDepthAsync(body); // before anything walks it recursively (apiserver/limits.ts)
    const obj = this.checkIdentity(r, body, ns);
    if (ns !== undefined && this.namespaceCheck) await this.namespaceCheck(ns);
    this.pruneUnknown(r, obj, opts);
    await nextTurn();
    const meta = obj.metadata;
    if (meta.resourceVersion) throw badRequest('resourceVersion should not be set on objects to be created');
    const generate = !meta.name && typeof meta.generateName === 'string' && meta.generateName !== '';
    for (const f of r.statusFields) delete obj[f];
    meta.uid = randomUUID();
    meta.creationTimestamp = now();
    meta.generation = 1;
    delete meta.deletionTimestamp;
    delete meta.deletionGracePeriodSeconds;
    delete meta.selfLink;
    if (!keepManagedFields) delete meta.managedFields;
    if (generate) meta.name = generateName(meta.generateName as string);
    r.def.strategy?.prepareForCreate?.(obj);
    dropEmptyMeta(obj);
    await nextTurn();
    const manager = keepManagedFields ? undefined : updateManager(opts.fieldManager, opts.userAgent);
    if (manager) {
      await recordUpdate(undefined, obj, manager, r.apiVersion, now(), r.statusFields, undefined, atomicPaths(r));
      await nextTurn();
    }
    const errs = await this.validateAll(r, obj);
    if (errs.length) throw invalid(r.gr, String(meta.name ?? meta.generateName ?? ''), errs);
    await assertStoredSize(obj);
    if (opts.dryRun) {
      try {
        this.store.checkQuota?.(keyFor(r, ns, meta.name!), obj); // as the create would be, nothing reserved
      } catch (err) {
        mapStoreError(err, r, meta.name!);
      }
      if (await this.store.get(keyFor(r, ns, meta.name!))) throw alreadyExists(r.gr, meta.name!);
      delete meta.resourceVersion;
      return { key: '', rv: 0, obj, json: await stringifyJson(obj) };
    }
    await nextTurn();
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.store.create(keyFor(r, ns, meta.name!), obj);
      } catch (err) {
        if (generate && attempt < 5 && err instanceof StoreError && err.code === 'AlreadyExists') {
          meta.name = generateName(meta.generateName as string);
          await assertStoredSize(obj); // the name changed
          continue;
        }
        mapStoreError(err, r, meta.name!);
      }
    }
  }

  /**
   * Turns a proposed new object into the stored next state: main writes keep status, status writes
   * keep everything else; bumps generation on spec changes; returns cur.obj for a no-op and null
   * when the last finalizer of a deleted object is gone.
   */
  private async nextState(r: Resource, cur: StoredObject, proposed: KubeObject, status: boolean, opts: RequestOptions, rvCheck: string | undefined, keepManagedFields = false): Promise<KubeObject | null> {
    const old = cur.obj;
    if (rvCheck !== undefined && rvCheck !== '' && rvCheck !== old.metadata.resourceVersion) throw staleConflict(r.gr, old.metadata.name!);
    if (proposed.metadata.uid !== undefined && proposed.metadata.uid !== '' && proposed.metadata.uid !== old.metadata.uid)
      throw conflict(r.gr, old.metadata.name!, `Precondition failed: UID in precondition: ${String(proposed.metadata.uid)}, UID in object meta: ${old.metadata.uid}`);
    let next: KubeObject;
    if (status) {
      next = await cloneJson(old, cur.json);
      for (const f of r.statusFields) {
        if (proposed[f] === undefined) delete next[f];
        else next[f] = proposed[f];
      }
      const manager = updateManager(opts.fieldManager, opts.userAgent);
      if (manager) await recordUpdate(old, next, manager, r.apiVersion, now(), r.statusFields, 'status');
    } else {
      next = proposed;
      const m = next.metadata;
      for (const k of ['uid', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'generation', 'name', 'namespace'] as const) {
        if (old.metadata[k] === undefined) delete m[k];
        else (m as Record<string, unknown>)[k] = old.metadata[k];
      }
      if (!keepManagedFields) {
        delete m.managedFields;
        if (old.metadata.managedFields) m.managedFields = old.metadata.managedFields;
      }
      delete m.selfLink;
      for (const f of r.statusFields) {
        if (old[f] === undefined) delete next[f];
        else next[f] = clone(old[f]);
      }
      r.def.strategy?.prepareForUpdate?.(next, old);
      await nextTurn();
      dropEmptyMeta(next);
      await nextTurn(); // (dropEmptyMeta enumerates each map of metadata: 200,000 labels, 30 to 60 ms)
      const manager = keepManagedFields ? undefined : updateManager(opts.fieldManager, opts.userAgent);
      if (manager) {
        await recordUpdate(old, next, manager, r.apiVersion, now(), r.statusFields, undefined, atomicPaths(r));
      }
      if (old.metadata.deletionTimestamp) {
        const had = new Set(old.metadata.finalizers ?? []);
        const added = (Array.isArray(next.metadata.finalizers) ? next.metadata.finalizers : []).filter((f) => !had.has(f));
        if (added.length)
          throw invalid(r.gr, old.metadata.name!, [{ type: 'FieldValueForbidden', field: 'metadata.finalizers', message: 'Forbidden: no new finalizers can be added if the object is being deleted' }]);
      }
    }
    next.metadata.resourceVersion = old.metadata.resourceVersion;
    await nextTurn();
    const errs = await this.validateAll(r, next, old);
    if (errs.length) throw invalid(r.gr, old.metadata.name!, errs);
    await nextTurn();
    let around = await stringifyJsonAround(next, next.metadata, 'resourceVersion');
    const text = withRV(around, next.metadata.resourceVersion);
    if (!status && !(await this.sameSpec(r, next, text, cur))) {
      // a change: the generation goes up, only the metadata is serialised again
      next.metadata.generation = (old.metadata.generation ?? 1) + 1;
      const at = (await memberRanges(text, 'metadata')).get('metadata')!;
      const meta = await stringifyJsonAround(next.metadata, next.metadata, 'resourceVersion');
      around = [text.slice(0, at[0]) + meta[0], meta[1] + text.slice(at[1])];
    } else if (await equalsStored(next, text, cur.json, old)) return old;
    serialized.set(next, around);
    if (next.metadata.deletionTimestamp && !this.blocksDeletion(r, next)) return null;
    return next;
  }

  /** Whether the fields the main resource may change (specPart) are those of the stored object. */
  private async sameSpec(r: Resource, next: KubeObject, text: string, cur: StoredObject): Promise<boolean> {
    const a = specPart(r, next);
    const b = specPart(r, cur.obj);
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    let na: Map<string, [number, number]> | undefined;
    let nb: Map<string, [number, number]> | undefined;
    for (const k of keys) {
      if (!Object.hasOwn(b, k)) return false;
      if (a[k] === b[k]) continue;
      // the members' texts, cut out of both objects' JSON (a member serialised again would
      // enumerate its maps once more)
      na ??= await memberRanges(text);
      nb ??= await memberRanges(cur.json);
      const ra = na.get(k);
      const rb = nb.get(k);
      if (!(await equalsStored(a[k], ra && text.slice(ra[0], ra[1]), rb && cur.json.slice(rb[0], rb[1]), b[k]))) return false;
    }
    return true;
  }

  /**
   * kube's GuaranteedUpdate: the next state is computed (in slices, outside the store) from the
   * current object, then written if the object is still that one; else computed again from the
   * newer one.
   */
  private async guaranteedUpdate(r: Resource, ns: string | undefined, name: string, opts: RequestOptions, update: (cur: StoredObject) => Promise<KubeObject | null> | KubeObject | null): Promise<StoredObject> {
    const key = keyFor(r, ns, name);
    try {
      let cur = await this.store.get(key);
      for (;;) {
        if (!cur) throw notFound(r.gr, name);
        const base: StoredObject = cur;
        const next = await update(base);
        await nextTurn(); // (serialising enumerates the object's maps again)
        const around = next !== null && next !== base.obj ? await assertStoredSize(next, serialized.get(next)) : undefined;
        if (opts.quotaHeadroom && next) allowQuotaHeadroom(next);
        if (opts.dryRun) {
          if (next === null || next === base.obj) return base;
          this.store.checkQuota?.(key, next, base); // as the update would be, nothing reserved
          return { key, rv: base.rv, obj: next, json: `${around![0]}${JSON.stringify(next.metadata.resourceVersion)}${around![1]}` };
        }
        await nextTurn();
        try {
          return await this.store.update(key, (latest) => {
            if (latest.rv !== base.rv) throw new Stale(latest);
            return next === base.obj ? latest.obj : next;
          });
        } catch (err) {
          if (!(err instanceof Stale)) throw err;
          cur = err.latest;
        }
      }
    } catch (err) {
      mapStoreError(err, r, name);
    }
  }

  async update(r: Resource, ns: string | undefined, name: string, body: unknown, status: boolean, opts: RequestOptions, depthChecked = false): Promise<StoredObject> {
    if (!depthChecked) await assertObjectDepthAsync(body);
    const proposed = this.checkIdentity(r, body, ns, name);
    this.pruneUnknown(r, proposed, opts);
    proposed.metadata.name = name;
    const rvCheck = proposed.metadata.resourceVersion;
    await nextTurn();
    const json = await stringifyJson(proposed); // each try changes a copy
    return this.guaranteedUpdate(r, ns, name, opts, async (cur) => this.nextState(r, cur, await cloneJson(proposed, json), status, opts, rvCheck));
  }

  async patch(r: Resource, ns: string | undefined, name: string, type: BodyType, body: unknown, status: boolean, opts: RequestOptions): Promise<StoredObject> {
    if (type === 'apply-patch') return (await this.apply(r, ns, name, body, status, opts)).obj;
    if (opts.force) throw badRequest('force: Forbidden: may not be specified for non-apply patch');
    if ((type !== 'merge-patch' && type !== 'strategic-merge-patch' && type !== 'json-patch') || (type === 'strategic-merge-patch' && !r.builtin))
      // custom resources take no strategic merge patch (apiextensions-apiserver's handler; clients fall back)
      throw unsupportedMediaType(
        `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml${r.builtin ? ', application/strategic-merge-patch+json' : ''}`,
      );
    const parsed = await parseBodyAsync(body, false);
    checkDuplicates(parsed.duplicates, opts);
    const patch = parsed.value;
    if (type === 'json-patch') {
      if (!Array.isArray(patch)) throw badRequest('json patch must be an array of operations');
      if (patch.length > MAX_JSON_PATCH_OPERATIONS) throw tooLarge(`The allowed maximum operations in a JSON patch is ${MAX_JSON_PATCH_OPERATIONS}, got ${patch.length}`);
      const err = fastJsonPatch.validate((patch as fastJsonPatch.Operation[]).map((o) => (o !== null && typeof o === 'object' ? light(o) : o)));
      if (err) throw badRequest(`invalid json patch: ${err.message.split('\n')[0]}`);
    } else if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) throw badRequest('merge patch must be a JSON object');
    return this.guaranteedUpdate(r, ns, name, opts, async (cur) => {
      let patched: unknown;
      if (type === 'json-patch') {
        try {
          patched = await applyJsonPatch(await cloneJson(cur.obj, cur.json), patch as fastJsonPatch.Operation[]);
        } catch (err) {
          if (err instanceof ApiError) throw err;
          const e = err as Error & { name?: string };
          if (e.name === 'TEST_OPERATION_FAILED') throw invalid(r.gr, name, [{ type: 'FieldValueInvalid', field: '', message: 'the json patch test operation failed' }]);
          throw new ApiError(422, 'Invalid', `the server rejected our request due to an error in our request: ${e.message.split('\n')[0]}`);
        }
      } else if (type === 'strategic-merge-patch') patched = await strategicMergePatch(await cloneJson(cur.obj, cur.json), patch as Record<string, unknown>, { ...META_STRATEGIES, ...r.def.patchStrategies }, true);
      else patched = await applyMergePatch(await cloneJson(cur.obj, cur.json), patch);
      await nextTurn();
      await assertObjectDepthAsync(patched);
      await nextTurn();
      const proposed = this.checkIdentity(r, patched, ns, name);
      this.pruneUnknown(r, proposed, opts);
      await nextTurn();
      return this.nextState(r, cur, proposed, status, opts, proposed.metadata.resourceVersion);
    });
  }

  /** Server-side apply (apiserver/apply.ts): creates the object when it does not exist. */
  async apply(r: Resource, ns: string | undefined, name: string, body: unknown, status: boolean, opts: RequestOptions): Promise<{ obj: StoredObject; created: boolean }> {
    if (status) throw unsupportedMediaType('server-side apply to the status subresource is not supported by this server; apply the object, or PUT/PATCH its status');
    const manager = opts.fieldManager;
    if (!manager) throw new ApiError(422, 'Invalid', 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch');
    const parsed = await parseBodyAsync(body, true);
    if (!parsed.depthChecked) await assertObjectDepthAsync(parsed.value);
    const applied = this.checkIdentity(r, parsed.value, ns, name, true);
    applied.metadata.name ??= name;
    this.pruneUnknown(r, applied, opts);
    const rvCheck = applied.metadata.resourceVersion;
    const key = keyFor(r, ns, name);
    if (!(await this.store.get(key))) {
      if (rvCheck) throw notFound(r.gr, name);
      const obj = await applyConfiguration(undefined, applied, manager, !!opts.force, r.apiVersion, now(), atomicPaths(r));
      try {
        return { obj: await this.create(r, ns, obj, opts, true), created: true };
      } catch (err) {
        if (!(err instanceof ApiError && err.status.reason === 'AlreadyExists')) throw err;
        // created meanwhile: apply to what is there
      }
    }
    const obj = await this.guaranteedUpdate(r, ns, name, opts, async (cur) => {
      const next = await applyConfiguration(cur.obj, applied, manager, !!opts.force, r.apiVersion, now(), atomicPaths(r), cur.json);
      return this.nextState(r, cur, next, false, opts, rvCheck, true);
    });
    return { obj, created: false };
  }

  async delete(r: Resource, ns: string | undefined, name: string, options: DeleteOptions, opts: RequestOptions): Promise<{ obj: StoredObject; deleted: boolean }> {
    if (options.dryRun?.includes('All')) opts = { ...opts, dryRun: true }; // kubectl sends dryRun in the DeleteOptions body
    let deleted = false;
    const obj = await this.guaranteedUpdate(r, ns, name, opts, async (cur) => {
      const pre = options.preconditions;
      if (pre?.uid && pre.uid !== cur.obj.metadata.uid)
        throw conflict(r.gr, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${cur.obj.metadata.uid}`);
      if (pre?.resourceVersion && pre.resourceVersion !== cur.obj.metadata.resourceVersion)
        throw conflict(r.gr, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${cur.obj.metadata.resourceVersion}`);
      // The garbage collector's finalizers follow the options, then the object's own finalizers
      // (store.go updateForGracefulDeletionAndFinalizers): a second delete may change the policy.
      const finalizers = gcFinalizers(cur.obj, options);
      const next = await cloneJson(cur.obj, cur.json);
      if (finalizers) {
        if (finalizers.length) next.metadata.finalizers = finalizers;
        else delete next.metadata.finalizers;
      }
      if (this.blocksDeletion(r, next)) {
        if (cur.obj.metadata.deletionTimestamp) return finalizers ? next : cur.obj;
        r.def.strategy?.prepareForDelete?.(next);
        next.metadata.deletionTimestamp = now();
        next.metadata.deletionGracePeriodSeconds = 0;
        next.metadata.generation = (next.metadata.generation ?? 1) + 1;
        return next;
      }
      deleted = true;
      return null;
    });
    return { obj, deleted };
  }

  async deleteCollection(r: Resource, ns: string | undefined, q: ListQuery, options: DeleteOptions, opts: RequestOptions): Promise<ListPage> {
    const page = await this.list(r, ns, { labelSelector: q.labelSelector, fieldSelector: q.fieldSelector });
    const items: StoredObject[] = [];
    for (const o of page.items) {
      try {
        items.push((await this.delete(r, o.obj.metadata.namespace, o.obj.metadata.name!, options, opts)).obj);
      } catch (err) {
        if (!(err instanceof ApiError && err.status.code === 404)) throw err;
      }
    }
    return { items, resourceVersion: String(this.store.currentRV()) };
  }
}

export interface DeleteOptions {
  preconditions?: { uid?: string; resourceVersion?: string };
  propagationPolicy?: string;
  /** Deprecated form of propagationPolicy: true is Orphan, false is the kind's default. */
  orphanDependents?: boolean;
  gracePeriodSeconds?: number;
  dryRun?: string[];
}

export function parseDeleteOptions(body: unknown, query: Record<string, string | undefined>, contentType?: string): DeleteOptions {
  let opts: DeleteOptions = {};
  const text = typeof body === 'string' ? body : Buffer.isBuffer(body) ? body.toString('utf8') : '';
  if (text.trim() !== '') {
    const protobuf = contentType !== undefined && parseMediaType(contentType).type === 'application/vnd.kubernetes.protobuf';
    const b = protobuf ? parseProtobufBody(body) : parseBody(body, false);
    if (b === null || typeof b !== 'object' || Array.isArray(b)) throw badRequest('DeleteOptions must be a JSON object');
    opts = b as DeleteOptions;
  }
  if (query.propagationPolicy) opts.propagationPolicy = query.propagationPolicy;
  if (query.orphanDependents !== undefined && query.orphanDependents !== '') {
    const b = parseGoBool(query.orphanDependents);
    if (b === undefined) throw badRequest(`Invalid value: "${query.orphanDependents}": orphanDependents: must be a boolean`);
    opts.orphanDependents = b;
  }
  // apimachinery pkg/apis/meta/v1/validation ValidateDeleteOptions: 422 on DeleteOptions.
  const bad = (field: string, message: string) => new ApiError(422, 'Invalid', `DeleteOptions.meta.k8s.io "" is invalid: ${field}: ${message}`, { group: 'meta.k8s.io', kind: 'DeleteOptions', name: '', causes: [{ reason: 'FieldValueInvalid', message, field }] });
  if (opts.orphanDependents !== undefined && opts.orphanDependents !== null && typeof opts.orphanDependents !== 'boolean') throw badRequest('orphanDependents: must be a boolean');
  if (opts.orphanDependents === null) delete opts.orphanDependents;
  if (opts.propagationPolicy === null || opts.propagationPolicy === '') delete opts.propagationPolicy;
  if (opts.propagationPolicy !== undefined && !['Orphan', 'Background', 'Foreground'].includes(opts.propagationPolicy))
    throw bad('propagationPolicy', `Unsupported value: "${String(opts.propagationPolicy)}": supported values: "Foreground", "Background", "Orphan", "nil"`);
  if (opts.orphanDependents !== undefined && opts.propagationPolicy !== undefined)
    throw bad('propagationPolicy', `Invalid value: "${opts.propagationPolicy}": orphanDependents and deletionPropagation cannot be both set`);
  if (opts.dryRun !== undefined && (!Array.isArray(opts.dryRun) || opts.dryRun.some((v) => v !== 'All')))
    throw badRequest(`Invalid value: ${JSON.stringify(opts.dryRun)}: dryRun: supported values: "All"`);
  return opts;
}

/** strconv.ParseBool, as Go's query decoding takes booleans. */
function parseGoBool(v: string): boolean | undefined {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  return undefined;
}

export const FINALIZER_ORPHAN = 'orphan';
export const FINALIZER_FOREGROUND = 'foregroundDeletion';

/**
 * The garbage collector's finalizers a delete leaves on the object, or undefined when they stay as
 * they are (k8s.io/apiserver registry/generic/registry/store.go: shouldOrphanDependents,
 * shouldDeleteDependents, deletionFinalizersForGarbageCollection). Every kind served here has
 * kube's default policy for its kind, Background (DeleteDependents): ReplicationController, the
 * one built-in kind that orphans by default, is not served.
 */
export function gcFinalizers(obj: KubeObject, options: DeleteOptions): string[] | undefined {
  const fins = obj.metadata.finalizers ?? [];
  const firstGC = fins.find((f) => f === FINALIZER_ORPHAN || f === FINALIZER_FOREGROUND);
  let orphan: boolean;
  let foreground: boolean;
  if (options.orphanDependents !== undefined) {
    orphan = options.orphanDependents;
    foreground = false;
  } else if (options.propagationPolicy !== undefined) {
    orphan = options.propagationPolicy === 'Orphan';
    foreground = options.propagationPolicy === 'Foreground';
  } else {
    orphan = firstGC === FINALIZER_ORPHAN;
    foreground = firstGC === FINALIZER_FOREGROUND;
  }
  const next = fins.filter((f) => f !== FINALIZER_ORPHAN && f !== FINALIZER_FOREGROUND);
  if (orphan) next.push(FINALIZER_ORPHAN);
  if (foreground) next.push(FINALIZER_FOREGROUND);
  const before = new Set(fins);
  const after = new Set(next);
  return before.size === after.size && [...after].every((f) => before.has(f)) ? undefined : next;
}

/** Options for the server's own writes (bootstrap, reconcilers, Events): no dry run, unknown fields
 * ignored unless asked otherwise. */
export const internalOptions = (fieldValidation: FieldValidation = 'Ignore'): RequestOptions => ({ dryRun: false, fieldValidation, warnings: [] });

export function requestOptions(query: Record<string, string | undefined>, defaultValidation: FieldValidation = 'Warn'): RequestOptions {
  const dryRun = query.dryRun;
  if (dryRun !== undefined && dryRun !== 'All' && dryRun !== '') throw badRequest(`Invalid value: "${dryRun}": dryRun: supported values: "All"`);
  const fv = query.fieldValidation ?? defaultValidation;
  if (!['Strict', 'Warn', 'Ignore'].includes(fv)) throw badRequest(`invalid fieldValidation directive: ${fv}; supported values: Strict, Warn, Ignore`);
  const fieldManager = query.fieldManager;
  if (fieldManager !== undefined && (fieldManager.length > 128 || /[^\x20-\x7e]/.test(fieldManager)))
    throw badRequest(`Invalid value: ${JSON.stringify(fieldManager)}: fieldManager: must be at most 128 printable ASCII characters`);
  const force = queryBool(query.force); // PatchOptions.force, decoded as kube decodes every boolean parameter
  return { dryRun: dryRun === 'All', fieldValidation: fv as FieldValidation, warnings: [], ...(fieldManager ? { fieldManager } : {}), ...(force ? { force: true } : {}) };
}

