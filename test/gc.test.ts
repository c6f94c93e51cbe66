// Deletion propagation as kube does it, driven with real kubectl --cascade. Read from:
//  - k8s.io/apiserver pkg/registry/generic/registry/store.go (shouldOrphanDependents,
//    shouldDeleteDependents, deletionFinalizersForGarbageCollection, markAsDeleting,
//    updateForGracefulDeletionAndFinalizers): which of the `orphan` / `foregroundDeletion`
//    finalizers a delete leaves, from the DeleteOptions, then the object's own finalizers;
//  - k8s.io/kubernetes pkg/controller/garbagecollector/garbagecollector.go (attemptToDeleteItem,
//    processDeletingDependentsItem, orphanDependents, the cycle "unblock" step) and graph_builder.go;
//  - k8s.io/apimachinery pkg/apis/meta/v1/validation ValidateDeleteOptions (422 on DeleteOptions).
import t from 'tap';
import { startServer, type TestServer } from './helpers/server.js';

let s: TestServer;
t.before(async () => {
  s = await startServer();
});
t.teardown(() => s?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function eventually<T>(fn: () => Promise<T | undefined>, ms = 15_000): Promise<T | undefined> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined || Date.now() > until) return v;
    await sleep(100);
  }
}

const NS = 'default';
const cmPath = (name = '') => `/api/v1/namespaces/${NS}/configmaps${name ? `/${name}` : ''}`;
type Obj = { metadata: { name: string; uid: string; finalizers?: string[]; deletionTimestamp?: string; ownerReferences?: { uid: string; name: string; blockOwnerDeletion?: boolean }[] } };

async function cm(name: string, opts: { owners?: Obj[]; block?: boolean; finalizers?: string[] } = {}): Promise<Obj> {
  const ownerReferences = opts.owners?.map((o) => ({ apiVersion: 'v1', kind: 'ConfigMap', name: o.metadata.name, uid: o.metadata.uid, ...(opts.block ? { blockOwnerDeletion: true } : {}) }));
  const r = await s.request('POST', cmPath(), {
    body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ...(ownerReferences ? { ownerReferences } : {}), ...(opts.finalizers ? { finalizers: opts.finalizers } : {}) }, data: { k: name } },
  });
  if (r.status !== 201) throw new Error(`create ${name}: ${r.status} ${r.body}`);
  return r.json();
}
async function get(name: string): Promise<Obj | undefined> {
  const r = await s.request('GET', cmPath(name));
  return r.status === 200 ? r.json() : undefined;
}
const gone = (name: string, ms?: number) => eventually(async () => ((await get(name)) ? undefined : true), ms);
async function release(name: string) {
  const r = await s.request('PATCH', cmPath(name), { body: '{"metadata":{"finalizers":null}}', headers: { 'content-type': 'application/merge-patch+json' } });
  if (r.status !== 200 && r.status !== 404) throw new Error(`release ${name}: ${r.status} ${r.body}`);
}
const HOLD = 'example.com/hold';

t.test('kubectl delete --cascade=orphan keeps the dependents and removes only the reference to the owner', async (t) => {
  const owner = await cm('o-owner', { finalizers: [HOLD] });
  const other = await cm('o-other');
  const dep = await cm('o-dep', { owners: [owner, other] });
  const r = await s.kubectl(['delete', 'configmap', 'o-owner', '-n', NS, '--cascade=orphan', '--wait=false']);
  t.equal(r.code, 0, r.stderr);
  // The owner keeps its own finalizer; the GC's `orphan` finalizer goes once the dependents are orphaned.
  const held = await eventually(async () => {
    const o = await get('o-owner');
    return o && !o.metadata.finalizers?.includes('orphan') ? o : undefined;
  });
  t.ok(held?.metadata.deletionTimestamp, 'the owner is being deleted');
  t.same(held?.metadata.finalizers, [HOLD]);
  const d = await get('o-dep');
  t.ok(d, 'the dependent is still there');
  t.same(d?.metadata.ownerReferences?.map((x) => x.uid), [other.metadata.uid], 'only the reference to the deleted owner is gone');
  t.equal(d?.metadata.uid, dep.metadata.uid);
  await release('o-owner');
  t.ok(await gone('o-owner'));
  await sleep(500);
  t.ok(await get('o-dep'), 'the orphan stays after the owner is gone');

  // With kubectl waiting (the default) it returns once the owner is gone; the dependent stays.
  const owner2 = await cm('o2-owner');
  await cm('o2-dep', { owners: [owner2] });
  const r2 = await s.kubectl(['delete', 'configmap', 'o2-owner', '-n', NS, '--cascade=orphan', '--timeout=20s']);
  t.equal(r2.code, 0, r2.stderr);
  t.notOk(await get('o2-owner'));
  const d2 = await get('o2-dep');
  t.ok(d2, 'dependent kept');
  t.equal(d2?.metadata.ownerReferences, undefined, 'its only owner reference is removed');
});

t.test('kubectl delete (background, the default) removes the owner at once, then its dependents and theirs', async (t) => {
  const owner = await cm('b-owner');
  const child = await cm('b-child', { owners: [owner] });
  await cm('b-grandchild', { owners: [child] });
  const other = await cm('b-other');
  await cm('b-shared', { owners: [owner, other] });
  const r = await s.kubectl(['delete', 'configmap', 'b-owner', '-n', NS, '--cascade=background']);
  t.equal(r.code, 0, r.stderr);
  t.notOk(await get('b-owner'), 'the owner is gone when the delete returns');
  t.ok(await gone('b-child'));
  t.ok(await gone('b-grandchild'), 'dependents of dependents go too');
  // An object with another live owner is not collected; the dead reference is dropped.
  const shared = await eventually(async () => {
    const o = await get('b-shared');
    return o?.metadata.ownerReferences?.length === 1 ? o : undefined;
  });
  t.same(shared?.metadata.ownerReferences?.map((x) => x.uid), [other.metadata.uid]);
});

t.test('kubectl delete --cascade=foreground: deletionTimestamp and foregroundDeletion on the owner until blocking dependents are gone', async (t) => {
  const owner = await cm('f-owner');
  await cm('f-blocking', { owners: [owner], block: true, finalizers: [HOLD] });
  await cm('f-loose', { owners: [owner] });
  const r = await s.kubectl(['delete', 'configmap', 'f-owner', '-n', NS, '--cascade=foreground', '--wait=false']);
  t.equal(r.code, 0, r.stderr);
  const o = await get('f-owner');
  t.ok(o?.metadata.deletionTimestamp, 'the owner stays, with a deletionTimestamp');
  t.ok(o?.metadata.finalizers?.includes('foregroundDeletion'), 'and the foregroundDeletion finalizer');
  t.ok(await gone('f-loose'), 'a non-blocking dependent is deleted too');
  const b = await eventually(async () => {
    const x = await get('f-blocking');
    return x?.metadata.deletionTimestamp ? x : undefined;
  });
  t.ok(b, 'the blocking dependent is being deleted (its own finalizer holds it)');
  await sleep(500);
  t.ok((await get('f-owner'))?.metadata.deletionTimestamp, 'the owner waits for the blocking dependent');
  await release('f-blocking');
  t.ok(await gone('f-blocking'));
  t.ok(await gone('f-owner'), 'then the owner goes');

  // kubectl's default --wait returns once the whole tree is gone.
  const o2 = await cm('f2-owner');
  const c2 = await cm('f2-child', { owners: [o2], block: true });
  await cm('f2-grandchild', { owners: [c2], block: true });
  const r2 = await s.kubectl(['delete', 'configmap', 'f2-owner', '-n', NS, '--cascade=foreground', '--timeout=30s']);
  t.equal(r2.code, 0, r2.stderr);
  t.notOk(await get('f2-child'), 'the blocking child is gone before the owner');
  t.notOk(await get('f2-grandchild'), 'and its own blocking child before it');
});

t.test('cycles of owner references do not hang a foreground deletion', async (t) => {
  // A <-> B, both blocking: the GC makes the inner references non-blocking (garbagecollector.go).
  const a = await cm('c-a');
  const b = await cm('c-b', { owners: [a], block: true });
  const pa = await s.request('PATCH', cmPath('c-a'), {
    body: JSON.stringify({ metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'c-b', uid: b.metadata.uid, blockOwnerDeletion: true }] } }),
    headers: { 'content-type': 'application/merge-patch+json' },
  });
  t.equal(pa.status, 200, pa.body);
  const r = await s.kubectl(['delete', 'configmap', 'c-a', '-n', NS, '--cascade=foreground', '--timeout=30s']);
  t.equal(r.code, 0, r.stderr);
  t.ok(await gone('c-b'));

  // A three-cycle and an object that owns itself.
  const x = await cm('c3-x');
  const y = await cm('c3-y', { owners: [x], block: true });
  const z = await cm('c3-z', { owners: [y], block: true });
  await s.request('PATCH', cmPath('c3-x'), {
    body: JSON.stringify({ metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'c3-z', uid: z.metadata.uid, blockOwnerDeletion: true }] } }),
    headers: { 'content-type': 'application/merge-patch+json' },
  });
  const r3 = await s.kubectl(['delete', 'configmap', 'c3-x', '-n', NS, '--cascade=foreground', '--timeout=30s']);
  t.equal(r3.code, 0, r3.stderr);
  t.ok(await gone('c3-y'));
  t.ok(await gone('c3-z'));
  // An object that owns itself (blocking): foreground and orphan deletes both finish.
  for (const cascade of ['foreground', 'orphan', 'background']) {
    const self = await cm(`c-self-${cascade}`);
    const p = await s.request('PATCH', cmPath(self.metadata.name), {
      body: JSON.stringify({ metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: self.metadata.name, uid: self.metadata.uid, blockOwnerDeletion: true }] } }),
      headers: { 'content-type': 'application/merge-patch+json' },
    });
    t.equal(p.status, 200, p.body);
    const r4 = await s.kubectl(['delete', 'configmap', self.metadata.name, '-n', NS, `--cascade=${cascade}`, '--timeout=20s']);
    t.equal(r4.code, 0, `${cascade}: ${r4.stderr}`);
    t.notOk(await get(self.metadata.name));
  }
});

t.test('DeleteOptions: body, query, the deprecated orphanDependents, changing the policy of a pending delete', async (t) => {
  const owner = await cm('d-owner', { finalizers: [HOLD] });
  await cm('d-dep', { owners: [owner], block: true, finalizers: [HOLD] });
  // Dry run: the answer shows the finalizer, nothing is stored.
  const dry = await s.request('DELETE', `${cmPath('d-owner')}?dryRun=All&propagationPolicy=Foreground`);
  t.equal(dry.status, 200, dry.body);
  t.ok(dry.json().metadata.finalizers.includes('foregroundDeletion'));
  t.notOk((await get('d-owner'))?.metadata.deletionTimestamp, 'dry run stores nothing');
  // Bad options are 422 on DeleteOptions, as ValidateDeleteOptions answers.
  const bad = await s.request('DELETE', cmPath('d-owner'), { body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Sideways' } });
  t.equal(bad.status, 422, bad.body);
  t.match(bad.json().message, /propagationPolicy: Unsupported value: "Sideways"/);
  const both = await s.request('DELETE', `${cmPath('d-owner')}?orphanDependents=true`, { body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Foreground' } });
  t.equal(both.status, 422, both.body);
  t.match(both.json().message, /orphanDependents and deletionPropagation cannot be both set/);
  // Foreground from the body; the owner waits on the held blocking dependent.
  const fg = await s.request('DELETE', cmPath('d-owner'), { body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Foreground' } });
  t.equal(fg.status, 200, fg.body);
  t.same(fg.json().metadata.finalizers, [HOLD, 'foregroundDeletion']);
  t.ok(await eventually(async () => ((await get('d-dep'))?.metadata.deletionTimestamp ? true : undefined)));
  // A second delete with another policy swaps the GC finalizer (kube re-runs
  // deletionFinalizersForGarbageCollection on an object with pending finalizers).
  const or = await s.request('DELETE', `${cmPath('d-owner')}?orphanDependents=true`);
  t.equal(or.status, 200, or.body);
  t.same(or.json().metadata.finalizers, [HOLD, 'orphan']);
  const owner2 = await eventually(async () => {
    const o = await get('d-owner');
    return o && o.metadata.finalizers?.length === 1 ? o : undefined;
  });
  t.same(owner2?.metadata.finalizers, [HOLD], 'the orphan finalizer is done');
  t.equal((await get('d-dep'))?.metadata.ownerReferences, undefined, 'the dependent is orphaned');
  // Both GC finalizers at once are invalid (ValidateFinalizers).
  const twice = await s.request('POST', cmPath(), { body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'd-both', finalizers: ['orphan', 'foregroundDeletion'] } } });
  t.equal(twice.status, 422, twice.body);
  t.match(twice.json().message, /finalizer orphan and foregroundDeletion cannot be both set/);
  await release('d-owner');
  await release('d-dep');
  t.ok(await gone('d-owner'));
  t.ok(await gone('d-dep'));
});

t.test('references the GC cannot resolve keep the object, as in kube', async (t) => {
  // An owner kind this server does not serve (kube: the REST mapping fails, the item is retried, never deleted).
  const r = await s.request('POST', cmPath(), {
    body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'u-dep', ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', uid: '6b0b8d0e-0000-4000-8000-000000000000' }] } },
  });
  t.equal(r.status, 201, r.body);
  // A dangling reference to a served kind is collected.
  const r2 = await s.request('POST', cmPath(), {
    body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'u-dangling', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'nobody', uid: '6b0b8d0e-0000-4000-8000-000000000001' }] } },
  });
  t.equal(r2.status, 201, r2.body);
  t.ok(await gone('u-dangling'));
  t.ok(await get('u-dep'), 'the object with an unresolvable owner stays');
});
