// /openapi/v2 as gnostic protobuf (openapi.v2.Document), what client-go's OpenAPISchema() asks for and
// kubectl's validation falls back to for kinds it cannot find in /openapi/v3 (a `v1 List`, a misspelt
// kind). First the encoder on its own: wire bytes of hand-checked field numbers, and a round trip of
// the whole document (protobuf decoded with the same schema, turned back into Swagger 2.0 and compared
// with the JSON). Then the endpoint (content negotiation, ETag) and real kubectl against a server.
import t from 'tap';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { OpenAPI } from '../apiserver/openapi.js';
import {
  decodeOpenAPIv2,
  encodeOpenAPIv2,
  OPENAPI_V2_PROTOBUF,
  OPENAPI_V2_PROTOBUF_LEGACY,
  openAPIv2MediaType,
  openAPIv2ProtoRoot,
} from '../apiserver/openapi-proto.js';
import { ResourceRegistry } from '../apiserver/resources.js';
import { coreKinds } from '../kinds/core/index.js';
import { fluxKinds } from '../kinds/flux/index.js';
import { ocmKinds } from '../kinds/index.js';
import { startServer, type TestServer } from './helpers/server.js';

type Obj = Record<string, any>;
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const GROUP = 'delivery.ocm.software';
const GV = `${GROUP}/v1alpha1`;
const DEF = 'software.ocm.delivery.v1alpha1';
const META = 'io.k8s.apimachinery.pkg.apis.meta.v1';

/** The v2 document of a standalone server (OCM, core and Flux kinds), as OpenAPI.v2() builds it. */
const json: Obj = JSON.parse(new OpenAPI(new ResourceRegistry([...ocmKinds, ...coreKinds, ...fluxKinds])).v2());

// ---------------------------------------------------------------------------------------------
// protobuf → Swagger 2.0 (the inverse of the encoder, written independently of it)
// ---------------------------------------------------------------------------------------------

/** Any.yaml, read as YAML (what gnostic's readers do). */
const anyValue = (a: Obj) => YAML.parse(a.yaml);
const exts = (m: Obj): Obj => Object.fromEntries((m.vendor_extension ?? []).map((n: Obj) => [n.name, anyValue(n.value)]));

const SCALAR_BACK: Record<string, string> = {
  format: 'format',
  title: 'title',
  description: 'description',
  multiple_of: 'multipleOf',
  maximum: 'maximum',
  exclusive_maximum: 'exclusiveMaximum',
  minimum: 'minimum',
  exclusive_minimum: 'exclusiveMinimum',
  max_length: 'maxLength',
  min_length: 'minLength',
  pattern: 'pattern',
  max_items: 'maxItems',
  min_items: 'minItems',
  unique_items: 'uniqueItems',
  max_properties: 'maxProperties',
  min_properties: 'minProperties',
  discriminator: 'discriminator',
  read_only: 'readOnly',
  name: 'name',
  in: 'in',
  required: 'required',
  type: 'type',
  allow_empty_value: 'allowEmptyValue',
  collection_format: 'collectionFormat',
};

function scalarsBack(m: Obj, out: Obj = {}): Obj {
  for (const [f, k] of Object.entries(SCALAR_BACK)) if (m[f] !== undefined && typeof m[f] !== 'object') out[k] = m[f];
  if (m.default) out.default = anyValue(m.default);
  if (m.example) out.example = anyValue(m.example);
  if (m.enum) out.enum = m.enum.map(anyValue);
  return Object.assign(out, exts(m));
}

function schemaBack(m: Obj): Obj {
  const s = scalarsBack(m);
  if (m._ref) s.$ref = m._ref;
  if (m.required) s.required = m.required;
  if (m.type) s.type = m.type.value.length === 1 ? m.type.value[0] : m.type.value;
  if (m.items) s.items = m.items.schema.length === 1 ? schemaBack(m.items.schema[0]) : m.items.schema.map(schemaBack);
  if (m.all_of) s.allOf = m.all_of.map(schemaBack);
  if (m.properties) s.properties = Object.fromEntries((m.properties.additional_properties ?? []).map((n: Obj) => [n.name, schemaBack(n.value ?? {})]));
  if (m.additional_properties) s.additionalProperties = m.additional_properties.schema ? schemaBack(m.additional_properties.schema) : m.additional_properties.boolean;
  return s;
}

function paramBack(p: Obj): Obj {
  if (p.json_reference) return { $ref: p.json_reference._ref };
  const b = p.parameter.body_parameter;
  if (b) return { ...scalarsBack(b), ...(b.schema ? { schema: schemaBack(b.schema) } : {}) };
  const nb = p.parameter.non_body_parameter;
  const [sub] = Object.values(nb) as Obj[];
  return primitiveBack(sub);
}

/** A non-body parameter's sub-schema, or PrimitivesItems. */
function primitiveBack(m: Obj): Obj {
  const out = scalarsBack(m);
  if (m.items) out.items = primitiveBack(m.items);
  return out;
}

function operationBack(o: Obj): Obj {
  const out: Obj = { ...exts(o) };
  for (const [f, k] of Object.entries({ tags: 'tags', summary: 'summary', description: 'description', operation_id: 'operationId', produces: 'produces', consumes: 'consumes', schemes: 'schemes' }))
    if (o[f] !== undefined) out[k] = o[f];
  if (o.parameters) out.parameters = o.parameters.map(paramBack);
  if (o.deprecated) out.deprecated = o.deprecated;
  if (o.responses)
    out.responses = Object.fromEntries(
      o.responses.response_code.map((n: Obj) => {
        if (n.value.json_reference) return [n.name, { $ref: n.value.json_reference._ref }];
        const r = n.value.response;
        return [n.name, { ...(r.description !== undefined ? { description: r.description } : {}), ...(r.schema ? { schema: schemaBack(r.schema.schema) } : {}), ...exts(r) }];
      }),
    );
  return out;
}

function documentBack(d: Obj): Obj {
  const paths = Object.fromEntries(
    (d.paths?.path ?? []).map((n: Obj) => {
      const pi: Obj = { ...exts(n.value) };
      if (n.value.parameters) pi.parameters = n.value.parameters.map(paramBack);
      for (const m of ['get', 'put', 'post', 'delete', 'options', 'head', 'patch']) if (n.value[m]) pi[m] = operationBack(n.value[m]);
      return [n.name, pi];
    }),
  );
  const definitions = Object.fromEntries((d.definitions?.additional_properties ?? []).map((n: Obj) => [n.name, schemaBack(n.value ?? {})]));
  const lists = Object.fromEntries(['schemes', 'consumes', 'produces'].filter((k) => d[k]).map((k) => [k, d[k]]));
  return { swagger: d.swagger, info: d.info, ...lists, paths, definitions };
}

/**
 * The JSON without what Swagger 2.0 (and so gnostic's Schema) has no field for, and without scalar
 * keywords at their zero value (`minimum: 0`): proto3 scalars have no presence, so those are not on
 * the wire (as in what kube-apiserver serves). `additionalProperties: false` is a oneof member, kept.
 */
function withoutNonSwagger(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutNonSwagger);
  if (v === null || typeof v !== 'object') return v;
  const out: Obj = {};
  for (const [k, x] of Object.entries(v)) {
    if (['patternProperties', 'anyOf', 'oneOf', 'not', 'nullable'].includes(k)) continue;
    if (Object.values(SCALAR_BACK).includes(k) && (x === 0 || x === false || x === '')) continue;
    out[k] = k.startsWith('x-') || k === 'default' || k === 'enum' || k === 'example' ? x : withoutNonSwagger(x);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// the encoder
// ---------------------------------------------------------------------------------------------

// A protobuf writer of its own, so that the expected bytes come from the field numbers written here
// (copied from gnostic's openapiv2/OpenAPIv2.proto), not from the encoder's schema.
const varint = (n: number): number[] => {
  const out: number[] = [];
  do {
    out.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    n >>>= 7;
  } while (n > 0);
  return out;
};
/** A length-delimited field: a string, or the concatenation of a message's fields. */
const L = (field: number, ...parts: (string | Buffer)[]): Buffer => {
  const body = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p)));
  return Buffer.from([...varint((field << 3) | 2), ...varint(body.length), ...body]);
};
/** A varint field. */
const V = (field: number, n: number): Buffer => Buffer.from([...varint(field << 3), ...varint(n)]);
const wire = (...parts: Buffer[]) => Buffer.concat(parts).toString('hex');
const encoded = (doc: object) => encodeOpenAPIv2(doc).toString('hex');

t.test("field numbers on the wire are gnostic's", async (t) => {
  // Document.swagger = 1, info = 2 {title = 1, version = 2}, schemes = 5, consumes = 6, produces = 7
  t.equal(
    encoded({ swagger: '2.0', info: { title: 'a', version: 'b' }, schemes: ['https'], consumes: ['c'], produces: ['p'] }),
    wire(L(1, '2.0'), L(2, L(1, 'a'), L(2, 'b')), L(5, 'https'), L(6, 'c'), L(7, 'p')),
    'Document, Info',
  );

  // Document.definitions = 9 → Definitions.additional_properties = 1 → NamedSchema{name = 1, value = 2}
  t.equal(
    encoded({ definitions: { A: { description: 'd', type: 'object' } } }),
    wire(L(9, L(1, L(1, 'A'), L(2, L(4, 'd'), L(22, L(1, 'object')))))),
    'Schema.description = 4, type = 22 → TypeItem.value = 1',
  );
  t.equal(
    encoded({
      definitions: {
        A: {
          $ref: '#/definitions/B',
          format: 'f',
          title: 't',
          default: 1,
          maximum: 0.5,
          maxLength: 3,
          minLength: 1,
          pattern: '^a',
          maxItems: 4,
          minItems: 2,
          uniqueItems: true,
          required: ['b'],
          enum: ['x'],
          additionalProperties: false,
          items: {},
          allOf: [{}],
          properties: { b: {} },
          readOnly: true,
          example: 'e',
          'x-k': 'v',
        },
      },
    }),
    wire(
      L(
        9,
        L(
          1,
          L(1, 'A'),
          L(
            2,
            L(1, '#/definitions/B'),
            L(2, 'f'),
            L(3, 't'),
            L(5, L(2, '1\n')),
            Buffer.from([(7 << 3) | 1, 0, 0, 0, 0, 0, 0, 0xe0, 0x3f]), // maximum = 7, a double
            V(11, 3),
            V(12, 1),
            L(13, '^a'),
            V(14, 4),
            V(15, 2),
            V(16, 1),
            L(19, 'b'),
            L(20, L(2, '"x"\n')),
            L(21, V(2, 0)),
            L(23, L(1)),
            L(24),
            L(25, L(1, L(1, 'b'), L(2))),
            V(27, 1),
            L(30, L(2, '"e"\n')),
            L(31, L(1, 'x-k'), L(2, L(2, '"v"\n'))),
          ),
        ),
      ),
    ),
    'Schema: _ref = 1, format = 2, title = 3, default = 5 (Any.yaml = 2), maximum = 7, max_length = 11, min_length = 12, pattern = 13, max_items = 14, min_items = 15, unique_items = 16, required = 19, enum = 20, additional_properties = 21 (boolean = 2), items = 23 (schema = 1), all_of = 24, properties = 25 (NamedSchema), read_only = 27, example = 30, vendor_extension = 31 (NamedAny{name = 1, value = 2})',
  );
  t.equal(
    encoded({ definitions: { A: { additionalProperties: { type: 'string' } } } }),
    wire(L(9, L(1, L(1, 'A'), L(2, L(21, L(1, L(22, L(1, 'string')))))))),
    'AdditionalPropertiesItem.schema = 1',
  );

  // Document.paths = 8 → Paths.path = 2 → NamedPathItem{name = 1, value = 2} → PathItem.patch = 8,
  // parameters = 9; Operation.operation_id = 5, parameters = 8, responses = 9, vendor_extension = 13
  const gvk = '{"group":"","version":"v1","kind":"K"}';
  t.equal(
    encoded({
      paths: {
        '/p': {
          parameters: [{ name: 'n', in: 'path', required: true, type: 'string' }],
          patch: {
            operationId: 'o',
            parameters: [
              { name: 'fieldValidation', in: 'query', type: 'string', uniqueItems: true },
              { name: 'body', in: 'body', required: true, schema: { $ref: '#/definitions/X' } },
            ],
            responses: { '200': { description: 'OK', schema: { $ref: '#/definitions/X' } } },
            'x-kubernetes-group-version-kind': JSON.parse(gvk),
          },
        },
      },
    }),
    wire(
      L(
        8,
        L(
          2,
          L(1, '/p'),
          L(
            2,
            L(
              8,
              L(5, 'o'),
              // ParametersItem.parameter = 1 → Parameter.non_body_parameter = 2 → NonBodyParameter.query_parameter_sub_schema = 3
              // → QueryParameterSubSchema{in = 2, name = 4, type = 6, unique_items = 20}
              L(8, L(1, L(2, L(3, L(2, 'query'), L(4, 'fieldValidation'), L(6, 'string'), V(20, 1))))),
              // Parameter.body_parameter = 1 → BodyParameter{name = 2, in = 3, required = 4, schema = 5}
              L(8, L(1, L(1, L(2, 'body'), L(3, 'body'), V(4, 1), L(5, L(1, '#/definitions/X'))))),
              // Responses.response_code = 1 → NamedResponseValue{name = 1, value = 2} → ResponseValue.response = 1
              // → Response{description = 1, schema = 2 → SchemaItem.schema = 1}
              L(9, L(1, L(1, '200'), L(2, L(1, L(1, 'OK'), L(2, L(1, L(1, '#/definitions/X'))))))),
              L(13, L(1, 'x-kubernetes-group-version-kind'), L(2, L(2, `${gvk}\n`))),
            ),
            // NonBodyParameter.path_parameter_sub_schema = 4 → PathParameterSubSchema{required = 1, in = 2, name = 4, type = 5}
            L(9, L(1, L(2, L(4, V(1, 1), L(2, 'path'), L(4, 'n'), L(5, 'string'))))),
          ),
        ),
      ),
    ),
    'Paths, PathItem, Operation, parameters, responses, extensions',
  );
  t.equal(
    encoded({ paths: { 'x-p': 1, '/q': { get: {} } } }),
    wire(L(8, L(1, L(1, 'x-p'), L(2, L(2, '1\n'))), L(2, L(1, '/q'), L(2, L(2))))),
    'Paths.vendor_extension = 1, PathItem.get = 2',
  );
});

t.test('the whole document round-trips through protobuf', async (t) => {
  const bytes = encodeOpenAPIv2(json);
  t.ok(bytes.length > 1000, `${bytes.length} bytes`);
  const d: Obj = decodeOpenAPIv2(bytes);
  t.equal(d.swagger, '2.0');
  t.same(d.info, { title: 'ocm-apiserver', version: 'v1alpha1' });

  const names = (d.definitions.additional_properties as Obj[]).map((n) => n.name);
  t.same(names, Object.keys(json.definitions), 'every definition, in order');
  t.same(
    (d.paths.path as Obj[]).map((n) => n.name),
    Object.keys(json.paths),
    'every path, in order',
  );

  // x-kubernetes-group-version-kind on every definition that has one (kubectl finds a kind's model by it)
  const byName = new Map((d.definitions.additional_properties as Obj[]).map((n) => [n.name, n.value as Obj]));
  let withGvk = 0;
  for (const [name, def] of Object.entries(json.definitions as Obj)) {
    if (!def['x-kubernetes-group-version-kind']) continue;
    withGvk++;
    const ext = (byName.get(name)!.vendor_extension as Obj[]).find((e) => e.name === 'x-kubernetes-group-version-kind');
    t.ok(ext, `${name}: the GVK extension`);
    t.same(YAML.parse(ext?.value.yaml), def['x-kubernetes-group-version-kind'], `${name}: its value, read as YAML`);
  }
  t.ok(withGvk >= ocmKinds.length * 2 + coreKinds.length * 2, `${withGvk} definitions carry a GVK`);
  for (const k of ocmKinds) {
    const ext = (byName.get(`${DEF}.${k.kind}`)?.vendor_extension as Obj[] | undefined)?.find((e) => e.name === 'x-kubernetes-group-version-kind');
    t.same(YAML.parse(ext?.value.yaml ?? 'null'), [{ group: GROUP, version: 'v1alpha1', kind: k.kind }], `${k.kind}'s GVK`);
  }

  // a property's description and type, and constraints
  const comp = byName.get(`${DEF}.OCMComponent`)!;
  const props = (s: Obj) => new Map((s.properties.additional_properties as Obj[]).map((n) => [n.name, n.value as Obj]));
  const spec = props(comp).get('spec')!;
  t.same(spec.type, { value: ['object'] });
  t.same(spec.required, json.definitions[`${DEF}.OCMComponent`].properties.spec.required);
  const name = props(spec).get('name')!;
  t.equal(name.description, 'Name of the OCM component, e.g. `github.com/weaveworks/weave-gitops`.');
  t.same(name.type, { value: ['string'] });
  t.equal(name.min_length, 1);
  t.equal(name.max_length, 255);
  t.equal(name.pattern, json.definitions[`${DEF}.OCMComponent`].properties.spec.properties.name.pattern);
  t.same(props(comp).get('metadata'), { _ref: `#/definitions/${META}.ObjectMeta`, description: json.definitions[`${DEF}.OCMComponent`].properties.metadata.description, default: { yaml: '{}\n' } });
  // verify takes a list or the design's object form: no type, x-kubernetes-preserve-unknown-fields
  const verify = props(spec).get('verify')!;
  t.equal(verify.type, undefined);
  t.same(
    Object.fromEntries((verify.vendor_extension as Obj[]).map((e) => [e.name, YAML.parse(e.value.yaml)])),
    { 'x-kubernetes-preserve-unknown-fields': true },
    'vendor extensions',
  );
  const conds = props(props(comp).get('status')!).get('conditions')!;
  t.same(conds.type, { value: ['array'] });
  t.equal(conds.items.schema.length, 1, 'items: one schema');
  t.same(
    Object.fromEntries((conds.vendor_extension as Obj[]).map((e) => [e.name, YAML.parse(e.value.yaml)])),
    { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] },
    'list extensions',
  );
  const labels = props(byName.get(`${META}.ObjectMeta`)!).get('labels')!;
  t.same(labels.additional_properties?.schema?.type, { value: ['string'] }, 'additionalProperties as a schema');

  // an operation: kubectl's QueryParamVerifier looks for fieldValidation on the PATCH of the kind's path
  const item = (d.paths.path as Obj[]).find((n) => n.name === `/apis/${GV}/namespaces/{namespace}/ocmcomponents/{name}`)!.value;
  const patch = item.patch;
  t.same(YAML.parse((patch.vendor_extension as Obj[]).find((e) => e.name === 'x-kubernetes-group-version-kind')?.value.yaml), { group: GROUP, version: 'v1alpha1', kind: 'OCMComponent' });
  t.ok(
    (patch.parameters as Obj[]).some((p) => p.parameter?.non_body_parameter?.query_parameter_sub_schema?.name === 'fieldValidation'),
    'PATCH takes fieldValidation',
  );
  t.same(patch.parameters[0], { parameter: { body_parameter: { name: 'body', in: 'body', required: true, schema: { _ref: `#/definitions/${META}.Patch` } } } });
  t.same(item.parameters[0], {
    parameter: { non_body_parameter: { path_parameter_sub_schema: { required: true, in: 'path', description: 'name of the resource', name: 'name', type: 'string', unique_items: true } } },
  });
  t.same(patch.responses.response_code[0], { name: '200', value: { response: { description: 'OK', schema: { schema: { _ref: `#/definitions/${DEF}.OCMComponent` } } } } });

  // and everything else: back to Swagger 2.0, equal to the JSON (minus keywords v2 has no field for)
  t.same(documentBack(d), withoutNonSwagger(json), 'protobuf → Swagger 2.0 equals the JSON document');
});

t.test('schema keywords beyond what the kinds use, and the shapes gnostic gives them', async (t) => {
  const doc = {
    swagger: '2.0',
    info: { title: 't', version: 'v', description: 'd', 'x-info': { a: 1 } },
    schemes: ['https'],
    consumes: ['application/json'],
    produces: ['application/json', 'application/yaml'],
    paths: {
      'x-paths': true,
      '/p/{id}': {
        parameters: [
          { name: 'id', in: 'path', required: true, type: 'string' },
          { name: 'X-H', in: 'header', type: 'integer', format: 'int32', minimum: 1 },
          { $ref: '#/parameters/shared' },
        ],
        post: {
          summary: 's',
          deprecated: true,
          parameters: [
            { name: 'f', in: 'formData', type: 'array', items: { type: 'string', enum: ['a', 'b'] }, collectionFormat: 'csv' },
            { name: 'q', in: 'query', type: 'string', default: 'on', enum: ['on', 'off'], allowEmptyValue: true },
          ],
          responses: { '204': { description: 'none' }, default: { $ref: '#/responses/err' } },
        },
      },
    },
    definitions: {
      Everything: {
        type: 'object',
        title: 'T',
        required: ['a'],
        properties: {
          a: { type: 'integer', format: 'int64', minimum: 0, maximum: 10, exclusiveMaximum: true, multipleOf: 2, default: 4, example: 6 },
          b: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 3, uniqueItems: true },
          c: { type: 'object', additionalProperties: false, minProperties: 1, maxProperties: 2 },
          d: { type: 'object', additionalProperties: true },
          e: { allOf: [{ $ref: '#/definitions/Other' }, { description: 'more' }], readOnly: true },
          f: { type: 'string', enum: ['yes', 'no', 'on', 'y', '1', ''], default: 'no' },
          g: { default: { nested: [1, 'two', null, true] } },
          h: { type: ['string', 'null'] },
          i: { type: 'object', patternProperties: { '^a': { type: 'string' } }, 'x-kubernetes-preserve-unknown-fields': true },
          j: { type: 'object', properties: {}, 'x-kubernetes-preserve-unknown-fields': true },
        },
        discriminator: 'a',
        'x-kubernetes-group-version-kind': [{ group: '', version: 'v1', kind: 'Everything' }],
      },
      Other: {},
    },
  };
  const d: Obj = decodeOpenAPIv2(encodeOpenAPIv2(doc));
  t.same(d.info, { title: 't', version: 'v', description: 'd', vendor_extension: [{ name: 'x-info', value: { yaml: '{"a":1}\n' } }] });
  t.same([d.schemes, d.consumes, d.produces], [['https'], ['application/json'], ['application/json', 'application/yaml']]);
  t.same(d.paths.vendor_extension, [{ name: 'x-paths', value: { yaml: 'true\n' } }], 'x-* keys of paths are Paths.vendor_extension');
  const pi = d.paths.path[0].value;
  t.same(pi.parameters[1].parameter.non_body_parameter, { header_parameter_sub_schema: { in: 'header', name: 'X-H', type: 'integer', format: 'int32', minimum: 1 } });
  t.same(pi.parameters[2], { json_reference: { _ref: '#/parameters/shared' } });
  t.same(pi.post.parameters[0].parameter.non_body_parameter, {
    form_data_parameter_sub_schema: { in: 'formData', name: 'f', type: 'array', items: { type: 'string', enum: [{ yaml: '"a"\n' }, { yaml: '"b"\n' }] }, collection_format: 'csv' },
  });
  t.same(pi.post.parameters[1].parameter.non_body_parameter.query_parameter_sub_schema.default, { yaml: '"on"\n' });
  t.equal(pi.post.parameters[1].parameter.non_body_parameter.query_parameter_sub_schema.allow_empty_value, true);
  t.equal(pi.post.deprecated, true);
  t.same(pi.post.responses.response_code[1], { name: 'default', value: { json_reference: { _ref: '#/responses/err' } } });

  const e = d.definitions.additional_properties[0].value;
  const p = Object.fromEntries((e.properties.additional_properties as Obj[]).map((n) => [n.name, n.value]));
  t.same(p.a, { format: 'int64', maximum: 10, exclusive_maximum: true, multiple_of: 2, default: { yaml: '4\n' }, example: { yaml: '6\n' }, type: { value: ['integer'] } });
  t.equal(p.a.minimum, undefined, 'minimum: 0 is not on the wire (proto3, no presence)');
  t.same(p.c.additional_properties, { boolean: false }, 'additionalProperties: false is kept (a oneof member, so present)');
  t.same(p.d.additional_properties, { boolean: true });
  t.same([p.c.min_properties, p.c.max_properties], [1, 2]);
  t.same(p.e.all_of, [{ _ref: '#/definitions/Other' }, { description: 'more' }]);
  t.equal(p.e.read_only, true);
  // every value read back as YAML 1.1 would still be a string: JSON quotes them
  t.same((p.f.enum as Obj[]).map((a) => YAML.parse(a.yaml, { version: '1.1' })), ['yes', 'no', 'on', 'y', '1', '']);
  t.same(YAML.parse(p.g.default.yaml), { nested: [1, 'two', null, true] });
  t.same(p.h.type, { value: ['string', 'null'] }, 'a list of types is TypeItem.value');
  t.same(p.i, { type: { value: ['object'] }, vendor_extension: [{ name: 'x-kubernetes-preserve-unknown-fields', value: { yaml: 'true\n' } }] }, 'patternProperties has no field: dropped');
  t.same(p.j.properties, {}, 'an empty properties object stays present');
  t.equal(e.discriminator, 'a');
  t.equal(e.title, 'T');
  t.same(d.definitions.additional_properties[1], { name: 'Other', value: {} }, 'an empty schema');

  t.same(documentBack(d), withoutNonSwagger({ ...doc, info: { title: 't', version: 'v', description: 'd', vendor_extension: [{ name: 'x-info', value: { yaml: '{"a":1}\n' } }] }, paths: { '/p/{id}': doc.paths['/p/{id}'] } }), 'and back');
});

t.test('Accept negotiation (kube-openapi order: q, then specificity, then position)', async (t) => {
  const cases: [string | undefined, string][] = [
    [undefined, 'application/json'],
    ['', 'application/json'],
    ['*/*', 'application/json'],
    ['application/json', 'application/json'],
    [OPENAPI_V2_PROTOBUF, OPENAPI_V2_PROTOBUF],
    [OPENAPI_V2_PROTOBUF_LEGACY, OPENAPI_V2_PROTOBUF_LEGACY],
    [`${OPENAPI_V2_PROTOBUF}, application/json`, OPENAPI_V2_PROTOBUF],
    [`application/json;q=0.5, ${OPENAPI_V2_PROTOBUF}`, OPENAPI_V2_PROTOBUF],
    [`${OPENAPI_V2_PROTOBUF};q=0, application/json`, 'application/json'],
    [`*/*, ${OPENAPI_V2_PROTOBUF}`, OPENAPI_V2_PROTOBUF],
    ['text/html', 'application/json'],
  ];
  for (const [accept, want] of cases) t.equal(openAPIv2MediaType(accept), want, `Accept: ${accept}`);
});

// ---------------------------------------------------------------------------------------------
// the endpoint and kubectl
// ---------------------------------------------------------------------------------------------

let s: TestServer;
t.before(async () => {
  s = await startServer();
});
t.teardown(async () => {
  await s?.stop();
});

t.test('GET /openapi/v2: protobuf when asked for, JSON otherwise, ETag and If-None-Match', async (t) => {
  const pb = await s.request('GET', '/openapi/v2', { headers: { Accept: OPENAPI_V2_PROTOBUF } });
  t.equal(pb.status, 200);
  t.equal(pb.headers['content-type'], OPENAPI_V2_PROTOBUF_LEGACY, 'the Content-Type kube-openapi answers with');
  t.equal(pb.headers.vary, 'Accept');
  t.match(pb.headers.etag, /^"[0-9A-F]{128}"$/, 'ETag: quoted upper-case SHA-512');
  const raw = await new Promise<Buffer>((res, rej) => {
    // the helper decodes bodies as UTF-8; fetch the bytes once more, raw
    import('node:https').then(({ request }) => {
      const certs = join(s.dataDir, 'certs');
      const r = request(
        {
          host: '127.0.0.1',
          port: s.port,
          path: '/openapi/v2',
          ca: readFileSync(join(certs, 'ca.crt')),
          cert: readFileSync(join(certs, 'admin.crt')),
          key: readFileSync(join(certs, 'admin.key')),
          servername: 'localhost',
          headers: { Accept: OPENAPI_V2_PROTOBUF_LEGACY },
          agent: false,
        },
        (resp) => {
          const chunks: Buffer[] = [];
          resp.on('data', (c) => chunks.push(c));
          resp.on('end', () => res(Buffer.concat(chunks)));
        },
      );
      r.on('error', rej);
      r.end();
    }, rej);
  });
  const served: Obj = decodeOpenAPIv2(raw);
  const doc: Obj = (await s.request('GET', '/openapi/v2', { headers: { Accept: 'application/json' } })).json();
  t.same(
    (served.definitions.additional_properties as Obj[]).map((n) => n.name),
    Object.keys(doc.definitions),
    'the served protobuf holds every definition of the served JSON',
  );
  t.same(documentBack(served), withoutNonSwagger(doc), 'and is the same document');
  t.same(raw, encodeOpenAPIv2(doc), 'bytes as encodeOpenAPIv2 gives them');

  const js = await s.request('GET', '/openapi/v2', { headers: { Accept: 'application/json' } });
  t.equal(js.status, 200);
  t.match(js.headers['content-type'], /^application\/json/);
  t.equal(js.json().swagger, '2.0');
  t.equal(js.headers.etag, pb.headers.etag, 'one ETag for both forms (kube-openapi hashes the JSON)');
  const none = await s.request('GET', '/openapi/v2');
  t.match(none.headers['content-type'], /^application\/json/, 'no Accept: JSON');

  for (const accept of ['application/json', OPENAPI_V2_PROTOBUF]) {
    const cached = await s.request('GET', '/openapi/v2', { headers: { Accept: accept, 'If-None-Match': String(pb.headers.etag) } });
    t.equal(cached.status, 304, `If-None-Match with the ETag (${accept}): 304`);
    t.equal(cached.body, '');
    const stale = await s.request('GET', '/openapi/v2', { headers: { Accept: accept, 'If-None-Match': '"0"' } });
    t.equal(stale.status, 200, 'another ETag: 200');
  }
  t.ok(openAPIv2ProtoRoot().lookupType('openapi.v2.Document'), 'schema parsed');
});

async function ok(t: Test, args: string[], opts?: { input?: string }) {
  const r = await s.kubectl(args, opts);
  t.equal(r.code, 0, `kubectl ${args.join(' ')} exits 0`, { stderr: r.stderr, stdout: r.stdout });
  return r;
}
async function fails(t: Test, args: string[], opts?: { input?: string }) {
  const r = await s.kubectl(args, opts);
  t.not(r.code, 0, `kubectl ${args.join(' ')} fails`, { stderr: r.stderr, stdout: r.stdout });
  return r;
}
const PROTO_ERROR = /failed to download openapi|proto:\s+cannot\s+parse|invalid wire-format/;
const manifest = (...objs: Obj[]) => objs.map((o) => YAML.stringify(o, { version: '1.1' })).join('---\n');
const SPEC = { name: 'github.com/stefanprodan/podinfo', version: 'v6.x', repository: { url: 'ghcr.io/stefanprodan' } };
const comp = (ns: string, name: string, spec: Obj = SPEC): Obj => ({ apiVersion: GV, kind: 'OCMComponent', metadata: { name, namespace: ns }, spec });

/** The response kubectl -v=8 logged for its GET of /openapi/v2: status line and Content-Type. */
function v2Response(log: string): { status?: string; contentType?: string } {
  const lines = log.split('\n');
  const i = lines.findIndex((l) => /GET https:\/\/\S+\/openapi\/v2(\?|\s|$)/.test(l));
  if (i < 0) return {};
  const out: { status?: string; contentType?: string } = {};
  for (const l of lines.slice(i + 1)) {
    if (/\] GET https:|\] (POST|PATCH|PUT|DELETE) https:/.test(l) && !/openapi\/v2/.test(l)) break;
    const st = l.match(/Response Status: (\d+ .*?) in \d+/) ?? l.match(/Response Status: (\d+[^\n]*)/);
    if (st && !out.status) out.status = st[1].trim();
    const ct = l.match(/\]\s+Content-Type: (\S+)/);
    if (ct && out.status && !out.contentType) out.contentType = ct[1];
  }
  return out;
}

t.test('kubectl apply -f of a List from `kubectl get -o yaml` (validated against /openapi/v2)', async (t) => {
  const ns = 'v2-list';
  await ok(t, ['create', 'namespace', ns]);
  await ok(t, ['create', '-f', '-'], { input: manifest(comp(ns, 'one'), comp(ns, 'two')) });
  const listed = await ok(t, ['get', 'ocmcomponents', '-n', ns, '-o', 'yaml']);
  const list = YAML.parse(listed.stdout);
  t.equal(list.kind, 'List');
  t.equal(list.items.length, 2);
  const file = join(s.dataDir, 'list.yaml');
  writeFileSync(file, listed.stdout);

  const applied = await s.kubectl(['apply', '-f', file, '-v=8']);
  t.notMatch(applied.stderr, PROTO_ERROR, 'no OpenAPI v2 download error');
  t.equal(applied.code, 0, 'kubectl apply -f list.yaml', { stderr: applied.stderr.split('\n').filter((l) => !/round_trippers|request\.go|loader\.go|cert_rotation/.test(l)).join('\n') });
  t.match(applied.stdout, new RegExp(`ocmcomponent\\.${GROUP.replace(/\./g, '\\.')}/one (configured|unchanged)`));
  t.match(applied.stdout, /\/two (configured|unchanged)/);
  const v2 = v2Response(applied.stderr);
  t.match(v2.status, /^200 OK/, 'kubectl fetched /openapi/v2: 200');
  t.equal(v2.contentType, OPENAPI_V2_PROTOBUF_LEGACY, 'as protobuf');
  t.match(applied.stderr, new RegExp(`Accept: ${OPENAPI_V2_PROTOBUF.replace(/[.+]/g, '\\$&')}`), 'client-go asked for protobuf');

  // an edited List (read again: the apply above changed the objects): the items are applied
  Object.assign(list, YAML.parse((await ok(t, ['get', 'ocmcomponents', '-n', ns, '-o', 'yaml'])).stdout));
  list.items[0].spec.version = 'v6.1.0';
  writeFileSync(file, YAML.stringify(list, { version: '1.1' }));
  const edited = await ok(t, ['apply', '-f', file, '--validate=strict']);
  t.match(edited.stdout, /\/one configured/);
  t.equal(JSON.parse((await ok(t, ['get', 'ocmcomponent', 'one', '-n', ns, '-o', 'json'])).stdout).spec.version, 'v6.1.0');

  // a List item with an unknown field: kubectl's client-side validation (the v2 models) names it
  const bad = structuredClone(list);
  bad.items[1].spec.x = 'y';
  writeFileSync(file, YAML.stringify(bad, { version: '1.1' }));
  const rejected = await fails(t, ['apply', '-f', file]);
  t.notMatch(rejected.stderr, PROTO_ERROR);
  t.match(rejected.stderr, /ValidationError\(OCMComponent\.spec\): unknown field "x"/, 'the unknown field, found in the v2 models');
  const typo = structuredClone(list);
  typo.items[1].spec.suspend = 'maybe';
  writeFileSync(file, YAML.stringify(typo, { version: '1.1' }));
  const wrongType = await fails(t, ['apply', '-f', file]);
  t.match(wrongType.stderr, /ValidationError\(OCMComponent\.spec\.suspend\): invalid type for .*: got "string", expected "boolean"/, 'a wrong type, too');
  const fresh = YAML.parse((await ok(t, ['get', 'ocmcomponents', '-n', ns, '-o', 'yaml'])).stdout);
  fresh.items[1].spec.x = 'y';
  writeFileSync(file, YAML.stringify(fresh, { version: '1.1' }));
  const lenient = await ok(t, ['apply', '-f', file, '--validate=false']);
  t.notMatch(lenient.stderr, PROTO_ERROR);
  t.match(lenient.stdout, /\/two configured/, '--validate=false: no client-side validation (the server drops the field)');
});

t.test('a List of kinds with free-form (x-kubernetes-preserve-unknown-fields) parts', async (t) => {
  const ns = 'v2-free';
  await ok(t, ['create', 'namespace', ns]);
  const hrt = {
    apiVersion: GV,
    kind: 'HelmReleaseTemplate',
    metadata: { name: 'h', namespace: ns },
    spec: { template: { interval: '5m', releaseName: 'podinfo', values: { replicaCount: 2, ingress: { enabled: true } }, install: { createNamespace: true } } },
  };
  const cfg = { apiVersion: GV, kind: 'Configurator', metadata: { name: 'c', namespace: ns }, spec: { values: { replicaCount: 2, deep: { a: [1] } } } };
  await ok(t, ['create', '-f', '-'], { input: manifest(hrt, cfg) });
  const listed = await ok(t, ['get', 'helmreleasetemplates,configurators', '-n', ns, '-o', 'yaml']);
  const applied = await s.kubectl(['apply', '-f', '-'], { input: listed.stdout });
  t.notMatch(applied.stderr, PROTO_ERROR);
  t.equal(applied.code, 0, 'free-form values pass client-side validation', { stderr: applied.stderr });
});

t.test('a misspelt kind fails with the mapping error, not an OpenAPI one', async (t) => {
  const ns = 'v2-typo';
  await ok(t, ['create', 'namespace', ns]);
  const wrong = manifest({ ...comp(ns, 'typo'), kind: 'OCMComponnt' });
  for (const args of [['apply', '-f', '-'], ['create', '-f', '-'], ['apply', '-f', '-', '--validate=strict']]) {
    const r = await fails(t, args, { input: wrong });
    t.notMatch(r.stderr, PROTO_ERROR, `${args.join(' ')}: no OpenAPI v2 error`);
    t.notMatch(r.stderr, /failed to check CRD/, 'the CRD check kubectl makes works');
    t.match(r.stderr, /no matches for kind "OCMComponnt" in version "delivery\.ocm\.software\/v1alpha1"/, `${args.join(' ')}: no matches for kind`);
  }
  const otherGroup = await fails(t, ['apply', '-f', '-'], { input: manifest({ ...comp(ns, 'typo'), apiVersion: 'example.com/v1' }) });
  t.notMatch(otherGroup.stderr, PROTO_ERROR);
  t.match(otherGroup.stderr, /no matches for kind "OCMComponent" in version "example\.com\/v1"/, 'an unknown group-version too');
});

t.test('server-side field validation still applies to kinds in /openapi/v3', async (t) => {
  const ns = 'v2-unknown';
  await ok(t, ['create', 'namespace', ns]);
  const r = await fails(t, ['create', '-f', '-'], { input: manifest(comp(ns, 'u', { ...SPEC, x: 1 } as Obj)) });
  t.match(r.stderr, /unknown field "spec\.x"/);
  t.notMatch(r.stderr, PROTO_ERROR);
});
