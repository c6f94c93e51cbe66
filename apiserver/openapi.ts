// OpenAPI v3 (per group-version, what kubectl explain/validation/patch use) and v2 (what the
// aggregator merges), generated from the kind definitions and kube's meta schemas.
import { createHash } from 'node:crypto';
import { Condition } from '../kinds/common.js';
import { metaSchemas, refsForSwagger2 } from '../kinds/meta.js';
import type { Resource, ResourceRegistry } from './resources.js';

type Schema = Record<string, any>;
const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';
const ref3 = (name: string) => ({ $ref: `#/components/schemas/${name}` });

/** Kube's naming of schema definitions: reversed group, version, kind. */
export function definitionName(r: Resource, kind = r.def.kind): string {
  const g = r.def.group ? r.def.group.split('.').reverse().join('.') : 'io.k8s.api.core';
  return `${g}.${r.def.version}.${kind}`;
}

const gvk = (r: Resource, kind = r.def.kind) => [{ group: r.def.group, version: r.def.version, kind }];

// metav1.Condition, which every kind's status repeats: one definition, referenced (as kube's own
// documents do), keeps the documents small, and kubectl parses one for every object it applies.
const CONDITION = `${META}.Condition`;
const conditionSchema = JSON.parse(JSON.stringify(Condition())) as Schema;
const canonical = (v: unknown): string =>
  JSON.stringify(v, (_k, x) => (x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : 1))) : x));
const conditionKey = canonical(conditionSchema);
function hoistConditions(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(hoistConditions);
  if (!node || typeof node !== 'object') return node;
  if ((node as Schema).type === 'object' && canonical(node) === conditionKey) return ref3(CONDITION);
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, hoistConditions(v)]));
}

function kindSchemas(r: Resource): Record<string, Schema> {
  const own = hoistConditions(JSON.parse(JSON.stringify(r.def.schema))) as Schema; // (the JSON copy drops TypeBox's symbols)
  const name = definitionName(r);
  return {
    [name]: {
      description: r.def.description,
      type: 'object',
      properties: {
        apiVersion: {
          description:
            'APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources',
          type: 'string',
        },
        kind: {
          description:
            'Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds',
          type: 'string',
        },
        metadata: { description: "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata", allOf: [ref3(`${META}.ObjectMeta`)], default: {} },
        ...own.properties,
      },
      ...(own.required ? { required: own.required } : {}),
      'x-kubernetes-group-version-kind': gvk(r),
    },
    [definitionName(r, r.listKind)]: {
      description: `${r.listKind} is a list of ${r.def.kind}`,
      type: 'object',
      required: ['items'],
      properties: {
        apiVersion: { description: 'APIVersion defines the versioned schema of this representation of an object.', type: 'string' },
        items: { description: `List of ${r.def.plural}.`, type: 'array', items: { allOf: [ref3(name)], default: {} } },
        kind: { description: 'Kind is a string value representing the REST resource this object represents.', type: 'string' },
        metadata: { description: 'Standard list metadata.', allOf: [ref3(`${META}.ListMeta`)], default: {} },
      },
      'x-kubernetes-group-version-kind': gvk(r, r.listKind),
    },
  };
}

interface Param {
  name: string;
  in: 'query' | 'path';
  description: string;
  type: 'string' | 'boolean' | 'integer';
  required?: boolean;
}

const q = (name: string, type: Param['type'], description: string): Param => ({ name, in: 'query', type, description });
const P = {
  name: { name: 'name', in: 'path', type: 'string', required: true, description: 'name of the resource' } as Param,
  namespace: { name: 'namespace', in: 'path', type: 'string', required: true, description: 'object name and auth scope, such as for teams and projects' } as Param,
  pretty: q('pretty', 'string', "If 'true', then the output is pretty printed."),
  dryRun: q('dryRun', 'string', 'When present, indicates that modifications should not be persisted. Valid values are: - All: all dry run stages will be processed'),
  fieldManager: q('fieldManager', 'string', 'fieldManager is a name associated with the actor or entity that is making these changes.'),
  fieldValidation: q(
    'fieldValidation',
    'string',
    'fieldValidation instructs the server on how to handle objects in the request containing unknown or duplicate fields. Valid values are: - Ignore - Warn (default) - Strict',
  ),
  labelSelector: q('labelSelector', 'string', 'A selector to restrict the list of returned objects by their labels. Defaults to everything.'),
  fieldSelector: q('fieldSelector', 'string', 'A selector to restrict the list of returned objects by their fields. Defaults to everything.'),
  limit: q('limit', 'integer', 'limit is a maximum number of responses to return for a list call. If more items exist, the server will set the `continue` field on the list metadata.'),
  continue: q('continue', 'string', 'The continue option should be set when retrieving more results from the server.'),
  resourceVersion: q('resourceVersion', 'string', 'resourceVersion sets a constraint on what resource versions a request may be served from.'),
  resourceVersionMatch: q('resourceVersionMatch', 'string', 'resourceVersionMatch determines how resourceVersion is applied to list calls.'),
  watch: q('watch', 'boolean', 'Watch for changes to the described resources and return them as a stream of add, update, and remove notifications.'),
  allowWatchBookmarks: q('allowWatchBookmarks', 'boolean', 'allowWatchBookmarks requests watch events with type "BOOKMARK".'),
  sendInitialEvents: q('sendInitialEvents', 'boolean', '`sendInitialEvents=true` may be set together with `watch=true`; the stream begins with synthetic ADDED events for the current state, then a BOOKMARK annotated "k8s.io/initial-events-end".'),
  timeoutSeconds: q('timeoutSeconds', 'integer', 'Timeout for the list/watch call.'),
  gracePeriodSeconds: q('gracePeriodSeconds', 'integer', 'The duration in seconds before the object should be deleted.'),
  propagationPolicy: q('propagationPolicy', 'string', "Whether and how garbage collection will be performed. Acceptable values are: 'Orphan', 'Background', 'Foreground'."),
};
const LIST_PARAMS = [P.allowWatchBookmarks, P.continue, P.fieldSelector, P.labelSelector, P.limit, P.resourceVersion, P.resourceVersionMatch, P.sendInitialEvents, P.timeoutSeconds, P.watch];
const WRITE_PARAMS = [P.dryRun, P.fieldManager, P.fieldValidation];
export const PATCH_TYPES = ['application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json', 'application/strategic-merge-patch+json'];
/** The status subresource takes every patch but server-side apply (apiserver/apply.ts). */
const STATUS_PATCH_TYPES = PATCH_TYPES.filter((t) => !t.startsWith('application/apply-patch'));
/** Custom resources take no strategic merge patch (kube answers 415; apiextensions' handler lists the others). */
const CR_PATCH_TYPES = PATCH_TYPES.filter((t) => t !== 'application/strategic-merge-patch+json');
const CR_STATUS_PATCH_TYPES = STATUS_PATCH_TYPES.filter((t) => t !== 'application/strategic-merge-patch+json');
const patchTypes = (r: Resource, body: string | undefined): string[] =>
  body === 'patch' ? (r.builtin ? PATCH_TYPES : CR_PATCH_TYPES) : body === 'statusPatch' ? (r.builtin ? STATUS_PATCH_TYPES : CR_STATUS_PATCH_TYPES) : ['*/*'];

interface Op {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  action: string;
  id: string;
  description: string;
  params: Param[];
  body?: 'object' | 'patch' | 'statusPatch' | 'deleteOptions';
  response: string; // schema name
  created?: boolean;
  kind: string;
}

interface PathItem {
  path: string;
  params: Param[];
  ops: Op[];
}

function pathsFor(r: Resource): PathItem[] {
  const d = r.def;
  const base = d.group ? `/apis/${d.group}/${d.version}` : `/api/${d.version}`;
  const nsPath = d.namespaced ? `${base}/namespaces/{namespace}/${d.plural}` : `${base}/${d.plural}`;
  const scopeParams = d.namespaced ? [P.namespace] : [];
  const K = d.kind;
  const suffix = `${d.namespaced ? 'Namespaced' : ''}${K}`;
  const obj = definitionName(r);
  const list = definitionName(r, r.listKind);
  const items: PathItem[] = [
    {
      path: nsPath,
      params: [...scopeParams, P.pretty],
      ops: [
        { method: 'get', action: 'list', id: `list${suffix}`, description: `list or watch objects of kind ${K}`, params: LIST_PARAMS, response: list, kind: K },
        { method: 'post', action: 'post', id: `create${suffix}`, description: `create a ${K}`, params: WRITE_PARAMS, body: 'object', response: obj, created: true, kind: K },
        {
          method: 'delete',
          action: 'deletecollection',
          id: `deletecollection${suffix}`,
          description: `delete collection of ${K}`,
          params: [P.dryRun, P.fieldSelector, P.labelSelector, P.gracePeriodSeconds, P.propagationPolicy],
          body: 'deleteOptions',
          response: list,
          kind: K,
        },
      ],
    },
    {
      path: `${nsPath}/{name}`,
      params: [P.name, ...scopeParams, P.pretty],
      ops: [
        { method: 'get', action: 'get', id: `read${suffix}`, description: `read the specified ${K}`, params: [P.resourceVersion], response: obj, kind: K },
        { method: 'put', action: 'put', id: `replace${suffix}`, description: `replace the specified ${K}`, params: WRITE_PARAMS, body: 'object', response: obj, created: true, kind: K },
        { method: 'patch', action: 'patch', id: `patch${suffix}`, description: `partially update the specified ${K}`, params: WRITE_PARAMS, body: 'patch', response: obj, kind: K },
        { method: 'delete', action: 'delete', id: `delete${suffix}`, description: `delete a ${K}`, params: [P.dryRun, P.gracePeriodSeconds, P.propagationPolicy], body: 'deleteOptions', response: obj, kind: K },
      ],
    },
  ];
  if (d.subresources.status) {
    items.push({
      path: `${nsPath}/{name}/status`,
      params: [P.name, ...scopeParams, P.pretty],
      ops: [
        { method: 'get', action: 'get', id: `read${suffix}Status`, description: `read status of the specified ${K}`, params: [P.resourceVersion], response: obj, kind: K },
        { method: 'put', action: 'put', id: `replace${suffix}Status`, description: `replace status of the specified ${K}`, params: WRITE_PARAMS, body: 'object', response: obj, created: true, kind: K },
        { method: 'patch', action: 'patch', id: `patch${suffix}Status`, description: `partially update status of the specified ${K}`, params: WRITE_PARAMS, body: 'statusPatch', response: obj, kind: K },
      ],
    });
  }
  if (d.namespaced) {
    items.push({
      path: `${base}/${d.plural}`,
      params: [P.pretty],
      ops: [{ method: 'get', action: 'list', id: `list${K}ForAllNamespaces`, description: `list or watch objects of kind ${K}`, params: LIST_PARAMS, response: list, kind: K }],
    });
  }
  const verbOf: Record<string, string> = { list: 'list', post: 'create', deletecollection: 'deletecollection', get: 'get', put: 'update', patch: 'patch', delete: 'delete' };
  return items
    .map((i) => ({ ...i, ops: i.ops.filter((o) => (i.path.endsWith('/status') ? r.statusVerbs : r.verbs).includes(verbOf[o.action])) }))
    .filter((i) => i.ops.length);
}

const tagOf = (r: Resource) => (r.def.group ? `${r.def.group.split('.')[0]}${r.def.version}` : `core_${r.def.version}`);

function v3Param(p: Param) {
  return { name: p.name, in: p.in, description: p.description, ...(p.required ? { required: true } : {}), schema: { type: p.type, uniqueItems: true } };
}

// Parameters are declared once under components/parameters and referenced: kubectl parses the
// whole group-version document again for every object it applies, so its size is kubectl's CPU.
// fieldValidation stays inline: kubectl looks for it by name on the PATCH operations.
const paramKey = new Map(Object.entries(P).map(([k, p]) => [p, k]));
const v3ParamRef = (p: Param) => (p === P.fieldValidation ? v3Param(p) : { $ref: `#/components/parameters/${paramKey.get(p)}` });

const JSON_TYPES = ['application/json', 'application/yaml'];

function v3Document(title: string, resources: Resource[]) {
  const schemas: Record<string, Schema> = { ...structuredClone(metaSchemas), [CONDITION]: conditionSchema } as Record<string, Schema>;
  const paths: Record<string, Schema> = {};
  // Responses and request bodies, like parameters, are declared once and referenced (see v3ParamRef).
  const responses: Record<string, Schema> = { unauthorized: { description: 'Unauthorized' } };
  const requestBodies: Record<string, Schema> = {
    patch: { content: Object.fromEntries(PATCH_TYPES.map((t) => [t, { schema: ref3(`${META}.Patch`) }])), required: true },
    statusPatch: { content: Object.fromEntries(STATUS_PATCH_TYPES.map((t) => [t, { schema: ref3(`${META}.Patch`) }])), required: true },
    crPatch: { content: Object.fromEntries(CR_PATCH_TYPES.map((t) => [t, { schema: ref3(`${META}.Patch`) }])), required: true },
    crStatusPatch: { content: Object.fromEntries(CR_STATUS_PATCH_TYPES.map((t) => [t, { schema: ref3(`${META}.Patch`) }])), required: true },
    deleteOptions: { content: { '*/*': { schema: ref3(`${META}.DeleteOptions`) } } },
  };
  const response = (key: string, description: string, schema: string) => {
    responses[key] ??= { description, content: Object.fromEntries(JSON_TYPES.map((t) => [t, { schema: ref3(schema) }])) };
    return { $ref: `#/components/responses/${key}` };
  };
  for (const r of resources) {
    Object.assign(schemas, kindSchemas(r));
    const obj = definitionName(r);
    requestBodies[obj] = { content: { '*/*': { schema: ref3(obj) } }, required: true };
    for (const item of pathsFor(r)) {
      const pi: Schema = { parameters: item.params.map(v3ParamRef) };
      for (const op of item.ops) {
        const o: Schema = {
          tags: [tagOf(r)],
          description: op.description,
          operationId: op.id,
          parameters: op.params.map(v3ParamRef),
          responses: {
            '200': response(`${op.response}.ok`, 'OK', op.response),
            ...(op.created ? { '201': response(`${op.response}.created`, 'Created', op.response) } : {}),
            '401': { $ref: '#/components/responses/unauthorized' },
          },
          'x-kubernetes-action': op.action,
          'x-kubernetes-group-version-kind': { group: r.def.group, version: r.def.version, kind: op.kind },
        };
        const bodyKey = op.body === 'object' ? obj : !r.builtin && op.body === 'patch' ? 'crPatch' : !r.builtin && op.body === 'statusPatch' ? 'crStatusPatch' : op.body;
        if (op.body) o.requestBody = { $ref: `#/components/requestBodies/${bodyKey}` };
        pi[op.method] = o;
      }
      paths[item.path] = pi;
    }
  }
  const parameters = Object.fromEntries(Object.entries(P).filter(([, p]) => p !== P.fieldValidation).map(([k, p]) => [k, v3Param(p)]));
  return { openapi: '3.0.0', info: { title, version: 'v1alpha1' }, paths, components: { schemas, parameters, responses, requestBodies } };
}

/**
 * Kube's v2 form of a schema with `x-kubernetes-preserve-unknown-fields` (apiextensions'
 * ToStructuralOpenAPIV2): such a node loses `properties` and `items`, and then `type` object or
 * array, so that kubectl's v2-based validation (a `v1 List`) treats it as arbitrary instead of
 * reporting every field it does not list as unknown. The extension itself stays.
 */
function preserveUnknownForV2(s: Schema): Schema {
  if (typeof s !== 'object' || s === null || Array.isArray(s)) return s;
  const out: Schema = { ...s };
  if (out['x-kubernetes-preserve-unknown-fields'] === true) {
    delete out.properties;
    delete out.items;
    if (out.type === 'object') delete out.type;
  }
  if (out.type === 'array' && out.items === undefined) delete out.type;
  if (out.properties) out.properties = Object.fromEntries(Object.entries(out.properties as Schema).map(([k, v]) => [k, preserveUnknownForV2(v)]));
  if (out.items) out.items = Array.isArray(out.items) ? out.items.map(preserveUnknownForV2) : preserveUnknownForV2(out.items);
  if (typeof out.additionalProperties === 'object') out.additionalProperties = preserveUnknownForV2(out.additionalProperties);
  if (Array.isArray(out.allOf)) out.allOf = out.allOf.map(preserveUnknownForV2);
  return out;
}

export class OpenAPI {
  private readonly v3 = new Map<string, { body: string; hash: string }>();
  private v2Body: string | undefined;

  constructor(private readonly reg: ResourceRegistry) {}

  /** The path keys of /openapi/v3, e.g. `apis/delivery.ocm.software/v1alpha1` and `api/v1`. */
  private docs(): Map<string, Resource[]> {
    const out = new Map<string, Resource[]>();
    for (const r of this.reg.all) {
      const key = r.def.group ? `apis/${r.def.group}/${r.def.version}` : `api/${r.def.version}`;
      out.set(key, [...(out.get(key) ?? []), r]);
    }
    return out;
  }

  v3Doc(path: string): { body: string; hash: string } | undefined {
    const cached = this.v3.get(path);
    if (cached) return cached;
    const rs = this.docs().get(path);
    if (!rs) return undefined;
    const body = JSON.stringify(v3Document('ocm-apiserver', rs));
    const doc = { body, hash: createHash('sha512').update(body).digest('hex').toUpperCase() };
    this.v3.set(path, doc);
    return doc;
  }

  v3Root() {
    const paths: Record<string, { serverRelativeURL: string }> = {};
    for (const key of this.docs().keys()) paths[key] = { serverRelativeURL: `/openapi/v3/${key}?hash=${this.v3Doc(key)!.hash}` };
    return { paths };
  }

  /** Swagger 2.0, the same content with v2's shapes. */
  v2(): string {
    if (this.v2Body) return this.v2Body;
    const toV2 = (s: Record<string, Schema>) => Object.fromEntries(Object.entries(refsForSwagger2(s)).map(([k, v]) => [k, preserveUnknownForV2(v)]));
    const definitions: Record<string, unknown> = {};
    const paths: Record<string, Schema> = {};
    for (const [, rs] of this.docs()) {
      const doc = v3Document('ocm-apiserver', rs);
      Object.assign(definitions, toV2(doc.components.schemas));
      for (const r of rs)
        for (const item of pathsFor(r)) {
          const pi: Schema = { parameters: item.params.map((p) => ({ ...p, uniqueItems: true })) };
          for (const op of item.ops) {
            const params: Schema[] = op.params.map((p) => ({ ...p, uniqueItems: true }));
            if (op.body === 'object') params.unshift({ name: 'body', in: 'body', required: true, schema: { $ref: `#/definitions/${definitionName(r)}` } });
            if (op.body === 'patch' || op.body === 'statusPatch') params.unshift({ name: 'body', in: 'body', required: true, schema: { $ref: `#/definitions/${META}.Patch` } });
            if (op.body === 'deleteOptions') params.unshift({ name: 'body', in: 'body', schema: { $ref: `#/definitions/${META}.DeleteOptions` } });
            pi[op.method] = {
              description: op.description,
              consumes: patchTypes(r, op.body),
              produces: ['application/json', 'application/yaml'],
              schemes: ['https'],
              tags: [tagOf(r)],
              operationId: op.id,
              parameters: params,
              responses: {
                '200': { description: 'OK', schema: { $ref: `#/definitions/${op.response}` } },
                ...(op.created ? { '201': { description: 'Created', schema: { $ref: `#/definitions/${op.response}` } } } : {}),
                '401': { description: 'Unauthorized' },
              },
              'x-kubernetes-action': op.action,
              'x-kubernetes-group-version-kind': { group: r.def.group, version: r.def.version, kind: op.kind },
            };
          }
          paths[item.path] = pi;
        }
    }
    this.v2Body = JSON.stringify({ swagger: '2.0', info: { title: 'ocm-apiserver', version: 'v1alpha1' }, paths, definitions });
    return this.v2Body;
  }
}
