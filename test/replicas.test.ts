// Two replicas on one etcd: both serve the API (writes through one are seen by watches on the
// other); the reconcilers run in exactly one of them, chosen by an etcd election; killing the
// leader moves reconciling to the other within seconds, and pending objects still reach Ready.
// Snapshots live in one external registry (--snapshot-registry) both replicas share.
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { ensureCerts } from '../certs/index.js';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { type Distribution, startDistribution } from './helpers/distribution.js';
import { startEtcd, type TestEtcd } from './helpers/etcd.js';
import { startServer, type TestServer } from './helpers/server.js';

let etcd: TestEtcd;
let reg: Distribution;
const servers: TestServer[] = [];
const work = mkdtempSync(join(tmpdir(), 'replicas-'));
const certDir = join(work, 'certs');

const start = (name: string) =>
  startServer({
    dataDir: join(work, name),
    certDir,
    reconcilers: 'all',
    args: ['--allow-private-upstreams', '--storage', 'etcd', '--etcd-endpoints', etcd.endpoints.join(','), '--snapshot-registry', `http://${reg.host}`],
  });

const leaderOf = (s: TestServer) => s.logs.some((l) => l.includes('became the leader'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, ms = 30_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const keys = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });

t.before(async () => {
  etcd = await startEtcd();
  reg = await startDistribution();
  await ensureCerts(certDir);
  mkdirSync(join(work, 'a'));
  mkdirSync(join(work, 'b'));
  mkdirSync(join(work, 'files'));
  writeFileSync(join(work, 'files', 'app.yaml'), 'kind: ConfigMap\n');
  // The snapshot registry holds the component too: the server reads it there only under <namespace>/ (issue 16).
  for (const ns of ['before', 'after']) {
    const repo = new OcmRepository(new OciClient({ insecureHttp: true }), `http://${reg.host}/${ns}/ocm`);
    await publish(repo, { name: 'ocm.software/demo/app', version: '1.0.0', provider: 'acme', resources: [{ name: 'app', type: 'blob', input: { type: 'file', path: 'files/app.yaml', mediaType: 'application/yaml' } }] }, work, {
      sign: { name: 'acme', privateKeyPem: keys.privateKey },
    });
  }
  servers.push(await start('a'));
  servers.push(await start('b'));
});
t.teardown(async () => {
  for (const s of servers) await s.stop().catch(() => undefined);
  await reg?.stop();
  await etcd?.stop();
});

t.test('writes through one replica are seen by watches on the other', async (t) => {
  const [a, b] = servers;
  t.equal((await a.kubectl(['create', 'namespace', 'team'])).code, 0);
  const watched = b.kubectl(['get', 'ocmcomponents', '-n', 'team', '-w', '--output-watch-events', '--request-timeout=15s'], { timeoutMs: 20_000 }).then((r) => r.stdout);
  await sleep(1500);
  const obj = { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: { name: 'x', namespace: 'team' }, spec: { name: 'ocm.software/demo/app', version: '9.9.9', repository: { url: 'http://127.0.0.1:1/none' }, suspend: true } };
  t.equal((await a.kubectl(['apply', '-f', '-'], { input: JSON.stringify(obj) })).code, 0);
  await a.kubectl(['delete', 'ocmcomponent', 'x', '-n', 'team']);
  const out = await watched;
  t.match(out, /ADDED\s+x\s/);
  t.match(out, /DELETED\s+x\s/);
  const got = (await b.request('GET', '/api/v1/namespaces/team')).json();
  t.equal(got.metadata.name, 'team', 'the namespace created through a is read through b');
});

t.test('exactly one replica leads; killing it moves reconciling to the other, and pending work finishes', async (t) => {
  const [a, b] = servers;
  await until('a leader', () => leaderOf(a) || leaderOf(b));
  await sleep(1000);
  t.equal([a, b].filter(leaderOf).length, 1, 'exactly one replica became the leader');
  const leader = leaderOf(a) ? a : b;
  const follower = leader === a ? b : a;

  const pipeline = (ns: string) =>
    [
      { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } },
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'key', namespace: ns }, stringData: { acme: keys.publicKey } },
      {
        apiVersion: 'delivery.ocm.software/v1alpha1',
        kind: 'OCMComponent',
        metadata: { name: 'app', namespace: ns },
        spec: { name: 'ocm.software/demo/app', version: '1.0.0', repository: { url: `http://${reg.host}/${ns}/ocm` }, verify: [{ signature: 'acme', secretRef: { name: 'key' } }] },
      },
      { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMResource', metadata: { name: 'app', namespace: ns }, spec: { resource: 'app' } },
      {
        apiVersion: 'delivery.ocm.software/v1alpha1',
        kind: 'Source',
        metadata: { name: 'app', namespace: ns },
        spec: { componentRef: { name: 'app' }, providerRef: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMResource', name: 'app' } },
      },
    ]
      .map((o) => YAML.stringify(o))
      .join('---\n');

  const first = await follower.kubectl(['apply', '-f', '-'], { input: pipeline('before') });
  t.equal(first.code, 0, first.stderr);
  const ok = await follower.kubectl(['wait', '--for=condition=Ready', 'source/app', '-n', 'before', '--timeout=60s']);
  t.equal(ok.code, 0, `the leader reconciles what was written through the follower: ${ok.stderr}`);

  await leader.kill9();
  const killedAt = Date.now();
  const pending = await follower.kubectl(['apply', '-f', '-'], { input: pipeline('after') });
  t.equal(pending.code, 0, pending.stderr);
  await until('the follower to take over', () => leaderOf(follower), 30_000);
  t.ok(Date.now() - killedAt < 20_000, `failover took ${Date.now() - killedAt} ms`);
  const done = await follower.kubectl(['wait', '--for=condition=Ready', 'source/app', '-n', 'after', '--timeout=60s']);
  t.equal(done.code, 0, `pending work reaches Ready after failover: ${done.stderr}`);
  for (const ns of ['before', 'after']) {
    const snaps = JSON.parse((await follower.kubectl(['get', 'snapshots', '-n', ns, '-o', 'json'])).stdout).items;
    t.equal(snaps.length, 1, `${ns}: one snapshot, no double work`);
    t.match(snaps[0].status.repositoryURL, reg.host, 'stored in the shared snapshot registry');
  }
});
