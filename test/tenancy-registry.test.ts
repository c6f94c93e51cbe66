// Two tenants on one standalone server (static token file + policy file): user-a owns namespace
// team-a, user-b team-b. What the server does on a user's behalf — its registry, the certificates
// it hands out — never reaches beyond what that user may do through the API (issue 16).
import t from 'tap';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
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
const pem = (f: string) => readFileSync(join(certs, f), 'utf8');

t.before(async () => {
  s = await startServer({ args: ['--token-auth-file', join(dir, 'tokens.csv'), '--authorization-policy-file', join(dir, 'policy.yaml')] });
  certs = join(s.dataDir, 'certs');
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
