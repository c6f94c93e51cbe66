// The sample workflow (examples/podinfo), run as the README's "Sample workflow" section says: a
// standalone server, `npm run example -- --kubeconfig FILE`, the apply it prints, `kubectl wait ...
// action/deployer`. The server's registry is on a free port, never the files' default 5001 (which a
// developer's server may hold), so the printed apply is the one with the address replaced, run as
// printed; `--apply` (which applies the files itself) runs last and changes nothing.
// Then the final manifests in the last transforming snapshot (image localized, values configured:
// defaults and overrides), the Flux objects, and `kubectl get ocm` with everything Ready.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import YAML from 'yaml';
import { ensureKeys, publishSample } from '../cli/example.js';
import { archiveToFiles } from '../providers/content.js';
import { OciClient } from '../registry/client.js';
import { pullSnapshot } from '../registry/snapshot.js';
import { kubectlJson, startServer, type TestServer, waitFor, yamlDocs } from './helpers/server.js';
import { runCommand } from './helpers/process.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLE = join(root, 'examples', 'podinfo');
const COMPONENT = join(EXAMPLE, 'component');
const NS = 'podinfo';
const DEFAULT_REGISTRY = '127.0.0.1:5001';

/** A command run in the repository root, as the README's commands are (npm needs INIT_CWD there). */
const run = (cmd: string, args: string[], timeoutMs: number) => runCommand(cmd, args, { cwd: root, env: { ...process.env, INIT_CWD: root }, timeoutMs });

process.chdir(root); // the README's commands run in the repository root
const s: TestServer = await startServer({ reconcilers: 'all' });
t.teardown(() => s.stop());
const registry = s.logs.map((l) => /"registry":"([^"]+)"/.exec(l)?.[1]).find(Boolean)!;
const certs = join(s.dataDir, 'certs');
const client = new OciClient({ ca: readFileSync(join(certs, 'ca.crt'), 'utf8'), cert: readFileSync(join(certs, 'admin.crt'), 'utf8'), key: readFileSync(join(certs, 'admin.key'), 'utf8'), retries: 1 });
t.teardown(() => client.close());

const json = (args: string[]) => kubectlJson(s, args);

let printedApply = '';
let exampleOut = '';
t.test('npm run example -- --kubeconfig FILE publishes, signs and creates the key Secret', async (t) => {
  t.not(registry, DEFAULT_REGISTRY, 'the registry is not where the files say');
  const r = await run('npm', ['run', 'example', '--', '--kubeconfig', s.kubeconfig], 240_000);
  exampleOut = r.out;
  t.equal(r.code, 0, 'exit status 0');
  if (r.code !== 0) t.comment(r.out);
  t.match(r.out, `pushed image ${registry}/podinfo/images/podinfo:6.8.0 (sha256:`);
  t.match(r.out, `published ocm.software/demos/podinfo:6.8.0 to ${registry}/podinfo/ocm, signed as "ocm-example"`);
  t.match(r.out, /(created|updated) Secret podinfo\/ocm-example-key|Secret is up to date podinfo\/ocm-example-key/);
  t.match(r.out, `NOTE: examples/podinfo/10-component.yaml reads the component from ${DEFAULT_REGISTRY}/podinfo/ocm, but this server's registry is ${registry}`);
  printedApply = /^ {2}(for f in .*apply -f -)$/m.exec(r.out)?.[1] ?? '';
  t.match(printedApply, `sed 's#${DEFAULT_REGISTRY}/#${registry}/#'`, 'prints an apply with the address replaced');
  t.match(r.out, /run this command again with --apply/);

  const secret = await json(['get', 'secret', 'ocm-example-key', '-n', NS]);
  t.equal(Buffer.from(secret.data['ocm-example'], 'base64').toString(), readFileSync(join(root, 'examples', '.keys', 'public-key.pem'), 'utf8'), 'the Secret holds the public key');
  const ns = await json(['get', 'namespace', NS]);
  t.ok(ns.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration'], 'the namespace is created as kubectl apply would have');
});

t.test('the printed apply, run as printed, then wait for the deployer', async (t) => {
  // `kubectl` in the printed line is the tests' pinned one.
  const apply = await run('bash', ['-c', `kubectl() { "$KUBECTL" "$@"; }; set -o pipefail; ${printedApply}`], 60_000);
  t.equal(apply.code, 0, apply.out);
  t.notMatch(apply.out, /Warning/, 'applies cleanly over the namespace npm run example created');
  for (const o of ['namespace/podinfo', 'ocmcomponent.delivery.ocm.software/podinfo', 'source.delivery.ocm.software/manifests', 'action.delivery.ocm.software/localizer', 'action.delivery.ocm.software/config', 'action.delivery.ocm.software/deployer']) {
    t.match(apply.out, o);
  }
  const comp = await json(['get', 'ocmcomponent', 'podinfo', '-n', NS]);
  t.equal(comp.spec.repository.url, `${registry}/podinfo/ocm`, 'the applied OCMComponent names this server\'s registry');
  const wait = await s.kubectl(['wait', '--for=condition=Ready', 'action/deployer', '-n', NS, '--timeout=120s'], { timeoutMs: 130_000 });
  t.equal(wait.code, 0, `kubectl wait: ${wait.stdout}${wait.stderr}`);
  t.match(wait.stdout, 'action.delivery.ocm.software/deployer condition met');
});

t.test('kubectl get ocm -n podinfo lists every object, Ready', async (t) => {
  const list = await json(['get', 'ocm', '-n', NS]);
  const byKind = new Map<string, string[]>();
  for (const o of list.items) byKind.set(o.kind, [...(byKind.get(o.kind) ?? []), o.metadata.name]);
  t.same(Object.fromEntries([...byKind].map(([k, v]) => [k, v.sort()]).sort()), {
    Action: ['config', 'deployer', 'localizer'],
    ComponentDescriptor: byKind.get('ComponentDescriptor')!.slice().sort(),
    Configurator: ['podinfo-config'],
    KustomizationTemplate: ['podinfo-deploy'],
    Localization: ['podinfo-localization'],
    OCMComponent: ['podinfo'],
    OCMResource: ['manifests'],
    Snapshot: byKind.get('Snapshot')!.slice().sort(),
    Source: ['manifests'],
  });
  t.equal(byKind.get('ComponentDescriptor')?.length, 1, 'one ComponentDescriptor: the component version');
  t.equal(byKind.get('Snapshot')?.length, 3, 'three snapshots: the Source, the localizer and config Actions');
  for (const o of list.items) {
    if (o.kind === 'ComponentDescriptor') continue; // a record, no condition
    const ready = (o.status?.conditions ?? []).find((c: { type: string }) => c.type === 'Ready');
    t.equal(ready?.status, 'True', `${o.kind}/${o.metadata.name} is Ready${ready?.status === 'True' ? '' : `: ${ready?.message}`}`);
  }
  const comp = list.items.find((o: any) => o.kind === 'OCMComponent');
  t.equal(comp.status.resolvedVersion, '6.8.0');
  t.equal(comp.status.verified, true, 'the signature verified');
  // Verified covers the image: the manifest the registry serves has the digest the descriptor records.
  const cd = list.items.find((o: any) => o.kind === 'ComponentDescriptor');
  const image = cd.spec.resources.find((r: { name: string }) => r.name === 'image');
  t.equal(image.access.imageReference, `${registry}/podinfo/images/podinfo:6.8.0`, 'the image is in the server\'s registry, next to the component');
  const m = await client.getManifest(image.access.imageReference);
  t.equal(createHash('sha256').update(m.body).digest('hex'), image.digest.value, 'the manifest bytes hash to the recorded digest');
  t.same(m.manifest.layers.length, 1, 'a real image: a config and one layer');
  t.match(comp.status.conditions.find((c: { type: string }) => c.type === 'Verified').message, /digests of 3 stored resources/);

  const table = await s.kubectl(['get', 'ocm', '-n', NS]);
  t.equal(table.code, 0);
  const rows = table.stdout.split('\n').filter((l) => /^\S+\.delivery\.ocm\.software\//.test(l));
  t.equal(rows.length, list.items.length, 'the table has a row per object');
  for (const row of rows) if (!row.startsWith('componentdescriptor.')) t.match(row, /\sTrue\s/, row.split(/\s+/)[0]);
});

t.test('the last snapshot holds the localized and configured manifests', async (t) => {
  const deployer = await json(['get', 'action', 'deployer', '-n', NS]);
  const config = await json(['get', 'action', 'config', '-n', NS]);
  t.equal(deployer.status.inputSnapshot, config.status.snapshot, "the deployer consumed the config Action's snapshot");
  const snap = await json(['get', 'snapshot', config.status.snapshot, '-n', NS]);
  t.equal(snap.status.digest, config.status.digest);
  t.equal(snap.status.conditions.find((c: { type: string }) => c.type === 'Verified')?.status, 'True', 'the registry serves what was pushed');
  t.equal(snap.status.attestation?.verified, true, 'attested by the server');
  const files = await archiveToFiles(await pullSnapshot(client, `${snap.status.repositoryURL}:${snap.status.tag}`, { expectedDigest: snap.status.digest }));
  t.same(Object.keys(files).sort(), ['configmap.yaml', 'deploy.yaml', 'kustomization.yaml', 'service.yaml']);

  const deploy = YAML.parse(files['deploy.yaml'].toString());
  t.equal(deploy.spec.template.spec.containers[0].image, `${registry}/podinfo/images/podinfo:6.8.0`, "image localized to the image resource's reference");
  t.equal(deploy.spec.replicas, 2, 'replicas: overridden by the Configurator (default 1)');
  const cm = YAML.parse(files['configmap.yaml'].toString());
  t.equal(cm.data.PODINFO_UI_MESSAGE, 'Delivered by OCM', 'message: overridden by the Configurator');
  t.equal(cm.data.PODINFO_UI_COLOR, '#34577c', 'color: the ConfigData default');

  // Only the edited values changed: comments and every other line are as the component has them.
  const original = readFileSync(join(COMPONENT, 'manifests', 'deploy.yaml'), 'utf8');
  const expected = original.replace('image: ghcr.io/stefanprodan/podinfo:6.8.0 #', `image: ${registry}/podinfo/images/podinfo:6.8.0 #`).replace('  replicas: 1\n', '  replicas: 2\n');
  t.equal(files['deploy.yaml'].toString(), expected, 'deploy.yaml: only the image and replicas lines changed');
  for (const f of ['kustomization.yaml', 'service.yaml']) t.equal(files[f].toString(), readFileSync(join(COMPONENT, 'manifests', f), 'utf8'), `${f} unchanged`);

  // The chain back to the component version.
  t.same(
    (snap.status.chain ?? []).map((l: { kind: string; name: string; componentVersion?: string; provider?: string }) => [l.kind, l.name, l.componentVersion ?? l.provider]),
    [
      ['OCMComponent', 'podinfo', 'ocm.software/demos/podinfo:6.8.0'],
      ['Source', 'manifests', 'OCMResource/manifests'],
      ['Action', 'localizer', 'Localization/podinfo-localization'],
      ['Action', 'config', 'Configurator/podinfo-config'],
    ],
    'the chain back to the component version',
  );
});

t.test('the Flux objects point at the last snapshot', async (t) => {
  const config = await json(['get', 'action', 'config', '-n', NS]);
  const deployer = await json(['get', 'action', 'deployer', '-n', NS]);
  const snap = await json(['get', 'snapshot', config.status.snapshot, '-n', NS]);
  const repo = await json(['get', 'ocirepositories.source.toolkit.fluxcd.io', 'deployer', '-n', NS]);
  const owner = { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'Action', name: 'deployer', uid: deployer.metadata.uid, controller: true };
  const repoPath = snap.status.repositoryURL.replace(/^[^/]+\//, '');
  t.equal(repoPath, 'podinfo/podinfo/action/config/podinfo-config', 'the config Action\'s own place: <ns>/<component>/action/<name>/<provider>');
  t.equal(snap.metadata.name, `config-action-${snap.status.tag}`, 'Snapshot name: <producer>-<kind>-<tag>');
  t.same(repo.metadata.ownerReferences, [owner], 'OCIRepository owned by the deployer Action');
  t.equal(repo.spec.url, `oci://${registry}/${repoPath}`, 'url: the snapshot repository in the registry');
  t.same(repo.spec.ref, { tag: snap.status.tag, digest: snap.status.digest }, 'ref: tag and digest of the last snapshot');
  t.same(repo.spec.certSecretRef, { name: 'ocm-registry-tls' }, 'certSecretRef: the registry TLS Secret');
  t.equal(repo.spec.interval, '10m', 'interval: the template\'s');
  const tls = await json(['get', 'secret', 'ocm-registry-tls', '-n', NS]);
  t.same(Object.keys(tls.data).sort(), ['ca.crt', 'tls.crt', 'tls.key'], 'the TLS Secret Flux pulls with');

  const ks = await json(['get', 'kustomizations.kustomize.toolkit.fluxcd.io', 'deployer', '-n', NS]);
  t.same(ks.metadata.ownerReferences, [owner], 'Kustomization owned by the deployer Action');
  t.same(ks.spec, { interval: '10m', path: './', prune: true, targetNamespace: 'podinfo', sourceRef: { kind: 'OCIRepository', name: 'deployer' } }, 'the template fields and the sourceRef');
  t.notMatch(deployer.status.conditions[0].message, /deployer: OCIRepository/, 'the message names each object once');
});

t.test('running npm run example again, with --apply, changes nothing', async (t) => {
  const before = await json(['get', 'ocmcomponent', 'podinfo', '-n', NS]);
  // Built by the first run; the same program without `npm run build` in front.
  const r = await run(process.execPath, [join(root, 'dist', 'cli', 'example.js'), '--kubeconfig', s.kubeconfig, '--apply'], 60_000);
  t.equal(r.code, 0, 'exit status 0');
  if (r.code !== 0) t.comment(r.out);
  const digest = (out: string) => /signed as "ocm-example" \((sha256:[0-9a-f]{64})\)/.exec(out)?.[1];
  t.ok(digest(r.out), 'published again');
  t.equal(digest(r.out), digest(exampleOut), 'the same component version, byte for byte');
  t.match(r.out, 'using signing key pair', 'the same key pair');
  t.match(r.out, 'Secret is up to date podinfo/ocm-example-key', 'the Secret is left as it is');
  t.notMatch(r.out, 'created namespace', 'the namespace is left as it is');
  for (const o of ['namespace/podinfo', 'ocmcomponent.delivery.ocm.software/podinfo', 'source.delivery.ocm.software/manifests', 'action.delivery.ocm.software/deployer']) t.match(r.out, `${o} applied`);
  t.notMatch(r.out, /NOTE:/, 'applied itself: nothing left to do by hand');
  const after = await json(['get', 'ocmcomponent', 'podinfo', '-n', NS]);
  t.equal(after.spec.repository.url, `${registry}/podinfo/ocm`, 'still this server\'s registry');
  t.equal(after.status.conditions[0].status, 'True', 'the OCMComponent is still Ready');
  t.equal(after.metadata.generation, before.metadata.generation, 'and unchanged');
});

t.test('publishSample under another namespace (bench/pipeline.ts): an OCMComponent there reads and verifies its own copy', async (t) => {
  const other = 'sample-copy';
  const keys = ensureKeys(join(root, 'examples', '.keys'));
  const r = await publishSample(client, registry, { privateKeyPem: keys.privateKeyPem, namespace: other });
  t.equal(r.repositoryUrl, `${registry}/${other}/ocm`, 'the component under the namespace');
  t.equal((await client.getManifest(`${registry}/${other}/images/podinfo:6.8.0`)).manifest.layers.length, 1, 'and its image');
  const comp = { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: { name: 'podinfo', namespace: other }, spec: { interval: '10m', name: 'ocm.software/demos/podinfo', version: '6.8.x', repository: { url: r.repositoryUrl }, verify: [{ signature: 'ocm-example', secretRef: { name: 'ocm-example-key' } }] } };
  const secret = { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'ocm-example-key', namespace: other }, stringData: { 'ocm-example': keys.publicKeyPem } };
  const a = await s.kubectl(['apply', '-f', '-'], { input: yamlDocs({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: other } }, secret, comp) });
  t.equal(a.code, 0, a.stderr);
  const ready = await waitFor('the copy Ready', async () => {
    const o = await json(['get', 'ocmcomponent', 'podinfo', '-n', other]);
    return o.status?.conditions?.find((c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True') ? o : undefined;
  });
  t.equal(ready.status.verified, true, 'the signature verified');
  t.match(ready.status.conditions.find((c: { type: string }) => c.type === 'Verified').message, /digests of 3 stored resources/, 'the image in the copy checked too');
});
