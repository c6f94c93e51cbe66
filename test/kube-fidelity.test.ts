// Kubernetes fidelity (issue 13): what kube-apiserver does, where real clients depend on it. Each
// test names the upstream file the expected behaviour was read from; where a real client shows
// the difference, the test drives that client (kubectl, the official Python client).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { CachingAuthorizer } from '../apiserver/auth.js';
import { startServer, type TestServer } from './helpers/server.js';

const PYTHON = '/usr/bin/python3';
let s: TestServer;
const dir = mkdtempSync(join(tmpdir(), 'ocm-fidelity-'));
const BOB = { Authorization: 'Bearer bobtoken' };

t.before(async () => {
  writeFileSync(join(dir, 'tokens.csv'), 'bobtoken,bob,1001,"devs"\n');
  // bob may list and get ConfigMaps in "team", never watch them
  writeFileSync(join(dir, 'policy.yaml'), "- users: [bob]\n  verbs: [get, list]\n  apiGroups: ['']\n  resources: [configmaps]\n  namespaces: [team]\n");
  s = await startServer({ args: ['--token-auth-file', join(dir, 'tokens.csv'), '--authorization-policy-file', join(dir, 'policy.yaml')] });
  for (const ns of ['team', 'py']) t.equal((await s.kubectl(['create', 'namespace', ns])).code, 0);
});
t.teardown(async () => {
  await s?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const cm = (ns: string, name: string, data: Record<string, string> = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data });
const lines = (body: string) => body.split('\n').filter((l) => l.trim() !== '').map((l) => JSON.parse(l));

function python(script: string, args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((res) => {
    execFile(PYTHON, ['-c', script, s.kubeconfig, ...args], { timeout: 60_000, env: { ...process.env, HOME: s.dataDir } }, (err, stdout, stderr) =>
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    );
  });
}

t.test('boolean query parameters are decoded as kube decodes them', async (t) => {
  // apimachinery/pkg/runtime/conversion.go, Convert_Slice_string_To_bool: "0" and any case of
  // "false" are false, every other value (the empty one included) is true; the first value counts.
  t.equal((await s.request('POST', '/api/v1/namespaces/team/configmaps', { body: cm('team', 'one') })).status, 201);
  const base = '/api/v1/namespaces/team/configmaps?timeoutSeconds=1&';
  for (const w of ['watch=True', 'watch=TRUE', 'watch=t', 'watch=1', 'watch=', 'watch', 'watch=yes', 'watch=1&watch=0']) {
    const r = await s.request('GET', base + w);
    t.equal(r.status, 200, w);
    const evs = lines(r.body);
    t.same(evs.map((e) => [e.type, e.object.metadata.name]), [['ADDED', 'one']], `${w} watches`);
  }
  for (const w of ['watch=0', 'watch=false', 'watch=False', 'watch=FALSE', 'watch=0&watch=1']) {
    const r = await s.request('GET', base + w);
    t.equal(r.status, 200, w);
    t.equal(r.json().kind, 'ConfigMapList', `${w} lists`);
  }
  const bm = lines((await s.request('GET', base + 'watch=True&allowWatchBookmarks=True&sendInitialEvents=True&resourceVersionMatch=NotOlderThan')).body);
  t.same(bm.map((e) => e.type), ['ADDED', 'BOOKMARK'], 'allowWatchBookmarks=True & sendInitialEvents=True');
  t.equal(bm[1].object.metadata.annotations['k8s.io/initial-events-end'], 'true');
});

t.test('a request is authorized as what it is served as (repeated parameters: the first value, everywhere)', async (t) => {
  // requestinfo.go reads watch from values[0], and so does the ListOptions decoding of the handler.
  const list = await s.request('GET', '/api/v1/namespaces/team/configmaps?watch=0&watch=1', { cert: null, headers: BOB });
  t.equal(list.status, 200, list.body);
  t.equal(list.json().kind, 'ConfigMapList');
  for (const q of ['watch=1&watch=0', 'watch=True', 'watch=', 'watch=yes']) {
    const r = await s.request('GET', `/api/v1/namespaces/team/configmaps?timeoutSeconds=1&${q}`, { cert: null, headers: BOB });
    t.equal(r.status, 403, `${q}: a watch, which bob may not do`);
    t.match(r.json().message, /cannot watch resource "configmaps"/);
  }
  const path = await s.request('GET', '/api/v1/watch/namespaces/team/configmaps?timeoutSeconds=1&watch=false', { cert: null, headers: BOB });
  t.equal(path.status, 403, 'the /watch/ path is a watch whatever ?watch says');
});

t.test('the deprecated /watch/ paths are served (Ruby kubeclient watches through them)', async (t) => {
  // apiserver/pkg/endpoints/installer.go registers WATCH on /watch/namespaces/{ns}/{plural}[/{name}]
  // and /watch/{plural}; a named one is the collection's watch with fieldSelector metadata.name
  // (handlers/get.go ListResource).
  t.equal((await s.request('POST', '/api/v1/namespaces/team/configmaps', { body: cm('team', 'two') })).status, 201);
  const named = lines((await s.request('GET', '/api/v1/watch/namespaces/team/configmaps/two?timeoutSeconds=1')).body);
  t.same(named.map((e) => [e.type, e.object.metadata.name]), [['ADDED', 'two']], 'only the named object');
  const all = lines((await s.request('GET', '/api/v1/watch/namespaces/team/configmaps?timeoutSeconds=1')).body);
  t.same(all.map((e) => e.object.metadata.name).sort(), ['one', 'two']);
  const wide = lines((await s.request('GET', '/api/v1/watch/configmaps?timeoutSeconds=1&labelSelector=none')).body);
  t.same(wide, [], 'cluster-wide, with a selector');
  const ns = lines((await s.request('GET', '/api/v1/watch/namespaces/team?timeoutSeconds=1')).body);
  t.same(ns.map((e) => [e.object.kind, e.object.metadata.name]), [['Namespace', 'team']], 'a cluster-scoped object by name');
  t.equal((await s.request('POST', '/apis/delivery.ocm.software/v1alpha1/namespaces/team/ocmcomponents', {
    body: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: { name: 'c' }, spec: { name: 'x.org/c', version: '1.0.0', repository: { url: 'ghcr.io/x' } } },
  })).status, 201);
  for (const p of ['/apis/delivery.ocm.software/v1alpha1/watch/ocmcomponents', '/apis/delivery.ocm.software/v1alpha1/watch/namespaces/team/ocmcomponents', '/apis/delivery.ocm.software/v1alpha1/watch/namespaces/team/ocmcomponents/c']) {
    const evs = lines((await s.request('GET', `${p}?timeoutSeconds=1`)).body);
    t.same(evs.map((e) => [e.type, e.object.metadata.name]), [['ADDED', 'c']], p);
  }
  const mismatch = await s.request('GET', '/api/v1/watch/namespaces/team/configmaps/two?fieldSelector=metadata.name%3Done');
  t.equal(mismatch.status, 400);
  t.match(mismatch.json().message, "fieldSelector metadata.name doesn't match requested name");
  t.equal((await s.request('DELETE', '/api/v1/watch/namespaces/team/configmaps/two')).status, 405);
  t.equal((await s.request('GET', '/api/v1/watch/namespaces/team/configmaps/two/status')).status, 404);
});

t.test('GET /version/ is /version', async (t) => {
  const a = await s.request('GET', '/version');
  const b = await s.request('GET', '/version/');
  t.equal(b.status, 200);
  t.same(b.json(), a.json());
});

t.test('the official Python client: watch, custom objects watch, DynamicClient server-side apply with force, VersionApi', async (t) => {
  const r = await python(`
import json, sys
from kubernetes import client, config, dynamic, watch
config.load_kube_config(config_file=sys.argv[1])
api = client.ApiClient()
v1 = client.CoreV1Api(api)
out = {'version': client.VersionApi(api).get_code().git_version}
v1.create_namespaced_config_map('py', {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'a'}, 'data': {'k': 'v'}})
w = watch.Watch()
out['core'] = [(e['type'], e['object'].metadata.name) for e in w.stream(v1.list_namespaced_config_map, namespace='py', timeout_seconds=1)]
co = client.CustomObjectsApi(api)
co.create_namespaced_custom_object('delivery.ocm.software', 'v1alpha1', 'py', 'ocmcomponents',
  {'apiVersion': 'delivery.ocm.software/v1alpha1', 'kind': 'OCMComponent', 'metadata': {'name': 'c'}, 'spec': {'name': 'x.org/c', 'version': '1.0.0', 'repository': {'url': 'ghcr.io/x'}}})
out['custom'] = [(e['type'], e['object']['metadata']['name']) for e in watch.Watch().stream(co.list_namespaced_custom_object, 'delivery.ocm.software', 'v1alpha1', 'py', 'ocmcomponents', timeout_seconds=1)]
dyn = dynamic.DynamicClient(api)
res = dyn.resources.get(api_version='v1', kind='ConfigMap')
# this client version sends an apply body only when given as text (rest.py), so: JSON text, which is YAML
body = lambda v: json.dumps({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'a', 'namespace': 'py'}, 'data': {'k': v}})
dyn.server_side_apply(res, body=body('mine'), name='a', namespace='py', field_manager='py-a', force_conflicts=True)
try:
  dyn.server_side_apply(res, body=body('theirs'), name='a', namespace='py', field_manager='py-b')
  out['conflict'] = None
except dynamic.exceptions.ConflictError as e:
  out['conflict'] = e.status
got = dyn.server_side_apply(res, body=body('theirs'), name='a', namespace='py', field_manager='py-b', force_conflicts=True)
out['applied'] = got.data.k
out['dynwatch'] = [(e['type'], e['object'].metadata.name) for e in dyn.watch(res, namespace='py', timeout=1)]
print(json.dumps(out))
`);
  t.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
  t.match(out.version, /^v1\./);
  t.same(out.core, [['ADDED', 'a']]);
  t.same(out.custom, [['ADDED', 'c']]);
  t.equal(out.conflict, 409, 'without force: a conflict');
  t.equal(out.applied, 'theirs', 'force=True took the field over');
  t.same(out.dynwatch, [['ADDED', 'a']]);
});

t.test('built-in types posted without kind and apiVersion get them from the endpoint; custom resources do not', async (t) => {
  // apimachinery/pkg/runtime/serializer/json/json.go: built-in bodies decode with the endpoint's
  // GroupVersionKind as defaults; CRDs (unstructured) need both.
  const ns = await s.request('POST', '/api/v1/namespaces', { body: { metadata: { name: 'bare' } } });
  t.equal(ns.status, 201, ns.body);
  t.match(ns.json(), { kind: 'Namespace', apiVersion: 'v1', metadata: { name: 'bare' } });
  const c = await s.request('POST', '/api/v1/namespaces/bare/configmaps', { body: { kind: 'ConfigMap', metadata: { name: 'k' }, data: { a: 'b' } } });
  t.equal(c.status, 201, 'kind without apiVersion');
  t.equal(c.json().apiVersion, 'v1');
  const put = await s.request('PUT', '/api/v1/namespaces/bare/configmaps/k', { body: { metadata: { name: 'k', resourceVersion: c.json().metadata.resourceVersion }, data: { a: 'c' } } });
  t.equal(put.status, 200, put.body);
  const ssar = await s.request('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', { body: { spec: { resourceAttributes: { verb: 'get', resource: 'configmaps', namespace: 'bare' } } } });
  t.equal(ssar.status, 201, ssar.body);
  t.match(ssar.json(), { kind: 'SelfSubjectAccessReview', apiVersion: 'authorization.k8s.io/v1', status: { allowed: true } });
  const cr = await s.request('POST', '/apis/delivery.ocm.software/v1alpha1/namespaces/bare/ocmcomponents', { body: { metadata: { name: 'x' }, spec: {} } });
  t.equal(cr.status, 400);
  t.match(cr.json().message, "Object 'Kind' is missing");
  const applied = await s.request('PATCH', '/api/v1/namespaces/bare/configmaps/k?fieldManager=m', { body: { metadata: { name: 'k' } }, headers: { 'Content-Type': 'application/apply-patch+yaml' } });
  t.equal(applied.status, 400, 'an apply patch must name its apiVersion and kind (fieldmanager Apply)');
  const py = await python(`
import sys
from kubernetes import client, config
config.load_kube_config(config_file=sys.argv[1])
v1 = client.CoreV1Api()
v1.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name='py-typed')))
v1.create_namespaced_secret('py-typed', client.V1Secret(metadata=client.V1ObjectMeta(name='s'), string_data={'k': 'v'}))
print(v1.read_namespaced_secret('s', 'py-typed').data['k'])
`);
  t.equal(py.code, 0, py.stderr);
  t.equal(py.stdout.trim(), Buffer.from('v').toString('base64'), 'the typed Python models (which send no kind) work');
});

t.test('tables of Secrets, ConfigMaps and Events print as kube prints them', async (t) => {
  // pkg/printers/internalversion/printers.go: printSecret (NAME TYPE DATA AGE, DATA = number of
  // keys), printConfigMap (NAME DATA AGE, data + binaryData), printEvent (LAST SEEN TYPE REASON
  // OBJECT MESSAGE; wide: SUBOBJECT SOURCE FIRST SEEN COUNT NAME).
  t.equal((await s.kubectl(['create', 'namespace', 'tables'])).code, 0);
  t.equal((await s.kubectl(['create', 'secret', 'generic', 'sec', '-n', 'tables', '--from-literal=password=hunter2-value', '--from-literal=user=u'])).code, 0);
  t.equal((await s.request('POST', '/api/v1/namespaces/tables/configmaps', { body: { ...cm('tables', 'cfg', { a: 'alpha-value' }), binaryData: { b: 'AA==' } } })).status, 201);
  const sec = await s.kubectl(['get', 'secret', 'sec', '-n', 'tables']);
  t.match(sec.stdout, /^NAME\s+TYPE\s+DATA\s+AGE\n/);
  t.match(sec.stdout, /^sec\s+Opaque\s+2\s+\d+s\n/m);
  t.notOk(sec.stdout.includes(Buffer.from('hunter2-value').toString('base64')), 'no secret value');
  const table = (await s.request('GET', '/api/v1/namespaces/tables/secrets/sec', { headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } })).json();
  t.same(table.columnDefinitions.map((c: { name: string }) => c.name), ['Name', 'Type', 'Data', 'Age']);
  t.same(table.rows[0].cells.slice(0, 3), ['sec', 'Opaque', 2]);
  const cfg = await s.kubectl(['get', 'configmap', 'cfg', '-n', 'tables']);
  t.match(cfg.stdout, /^NAME\s+DATA\s+AGE\n/);
  t.match(cfg.stdout, /^cfg\s+2\s+\d+s\n/m);
  t.notOk(cfg.stdout.includes('alpha-value'));

  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const ev = (name: string, extra: Record<string, unknown>) => ({ apiVersion: 'v1', kind: 'Event', metadata: { name, namespace: 'tables' }, involvedObject: { kind: 'ConfigMap', name: 'cfg', namespace: 'tables', fieldPath: 'data.a' }, reason: 'Tested', message: ' it happened \n', type: 'Normal', ...extra });
  t.equal((await s.request('POST', '/api/v1/namespaces/tables/events', { body: ev('e1', { firstTimestamp: now, lastTimestamp: now, count: 3, source: { component: 'tester', host: 'node-1' } }) })).status, 201);
  t.equal((await s.request('POST', '/api/v1/namespaces/tables/events', { body: ev('e2', { eventTime: new Date().toISOString().replace('Z', '000Z'), reportingComponent: 'ctl', reportingInstance: 'ctl-1', involvedObject: { kind: 'Namespace', name: '' } }) })).status, 201);
  const evs = await s.kubectl(['get', 'events', '-n', 'tables']);
  t.match(evs.stdout, /^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE\n/);
  t.match(evs.stdout, /^\d+s\s+Normal\s+Tested\s+configmap\/cfg\s+it happened\n/m);
  t.match(evs.stdout, /^\d+s\s+Normal\s+Tested\s+namespace\s+it happened\n/m, 'no name: the kind alone; eventTime when there are no timestamps');
  const wide = await s.kubectl(['get', 'events', '-n', 'tables', '-o', 'wide']);
  t.match(wide.stdout, /^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+SUBOBJECT\s+SOURCE\s+MESSAGE\s+FIRST SEEN\s+COUNT\s+NAME\n/);
  t.match(wide.stdout, /configmap\/cfg\s+data\.a\s+tester, node-1\s+it happened\s+\d+s\s+3\s+e1\n/);
  t.match(wide.stdout, /namespace\s+ctl, ctl-1\s+it happened\s+\d+s\s+1\s+e2\n/);
});

t.test('namespaces carry kubernetes.io/metadata.name, which cannot be changed or removed', async (t) => {
  // pkg/registry/core/namespace/strategy.go Canonicalize: the label is the name on every write.
  const created = await s.request('POST', '/api/v1/namespaces', { body: { metadata: { generateName: 'gen-', labels: { 'kubernetes.io/metadata.name': 'lie', team: 'x' } } } });
  t.equal(created.status, 201);
  const name = created.json().metadata.name;
  t.same(created.json().metadata.labels, { 'kubernetes.io/metadata.name': name, team: 'x' }, 'generated names too');
  const sel = await s.kubectl(['get', 'namespaces', '-l', `kubernetes.io/metadata.name in (${name},team)`, '-o', 'name']);
  t.same(sel.stdout.trim().split('\n').sort(), [`namespace/${name}`, 'namespace/team'], 'a namespaceSelector on the label matches');
  for (const patch of [{ metadata: { labels: { 'kubernetes.io/metadata.name': 'other' } } }, { metadata: { labels: null } }]) {
    const r = await s.request('PATCH', `/api/v1/namespaces/${name}`, { body: patch, headers: { 'Content-Type': 'application/merge-patch+json' } });
    t.equal(r.status, 200, r.body);
    t.equal(r.json().metadata.labels['kubernetes.io/metadata.name'], name, JSON.stringify(patch));
  }
  const boot = await s.kubectl(['get', 'namespace', 'default', '-o', 'jsonpath={.metadata.labels}']);
  t.match(boot.stdout, '"kubernetes.io/metadata.name":"default"', 'the bootstrap namespaces too');
});

t.test('deleting a ConfigMap or Secret answers Status Success; custom resources answer the object', async (t) => {
  // registry/generic/registry/store.go finalizeDelete: a Status with details unless ReturnDeletedObject (CRDs)
  t.equal((await s.kubectl(['create', 'namespace', 'del'])).code, 0);
  const c = (await s.request('POST', '/api/v1/namespaces/del/configmaps', { body: cm('del', 'gone') })).json();
  const r = await s.request('DELETE', '/api/v1/namespaces/del/configmaps/gone');
  t.equal(r.status, 200);
  t.same(r.json(), { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', details: { name: 'gone', group: '', kind: 'configmaps', uid: c.metadata.uid } });
  const held = await s.request('POST', '/api/v1/namespaces/del/configmaps', { body: { ...cm('del', 'held'), metadata: { name: 'held', finalizers: ['example.com/x'] } } });
  t.equal(held.status, 201);
  const pending = await s.request('DELETE', '/api/v1/namespaces/del/configmaps/held');
  t.equal(pending.json().kind, 'ConfigMap', 'a delete that waits for finalizers answers the object');
  t.ok(pending.json().metadata.deletionTimestamp);
  t.equal((await s.request('POST', '/apis/delivery.ocm.software/v1alpha1/namespaces/del/ocmcomponents', {
    body: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: { name: 'c' }, spec: { name: 'x.org/c', version: '1.0.0', repository: { url: 'ghcr.io/x' } } },
  })).status, 201);
  t.equal((await s.request('DELETE', '/apis/delivery.ocm.software/v1alpha1/namespaces/del/ocmcomponents/c')).json().kind, 'OCMComponent');
  const k = await s.kubectl(['delete', 'secret', 'nope', '-n', 'del', '--ignore-not-found']);
  t.equal(k.code, 0);
  t.equal((await s.kubectl(['create', 'secret', 'generic', 'sx', '-n', 'del', '--from-literal=a=b'])).code, 0);
  const ks = await s.kubectl(['delete', 'secret', 'sx', '-n', 'del']);
  t.equal(ks.stdout.trim(), 'secret "sx" deleted', ks.stderr);
});

t.test('limited lists carry remainingItemCount (without selectors), and empty label maps vanish', async (t) => {
  // storage/etcd3/store.go: remainingItemCount = count - limit, only when the predicate is empty
  t.equal((await s.kubectl(['create', 'namespace', 'many'])).code, 0);
  for (let i = 0; i < 5; i++) t.equal((await s.request('POST', '/api/v1/namespaces/many/configmaps', { body: { ...cm('many', `c${i}`), metadata: { name: `c${i}`, labels: { i: String(i) } } } })).status, 201);
  const p1 = (await s.request('GET', '/api/v1/namespaces/many/configmaps?limit=2')).json();
  t.equal(p1.metadata.remainingItemCount, 3);
  const p2 = (await s.request('GET', `/api/v1/namespaces/many/configmaps?limit=2&continue=${p1.metadata.continue}`)).json();
  t.equal(p2.metadata.remainingItemCount, 1);
  const p3 = (await s.request('GET', `/api/v1/namespaces/many/configmaps?limit=2&continue=${p2.metadata.continue}`)).json();
  t.equal(p3.metadata.remainingItemCount, undefined, 'the last page has none');
  t.equal(p3.metadata.continue, undefined);
  const sel = (await s.request('GET', '/api/v1/namespaces/many/configmaps?limit=1&labelSelector=i')).json();
  t.ok(sel.metadata.continue);
  t.equal(sel.metadata.remainingItemCount, undefined, 'not with a selector');
  const table = (await s.request('GET', '/api/v1/namespaces/many/configmaps?limit=2', { headers: { Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io' } })).json();
  t.equal(table.metadata.remainingItemCount, 3, 'tables too');

  // ObjectMeta's maps are omitempty in kube: the last label removed leaves no labels: {}
  const unl = await s.kubectl(['label', 'configmap', 'c0', '-n', 'many', 'i-']);
  t.equal(unl.code, 0, unl.stderr);
  const got = (await s.request('GET', '/api/v1/namespaces/many/configmaps/c0')).json();
  t.notOk('labels' in got.metadata, JSON.stringify(got.metadata));
  const data = await s.request('PATCH', '/api/v1/namespaces/many/configmaps/c1', { body: { data: null, metadata: { annotations: {} } }, headers: { 'Content-Type': 'application/merge-patch+json' } });
  t.notOk('annotations' in data.json().metadata);
});

t.test('/readyz?verbose and /livez?verbose list their checks as kube does', async (t) => {
  // k8s.io/apiserver/pkg/server/healthz/healthz.go handleRootHealth
  for (const name of ['readyz', 'livez', 'healthz']) {
    const v = await s.request('GET', `/${name}?verbose`, { cert: null });
    t.equal(v.status, 200);
    t.match(v.body, new RegExp(`^\\[\\+\\]ping ok\\n\\[\\+\\]log ok\\n\\[\\+\\]storage ok\\n(\\[\\+\\]shutdown ok\\n)?${name} check passed\\n$`));
    t.equal((await s.request('GET', `/${name}`, { cert: null })).body, 'ok');
  }
  t.match((await s.request('GET', '/readyz?verbose&exclude=storage&exclude=nope')).body, /\[\+\]storage excluded: ok\n[\s\S]*warn: some health checks cannot be excluded: no matches for "nope"\n/);
  t.equal((await s.request('GET', '/readyz/shutdown', { cert: null })).body, 'ok');
  t.equal((await s.request('GET', '/livez/nope', { cert: null })).status, 404);
});

t.test('non-apply writes record an Update manager, so a later applier conflicts on their fields', async (t) => {
  // fieldmanager (structured-merge-diff merge/update.go Updater.Update); managerOrUserAgent; conflict
  // wording from internal/conflict.go printManager
  t.equal((await s.kubectl(['create', 'namespace', 'ssa'])).code, 0);
  t.equal((await s.kubectl(['create', 'configmap', 'owned', '-n', 'ssa', '--from-literal=a=1', '--from-literal=b=2'])).code, 0);
  const mf = (await s.request('GET', '/api/v1/namespaces/ssa/configmaps/owned')).json().metadata.managedFields;
  t.match(mf, [{ manager: 'kubectl-create', operation: 'Update', apiVersion: 'v1', fieldsType: 'FieldsV1', fieldsV1: { 'f:data': { 'f:a': {}, 'f:b': {} } } }]);
  const apply = (v: string, force = false) =>
    s.kubectl(['apply', '--server-side', '--field-manager', 'gitops', ...(force ? ['--force-conflicts'] : []), '-f', '-'], { input: JSON.stringify(cm('ssa', 'owned', { a: v })) });
  const conflict = await apply('9');
  t.not(conflict.code, 0);
  t.match(conflict.stderr, /conflict with "kubectl-create" using v1 at [0-9T:-]+Z: \.data\.a/);
  t.equal((await apply('1')).code, 0, 'the same value is shared, not a conflict');
  const edit = await s.request('PATCH', '/api/v1/namespaces/ssa/configmaps/owned', { body: { data: { b: '3' } }, headers: { 'Content-Type': 'application/merge-patch+json', 'User-Agent': 'my-editor/1.0 (linux)' } });
  t.equal(edit.status, 200);
  const after = edit.json().metadata.managedFields;
  t.match(after.find((e: { manager: string }) => e.manager === 'my-editor'), { operation: 'Update', fieldsV1: { 'f:data': { 'f:b': {} } } }, 'the User-Agent names the manager');
  t.notOk(after.find((e: { manager: string }) => e.manager === 'kubectl-create').fieldsV1['f:data']['f:b'], 'the field left its previous manager');
  t.equal((await apply('9', true)).code, 0, 'force takes it over');
  const last = (await s.request('GET', '/api/v1/namespaces/ssa/configmaps/owned')).json();
  t.equal(last.data.a, '9');
  t.notOk(last.metadata.managedFields.find((e: { manager: string }) => e.manager === 'kubectl-create')?.fieldsV1?.['f:data']?.['f:a']);
  const rv = last.metadata.resourceVersion;
  const noop = await s.request('PATCH', '/api/v1/namespaces/ssa/configmaps/owned', { body: { data: { b: '3' } }, headers: { 'Content-Type': 'application/merge-patch+json', 'User-Agent': 'someone-else' } });
  t.equal(noop.json().metadata.resourceVersion, rv, 'a write that changes nothing records nothing');
});

t.test('selfsubjectrulesreviews: kubectl auth can-i --list from the standalone policy', async (t) => {
  // pkg/registry/authorization/selfsubjectrulesreview/rest.go; kubectl auth can-i --list prints the rules
  const admin = await s.kubectl(['auth', 'can-i', '--list', '-n', 'team']);
  t.equal(admin.code, 0, admin.stderr);
  t.match(admin.stdout, /^Resources\s+Non-Resource URLs\s+Resource Names\s+Verbs\n/);
  t.match(admin.stdout, /^\*\.\*\s+\[\]\s+\[\]\s+\[\*\]\n/m, 'system:masters: everything');
  const bobConfig = join(dir, 'bob.kubeconfig');
  const cfg = (await s.kubectl(['config', 'view', '--raw', '-o', 'json'])).stdout;
  const kc = JSON.parse(cfg);
  kc.users = [{ name: 'bob', user: { token: 'bobtoken' } }];
  kc.contexts[0].context.user = 'bob';
  writeFileSync(bobConfig, JSON.stringify(kc));
  const bob = await s.kubectl(['--kubeconfig', bobConfig, 'auth', 'can-i', '--list', '-n', 'team']);
  t.equal(bob.code, 0, bob.stderr);
  t.match(bob.stdout, /^configmaps\s+\[\]\s+\[\]\s+\[get list\]\n/m, 'his policy rule in his namespace');
  t.match(bob.stdout, /^selfsubjectaccessreviews\.authorization\.k8s\.io\s+\[\]\s+\[\]\s+\[create\]\n/m);
  t.match(bob.stdout, /^\s+\[\/api\/\*\]\s+\[\]\s+\[get\]\n/m, 'non-resource URLs');
  const elsewhere = await s.kubectl(['--kubeconfig', bobConfig, 'auth', 'can-i', '--list', '-n', 'py']);
  t.notMatch(elsewhere.stdout, /^configmaps/m, 'not in another namespace');
  const noNs = await s.request('POST', '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews', { body: { spec: {} } });
  t.equal(noNs.status, 400);
  t.match(noNs.json().message, 'no namespace on request');
  const raw = (await s.request('POST', '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews', { cert: null, headers: BOB, body: { spec: { namespace: 'team' } } })).json();
  t.match(raw, { kind: 'SelfSubjectRulesReview', status: { incomplete: false } });
  t.same(raw.status.resourceRules.find((r: { resources: string[] }) => r.resources.includes('configmaps')), { verbs: ['get', 'list'], apiGroups: [''], resources: ['configmaps'] });
});

t.test('a delegating authorizer cannot list rules: incomplete, as the webhook authorizer of kube answers', async (t) => {
  // plugin/pkg/authorizer/webhook/webhook.go RulesFor
  const delegating = new CachingAuthorizer({ authorize: async () => ({ allowed: true }) });
  t.same(await delegating.rulesFor({ name: 'u', groups: [] }, 'ns'), {
    resourceRules: [],
    nonResourceRules: [],
    incomplete: true,
    evaluationError: 'webhook authorizer does not support user rule resolution',
  });
});

t.test('strategic merge patch: real for built-in types (directives included), 415 for custom resources', async (t) => {
  // apimachinery/pkg/util/strategicpatch/patch.go; merge strategies from k8s.io/api struct tags
  // (ObjectMeta.finalizers merge, ownerReferences merge by uid, NamespaceStatus.conditions by type)
  t.equal((await s.kubectl(['create', 'namespace', 'smp'])).code, 0);
  const withFin = (fins: string[], data: Record<string, string>) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'fin', namespace: 'smp', finalizers: fins }, data });
  let r = await s.kubectl(['apply', '-f', '-'], { input: withFin(['example.com/a', 'example.com/b'], { x: '1' }) });
  t.equal(r.code, 0, r.stderr);
  r = await s.kubectl(['apply', '-f', '-'], { input: withFin(['example.com/a'], { x: '2' }) });
  t.equal(r.code, 0, `client-side apply removing a finalizer ($deleteFromPrimitiveList, $setElementOrder): ${r.stderr}`);
  let got = (await s.request('GET', '/api/v1/namespaces/smp/configmaps/fin')).json();
  t.same(got.metadata.finalizers, ['example.com/a']);
  t.same(got.data, { x: '2' });
  r = await s.kubectl(['patch', 'configmap', 'fin', '-n', 'smp', '-p', '{"metadata":{"finalizers":["example.com/c"]}}']);
  t.equal(r.code, 0, r.stderr);
  got = (await s.request('GET', '/api/v1/namespaces/smp/configmaps/fin')).json();
  t.same(got.metadata.finalizers, ['example.com/a', 'example.com/c'], 'finalizers merge (a union), a merge patch would replace');
  r = await s.kubectl(['patch', 'configmap', 'fin', '-n', 'smp', '-p', '{"data":{"$patch":"replace","only":"this"}}']);
  t.equal(r.code, 0, r.stderr);
  got = (await s.request('GET', '/api/v1/namespaces/smp/configmaps/fin')).json();
  t.same(got.data, { only: 'this' }, '$patch: replace');
  const smp = (body: unknown) => s.request('PATCH', '/api/v1/namespaces/smp/configmaps/fin', { body, headers: { 'Content-Type': 'application/strategic-merge-patch+json' } });
  const owners = [];
  for (const i of [1, 2, 3]) {
    const o = (await s.request('POST', '/api/v1/namespaces/smp/configmaps', { body: cm('smp', `o${i}`) })).json();
    owners.push({ apiVersion: 'v1', kind: 'ConfigMap', name: `o${i}`, uid: o.metadata.uid as string });
  }
  t.equal((await smp({ metadata: { ownerReferences: owners.slice(0, 2) } })).status, 200);
  got = (await smp({ metadata: { ownerReferences: [{ uid: owners[0].uid, blockOwnerDeletion: false }, { uid: owners[1].uid, $patch: 'delete' }, owners[2]] } })).json();
  t.same(got.metadata.ownerReferences.map((o: { name: string; blockOwnerDeletion?: boolean }) => `${o.name}:${o.blockOwnerDeletion}`), ['o1:false', 'o3:undefined'], 'merge by uid, $patch: delete');
  got = (await smp({ metadata: { $setElementOrder: undefined, '$setElementOrder/finalizers': ['example.com/c', 'example.com/a'], '$deleteFromPrimitiveList/finalizers': [] } })).json();
  t.same(got.metadata.finalizers, ['example.com/c', 'example.com/a'], '$setElementOrder');
  got = (await smp({ data: { $retainKeys: ['only'], extra: 'x' } })).json();
  t.same(got.data, { only: 'this' }, '$retainKeys');
  const bad = await smp({ data: { $patch: 'sideways' } });
  t.equal(bad.status, 400);
  t.match(bad.json().message, 'Unknown patch type');
  got = (await smp({ metadata: { finalizers: null } })).json();
  t.notOk(got.metadata.finalizers, JSON.stringify(got.metadata));
  const ns = await s.request('PATCH', '/api/v1/namespaces/smp/status', { body: { status: { conditions: [{ type: 'A', status: 'True' }] } }, headers: { 'Content-Type': 'application/strategic-merge-patch+json' } });
  t.equal(ns.status, 200, ns.body);
  const ns2 = (await s.request('PATCH', '/api/v1/namespaces/smp/status', { body: { status: { conditions: [{ type: 'B', status: 'False' }] } }, headers: { 'Content-Type': 'application/strategic-merge-patch+json' } })).json();
  t.same(ns2.status.conditions.map((c: { type: string }) => c.type), ['A', 'B'], 'namespace conditions merge by type');

  t.equal((await s.request('POST', '/apis/delivery.ocm.software/v1alpha1/namespaces/smp/ocmcomponents', {
    body: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: { name: 'c' }, spec: { name: 'x.org/c', version: '1.0.0', repository: { url: 'ghcr.io/x' } } },
  })).status, 201);
  const cr = await s.request('PATCH', '/apis/delivery.ocm.software/v1alpha1/namespaces/smp/ocmcomponents/c', { body: { metadata: { labels: { a: 'b' } } }, headers: { 'Content-Type': 'application/strategic-merge-patch+json' } });
  t.equal(cr.status, 415);
  t.match(cr.json(), { reason: 'UnsupportedMediaType', message: /accepted media types include: application\/json-patch\+json, application\/merge-patch\+json, application\/apply-patch\+yaml$/ });
  const kp = await s.kubectl(['patch', 'ocmcomponent', 'c', '-n', 'smp', '-p', '{"metadata":{"labels":{"a":"b"}}}']);
  t.not(kp.code, 0, 'kubectl patch of a custom resource needs --type merge, as against kube');
  t.match(kp.stderr, /not supported|unknown format/);
  const ka = await s.kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: { name: 'c', namespace: 'smp', labels: { via: 'apply' } }, spec: { name: 'x.org/c', version: '1.0.0', repository: { url: 'ghcr.io/x' } } }),
  });
  t.equal(ka.code, 0, `client-side apply of a custom resource (a merge patch): ${ka.stderr}`);
  const v3 = (await s.request('GET', '/openapi/v3/apis/delivery.ocm.software/v1alpha1')).json();
  t.notOk(JSON.stringify(v3.components.requestBodies.crPatch).includes('strategic'), 'OpenAPI: no strategic merge patch for custom resources');
});
