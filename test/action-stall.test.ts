// run-tests: alone (it measures the event loop; see scripts/run-tests.mjs)
// Issue 15, "Nothing takes it down", for upstream content: a Configurator and a Localization over a
// snapshot holding a 3 MiB manifest (3,000 Deployments, the size a file to edit may have) must not
// hold the server's event loop (they edit large files in a worker thread, providers/edit-worker.ts).
// Measured by the server itself (nodejs_eventloop_lag_max_seconds, test/helpers/stall.ts) from the
// creation of a Source and of both Actions on it (the blob read, packed and pushed, pulled, unpacked,
// edited in the worker, packed and pushed again, every status written) to both being Ready; over the bound, all three run again (new objects) up to 5
// times, and it fails only if over every time. The snapshots hold exactly the edited bytes.
import { Agent } from 'node:https';
import t from 'tap';
import type { ComponentSpec } from '../ocm/publish.js';
import { yamlDocs } from './helpers/server.js';
import { quiet, reproduced, send, stallMs } from './helpers/stall.js';
import { GV, VerifiedComponent } from './helpers/verified-component.js';

t.setTimeout(900_000); // (its own: up to 5 chains of 15 to 50 s on a loaded machine, over the runner's 300 s)

/** The README's bound (ms), issue 15's; STALL_BOUND_MS to look at figures with another one. */
const BOUND_MS = Number(process.env.STALL_BOUND_MS ?? 100);
const NS = 'editstall';
const DOCS = 3000;
/**
 * Tries of the chain before an over-bound figure counts (each after a quiet server): at load 10 to
 * 17 on the two shared cores a whole chain's longest stall was 100 to 400 ms on any code, the other
 * processes' (a real stall of the chain is over the bound every time).
 */
const TRIES = 5;

/** 3,000 Deployments, each with a replicas and an image to edit: about 2.9 MiB. */
function manifest(image: string, replicas: number): string {
  let out = '';
  for (let i = 0; i < DOCS; i++) {
    out += `---
# deployment ${i}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-${i}
  labels: {app: app-${i}, tier: "backend"}
  annotations:
    description: "${'padding '.repeat(60)}"
spec:
  replicas: ${replicas}
  selector:
    matchLabels:
      app: app-${i}
  template:
    metadata:
      labels:
        app: app-${i}
    spec:
      containers:
        - name: app
          image: ${image} # localized
          ports:
            - containerPort: 8080
          env:
            - {name: INDEX, value: "${i}"}
`;
  }
  return out;
}

/** PROF_DIR: CPU profiles of the server's threads, to see what a stall is (SERVER_NODE_ARGS: other node options, --trace-gc and the like). */
const PROF_ARGS = process.env.PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.PROF_DIR}`] : [];
/** When profiling: each try's span on the monotonic clock (µs), the clock of the profiles' timestamps. */
const span = (t0: bigint) => (PROF_ARGS.length || process.env.SERVER_NODE_ARGS ? ` (monotonic µs ${t0}-${process.hrtime.bigint() / 1000n})` : '');
let v: VerifiedComponent;
let agent: Agent;
let IMAGE = '';
const json = (args: string[]) => v.json(args);

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const got = await fn().catch((e) => {
      if (e.fatal) throw e;
      return undefined;
    });
    if (got !== undefined) return got;
    if (Date.now() > end) {
      const all = await json(['get', 'ocmcomponents,sources,actions', '-n', NS]).catch(() => ({ items: [] }));
      const why = all.items.map((o: any) => `${o.kind}/${o.metadata.name}: ${JSON.stringify(o.status?.conditions?.find((c: { type: string }) => c.type === 'Ready'))}`);
      throw new Error(`timed out waiting for ${what}: ${why.join('; ')}`);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}
/**
 * An object read through the keep-alive agent: polling with kubectl, two processes and two TLS
 * handshakes every 500 ms, was CPU the server and the measured chain competed with.
 */
async function get(kind: string, name: string): Promise<any> {
  const r = await send(agent, v.s.port, 'GET', `/apis/${GV}/namespaces/${NS}/${kind}s/${name}`, undefined, { Accept: 'application/json' });
  if (r.status !== 200) throw new Error(`GET ${kind}/${name}: ${r.status} ${r.text.slice(0, 200)}`);
  return JSON.parse(r.text);
}
const ready = (kind: string, name: string) =>
  until(`${kind}/${name} Ready`, async () => {
    const o = await get(kind, name);
    const c = o.status?.conditions?.find((x: { type: string }) => x.type === 'Ready');
    if (c?.status === 'False' && c.reason === 'ProviderFailed') throw Object.assign(new Error(`${kind}/${name}: ${c.reason}: ${c.message}`), { fatal: true });
    return c?.status === 'True' && o.status.snapshot ? o : undefined;
  });
const content = (snapshot: string) => v.file(snapshot, 'data.yaml');
const action = (name: string, provider: string, source = 'src') => ({
  apiVersion: GV,
  kind: 'Action',
  metadata: { name, namespace: NS },
  spec: { componentRef: { name: 'comp' }, sourceRef: { kind: 'Source', name: source }, providerRef: { apiVersion: GV, kind: provider, name: provider.toLowerCase() } },
});
const source = (name: string) => ({ apiVersion: GV, kind: 'Source', metadata: { name, namespace: NS }, spec: { componentRef: { name: 'comp' }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: 'data' } } });

t.before(async () => {
  v = await VerifiedComponent.start(NS, { nodeArgs: [...PROF_ARGS, ...(process.env.SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? [])] });
  agent = new Agent({ keepAlive: true, maxSockets: 2, ...v.creds });
  IMAGE = v.image;
  // over 64 KiB (a long comment): parsed in the worker thread too
  const config = `# ${'c'.repeat(100 << 10)}\n` + yamlDocs({
    apiVersion: 'config.ocm.software/v1alpha1',
    kind: 'ConfigData',
    configuration: { defaults: { replicas: 3 }, rules: [{ value: '(( replicas ))', file: 'data.yaml', path: 'spec.replicas' }] },
  });
  const spec: ComponentSpec = {
    name: 'ocm.software/test/editstall',
    version: '1.0.0',
    provider: 'acme',
    resources: [
      { name: 'data', type: 'blob', input: { type: 'utf8', text: manifest('old', 1), mediaType: 'application/yaml' } },
      { name: 'config', type: 'configdata.ocm.software', input: { type: 'utf8', text: config, mediaType: 'application/yaml' } },
      { name: 'img', type: 'ociImage', relation: 'external', access: { type: 'ociArtifact', imageReference: IMAGE } },
    ],
  };
  await v.create(spec, '10m', [
    source('src'),
    { apiVersion: GV, kind: 'Localization', metadata: { name: 'localization', namespace: NS }, spec: { rules: [{ resource: { name: 'img' }, file: 'data.yaml', image: 'spec.template.spec.containers[0].image' }] } },
    { apiVersion: GV, kind: 'Configurator', metadata: { name: 'configurator', namespace: NS }, spec: { configRef: { name: 'config' } } },
  ]);
});
t.teardown(async () => {
  agent?.destroy();
  await v?.s.stop();
});

t.test('a Configurator and a Localization over a 3 MiB manifest do not hold the event loop', async (t) => {
  const src = await ready('source', 'src');
  const input = await content(src.status.snapshot);
  t.equal(input.length, Buffer.byteLength(manifest('old', 1)), `the Source delivers the ${input.length}-byte manifest`);
  t.ok(input.equals(Buffer.from(manifest('old', 1))), 'as it was published');

  let attempt = 0;
  const once = async () => {
    const n = ++attempt;
    await new Promise((r) => setTimeout(r, 1000)); // the previous run is over
    await quiet(agent, v.s.port); // and nothing else holds the shared CPU (the idle server's stall under 25 ms)
    await stallMs(agent, v.s.port); // resets the maximum
    const t0 = process.hrtime.bigint() / 1000n;
    // the whole chain: a new Source (the blob read, packed and pushed), both Actions on it
    const a = await v.s.kubectl(['apply', '-f', '-'], { input: yamlDocs(source(`src-${n}`), action(`loc-${n}`, 'Localization', `src-${n}`), action(`cfg-${n}`, 'Configurator', `src-${n}`)) });
    if (a.code !== 0) throw new Error(a.stderr);
    const [loc, cfg] = await Promise.all([ready('action', `loc-${n}`), ready('action', `cfg-${n}`)]);
    const ms = await stallMs(agent, v.s.port);
    t.comment(`attempt ${n}: longest stall ${Math.round(ms)} ms${span(t0)}`);
    if (n === 1) {
      t.ok((await content(loc.status.snapshot)).equals(Buffer.from(manifest(IMAGE, 1))), 'the Localization wrote the image into every Deployment, every other byte as it was');
      t.ok((await content(cfg.status.snapshot)).equals(Buffer.from(manifest('old', 3))), 'the Configurator wrote replicas into every Deployment, every other byte as it was');
    }
    return ms;
  };
  const r = await reproduced(BOUND_MS, once, TRIES);
  t.ok(r.ms <= BOUND_MS, `the longest stall while both run is under ${BOUND_MS} ms (tries: ${r.seen.join(', ')} ms)`);
});
