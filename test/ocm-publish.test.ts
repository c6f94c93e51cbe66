// publish: build, sign and push component versions from a YAML spec to Debian's docker-registry,
// read them back and verify them; the same through the CLI.
import t from 'tap';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { MEDIA_TYPES, OciClient, digestOf } from '../registry/client.js';
import { readTar } from '../ocm/archive.js';
import { findResource } from '../ocm/descriptor.js';
import { descriptorDigest } from '../ocm/normalise.js';
import { buildComponentVersion, type ComponentSpec, loadComponentSpecs, publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { verifyDescriptor } from '../ocm/signing.js';
import { startDistribution } from './helpers/distribution.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const VECTORS = path.resolve(repoRoot, 'test/fixtures/ocm-vectors');
const vec = (p: string) => path.join(VECTORS, p);
const CLI = path.join(repoRoot, 'dist/cli/ocm.js');
const PRIVATE = vec('ocm-controller-testdata/pkg_ocm_testdata_private_key.pem');
const PUBLIC1 = vec('ocm-controller-testdata/pkg_ocm_testdata_public1_key.pem');
const PUBLIC2 = vec('ocm-controller-testdata/pkg_ocm_testdata_public2_key.pem');
const CONFIG_DATA = vec('ocm-controller-testdata/e2e_testdata_testOCMController_podinfo_backend_config.yaml');

const reg = await startDistribution();
t.teardown(() => reg.stop());
const client = new OciClient({ insecureHttp: true, retries: 1 });
t.teardown(() => client.close());
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ocm-publish-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const MANIFESTS: Record<string, string> = {
  'kustomization.yaml': 'resources:\n  - deployment.yaml\n  - service.yaml\n  - configmap.yaml\n',
  'deployment.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\nspec:\n  replicas: 2\n  template:\n    spec:\n      containers:\n        - name: podinfo\n          image: ghcr.io/stefanprodan/podinfo:6.8.0\n',
  'service.yaml': 'apiVersion: v1\nkind: Service\nmetadata:\n  name: podinfo\n',
  'configmap.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: podinfo\ndata:\n  PODINFO_UI_MESSAGE: hello\n',
};
const work = path.join(tmp, 'podinfo');
fs.mkdirSync(path.join(work, 'deploy'), { recursive: true });
for (const [f, c] of Object.entries(MANIFESTS)) fs.writeFileSync(path.join(work, 'deploy', f), c);
fs.copyFileSync(CONFIG_DATA, path.join(work, 'config.yaml'));

/** A small image in the test registry standing in for ghcr.io/stefanprodan/podinfo. */
async function pushImage(tag: string, content: string): Promise<string> {
  const ref = `${reg.host}/stefanprodan/podinfo`;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  const layer = Buffer.from(content);
  await client.pushBlob(ref, config);
  await client.pushBlob(ref, layer);
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf(layer), size: layer.length }],
  };
  return (await client.putManifest(`${ref}:${tag}`, manifest, MEDIA_TYPES.ociManifest)).digest;
}

const podinfoSpec = (version: string, image: string): ComponentSpec => ({
  name: 'acme.org/podinfo',
  version,
  provider: 'acme.org',
  labels: [{ name: 'acme.org/team', value: 'delivery', signing: true }, { name: 'note', value: 'not signed' }],
  resources: [
    { name: 'image', type: 'ociImage', version: '6.8.0', access: { type: 'ociArtifact', imageReference: image } },
    { name: 'manifests', type: 'kustomization', input: { type: 'dir', path: 'deploy' } },
    { name: 'config', type: 'configdata.ocm.software', input: { type: 'file', path: 'config.yaml', mediaType: 'application/x-yaml' } },
  ],
  sources: [{ name: 'podinfo', type: 'git', access: { type: 'gitHub', repoUrl: 'github.com/stefanprodan/podinfo', commit: 'deadbeef' } }],
});

t.test('publish a signed podinfo-like component, read it back, verify everything', async (t) => {
  const imageDigest = await pushImage('6.8.0', 'podinfo image layer');
  const repo = new OcmRepository(client, `http://${reg.host}/podinfo`);
  const privateKeyPem = fs.readFileSync(PRIVATE, 'utf8');
  const res = await publish(repo, podinfoSpec('6.8.0', `${reg.host}/stefanprodan/podinfo:6.8.0`), work, { sign: { name: 'acme', privateKeyPem } });
  t.match(res.ref, `${reg.host}/podinfo/component-descriptors/acme.org/podinfo:6.8.0`);

  const cv = await repo.getComponentVersion('acme.org/podinfo', await repo.resolveVersion('acme.org/podinfo', '6.x'));
  t.equal(cv.manifestDigest, res.manifestDigest);
  const v = verifyDescriptor(cv.descriptor, { name: 'acme', publicKeyPem: fs.readFileSync(PUBLIC1, 'utf8') });
  t.ok(v.ok, v.ok ? 'signature verifies' : v.reason);
  t.notOk(verifyDescriptor(cv.descriptor, { name: 'acme', publicKeyPem: fs.readFileSync(PUBLIC2, 'utf8') }).ok, 'not with another key');
  t.equal(cv.descriptor.signatures![0].digest.normalisationAlgorithm, 'jsonNormalisation/v3');

  const image = findResource(cv.descriptor, 'image')!;
  t.same(image.digest, { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'ociArtifactDigest/v1', value: imageDigest.split(':')[1] });
  t.equal(image.relation, 'external');
  t.equal((await repo.getResourceContent(cv, image)).manifestDigest, imageDigest);

  const manifests = findResource(cv.descriptor, 'manifests')!;
  t.equal(manifests.relation, 'local');
  t.equal(manifests.version, '6.8.0', 'defaults to the component version');
  t.equal(manifests.access.type, 'localBlob');
  t.equal(manifests.digest?.normalisationAlgorithm, 'genericBlobDigest/v1');
  const tgz = await repo.getResourceContent(cv, manifests, { requireDigest: true });
  t.equal(tgz.mediaType, 'application/x-tgz');
  const files = await readTar(tgz.data);
  t.same(Object.fromEntries([...files].map(([k, b]) => [k, b.toString()])), MANIFESTS);

  const config = await repo.getResourceContent(cv, findResource(cv.descriptor, 'config')!, { requireDigest: true });
  t.ok(config.data.equals(fs.readFileSync(CONFIG_DATA)));
  t.equal(config.mediaType, 'application/x-yaml');

  t.same(
    cv.manifest.layers.slice(1).map((l: any) => JSON.parse(l.annotations['software.ocm.artifact'])),
    [[{ kind: 'resource', identity: { name: 'manifests' } }], [{ kind: 'resource', identity: { name: 'config' } }]],
  );
  t.equal(cv.descriptor.component.sources[0].version, '6.8.0');

  // the same build gives the same blobs (deterministic dir packing)
  const again = await buildComponentVersion(podinfoSpec('6.8.0', `${reg.host}/stefanprodan/podinfo:6.8.0`), work, { client });
  t.same(findResource(again.descriptor, 'manifests')!.digest, manifests.digest);

  await t.rejects(publish(repo, podinfoSpec('6.8.0', `${reg.host}/stefanprodan/podinfo:6.8.0`), work), { message: /already exists/ });
  await t.rejects(publish(repo, podinfoSpec('6.8.1', `${reg.host}/stefanprodan/podinfo:9.9.9`), work), { name: 'PublishError', message: /resources\[0\] \(image\): cannot compute the digest of .*podinfo:9.9.9 \(give it as "digest"/ });
  await t.rejects(publish(repo, { ...podinfoSpec('6.8.2', ''), resources: [{ name: 'x', type: 't', input: { type: 'file', path: 'missing.txt' } }] }, work), { message: /resources\[0\] \(x\): reading input missing.txt/ });
});

t.test('component references get the digest of the referenced descriptor', async (t) => {
  const repo = new OcmRepository(client, `${reg.host}/refs`);
  const backend = await publish(repo, { name: 'acme.org/backend', version: '1.0.0', provider: 'acme.org', resources: [{ name: 'readme', type: 'PlainText', input: { type: 'utf8', text: 'hello' } }] }, work);
  const app = await publish(repo, { name: 'acme.org/app', version: '1.0.0', provider: { name: 'acme.org' }, componentReferences: [{ name: 'backend', componentName: 'acme.org/backend', version: '1.0.0' }] }, work);
  t.same(app.descriptor.component.componentReferences[0].digest, descriptorDigest(backend.descriptor, 'jsonNormalisation/v3'));
  const refs = await repo.resolveReferences(await repo.getComponentVersion('acme.org/app', '1.0.0'));
  t.same(refs.map((r) => `${r.descriptor.component.name}:${r.descriptor.component.version}`), ['acme.org/backend:1.0.0']);
  await t.rejects(publish(repo, { name: 'acme.org/app', version: '2.0.0', provider: 'acme.org', componentReferences: [{ name: 'x', componentName: 'acme.org/missing', version: '1.0.0' }] }, work), { message: /component reference "x": acme.org\/missing:1.0.0 cannot be read .* \(publish it first\)/ });
});

t.test('the ctf-compat/01 constructor gives the very component version the Go library wrote', async (t) => {
  const [spec] = loadComponentSpecs(fs.readFileSync(vec('ctf-compat/01/component-constructor.yaml'), 'utf8'));
  const repo = new OcmRepository(client, `${reg.host}/constructor`);
  const r = await publish(repo, spec, vec('ctf-compat/01'), { now: new Date('2025-03-18T09:44:42Z'), creator: 'OCM Go Library 0.20.0' });
  t.equal(r.manifestDigest, 'sha256:6d776ef2c9c156ca260a67b335435f4ef20a1c8e777afee89148b06d5688e753');
});

const run = (args: string[]) =>
  promisify(execFile)(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, DOCKER_CONFIG: tmp } }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: any) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
  );

t.test('CLI: publish, get, verify a component version in a registry', async (t) => {
  await pushImage('cli', 'cli image layer');
  const specFile = path.join(work, 'components.yaml');
  fs.writeFileSync(
    specFile,
    `components:
- name: acme.org/cli
  version: 1.0.0
  provider: {name: acme.org}
  resources:
  - name: image
    type: ociImage
    access: {type: ociArtifact, imageReference: ${reg.host}/stefanprodan/podinfo:cli}
  - name: manifests
    type: kustomization
    input: {type: dir, path: deploy}
- name: acme.org/cli-app
  version: 1.0.0
  provider: acme.org
  componentReferences: [{name: cli, componentName: acme.org/cli, version: 1.0.0}]
`,
  );
  const url = `http://${reg.host}/cli`;
  let r = await run(['publish', '--spec', specFile, '--repository', url, '--sign-key', PRIVATE, '--signature', 'acme', '--algorithm', 'RSASSA-PSS']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, new RegExp(`^${reg.host}/cli/component-descriptors/acme.org/cli:1.0.0@sha256:[0-9a-f]{64}\n${reg.host}/cli/component-descriptors/acme.org/cli-app:1.0.0@sha256:`));

  r = await run(['get', '--repository', url, '--component', 'acme.org/cli', '--version', '1.x']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /name: acme.org\/cli\n/);

  r = await run(['verify', '--repository', url, '--component', 'acme.org/cli', '--version', '1.0.0', '--public-key', PUBLIC1, '--signature', 'acme']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /acme.org\/cli:1.0.0: signature "acme" verified, 2 resource digest\(s\) match/);
  r = await run(['verify', '--repository', url, '--component', 'acme.org/cli', '--version', '1.0.0', '--public-key', PUBLIC2]);
  t.equal(r.code, 1);
  t.match(r.stderr, /does not verify with the given public key/);

  // the image tag moves to other content: the signed descriptor no longer matches the resource
  await pushImage('cli', 'a different image');
  r = await run(['verify', '--repository', url, '--component', 'acme.org/cli', '--version', '1.0.0', '--public-key', PUBLIC1]);
  t.equal(r.code, 1);
  t.match(r.stderr, /resource "image" of acme.org\/cli:1.0.0: digest mismatch for resource "image"/);

  r = await run(['publish', '--spec', specFile, '--repository', url]);
  t.equal(r.code, 1);
  t.match(r.stderr, /already exists/);
  r = await run(['get', '--repository', url, '--component', 'acme.org/cli', '--version', '>=2']);
  t.equal(r.code, 1);
  t.match(r.stderr, /no version of component acme.org\/cli .* matches ">=2"/);
});
