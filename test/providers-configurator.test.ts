// The Configurator provider against real component versions in Debian's docker-registry: the
// vector ConfigData (test/fixtures/ocm-vectors/ocm-controller-testdata) and two of our own are localBlob
// resources read with getResourceContent; the input files are the vector manifest tars.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import YAML from 'yaml';
import { parseDescriptor } from '../ocm/descriptor.js';
import { OcmRepository } from '../ocm/repository.js';
import { configurationValues, configuratorProvider, mergeValues, resolveValues, ruleValue } from '../providers/configurator.js';
import { SnapshotEditor, parseConfigData } from '../providers/configdata.js';
import { contentToFiles } from '../providers/content.js';
import type { ActionContext, Files } from '../providers/types.js';
import type { HostCluster } from '../reconcilers/runtime/host.js';
import { OciClient, digestOf } from '../registry/client.js';
import { startDistribution } from './helpers/distribution.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const VECTORS = path.resolve(repoRoot, 'test/fixtures/ocm-vectors/ocm-controller-testdata');
const vectorConfig = fs.readFileSync(path.join(VECTORS, 'e2e_testdata_testOCMController_podinfo_backend_config.yaml'));

const reg = await startDistribution();
t.teardown(() => reg.stop());
const client = new OciClient({ insecureHttp: true, retries: 1 });
t.teardown(() => client.close());
const repo = new OcmRepository(client, `http://${reg.host}/ocm`);

const blob = (data: string | Buffer) => {
  const b = Buffer.from(data);
  return { digest: digestOf(b), entry: { data: b, mediaType: 'application/yaml' } };
};

const appConfig = blob(`apiVersion: config.ocm.software/v1alpha1
kind: ConfigData
metadata:
  name: app
configuration:
  defaults:
    host: example.org
    ports: [8080, 9090]
    url: (( "https://" host ":" ports.[0] ))
    replicas: 1
    image:
      registry: ghcr.io
      repository: acme/app
      tag: "1.0"
      ref: (( registry "/" repository ":" tag ))
    mode: ~
    tier: backend
  schema:
    $schema: https://json-schema.org/draft/2020-12/schema
    type: object
    required: [image]
    properties:
      replicas: {type: integer, minimum: 1}
      ports: {type: array, items: {type: integer}}
      image:
        type: object
        required: [tag]
        properties:
          tag: {type: string}
      mode: {enum: [standard, debug, null]}
  rules:
  - {value: (( image.ref )), file: app.yaml, path: spec.image}
  - {value: (( replicas * 2 )), file: app.yaml, path: spec.replicas}
  - {value: (( url )), file: app.yaml, path: data.URL}
  - {value: (( mode || "standard" )), file: app.yaml, path: data.MODE}
  - {value: (( missing.key || image.tag )), file: app.yaml, path: data.TAG}
  - {value: (( tier )), file: app.yaml, path: metadata.labels.tier}
  - {value: (( ports )), file: app.yaml, path: spec.ports}
  - {value: ((! not an expression )), file: app.yaml, path: data.LITERAL}
`);
const brokenConfig = blob(`apiVersion: config.ocm.software/v1alpha1
kind: ConfigData
metadata:
  name: broken
configuration:
  defaults: {a: 1}
  rules:
  - value: (( nosuch.key ))
    file: app.yaml
    path: data.X
`);
const vector = blob(vectorConfig);

const cd = parseDescriptor(`meta: {schemaVersion: v2}
component:
  name: acme.org/podinfo
  version: 6.8.0
  provider: acme.org
  resources:
  - name: config
    version: 6.8.0
    type: configdata.ocm.software
    relation: local
    access: {type: localBlob, localReference: '${vector.digest}', mediaType: application/yaml}
  - name: app-config
    version: 6.8.0
    type: yaml
    relation: local
    extraIdentity: {flavour: app}
    access: {type: localBlob, localReference: '${appConfig.digest}', mediaType: application/yaml}
  - name: app-config
    version: 6.8.0
    type: yaml
    relation: local
    extraIdentity: {flavour: broken}
    access: {type: localBlob, localReference: '${brokenConfig.digest}', mediaType: application/yaml}
`);
await repo.pushComponentVersion(cd, new Map([vector, appConfig, brokenConfig].map((b) => [b.digest, b.entry])));
const podinfo = await repo.getComponentVersion('acme.org/podinfo', '6.8.0');

const tarFiles = async (name: string) =>
  Object.fromEntries(Object.entries(await contentToFiles(fs.readFileSync(path.join(VECTORS, name)), 'application/x-tar', 'x')).map(([k, v]) => [`manifests/${k}`, v]));
/** The vector's ConfigMap and Deployment, under manifests/ as the vector's rules name them. */
const vectorFiles: Files = { ...(await tarFiles('controllers_testdata_configuration-map.tar')), ...(await tarFiles('controllers_testdata_localization-deploy.tar')) };
const configmapYaml = vectorFiles['manifests/configmap.yaml'].toString();
const deployYaml = vectorFiles['manifests/deploy.yaml'].toString();

const appYaml = `# the app
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  labels:
    app: app   # keep me
spec:
  replicas: 1 # scaled by the configurator
  image: placeholder
  ports: []
---
# its configuration
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
data:
  URL: ""
`;

type Values = Record<string, Record<string, string>>;

function context(spec: Record<string, unknown>, files: Files = vectorFiles, values: Values = {}): ActionContext {
  const meta = (name: string) => ({ name, namespace: 'demo' });
  return {
    action: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'Action', metadata: meta('configure'), spec: {} },
    provider: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'Configurator', metadata: meta('configure'), spec },
    component: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: meta('podinfo'), spec: {} },
    descriptor: podinfo.descriptor,
    repository: repo,
    componentVersion: podinfo,
    input: {
      files,
      snapshot: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'Snapshot', metadata: meta('input') },
      repositoryURL: 'registry.invalid/demo/podinfo/manifests',
      tag: '1700000000',
      digest: `sha256:${'a'.repeat(64)}`,
    },
    // ConfigMaps and Secrets of the namespace, as `Kind/name` → data (Secret values decoded, as the reconciler hands them over)
    readValue: async (kind, name, key) => values[`${kind}/${name}`]?.[key],
    host: undefined as unknown as HostCluster,
    snapshotRegistry: { url: 'registry.invalid', tlsSecretName: 'ocm-registry-tls' },
  };
}

async function configure(spec: Record<string, unknown>, files?: Files, values?: Values): Promise<Files> {
  const out = await configuratorProvider.run(context(spec, files, values));
  if (!out.files) throw new Error('no files');
  return out.files;
}
const text = (files: Files, name: string) => files[name].toString('utf8');
const vectorData = () => parseConfigData(vectorConfig);

t.test('the vector ConfigData with its defaults configures the vector manifests', async (t) => {
  t.equal(configuratorProvider.kind, 'Configurator');
  const out = await configure({});
  t.equal(
    text(out, 'manifests/configmap.yaml'),
    `apiVersion: v1
kind: ConfigMap
metadata:
  name: backend-config
  labels:
    app: backend
data:
  PODINFO_UI_MESSAGE: "Hello, world!"
  PODINFO_UI_COLOR: "#34577c"
  PODINFO_CACHE_SERVER: tcp://redis:6379
`,
    'the message replaced in its quoting style, the missing key added to data; nothing else moved',
  );
  t.equal(out['manifests/deploy.yaml'], vectorFiles['manifests/deploy.yaml'], 'replicas: 1 already: the file is the input buffer');
  t.equal(text(vectorFiles, 'manifests/configmap.yaml'), configmapYaml, 'the input is not modified');
});

t.test('precedence: ConfigData defaults < spec.values (maps in order) < valuesFrom (in order), merged deep', async (t) => {
  const cluster: Values = {
    'ConfigMap/podinfo-values': { 'values.yaml': 'message: from the ConfigMap\n' },
    'Secret/podinfo-secret': { 'override.json': '{"replicas": 5}' },
  };
  const spec = {
    values: [{ replicas: 2, message: 'from values[0]' }, { message: 'from values[1]' }],
    valuesFrom: [
      { kind: 'ConfigMap', name: 'podinfo-values' },
      { kind: 'Secret', name: 'podinfo-secret', key: 'override.json' },
    ],
  };
  const ctx = (s: Record<string, unknown>) => context(s, vectorFiles, cluster);
  t.same(await configurationValues(ctx({}), vectorData(), 'the vector'), { replicas: 1, cacheAddr: 'tcp://redis:6379', message: 'Hello, world!' }, 'defaults');
  t.same(await configurationValues(ctx({ values: { replicas: 3 } }), vectorData(), 'the vector'), { replicas: 3, cacheAddr: 'tcp://redis:6379', message: 'Hello, world!' }, 'a map of values');
  t.same(await configurationValues(ctx({ values: spec.values }), vectorData(), 'the vector'), { replicas: 2, cacheAddr: 'tcp://redis:6379', message: 'from values[1]' }, 'a list of maps, later wins');
  t.same(await configurationValues(ctx(spec), vectorData(), 'the vector'), { replicas: 5, cacheAddr: 'tcp://redis:6379', message: 'from the ConfigMap' }, 'valuesFrom over values, the Secret last');

  const out = await configure(spec, vectorFiles, cluster);
  t.equal(text(out, 'manifests/deploy.yaml'), deployYaml.replace('\n  replicas: 1\n', '\n  replicas: 5\n'));
  t.match(text(out, 'manifests/configmap.yaml'), /\n {2}PODINFO_UI_MESSAGE: "from the ConfigMap"\n/);

  t.same(mergeValues({ image: { repository: 'a', tag: '1' }, list: [1, 2] }, { image: { tag: '2' }, list: [3] }), { image: { repository: 'a', tag: '2' }, list: [3] }, 'maps merge, lists replace');
  const app = await configure({ configRef: { name: 'app-config', extraIdentity: { flavour: 'app' } }, values: { image: { tag: '2.0' } } }, { 'app.yaml': Buffer.from(appYaml) });
  t.match(text(app, 'app.yaml'), /\n {2}image: ghcr\.io\/acme\/app:2\.0\n/, 'a nested value overrides only its key; expressions see the merged values');
});

t.test('the schema of the ConfigData: violations name the offending paths', async (t) => {
  await t.rejects(
    configure({ values: { replicas: 'two', color: 'red' } }),
    /^configuration values do not match the schema of ConfigData "ocm-config-pipeline-backend" \(resource "config" of acme\.org\/podinfo:6\.8\.0\): color: is not allowed by the schema \(no such property\); replicas: must be integer$/,
  );
  const appRef = { name: 'app-config', extraIdentity: { flavour: 'app' } };
  const files = { 'app.yaml': Buffer.from(appYaml) };
  await t.rejects(configure({ configRef: appRef, values: { ports: [80, 'https'], image: { tag: 2 } } }, files), /: ports\[1\]: must be integer; image\.tag: must be string$/, 'JSON schema 2020-12; list indexes and nested keys');
  await t.rejects(configure({ configRef: appRef, values: { replicas: 0, mode: 'fast' } }, files), /: replicas: must be >= 1; mode: must be one of "standard", "debug", null$/);
  await t.rejects(configure({ configRef: appRef, values: { image: null } }, files), /: image: must be object$/);
});

t.test('(( )) expressions in rules and values', async (t) => {
  const out = await configure({ configRef: { name: 'app-config', extraIdentity: { flavour: 'app' } }, values: { replicas: 3 } }, { 'app.yaml': Buffer.from(appYaml) });
  const docs = YAML.parseAllDocuments(text(out, 'app.yaml')).map((d) => d.toJS());
  t.same(docs[0].spec, { replicas: 6, image: 'ghcr.io/acme/app:1.0', ports: [8080, 9090] }, 'arithmetic, concatenation in a nested scope, a list');
  t.same(docs[0].metadata.labels, { app: 'app', tier: 'backend' });
  t.same(docs[1].data, { URL: 'https://example.org:8080', MODE: 'standard', TAG: '1.0', LITERAL: '(( not an expression ))' }, 'a value referring to values, || for undefined and nil, ((! a literal');
  t.equal(
    text(out, 'app.yaml'),
    `# the app
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  labels:
    app: app   # keep me
    tier: backend
spec:
  replicas: 6 # scaled by the configurator
  image: ghcr.io/acme/app:1.0
  ports: [8080, 9090]
---
# its configuration
apiVersion: v1
kind: ConfigMap
metadata:
  name: app
data:
  URL: "https://example.org:8080"
  MODE: standard
  TAG: "1.0"
  LITERAL: (( not an expression ))
`,
    'edited in place: comments and quoting kept, "1.0" quoted, new keys appended to their maps, the flow list stays a flow list',
  );

  const values = resolveValues({ a: { b: 1, c: '(( b + 1 ))', d: '(( x.y ))' }, x: { y: '(( a.b * 10 ))' }, s: '(( "n" a.c ))', l: [{ n: 1 }, { n: 2 }] });
  t.same(values, { a: { b: 1, c: 2, d: 10 }, x: { y: 10 }, s: 'n2', l: [{ n: 1 }, { n: 2 }] }, 'references resolve from the innermost map outwards, through other expressions');
  t.equal(ruleValue('(( l[1].n - 3 ))', values, 'r'), -1);
  t.equal(ruleValue('(( l.[0].n ))', values, 'r'), 1);
  t.equal(ruleValue('(( (a.b + 2) * 3 ))', values, 'r'), 9);
  t.equal(ruleValue('(( nope || nil || "x" ))', values, 'r'), 'x');
  t.equal(ruleValue('plain', values, 'r'), 'plain');
  t.equal(ruleValue(42, values, 'r'), 42);
  t.throws(() => resolveValues({ a: '(( b ))', b: '(( a ))' }), /cycle/);
  t.throws(() => ruleValue('(( a.b + ))', values, 'rule 0'), /^rule 0: \(\( a\.b \+ \)\): unexpected end/);
  t.throws(() => ruleValue('(( "x" + 1 ))', values, 'rule 0'), /\+ needs numbers, not "x" and 1/);
  await t.rejects(
    configure({ configRef: { name: 'app-config', extraIdentity: { flavour: 'broken' } } }, { 'app.yaml': Buffer.from(appYaml) }),
    /^configuration rule 0 of ConfigData "broken" \(resource "app-config" of acme\.org\/podinfo:6\.8\.0\) \(file "app\.yaml", path "data\.X"\): \(\( nosuch\.key \)\): "nosuch\.key" is not defined in the values \(top-level keys: a\)$/,
  );
});

t.test('maps and lists as values: only their lines change', async (t) => {
  const src = `# the app
metadata:
  name: app
  labels:   # the labels
    app: app   # replaced
  # trailing comment
spec:
  containers:
    - name: a
      image: placeholder  # becomes a map
      resources:
        limits: {cpu: 1}
  list:
  - a
  - b
status: {}
`;
  const editor = new SnapshotEditor({ 'a.yaml': Buffer.from(src) });
  editor.set('a.yaml', 'metadata.labels', { a: 1, b: 'yes' }, 'r');
  editor.set('a.yaml', 'spec.list', ['x', 'y', { z: 1 }], 'r');
  editor.set('a.yaml', 'spec.containers[0].image', { repository: 'ghcr.io/acme/app', tag: '1.0' }, 'r');
  editor.set('a.yaml', 'spec.containers[0].image.tag', '2.0', 'r');
  editor.set('a.yaml', 'spec.containers[0].resources', { requests: { memory: '1Gi' } }, 'r');
  editor.set('a.yaml', 'status', { ready: true }, 'r');
  t.equal(
    editor.result()['a.yaml'].toString(),
    `# the app
metadata:
  name: app
  labels:   # the labels
    a: 1
    b: "yes"
  # trailing comment
spec:
  containers:
    - name: a
      image:
        repository: ghcr.io/acme/app
        tag: "2.0"  # becomes a map
      resources:
        requests:
          memory: 1Gi
  list:
  - x
  - "y"
  - z: 1
status: {ready: true}
`,
  );
  const json = new SnapshotEditor({ 'v.json': Buffer.from('{\n    "image": {"tag": "1"},\n    "n": 1\n}\n') });
  json.set('v.json', 'image.registry', 'r.io', 'r');
  t.equal(json.result()['v.json'].toString(), '{\n    "image": {\n        "tag": "1",\n        "registry": "r.io"\n    },\n    "n": 1\n}\n', 'a JSON file that needs rewriting stays JSON');
  const json2 = new SnapshotEditor({ 'v.json': Buffer.from('{"image": {"tag": "1"}, "n": 1}') });
  json2.set('v.json', 'n', 'two', 'r');
  t.equal(json2.result()['v.json'].toString(), '{"image": {"tag": "1"}, "n": "two"}', 'a value in place is written as JSON');

  const flow = new SnapshotEditor({ 's.yaml': Buffer.from('kind: Service\nmetadata: {name: frontend, labels: {a: b}}  # short\nspec:\n  ports: [{port: 80}]\n') });
  flow.set('s.yaml', 'metadata.namespace', 'demo', 'r');
  flow.set('s.yaml', 'metadata.labels.version', '1.0', 'r');
  flow.set('s.yaml', 'spec.ports[0].name', 'http', 'r');
  t.equal(
    flow.result()['s.yaml'].toString(),
    'kind: Service\nmetadata: {name: frontend, labels: {a: b, version: "1.0"}, namespace: demo}  # short\nspec:\n  ports: [{port: 80, name: http}]\n',
    'keys added to flow maps: the flow map is written again on its line',
  );

  const crlf = new SnapshotEditor({ 'w.yaml': Buffer.from('a:\r\n  b: 1 # one\r\n  c: x\r\n') });
  crlf.set('w.yaml', 'a.b', 2, 'r');
  crlf.set('w.yaml', 'a.d', 'new', 'r');
  crlf.set('w.yaml', 'a.c', { m: 1 }, 'r');
  t.equal(crlf.result()['w.yaml'].toString(), 'a:\r\n  b: 2 # one\r\n  c:\r\n    m: 1\r\n  d: new\r\n', 'CRLF line ends stay CRLF');
});

t.test('valuesFrom: optional entries may be missing, required ones may not', async (t) => {
  const spec = (optional?: boolean) => ({ valuesFrom: [{ kind: 'ConfigMap', name: 'absent', ...(optional !== undefined && { optional }) }] });
  const out = await configure(spec(true), vectorFiles, {});
  t.match(text(out, 'manifests/configmap.yaml'), /PODINFO_UI_MESSAGE: "Hello, world!"/, 'an optional missing ConfigMap is skipped');
  await t.rejects(configure(spec(), vectorFiles, {}), /^spec\.valuesFrom\[0\] \(ConfigMap "absent", key "values\.yaml"\): ConfigMap "absent" or its key "values\.yaml" does not exist \(set optional: true to go on without it\)$/);
  await t.rejects(configure(spec(false), vectorFiles, { 'ConfigMap/absent': { 'other.yaml': 'x: 1' } }), /does not exist/, 'a missing key is missing too');
  await t.rejects(configure(spec(), vectorFiles, { 'ConfigMap/absent': { 'values.yaml': '- a\n- b\n' } }), /spec\.valuesFrom\[0\] \(ConfigMap "absent", key "values\.yaml"\): must hold a map of values, not a list/);
  await t.rejects(configure(spec(), vectorFiles, { 'ConfigMap/absent': { 'values.yaml': 'a: [1\n' } }), /not valid YAML or JSON/);
  const empty = await configure(spec(), vectorFiles, { 'ConfigMap/absent': { 'values.yaml': '' } });
  t.ok(empty['manifests/configmap.yaml'], 'an empty entry adds nothing');
});

t.test('ConfigData and rule failures', async (t) => {
  await t.rejects(configure({ configRef: { name: 'nosuch' } }), /^spec\.configRef: component acme\.org\/podinfo:6\.8\.0 has no resource "nosuch"/);
  await t.rejects(configure({}, { 'manifests/deploy.yaml': vectorFiles['manifests/deploy.yaml'] }), /^configuration rule 1 of ConfigData "ocm-config-pipeline-backend" .*\(file "manifests\/configmap\.yaml", path "data\.PODINFO_CACHE_SERVER"\): file "manifests\/configmap\.yaml" is not in the input snapshot \(it has: manifests\/deploy\.yaml\)$/);
  await t.rejects(
    configure({}, { ...vectorFiles, 'manifests/configmap.yaml': Buffer.from('kind: ConfigMap\nmetadata:\n  name: x\n') }),
    /path "data\.PODINFO_CACHE_SERVER" is not in file "manifests\/configmap\.yaml" \(the document has no key "data"\)/,
  );
  t.throws(() => parseConfigData('apiVersion: v1\nkind: ConfigMap\n', 'ConfigData X'), /ConfigData X has apiVersion "v1"; expected config\.ocm\.software\/v1alpha1/);
  t.throws(() => parseConfigData('configuration:\n  rules:\n  - value: 1\n'), /configuration\.rules\[0\]\.file is required .*configuration\.rules\[0\]\.path is required/);
  t.throws(() => parseConfigData('localization: {a: 1}\n'), /localization must be a list of rules/);
});

t.test('a file to edit is at most 3 MiB and within prescan limits, checked before it is parsed (issue 15)', async (t) => {
  // 3 MiB of YAML parses into ~120 MiB of syntax tree; a 96 MiB file would take the process down.
  const big = Buffer.alloc((3 << 20) + 1, 'a: 1\n');
  await t.rejects(configure({}, { ...vectorFiles, 'manifests/configmap.yaml': big }), /file "manifests\/configmap\.yaml" is 3145729 bytes; a file to edit is at most 3145728 bytes/);
  const deep = Buffer.from(`${'['.repeat(2000)}${']'.repeat(2000)}\n`);
  await t.rejects(configure({}, { ...vectorFiles, 'manifests/configmap.yaml': deep }), /file "manifests\/configmap\.yaml" nests deeper than the limit of 512 levels/);
});
