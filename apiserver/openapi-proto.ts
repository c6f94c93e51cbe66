// /openapi/v2 as protobuf: gnostic's `openapi.v2.Document`.
//
// client-go's DiscoveryClient.OpenAPISchema() (kubectl's validation falls back to it for a kind it
// cannot find in /openapi/v3: a `v1 List`, a misspelt kind) asks for
// `application/com.github.proto-openapi.spec.v2@v1.0+protobuf` and can only read protobuf. We turn
// the Swagger 2.0 JSON of OpenAPI.v2() into that message, the way gnostic's compiler
// (openapi_v2.ParseDocument, behind kube-openapi's ToProtoBinary) does:
//   - `{name: value}` maps become ordered `Named*` lists (Definitions, Properties, Paths...);
//   - `x-*` keys become `vendor_extension` NamedAny entries whose Any.yaml holds the value as text
//     (we write JSON, which every YAML reader accepts and which quotes every string, so no YAML 1.1
//     reader turns `"on"` or `"y"` into a boolean); `default`, `example` and `enum` values likewise;
//   - keywords Swagger 2.0 does not have (patternProperties, anyOf, oneOf, not, nullable) have no
//     field in the message and are left out;
//   - proto3 scalars have no presence: a keyword at its zero value (`minimum: 0`, `uniqueItems:
//     false`) is not on the wire, as in what kube-apiserver serves (`additionalProperties: false`
//     is a oneof member and is kept).
//
// The .proto text below is a trimmed copy of gnostic's openapiv2/OpenAPIv2.proto (google/gnostic,
// commit 96635ff3a800e184f8b2f7bf9b3b765d0fa071cd; the generated OpenAPIv2.pb.go of gnostic-models,
// which Kubernetes vendors, has the same tags where spot-checked): only the messages used here, every
// message, field name and number as upstream. Left out: `Any.value` (field 1, a google.protobuf.Any gnostic fills only for extensions
// with a registered handler, never for Kubernetes'), Xml, security definitions and requirements,
// Headers/Examples in responses, global parameter/response definitions and FileSchema.
import { createHash } from 'node:crypto';
import protobuf from 'protobufjs';

/** What client-go's OpenAPISchema() sends in Accept (kube-openapi calls this spelling deprecated). */
export const OPENAPI_V2_PROTOBUF = 'application/com.github.proto-openapi.spec.v2@v1.0+protobuf';
/**
 * The other spelling, and the Content-Type kube-openapi answers BOTH with: `@` is not a token
 * character, so the first is not a valid media type (fastify, like other HTTP stacks, would replace
 * it with application/octet-stream).
 */
export const OPENAPI_V2_PROTOBUF_LEGACY = 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf';

const GNOSTIC_OPENAPI_V2 = `
syntax = "proto3";
package openapi.v2;

message AdditionalPropertiesItem {
  oneof oneof {
    Schema schema = 1;
    bool boolean = 2;
  }
}

message Any {
  string yaml = 2;
}

message BodyParameter {
  string description = 1;
  string name = 2;
  string in = 3;
  bool required = 4;
  Schema schema = 5;
  repeated NamedAny vendor_extension = 6;
}

message Contact {
  string name = 1;
  string url = 2;
  string email = 3;
  repeated NamedAny vendor_extension = 4;
}

message Definitions { repeated NamedSchema additional_properties = 1; }

message Document {
  string swagger = 1;
  Info info = 2;
  string host = 3;
  string base_path = 4;
  repeated string schemes = 5;
  repeated string consumes = 6;
  repeated string produces = 7;
  Paths paths = 8;
  Definitions definitions = 9;
  repeated Tag tags = 14;
  ExternalDocs external_docs = 15;
  repeated NamedAny vendor_extension = 16;
}

message ExternalDocs {
  string description = 1;
  string url = 2;
  repeated NamedAny vendor_extension = 3;
}

message FormDataParameterSubSchema {
  bool required = 1;
  string in = 2;
  string description = 3;
  string name = 4;
  bool allow_empty_value = 5;
  string type = 6;
  string format = 7;
  PrimitivesItems items = 8;
  string collection_format = 9;
  Any default = 10;
  double maximum = 11;
  bool exclusive_maximum = 12;
  double minimum = 13;
  bool exclusive_minimum = 14;
  int64 max_length = 15;
  int64 min_length = 16;
  string pattern = 17;
  int64 max_items = 18;
  int64 min_items = 19;
  bool unique_items = 20;
  repeated Any enum = 21;
  double multiple_of = 22;
  repeated NamedAny vendor_extension = 23;
}

message HeaderParameterSubSchema {
  bool required = 1;
  string in = 2;
  string description = 3;
  string name = 4;
  string type = 5;
  string format = 6;
  PrimitivesItems items = 7;
  string collection_format = 8;
  Any default = 9;
  double maximum = 10;
  bool exclusive_maximum = 11;
  double minimum = 12;
  bool exclusive_minimum = 13;
  int64 max_length = 14;
  int64 min_length = 15;
  string pattern = 16;
  int64 max_items = 17;
  int64 min_items = 18;
  bool unique_items = 19;
  repeated Any enum = 20;
  double multiple_of = 21;
  repeated NamedAny vendor_extension = 22;
}

message Info {
  string title = 1;
  string version = 2;
  string description = 3;
  string terms_of_service = 4;
  Contact contact = 5;
  License license = 6;
  repeated NamedAny vendor_extension = 7;
}

message ItemsItem { repeated Schema schema = 1; }

message JsonReference {
  string _ref = 1;
  string description = 2;
}

message License {
  string name = 1;
  string url = 2;
  repeated NamedAny vendor_extension = 3;
}

message NamedAny {
  string name = 1;
  Any value = 2;
}

message NamedPathItem {
  string name = 1;
  PathItem value = 2;
}

message NamedResponseValue {
  string name = 1;
  ResponseValue value = 2;
}

message NamedSchema {
  string name = 1;
  Schema value = 2;
}

message NonBodyParameter {
  oneof oneof {
    HeaderParameterSubSchema header_parameter_sub_schema = 1;
    FormDataParameterSubSchema form_data_parameter_sub_schema = 2;
    QueryParameterSubSchema query_parameter_sub_schema = 3;
    PathParameterSubSchema path_parameter_sub_schema = 4;
  }
}

message Operation {
  repeated string tags = 1;
  string summary = 2;
  string description = 3;
  ExternalDocs external_docs = 4;
  string operation_id = 5;
  repeated string produces = 6;
  repeated string consumes = 7;
  repeated ParametersItem parameters = 8;
  Responses responses = 9;
  repeated string schemes = 10;
  bool deprecated = 11;
  repeated NamedAny vendor_extension = 13;
}

message Parameter {
  oneof oneof {
    BodyParameter body_parameter = 1;
    NonBodyParameter non_body_parameter = 2;
  }
}

message ParametersItem {
  oneof oneof {
    Parameter parameter = 1;
    JsonReference json_reference = 2;
  }
}

message PathItem {
  string _ref = 1;
  Operation get = 2;
  Operation put = 3;
  Operation post = 4;
  Operation delete = 5;
  Operation options = 6;
  Operation head = 7;
  Operation patch = 8;
  repeated ParametersItem parameters = 9;
  repeated NamedAny vendor_extension = 10;
}

message PathParameterSubSchema {
  bool required = 1;
  string in = 2;
  string description = 3;
  string name = 4;
  string type = 5;
  string format = 6;
  PrimitivesItems items = 7;
  string collection_format = 8;
  Any default = 9;
  double maximum = 10;
  bool exclusive_maximum = 11;
  double minimum = 12;
  bool exclusive_minimum = 13;
  int64 max_length = 14;
  int64 min_length = 15;
  string pattern = 16;
  int64 max_items = 17;
  int64 min_items = 18;
  bool unique_items = 19;
  repeated Any enum = 20;
  double multiple_of = 21;
  repeated NamedAny vendor_extension = 22;
}

message Paths {
  repeated NamedAny vendor_extension = 1;
  repeated NamedPathItem path = 2;
}

message PrimitivesItems {
  string type = 1;
  string format = 2;
  PrimitivesItems items = 3;
  string collection_format = 4;
  Any default = 5;
  double maximum = 6;
  bool exclusive_maximum = 7;
  double minimum = 8;
  bool exclusive_minimum = 9;
  int64 max_length = 10;
  int64 min_length = 11;
  string pattern = 12;
  int64 max_items = 13;
  int64 min_items = 14;
  bool unique_items = 15;
  repeated Any enum = 16;
  double multiple_of = 17;
  repeated NamedAny vendor_extension = 18;
}

message Properties { repeated NamedSchema additional_properties = 1; }

message QueryParameterSubSchema {
  bool required = 1;
  string in = 2;
  string description = 3;
  string name = 4;
  bool allow_empty_value = 5;
  string type = 6;
  string format = 7;
  PrimitivesItems items = 8;
  string collection_format = 9;
  Any default = 10;
  double maximum = 11;
  bool exclusive_maximum = 12;
  double minimum = 13;
  bool exclusive_minimum = 14;
  int64 max_length = 15;
  int64 min_length = 16;
  string pattern = 17;
  int64 max_items = 18;
  int64 min_items = 19;
  bool unique_items = 20;
  repeated Any enum = 21;
  double multiple_of = 22;
  repeated NamedAny vendor_extension = 23;
}

message Response {
  string description = 1;
  SchemaItem schema = 2;
  repeated NamedAny vendor_extension = 5;
}

message ResponseValue {
  oneof oneof {
    Response response = 1;
    JsonReference json_reference = 2;
  }
}

message Responses {
  repeated NamedResponseValue response_code = 1;
  repeated NamedAny vendor_extension = 2;
}

message Schema {
  string _ref = 1;
  string format = 2;
  string title = 3;
  string description = 4;
  Any default = 5;
  double multiple_of = 6;
  double maximum = 7;
  bool exclusive_maximum = 8;
  double minimum = 9;
  bool exclusive_minimum = 10;
  int64 max_length = 11;
  int64 min_length = 12;
  string pattern = 13;
  int64 max_items = 14;
  int64 min_items = 15;
  bool unique_items = 16;
  int64 max_properties = 17;
  int64 min_properties = 18;
  repeated string required = 19;
  repeated Any enum = 20;
  AdditionalPropertiesItem additional_properties = 21;
  TypeItem type = 22;
  ItemsItem items = 23;
  repeated Schema all_of = 24;
  Properties properties = 25;
  string discriminator = 26;
  bool read_only = 27;
  ExternalDocs external_docs = 29;
  Any example = 30;
  repeated NamedAny vendor_extension = 31;
}

message SchemaItem {
  oneof oneof {
    Schema schema = 1;
  }
}

message Tag {
  string name = 1;
  string description = 2;
  ExternalDocs external_docs = 3;
  repeated NamedAny vendor_extension = 4;
}

message TypeItem { repeated string value = 1; }
`;

let root: protobuf.Root | undefined;

/** The protobufjs Root holding the trimmed gnostic schema (parsed once). Exported for tests. */
export function openAPIv2ProtoRoot(): protobuf.Root {
  if (!root) {
    const r = new protobuf.Root();
    protobuf.parse(GNOSTIC_OPENAPI_V2, r, { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

type Json = Record<string, unknown>;
type Msg = Record<string, unknown>;

const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const strs = (v: unknown): string[] | undefined => (Array.isArray(v) && v.length ? v.filter((x): x is string => typeof x === 'string') : undefined);

/** gnostic's Any: the value as YAML text (JSON is YAML). */
const any = (v: unknown): Msg => ({ yaml: `${JSON.stringify(v)}\n` });

/** The `x-*` keys of a JSON object, in order, as NamedAny. */
function extensions(o: Json): Msg[] | undefined {
  const out = Object.entries(o)
    .filter(([k, v]) => k.startsWith('x-') && v !== undefined)
    .map(([name, v]) => ({ name, value: any(v) }));
  return out.length ? out : undefined;
}

/** Drops undefined members (and empty lists), so that unset fields stay off the wire. */
function compact(m: Msg): Msg {
  for (const [k, v] of Object.entries(m)) if (v === undefined || (Array.isArray(v) && !v.length)) delete m[k];
  return m;
}

// Swagger keyword → message field for the scalar keywords shared by Schema, the non-body parameter
// sub-schemas and PrimitivesItems (a target message takes those it has a field for).
const SCALARS: Record<string, string> = {
  format: 'format',
  title: 'title',
  description: 'description',
  multipleOf: 'multiple_of',
  maximum: 'maximum',
  exclusiveMaximum: 'exclusive_maximum',
  minimum: 'minimum',
  exclusiveMinimum: 'exclusive_minimum',
  maxLength: 'max_length',
  minLength: 'min_length',
  pattern: 'pattern',
  maxItems: 'max_items',
  minItems: 'min_items',
  uniqueItems: 'unique_items',
  maxProperties: 'max_properties',
  minProperties: 'min_properties',
  discriminator: 'discriminator',
  readOnly: 'read_only',
  name: 'name',
  in: 'in',
  allowEmptyValue: 'allow_empty_value',
  collectionFormat: 'collection_format',
};

function scalars(o: Json, type: protobuf.Type, into: Msg): Msg {
  for (const [k, f] of Object.entries(SCALARS)) {
    const v = o[k];
    if (v === undefined || v === null || !type.fields[f]) continue;
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') into[f] = v;
  }
  return into;
}

function externalDocs(v: unknown): Msg | undefined {
  return isObj(v) ? compact({ description: str(v.description), url: str(v.url), vendor_extension: extensions(v) }) : undefined;
}

function schema(s: unknown): Msg {
  if (!isObj(s)) return {}; // `true`/`false` schemas have no Swagger 2.0 form
  const r = openAPIv2ProtoRoot();
  const m = scalars(s, r.lookupType('openapi.v2.Schema'), {
    _ref: str(s.$ref),
    default: 'default' in s ? any(s.default) : undefined,
    example: 'example' in s ? any(s.example) : undefined,
    required: strs(s.required),
    enum: Array.isArray(s.enum) ? s.enum.map(any) : undefined,
    external_docs: externalDocs(s.externalDocs),
    vendor_extension: extensions(s),
  });
  if (s.type !== undefined) m.type = { value: Array.isArray(s.type) ? s.type.map(String) : [String(s.type)] };
  if (s.items !== undefined) m.items = { schema: (Array.isArray(s.items) ? s.items : [s.items]).map(schema) };
  if (Array.isArray(s.allOf)) m.all_of = s.allOf.map(schema);
  if (isObj(s.properties)) m.properties = { additional_properties: Object.entries(s.properties).map(([name, p]) => ({ name, value: schema(p) })) };
  if (typeof s.additionalProperties === 'boolean') m.additional_properties = { boolean: s.additionalProperties };
  else if (isObj(s.additionalProperties)) m.additional_properties = { schema: schema(s.additionalProperties) };
  return compact(m);
}

/** A non-body parameter's sub-schema or PrimitivesItems: flat keywords, `items`, `default`, `enum`. */
function primitive(o: Json, typeName: string): Msg {
  const m = scalars(o, openAPIv2ProtoRoot().lookupType(typeName), {
    type: str(o.type),
    default: 'default' in o ? any(o.default) : undefined,
    enum: Array.isArray(o.enum) ? o.enum.map(any) : undefined,
    vendor_extension: extensions(o),
  });
  if (o.required === true && typeName !== 'openapi.v2.PrimitivesItems') m.required = true;
  if (isObj(o.items)) m.items = primitive(o.items, 'openapi.v2.PrimitivesItems');
  return compact(m);
}

const SUB_SCHEMA: Record<string, [field: string, type: string]> = {
  header: ['header_parameter_sub_schema', 'openapi.v2.HeaderParameterSubSchema'],
  formData: ['form_data_parameter_sub_schema', 'openapi.v2.FormDataParameterSubSchema'],
  query: ['query_parameter_sub_schema', 'openapi.v2.QueryParameterSubSchema'],
  path: ['path_parameter_sub_schema', 'openapi.v2.PathParameterSubSchema'],
};

function parametersItem(p: unknown): Msg | undefined {
  if (!isObj(p)) return undefined;
  if (typeof p.$ref === 'string') return { json_reference: compact({ _ref: p.$ref, description: str(p.description) }) };
  if (p.in === 'body')
    return {
      parameter: {
        body_parameter: compact({
          description: str(p.description),
          name: str(p.name),
          in: 'body',
          required: p.required === true ? true : undefined,
          schema: p.schema === undefined ? undefined : schema(p.schema),
          vendor_extension: extensions(p),
        }),
      },
    };
  const sub = SUB_SCHEMA[String(p.in)];
  if (!sub) return undefined;
  return { parameter: { non_body_parameter: { [sub[0]]: primitive(p, sub[1]) } } };
}

const parameters = (v: unknown): Msg[] | undefined => (Array.isArray(v) ? v.map(parametersItem).filter((x): x is Msg => !!x) : undefined);

function responses(v: unknown): Msg | undefined {
  if (!isObj(v)) return undefined;
  const codes = Object.entries(v)
    .filter(([k]) => !k.startsWith('x-'))
    .map(([name, r]) => {
      const o = isObj(r) ? r : {};
      const value =
        typeof o.$ref === 'string'
          ? { json_reference: compact({ _ref: o.$ref, description: str(o.description) }) }
          : { response: compact({ description: str(o.description), schema: o.schema === undefined ? undefined : { schema: schema(o.schema) }, vendor_extension: extensions(o) }) };
      return { name, value };
    });
  return compact({ response_code: codes, vendor_extension: extensions(v) });
}

function operation(o: unknown): Msg | undefined {
  if (!isObj(o)) return undefined;
  return compact({
    tags: strs(o.tags),
    summary: str(o.summary),
    description: str(o.description),
    external_docs: externalDocs(o.externalDocs),
    operation_id: str(o.operationId),
    produces: strs(o.produces),
    consumes: strs(o.consumes),
    parameters: parameters(o.parameters),
    responses: responses(o.responses),
    schemes: strs(o.schemes),
    deprecated: o.deprecated === true ? true : undefined,
    vendor_extension: extensions(o),
  });
}

const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch'] as const;

function pathItem(pi: unknown): Msg {
  if (!isObj(pi)) return {};
  const m: Msg = { _ref: str(pi.$ref), parameters: parameters(pi.parameters), vendor_extension: extensions(pi) };
  for (const method of METHODS) m[method] = operation(pi[method]);
  return compact(m);
}

function info(v: unknown): Msg | undefined {
  if (!isObj(v)) return undefined;
  const named = (o: unknown, keys: string[]) => (isObj(o) ? compact({ ...Object.fromEntries(keys.map((k) => [k, str(o[k])])), vendor_extension: extensions(o) }) : undefined);
  return compact({
    title: str(v.title),
    version: str(v.version),
    description: str(v.description),
    terms_of_service: str(v.termsOfService),
    contact: named(v.contact, ['name', 'url', 'email']),
    license: named(v.license, ['name', 'url']),
    vendor_extension: extensions(v),
  });
}

/** The plain (protobufjs `fromObject`) form of gnostic's Document for a Swagger 2.0 document. */
export function openAPIv2Message(doc: object): Msg {
  const d = doc as Json;
  const paths = isObj(d.paths) ? d.paths : undefined;
  const definitions = isObj(d.definitions) ? d.definitions : undefined;
  return compact({
    swagger: str(d.swagger),
    info: info(d.info),
    host: str(d.host),
    base_path: str(d.basePath),
    schemes: strs(d.schemes),
    consumes: strs(d.consumes),
    produces: strs(d.produces),
    paths: paths
      ? compact({
          vendor_extension: extensions(paths),
          path: Object.entries(paths)
            .filter(([k]) => !k.startsWith('x-'))
            .map(([name, pi]) => ({ name, value: pathItem(pi) })),
        })
      : undefined,
    definitions: definitions ? { additional_properties: Object.entries(definitions).map(([name, s]) => ({ name, value: schema(s) })) } : undefined,
    tags: Array.isArray(d.tags)
      ? d.tags.filter(isObj).map((t) => compact({ name: str(t.name), description: str(t.description), external_docs: externalDocs(t.externalDocs), vendor_extension: extensions(t) }))
      : undefined,
    external_docs: externalDocs(d.externalDocs),
    vendor_extension: extensions(d),
  });
}

/** Encodes a Swagger 2.0 document (OpenAPI.v2()'s JSON, parsed) as gnostic's `openapi.v2.Document`. */
export function encodeOpenAPIv2(doc: object): Buffer {
  const type = openAPIv2ProtoRoot().lookupType('openapi.v2.Document');
  return Buffer.from(type.encode(type.fromObject(openAPIv2Message(doc))).finish());
}

/** Decodes gnostic's `openapi.v2.Document` into protobufjs' plain object form (snake_case fields). */
export function decodeOpenAPIv2(bytes: Uint8Array): Msg {
  const type = openAPIv2ProtoRoot().lookupType('openapi.v2.Document');
  return type.toObject(type.decode(bytes), { longs: Number, defaults: false, arrays: false, oneofs: false }) as Msg;
}

// ---------------------------------------------------------------------------------------------
// serving
// ---------------------------------------------------------------------------------------------

interface Clause {
  type: string;
  q: number;
  order: number;
}

/** Accept clauses by preference (q, then specificity, then order), as goautoneg sorts them. */
function clauses(accept: string): Clause[] {
  const out: Clause[] = [];
  accept.split(',').forEach((raw, order) => {
    const [type, ...params] = raw.split(';').map((s) => s.trim());
    if (!type) return;
    let q = 1;
    for (const p of params) {
      const [k, v] = p.split('=').map((s) => s.trim());
      if (k.toLowerCase() === 'q') q = Number(v);
    }
    if (!(q > 0)) return;
    out.push({ type: type.toLowerCase(), q, order });
  });
  const wild = (t: string) => (t === '*/*' ? 2 : t.endsWith('/*') ? 1 : 0);
  return out.sort((a, b) => b.q - a.q || wild(a.type) - wild(b.type) || a.order - b.order);
}

const OFFERS = ['application/json', OPENAPI_V2_PROTOBUF, OPENAPI_V2_PROTOBUF_LEGACY];

/**
 * The representation /openapi/v2 was asked for: the first offer (JSON, then the two protobuf
 * spellings) matching the most preferred Accept clause (kube-openapi's order), JSON when nothing
 * matches (where kube-openapi answers 406).
 */
export function openAPIv2MediaType(accept: string | undefined): string {
  for (const c of clauses(accept || '*/*')) {
    const [ct, cs] = c.type.split('/');
    const hit = OFFERS.find((o) => {
      const [t, s] = o.split('/');
      return (ct === '*' || ct === t) && (cs === '*' || cs === s);
    });
    if (hit) return hit;
  }
  return 'application/json';
}

export interface OpenAPIv2Reply {
  status: 200 | 304;
  headers: Record<string, string>;
  body?: string | Buffer; // none with 304
}

/**
 * Serves /openapi/v2 in JSON or protobuf (by Accept) with an ETag (kube-openapi's: the SHA-512 of
 * the JSON, upper-case hex, for both forms) and `If-None-Match` → 304. The document does not change
 * at runtime, so both forms are computed once.
 */
export class OpenAPIv2Server {
  private cache: { json: string; proto?: Buffer; etag: string } | undefined;

  constructor(private readonly json: () => string) {}

  private doc() {
    if (!this.cache) {
      const json = this.json();
      this.cache = { json, etag: `"${createHash('sha512').update(json).digest('hex').toUpperCase()}"` };
    }
    return this.cache;
  }

  /** The encoded protobuf document (cached). */
  proto(): Buffer {
    const d = this.doc();
    d.proto ??= encodeOpenAPIv2(JSON.parse(d.json) as object);
    return d.proto;
  }

  reply(accept: string | undefined, ifNoneMatch: string | undefined): OpenAPIv2Reply {
    const d = this.doc();
    const type = openAPIv2MediaType(accept);
    const tags = (ifNoneMatch ?? '').split(',').map((s) => s.trim().replace(/^W\//, ''));
    if (tags.includes(d.etag) || tags.includes('*')) return { status: 304, headers: { Etag: d.etag, Vary: 'Accept' } };
    if (type === 'application/json') return { status: 200, headers: { 'Content-Type': type, Etag: d.etag, Vary: 'Accept' }, body: d.json };
    return { status: 200, headers: { 'Content-Type': OPENAPI_V2_PROTOBUF_LEGACY, Etag: d.etag, Vary: 'Accept' }, body: this.proto() };
  }
}
