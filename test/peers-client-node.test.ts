// @kubernetes/client-node (the version in package-lock.json): typed APIs (CoreV1Api,
// CustomObjectsApi, VersionApi), informers (ListWatch) on core and custom resources, the Watch
// class, and KubernetesObjectApi create / read / list / patch (merge, strategic, server-side
// apply with force) / delete with a propagation policy.
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  KubernetesObjectApi,
  PatchStrategy,
  VersionApi,
  Watch,
  makeInformer,
  setHeaderOptions,
  type KubernetesObject,
  type ObjectCache,
  type V1ConfigMap,
} from '@kubernetes/client-node';
import { createRequire } from 'node:module';
import t from 'tap';
import { startServer, type TestServer } from './helpers/server.js';


const G = 'delivery.ocm.software';
const V = 'v1alpha1';
const NS = 'client-node';
const version = (createRequire(import.meta.url)('@kubernetes/client-node/package.json') as { version: string }).version;

let s: TestServer;
let kc: KubeConfig;
let core: CoreV1Api;
let custom: CustomObjectsApi;
let objects: KubernetesObjectApi;
t.before(async () => {
  s = await startServer();
  kc = new KubeConfig();
  kc.loadFromFile(s.kubeconfig);
  core = kc.makeApiClient(CoreV1Api);
  custom = kc.makeApiClient(CustomObjectsApi);
  objects = KubernetesObjectApi.makeApiClient(kc);
});
t.teardown(() => s?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(fn: () => boolean | Promise<boolean>, ms = 10_000) {
  const end = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() > end) return false;
    await sleep(50);
  }
  return true;
}
const component = (name: string, ver = '1.0.0') => ({
  apiVersion: `${G}/${V}`,
  kind: 'OCMComponent',
  metadata: { name, namespace: NS, labels: { peer: 'client-node' } },
  spec: { name: 'github.com/acme/app', version: ver, repository: { url: 'ghcr.io/acme' } },
});
async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (err) {
    if (err instanceof ApiException) return err.code;
    throw err;
  }
}

t.test(`client-node ${version}: VersionApi and typed CoreV1Api`, async (t) => {
  t.comment(`@kubernetes/client-node ${version}`);
  const v = await kc.makeApiClient(VersionApi).getCode();
  t.match(v.gitVersion, /^v\d+\.\d+/);

  const bare = await status(core.createNamespace({ body: { metadata: { name: NS } } }));
  t.equal(bare, 200, 'createNamespace({body: {metadata}}) without kind/apiVersion');
  t.equal((await core.readNamespace({ name: NS })).status?.phase, 'Active');

  const made = await core.createNamespacedConfigMap({ namespace: NS, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cn-cm', labels: { peer: 'client-node' } }, data: { a: '1' } } });
  t.ok(made.metadata?.uid);
  t.same((await core.readNamespacedConfigMap({ name: 'cn-cm', namespace: NS })).data, { a: '1' });
  const list = await core.listNamespacedConfigMap({ namespace: NS, labelSelector: 'peer=client-node' });
  t.same(list.items.map((i) => i.metadata?.name), ['cn-cm']);
  t.match(list.metadata?.resourceVersion, /^\d+$/);
  const cur = await core.readNamespacedConfigMap({ name: 'cn-cm', namespace: NS });
  cur.data = { ...cur.data, b: '2' };
  t.same((await core.replaceNamespacedConfigMap({ name: 'cn-cm', namespace: NS, body: cur })).data, { a: '1', b: '2' });
  t.equal(await status(core.replaceNamespacedConfigMap({ name: 'cn-cm', namespace: NS, body: { ...cur, data: { stale: 'x' } } })), 409, 'a stale replace conflicts');
  const patched = await core.patchNamespacedConfigMap({ name: 'cn-cm', namespace: NS, body: { data: { c: '3' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  t.same(patched.data, { a: '1', b: '2', c: '3' }, 'merge patch');
  const smp = await core.patchNamespacedConfigMap({ name: 'cn-cm', namespace: NS, body: { data: { d: '4' } } }, setHeaderOptions('Content-Type', PatchStrategy.StrategicMergePatch));
  t.same(smp.data, { a: '1', b: '2', c: '3', d: '4' }, 'strategic merge patch');
  const jp = await core.patchNamespacedConfigMap({ name: 'cn-cm', namespace: NS, body: [{ op: 'remove', path: '/data/a' }] }, setHeaderOptions('Content-Type', PatchStrategy.JsonPatch));
  t.same(jp.data, { b: '2', c: '3', d: '4' }, 'json patch');
  const bareCm = await status(core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'cn-bare' }, data: { x: 'y' } } as V1ConfigMap }));
  t.equal(bareCm, 200, 'a ConfigMap without kind/apiVersion');
  const del = await core.deleteNamespacedConfigMap({ name: 'cn-cm', namespace: NS });
  t.equal(del.kind, 'Status', 'delete returns a Status');
  t.equal(del.status, 'Success');
  t.equal(await status(core.readNamespacedConfigMap({ name: 'cn-cm', namespace: NS })), 404, 'gone');
});

t.test('CustomObjectsApi', async (t) => {
  const made = (await custom.createNamespacedCustomObject({ group: G, version: V, namespace: NS, plural: 'ocmcomponents', body: component('cn-comp') })) as KubernetesObject;
  t.ok(made.metadata?.uid);
  const got = (await custom.getNamespacedCustomObject({ group: G, version: V, namespace: NS, plural: 'ocmcomponents', name: 'cn-comp' })) as { spec: { version: string } };
  t.equal(got.spec.version, '1.0.0');
  const list = (await custom.listNamespacedCustomObject({ group: G, version: V, namespace: NS, plural: 'ocmcomponents', labelSelector: 'peer=client-node' })) as { kind: string; items: KubernetesObject[] };
  t.equal(list.kind, 'OCMComponentList');
  t.same(list.items.map((i) => i.metadata?.name), ['cn-comp']);
  // client-node 1.x sends custom object patches as JSON patch unless told otherwise.
  const jp = (await custom.patchNamespacedCustomObject({ group: G, version: V, namespace: NS, plural: 'ocmcomponents', name: 'cn-comp', body: [{ op: 'replace', path: '/spec/version', value: '1.1.0' }] })) as { spec: { version: string } };
  t.equal(jp.spec.version, '1.1.0', 'default (json) patch');
  const mp = (await custom.patchNamespacedCustomObject({ group: G, version: V, namespace: NS, plural: 'ocmcomponents', name: 'cn-comp', body: { spec: { version: '1.2.0' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch))) as { spec: { version: string } };
  t.equal(mp.spec.version, '1.2.0', 'merge patch');
  const st = (await custom.patchNamespacedCustomObjectStatus({ group: G, version: V, namespace: NS, plural: 'ocmcomponents', name: 'cn-comp', body: { status: { observedGeneration: 3 } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch))) as { status: { observedGeneration: number } };
  t.equal(st.status.observedGeneration, 3, 'status subresource');
  await custom.deleteNamespacedCustomObject({ group: G, version: V, namespace: NS, plural: 'ocmcomponents', name: 'cn-comp' });
  t.equal(await status(custom.getNamespacedCustomObject({ group: G, version: V, namespace: NS, plural: 'ocmcomponents', name: 'cn-comp' })), 404);
});

t.test('informers (ListWatch) on ConfigMaps and OCMComponents, and Watch', async (t) => {
  const events: string[] = [];
  const cms = makeInformer(kc, `/api/v1/namespaces/${NS}/configmaps`, () => core.listNamespacedConfigMap({ namespace: NS }));
  for (const ev of ['add', 'update', 'delete'] as const) cms.on(ev, (o: KubernetesObject) => events.push(`${ev} ${o.metadata?.name}`));
  const errors: unknown[] = [];
  cms.on('error', (e: unknown) => errors.push(e));
  await core.createNamespacedConfigMap({ namespace: NS, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cn-before' } } });
  await cms.start();
  t.ok(await until(() => events.includes('add cn-before')), 'the list fills the cache', { events });
  const cache = cms as unknown as ObjectCache<V1ConfigMap>; // makeInformer's ListWatch is also the cache
  t.ok(cache.get('cn-before', NS), 'cache lookup');
  await core.createNamespacedConfigMap({ namespace: NS, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cn-inf' }, data: { a: '1' } } });
  await core.patchNamespacedConfigMap({ name: 'cn-inf', namespace: NS, body: { data: { a: '2' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  await core.deleteNamespacedConfigMap({ name: 'cn-inf', namespace: NS });
  t.ok(await until(() => ['add cn-inf', 'update cn-inf', 'delete cn-inf'].every((e) => events.includes(e))), 'add, update, delete', { events });
  t.notOk(cache.get('cn-inf', NS), 'gone from the cache');
  t.same(errors, [], 'no informer errors while running'); // stop() itself reports an AbortError
  await cms.stop();

  const seen: string[] = [];
  const comps = makeInformer(kc, `/apis/${G}/${V}/namespaces/${NS}/ocmcomponents`, () => custom.listNamespacedCustomObject({ group: G, version: V, namespace: NS, plural: 'ocmcomponents' }) as never);
  comps.on('add', (o: KubernetesObject) => seen.push(`add ${o.metadata?.name}`));
  comps.on('update', (o: KubernetesObject) => seen.push(`update ${o.metadata?.name}`));
  await comps.start();
  await custom.createNamespacedCustomObject({ group: G, version: V, namespace: NS, plural: 'ocmcomponents', body: component('cn-inf') });
  await custom.patchNamespacedCustomObject({ group: G, version: V, namespace: NS, plural: 'ocmcomponents', name: 'cn-inf', body: { spec: { version: '2.0.0' } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
  t.ok(await until(() => seen.includes('add cn-inf') && seen.includes('update cn-inf')), 'custom resource informer', { seen });
  await comps.stop();

  // The Watch class on its own, from a resourceVersion.
  const rv = (await core.listNamespacedConfigMap({ namespace: NS })).metadata!.resourceVersion!;
  const got: string[] = [];
  const req = await new Watch(kc).watch(`/api/v1/namespaces/${NS}/configmaps`, { resourceVersion: rv, allowWatchBookmarks: true }, (type, o: KubernetesObject) => got.push(`${type} ${o.metadata?.name}`), () => undefined);
  await core.createNamespacedConfigMap({ namespace: NS, body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cn-watched' } } });
  t.ok(await until(() => got.includes('ADDED cn-watched')), 'Watch streams from the resourceVersion', { got });
  t.notOk(got.includes('ADDED cn-before'), 'and not what was there before');
  req.abort();
});

t.test('KubernetesObjectApi: create, read, list, patch, server-side apply, delete with propagation', async (t) => {
  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ko-cm', namespace: NS }, data: { a: '1' } };
  await objects.create(cm);
  t.same(((await objects.read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ko-cm', namespace: NS } })) as V1ConfigMap).data, { a: '1' });
  const l = await objects.list('v1', 'ConfigMap', NS);
  t.ok(l.items.some((i) => i.metadata?.name === 'ko-cm'));
  // KubernetesObjectApi.patch defaults to a strategic merge patch: fine for a ConfigMap.
  const p = (await objects.patch({ ...cm, data: { b: '2' } })) as V1ConfigMap;
  t.same(p.data, { a: '1', b: '2' }, 'strategic merge patch of a ConfigMap');

  await objects.create(component('ko-comp'));
  const mp = (await objects.patch(component('ko-comp', '1.5.0'), undefined, undefined, undefined, undefined, PatchStrategy.MergePatch)) as { spec: { version: string } };
  t.equal(mp.spec.version, '1.5.0', 'merge patch of a custom resource');
  t.equal(await status(objects.patch(component('ko-comp', '1.6.0'))), 415, 'a strategic merge patch of a custom resource is 415 (clients fall back)');

  // Server-side apply: create, conflict for another manager, force takes over.
  const a1 = (await objects.patch(component('ko-ssa', '1.0.0'), undefined, undefined, 'client-node-a', undefined, PatchStrategy.ServerSideApply)) as KubernetesObject & { spec: { version: string } };
  t.equal(a1.spec.version, '1.0.0', 'apply creates');
  t.ok(a1.metadata?.managedFields?.some((m) => m.manager === 'client-node-a' && m.operation === 'Apply'));
  t.equal(await status(objects.patch(component('ko-ssa', '2.0.0'), undefined, undefined, 'client-node-b', undefined, PatchStrategy.ServerSideApply)), 409, 'another manager conflicts');
  const a2 = (await objects.patch(component('ko-ssa', '2.0.0'), undefined, undefined, 'client-node-b', true, PatchStrategy.ServerSideApply)) as { spec: { version: string } };
  t.equal(a2.spec.version, '2.0.0', 'force=true takes the field');
  const ssaCm = (await objects.patch({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ko-ssa-cm', namespace: NS }, data: { k: 'v' } }, undefined, undefined, 'client-node-a', undefined, PatchStrategy.ServerSideApply)) as V1ConfigMap;
  t.same(ssaCm.data, { k: 'v' }, 'server-side apply of a ConfigMap');

  // Delete with propagationPolicy=Foreground (issue 13 item 6): the owner waits for its blocking dependent.
  const owner = (await objects.read({ apiVersion: `${G}/${V}`, kind: 'OCMComponent', metadata: { name: 'ko-comp', namespace: NS } })) as KubernetesObject;
  await objects.create({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ko-dep', namespace: NS, finalizers: ['example.com/hold'], ownerReferences: [{ apiVersion: `${G}/${V}`, kind: 'OCMComponent', name: 'ko-comp', uid: owner.metadata!.uid!, blockOwnerDeletion: true }] } });
  await objects.delete(owner, undefined, undefined, undefined, undefined, 'Foreground');
  const ownerHeader = { apiVersion: `${G}/${V}`, kind: 'OCMComponent', metadata: { name: 'ko-comp', namespace: NS } };
  const waiting = (await objects.read(ownerHeader)) as KubernetesObject;
  t.ok(waiting.metadata?.deletionTimestamp, 'the owner has a deletionTimestamp');
  t.ok(waiting.metadata?.finalizers?.includes('foregroundDeletion'), 'and the foregroundDeletion finalizer');
  t.ok(await until(async () => !!((await objects.read({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ko-dep', namespace: NS } })) as KubernetesObject).metadata?.deletionTimestamp), 'the dependent is being deleted');
  await objects.patch({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'ko-dep', namespace: NS, finalizers: null } } as never, undefined, undefined, undefined, undefined, PatchStrategy.MergePatch);
  t.ok(await until(async () => (await status(objects.read(ownerHeader))) === 404), 'then the owner goes');
  await objects.delete(cm);
  t.equal(await status(objects.read(cm)), 404);
});
