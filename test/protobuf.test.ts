// Kubernetes protobuf request bodies (application/vnd.kubernetes.protobuf): the decoder on its own
// (objects encoded here with protobufjs from the same trimmed schema), and a real server driven by
// real kubectl, whose typed clients send built-in kinds as protobuf.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { decodeKubeProtobuf, kubeProtoRoot, PROTOBUF_MAGIC, ProtobufDecodeError } from '../apiserver/protobuf.js';
import { startServer, type TestServer } from './helpers/server.js';

type Obj = Record<string, any>;

const PB = 'application/vnd.kubernetes.protobuf';

/** magic + runtime.Unknown{typeMeta, raw = message encoded from `obj`}. */
function envelope(apiVersion: string, kind: string, typeName: string, obj: Obj): Buffer {
  const root = kubeProtoRoot();
  const type = root.lookupType(typeName);
  const err = type.verify(obj);
  if (err) throw new Error(`bad test fixture for ${typeName}: ${err}`);
  const raw = type.encode(type.fromObject(obj)).finish();
  const unknown = root.lookupType('k8s.io.apimachinery.pkg.runtime.Unknown');
  return Buffer.concat([PROTOBUF_MAGIC, unknown.encode(unknown.fromObject({ typeMeta: { apiVersion, kind }, raw })).finish()]);
}

function decodeError(fn: () => unknown): ProtobufDecodeError | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProtobufDecodeError) return err;
    throw err;
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// decoder
// ---------------------------------------------------------------------------------------------

t.test('a Secret encoded with the trimmed schema round-trips to its JSON form', async (t) => {
  const body = envelope('v1', 'Secret', 'k8s.io.api.core.v1.Secret', {
    metadata: {
      name: 's1',
      generateName: 'gen-',
      namespace: 'default',
      generation: 0, // omitempty int64: dropped
      creationTimestamp: {}, // zero Time: dropped
      deletionTimestamp: { seconds: 1767323045 },
      deletionGracePeriodSeconds: 0, // *int64: kept
      labels: { app: 'demo' },
      annotations: { note: 'x y' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: 'u-1', controller: true, blockOwnerDeletion: false }],
      finalizers: ['example.com/f'],
      managedFields: [{ manager: 'kubectl', operation: 'Update', apiVersion: 'v1', time: { seconds: 1767323045, nanos: 999 }, fieldsType: 'FieldsV1', fieldsV1: { Raw: Buffer.from('{"f:data":{".":{}}}') } }],
    },
    data: { a: Buffer.from('b'), bin: Buffer.from([0, 1, 254, 255]), empty: Buffer.alloc(0) },
    stringData: { s: 'plain' },
    type: 'Opaque',
    immutable: false,
  });
  t.strictSame(decodeKubeProtobuf(body), {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {
      name: 's1',
      generateName: 'gen-',
      namespace: 'default',
      deletionTimestamp: '2026-01-02T03:04:05Z',
      deletionGracePeriodSeconds: 0,
      labels: { app: 'demo' },
      annotations: { note: 'x y' },
      ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: 'u-1', controller: true, blockOwnerDeletion: false }],
      finalizers: ['example.com/f'],
      managedFields: [{ manager: 'kubectl', operation: 'Update', apiVersion: 'v1', time: '2026-01-02T03:04:05Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:data': { '.': {} } } }],
    },
    data: { a: 'Yg==', bin: Buffer.from([0, 1, 254, 255]).toString('base64'), empty: '' },
    stringData: { s: 'plain' },
    type: 'Opaque',
    immutable: false,
  });

  // An empty Secret: only what Go's encoding/json would render (metadata is a struct, always there).
  const empty = decodeKubeProtobuf(envelope('v1', 'Secret', 'k8s.io.api.core.v1.Secret', {}));
  t.strictSame(empty, { apiVersion: 'v1', kind: 'Secret', metadata: {} });
  t.notOk('immutable' in empty, 'unset *bool is omitted');
});

t.test('ConfigMap, Namespace and Event follow the JSON rules (times, omitempty, structs)', async (t) => {
  t.strictSame(
    decodeKubeProtobuf(envelope('v1', 'ConfigMap', 'k8s.io.api.core.v1.ConfigMap', { metadata: { name: 'c' }, data: { k: 'v' }, binaryData: { b: Buffer.from('hi') }, immutable: true })),
    { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' }, data: { k: 'v' }, binaryData: { b: 'aGk=' }, immutable: true },
  );
  t.strictSame(decodeKubeProtobuf(envelope('v1', 'Namespace', 'k8s.io.api.core.v1.Namespace', { metadata: { name: 'x' } })), {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: 'x' },
    spec: {},
    status: {},
  });
  t.strictSame(
    decodeKubeProtobuf(
      envelope('v1', 'Namespace', 'k8s.io.api.core.v1.Namespace', {
        metadata: { name: 'y' },
        spec: { finalizers: ['kubernetes'] },
        status: { phase: 'Terminating', conditions: [{ type: 'T', status: 'True', lastTransitionTime: { seconds: 1767323045 } }, {}] },
      }),
    ),
    {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'y' },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Terminating', conditions: [{ type: 'T', status: 'True', lastTransitionTime: '2026-01-02T03:04:05Z' }, { type: '', status: '' }] },
    },
  );
  const ev = decodeKubeProtobuf(
    envelope('v1', 'Event', 'k8s.io.api.core.v1.Event', {
      metadata: { name: 'e1', namespace: 'default' },
      involvedObject: { kind: 'Secret', name: 's1', namespace: 'default', apiVersion: 'v1' },
      reason: 'Created',
      message: 'hello',
      source: { component: 'test' },
      firstTimestamp: { seconds: 1767323045 },
      lastTimestamp: {},
      count: 3,
      type: 'Normal',
      eventTime: { seconds: 1767323045, nanos: 123456789 },
      series: { count: 2, lastObservedTime: { seconds: 1767323046, nanos: 1000 } },
      action: 'Create',
    }),
  );
  t.strictSame(ev, {
    apiVersion: 'v1',
    kind: 'Event',
    metadata: { name: 'e1', namespace: 'default' },
    involvedObject: { kind: 'Secret', namespace: 'default', name: 's1', apiVersion: 'v1' },
    reason: 'Created',
    message: 'hello',
    source: { component: 'test' },
    firstTimestamp: '2026-01-02T03:04:05Z',
    count: 3,
    type: 'Normal',
    eventTime: '2026-01-02T03:04:05.123456Z',
    series: { count: 2, lastObservedTime: '2026-01-02T03:04:06.000001Z' },
    action: 'Create',
    reportingComponent: '',
    reportingInstance: '',
  });
});

t.test('DeleteOptions decode under meta.k8s.io/v1 and v1, keeping explicit zeros of pointer fields', async (t) => {
  for (const apiVersion of ['meta.k8s.io/v1', 'v1']) {
    t.strictSame(
      decodeKubeProtobuf(
        envelope(apiVersion, 'DeleteOptions', 'k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions', {
          gracePeriodSeconds: 0,
          propagationPolicy: 'Background',
          preconditions: { uid: 'u-1', resourceVersion: '' },
          dryRun: ['All'],
        }),
      ),
      { apiVersion, kind: 'DeleteOptions', gracePeriodSeconds: 0, preconditions: { uid: 'u-1', resourceVersion: '' }, propagationPolicy: 'Background', dryRun: ['All'] },
      apiVersion,
    );
  }
  t.strictSame(decodeKubeProtobuf(envelope('v1', 'DeleteOptions', 'k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions', {})), { apiVersion: 'v1', kind: 'DeleteOptions' });
});

t.test('authentication and authorization reviews', async (t) => {
  const AUTHN = 'authentication.k8s.io/v1';
  const AUTHZ = 'authorization.k8s.io/v1';
  t.strictSame(decodeKubeProtobuf(envelope(AUTHN, 'SelfSubjectReview', 'k8s.io.api.authentication.v1.SelfSubjectReview', { metadata: {} })), {
    apiVersion: AUTHN,
    kind: 'SelfSubjectReview',
    metadata: {},
    status: { userInfo: {} },
  });
  t.strictSame(decodeKubeProtobuf(envelope(AUTHN, 'TokenReview', 'k8s.io.api.authentication.v1.TokenReview', { spec: { token: 'abc', audiences: ['api'] } })), {
    apiVersion: AUTHN,
    kind: 'TokenReview',
    metadata: {},
    spec: { token: 'abc', audiences: ['api'] },
    status: { user: {} },
  });
  t.strictSame(
    decodeKubeProtobuf(
      envelope(AUTHZ, 'SubjectAccessReview', 'k8s.io.api.authorization.v1.SubjectAccessReview', {
        spec: {
          resourceAttributes: {
            namespace: 'default',
            verb: 'get',
            group: 'delivery.ocm.software',
            resource: 'ocmcomponents',
            name: 'x',
            fieldSelector: { requirements: [{ key: 'metadata.name', operator: 'In', values: ['x'] }] },
            labelSelector: { rawSelector: 'a=b', requirements: [{ key: 'a', operator: 'Exists' }] },
          },
          user: 'alice',
          groups: ['devs'],
          extra: { scopes: { items: ['s1', 's2'] }, none: {} },
          uid: 'u-9',
        },
      }),
    ),
    {
      apiVersion: AUTHZ,
      kind: 'SubjectAccessReview',
      metadata: {},
      spec: {
        resourceAttributes: {
          namespace: 'default',
          verb: 'get',
          group: 'delivery.ocm.software',
          resource: 'ocmcomponents',
          name: 'x',
          fieldSelector: { requirements: [{ key: 'metadata.name', operator: 'In', values: ['x'] }] },
          labelSelector: { rawSelector: 'a=b', requirements: [{ key: 'a', operator: 'Exists' }] },
        },
        user: 'alice',
        groups: ['devs'],
        extra: { scopes: ['s1', 's2'], none: [] },
        uid: 'u-9',
      },
      status: { allowed: false },
    },
  );
  t.strictSame(
    decodeKubeProtobuf(envelope(AUTHZ, 'SelfSubjectAccessReview', 'k8s.io.api.authorization.v1.SelfSubjectAccessReview', { spec: { nonResourceAttributes: { path: '/healthz', verb: 'get' } } })),
    { apiVersion: AUTHZ, kind: 'SelfSubjectAccessReview', metadata: {}, spec: { nonResourceAttributes: { path: '/healthz', verb: 'get' } }, status: { allowed: false } },
  );
  t.strictSame(
    decodeKubeProtobuf(
      envelope(AUTHZ, 'LocalSubjectAccessReview', 'k8s.io.api.authorization.v1.LocalSubjectAccessReview', {
        metadata: { namespace: 'ns1' },
        spec: { resourceAttributes: { namespace: 'ns1', verb: 'list', resource: 'secrets' }, user: 'bob' },
      }),
    ),
    {
      apiVersion: AUTHZ,
      kind: 'LocalSubjectAccessReview',
      metadata: { namespace: 'ns1' },
      spec: { resourceAttributes: { namespace: 'ns1', verb: 'list', resource: 'secrets' }, user: 'bob' },
      status: { allowed: false },
    },
  );
});

t.test('garbage and unknown kinds are clean errors', async (t) => {
  t.equal(decodeError(() => decodeKubeProtobuf(Buffer.from('{"kind":"Secret"}')))?.code, 400, 'no magic → 400');
  t.equal(decodeError(() => decodeKubeProtobuf(Buffer.from('k8s')))?.code, 400, 'short → 400');
  t.equal(decodeError(() => decodeKubeProtobuf(Buffer.concat([PROTOBUF_MAGIC, Buffer.from([0x0a, 0x05, 0x61, 0x62])])))?.code, 400, 'truncated envelope → 400');
  t.equal(decodeError(() => decodeKubeProtobuf(Buffer.concat([PROTOBUF_MAGIC, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])])))?.code, 400, 'invalid wire data → 400');
  t.equal(decodeError(() => decodeKubeProtobuf(PROTOBUF_MAGIC))?.code, 400, 'no kind → 400');
  const pod = envelope('v1', 'Pod', 'k8s.io.api.core.v1.ConfigMap', {});
  const e = decodeError(() => decodeKubeProtobuf(pod));
  t.equal(e?.code, 415, 'unknown kind → 415');
  t.match(e?.message, /Pod/);
  t.equal(decodeError(() => decodeKubeProtobuf(envelope('apps/v1', 'Secret', 'k8s.io.api.core.v1.Secret', {})))?.code, 415, 'known kind, wrong group → 415');
  // Secret envelope whose raw is not a valid Secret message
  const root = kubeProtoRoot();
  const unknown = root.lookupType('k8s.io.apimachinery.pkg.runtime.Unknown');
  const badRaw = Buffer.concat([PROTOBUF_MAGIC, unknown.encode({ typeMeta: { apiVersion: 'v1', kind: 'Secret' }, raw: Buffer.from([0x0a, 0x7f, 0x01]) }).finish()]);
  t.equal(decodeError(() => decodeKubeProtobuf(badRaw))?.code, 400, 'garbage raw → 400');
});

// ---------------------------------------------------------------------------------------------
// real server, real kubectl
// ---------------------------------------------------------------------------------------------

let s: TestServer;
t.before(async () => {
  s = await startServer();
});
t.teardown(async () => {
  await s?.stop();
});

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** HTTPS with the admin client certificate, sending a Buffer body as-is. */
function raw(method: string, path: string, body: Buffer | undefined, contentType = PB): Promise<Raw> {
  const certs = join(s.dataDir, 'certs');
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: s.port,
        method,
        path,
        ca: readFileSync(join(certs, 'ca.crt')),
        cert: readFileSync(join(certs, 'admin.crt')),
        key: readFileSync(join(certs, 'admin.key')),
        servername: 'localhost',
        agent: false,
        headers: { Accept: `${PB},application/json`, ...(body ? { 'Content-Type': contentType, 'Content-Length': String(body.length) } : {}) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function ok(t: Test, args: string[]) {
  const r = await s.kubectl(args);
  t.equal(r.code, 0, `kubectl ${args.join(' ')}`, { stderr: r.stderr, stdout: r.stdout });
  return r;
}
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

t.test('kubectl create secret generic (sent as protobuf) and get it back', async (t) => {
  const r = await ok(t, ['create', 'secret', 'generic', 's1', '--from-literal=a=b', '--from-literal=c=d', '-n', 'default', '-v=8']);
  t.match(r.stderr, /Content-Type: application\/vnd\.kubernetes\.protobuf/, 'kubectl really sent protobuf');
  t.match(r.stdout, /secret\/s1 created/);
  t.equal(b64((await ok(t, ['get', 'secret', 's1', '-n', 'default', '-o', 'jsonpath={.data.a}'])).stdout), 'b');
  t.equal(b64((await ok(t, ['get', 'secret', 's1', '-n', 'default', '-o', 'jsonpath={.data.c}'])).stdout), 'd');
  t.equal((await ok(t, ['get', 'secret', 's1', '-n', 'default', '-o', 'jsonpath={.type}'])).stdout, 'Opaque');
});

t.test('kubectl create configmap', async (t) => {
  await ok(t, ['create', 'configmap', 'cm1', '--from-literal=k=v', '--from-literal=x=y z', '-n', 'default']);
  const cm = JSON.parse((await ok(t, ['get', 'configmap', 'cm1', '-n', 'default', '-o', 'json'])).stdout) as Obj;
  t.strictSame(cm.data, { k: 'v', x: 'y z' });
});

t.test('kubectl create namespace + get ns', async (t) => {
  await ok(t, ['create', 'namespace', 'x']);
  const r = await ok(t, ['get', 'ns', 'x', '-o', 'json']);
  const ns = JSON.parse(r.stdout) as Obj;
  t.equal(ns.metadata.name, 'x');
  t.equal(ns.status?.phase, 'Active');
});

t.test('kubectl label secret', async (t) => {
  await ok(t, ['label', 'secret', 's1', 'tier=gold', '-n', 'default']);
  t.equal((await ok(t, ['get', 'secret', 's1', '-n', 'default', '-o', 'jsonpath={.metadata.labels.tier}'])).stdout, 'gold');
});

t.test('kubectl create secret docker-registry', async (t) => {
  await ok(t, ['create', 'secret', 'docker-registry', 'reg', '--docker-server=registry.example.com', '--docker-username=u', '--docker-password=p', '-n', 'default']);
  const sec = JSON.parse((await ok(t, ['get', 'secret', 'reg', '-n', 'default', '-o', 'json'])).stdout) as Obj;
  t.equal(sec.type, 'kubernetes.io/dockerconfigjson');
  const cfg = JSON.parse(b64(sec.data['.dockerconfigjson'])) as Obj;
  t.equal(cfg.auths['registry.example.com'].username, 'u');
  t.equal(cfg.auths['registry.example.com'].password, 'p');
});

t.test('kubectl delete secret', async (t) => {
  await ok(t, ['delete', 'secret', 's1', '-n', 'default']);
  const r = await s.kubectl(['get', 'secret', 's1', '-n', 'default']);
  t.not(r.code, 0, 'gone');
  t.match(r.stderr, /NotFound|not found/);
});

t.test('kubectl auth whoami (SelfSubjectReview as protobuf)', async (t) => {
  const r = await ok(t, ['auth', 'whoami']);
  t.match(r.stdout, /admin/);
  t.match(r.stdout, /system:masters/);
});

t.test('kubectl auth can-i (SelfSubjectAccessReview as protobuf)', async (t) => {
  const r = await ok(t, ['auth', 'can-i', 'create', 'ocmcomponents']);
  t.equal(r.stdout.trim(), 'yes');
});

t.test('raw HTTP: protobuf create, protobuf DeleteOptions, garbage → 400, unknown kind → 415', async (t) => {
  const cm = envelope('v1', 'ConfigMap', 'k8s.io.api.core.v1.ConfigMap', { metadata: { name: 'raw-cm' }, data: { a: '1' } });
  const created = await raw('POST', '/api/v1/namespaces/default/configmaps', cm);
  t.equal(created.status, 201, created.body);
  const uid = (JSON.parse(created.body) as Obj).metadata.uid as string;
  t.match(created.headers['content-type'], /application\/json/, 'answers JSON');

  const del = (u: string) => envelope('v1', 'DeleteOptions', 'k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions', { preconditions: { uid: u } });
  const conflict = await raw('DELETE', '/api/v1/namespaces/default/configmaps/raw-cm', del('not-the-uid'));
  t.equal(conflict.status, 409, 'preconditions from the protobuf DeleteOptions are honoured');
  const deleted = await raw('DELETE', '/api/v1/namespaces/default/configmaps/raw-cm', del(uid));
  t.equal(deleted.status, 200, deleted.body);
  t.equal((await raw('GET', '/api/v1/namespaces/default/configmaps/raw-cm', undefined)).status, 404);

  for (const [what, body] of [
    ['not protobuf at all', Buffer.from('garbage bytes')],
    ['magic + garbage', Buffer.concat([PROTOBUF_MAGIC, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])])],
    ['magic + truncated', Buffer.concat([PROTOBUF_MAGIC, Buffer.from([0x0a, 0x05, 0x61])])],
  ] as const) {
    const r = await raw('POST', '/api/v1/namespaces/default/secrets', body);
    t.equal(r.status, 400, `${what} → 400`);
    const st = JSON.parse(r.body) as Obj;
    t.equal(st.kind, 'Status', `${what}: a Status`);
    t.equal(st.code, 400);
  }
  const pod = await raw('POST', '/api/v1/namespaces/default/secrets', envelope('v1', 'Pod', 'k8s.io.api.core.v1.Secret', { metadata: { name: 'p' } }));
  t.equal(pod.status, 415, 'unknown kind → 415');
  t.equal((JSON.parse(pod.body) as Obj).reason, 'UnsupportedMediaType');

  const emptyDelete = await raw('DELETE', '/api/v1/namespaces/default/secrets/reg', Buffer.alloc(0));
  t.equal(emptyDelete.status, 200, 'DELETE with an empty protobuf body still works');

  const patch = await raw('PATCH', '/api/v1/namespaces/default/configmaps/cm1', cm);
  t.equal(patch.status, 415, 'PATCH with protobuf → 415');

  const json = await raw('POST', '/api/v1/namespaces/default/configmaps', Buffer.from(JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'json-cm' } })), 'application/json');
  t.equal(json.status, 201, 'JSON bodies still work with the buffer parser');
});
