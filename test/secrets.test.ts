// Secrets never leak. Unique values are planted in Secrets: registry credentials (a
// kubernetes.io/dockerconfigjson Secret that works against Debian's docker-registry with htpasswd,
// a username/password Secret with a wrong password, a dockerconfigjson Secret that is not valid
// JSON) and Configurator values (valuesFrom Secrets: one applied, one that fails the ConfigData's
// schema, one with a YAML alias, one with a YAML tag). A full reconcile runs (OCMComponent ->
// Source -> Action/Configurator -> Snapshots) next to the failures. Then every output is searched
// for every planted value (any 8 characters of it, and the Basic auth header form of the
// credentials): every stored object but Secrets (all resources from discovery, `kubectl get ocm -A`),
// events, `kubectl describe`, the contents of every Snapshot and every file of the embedded
// registry, and the server's logs (stdout and stderr, at debug level). The server's own private
// keys are searched for too.
import { randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { archiveToFiles } from '../providers/content.js';
import { OciClient } from '../registry/client.js';
import { pullSnapshot } from '../registry/snapshot.js';
import { type Distribution, startDistribution } from './helpers/distribution.js';
import { startServer, type TestServer } from './helpers/server.js';

// No hex digits, so that digests and ids in the outputs cannot match by chance.
const ALPHABET = 'ghjkmnpqrstvwxyzGHJKMNPQRSTVWXYZ';
/** 24 random characters, then a label: a value that leaks only in part (its start) is still found. */
const plant = (label: string) => `${Array.from({ length: 24 }, () => ALPHABET[randomInt(ALPHABET.length)]).join('')}-${label}`;
const USER = 'reader';
const planted = {
  registryPassword: plant('pw'),
  wrongPassword: plant('wrong'),
  brokenConfigPassword: plant('broken'),
  appliedSecretValue: plant('tok'),
  schemaFailingValue: plant('schema'),
  yamlAliasValue: plant('alias'),
  yamlTagValue: plant('tag'),
};
/** The forms to look for: any 8 consecutive characters of the random part of each value, and the Basic auth header. */
const needles: { what: string; needle: string }[] = [
  ...Object.entries(planted).flatMap(([what, v]) => {
    const random = v.slice(0, 24);
    return Array.from({ length: random.length - 7 }, (_, i) => ({ what, needle: random.slice(i, i + 8) }));
  }),
  { what: 'registry credentials as a Basic auth header', needle: Buffer.from(`${USER}:${planted.registryPassword}`).toString('base64') },
  { what: 'wrong credentials as a Basic auth header', needle: Buffer.from(`${USER}:${planted.wrongPassword}`).toString('base64') },
];

const NS = 'sec';
const G = '/apis/delivery.ocm.software/v1alpha1';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let reg: Distribution;
let s: TestServer;
const work = mkdtempSync(join(tmpdir(), 'secrets-test-'));

function leaks(text: string): string[] {
  const out: string[] = [];
  for (const { what, needle } of needles) {
    const i = text.indexOf(needle);
    if (i >= 0) out.push(`${what}: …${text.slice(Math.max(0, i - 120), i + 60).replace(/\s+/g, ' ')}…`);
  }
  return [...new Set(out.map((l) => l.split(':')[0]))].map((w) => out.find((l) => l.startsWith(w))!);
}

/** Also the server's private keys: a chunk of the base64 body of each PEM key file. */
function keyNeedles(dataDir: string) {
  const dir = join(dataDir, 'certs');
  for (const f of readdirSync(dir).filter((f) => f.endsWith('.key'))) {
    const body = readFileSync(join(dir, f), 'utf8').split('\n').filter((l) => l && !l.startsWith('-----')).join('');
    needles.push({ what: `private key ${f}`, needle: body.slice(100, 160) });
  }
}

const secret = (name: string, data: Record<string, string>, type = 'Opaque') => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace: NS },
  type,
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
});
const component = (name: string, secretRef?: string) => ({
  apiVersion: 'delivery.ocm.software/v1alpha1',
  kind: 'OCMComponent',
  metadata: { name, namespace: NS },
  spec: { name: 'ocm.software/secrets/app', version: '>=1.0.0', interval: '10m', repository: { url: `http://${reg.host}/ocm`, ...(secretRef ? { secretRef: { name: secretRef } } : {}) } },
});
const configurator = (name: string, valuesSecret: string) => [
  { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'Configurator', metadata: { name, namespace: NS }, spec: { valuesFrom: [{ kind: 'Secret', name: valuesSecret, key: 'values.yaml' }] } },
  {
    apiVersion: 'delivery.ocm.software/v1alpha1',
    kind: 'Action',
    metadata: { name, namespace: NS },
    spec: { componentRef: { name: 'app' }, snapshotSourceRef: { kind: 'Source', name: 'manifests' }, providerRef: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'Configurator', name } },
  },
];

async function get(path: string): Promise<any> {
  const r = await s.request('GET', path);
  return r.status === 200 ? r.json() : undefined;
}
const ready = (o: any) => o?.status?.conditions?.find((c: any) => c.type === 'Ready');
async function waitReady(kind: string, name: string, status: 'True' | 'False', ms = 60_000): Promise<any> {
  const until = Date.now() + ms;
  let o;
  for (;;) {
    o = await get(`${G}/namespaces/${NS}/${kind}/${name}`);
    const c = ready(o);
    if (c?.status === status && !(status === 'False' && /NotReady$/.test(c.reason))) return o;
    if (Date.now() > until) throw new Error(`${kind}/${name} not Ready=${status} in ${ms} ms: ${JSON.stringify(o?.status)}`);
    await sleep(250);
  }
}

const state: Record<string, any> = {};
const outputs: Record<string, string> = {};

t.before(async () => {
  reg = await startDistribution({ htpasswd: { [USER]: planted.registryPassword } });
  const manifests = join(work, 'manifests');
  mkdirSync(manifests);
  writeFileSync(join(manifests, 'deploy.yaml'), 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n  replicas: 1\n');
  writeFileSync(
    join(work, 'config.yaml'),
    YAML.stringify({
      apiVersion: 'config.ocm.software/v1alpha1',
      kind: 'ConfigData',
      metadata: { name: 'app-config' },
      configuration: {
        defaults: { replicas: 1 },
        schema: { type: 'object', properties: { replicas: { type: 'integer', minimum: 1 } } },
        rules: [{ value: '(( replicas ))', file: 'deploy.yaml', path: 'spec.replicas' }],
      },
    }),
  );
  const pusher = new OciClient({ insecureHttp: true, credentials: () => ({ username: USER, password: planted.registryPassword }) });
  await publish(
    new OcmRepository(pusher, `http://${reg.host}/ocm`),
    {
      name: 'ocm.software/secrets/app',
      version: '1.0.0',
      provider: 'acme',
      resources: [
        { name: 'manifests', version: '1.0.0', type: 'kustomize.ocm.fluxcd.io', input: { type: 'dir', path: 'manifests' } },
        { name: 'config', version: '1.0.0', type: 'configdata.ocm.software', input: { type: 'file', path: 'config.yaml', mediaType: 'application/yaml' } },
      ],
    },
    work,
    {},
  );
  pusher.close();

  s = await startServer({ reconcilers: 'all', args: ['--log-level', 'debug', '--allow-private-upstreams'] }); // the upstream registry is on 127.0.0.1
  keyNeedles(s.dataDir);
  const create = async (o: any) => {
    const plural = o.kind === 'Secret' ? null : `${o.kind.toLowerCase()}s`;
    const path = plural ? `${G}/namespaces/${NS}/${plural}` : `/api/v1/namespaces/${NS}/secrets`;
    const r = await s.request('POST', path, { body: o });
    if (r.status !== 201) throw new Error(`creating ${o.kind} ${o.metadata.name}: ${r.status} ${r.body}`);
  };
  const ns = await s.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } });
  if (ns.status !== 201) throw new Error(ns.body);
  const auth = Buffer.from(`${USER}:${planted.registryPassword}`).toString('base64');
  for (const o of [
    secret('regcred', { '.dockerconfigjson': JSON.stringify({ auths: { [reg.host]: { username: USER, password: planted.registryPassword, auth } } }) }, 'kubernetes.io/dockerconfigjson'),
    secret('wrongcred', { username: USER, password: planted.wrongPassword }),
    // Not JSON: the password is not quoted.
    secret('brokencred', { '.dockerconfigjson': `{"auths":{"${reg.host}":{"username":"${USER}","password":${planted.brokenConfigPassword}}}}` }, 'kubernetes.io/dockerconfigjson'),
    secret('app-values', { 'values.yaml': `replicas: 3\napiToken: ${planted.appliedSecretValue}\n` }),
    secret('schema-values', { 'values.yaml': `replicas: "${planted.schemaFailingValue}"\n` }),
    secret('alias-values', { 'values.yaml': `replicas: 2\npassword: *${planted.yamlAliasValue}\n` }),
    secret('tag-values', { 'values.yaml': `replicas: 2\npassword: !${planted.yamlTagValue} x\n` }),
    component('app', 'regcred'),
    component('wrong', 'wrongcred'),
    component('broken', 'brokencred'),
    component('anonymous'),
    { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMResource', metadata: { name: 'manifests', namespace: NS }, spec: { resource: 'manifests' } },
    {
      apiVersion: 'delivery.ocm.software/v1alpha1',
      kind: 'Source',
      metadata: { name: 'manifests', namespace: NS },
      spec: { componentRef: { name: 'app' }, providerRef: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMResource', name: 'manifests' } },
    },
    ...configurator('applied', 'app-values'),
    ...configurator('schema', 'schema-values'),
    ...configurator('alias', 'alias-values'),
    ...configurator('tag', 'tag-values'),
  ])
    await create(o);

  // Everything reaches its end state.
  for (const [key, kind, name, status] of [
    ['app', 'ocmcomponents', 'app', 'True'],
    ['source', 'sources', 'manifests', 'True'],
    ['applied', 'actions', 'applied', 'True'],
    ['wrong', 'ocmcomponents', 'wrong', 'False'],
    ['broken', 'ocmcomponents', 'broken', 'False'],
    ['anonymous', 'ocmcomponents', 'anonymous', 'False'],
    ['schema', 'actions', 'schema', 'False'],
    ['alias', 'actions', 'alias', 'False'],
  ] as const) {
    try {
      state[key] = await waitReady(kind, name, status);
    } catch (err) {
      state[key] = { error: (err as Error).message };
    }
  }
  // The tag one may succeed or fail; just let it finish.
  const until = Date.now() + 30_000;
  while (!ready(await get(`${G}/namespaces/${NS}/actions/tag`)) && Date.now() < until) await sleep(250);
  state.tag = await get(`${G}/namespaces/${NS}/actions/tag`);
  await sleep(2000); // events of the last transitions

  // ---- collect every output ----
  const kubectl = async (args: string[]) => {
    const r = await s.kubectl(args);
    return `$ kubectl ${args.join(' ')}\n${r.stdout}\n${r.stderr}`;
  };
  outputs['kubectl get ocm -A -o json'] = await kubectl(['get', 'ocm', '-A', '-o', 'json']);
  outputs['kubectl get events -A -o json'] = await kubectl(['get', 'events', '-A', '-o', 'json']);
  outputs['kubectl describe'] = (await Promise.all(['ocmcomponents', 'sources', 'actions', 'configurators', 'ocmresources', 'snapshots'].map((k) => kubectl(['describe', k, '-n', NS])))).join('\n');
  // Every listable resource in discovery but Secrets.
  const all: string[] = [];
  const lists: string[] = ['/api/v1'];
  for (const g of (await get('/apis')).groups) lists.push(...g.versions.map((v: any) => `/apis/${v.groupVersion}`));
  for (const gv of lists) {
    for (const r of (await get(gv))?.resources ?? []) {
      if (r.name.includes('/') || !r.verbs?.includes('list') || r.name === 'secrets') continue;
      const l = await s.request('GET', `${gv}/${r.name}`);
      all.push(`${gv}/${r.name}: ${l.body}`);
    }
  }
  outputs['every stored object but Secrets'] = all.join('\n');
  // Snapshot contents, and every file the embedded registry stores.
  const client = new OciClient({
    ca: readFileSync(join(s.dataDir, 'certs', 'ca.crt'), 'utf8'),
    cert: readFileSync(join(s.dataDir, 'certs', 'admin.crt'), 'utf8'),
    key: readFileSync(join(s.dataDir, 'certs', 'admin.key'), 'utf8'),
  });
  const snaps = (await get(`${G}/snapshots`)).items;
  state.snapshots = snaps.map((x: any) => x.metadata.name);
  const contents: string[] = [];
  for (const snap of snaps) {
    const files = await archiveToFiles(await pullSnapshot(client, `${snap.status.repositoryURL}:${snap.status.tag}`, { expectedDigest: snap.status.digest }));
    for (const [name, data] of Object.entries(files)) contents.push(`${snap.metadata.name}/${name}:\n${data.toString('utf8')}`);
    if (snap.spec?.producer?.name === 'applied' || (snap.metadata.ownerReferences ?? []).some((o: any) => o.name === 'applied')) state.appliedFiles = files;
  }
  client.close();
  outputs['snapshot contents'] = contents.join('\n');
  const registryFiles: string[] = [];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir)) {
      const p = join(dir, e);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (st.size < 4 << 20) registryFiles.push(`${p}: ${readFileSync(p).toString('latin1')}`);
    }
  };
  walk(join(s.dataDir, 'registry'));
  outputs['files of the embedded registry'] = registryFiles.join('\n');
  outputs['server logs (stdout and stderr)'] = s.logs.join('\n');
});

t.teardown(async () => {
  await s?.stop();
  await reg?.stop();
});

t.test('the scenario ran: a full reconcile with the credentials, and each failure as a condition', async (t) => {
  for (const k of ['app', 'source', 'applied', 'wrong', 'broken', 'anonymous', 'schema', 'alias']) t.notOk(state[k]?.error, state[k]?.error ?? `${k} reached its state`);
  t.equal(ready(state.app)?.status, 'True', 'the OCMComponent with the dockerconfigjson Secret is Ready');
  t.equal(ready(state.source)?.status, 'True', 'its Source made a Snapshot');
  t.equal(ready(state.applied)?.status, 'True', 'the Configurator with valuesFrom a Secret made a Snapshot');
  const deploy = state.appliedFiles?.['deploy.yaml']?.toString();
  t.match(deploy, /replicas: 3/, 'the value from the Secret was applied');
  t.match(ready(state.wrong)?.message, /401|unauthori[sz]ed/i, `wrong password: ${ready(state.wrong)?.reason}: ${ready(state.wrong)?.message}`);
  t.match(ready(state.anonymous)?.message, /401|unauthori[sz]ed|credentials/i, `no credentials: ${ready(state.anonymous)?.message}`);
  t.match(ready(state.broken)?.message, /JSON|docker config/i, `malformed dockerconfigjson: ${ready(state.broken)?.reason}: ${ready(state.broken)?.message}`);
  t.match(ready(state.schema)?.message, /replicas/, `schema failure: ${ready(state.schema)?.message}`);
  t.ok(ready(state.alias)?.message, `YAML alias: ${ready(state.alias)?.message}`);
  t.comment(`tag: ${ready(state.tag)?.status} ${ready(state.tag)?.reason}: ${ready(state.tag)?.message}`);
  t.ok(state.snapshots?.length >= 2, `snapshots: ${state.snapshots?.join(', ')}`);
  for (const [what, text] of Object.entries(outputs)) t.ok(text.length > 0, `${what}: ${text.length} characters searched`);
});

for (const what of [
  'kubectl get ocm -A -o json',
  'every stored object but Secrets',
  'kubectl get events -A -o json',
  'kubectl describe',
  'snapshot contents',
  'files of the embedded registry',
  'server logs (stdout and stderr)',
]) {
  t.test(`no planted secret in ${what}`, async (t) => {
    t.ok(outputs[what], 'collected');
    const found = leaks(outputs[what] ?? '');
    t.equal(found.length, 0, found.length ? `found: ${found.join(' | ')}` : 'nothing found');
  });
}
