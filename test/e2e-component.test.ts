// End to end: a signed podinfo-like component published to Debian's docker-registry with the
// project's own publisher; OCMComponent + Source + OCMResource applied with real kubectl; the
// Snapshot's content equals the resource byte for byte; every verification failure is a clear
// condition and produces nothing downstream; a new version flows through by itself.
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { type ComponentSpec, publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { minimalImage, pushImage } from '../registry/image.js';
import { pullSnapshot } from '../registry/snapshot.js';
import { archiveToFiles } from '../providers/content.js';
import { type Distribution, startDistribution } from './helpers/distribution.js';
import { waitFor, kubectlJson, yamlDocs, startServer, type TestServer } from './helpers/server.js';

const keys = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
const signer = keys();
const stranger = keys();

let reg: Distribution;
let s: TestServer;
let repo: OcmRepository;
const work = mkdtempSync(join(tmpdir(), 'e2e-component-'));
const manifests = join(work, 'manifests');

const deployment = (image: string) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: podinfo
spec:
  template:
    spec:
      containers:
      - name: podinfo
        image: ${image}
`;

const spec = (version: string, name = 'ocm.software/demo/podinfo'): ComponentSpec => ({
  name,
  version,
  provider: 'acme',
  resources: [
    // A minimal image in the test's registry (pushed in t.before): publishing records its manifest
    // digest, and the OCMComponent checks it.
    { name: 'image', version, type: 'ociImage', relation: 'external', access: { type: 'ociArtifact', imageReference: `${reg.host}/stefanprodan/podinfo:${version}` } },
    { name: 'manifests', version, type: 'kustomize.ocm.fluxcd.io', input: { type: 'dir', path: 'manifests' } },
    { name: 'config', version, type: 'configdata.ocm.software', input: { type: 'utf8', text: 'kind: ConfigData\n', mediaType: 'application/yaml' } },
  ],
});

const component = (name: string, ns: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'delivery.ocm.software/v1alpha1',
  kind: 'OCMComponent',
  metadata: { name, namespace: ns },
  spec: { interval: '2s', name: 'ocm.software/demo/podinfo', version: '>=6.0.0', repository: { url: `http://${reg.host}/ocm` }, ...extra },
});
const source = (name: string, ns: string, comp: string, resource: string) => [
  { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMResource', metadata: { name: `${name}-res`, namespace: ns }, spec: { resource } },
  {
    apiVersion: 'delivery.ocm.software/v1alpha1',
    kind: 'Source',
    metadata: { name, namespace: ns },
    spec: { componentRef: { name: comp }, providerRef: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMResource', name: `${name}-res` } },
  },
];
const yaml = yamlDocs;

const json = (args: string[]) => kubectlJson(s, args);


t.before(async () => {
  mkdirSync(manifests);
  writeFileSync(join(manifests, 'deployment.yaml'), deployment('ghcr.io/stefanprodan/podinfo:6.8.0'));
  writeFileSync(join(manifests, 'kustomization.yaml'), 'resources:\n- deployment.yaml\n');
  reg = await startDistribution();
  repo = new OcmRepository(new OciClient({ insecureHttp: true }), `http://${reg.host}/ocm`);
  for (const v of ['6.8.0', '6.8.1', '7.0.0', '8.0.0']) await pushImage(repo.client, `${reg.host}/stefanprodan/podinfo:${v}`, minimalImage({ path: 'VERSION', content: `${v}\n` }));
  await publish(repo, spec('6.8.0'), work, { sign: { name: 'acme', privateKeyPem: signer.privateKey } });
  s = await startServer({ reconcilers: 'all', args: ['--allow-private-upstreams'] }); // the upstream registry is on 127.0.0.1
  for (const ns of ['demo', 'wrongkey', 'tampered']) await s.kubectl(['create', 'namespace', ns]);
  for (const ns of ['demo', 'wrongkey', 'tampered'])
    await s.kubectl(['create', 'secret', 'generic', 'acme-key', '-n', ns, `--from-literal=acme=${ns === 'wrongkey' ? stranger.publicKey : signer.publicKey}`]);
});
t.teardown(async () => {
  await s?.stop();
  await reg?.stop();
});

t.test('a signed component version becomes a verified ComponentDescriptor and a Snapshot equal to the resource', async (t) => {
  const apply = await s.kubectl(['apply', '-f', '-'], {
    input: yaml(component('podinfo', 'demo', { verify: [{ signature: 'acme', secretRef: { name: 'acme-key' } }] }), ...source('manifests', 'demo', 'podinfo', 'manifests')),
  });
  t.equal(apply.code, 0, apply.stderr);
  const wait = await s.kubectl(['wait', '--for=condition=Ready', 'source/manifests', 'ocmcomponent/podinfo', '-n', 'demo', '--timeout=60s']);
  t.equal(wait.code, 0, wait.stderr + wait.stdout);

  const comp = await json(['get', 'ocmcomponent', 'podinfo', '-n', 'demo']);
  t.equal(comp.status.resolvedVersion, '6.8.0');
  t.equal(comp.status.verified, true);
  t.equal(comp.status.observedGeneration, comp.metadata.generation);
  const cd = await json(['get', 'componentdescriptor', comp.status.componentDescriptor.name, '-n', 'demo']);
  t.equal(cd.spec.name, 'ocm.software/demo/podinfo');
  t.same(cd.spec.resources.map((r: { name: string }) => r.name), ['image', 'manifests', 'config']);
  t.equal(cd.metadata.ownerReferences[0].uid, comp.metadata.uid, 'the descriptor object is owned by the OCMComponent');

  const src = await json(['get', 'source', 'manifests', '-n', 'demo']);
  const res = await json(['get', 'ocmresource', 'manifests-res', '-n', 'demo']);
  t.equal(src.status.ready, true);
  t.equal(res.status.ready, true, 'the provider is accepted (its own status, written by its own reconciler)');
  t.notOk(res.status.snapshot, 'a provider may serve several Sources: the snapshot is on the Source only');
  const snap = await json(['get', 'snapshot', src.status.snapshot, '-n', 'demo']);
  t.match(snap.status.repositoryURL, /\/demo\/podinfo\/source\/manifests\/manifests-res$/);
  t.match(snap.status.tag, /^\d{10}$/, 'tagged with a unix timestamp');
  t.equal(snap.status.digest, src.status.digest);
  t.same(snap.status.chain.map((c: { kind: string }) => c.kind), ['OCMComponent', 'Source']);
  t.equal(snap.metadata.ownerReferences[0].uid, src.metadata.uid, 'the Snapshot is owned by its Source');

  const client = new OciClient({
    ca: await readFile(join(s.dataDir, 'certs', 'ca.crt'), 'utf8'),
    cert: await readFile(join(s.dataDir, 'certs', 'admin.crt'), 'utf8'),
    key: await readFile(join(s.dataDir, 'certs', 'admin.key'), 'utf8'),
  });
  const tgz = await pullSnapshot(client, `${snap.status.repositoryURL}:${snap.status.tag}`, { expectedDigest: snap.status.digest });
  const files = await archiveToFiles(tgz);
  t.same(Object.keys(files).sort(), ['deployment.yaml', 'kustomization.yaml']);
  t.equal(files['deployment.yaml'].toString(), await readFile(join(manifests, 'deployment.yaml'), 'utf8'), 'byte for byte');

  const d = await s.kubectl(['describe', 'snapshot', src.status.snapshot, '-n', 'demo']);
  t.match(d.stdout, /Component Version:\s+6\.8\.0/);
  t.match(d.stdout, /2 files: deployment\.yaml, kustomization\.yaml/);
  t.match(d.stdout, /Digest:\s+sha256:/);
  const ev = await s.kubectl(['describe', 'ocmcomponent', 'podinfo', '-n', 'demo']);
  t.match(ev.stdout, /Normal\s+Succeeded\s+.*signature acme verified/, 'an event for the transition to Ready');
});

t.test('unchanged input gives no new snapshot; a new version flows through by itself', async (t) => {
  const before = await json(['get', 'source', 'manifests', '-n', 'demo']);
  await new Promise((r) => setTimeout(r, 3000)); // more than the component's interval
  const same = await json(['get', 'source', 'manifests', '-n', 'demo']);
  t.equal(same.status.snapshot, before.status.snapshot, 'no new snapshot for the same input');
  t.equal((await json(['get', 'snapshots', '-n', 'demo'])).items.length, 1);

  writeFileSync(join(manifests, 'deployment.yaml'), deployment('ghcr.io/stefanprodan/podinfo:6.8.1'));
  await publish(repo, spec('6.8.1'), work, { sign: { name: 'acme', privateKeyPem: signer.privateKey } });
  const after = await waitFor('the 6.8.1 snapshot', async () => {
    const src = await json(['get', 'source', 'manifests', '-n', 'demo']);
    return src.status.componentVersion === '6.8.1' && src.status.snapshot !== before.status.snapshot ? src : undefined;
  });
  t.equal(after.status.ready, true);
  const snap = await json(['get', 'snapshot', after.status.snapshot, '-n', 'demo']);
  t.equal(snap.spec.identity.componentVersion, '6.8.1');
  t.equal((await json(['get', 'ocmcomponent', 'podinfo', '-n', 'demo'])).status.resolvedVersion, '6.8.1');
});

t.test('a wrong public key fails verification with a clear condition and nothing downstream', async (t) => {
  const apply = await s.kubectl(['apply', '-f', '-'], {
    input: yaml(component('podinfo', 'wrongkey', { verify: [{ signature: 'acme', secretRef: { name: 'acme-key' } }] }), ...source('manifests', 'wrongkey', 'podinfo', 'manifests')),
  });
  t.equal(apply.code, 0, apply.stderr);
  const comp = await waitFor('a VerificationFailed condition', async () => {
    const c = await json(['get', 'ocmcomponent', 'podinfo', '-n', 'wrongkey']);
    return c.status?.conditions?.find((x: { reason: string }) => x.reason === 'VerificationFailed') ? c : undefined;
  });
  const ready = comp.status.conditions.find((c: { type: string }) => c.type === 'Ready');
  t.equal(ready.status, 'False');
  t.match(ready.message, /signature acme does not verify/);
  t.equal(comp.status.verified, false);
  t.equal((await json(['get', 'componentdescriptors', '-n', 'wrongkey'])).items.length, 0, 'no ComponentDescriptor');
  const src = await waitFor('the Source to report its component', async () => {
    const x = await json(['get', 'source', 'manifests', '-n', 'wrongkey']);
    return x.status?.conditions ? x : undefined;
  });
  t.equal(src.status.conditions[0].reason, 'ComponentNotVerified');
  t.equal((await json(['get', 'snapshots', '-n', 'wrongkey'])).items.length, 0, 'no Snapshot');
});

t.test('a tampered descriptor fails verification', async (t) => {
  // Re-push 7.0.0 with a changed resource version but the old signature.
  const signed = await publish(repo, spec('7.0.0', 'ocm.software/demo/tampered'), work, { sign: { name: 'acme', privateKeyPem: signer.privateKey } });
  const cd = structuredClone(signed.descriptor);
  cd.component.resources[0].version = '6.6.6';
  const cv = await repo.getComponentVersion('ocm.software/demo/tampered', '7.0.0');
  const blobs = new Map<string, { data: Buffer; mediaType: string }>();
  for (const r of cd.component.resources) {
    if (r.access.type !== 'localBlob') continue;
    const { data, mediaType } = await repo.getResourceContent(cv, signed.descriptor.component.resources.find((x) => x.name === r.name)!);
    blobs.set(String(r.access.localReference), { data, mediaType });
  }
  await repo.pushComponentVersion(cd, blobs, { overwrite: true });
  const obj = component('tampered', 'tampered', { verify: [{ signature: 'acme', secretRef: { name: 'acme-key' } }] });
  obj.spec.name = 'ocm.software/demo/tampered';
  obj.spec.version = '7.0.0';
  t.equal((await s.kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) })).code, 0);
  const comp = await waitFor('a VerificationFailed condition', async () => {
    const c = await json(['get', 'ocmcomponent', 'tampered', '-n', 'tampered']);
    return c.status?.conditions?.find((x: { reason: string }) => x.reason === 'VerificationFailed') ? c : undefined;
  });
  t.match(comp.status.conditions[0].message, /digest/i, 'the message says the digest does not match');
  t.equal((await json(['get', 'componentdescriptors', '-n', 'tampered'])).items.length, 0);
});

t.test('a resource whose bytes do not match its digest is refused by the OCMComponent', async (t) => {
  const signed = await publish(repo, spec('8.0.0', 'ocm.software/demo/swapped'), work, { sign: { name: 'acme', privateKeyPem: signer.privateKey } });
  // Same descriptor and signature, but the config blob's bytes replaced.
  const cd = structuredClone(signed.descriptor);
  const cfg = cd.component.resources.find((r) => r.name === 'config')!;
  const other = Buffer.from('kind: Evil\n');
  const { digestOf } = await import('../registry/client.js');
  const blobs = new Map<string, { data: Buffer; mediaType: string }>();
  const cv = await repo.getComponentVersion('ocm.software/demo/swapped', '8.0.0');
  for (const r of cd.component.resources) {
    if (r.access.type !== 'localBlob') continue;
    const content = await repo.getResourceContent(cv, r);
    blobs.set(String(r.access.localReference), content);
  }
  const oldRef = String(cfg.access.localReference);
  const newRef = digestOf(other);
  blobs.delete(oldRef);
  blobs.set(newRef, { data: other, mediaType: 'application/yaml' });
  cfg.access = { ...cfg.access, localReference: newRef };
  await repo.pushComponentVersion(cd, blobs, { overwrite: true });
  const obj = component('swapped', 'tampered');
  obj.spec.name = 'ocm.software/demo/swapped';
  obj.spec.version = '8.0.0';
  t.equal((await s.kubectl(['apply', '-f', '-'], { input: yaml(obj, ...source('config', 'tampered', 'swapped', 'config')) })).code, 0);
  // The OCMComponent checks the stored resources against their digests itself (issue 12): it is
  // not Ready, not verified, and the Source refuses it.
  const comp = await waitFor('the OCMComponent to refuse the blob', async () => {
    const x = await json(['get', 'ocmcomponent', 'swapped', '-n', 'tampered']);
    return x.status?.conditions?.find((c: { type: string; reason: string }) => c.type === 'Ready' && c.reason === 'DigestMismatch') ? x : undefined;
  });
  t.equal(comp.status.verified, false);
  t.match(comp.status.conditions.find((c: { type: string }) => c.type === 'Ready').message, /resource "config".*digest/);
  const src = await waitFor('the Source to refuse the component', async () => {
    const x = await json(['get', 'source', 'config', '-n', 'tampered']);
    return x.status?.conditions?.find((c: { reason: string }) => c.reason === 'ComponentNotReady') ? x : undefined;
  });
  t.equal(src.status.ready, false);
  t.match(src.status.conditions[0].message, /digest/i);
  t.equal((await json(['get', 'snapshots', '-n', 'tampered'])).items.length, 0, 'no Snapshot');
});
