// Raw HTTP discovery, version, health and OpenAPI documents, checked the way kubectl and
// client-go consume them: legacy and aggregated (apidiscovery.k8s.io/v2) discovery, /openapi/v2
// and the /openapi/v3 root plus group-version document (kubectl explain, validation, patch).
import t from 'tap';
import { ocmKinds } from '../kinds/index.js';
import { startServer } from './helpers/server.js';

type Obj = Record<string, any>;

const GROUP = 'delivery.ocm.software';
const VERSION = 'v1alpha1';
const GV = `${GROUP}/${VERSION}`;
const AGG_ACCEPT = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json';
const AGG_TYPE = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';
const ALL_VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
// Snapshots are written only by the server (issue 16): no create/update/patch, status get only.
const SERVER_WRITTEN = ['Snapshot'];
const verbsOf = (k: { kind: string }) => (SERVER_WRITTEN.includes(k.kind) ? ['delete', 'deletecollection', 'get', 'list', 'watch'] : ALL_VERBS);
const statusVerbsOf = (k: { kind: string }) => (SERVER_WRITTEN.includes(k.kind) ? ['get'] : ['get', 'patch', 'update']);
// custom resources: no strategic merge patch (apiextensions-apiserver's patch types)
const PATCH_TYPES = ['application/apply-patch+yaml', 'application/json-patch+json', 'application/merge-patch+json'];
const STATUS_PATCH_TYPES = PATCH_TYPES.slice(1); // no server-side apply to the status subresource

const server = await startServer();
t.teardown(() => server.stop());
const req = server.request;

async function getJSON(path: string, headers: Record<string, string> = {}): Promise<{ status: number; contentType: string; body: Obj; headers: Obj }> {
  const res = await req('GET', path, { headers });
  let body: Obj = {};
  try {
    body = res.json();
  } catch {
    body = { unparsable: res.body.slice(0, 300) };
  }
  return { status: res.status, contentType: String(res.headers['content-type'] ?? ''), body, headers: res.headers };
}

/** Resolves a local JSON pointer ("#/components/schemas/x") in doc. */
function resolvePointer(doc: Obj, ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  let cur: any = doc;
  for (const raw of ref.slice(2).split('/')) {
    const seg = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (cur === null || typeof cur !== 'object' || !(seg in cur)) return undefined;
    cur = cur[seg];
  }
  return cur;
}

/** Every $ref in doc (with where it was found). */
function refs(doc: unknown, path = '#', out: { at: string; ref: string }[] = []) {
  if (Array.isArray(doc)) doc.forEach((v, i) => refs(v, `${path}/${i}`, out));
  else if (doc !== null && typeof doc === 'object') {
    for (const [k, v] of Object.entries(doc)) {
      if (k === '$ref') out.push({ at: path, ref: String(v) });
      else refs(v, `${path}/${k.replace(/~/g, '~0').replace(/\//g, '~1')}`, out);
    }
  }
  return out;
}

// Expected from the kind definitions (the registry is derived from them).
const kinds = ocmKinds.map((k) => ({ kind: k.kind, plural: k.plural, singular: k.singular, shortNames: k.shortNames ?? [], categories: k.categories ?? [], status: k.subresources.status }));
const defName = (kind: string) => `${GROUP.split('.').reverse().join('.')}.${VERSION}.${kind}`;

// ---------------------------------------------------------------------------------------------

t.test('/apis and /apis/<group>', async (t) => {
  const apis = await getJSON('/apis');
  t.equal(apis.status, 200);
  t.match(apis.contentType, /^application\/json/);
  t.match(apis.body, { kind: 'APIGroupList', apiVersion: 'v1' });
  const g = (apis.body.groups as Obj[]).find((x) => x.name === GROUP);
  t.ok(g, `APIGroupList lists ${GROUP}`);
  t.same(g?.versions, [{ groupVersion: GV, version: VERSION }]);
  t.same(g?.preferredVersion, { groupVersion: GV, version: VERSION });

  const group = await getJSON(`/apis/${GROUP}`);
  t.equal(group.status, 200);
  t.match(group.body, { kind: 'APIGroup', apiVersion: 'v1', name: GROUP, versions: [{ groupVersion: GV, version: VERSION }], preferredVersion: { groupVersion: GV, version: VERSION } });

  const missing = await getJSON('/apis/nothing.example.com');
  t.equal(missing.status, 404);
  t.match(missing.body, { kind: 'Status', status: 'Failure', reason: 'NotFound', code: 404 });
  const missingV = await getJSON(`/apis/${GROUP}/v9`);
  t.equal(missingV.status, 404);
  t.match(missingV.body, { kind: 'Status', reason: 'NotFound', code: 404 });

  const noCert = await req('GET', '/apis', { cert: null });
  t.equal(noCert.status, 401, 'discovery needs a client certificate');
});

t.test('/apis/<group>/<version>: APIResourceList', async (t) => {
  const res = await getJSON(`/apis/${GV}`);
  t.equal(res.status, 200);
  t.match(res.body, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: GV });
  const list = res.body.resources as Obj[];
  t.equal(list.length, kinds.length * 2, 'every kind plus its status subresource');
  for (const k of kinds) {
    const r = list.find((x) => x.name === k.plural);
    t.ok(r, `${k.plural} listed`);
    if (!r) continue;
    t.match(r, { name: k.plural, singularName: k.singular, namespaced: true, kind: k.kind }, `${k.plural} entry`);
    t.same([...r.verbs].sort(), verbsOf(k), `${k.plural} verbs`);
    t.same(r.shortNames ?? [], k.shortNames, `${k.plural} shortNames`);
    t.ok((r.categories ?? []).includes('ocm'), `${k.plural} in category ocm`);
    t.type(r.storageVersionHash, 'string');
    const s = list.find((x) => x.name === `${k.plural}/status`);
    t.ok(s, `${k.plural}/status listed`);
    if (s) {
      t.match(s, { namespaced: true, kind: k.kind });
      t.same([...s.verbs].sort(), statusVerbsOf(k), `${k.plural}/status verbs`);
    }
  }
  const comp = list.find((x) => x.name === 'ocmcomponents');
  t.same(comp?.shortNames, ['ocmc', 'comp']);
});

t.test('aggregated discovery (apidiscovery.k8s.io/v2)', async (t) => {
  const res = await getJSON('/apis', { Accept: AGG_ACCEPT });
  t.equal(res.status, 200);
  t.equal(res.contentType, AGG_TYPE, 'exact Content-Type kubectl 1.32 checks');
  t.match(res.body, { kind: 'APIGroupDiscoveryList', apiVersion: 'apidiscovery.k8s.io/v2', metadata: {} });
  const items = res.body.items as Obj[];
  t.ok(Array.isArray(items), 'items');
  const g = items.find((i) => i.metadata?.name === GROUP);
  t.ok(g, `lists ${GROUP}`);
  t.equal(g?.versions?.length, 1);
  const v = g?.versions?.[0] ?? {};
  t.equal(v.version, VERSION);
  t.equal(v.freshness, 'Current');
  const resources = (v.resources ?? []) as Obj[];
  t.equal(resources.length, kinds.length, 'one entry per kind');
  for (const k of kinds) {
    const r = resources.find((x) => x.resource === k.plural);
    t.ok(r, `${k.plural} listed`);
    if (!r) continue;
    t.match(r, { resource: k.plural, singularResource: k.singular, scope: 'Namespaced', responseKind: { group: GROUP, version: VERSION, kind: k.kind } }, `${k.plural} entry`);
    t.same([...r.verbs].sort(), verbsOf(k));
    t.same(r.shortNames ?? [], k.shortNames);
    t.ok((r.categories ?? []).includes('ocm'));
    t.same(
      r.subresources,
      [{ subresource: 'status', responseKind: { group: GROUP, version: VERSION, kind: k.kind }, verbs: statusVerbsOf(k) }],
      `${k.plural} status subresource`,
    );
  }

  const plain = await getJSON('/apis', { Accept: 'application/json' });
  t.match(plain.body, { kind: 'APIGroupList' }, 'plain Accept still gets the legacy list');
  const v1only = await getJSON('/apis', { Accept: 'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json' });
  t.match(v1only.body, { kind: 'APIGroupList' }, 'an unsupported discovery version falls back to the legacy list');
  t.match(v1only.contentType, /^application\/json/);
  const api = await getJSON('/api', { Accept: AGG_ACCEPT });
  t.ok(api.status === 404 || (api.status === 200 && api.contentType === AGG_TYPE), `/api: 404 until the core API lands, or aggregated (got ${api.status} ${api.contentType})`);
  const onlyAgg = await getJSON('/apis', { Accept: AGG_TYPE });
  t.equal(onlyAgg.contentType, AGG_TYPE);
});

t.test('/version and health endpoints', async (t) => {
  const v = await getJSON('/version');
  t.equal(v.status, 200);
  t.match(v.body, { major: /^\d+$/, minor: /^\d+\+?$/, gitVersion: /^v\d+\.\d+\.\d+/, platform: /.+\/.+/ });
  for (const p of ['/healthz', '/livez', '/readyz', '/readyz?verbose', '/livez/ping']) {
    for (const cert of [undefined, null]) {
      const res = await req('GET', p, cert === null ? { cert: null } : {});
      t.equal(res.status, 200, `${p} ${cert === null ? 'without' : 'with'} a client certificate`);
      t.match(res.body, /ok/);
    }
  }
});

t.test('/openapi/v2', async (t) => {
  const res = await getJSON('/openapi/v2');
  t.equal(res.status, 200);
  t.match(res.contentType, /^application\/json/);
  const doc = res.body;
  t.equal(doc.swagger, '2.0');
  t.type(doc.info?.title, 'string');
  for (const k of kinds) {
    const d = doc.definitions?.[defName(k.kind)];
    t.ok(d, `definition ${defName(k.kind)}`);
    t.same(d?.['x-kubernetes-group-version-kind'], [{ group: GROUP, version: VERSION, kind: k.kind }], `${k.kind} x-kubernetes-group-version-kind`);
    t.ok(d?.properties?.spec || k.kind === 'ComponentDescriptor' || d?.properties, `${k.kind} has properties`);
    t.ok(doc.definitions?.[defName(`${k.kind}List`)], `${k.kind}List definition`);
    const p = doc.paths?.[`/apis/${GV}/namespaces/{namespace}/${k.plural}/{name}`];
    if (SERVER_WRITTEN.includes(k.kind)) {
      t.notOk(p?.patch || p?.put || doc.paths?.[`/apis/${GV}/namespaces/{namespace}/${k.plural}`]?.post, `${k.plural}: no create, update or patch`);
      t.ok(p?.get && p?.delete, `${k.plural}: get and delete`);
      continue;
    }
    t.ok(p?.patch, `${k.plural} PATCH path`);
    t.same([...(p?.patch?.consumes ?? [])].sort(), PATCH_TYPES, `${k.plural} PATCH consumes`);
  }
  const bad = refs(doc).filter((r) => resolvePointer(doc, r.ref) === undefined);
  t.same(bad, [], 'every $ref resolves within the document');
  t.ok(refs(doc).length > 0, 'the document uses $refs');
});

t.test('/openapi/v3 root and group-version document', async (t) => {
  const root = await getJSON('/openapi/v3');
  t.equal(root.status, 200);
  t.match(root.contentType, /^application\/json/);
  const entry = root.body.paths?.[`apis/${GV}`];
  t.ok(entry, `root lists apis/${GV}`);
  const url: string = entry?.serverRelativeURL ?? '';
  t.match(url, new RegExp(`^/openapi/v3/apis/${GV.replace('.', '\\.')}\\?hash=[0-9A-F]+$`, 'i'), 'serverRelativeURL with a hash');

  const gv = await req('GET', url);
  t.equal(gv.status, 200);
  t.match(String(gv.headers['content-type']), /^application\/json/);
  t.ok(gv.headers.etag, 'Etag');
  t.match(String(gv.headers['cache-control']), /immutable/, 'hashed URL is cacheable');
  const doc = gv.json();
  t.match(doc.openapi, /^3\.0\./);
  const same = await req('GET', `/openapi/v3/apis/${GV}`);
  t.equal(same.status, 200, 'the document without ?hash');
  t.same(same.json(), doc);
  t.equal((await req('GET', '/openapi/v3/apis/nothing.example.com/v1')).status, 404, 'unknown group-version document');

  // Schemas: every kind, with its GVK.
  const schemas = doc.components?.schemas ?? {};
  for (const k of kinds) {
    const s = schemas[defName(k.kind)];
    t.ok(s, `schema ${defName(k.kind)}`);
    t.same(s?.['x-kubernetes-group-version-kind'], [{ group: GROUP, version: VERSION, kind: k.kind }], `${k.kind} schema GVK`);
    t.ok(s?.properties?.metadata, `${k.kind} has metadata`);
    t.ok(s?.properties?.apiVersion && s?.properties?.kind, `${k.kind} has apiVersion and kind`);
    t.type(s?.description, 'string', `${k.kind} has a description`);
  }

  // Operations: GVK on every one; PATCH with fieldValidation and the patch media types.
  const ops: { path: string; method: string; op: Obj }[] = [];
  for (const [path, item] of Object.entries(doc.paths ?? {}) as [string, Obj][])
    for (const method of ['get', 'put', 'post', 'patch', 'delete']) if (item[method]) ops.push({ path, method, op: item[method] });
  t.ok(ops.length >= kinds.length * 8, `operations for every kind (${ops.length})`);
  const noGVK = ops.filter((o) => !o.op['x-kubernetes-group-version-kind']?.kind).map((o) => `${o.method} ${o.path}`);
  t.same(noGVK, [], 'every operation carries x-kubernetes-group-version-kind');
  const wrongGroup = ops.filter((o) => o.op['x-kubernetes-group-version-kind']?.group !== GROUP || o.op['x-kubernetes-group-version-kind']?.version !== VERSION);
  t.same(wrongGroup.map((o) => `${o.method} ${o.path}`), [], 'with this group and version');
  const noAction = ops.filter((o) => typeof o.op['x-kubernetes-action'] !== 'string').map((o) => `${o.method} ${o.path}`);
  t.same(noAction, [], 'every operation carries x-kubernetes-action');
  const ids = ops.map((o) => o.op.operationId);
  t.equal(new Set(ids).size, ids.length, 'operationIds are unique');

  // Parameters are inline or $refs into components/parameters.
  const param = (x: Obj): Obj => (x.$ref ? (resolvePointer(doc, x.$ref) as Obj) : x);
  const paramsOf = (o: { path: string; op: Obj }) => [...(o.op.parameters ?? []), ...(doc.paths[o.path].parameters ?? [])].map(param);
  const patches = ops.filter((o) => o.method === 'patch');
  t.equal(patches.length, kinds.filter((k) => !SERVER_WRITTEN.includes(k.kind)).length * 2, 'PATCH on every object and its status (not on server-written kinds)');
  for (const p of patches) {
    const params = paramsOf(p).map((x: Obj) => x?.name);
    t.ok((p.op.parameters ?? []).some((x: Obj) => x.name === 'fieldValidation' && x.in === 'query'), `${p.path} PATCH declares fieldValidation inline (kubectl looks for it there)`);
    t.ok(params.includes('dryRun'), `${p.path} PATCH declares dryRun`);
    const body = p.op.requestBody?.$ref ? (resolvePointer(doc, p.op.requestBody.$ref) as Obj) : p.op.requestBody;
    t.same(Object.keys(body?.content ?? {}).sort(), p.path.endsWith('/status') ? STATUS_PATCH_TYPES : PATCH_TYPES, `${p.path} PATCH media types`);
  }
  for (const o of ops.filter((x) => x.method === 'put' || x.method === 'post')) {
    t.ok(paramsOf(o).some((x: Obj) => x?.name === 'fieldValidation'), `${o.method} ${o.path} declares fieldValidation`);
  }
  const list = doc.paths?.[`/apis/${GV}/namespaces/{namespace}/ocmcomponents`]?.get;
  t.ok(list, 'list path');
  for (const q of ['labelSelector', 'fieldSelector', 'limit', 'continue', 'watch', 'resourceVersion', 'allowWatchBookmarks', 'sendInitialEvents'])
    t.ok((list?.parameters ?? []).map(param).some((x: Obj) => x?.name === q), `list declares ${q}`);
  t.ok(doc.paths?.[`/apis/${GV}/ocmcomponents`]?.get, 'list across all namespaces');
  t.ok(doc.paths?.[`/apis/${GV}/namespaces/{namespace}/ocmcomponents/{name}/status`]?.put, 'status subresource path');

  // Every $ref resolves within the document (kubectl explain fails otherwise).
  const all = refs(doc);
  t.ok(all.length > 0, `the document uses $refs (${all.length})`);
  const bad = all.filter((r) => resolvePointer(doc, r.ref) === undefined);
  t.same(bad, [], 'every $ref resolves within the document');
  t.same(
    all.filter((r) => !/^#\/components\/(schemas|parameters|responses|requestBodies)\//.test(r.ref)).map((r) => r.ref),
    [],
    'refs point into components',
  );
  for (const name of ['io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta', 'io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta', 'io.k8s.apimachinery.pkg.apis.meta.v1.Patch', 'io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions'])
    t.ok(schemas[name], `${name} included`);
});

t.test('kubectl explain works off the served OpenAPI', async (t) => {
  const r = await server.kubectl(['explain', 'ocmcomponent.spec.repository']);
  t.equal(r.code, 0, `kubectl explain: ${r.stderr}`);
  t.match(r.stdout, /GROUP:\s+delivery\.ocm\.software/);
  t.match(r.stdout, /FIELD:\s+repository/);
  t.match(r.stdout, /url\s+<string> -required-/);
  const rec = await server.kubectl(['explain', 'ocmcomponents', '--recursive']);
  t.equal(rec.code, 0, `kubectl explain --recursive: ${rec.stderr}`);
});
