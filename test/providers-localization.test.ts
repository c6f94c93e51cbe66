// The Localization provider against real component versions in Debian's docker-registry: the
// ConfigData comes from the registry (a localBlob resource read with getResourceContent), the input
// files from the ocm-controller test vectors (ConfigData and manifest tars in test/fixtures/ocm-vectors).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import YAML from 'yaml';
import { singleFileTar } from '../ocm/archive.js';
import { type ComponentDescriptor, parseDescriptor } from '../ocm/descriptor.js';
import { descriptorDigest } from '../ocm/normalise.js';
import { OcmRepository } from '../ocm/repository.js';
import { contentToFiles } from '../providers/content.js';
import { localizationProvider, parseImageReference } from '../providers/localization.js';
import type { ActionContext, Files } from '../providers/types.js';
import type { HostCluster } from '../reconcilers/runtime/host.js';
import { OciClient, digestOf } from '../registry/client.js';
import { startDistribution } from './helpers/distribution.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const VECTORS = path.resolve(repoRoot, 'test/fixtures/ocm-vectors/ocm-controller-testdata');
const vectorConfig = fs.readFileSync(path.join(VECTORS, 'e2e_testdata_testOCMController_podinfo_backend_config.yaml'));
const DIGEST_A = `sha256:${'a'.repeat(64)}`;
const DIGEST_B = `sha256:${'b1'.repeat(32)}`;

const reg = await startDistribution();
t.teardown(() => reg.stop());
const client = new OciClient({ insecureHttp: true, retries: 1 });
t.teardown(() => client.close());
const repo = new OcmRepository(client, `http://${reg.host}/ocm`);

/** Pushes a descriptor written as YAML, with its local blobs; returns the version as read back. */
async function push(yaml: string, blobs: Record<string, { data: Buffer; mediaType: string }> = {}) {
  const cd = parseDescriptor(yaml);
  await repo.pushComponentVersion(cd, new Map(Object.entries(blobs)));
  return repo.getComponentVersion(cd.component.name, cd.component.version);
}

const blob = (data: Buffer | string, mediaType = 'application/yaml') => {
  const b = Buffer.from(data);
  return { digest: digestOf(b), entry: { data: b, mediaType } };
};

// ---- the components -------------------------------------------------------------------------

const backendConfig = blob(
  gzipSync(
    singleFileTar(
      'config.yaml',
      Buffer.from(`apiVersion: config.ocm.software/v1alpha1
kind: ConfigData
metadata:
  name: backend
localization:
- resource:
    name: image
  file: manifests/deploy.yaml
  image: spec.template.spec.containers[0].image
`),
    ),
  ),
  'application/x-tgz',
);
const backend = await push(
  `meta: {schemaVersion: v2}
component:
  name: acme.org/backend
  version: 1.0.0
  provider: acme.org
  repositoryContexts: []
  sources: []
  componentReferences: []
  resources:
  - name: image
    version: 2.0.0
    type: ociImage
    relation: external
    access: {type: ociArtifact, imageReference: registry.acme.org/mirror/backend:2.0.0}
  - name: config
    version: 1.0.0
    type: configdata.ocm.software
    relation: local
    access: {type: localBlob, localReference: '${backendConfig.digest}', mediaType: application/x-tgz}
`,
  { [backendConfig.digest]: backendConfig.entry },
);

const config = blob(vectorConfig);
const mappingConfig = blob(`apiVersion: config.ocm.software/v1alpha1
kind: ConfigData
localization:
- resource: {name: image}
  file: manifests/deploy.yaml
  mapping:
    path: spec.template.spec.containers[0].image
    transform: 'out: component.resources[0].access.imageReference'
`);
const redisLayout = blob('not really an OCI layout', 'application/vnd.oci.image.manifest.v1+tar+gzip');
const chart = blob('not really a chart', 'application/vnd.cncf.helm.chart.content.v1.tar+gzip');

const podinfoYaml = (name: string, refDigest: string) => `meta: {schemaVersion: v2}
component:
  name: ${name}
  version: 6.8.0
  provider: acme.org
  repositoryContexts: []
  sources: []
  componentReferences:
  - name: backend
    componentName: acme.org/backend
    version: 1.0.0
    digest: {hashAlgorithm: SHA-256, normalisationAlgorithm: jsonNormalisation/v3, value: ${refDigest}}
  resources:
  - name: image
    version: 6.8.0
    type: ociImage
    relation: external
    access: {type: ociArtifact, imageReference: registry.acme.org/mirror/podinfo:6.8.0}
  - name: image
    version: 6.8.0
    type: ociImage
    relation: external
    extraIdentity: {architecture: arm64}
    access: {type: ociArtifact, imageReference: registry.acme.org/mirror/podinfo:6.8.0-arm64}
  - name: pinned
    version: 6.8.0
    type: ociImage
    relation: external
    access: {type: ociRegistry, imageReference: 'registry.acme.org/mirror/podinfo@${DIGEST_A}'}
  - name: both
    version: 1.2.3
    type: ociImage
    relation: external
    access: {type: ociArtifact/v1, imageReference: 'localhost:5000/acme/app:1.2.3@${DIGEST_B}'}
  - name: hub
    version: '1.27'
    type: ociImage
    relation: external
    access: {type: ociArtifact, imageReference: 'nginx:1.27'}
  - name: blob
    version: 1.0.0
    type: blob
    relation: external
    access: {type: ociBlob, ref: ghcr.io/acme/blobs/data, digest: '${DIGEST_A}', mediaType: application/octet-stream, size: 3}
  - name: redis
    version: '7.2'
    type: ociImage
    relation: local
    access:
      type: localBlob
      localReference: '${redisLayout.digest}'
      mediaType: application/vnd.oci.image.manifest.v1+tar+gzip
      referenceName: acme/redis:7.2
      globalAccess: {type: ociArtifact, imageReference: 'registry.acme.org/mirror/redis:7.2'}
  - name: chart
    version: 1.0.0
    type: helmChart
    relation: local
    access: {type: localBlob, localReference: '${chart.digest}', mediaType: application/vnd.cncf.helm.chart.content.v1.tar+gzip}
  - name: config
    version: 6.8.0
    type: configdata.ocm.software
    relation: local
    access: {type: localBlob, localReference: '${config.digest}', mediaType: application/yaml}
  - name: mapping-config
    version: 6.8.0
    type: yaml
    relation: local
    access: {type: localBlob, localReference: '${mappingConfig.digest}', mediaType: application/yaml}
`;
const podinfoBlobs = Object.fromEntries([config, mappingConfig, redisLayout, chart].map((b) => [b.digest, b.entry]));
const backendDigest = descriptorDigest(backend.descriptor as ComponentDescriptor, 'jsonNormalisation/v3').value;
const podinfo = await push(podinfoYaml('acme.org/podinfo', backendDigest), podinfoBlobs);
const tampered = await push(podinfoYaml('acme.org/tampered', 'c'.repeat(64)), podinfoBlobs);
const bare = await push(`meta: {schemaVersion: v2}
component:
  name: acme.org/bare
  version: 1.0.0
  provider: acme.org
  resources:
  - name: image
    version: 1.0.0
    type: ociImage
    relation: external
    access: {type: ociArtifact, imageReference: registry.acme.org/bare:1.0.0}
`);

// ---- the input snapshot ---------------------------------------------------------------------

/** The vector tar's files, under manifests/ as the vector ConfigData's rules name them. */
const vectorFiles: Files = Object.fromEntries(
  Object.entries(await contentToFiles(fs.readFileSync(path.join(VECTORS, 'controllers_testdata_localization-deploy.tar')), 'application/x-tar', 'manifests')).map(([k, v]) => [`manifests/${k}`, v]),
);
const deployYaml = vectorFiles['manifests/deploy.yaml'].toString();

type CV = Awaited<ReturnType<typeof push>>;

function context(cv: CV, spec: Record<string, unknown>, files: Files = vectorFiles): ActionContext {
  const meta = (name: string) => ({ name, namespace: 'demo' });
  return {
    action: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'Action', metadata: meta('localize'), spec: {} },
    provider: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'Localization', metadata: meta('localize'), spec },
    component: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: meta('podinfo'), spec: {} },
    descriptor: cv.descriptor,
    repository: repo,
    componentVersion: cv,
    input: {
      files,
      snapshot: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'Snapshot', metadata: meta('input') },
      repositoryURL: 'registry.invalid/demo/podinfo/manifests',
      tag: '1700000000',
      digest: DIGEST_A,
    },
    readValue: async () => undefined,
    host: undefined as unknown as HostCluster,
    snapshotRegistry: { url: 'registry.invalid', tlsSecretName: 'ocm-registry-tls' },
  };
}

async function localize(cv: CV, spec: Record<string, unknown>, files?: Files): Promise<Files> {
  const out = await localizationProvider.run(context(cv, spec, files));
  if (!out.files) throw new Error('no files');
  return out.files;
}

const text = (files: Files, name: string) => files[name].toString('utf8');
const rule = (resource: Record<string, unknown> | string, file: string, targets: Record<string, string>) => ({ resource, file, ...targets });

// ---- tests ----------------------------------------------------------------------------------

t.test('the vector ConfigData, found by its resource type, localizes the vector deployment', async (t) => {
  t.equal(localizationProvider.kind, 'Localization');
  const out = await localize(podinfo, {});
  t.equal(
    text(out, 'manifests/deploy.yaml'),
    deployYaml.replace('image: ghcr.io/stefanprodan/podinfo:6.2.3', 'image: registry.acme.org/mirror/podinfo:6.8.0'),
    'only the image line changed, byte for byte',
  );
  t.same(Object.keys(out).sort(), Object.keys(vectorFiles).sort());
  for (const f of ['manifests/values.yaml', 'manifests/custom_resource.yaml']) t.equal(out[f], vectorFiles[f], `${f} untouched (same buffer)`);
  t.equal(text(vectorFiles, 'manifests/deploy.yaml'), deployYaml, 'the input files are not modified');
  const again = await localize(podinfo, {}, out);
  t.equal(text(again, 'manifests/deploy.yaml'), text(out, 'manifests/deploy.yaml'), 'idempotent');
});

t.test('every rule field: image, registry, repository, fullyQualifiedRepository, tag', async (t) => {
  const out = await localize(podinfo, {
    rules: [
      rule({ name: 'image' }, 'manifests/values.yaml', { registry: 'image.registry', repository: 'image.repository', tag: 'image.tag' }),
      rule({ name: 'image' }, 'manifests/deploy.yaml', { image: 'spec.template.spec.containers[0].image' }),
      rule({ name: 'redis' }, 'manifests/custom_resource.yaml', { fullyQualifiedRepository: 'spec.repository', tag: 'spec.tag' }),
    ],
  });
  t.equal(text(out, 'manifests/values.yaml'), 'image:\n  registry: registry.acme.org\n  repository: mirror/podinfo\n  tag: 6.8.0\n');
  t.match(text(out, 'manifests/deploy.yaml'), /\n {8}image: registry\.acme\.org\/mirror\/podinfo:6\.8\.0\n/);
  t.equal(
    text(out, 'manifests/custom_resource.yaml'),
    `apiVersion: acme.org/v1alpha1
kind: MyResource
metadata:
  name: my-resource
  namespace: default
  labels:
    owner: ocm
spec:
  values: [1,2,3]
  repository: registry.acme.org/mirror/redis
  tag: "7.2"
`,
    'new keys are added to their map; "7.2" is quoted so that YAML readers keep it a string; the flow list is kept as written',
  );
  t.same(YAML.parse(text(out, 'manifests/custom_resource.yaml')).spec.tag, '7.2');
  t.same(YAML.parse(text(out, 'manifests/custom_resource.yaml'), { version: '1.1' }).spec.tag, '7.2', 'YAML 1.1 readers too');
});

t.test('image references: digests, tag and digest, Docker Hub names, ociBlob, localBlob globalAccess, extraIdentity', async (t) => {
  const parts = (resource: Record<string, unknown>) =>
    rule(resource, 'parts.yaml', { image: 'image', registry: 'registry', repository: 'repository', fullyQualifiedRepository: 'fqr', tag: 'tag' });
  const files = { 'parts.yaml': Buffer.from('image: x\nregistry: x\nrepository: x\nfqr: x\ntag: x\n') };
  const got = async (resource: Record<string, unknown>) => YAML.parse(text(await localize(podinfo, { rules: [parts(resource)] }, files), 'parts.yaml'));

  t.same(await got({ name: 'pinned' }), {
    image: `registry.acme.org/mirror/podinfo@${DIGEST_A}`,
    registry: 'registry.acme.org',
    repository: 'mirror/podinfo',
    fqr: 'registry.acme.org/mirror/podinfo',
    tag: DIGEST_A,
  }, 'a digest reference (ociRegistry access): tag receives the digest');
  t.same(await got({ name: 'both' }), {
    image: `localhost:5000/acme/app:1.2.3@${DIGEST_B}`,
    registry: 'localhost:5000',
    repository: 'acme/app',
    fqr: 'localhost:5000/acme/app',
    tag: DIGEST_B,
  }, 'tag and digest (ociArtifact/v1): the image keeps both, tag gets the digest; a registry with a port');
  t.same(await got({ name: 'hub' }), { image: 'nginx:1.27', registry: 'docker.io', repository: 'library/nginx', fqr: 'docker.io/library/nginx', tag: '1.27' }, 'Docker Hub short name');
  t.same(await got({ name: 'blob' }), {
    image: `ghcr.io/acme/blobs/data@${DIGEST_A}`,
    registry: 'ghcr.io',
    repository: 'acme/blobs/data',
    fqr: 'ghcr.io/acme/blobs/data',
    tag: DIGEST_A,
  }, 'ociBlob: ref@digest');
  t.same(await got({ name: 'redis' }), { image: 'registry.acme.org/mirror/redis:7.2', registry: 'registry.acme.org', repository: 'mirror/redis', fqr: 'registry.acme.org/mirror/redis', tag: '7.2' }, 'localBlob: its globalAccess');
  t.equal((await got({ name: 'image', extraIdentity: { architecture: 'arm64' } })).image, 'registry.acme.org/mirror/podinfo:6.8.0-arm64', 'extraIdentity selects the resource');
  t.equal((await got({ name: 'image', architecture: 'arm64' })).image, 'registry.acme.org/mirror/podinfo:6.8.0-arm64', 'so does the flat identity form of the OCM library');
  t.equal((await got({ name: 'image' })).image, 'registry.acme.org/mirror/podinfo:6.8.0', 'without extraIdentity: the resource that has none');

  t.same(parseImageReference('busybox'), { image: 'busybox', registry: 'docker.io', repository: 'library/busybox', fullyQualifiedRepository: 'docker.io/library/busybox', tag: 'latest' });
  t.same(parseImageReference('oci://ghcr.io/a/b/c:v1'), { image: 'ghcr.io/a/b/c:v1', registry: 'ghcr.io', repository: 'a/b/c', fullyQualifiedRepository: 'ghcr.io/a/b/c', tag: 'v1' });
  t.equal(parseImageReference('localhost/app').registry, 'localhost');
  t.equal(parseImageReference('acme/app:1').registry, 'docker.io');
  t.throws(() => parseImageReference('ghcr.io/UPPER/case:1'), /not a valid image reference: invalid repository/);
  t.throws(() => parseImageReference('ghcr.io/a@sha256'), /invalid digest/);
});

t.test('multi-document files: the path is set in every document that has it; comments and formatting stay', async (t) => {
  const input = `# Podinfo, as shipped
apiVersion: apps/v1
kind: Deployment
metadata:
  name: frontend   # the UI
spec:
  template:
    spec:
      containers:
        - name: frontend
          image: "ghcr.io/stefanprodan/podinfo:6.2.3"  # localized
          args: ["--level", "debug"]
---
apiVersion: v1
kind: Service
metadata: {name: frontend}
spec:
  ports:
    - port: 80

---
# the backend
apiVersion: apps/v1
kind: Deployment
metadata:
  name: backend
spec:
  template:
    spec:
      containers:
        - name: backend
          image: ghcr.io/stefanprodan/podinfo:6.2.3
        - name: sidecar
          image: 'busybox:1.36'
...
`;
  const out = await localize(
    podinfo,
    {
      rules: [
        rule({ name: 'image' }, 'all.yaml', { image: 'spec.template.spec.containers[0].image' }),
        rule({ name: 'hub' }, 'all.yaml', { image: 'spec.template.spec.containers[name=sidecar].image' }),
      ],
    },
    { 'all.yaml': Buffer.from(input), 'other.yaml': Buffer.from('a: 1\n') },
  );
  t.equal(
    text(out, 'all.yaml'),
    input
      .replace('"ghcr.io/stefanprodan/podinfo:6.2.3"', '"registry.acme.org/mirror/podinfo:6.8.0"')
      .replace('image: ghcr.io/stefanprodan/podinfo:6.2.3', 'image: registry.acme.org/mirror/podinfo:6.8.0')
      .replace("'busybox:1.36'", "'nginx:1.27'"),
    'both Deployments localized, the Service untouched; quoting, comments, markers and blank lines kept',
  );
  t.equal(text(out, 'other.yaml'), 'a: 1\n');
});

t.test('a ConfigData of a referenced component (configRef.referencePath, tar.gz content), then inline rules', async (t) => {
  const out = await localize(podinfo, {
    configRef: { name: 'config', referencePath: [{ name: 'backend' }] },
    rules: [
      rule({ name: 'image' }, 'manifests/values.yaml', { tag: 'image.tag' }),
      rule({ name: 'image' }, 'manifests/deploy.yaml', { tag: 'spec.template.metadata.labels.version' }),
    ],
  });
  t.match(text(out, 'manifests/deploy.yaml'), /\n {8}image: registry\.acme\.org\/mirror\/backend:2\.0\.0\n/, "the ConfigData's rule names the backend's image");
  t.match(text(out, 'manifests/deploy.yaml'), /\n {6}labels:\n {8}app: backend\n {8}version: 6\.8\.0\n {4}spec:\n/, "inline rules resolve in the Action's component; a missing key is added to its map");
  t.match(text(out, 'manifests/values.yaml'), /tag: 6\.8\.0/);
  await t.rejects(
    localize(tampered, { configRef: { name: 'config', referencePath: [{ name: 'backend' }] } }),
    /spec\.configRef: digest mismatch: acme\.org\/tampered:6\.8\.0 references acme\.org\/backend:1\.0\.0/,
    'the reference digest is checked',
  );
  await t.rejects(localize(podinfo, { configRef: { name: 'config', referencePath: [{ name: 'frontend' }] } }), /has no component reference "frontend" \(it has: backend\)/);
});

t.test('rules that cannot be applied fail with a message naming the rule, resource and file', async (t) => {
  const inline = (r: Record<string, unknown>) => localize(podinfo, { rules: [r] });
  await t.rejects(
    inline(rule({ name: 'nosuch' }, 'manifests/deploy.yaml', { image: 'spec.template.spec.containers[0].image' })),
    /^localization rule spec\.rules\[0\] \(resource "nosuch", file "manifests\/deploy\.yaml"\): component acme\.org\/podinfo:6\.8\.0 has no resource "nosuch" \(it has: image, image\[architecture=arm64\], pinned/,
  );
  await t.rejects(
    inline(rule({ name: 'image', extraIdentity: { architecture: 's390x' } }, 'manifests/deploy.yaml', { image: 'x' })),
    /has no resource "image" with extraIdentity architecture=s390x/,
  );
  await t.rejects(
    inline(rule({ name: 'image' }, 'manifests/nosuch.yaml', { image: 'spec.image' })),
    /^localization rule spec\.rules\[0\] \(resource "image", file "manifests\/nosuch\.yaml"\): file "manifests\/nosuch\.yaml" is not in the input snapshot \(it has: manifests\/custom_resource\.yaml, manifests\/deploy\.yaml, manifests\/values\.yaml\)/,
  );
  await t.rejects(
    inline(rule({ name: 'image' }, 'manifests/deploy.yaml', { image: 'spec.template.spec.containers[3].image' })),
    /^localization rule spec\.rules\[0\] \(resource "image", file "manifests\/deploy\.yaml"\), image: path "spec\.template\.spec\.containers\[3\]\.image" is not in file "manifests\/deploy\.yaml" \("spec\.template\.spec\.containers" has 1 item, no index 3\)/,
  );
  await t.rejects(
    inline(rule({ name: 'image' }, 'manifests/deploy.yaml', { tag: 'spec.template.spex.containers[0].image' })),
    /path "spec\.template\.spex\.containers\[0\]\.image" is not in file "manifests\/deploy\.yaml" \("spec\.template" has no key "spex"\)/,
  );
  await t.rejects(inline(rule({ name: 'chart' }, 'manifests/deploy.yaml', { image: 'x' })), /^localization rule spec\.rules\[0\] \(resource "chart", file "manifests\/deploy\.yaml"\): resource "chart" of acme\.org\/podinfo:6\.8\.0: its access is a localBlob without globalAccess/);
  await t.rejects(inline(rule({ name: 'config' }, 'manifests/deploy.yaml', {})), /sets none of image, registry, repository, fullyQualifiedRepository, tag/);
  await t.rejects(inline(rule({ name: 'image' }, '../etc/passwd', { image: 'x' })), /must be a path relative to the root of the snapshot/);
  await t.rejects(
    localize(podinfo, { rules: [rule({ name: 'image' }, 'two.yaml', { image: 'spec.image' })] }, { 'two.yaml': Buffer.from('spec: {a: 1}\n---\nspec:\n  b: 2\n') }),
    /path "spec\.image" is in no document of file "two\.yaml", and 2 documents \(1, 2\) could take it; the rule is ambiguous/,
  );
  await t.rejects(
    localize(podinfo, { rules: [rule({ name: 'image' }, 'bad.yaml', { image: 'a' })] }, { 'bad.yaml': Buffer.from('a: [1, 2\n') }),
    /file "bad\.yaml" is not valid YAML/,
  );
  await t.rejects(localize(podinfo, { configRef: { name: 'mapping-config' } }), /ConfigData \(resource "mapping-config" of acme\.org\/podinfo:6\.8\.0\) localization\[0\] \(resource "image", file "manifests\/deploy\.yaml"\): mapping rules \(a CUE transform\) are not supported/);
  await t.rejects(localize(bare, {}), /component acme\.org\/bare:1\.0\.0 has no resource of type configdata\.ocm\.software; set spec\.configRef/);
  await t.rejects(localize(podinfo, { configRef: { name: 'chart' } }), /^ConfigData resource "chart" of acme\.org\/podinfo:6\.8\.0 is not a ConfigData/, 'a configRef to something that is not a ConfigData');
});
