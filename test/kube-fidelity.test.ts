// Kubernetes fidelity (issue 13): what kube-apiserver does, where real clients depend on it. Each
// test names the upstream file the expected behaviour was read from; where a real client shows
// the difference, the test drives that client (kubectl, the official Python client).
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
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
