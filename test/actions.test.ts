// The Action and provider contract beyond the sample workflow: external providers (a kind of
// another API group whose status follows the contract; its snapshot is pulled and its digest
// verified), an input snapshot without the server's attestation is refused, and cycles and
// missing inputs are conditions.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { packSnapshot, pushSnapshot } from '../registry/snapshot.js';
import { kubectlJson, yamlDocs, startServer, tempDir, type TestServer } from './helpers/server.js';

const GV = 'delivery.ocm.software/v1alpha1';
let s: TestServer;
let registry: string;
let client: OciClient;

const yaml = yamlDocs;
const json = (args: string[]) => kubectlJson(s, args);
async function condition(kind: string, name: string, reason: string) {
  for (let i = 0; i < 150; i++) {
    const o = await json(['get', kind, name, '-n', 'acts']);
    const c = o.status?.conditions?.find((x: { type: string }) => x.type === 'Ready');
    if (c?.reason === reason) return { obj: o, cond: c };
    await new Promise((r) => setTimeout(r, 200));
  }
  const o = await json(['get', kind, name, '-n', 'acts']);
  throw new Error(`${kind}/${name}: expected reason ${reason}, have ${JSON.stringify(o.status?.conditions)}`);
}

t.before(async () => {
  s = await startServer({ reconcilers: 'all' });
  registry = s.logs.map((l) => /"registry":"([^"]+)"/.exec(l)?.[1]).find(Boolean)!;
  const certs = join(s.dataDir, 'certs');
  client = new OciClient({ ca: readFileSync(join(certs, 'ca.crt'), 'utf8'), cert: readFileSync(join(certs, 'admin.crt'), 'utf8'), key: readFileSync(join(certs, 'admin.key'), 'utf8') });
  // A component in the embedded registry, so the OCMComponent becomes Ready.
  const dir = tempDir();
  await publish(new OcmRepository(client, `${registry}/acts/ocm`), { name: 'ocm.software/demo/acts', version: '1.0.0', provider: 'acme', resources: [{ name: 'cfg', type: 'blob', input: { type: 'utf8', text: 'a: 1\n', mediaType: 'application/yaml' } }] }, dir);
  await s.kubectl(['create', 'namespace', 'acts']);
  const r = await s.kubectl(['apply', '-f', '-'], {
    input: yaml({ apiVersion: GV, kind: 'OCMComponent', metadata: { name: 'acts', namespace: 'acts' }, spec: { name: 'ocm.software/demo/acts', version: '1.0.0', repository: { url: `${registry}/acts/ocm` } } }),
  });
  if (r.code !== 0) throw new Error(r.stderr);
  await condition('ocmcomponent', 'acts', 'Succeeded');
});
t.teardown(() => s?.stop());

t.test('an external Source provider: its contract status is validated and its snapshot verified', async (t) => {
  const packed = await packSnapshot({ files: { 'app.yaml': 'kind: External\n' } });
  const pushed = await pushSnapshot(client, { registry, namespace: 'acts', component: 'external', kind: 'Source', name: 'ext', provider: 'controller', tgz: packed.tgz });
  const ext = (name: string, status: Record<string, unknown>) => [
    { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'OCIRepository', metadata: { name, namespace: 'acts' }, spec: { url: 'oci://example' } },
    { apiVersion: GV, kind: 'Source', metadata: { name, namespace: 'acts' }, spec: { componentRef: { name: 'acts' }, providerRef: { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'OCIRepository', name } } },
    status,
  ];
  const cases: [string, Record<string, unknown>, string][] = [
    ['ext-good', { ready: true, snapshot: `${registry}/${pushed.repository}:${pushed.tag}`, digest: pushed.digest }, 'Succeeded'],
    ['ext-wrong-digest', { ready: true, snapshot: `${registry}/${pushed.repository}:${pushed.tag}`, digest: `sha256:${'0'.repeat(64)}` }, 'DigestMismatch'],
    ['ext-bad-status', { ready: 'yes' }, 'InvalidProviderStatus'],
    ['ext-not-ready', { ready: false }, 'ProviderNotReady'],
  ];
  for (const [name, status] of cases) {
    const [provider, source] = ext(name, status);
    t.equal((await s.kubectl(['apply', '-f', '-'], { input: yaml(provider, source) })).code, 0);
    const p = await s.kubectl(['patch', 'ocirepository', name, '-n', 'acts', '--subresource', 'status', '--type', 'merge', '-p', JSON.stringify({ status })]);
    t.equal(p.code, 0, p.stderr);
  }
  for (const [name, , reason] of cases) {
    const { obj, cond } = await condition('source', name, reason);
    t.pass(`${name}: ${reason}: ${cond.message}`);
    if (reason === 'Succeeded') {
      t.equal(obj.status.ready, true);
      const snap = await json(['get', 'snapshot', obj.status.snapshot, '-n', 'acts']);
      t.same(snap.spec.providerRef, { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'OCIRepository', name });
    } else t.not(obj.status.ready, true);
  }
});

t.test('Snapshots are the server\'s to write; an input without the server\'s attestation is refused; cycles and missing inputs are conditions', async (t) => {
  // Users may not create a Snapshot nor write its status (issue 16): 405, as kube answers a verb a resource does not serve.
  const forged = { apiVersion: GV, kind: 'Snapshot', metadata: { name: 'forged', namespace: 'acts' }, spec: { identity: { componentName: 'ocm.software/demo/acts', componentVersion: '1.0.0' }, producerRef: { kind: 'Source', name: 'forged' } } };
  const made = await s.kubectl(['create', '-f', '-'], { input: yaml(forged) });
  t.not(made.code, 0, 'kubectl create snapshot is refused');
  t.match(made.stderr, /MethodNotAllowed|does not allow this method/);
  const raw = await s.request('POST', `/apis/${GV}/namespaces/acts/snapshots`, { body: forged });
  t.equal(raw.status, 405);
  t.match(raw.json(), { kind: 'Status', code: 405, reason: 'MethodNotAllowed' }, 'a Status, even for system:masters');

  // A real snapshot whose attestation is then removed from the registry.
  const objs = [
    { apiVersion: GV, kind: 'OCMResource', metadata: { name: 'cfg', namespace: 'acts' }, spec: { resource: 'cfg' } },
    { apiVersion: GV, kind: 'Source', metadata: { name: 'real', namespace: 'acts' }, spec: { componentRef: { name: 'acts' }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: 'cfg' } } },
  ];
  t.equal((await s.kubectl(['apply', '-f', '-'], { input: yaml(...objs) })).code, 0);
  const real = await condition('source', 'real', 'Succeeded');
  const snap = await json(['get', 'snapshot', real.obj.status.snapshot, '-n', 'acts']);
  for (const p of [['patch', 'snapshot', snap.metadata.name, '-n', 'acts', '--subresource', 'status', '--type', 'merge', '-p', '{"status":{"tag":"1"}}'], ['label', 'snapshot', snap.metadata.name, '-n', 'acts', 'x=y']]) {
    const r = await s.kubectl(p);
    t.not(r.code, 0, `kubectl ${p[0]} of a Snapshot${p.includes('status') ? '\'s status' : ''} is refused`);
    t.match(r.stderr, /MethodNotAllowed|does not allow this method/);
  }
  await client.deleteManifest(`${snap.status.repositoryURL}@${snap.status.attestation.digest}`);
  const more = [
    { apiVersion: GV, kind: 'Localization', metadata: { name: 'loc', namespace: 'acts' }, spec: { rules: [] } },
    { apiVersion: GV, kind: 'Action', metadata: { name: 'consume-unattested', namespace: 'acts' }, spec: { componentRef: { name: 'acts' }, snapshotSourceRef: { kind: 'Source', name: 'real' }, providerRef: { apiVersion: GV, kind: 'Localization', name: 'loc' } } },
    { apiVersion: GV, kind: 'Action', metadata: { name: 'cycle-a', namespace: 'acts' }, spec: { componentRef: { name: 'acts' }, snapshotSourceRef: { kind: 'Action', name: 'cycle-b' }, providerRef: { apiVersion: GV, kind: 'Localization', name: 'loc' } } },
    { apiVersion: GV, kind: 'Action', metadata: { name: 'cycle-b', namespace: 'acts' }, spec: { componentRef: { name: 'acts' }, snapshotSourceRef: { kind: 'Action', name: 'cycle-a' }, providerRef: { apiVersion: GV, kind: 'Localization', name: 'loc' } } },
    { apiVersion: GV, kind: 'Action', metadata: { name: 'orphan', namespace: 'acts' }, spec: { componentRef: { name: 'acts' }, snapshotSourceRef: { kind: 'Source', name: 'nowhere' }, providerRef: { apiVersion: GV, kind: 'Localization', name: 'loc' } } },
  ];
  const a = await s.kubectl(['apply', '-f', '-'], { input: yaml(...more) });
  t.equal(a.code, 0, a.stderr);
  const unattested = await condition('action', 'consume-unattested', 'AttestationInvalid');
  t.match(unattested.cond.message, /not attested/);
  t.equal((await json(['get', 'snapshots', '-n', 'acts', '-l', 'delivery.ocm.software/producer=action.consume-unattested'])).items.length, 0, 'nothing downstream');
  const cycle = await condition('action', 'cycle-a', 'DependencyCycle');
  t.match(cycle.cond.message, /cycle-a → cycle-b → cycle-a/);
  await condition('action', 'orphan', 'InputNotFound');
});
