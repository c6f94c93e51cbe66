// Checks the cluster manifests: deploy/ (kubectl apply -k) and apiservice.yaml, and the script that
// renders the APIService with the real CA bundle and the certificate Secret (npm run apiservice).
//
// Every object is validated against the OpenAPI schema of its kind as published by Kubernetes,
// compiled into the `kubernetes-models` package (types, enums, required fields), and checked for
// unknown fields (a misspelt field is silently dropped by the API server) against the field lists
// of the `@kubernetes/client-node` models, which are generated from the same OpenAPI. Then the
// names, ports, flags, mounts and RBAC rules are held to cli/deploy-constants.ts and to what the
// server uses (its API group, the hosts of its serving certificate, its kinds).
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
// The models only: the package's index pulls in an HTTP client that this test does not need.
import * as k8sModels from '@kubernetes/client-node/dist/gen/models/all.js';
import * as C from '../cli/deploy-constants.js';
import { DEFAULT_HOSTS } from '../certs/index.js';
import { GROUP, VERSION } from '../kinds/common.js';
import { ocmKinds } from '../kinds/index.js';

type Obj = any;

const root = fileURLToPath(new URL('../../', import.meta.url));
const deployDir = path.join(root, 'deploy');
const apiServiceFile = path.join(root, 'apiservice.yaml');
const renderScript = path.join(root, 'dist', 'cli', 'apiservice.js');

// ---------------------------------------------------------------------------------------------
// Loading and validating
// ---------------------------------------------------------------------------------------------

/** Every document of a YAML file; a syntax error or a YAML 1.1/1.2 difference is an error. */
function loadDocs(file: string): Obj[] {
  const text = fs.readFileSync(file, 'utf8');
  const docs: Obj[] = [];
  // kubectl reads YAML 1.1 (sigs.k8s.io/yaml), the `yaml` package 1.2 by default: `0440`, `yes`,
  // `on` mean different things in the two, so a manifest must mean the same in both.
  const v11 = YAML.parseAllDocuments(text, { version: '1.1' });
  const v12 = YAML.parseAllDocuments(text);
  if (!Array.isArray(v11) || !Array.isArray(v12)) throw new Error(`${file}: not a YAML stream`);
  v12.forEach((doc, i) => {
    const errs = [...doc.errors, ...v11[i]!.errors];
    if (errs.length) throw new Error(`${file} document ${i}: ${errs.map((e) => e.message).join('; ')}`);
    const obj = doc.toJS();
    const obj11 = v11[i]!.toJS();
    if (JSON.stringify(obj) !== JSON.stringify(obj11)) throw new Error(`${file} document ${i}: reads differently as YAML 1.1 (kubectl)`);
    if (obj != null) docs.push(obj);
  });
  return docs;
}

/** Throws the schema errors of `obj` against its kind's OpenAPI schema (kubernetes-models). */
async function validateSchema(obj: Obj): Promise<void> {
  if (typeof obj?.apiVersion !== 'string' || typeof obj?.kind !== 'string') throw new Error('apiVersion and kind are required');
  let mod: Obj;
  try {
    mod = await import(`kubernetes-models/${obj.apiVersion}/${obj.kind}`);
  } catch {
    throw new Error(`kubernetes-models has no model for ${obj.apiVersion} ${obj.kind}`);
  }
  const Model = mod[obj.kind];
  new Model(obj).validate();
}

interface Attr {
  baseName: string;
  type: string;
}
const models = k8sModels as unknown as Record<string, { attributeTypeMap?: Attr[] } | undefined>;

/** The paths of fields that the kind's model does not have (like kubectl --validate=strict). */
function unknownFields(obj: Obj): string[] {
  const version = String(obj.apiVersion).split('/').pop()!;
  const type = `${version[0]!.toUpperCase()}${version.slice(1)}${obj.kind}`;
  if (!models[type]?.attributeTypeMap) return [`<no @kubernetes/client-node model ${type}>`];
  const out: string[] = [];
  const walk = (value: unknown, type: string, at: string): void => {
    if (value == null) return;
    let m: RegExpExecArray | null;
    if ((m = /^Array<(.+)>$/.exec(type))) {
      if (Array.isArray(value)) value.forEach((v, i) => walk(v, m![1]!, `${at}[${i}]`));
      return;
    }
    if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
      if (typeof value === 'object') for (const [k, v] of Object.entries(value)) walk(v, m[1]!, `${at}[${k}]`);
      return;
    }
    const attrs = models[type]?.attributeTypeMap;
    // Primitives, IntOrString, any; wrong types are the schema validator's business.
    if (!attrs || typeof value !== 'object' || Array.isArray(value)) return;
    const known = new Map(attrs.map((a) => [a.baseName, a.type]));
    for (const [k, v] of Object.entries(value)) {
      const t = known.get(k);
      if (t === undefined) out.push(`${at}.${k}`);
      else walk(v, t, `${at}.${k}`);
    }
  };
  walk(obj, type, '');
  return out;
}

/** Schema errors and unknown fields of `obj`, as messages (empty: valid). */
async function problems(obj: Obj): Promise<string[]> {
  const out: string[] = [];
  try {
    await validateSchema(obj);
  } catch (err) {
    out.push((err as Error).message);
  }
  for (const f of unknownFields(obj)) out.push(`unknown field ${f}`);
  return out;
}

const clone = <T>(v: T): T => structuredClone(v);
const b64decode = (s: string) => Buffer.from(s, 'base64').toString('utf8');

// ---------------------------------------------------------------------------------------------
// The manifests
// ---------------------------------------------------------------------------------------------

const manifestFiles = fs
  .readdirSync(deployDir)
  .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
  .sort();
const byFile = new Map<string, Obj[]>(manifestFiles.map((f) => [f, loadDocs(path.join(deployDir, f))]));
const deployObjects = [...byFile.values()].flat();
const apiServiceDocs = loadDocs(apiServiceFile);

function one(kind: string, name: string, namespace?: string): Obj {
  const found = deployObjects.filter((o) => o.kind === kind && o.metadata?.name === name && o.metadata?.namespace === namespace);
  if (found.length !== 1) throw new Error(`expected one ${kind} ${namespace ? `${namespace}/` : ''}${name} in deploy/, found ${found.length}`);
  return found[0];
}

const deployment = one('Deployment', C.DEPLOYMENT_NAME, C.NAMESPACE);
const podSpec = deployment.spec.template.spec;
const container = podSpec.containers.find((c: Obj) => c.name === C.CONTAINER_NAME);
const service = one('Service', C.SERVICE_NAME, C.NAMESPACE);
const apiService = apiServiceDocs[0];

/** The value of `--name=value` in args. */
const flag = (args: string[], name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

t.test('the shared constants are the agreed contract', async (t) => {
  // Written out once more on purpose: a typo in cli/deploy-constants.ts fails here.
  t.equal(C.NAMESPACE, 'ocm-system');
  t.equal(C.SERVICE_NAME, 'ocm-apiserver');
  t.equal(C.SERVICE_ACCOUNT, 'ocm-apiserver');
  t.equal(C.HTTPS_SERVICE_PORT, 443);
  t.equal(C.HTTPS_CONTAINER_PORT, 8443);
  t.equal(C.REGISTRY_PORT, 5001);
  t.equal(C.APISERVICE_NAME, 'v1alpha1.delivery.ocm.software');
  t.equal(C.CERTS_SECRET, 'ocm-apiserver-certs');
  t.equal(C.DATA_PVC, 'ocm-apiserver-data');
  t.same(C.SERVER_ARGS, ['--mode=aggregated', '--bind=0.0.0.0', '--port=8443', '--registry-port=5001', '--data-dir=/data', '--cert-dir=/certs']);
  t.same(C.RBAC, {
    authDelegatorBinding: 'ocm-apiserver:system:auth-delegator',
    authDelegatorClusterRole: 'system:auth-delegator',
    authReaderBinding: 'ocm-apiserver-auth-reader',
    authReaderRole: 'extension-apiserver-authentication-reader',
    authReaderNamespace: 'kube-system',
    clusterRole: 'ocm-apiserver',
    clusterRoleBinding: 'ocm-apiserver',
  });
  t.equal(b64decode(C.CA_BUNDLE_PLACEHOLDER), 'PLACEHOLDER: render with npm run apiservice');
});

t.test('every manifest validates against the OpenAPI schema of its kind', async (t) => {
  const all: [string, Obj][] = [
    ...[...byFile].flatMap(([f, objs]) => objs.map((o): [string, Obj] => [`deploy/${f}`, o])),
    ...apiServiceDocs.map((o): [string, Obj] => ['apiservice.yaml', o]),
  ];
  t.ok(all.length >= 10, `${all.length} objects`);
  for (const [file, obj] of all) {
    t.same(await problems(obj), [], `${file}: ${obj.kind} ${obj.metadata?.name}`);
  }
  t.equal(apiServiceDocs.length, 1, 'apiservice.yaml holds one object');
  const kinds = new Set(deployObjects.map((o) => o.kind));
  for (const k of ['Namespace', 'ServiceAccount', 'Service', 'Deployment', 'PersistentVolumeClaim', 'ClusterRole', 'ClusterRoleBinding', 'RoleBinding']) {
    t.ok(kinds.has(k), `deploy/ has a ${k}`);
  }
});

t.test('the validation rejects broken objects (it is not vacuous)', async (t) => {
  const badPort = clone(service);
  badPort.spec.ports[0].port = '443';
  t.match((await problems(badPort)).join('\n'), /port must be integer/, 'port as a string');
  const noPort = clone(service);
  delete noPort.spec.ports[0].port;
  t.match((await problems(noPort)).join('\n'), /must have required property port/, 'missing required port');
  const badScheme = clone(deployment);
  badScheme.spec.template.spec.containers[0].readinessProbe.httpGet.scheme = 'HTTPZ';
  t.match((await problems(badScheme)).join('\n'), /scheme must be equal to one of the allowed values/, 'unknown enum value');
  const typo = clone(deployment);
  typo.spec.template.spec.containers[0].readinessprobe = typo.spec.template.spec.containers[0].readinessProbe;
  t.same(await problems(typo), ['unknown field .spec.template.spec.containers[0].readinessprobe'], 'misspelt field');
  const typo2 = clone(apiService);
  typo2.spec.servce = typo2.spec.service;
  t.same(await problems(typo2), ['unknown field .spec.servce'], 'misspelt APIService field');
  t.match(await problems({ apiVersion: 'v1', kind: 'Servise', metadata: { name: 'x' } }), [/no model for v1 Servise/], 'unknown kind');
});

t.test('kustomization lists every manifest and kubectl kustomize renders them unchanged', async (t) => {
  const [kustomization] = loadDocs(path.join(deployDir, 'kustomization.yaml'));
  t.equal(kustomization.kind, 'Kustomization');
  t.equal(kustomization.namespace, undefined, 'no namespace override (the auth reader RoleBinding lives in kube-system)');
  t.same([...kustomization.resources].sort(), manifestFiles, 'resources are exactly the manifests of deploy/');
  t.notOk(
    deployObjects.some((o) => o.kind === 'Secret'),
    'no Secret in deploy/: re-applying it would overwrite the rendered certificates',
  );

  const kubectl = process.env.KUBECTL;
  if (!kubectl) {
    t.pass('kubectl kustomize', { skip: 'KUBECTL is not set (npm test sets it)' });
    return;
  }
  const r = spawnSync(kubectl, ['kustomize', deployDir], { encoding: 'utf8' });
  t.equal(r.status, 0, `kubectl kustomize: ${r.stderr}`);
  const key = (o: Obj) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;
  const rendered = new Map(YAML.parseAllDocuments(r.stdout).map((d) => d.toJS()).filter(Boolean).map((o: Obj) => [key(o), o]));
  t.same([...rendered.keys()].sort(), deployObjects.map(key).sort(), 'the same objects');
  for (const o of deployObjects) t.same(rendered.get(key(o)), o, key(o));
});

t.test('namespace, service account and labels', async (t) => {
  t.ok(one('Namespace', C.NAMESPACE));
  t.ok(one('ServiceAccount', C.SERVICE_ACCOUNT, C.NAMESPACE));
  for (const o of deployObjects) {
    const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind);
    const expected = clusterScoped ? undefined : o.kind === 'RoleBinding' ? C.RBAC.authReaderNamespace : C.NAMESPACE;
    t.equal(o.metadata.namespace, expected, `namespace of ${o.kind} ${o.metadata.name}`);
    t.equal(o.metadata.labels?.['app.kubernetes.io/name'], C.APP_NAME, `label on ${o.kind} ${o.metadata.name}`);
  }
});

t.test('service: 443 to 8443 and 5001, selecting the pods of the Deployment', async (t) => {
  t.equal(service.spec.type ?? 'ClusterIP', 'ClusterIP');
  t.same(service.spec.selector, C.SELECTOR_LABELS);
  const ports = Object.fromEntries(service.spec.ports.map((p: Obj) => [p.name, p]));
  t.same(Object.keys(ports).sort(), [C.HTTPS_PORT_NAME, C.REGISTRY_PORT_NAME].sort());
  t.equal(ports.https.port, 443);
  t.equal(ports.https.targetPort, 8443);
  t.equal(ports.registry.port, 5001);
  t.equal(ports.registry.targetPort, 5001);
  for (const p of service.spec.ports) t.equal(p.protocol ?? 'TCP', 'TCP');
  // The target ports are the container's, under the same names.
  for (const p of service.spec.ports) {
    const cp = container.ports.find((c: Obj) => c.name === p.name);
    t.equal(cp?.containerPort, p.targetPort, `container port ${p.name}`);
  }
  // What the aggregator dials is what apiservice.yaml names.
  t.equal(apiService.spec.service.name, service.metadata.name);
  t.equal(apiService.spec.service.namespace, service.metadata.namespace);
  t.equal(apiService.spec.service.port, ports.https.port);
});

t.test('deployment: one replica, Recreate, image, command and the server flags', async (t) => {
  t.equal(deployment.spec.replicas, 1);
  t.equal(deployment.spec.strategy.type, 'Recreate', 'the data volume is ReadWriteOnce');
  t.same(deployment.spec.selector.matchLabels, C.SELECTOR_LABELS);
  t.match(deployment.spec.template.metadata.labels, C.SELECTOR_LABELS, 'pod labels match the selectors');
  t.equal(podSpec.serviceAccountName, C.SERVICE_ACCOUNT);
  t.equal(podSpec.containers.length, 1);
  t.ok(container, `container ${C.CONTAINER_NAME}`);
  t.equal(container.image, C.IMAGE);
  t.same(container.command, C.COMMAND);
  t.same(container.args, C.SERVER_ARGS);
  // The flags agree with the ports and mounts.
  t.equal(flag(container.args, 'mode'), 'aggregated');
  t.equal(flag(container.args, 'bind'), '0.0.0.0');
  t.equal(Number(flag(container.args, 'port')), 8443);
  t.equal(Number(flag(container.args, 'registry-port')), 5001);
  t.same(
    container.ports.map((p: Obj) => [p.name, p.containerPort, p.protocol ?? 'TCP']),
    [
      ['https', Number(flag(container.args, 'port')), 'TCP'],
      ['registry', Number(flag(container.args, 'registry-port')), 'TCP'],
    ],
  );
  t.notOk(container.args.some((a: string) => a.startsWith('--kubeconfig')), 'in-cluster service account, no kubeconfig');
});

t.test('deployment: probes are HTTPS GETs of /readyz and /livez on 8443', async (t) => {
  const probes = { readinessProbe: C.READINESS_PATH, livenessProbe: C.LIVENESS_PATH };
  t.equal(C.READINESS_PATH, '/readyz');
  t.equal(C.LIVENESS_PATH, '/livez');
  for (const [probe, p] of Object.entries(probes)) {
    const get = container[probe]?.httpGet;
    t.ok(get, `${probe}.httpGet`);
    t.equal(get?.scheme, 'HTTPS', `${probe} scheme`);
    t.equal(get?.path, p, `${probe} path`);
    t.equal(get?.port, 8443, `${probe} port`);
    t.equal(get?.port, Number(flag(container.args, 'port')), `${probe} port is --port`);
  }
  t.ok(container.livenessProbe.failureThreshold * container.livenessProbe.periodSeconds >= 30, 'liveness tolerates 30s of stalls');
});

t.test('deployment: data and certificate volumes', async (t) => {
  const mounts = Object.fromEntries(container.volumeMounts.map((m: Obj) => [m.mountPath, m]));
  const volumes = Object.fromEntries(podSpec.volumes.map((v: Obj) => [v.name, v]));

  const data = mounts[C.DATA_DIR];
  t.equal(C.DATA_DIR, flag(container.args, 'data-dir'), '--data-dir is the data mount');
  t.ok(data, `a volume at ${C.DATA_DIR}`);
  t.notOk(data?.readOnly, 'data is writable');
  t.same(volumes[data?.name]?.persistentVolumeClaim, { claimName: C.DATA_PVC });
  const pvc = one('PersistentVolumeClaim', C.DATA_PVC, C.NAMESPACE);
  t.same(pvc.spec.accessModes, ['ReadWriteOnce']);
  t.equal(pvc.spec.resources.requests.storage, C.DATA_PVC_SIZE);
  t.equal(C.DATA_PVC_SIZE, '10Gi');

  const certs = mounts[C.CERT_DIR];
  t.equal(C.CERT_DIR, flag(container.args, 'cert-dir'), '--cert-dir is the certs mount');
  t.ok(certs, `a volume at ${C.CERT_DIR}`);
  t.equal(certs?.readOnly, true);
  const secret = volumes[certs?.name]?.secret;
  t.equal(secret?.secretName, C.CERTS_SECRET);
  t.equal(secret?.items, undefined, 'every key of the Secret is mounted (all the files ensureCerts keeps)');
  t.equal(secret?.defaultMode, 0o440, 'keys readable by owner and group only');
  t.equal(secret?.optional, undefined, 'the pod waits for the Secret');

  t.ok(mounts['/tmp'] && volumes[mounts['/tmp'].name]?.emptyDir, 'writable /tmp on a read-only root');
  for (const m of container.volumeMounts) t.ok(volumes[m.name], `volume ${m.name} exists`);
});

t.test('deployment: security context and resources', async (t) => {
  const pod = podSpec.securityContext;
  const sc = container.securityContext;
  t.equal(pod.runAsNonRoot, true);
  t.ok(pod.runAsUser > 0, 'a numeric non-root user (runAsNonRoot cannot check a user name)');
  t.equal(pod.fsGroup, pod.runAsGroup, 'fsGroup makes the volumes usable by the user');
  t.equal(pod.seccompProfile?.type, 'RuntimeDefault');
  t.equal(sc.runAsNonRoot, true);
  t.equal(sc.readOnlyRootFilesystem, true);
  t.equal(sc.allowPrivilegeEscalation, false);
  t.same(sc.capabilities, { drop: ['ALL'] });
  t.equal(sc.seccompProfile?.type, 'RuntimeDefault');

  const mi = (q: string): number => {
    const m = /^(\d+(?:\.\d+)?)(Mi|Gi)$/.exec(q);
    if (!m) throw new Error(`unexpected memory quantity ${q}`);
    return Number(m[1]) * (m[2] === 'Gi' ? 1024 : 1);
  };
  const { requests, limits } = container.resources;
  t.ok(requests?.cpu && requests?.memory && limits?.cpu && limits?.memory, 'requests and limits for cpu and memory');
  t.ok(mi(requests.memory) >= 300, `requests ${requests.memory} cover a 300 MB server`);
  t.ok(mi(limits.memory) >= 2 * 300, `limit ${limits.memory} leaves room above 300 MB`);
  t.ok(mi(limits.memory) >= mi(requests.memory));
});

t.test('RBAC: names, role references and subjects', async (t) => {
  const subject = [{ kind: 'ServiceAccount', name: C.SERVICE_ACCOUNT, namespace: C.NAMESPACE }];
  const delegator = one('ClusterRoleBinding', C.RBAC.authDelegatorBinding);
  t.equal(delegator.metadata.name, 'ocm-apiserver:system:auth-delegator');
  t.same(delegator.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'system:auth-delegator' });
  t.same(delegator.subjects, subject);

  const reader = one('RoleBinding', C.RBAC.authReaderBinding, 'kube-system');
  t.equal(reader.metadata.name, 'ocm-apiserver-auth-reader');
  t.same(reader.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'extension-apiserver-authentication-reader' });
  t.same(reader.subjects, subject);

  t.ok(one('ClusterRole', C.RBAC.clusterRole));
  const own = one('ClusterRoleBinding', C.RBAC.clusterRoleBinding);
  t.same(own.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: C.RBAC.clusterRole });
  t.same(own.subjects, subject);

  for (const b of deployObjects.filter((o) => o.kind.endsWith('Binding'))) {
    t.same(b.subjects, subject, `${b.kind} ${b.metadata.name} binds the server's service account`);
  }
  t.equal(C.SERVICE_ACCOUNT, podSpec.serviceAccountName);
});

t.test('RBAC: the ClusterRole grants what the server needs and no more', async (t) => {
  const rules: Obj[] = one('ClusterRole', C.RBAC.clusterRole).rules;
  const allows = (group: string, resource: string, verb: string) =>
    rules.some(
      (r) =>
        (r.apiGroups ?? []).some((g: string) => g === group || g === '*') &&
        (r.resources ?? []).some((x: string) => x === resource || x === '*') &&
        (r.verbs ?? []).some((v: string) => v === verb || v === '*'),
    );
  const expect = (group: string, resources: string[], verbs: string[]) => {
    for (const res of resources) for (const v of verbs) t.ok(allows(group, res, v), `${v} ${res}${group ? `.${group}` : ''}`);
  };
  const READ = ['get', 'list', 'watch'];
  const ALL = [...READ, 'create', 'update', 'patch', 'delete', 'deletecollection'];
  expect('', ['secrets', 'configmaps', 'namespaces'], READ);
  expect('', ['events'], ['create', 'patch', 'update']);
  expect('events.k8s.io', ['events'], ['create', 'patch', 'update']);
  expect('source.toolkit.fluxcd.io', ['ocirepositories'], ALL);
  expect('kustomize.toolkit.fluxcd.io', ['kustomizations'], ALL);
  expect('helm.toolkit.fluxcd.io', ['helmreleases'], ALL);
  expect(GROUP, ocmKinds.map((k) => k.plural), READ);
  expect('coordination.k8s.io', ['leases'], ['create', 'get', 'update']);

  t.notOk(allows('', 'secrets', 'create') || allows('', 'secrets', 'update') || allows('', 'secrets', 'delete'), 'secrets are read-only');
  t.notOk(allows(GROUP, 'sources', 'delete'), 'no writes to OCM objects through the host cluster');
  t.notOk(allows('rbac.authorization.k8s.io', 'clusterroles', 'create'), 'no RBAC escalation');
  t.notOk(rules.some((r) => r.verbs.includes('*') || r.apiGroups.includes('*')), 'no wildcard verbs or groups');
});

t.test('apiservice.yaml registers the group the server serves', async (t) => {
  t.equal(apiService.apiVersion, 'apiregistration.k8s.io/v1');
  t.equal(apiService.kind, 'APIService');
  t.equal(apiService.metadata.name, C.APISERVICE_NAME);
  t.equal(apiService.metadata.name, `${apiService.spec.version}.${apiService.spec.group}`, 'name is version.group');
  t.equal(apiService.spec.group, GROUP);
  t.equal(apiService.spec.version, VERSION);
  for (const k of ocmKinds) t.equal(`${k.group}/${k.version}`, `${GROUP}/${VERSION}`, `${k.kind} is served under this APIService`);
  t.same(apiService.spec.service, { namespace: 'ocm-system', name: 'ocm-apiserver', port: 443 });
  t.equal(apiService.spec.groupPriorityMinimum, C.GROUP_PRIORITY_MINIMUM);
  t.equal(apiService.spec.versionPriority, C.VERSION_PRIORITY);
  t.equal(apiService.spec.insecureSkipTLSVerify, undefined, 'TLS is verified');
  t.equal(apiService.spec.caBundle, C.CA_BUNDLE_PLACEHOLDER, 'the committed caBundle is the placeholder');
  // The aggregator dials <service>.<namespace>.svc: the serving certificate must cover it.
  t.ok(DEFAULT_HOSTS.includes(`${apiService.spec.service.name}.${apiService.spec.service.namespace}.svc`), 'serving certificate covers the service');
});

// ---------------------------------------------------------------------------------------------
// npm run apiservice
// ---------------------------------------------------------------------------------------------

t.test('npm run apiservice renders the APIService with the CA bundle and the certificate Secret', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ocm-apiservice-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const certDir = path.join(tmp, 'certs');
  const run = (...args: string[]) => spawnSync(process.execPath, [renderScript, ...args], { encoding: 'utf8', cwd: tmp });

  const first = run('--cert-dir', certDir);
  t.equal(first.status, 0, `first run: ${first.stderr}`);
  const docs1 = YAML.parseAllDocuments(first.stdout).map((d) => d.toJS());
  t.same(docs1.map((d) => d.kind), ['APIService', 'Secret']);
  const [api1, secret1] = docs1;
  for (const d of docs1) t.same(await problems(d), [], `${d.kind} validates`);

  const caPem = fs.readFileSync(path.join(certDir, 'ca.crt'), 'utf8');
  t.equal(b64decode(api1.spec.caBundle), caPem, 'caBundle is ca.crt of the cert dir');
  t.ok(new X509Certificate(b64decode(api1.spec.caBundle)).ca, 'caBundle is a CA certificate');
  t.same({ ...api1, spec: { ...api1.spec, caBundle: C.CA_BUNDLE_PLACEHOLDER } }, apiService, 'otherwise apiservice.yaml unchanged');

  // Secret: every file of the cert dir plus the tls.* pair of a kubernetes.io/tls Secret.
  t.equal(secret1.metadata.name, C.CERTS_SECRET);
  t.equal(secret1.metadata.name, podSpec.volumes.find((v: Obj) => v.secret)?.secret.secretName, 'the Secret the Deployment mounts');
  t.equal(secret1.metadata.namespace, C.NAMESPACE);
  t.equal(secret1.type, 'kubernetes.io/tls');
  const files = fs.readdirSync(certDir).filter((f) => /\.(crt|key)$/.test(f));
  for (const f of C.CERT_FILES_REQUIRED) t.ok(files.includes(f), `ensureCerts wrote ${f}`);
  t.same(Object.keys(secret1.data).sort(), [...files, 'tls.crt', 'tls.key'].sort(), 'one key per file, plus tls.crt and tls.key');
  for (const f of files) t.equal(b64decode(secret1.data[f]), fs.readFileSync(path.join(certDir, f), 'utf8'), `${f} decodes to the file`);
  t.equal(b64decode(secret1.data['tls.crt']), fs.readFileSync(path.join(certDir, 'server.crt'), 'utf8'), 'tls.crt is server.crt');
  t.equal(b64decode(secret1.data['tls.key']), fs.readFileSync(path.join(certDir, 'server.key'), 'utf8'), 'tls.key is server.key');
  const serverCert = new X509Certificate(b64decode(secret1.data['server.crt']));
  t.ok(serverCert.checkIssued(new X509Certificate(caPem)), 'server.crt is issued by the caBundle CA');
  t.ok(serverCert.checkHost(`${C.SERVICE_NAME}.${C.NAMESPACE}.svc`), 'server.crt covers the service name the aggregator dials');

  // Second run: the key material is reused; --out writes the same documents, readable by the owner only.
  const outFile = path.join(tmp, 'rendered.yaml');
  const second = run('--cert-dir', certDir, '--out', outFile);
  t.equal(second.status, 0, `second run: ${second.stderr}`);
  t.equal(second.stdout, '', 'nothing on stdout with --out');
  t.equal(fs.statSync(outFile).mode & 0o777, 0o600, 'the output holds private keys: mode 0600');
  const docs2 = YAML.parseAllDocuments(fs.readFileSync(outFile, 'utf8')).map((d) => d.toJS());
  t.equal(docs2[0].spec.caBundle, api1.spec.caBundle, 'same caBundle across runs');
  t.same(docs2, docs1, 'same documents across runs');

  // --hosts: the serving certificate is reissued for the extra names by the same CA.
  const third = run(`--cert-dir=${certDir}`, '--hosts', 'ocm.example.test, 10.1.2.3');
  t.equal(third.status, 0, `--hosts run: ${third.stderr}`);
  const [api3, secret3] = YAML.parseAllDocuments(third.stdout).map((d) => d.toJS());
  t.equal(api3.spec.caBundle, api1.spec.caBundle, 'the CA stays');
  const cert3 = new X509Certificate(b64decode(secret3.data['server.crt']));
  t.equal(cert3.checkHost('ocm.example.test'), 'ocm.example.test');
  t.equal(cert3.checkIP('10.1.2.3'), '10.1.2.3');
  t.ok(cert3.checkHost(`${C.SERVICE_NAME}.${C.NAMESPACE}.svc`), 'still covers the service');

  const usage = run();
  t.equal(usage.status, 2, 'no --cert-dir: usage error');
  t.match(usage.stderr, /--cert-dir is required/);
  const unknown = run('--cert-dir', certDir, '--bogus');
  t.equal(unknown.status, 2, 'unknown option: usage error');
});
