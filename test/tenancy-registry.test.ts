// Two tenants on one standalone server (static token file + policy file): user-a owns namespace
// team-a, user-b team-b. What the server does on a user's behalf — its registry, the certificates
// it hands out — never reaches beyond what that user may do through the API (issue 16).
import t from 'tap';
import { execFile } from 'node:child_process';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import YAML from 'yaml';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { KUBECTL, startServer, tempDir, type TestServer } from './helpers/server.js';

const dir = tempDir('tenancy-registry-test-');
writeFileSync(join(dir, 'tokens.csv'), 'token-a,user-a,1001,"tenants"\ntoken-b,user-b,1002,"tenants"\n');
writeFileSync(
  join(dir, 'policy.yaml'),
  `- users: [user-a]
  verbs: ['*']
  apiGroups: ['*']
  resources: ['*']
  namespaces: [team-a]
- users: [user-b]
  verbs: ['*']
  apiGroups: ['*']
  resources: ['*']
  namespaces: [team-b]
`,
);
let s: TestServer;
let certs: string;
let registry: string;
const pem = (f: string) => readFileSync(join(certs, f), 'utf8');
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const exec = promisify(execFile);

/** skopeo, the containers/image client, with a HOME of its own. */
async function skopeo(...args: string[]): Promise<string> {
  const env = { ...process.env, HOME: dir, XDG_RUNTIME_DIR: dir, REGISTRY_AUTH_FILE: join(dir, 'auth.json') };
  try {
    return (await exec('skopeo', ['--insecure-policy', ...args], { env, timeout: 120_000, maxBuffer: 16 << 20 })).stdout;
  } catch (e) {
    const err = e as { stderr?: string; message: string };
    throw new Error(`skopeo ${args.join(' ')}: ${err.stderr || err.message}`);
  }
}
/** A --cert-dir for skopeo: the CA, and a client certificate when given. */
function certDir(name: string, client?: { cert: string; key: string }): string {
  const d = join(dir, 'certs', name);
  mkdirSync(d, { recursive: true });
  writeFileSync(join(d, 'ca.crt'), pem('ca.crt'));
  if (client) {
    writeFileSync(join(d, 'client.cert'), client.cert);
    writeFileSync(join(d, 'client.key'), client.key);
  }
  return d;
}

/** A one-image OCI layout (a gzip layer of one file) on disk; returns its manifest digest. */
function writeLayout(d: string, text: string): string {
  const header = Buffer.alloc(512);
  header.write('hello.txt', 0);
  header.write('0000644\0', 100);
  header.write('0000000\0', 108);
  header.write('0000000\0', 116);
  header.write(Buffer.byteLength(text).toString(8).padStart(11, '0') + '\0', 124);
  header.write('00000000000\0', 136);
  header.write('0', 156);
  header.write('ustar\0' + '00', 257);
  header.write('        ', 148);
  let sum = 0;
  for (const b of header) sum += b;
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  const body = Buffer.alloc(Math.ceil(Buffer.byteLength(text) / 512) * 512);
  body.write(text);
  const raw = Buffer.concat([header, body, Buffer.alloc(1024)]);
  const layer = zlib.gzipSync(raw);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(raw)] }, config: {} }));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(layer), size: layer.length }],
    }),
  );
  mkdirSync(join(d, 'blobs', 'sha256'), { recursive: true });
  for (const b of [layer, config, manifest]) writeFileSync(join(d, 'blobs', 'sha256', sha(b).slice(7)), b);
  writeFileSync(join(d, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(
    join(d, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'v1' } }] }),
  );
  return sha(manifest);
}

/** A plain HTTPS request to the registry (CA only, no client certificate unless given). */
function reg(method: string, path: string, headers: Record<string, string> = {}, client?: { cert: string; key: string }) {
  const [host, port] = registry.split(':');
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; text: string }>((resolve, reject) => {
    const r = https.request({ host, port: Number(port), method, path, headers, ca: pem('ca.crt'), servername: 'localhost', ...client, agent: false }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, text }));
    });
    r.on('error', reject);
    r.end();
  });
}
const basic = (user: string, token: string) => ({ Authorization: `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}` });
/** A registry token for a user (HTTP Basic with their API token) and what it grants. */
async function registryToken(user: string, token: string, scopes: string[]) {
  const r = await reg('GET', `/token?service=ocm-apiserver-registry&${scopes.map((x) => `scope=${encodeURIComponent(x)}`).join('&')}`, basic(user, token));
  if (r.status !== 200) throw new Error(`token: ${r.status} ${r.text}`);
  const tok = JSON.parse(r.text).token as string;
  const claims = JSON.parse(Buffer.from(tok.split('.')[0], 'base64url').toString('utf8'));
  return { token: tok, access: claims.access as { type: string; name: string; actions: string[] }[] };
}

const REPO_A = 'team-a/comp/source-prov';
const REPO_B = 'team-b/comp/source-prov';
let digestA: string;
let digestB: string;
let adminDir: string;

/** kubectl as a tenant: a kubeconfig with the CA and the user's bearer token, no client certificate. */
function tenantKubectl(user: string, token: string, args: string[], input?: string) {
  const kc = join(dir, `${user}.kubeconfig`);
  writeFileSync(
    kc,
    YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: s.url, 'certificate-authority-data': Buffer.from(pem('ca.crt')).toString('base64') } }],
      users: [{ name: user, user: { token } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user } }],
      'current-context': 'c',
    }),
  );
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(KUBECTL, ['--kubeconfig', kc, '--cache-dir', join(dir, `kcache-${user}`), ...args], { timeout: 60_000, env: { ...process.env, HOME: dir } }, (err, stdout, stderr) =>
      resolve({ code: err ? 1 : 0, stdout, stderr }),
    );
    child.stdin!.end(input ?? '');
  });
}

const GV = 'delivery.ocm.software/v1alpha1';
/** The pipeline a tenant runs in its own namespace: component -> Source snapshot -> Action writing the Flux objects. */
function pipeline(ns: string) {
  const m = (kind: string, name: string, spec: unknown) => ({ apiVersion: GV, kind, metadata: { name, namespace: ns }, spec });
  return [
    m('OCMComponent', 'comp', { name: 'ocm.software/demo/tenancy', version: '1.0.0', repository: { url: `${registry}/${ns}/ocm` } }),
    m('OCMResource', 'manifests', { resource: 'manifests' }),
    m('Source', 'manifests', { componentRef: { name: 'comp' }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: 'manifests' } }),
    m('KustomizationTemplate', 'deploy', { template: { interval: '10m', path: './', prune: true, targetNamespace: ns } }),
    m('Action', 'deployer', { componentRef: { name: 'comp' }, sourceRef: { kind: 'Source', name: 'manifests' }, providerRef: { apiVersion: GV, kind: 'KustomizationTemplate', name: 'deploy' } }),
  ]
    .map((o) => YAML.stringify(o))
    .join('---\n');
}
async function ready(kind: string, name: string, ns: string) {
  for (let i = 0; i < 300; i++) {
    const r = await s.request('GET', `/apis/${GV}/namespaces/${ns}/${kind}/${name}`);
    const c = r.status === 200 ? r.json().status?.conditions?.find((x: { type: string }) => x.type === 'Ready') : undefined;
    if (c?.status === 'True') return r.json();
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`${kind} ${ns}/${name} not Ready: ${(await s.request('GET', `/apis/${GV}/namespaces/${ns}/${kind}/${name}`)).body}`);
}
/** The one Snapshot of a namespace's Source: where the server put it. */
async function sourceSnapshot(ns: string) {
  const src = await ready('sources', 'manifests', ns);
  const snap = (await s.request('GET', `/apis/${GV}/namespaces/${ns}/snapshots/${src.status.snapshot}`)).json();
  return { repo: snap.status.repositoryURL.replace(/^[^/]+\//, '') as string, tag: snap.status.tag as string, digest: snap.status.digest as string };
}
/** The namespace's ocm-registry-tls Secret, decoded. */
async function fluxSecret(ns: string) {
  const r = await s.request('GET', `/api/v1/namespaces/${ns}/secrets/ocm-registry-tls`);
  if (r.status !== 200) throw new Error(`${ns}/ocm-registry-tls: ${r.status} ${r.body}`);
  return Object.fromEntries(Object.entries(r.json().data as Record<string, string>).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]));
}

/** registryPort: the same port again after a restart (the OCMComponents name it); the last --registry-port wins. */
async function startTenancyServer(registryPort = '0') {
  s = await startServer({
    dataDir: join(dir, 'server'),
    keep: true,
    reconcilers: 'all',
    args: ['--token-auth-file', join(dir, 'tokens.csv'), '--authorization-policy-file', join(dir, 'policy.yaml'), '--registry-port', registryPort],
  });
  certs = join(s.dataDir, 'certs');
  registry = `127.0.0.1:${/"registry":"[^"]*:(\d+)"/.exec(s.logs.find((l) => l.includes('"registry"'))!)![1]}`;
}

t.before(async () => {
  await startTenancyServer();
  for (const ns of ['team-a', 'team-b']) await s.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } });
  // Each tenant publishes its component into its own namespace of the registry (as the server's
  // admin here: tenants cannot push) and applies its pipeline with its own token.
  const client = new OciClient({ ca: pem('ca.crt'), cert: pem('admin.crt'), key: pem('admin.key') });
  for (const [ns, user, token] of [['team-a', 'user-a', 'token-a'], ['team-b', 'user-b', 'token-b']]) {
    const spec = { name: 'ocm.software/demo/tenancy', version: '1.0.0', provider: 'acme', resources: [{ name: 'manifests', type: 'blob', input: { type: 'utf8', text: `kind: ConfigMap\nmetadata: {name: ${ns}-secret-sauce}\n`, mediaType: 'application/yaml' } }] };
    await publish(new OcmRepository(client, `${registry}/${ns}/ocm`), spec as never, dir);
    const r = await tenantKubectl(user, token, ['apply', '-f', '-'], pipeline(ns));
    if (r.code !== 0) throw new Error(`${user} apply: ${r.stderr}`);
  }
  client.close();
  for (const ns of ['team-a', 'team-b']) await ready('actions', 'deployer', ns);
  // Snapshots as the server pushes them: with its own certificate.
  adminDir = certDir('admin', { cert: pem('admin.crt'), key: pem('admin.key') });
  digestA = writeLayout(join(dir, 'layout-a'), 'team-a private\n');
  digestB = writeLayout(join(dir, 'layout-b'), 'team-b private\n');
  await skopeo('copy', '--preserve-digests', '--dest-cert-dir', adminDir, `oci:${join(dir, 'layout-a')}:v1`, `docker://${registry}/${REPO_A}:1700000000`);
  await skopeo('copy', '--preserve-digests', '--dest-cert-dir', adminDir, `oci:${join(dir, 'layout-b')}:v1`, `docker://${registry}/${REPO_B}:1700000000`);
});
t.teardown(async () => {
  await s?.stop();
  rmSync(dir, { recursive: true, force: true });
});
// (the data dir is kept across the restart of the CA rotation test, and removed with `dir`)

/** An API request with headers that may repeat (an array value is sent as several header lines). */
function api(method: string, path: string, headers: Record<string, string | string[]>, cert: { cert: string; key: string }, body?: unknown) {
  return new Promise<{ status: number; json: any }>((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      { host: '127.0.0.1', port: s.port, method, path, ca: pem('ca.crt'), servername: 'localhost', ...cert, agent: false, headers: { ...(data ? { 'Content-Type': 'application/json' } : {}), ...headers } },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, json: text.startsWith('{') ? JSON.parse(text) : text }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}
const whoami = (headers: Record<string, string | string[]>, cert: { cert: string; key: string }) =>
  api('POST', '/apis/authentication.k8s.io/v1/selfsubjectreviews', headers, cert, { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' });

// kube keeps each header line as one value and never splits at commas:
// k8s.io/apiserver/pkg/authentication/request/headerrequest/requestheader.go (allHeaderValues) for
// X-Remote-Group, pkg/endpoints/filters/impersonation.go (processImpersonationHeaders) for Impersonate-Group.
t.test('front proxy: X-Remote-Group "tenants,system:masters" is one group, not two', async (t) => {
  const proxy = { cert: pem('front-proxy-client.crt'), key: pem('front-proxy-client.key') };
  const one = await whoami({ 'X-Remote-User': 'user-b', 'X-Remote-Group': 'tenants,system:masters' }, proxy);
  t.equal(one.status, 201, JSON.stringify(one.json));
  t.same(one.json.status.userInfo.groups, ['tenants,system:masters', 'system:authenticated'], 'one group with a comma in its name');
  const denied = await api('GET', '/api/v1/namespaces/team-a/secrets', { 'X-Remote-User': 'user-b', 'X-Remote-Group': 'tenants,system:masters' }, proxy);
  t.equal(denied.status, 403, 'no system:masters smuggled in after a comma');
  const two = await whoami({ 'X-Remote-User': 'user-b', 'X-Remote-Group': ['tenants', 'system:masters'] }, proxy);
  t.same(two.json.status.userInfo.groups, ['tenants', 'system:masters', 'system:authenticated'], 'two header lines are two groups');
});

t.test('Impersonate-Group "tenants,system:masters" is one group, not two', async (t) => {
  const admin = { cert: pem('admin.crt'), key: pem('admin.key') };
  const one = await whoami({ 'Impersonate-User': 'user-b', 'Impersonate-Group': 'tenants,system:masters' }, admin);
  t.equal(one.status, 201, JSON.stringify(one.json));
  t.same(one.json.status.userInfo.groups, ['tenants,system:masters', 'system:authenticated']);
  const denied = await api('GET', '/api/v1/namespaces/team-a/secrets', { 'Impersonate-User': 'user-b', 'Impersonate-Group': 'tenants,system:masters' }, admin);
  t.equal(denied.status, 403);
  const two = await whoami({ 'Impersonate-User': 'user-b', 'Impersonate-Group': ['tenants', 'system:masters'] }, admin);
  t.same(two.json.status.userInfo.groups, ['tenants', 'system:masters', 'system:authenticated']);
});

t.test("registry /token: user-b's request for team-a is down-scoped to what user-b may do", async (t) => {
  const b = await registryToken('user-b', 'token-b', [`repository:${REPO_A}:pull,push,delete`, `repository:${REPO_B}:pull,push,delete`, 'registry:catalog:*']);
  t.same(
    b.access,
    [
      { type: 'repository', name: REPO_B, actions: ['pull'] },
      { type: 'registry', name: 'catalog', actions: ['*'] },
    ],
    'team-a: nothing; team-b: pull only (snapshots are the server\'s to write); the catalog (filtered)',
  );
  const a = await registryToken('user-a', 'token-a', [`repository:${REPO_A}:*`]);
  t.same(a.access, [{ type: 'repository', name: REPO_A, actions: ['pull'] }], 'user-a: pull of its own, * is no push');
  const bad = await reg('GET', `/token?scope=repository:${REPO_A}:pull`, basic('user-b', 'wrong'));
  t.equal(bad.status, 401, 'a wrong API token is refused');
});

t.test('registry: user-b cannot read, push or delete team-a (plain HTTP with the token)', async (t) => {
  const { token } = await registryToken('user-b', 'token-b', [`repository:${REPO_A}:pull,push,delete`, 'registry:catalog:*']);
  const bearer = { Authorization: `Bearer ${token}` };
  for (const [method, path] of [
    ['GET', `/v2/${REPO_A}/manifests/1700000000`],
    ['GET', `/v2/${REPO_A}/tags/list`],
    ['GET', `/v2/${REPO_A}/blobs/${digestA}`],
    ['POST', `/v2/${REPO_A}/blobs/uploads/`],
    ['DELETE', `/v2/${REPO_A}/manifests/${digestA}`],
  ]) {
    const r = await reg(method, path, bearer);
    t.equal(r.status, 401, `${method} ${path}: ${r.status}`);
    t.match(String(r.headers['www-authenticate']), /error="insufficient_scope"/);
  }
  const cat = await reg('GET', '/v2/_catalog', bearer);
  t.equal(cat.status, 200);
  const catB: string[] = JSON.parse(cat.text).repositories;
  t.ok(catB.includes(REPO_B) && catB.includes((await sourceSnapshot('team-b')).repo), `user-b's catalog has team-b's repositories (${catB})`);
  t.same(catB.filter((r) => !r.startsWith('team-b/')), [], "user-b's catalog: team-b's repositories only");
  const { token: ta } = await registryToken('user-a', 'token-a', ['registry:catalog:*']);
  const catA: string[] = JSON.parse((await reg('GET', '/v2/_catalog', { Authorization: `Bearer ${ta}` })).text).repositories;
  t.ok(catA.includes(REPO_A), "user-a's catalog has team-a's");
  t.same(catA.filter((r) => !r.startsWith('team-a/')), [], "user-a's catalog: team-a's only");
  const all: string[] = JSON.parse((await reg('GET', '/v2/_catalog', {}, { cert: pem('admin.crt'), key: pem('admin.key') })).text).repositories;
  t.same(all.sort(), [...catA, ...catB].sort(), 'the server sees all');
  t.equal((await reg('HEAD', `/v2/${REPO_A}/manifests/1700000000`, {}, { cert: pem('admin.crt'), key: pem('admin.key') })).status, 200, 'team-a untouched');
});

t.test('registry: skopeo with the token flow — user-a pulls its own, user-b gets nothing of team-a', async (t) => {
  const caOnly = certDir('ca-only');
  const out = join(dir, 'out-a');
  await skopeo('copy', '--preserve-digests', '--src-cert-dir', caOnly, '--src-creds', 'user-a:token-a', `docker://${registry}/${REPO_A}:1700000000`, `oci:${out}:v1`);
  t.equal(JSON.parse(readFileSync(join(out, 'index.json'), 'utf8')).manifests[0].digest, digestA, 'user-a pulled its snapshot');
  t.equal(JSON.parse(await skopeo('list-tags', '--cert-dir', caOnly, '--creds', 'user-b:token-b', `docker://${registry}/${REPO_B}`)).Tags[0], '1700000000', 'user-b lists its own tags');

  await t.rejects(skopeo('inspect', '--raw', '--cert-dir', caOnly, '--creds', 'user-b:token-b', `docker://${registry}/${REPO_A}:1700000000`), 'user-b cannot pull team-a');
  await t.rejects(skopeo('list-tags', '--cert-dir', caOnly, '--creds', 'user-b:token-b', `docker://${registry}/${REPO_A}`), 'user-b cannot list team-a tags');
  await t.rejects(
    skopeo('copy', '--preserve-digests', '--dest-cert-dir', caOnly, '--dest-creds', 'user-b:token-b', `oci:${join(dir, 'layout-b')}:v1`, `docker://${registry}/${REPO_A}:1700000000`),
    'user-b cannot overwrite a team-a tag',
  );
  await t.rejects(
    skopeo('copy', '--preserve-digests', '--dest-cert-dir', caOnly, '--dest-creds', 'user-b:token-b', `oci:${join(dir, 'layout-b')}:v1`, `docker://${registry}/${REPO_B}:1700000001`),
    'nor push into team-b: snapshots are the server\'s',
  );
  await t.rejects(skopeo('delete', '--cert-dir', caOnly, '--creds', 'user-b:token-b', `docker://${registry}/${REPO_A}:1700000000`), 'user-b cannot delete a team-a tag');
  await t.rejects(skopeo('delete', '--cert-dir', caOnly, '--creds', 'user-a:token-a', `docker://${registry}/${REPO_A}:1700000000`), 'nor user-a its own: the server deletes');
  const admin = { cert: pem('admin.crt'), key: pem('admin.key') };
  const head = await reg('HEAD', `/v2/${REPO_A}/manifests/1700000000`, {}, admin);
  t.equal(head.headers['docker-content-digest'], digestA, 'team-a still serves its own snapshot');
  t.equal((await reg('HEAD', `/v2/${REPO_B}/manifests/1700000001`, {}, admin)).status, 404, 'nothing pushed');
  t.equal((await reg('HEAD', `/v2/${REPO_B}/manifests/1700000000`, {}, admin)).headers['docker-content-digest'], digestB);
});

t.test("the server's own snapshots: user-a pulls its own (skopeo, token flow); user-b cannot", async (t) => {
  const a = await sourceSnapshot('team-a');
  t.match(a.repo, /^team-a\//, 'the snapshot lives under its namespace');
  const caOnly = certDir('ca-only');
  const raw = await skopeo('inspect', '--raw', '--cert-dir', caOnly, '--creds', 'user-a:token-a', `docker://${registry}/${a.repo}:${a.tag}`);
  t.equal(sha(raw), a.digest, 'user-a reads its snapshot manifest byte for byte');
  const layer = JSON.parse(raw).layers[0].digest as string;
  const { token } = await registryToken('user-a', 'token-a', [`repository:${a.repo}:pull`]);
  const blob = await reg('GET', `/v2/${a.repo}/blobs/${layer}`, { Authorization: `Bearer ${token}` });
  t.equal(blob.status, 200, 'and its layer');
  await t.rejects(skopeo('inspect', '--raw', '--cert-dir', caOnly, '--creds', 'user-b:token-b', `docker://${registry}/${a.repo}:${a.tag}`), 'user-b cannot');
  const { token: tb } = await registryToken('user-b', 'token-b', [`repository:${a.repo}:pull`]);
  t.equal((await reg('GET', `/v2/${a.repo}/blobs/${layer}`, { Authorization: `Bearer ${tb}` })).status, 401, "user-b cannot fetch team-a's layer");
});

t.test('the Flux certificate of a namespace pulls that namespace and nothing else', async (t) => {
  const secA = await fluxSecret('team-a');
  const secB = await fluxSecret('team-b');
  t.equal(secB['ca.crt'], pem('ca.crt'), 'ca.crt: the server CA');
  t.not(secA['tls.crt'], secB['tls.crt'], 'one certificate per namespace');
  t.match(new X509Certificate(secB['tls.crt']).subjectAltName, 'URI:urn:ocm-apiserver:registry:pull:team-b', 'naming its namespace');
  t.ok(new X509Certificate(secB['tls.crt']).verify(new X509Certificate(pem('ca.crt')).publicKey), 'signed by the server CA');
  const fluxB = { cert: secB['tls.crt'], key: secB['tls.key'] };
  const dirB = certDir('flux-b', fluxB);
  const a = await sourceSnapshot('team-a');
  const b = await sourceSnapshot('team-b');

  t.equal(sha(await skopeo('inspect', '--raw', '--cert-dir', dirB, `docker://${registry}/${b.repo}:${b.tag}`)), b.digest, "team-b's certificate pulls team-b's snapshot (skopeo, mTLS)");
  await t.rejects(skopeo('inspect', '--raw', '--cert-dir', dirB, `docker://${registry}/${a.repo}:${a.tag}`), "but not team-a's");
  await t.rejects(skopeo('list-tags', '--cert-dir', dirB, `docker://${registry}/${a.repo}`), "nor lists team-a's tags");
  await t.rejects(
    skopeo('copy', '--preserve-digests', '--dest-cert-dir', dirB, `oci:${join(dir, 'layout-b')}:v1`, `docker://${registry}/${a.repo}:${a.tag}`),
    "nor overwrites team-a's tag",
  );
  await t.rejects(skopeo('copy', '--preserve-digests', '--dest-cert-dir', dirB, `oci:${join(dir, 'layout-b')}:v1`, `docker://${registry}/${b.repo}:1700000009`), 'nor pushes into its own');
  await t.rejects(skopeo('delete', '--cert-dir', dirB, `docker://${registry}/${b.repo}:${b.tag}`), 'nor deletes');
  for (const [method, path] of [
    ['GET', `/v2/${a.repo}/manifests/${a.tag}`],
    ['DELETE', `/v2/${a.repo}/manifests/${a.digest}`],
    ['POST', `/v2/${b.repo}/blobs/uploads/`],
  ]) {
    const r = await reg(method, path, {}, fluxB);
    t.equal(r.status, 403, `${method} ${path}: 403 DENIED`);
    t.equal(JSON.parse(r.text).errors[0].code, 'DENIED');
  }
  const cat: string[] = JSON.parse((await reg('GET', '/v2/_catalog', {}, fluxB)).text).repositories;
  t.ok(cat.includes(b.repo), 'its catalog: its own snapshots');
  t.same(cat.filter((r) => !r.startsWith('team-b/')), [], 'and nothing of team-a');
  const tok = JSON.parse((await reg('GET', `/token?scope=repository:${a.repo}:pull,push&scope=repository:${b.repo}:pull,push`, {}, fluxB)).text).token;
  const claims = JSON.parse(Buffer.from(tok.split('.')[0], 'base64url').toString('utf8'));
  t.same(claims.access, [{ type: 'repository', name: b.repo, actions: ['pull'] }], 'a token for it: pull of its own namespace only');
  t.equal((await reg('HEAD', `/v2/${a.repo}/manifests/${a.tag}`, {}, { cert: pem('admin.crt'), key: pem('admin.key') })).headers['docker-content-digest'], a.digest, 'team-a unchanged');
  const api = await s.request('GET', '/api/v1/namespaces/team-b/secrets', { cert: fluxB });
  t.equal(api.status, 401, 'and it is no identity at the API');
});

t.test('a new CA: every namespace gets a new Flux certificate, the old one is refused', async (t) => {
  const before = await fluxSecret('team-b');
  await s.stop();
  for (const f of ['ca.crt', 'ca.key']) rmSync(join(dir, 'server', 'certs', f));
  await startTenancyServer(registry.split(':')[1]);
  t.not(pem('ca.crt'), before['ca.crt'], 'a new CA');
  let after = before;
  for (let i = 0; i < 150 && after['ca.crt'] === before['ca.crt']; i++) {
    await new Promise((r) => setTimeout(r, 200));
    after = await fluxSecret('team-b');
  }
  t.equal(after['ca.crt'], pem('ca.crt'), 'the Secret holds the new CA');
  t.not(after['tls.crt'], before['tls.crt'], 'and a new certificate');
  t.ok(new X509Certificate(after['tls.crt']).verify(new X509Certificate(pem('ca.crt')).publicKey), 'signed by the new CA');
  // The chain outlives the new CA: attestations are signed with attestation.key, not the serving key.
  // An edit makes the Action check its input's attestation again.
  const edit = await s.kubectl(['patch', 'action', 'deployer', '-n', 'team-b', '--type', 'merge', '-p', '{"spec":{"interval":"9m"}}']);
  t.equal(edit.code, 0, edit.stderr);
  let act: any;
  for (let i = 0; i < 300; i++) {
    act = (await s.request('GET', `/apis/${GV}/namespaces/team-b/actions/deployer`)).json();
    const c = act.status?.conditions?.find((x: { type: string }) => x.type === 'Ready');
    if (c && c.observedGeneration === act.metadata.generation && c.status !== 'Unknown') break;
    await new Promise((res) => setTimeout(res, 200));
  }
  const c = act.status?.conditions?.find((x: { type: string }) => x.type === 'Ready');
  t.equal(c?.observedGeneration, act.metadata.generation, 'the edit was reconciled');
  t.equal(c?.status, 'True', `the Action, edited after the new CA, is Ready: its input still verifies (${c?.reason}: ${c?.message})`);
  const b = await sourceSnapshot('team-b');
  t.equal((await reg('HEAD', `/v2/${b.repo}/manifests/${b.tag}`, {}, { cert: after['tls.crt'], key: after['tls.key'] })).status, 200, 'the new certificate pulls');
  t.equal((await reg('HEAD', `/v2/${b.repo}/manifests/${b.tag}`, {}, { cert: before['tls.crt'], key: before['tls.key'] })).status, 401, 'the old one is nobody');
});

t.test('--help says what --registry-anonymous-pull gives away', async (t) => {
  const { stdout } = await exec(process.execPath, [join(import.meta.dirname, '..', 'cli', 'server.js'), '--help']);
  t.match(stdout, /--registry-anonymous-pull[\s\S]*every tenant's\s+snapshots \(blobs, manifests, tags\) become public/);
  t.match(stdout, /also: .*--max-watches-per-user/, 'every other flag is named');
});
