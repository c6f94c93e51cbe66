// Delivery integrity of component versions (issue 12): what an OCMComponent calls verified, which
// version it uses, and what reaches a Source. Component versions are published with the project's
// own publisher (laid out as the OCM Go library does) into Debian's docker-registry, the objects
// are driven with real kubectl, and what a Snapshot holds is pulled from the snapshot registry and
// compared byte for byte.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { buildComponentVersion, type ComponentSpec, publish } from '../ocm/publish.js';
import { signDescriptor } from '../ocm/signing.js';
import { OcmRepository } from '../ocm/repository.js';
import { archiveToFiles } from '../providers/content.js';
import { OciClient } from '../registry/client.js';
import { pullSnapshot } from '../registry/snapshot.js';
import { type Distribution, startDistribution } from './helpers/distribution.js';
import { waitFor, kubectlJson, yamlDocs, startServer, type TestServer } from './helpers/server.js';

const keys = () => generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
const signer = keys();
const stranger = keys();
const API = 'delivery.ocm.software/v1alpha1';

let reg: Distribution;
let s: TestServer;
let repo: OcmRepository;
let snapshots: OciClient;
const work = mkdtempSync(join(tmpdir(), 'ocm-integrity-'));

/** A component version with one text resource `config` whose content is `text`. */
const textComponent = (name: string, version: string, text: string, extra: Partial<ComponentSpec> = {}): ComponentSpec => ({
  name,
  version,
  provider: 'acme',
  resources: [{ name: 'config', version, type: 'blob', input: { type: 'utf8', text, mediaType: 'text/plain' } }],
  ...extra,
});
const sign = { sign: { name: 'acme', privateKeyPem: signer.privateKey } };

const component = (name: string, ns: string, spec: Record<string, unknown>) => ({
  apiVersion: API,
  kind: 'OCMComponent',
  metadata: { name, namespace: ns },
  spec: { interval: '2s', repository: { url: `http://${reg.host}/ocm` }, ...spec },
});
const source = (name: string, ns: string, comp: string, resource: Record<string, unknown>) => [
  { apiVersion: API, kind: 'OCMResource', metadata: { name, namespace: ns }, spec: resource },
  { apiVersion: API, kind: 'Source', metadata: { name, namespace: ns }, spec: { componentRef: { name: comp }, providerRef: { apiVersion: API, kind: 'OCMResource', name } } },
];
const yaml = yamlDocs;

const json = (args: string[]) => kubectlJson(s, args);
async function apply(...objs: unknown[]) {
  const r = await s.kubectl(['apply', '-f', '-'], { input: yaml(...objs) });
  if (r.code !== 0) throw new Error(r.stderr);
}
const ready = (o: any) => o?.status?.conditions?.find((c: { type: string }) => c.type === 'Ready');

/** Waits until `kind/name` has a Ready condition with `reason`; returns the object. */
const waitReason = (kind: string, name: string, ns: string, reason: string, ms?: number) =>
  waitFor(`${kind}/${name} with reason ${reason}`, async () => {
    const o = await json(['get', kind, name, '-n', ns]);
    return ready(o)?.reason === reason && ready(o)?.observedGeneration === o.metadata.generation ? o : undefined;
  }, ms);

/** The files of the Snapshot a Source or Action names, pulled from the snapshot registry. */
async function snapshotFiles(kind: string, name: string, ns: string): Promise<Record<string, Buffer>> {
  const o = await json(['get', kind, name, '-n', ns]);
  const snap = await json(['get', 'snapshot', o.status.snapshot, '-n', ns]);
  return archiveToFiles(await pullSnapshot(snapshots, `${snap.status.repositoryURL}:${snap.status.tag}`, { expectedDigest: snap.status.digest }));
}
/** The single file's text of a Source's snapshot. */
async function snapshotText(name: string, ns: string): Promise<string> {
  const files = await snapshotFiles('source', name, ns);
  const names = Object.keys(files);
  if (names.length !== 1) throw new Error(`snapshot of ${name} holds ${names.join(', ')}`);
  return files[names[0]].toString('utf8');
}

async function namespace(ns: string, secrets: Record<string, Record<string, string>> = {}) {
  await s.kubectl(['create', 'namespace', ns]);
  for (const [name, data] of Object.entries(secrets)) {
    const r = await s.kubectl(['create', 'secret', 'generic', name, '-n', ns, ...Object.entries(data).map(([k, v]) => `--from-literal=${k}=${v}`)]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
}

t.before(async () => {
  reg = await startDistribution();
  repo = new OcmRepository(new OciClient({ insecureHttp: true }), `http://${reg.host}/ocm`);
  s = await startServer({ reconcilers: 'all', args: ['--allow-private-upstreams'] }); // the upstream registry is on 127.0.0.1
  snapshots = new OciClient({
    ca: await readFile(join(s.dataDir, 'certs', 'ca.crt'), 'utf8'),
    cert: await readFile(join(s.dataDir, 'certs', 'admin.crt'), 'utf8'),
    key: await readFile(join(s.dataDir, 'certs', 'admin.key'), 'utf8'),
  });
});
t.teardown(async () => {
  await s?.stop();
  await reg?.stop();
});

t.test('the design\'s verify: {secretRef} form: every entry of the Secret names a signature that must verify', async (t) => {
  await publish(repo, textComponent('ocm.software/it/objverify', '1.0.0', 'signed content\n'), work, sign);
  await namespace('objverify', { 'my-public-key': { acme: signer.publicKey }, 'two-keys': { acme: signer.publicKey, other: stranger.publicKey }, 'wrong-key': { acme: stranger.publicKey } });
  // As the design writes it (section 3.2), only names and URLs changed.
  await apply(component('design', 'objverify', { name: 'ocm.software/it/objverify', version: '1.0.x', verify: { secretRef: { name: 'my-public-key' } } }), ...source('design', 'objverify', 'design', { resource: 'config' }));
  const c = await waitReason('ocmcomponent', 'design', 'objverify', 'Succeeded');
  t.equal(c.status.verified, true);
  t.match(ready(c).message, /signature acme verified/);
  await waitReason('source', 'design', 'objverify', 'Succeeded');
  t.equal(await snapshotText('design', 'objverify'), 'signed content\n', 'the verified bytes, pulled from the snapshot registry');

  // A Secret entry naming a signature the descriptor does not carry is not verified.
  await apply(component('two', 'objverify', { name: 'ocm.software/it/objverify', version: '1.0.0', verify: { secretRef: { name: 'two-keys' } } }));
  const two = await waitReason('ocmcomponent', 'two', 'objverify', 'VerificationFailed');
  t.match(ready(two).message, /signature other/);
  t.equal(two.status.verified, false);
  await apply(component('wrong', 'objverify', { name: 'ocm.software/it/objverify', version: '1.0.0', verify: { secretRef: { name: 'wrong-key' } } }));
  const wrong = await waitReason('ocmcomponent', 'wrong', 'objverify', 'VerificationFailed');
  t.match(ready(wrong).message, /signature acme does not verify/);
  // Flux's kstatus: retrying cannot make a signature verify, so Stalled, at this generation.
  t.equal(cond(wrong, 'Stalled')?.status, 'True');
  t.equal(cond(wrong, 'Stalled')?.reason, 'VerificationFailed');
  t.equal(cond(wrong, 'Stalled')?.observedGeneration, wrong.metadata.generation);
  t.notOk(cond(wrong, 'Reconciling'), 'not Reconciling: nothing is being retried');
  // The object form naming one signature and the Secret key holding its public key.
  await apply(component('one', 'objverify', { name: 'ocm.software/it/objverify', version: '1.0.0', verify: { signature: 'acme', secretRef: { name: 'two-keys' }, key: 'acme' } }));
  t.equal((await waitReason('ocmcomponent', 'one', 'objverify', 'Succeeded')).status.verified, true);

  // Malformed shapes are a 422 naming the field, through kubectl.
  const bad = await s.kubectl(['apply', '-f', '-'], { input: yaml(component('bad', 'objverify', { name: 'ocm.software/it/objverify', version: '1.0.0', verify: 'my-public-key' })) });
  t.not(bad.code, 0);
  t.match(bad.stderr, /spec\.verify.*array or object/);
  const bad2 = await s.kubectl(['apply', '-f', '-'], { input: yaml(component('bad', 'objverify', { name: 'ocm.software/it/objverify', version: '1.0.0', verify: { secretRef: { name: 'k' }, keyName: 'x' } })) });
  t.not(bad2.code, 0);
  t.match(bad2.stderr, /spec\.verify\.keyName/);
  const explain = await s.kubectl(['explain', 'ocmcomponent.spec.verify']);
  t.match(explain.stdout.replace(/\s+/g, ' '), /every data entry of the Secret/, 'kubectl explain says what the object form verifies');
});

t.test('an exact version matches exactly, build metadata included', async (t) => {
  await publish(repo, textComponent('ocm.software/it/builds', '1.2.0+build.5', 'build 5\n'), work, sign);
  await namespace('builds', { 'acme-key': { acme: signer.publicKey } });
  await apply(
    component('builds', 'builds', { name: 'ocm.software/it/builds', version: '1.2.0+build.6', verify: [{ signature: 'acme', secretRef: { name: 'acme-key' } }] }),
    ...source('config', 'builds', 'builds', { resource: 'config' }),
  );
  const c = await waitReason('ocmcomponent', 'builds', 'builds', 'VersionNotFound');
  t.match(ready(c).message, /1\.2\.0\+build\.6.*versions: 1\.2\.0\+build\.5/);
  t.notOk(c.status.resolvedVersion, 'no version resolved');
  t.equal((await json(['get', 'snapshots', '-n', 'builds'])).items.length, 0, 'nothing downstream');

  await publish(repo, textComponent('ocm.software/it/builds', '1.2.0+build.6', 'build 6\n'), work, sign);
  t.equal((await waitReason('ocmcomponent', 'builds', 'builds', 'Succeeded')).status.resolvedVersion, '1.2.0+build.6');
  await waitFor('the Source on build 6', async () => ((await json(['get', 'source', 'config', '-n', 'builds'])).status?.componentVersion === '1.2.0+build.6' ? true : undefined));
  t.equal(await snapshotText('config', 'builds'), 'build 6\n', 'the bytes of build 6, not build 5');
  // A constraint ignores build metadata (semver): both builds match; the exact one was asked for.
  await apply(component('builds', 'builds', { name: 'ocm.software/it/builds', version: '1.2.0+build.5', verify: [{ signature: 'acme', secretRef: { name: 'acme-key' } }] }));
  await waitFor('build 5', async () => ((await json(['get', 'source', 'config', '-n', 'builds'])).status?.componentVersion === '1.2.0+build.5' ? true : undefined));
  t.equal(await snapshotText('config', 'builds'), 'build 5\n');
});

t.test('ComponentDescriptor objects are never shared: each OCMComponent has its own, and deleting one leaves the others', async (t) => {
  const repos = ['a', 'b', 'c'];
  for (const r of repos) {
    const other = new OcmRepository(new OciClient({ insecureHttp: true }), `http://${reg.host}/shared-${r}`);
    await publish(other, textComponent('ocm.software/it/shared', '1.0.0', `content of ${r}\n`), work, sign);
  }
  await namespace('shared');
  for (const r of repos) {
    await apply(
      { ...component(r, 'shared', { name: 'ocm.software/it/shared', version: '1.0.0' }), spec: { interval: '2s', name: 'ocm.software/it/shared', version: '1.0.0', repository: { url: `http://${reg.host}/shared-${r}` } } },
      ...source(r, 'shared', r, { resource: 'config' }),
    );
  }
  const cds: Record<string, any> = {};
  for (const r of repos) {
    const c = await waitReason('ocmcomponent', r, 'shared', 'Succeeded');
    cds[r] = await json(['get', 'componentdescriptor', c.status.componentDescriptor.name, '-n', 'shared']);
    t.equal(cds[r].metadata.ownerReferences.length, 1);
    t.equal(cds[r].metadata.ownerReferences[0].uid, c.metadata.uid, `${r}'s descriptor is owned by ${r} alone`);
    await waitReason('source', r, 'shared', 'Succeeded');
    t.equal(await snapshotText(r, 'shared'), `content of ${r}\n`, `${r} delivers its own repository's bytes`);
  }
  t.equal(new Set(repos.map((r) => cds[r].metadata.name)).size, 3, 'three objects');
  t.equal(new Set(repos.map((r) => cds[r].spec.resources[0].digest.value)).size, 3, 'each with its own content');

  t.equal((await s.kubectl(['delete', 'ocmcomponent', 'a', '-n', 'shared', '--wait=true'])).code, 0);
  await waitFor('a\'s descriptor to be collected', async () => ((await s.kubectl(['get', 'componentdescriptor', cds.a.metadata.name, '-n', 'shared'])).code !== 0 ? true : undefined));
  await new Promise((r) => setTimeout(r, 3000)); // beyond the components' interval
  for (const r of ['b', 'c']) {
    const cd = await json(['get', 'componentdescriptor', cds[r].metadata.name, '-n', 'shared']);
    t.equal(cd.metadata.uid, cds[r].metadata.uid, `${r}'s descriptor is the same object`);
    t.same(cd.spec, cds[r].spec, `${r}'s descriptor kept its content`);
    t.equal(ready(await json(['get', 'ocmcomponent', r, '-n', 'shared'])).status, 'True');
    t.equal(await snapshotText(r, 'shared'), `content of ${r}\n`);
  }

  // A new version replaces the OCMComponent's descriptor object; the old one goes.
  await publish(new OcmRepository(new OciClient({ insecureHttp: true }), `http://${reg.host}/shared-b`), textComponent('ocm.software/it/shared', '1.1.0', 'b 1.1\n'), work, sign);
  await apply({ ...component('b', 'shared', {}), spec: { interval: '2s', name: 'ocm.software/it/shared', version: '1.1.0', repository: { url: `http://${reg.host}/shared-b` } } });
  const b = await waitFor('b on 1.1.0', async () => {
    const o = await json(['get', 'ocmcomponent', 'b', '-n', 'shared']);
    return o.status?.resolvedVersion === '1.1.0' && ready(o)?.status === 'True' ? o : undefined;
  });
  const mine = (await json(['get', 'componentdescriptors', '-n', 'shared'])).items.filter((x: any) => x.metadata.ownerReferences[0].uid === b.metadata.uid);
  t.same(mine.map((x: any) => x.spec.version), ['1.1.0'], 'only the descriptor of the version in use');
});

t.test('OCMResource referencePath selects the resource of the referenced component, nested too; a missing reference is ReferenceNotFound', async (t) => {
  await publish(repo, textComponent('ocm.software/it/db', '1.0.0', 'db config\n'), work, sign);
  await publish(repo, textComponent('ocm.software/it/backend', '1.0.0', 'backend config\n', { componentReferences: [{ name: 'db', componentName: 'ocm.software/it/db', version: '1.0.0' }] }), work, sign);
  await publish(repo, textComponent('ocm.software/it/app', '1.0.0', 'app config\n', { componentReferences: [{ name: 'backend', componentName: 'ocm.software/it/backend', version: '1.0.0' }] }), work, sign);
  await namespace('refpath', { 'acme-key': { acme: signer.publicKey } });
  await apply(
    component('app', 'refpath', { name: 'ocm.software/it/app', version: '1.0.0', verify: [{ signature: 'acme', secretRef: { name: 'acme-key' } }] }),
    ...source('root', 'refpath', 'app', { resource: 'config' }),
    ...source('backend', 'refpath', 'app', { resource: 'config', referencePath: [{ name: 'backend' }] }),
    ...source('db', 'refpath', 'app', { resource: 'config', referencePath: [{ name: 'backend' }, { name: 'db' }] }),
    ...source('nowhere', 'refpath', 'app', { resource: 'config', referencePath: [{ name: 'frontend' }] }),
    ...source('deep-nowhere', 'refpath', 'app', { resource: 'config', referencePath: [{ name: 'backend' }, { name: 'cache' }] }),
  );
  for (const [name, text] of [['root', 'app config\n'], ['backend', 'backend config\n'], ['db', 'db config\n']]) {
    await waitReason('source', name, 'refpath', 'Succeeded');
    t.equal(await snapshotText(name, 'refpath'), text, `${name}: the bytes of the component the path leads to`);
  }
  const snap = await json(['get', 'snapshot', (await json(['get', 'source', 'db', '-n', 'refpath'])).status.snapshot, '-n', 'refpath']);
  t.equal(snap.spec.identity.resourceName, 'config');
  for (const name of ['nowhere', 'deep-nowhere']) {
    const src = await waitReason('source', name, 'refpath', 'ReferenceNotFound');
    t.equal(src.status.ready, false);
    t.match(ready(src).message, name === 'nowhere' ? /ocm\.software\/it\/app:1\.0\.0 has no component reference "frontend".*it has: backend/ : /ocm\.software\/it\/backend:1\.0\.0 has no component reference "cache".*it has: db/);
    t.notOk(src.status.snapshot, 'no snapshot');
  }
});

/** Conditions of an OCMComponent by type. */
const cond = (o: any, type: string) => o?.status?.conditions?.find((c: { type: string }) => c.type === type);

t.test('verified means all of it: referenced components against their parents\' digests (and their own signatures when asked), resources against their bytes', async (t) => {
  await namespace('graph', { 'acme-key': { acme: signer.publicKey }, 'stranger-key': { acme: stranger.publicKey } });
  const verify = [{ signature: 'acme', secretRef: { name: 'acme-key' } }];

  // A referenced component whose own signature is asked for too.
  await publish(repo, textComponent('ocm.software/it/lib', '1.0.0', 'lib 1.0.0\n'), work, sign);
  await publish(repo, textComponent('ocm.software/it/top', '1.0.0', 'top 1.0.0\n', { componentReferences: [{ name: 'lib', componentName: 'ocm.software/it/lib', version: '1.0.0' }] }), work, sign);
  await apply(
    component('top', 'graph', { name: 'ocm.software/it/top', version: '1.0.0', verify: [...verify, { signature: 'acme', component: 'ocm.software/it/lib', secretRef: { name: 'acme-key' } }] }),
    ...source('top', 'graph', 'top', { resource: 'config' }),
    ...source('lib', 'graph', 'top', { resource: 'config', referencePath: [{ name: 'lib' }] }),
  );
  const top = await waitReason('ocmcomponent', 'top', 'graph', 'Succeeded');
  t.equal(top.status.verified, true);
  t.equal(cond(top, 'Verified').status, 'True');
  t.match(cond(top, 'Verified').message, /acme \(ocm\.software\/it\/lib:1\.0\.0\) verified; digests of 2 stored resources and 1 reference matched/);
  t.match(top.status.manifestDigest, /^sha256:[0-9a-f]{64}$/);
  const topCds = (await json(['get', 'componentdescriptors', '-n', 'graph'])).items.filter((x: any) => x.metadata.ownerReferences[0].uid === top.metadata.uid);
  t.same(topCds.map((x: any) => [x.spec.name, x.status?.verified]).sort(), [['ocm.software/it/lib', true], ['ocm.software/it/top', true]], 'each descriptor object says it is verified');
  await waitReason('source', 'lib', 'graph', 'Succeeded');
  t.equal(await snapshotText('lib', 'graph'), 'lib 1.0.0\n');
  // the referenced component's signature with a key that does not verify it
  await apply(component('top-wrong', 'graph', { name: 'ocm.software/it/top', version: '1.0.0', verify: [...verify, { signature: 'acme', component: 'ocm.software/it/lib', secretRef: { name: 'stranger-key' } }] }));
  const wrong = await waitReason('ocmcomponent', 'top-wrong', 'graph', 'VerificationFailed');
  t.match(ready(wrong).message, /ocm\.software\/it\/lib:1\.0\.0: signature acme does not verify/);
  await apply(component('top-none', 'graph', { name: 'ocm.software/it/top', version: '1.0.0', verify: [...verify, { signature: 'acme', component: 'ocm.software/it/other', secretRef: { name: 'acme-key' } }] }));
  t.match(ready(await waitReason('ocmcomponent', 'top-none', 'graph', 'VerificationFailed')).message, /component ocm\.software\/it\/other, which .* does not reference/);

  // The referenced component pushed again with other (validly signed) content: the digest its
  // parent records no longer matches; not verified, and nothing downstream runs, not even on the
  // parent's own resource.
  await publish(repo, textComponent('ocm.software/it/lib', '1.0.0', 'lib tampered\n'), work, { ...sign, overwrite: true });
  const bad = await waitReason('ocmcomponent', 'top', 'graph', 'ReferenceDigestMismatch');
  t.equal(bad.status.verified, false);
  t.equal(cond(bad, 'Verified').status, 'False');
  t.match(ready(bad).message, /ocm\.software\/it\/top:1\.0\.0 references ocm\.software\/it\/lib:1\.0\.0 with jsonNormalisation\/v3 digest/);
  await apply(...source('top-late', 'graph', 'top', { resource: 'config' }));
  t.match(ready(await waitReason('source', 'top-late', 'graph', 'ComponentNotVerified')).message, /not verified/);
  t.equal(await snapshotText('lib', 'graph'), 'lib 1.0.0\n', 'the earlier snapshot keeps the verified bytes');

  // A reference without a digest cannot be verified.
  const built = await buildComponentVersion(textComponent('ocm.software/it/loose', '1.0.0', 'loose\n', { componentReferences: [{ name: 'lib', componentName: 'ocm.software/it/lib', version: '1.0.0' }] }), work, { client: repo.client });
  await repo.pushComponentVersion(signDescriptor(built.descriptor, sign.sign), built.blobs);
  await apply(component('loose', 'graph', { name: 'ocm.software/it/loose', version: '1.0.0', verify }), ...source('loose', 'graph', 'loose', { resource: 'config' }));
  const loose = await waitReason('ocmcomponent', 'loose', 'graph', 'VerificationFailed');
  t.match(ready(loose).message, /references ocm\.software\/it\/lib:1\.0\.0 \(lib\) without a digest/);
  t.equal(loose.status.verified, false);
  t.equal(ready(await waitReason('source', 'loose', 'graph', 'ComponentNotVerified')).reason, 'ComponentNotVerified');
  // Without spec.verify it is delivered, and says it is not verified and why it could not be.
  await apply(component('loose-plain', 'graph', { name: 'ocm.software/it/loose', version: '1.0.0' }));
  const plain = await waitReason('ocmcomponent', 'loose-plain', 'graph', 'Succeeded');
  t.equal(plain.status.verified, false);
  t.equal(cond(plain, 'Verified').reason, 'NotRequested');
  t.equal((await json(['get', 'componentdescriptor', plain.status.componentDescriptor.name, '-n', 'graph'])).status?.verified, false);
  t.match(cond(plain, 'Verified').message, /without a digest/);

  // A stored resource whose bytes do not match its signed digest: not verified, nothing downstream.
  const signed = await publish(repo, textComponent('ocm.software/it/swapped', '1.0.0', 'genuine\n'), work, sign);
  const cd = structuredClone(signed.descriptor);
  const other = Buffer.from('evil\n');
  const { digestOf } = await import('../registry/client.js');
  cd.component.resources[0].access = { ...cd.component.resources[0].access, localReference: digestOf(other) };
  await repo.pushComponentVersion(cd, new Map([[digestOf(other), { data: other, mediaType: 'text/plain' }]]), { overwrite: true });
  await apply(component('swapped', 'graph', { name: 'ocm.software/it/swapped', version: '1.0.0', verify }), ...source('swapped', 'graph', 'swapped', { resource: 'config' }));
  const sw = await waitReason('ocmcomponent', 'swapped', 'graph', 'DigestMismatch');
  t.equal(sw.status.verified, false);
  t.match(ready(sw).message, /resource "config" of ocm\.software\/it\/swapped:1\.0\.0/);
  await waitReason('source', 'swapped', 'graph', 'ComponentNotVerified');
  const snaps = (await json(['get', 'snapshots', '-n', 'graph'])).items.map((x: any) => x.metadata.ownerReferences[0].name);
  t.notOk(snaps.includes('swapped') || snaps.includes('loose') || snaps.includes('top-late'), 'no snapshot of anything unverified');
});

/** Events of one object (kind/name), as kubectl lists them. */
async function events(ns: string, kind: string, name: string): Promise<Array<{ type: string; reason: string; message: string }>> {
  const list = await json(['get', 'events', '-n', ns]);
  return list.items.filter((e: any) => e.involvedObject?.kind === kind && e.involvedObject?.name === name);
}
const waitEvent = (ns: string, kind: string, name: string, reason: string, message?: RegExp) =>
  waitFor(`a ${reason} Event on ${kind}/${name}`, async () => (await events(ns, kind, name)).find((e) => e.reason === reason && (!message || message.test(e.message))));

t.test('the same version pushed again with other content: detected by manifest digest, flows on only when it verifies', async (t) => {
  await namespace('repush', { 'acme-key': { acme: signer.publicKey } });
  await publish(repo, textComponent('ocm.software/it/repush', '1.0.0', 'first\n'), work, sign);
  await apply(
    component('repush', 'repush', { name: 'ocm.software/it/repush', version: '1.0.0', verify: [{ signature: 'acme', secretRef: { name: 'acme-key' } }] }),
    ...source('repush', 'repush', 'repush', { resource: 'config' }),
  );
  const first = await waitReason('ocmcomponent', 'repush', 'repush', 'Succeeded');
  await waitReason('source', 'repush', 'repush', 'Succeeded');
  t.equal(await snapshotText('repush', 'repush'), 'first\n');

  // New, validly signed content under 1.0.0: detected, verified, and the Source re-runs on it.
  const second = await publish(repo, textComponent('ocm.software/it/repush', '1.0.0', 'second\n'), work, { ...sign, overwrite: true });
  const c2 = await waitFor('the new manifest digest', async () => {
    const o = await json(['get', 'ocmcomponent', 'repush', '-n', 'repush']);
    return o.status.manifestDigest === second.manifestDigest && ready(o)?.status === 'True' ? o : undefined;
  });
  t.not(c2.status.manifestDigest, first.status.manifestDigest);
  t.equal(cond(c2, 'ContentChanged').reason, 'ContentVerified');
  t.match(cond(c2, 'ContentChanged').message, new RegExp(`manifest ${first.status.manifestDigest} is now ${second.manifestDigest}`));
  const warn = await waitEvent('repush', 'OCMComponent', 'repush', 'ContentChanged');
  t.equal(warn.type, 'Warning');
  await waitFor('the Source on the new content', async () => ((await snapshotText('repush', 'repush')) === 'second\n' ? true : undefined));
  t.pass('the Source delivers the new bytes');

  // Content that does not verify under the same version: detected, not verified, nothing moves.
  const before = (await json(['get', 'source', 'repush', '-n', 'repush'])).status.snapshot;
  const third = await publish(repo, textComponent('ocm.software/it/repush', '1.0.0', 'third\n'), work, { sign: { name: 'acme', privateKeyPem: stranger.privateKey }, overwrite: true });
  const c3 = await waitReason('ocmcomponent', 'repush', 'repush', 'VerificationFailed');
  t.equal(c3.status.verified, false);
  t.equal(c3.status.manifestDigest, second.manifestDigest, 'status keeps naming the content that verified');
  t.equal(cond(c3, 'ContentChanged').reason, 'ManifestDigestChanged');
  t.match(cond(c3, 'ContentChanged').message, new RegExp(`is now ${third.manifestDigest}`));
  await waitEvent('repush', 'OCMComponent', 'repush', 'ContentChanged', new RegExp(third.manifestDigest));
  await waitReason('source', 'repush', 'repush', 'ComponentNotVerified');
  await new Promise((r) => setTimeout(r, 3000)); // beyond the component's interval
  const src = await json(['get', 'source', 'repush', '-n', 'repush']);
  t.equal(src.status.snapshot, before, 'no new snapshot');
  t.equal(await snapshotText('repush', 'repush'), 'second\n', 'the snapshot keeps the verified bytes');
  const cc = (await events('repush', 'OCMComponent', 'repush')).filter((e) => e.reason === 'ContentChanged');
  t.equal(cc.length, 2, 'one ContentChanged Event per change, not one per interval');
});

t.test('version policy: the newest version that verifies, skipped ones named; downgrades follow spec.downgradePolicy; every move an Event', async (t) => {
  await namespace('policy', { 'acme-key': { acme: signer.publicKey } });
  const name = 'ocm.software/it/policy';
  const pub = (v: string, key = signer.privateKey, extra: Partial<ComponentSpec> = {}) => publish(repo, textComponent(name, v, `policy ${v}\n`, extra), work, { sign: { name: 'acme', privateKeyPem: key } });
  await pub('1.0.0');
  await pub('1.1.0');
  const verify = [{ signature: 'acme', secretRef: { name: 'acme-key' } }];
  await apply(component('policy', 'policy', { name, version: '>=1.0.0', verify }), ...source('policy', 'policy', 'policy', { resource: 'config' }));
  t.equal((await waitReason('ocmcomponent', 'policy', 'policy', 'Succeeded')).status.resolvedVersion, '1.1.0');
  await waitReason('source', 'policy', 'policy', 'Succeeded');
  t.equal(await snapshotText('policy', 'policy'), 'policy 1.1.0\n');
  // An Action downstream (a deployer: it writes Flux objects and waits for them)
  await apply(
    { apiVersion: API, kind: 'KustomizationTemplate', metadata: { name: 'kt', namespace: 'policy' }, spec: { template: { interval: '10m', path: './' } } },
    { apiVersion: API, kind: 'Action', metadata: { name: 'deploy', namespace: 'policy' }, spec: { componentRef: { name: 'policy' }, sourceRef: { kind: 'Source', name: 'policy' }, providerRef: { apiVersion: API, kind: 'KustomizationTemplate', name: 'kt' } } },
  );
  await waitFor('the Action on 1.1.0', async () => ((await json(['get', 'action', 'deploy', '-n', 'policy'])).status?.componentVersion === '1.1.0' ? true : undefined));

  // A newer version that does not verify is skipped, named in an Event and the status; the chain stays.
  await pub('1.2.0', stranger.privateKey);
  const skippedEvent = await waitEvent('policy', 'OCMComponent', 'policy', 'VersionSkipped', /^1\.2\.0 skipped: .*signature acme does not verify/);
  t.equal(skippedEvent.type, 'Warning');
  const c = await json(['get', 'ocmcomponent', 'policy', '-n', 'policy']);
  t.same(c.status.skippedVersions.map((x: any) => [x.version, x.reason]), [['1.2.0', 'VerificationFailed']]);
  t.equal(c.status.resolvedVersion, '1.1.0');
  t.equal(ready(c).status, 'True', 'still Ready on the newest version that verifies');

  // A newer one that verifies: used; an Event on the OCMComponent and on the Source it moves.
  await pub('1.3.0');
  await waitFor('1.3.0', async () => ((await json(['get', 'source', 'policy', '-n', 'policy'])).status?.componentVersion === '1.3.0' ? true : undefined));
  t.equal(await snapshotText('policy', 'policy'), 'policy 1.3.0\n');
  t.match((await waitEvent('policy', 'OCMComponent', 'policy', 'VersionChanged', /1\.1\.0 -> 1\.3\.0 \(upgrade\)/)).type, 'Normal');
  await waitEvent('policy', 'Source', 'policy', 'ComponentVersionChanged', /from 1\.1\.0 to 1\.3\.0/);
  await waitEvent('policy', 'Action', 'deploy', 'ComponentVersionChanged', /from 1\.1\.0 to 1\.3\.0/);
  t.notOk((await json(['get', 'ocmcomponent', 'policy', '-n', 'policy'])).status.skippedVersions, 'nothing skipped any more');

  // The tag of 1.3.0 deleted upstream: the newest that verifies is 1.1.0, a downgrade; Deny (default) refuses.
  const m = await repo.client.getManifest(repo.refOf(name, '1.3.0'));
  await repo.client.deleteManifest({ ...repo.refOf(name), digest: m.digest });
  const denied = await waitReason('ocmcomponent', 'policy', 'policy', 'DowngradeDenied');
  t.match(ready(denied).message, /1\.3\.0 -> 1\.1\.0 is a downgrade \(newer matching versions do not verify \(1\.2\.0\)\).*Deny \(the default\) refuses.*staying on 1\.3\.0/);
  t.equal(denied.status.resolvedVersion, '1.3.0');
  t.equal(await snapshotText('policy', 'policy'), 'policy 1.3.0\n', 'nothing delivered moves back');
  await waitEvent('policy', 'OCMComponent', 'policy', 'DowngradeDenied');

  // Enforce moves back, with a Warning Event, and the Source follows with its own Event.
  await apply(component('policy', 'policy', { name, version: '>=1.0.0', verify, downgradePolicy: 'Enforce' }));
  await waitFor('1.1.0 again', async () => ((await json(['get', 'source', 'policy', '-n', 'policy'])).status?.componentVersion === '1.1.0' ? true : undefined));
  t.equal(await snapshotText('policy', 'policy'), 'policy 1.1.0\n');
  t.equal((await waitEvent('policy', 'OCMComponent', 'policy', 'Downgraded', /1\.3\.0 -> 1\.1\.0 .*Enforce allows it/)).type, 'Warning');
  await waitEvent('policy', 'Source', 'policy', 'ComponentVersionChanged', /from 1\.3\.0 to 1\.1\.0/);
  await waitEvent('policy', 'Action', 'deploy', 'ComponentVersionChanged', /from 1\.3\.0 to 1\.1\.0/);

  // Allow: only as far as the label of the version in use permits (ocm-k8s-toolkit's downgradable label).
  const allow = 'ocm.software/it/allow';
  const pubA = (v: string, labels?: ComponentSpec['labels']) => publish(repo, textComponent(allow, v, `allow ${v}\n`, labels ? { labels } : {}), work, sign);
  await pubA('1.0.0');
  await pubA('1.6.0');
  await pubA('2.0.0', [{ name: 'ocm.software/ocm-k8s-toolkit/downgradable', value: '>=1.5.0' }]);
  await apply(component('allow', 'policy', { name: allow, version: '>=1.0.0', verify, downgradePolicy: 'Allow' }));
  t.equal((await waitReason('ocmcomponent', 'allow', 'policy', 'Succeeded')).status.resolvedVersion, '2.0.0');
  await apply(component('allow', 'policy', { name: allow, version: '<2.0.0', verify, downgradePolicy: 'Allow' }));
  await waitFor('1.6.0', async () => ((await json(['get', 'ocmcomponent', 'allow', '-n', 'policy'])).status?.resolvedVersion === '1.6.0' ? true : undefined));
  await waitEvent('policy', 'OCMComponent', 'allow', 'Downgraded', /2\.0\.0 -> 1\.6\.0 .*2\.0\.0 allows downgrades to ">=1\.5\.0"/);
  await apply(component('allow', 'policy', { name: allow, version: '<1.5.0', verify, downgradePolicy: 'Allow' }));
  const no = await waitReason('ocmcomponent', 'allow', 'policy', 'DowngradeDenied');
  t.match(ready(no).message, /1\.6\.0 has no label ocm\.software\/ocm-k8s-toolkit\/downgradable/);
  t.equal(no.status.resolvedVersion, '1.6.0');

  const bad = await s.kubectl(['apply', '-f', '-'], { input: yaml(component('allow', 'policy', { name: allow, version: '<1.5.0', downgradePolicy: 'Sometimes' })) });
  t.match(bad.stderr, /spec\.downgradePolicy.*supported values: "Allow", "Deny", "Enforce"/);
});

const CTF = resolve(dirname(fileURLToPath(import.meta.url)), '../../test/fixtures/ocm-vectors/ctf-compat');
/** Pushes a CTF's artifact (blobs and manifest, byte for byte as the OCM Go library wrote them) under `<registry>/<base>`. */
async function pushCtf(dir: string, base: string): Promise<string> {
  const blob = (d: string) => readFileSync(join(CTF, dir, 'blobs', d.replace(':', '.')));
  const a = JSON.parse(readFileSync(join(CTF, dir, 'artifact-index.json'), 'utf8')).artifacts[0];
  const manifest = blob(a.digest);
  const m = JSON.parse(manifest.toString());
  const ref = `${reg.host}/${base}/${a.repository}`;
  for (const l of [m.config, ...m.layers]) await repo.client.pushBlob(ref, blob(l.digest), l.digest, l.size);
  return (await repo.client.putManifest(`${ref}:${a.tag}`, manifest, m.mediaType)).digest;
}

t.test('component versions as the OCM Go library wrote them (ctf-compat vectors): stored resources checked, external ones left to the Source', async (t) => {
  await namespace('vectors');
  const pushed: Record<string, string> = {};
  for (const [dir, base] of [['01/transport-archive', 'vec01'], ['02/with-resource', 'vec02'], ['02/without-resource', 'vec02b']]) {
    pushed[base] = await pushCtf(dir, base);
    await apply({ ...component(base, 'vectors', {}), spec: { interval: '2s', name: 'github.com/acme.org/helloworld', version: '1.0.0', repository: { url: `http://${reg.host}/${base}` } } });
  }
  const expect: Record<string, RegExp> = {
    vec01: /digests of 1 stored resource and 0 references matched/,
    vec02: /digests of 1 stored resource and 0 references matched/, // the Helm chart's OCI layout, ociArtifactDigest/v1
    vec02b: /digests of 0 stored resources and 0 references matched/, // its chart is at ghcr.io: the Source checks it when it fetches it
  };
  for (const base of Object.keys(expect)) {
    const c = await waitReason('ocmcomponent', base, 'vectors', 'Succeeded');
    t.equal(c.status.manifestDigest, pushed[base], `${base}: the manifest as the Go library wrote it`);
    t.equal(c.status.verified, false, 'unsigned, nothing asked: not verified');
    t.equal(cond(c, 'Verified').reason, 'NotRequested');
    t.match(cond(c, 'Verified').message, expect[base]);
  }
  await apply(...source('vec01', 'vectors', 'vec01', { resource: 'resource' }));
  await waitReason('source', 'vec01', 'vectors', 'Succeeded');
  t.equal(await snapshotText('vec01', 'vectors'), readFileSync(join(CTF, '01/transport-archive/blobs/sha256.9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08'), 'utf8'), 'the local blob, byte for byte');
});
