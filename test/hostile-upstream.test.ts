// Hostile upstream content (issue 15), with the reconcilers on: a registry serving component
// descriptors nested 30,000 deep (made V8 abort while the YAML was parsed, again two seconds after
// every restart), with 10,001 resources, and over 3 MiB. Each is Ready=False DescriptorTooLarge on
// its OCMComponent, no ComponentDescriptor is written, the server keeps serving, and it starts again
// with the poisoned objects in place and keeps serving then too.
import { createHash } from 'node:crypto';
import t from 'tap';
import { FaultyRegistry } from './helpers/faulty-registry.js';
import { startServer, tempDir, type TestServer } from './helpers/server.js';

const G = '/apis/delivery.ocm.software/v1alpha1';
const NS = 'hostile';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Puts a component version whose descriptor layer is `yaml` into the fake registry, laid out as OCM does. */
function serve(reg: FaultyRegistry, name: string, yaml: string) {
  const layer = Buffer.from(yaml);
  const layerDesc = { mediaType: 'application/vnd.ocm.software.component-descriptor.v2+yaml', digest: sha(layer), size: layer.length };
  const config = Buffer.from(JSON.stringify({ componentDescriptorLayer: layerDesc }));
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.ocm.software.component.config.v1+json', digest: sha(config), size: config.length }, layers: [layerDesc] }));
  reg.fake.blobs.set(sha(layer), layer);
  reg.fake.blobs.set(sha(config), config);
  const entry = { type: 'application/vnd.oci.image.manifest.v1+json', body: manifest };
  const repo = `ocm/component-descriptors/${name}`;
  reg.fake.manifests.set(`${repo}:1.0.0`, entry);
  reg.fake.manifests.set(`${repo}:${sha(manifest)}`, entry);
}

const head = (name: string) => `meta: {schemaVersion: v2}\ncomponent:\n  name: ${name}\n  version: 1.0.0\n  provider: acme\n  repositoryContexts: []\n  sources: []\n  componentReferences: []\n`;
const CASES = [
  { key: 'deep', yaml: (n: string) => `${head(n)}  resources: []\n  labels: [{name: x, value: ${'['.repeat(30_000)}${']'.repeat(30_000)}}]\n`, message: /nests deeper than the limit of 512 levels/ },
  { key: 'many', yaml: (n: string) => `${head(n)}  resources:\n${Array.from({ length: 10_001 }, (_, i) => `  - {name: r${i}, version: 1.0.0, type: blob, relation: external, access: {type: none}}\n`).join('')}`, message: /10001 resources, over the limit of 10000/ },
  { key: 'big', yaml: (n: string) => `${head(n)}  resources: []\n  labels: [{name: x, value: "${'x'.repeat(3 * 1024 * 1024)}"}]\n`, message: /over the limit of 3145728 bytes/ },
];

let reg: FaultyRegistry;
let s: TestServer;
const dataDir = tempDir('hostile-upstream-');

t.before(async () => {
  reg = await new FaultyRegistry().start();
  for (const c of CASES) serve(reg, `ocm.software/hostile/${c.key}`, c.yaml(`ocm.software/hostile/${c.key}`));
});
t.teardown(async () => {
  await s?.stop();
  await reg?.close();
});

async function conditions(): Promise<Record<string, { reason: string; message: string } | undefined>> {
  const out: Record<string, { reason: string; message: string } | undefined> = {};
  for (const c of CASES) {
    const r = await s.request('GET', `${G}/namespaces/${NS}/ocmcomponents/${c.key}`);
    out[c.key] = r.status === 200 ? r.json().status?.conditions?.find((x: { type: string }) => x.type === 'Ready') : undefined;
  }
  return out;
}

async function settle(): Promise<Record<string, { reason: string; message: string } | undefined>> {
  for (let i = 0; i < 150; i++) {
    const c = await conditions();
    if (Object.values(c).every((x) => x && (x as { status?: string }).status === 'False')) return c;
    await sleep(200);
  }
  return conditions();
}

t.test('descriptors over the limits are DescriptorTooLarge, and the server keeps serving', async (t) => {
  s = await startServer({ dataDir, reconcilers: 'all', args: ['--allow-private-upstreams'] });
  t.equal((await s.request('POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } })).status, 201);
  for (const c of CASES) {
    const r = await s.request('POST', `${G}/namespaces/${NS}/ocmcomponents`, { body: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'OCMComponent', metadata: { name: c.key }, spec: { name: `ocm.software/hostile/${c.key}`, version: '1.0.0', interval: '10m', repository: { url: `http://${reg.host}/ocm` } } } });
    t.equal(r.status, 201, r.body);
  }
  const got = await settle();
  for (const c of CASES) {
    t.equal(got[c.key]?.reason, 'DescriptorTooLarge', `${c.key}: reason`);
    t.match(got[c.key]?.message, c.message, `${c.key}: the message names the limit`);
  }
  const cds = await s.request('GET', `${G}/namespaces/${NS}/componentdescriptors`);
  t.same(cds.json().items, [], 'no ComponentDescriptor written');
  t.equal(s.proc.exitCode, null, 'the server is running');
  t.equal((await s.request('GET', '/healthz')).status, 200);
});

t.test('it starts again with the poisoned objects in place, and keeps serving', async (t) => {
  await s.stop();
  s = await startServer({ dataDir, reconcilers: 'all', args: ['--allow-private-upstreams'] });
  const fetchedBefore = reg.requests.length;
  await sleep(4000); // the abort came two seconds after every start
  t.ok(reg.requests.length > fetchedBefore, 'the reconcilers read the hostile registry again');
  t.equal(s.proc.exitCode, null, 'still running 4 s after the start');
  t.equal((await s.request('GET', '/healthz')).status, 200);
  const got = await conditions();
  for (const c of CASES) t.equal(got[c.key]?.reason, 'DescriptorTooLarge', `${c.key}: still DescriptorTooLarge`);
});
