// Instance A runs standalone and is the host cluster; instance B runs aggregated against A's
// kubeconfig. The tests play the aggregator (kube-apiserver) honestly: a front-proxy client
// certificate from A's requestheader CA plus X-Remote-* headers, over real TLS.
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import t from 'tap';
import { issueClientCert } from '../certs/index.js';
import { createCA, newKeys } from '../certs/pki.js';
import { startServer, tempDir, type TestServer } from './helpers/server.js';

const GV = '/apis/delivery.ocm.software/v1alpha1';
const policy = `
- users: [bob]
  verbs: [get, list, watch, create, update, patch, delete]
  apiGroups: [delivery.ocm.software]
  resources: ['*']
  namespaces: [team-a]
- users: [bob]
  verbs: [get]
  nonResourceURLs: ['/apis', '/apis/*']
- users: [admin]
  verbs: [impersonate]
  apiGroups: ['']
  resources: [users, groups]
`;

const component = (name: string) => ({
  apiVersion: 'delivery.ocm.software/v1alpha1',
  kind: 'OCMComponent',
  metadata: { name },
  spec: { name: 'github.com/acme/app', version: '1.0.0', repository: { url: 'http://127.0.0.1:1/acme' } }, // nothing listens there
});

let A: TestServer;
let B: TestServer;
let frontProxy: { cert: string; key: string };

t.before(async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'policy.yaml'), policy);
  writeFileSync(join(dir, 'tokens.csv'), 'tok-bob,bob,uid-bob,"team,dev"\ntok-carol,carol,uid-carol,\n');
  A = await startServer({ args: ['--token-auth-file', join(dir, 'tokens.csv'), '--authorization-policy-file', join(dir, 'policy.yaml')] });
  B = await startServer({ args: ['--mode', 'aggregated', '--kubeconfig', A.kubeconfig], reconcilers: 'all' });
  const certs = join(A.dataDir, 'certs');
  frontProxy = { cert: readFileSync(join(certs, 'front-proxy-client.crt'), 'utf8'), key: readFileSync(join(certs, 'front-proxy-client.key'), 'utf8') };
  for (const ns of ['team-a', 'team-b']) await A.kubectl(['create', 'namespace', ns]);
});
t.teardown(async () => {
  await B?.stop();
  await A?.stop();
});

t.test('A publishes extension-apiserver-authentication with JSON-encoded list values', async (t) => {
  const cm = (await A.request('GET', '/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication')).json();
  t.match(cm.data['client-ca-file'], /BEGIN CERTIFICATE/);
  t.match(cm.data['requestheader-client-ca-file'], /BEGIN CERTIFICATE/);
  t.not(cm.data['client-ca-file'], cm.data['requestheader-client-ca-file'], 'a separate front-proxy CA');
  t.same(JSON.parse(cm.data['requestheader-allowed-names']), ['front-proxy-client']);
  t.same(JSON.parse(cm.data['requestheader-username-headers']), ['X-Remote-User']);
  t.same(JSON.parse(cm.data['requestheader-group-headers']), ['X-Remote-Group']);
  t.same(JSON.parse(cm.data['requestheader-extra-headers-prefix']), ['X-Remote-Extra-']);
});

t.test('front proxy: X-Remote-User is honoured on the front-proxy connection, authorized by SubjectAccessReview on A', async (t) => {
  const h = { 'X-Remote-User': 'bob', 'X-Remote-Group': 'team' };
  const created = await B.request('POST', `${GV}/namespaces/team-a/ocmcomponents`, { body: component('c1'), headers: h, cert: frontProxy });
  t.equal(created.status, 201, created.body);
  const list = await B.request('GET', `${GV}/namespaces/team-a/ocmcomponents`, { headers: h, cert: frontProxy });
  t.equal(list.status, 200);
  t.same(list.json().items.map((i: { metadata: { name: string } }) => i.metadata.name), ['c1']);
  const denied = await B.request('GET', `${GV}/namespaces/team-b/ocmcomponents`, { headers: h, cert: frontProxy });
  t.equal(denied.status, 403);
  const st = denied.json();
  t.equal(st.kind, 'Status');
  t.equal(st.reason, 'Forbidden');
  t.equal(st.message, 'ocmcomponents.delivery.ocm.software is forbidden: User "bob" cannot list resource "ocmcomponents" in API group "delivery.ocm.software" in the namespace "team-b"');
});

t.test('a malformed %-escape in an X-Remote-Extra- key is kept as it is (was a 500)', async (t) => {
  // k8s.io/apiserver pkg/authentication/request/headerrequest/requestheader.go, unescapeExtraKey:
  // "Always record extra strings, even if malformed/unencoded".
  const r = await B.request('GET', `${GV}/namespaces/team-a/ocmcomponents`, { headers: { 'X-Remote-User': 'bob', 'X-Remote-Group': 'team', 'X-Remote-Extra-%ZZ': 'v', 'X-Remote-Extra-a%2Fb': 'w' }, cert: frontProxy });
  t.equal(r.status, 200, r.body);
});

t.test('forged X-Remote-* headers on any other connection are ignored', async (t) => {
  const h = { 'X-Remote-User': 'admin', 'X-Remote-Group': 'system:masters' };
  const none = await B.request('GET', `${GV}/namespaces/team-a/ocmcomponents`, { headers: h, cert: null });
  t.equal(none.status, 401, 'no client certificate: anonymous, rejected');
  t.equal(none.json().reason, 'Unauthorized');
  // B's own admin certificate is a client certificate, not a front proxy: the headers do not change who it is.
  const caPem = readFileSync(join(B.dataDir, 'certs', 'ca.crt'), 'utf8');
  const caKey = readFileSync(join(B.dataDir, 'certs', 'ca.key'), 'utf8');
  const dave = issueClientCert({ certPem: caPem, keyPem: caKey }, { commonName: 'dave' });
  const asDave = await B.request('GET', `${GV}/namespaces/team-a/ocmcomponents`, { headers: h, cert: { cert: dave.certPem, key: dave.keyPem } });
  t.equal(asDave.status, 403, 'authenticated as dave, not as the forged admin');
  t.match(asDave.json().message, /User "dave" cannot list/);
});

t.test('a certificate from another CA is refused, and so is a front-proxy certificate with a name not allowed', async (t) => {
  const other = createCA(await newKeys(), 'other-ca', 1);
  const mallory = issueClientCert(other, { commonName: 'front-proxy-client', organizations: ['system:masters'] });
  const r = await B.request('GET', `${GV}/namespaces/team-a/ocmcomponents`, { headers: { 'X-Remote-User': 'bob' }, cert: { cert: mallory.certPem, key: mallory.keyPem } });
  t.equal(r.status, 401);
  const fpCA = {
    certPem: readFileSync(join(A.dataDir, 'certs', 'front-proxy-ca.crt'), 'utf8'),
    keyPem: readFileSync(join(A.dataDir, 'certs', 'front-proxy-ca.key'), 'utf8'),
  };
  const evil = issueClientCert(fpCA, { commonName: 'evil-proxy' });
  const r2 = await B.request('GET', `${GV}/namespaces/team-a/ocmcomponents`, { headers: { 'X-Remote-User': 'bob' }, cert: { cert: evil.certPem, key: evil.keyPem } });
  t.equal(r2.status, 401);
});

t.test('bearer tokens are checked with a TokenReview on A', async (t) => {
  const ok = await B.request('GET', `${GV}/namespaces/team-a/ocmcomponents`, { headers: { Authorization: 'Bearer tok-bob' }, cert: null });
  t.equal(ok.status, 200, ok.body);
  const bad = await B.request('GET', `${GV}/namespaces/team-a/ocmcomponents`, { headers: { Authorization: 'Bearer nope' }, cert: null });
  t.equal(bad.status, 401);
});

t.test('a user without rights gets 403 for every verb', async (t) => {
  const h = { Authorization: 'Bearer tok-carol' };
  const base = `${GV}/namespaces/team-a/ocmcomponents`;
  const cases: [string, string, unknown, string][] = [
    ['GET', base, undefined, 'list'],
    ['GET', `${base}?watch=true`, undefined, 'watch'],
    ['GET', `${base}/c1`, undefined, 'get'],
    ['POST', base, component('c2'), 'create'],
    ['PUT', `${base}/c1`, component('c1'), 'update'],
    ['PATCH', `${base}/c1`, '{}', 'patch'],
    ['DELETE', `${base}/c1`, undefined, 'delete'],
    ['DELETE', base, undefined, 'deletecollection'],
  ];
  for (const [method, path, body, verb] of cases) {
    const r = await B.request(method, path, { body, headers: { ...h, ...(method === 'PATCH' ? { 'Content-Type': 'application/merge-patch+json' } : {}) }, cert: null });
    t.equal(r.status, 403, `${verb}: ${r.body}`);
    t.match(r.json().message, new RegExp(`User "carol" cannot ${verb} resource "ocmcomponents"`), verb);
  }
  const still = await A.request('GET', '/healthz', { cert: null });
  t.equal(still.status, 200);
  const c1 = await B.request('GET', `${base}/c1`);
  t.equal(c1.status, 200, 'nothing was changed by the denied requests');
});

t.test('kubectl --as impersonates after an impersonate check', async (t) => {
  const ok = await A.kubectl(['--as', 'bob', 'get', 'ocmcomponents', '-n', 'team-a']);
  t.equal(ok.code, 0, ok.stderr);
  const denied = await A.kubectl(['--as', 'bob', 'get', 'ocmcomponents', '-n', 'team-b']);
  t.not(denied.code, 0);
  t.match(denied.stderr, /User "bob" cannot list resource "ocmcomponents"/);
  const viaB = await B.kubectl(['--as', 'bob', 'get', 'ocmcomponents', '-n', 'team-a', '-o', 'name']);
  t.equal(viaB.code, 0, viaB.stderr);
  t.match(viaB.stdout, /ocmcomponent.delivery.ocm.software\/c1/);
  const r = await A.request('GET', `${GV}/namespaces/team-a/ocmcomponents`, { headers: { 'Impersonate-User': 'carol' }, cert: null });
  t.equal(r.status, 401, 'impersonation needs an authenticated user');
  const tok = await A.request('GET', `${GV}/namespaces/team-a/ocmcomponents`, { headers: { Authorization: 'Bearer tok-bob', 'Impersonate-User': 'admin' }, cert: null });
  t.equal(tok.status, 403);
  t.match(tok.json().message, /User "bob" cannot impersonate resource "users"/);
});

t.test('kubectl auth can-i and whoami answer from the server', async (t) => {
  const yes = await A.kubectl(['auth', 'can-i', 'create', 'ocmcomponents.delivery.ocm.software', '-n', 'team-a', '--as', 'bob']);
  t.equal(yes.stdout.trim(), 'yes');
  const no = await A.kubectl(['auth', 'can-i', 'create', 'ocmcomponents.delivery.ocm.software', '-n', 'team-b', '--as', 'bob']);
  t.equal(no.stdout.trim(), 'no');
  const who = await A.kubectl(['auth', 'whoami', '-o', 'json']);
  t.equal(who.code, 0, who.stderr);
  const u = JSON.parse(who.stdout).status.userInfo;
  t.equal(u.username, 'admin');
  t.ok(u.groups.includes('system:masters'));
});

t.test('B reads Secrets from, and writes Events to, the host cluster A', async (t) => {
  t.equal((await A.kubectl(['create', 'secret', 'generic', 'creds', '-n', 'team-a', '--from-literal=username=u', '--from-literal=password=p'])).code, 0);
  const withSecret = (name: string, secret: string) => ({ ...component(name), spec: { ...component(name).spec, repository: { url: 'http://127.0.0.1:1/acme', secretRef: { name: secret } } } });
  for (const [name, secret] of [['uses-secret', 'creds'], ['missing-secret', 'nope']])
    t.equal((await B.request('POST', `${GV}/namespaces/team-a/ocmcomponents`, { body: withSecret(name, secret) })).status, 201);
  const reasonOf = async (name: string) => {
    const o = (await B.request('GET', `${GV}/namespaces/team-a/ocmcomponents/${name}`)).json();
    const ready = o.status?.conditions?.find((c: { type: string }) => c.type === 'Ready') as { status: string; reason: string; message: string } | undefined;
    return ready?.status === 'Unknown' ? undefined : ready; // Unknown (Progressing): the first attempt still runs
  };
  let missing, found;
  for (let i = 0; i < 100 && !(missing && found); i++) {
    missing = await reasonOf('missing-secret');
    found = await reasonOf('uses-secret');
    if (!(missing && found)) await new Promise((r) => setTimeout(r, 200));
  }
  t.equal(missing?.reason, 'SecretNotFound', 'a Secret missing in A is reported');
  t.match(missing?.message, 'team-a/nope');
  t.equal(found?.reason, 'FetchFailed', 'the Secret was read from A; the repository itself is unreachable');
  const ev = await A.kubectl(['get', 'events', '-n', 'team-a', '--field-selector', 'involvedObject.name=uses-secret', '-o', 'json']);
  const reasons = JSON.parse(ev.stdout).items.map((e: { reason: string }) => e.reason);
  t.ok(reasons.includes('FetchFailed'), `B recorded the transition as an Event in A (${reasons.join(', ')})`);
});

t.test("B's registry asks A: a token grants pull where A's SubjectAccessReview allows get on snapshots, and nothing else", async (t) => {
  const port = Number(/"registry":"[^"]*:(\d+)"/.exec(B.logs.find((l) => l.includes('"registry"'))!)![1]);
  const ca = readFileSync(join(B.dataDir, 'certs', 'ca.crt'), 'utf8');
  const token = (user: string, pass: string, scopes: string[]) =>
    new Promise<{ status: number; access?: { name: string; actions: string[] }[] }>((resolve, reject) => {
      const qs = scopes.map((s) => `scope=${encodeURIComponent(s)}`).join('&');
      const auth = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
      https
        .get({ host: '127.0.0.1', port, path: `/token?service=ocm-apiserver-registry&${qs}`, ca, servername: 'localhost', headers: { Authorization: auth }, agent: false }, (res) => {
          let body = '';
          res.on('data', (c) => (body += c));
          res.on('end', () => {
            if (res.statusCode !== 200) return resolve({ status: res.statusCode! });
            const tok = JSON.parse(body).token as string;
            resolve({ status: 200, access: JSON.parse(Buffer.from(tok.split('.')[0], 'base64url').toString('utf8')).access });
          });
        })
        .on('error', reject);
    });
  const bob = await token('bob', 'tok-bob', ['repository:team-a/c/s-p:pull,push,delete', 'repository:team-b/c/s-p:pull']);
  t.equal(bob.status, 200, 'bob authenticated by a TokenReview on A');
  t.same(bob.access, [{ type: 'repository', name: 'team-a/c/s-p', actions: ['pull'] }], 'team-a: pull (A allows get), never push or delete; team-b: nothing');
  const carol = await token('carol', 'tok-carol', ['repository:team-a/c/s-p:pull']);
  t.same(carol.access, [], 'carol may get nothing on A: nothing granted');
  t.equal((await token('bob', 'wrong', ['repository:team-a/c/s-p:pull'])).status, 401, 'a token A does not know');
});
