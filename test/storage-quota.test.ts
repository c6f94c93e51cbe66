// The storage quota and the watch history's byte bound (issue 15), on started servers:
//  - a namespace filled past --namespace-storage-quota-mib, the whole store past --storage-quota-mib:
//    creates and growing updates get a 403 Forbidden Status naming the quota, the namespace and the
//    sizes, as ResourceQuota admission answers (`exceeded quota: %s, requested: %s, used: %s,
//    limited: %s` through admission.NewForbidden, k8s.io/apiserver/pkg/admission/plugin/resourcequota/
//    controller.go). Not etcd's own answer: kube-apiserver passes etcd's `etcdserver: mvcc: database
//    space exceeded` through k8s.io/apiserver/pkg/storage/etcd3/store.go as a 500, which tells a
//    kubectl user nothing about whose data it is, and this is our own policy, never a 5xx;
//  - other namespaces keep working, shrinking updates and deletes always work;
//  - the server's own writes count: an OCMComponent whose ComponentDescriptor does not fit is
//    Ready=False QuotaExceeded (and the server keeps serving);
//  - a restart recounts the same numbers (ocm_storage_used_bytes);
//  - on etcd, a replica refuses what another replica's writes filled;
//  - repeated updates of a big object: the history holds at most --history-mib, RSS stays bounded,
//    and a watch from before the history's start is a 410 Expired.
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import t from 'tap';
import YAML from 'yaml';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { type Distribution, startDistribution } from './helpers/distribution.js';
import { startEtcd, type TestEtcd } from './helpers/etcd.js';
import { startServer, tempDir, type TestServer, waitFor } from './helpers/server.js';

const MiB = 1 << 20;
const cm = (ns: string, name: string, bytes: number, extra: Record<string, string> = {}) => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, namespace: ns },
  data: { v: 'x'.repeat(bytes), ...extra },
});

async function metric(s: TestServer, name: string, labels = ''): Promise<number | undefined> {
  const body = (await s.request('GET', '/metrics')).body;
  const line = body.split('\n').find((l) => l.startsWith(`${name}${labels} `) || (labels === '' && l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').pop()) : undefined;
}
const used = async (s: TestServer, ns: string) => (await metric(s, 'ocm_storage_used_bytes', `{namespace="${ns}"}`)) ?? 0;

async function createNs(s: TestServer, ns: string) {
  const r = await s.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } } });
  if (r.status !== 201) throw new Error(`namespace ${ns}: ${r.status} ${r.body}`);
}

/** Fills a namespace with ConfigMaps until less than `leave` + a ConfigMap's own overhead (~250) bytes of its quota are left. */
async function fill(s: TestServer, ns: string, quota: number, leave: number) {
  for (let i = 0; ; i++) {
    const free = quota - (await used(s, ns)) - leave;
    if (free < 1000) return;
    const r = await postCM(s, ns, `fill${i}`, Math.min(free, 2_000_000));
    if (r.status !== 201) throw new Error(`fill ${ns}: ${r.status} ${r.body.slice(0, 300)}`);
  }
}

const postCM = (s: TestServer, ns: string, name: string, bytes: number) => s.request('POST', `/api/v1/namespaces/${ns}/configmaps`, { body: cm(ns, name, bytes) });

/** The first line of a watch (or undefined when none comes within 5 s). */
function firstWatchLine(s: TestServer, path: string): Promise<any> {
  const dir = s.dataDir;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: s.port,
        path,
        ca: readFileSync(join(dir, 'certs', 'ca.crt'), 'utf8'),
        cert: readFileSync(join(dir, 'certs', 'admin.crt'), 'utf8'),
        key: readFileSync(join(dir, 'certs', 'admin.key'), 'utf8'),
        servername: 'localhost',
        agent: false,
      },
      (res) => {
        let buf = '';
        const timer = setTimeout(() => (req.destroy(), resolve(undefined)), 5000);
        res.on('data', (c) => {
          buf += c;
          const nl = buf.indexOf('\n');
          if (nl >= 0) {
            clearTimeout(timer);
            req.destroy();
            resolve(JSON.parse(buf.slice(0, nl)));
          }
        });
        res.on('end', () => (clearTimeout(timer), resolve(buf ? JSON.parse(buf) : undefined)));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) * 1024;
}

t.test('storage quota on the embedded store', async (t) => {
  t.setTimeout(300_000);
  const keys = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
  const reg: Distribution = await startDistribution();
  t.teardown(() => reg.stop());
  const work = tempDir('storage-quota-');
  mkdirSync(join(work, 'files'));
  writeFileSync(join(work, 'files', 'app.yaml'), 'kind: ConfigMap\n');
  const repo = new OcmRepository(new OciClient({ insecureHttp: true }), `http://${reg.host}/ocm/ocm`);
  await publish(repo, { name: 'ocm.software/demo/app', version: '1.0.0', provider: 'acme', resources: [{ name: 'app', type: 'blob', input: { type: 'file', path: 'files/app.yaml', mediaType: 'application/yaml' } }] }, work, {
    sign: { name: 'acme', privateKeyPem: keys.privateKey },
  });
  const dataDir = join(work, 'data');
  const args = ['--namespace-storage-quota-mib', '4', '--storage-quota-mib', '8', '--allow-private-upstreams'];
  let s = await startServer({ dataDir, args, reconcilers: 'all' });
  t.teardown(() => s.stop());
  for (const ns of ['a', 'b', 'c', 'd', 'ocm']) await createNs(s, ns);

  await t.test('a namespace over its quota: 403 naming the quota, the namespace and the sizes', async (t) => {
    for (let i = 0; i < 4; i++) t.equal((await postCM(s, 'a', `m${i}`, 1_000_000)).status, 201, `ConfigMap ${i} of 1 MB fits in 4 MiB`);
    const before = await used(s, 'a');
    t.ok(before > 4_000_000 && before < 4 * MiB, `ocm_storage_used_bytes{namespace="a"} counts them: ${before}`);
    const r = await postCM(s, 'a', 'm4', 1_000_000);
    t.equal(r.status, 403, r.body.slice(0, 300));
    const st = r.json();
    t.equal(st.kind, 'Status');
    t.equal(st.reason, 'Forbidden');
    t.match(st.message, /^configmaps "m4" is forbidden: exceeded quota: namespace-storage, requested: \d+ bytes, used: \d+ bytes, limited: 4194304 bytes \(the objects of namespace a, --namespace-storage-quota-mib\)$/);
    t.same(st.details, { name: 'm4', group: '', kind: 'configmaps' });
    t.equal(Number(/used: (\d+)/.exec(st.message)![1]), before, 'used is what the metric says');
    t.equal((await s.request('GET', '/api/v1/namespaces/a/configmaps/m4')).status, 404, 'nothing was written');

    // A dry run is checked as the write would be and charges nothing: kube's ResourceQuota admission
    // runs for dry-run requests too (k8s.io/apiserver/pkg/admission/plugin/resourcequota/controller.go
    // checkQuotas: checkRequest, then "Don't update quota for admissionAttributes that correspond to dry-run requests").
    const dry = await s.request('POST', '/api/v1/namespaces/a/configmaps?dryRun=All', { body: cm('a', 'm4', 1_000_000) });
    t.equal(dry.status, 403, `a dry-run create over the quota is refused: ${dry.body.slice(0, 200)}`);
    t.equal(dry.json().message, st.message, 'with the Status the create gets');
    t.same(dry.json().details, st.details);
    const dryFits = await s.request('POST', '/api/v1/namespaces/a/configmaps?dryRun=All', { body: cm('a', 'dry', 100_000) });
    t.equal(dryFits.status, 201, 'a dry-run create that fits passes');
    t.equal((await s.request('GET', '/api/v1/namespaces/a/configmaps/dry')).status, 404, 'and is not stored');
    t.equal(await used(s, 'a'), before, 'nothing charged');

    // kubectl shows it as kube's quota refusals
    const k = await s.kubectl(['create', '-f', '-'], { input: YAML.stringify(cm('a', 'k', 400_000)) });
    t.not(k.code, 0);
    t.match(k.stderr, /Error from server \(Forbidden\).*configmaps "k" is forbidden: exceeded quota: namespace-storage/);
    const kd = await s.kubectl(['create', '--dry-run=server', '-f', '-'], { input: YAML.stringify(cm('a', 'k', 400_000)) });
    t.not(kd.code, 0, 'kubectl create --dry-run=server is refused too');
    t.match(kd.stderr, /Error from server \(Forbidden\).*configmaps "k" is forbidden: exceeded quota: namespace-storage/);
    const ka = await s.kubectl(['apply', '--server-side', '--dry-run=server', '-f', '-'], { input: YAML.stringify(cm('a', 'k', 400_000)) });
    t.not(ka.code, 0, 'and kubectl apply --server-side --dry-run=server');
    t.match(ka.stderr, /configmaps "k" is forbidden: exceeded quota: namespace-storage/);

    // an update that grows is refused; one that shrinks, a delete and a delete of an object with finalizers work
    const cur = (await s.request('GET', '/api/v1/namespaces/a/configmaps/m0')).json();
    cur.data.v += 'y'.repeat(200_000);
    const grow = await s.request('PUT', '/api/v1/namespaces/a/configmaps/m0', { body: cur });
    t.equal(grow.status, 403, 'a growing update is refused');
    t.match(grow.json().message, /exceeded quota: namespace-storage, requested: 2000\d\d bytes/);
    const dryGrow = await s.request('PUT', '/api/v1/namespaces/a/configmaps/m0?dryRun=All', { body: cur });
    t.equal(dryGrow.status, 403, 'a dry-run growing update is refused');
    t.equal(dryGrow.json().message, grow.json().message, 'with the Status the update gets');
    const dryPatch = await s.request('PATCH', '/api/v1/namespaces/a/configmaps/m0?dryRun=All', { body: { data: { more: 'z'.repeat(300_000) } }, headers: { 'Content-Type': 'application/merge-patch+json' } });
    t.equal(dryPatch.status, 403, 'a dry-run growing patch is refused');
    const patchFile = join(tempDir('storage-quota-patch-'), 'grow.json');
    writeFileSync(patchFile, JSON.stringify({ data: { more: 'z'.repeat(300_000) } }));
    const kp = await s.kubectl(['patch', 'configmap', 'm0', '-n', 'a', '--type', 'merge', '--patch-file', patchFile, '--dry-run=server']);
    t.not(kp.code, 0, 'kubectl patch --dry-run=server is refused');
    t.match(kp.stderr, /Error from server \(Forbidden\).*configmaps "m0" is forbidden: exceeded quota: namespace-storage/);
    const dryShrink = await s.request('PATCH', '/api/v1/namespaces/a/configmaps/m0?dryRun=All', { body: { data: { v: 'x'.repeat(500_000) } }, headers: { 'Content-Type': 'application/merge-patch+json' } });
    t.equal(dryShrink.status, 200, 'a dry-run shrinking update passes');
    t.equal((await s.request('GET', '/api/v1/namespaces/a/configmaps/m0')).json().data.v.length, 1_000_000, 'and changes nothing');
    const patch = await s.request('PATCH', '/api/v1/namespaces/a/configmaps/m0', { body: { data: { more: 'z'.repeat(300_000) } }, headers: { 'Content-Type': 'application/merge-patch+json' } });
    t.equal(patch.status, 403, 'a growing patch is refused');
    const shrink = await s.request('PATCH', '/api/v1/namespaces/a/configmaps/m0', { body: { data: { v: 'x'.repeat(500_000) } }, headers: { 'Content-Type': 'application/merge-patch+json' } });
    t.equal(shrink.status, 200, 'a shrinking update works');
    const fin = await s.request('PATCH', '/api/v1/namespaces/a/configmaps/m1', { body: { metadata: { finalizers: ['example.com/hold'] } }, headers: { 'Content-Type': 'application/merge-patch+json' } });
    t.equal(fin.status, 200, 'a finalizer fits in what the shrink freed');
    t.equal((await postCM(s, 'a', 'fill', 4 * MiB - (await used(s, 'a')) - 400)).status, 201, 'filled up to 400 bytes below the quota');
    const del1 = await s.request('DELETE', '/api/v1/namespaces/a/configmaps/m1');
    t.equal(del1.status, 200, 'the delete of an object with a finalizer (which sets deletionTimestamp) works when full');
    t.ok(del1.json().metadata.deletionTimestamp);
    t.equal((await s.request('PATCH', '/api/v1/namespaces/a/configmaps/m1', { body: { metadata: { finalizers: null } }, headers: { 'Content-Type': 'application/merge-patch+json' } })).status, 200, 'removing the finalizer works');
    t.equal((await s.request('GET', '/api/v1/namespaces/a/configmaps/m1')).status, 404, 'and the object is gone');
    t.equal((await s.request('DELETE', '/api/v1/namespaces/a/configmaps/m2')).status, 200, 'a delete works');
    t.equal((await postCM(s, 'a', 'again', 900_000)).status, 201, 'what a delete freed can be used again');

    // another namespace is not affected
    t.equal((await postCM(s, 'b', 'm0', 1_000_000)).status, 201, 'namespace b still gets its own share');
    t.equal((await s.kubectl(['create', 'configmap', 'small', '-n', 'b', '--from-literal=k=v'])).code, 0);
  });

  await t.test('the whole store over its quota', async (t) => {
    const total = (await metric(s, 'ocm_storage_used_bytes', '{namespace="a"}'))! + (await used(s, 'b')) + (await used(s, ''));
    let i = 0;
    let r;
    let at = '';
    fill: for (const ns of ['c', 'd'])
      for (let j = 0; j < 3; j++, i++) {
        at = ns;
        r = await postCM(s, ns, `m${j}`, 1_000_000);
        if (r.status !== 201) break fill;
      }
    t.equal(r!.status, 403, r!.body.slice(0, 300));
    t.match(r!.json().message, /^configmaps "m\d" is forbidden: exceeded quota: storage, requested: \d+ bytes, used: \d+ bytes, limited: 8388608 bytes \(all stored objects, --storage-quota-mib\)$/);
    t.ok((await used(s, 'd')) < 4 * MiB, 'd is within its own share: the total refused');
    const name = /"(m\d)"/.exec(r!.json().message)![1];
    const dry = await s.request('POST', `/api/v1/namespaces/${at}/configmaps?dryRun=All`, { body: cm(at, name, 1_000_000) });
    t.equal(dry.status, 403, 'a dry-run create past the total is refused');
    t.match(dry.json().message, /exceeded quota: storage, requested: \d+ bytes, used: \d+ bytes, limited: 8388608 bytes/);
    const m = /requested: (\d+) bytes, used: (\d+) bytes/.exec(r!.json().message)!;
    t.ok(Number(m[2]) >= total + i * 1_000_000 && Number(m[1]) + Number(m[2]) > 8 * MiB, `c and d got what was left of the total (${i} of 1 MB): ${m[0]}`);
    const st = (await s.request('GET', '/readyz')).status;
    t.equal(st, 200, 'the server is ready and serving');
    t.equal((await s.request('GET', '/api/v1/namespaces/c/configmaps')).status, 200, 'reads work');
    t.equal((await s.request('DELETE', '/api/v1/namespaces/c/configmaps')).status, 200, 'deletecollection works when the store is full');
    // deleting a namespace marks it Terminating (a growing update, let through as a delete), then empties it
    t.equal((await s.request('DELETE', '/api/v1/namespaces/d')).status, 200, 'deleting a namespace works when the store is full');
    await waitFor('namespace d to be gone', async () => ((await s.request('GET', '/api/v1/namespaces/d')).status === 404 ? true : undefined), 30_000);
    t.equal(await used(s, 'd'), 0, 'and what it held is given back');
    t.equal((await s.request('DELETE', '/api/v1/namespaces/b/configmaps/m0')).status, 200);
    for (const n of ['m3', 'again']) t.equal((await s.request('DELETE', `/api/v1/namespaces/a/configmaps/${n}`)).status, 200);
  });

  await t.test("the server's own writes count: Ready=False QuotaExceeded", async (t) => {
    const objs = [
      { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'key', namespace: 'ocm' }, stringData: { acme: keys.publicKey } },
      {
        apiVersion: 'delivery.ocm.software/v1alpha1',
        kind: 'OCMComponent',
        metadata: { name: 'app', namespace: 'ocm' },
        spec: { name: 'ocm.software/demo/app', version: '1.0.0', repository: { url: `http://${reg.host}/ocm/ocm` }, verify: [{ signature: 'acme', secretRef: { name: 'key' } }], suspend: true },
      },
    ];
    for (const o of objs) {
      const path = o.kind === 'Secret' ? '/api/v1/namespaces/ocm/secrets' : '/apis/delivery.ocm.software/v1alpha1/namespaces/ocm/ocmcomponents';
      const r = await s.request('POST', path, { body: o });
      t.equal(r.status, 201, r.body.slice(0, 300));
    }
    await new Promise((res) => setTimeout(res, 1000)); // the suspended component's status
    await fill(s, 'ocm', 4 * MiB, 300);
    t.ok(4 * MiB - (await used(s, 'ocm')) < 1000, 'filled up to less than 1000 bytes below the quota');
    const un = await s.request('PATCH', '/apis/delivery.ocm.software/v1alpha1/namespaces/ocm/ocmcomponents/app', { body: { spec: { suspend: false } }, headers: { 'Content-Type': 'application/merge-patch+json' } });
    t.equal(un.status, 200, un.body.slice(0, 300));
    const cond = await waitFor('Ready=False QuotaExceeded', async () => {
      const o = (await s.request('GET', '/apis/delivery.ocm.software/v1alpha1/namespaces/ocm/ocmcomponents/app')).json();
      const c = o.status?.conditions?.find((x: { type: string }) => x.type === 'Ready');
      return c?.reason === 'QuotaExceeded' ? c : undefined;
    }, 60_000);
    t.equal(cond.status, 'False');
    t.match(cond.message, /exceeded quota: namespace-storage.*namespace ocm/);
    const cds = (await s.request('GET', '/apis/delivery.ocm.software/v1alpha1/namespaces/ocm/componentdescriptors')).json();
    t.equal(cds.items.length, 0, 'no ComponentDescriptor was written');
    t.ok(!s.logs.some((l) => /"level":(50|60)/.test(l) && /quota/i.test(l)), 'no error-level log about it');
    // freeing space lets it through (the reconcile is retried with backoff)
    t.equal((await s.request('DELETE', '/api/v1/namespaces/ocm/configmaps/fill0')).status, 200);
    await s.request('PATCH', '/apis/delivery.ocm.software/v1alpha1/namespaces/ocm/ocmcomponents/app', { body: { metadata: { annotations: { poke: '1' } } }, headers: { 'Content-Type': 'application/merge-patch+json' } });
    const ok = await s.kubectl(['wait', '--for=condition=Ready', 'ocmcomponent/app', '-n', 'ocm', '--timeout=60s']);
    t.equal(ok.code, 0, `Ready once there is room: ${ok.stderr}`);
    t.equal((await s.request('DELETE', '/api/v1/namespaces/ocm/configmaps')).status, 200);
  });

  await t.test('a restart recounts the same numbers', async (t) => {
    await fill(s, 'a', 4 * MiB, 5000);
    const before = { a: await used(s, 'a'), b: await used(s, 'b'), ocm: await used(s, 'ocm') };
    await s.stop();
    s = await startServer({ dataDir, args, reconcilers: 'none' });
    const after = { a: await used(s, 'a'), b: await used(s, 'b'), ocm: await used(s, 'ocm') };
    t.same(after, before, `ocm_storage_used_bytes after the restart: ${JSON.stringify(after)}`);
    t.equal(await metric(s, 'ocm_storage_quota_bytes', '{scope="namespace"}'), 4 * MiB);
    const free = 4 * MiB - after.a;
    const over = await postCM(s, 'a', 'over', free + 100);
    t.equal(over.status, 403, `namespace a has ${free} bytes left: more is refused`);
    t.match(over.json().message, `used: ${after.a} bytes`);
    t.equal((await postCM(s, 'a', 'under', free - 1000)).status, 201, 'less fits');
  });
});

t.test('storage quota across two replicas on one etcd', async (t) => {
  t.setTimeout(120_000);
  const etcd: TestEtcd = await startEtcd();
  t.teardown(() => etcd.stop());
  const work = tempDir('storage-quota-etcd-');
  const { ensureCerts } = await import('../certs/index.js');
  await ensureCerts(join(work, 'certs'));
  const start = (name: string) =>
    startServer({ dataDir: join(work, name), certDir: join(work, 'certs'), args: ['--storage', 'etcd', '--etcd-endpoints', etcd.endpoints.join(','), '--namespace-storage-quota-mib', '3'] });
  const a = await start('a');
  t.teardown(() => a.stop());
  await createNs(a, 'team');
  for (let i = 0; i < 2; i++) t.equal((await postCM(a, 'team', `m${i}`, 1_000_000)).status, 201);
  const b = await start('b');
  t.teardown(() => b.stop());
  t.equal(await used(b, 'team'), await used(a, 'team'), 'a replica started later counts what is there');
  t.equal((await postCM(a, 'team', 'm2', 1_000_000)).status, 201, 'the third 1 MB map through a');
  await waitFor('b to see it', async () => ((await used(b, 'team')) === (await used(a, 'team')) ? true : undefined), 10_000);
  const r = await postCM(b, 'team', 'm3', 1_000_000);
  t.equal(r.status, 403, 'b refuses the fourth, filled through a');
  t.match(r.json().message, /exceeded quota: namespace-storage.*limited: 3145728 bytes.*namespace team/);
  t.equal((await b.request('DELETE', '/api/v1/namespaces/team/configmaps/m0')).status, 200);
  await waitFor('a to see the delete', async () => ((await used(a, 'team')) < 2_100_000 ? true : undefined), 10_000);
  t.equal((await postCM(a, 'team', 'm3', 1_000_000)).status, 201, 'a uses what b freed');
});

t.test('the watch history is bounded in bytes: repeated updates of a big object', async (t) => {
  t.setTimeout(180_000);
  const s = await startServer({ args: ['--history-mib', '16'] });
  t.teardown(() => s.stop());
  await createNs(s, 'h');
  // (TEST_STORAGE=etcd: etcd takes requests of at most 1.5 MiB, --max-request-bytes)
  const size = process.env.TEST_STORAGE === 'etcd' ? 1_200_000 : 2_500_000;
  const created = await s.request('POST', '/api/v1/namespaces/h/configmaps', { body: cm('h', 'big', size, { n: '0' }) });
  t.equal(created.status, 201);
  const rv0 = created.json().metadata.resourceVersion;
  const patch = (i: number) => s.request('PATCH', '/api/v1/namespaces/h/configmaps/big', { body: { data: { n: String(i) } }, headers: { 'Content-Type': 'application/merge-patch+json' } });
  for (let i = 1; i <= 10; i++) t.equal((await patch(i)).status, 200);
  const rssBefore = rssBytes(s.proc.pid!);
  let lastRV = '';
  for (let i = 11; i <= 110; i++) {
    const r = await patch(i);
    if (r.status !== 200) t.fail(`update ${i}: ${r.status}`);
    lastRV = r.json().metadata.resourceVersion;
  }
  const grown = rssBytes(s.proc.pid!) - rssBefore;
  const held = (await metric(s, 'ocm_storage_history_bytes'))!;
  t.ok(held <= 16 * MiB, `the history holds ${(held / MiB).toFixed(1)} MiB beyond the current objects (--history-mib 16)`);
  // 100 versions of 2.5 MB were 250 MB of JSON plus as much parsed (471 MiB RSS); bounded: 16 MiB of JSON and its parsed copy, and garbage not yet collected
  t.ok(grown < 0.3 * 100 * size * 2, `RSS grew ${(grown / MiB).toFixed(0)} MiB over 100 updates of a ${size / 1e6} MB object`);
  const old = await firstWatchLine(s, `/api/v1/namespaces/h/configmaps?watch=1&resourceVersion=${rv0}`);
  t.equal(old?.type, 'ERROR', 'a watch from before the compaction');
  t.equal(old?.object?.code, 410);
  t.equal(old?.object?.reason, 'Expired');
  t.match(old?.object?.message, /too old resource version/);
  const recent = await firstWatchLine(s, `/api/v1/namespaces/h/configmaps?watch=1&resourceVersion=${Number(lastRV) - 1}`);
  t.equal(recent?.type, 'MODIFIED', 'a watch from a recent resourceVersion gets its events');
  t.equal(recent?.object?.metadata?.resourceVersion, lastRV);
});
