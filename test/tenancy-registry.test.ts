// Two tenants on one standalone server (static token file + policy file): user-a owns namespace
// team-a, user-b team-b. What the server does on a user's behalf — its registry, the certificates
// it hands out — never reaches beyond what that user may do through the API (issue 16).
import t from 'tap';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { startServer, tempDir, type TestServer } from './helpers/server.js';

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

t.before(async () => {
  s = await startServer({ args: ['--token-auth-file', join(dir, 'tokens.csv'), '--authorization-policy-file', join(dir, 'policy.yaml')] });
  certs = join(s.dataDir, 'certs');
  registry = `127.0.0.1:${/"registry":"[^"]*:(\d+)"/.exec(s.logs.find((l) => l.includes('"registry"'))!)![1]}`;
  for (const ns of ['team-a', 'team-b']) await s.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } });
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
  t.same(JSON.parse(cat.text).repositories, [REPO_B], "user-b's catalog: team-b's repositories only");
  const { token: ta } = await registryToken('user-a', 'token-a', ['registry:catalog:*']);
  t.same(JSON.parse((await reg('GET', '/v2/_catalog', { Authorization: `Bearer ${ta}` })).text).repositories, [REPO_A], "user-a's catalog: team-a's only");
  const all = await reg('GET', '/v2/_catalog', {}, { cert: pem('admin.crt'), key: pem('admin.key') });
  t.same(JSON.parse(all.text).repositories, [REPO_A, REPO_B], 'the server sees all');
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
