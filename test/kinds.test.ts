// Checks the kind definitions of delivery.ocm.software/v1alpha1: schemas compile and are
// structural, every field is documented, examples validate and typical mistakes are rejected,
// names are unique, printer columns point at real fields, strategies report the right paths.
import t from 'tap';
import AjvModule, { type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { ocmKinds } from '../kinds/index.js';
import { META_V1, metaSchemas, refsForSwagger2, schemaRef } from '../kinds/meta.js';
import { API_VERSION, deepEqual, parseDuration, selectable, validateRelativePath } from '../kinds/common.js';
import { actionInputRef } from '../kinds/action.js';
import { configuratorValues } from '../kinds/configurator.js';
import { componentDescriptorName } from '../kinds/componentdescriptor.js';
import type { FieldError, KindDefinition, KubeObject } from '../kinds/types.js';

const Ajv = AjvModule.default;
const addFormats = addFormatsModule.default;

type Schema = Record<string, unknown>;
type Obj = Record<string, unknown>;

const newAjv = () => {
  const ajv = new Ajv({ strict: false, allErrors: true });
  addFormats(ajv);
  return ajv;
};
const ajv = newAjv();
const validators = new Map<string, ValidateFunction>();
const validatorFor = (k: KindDefinition): ValidateFunction => {
  let v = validators.get(k.kind);
  if (!v) {
    v = ajv.compile(k.schema);
    validators.set(k.kind, v);
  }
  return v;
};
const kindByName = (name: string): KindDefinition => {
  const k = ocmKinds.find((x) => x.kind === name);
  if (!k) throw new Error(`no kind ${name}`);
  return k;
};

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/** ajv errors as field paths in kube's notation: `spec.verify[0].secretRef`. */
function errorPaths(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const parts = e.instancePath.split('/').slice(1);
    if (e.keyword === 'required') parts.push(String((e.params as { missingProperty: string }).missingProperty));
    return parts.reduce((acc, p) => (/^[0-9]+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
  });
}

/** Sets (or with `undefined`, deletes) a dotted path, creating objects on the way. */
function setPath(obj: Obj, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur: Obj = obj;
  for (const p of parts.slice(0, -1)) {
    if (!isObj(cur[p])) cur[p] = {};
    cur = cur[p] as Obj;
  }
  const last = parts[parts.length - 1];
  if (value === undefined) delete cur[last];
  else cur[last] = value;
}

// -------------------------------------------------------------------------------------------
// Schema walkers (each is also tested against a broken schema below, so they can fail)
// -------------------------------------------------------------------------------------------

/** Resolves `$ref` / single `allOf` indirection through metaSchemas. */
function deref(s: Schema): Schema {
  if (typeof s.$ref === 'string') {
    const name = s.$ref.replace('#/components/schemas/', '');
    const target = metaSchemas[name] as Schema | undefined;
    if (!target) throw new Error(`unresolved $ref ${s.$ref}`);
    return deref(target);
  }
  if (Array.isArray(s.allOf) && s.allOf.length === 1 && isObj(s.allOf[0])) return deref(s.allOf[0] as Schema);
  return s;
}

/** Every property (at any depth) without a description, as `a.b[].c`. */
function missingDescriptions(schema: Schema, path = ''): string[] {
  const out: string[] = [];
  const props = isObj(schema.properties) ? (schema.properties as Record<string, Schema>) : {};
  for (const [name, prop] of Object.entries(props)) {
    const p = path ? `${path}.${name}` : name;
    if (typeof prop.description !== 'string' || prop.description.trim().length < 3) out.push(p);
    out.push(...missingDescriptions(prop, p));
  }
  if (isObj(schema.items)) out.push(...missingDescriptions(schema.items as Schema, `${path}[]`));
  if (isObj(schema.additionalProperties)) out.push(...missingDescriptions(schema.additionalProperties as Schema, `${path}{}`));
  return out;
}

/** Violations of the CRD structural-schema rules, and list-map keys that are not required. */
function structuralProblems(schema: Schema, path = '<root>'): string[] {
  const out: string[] = [];
  for (const kw of ['anyOf', 'oneOf', 'not', 'patternProperties', '$ref', 'allOf']) {
    if (kw in schema) out.push(`${path}: uses ${kw}`);
  }
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  if (typeof schema.type !== 'string' && !preserve) out.push(`${path}: no type`);
  if (isObj(schema.properties) && schema.type !== 'object') out.push(`${path}: properties without type object`);
  if (isObj(schema.properties) && schema.additionalProperties !== undefined && schema.additionalProperties !== false)
    out.push(`${path}: both properties and additionalProperties`);
  if (schema.type === 'array' && !isObj(schema.items)) out.push(`${path}: array without items`);
  if (schema['x-kubernetes-list-type'] === 'map') {
    const items = schema.items as Schema;
    const keys = (schema['x-kubernetes-list-map-keys'] as string[] | undefined) ?? [];
    if (keys.length === 0) out.push(`${path}: list-type map without keys`);
    for (const key of keys) {
      if (!Array.isArray(items?.required) || !(items.required as string[]).includes(key)) out.push(`${path}: map key ${key} not required`);
    }
  }
  for (const [name, prop] of Object.entries((schema.properties as Record<string, Schema>) ?? {})) {
    out.push(...structuralProblems(prop, `${path}.${name}`));
  }
  if (isObj(schema.items)) out.push(...structuralProblems(schema.items as Schema, `${path}[]`));
  if (isObj(schema.additionalProperties)) out.push(...structuralProblems(schema.additionalProperties as Schema, `${path}{}`));
  return out;
}

/** Paths of every `default` keyword under a schema. */
function defaultsUnder(schema: Schema, path = ''): string[] {
  const out: string[] = [];
  if ('default' in schema) out.push(path || '<root>');
  for (const [name, prop] of Object.entries((schema.properties as Record<string, Schema>) ?? {})) out.push(...defaultsUnder(prop, `${path}.${name}`));
  if (isObj(schema.items)) out.push(...defaultsUnder(schema.items as Schema, `${path}[]`));
  return out;
}

/** Splits a printer-column JSONPath into steps: a field name, or `[]` for an array filter/index. */
function jsonPathSteps(jsonPath: string): string[] {
  if (!jsonPath.startsWith('.')) throw new Error(`JSONPath must start with '.': ${jsonPath}`);
  const steps: string[] = [];
  const re = /\.([A-Za-z_][A-Za-z0-9_]*)|\[\?\(@\.[A-Za-z_]+=="[^"]*"\)\]|\[[0-9]+\]/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(jsonPath)) !== null) {
    steps.push(m[1] ?? '[]');
    end = re.lastIndex;
  }
  if (end !== jsonPath.length) throw new Error(`unsupported JSONPath syntax in ${jsonPath} at ${end}`);
  return steps;
}

/** The schema a printer-column JSONPath leads to in a kind, or an error message. */
function resolveColumn(kind: KindDefinition, jsonPath: string): Schema | string {
  const root: Schema = {
    type: 'object',
    properties: {
      ...(kind.schema.properties as Record<string, Schema>),
      metadata: { $ref: schemaRef(`${META_V1}ObjectMeta`) },
    },
  };
  let cur: Schema = root;
  for (const step of jsonPathSteps(jsonPath)) {
    cur = deref(cur);
    if (step === '[]') {
      if (cur.type !== 'array' || !isObj(cur.items)) return `${jsonPath}: [] on a non-array`;
      cur = cur.items as Schema;
    } else {
      const props = (cur.properties as Record<string, Schema> | undefined) ?? {};
      if (!(step in props)) return `${jsonPath}: no field ${step}`;
      cur = props[step];
    }
  }
  return deref(cur);
}

/** Evaluates a printer-column JSONPath on an object (first match), the way kubectl would. */
function evalColumn(obj: unknown, jsonPath: string): unknown {
  const re = /\.([A-Za-z_][A-Za-z0-9_]*)|\[\?\(@\.([A-Za-z_]+)=="([^"]*)"\)\]|\[([0-9]+)\]/gy;
  let cur: unknown = obj;
  let m: RegExpExecArray | null;
  while ((m = re.exec(jsonPath)) !== null) {
    if (m[1] !== undefined) cur = isObj(cur) ? cur[m[1]] : undefined;
    else if (m[2] !== undefined) cur = Array.isArray(cur) ? cur.find((x) => isObj(x) && x[m![2]] === m![3]) : undefined;
    else cur = Array.isArray(cur) ? cur[Number(m[4])] : undefined;
  }
  return cur;
}

// -------------------------------------------------------------------------------------------
// Examples: a complete, valid object per kind (spec from the design document and issues)
// -------------------------------------------------------------------------------------------

const NOW = '2024-05-01T10:00:00Z';
const ready = (message = 'Reconciliation succeeded') => ({
  type: 'Ready',
  status: 'True',
  reason: 'Succeeded',
  message,
  lastTransitionTime: NOW,
  observedGeneration: 1,
});
const meta = (name: string, namespace = 'weave-gitops-system') => ({ name, namespace, uid: 'a6f1c3c8-1b8f-4f55-8f36-0d8a1c7e0d11', generation: 1, creationTimestamp: NOW });
const DIGEST = 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
const obj = (kind: string, name: string, rest: Obj): KubeObject => ({ apiVersion: API_VERSION, kind, metadata: meta(name), ...rest });

const examples: Record<string, KubeObject> = {
  OCMComponent: obj('OCMComponent', 'weave-gitops', {
    spec: {
      interval: '10m',
      name: 'github.com/weaveworks/weave-gitops',
      version: 'v0.9.x',
      repository: { url: 'ghcr.io/weaveworks', secretRef: { name: 'oci-creds' } },
      verify: [{ signature: 'weaveworks', secretRef: { name: 'my-public-key' } }],
    },
    status: {
      observedGeneration: 1,
      conditions: [ready('Applied version v0.9.4')],
      resolvedVersion: 'v0.9.4',
      componentDescriptor: { name: 'github-com-weaveworks-weave-gitops-v0-9-4', namespace: 'weave-gitops-system' },
      deployPackage: { apiVersion: 'v1', kind: 'ConfigMap', name: 'github-com-weaveworks-weave-gitops-v0-9-4-deploy-config', namespace: 'weave-gitops-system' },
      verified: true,
    },
  }),
  ComponentDescriptor: obj('ComponentDescriptor', 'github-com-mandelsoft-test-1-0-0', {
    // ocm-lib-compat-rsa-v1/component-archive/component-descriptor.yaml from test/fixtures/ocm-vectors
    spec: {
      schemaVersion: 'v2',
      name: 'github.com/mandelsoft/test',
      version: '1.0.0',
      provider: { name: 'mandelsoft' },
      repositoryContexts: [{ type: 'ociRegistry', baseUrl: 'ghcr.io/vasu1124/ocm', componentNameMapping: 'urlPath' }],
      resources: [
        {
          name: 'text',
          version: '1.0.0',
          type: 'PlainText',
          relation: 'local',
          labels: [{ name: 'label2', value: 'bar', signing: true }],
          access: {
            type: 'localBlob',
            localReference: 'sha256.c893900c1106f13d55648a425f502dd6518e40eaa3ac7d24023d4c73d55dc12e',
            mediaType: 'application/octet-stream',
          },
          digest: {
            hashAlgorithm: 'sha256',
            normalisationAlgorithm: 'genericBlobDigest/v1',
            value: 'c893900c1106f13d55648a425f502dd6518e40eaa3ac7d24023d4c73d55dc12e',
          },
        },
      ],
      sources: [{ name: 'introspect', version: '1.0.0', type: 'git', access: { type: 'git', repository: 'github.com/vasu1124/introspect' } }],
      componentReferences: [],
      signatures: [
        {
          name: 'test',
          digest: { hashAlgorithm: 'sha256', normalisationAlgorithm: 'jsonNormalisation/v1', value: 'b06e4c1a68274b876661f9fbf1f100526d289745f6ee847bfef702007b5b14cf' },
          signature: { algorithm: 'RSASSA-PKCS1-V1_5', mediaType: 'application/vnd.ocm.signature.rsa', value: '4447c988' },
        },
      ],
    },
    status: { observedGeneration: 1, conditions: [ready()], verified: true },
  }),
  Source: obj('Source', 'ui-server', {
    spec: {
      componentRef: { name: 'weave-gitops', namespace: 'weave-gitops-system' },
      providerRef: { apiVersion: API_VERSION, kind: 'OCMResource', name: 'wge-ui-server' },
    },
    status: { observedGeneration: 1, conditions: [ready()], ready: true, snapshot: 'ui-server-1714557600', digest: DIGEST, componentVersion: 'v0.9.4' },
  }),
  OCMResource: obj('OCMResource', 'wge-ui-server', {
    spec: { resource: 'wge-ui-server', extraIdentity: { architecture: 'amd64' }, referencePath: [{ name: 'backend' }] },
    status: { observedGeneration: 1, conditions: [ready()], ready: true, snapshot: 'ui-server-1714557600', digest: DIGEST },
  }),
  Action: obj('Action', 'localizer', {
    spec: {
      componentRef: { name: 'weave-gitops', namespace: 'weave-gitops-system' },
      snapshotSourceRef: { kind: 'Source', name: 'ui-server' },
      providerRef: { apiVersion: API_VERSION, kind: 'Localization', name: 'wge-localizer' },
      interval: '1h',
    },
    status: {
      observedGeneration: 1,
      conditions: [ready()],
      ready: true,
      snapshot: 'localizer-1714557601',
      digest: DIGEST,
      inputSnapshot: 'ui-server-1714557600',
      inputDigest: DIGEST,
    },
  }),
  Localization: obj('Localization', 'wge-localizer', {
    spec: {
      configRef: { name: 'config' },
      // the `localization:` list of e2e_testdata_testOCMController_podinfo_backend_config.yaml
      rules: [
        { resource: { name: 'image' }, file: 'manifests/deploy.yaml', image: 'spec.template.spec.containers[0].image' },
        { resource: { name: 'image', extraIdentity: { architecture: 'arm64' } }, file: 'values.yaml', registry: 'image.registry', repository: 'image.repository', tag: 'image.tag' },
      ],
    },
    status: { observedGeneration: 1, conditions: [ready()], ready: true, snapshot: 'localizer-1714557601', digest: DIGEST },
  }),
  Configurator: obj('Configurator', 'wge-config', {
    spec: {
      configRef: { name: 'config' },
      // as in the design walkthrough: a list of maps
      values: [{ debug: false, rate_limit: false, allowed_domains: ['example.io'] }],
      valuesFrom: [{ kind: 'ConfigMap', name: 'podinfo-values', key: 'values.yaml' }, { kind: 'Secret', name: 'podinfo-secret-values', optional: true }],
    },
    status: { observedGeneration: 1, conditions: [ready()], ready: true, snapshot: 'config-1714557602', digest: DIGEST },
  }),
  KustomizationTemplate: obj('KustomizationTemplate', 'wge-deploy', {
    spec: {
      template: { interval: '10m', path: './kubernetes', prune: true, targetNamespace: 'my-application-ns', patches: [{ patch: '- op: remove' }] },
      waitForReady: true,
    },
    status: {
      observedGeneration: 1,
      conditions: [ready()],
      ready: true,
      ociRepository: { name: 'deployer', namespace: 'weave-gitops-system' },
      kustomization: { name: 'deployer', namespace: 'weave-gitops-system' },
    },
  }),
  HelmReleaseTemplate: obj('HelmReleaseTemplate', 'podinfo-release', {
    spec: {
      template: { interval: '5m', releaseName: 'podinfo', targetNamespace: 'podinfo', values: { replicaCount: 2 }, install: { createNamespace: true } },
    },
    status: {
      observedGeneration: 1,
      conditions: [ready()],
      ready: true,
      ociRepository: { name: 'deployer', namespace: 'weave-gitops-system' },
      helmRelease: { name: 'podinfo', namespace: 'weave-gitops-system' },
    },
  }),
  Snapshot: obj('Snapshot', 'ui-server-1714557600', {
    spec: {
      identity: { componentName: 'github.com/weaveworks/weave-gitops', componentVersion: 'v0.9.4', resourceName: 'wge-ui-server' },
      producerRef: { kind: 'Source', name: 'ui-server' },
      providerRef: { apiVersion: API_VERSION, kind: 'OCMResource', name: 'wge-ui-server' },
    },
    status: {
      observedGeneration: 1,
      conditions: [ready('Snapshot verified and attested')],
      repositoryURL: '127.0.0.1:5001/weave-gitops/ui-server-wge-ui-server',
      tag: '1714557600',
      digest: DIGEST,
      size: 1024,
      createdAt: NOW,
      attestation: { digest: DIGEST, verified: true },
      chain: [
        { kind: 'OCMComponent', name: 'weave-gitops', componentVersion: 'github.com/weaveworks/weave-gitops:v0.9.4' },
        { kind: 'Source', name: 'ui-server', provider: 'OCMResource/wge-ui-server', providerGeneration: 1, digest: DIGEST },
      ],
    },
  }),
};

// -------------------------------------------------------------------------------------------
// Tests
// -------------------------------------------------------------------------------------------

t.test('the walkers used below detect what they look for', async (t) => {
  const bad: Schema = {
    type: 'object',
    properties: {
      a: { type: 'string', description: 'documented' },
      b: { type: 'object', description: 'documented', properties: { c: { type: 'string' } } },
      d: { type: 'array', description: 'documented', items: { type: 'object', properties: { e: { type: 'integer' } } } },
      f: { anyOf: [{ type: 'string' }, { type: 'integer' }], description: 'union' },
      g: { type: 'array', description: 'list map', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['k'], items: { type: 'object', properties: { k: { type: 'string', description: 'key' } } } },
      h: { type: 'object', description: 'has a default', default: {} },
    },
  };
  t.same(missingDescriptions(bad), ['b.c', 'd[].e']);
  const problems = structuralProblems(bad);
  t.ok(problems.some((p) => p.includes('.f: uses anyOf')), 'anyOf reported');
  t.ok(problems.some((p) => p.includes('.f: no type')), 'missing type reported');
  t.ok(problems.some((p) => p.includes('.g: map key k not required')), 'non-required list-map key reported');
  t.same(defaultsUnder(bad), ['.h']);
  const source = kindByName('Source');
  t.type(resolveColumn(source, '.spec.providerRef.nope'), 'string', 'unknown field reported');
  t.type(resolveColumn(source, '.spec.componentRef.name[0]'), 'string', 'index on a non-array reported');
  t.type(resolveColumn(source, '.metadata.nope'), 'string', 'unknown metadata field reported');
  t.throws(() => jsonPathSteps('{.spec.name}'));
  const v = validatorFor(source);
  t.notOk(v({}), 'an object without spec is rejected');
  t.same(errorPaths(v.errors), ['spec']);
});

t.test('kind definitions: identity, scope, subresources', async (t) => {
  t.equal(ocmKinds.length, 10);
  t.same(
    ocmKinds.map((k) => k.kind).sort(),
    ['Action', 'ComponentDescriptor', 'Configurator', 'HelmReleaseTemplate', 'KustomizationTemplate', 'Localization', 'OCMComponent', 'OCMResource', 'Snapshot', 'Source'],
  );
  for (const k of ocmKinds) {
    t.equal(k.group, 'delivery.ocm.software', `${k.kind} group`);
    t.equal(k.version, 'v1alpha1', `${k.kind} version`);
    t.equal(k.namespaced, true, `${k.kind} namespaced`);
    t.same(k.subresources, { status: true }, `${k.kind} status subresource`);
    t.same(k.statusFields, ['status'], `${k.kind} statusFields`);
    t.ok(k.categories?.includes('ocm'), `${k.kind} in category ocm`);
    t.equal(k.plural, k.kind.toLowerCase() + 's', `${k.kind} plural`);
    t.equal(k.singular, k.kind.toLowerCase(), `${k.kind} singular`);
    t.ok(k.description.length > 80, `${k.kind} has a description paragraph`);
    t.ok(k.schema.properties.spec, `${k.kind} has spec`);
    t.ok(k.schema.properties.status, `${k.kind} has status`);
    t.notOk((k.schema.required ?? []).includes('status'), `${k.kind} status optional`);
    for (const [f, get] of Object.entries(k.selectableFields ?? {})) {
      t.type(get, 'function', `${k.kind} selectable field ${f}`);
      t.type(get(examples[k.kind]), 'string', `${k.kind} selectable field ${f} has a value on the example`);
    }
  }
});

t.test('names are unique and do not shadow well-known short names', async (t) => {
  const wellKnown = new Set([
    'po', 'svc', 'cm', 'ns', 'no', 'pv', 'pvc', 'sa', 'ds', 'rs', 'rc', 'sts', 'deploy', 'ing', 'ep', 'ev', 'hpa', 'crd', 'crds',
    'cs', 'csr', 'limits', 'netpol', 'pdb', 'pc', 'psp', 'quota', 'sc', 'cj', 'ks', 'hr', 'gitrepo', 'ocirepo', 'helmrepo',
    'all', 'ocm', 'secret', 'secrets', 'event', 'events', 'pod', 'pods',
  ]);
  const seen = new Map<string, string>();
  for (const k of ocmKinds) {
    const names = [k.plural, k.singular, k.kind.toLowerCase(), ...(k.shortNames ?? [])];
    for (const n of new Set(names)) {
      t.notOk(seen.has(n) && seen.get(n) !== k.kind, `${n} of ${k.kind} is also used by ${seen.get(n)}`);
      seen.set(n, k.kind);
    }
    for (const s of k.shortNames ?? []) {
      t.match(s, /^[a-z][a-z0-9]*$/, `${k.kind} short name ${s} is lowercase`);
      t.notOk(wellKnown.has(s), `${k.kind} short name ${s} shadows a well-known one`);
    }
  }
  t.ok((kindByName('OCMComponent').shortNames ?? []).includes('ocmc'));
});

t.test('schemas compile with ajv and are structural', async (t) => {
  for (const k of ocmKinds) {
    t.doesNotThrow(() => validatorFor(k), `${k.kind} compiles`);
    t.same(structuralProblems(k.schema as unknown as Schema), [], `${k.kind} is structural`);
    t.same(defaultsUnder(k.schema.properties.status as unknown as Schema), [], `${k.kind} has no defaults in status`);
  }
});

t.test('every field at every depth has a description', async (t) => {
  for (const k of ocmKinds) {
    t.same(missingDescriptions(k.schema as unknown as Schema), [], `${k.kind}: fields without description`);
  }
});

t.test('the example of every kind validates, and strategy.validate accepts it', async (t) => {
  for (const k of ocmKinds) {
    const ex = examples[k.kind];
    t.ok(ex, `${k.kind} has an example`);
    const v = validatorFor(k);
    t.ok(v(clone(ex)), `${k.kind} example validates: ${JSON.stringify(v.errors)}`);
    t.same(k.strategy?.validate?.(clone(ex)) ?? [], [], `${k.kind} example passes strategy.validate`);
    t.same(k.strategy?.validateUpdate?.(clone(ex), clone(ex)) ?? [], [], `${k.kind} unchanged update passes validateUpdate`);
  }
});

t.test('design-document manifests validate as written', async (t) => {
  const design: KubeObject[] = [
    {
      apiVersion: API_VERSION,
      kind: 'OCMComponent',
      metadata: meta('weave-gitops'),
      spec: { interval: '10m', name: 'github.com/weaveworks/weave-gitops', version: 'v0.9.x', repository: { url: 'ghcr.io/weaveworks', secretRef: { name: 'oci-creds' } }, verify: { secretRef: { name: 'my-public-key' } } },
    },
    { apiVersion: API_VERSION, kind: 'OCMResource', metadata: meta('wge-ui-server'), spec: { resource: 'wge-ui-server' } },
    { apiVersion: API_VERSION, kind: 'Localization', metadata: meta('wge-localizer'), spec: {} },
    {
      apiVersion: API_VERSION,
      kind: 'Action',
      metadata: meta('deployer'),
      spec: {
        componentRef: { name: 'wge', namespace: 'weave-gitops-system' },
        sourceRef: { kind: 'Action', name: 'config' },
        providerRef: { apiVersion: API_VERSION, kind: 'KustomizationTemplate', name: 'wge-deploy' },
      },
    },
    { apiVersion: API_VERSION, kind: 'KustomizationTemplate', metadata: meta('wge-deploy'), spec: { template: { interval: '10m', path: './kubernetes', targetNamespace: 'my-application-ns' } } },
    {
      apiVersion: API_VERSION,
      kind: 'Configurator',
      metadata: meta('wge-config'),
      spec: { values: { debug: false, rate_limit: false } },
    },
  ];
  for (const o of design) {
    const k = kindByName(o.kind);
    const v = validatorFor(k);
    t.ok(v(clone(o)), `${o.kind}: ${JSON.stringify(v.errors)}`);
    t.same(k.strategy?.validate?.(clone(o)) ?? [], [], `${o.kind} strategy`);
  }
});

/** [kind, what, path to set (undefined deletes), value, field path expected among the errors]. */
const invalid: [string, string, string, unknown, string][] = [
  ['OCMComponent', 'missing spec', 'spec', undefined, 'spec'],
  ['OCMComponent', 'missing component name', 'spec.name', undefined, 'spec.name'],
  ['OCMComponent', 'missing version', 'spec.version', undefined, 'spec.version'],
  ['OCMComponent', 'missing repository url', 'spec.repository', { secretRef: { name: 'x' } }, 'spec.repository.url'],
  ['OCMComponent', 'component name not in OCM form', 'spec.name', 'Weave GitOps', 'spec.name'],
  ['OCMComponent', 'interval not a duration', 'spec.interval', '10 minutes', 'spec.interval'],
  ['OCMComponent', 'repository url with spaces', 'spec.repository.url', 'ghcr.io/weave works', 'spec.repository.url'],
  ['OCMComponent', 'secretRef name not DNS-1123', 'spec.repository.secretRef.name', 'OCI_Creds', 'spec.repository.secretRef.name'],
  ['OCMComponent', 'condition status outside the enum', 'status.conditions', [{ ...ready(), status: 'Maybe' }], 'status.conditions[0].status'],
  ['OCMComponent', 'condition without reason', 'status.conditions', [{ type: 'Ready', status: 'True', message: '', lastTransitionTime: NOW }], 'status.conditions[0].reason'],
  ['OCMComponent', 'condition time not RFC 3339', 'status.conditions', [{ ...ready(), lastTransitionTime: 'yesterday' }], 'status.conditions[0].lastTransitionTime'],
  ['OCMComponent', 'verified not a boolean', 'status.verified', 'yes', 'status.verified'],
  ['Source', 'missing componentRef', 'spec.componentRef', undefined, 'spec.componentRef'],
  ['Source', 'missing providerRef kind', 'spec.providerRef.kind', undefined, 'spec.providerRef.kind'],
  ['Source', 'providerRef kind with a space', 'spec.providerRef.kind', 'OCM Resource', 'spec.providerRef.kind'],
  ['Source', 'providerRef apiVersion malformed', 'spec.providerRef.apiVersion', 'delivery.ocm.software/', 'spec.providerRef.apiVersion'],
  ['Source', 'componentRef namespace not a DNS label', 'spec.componentRef.namespace', 'a.b', 'spec.componentRef.namespace'],
  ['Source', 'digest not an OCI digest', 'status.digest', 'abc', 'status.digest'],
  ['Source', 'ready not a boolean', 'status.ready', 'true', 'status.ready'],
  ['Action', 'snapshotSourceRef kind outside the enum', 'spec.snapshotSourceRef.kind', 'OCMComponent', 'spec.snapshotSourceRef.kind'],
  ['Action', 'sourceRef without name', 'spec.sourceRef', { kind: 'Action' }, 'spec.sourceRef.name'],
  ['Action', 'missing providerRef', 'spec.providerRef', undefined, 'spec.providerRef'],
  ['OCMResource', 'missing resource', 'spec.resource', undefined, 'spec.resource'],
  ['OCMResource', 'extraIdentity value not a string', 'spec.extraIdentity', { architecture: 64 }, 'spec.extraIdentity.architecture'],
  ['Localization', 'rule without file', 'spec.rules', [{ resource: { name: 'image' }, image: 'spec.image' }], 'spec.rules[0].file'],
  ['Localization', 'rule without resource name', 'spec.rules', [{ resource: {}, file: 'a.yaml', image: 'spec.image' }], 'spec.rules[0].resource.name'],
  ['Localization', 'rules not a list', 'spec.rules', { image: 'x' }, 'spec.rules'],
  ['Configurator', 'valuesFrom kind outside the enum', 'spec.valuesFrom', [{ kind: 'Pod', name: 'x' }], 'spec.valuesFrom[0].kind'],
  ['Configurator', 'valuesFrom without name', 'spec.valuesFrom', [{ kind: 'Secret' }], 'spec.valuesFrom[0].name'],
  ['KustomizationTemplate', 'missing template', 'spec.template', undefined, 'spec.template'],
  ['KustomizationTemplate', 'template interval not a duration', 'spec.template.interval', '10x', 'spec.template.interval'],
  ['KustomizationTemplate', 'prune not a boolean', 'spec.template.prune', 'yes', 'spec.template.prune'],
  ['HelmReleaseTemplate', 'release name too long', 'spec.template.releaseName', 'x'.repeat(54), 'spec.template.releaseName'],
  ['HelmReleaseTemplate', 'values not a map', 'spec.template.values', 'replicaCount=2', 'spec.template.values'],
  ['Snapshot', 'producerRef kind outside the enum', 'spec.producerRef.kind', 'OCMComponent', 'spec.producerRef.kind'],
  ['Snapshot', 'missing identity version', 'spec.identity.componentVersion', undefined, 'spec.identity.componentVersion'],
  ['Snapshot', 'negative size', 'status.size', -1, 'status.size'],
  ['Snapshot', 'tag with a colon', 'status.tag', 'v1:2', 'status.tag'],
  ['Snapshot', 'createdAt not RFC 3339', 'status.createdAt', '1714557600', 'status.createdAt'],
  ['ComponentDescriptor', 'resource relation outside the enum', 'spec.resources', [{ name: 'r', version: '1', type: 'PlainText', relation: 'internal' }], 'spec.resources[0].relation'],
  ['ComponentDescriptor', 'missing provider', 'spec.provider', undefined, 'spec.provider'],
  ['ComponentDescriptor', 'resource access without type', 'spec.resources', [{ name: 'r', version: '1', type: 'PlainText', relation: 'local', access: { localReference: 'x' } }], 'spec.resources[0].access.type'],
];

t.test('typical invalid objects are rejected at the right field', async (t) => {
  for (const [kind, what, path, value, expected] of invalid) {
    const k = kindByName(kind);
    const o = clone(examples[kind]) as Obj;
    setPath(o, path, value);
    const v = validatorFor(k);
    const ok = v(o);
    t.notOk(ok, `${kind}: ${what} is rejected`);
    const paths = errorPaths(v.errors);
    t.ok(paths.includes(expected), `${kind}: ${what} reported at ${expected} (got ${JSON.stringify(paths)})`);
  }
});

t.test('printer columns', async (t) => {
  for (const k of ocmKinds) {
    const names = k.columns.map((c) => c.name);
    t.equal(new Set(names).size, names.length, `${k.kind} column names unique`);
    for (const [name, jsonPath] of [
      ['Ready', '.status.conditions[?(@.type=="Ready")].status'],
      ['Status', '.status.conditions[?(@.type=="Ready")].message'],
      ['Age', '.metadata.creationTimestamp'],
    ]) {
      t.equal(k.columns.find((c) => c.name === name)?.jsonPath, jsonPath, `${k.kind} has the ${name} column`);
    }
    t.equal(k.columns.find((c) => c.name === 'Age')?.type, 'date', `${k.kind} Age is a date`);
    t.ok(k.columns.filter((c) => !c.priority).length >= 4, `${k.kind} shows a kind-specific column by default`);
    for (const c of k.columns) {
      t.ok(c.description.length > 0, `${k.kind}.${c.name} has a description`);
      t.ok(c.priority === undefined || c.priority === 0 || c.priority === 1, `${k.kind}.${c.name} priority`);
      const target = resolveColumn(k, c.jsonPath);
      if (typeof target === 'string') {
        t.fail(`${k.kind}.${c.name}: ${target}`);
        continue;
      }
      const expectedType = c.type === 'date' ? 'string' : c.type;
      t.equal(target.type, expectedType, `${k.kind}.${c.name} (${c.jsonPath}) is of type ${c.type}`);
      if (c.type === 'date') t.equal(target.format, 'date-time', `${k.kind}.${c.name} is a date-time`);
      const value = evalColumn(examples[k.kind], c.jsonPath);
      t.not(value, undefined, `${k.kind}.${c.name} has a value on the example`);
    }
  }
  const component = kindByName('OCMComponent');
  t.same(
    component.columns.filter((c) => !c.priority).map((c) => c.name),
    ['Component', 'Version', 'Verified', 'Ready', 'Status', 'Age'],
  );
  const snapshot = kindByName('Snapshot');
  t.equal(snapshot.columns.find((c) => c.name === 'Digest')?.priority ?? 0, 0, 'Snapshot digest shown by default');
  t.equal(evalColumn(examples.OCMComponent, '.status.conditions[?(@.type=="Ready")].message'), 'Applied version v0.9.4');
});

/** [kind, what, path to set (undefined deletes), value, exact field paths expected from strategy.validate]. */
const strategyCases: [string, string, string, unknown, string[]][] = [
  ['OCMComponent', 'version neither semver nor constraint', 'spec.version', 'latest', ['spec.version']],
  ['OCMComponent', 'constraint range accepted', 'spec.version', '>=1.2 <2', []],
  ['OCMComponent', 'exact version accepted', 'spec.version', 'v0.9.4', []],
  ['OCMComponent', 'zero interval', 'spec.interval', '0s', ['spec.interval']],
  [
    'OCMComponent',
    'duplicate signature names',
    'spec.verify',
    [{ signature: 'a', secretRef: { name: 'k1' } }, { signature: 'b', secretRef: { name: 'k2' } }, { signature: 'a', secretRef: { name: 'k3' } }],
    ['spec.verify[2].signature'],
  ],
  ['Source', 'in-group provider that is not a Source provider', 'spec.providerRef', { apiVersion: API_VERSION, kind: 'Localization', name: 'x' }, ['spec.providerRef.kind']],
  ['Source', 'external provider accepted', 'spec.providerRef', { apiVersion: 'source.acme.org/v1beta1', kind: 'GitSnapshot', name: 'x' }, []],
  ['Source', 'zero interval', 'spec.interval', '0ms', ['spec.interval']],
  ['Action', 'no input', 'spec.snapshotSourceRef', undefined, ['spec.snapshotSourceRef']],
  ['Action', 'both input and its alias', 'spec.sourceRef', { kind: 'Source', name: 'ui-server' }, ['spec.sourceRef']],
  ['Action', 'in-group provider that is not an Action provider', 'spec.providerRef', { apiVersion: API_VERSION, kind: 'OCMResource', name: 'x' }, ['spec.providerRef.kind']],
  ['Action', 'consumes itself', 'spec.snapshotSourceRef', { kind: 'Action', name: 'localizer' }, ['spec.snapshotSourceRef.name']],
  ['Action', 'a Source of the same name is not itself', 'spec.snapshotSourceRef', { kind: 'Source', name: 'localizer' }, []],
  ['Action', 'HelmReleaseTemplate provider accepted', 'spec.providerRef', { apiVersion: API_VERSION, kind: 'HelmReleaseTemplate', name: 'x' }, []],
  ['OCMResource', 'name inside extraIdentity', 'spec.extraIdentity', { name: 'x' }, ['spec.extraIdentity.name']],
  ['Localization', 'rule without a target path', 'spec.rules', [{ resource: { name: 'image' }, file: 'a.yaml' }, { resource: { name: 'image' }, file: 'b.yaml', tag: 'image.tag' }], ['spec.rules[0]']],
  ['Localization', 'file escaping the snapshot', 'spec.rules', [{ resource: { name: 'image' }, file: 'manifests/../../etc/passwd', image: 'x' }], ['spec.rules[0].file']],
  ['Localization', 'absolute file', 'spec.rules', [{ resource: { name: 'image' }, file: '/etc/passwd', image: 'x' }], ['spec.rules[0].file']],
  ['OCMComponent', 'interval of the wrong type (the schema reports it, not the strategy)', 'spec.interval', 600, []],
  // spec.verify has two forms (list, or the design's object), so the strategy checks its shape
  ['OCMComponent', 'verify entry without secretRef', 'spec.verify', [{ signature: 'sig' }], ['spec.verify[0].secretRef']],
  ['OCMComponent', 'verify entry that is not an object', 'spec.verify', ['x', { signature: 's', secretRef: { name: 'k' } }], ['spec.verify[0]']],
  ['OCMComponent', 'verify entry with an unknown field', 'spec.verify', [{ signature: 's', secretRef: { name: 'k' }, keyName: 'x' }], ['spec.verify[0].keyName']],
  ['OCMComponent', 'verify secretRef name not DNS-1123', 'spec.verify', [{ signature: 's', secretRef: { name: 'My_Key' } }], ['spec.verify[0].secretRef.name']],
  ['OCMComponent', 'the design\'s verify object form accepted', 'spec.verify', { secretRef: { name: 'my-public-key' } }, []],
  ['OCMComponent', 'verify object form naming one signature accepted', 'spec.verify', { signature: 'acme', secretRef: { name: 'k' }, key: 'pub.pem' }, []],
  ['OCMComponent', 'verify object without secretRef', 'spec.verify', { signature: 'acme' }, ['spec.verify.secretRef']],
  ['OCMComponent', 'verify a string', 'spec.verify', 'my-public-key', ['spec.verify']],
  ['Localization', 'rules that are not objects are left to the schema', 'spec.rules', ['x', { resource: { name: 'i' }, file: 7, tag: 't' }], []],
  ['Configurator', 'values a scalar', 'spec.values', 'debug=true', ['spec.values']],
  ['Configurator', 'values a list with a scalar', 'spec.values', [{ a: 1 }, 2], ['spec.values[1]']],
  ['Configurator', 'values a map', 'spec.values', { a: 1 }, []],
  ['KustomizationTemplate', 'sourceRef set by the user', 'spec.template.sourceRef', { kind: 'GitRepository', name: 'x' }, ['spec.template.sourceRef']],
  ['KustomizationTemplate', 'zero interval', 'spec.template.interval', '0m', ['spec.template.interval']],
  ['HelmReleaseTemplate', 'chartRef set by the user', 'spec.template.chartRef', { kind: 'OCIRepository', name: 'x' }, ['spec.template.chartRef']],
  ['HelmReleaseTemplate', 'chart set by the user', 'spec.template.chart', { spec: { chart: 'podinfo' } }, ['spec.template.chart']],
];

t.test('strategy.validate reports the right field paths', async (t) => {
  for (const [kind, what, path, value, expected] of strategyCases) {
    const k = kindByName(kind);
    const o = clone(examples[kind]) as Obj;
    setPath(o, path, value);
    const errs: FieldError[] = k.strategy?.validate?.(o as KubeObject) ?? [];
    t.same(errs.map((e) => e.field), expected, `${kind}: ${what}`);
    for (const e of errs) {
      t.ok(e.message.length > 0, `${kind}: ${what}: message`);
      t.match(e.type, /^FieldValue/, `${kind}: ${what}: type`);
    }
  }
  const noProvider = clone(examples.Action) as Obj;
  setPath(noProvider, 'spec.providerRef', { apiVersion: API_VERSION, kind: 'Snapshot', name: 'x' });
  t.equal(kindByName('Action').strategy?.validate?.(noProvider as KubeObject)[0]?.type, 'FieldValueNotSupported');
  // a strategy must cope with objects the schema would reject (it may run on partial input)
  for (const k of ocmKinds) {
    t.doesNotThrow(() => k.strategy?.validate?.({ apiVersion: API_VERSION, kind: k.kind, metadata: {} }), `${k.kind} validate without spec`);
    t.doesNotThrow(() => k.strategy?.validate?.({ apiVersion: API_VERSION, kind: k.kind, metadata: {}, spec: 'x' }), `${k.kind} validate with a bad spec`);
  }
});

t.test('validateUpdate: immutable fields', async (t) => {
  const snap = kindByName('Snapshot');
  const changed = clone(examples.Snapshot) as Obj;
  setPath(changed, 'spec.identity.componentVersion', 'v0.9.5');
  t.same(snap.strategy?.validateUpdate?.(changed as KubeObject, examples.Snapshot)?.map((e) => e.field), ['spec']);
  const reordered = clone(examples.Snapshot) as Obj;
  const spec = reordered.spec as Obj;
  reordered.spec = Object.fromEntries(Object.entries(spec).reverse());
  t.same(snap.strategy?.validateUpdate?.(reordered as KubeObject, examples.Snapshot), [], 'key order does not matter');
  const statusOnly = clone(examples.Snapshot) as Obj;
  setPath(statusOnly, 'status.size', 2048);
  t.same(snap.strategy?.validateUpdate?.(statusOnly as KubeObject, examples.Snapshot), [], 'status may change');

  const cd = kindByName('ComponentDescriptor');
  const cdChanged = clone(examples.ComponentDescriptor) as Obj;
  setPath(cdChanged, 'spec.version', '1.0.1');
  setPath(cdChanged, 'spec.name', 'github.com/mandelsoft/other');
  t.same(cd.strategy?.validateUpdate?.(cdChanged as KubeObject, examples.ComponentDescriptor)?.map((e) => e.field), ['spec.name', 'spec.version']);
  const cdSigned = clone(examples.ComponentDescriptor) as Obj;
  setPath(cdSigned, 'spec.signatures', []);
  t.same(cd.strategy?.validateUpdate?.(cdSigned as KubeObject, examples.ComponentDescriptor), [], 'other descriptor fields may change');
});

t.test('meta/v1 schemas', async (t) => {
  const expected = [
    'DeleteOptions', 'FieldsV1', 'ListMeta', 'ManagedFieldsEntry', 'ObjectMeta', 'OwnerReference', 'Preconditions',
    'Status', 'StatusCause', 'StatusDetails', 'Time', 'WatchEvent',
  ].map((n) => META_V1 + n);
  for (const name of expected) t.ok(metaSchemas[name], `${name} present`);

  // every $ref resolves inside metaSchemas
  const refs: string[] = [];
  const collect = (n: unknown): void => {
    if (Array.isArray(n)) n.forEach(collect);
    else if (isObj(n)) for (const [k, v] of Object.entries(n)) (k === '$ref' ? refs.push(String(v)) : collect(v));
  };
  collect(metaSchemas);
  t.ok(refs.length > 10);
  for (const r of refs) {
    t.match(r, /^#\/components\/schemas\//);
    t.ok(metaSchemas[r.replace('#/components/schemas/', '')], `${r} resolves`);
  }

  for (const [name, s] of Object.entries(metaSchemas)) {
    t.ok(typeof s.description === 'string' && (s.description as string).length > 10, `${name} described`);
    t.same(missingDescriptions(s as Schema), [], `${name}: fields without description`);
  }
  const om = metaSchemas[META_V1 + 'ObjectMeta'] as { properties: Record<string, Schema> };
  for (const f of ['name', 'generateName', 'namespace', 'uid', 'resourceVersion', 'generation', 'creationTimestamp', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'labels', 'annotations', 'finalizers', 'ownerReferences', 'managedFields']) {
    t.ok(om.properties[f], `ObjectMeta.${f}`);
  }
  t.match(String(om.properties.name.description), /^Name must be unique within a namespace/, "kube's own description");
  t.equal(om.properties.ownerReferences['x-kubernetes-patch-merge-key'], 'uid');

  const m = newAjv();
  m.addSchema({ $id: 'https://ocm.test/meta', components: { schemas: metaSchemas } });
  const get = (n: string) => m.getSchema(`https://ocm.test/meta#/components/schemas/${META_V1}${n}`);
  const objectMeta = get('ObjectMeta');
  const status = get('Status');
  const watchEvent = get('WatchEvent');
  if (!objectMeta || !status || !watchEvent) throw new Error('meta schemas did not compile');
  t.ok(objectMeta({ ...meta('x'), labels: { a: 'b' }, finalizers: ['f'], ownerReferences: [{ apiVersion: 'v1', kind: 'K', name: 'n', uid: 'u', controller: true }] }), `ObjectMeta validates ${JSON.stringify(objectMeta.errors)}`);
  t.notOk(objectMeta({ name: 'x', ownerReferences: [{ apiVersion: 'v1', kind: 'K', name: 'n' }] }), 'owner reference without uid rejected');
  t.notOk(objectMeta({ name: 'x', creationTimestamp: 'not a time' }), 'creationTimestamp must be a date-time');
  t.notOk(objectMeta({ name: 'x', labels: { a: 1 } }), 'label values are strings');
  t.ok(
    status({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'bad',
      reason: 'Invalid',
      code: 422,
      details: { name: 'x', group: 'delivery.ocm.software', kind: 'ocmcomponents', causes: [{ reason: 'FieldValueRequired', field: 'spec.name', message: 'Required value' }] },
    }),
    `Status validates ${JSON.stringify(status.errors)}`,
  );
  t.notOk(status({ kind: 'Status', code: '422' }), 'code is an integer');
  t.ok(watchEvent({ type: 'ADDED', object: {} }), 'WatchEvent validates');
  t.notOk(watchEvent({ object: {} }), 'WatchEvent requires type');
  t.same((metaSchemas[META_V1 + 'Status'] as Schema)['x-kubernetes-group-version-kind'], [{ group: '', kind: 'Status', version: 'v1' }]);

  const v2 = refsForSwagger2(metaSchemas[META_V1 + 'ObjectMeta']) as { properties: Record<string, Schema> };
  t.same(v2.properties.creationTimestamp.$ref, `#/definitions/${META_V1}Time`);
  t.equal(v2.properties.creationTimestamp.allOf, undefined);
  t.equal(v2.properties.creationTimestamp.description, om.properties.creationTimestamp.description);
  t.same((v2.properties.ownerReferences.items as Schema).$ref, `#/definitions/${META_V1}OwnerReference`);
  t.ok(Array.isArray(om.properties.creationTimestamp.allOf), 'input left unchanged');
});

t.test('helpers', async (t) => {
  t.equal(parseDuration('10m'), 600_000);
  t.equal(parseDuration('1h30m'), 5_400_000);
  t.equal(parseDuration('30s'), 30_000);
  t.equal(parseDuration('1.5h'), 5_400_000);
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration('10'), undefined);
  t.equal(parseDuration('10 m'), undefined);
  t.equal(parseDuration('-1m'), undefined);
  t.same(validateRelativePath('a/b.yaml', 'f'), []);
  t.same(validateRelativePath('a/..b/c.yaml', 'f'), [], 'a name starting with .. is fine');
  t.same(validateRelativePath('a\\..\\b', 'f').map((e) => e.field), ['f']);
  t.same(validateRelativePath(5, 'f'), [], 'non-strings are left to the schema');

  t.same(actionInputRef(examples.Action), { kind: 'Source', name: 'ui-server' });
  const alias = clone(examples.Action) as Obj;
  setPath(alias, 'spec.snapshotSourceRef', undefined);
  setPath(alias, 'spec.sourceRef', { kind: 'Action', name: 'config' });
  t.same(actionInputRef(alias as KubeObject), { kind: 'Action', name: 'config' });
  t.equal(kindByName('Action').selectableFields?.['spec.snapshotSourceRef.name']?.(alias as KubeObject), 'config');

  const aliasSelf = clone(examples.Action) as Obj;
  setPath(aliasSelf, 'spec.snapshotSourceRef', undefined);
  setPath(aliasSelf, 'spec.sourceRef', { kind: 'Action', name: 'localizer' });
  t.same(kindByName('Action').strategy?.validate?.(aliasSelf as KubeObject)?.map((e) => e.field), ['spec.sourceRef.name'], 'self-reference through the alias');

  t.ok(deepEqual({ a: [1, { b: 2 }], c: undefined }, { a: [1, { b: 2 }] }));
  t.notOk(deepEqual({ a: [1, 2] }, { a: [2, 1] }));
  t.notOk(deepEqual([1], { 0: 1 }));
  t.notOk(deepEqual({ a: 1 }, { a: 1, b: 2 }));
  const o = { apiVersion: API_VERSION, kind: 'X', metadata: {}, spec: { n: 3, b: false, o: {}, s: 'str' } };
  t.equal(selectable('spec.n')(o), '3');
  t.equal(selectable('spec.b')(o), 'false');
  t.equal(selectable('spec.o')(o), undefined);
  t.equal(selectable('spec.s.deeper')(o), undefined);
  t.equal(selectable('spec.missing')(o), undefined);

  t.same(configuratorValues({ apiVersion: API_VERSION, kind: 'Configurator', metadata: {} }), []);
  t.same(configuratorValues(examples.Configurator), [{ debug: false, rate_limit: false, allowed_domains: ['example.io'] }]);
  const mapValues = clone(examples.Configurator) as Obj;
  setPath(mapValues, 'spec.values', { a: 1 });
  t.same(configuratorValues(mapValues as KubeObject), [{ a: 1 }]);

  t.match(componentDescriptorName('wge', 'github.com/weaveworks/wge', 'v0.9.4'), /^wge\.github-com-weaveworks-wge-v0-9-4-[0-9a-f]{8}$/);
  t.match(componentDescriptorName('a', '/', '+'), /^a\.component-[0-9a-f]{8}$/, 'never empty');
  t.not(componentDescriptorName('a', 'acme.org/b-1.0', '0.0'), componentDescriptorName('a', 'acme.org/b', '1.0.0'), 'versions that read the same stay apart');
  t.not(componentDescriptorName('a', 'acme.org/b', '1.0.0'), componentDescriptorName('c', 'acme.org/b', '1.0.0'), 'each OCMComponent has its own');
  t.not(componentDescriptorName('a.b', 'acme.org/c', '1.0.0'), componentDescriptorName('a', 'b.acme.org/c', '1.0.0'));
  const long = componentDescriptorName('x'.repeat(253), `acme.org/${'x'.repeat(300)}`, '1.0.0');
  t.ok(long.length <= 253, 'long names are cut');
  t.match(long, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'a valid object name');
  t.not(long, componentDescriptorName('x'.repeat(253), `acme.org/${'x'.repeat(300)}`, '1.0.1'), 'cut names stay distinct');
});
