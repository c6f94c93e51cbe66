// Maps `/apis/<group>/<version>/...` and `/api/v1/...` requests onto the generic REST store.
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { KubeObject } from '../kinds/types.js';
import type { StoredObject } from '../storage/store.js';
import { badRequest, methodNotAllowed, pathNotFound } from './errors.js';
import { bodyType, negotiate, parseRequestBody, type Representation, serialize, type Target } from './negotiate.js';
import { Readable } from 'node:stream';
import { memberJson, nextTurn, RawJson, Slicer, stringifyJson, stringifyJsonParts, textSlices } from './json.js';
import { yamlListHead, yamlOfJson, yamlOfListItem } from './yaml.js';
import type { Resource, ResourceRegistry } from './resources.js';
import { checkDuplicates, fillTypeMeta, type GenericREST, type ListPage, type ListQuery, parseDeleteOptions, type RequestOptions, requestOptions } from './rest.js';
import { type IncludeObject, partialMetadata, storedRowCells, table } from './table.js';
import { WatchHub } from './watch.js';
import { infoOf, type Query, queryBool } from './request-info.js';
import { pinnedName } from './selectors.js';
import type { ByteBudget } from './byte-budget.js';
import { warningHeaderValues } from './limits.js';


export interface RequestTarget {
  resource: Resource;
  namespace?: string;
  name?: string;
  subresource?: string;
  /** `/watch/...`: a watch of the collection, or of one object by name. */
  watchPath?: boolean;
}

/** Resolves the path segments after `/apis/<g>/<v>/` (or `/api/v1/`), the deprecated `watch/` prefix included. */
export function resolve(reg: ResourceRegistry, group: string, version: string, segs: string[], path: string): RequestTarget {
  let watchPath = false;
  if (segs[0] === 'watch' && segs.length >= 2) {
    watchPath = true;
    segs = segs.slice(1);
  }
  let ns: string | undefined;
  let rest = segs;
  if (segs[0] === 'namespaces' && segs.length === 3 && segs[2] === 'status') {
    // /api/v1/namespaces/NAME/status: the namespace's own subresource (kube's namespaceSubresources)
  } else if (segs[0] === 'namespaces' && segs.length >= 3) {
    ns = segs[1];
    rest = segs.slice(2);
  }
  const [plural, name, subresource, ...extra] = rest;
  const resource = plural !== undefined ? reg.lookup(group, version, plural) : undefined;
  if (!resource || extra.length || (ns !== undefined && !resource.def.namespaced)) throw pathNotFound(path);
  if (subresource !== undefined && (watchPath || !(subresource === 'status' && resource.def.subresources.status))) throw pathNotFound(path);
  if (name === '') throw pathNotFound(path);
  if (watchPath && !resource.verbs.includes('watch')) throw pathNotFound(path);
  return { resource, namespace: ns, name, subresource, ...(watchPath ? { watchPath } : {}) };
}

function intParam(v: string | undefined, name: string): number | undefined {
  if (v === undefined || v === '') return undefined;
  if (!/^-?\d+$/.test(v)) throw badRequest(`Invalid value: "${v}": ${name} must be an integer`);
  return Number(v);
}

function includeObject(q: Query): IncludeObject {
  const v = q.includeObject ?? 'Metadata';
  if (v !== 'None' && v !== 'Metadata' && v !== 'Object') throw badRequest(`Unsupported value: "${v}": includeObject: supported values: "None", "Metadata", "Object"`);
  return v;
}

function contentType(t: Target): string {
  return t.format === 'yaml' ? 'application/yaml' : 'application/json';
}

/** A value as JSON or YAML, serialised in slices (JSON of a list: sent in pieces). */
async function encode(v: unknown, format: 'json' | 'yaml', list = false): Promise<string | Readable> {
  if (format === 'json' && list) {
    const parts = await stringifyJsonParts(v);
    return Readable.from((function* () { for (const p of parts) yield* textSlices(p); })(), { objectMode: false });
  }
  const json = await stringifyJson(v);
  return format === 'json' ? json : yamlOfJson(json);
}

/**
 * The PartialObjectMetadata of a stored object, its metadata the stored JSON's text (a RawJson:
 * serialising it does not enumerate 200,000 labels in one go).
 */
async function storedMetadata(o: StoredObject): Promise<unknown> {
  const meta = await memberJson(o.json, 'metadata');
  return meta === undefined ? partialMetadata(o.obj) : { ...partialMetadata(o.obj), metadata: new RawJson(meta) };
}

/**
 * A Table of stored objects, each row's object (includeObject) from the stored JSON; the rows made
 * in slices (a column may count 200,000 keys: a turn holds at most one such row).
 */
async function storedTable(r: Resource, items: StoredObject[], include: IncludeObject, meta: Record<string, unknown>) {
  const tab = table(r, [], 'None', meta);
  const now = Date.now();
  const slicer = new Slicer(1);
  for (const i of items) {
    if (slicer.due()) await slicer.yield();
    const row: Record<string, unknown> = { cells: await storedRowCells(r, i, now) };
    if (include !== 'None') row.object = include === 'Object' ? new RawJson(i.json) : await storedMetadata(i);
    tab.rows.push(row);
  }
  return tab;
}

export class ResourceHandler {
  readonly watches: WatchHub;

  constructor(
    private readonly rest: GenericREST,
    watches: WatchHub,
    /** Answers made for one request (YAML, Table, metadata) are leased from it until sent (apiserver/limits.ts). */
    private readonly answers?: ByteBudget,
  ) {
    this.watches = watches;
  }

  /** Leases `bytes` of answer (waiting its turn) until the response closes. */
  private async lease(reply: FastifyReply, bytes: number): Promise<void> {
    if (!this.answers) return;
    const release = await this.answers.take(bytes, reply.raw);
    if (reply.raw.destroyed || reply.raw.writableFinished) release();
    else reply.raw.once('close', release);
  }

  // Answers are serialised in slices (apiserver/json.ts), YAML past a few KiB on a worker thread
  // (apiserver/yaml.ts), and lists of stored objects sent object by object: a list of large objects
  // must not hold the event loop while it is serialised (issue 15). The stored JSON is shared by
  // every request; what is made for one request is leased (YAML at twice the JSON's bytes) until it
  // is sent, and everything is written as the client reads it (apiserver/limits.ts).
  private async sendObject(reply: FastifyReply, code: number, r: Resource, o: StoredObject, t: Target, q: Query) {
    if (t.as !== 'Table' && t.as !== 'PartialObjectMetadata' && t.format === 'json') return reply.code(code).header('Content-Type', contentType(t)).send(o.json);
    await this.lease(reply, o.json.length * (t.format === 'yaml' ? 2 : 1));
    const body =
      t.as === 'Table'
        ? await encode(await storedTable(r, [o], includeObject(q), { resourceVersion: o.obj.metadata.resourceVersion }), t.format, false)
        : t.as === 'PartialObjectMetadata'
          ? await encode(await storedMetadata(o), t.format, false)
          : t.format === 'json'
            ? o.json
            : await yamlOfJson(o.json);
    return reply.code(code).header('Content-Type', contentType(t)).send(body);
  }

  private async sendList(reply: FastifyReply, r: Resource, page: ListPage, t: Target, q: Query) {
    const meta: Record<string, unknown> = { resourceVersion: page.resourceVersion };
    if (page.continue) meta.continue = page.continue;
    if (page.remainingItemCount !== undefined) meta.remainingItemCount = page.remainingItemCount;
    let body: string | Readable;
    const made = t.as === 'Table' || t.as === 'PartialObjectMetadataList';
    if (made) await this.lease(reply, page.items.reduce((n, i) => n + i.json.length, 0) * (t.format === 'yaml' ? 2 : 1));
    if (t.as === 'Table') body = await encode(await storedTable(r, page.items, includeObject(q), meta), t.format, page.items.length > 1);
    else if (t.as === 'PartialObjectMetadataList') {
      const items: unknown[] = [];
      for (const i of page.items) items.push(await storedMetadata(i));
      body = await encode({ kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata: meta, items }, t.format, page.items.length > 1);
    }
    else {
      const head = `{"apiVersion":"${r.apiVersion}","kind":"${r.listKind}","metadata":${JSON.stringify(meta)},"items":[`;
      const items = page.items;
      if (t.format === 'yaml') {
        // Item by item, each leased while it is made and sent.
        const lease = this.answers ? (n: number) => this.answers!.take(n, reply.raw) : async () => () => {};
        const yamlHead = yamlListHead(`{"apiVersion":"${r.apiVersion}","kind":"${r.listKind}","metadata":${JSON.stringify(meta)}}`, !items.length);
        body = Readable.from(
          (async function* () {
            yield yamlHead;
            for (const item of items) {
              const release = await lease(item.json.length * 2);
              try {
                yield* textSlices(await yamlOfListItem(item.json));
              } finally {
                release();
              }
            }
          })(),
          { objectMode: false },
        );
      } else if (items.length < 2) body = `${head}${items.map((i) => i.json).join(',')}]}`;
      else
        body = Readable.from(
          (async function* () {
            yield head;
            for (let i = 0; i < items.length; i++) {
              if (i) yield ',';
              yield* textSlices(items[i].json);
              await nextTurn();
            }
            yield ']}';
          })(),
          { objectMode: false },
        );
    }
    return reply.code(200).header('Content-Type', contentType(t)).send(body);
  }

  private warn(reply: FastifyReply, opts: RequestOptions) {
    if (opts.warnings.length) reply.header('Warning', warningHeaderValues(opts.warnings)); // bounded, ASCII (apiserver/limits.ts)
  }

  async handle(req: FastifyRequest, reply: FastifyReply, t: RequestTarget): Promise<unknown> {
    const info = infoOf(req); // the same reading the authorizer had
    const q: Query = { ...info.query };
    const { resource: r, namespace: ns, subresource } = t;
    let name = t.name;
    const method = req.method;
    if (t.watchPath) {
      // kube's deprecated watch routes (GET only): a named one is the collection's watch with
      // fieldSelector metadata.name (apiserver/pkg/endpoints/handlers/get.go, ListResource)
      if (method !== 'GET') throw methodNotAllowed(`the server does not allow this method on the requested resource`);
      if (name !== undefined) {
        if (q.fieldSelector && q.fieldSelector.trim() !== '') {
          if (pinnedName(q.fieldSelector) !== name) throw badRequest(`fieldSelector metadata.name doesn't match requested name`);
        } else q.fieldSelector = `metadata.name=${name}`;
        name = undefined;
      }
    }
    const watching = method === 'GET' && name === undefined && info.verb === 'watch';
    const status = subresource === 'status';
    const accept = req.headers.accept;
    const single: Representation[] = ['Table', 'PartialObjectMetadata'];
    const many: Representation[] = ['Table', 'PartialObjectMetadataList', 'PartialObjectMetadata'];
    const verb = name === undefined
      ? { GET: watching ? 'watch' : 'list', POST: 'create', DELETE: 'deletecollection' }[method as 'GET']
      : { GET: 'get', PUT: 'update', PATCH: 'patch', DELETE: 'delete' }[method as 'GET'];
    if (!verb || !(status ? r.statusVerbs : r.verbs).includes(verb)) throw methodNotAllowed(`the server does not allow this method on the requested resource`);

    if (r.create && verb === 'create') {
      const target = negotiate(accept, single);
      const obj = (await parseRequestBody(req.body, req.headers['content-type'])).value;
      if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) throw badRequest(`expected a JSON object of kind ${r.def.kind}`);
      fillTypeMeta(r, obj as KubeObject);
      // The review kinds as the stored ones: the body's type must be the endpoint's (a `kind: false` was echoed back).
      const o = obj as KubeObject;
      if (o.apiVersion !== r.apiVersion) throw badRequest(`the API version in the data (${String(o.apiVersion)}) does not match the expected API version (${r.apiVersion})`);
      if (o.kind !== r.def.kind) throw badRequest(`the kind in the data (${String(o.kind)}) does not match the expected kind (${r.def.kind})`);
      const answered = await r.create(o, req.user!, ns);
      return this.sendObject(reply, 201, r, { key: '', rv: 0, obj: answered, json: JSON.stringify(answered) }, target, q);
    }

    if (name === undefined) {
      if (method === 'GET') {
        const lq: ListQuery = {
          labelSelector: q.labelSelector,
          fieldSelector: q.fieldSelector,
          limit: intParam(q.limit, 'limit'),
          continue: q.continue,
          resourceVersion: q.resourceVersion,
          resourceVersionMatch: q.resourceVersionMatch,
        };
        if (watching) {
          const target = negotiate(accept, many);
          const params = {
            resource: r,
            namespace: ns,
            match: this.rest.matcher(r, lq),
            resourceVersion: q.resourceVersion,
            resourceVersionMatch: q.resourceVersionMatch,
            sendInitialEvents: queryBool(q.sendInitialEvents),
            allowWatchBookmarks: queryBool(q.allowWatchBookmarks) ?? false,
            timeoutSeconds: intParam(q.timeoutSeconds, 'timeoutSeconds'),
            target: { ...target, format: 'json' as const, as: target.as === 'PartialObjectMetadataList' ? ('PartialObjectMetadata' as const) : target.as },
            include: includeObject(q),
          };
          WatchHub.check(params);
          reply.hijack();
          await this.watches.serve(params, reply.raw);
          return reply;
        }
        const target = negotiate(accept, many);
        return this.sendList(reply, r, await this.rest.list(r, ns, lq), target, q);
      }
      if (method === 'POST') {
        if (r.def.namespaced && ns === undefined) throw methodNotAllowed(`POST is not supported on ${r.def.plural} across all namespaces; use /namespaces/<namespace>/${r.def.plural}`);
        const target = negotiate(accept, single);
        const opts: RequestOptions = { ...requestOptions(q), userAgent: req.headers['user-agent'] };
        const body = await parseRequestBody(req.body, req.headers['content-type']);
        checkDuplicates(body.duplicates, opts);
        const created = await this.rest.create(r, ns, body.value, opts, false, body.depthChecked);
        this.warn(reply, opts);
        return this.sendObject(reply, 201, r, created, target, q);
      }
      if (method === 'DELETE') {
        const target = negotiate(accept, many);
        const opts: RequestOptions = { ...requestOptions(q), userAgent: req.headers['user-agent'] };
        const page = await this.rest.deleteCollection(r, ns, { labelSelector: q.labelSelector, fieldSelector: q.fieldSelector }, parseDeleteOptions(req.body, q, req.headers['content-type']), opts);
        return this.sendList(reply, r, page, target, q);
      }
      throw methodNotAllowed(`${method} is not supported on a collection of ${r.def.plural}`);
    }

    switch (method) {
      case 'GET': {
        const target = negotiate(accept, single);
        return this.sendObject(reply, 200, r, await this.rest.get(r, ns, name), target, q);
      }
      case 'PUT': {
        const target = negotiate(accept, single);
        const opts: RequestOptions = { ...requestOptions(q), userAgent: req.headers['user-agent'] };
        const body = await parseRequestBody(req.body, req.headers['content-type']);
        checkDuplicates(body.duplicates, opts);
        const updated = await this.rest.update(r, ns, name, body.value, status, opts, body.depthChecked);
        this.warn(reply, opts);
        return this.sendObject(reply, 200, r, updated, target, q);
      }
      case 'PATCH': {
        const target = negotiate(accept, single);
        const opts: RequestOptions = { ...requestOptions(q), userAgent: req.headers['user-agent'] };
        const type = bodyType(req.headers['content-type']);
        if (type === 'apply-patch') {
          const { obj, created } = await this.rest.apply(r, ns, name, req.body, status, opts);
          this.warn(reply, opts);
          return this.sendObject(reply, created ? 201 : 200, r, obj, target, q);
        }
        const updated = await this.rest.patch(r, ns, name, type, req.body, status, opts);
        this.warn(reply, opts);
        return this.sendObject(reply, 200, r, updated, target, q);
      }
      case 'DELETE': {
        if (status) throw methodNotAllowed('DELETE is not supported on the status subresource');
        const target = negotiate(accept, single);
        const opts: RequestOptions = { ...requestOptions(q), userAgent: req.headers['user-agent'] };
        const { obj, deleted } = await this.rest.delete(r, ns, name, parseDeleteOptions(req.body, q, req.headers['content-type']), opts);
        if (deleted && r.builtin) {
          // kube's generic store (registry/generic/registry/store.go finalizeDelete) answers a
          // finished delete with a Status, unless ReturnDeletedObject (custom resources, which get the object)
          const status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name, group: r.def.group, kind: r.def.plural, uid: obj.obj.metadata.uid } };
          return reply.code(200).header('Content-Type', contentType(target)).send(serialize(status, target.format));
        }
        return this.sendObject(reply, 200, r, obj, target, q);
      }
      default:
        throw methodNotAllowed(`${method} is not supported on ${r.def.plural}`);
    }
  }
}

