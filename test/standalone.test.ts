// Standalone mode is a small host cluster: core v1 objects, namespaces with their lifecycle, the
// garbage collector, events written through the host-cluster client, and Flux objects stored.
import t from 'tap';
import { EventRecorder } from '../reconcilers/runtime/events.js';
import { HostCluster } from '../reconcilers/runtime/host.js';
import { startServer, type TestServer } from './helpers/server.js';

let s: TestServer;
t.before(async () => {
  s = await startServer();
});
t.teardown(() => s?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function eventually<T>(fn: () => Promise<T | undefined>, ms = 10_000): Promise<T | undefined> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined || Date.now() > until) return v;
    await sleep(100);
  }
}

const component = (ns: string, name: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    apiVersion: 'delivery.ocm.software/v1alpha1',
    kind: 'OCMComponent',
    metadata: { name, namespace: ns, ...extra },
    spec: { name: 'github.com/acme/app', version: '1.0.0', repository: { url: 'ghcr.io/acme' } },
  });

t.test('standard namespaces exist and objects need an existing namespace', async (t) => {
  const ns = await s.kubectl(['get', 'namespaces', '-o', 'name']);
  for (const n of ['default', 'kube-system', 'kube-public', 'ocm-system']) t.match(ns.stdout, `namespace/${n}`);
  const r = await s.kubectl(['apply', '-f', '-'], { input: component('nowhere', 'c') });
  t.not(r.code, 0);
  t.match(r.stderr, /namespaces "nowhere" not found/);
});

t.test('kubectl create secret generic and configmap, read back', async (t) => {
  const r = await s.kubectl(['create', 'secret', 'generic', 'creds', '--from-literal=username=u', '--from-literal=password=p4ss', '-n', 'default']);
  t.equal(r.code, 0, r.stderr);
  const pw = await s.kubectl(['get', 'secret', 'creds', '-n', 'default', '-o', 'jsonpath={.data.password}']);
  t.equal(Buffer.from(pw.stdout, 'base64').toString(), 'p4ss');
  const cm = await s.kubectl(['create', 'configmap', 'cfg', '--from-literal=a=1', '-n', 'default']);
  t.equal(cm.code, 0, cm.stderr);
  const list = await s.kubectl(['get', 'secrets,configmaps', '-n', 'default', '-o', 'name']);
  t.match(list.stdout, 'secret/creds');
  t.match(list.stdout, 'configmap/cfg');
});

t.test('deleting a namespace deletes its content; the namespace waits for finalizers', async (t) => {
  t.equal((await s.kubectl(['create', 'namespace', 'doomed'])).code, 0);
  t.equal((await s.kubectl(['apply', '-f', '-'], { input: component('doomed', 'held', { finalizers: ['example.com/hold'] }) })).code, 0);
  t.equal((await s.kubectl(['apply', '-f', '-'], { input: component('doomed', 'free') })).code, 0);
  const del = await s.kubectl(['delete', 'namespace', 'doomed', '--wait=false']);
  t.equal(del.code, 0, del.stderr);
  const phase = await eventually(async () => {
    const r = await s.kubectl(['get', 'ocmcomponents', '-n', 'doomed', '-o', 'name']);
    return r.stdout.includes('free') ? undefined : r.stdout;
  });
  t.equal(phase?.trim(), 'ocmcomponent.delivery.ocm.software/held', 'the free object is gone, the held one waits');
  const ns = await s.kubectl(['get', 'namespace', 'doomed', '-o', 'jsonpath={.status.phase}']);
  t.equal(ns.stdout, 'Terminating');
  const refused = await s.kubectl(['apply', '-f', '-'], { input: component('doomed', 'late') });
  t.not(refused.code, 0);
  t.match(refused.stderr, /unable to create new content in namespace doomed because it is being terminated/);
  await s.kubectl(['patch', 'ocmcomponent', 'held', '-n', 'doomed', '--type', 'merge', '-p', '{"metadata":{"finalizers":null}}']);
  const gone = await eventually(async () => ((await s.kubectl(['get', 'namespace', 'doomed'])).code !== 0 ? true : undefined));
  t.ok(gone, 'the namespace is gone once it is empty');
});

t.test('the garbage collector deletes dependents whose owners are gone', async (t) => {
  t.equal((await s.kubectl(['apply', '-f', '-'], { input: component('default', 'owner') })).code, 0);
  const uid = (await s.kubectl(['get', 'ocmcomponent', 'owner', '-n', 'default', '-o', 'jsonpath={.metadata.uid}'])).stdout;
  const ref = [{ apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', name: 'owner', uid }];
  t.equal((await s.kubectl(['apply', '-f', '-'], { input: component('default', 'dependent', { ownerReferences: ref }) })).code, 0);
  t.equal((await s.kubectl(['apply', '-f', '-'], { input: component('default', 'bystander') })).code, 0);
  t.equal((await s.kubectl(['delete', 'ocmcomponent', 'owner', '-n', 'default'])).code, 0);
  const left = await eventually(async () => {
    const r = await s.kubectl(['get', 'ocmcomponents', '-n', 'default', '-o', 'name']);
    return r.stdout.includes('dependent') ? undefined : r.stdout;
  });
  t.match(left, 'bystander');
  t.notMatch(left, 'dependent');
});

t.test('events written through the host-cluster client show in kubectl get events and describe', async (t) => {
  t.equal((await s.kubectl(['apply', '-f', '-'], { input: component('default', 'storied') })).code, 0);
  const obj = JSON.parse((await s.kubectl(['get', 'ocmcomponent', 'storied', '-n', 'default', '-o', 'json'])).stdout);
  const recorder = new EventRecorder(HostCluster.load(s.kubeconfig));
  await recorder.record(obj, 'Warning', 'VerificationFailed', 'signature acme does not verify');
  await recorder.record(obj, 'Warning', 'VerificationFailed', 'signature acme does not verify');
  await recorder.record(obj, 'Normal', 'Ready', 'component version 1.0.0 is ready');
  const ev = await s.kubectl(['get', 'events', '-n', 'default', '--field-selector', 'involvedObject.name=storied', '-o', 'json']);
  const items = JSON.parse(ev.stdout).items as { reason: string; count: number }[];
  t.equal(items.length, 2, 'a repeated event is counted, not duplicated');
  t.equal(items.find((i) => i.reason === 'VerificationFailed')?.count, 2);
  const d = await s.kubectl(['describe', 'ocmcomponent', 'storied', '-n', 'default']);
  t.equal(d.code, 0, d.stderr);
  t.match(d.stdout, /Events:/);
  t.match(d.stdout, /Warning\s+VerificationFailed\s+.*signature acme does not verify/);
  t.match(d.stdout, /Normal\s+Ready\s+.*component version 1\.0\.0 is ready/);
});

t.test('Flux objects are stored as written', async (t) => {
  const flux = `apiVersion: source.toolkit.fluxcd.io/v1
kind: OCIRepository
metadata: {name: podinfo, namespace: default}
spec: {interval: 1m, url: oci://ocm-apiserver.ocm-system.svc:5001/default/podinfo, ref: {tag: "1700000000"}}
---
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata: {name: podinfo, namespace: default}
spec: {interval: 10m, path: ./, prune: true, sourceRef: {kind: OCIRepository, name: podinfo}}
`;
  const r = await s.kubectl(['apply', '-f', '-'], { input: flux });
  t.equal(r.code, 0, r.stderr);
  const ks = JSON.parse((await s.kubectl(['get', 'kustomization', 'podinfo', '-n', 'default', '-o', 'json'])).stdout);
  t.same(ks.spec.sourceRef, { kind: 'OCIRepository', name: 'podinfo' });
  const repo = await s.kubectl(['get', 'ocirepositories.source.toolkit.fluxcd.io', '-n', 'default', '-o', 'jsonpath={.items[0].spec.url}']);
  t.equal(repo.stdout, 'oci://ocm-apiserver.ocm-system.svc:5001/default/podinfo');
});
