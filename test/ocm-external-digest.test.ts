// Issue 12: `verified: true` covers resources in other registries too (an image, an ociBlob): the
// OCMComponent checks each against the digest its descriptor records. Component versions are
// published with the project's own publisher into one docker-registry, the image and the blob live
// in a second one; the objects are driven with kubectl and the bytes compared where they matter.
import { createHash, generateKeyPairSync } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { type ComponentSpec, publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { digestOf, OciClient } from '../registry/client.js';
import { minimalImage, pushImage } from '../registry/image.js';
import { type Distribution, startDistribution } from './helpers/distribution.js';
import { kubectlJson, startServer, tempDir, type TestServer, waitFor, yamlDocs } from './helpers/server.js';

const API = 'delivery.ocm.software/v1alpha1';
const signer = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
const sign = { sign: { name: 'acme', privateKeyPem: signer.privateKey } };
let reg: Distribution; // the components
let ext: Distribution; // the image and the blob
let s: TestServer;
let repo: OcmRepository;
const client = new OciClient({ insecureHttp: true, retries: 0 });
const work = tempDir('ocm-external-');

const json = (args: string[]) => kubectlJson(s, args);
const cond = (o: any, type = 'Ready') => o?.status?.conditions?.find((c: { type: string }) => c.type === type);
async function apply(...objs: unknown[]) {
  const r = await s.kubectl(['apply', '-f', '-'], { input: yamlDocs(...objs) });
  if (r.code !== 0) throw new Error(r.stderr);
}
async function namespace(ns: string) {
  await s.kubectl(['create', 'namespace', ns]);
  const r = await s.kubectl(['create', 'secret', 'generic', 'acme-key', '-n', ns, `--from-literal=acme=${signer.publicKey}`]);
  if (r.code !== 0) throw new Error(r.stderr);
}
const objects = (ns: string, component: string, version = '1.0.0') => [
  {
    apiVersion: API,
    kind: 'OCMComponent',
    metadata: { name: 'comp', namespace: ns },
    spec: { interval: '2s', name: component, version, repository: { url: `http://${reg.host}/ocm` }, verify: [{ signature: 'acme', secretRef: { name: 'acme-key' } }] },
  },
  { apiVersion: API, kind: 'OCMResource', metadata: { name: 'config', namespace: ns }, spec: { resource: 'config' } },
  { apiVersion: API, kind: 'Source', metadata: { name: 'config', namespace: ns }, spec: { componentRef: { name: 'comp' }, providerRef: { apiVersion: API, kind: 'OCMResource', name: 'config' } } },
];
const get = (kind: string, ns: string, name = 'comp') => json(['get', kind, name, '-n', ns]);
/** Waits for the OCMComponent's Verified condition with `reason` (at the current generation). */
const verifiedReason = (ns: string, reason: string, ms?: number) =>
  waitFor(`ocmcomponent ${ns}/comp Verified ${reason}`, async () => {
    const o = await get('ocmcomponent', ns);
    return cond(o, 'Verified')?.reason === reason && cond(o, 'Verified')?.observedGeneration === o.metadata.generation ? o : undefined;
  }, ms);
const config = (text: string) => ({ name: 'config', type: 'blob', input: { type: 'utf8' as const, text, mediaType: 'text/plain' } });

const appImage = minimalImage({ path: 'app/version', content: '1.0.0\n' });
const otherImage = minimalImage({ path: 'app/version', content: 'something else\n' });

t.before(async () => {
  reg = await startDistribution();
  ext = await startDistribution();
  repo = new OcmRepository(client, `http://${reg.host}/ocm`);
  s = await startServer({ reconcilers: 'all', args: ['--allow-private-upstreams'] }); // both registries are on 127.0.0.1
  await pushImage(client, `${ext.host}/acme/app:1.0.0`, appImage);
});
t.teardown(async () => {
  await s?.stop();
  await reg?.stop();
  await ext?.stop();
});

t.test('an image in another registry: its manifest digest is part of verified; a moved tag is not verified and nothing downstream runs', async (t) => {
  const spec: ComponentSpec = {
    name: 'ocm.software/ext/image',
    version: '1.0.0',
    provider: 'acme',
    resources: [config('config of the image component\n'), { name: 'image', type: 'ociImage', relation: 'external', access: { type: 'ociArtifact', imageReference: `${ext.host}/acme/app:1.0.0` } }],
  };
  const pub = await publish(repo, spec, work, sign);
  t.equal(pub.descriptor.component.resources[1].digest?.value, appImage.digest.split(':')[1], 'publish recorded the manifest digest of the pushed image');
  await namespace('img');
  await apply(...objects('img', spec.name));

  // (a) the right digest: verified, Ready, and the Source delivers.
  const ok = await verifiedReason('img', 'Succeeded');
  t.equal(ok.status.verified, true);
  t.match(cond(ok, 'Verified').message, /1 external resource/, 'the image counts among what verified');
  t.equal(cond(ok).status, 'True');
  const src = await waitFor('the Source', async () => (cond(await get('source', 'img', 'config'))?.status === 'True' ? get('source', 'img', 'config') : undefined));

  // (b) the tag pushed again with another manifest: not verified, the reason names the resource.
  await pushImage(client, `${ext.host}/acme/app:1.0.0`, otherImage);
  const served = await client.getManifest(`${ext.host}/acme/app:1.0.0`);
  t.not(digestOf(served.body), appImage.digest, 'the registry serves other manifest bytes under the tag now');
  const bad = await verifiedReason('img', 'DigestMismatch');
  t.equal(bad.status.verified, false);
  t.match(cond(bad, 'Verified').message, new RegExp(`resource "image".*${otherImage.digest}.*${appImage.digest}`));
  t.equal(cond(bad).status, 'False');
  t.equal(cond(bad, 'Stalled')?.status, 'True', 'Stalled: retrying does not change the bytes');
  t.equal(cond(bad, 'Stalled')?.observedGeneration, bad.metadata.generation);
  const refused = await waitFor('the Source to refuse', async () => {
    const o = await get('source', 'img', 'config');
    return cond(o)?.reason === 'ComponentNotVerified' ? o : undefined;
  });
  t.match(cond(refused).message, /resource "image"/);
  t.equal(refused.status.snapshot, src.status.snapshot, 'no new snapshot');
  const describe = await s.kubectl(['describe', 'ocmcomponent', 'comp', '-n', 'img']);
  t.match(describe.stdout, /DigestMismatch/);
  t.match(describe.stdout, /resource "image"/, 'kubectl describe names the resource');

  // The original manifest back under the tag: verified again.
  await pushImage(client, `${ext.host}/acme/app:1.0.0`, appImage);
  const back = await verifiedReason('img', 'Succeeded');
  t.equal(back.status.verified, true);
  t.notOk(cond(back, 'Stalled'), 'no longer Stalled');

  // A digest in the reference must be the recorded one too.
  await publish(repo, { ...spec, version: '1.0.1', resources: [spec.resources![0], { ...spec.resources![1], access: { type: 'ociArtifact', imageReference: `${ext.host}/acme/app@${otherImage.digest}` }, digest: { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'ociArtifactDigest/v1', value: appImage.digest.split(':')[1] } }] }, work, sign);
  await pushImage(client, `${ext.host}/acme/app:other`, otherImage);
  await apply({ ...objects('img', spec.name)[0], spec: { ...objects('img', spec.name)[0].spec, version: '1.0.1' } });
  const byDigest = await verifiedReason('img', 'DigestMismatch');
  t.match(cond(byDigest, 'Verified').message, /resource "image".*names manifest/);

  // An older descriptor's genericBlobDigest/v1 over the manifest bytes is the same hash: verified.
  await publish(repo, { ...spec, version: '1.0.2', resources: [spec.resources![0], { ...spec.resources![1], digest: { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'genericBlobDigest/v1', value: appImage.digest.split(':')[1] } }] }, work, sign);
  await apply({ ...objects('img', spec.name)[0], spec: { ...objects('img', spec.name)[0].spec, version: '1.0.2' } });
  const generic = await verifiedReason('img', 'Succeeded');
  t.equal(generic.status.resolvedVersion, '1.0.2');
  t.match(cond(generic, 'Verified').message, /1 external resource/);
});

t.test('the image registry down: not verified, transient (Reconciling, not Stalled), and verified again once it is back', async (t) => {
  const spec: ComponentSpec = {
    name: 'ocm.software/ext/down',
    version: '1.0.0',
    provider: 'acme',
    resources: [config('config of the down component\n'), { name: 'image', type: 'ociImage', relation: 'external', access: { type: 'ociArtifact', imageReference: `${ext.host}/acme/app:1.0.0` } }],
  };
  await publish(repo, spec, work, sign);
  await ext.kill();
  await namespace('down');
  await apply(...objects('down', spec.name));
  const down = await verifiedReason('down', 'ResourceUnreachable');
  t.equal(down.status.verified, false);
  t.match(cond(down, 'Verified').message, new RegExp(`resource "image".*${ext.host}/acme/app:1\\.0\\.0`), 'names the resource and where it is');
  t.notOk(cond(down, 'Stalled'), 'not Stalled: retrying helps');
  t.equal(cond(down, 'Reconciling')?.status, 'True');
  t.equal(cond(down, 'Reconciling')?.reason, 'ProgressingWithRetry');
  const src = await waitFor('the Source to refuse', async () => (cond(await get('source', 'down', 'config'))?.reason === 'ComponentNotVerified' ? true : undefined));
  t.ok(src);
  t.equal((await json(['get', 'snapshots', '-n', 'down'])).items.length, 0, 'nothing downstream');

  ext = await startDistribution({ dir: ext.dir, port: ext.port });
  const up = await verifiedReason('down', 'Succeeded', 120_000);
  t.equal(up.status.verified, true);
  t.notOk(cond(up, 'Reconciling'));
  await waitFor('the Source', async () => (cond(await get('source', 'down', 'config'))?.status === 'True' ? true : undefined));
});

t.test('an ociBlob in another registry: its access digest must be the resource digest, and the bytes must hash to it', async (t) => {
  const data = Buffer.from('blob content, 1.0.0\n');
  const pushed = await client.pushBlob(`${ext.host}/acme/blobs`, data, digestOf(data), data.length);
  const blob = (digest: string, value = digest): ComponentSpec['resources'] => [
    config('config of the blob component\n'),
    { name: 'data', type: 'blob', relation: 'external', access: { type: 'ociBlob', ref: `${ext.host}/acme/blobs`, digest, mediaType: 'text/plain', size: data.length }, digest: { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'genericBlobDigest/v1', value: value.split(':')[1] } },
  ];
  await namespace('blob');
  await publish(repo, { name: 'ocm.software/ext/blob', version: '1.0.0', provider: 'acme', resources: blob(pushed.digest) }, work, sign);
  await apply(...objects('blob', 'ocm.software/ext/blob'));
  const ok = await verifiedReason('blob', 'Succeeded');
  t.match(cond(ok, 'Verified').message, /1 external resource/);

  // The descriptor records another digest than the access names.
  const wrong = digestOf(Buffer.from('other bytes\n'));
  await publish(repo, { name: 'ocm.software/ext/blob', version: '1.0.1', provider: 'acme', resources: blob(pushed.digest, wrong) }, work, sign);
  await apply({ ...objects('blob', 'ocm.software/ext/blob')[0], spec: { ...objects('blob', 'ocm.software/ext/blob')[0].spec, version: '1.0.1' } });
  const differs = await verifiedReason('blob', 'DigestMismatch');
  t.match(cond(differs, 'Verified').message, new RegExp(`resource "data".*${pushed.digest}.*${wrong}`));

  // The registry serves other bytes for the digest (its storage changed behind it): the stream's hash says so.
  await apply({ ...objects('blob', 'ocm.software/ext/blob')[0], spec: { ...objects('blob', 'ocm.software/ext/blob')[0].spec, version: '1.0.0' } });
  await verifiedReason('blob', 'Succeeded');
  const hex = pushed.digest.split(':')[1];
  const file = path.join(ext.dir, 'storage', 'docker', 'registry', 'v2', 'blobs', 'sha256', hex.slice(0, 2), hex, 'data');
  const tampered = Buffer.from(data.toString('utf8').replace('1.0.0', '6.6.6'));
  fs.writeFileSync(file, tampered);
  const res = await fetch(`http://${ext.host}/v2/acme/blobs/blobs/${pushed.digest}`);
  const servedHash = `sha256:${createHash('sha256').update(Buffer.from(await res.arrayBuffer())).digest('hex')}`;
  t.not(servedHash, pushed.digest, 'the registry now serves bytes of another digest');
  const mismatch = await verifiedReason('blob', 'DigestMismatch');
  t.equal(mismatch.status.verified, false);
  t.match(cond(mismatch, 'Verified').message, new RegExp(`resource "data".*${servedHash}`));
  await waitFor('the Source to refuse', async () => (cond(await get('source', 'blob', 'config'))?.reason === 'ComponentNotVerified' ? true : undefined));
});
