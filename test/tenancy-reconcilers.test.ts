// Tenants stay apart in what the server does on their behalf (issue 16, items 3-6): two tenants,
// user-a owning team-a and user-b owning team-b (static token file + policy file, standalone),
// and every way user-b could make the reconcilers reach team-a, driven with real kubectl as
// user-b: each is refused with a condition naming why, and nothing of team-a reaches team-b.
// The model is Flux's multi-tenancy lockdown (fluxcd/flux2 rfcs/0002-source-acl/README.md:
// `--no-cross-namespace-refs`), with the flag inverted as flux-iac/tofu-controller has it
// (docs/how_to/use-cross-namespace-refs.md: refused unless `--allow-cross-namespace-refs`; "References
// using a different namespace will cause the controller to stop processing ... non-Ready state").
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { archiveToFiles } from '../providers/content.js';
import { pullSnapshot } from '../registry/snapshot.js';
import { startDistribution } from './helpers/distribution.js';
import { yamlDocs, KUBECTL, startServer, tempDir, type TestServer } from './helpers/server.js';
import { crossNamespaceRefs } from '../reconcilers/tenancy.js';

const GV = 'delivery.ocm.software/v1alpha1';
const SECRET_TEXT = 'TEAM-A-PRIVATE-7f3c'; // in team-a's component only; must never show up in team-b
const CLOUD_CREDS = 'FAKE-CLOUD-CREDS-9d1e'; // what an "internal endpoint" answers; must never show up in team-b
const A_TEXT = `secret: ${SECRET_TEXT}\n`;
type Obj = Record<string, any>;
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const dir = tempDir('tenancy-reconcilers-');
writeFileSync(join(dir, 'tokens.csv'), 'token-a,user-a,1001,"tenants"\ntoken-b,user-b,1002,"tenants"\n');
writeFileSync(
  join(dir, 'policy.yaml'),
  YAML.stringify([
    { users: ['user-a'], verbs: ['*'], apiGroups: ['*'], resources: ['*'], namespaces: ['team-a'] },
    { users: ['user-b'], verbs: ['*'], apiGroups: ['*'], resources: ['*'], namespaces: ['team-b'] },
  ]),
);
const userArgs = ['--token-auth-file', join(dir, 'tokens.csv'), '--authorization-policy-file', join(dir, 'policy.yaml')];

interface Env {
  s: TestServer;
  apiPort: number;
  registryPort: number;
  registry: string;
  admin: OciClient;
  as(user: 'a' | 'b', args: string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }>;
}

async function env(extraArgs: string[] = []): Promise<Env> {
  const s = await startServer({ reconcilers: 'all', args: [...userArgs, ...extraArgs] });
  const registry = s.logs.map((l) => /"registry":"([^"]+)"/.exec(l)?.[1]).find(Boolean)!;
  const certs = join(s.dataDir, 'certs');
  const admin = new OciClient({ ca: readFileSync(join(certs, 'ca.crt'), 'utf8'), cert: readFileSync(join(certs, 'admin.crt'), 'utf8'), key: readFileSync(join(certs, 'admin.key'), 'utf8') });
  for (const u of ['a', 'b']) {
    const kc = {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'ocm', cluster: { server: s.url, 'certificate-authority': join(certs, 'ca.crt') } }],
      users: [{ name: `user-${u}`, user: { token: `token-${u}` } }],
      contexts: [{ name: `user-${u}`, context: { cluster: 'ocm', user: `user-${u}`, namespace: `team-${u}` } }],
      'current-context': `user-${u}`,
    };
    writeFileSync(join(s.dataDir, `user-${u}.kubeconfig`), YAML.stringify(kc));
  }
  const as: Env['as'] = (user, args, input) =>
    new Promise((res) => {
      const kc = join(s.dataDir, `user-${user}.kubeconfig`);
      const child = execFile(KUBECTL, ['--kubeconfig', kc, '--cache-dir', join(s.dataDir, `cache-${user}`), ...args], { timeout: 60_000, env: { ...process.env, KUBECONFIG: kc, HOME: s.dataDir } }, (err, stdout, stderr) =>
        res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
      child.stdin!.end(input ?? '');
    });
  for (const ns of ['team-a', 'team-b']) await s.kubectl(['create', 'namespace', ns]);
  return { s, registry, admin, as, apiPort: s.port, registryPort: Number(registry.split(':').pop()) };
}

/** An "internal endpoint" (it answers fake cloud credentials to anything) and a registry user-b controls that redirects there. */
async function redirector() {
  const internalSeen: http.IncomingHttpHeaders[] = [];
  const internal = http.createServer((req, res) => {
    internalSeen.push(req.headers);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ tags: ['1.0.0'], AccessKeyId: CLOUD_CREDS, errors: [{ code: 'DENIED', message: CLOUD_CREDS }] }));
  });
  await new Promise<void>((r) => internal.listen(0, '127.0.0.1', r));
  const target = { api: '' };
  const seen: string[] = [];
  const reg = http.createServer((req, res) => {
    seen.push(req.url!);
    if (!req.headers.authorization) return res.writeHead(401, { 'www-authenticate': 'Basic realm="b"' }).end();
    const to = req.url!.startsWith('/v2/internal/')
      ? `http://127.0.0.1:${(internal.address() as AddressInfo).port}/latest/meta-data/iam/security-credentials/`
      : req.url!.startsWith('/v2/api/')
        ? `${target.api}/api/v1/namespaces/team-a/secrets`
        : 'http://169.254.169.254/latest/meta-data/';
    res.writeHead(302, { location: to }).end();
  });
  await new Promise<void>((r) => reg.listen(0, '127.0.0.1', r));
  return {
    host: `127.0.0.1:${(reg.address() as AddressInfo).port}`,
    internalSeen,
    seen,
    target,
    close: () => Promise.all([new Promise((r) => internal.close(r)), new Promise((r) => reg.close(r))]),
  };
}

const yaml = yamlDocs;

async function getAs(e: Env, user: 'a' | 'b', kind: string, name: string): Promise<Obj> {
  const r = await e.as(user, ['get', kind, name, '-o', 'json']);
  if (r.code !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

/** Waits until the object's Ready condition has `reason`; returns the condition. */
async function reason(e: Env, user: 'a' | 'b', kind: string, name: string, want: string): Promise<Obj> {
  let last: Obj | undefined;
  for (let i = 0; i < 300; i++) {
    const o = await getAs(e, user, kind, name);
    last = o.status?.conditions?.find((c: Obj) => c.type === 'Ready');
    if (last?.reason === want) return last!;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${kind}/${name}: expected reason ${want}, have ${JSON.stringify(last)}`);
}

/** Waits until the object is Ready=False (any reason but a transient one); returns the condition. */
async function refused(e: Env, user: 'a' | 'b', kind: string, name: string): Promise<Obj> {
  let last: Obj | undefined;
  for (let i = 0; i < 300; i++) {
    last = (await getAs(e, user, kind, name)).status?.conditions?.find((x: Obj) => x.type === 'Ready');
    if (last?.status === 'False' && last.reason !== 'Progressing') return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${kind}/${name}: no Ready=False, have ${JSON.stringify(last)}`);
}

async function applyAs(t: Test, e: Env, user: 'a' | 'b', ...objs: Obj[]) {
  const r = await e.as(user, ['apply', '-f', '-'], yaml(...objs));
  t.equal(r.code, 0, `user-${user} applies ${objs.map((o) => `${o.kind}/${o.metadata.name}`).join(', ')}: ${r.stderr}`);
}

/** Two components: team-a's private one and team-b's own, each in its namespace's repository of the embedded registry. */
async function publishComponents(e: Env) {
  for (const [team, text] of [['team-a', A_TEXT], ['team-b', 'b: 1\n']]) {
    await publish(
      new OcmRepository(e.admin, `${e.registry}/${team}/ocm`),
      { name: `acme.org/${team}`, version: '1.0.0', provider: 'acme', resources: [{ name: 'cfg', type: 'blob', input: { type: 'utf8', text, mediaType: 'application/yaml' } }] },
      tempDir(),
    );
  }
}

const comp = (ns: string, name: string, url: string, extra: Obj = {}) => ({ apiVersion: GV, kind: 'OCMComponent', metadata: { name, namespace: ns }, spec: { name: `acme.org/${ns}`, version: '1.0.0', repository: { url, ...extra } } });
const res = (ns: string) => ({ apiVersion: GV, kind: 'OCMResource', metadata: { name: 'cfg', namespace: ns }, spec: { resource: 'cfg' } });
const src = (ns: string, name: string, componentRef: Obj, providerRef: Obj = { apiVersion: GV, kind: 'OCMResource', name: 'cfg' }, extra: Obj = {}) => ({
  apiVersion: GV,
  kind: 'Source',
  metadata: { name, namespace: ns },
  spec: { componentRef, providerRef, ...extra },
});
const action = (ns: string, name: string, componentRef: Obj, input: Obj, providerRef: Obj) => ({ apiVersion: GV, kind: 'Action', metadata: { name, namespace: ns }, spec: { componentRef, snapshotSourceRef: input, providerRef } });

/** Nothing of team-a in team-b: no object there names it or holds its content, and no snapshot there has its bytes. */
async function nothingOfTeamA(t: Test, e: Env, teamA: { digests: string[] }) {
  const all = await e.s.kubectl(['get', 'ocm', '-n', 'team-b', '-o', 'json']);
  t.equal(all.code, 0, all.stderr);
  t.notMatch(all.stdout, SECRET_TEXT, 'no object in team-b holds team-a\'s content');
  const snaps = JSON.parse((await e.s.kubectl(['get', 'snapshots', '-n', 'team-b', '-o', 'json'])).stdout).items as Obj[];
  for (const sn of snaps) {
    t.notOk(teamA.digests.includes(sn.status?.digest), `Snapshot team-b/${sn.metadata.name} is not one of team-a's`);
    t.notMatch(sn.spec?.identity?.componentName ?? '', 'team-a', `Snapshot team-b/${sn.metadata.name} is not of team-a's component`);
    if (!sn.status?.repositoryURL) continue;
    t.match(sn.status.repositoryURL, `${e.registry}/team-b/`, 'in team-b\'s repositories');
    const files = await archiveToFiles(await pullSnapshot(e.admin, `${sn.status.repositoryURL}@${sn.status.digest}`));
    t.notMatch(JSON.stringify(files), SECRET_TEXT, `Snapshot team-b/${sn.metadata.name} does not hold team-a's content`);
  }
  const events = await e.s.kubectl(['get', 'events', '-n', 'team-b', '-o', 'json']);
  t.notMatch(events.stdout, SECRET_TEXT, 'no Event in team-b holds it');
}

t.test('crossNamespaceRefs names every spec field that leaves the namespace', async (t) => {
  const o = (spec: Obj) => ({ apiVersion: GV, kind: 'Action', metadata: { name: 'x', namespace: 'team-b' }, spec });
  t.same(crossNamespaceRefs(o({ componentRef: { name: 'c' } })), [], 'no namespace: its own');
  t.same(crossNamespaceRefs(o({ componentRef: { name: 'c', namespace: 'team-b' } })), [], 'its own, spelt out');
  t.same(crossNamespaceRefs(o({ componentRef: { name: 'c', namespace: '' } })), [], 'empty: its own');
  t.same(
    crossNamespaceRefs(o({ componentRef: { name: 'c', namespace: 'team-a' }, template: { sourceRef: { kind: 'OCIRepository', name: 'r', namespace: 'team-a' }, chartRef: { name: 'c', namespace: 'x' }, dependsOn: [{ name: 'ok' }, { name: 'd', namespace: 'team-a' }] } })),
    ['spec.componentRef → team-a', 'spec.template.sourceRef → team-a', 'spec.template.chartRef → x', 'spec.template.dependsOn[1] → team-a'],
  );
});

t.test('default server: every way into team-a is refused', async (t) => {
  const e = await env();
  t.teardown(() => e.s.stop());
  await publishComponents(e);

  // team-a's own pipeline works (its component in its own repository of the embedded registry).
  await applyAs(t, e, 'a', comp('team-a', 'private', `${e.registry}/team-a/ocm`), res('team-a'), src('team-a', 'private', { name: 'private' }));
  await reason(e, 'a', 'source', 'private', 'Succeeded');
  const aSource = await getAs(e, 'a', 'source', 'private');
  const aSnap = await getAs(e, 'a', 'snapshot', aSource.status.snapshot);
  const teamA = { digests: [aSnap.status.digest] };
  // team-b's own pipeline works too.
  await applyAs(t, e, 'b', comp('team-b', 'own', `${e.registry}/team-b/ocm`), res('team-b'), src('team-b', 'own', { name: 'own' }));
  await reason(e, 'b', 'source', 'own', 'Succeeded');

  t.test('user-b cannot read team-a directly', async (t) => {
    const r = await e.as('b', ['get', 'snapshots', '-n', 'team-a']);
    t.not(r.code, 0);
    t.match(r.stderr, /forbidden/);
  });

  t.test('item 5: Snapshots and their status are the server\'s to write', async (t) => {
    const forged = { apiVersion: GV, kind: 'Snapshot', metadata: { name: 'forged', namespace: 'team-b' }, spec: { identity: { componentName: 'acme.org/team-a', componentVersion: '1.0.0' }, producerRef: { kind: 'Source', name: 'own' } } };
    // --validate=false: kubectl's own check (it lists CRDs for a kind whose OpenAPI has no POST) would refuse first; the server must.
    for (const args of [['create', '--validate=false', '-f', '-'], ['apply', '--validate=false', '-f', '-'], ['apply', '--server-side', '--validate=false', '-f', '-']]) {
      const r = await e.as('b', args, yaml(forged));
      t.not(r.code, 0, `kubectl ${args.join(' ')} of a Snapshot is refused`);
      t.match(r.stderr, /MethodNotAllowed|does not allow this method/, r.stderr.trim());
    }
    const own = (await getAs(e, 'b', 'source', 'own')).status.snapshot;
    const patch = await e.as('b', ['patch', 'snapshot', own, '--subresource', 'status', '--type', 'merge', '-p', JSON.stringify({ status: { repositoryURL: aSnap.status.repositoryURL, digest: aSnap.status.digest } })]);
    t.not(patch.code, 0, 'patching a Snapshot\'s status is refused');
    t.match(patch.stderr, /MethodNotAllowed|does not allow this method/);
    const edit = await e.as('b', ['label', 'snapshot', own, 'x=y']);
    t.not(edit.code, 0, 'so is any update of one');
    const del = await e.as('b', ['get', 'snapshot', own, '-o', 'name']);
    t.equal(del.code, 0, 'user-b reads its own Snapshots');

    // A suspended Source whose status user-b writes, naming team-a's Snapshot: looked up in team-b only.
    await applyAs(t, e, 'b', src('team-b', 'suspended', { name: 'own' }, undefined, { suspend: true }));
    const st = await e.as('b', ['patch', 'source', 'suspended', '--subresource', 'status', '--type', 'merge', '-p', JSON.stringify({ status: { ready: true, snapshot: aSnap.metadata.name, digest: aSnap.status.digest } })]);
    t.equal(st.code, 0, st.stderr);
    await applyAs(t, e, 'b', { apiVersion: GV, kind: 'Localization', metadata: { name: 'loc', namespace: 'team-b' }, spec: { rules: [] } }, action('team-b', 'via-suspended', { name: 'own' }, { kind: 'Source', name: 'suspended' }, { apiVersion: GV, kind: 'Localization', name: 'loc' }));
    const c = await reason(e, 'b', 'action', 'via-suspended', 'InputNotReady');
    t.match(c.message, `Snapshot team-b/${aSnap.metadata.name}`, 'the Snapshot is looked for in team-b');

    // An external provider whose status user-b writes, naming team-a's snapshot in the registry.
    const ext = { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'OCIRepository', metadata: { name: 'ext', namespace: 'team-b' }, spec: { url: 'oci://example' } };
    await applyAs(t, e, 'b', ext, src('team-b', 'ext', { name: 'own' }, { apiVersion: 'source.toolkit.fluxcd.io/v1', kind: 'OCIRepository', name: 'ext' }));
    const p = await e.as('b', ['patch', 'ocirepository', 'ext', '--subresource', 'status', '--type', 'merge', '-p', JSON.stringify({ status: { ready: true, snapshot: `${aSnap.status.repositoryURL}:${aSnap.status.tag}`, digest: aSnap.status.digest } })]);
    t.equal(p.code, 0, p.stderr);
    const x = await reason(e, 'b', 'source', 'ext', 'ForeignSnapshot');
    t.match(x.message, 'is not a repository of namespace team-b');
  });

  t.test('item 3: cross-namespace references are refused by default', async (t) => {
    await applyAs(t, e, 'b', src('team-b', 'steal', { name: 'private', namespace: 'team-a' }));
    const c = await reason(e, 'b', 'source', 'steal', 'CrossNamespaceRefNotAllowed');
    t.match(c.message, 'spec.componentRef → team-a');
    t.match(c.message, '--allow-cross-namespace-refs');
    t.equal((await getAs(e, 'b', 'source', 'steal')).status.ready, false);

    await applyAs(t, e, 'b', action('team-b', 'steal', { name: 'private', namespace: 'team-a' }, { kind: 'Source', name: 'own' }, { apiVersion: GV, kind: 'Localization', name: 'loc' }));
    t.match((await reason(e, 'b', 'action', 'steal', 'CrossNamespaceRefNotAllowed')).message, 'spec.componentRef → team-a');

    // A Flux template naming an object of team-a (Flux's own cross-namespace dependsOn).
    await applyAs(
      t,
      e,
      'b',
      { apiVersion: GV, kind: 'KustomizationTemplate', metadata: { name: 'deploy', namespace: 'team-b' }, spec: { template: { path: './', dependsOn: [{ name: 'infra', namespace: 'team-a' }] } } },
      action('team-b', 'deploy', { name: 'own' }, { kind: 'Source', name: 'own' }, { apiVersion: GV, kind: 'KustomizationTemplate', name: 'deploy' }),
    );
    t.match((await reason(e, 'b', 'action', 'deploy', 'CrossNamespaceRefNotAllowed')).message, 'spec.template.dependsOn[0] → team-a');
    const flux = await e.s.kubectl(['get', 'kustomizations', '-n', 'team-b', '-o', 'name']);
    t.equal(flux.stdout.trim(), '', 'no Flux object written for it');
  });

  t.test('item 4: the server\'s identity reads only team-b\'s repositories of its own registry for team-b', async (t) => {
    const cases: [string, string, RegExp][] = [
      ['own-a', `${e.registry}/team-a/ocm`, /ForeignRepository/],
      ['own-root', `${e.registry}/ocm`, /ForeignRepository/],
      ['own-alias', `localhost:${e.registryPort}/team-a/ocm`, /ForeignRepository/],
      ['own-other-ip', `127.0.0.2:${e.registryPort}/team-a/ocm`, /this server itself/],
      ['api', `127.0.0.1:${e.apiPort}/team-a`, /this server itself/],
    ];
    await applyAs(t, e, 'b', ...cases.map(([name, url]) => comp('team-b', name, url)));
    for (const [name, url, want] of cases) {
      const o = await refused(e, 'b', 'ocmcomponent', name);
      t.match(`${o.reason}: ${o.message}`, want, `${url}: ${o.reason}: ${o.message}`);
    }
    // A resource access (ociBlob) naming team-a's blob in this registry, in team-b's own component: never read as the server.
    await publish(
      new OcmRepository(e.admin, `${e.registry}/team-b/ocm`),
      {
        name: 'acme.org/team-b-access',
        version: '1.0.0',
        provider: 'acme',
        resources: [{ name: 'cfg', type: 'blob', relation: 'external', access: { type: 'ociBlob', ref: `${e.registry}/team-a/ocm/component-descriptors/acme.org/team-a`, digest: `sha256:${createHash('sha256').update(A_TEXT).digest('hex')}`, mediaType: 'application/yaml', size: A_TEXT.length } }],
      },
      tempDir(),
    );
    await applyAs(t, e, 'b', { ...comp('team-b', 'access', `${e.registry}/team-b/ocm`), spec: { ...comp('team-b', 'access', '').spec, name: 'acme.org/team-b-access', repository: { url: `${e.registry}/team-b/ocm` } } }, src('team-b', 'access', { name: 'access' }));
    // The OCMComponent checks its resources itself (or the Source, fetching it): refused either way.
    const c = await refused(e, 'b', 'source', 'access');
    t.match(c.message, /this server itself/, `${c.reason}: ${c.message}`);
    t.equal((await getAs(e, 'b', 'source', 'access')).status.ready, false);
  });

  t.test('item 6: user-supplied upstreams on loopback are refused (no --allow-private-upstreams)', async (t) => {
    const r = await redirector();
    t.teardown(r.close);
    await applyAs(t, e, 'b', comp('team-b', 'ssrf', `http://${r.host}/internal/ocm`));
    const c = await reason(e, 'b', 'ocmcomponent', 'ssrf', 'FetchFailed');
    t.match(c.message, /is a loopback or private address/);
    t.same(r.seen, [], 'the redirector was never contacted');
    t.equal(r.internalSeen.length, 0, 'nor the internal endpoint');
  });

  t.test('nothing of team-a reached team-b', async (t) => nothingOfTeamA(t, e, teamA));
});

t.test('with --allow-cross-namespace-refs and --allow-private-upstreams: still nothing of team-a for team-b', async (t) => {
  const e = await env(['--allow-cross-namespace-refs', '--allow-private-upstreams']);
  t.teardown(() => e.s.stop());
  await publishComponents(e);
  const dist = await startDistribution({ htpasswd: { 'user-a': 'pass-a' } });
  t.teardown(() => dist.stop());
  await publish(
    new OcmRepository(new OciClient({ insecureHttp: true, credentials: () => ({ username: 'user-a', password: 'pass-a' }) }), `http://${dist.host}/ocm`),
    { name: 'acme.org/team-a', version: '1.0.0', provider: 'acme', resources: [{ name: 'cfg', type: 'blob', input: { type: 'utf8', text: A_TEXT, mediaType: 'application/yaml' } }] },
    tempDir(),
  );
  const r = await redirector();
  t.teardown(r.close);
  r.target.api = `https://127.0.0.1:${e.apiPort}`;

  // team-a: a component in its repository of the embedded registry, and one behind its pull Secret.
  await applyAs(
    t,
    e,
    'a',
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pull', namespace: 'team-a' }, stringData: { username: 'user-a', password: 'pass-a' } },
    comp('team-a', 'private', `${e.registry}/team-a/ocm`),
    comp('team-a', 'behind-secret', `http://${dist.host}/ocm`, { secretRef: { name: 'pull' } }),
    res('team-a'),
    src('team-a', 'private', { name: 'private' }),
    src('team-a', 'behind-secret', { name: 'behind-secret' }),
  );
  await reason(e, 'a', 'source', 'private', 'Succeeded');
  await reason(e, 'a', 'source', 'behind-secret', 'Succeeded');
  const digests = await Promise.all(['private', 'behind-secret'].map(async (n) => (await getAs(e, 'a', 'snapshot', (await getAs(e, 'a', 'source', n)).status.snapshot)).status.digest));
  await applyAs(t, e, 'b', res('team-b'));

  t.test('item 3: a reference is allowed, but read as team-b: not with the server\'s identity, not with team-a\'s Secret', async (t) => {
    await applyAs(t, e, 'b', src('team-b', 'via-registry', { name: 'private', namespace: 'team-a' }), src('team-b', 'via-secret', { name: 'behind-secret', namespace: 'team-a' }));
    t.match((await reason(e, 'b', 'source', 'via-registry', 'ForeignRepository')).message, 'outside namespace team-b');
    t.match((await reason(e, 'b', 'source', 'via-secret', 'SecretNotFound')).message, 'Secret team-b/pull not found', 'the Secret is looked up in team-b');
  });

  t.test('item 6: a redirect is followed without credentials, never to this server or link-local; no body in status', async (t) => {
    await applyAs(
      t,
      e,
      'b',
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'creds', namespace: 'team-b' }, stringData: { username: 'user-b', password: 'pass-b' } },
      comp('team-b', 'to-internal', `http://${r.host}/internal/ocm`, { secretRef: { name: 'creds' } }),
      comp('team-b', 'to-api', `http://${r.host}/api/ocm`, { secretRef: { name: 'creds' } }),
      comp('team-b', 'to-metadata', `http://${r.host}/metadata/ocm`, { secretRef: { name: 'creds' } }),
    );
    const internal = await refused(e, 'b', 'ocmcomponent', 'to-internal');
    t.notMatch(internal.message, CLOUD_CREDS, `the internal answer is not in status: ${internal.message}`);
    t.ok(r.internalSeen.length > 0, 'the internal endpoint was reached (private ranges are allowed on this server)');
    t.notOk(r.internalSeen.some((h) => h.authorization), 'without user-b\'s credentials');
    t.match((await refused(e, 'b', 'ocmcomponent', 'to-api')).message, /this server itself/);
    t.match((await refused(e, 'b', 'ocmcomponent', 'to-metadata')).message, /169\.254\.169\.254 is a link-local/);
  });

  t.test('nothing of team-a reached team-b', async (t) => nothingOfTeamA(t, e, { digests }));
});
