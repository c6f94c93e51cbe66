// Server-side apply, as `kubectl apply --server-side` and GitOps controllers (Flux) use it: create
// on first apply, no-op when nothing changed, removal of fields the manager stopped applying,
// conflicts between managers (409 naming manager and field) and --force-conflicts, managedFields,
// and every bad request rejected with a Status and nothing changed.
import t from 'tap';
import { startServer, type TestServer } from './helpers/server.js';

let s: TestServer;
t.before(async () => {
  s = await startServer();
});
t.teardown(() => s?.stop());

const CM = '/api/v1/namespaces/default/configmaps';
const configMap = (name: string, data: Record<string, string>, labels: Record<string, string> = { app: 'demo' }) =>
  [
    'apiVersion: v1',
    'kind: ConfigMap',
    'metadata:',
    `  name: ${name}`,
    '  namespace: default',
    ...(Object.keys(labels).length ? ['  labels:', ...Object.entries(labels).map(([k, v]) => `    ${k}: ${v}`)] : []),
    ...(Object.keys(data).length ? ['data:', ...Object.entries(data).map(([k, v]) => `  ${k}: "${v}"`)] : []),
    '',
  ].join('\n');
const apply = (path: string, body: string, query = 'fieldManager=tester') =>
  s.request('PATCH', `${path}?${query}`, { body, headers: { 'Content-Type': 'application/apply-patch+yaml' } });
const get = async (name: string) => (await s.request('GET', `${CM}/${name}`)).json();

t.test('kubectl apply --server-side: create, no-op, a field left out is removed', async (t) => {
  let r = await s.kubectl(['apply', '--server-side', '-f', '-'], { input: configMap('ssa', { a: '1', b: '2' }) });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /configmap\/ssa serverside-applied/);
  const first = await get('ssa');
  t.same(first.data, { a: '1', b: '2' });
  t.same(
    first.metadata.managedFields.map((m: any) => [m.manager, m.operation, m.fieldsType]),
    [['kubectl', 'Apply', 'FieldsV1']],
    'managedFields: one Apply entry for kubectl',
  );
  t.same(first.metadata.managedFields[0].fieldsV1, { 'f:data': { 'f:a': {}, 'f:b': {} }, 'f:metadata': { 'f:labels': { 'f:app': {} } } });

  r = await s.kubectl(['apply', '--server-side', '-f', '-'], { input: configMap('ssa', { a: '1', b: '2' }) });
  t.equal(r.code, 0, r.stderr);
  t.equal((await get('ssa')).metadata.resourceVersion, first.metadata.resourceVersion, 'the same configuration again writes nothing');

  r = await s.kubectl(['apply', '--server-side', '-f', '-'], { input: configMap('ssa', { a: '1' }, {}) });
  t.equal(r.code, 0, r.stderr);
  const after = await get('ssa');
  t.same(after.data, { a: '1' }, 'data.b, no longer applied, is gone');
  t.same(after.metadata.labels ?? {}, {}, 'and so is the label');
  t.equal(after.metadata.uid, first.metadata.uid, 'the same object');

  const shown = await s.kubectl(['get', 'configmap', 'ssa', '-o', 'yaml', '--show-managed-fields']);
  t.match(shown.stdout, /manager: kubectl\n\s+operation: Apply/, 'kubectl shows the managed fields');
});

t.test('two managers: a conflict names manager and field; --force-conflicts takes the field over', async (t) => {
  t.equal((await apply(CM + '/shared', configMap('shared', { a: '1', b: '2' }), 'fieldManager=team-a')).status, 201, 'created by the first apply');
  const before = await get('shared');

  const clash = await apply(CM + '/shared', configMap('shared', { a: '9' }), 'fieldManager=team-b');
  t.equal(clash.status, 409);
  const st = clash.json();
  t.match(st, { kind: 'Status', reason: 'Conflict', code: 409, message: /Apply failed with 1 conflict: conflict with "team-a": \.data\.a/ });
  t.same(st.details.causes, [{ reason: 'FieldManagerConflict', message: 'conflict with "team-a"', field: '.data.a' }]);
  t.equal((await get('shared')).metadata.resourceVersion, before.metadata.resourceVersion, 'nothing changed');

  const kubectl = await s.kubectl(['apply', '--server-side', '--field-manager', 'team-b', '-f', '-'], { input: configMap('shared', { a: '9' }) });
  t.not(kubectl.code, 0, 'kubectl reports the conflict');
  t.match(kubectl.stderr, /conflict with "team-a": \.data\.a/);

  const same = await apply(CM + '/shared', configMap('shared', { b: '2' }), 'fieldManager=team-b');
  t.equal(same.status, 200, 'applying the value the other manager has is no conflict (shared ownership)');

  const forced = await apply(CM + '/shared', configMap('shared', { a: '9', b: '2' }), 'fieldManager=team-b&force=true');
  t.equal(forced.status, 200, forced.body);
  const o = await get('shared');
  t.same(o.data, { a: '9', b: '2' });
  const owners = Object.fromEntries(o.metadata.managedFields.map((m: any) => [m.manager, m.fieldsV1]));
  t.notOk(owners['team-a']['f:data']?.['f:a'], 'team-a no longer owns data.a');
  t.ok(owners['team-b']['f:data']['f:a'], 'team-b does');
  t.ok(owners['team-a']['f:data']['f:b'] && owners['team-b']['f:data']['f:b'], 'data.b is shared');

  // team-a stops applying data.b: team-b still owns it, so it stays
  t.equal((await apply(CM + '/shared', configMap('shared', {}), 'fieldManager=team-a')).status, 200);
  t.same((await get('shared')).data, { a: '9', b: '2' }, 'a field another manager owns is not removed');
});

t.test('our own kinds: apply, strict field validation', async (t) => {
  const comp = (extra = '') =>
    `apiVersion: delivery.ocm.software/v1alpha1\nkind: OCMComponent\nmetadata:\n  name: app\n  namespace: default\nspec:\n  name: ocm.software/demo\n  version: ">=1.0.0"\n  repository:\n    url: oci://127.0.0.1:1/ocm\n${extra}`;
  let r = await s.kubectl(['apply', '--server-side', '-f', '-'], { input: comp() });
  t.equal(r.code, 0, r.stderr);
  r = await s.kubectl(['apply', '--server-side', '-f', '-'], { input: comp('  interval: 10m\n') });
  t.equal(r.code, 0, r.stderr);
  t.equal(JSON.parse((await s.kubectl(['get', 'ocmcomponent', 'app', '-o', 'json'])).stdout).spec.interval, '10m');
  r = await s.kubectl(['apply', '--server-side', '-f', '-'], { input: comp('  bogus: 1\n') });
  t.not(r.code, 0);
  t.match(r.stderr, /unknown field "spec\.bogus"/, 'kubectl --server-side asks for strict validation');
});

t.test('bad apply requests get a Status and change nothing', async (t) => {
  t.equal((await apply(CM + '/bad', configMap('bad', { a: '1' }))).status, 201);
  const rv = (await get('bad')).metadata.resourceVersion;
  const cases: [string, Promise<{ status: number; json(): any }>, number, RegExp][] = [
    ['no fieldManager', apply(CM + '/bad', configMap('bad', { a: '2' }), ''), 422, /fieldManager: Required value/],
    ['another name in the body', apply(CM + '/bad', configMap('other', { a: '2' })), 400, /does not match the name on the URL/],
    ['another kind', apply(CM + '/bad', configMap('bad', { a: '2' }).replace('kind: ConfigMap', 'kind: Secret')), 400, /kind in the data \(Secret\)/],
    ['not YAML', apply(CM + '/bad', 'a: [unclosed'), 400, /error decoding YAML/],
    ['a stale resourceVersion', apply(CM + '/bad', configMap('bad', { a: '2' }).replace('  namespace: default', '  namespace: default\n  resourceVersion: "1"')), 409, /the object has been modified/],
    ['force on a merge patch', s.request('PATCH', `${CM}/bad?fieldManager=x&force=true`, { body: { data: { a: '2' } }, headers: { 'Content-Type': 'application/merge-patch+json' } }), 400, /force: Forbidden/],
    ['the status subresource', s.request('PATCH', `/apis/delivery.ocm.software/v1alpha1/namespaces/default/ocmcomponents/app/status?fieldManager=x`, { body: '{}', headers: { 'Content-Type': 'application/apply-patch+yaml' } }), 415, /status subresource/],
  ];
  for (const [what, p, code, msg] of cases) {
    const r = await p;
    t.equal(r.status, code, what);
    t.match(r.json(), { kind: 'Status', code, message: msg }, what);
  }
  t.equal((await get('bad')).metadata.resourceVersion, rv, 'nothing changed');
  const dry = await apply(CM + '/bad', configMap('bad', { a: '2' }), 'fieldManager=tester&dryRun=All');
  t.equal(dry.status, 200);
  t.equal(dry.json().data.a, '2', 'dry run answers with the result');
  t.equal((await get('bad')).data.a, '1', 'and stores nothing');
  t.equal((await apply(CM + '/nothere', configMap('nothere', { a: '1' }), 'fieldManager=tester&dryRun=All')).status, 201);
  t.equal((await s.request('GET', `${CM}/nothere`)).status, 404, 'a dry-run create stores nothing either');
});

t.test("an OCMComponent's spec.verify is atomic: either form is replaced whole, owned as one field", async (t) => {
  const comp = (verify: string[]) =>
    ['apiVersion: delivery.ocm.software/v1alpha1', 'kind: OCMComponent', 'metadata:', '  name: atomic', '  namespace: default', 'spec:', '  name: ocm.software/test/atomic', '  version: 1.0.0', '  repository:', '    url: ghcr.io/acme/ocm', '  verify:', ...verify.map((l) => `    ${l}`), ''].join('\n');
  const one = ['signature: acme', 'secretRef:', '  name: acme-key', 'key: acme.pub'];
  const design = ['secretRef:', '  name: my-public-key'];
  const kubectl = (manager: string, verify: string[], ...flags: string[]) => s.kubectl(['apply', '--server-side', `--field-manager=${manager}`, ...flags, '-f', '-'], { input: comp(verify) });
  const verifyOf = async () => JSON.parse((await s.kubectl(['get', 'ocmcomponent', 'atomic', '-n', 'default', '-o', 'json', '--show-managed-fields'])).stdout);

  t.equal((await kubectl('alice', one)).code, 0);
  let o = await verifyOf();
  t.same(o.spec.verify, { signature: 'acme', secretRef: { name: 'acme-key' }, key: 'acme.pub' });
  const alice = o.metadata.managedFields.find((e: { manager: string }) => e.manager === 'alice');
  t.same(alice.fieldsV1['f:spec']['f:verify'], {}, 'owned as one field, not key by key');

  // Another manager's object form: a conflict on the whole field, and with --force-conflicts it replaces it.
  const conflict = await kubectl('bob', design);
  t.not(conflict.code, 0);
  t.match(conflict.stderr, /conflict with "alice".*\.spec\.verify/);
  t.equal((await kubectl('bob', design, '--force-conflicts')).code, 0);
  o = await verifyOf();
  t.same(o.spec.verify, { secretRef: { name: 'my-public-key' } }, 'replaced whole: no signature or key of the other form left behind');

  // The same manager moving between the forms.
  t.equal((await kubectl('bob', ['- signature: acme', '  secretRef:', '    name: acme-key'])).code, 0);
  t.same((await verifyOf()).spec.verify, [{ signature: 'acme', secretRef: { name: 'acme-key' } }]);
  t.equal((await kubectl('bob', one)).code, 0);
  t.same((await verifyOf()).spec.verify, { signature: 'acme', secretRef: { name: 'acme-key' }, key: 'acme.pub' });
  t.equal((await kubectl('bob', design)).code, 0);
  t.same((await verifyOf()).spec.verify, { secretRef: { name: 'my-public-key' } });
});

t.test('a __proto__ key applied is a field like any other (never the prototype)', async (t) => {
  const body = (data: Record<string, string>) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'proto' }, data });
  let r = await apply(`${CM}/proto`, body({ a: '1' }));
  t.equal(r.status, 201, r.body);
  r = await apply(`${CM}/proto`, body({ a: '1', ['__proto__']: 'x' }));
  t.equal(r.status, 200, r.body);
  const o = await get('proto');
  t.same(Object.entries(o.data), [['a', '1'], ['__proto__', 'x']], 'data.__proto__ set on the existing map');
  t.same(o.metadata.managedFields[0].fieldsV1['f:data'], JSON.parse('{"f:a":{},"f:__proto__":{}}'));
});
