// While a reconcile's work runs, its object says so, as Flux's controllers have it: at the start of
// work on a generation not reconciled yet, Reconciling=True and (with no Ready yet) Ready=Unknown,
// reason Progressing, with the generation as observedGeneration, before the work
// (fluxcd/pkg runtime/reconcile/result.go ProgressiveStatus, called from
// fluxcd/source-controller internal/controller/ocirepository_controller.go `reconcile` when
// obj.Generation != obj.Status.ObservedGeneration); status.observedGeneration only once the work
// has an outcome, and no Event for it. A real docker-registry behind a proxy that holds the first
// fetch of each object (the OCMComponent's tag list, the Source's resource blob, the Action's
// ConfigData blob) until the test has looked: `kubectl get` shows READY Unknown, `kubectl wait
// --for=condition=Ready` does not pass; once let through, Ready=True and Reconciling gone. A new
// generation of a Ready object: Reconciling=True beside the old Ready, which `kubectl wait` does
// not take for the new generation's. A Source created with its OCMComponent is Ready=False
// ComponentNotReady (Stalled) until the component is Ready; then its work starts on new inputs and
// that Ready=False is stale: Ready=Unknown, Stalled gone (ProgressiveStatus with drift).
import { createHash } from 'node:crypto';
import t, { type Test } from 'tap';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { type Distribution, startDistribution } from './helpers/distribution.js';
import { GateProxy } from './helpers/gate-proxy.js';
import { startServer, tempDir, type TestServer, waitFor, yamlDocs } from './helpers/server.js';

const GV = 'delivery.ocm.software/v1alpha1';
const G = `/apis/${GV}`;
const NS = 'slow';
let reg: Distribution;
let proxy: GateProxy;
let s: TestServer;

const dataText = 'image: old\n';
const data2Text = 'image: other\n';
const configText = `apiVersion: config.ocm.software/v1alpha1
kind: ConfigData
localization:
- resource: {name: img}
  file: data.yaml
  image: image
`;
const blobPath = (text: string) => `/blobs/sha256:${createHash('sha256').update(text).digest('hex')}`;

async function get(kind: string, name: string): Promise<any> {
  const r = await s.request('GET', `${G}/namespaces/${NS}/${kind}/${name}`);
  return r.status === 200 ? r.json() : undefined;
}
const cond = (o: any, type: string) => o?.status?.conditions?.find((c: any) => c.type === type);
async function events(kind: string, name: string): Promise<{ type: string; reason: string }[]> {
  const r = await s.request('GET', `/api/v1/namespaces/${NS}/events`);
  return r.json().items.filter((e: any) => e.involvedObject?.kind === kind && e.involvedObject?.name === name);
}
const apply = async (...objs: unknown[]) => {
  const r = await s.kubectl(['apply', '-f', '-'], { input: yamlDocs(...objs) });
  if (r.code !== 0) throw new Error(r.stderr);
};

t.before(async () => {
  reg = await startDistribution();
  proxy = await new GateProxy(reg.host).start();
  await publish(new OcmRepository(new OciClient({ insecureHttp: true }), `http://${reg.host}/ocm`), {
    name: 'ocm.software/test/slow',
    version: '1.0.0',
    provider: 'acme',
    resources: [
      { name: 'data', type: 'blob', input: { type: 'utf8', text: dataText, mediaType: 'application/yaml' } },
      { name: 'data2', type: 'blob', input: { type: 'utf8', text: data2Text, mediaType: 'application/yaml' } },
      { name: 'config', type: 'configdata.ocm.software', input: { type: 'utf8', text: configText, mediaType: 'application/yaml' } },
      {
        name: 'img',
        type: 'ociImage',
        relation: 'external',
        access: { type: 'ociArtifact', imageReference: 'registry.example.org/app:1.0.0' },
        digest: { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'ociArtifactDigest/v1', value: '0'.repeat(64) },
      },
    ],
  }, tempDir());
  s = await startServer({ reconcilers: 'all', args: ['--allow-private-upstreams'] }); // the registry is on 127.0.0.1
  await s.kubectl(['create', 'namespace', NS]);
});
t.teardown(async () => {
  await s?.stop();
  await proxy?.stop();
  await reg?.stop();
});

/**
 * Creates `objs` while the proxy holds requests for `pathPart`; once one is held, `kind/name`
 * must show the start of its work, and Ready=True with Reconciling gone once it is let through.
 */
async function slowFirstFetch(t: Test, kind: string, name: string, pathPart: string, objs: unknown[]) {
  const before = proxy.held.length;
  proxy.hold(pathPart);
  try {
    await apply(...objs);
    await waitFor(`a request for ${pathPart} held`, async () => (proxy.held.length > before ? true : undefined), 30_000);
    const o = await get(`${kind}s`, name);
    const gen = o.metadata.generation;
    t.match(cond(o, 'Reconciling'), { status: 'True', reason: 'Progressing', message: 'reconciliation in progress', observedGeneration: gen }, 'Reconciling=True while the first fetch runs');
    t.match(cond(o, 'Ready'), { status: 'Unknown', reason: 'Progressing', message: 'reconciliation in progress', observedGeneration: gen }, 'Ready=Unknown, not False');
    t.notOk(cond(o, 'Stalled'));
    t.equal(o.status.observedGeneration, undefined, 'status.observedGeneration only once the work has an outcome');
    const row = await s.kubectl(['get', kind, name, '-n', NS]);
    t.match(row.stdout, /\n\S+\s+.*\bUnknown\s+reconciliation in progress\s+\d+s\n$/, `kubectl get: READY Unknown\n${row.stdout}`);
    const wait = await s.kubectl(['wait', '--for=condition=Ready', `${kind}/${name}`, '-n', NS, '--timeout=2s']);
    t.not(wait.code, 0, 'kubectl wait --for=condition=Ready does not take Unknown for Ready');
    t.match(cond(await get(`${kind}s`, name), 'Reconciling'), { status: 'True' }, 'still in progress while held');
  } finally {
    proxy.release();
  }
  const done = await waitFor(`${kind}/${name} Ready`, async () => {
    const o = await get(`${kind}s`, name);
    return cond(o, 'Ready')?.status === 'True' ? o : undefined;
  });
  t.match(cond(done, 'Ready'), { reason: 'Succeeded', observedGeneration: done.metadata.generation });
  t.notOk(cond(done, 'Reconciling'), 'Reconciling removed once Ready');
  t.equal(done.status.observedGeneration, done.metadata.generation);
  const wait = await s.kubectl(['wait', '--for=condition=Ready', `${kind}/${name}`, '-n', NS, '--timeout=30s']);
  t.equal(wait.code, 0, wait.stderr);
  const evs = await events(done.kind, name);
  t.same(evs.filter((e) => e.reason === 'Progressing'), [], 'no Event for the start of the work');
  t.equal(evs.filter((e) => e.type === 'Normal' && e.reason === 'Succeeded').length, 1, 'one Event for the outcome');
}

t.test('an OCMComponent whose tag list is slow', (t) =>
  slowFirstFetch(t, 'ocmcomponent', 'comp', '/tags/list', [
    { apiVersion: GV, kind: 'OCMComponent', metadata: { name: 'comp', namespace: NS }, spec: { name: 'ocm.software/test/slow', version: '>=1.0.0', repository: { url: `http://${proxy.host}/ocm` } } },
  ]),
);

t.test('a Source whose resource blob is slow', (t) =>
  slowFirstFetch(t, 'source', 'src', blobPath(dataText), [
    { apiVersion: GV, kind: 'OCMResource', metadata: { name: 'data', namespace: NS }, spec: { resource: 'data' } },
    { apiVersion: GV, kind: 'Source', metadata: { name: 'src', namespace: NS }, spec: { componentRef: { name: 'comp' }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: 'data' } } },
  ]),
);

t.test("an Action whose ConfigData blob is slow", (t) =>
  slowFirstFetch(t, 'action', 'loc', blobPath(configText), [
    { apiVersion: GV, kind: 'Localization', metadata: { name: 'loc', namespace: NS }, spec: { configRef: { name: 'config' } } },
    { apiVersion: GV, kind: 'Action', metadata: { name: 'loc', namespace: NS }, spec: { componentRef: { name: 'comp' }, sourceRef: { kind: 'Source', name: 'src' }, providerRef: { apiVersion: GV, kind: 'Localization', name: 'loc' } } },
  ]),
);

t.test('a new generation of a Ready OCMComponent: Reconciling beside the old Ready, which kubectl wait does not take', async (t) => {
  const before = proxy.held.length;
  const eventsBefore = (await events('OCMComponent', 'comp')).length;
  proxy.hold('/tags/list');
  try {
    const p = await s.request('PATCH', `${G}/namespaces/${NS}/ocmcomponents/comp`, { body: { spec: { interval: '11m' } }, headers: { 'Content-Type': 'application/merge-patch+json' } });
    t.equal(p.status, 200, 'PATCH spec.interval');
    const gen = p.json().metadata.generation;
    await waitFor('the tag list held', async () => (proxy.held.length > before ? true : undefined), 30_000);
    const o = await get('ocmcomponents', 'comp');
    t.match(cond(o, 'Reconciling'), { status: 'True', reason: 'Progressing', message: `processing object: new generation ${gen - 1} -> ${gen}`, observedGeneration: gen });
    t.match(cond(o, 'Ready'), { status: 'True', reason: 'Succeeded', observedGeneration: gen - 1 }, "the last generation's Ready stays, with its observedGeneration");
    t.equal(o.status.observedGeneration, gen - 1);
    const wait = await s.kubectl(['wait', '--for=condition=Ready', 'ocmcomponent/comp', '-n', NS, '--timeout=2s']);
    t.not(wait.code, 0, "kubectl wait does not take the last generation's Ready");
  } finally {
    proxy.release();
  }
  const done = await waitFor('generation 2 Ready', async () => {
    const o = await get('ocmcomponents', 'comp');
    return cond(o, 'Ready')?.observedGeneration === o.metadata.generation ? o : undefined;
  });
  t.match(cond(done, 'Ready'), { status: 'True', reason: 'Succeeded' });
  t.notOk(cond(done, 'Reconciling'));
  t.equal(done.status.observedGeneration, done.metadata.generation);
  const wait = await s.kubectl(['wait', '--for=condition=Ready', 'ocmcomponent/comp', '-n', NS, '--timeout=30s']);
  t.equal(wait.code, 0, wait.stderr);
  t.equal((await events('OCMComponent', 'comp')).length, eventsBefore, 'no Event: Ready did not change');
});

t.test('a Source created with its OCMComponent: ComponentNotReady, then Ready=Unknown while its own fetch runs', async (t) => {
  const blob = blobPath(data2Text);
  proxy.hold('/tags/list');
  proxy.hold(blob);
  try {
    await apply(
      { apiVersion: GV, kind: 'OCMComponent', metadata: { name: 'comp2', namespace: NS }, spec: { name: 'ocm.software/test/slow', version: '>=1.0.0', repository: { url: `http://${proxy.host}/ocm` } } },
      { apiVersion: GV, kind: 'OCMResource', metadata: { name: 'data2', namespace: NS }, spec: { resource: 'data2' } },
      { apiVersion: GV, kind: 'Source', metadata: { name: 'src2', namespace: NS }, spec: { componentRef: { name: 'comp2' }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: 'data2' } } },
    );
    const waiting = await waitFor('src2 ComponentNotReady', async () => {
      const o = await get('sources', 'src2');
      return cond(o, 'Ready')?.reason === 'ComponentNotReady' ? o : undefined;
    }, 30_000);
    t.match(cond(waiting, 'Ready'), { status: 'False', message: /comp2 is not ready: reconciliation in progress/ }, "the component's own progress named");
    t.match(cond(waiting, 'Stalled'), { status: 'True', reason: 'ComponentNotReady' });
    proxy.release('/tags/list');
    await waitFor("src2's blob held", async () => (proxy.held.some((p) => p.includes(blob)) ? true : undefined), 30_000);
    const o = await get('sources', 'src2');
    t.match(cond(o, 'Ready'), { status: 'Unknown', reason: 'Progressing', message: 'reconciliation in progress', observedGeneration: o.metadata.generation }, 'the stale ComponentNotReady is gone while the fetch runs');
    t.match(cond(o, 'Reconciling'), { status: 'True', reason: 'Progressing' });
    t.notOk(cond(o, 'Stalled'), 'not Stalled: its work runs');
    const row = await s.kubectl(['get', 'source', 'src2', '-n', NS]);
    t.match(row.stdout, /\bUnknown\s+reconciliation in progress\b/, row.stdout);
  } finally {
    proxy.release();
  }
  const done = await waitFor('src2 Ready', async () => {
    const o = await get('sources', 'src2');
    return cond(o, 'Ready')?.status === 'True' ? o : undefined;
  });
  t.notOk(cond(done, 'Reconciling'));
  t.notOk(cond(done, 'Stalled'));
  const evs = await events('Source', 'src2');
  t.same(evs.filter((e) => e.reason === 'Progressing'), []);
  t.equal(evs.filter((e) => e.reason === 'Succeeded').length, 1);
});
