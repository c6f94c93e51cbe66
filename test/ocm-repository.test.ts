// OcmRepository against Debian's docker-registry: component versions laid out by the OCM Go library
// (ctf-compat vectors) pushed as they are and read back, pushComponentVersion reproducing that layout
// byte for byte, version resolution, references, and the failure cases.
import t from 'tap';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MEDIA_TYPES, OciClient, digestOf } from '../registry/client.js';
import { readTar } from '../ocm/archive.js';
import { type ComponentDescriptor, findResource, parseDescriptor } from '../ocm/descriptor.js';
import { descriptorDigest } from '../ocm/normalise.js';
import { OCM_CONFIG_MEDIA_TYPE, OcmRepository } from '../ocm/repository.js';
import { ociArtifactDigest } from '../ocm/signing.js';
import { startDistribution } from './helpers/distribution.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CTF = path.resolve(repoRoot, 'test/fixtures/ocm-vectors/ctf-compat');
const COMPONENT = 'github.com/acme.org/helloworld';
const GO_CREATOR = 'OCM Go Library 0.20.0';

const reg = await startDistribution();
t.teardown(() => reg.stop());
const client = new OciClient({ insecureHttp: true, retries: 1 });
t.teardown(() => client.close());

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];
const blobOf = (dir: string, digest: string) => fs.readFileSync(path.join(CTF, dir, 'blobs', digest.replace(':', '.')));

/** Pushes a CTF's artifacts (blobs + manifest, untouched) under `<host>/<base>/<repository>:<tag>`. */
async function pushCtf(t: Tap, dir: string, base: string): Promise<string> {
  const index = JSON.parse(fs.readFileSync(path.join(CTF, dir, 'artifact-index.json'), 'utf8'));
  const a = index.artifacts[0];
  const manifest = blobOf(dir, a.digest);
  const ref = `${reg.host}/${base}/${a.repository}`;
  const m = JSON.parse(manifest.toString());
  for (const d of [m.config, ...m.layers]) await client.pushBlob(ref, blobOf(dir, d.digest), d.digest, d.size);
  const { digest } = await client.putManifest(`${ref}:${a.tag}`, manifest, m.mediaType);
  t.equal(digest, a.digest, `${dir}: manifest pushed unchanged`);
  return a.digest;
}

const cdOf = async (dir: string) => {
  const m = JSON.parse(blobOf(dir, JSON.parse(fs.readFileSync(path.join(CTF, dir, 'artifact-index.json'), 'utf8')).artifacts[0].digest).toString());
  return parseDescriptor((await readTar(blobOf(dir, m.layers[0].digest))).get('component-descriptor.yaml')!);
};

t.test('ctf-compat/01: the Go library layout reads back; the local blob matches its digest', async (t) => {
  const digest = await pushCtf(t, '01/transport-archive', 'ctf01');
  const repo = new OcmRepository(client, `http://${reg.host}/ctf01`);
  t.same(await repo.listVersions(COMPONENT), ['1.0.0']);
  const cv = await repo.getComponentVersion(COMPONENT, '1.0.0');
  t.equal(cv.manifestDigest, digest);
  t.equal(cv.manifest.config.mediaType, OCM_CONFIG_MEDIA_TYPE);
  t.equal(cv.descriptor.component.name, COMPONENT);
  t.equal(cv.descriptor.component.creationTime, '2025-03-18T09:44:42Z');
  t.match(cv.raw.toString(), /^component:\n {2}componentReferences: \[\]\n/);
  const res = findResource(cv.descriptor, 'resource')!;
  const content = await repo.getResourceContent(cv, res);
  t.equal(content.data.toString(), 'test');
  t.equal(content.mediaType, 'application/octet-stream');
  t.equal(digestOf(content.data), res.access.localReference);
  await repo.checkLocalBlobDigest(cv, res);
});

t.test('ctf-compat/02: a Helm chart as OCI layout local blob, and the same as an OCI artifact', async (t) => {
  await pushCtf(t, '02/with-resource', 'ctf02');
  const repo = new OcmRepository(client, `oci://${reg.host}/ctf02/`);
  const cv = await repo.getComponentVersion(COMPONENT, '1.0.0');
  const chart = findResource(cv.descriptor, 'mychart')!;
  const content = await repo.getResourceContent(cv, chart);
  t.equal(content.mediaType, 'application/vnd.oci.image.manifest.v1+tar+gzip');
  const d = await ociArtifactDigest(content.data);
  t.equal(d.value, '62be4af3382a4493cb7f1dd4ec47bcb28f1863b615fc9e4a1dceefbe93898dd0');
  t.same(d, chart.digest);
  await repo.checkLocalBlobDigest(cv, chart); // the same, as the blob streams (the layout's main manifest found in the stream)
  await t.rejects(repo.checkLocalBlobDigest(cv, { ...chart, digest: { ...chart.digest!, value: '0'.repeat(64) } }), { code: 'DIGEST_MISMATCH', message: /digest mismatch for resource "mychart"/ });

  // the chart inside that layout, pushed as an OCI artifact; the without-resource descriptor points at it
  const layout = await readTar(content.data);
  const manifest = layout.get('blobs/sha256.62be4af3382a4493cb7f1dd4ec47bcb28f1863b615fc9e4a1dceefbe93898dd0')!;
  const image = `${reg.host}/jakobmoellerdev/podinfo/podinfo`;
  for (const l of [JSON.parse(manifest.toString()).config, ...JSON.parse(manifest.toString()).layers]) {
    await client.pushBlob(image, layout.get(`blobs/${l.digest.replace(':', '.')}`)!, l.digest, l.size);
  }
  await client.putManifest(`${image}:6.7.1`, manifest, MEDIA_TYPES.ociManifest);
  await pushCtf(t, '02/without-resource', 'ctf02b');
  const repoB = new OcmRepository(client, `${reg.host}/ctf02b`);
  const cvB = await repoB.getComponentVersion(COMPONENT, '1.0.0');
  const ext = findResource(cvB.descriptor, 'mychart')!;
  t.equal(ext.access.imageReference, 'ghcr.io/jakobmoellerdev/podinfo/podinfo:6.7.1');
  const local = { ...ext, access: { ...ext.access, imageReference: `${image}:6.7.1` } };
  const art = await repoB.getResourceContent(cvB, local);
  t.equal(art.manifestDigest, 'sha256:62be4af3382a4493cb7f1dd4ec47bcb28f1863b615fc9e4a1dceefbe93898dd0');
  t.ok(art.data.equals(manifest));
  t.equal(art.mediaType, MEDIA_TYPES.ociManifest);
});

t.test('pushComponentVersion lays out a component version byte for byte as the Go library', async (t) => {
  for (const [dir, digest] of [
    ['01/transport-archive', 'sha256:6d776ef2c9c156ca260a67b335435f4ef20a1c8e777afee89148b06d5688e753'],
    ['02/with-resource', 'sha256:da4d93b2c00c3f2c3946e120adff15a2f9a7a5bb15a5109691e0f6492a0058c9'],
    ['02/without-resource', 'sha256:cb36198f6d90bc80826a79acfc1d88ee8d7af76882ed8e5f2e4a05e559f8c921'],
  ]) {
    const cd = await cdOf(dir);
    const blobs = new Map<string, { data: Buffer; mediaType: string }>();
    for (const r of cd.component.resources) {
      if (r.access.type === 'localBlob') blobs.set(String(r.access.localReference), { data: blobOf(dir, String(r.access.localReference)), mediaType: String(r.access.mediaType) });
    }
    const base = `layout/${dir.replace(/\W/g, '')}`;
    const repo = new OcmRepository(client, `${reg.host}/${base}`);
    const pushed = await repo.pushComponentVersion(cd, blobs, { creator: GO_CREATOR });
    t.equal(pushed.manifestDigest, digest, dir);
    t.equal(pushed.ref, `${reg.host}/${base}/component-descriptors/${COMPONENT}:1.0.0`);
    await t.rejects(repo.pushComponentVersion(cd, blobs), { code: 'EXISTS', message: /already exists/ });
    t.equal((await repo.pushComponentVersion(cd, blobs, { creator: GO_CREATOR, overwrite: true })).manifestDigest, digest);
  }
  const cd = await cdOf('01/transport-archive');
  await t.rejects(new OcmRepository(client, `${reg.host}/missing`).pushComponentVersion(cd, new Map()), { message: /refers to local blob sha256:9f86d0.*not among the blobs/ });
});

/** A minimal component version (no resources, or the given ones), pushed. */
async function pushSimple(repo: OcmRepository, name: string, version: string, more: Partial<ComponentDescriptor['component']> = {}, blobs = new Map()) {
  const cd: ComponentDescriptor = {
    meta: { schemaVersion: 'v2' },
    component: { name, version, provider: 'acme.org', repositoryContexts: [], resources: [], sources: [], componentReferences: [], ...more },
  };
  await repo.pushComponentVersion(cd, blobs);
  return cd;
}

t.test('resolveVersion: exact versions and semver ranges, newest match', async (t) => {
  const repo = new OcmRepository(client, `${reg.host}/versions`);
  const name = 'acme.org/versioned';
  for (const v of ['0.9.0', '0.9.3', 'v0.9.5', '0.10.0', '1.2.0', '1.5.0+build.7', '2.0.0', '2.1.0-rc.1', 'latest']) await pushSimple(repo, name, v);
  t.same(await repo.listVersions(name), ['0.9.0', '0.9.3', 'v0.9.5', '0.10.0', '1.2.0', '1.5.0+build.7', '2.0.0', '2.1.0-rc.1', 'latest']);
  t.equal(await repo.resolveVersion(name, 'v0.9.x'), 'v0.9.5');
  t.equal(await repo.resolveVersion(name, '0.9.x'), 'v0.9.5');
  t.equal(await repo.resolveVersion(name, '>=1.2 <2'), '1.5.0+build.7');
  t.equal(await repo.resolveVersion(name, '~0.9.0 || ^0.10'), '0.10.0');
  t.equal(await repo.resolveVersion(name, '1.2.0'), '1.2.0');
  t.equal(await repo.resolveVersion(name, 'v2.0.0'), '2.0.0');
  t.equal(await repo.resolveVersion(name, '*'), '2.0.0', 'no pre-releases unless asked for');
  t.equal(await repo.resolveVersion(name, '>=2.1.0-rc.0'), '2.1.0-rc.1');
  t.equal(await repo.resolveVersion(name, 'latest'), 'latest', 'an exact tag that is not semver');
  t.equal(await repo.resolveVersion(name, '1.5.0+build.7'), '1.5.0+build.7');
  t.equal(await repo.resolveVersion(name, 'v1.5.0+build.7'), '1.5.0+build.7', 'a leading v is the same version');
  await t.rejects(repo.resolveVersion(name, '1.5.0+build.6'), { code: 'NO_MATCH', message: /version 1.5.0\+build.6 of component .* is not in/ }, 'build metadata is part of an exact version');
  await t.rejects(repo.resolveVersion(name, '1.5.0'), { code: 'NO_MATCH' }, 'an exact version without build metadata is not the build');
  t.equal(await repo.resolveVersion(name, '1.5.x'), '1.5.0+build.7', 'a constraint ignores build metadata, as semver has it');
  t.equal((await repo.getComponentVersion(name, '1.5.0+build.7')).descriptor.component.version, '1.5.0+build.7', '+ stored as .build-');
  await t.rejects(repo.resolveVersion(name, '>=3'), { code: 'NO_MATCH', message: /no version of component acme.org\/versioned in .* matches ">=3" \(versions: 0.9.0, .*\)/ });
  await t.rejects(repo.resolveVersion(name, 'not a version'), { code: 'NO_MATCH', message: /neither a version .* nor a semver constraint/ });
  await t.rejects(repo.resolveVersion('acme.org/unknown', '1.x'), { code: 'NOT_FOUND', message: /component acme.org\/unknown is not in/ });
});

t.test('resolveReferences: recursive, each once, cycle-safe, digests checked', async (t) => {
  const repo = new OcmRepository(client, `${reg.host}/refs`);
  const ref = (n: string, v = '1.0.0', digest?: any) => ({ name: n.split('/')[1], componentName: n, version: v, ...(digest && { digest }) });
  await pushSimple(repo, 'acme.org/c', '1.0.0', { componentReferences: [ref('acme.org/a')] });
  const b = await pushSimple(repo, 'acme.org/b', '1.0.0', { componentReferences: [ref('acme.org/c')] });
  await pushSimple(repo, 'acme.org/a', '1.0.0', { componentReferences: [ref('acme.org/b', '1.0.0', descriptorDigest(b, 'jsonNormalisation/v3')), ref('acme.org/c')] });
  const a = await repo.getComponentVersion('acme.org/a', '1.0.0');
  const refs = await repo.resolveReferences(a);
  t.same(refs.map((r) => r.descriptor.component.name), ['acme.org/b', 'acme.org/c']);
  t.match(refs[0].manifestDigest, /^sha256:/);
  await t.rejects(repo.resolveReferences(a, { maxDepth: 0 }), { message: /nest deeper than 0 levels/ });

  await pushSimple(repo, 'acme.org/bad', '1.0.0', { componentReferences: [ref('acme.org/b', '1.0.0', { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'jsonNormalisation/v3', value: '0'.repeat(64) })] });
  await t.rejects(repo.resolveReferences(await repo.getComponentVersion('acme.org/bad', '1.0.0')), { code: 'DIGEST_MISMATCH', message: /digest mismatch: acme.org\/bad:1.0.0 references acme.org\/b:1.0.0/ });
  await pushSimple(repo, 'acme.org/dangling', '1.0.0', { componentReferences: [ref('acme.org/nowhere')] });
  await t.rejects(repo.resolveReferences(await repo.getComponentVersion('acme.org/dangling', '1.0.0')), { code: 'NOT_FOUND', message: /acme.org\/nowhere:1.0.0 .* does not exist/ });
});

t.test('failures: missing, not OCM, changed content, plain YAML descriptor layer', async (t) => {
  const repo = new OcmRepository(client, `${reg.host}/fail`);
  await t.rejects(repo.getComponentVersion('acme.org/none', '1.0.0'), { code: 'NOT_FOUND', message: /component version acme.org\/none:1.0.0 in .*\/fail does not exist/ });

  const plainRef = `${reg.host}/fail/component-descriptors/acme.org/image`;
  const cfg = Buffer.from('{}');
  await client.pushBlob(plainRef, cfg);
  await client.putManifest(`${plainRef}:1.0.0`, { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: digestOf(cfg), size: 2 }, layers: [] }, MEDIA_TYPES.ociManifest);
  await t.rejects(repo.getComponentVersion('acme.org/image', '1.0.0'), { code: 'NOT_OCM', message: /is not an OCM component version: its config media type is "application\/vnd.oci.image.config.v1\+json"/ });

  // a descriptor whose resource digest does not match the stored blob
  const data = Buffer.from('the real content');
  const localReference = digestOf(data);
  await pushSimple(repo, 'acme.org/changed', '1.0.0', {
    resources: [{ name: 'r', version: '1.0.0', type: 'blob', relation: 'local', access: { type: 'localBlob', localReference, mediaType: 'text/plain' }, digest: { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'genericBlobDigest/v1', value: '1'.repeat(64) } }],
  }, new Map([[localReference, { data, mediaType: 'text/plain' }]]));
  const cv = await repo.getComponentVersion('acme.org/changed', '1.0.0');
  await t.rejects(repo.getResourceContent(cv, cv.descriptor.component.resources[0]), { code: 'DIGEST_MISMATCH', message: /resource "r" of acme.org\/changed:1.0.0: digest mismatch for resource "r"/ });
  await t.rejects(repo.checkLocalBlobDigest(cv, cv.descriptor.component.resources[0]), { code: 'DIGEST_MISMATCH', message: /resource "r" of acme.org\/changed:1.0.0: digest mismatch for resource "r"/ }, 'streamed: the same');
  await t.rejects(repo.checkLocalBlobDigest(cv, cv.descriptor.component.resources[0], { maxBytes: 4 }), { code: 'TOO_LARGE' }, 'streamed: no more than maxBytes');
  const noDigest = { ...cv.descriptor.component.resources[0], digest: undefined };
  t.equal((await repo.getResourceContent(cv, noDigest)).data.toString(), 'the real content');
  await t.rejects(repo.getResourceContent(cv, noDigest, { requireDigest: true }), { message: /has no digest/ });
  await t.rejects(repo.checkLocalBlobDigest(cv, noDigest), { message: /has no digest/ });
  await t.rejects(repo.getResourceContent(cv, { ...noDigest, access: { type: 'none' } }), { message: /no content \(access type none\)/ });
  await t.rejects(repo.getResourceContent(cv, { ...noDigest, access: { type: 'gitHub' } }), { message: /access type "gitHub" is not supported/ });

  // a plain YAML descriptor layer (no tar), as older tools wrote it
  const yamlRef = `${reg.host}/fail/component-descriptors/acme.org/plain`;
  const yaml = Buffer.from('meta:\n  schemaVersion: v2\ncomponent:\n  name: acme.org/plain\n  version: 0.1.0\n  provider: acme\n  repositoryContexts: []\n  resources: []\n  sources: []\n  componentReferences: []\n');
  const layer = { mediaType: 'application/vnd.ocm.software.component-descriptor.v2+yaml', digest: digestOf(yaml), size: yaml.length };
  const config = Buffer.from(JSON.stringify({ componentDescriptorLayer: layer }));
  await client.pushBlob(yamlRef, yaml);
  await client.pushBlob(yamlRef, config);
  await client.putManifest(`${yamlRef}:0.1.0`, { schemaVersion: 2, mediaType: MEDIA_TYPES.ociManifest, config: { mediaType: OCM_CONFIG_MEDIA_TYPE, digest: digestOf(config), size: config.length }, layers: [layer] }, MEDIA_TYPES.ociManifest);
  t.equal((await repo.getComponentVersion('acme.org/plain', '0.1.0')).descriptor.component.provider, 'acme');
  t.throws(() => repo.refOf('Acme.org/Upper'), { message: /cannot be stored in an OCI registry/ });
});
