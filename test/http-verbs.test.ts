// Raw HTTP against a started server: every verb of delivery.ocm.software/v1alpha1 and the
// kube-apiserver behaviour around it (status split, generation, optimistic concurrency,
// finalizers, preconditions, dryRun, fieldValidation, every bad input as a Status, pagination,
// selectors, Table / PartialObjectMetadata / YAML output, client-certificate authentication).
import { readFileSync } from 'node:fs';
import https from 'node:https';
import tls from 'node:tls';
import t from 'tap';
import YAML from 'yaml';
import { issueClientCert } from '../certs/index.js';
import { createCA, newKeys } from '../certs/pki.js';
import { type HttpResult, startServer } from './helpers/server.js';

type T = Parameters<Parameters<typeof t.test>[0]>[0];
type Obj = Record<string, any>;

const GROUP = 'delivery.ocm.software';
const GV = `${GROUP}/v1alpha1`;
const API = `/apis/${GV}`;
const TABLE = 'application/json;as=Table;v=v1;g=meta.k8s.io';
const PARTIAL_LIST = 'application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io';
const MERGE = { 'Content-Type': 'application/merge-patch+json' };
const JSONPATCH = { 'Content-Type': 'application/json-patch+json' };

const server = await startServer();
t.teardown(() => server.stop());
/** server.request with a Content-Length (Node sends a DELETE body without one, which breaks the stream). */
const req: typeof server.request = (method, path, o = {}) => {
  if (o.body === undefined) return server.request(method, path, o);
  const body = typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
  return server.request(method, path, { ...o, body, headers: { 'Content-Length': String(Buffer.byteLength(body)), ...o.headers } });
};

/** Creates namespaces (a standalone server refuses writes into missing ones, as kube does). */
async function ensureNamespaces(names: string[]) {
  for (const name of names) {
    const r = await req('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name } } });
    if (r.status !== 201 && r.status !== 409 && r.status !== 404) throw new Error(`create namespace ${name}: ${r.status} ${r.body}`);
  }
}
await ensureNamespaces(['verbs', 'del', 'delcol', 'delcol2', 'dry', 'fv', 'bad', 'auth', 'page', 'sel', 'sel2', 'tbl']);

const col = (ns: string, q = '') => `${API}/namespaces/${ns}/ocmcomponents${q}`;
const one = (ns: string, name: string, q = '') => `${col(ns)}/${name}${q}`;

function comp(name: string, meta: Obj = {}, spec: Obj = {}): Obj {
  return {
    apiVersion: GV,
    kind: 'OCMComponent',
    metadata: { name, ...meta },
    spec: { name: 'github.com/acme/app', version: 'v1.0.0', repository: { url: 'ghcr.io/acme' }, ...spec },
  };
}

const READY = { type: 'Ready', status: 'True', reason: 'Succeeded', message: 'all good', lastTransitionTime: '2024-01-01T00:00:00Z' };

function json(res: HttpResult): Obj {
  try {
    return res.json();
  } catch {
    throw new Error(`HTTP ${res.status} body is not JSON: ${res.body.slice(0, 500)}`);
  }
}

async function create(t: T, ns: string, obj: Obj, q = ''): Promise<Obj> {
  const res = await req('POST', col(ns, q), { body: obj });
  t.equal(res.status, 201, `create ${obj.metadata?.name ?? obj.metadata?.generateName}: ${res.status === 201 ? '' : res.body.slice(0, 400)}`);
  return json(res);
}

async function get(ns: string, name: string): Promise<HttpResult> {
  return req('GET', one(ns, name));
}

/** Asserts a kube `Status` failure with the given code and reason; returns it. */
function isStatus(t: T, res: HttpResult, code: number, reason: string, what = ''): Obj {
  t.equal(res.status, code, `${what} HTTP ${code} (got ${res.status}: ${res.body.slice(0, 300)})`);
  t.match(String(res.headers['content-type'] ?? ''), /^application\/json/, `${what} Content-Type is JSON`);
  let s: Obj = {};
  try {
    s = res.json();
  } catch {
    t.fail(`${what} body is a Status, not ${res.body.slice(0, 200)}`);
    return s;
  }
  t.match(s, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason, code }, `${what} is a Status ${code} ${reason}`);
  t.type(s.message, 'string', `${what} Status has a message`);
  return s;
}

const fields = (s: Obj): string[] => (s.details?.causes ?? []).map((c: Obj) => c.field);

/** The store's resourceVersion as a list reports it. */
async function listRV(): Promise<string> {
  const res = await req('GET', `${API}/ocmcomponents?limit=1`);
  return json(res).metadata.resourceVersion;
}

/** Runs fn and asserts that nothing was written meanwhile. */
async function nothingChanges(t: T, fn: () => Promise<unknown>) {
  const before = await listRV();
  await fn();
  t.equal(await listRV(), before, 'list resourceVersion unchanged: nothing was written');
}

const names = (list: Obj) => (list.items as Obj[]).map((i) => i.metadata.name);

// ---------------------------------------------------------------------------------------------

t.test('create, get, list', async (t) => {
  const body = comp('alpha', { labels: { app: 'a' } });
  body.status = { resolvedVersion: 'v9.9.9', conditions: [READY] };
  const created = await create(t, 'verbs', body);
  t.match(created, { apiVersion: GV, kind: 'OCMComponent', metadata: { name: 'alpha', namespace: 'verbs', labels: { app: 'a' }, generation: 1 } });
  t.match(created.metadata.uid, /^[0-9a-f-]{36}$/, 'uid set');
  t.match(created.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'creationTimestamp set (RFC 3339, seconds)');
  t.match(created.metadata.resourceVersion, /^[1-9]\d*$/, 'resourceVersion set');
  t.notOk('status' in created, 'status in the body of a create is dropped');
  t.equal(created.spec.interval, '10m', 'schema default applied');

  const got = await get('verbs', 'alpha');
  t.equal(got.status, 200);
  t.match(String(got.headers['content-type']), /^application\/json/);
  t.same(json(got), created, 'get returns what create returned');

  const list = await req('GET', col('verbs'));
  t.equal(list.status, 200);
  const l = json(list);
  t.match(l, { apiVersion: GV, kind: 'OCMComponentList', metadata: { resourceVersion: /^\d+$/ } });
  t.ok(Number(l.metadata.resourceVersion) >= Number(created.metadata.resourceVersion), 'list rv >= object rv');
  t.notOk(l.metadata.continue, 'no continue without limit');
  t.same(names(l), ['alpha']);
  t.same(l.items[0], created);

  const all = json(await req('GET', `${API}/ocmcomponents`));
  t.equal(all.kind, 'OCMComponentList');
  t.ok(names(all).includes('alpha'), 'list across all namespaces');

  const missing = isStatus(t, await get('verbs', 'nope'), 404, 'NotFound', 'get missing');
  t.match(missing.details, { name: 'nope', group: GROUP, kind: 'ocmcomponents' });
  t.match(missing.message, 'ocmcomponents.delivery.ocm.software "nope" not found');

  const yamlBody = YAML.stringify(comp('from-yaml'));
  const y = await req('POST', col('verbs'), { body: yamlBody, headers: { 'Content-Type': 'application/yaml' } });
  t.equal(y.status, 201, `create from a YAML body: ${y.body.slice(0, 200)}`);
  t.equal(json(y).metadata.name, 'from-yaml');
});

t.test('generateName', async (t) => {
  const a = await create(t, 'verbs', { ...comp(''), metadata: { generateName: 'gen-' } });
  const b = await create(t, 'verbs', { ...comp(''), metadata: { generateName: 'gen-' } });
  t.match(a.metadata.name, /^gen-[a-z0-9]{5}$/);
  t.match(b.metadata.name, /^gen-[a-z0-9]{5}$/);
  t.not(a.metadata.name, b.metadata.name, 'two different names');
  t.equal(a.metadata.generateName, 'gen-', 'generateName kept');
  t.equal((await get('verbs', a.metadata.name)).status, 200);
  const s = isStatus(t, await req('POST', col('verbs'), { body: { ...comp(''), metadata: {} } }), 422, 'Invalid', 'neither name nor generateName');
  t.ok(fields(s).includes('metadata.name'), 'cause names metadata.name');
});

t.test('optimistic concurrency: stale update 409 Conflict, duplicate create 409 AlreadyExists', async (t) => {
  const c = await create(t, 'verbs', comp('occ'));
  const dup = isStatus(t, await req('POST', col('verbs'), { body: comp('occ') }), 409, 'AlreadyExists', 'create existing');
  t.match(dup.details, { name: 'occ', group: GROUP, kind: 'ocmcomponents' });

  const u1 = { ...c, spec: { ...c.spec, version: 'v1.1.0' } };
  const r1 = await req('PUT', one('verbs', 'occ'), { body: u1 });
  t.equal(r1.status, 200, 'update with the current resourceVersion');
  t.not(json(r1).metadata.resourceVersion, c.metadata.resourceVersion);

  const stale = { ...c, spec: { ...c.spec, version: 'v1.2.0' } };
  await nothingChanges(t, async () => {
    const s = isStatus(t, await req('PUT', one('verbs', 'occ'), { body: stale }), 409, 'Conflict', 'update with a stale resourceVersion');
    t.match(s.message, 'the object has been modified');
  });
  t.equal(json(await get('verbs', 'occ')).spec.version, 'v1.1.0', 'stale update not applied');

  const stalePatch = await req('PATCH', one('verbs', 'occ'), { body: { metadata: { resourceVersion: c.metadata.resourceVersion }, spec: { version: 'v9.0.0' } }, headers: MERGE });
  isStatus(t, stalePatch, 409, 'Conflict', 'merge patch carrying a stale resourceVersion');

  const wrongUid = { ...json(await get('verbs', 'occ')) };
  wrongUid.metadata = { ...wrongUid.metadata, uid: '00000000-0000-0000-0000-000000000000' };
  isStatus(t, await req('PUT', one('verbs', 'occ'), { body: wrongUid }), 409, 'Conflict', 'update with another uid');

  const noRV = json(await get('verbs', 'occ'));
  delete noRV.metadata.resourceVersion;
  noRV.spec.version = 'v1.3.0';
  const r2 = await req('PUT', one('verbs', 'occ'), { body: noRV });
  t.equal(r2.status, 200, 'update without a resourceVersion is unconditional');
  t.equal(json(r2).spec.version, 'v1.3.0');

  isStatus(t, await req('PUT', one('verbs', 'never-created'), { body: comp('never-created') }), 404, 'NotFound', 'update of a missing object');
});

t.test('status subresource split and generation', async (t) => {
  const c = await create(t, 'verbs', comp('split', { labels: { a: '1' } }));
  t.equal(c.metadata.generation, 1);

  // PUT on the main resource: status ignored, labels applied, no generation bump.
  const main = { ...c, metadata: { ...c.metadata, labels: { a: '2' } }, status: { resolvedVersion: 'v1.0.0', conditions: [READY] } };
  const r1 = json(await req('PUT', one('verbs', 'split'), { body: main }));
  t.notOk('status' in r1, 'PUT on the main resource ignores status');
  t.same(r1.metadata.labels, { a: '2' }, 'labels updated');
  t.equal(r1.metadata.generation, 1, 'metadata-only change keeps generation');
  t.not(r1.metadata.resourceVersion, c.metadata.resourceVersion);

  // PUT on /status: status applied; spec, labels and annotations changes ignored.
  const st = { ...r1, metadata: { ...r1.metadata, labels: { a: 'status-write' }, annotations: { x: 'y' } }, spec: { ...r1.spec, version: 'v2.0.0' }, status: { resolvedVersion: 'v1.0.0', conditions: [READY] } };
  const r2res = await req('PUT', one('verbs', 'split', '/status'), { body: st });
  t.equal(r2res.status, 200, `PUT /status: ${r2res.body.slice(0, 300)}`);
  const r2 = json(r2res);
  t.same(r2.status, { resolvedVersion: 'v1.0.0', conditions: [READY] }, '/status sets status');
  t.equal(r2.spec.version, 'v1.0.0', '/status ignores spec');
  t.same(r2.metadata.labels, { a: '2' }, '/status ignores labels');
  t.notOk(r2.metadata.annotations, '/status ignores annotations');
  t.equal(r2.metadata.generation, 1, 'status change keeps generation');
  t.same(json(await get('verbs', 'split')), r2, 'stored state is what /status returned');
  t.same(json(await req('GET', one('verbs', 'split', '/status'))), r2, 'GET /status returns the object');

  const staleStatus = { ...r1, status: { resolvedVersion: 'v0.0.1' } };
  await nothingChanges(t, async () => {
    isStatus(t, await req('PUT', one('verbs', 'split', '/status'), { body: staleStatus }), 409, 'Conflict', 'PUT /status with a stale resourceVersion');
  });

  // Merge patch on the main resource that only touches status: a no-op.
  const p1 = await req('PATCH', one('verbs', 'split'), { body: { status: { resolvedVersion: 'v7.7.7' } }, headers: MERGE });
  t.equal(p1.status, 200);
  t.equal(json(p1).status.resolvedVersion, 'v1.0.0', 'PATCH on the main resource ignores status');
  t.equal(json(p1).metadata.resourceVersion, r2.metadata.resourceVersion, 'status-only patch of the main resource writes nothing');

  // Merge patch on /status that touches spec and metadata: those are ignored.
  const p2 = json(
    await req('PATCH', one('verbs', 'split', '/status'), { body: { metadata: { labels: { b: '1' } }, spec: { version: 'v3.0.0' }, status: { verified: true } }, headers: MERGE }),
  );
  t.equal(p2.status.verified, true, 'PATCH /status sets status');
  t.equal(p2.status.resolvedVersion, 'v1.0.0', 'merge keeps the rest of status');
  t.equal(p2.spec.version, 'v1.0.0', 'PATCH /status ignores spec');
  t.same(p2.metadata.labels, { a: '2' }, 'PATCH /status ignores labels');
  t.equal(p2.metadata.generation, 1);

  // Spec change bumps generation; status survives a main-resource PUT without status.
  const specChange: Obj = { ...p2, spec: { ...p2.spec, version: 'v1.5.0' } };
  delete specChange.status;
  const r3 = json(await req('PUT', one('verbs', 'split'), { body: specChange }));
  t.equal(r3.metadata.generation, 2, 'spec change bumps generation');
  t.same(r3.status, p2.status, 'PUT on the main resource without status keeps status');

  // No-op update keeps the resourceVersion.
  const r4res = await req('PUT', one('verbs', 'split'), { body: r3 });
  t.equal(r4res.status, 200);
  const r4 = json(r4res);
  t.equal(r4.metadata.resourceVersion, r3.metadata.resourceVersion, 'no-op PUT keeps resourceVersion');
  t.equal(r4.metadata.generation, 2);
  await nothingChanges(t, async () => {
    const r = await req('PATCH', one('verbs', 'split'), { body: { metadata: { labels: { a: '2' } } }, headers: MERGE });
    t.equal(json(r).metadata.resourceVersion, r3.metadata.resourceVersion, 'no-op merge patch keeps resourceVersion');
  });

  // System fields cannot be changed through PUT.
  const tamper = { ...r4, metadata: { ...r4.metadata, uid: undefined, creationTimestamp: '2000-01-01T00:00:00Z', generation: 99 } };
  const r5 = json(await req('PUT', one('verbs', 'split'), { body: tamper }));
  t.equal(r5.metadata.creationTimestamp, c.metadata.creationTimestamp, 'creationTimestamp kept');
  t.equal(r5.metadata.generation, 2, 'generation not settable');
  t.equal(r5.metadata.uid, c.metadata.uid, 'uid kept');

  // The no-op check compares the JSON the server would store: keys in another order (the same
  // length, another text) are still the same object; a value changed in place (the same length) is not.
  const reversed = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).reverse());
  const r6 = json(await req('PUT', one('verbs', 'split'), { body: { ...reversed(r5), metadata: reversed({ ...r5.metadata, labels: { z: '1', ...r5.metadata.labels } }), spec: reversed(r5.spec) } }));
  t.not(r6.metadata.resourceVersion, r5.metadata.resourceVersion, 'a label added: a new resourceVersion');
  const r7 = json(await req('PUT', one('verbs', 'split'), { body: { ...reversed(r6), metadata: reversed({ ...r6.metadata, labels: reversed(r6.metadata.labels) }), spec: reversed(r6.spec) } }));
  t.equal(r7.metadata.resourceVersion, r6.metadata.resourceVersion, 'the object, its metadata, labels and spec in another key order: no-op, resourceVersion kept');
  t.equal(r7.metadata.generation, 2, 'spec in another key order: generation kept');
  const r8 = json(await req('PUT', one('verbs', 'split'), { body: { ...r7, metadata: { ...r7.metadata, labels: { ...r7.metadata.labels, z: '2' } }, spec: { ...r7.spec, version: 'v1.5.1' } } }));
  t.not(r8.metadata.resourceVersion, r7.metadata.resourceVersion, 'a value changed in place (same length): a new resourceVersion');
  t.equal(r8.metadata.generation, 3, 'a spec value changed in place (same length) bumps generation');
  t.same(r8.metadata.labels, { ...r7.metadata.labels, z: '2' });
});

t.test('patch: merge, json, strategic merge, apply', async (t) => {
  await create(t, 'verbs', comp('patchme', { labels: { keep: 'yes', drop: 'yes' } }));

  const m = await req('PATCH', one('verbs', 'patchme'), { body: { metadata: { labels: { drop: null, added: 'x' } }, spec: { suspend: true } }, headers: MERGE });
  t.equal(m.status, 200, `merge patch: ${m.body.slice(0, 200)}`);
  const mo = json(m);
  t.same(mo.metadata.labels, { keep: 'yes', added: 'x' }, 'merge patch merges maps and null deletes');
  t.equal(mo.spec.suspend, true);
  t.equal(mo.metadata.generation, 2, 'spec change via merge patch bumps generation');

  const jp = await req('PATCH', one('verbs', 'patchme'), {
    body: [
      { op: 'test', path: '/spec/version', value: 'v1.0.0' },
      { op: 'replace', path: '/spec/version', value: 'v1.2.0' },
      { op: 'add', path: '/metadata/annotations', value: { note: 'hi' } },
    ],
    headers: JSONPATCH,
  });
  t.equal(jp.status, 200, `json patch: ${jp.body.slice(0, 200)}`);
  t.equal(json(jp).spec.version, 'v1.2.0');
  t.same(json(jp).metadata.annotations, { note: 'hi' });
  t.equal(json(jp).metadata.generation, 3);

  await nothingChanges(t, async () => {
    const bad = await req('PATCH', one('verbs', 'patchme'), {
      body: [
        { op: 'test', path: '/spec/version', value: 'v0.0.1' },
        { op: 'replace', path: '/spec/version', value: 'v5.0.0' },
      ],
      headers: JSONPATCH,
    });
    t.ok(bad.status >= 400 && bad.status < 500, `failing test op gives 4xx (got ${bad.status})`);
    t.match(json(bad), { kind: 'Status', status: 'Failure' });
    const badPath = await req('PATCH', one('verbs', 'patchme'), { body: [{ op: 'replace', path: '/spec/nothere/deep', value: 1 }], headers: JSONPATCH });
    t.ok(badPath.status >= 400 && badPath.status < 500, `patch of a missing path gives 4xx (got ${badPath.status})`);
    t.match(json(badPath), { kind: 'Status', status: 'Failure' });
    isStatus(t, await req('PATCH', one('verbs', 'patchme'), { body: { op: 'replace' }, headers: JSONPATCH }), 400, 'BadRequest', 'json patch that is not an array');
    isStatus(t, await req('PATCH', one('verbs', 'patchme'), { body: '{"metadata":', headers: MERGE }), 400, 'BadRequest', 'merge patch that is not JSON');
  });
  t.equal(json(await get('verbs', 'patchme')).spec.version, 'v1.2.0', 'failed patches changed nothing');

  // custom resources take no strategic merge patch: 415, as apiextensions-apiserver answers
  const sm = await req('PATCH', one('verbs', 'patchme'), { body: { metadata: { labels: { strategic: 'ok' } } }, headers: { 'Content-Type': 'application/strategic-merge-patch+json' } });
  isStatus(t, sm, 415, 'UnsupportedMediaType', 'strategic merge patch of a custom resource');

  const applyBody = YAML.stringify({ apiVersion: GV, kind: 'OCMComponent', metadata: { name: 'patchme', labels: { applied: 'yes' } } });
  const ap = await req('PATCH', one('verbs', 'patchme', '?fieldManager=test'), { body: applyBody, headers: { 'Content-Type': 'application/apply-patch+yaml' } });
  if (ap.status === 200 || ap.status === 201) {
    t.equal(json(ap).metadata.labels.applied, 'yes', 'server-side apply works');
  } else {
    isStatus(t, ap, 415, 'UnsupportedMediaType', 'server-side apply');
  }

  isStatus(t, await req('PATCH', one('verbs', 'nope'), { body: { metadata: {} }, headers: MERGE }), 404, 'NotFound', 'patch of a missing object');
  isStatus(t, await req('PATCH', one('verbs', 'patchme'), { body: { metadata: {} }, headers: { 'Content-Type': 'text/plain' } }), 415, 'UnsupportedMediaType', 'patch with an unknown content type');
});

t.test('delete, finalizers, deletecollection, preconditions', async (t) => {
  const c = await create(t, 'del', comp('gone'));
  const d = await req('DELETE', one('del', 'gone'));
  t.equal(d.status, 200, 'delete answers 200');
  t.match(json(d), { kind: 'OCMComponent', metadata: { name: 'gone', uid: c.metadata.uid } }, 'with the deleted object');
  isStatus(t, await get('del', 'gone'), 404, 'NotFound', 'get after delete');
  isStatus(t, await req('DELETE', one('del', 'gone')), 404, 'NotFound', 'second delete');

  // Finalizers: deletionTimestamp set, object kept until the last finalizer is removed.
  await create(t, 'del', comp('held', { finalizers: ['example.com/hold'] }));
  const d1 = await req('DELETE', one('del', 'held'));
  t.equal(d1.status, 200);
  t.match(json(d1).metadata.deletionTimestamp, /^\d{4}-/, 'delete of an object with finalizers sets deletionTimestamp');
  t.equal(json(d1).metadata.generation, 2, 'and bumps generation (as kube does for graceful deletion)');
  const still = await get('del', 'held');
  t.equal(still.status, 200, 'object still there while finalizers remain');
  t.ok(json(still).metadata.deletionTimestamp);
  t.same(json(still).metadata.finalizers, ['example.com/hold']);
  const d2 = await req('DELETE', one('del', 'held'));
  t.equal(d2.status, 200, 'deleting again is fine');
  t.equal(json(d2).metadata.deletionTimestamp, json(still).metadata.deletionTimestamp, 'deletionTimestamp unchanged');
  const addFin = await req('PATCH', one('del', 'held'), { body: { metadata: { finalizers: ['example.com/hold', 'example.com/more'] } }, headers: MERGE });
  isStatus(t, addFin, 422, 'Invalid', 'no new finalizers once deleting');
  const lbl = await req('PATCH', one('del', 'held'), { body: { metadata: { labels: { x: 'y' } } }, headers: MERGE });
  t.equal(lbl.status, 200, 'other updates still allowed while terminating');
  const rm = await req('PATCH', one('del', 'held'), { body: { metadata: { finalizers: null } }, headers: MERGE });
  t.equal(rm.status, 200, `removing the last finalizer: ${rm.body.slice(0, 200)}`);
  isStatus(t, await get('del', 'held'), 404, 'NotFound', 'gone after the last finalizer was removed');

  // deletecollection with a label selector.
  for (const [n, v] of [['dc-1', 'yes'], ['dc-2', 'yes'], ['dc-3', 'yes'], ['dc-4', 'no'], ['dc-5', 'no']]) await create(t, 'delcol', comp(n, { labels: { del: v } }));
  const dc = await req('DELETE', col('delcol', '?labelSelector=del%3Dyes'));
  t.equal(dc.status, 200, `deletecollection: ${dc.body.slice(0, 200)}`);
  t.equal(json(dc).kind, 'OCMComponentList', 'deletecollection returns a list');
  t.same(names(json(dc)).sort(), ['dc-1', 'dc-2', 'dc-3'], 'with the deleted objects');
  t.same(names(json(await req('GET', col('delcol')))), ['dc-4', 'dc-5'], 'only matching objects deleted');
  await create(t, 'delcol2', comp('other-ns'));
  t.equal((await get('delcol2', 'other-ns')).status, 200, 'deletecollection stays in its namespace');

  // Preconditions.
  const p = await create(t, 'del', comp('pre'));
  await nothingChanges(t, async () => {
    const s1 = isStatus(
      t,
      await req('DELETE', one('del', 'pre'), { body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: '00000000-0000-0000-0000-000000000000' } } }),
      409,
      'Conflict',
      'uid precondition',
    );
    t.match(s1.message, 'Precondition failed');
    const s2 = isStatus(t, await req('DELETE', one('del', 'pre'), { body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { resourceVersion: '1' } } }), 409, 'Conflict', 'resourceVersion precondition');
    t.match(s2.message, 'Precondition failed');
  });
  t.equal((await get('del', 'pre')).status, 200, 'still there after failed preconditions');
  const ok = await req('DELETE', one('del', 'pre'), {
    body: { kind: 'DeleteOptions', apiVersion: 'v1', preconditions: { uid: p.metadata.uid, resourceVersion: p.metadata.resourceVersion } },
  });
  t.equal(ok.status, 200, 'matching preconditions delete');
  t.equal((await get('del', 'pre')).status, 404);

  isStatus(t, await req('DELETE', one('del', 'x'), { body: '{not json' }), 400, 'BadRequest', 'malformed DeleteOptions');
  // 422 on DeleteOptions, as apimachinery's ValidateDeleteOptions answers (see test/gc.test.ts).
  isStatus(t, await req('DELETE', one('del', 'x', '?propagationPolicy=Sometimes')), 422, 'Invalid', 'bad propagationPolicy');
});

t.test('dryRun=All changes nothing', async (t) => {
  const base = await create(t, 'dry', comp('real'));
  await nothingChanges(t, async () => {
    const c = await req('POST', col('dry', '?dryRun=All'), { body: comp('dry-created') });
    t.equal(c.status, 201, 'dry-run create answers 201');
    t.equal(json(c).metadata.name, 'dry-created');
    t.equal((await get('dry', 'dry-created')).status, 404, 'dry-run create stored nothing');

    const u = await req('PUT', one('dry', 'real', '?dryRun=All'), { body: { ...base, spec: { ...base.spec, version: 'v2.0.0' } } });
    t.equal(u.status, 200, 'dry-run update answers 200');
    t.equal(json(u).spec.version, 'v2.0.0', 'with the would-be object');
    t.equal(json(u).metadata.generation, 2);

    const p = await req('PATCH', one('dry', 'real', '?dryRun=All'), { body: { metadata: { labels: { dry: 'run' } } }, headers: MERGE });
    t.equal(p.status, 200, 'dry-run patch answers 200');
    t.equal(json(p).metadata.labels?.dry, 'run');

    const s = await req('PATCH', one('dry', 'real', '/status?dryRun=All'), { body: { status: { verified: true } }, headers: MERGE });
    t.equal(s.status, 200, 'dry-run status patch answers 200');

    const d = await req('DELETE', one('dry', 'real', '?dryRun=All'));
    t.equal(d.status, 200, 'dry-run delete answers 200');

    const dc = await req('DELETE', col('dry', '?dryRun=All'));
    t.equal(dc.status, 200, 'dry-run deletecollection answers 200');

    const dupe = await req('POST', col('dry', '?dryRun=All'), { body: comp('real') });
    isStatus(t, dupe, 409, 'AlreadyExists', 'dry-run create still checks for an existing object');
    isStatus(t, await req('POST', col('dry', '?dryRun=Some'), { body: comp('x') }), 400, 'BadRequest', 'unsupported dryRun value');
  });
  t.same(json(await get('dry', 'real')), base, 'object unchanged after dry runs');
});

t.test('fieldValidation Strict, Warn, Ignore', async (t) => {
  const withUnknown = (name: string) => {
    const o = comp(name);
    o.spec.bogus = 1;
    o.metadata.bogusMeta = 'x';
    return o;
  };
  await nothingChanges(t, async () => {
    const s = isStatus(t, await req('POST', col('fv', '?fieldValidation=Strict'), { body: withUnknown('strict') }), 400, 'BadRequest', 'Strict create with unknown fields');
    t.match(s.message, 'unknown field "spec.bogus"', 'message names the field path');
    t.match(s.message, 'unknown field "metadata.bogusMeta"');
    t.ok(fields(s).includes('spec.bogus'), 'details.causes[].field names spec.bogus');
    t.equal((await get('fv', 'strict')).status, 404);
  });

  const w = await req('POST', col('fv', '?fieldValidation=Warn'), { body: withUnknown('warn') });
  t.equal(w.status, 201, 'Warn creates');
  const warning = [w.headers.warning ?? []].flat().join('\n');
  t.match(warning, /^299 - /, 'Warning header in kube format');
  t.match(warning, 'unknown field \\"spec.bogus\\"', 'Warning names the field');
  t.notOk('bogus' in json(w).spec, 'unknown field dropped');
  t.notOk('bogus' in json(await get('fv', 'warn')).spec, 'unknown field not stored');

  const d = await req('POST', col('fv'), { body: withUnknown('default') });
  t.equal(d.status, 201, 'default (Warn) creates');
  t.ok(d.headers.warning, 'default is Warn: a Warning header');

  const i = await req('POST', col('fv', '?fieldValidation=Ignore'), { body: withUnknown('ignore') });
  t.equal(i.status, 201, 'Ignore creates');
  t.notOk(i.headers.warning, 'no Warning header with Ignore');
  t.notOk('bogus' in json(i).spec, 'silently dropped');

  const cur = json(await get('fv', 'warn'));
  await nothingChanges(t, async () => {
    const u = { ...cur, spec: { ...cur.spec, bogus: true } };
    const s1 = isStatus(t, await req('PUT', one('fv', 'warn', '?fieldValidation=Strict'), { body: u }), 400, 'BadRequest', 'Strict update');
    t.match(s1.message, 'spec.bogus');
    const s2 = isStatus(t, await req('PATCH', one('fv', 'warn', '?fieldValidation=Strict'), { body: { spec: { bogus: 1 } }, headers: MERGE }), 400, 'BadRequest', 'Strict merge patch');
    t.match(s2.message, 'spec.bogus');
    const s3 = isStatus(t, await req('PATCH', one('fv', 'warn', '/status?fieldValidation=Strict'), { body: { status: { bogusStatus: 1 } }, headers: MERGE }), 400, 'BadRequest', 'Strict status patch');
    t.match(s3.message, 'status.bogusStatus');
    isStatus(t, await req('POST', col('fv', '?fieldValidation=Loose'), { body: comp('x') }), 400, 'BadRequest', 'unsupported fieldValidation value');
  });
  const wp = await req('PATCH', one('fv', 'warn', '?fieldValidation=Warn'), { body: { spec: { bogus: 1, suspend: true } }, headers: MERGE });
  t.equal(wp.status, 200);
  t.match([wp.headers.warning ?? []].flat().join('\n'), 'spec.bogus', 'Warn patch warns');
  t.equal(json(wp).spec.suspend, true);
  t.notOk('bogus' in json(wp).spec);
});

t.test('fieldValidation=Strict rejects duplicate fields (as kube-apiserver does)', async (t) => {
  const body = (name: string) =>
    `{"apiVersion":"${GV}","kind":"OCMComponent","metadata":{"name":"${name}"},"spec":{"name":"github.com/acme/app","version":"v1.0.0","version":"v2.0.0","repository":{"url":"ghcr.io/acme"}}}`;
  await nothingChanges(t, async () => {
    const s = isStatus(t, await req('POST', col('fv', '?fieldValidation=Strict'), { body: body('dupe-strict') }), 400, 'BadRequest', 'Strict create with a duplicate field');
    t.match(s.message, /duplicate field "(spec\.)?version"/, 'message names the duplicate field');
  });
  const w = await req('POST', col('fv', '?fieldValidation=Warn'), { body: body('dupe-warn') });
  t.equal(w.status, 201);
  t.match([w.headers.warning ?? []].flat().join('\n'), /duplicate field/, 'Warn warns about the duplicate field');
});

/** A well-formed kube protobuf envelope: `k8s\0` + runtime.Unknown{typeMeta{apiVersion, kind}, raw}. */
function protobufEnvelope(apiVersion: string, kind: string, raw: string): Buffer {
  const varint = (n: number) => {
    const out: number[] = [];
    while (n > 0x7f) out.push((n & 0x7f) | 0x80), (n >>>= 7);
    out.push(n);
    return Buffer.from(out);
  };
  const field = (no: number, data: Buffer) => Buffer.concat([varint((no << 3) | 2), varint(data.length), data]);
  const typeMeta = Buffer.concat([field(1, Buffer.from(apiVersion)), field(2, Buffer.from(kind))]);
  return Buffer.concat([Buffer.from('k8s\0', 'latin1'), field(1, typeMeta), field(2, Buffer.from(raw))]);
}

/** POSTs a binary body (server.request only sends strings). */
function rawPost(body: Buffer, contentType: string): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const certs = `${server.dataDir}/certs/`;
    const r = https.request(
      {
        host: '127.0.0.1',
        port: server.port,
        method: 'POST',
        path: col('bad'),
        servername: 'localhost',
        agent: false,
        ca: readFileSync(certs + 'ca.crt'),
        cert: readFileSync(certs + 'admin.crt'),
        key: readFileSync(certs + 'admin.key'),
        headers: { 'Content-Type': contentType, 'Content-Length': String(body.length), Accept: 'application/json' },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text, json: () => JSON.parse(text) });
        });
      },
    );
    r.on('error', reject);
    r.end(body);
  });
}

t.test('every bad input is a Status and changes nothing', async (t) => {
  await create(t, 'bad', comp('exists'));
  const post = (body: unknown, headers?: Record<string, string>) => req('POST', col('bad'), { body, headers });
  const cases: [string, () => Promise<HttpResult>, number, string, string?][] = [
    ['upper-case name', () => post(comp('UpperCase')), 422, 'Invalid', 'metadata.name'],
    ['underscore in name', () => post(comp('under_score')), 422, 'Invalid', 'metadata.name'],
    ['name over 253 characters', () => post(comp('a'.repeat(254))), 422, 'Invalid', 'metadata.name'],
    ['invalid generateName result', () => post({ ...comp(''), metadata: { generateName: 'Bad_' } }), 422, 'Invalid', 'metadata.name'],
    ['invalid label key', () => post(comp('lk', { labels: { 'bad key!': 'v' } })), 422, 'Invalid', 'metadata.labels'],
    ['invalid label value', () => post(comp('lv', { labels: { k: 'bad value!' } })), 422, 'Invalid', 'metadata.labels'],
    ['label value over 63 characters', () => post(comp('lv2', { labels: { k: 'v'.repeat(64) } })), 422, 'Invalid', 'metadata.labels'],
    ['non-string label value', () => post(comp('lv3', { labels: { k: 1 } })), 422, 'Invalid', 'metadata.labels'],
    ['invalid annotation key', () => post(comp('ak', { annotations: { '/x': 'v' } })), 422, 'Invalid', 'metadata.annotations'],
    ['invalid finalizer', () => post(comp('fin', { finalizers: ['not a finalizer!'] })), 422, 'Invalid', 'metadata.finalizers[0]'],
    ['invalid JSON', () => post('{"apiVersion": "delivery.ocm.software/v1alpha1", "kind": '), 400, 'BadRequest'],
    ['empty body', () => post(''), 400, 'BadRequest'],
    ['invalid YAML', () => post('apiVersion: x\nkind: [unclosed\n  metadata: {', { 'Content-Type': 'application/yaml' }), 400, 'BadRequest'],
    ['JSON array body', () => post([comp('arr')]), 400, 'BadRequest'],
    ['JSON string body', () => post('"just a string"'), 400, 'BadRequest'],
    ['wrong apiVersion', () => post({ ...comp('wv'), apiVersion: `${GROUP}/v2` }), 400, 'BadRequest'],
    ['missing apiVersion', () => post({ ...comp('wv'), apiVersion: undefined }), 400, 'BadRequest'],
    ['wrong kind', () => post({ ...comp('wk'), kind: 'Source' }), 400, 'BadRequest'],
    ['missing kind', () => post({ ...comp('wk'), kind: undefined }), 400, 'BadRequest'],
    ['namespace in body differs from URL', () => post(comp('wns', { namespace: 'other' })), 400, 'BadRequest'],
    ['name in body differs from URL on PUT', () => req('PUT', one('bad', 'exists'), { body: comp('something-else') }), 400, 'BadRequest'],
    ['missing required field', () => post({ ...comp('req'), spec: { version: 'v1.0.0', repository: { url: 'ghcr.io/acme' } } }), 422, 'Invalid', 'spec.name'],
    ['missing spec', () => post({ ...comp('nospec'), spec: undefined }), 422, 'Invalid', 'spec'],
    ['wrong type', () => post(comp('wt', {}, { name: 42 })), 422, 'Invalid', 'spec.name'],
    ['wrong type (object for string)', () => post(comp('wt2', {}, { version: { v: 1 } })), 422, 'Invalid', 'spec.version'],
    ['pattern violation', () => post(comp('pat', {}, { name: 'Not A Component' })), 422, 'Invalid', 'spec.name'],
    ['strategy validation (semver)', () => post(comp('sv', {}, { version: 'not-a-version!!' })), 422, 'Invalid', 'spec.version'],
    [
      'enum violation (status subresource)',
      () => req('PATCH', one('bad', 'exists', '/status'), { body: { status: { conditions: [{ ...READY, status: 'Maybe' }] } }, headers: MERGE }),
      422,
      'Invalid',
      'status.conditions[0].status',
    ],
    ['unknown media type', () => post(JSON.stringify(comp('mt')), { 'Content-Type': 'text/plain' }), 415, 'UnsupportedMediaType'],
    ['protobuf body (custom resources take JSON and YAML only)', () => rawPost(protobufEnvelope(GV, 'OCMComponent', JSON.stringify(comp('pb'))), 'application/vnd.kubernetes.protobuf'), 415, 'UnsupportedMediaType'],
    ['Accept only protobuf (list)', () => req('GET', col('bad'), { headers: { Accept: 'application/vnd.kubernetes.protobuf' } }), 406, 'NotAcceptable'],
    ['Accept only protobuf (create)', () => post(comp('acc'), { Accept: 'application/vnd.kubernetes.protobuf' }), 406, 'NotAcceptable'],
    ['resourceVersion set on create', () => post(comp('rv', { resourceVersion: '5' })), 400, 'BadRequest'],
    ['POST to a named object', () => req('POST', one('bad', 'exists'), { body: comp('exists') }), 405, 'MethodNotAllowed'],
    ['namespace that does not exist', () => req('POST', col('no-such-namespace'), { body: comp('ns') }), 404, 'NotFound'],
  ];
  for (const [what, send, code, reason, field] of cases) {
    await t.test(what, async (t) => {
      await nothingChanges(t, async () => {
        const s = isStatus(t, await send(), code, reason, what);
        if (field) t.ok(fields(s).includes(field), `details.causes[].field includes ${field} (got ${JSON.stringify(fields(s))})`);
      });
    });
  }
});

/**
 * Streams a large body the way Go's client (kubectl) does: in chunks, reading the response
 * concurrently and stopping once the server answered (a server may answer 413 before reading
 * the body and close the connection). `chunked` uses Transfer-Encoding: chunked instead of a
 * Content-Length. Returns the parsed response.
 */
async function streamBody(method: string, path: string, body: Buffer, chunked: boolean): Promise<HttpResult> {
  return streamBodyOnce(method, path, body, chunked);
}

function streamBodyOnce(method: string, path: string, body: Buffer, chunked: boolean): Promise<HttpResult> {
  const certs = `${server.dataDir}/certs/`;
  return new Promise((resolve, reject) => {
    let raw = Buffer.alloc(0);
    let answered = false;
    const sock = tls.connect(
      { host: '127.0.0.1', port: server.port, servername: 'localhost', ca: readFileSync(certs + 'ca.crt'), cert: readFileSync(certs + 'admin.crt'), key: readFileSync(certs + 'admin.key') },
      async () => {
        const framing = chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${body.length}`;
        sock.write(`${method} ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n${framing}\r\n\r\n`);
        const step = 64 * 1024;
        for (let off = 0; off < body.length && !answered && !sock.destroyed; off += step) {
          const part = body.subarray(off, off + step);
          const ok = sock.write(chunked ? Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from('\r\n')]) : part);
          if (!ok) await new Promise((r) => sock.once('drain', r));
          await new Promise((r) => setTimeout(r, 1));
        }
        if (chunked && !answered && !sock.destroyed) sock.write('0\r\n\r\n');
      },
    );
    const finish = () => {
      const text = raw.toString('utf8');
      const i = text.indexOf('\r\n\r\n');
      if (i < 0) return reject(new Error(`no HTTP response before the connection closed (${text.length} bytes)`));
      const [statusLine, ...hdrLines] = text.slice(0, i).split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of hdrLines) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      let rest = text.slice(i + 4);
      if (headers['content-length']) rest = rest.slice(0, Number(headers['content-length']));
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: rest, json: () => JSON.parse(rest) });
    };
    sock.on('data', (c: Buffer) => {
      raw = Buffer.concat([raw, c]);
      const text = raw.toString('utf8');
      const i = text.indexOf('\r\n\r\n');
      const m = /content-length:\s*(\d+)/i.exec(text.slice(0, Math.max(i, 0)));
      if (i >= 0 && m && Buffer.byteLength(text.slice(i + 4)) >= Number(m[1])) {
        answered = true;
        sock.destroy();
      }
    });
    sock.on('error', () => undefined); // EPIPE/ECONNRESET once the server closed: the response decides
    sock.on('close', finish);
  });
}

t.test('body over the size limit gets 413', async (t) => {
  const big = Buffer.from(JSON.stringify(comp('big', { annotations: { big: 'x'.repeat(4 * 1024 * 1024) } })));
  for (const chunked of [false, true]) {
    await nothingChanges(t, async () => {
      const what = `4 MiB body${chunked ? ' (chunked)' : ''}`;
      const s = isStatus(t, await streamBody('POST', col('bad'), big, chunked), 413, 'RequestEntityTooLarge', what);
      t.match(s.message, /limit is 3145728/, 'message names the limit');
      const u = await streamBody('PUT', one('bad', 'exists'), big, chunked);
      isStatus(t, u, 413, 'RequestEntityTooLarge', `${what} on PUT`);
    });
  }
  t.equal((await get('bad', 'big')).status, 404);

  // A client that writes the whole body before it reads: the server reads and drops the rest
  // instead of closing on unread data (which ends in RST and can lose the 413), and the connection
  // stays usable.
  const certs = `${server.dataDir}/certs/`;
  const sock = tls.connect({ host: '127.0.0.1', port: server.port, servername: 'localhost', ca: readFileSync(certs + 'ca.crt'), cert: readFileSync(certs + 'admin.crt'), key: readFileSync(certs + 'admin.key') });
  await new Promise((r) => sock.once('secureConnect', r));
  let got = '';
  sock.on('data', (c: Buffer) => (got += c.toString('latin1')));
  const closed = new Promise((r) => sock.once('close', r));
  sock.on('error', () => undefined);
  const wrote = await new Promise<boolean>((resolve) => {
    sock.write(`POST ${col('bad')} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${big.length}\r\n\r\n`);
    sock.write(big, (err) => resolve(!err));
  });
  t.ok(wrote, 'the whole 4 MiB body was accepted by the connection');
  for (let i = 0; i < 100 && !/\r\n\r\n[\s\S]*"code":413\}/.test(got); i++) await new Promise((r) => setTimeout(r, 50));
  t.match(got, /^HTTP\/1\.1 413 /, 'the 413 arrives');
  t.notMatch(got, /connection: close/i, 'without closing the connection');
  got = '';
  sock.write('GET /api HTTP/1.1\r\nHost: localhost\r\n\r\n');
  for (let i = 0; i < 100 && !/"kind":"APIVersions"/.test(got); i++) await new Promise((r) => setTimeout(r, 50));
  t.match(got, /^HTTP\/1\.1 200 /, 'the same connection serves the next request');
  sock.destroy();
  await closed;

  // Under the limit but over kube's 256 KiB annotation budget: a validation error, not 413.
  const s = isStatus(t, await req('POST', col('bad'), { body: comp('bigann', { annotations: { big: 'x'.repeat(300 * 1024) } }) }), 422, 'Invalid', '300 KiB of annotations');
  t.ok(fields(s).includes('metadata.annotations'));
});

t.test('authentication and unknown paths', async (t) => {
  await create(t, 'auth', comp('secret'));
  const anon = await req('GET', col('auth'), { cert: null });
  isStatus(t, anon, 401, 'Unauthorized', 'no client certificate');
  t.notMatch(anon.body, 'secret', 'no data leaks');
  isStatus(t, await req('POST', col('auth'), { body: comp('anon'), cert: null }), 401, 'Unauthorized', 'no client certificate on create');
  for (const p of ['/healthz', '/livez', '/readyz']) {
    const h = await req('GET', p, { cert: null });
    t.equal(h.status, 200, `${p} without a certificate`);
  }

  const otherCA = createCA(await newKeys(), 'some-other-ca', 1);
  const foreign = issueClientCert(otherCA, { commonName: 'admin', organizations: ['system:masters'] });
  const f = await req('GET', col('auth'), { cert: { cert: foreign.certPem, key: foreign.keyPem } });
  isStatus(t, f, 401, 'Unauthorized', 'client certificate from another CA');
  t.notMatch(f.body, 'secret');

  const nf = isStatus(t, await req('GET', `${API}/namespaces/auth/widgets`), 404, 'NotFound', 'unknown resource');
  t.notOk(nf.details?.name, 'not an object NotFound');
  isStatus(t, await req('GET', '/apis/example.com/v1/widgets'), 404, 'NotFound', 'unknown group');
  isStatus(t, await req('GET', `/apis/${GROUP}/v9/ocmcomponents`), 404, 'NotFound', 'unknown version');
  isStatus(t, await req('GET', one('auth', 'secret', '/scale')), 404, 'NotFound', 'unknown subresource');
  isStatus(t, await req('GET', '/nothing/here'), 404, 'NotFound', 'unknown path');
});

t.test('pagination: limit/continue, consistent snapshot, bad tokens', async (t) => {
  const all = Array.from({ length: 25 }, (_, i) => `item-${String(i).padStart(2, '0')}`);
  for (const n of all) await create(t, 'page', comp(n));

  const walk = async () => {
    const seen: string[] = [];
    const rvs: string[] = [];
    let cont: string | undefined;
    let pages = 0;
    do {
      const res = await req('GET', col('page', `?limit=10${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`));
      t.equal(res.status, 200, `page ${pages}: ${res.status === 200 ? '' : res.body}`);
      const l = json(res);
      seen.push(...names(l));
      rvs.push(l.metadata.resourceVersion);
      cont = l.metadata.continue;
      pages++;
      if (cont) t.equal(l.items.length, 10, 'full page before a continue token');
    } while (cont && pages < 10);
    return { seen, rvs, pages };
  };
  const w = await walk();
  t.equal(w.pages, 3, 'three pages');
  t.same(w.seen, all, 'all 25 exactly once, in order');
  t.same(new Set(w.rvs).size, 1, 'every page reports the first page’s resourceVersion');

  // Consistency under concurrent writes.
  const p1 = json(await req('GET', col('page', '?limit=10')));
  t.same(names(p1), all.slice(0, 10));
  await create(t, 'page', comp('item-15a'));
  await create(t, 'page', comp('item-99'));
  t.equal((await req('DELETE', one('page', 'item-20'))).status, 200);
  const mod = await req('PATCH', one('page', 'item-12'), { body: { metadata: { labels: { changed: 'yes' } } }, headers: MERGE });
  t.equal(mod.status, 200);
  const p2 = json(await req('GET', col('page', `?limit=10&continue=${encodeURIComponent(p1.metadata.continue)}`)));
  t.same(names(p2), all.slice(10, 20), 'second page: objects created after the first page do not appear');
  t.equal(p2.metadata.resourceVersion, p1.metadata.resourceVersion, 'second page at the first page’s resourceVersion');
  t.notOk(p2.items.find((i: Obj) => i.metadata.name === 'item-12').metadata.labels, 'modified object as of the snapshot');
  const p3 = json(await req('GET', col('page', `?limit=10&continue=${encodeURIComponent(p2.metadata.continue)}`)));
  t.same(names(p3), all.slice(20), 'third page: the deleted object still appears');
  t.notOk(p3.metadata.continue, 'no continue on the last page');
  const exact = await req('GET', col('page', `?resourceVersion=${p1.metadata.resourceVersion}&resourceVersionMatch=Exact`));
  t.equal(exact.status, 200, `list at an exact older resourceVersion: ${exact.status === 200 ? '' : exact.body}`);
  t.same(names(json(exact)), all, 'resourceVersionMatch=Exact lists the state as of that version');
  t.equal(json(exact).metadata.resourceVersion, p1.metadata.resourceVersion);
  const nto = json(await req('GET', col('page', `?resourceVersion=${p1.metadata.resourceVersion}&resourceVersionMatch=NotOlderThan`)));
  t.ok(names(nto).includes('item-99'), 'NotOlderThan may serve newer data');
  const now = names(json(await req('GET', col('page'))));
  t.ok(now.includes('item-15a') && now.includes('item-99') && !now.includes('item-20'), 'a fresh list sees the writes');

  // Selector with limit: pages are filled with matching items only.
  const sel = json(await req('GET', col('page', '?limit=2&labelSelector=changed%3Dyes')));
  t.same(names(sel), ['item-12']);
  t.notOk(sel.metadata.continue, 'no continue when nothing else matches');

  await nothingChanges(t, async () => {
    isStatus(t, await req('GET', col('page', '?limit=10&continue=garbage!!')), 400, 'BadRequest', 'garbage continue token');
    isStatus(t, await req('GET', col('page', `?limit=10&continue=${Buffer.from('{"x":1}').toString('base64')}`)), 400, 'BadRequest', 'well-encoded but meaningless token');
    isStatus(t, await req('GET', col('other', `?limit=10&continue=${encodeURIComponent(p1.metadata.continue)}`)), 400, 'BadRequest', 'token of another list');
    isStatus(t, await req('GET', col('page', '?limit=ten')), 400, 'BadRequest', 'non-integer limit');
    isStatus(t, await req('GET', col('page', '?resourceVersionMatch=Newest&resourceVersion=1')), 400, 'BadRequest', 'bad resourceVersionMatch');
  });
});

t.test('label and field selectors', async (t) => {
  await create(t, 'sel', comp('a', { labels: { app: 'web', tier: 'front' } }));
  await create(t, 'sel', comp('b', { labels: { app: 'web', tier: 'back' } }));
  await create(t, 'sel', comp('c', { labels: { app: 'db' } }));
  await create(t, 'sel', comp('d'));
  await create(t, 'sel2', comp('a', { labels: { app: 'web', tier: 'front' } }));
  const list = async (q: string, ns: string | null = 'sel') => {
    const res = await req('GET', ns ? col(ns, q) : `${API}/ocmcomponents${q}`);
    t.equal(res.status, 200, `${q}: ${res.status === 200 ? '' : res.body}`);
    return res.status === 200 ? names(json(res)) : [];
  };
  const ls = (s: string) => `?labelSelector=${encodeURIComponent(s)}`;
  const fs = (s: string) => `?fieldSelector=${encodeURIComponent(s)}`;
  t.same(await list(ls('app=web')), ['a', 'b'], '=');
  t.same(await list(ls('app==web')), ['a', 'b'], '==');
  t.same(await list(ls('app!=web')), ['c', 'd'], '!= (includes objects without the label)');
  t.same(await list(ls('tier in (front,back)')), ['a', 'b'], 'in');
  t.same(await list(ls('tier notin (front)')), ['b', 'c', 'd'], 'notin');
  t.same(await list(ls('tier')), ['a', 'b'], 'exists');
  t.same(await list(ls('!tier')), ['c', 'd'], '!key');
  t.same(await list(ls('app=web,tier=back')), ['b'], 'AND of requirements');
  t.same(await list(ls('app in (web, db),!tier')), ['c'], 'in with spaces, combined with !key');
  t.same(await list(ls('app=nothing')), [], 'no match');

  t.same(await list(fs('metadata.name=a')), ['a'], 'metadata.name=');
  t.same(await list(fs('metadata.name!=a')), ['b', 'c', 'd'], 'metadata.name!=');
  t.same(await list(fs('metadata.namespace=sel'), null), ['a', 'b', 'c', 'd'], 'metadata.namespace across all namespaces');
  t.same(await list(fs('metadata.namespace=sel2,metadata.name=a'), null), ['a'], 'namespace and name');
  t.same(await list(fs('metadata.namespace=other')), [], 'metadata.namespace of another namespace');
  t.same(await list(`${fs('metadata.name=b')}&labelSelector=app%3Dweb`), ['b'], 'field and label selector together');
  t.same(await list(fs('spec.name=github.com/acme/app')), ['a', 'b', 'c', 'd'], 'selectable field of the kind');

  await nothingChanges(t, async () => {
    isStatus(t, await req('GET', col('sel', fs('spec.version=v1'))), 400, 'BadRequest', 'unsupported field selector');
    isStatus(t, await req('GET', col('sel', fs('metadata.uid=x'))), 400, 'BadRequest', 'unsupported metadata field');
    isStatus(t, await req('GET', col('sel', fs('metadata.name'))), 400, 'BadRequest', 'field selector without operator');
    isStatus(t, await req('GET', col('sel', ls('app in web'))), 400, 'BadRequest', 'malformed label selector');
    isStatus(t, await req('GET', col('sel', ls('bad key!=x'))), 400, 'BadRequest', 'invalid label key in selector');
  });
});

t.test('Table, PartialObjectMetadata and YAML output', async (t) => {
  const c = await create(t, 'tbl', comp('row-a', { labels: { show: 'me' } }));
  await create(t, 'tbl', comp('row-b'));
  await req('PATCH', one('tbl', 'row-a', '/status'), { body: { status: { resolvedVersion: 'v1.0.0', verified: true, conditions: [READY] } }, headers: MERGE });

  const res = await req('GET', col('tbl'), { headers: { Accept: `${TABLE},application/json` } });
  t.equal(res.status, 200);
  t.match(String(res.headers['content-type']), /^application\/json/);
  const tab = json(res);
  t.match(tab, { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: /^\d+$/ } });
  const colNames = (tab.columnDefinitions as Obj[]).map((d) => d.name);
  t.equal(colNames[0], 'Name', 'first column is Name');
  for (const n of ['Component', 'Version', 'Verified', 'Ready', 'Status', 'Age', 'Constraint', 'Repository']) t.ok(colNames.includes(n), `column ${n}`);
  for (const d of tab.columnDefinitions as Obj[]) {
    t.type(d.type, 'string');
    t.type(d.priority, 'number');
  }
  t.equal(tab.rows.length, 2);
  const row = tab.rows[0];
  t.equal(row.cells.length, colNames.length, 'one cell per column');
  t.equal(row.cells[0], 'row-a');
  t.equal(row.cells[colNames.indexOf('Component')], 'github.com/acme/app');
  t.equal(row.cells[colNames.indexOf('Version')], 'v1.0.0');
  t.equal(row.cells[colNames.indexOf('Ready')], 'True');
  t.equal(row.cells[colNames.indexOf('Status')], 'all good');
  t.match(row.cells[colNames.indexOf('Age')], /^\d+s$/);
  t.match(row.object, { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'row-a', namespace: 'tbl', labels: { show: 'me' }, uid: c.metadata.uid } }, 'rows carry PartialObjectMetadata with labels');
  t.notOk(row.object.spec, 'no spec in PartialObjectMetadata');

  const obj = json(await req('GET', col('tbl', '?includeObject=Object'), { headers: { Accept: TABLE } }));
  t.match(obj.rows[0].object, { kind: 'OCMComponent', apiVersion: GV, spec: { name: 'github.com/acme/app' } }, 'includeObject=Object');
  const none = json(await req('GET', col('tbl', '?includeObject=None'), { headers: { Accept: TABLE } }));
  t.equal(none.rows.length, 2);
  t.notOk(none.rows[0].object, 'includeObject=None');
  isStatus(t, await req('GET', col('tbl', '?includeObject=Everything'), { headers: { Accept: TABLE } }), 400, 'BadRequest', 'bad includeObject');

  const single = json(await req('GET', one('tbl', 'row-b'), { headers: { Accept: TABLE } }));
  t.match(single, { kind: 'Table', rows: [{ cells: ['row-b'] }] }, 'Table for a single object');
  t.equal(single.rows.length, 1);
  const allNs = json(await req('GET', `${API}/ocmcomponents?labelSelector=show%3Dme`, { headers: { Accept: TABLE } }));
  t.same(allNs.rows.map((r: Obj) => r.object.metadata.namespace), ['tbl'], 'rows carry the namespace (kubectl get -A)');
  const paged = json(await req('GET', col('tbl', '?limit=1'), { headers: { Accept: TABLE } }));
  t.equal(paged.rows.length, 1);
  t.ok(paged.metadata.continue, 'Table list carries the continue token');

  const pl = await req('GET', col('tbl'), { headers: { Accept: `${PARTIAL_LIST},application/json` } });
  t.equal(pl.status, 200);
  const plo = json(pl);
  t.match(plo, { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: /^\d+$/ } });
  t.equal(plo.items.length, 2);
  t.match(plo.items[0], { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'row-a', labels: { show: 'me' } } });
  t.notOk(plo.items[0].spec);
  const po = json(await req('GET', one('tbl', 'row-a'), { headers: { Accept: 'application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io' } }));
  t.match(po, { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: { name: 'row-a' } });
  t.notOk(po.spec);

  const y = await req('GET', one('tbl', 'row-a'), { headers: { Accept: 'application/yaml' } });
  t.equal(y.status, 200);
  t.match(String(y.headers['content-type']), /^application\/yaml/);
  t.same(YAML.parse(y.body), json(await get('tbl', 'row-a')), 'YAML output is the object');
  const yl = await req('GET', col('tbl'), { headers: { Accept: 'application/yaml' } });
  t.match(YAML.parse(yl.body), { kind: 'OCMComponentList', items: [{ metadata: { name: 'row-a' } }, { metadata: { name: 'row-b' } }] });
  const ye = await req('GET', one('tbl', 'nope'), { headers: { Accept: 'application/yaml' } });
  t.equal(ye.status, 404, 'errors with Accept YAML still 404');
});
