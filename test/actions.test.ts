// The Action and provider contract beyond the sample workflow: external providers (a kind of
// another API group whose status follows the contract; its snapshot is pulled and its digest
// verified), an input snapshot without the server's attestation is refused, and cycles and
// missing inputs are conditions.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { packSnapshot, pushSnapshot } from '../registry/snapshot.js';
import { startServer, tempDir, type TestServer } from './helpers/server.js';

const GV = 'delivery.ocm.software/v1alpha1';
let s: TestServer;
let registry: string;
let client: OciClient;

const yaml = (...objs: unknown[]) => objs.map((o) => YAML.stringify(o)).join('---\n');
async function json(args: string[]) {
  const r = await s.kubectl([...args, '-o', 'json']);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}
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
  await publish(new OcmRepository(client, `${registry}/ocm`), { name: 'ocm.software/demo/acts', version: '1.0.0', provider: 'acme', resources: [{ name: 'cfg', type: 'blob', input: { type: 'utf8', text: 'a: 1\n', mediaType: 'application/yaml' } }] }, dir);
  await s.kubectl(['create', 'namespace', 'acts']);
  const r = await s.kubectl(['apply', '-f', '-'], {
    input: yaml({ apiVersion: GV, kind: 'OCMComponent', metadata: { name: 'acts', namespace: 'acts' }, spec: { name: 'ocm.software/demo/acts', version: '1.0.0', repository: { url: `${registry}/ocm` } } }),
  });
  if (r.code !== 0) throw new Error(r.stderr);
  await condition('ocmcomponent', 'acts', 'Succeeded');
});
t.teardown(() => s?.stop());

t.test('an external Source provider: its contract status is validated and its snapshot verified', async (t) => {
  const packed = await packSnapshot({ files: { 'app.yaml': 'kind: External\n' } });
  const pushed = await pushSnapshot(client, { registry, namespace: 'acts', component: 'external', name: 'ext', provider: 'controller', tgz: packed.tgz });
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

t.test('an input without the server\'s attestation is refused; cycles and missing inputs are conditions', async (t) => {
  // A suspended Source (its reconciler leaves it alone) pointing at a snapshot pushed by someone else.
  const packed = await packSnapshot({ files: { 'deploy.yaml': 'image: x\n' } });
  const pushed = await pushSnapshot(client, { registry, namespace: 'acts', component: 'acts', name: 'forged', provider: 'none', tgz: packed.tgz });
  const objs = [
    { apiVersion: GV, kind: 'Source', metadata: { name: 'forged', namespace: 'acts' }, spec: { suspend: true, componentRef: { name: 'acts' }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: 'none' } } },
    { apiVersion: GV, kind: 'Snapshot', metadata: { name: 'forged', namespace: 'acts' }, spec: { identity: { componentName: 'ocm.software/demo/acts', componentVersion: '1.0.0' }, producerRef: { kind: 'Source', name: 'forged' } } },
    { apiVersion: GV, kind: 'Localization', metadata: { name: 'loc', namespace: 'acts' }, spec: { rules: [] } },
    { apiVersion: GV, kind: 'Action', metadata: { name: 'consume-forged', namespace: 'acts' }, spec: { componentRef: { name: 'acts' }, snapshotSourceRef: { kind: 'Source', name: 'forged' }, providerRef: { apiVersion: GV, kind: 'Localization', name: 'loc' } } },
    { apiVersion: GV, kind: 'Action', metadata: { name: 'cycle-a', namespace: 'acts' }, spec: { componentRef: { name: 'acts' }, snapshotSourceRef: { kind: 'Action', name: 'cycle-b' }, providerRef: { apiVersion: GV, kind: 'Localization', name: 'loc' } } },
    { apiVersion: GV, kind: 'Action', metadata: { name: 'cycle-b', namespace: 'acts' }, spec: { componentRef: { name: 'acts' }, snapshotSourceRef: { kind: 'Action', name: 'cycle-a' }, providerRef: { apiVersion: GV, kind: 'Localization', name: 'loc' } } },
    { apiVersion: GV, kind: 'Action', metadata: { name: 'orphan', namespace: 'acts' }, spec: { componentRef: { name: 'acts' }, snapshotSourceRef: { kind: 'Source', name: 'nowhere' }, providerRef: { apiVersion: GV, kind: 'Localization', name: 'loc' } } },
  ];
  const a = await s.kubectl(['apply', '-f', '-'], { input: yaml(...objs) });
  t.equal(a.code, 0, a.stderr);
  const st = (o: unknown) => ['--subresource', 'status', '--type', 'merge', '-p', JSON.stringify({ status: o })];
  t.equal((await s.kubectl(['patch', 'snapshot', 'forged', '-n', 'acts', ...st({ repositoryURL: `${registry}/${pushed.repository}`, tag: pushed.tag, digest: pushed.digest })])).code, 0);
  t.equal((await s.kubectl(['patch', 'source', 'forged', '-n', 'acts', ...st({ ready: true, snapshot: 'forged', digest: pushed.digest })])).code, 0);
  const forged = await condition('action', 'consume-forged', 'AttestationInvalid');
  t.match(forged.cond.message, /not attested/);
  t.equal((await json(['get', 'snapshots', '-n', 'acts', '-l', 'delivery.ocm.software/producer=action.consume-forged'])).items.length, 0, 'nothing downstream');
  const cycle = await condition('action', 'cycle-a', 'DependencyCycle');
  t.match(cycle.cond.message, /cycle-a → cycle-b → cycle-a/);
  await condition('action', 'orphan', 'InputNotFound');
});
