// The Flux deployers (KustomizationTemplate, HelmReleaseTemplate) against a real standalone server:
// the Action and provider objects are created with kubectl, the input snapshot is pushed to the
// server's own registry, `run` writes through the host-cluster client, and kubectl checks what the
// server stores (the OCIRepository, Kustomization and HelmRelease kinds it serves standalone).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { KubeObject } from '../kinds/types.js';
import { archiveToFiles } from '../providers/content.js';
import { FluxProviderError, inClusterURL, isSubset, labelValue, registryHost } from '../providers/flux.js';
import { HELM_CHART_MEDIA_TYPE, HELM_CONFIG_MEDIA_TYPE, helmReleaseTemplateProvider, packageChart } from '../providers/helmreleasetemplate.js';
import { kustomizationTemplateProvider } from '../providers/kustomizationtemplate.js';
import type { ActionContext, Files } from '../providers/types.js';
import { ReconcileError } from '../reconcilers/context.js';
import { HostCluster } from '../reconcilers/runtime/host.js';
import { digestOf, OciClient } from '../registry/client.js';
import { packSnapshot, pushSnapshot, SNAPSHOT_LAYER_MEDIA_TYPE } from '../registry/snapshot.js';
import { yamlDocs, startServer, type TestServer } from './helpers/server.js';

const NS = 'team-flux';
const GROUP_VERSION = 'delivery.ocm.software/v1alpha1';
const IN_CLUSTER = 'ocm-apiserver.ocm-system.svc:5001';
const TLS_SECRET = 'ocm-registry-tls';

let s: TestServer;
let host: HostCluster;
let client: OciClient;
let registry: string;
let timestamp = Math.floor(Date.now() / 1000);

const yaml = yamlDocs;

async function kubectl(args: string[], input?: string): Promise<string> {
  const r = await s.kubectl(args, input === undefined ? {} : { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const get = async (kind: string, name: string): Promise<any> => JSON.parse(await kubectl(['get', kind, name, '-n', NS, '-o', 'json']));
const absent = async (kind: string, name: string) => {
  const r = await s.kubectl(['get', kind, name, '-n', NS, '-o', 'name']);
  return r.code !== 0 && /NotFound|not found/.test(r.stderr);
};
async function waitFor(what: string, fn: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** An Action and its provider, created with kubectl and read back (uid, defaults). */
async function createAction(name: string, providerKind: 'KustomizationTemplate' | 'HelmReleaseTemplate', providerSpec: Record<string, unknown>) {
  await kubectl(['apply', '-f', '-'], yaml(
    { apiVersion: GROUP_VERSION, kind: providerKind, metadata: { name, namespace: NS }, spec: providerSpec },
    {
      apiVersion: GROUP_VERSION,
      kind: 'Action',
      metadata: { name, namespace: NS },
      spec: { componentRef: { name: 'podinfo' }, snapshotSourceRef: { kind: 'Source', name: 'manifests' }, providerRef: { apiVersion: GROUP_VERSION, kind: providerKind, name } },
    },
  ));
  return { action: (await get('action', name)) as KubeObject, provider: (await get(providerKind.toLowerCase(), name)) as KubeObject };
}

async function pushInput(name: string, files: Files) {
  const { tgz } = await packSnapshot({ files });
  const pushed = await pushSnapshot(client, { registry, namespace: NS, component: 'podinfo', kind: 'Source', name, provider: 'res', timestamp: ++timestamp, tgz });
  return { files, snapshot: { apiVersion: GROUP_VERSION, kind: 'Snapshot', metadata: { name: `${name}-${pushed.tag}`, namespace: NS } }, repositoryURL: `${registry}/${pushed.repository}`, tag: pushed.tag, digest: pushed.digest };
}

function context(action: KubeObject, provider: KubeObject, input: ActionContext['input']): ActionContext {
  return {
    action,
    provider,
    component: { apiVersion: GROUP_VERSION, kind: 'OCMComponent', metadata: { name: 'podinfo', namespace: NS } },
    descriptor: {} as ActionContext['descriptor'],
    repository: {} as ActionContext['repository'],
    componentVersion: { descriptor: {} as ActionContext['descriptor'], manifest: {}, manifestDigest: '' },
    input,
    readValue: async () => undefined,
    host,
    snapshotRegistry: { url: IN_CLUSTER, tlsSecretName: TLS_SECRET },
    snapshotClient: client,
    snapshotHost: registry,
  };
}

const manifests = (image: string): Files => ({
  'kubernetes/deployment.yaml': Buffer.from(`apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\nspec:\n  template:\n    spec:\n      containers:\n      - name: podinfo\n        image: ${image}\n`),
  'kubernetes/kustomization.yaml': Buffer.from('resources:\n- deployment.yaml\n'),
});

const chartFiles = (version: string, dir = 'podinfo'): Files => ({
  [`${dir}/Chart.yaml`]: Buffer.from(`apiVersion: v2\nname: podinfo\nversion: ${version}\nappVersion: 6.5.0\ndescription: Podinfo Helm chart for Kubernetes\nhome: https://github.com/stefanprodan/podinfo\nsources:\n- https://github.com/stefanprodan/podinfo\nkeywords: []\n`),
  [`${dir}/values.yaml`]: Buffer.from('replicaCount: 1\nimage:\n  repository: ghcr.io/stefanprodan/podinfo\n  tag: 6.5.0\n'),
  [`${dir}/templates/deployment.yaml`]: Buffer.from('apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n'),
  [`${dir}/.helmignore`]: Buffer.from('*.bak\n'),
});

const readyStatus = (name: string, generation: number, status: 'True' | 'False', extra: Record<string, unknown> = {}, message = 'Applied revision') =>
  JSON.stringify({
    status: {
      observedGeneration: generation,
      conditions: [{ type: 'Ready', status, reason: status === 'True' ? 'ReconciliationSucceeded' : 'ReconciliationFailed', message, lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z'), observedGeneration: generation }],
      ...extra,
    },
  });
const patchStatus = (kind: string, name: string, body: string) => kubectl(['patch', kind, name, '-n', NS, '--subresource', 'status', '--type', 'merge', '-p', body]);

t.before(async () => {
  s = await startServer();
  const ready = s.logs.map((l) => { try { return JSON.parse(l); } catch { return undefined; } }).find((j) => j?.registry && j?.msg?.includes('ready'));
  registry = ready.registry;
  const certs = join(s.dataDir, 'certs');
  client = new OciClient({ ca: readFileSync(join(certs, 'ca.crt'), 'utf8'), cert: readFileSync(join(certs, 'admin.crt'), 'utf8'), key: readFileSync(join(certs, 'admin.key'), 'utf8'), retries: 1 });
  host = HostCluster.load(s.kubeconfig);
  await kubectl(['create', 'namespace', NS]);
});
t.teardown(async () => {
  client?.close();
  await s?.stop();
});

t.test('helpers: registry host, in-cluster URL, label values, subset comparison', async (t) => {
  t.equal(registryHost('oci://reg.example:5001'), 'reg.example:5001');
  t.equal(registryHost('https://reg.example:5001/some/path'), 'reg.example:5001');
  t.equal(registryHost('ocm-apiserver.ocm-system.svc:5001'), 'ocm-apiserver.ocm-system.svc:5001');
  t.equal(inClusterURL('127.0.0.1:40123/ns/comp/src-res', 'oci://ocm-apiserver.ocm-system.svc:5001'), 'oci://ocm-apiserver.ocm-system.svc:5001/ns/comp/src-res');
  t.throws(() => inClusterURL('no-repository', IN_CLUSTER));
  t.equal(labelValue('deploy'), 'deploy');
  const long = labelValue('a'.repeat(100));
  t.ok(long.length <= 63 && /^[a-z0-9].*[a-z0-9]$/.test(long), 'a long name becomes a valid label value');
  t.not(labelValue('a'.repeat(100)), labelValue(`${'a'.repeat(99)}b`), 'long names stay distinct');
  t.ok(isSubset({ a: 1, b: { c: [1, { d: 2 }] } }, { a: 1, x: 2, b: { c: [1, { d: 2, e: 3 }] } }));
  t.notOk(isSubset({ a: 1, b: [1] }, { a: 1, b: [1, 2] }));
});

t.test('KustomizationTemplate', async (t) => {
  const template = {
    interval: '5m',
    path: './kubernetes',
    prune: true,
    targetNamespace: 'podinfo',
    timeout: '3m',
    wait: true,
    // Fields the kind does not declare are passed through as they are.
    postBuild: { substitute: { cluster: 'prod' } },
    patches: [{ patch: 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: podinfo\nspec:\n  replicas: 2\n', target: { kind: 'Deployment' } }],
    healthChecks: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'podinfo', namespace: 'podinfo' }],
  };
  let { action, provider } = await createAction('deploy', 'KustomizationTemplate', { template });
  const input1 = await pushInput('manifests', manifests('ghcr.io/stefanprodan/podinfo:6.5.0'));
  let out = await kustomizationTemplateProvider.run(context(action, provider, input1));
  t.equal(kustomizationTemplateProvider.kind, 'KustomizationTemplate');
  t.same(out.wrote, [`OCIRepository/${NS}/deploy`, `Kustomization/${NS}/deploy`], 'wrote both objects');
  t.equal(out.ready, true, 'ready right after writing without waitForReady');
  t.notOk(out.files, 'a deployer makes no snapshot');

  const repo = await get('ocirepository', 'deploy');
  const ks = await get('kustomization', 'deploy');
  const owner = { apiVersion: GROUP_VERSION, kind: 'Action', name: 'deploy', uid: action.metadata.uid, controller: true };
  await t.test('OCIRepository', async (t) => {
    t.equal(repo.apiVersion, 'source.toolkit.fluxcd.io/v1');
    t.equal(repo.spec.url, `oci://${IN_CLUSTER}/${input1.repositoryURL.slice(registry.length + 1)}`, 'url: the in-cluster registry host with the snapshot repository');
    t.same(repo.spec.ref, { tag: input1.tag, digest: input1.digest }, 'ref: pinned by digest, tag alongside');
    t.same(repo.spec.certSecretRef, { name: TLS_SECRET });
    t.same(repo.spec.layerSelector, { mediaType: SNAPSHOT_LAYER_MEDIA_TYPE, operation: 'extract' });
    t.equal(repo.spec.interval, '5m', 'interval from the template');
    t.same(repo.metadata.ownerReferences, [owner], 'owned by the Action');
    t.equal(repo.metadata.labels['delivery.ocm.software/action'], 'deploy');
    t.equal(repo.metadata.labels['app.kubernetes.io/managed-by'], 'ocm-apiserver');
  });
  await t.test('Kustomization', async (t) => {
    t.equal(ks.apiVersion, 'kustomize.toolkit.fluxcd.io/v1');
    t.same(ks.spec, { ...template, sourceRef: { kind: 'OCIRepository', name: 'deploy' } }, 'the template passed through, sourceRef set');
    t.same(ks.metadata.ownerReferences, [owner]);
    t.equal(ks.metadata.labels['delivery.ocm.software/action'], 'deploy');
  });

  await t.test('unchanged input writes nothing', async (t) => {
    out = await kustomizationTemplateProvider.run(context(action, provider, input1));
    t.equal((await get('ocirepository', 'deploy')).metadata.resourceVersion, repo.metadata.resourceVersion);
    t.equal((await get('kustomization', 'deploy')).metadata.resourceVersion, ks.metadata.resourceVersion);
  });

  const input2 = await pushInput('manifests', manifests('ghcr.io/stefanprodan/podinfo:6.6.0'));
  await t.test('a new snapshot updates the OCIRepository in place', async (t) => {
    t.not(input2.digest, input1.digest);
    out = await kustomizationTemplateProvider.run(context(action, provider, input2));
    const repo2 = await get('ocirepository', 'deploy');
    const ks2 = await get('kustomization', 'deploy');
    t.equal(repo2.metadata.uid, repo.metadata.uid, 'same OCIRepository object');
    t.same(repo2.spec.ref, { tag: input2.tag, digest: input2.digest }, 'new ref');
    t.equal(ks2.metadata.uid, ks.metadata.uid, 'same Kustomization object');
    t.equal(ks2.metadata.resourceVersion, ks.metadata.resourceVersion, 'the Kustomization did not need to change');
  });

  await t.test('an edited template replaces the spec (removed fields go too)', async (t) => {
    const { healthChecks: _h, patches: _p, ...rest } = template;
    await kubectl(['patch', 'kustomizationtemplate', 'deploy', '-n', NS, '--type', 'json', '-p', JSON.stringify([{ op: 'remove', path: '/spec/template/healthChecks' }, { op: 'remove', path: '/spec/template/patches' }, { op: 'replace', path: '/spec/template/path', value: './other' }])]);
    provider = await get('kustomizationtemplate', 'deploy');
    out = await kustomizationTemplateProvider.run(context(action, provider, input2));
    const ks3 = await get('kustomization', 'deploy');
    t.same(ks3.spec, { ...rest, path: './other', sourceRef: { kind: 'OCIRepository', name: 'deploy' } });
    t.equal(ks3.metadata.uid, ks.metadata.uid);
  });

  await t.test('a hand-edited object is set right again; foreign labels and finalizers stay', async (t) => {
    await kubectl(['patch', 'kustomization', 'deploy', '-n', NS, '--type', 'merge', '-p', JSON.stringify({ metadata: { labels: { team: 'a' }, finalizers: ['finalizers.fluxcd.io'] }, spec: { prune: false, sourceRef: { kind: 'GitRepository', name: 'x' } } })]);
    await kustomizationTemplateProvider.run(context(action, provider, input2));
    const k = await get('kustomization', 'deploy');
    t.equal(k.spec.prune, true);
    t.same(k.spec.sourceRef, { kind: 'OCIRepository', name: 'deploy' });
    t.equal(k.metadata.labels.team, 'a');
    t.same(k.metadata.finalizers, ['finalizers.fluxcd.io']);
    await kubectl(['patch', 'kustomization', 'deploy', '-n', NS, '--type', 'json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
  });

  await t.test('waitForReady', async (t) => {
    await kubectl(['patch', 'kustomizationtemplate', 'deploy', '-n', NS, '--type', 'merge', '-p', '{"spec":{"waitForReady":true}}']);
    provider = await get('kustomizationtemplate', 'deploy');
    out = await kustomizationTemplateProvider.run(context(action, provider, input2));
    t.equal(out.ready, false, 'not ready before Flux reports');
    t.match(out.message, /waiting for Kustomization team-flux\/deploy to report Ready/);
    t.same(out.wrote, [`OCIRepository/${NS}/deploy`, `Kustomization/${NS}/deploy`]);

    const gen = (await get('kustomization', 'deploy')).metadata.generation as number;
    await patchStatus('kustomization', 'deploy', readyStatus('deploy', gen, 'False', {}, 'kustomize build failed: missing resource'));
    out = await kustomizationTemplateProvider.run(context(action, provider, input2));
    t.equal(out.ready, false);
    t.match(out.message, /not Ready \(False, ReconciliationFailed\): kustomize build failed/, "Flux's reason is passed on");

    await patchStatus('kustomization', 'deploy', readyStatus('deploy', gen - 1, 'True'));
    out = await kustomizationTemplateProvider.run(context(action, provider, input2));
    t.equal(out.ready, false, 'Ready for an older generation does not count');
    t.match(out.message, /observed generation/);

    await patchStatus('kustomization', 'deploy', readyStatus('deploy', gen, 'True', { lastAppliedRevision: `${input1.tag}@${input1.digest}` }));
    out = await kustomizationTemplateProvider.run(context(action, provider, input2));
    t.equal(out.ready, false, 'Ready with the previous snapshot does not count');
    t.match(out.message, new RegExp(`waiting for it to apply ${input2.digest}`));

    await patchStatus('kustomization', 'deploy', readyStatus('deploy', gen, 'True', { lastAppliedRevision: `${input2.tag}@${input2.digest}` }));
    out = await kustomizationTemplateProvider.run(context(action, provider, input2));
    t.equal(out.ready, true, 'ready once Flux applied this snapshot');
    t.match(out.message, /Kustomization team-flux\/deploy is Ready/);
    t.same(out.wrote, [`OCIRepository/${NS}/deploy`, `Kustomization/${NS}/deploy`]);
  });

  await t.test('cleanup deletes what it wrote; a second cleanup is fine', async (t) => {
    await kustomizationTemplateProvider.cleanup!({ action, provider, host });
    t.ok(await absent('ocirepository', 'deploy'));
    t.ok(await absent('kustomization', 'deploy'));
    await kustomizationTemplateProvider.cleanup!({ action, provider, host });
  });

  await t.test('the garbage collector deletes them with the Action', async (t) => {
    await kustomizationTemplateProvider.run(context(action, provider, input2));
    t.notOk(await absent('kustomization', 'deploy'));
    await kubectl(['delete', 'action', 'deploy', '-n', NS]);
    await waitFor('the Flux objects to go', async () => (await absent('kustomization', 'deploy')) && (await absent('ocirepository', 'deploy')));
    t.pass('both deleted');
  });

  await t.test('concurrent runs: one creates, the other finds it (409) and agrees', async (t) => {
    const c = await createAction('race', 'KustomizationTemplate', { template: { path: './kubernetes' } });
    const outs = await Promise.all([1, 2, 3].map(() => kustomizationTemplateProvider.run(context(c.action, c.provider, input2))));
    t.same(outs.map((o) => o.ready), [true, true, true]);
    t.same((await get('ocirepository', 'race')).spec.ref.digest, input2.digest);
    t.same((await get('kustomization', 'race')).spec.sourceRef, { kind: 'OCIRepository', name: 'race' });
  });

  await t.test('an object of the same name that the Action does not own is left alone', async (t) => {
    ({ action, provider } = await createAction('theirs', 'KustomizationTemplate', { template: { path: './' } }));
    await kubectl(['apply', '-f', '-'], yaml({ apiVersion: 'kustomize.toolkit.fluxcd.io/v1', kind: 'Kustomization', metadata: { name: 'theirs', namespace: NS }, spec: { interval: '1m', prune: false, sourceRef: { kind: 'GitRepository', name: 'theirs' } } }));
    const err = await kustomizationTemplateProvider.run(context(action, provider, input2)).then(() => undefined, (e) => e);
    t.type(err, FluxProviderError);
    t.type(err, ReconcileError, 'a ReconcileError, so the reason reaches the Action');
    t.equal(err?.reason, 'FluxObjectConflict');
    t.equal(err?.retry, false);
    t.match(err?.message, /Kustomization team-flux\/theirs exists and has no controller/);
    t.same((await get('kustomization', 'theirs')).spec.sourceRef, { kind: 'GitRepository', name: 'theirs' }, 'not changed');
    t.notOk(await absent('ocirepository', 'theirs'), 'the OCIRepository (free to write) was written');
    await kustomizationTemplateProvider.cleanup!({ action, provider, host });
    t.notOk(await absent('kustomization', 'theirs'), 'cleanup does not delete what is not ours');
    t.ok(await absent('ocirepository', 'theirs'), 'but deletes what is');
  });
});

t.test('HelmReleaseTemplate', async (t) => {
  const template = {
    interval: '15m',
    releaseName: 'podinfo',
    targetNamespace: 'podinfo',
    values: { replicaCount: 2, ingress: { enabled: true } },
    install: { createNamespace: true, remediation: { retries: 3 } },
    upgrade: { cleanupOnFail: true },
    driftDetection: { mode: 'enabled' },
  };
  const created = await createAction('helm', 'HelmReleaseTemplate', { template });
  const action = created.action;
  let provider = created.provider;
  const input = await pushInput('chart', chartFiles('6.5.4'));
  let out = await helmReleaseTemplateProvider.run(context(action, provider, input));
  t.equal(helmReleaseTemplateProvider.kind, 'HelmReleaseTemplate');
  t.same(out.wrote, [`OCIRepository/${NS}/helm`, `HelmRelease/${NS}/helm`]);
  t.equal(out.ready, true);
  t.match(out.message, /chart podinfo:6\.5\.4/);

  const repo = await get('ocirepository', 'helm');
  const hr = await get('helmrelease', 'helm');
  const chartRepo = repo.spec.url.replace(`oci://${IN_CLUSTER}/`, '');
  let chartDigest = repo.spec.ref.digest as string;

  await t.test('the chart is stored with Helm media types and content', async (t) => {
    t.match(repo.spec.url, new RegExp(`^oci://${IN_CLUSTER.replace(/\./g, '\\.')}/${NS}/podinfo/action/helm/helm/chart$`), 'the chart repository, as the cluster reaches it');
    const m = await client.getManifest(`${registry}/${chartRepo}:${repo.spec.ref.tag}`);
    t.equal(m.digest, chartDigest, 'the OCIRepository pins the chart manifest');
    t.equal(repo.spec.ref.tag, input.tag, 'tagged with the input snapshot tag');
    t.equal(m.manifest.config.mediaType, HELM_CONFIG_MEDIA_TYPE);
    t.equal(m.manifest.layers.length, 1);
    t.equal(m.manifest.layers[0].mediaType, HELM_CHART_MEDIA_TYPE);
    t.equal(m.manifest.annotations['org.opencontainers.image.title'], 'podinfo');
    t.equal(m.manifest.annotations['org.opencontainers.image.version'], '6.5.4');
    const config = JSON.parse((await client.getBlobBuffer(`${registry}/${chartRepo}`, m.manifest.config.digest)).toString('utf8'));
    t.same(config, {
      name: 'podinfo',
      home: 'https://github.com/stefanprodan/podinfo',
      sources: ['https://github.com/stefanprodan/podinfo'],
      version: '6.5.4',
      description: 'Podinfo Helm chart for Kubernetes',
      apiVersion: 'v2',
      appVersion: '6.5.0',
    }, 'config: the Chart.yaml metadata as Helm marshals it (empty fields omitted)');
    t.same(Object.keys(config), ['name', 'home', 'sources', 'version', 'description', 'apiVersion', 'appVersion'], "in Helm's field order");
    const tgz = await client.getBlobBuffer(`${registry}/${chartRepo}`, m.manifest.layers[0].digest);
    const files = await archiveToFiles(tgz);
    t.same(Object.keys(files).sort(), ['podinfo/.helmignore', 'podinfo/Chart.yaml', 'podinfo/templates/deployment.yaml', 'podinfo/values.yaml'], 'helm package layout: <name>/Chart.yaml ...');
    t.equal(files['podinfo/values.yaml'].toString(), input.files['podinfo/values.yaml'].toString());
  });

  await t.test('OCIRepository and HelmRelease', async (t) => {
    t.same(repo.spec.layerSelector, { mediaType: HELM_CHART_MEDIA_TYPE, operation: 'copy' });
    t.same(repo.spec.certSecretRef, { name: TLS_SECRET });
    t.equal(repo.spec.interval, '15m');
    t.equal(hr.apiVersion, 'helm.toolkit.fluxcd.io/v2');
    t.same(hr.spec, { ...template, chartRef: { kind: 'OCIRepository', name: 'helm' } }, 'the template passed through, chartRef set');
    const owner = { apiVersion: GROUP_VERSION, kind: 'Action', name: 'helm', uid: action.metadata.uid, controller: true };
    t.same(repo.metadata.ownerReferences, [owner]);
    t.same(hr.metadata.ownerReferences, [owner]);
    t.equal(hr.metadata.labels['delivery.ocm.software/action'], 'helm');
  });

  await t.test('the same chart again: same artifact, nothing rewritten', async (t) => {
    out = await helmReleaseTemplateProvider.run(context(action, provider, input));
    const again = await get('ocirepository', 'helm');
    t.equal(again.spec.ref.digest, chartDigest, 'packaging is deterministic');
    t.equal(again.metadata.resourceVersion, repo.metadata.resourceVersion);
    t.equal((await get('helmrelease', 'helm')).metadata.resourceVersion, hr.metadata.resourceVersion);
  });

  await t.test('a new chart version updates the OCIRepository in place', async (t) => {
    const input2 = await pushInput('chart', chartFiles('6.5.5'));
    out = await helmReleaseTemplateProvider.run(context(action, provider, input2));
    const repo2 = await get('ocirepository', 'helm');
    t.equal(repo2.metadata.uid, repo.metadata.uid);
    t.not(repo2.spec.ref.digest, chartDigest);
    t.equal(repo2.spec.ref.tag, input2.tag);
    const m = await client.getManifest(`${registry}/${chartRepo}@${repo2.spec.ref.digest}`);
    t.equal(m.manifest.annotations['org.opencontainers.image.version'], '6.5.5');
    chartDigest = repo2.spec.ref.digest;

    await kubectl(['patch', 'helmreleasetemplate', 'helm', '-n', NS, '--type', 'merge', '-p', '{"spec":{"waitForReady":true}}']);
    provider = await get('helmreleasetemplate', 'helm');
    out = await helmReleaseTemplateProvider.run(context(action, provider, input2));
    t.equal(out.ready, false);
    t.match(out.message, /waiting for HelmRelease team-flux\/helm to report Ready/);
    const gen = (await get('helmrelease', 'helm')).metadata.generation as number;
    await patchStatus('helmrelease', 'helm', readyStatus('helm', gen, 'True', { lastAttemptedRevision: '6.5.4', lastAttemptedRevisionDigest: repo.spec.ref.digest }, 'Helm upgrade succeeded'));
    out = await helmReleaseTemplateProvider.run(context(action, provider, input2));
    t.equal(out.ready, false, 'Ready with the previous chart does not count');
    await patchStatus('helmrelease', 'helm', readyStatus('helm', gen, 'True', { lastAttemptedRevision: '6.5.5', lastAttemptedRevisionDigest: chartDigest }, 'Helm upgrade succeeded'));
    out = await helmReleaseTemplateProvider.run(context(action, provider, input2));
    t.equal(out.ready, true);
    t.match(out.message, /HelmRelease team-flux\/helm is Ready: Helm upgrade succeeded/);
  });

  await t.test('a packaged chart (.tgz) in the snapshot is pushed byte for byte', async (t) => {
    const { tgz } = await packSnapshot({ files: chartFiles('1.2.3', 'mychart') });
    const packaged = await packageChart({ 'charts/mychart-1.2.3.tgz': tgz, 'README.md': Buffer.from('hi') });
    t.equal(packaged.metadata.name, 'podinfo', 'the name from Chart.yaml');
    t.equal(digestOf(packaged.tgz), digestOf(tgz));
    const input3 = await pushInput('chart', { 'charts/mychart-1.2.3.tgz': tgz });
    await helmReleaseTemplateProvider.run(context(action, provider, input3));
    const r = await get('ocirepository', 'helm');
    const m = await client.getManifest(`${registry}/${chartRepo}@${r.spec.ref.digest}`);
    t.equal(m.manifest.layers[0].digest, digestOf(tgz));
    t.equal(m.manifest.config.mediaType, HELM_CONFIG_MEDIA_TYPE);
  });

  await t.test('finding the chart', async (t) => {
    const root = await packageChart({ 'Chart.yaml': Buffer.from('apiVersion: v2\nname: root\nversion: 1.0\n'), 'templates/a.yaml': Buffer.from('a: 1\n'), 'charts/sub/Chart.yaml': Buffer.from('apiVersion: v2\nname: sub\nversion: 0.1.0\n') });
    t.equal(root.metadata.name, 'root');
    t.equal(root.metadata.version, '1.0', 'a YAML number becomes the string as written');
    t.same(Object.keys(await archiveToFiles(root.tgz)).sort(), ['root/Chart.yaml', 'root/charts/sub/Chart.yaml', 'root/templates/a.yaml'], 'subcharts come along');
    const noChart = await packageChart({ 'kubernetes/deployment.yaml': Buffer.from('a: 1\n') }).then(() => undefined, (e) => e);
    t.equal(noChart?.reason, 'NoHelmChart');
    t.equal(noChart?.retry, false);
    const two = await packageChart({ ...chartFiles('1.0.0', 'a'), ...chartFiles('1.0.0', 'b') }).then(() => undefined, (e) => e);
    t.equal(two?.reason, 'AmbiguousChart');
    const bad = await packageChart({ 'Chart.yaml': Buffer.from('name: x\n') }).then(() => undefined, (e) => e);
    t.equal(bad?.reason, 'InvalidChart');
    t.match(bad?.message, /no apiVersion/);

    const err = await helmReleaseTemplateProvider.run(context(action, provider, await pushInput('chart', manifests('x')))).then(() => undefined, (e) => e);
    t.equal(err?.reason, 'NoHelmChart', 'run reports a snapshot without a chart');
    const noClient = await helmReleaseTemplateProvider.run({ ...context(action, provider, input), snapshotClient: undefined }).then(() => undefined, (e) => e);
    t.equal(noClient?.reason, 'NoRegistryClient');
  });

  await t.test('cleanup deletes what it wrote', async (t) => {
    await helmReleaseTemplateProvider.cleanup!({ action, provider, host });
    t.ok(await absent('helmrelease', 'helm'));
    t.ok(await absent('ocirepository', 'helm'));
    await helmReleaseTemplateProvider.cleanup!({ action, provider, host });
  });
});
