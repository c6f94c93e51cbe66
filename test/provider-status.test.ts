// Issue 12, item 6: an object's status is written by its own reconciler only. Several failing
// consumers sharing one provider (two Sources on one OCMResource, two Actions on one
// KustomizationTemplate) used to write their failures onto it in turn, each write re-queuing every
// consumer: hundreds of writes a second. Now, at rest with every failing consumer failing, the
// server makes no write at all over ten seconds (the store's resourceVersion, one counter across
// every object, does not move), and a healthy consumer of the same providers is Ready, its
// snapshot holding the resource's bytes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { archiveToFiles } from '../providers/content.js';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { pullSnapshot } from '../registry/snapshot.js';
import { kubectlJson, yamlDocs, startServer, tempDir, type TestServer } from './helpers/server.js';

const GV = 'delivery.ocm.software/v1alpha1';
const NS = 'shared';
let s: TestServer;
let registry: string;
let client: OciClient;

const yaml = yamlDocs;
const json = (args: string[]) => kubectlJson(s, args);
const cond = (o: any, type = 'Ready') => o?.status?.conditions?.find((c: { type: string }) => c.type === type);
async function reason(kind: string, name: string, want: string) {
  for (let i = 0; i < 300; i++) {
    const o = await json(['get', kind, name, '-n', NS]);
    if (cond(o)?.reason === want) return o;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${kind}/${name}: expected reason ${want}, have ${JSON.stringify((await json(['get', kind, name, '-n', NS])).status?.conditions)}`);
}
/** The store's current resourceVersion: a list's resourceVersion is the one counter of every write. */
async function storeRV(): Promise<number> {
  const r = await s.kubectl(['get', '--raw', '/api/v1/namespaces']);
  return Number(JSON.parse(r.stdout).metadata.resourceVersion);
}

const DATA = 'replicas: 3\n# kept byte for byte\n';

t.before(async () => {
  s = await startServer({ reconcilers: 'all', args: ['--allow-private-upstreams'] }); // resource access on 127.0.0.1:9
  registry = s.logs.map((l) => /"registry":"([^"]+)"/.exec(l)?.[1]).find(Boolean)!;
  const certs = join(s.dataDir, 'certs');
  client = new OciClient({ ca: readFileSync(join(certs, 'ca.crt'), 'utf8'), cert: readFileSync(join(certs, 'admin.crt'), 'utf8'), key: readFileSync(join(certs, 'admin.key'), 'utf8') });
  const repo = new OcmRepository(client, `${registry}/${NS}/ocm`);
  const dir = tempDir();
  // good: resource `data` is a local blob. remote: resource `data` lives on a host that refuses
  // connections, so fetching it fails Transiently, again and again, with the same message.
  await publish(repo, { name: 'ocm.software/test/good', version: '1.0.0', provider: 'acme', resources: [{ name: 'data', type: 'blob', input: { type: 'utf8', text: DATA, mediaType: 'application/yaml' } }] }, dir);
  const digest = `sha256:${'1'.repeat(64)}`;
  await publish(
    repo,
    { name: 'ocm.software/test/remote', version: '1.0.0', provider: 'acme', resources: [{ name: 'data', type: 'blob', relation: 'external', access: { type: 'ociBlob', ref: '127.0.0.1:9/nothing/here', digest, mediaType: 'application/yaml', size: 5 } }] },
    dir,
  );
  await s.kubectl(['create', 'namespace', NS]);
});
t.teardown(() => s?.stop());

t.test('failing consumers never write onto the provider they share; at rest nothing is written', async (t) => {
  const comp = (name: string, component: string) => ({ apiVersion: GV, kind: 'OCMComponent', metadata: { name, namespace: NS }, spec: { name: component, version: '1.0.0', repository: { url: `${registry}/${NS}/ocm` } } });
  const source = (name: string, component: string) => ({
    apiVersion: GV,
    kind: 'Source',
    metadata: { name, namespace: NS },
    spec: { componentRef: { name: component }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: 'res' } },
  });
  const action = (name: string, input: string) => ({
    apiVersion: GV,
    kind: 'Action',
    metadata: { name, namespace: NS },
    spec: { componentRef: { name: 'good' }, sourceRef: { kind: 'Source', name: input }, providerRef: { apiVersion: GV, kind: 'KustomizationTemplate', name: 'kt' } },
  });
  const a = await s.kubectl(['apply', '-f', '-'], {
    input: yaml(
      comp('good', 'ocm.software/test/good'),
      comp('remote', 'ocm.software/test/remote'),
      { apiVersion: GV, kind: 'OCMResource', metadata: { name: 'res', namespace: NS }, spec: { resource: 'data' } },
      { apiVersion: GV, kind: 'KustomizationTemplate', metadata: { name: 'kt', namespace: NS }, spec: { template: { interval: '10m', path: './' } } },
      source('src-ok', 'good'),
      source('src-unreachable', 'remote'), // Transient: retried with backoff
      source('src-nocomponent', 'nope'), // Stalled: ComponentNotFound
      action('act-ok', 'src-ok'),
      action('act-noinput', 'missing'), // Stalled: InputNotFound
      action('act-inputfailing', 'src-unreachable'), // Stalled: InputNotReady
    ),
  });
  t.equal(a.code, 0, a.stderr);

  const ok = await reason('source', 'src-ok', 'Succeeded');
  await reason('action', 'act-ok', 'Succeeded');
  const unreachable = await reason('source', 'src-unreachable', 'ProviderFailed');
  t.notOk(cond(unreachable, 'Stalled'), 'a transient failure is not Stalled');
  const nocomp = await reason('source', 'src-nocomponent', 'ComponentNotFound');
  t.equal(cond(nocomp, 'Stalled')?.status, 'True', 'a failure retrying cannot help is Stalled (Flux kstatus)');
  t.equal(cond(nocomp, 'Stalled')?.reason, 'ComponentNotFound');
  await reason('action', 'act-noinput', 'InputNotFound');
  await reason('action', 'act-inputfailing', 'InputNotReady');

  // The providers' status is their own: accepted, nothing of any consumer.
  for (const [kind, name] of [['ocmresource', 'res'], ['kustomizationtemplate', 'kt']]) {
    const p = await reason(kind, name, 'Accepted');
    t.equal(cond(p).status, 'True', `${kind}/${name} is Ready`);
    t.equal(p.status.ready, true);
    t.equal(p.status.observedGeneration, p.metadata.generation);
    t.notOk(p.status.snapshot, `${kind}/${name} names no consumer's snapshot`);
    t.notOk(p.status.digest);
    t.notMatch(cond(p).message, /src-|act-|not found|refused/, 'and no consumer\'s failure');
  }

  // The healthy Source's snapshot holds the resource's bytes.
  const snap = await json(['get', 'snapshot', ok.status.snapshot, '-n', NS]);
  const files = await archiveToFiles(await pullSnapshot(client, `${snap.status.repositoryURL}:${snap.status.tag}`, { expectedDigest: snap.status.digest }));
  t.same(Object.keys(files), ['data.yaml']);
  t.equal(files['data.yaml'].toString('utf8'), DATA, 'byte for byte');

  // At rest: ten seconds without a single write anywhere in the store, while src-unreachable
  // is still being retried (its reconciles keep failing with the same status).
  await new Promise((r) => setTimeout(r, 1500));
  const rv = {
    store: await storeRV(),
    res: (await json(['get', 'ocmresource', 'res', '-n', NS])).metadata.resourceVersion,
    kt: (await json(['get', 'kustomizationtemplate', 'kt', '-n', NS])).metadata.resourceVersion,
    unreachable: (await json(['get', 'source', 'src-unreachable', '-n', NS])).metadata.resourceVersion,
  };
  const retriesBefore = s.logs.filter((l) => l.includes('src-unreachable') && l.includes('reconcile failed')).length;
  await new Promise((r) => setTimeout(r, 10_000));
  t.equal((await json(['get', 'ocmresource', 'res', '-n', NS])).metadata.resourceVersion, rv.res, 'the shared OCMResource: zero writes in 10 s');
  t.equal((await json(['get', 'kustomizationtemplate', 'kt', '-n', NS])).metadata.resourceVersion, rv.kt, 'the shared KustomizationTemplate: zero writes in 10 s');
  t.equal((await json(['get', 'source', 'src-unreachable', '-n', NS])).metadata.resourceVersion, rv.unreachable, 'a failing Source retried with the same failure writes nothing');
  t.equal(await storeRV(), rv.store, 'the whole store: zero writes in 10 s');
  const retriesAfter = s.logs.filter((l) => l.includes('src-unreachable') && l.includes('reconcile failed')).length;
  t.ok(retriesAfter > retriesBefore, `src-unreachable was retried meanwhile (${retriesAfter - retriesBefore} times), without writing`);
});
