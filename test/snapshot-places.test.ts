// Issue 12, item 4: every producer has a snapshot repository and Snapshot object names that no other
// producer can have. Under the scheme before, Source `a` with provider `b-c` and Source `a-b` with
// provider `c` pushed to one repository (`<ns>/<component>/a-b-c`), and a Source and an Action both
// named `x` shared repository (provider `x` each) and Snapshot names (`x-<tag>`). Here each one's
// Snapshot is pulled from the registry and must hold that producer's bytes. A snapshot still in a
// place of the scheme before moves to its own place on the first run after a restart (an upgrade).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import t from 'tap';
import { archiveToFiles } from '../providers/content.js';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { pullSnapshot } from '../registry/snapshot.js';
import { freePort } from './helpers/distribution.js';
import { kubectlJson, yamlDocs, startServer, tempDir, type TestServer } from './helpers/server.js';

const GV = 'delivery.ocm.software/v1alpha1';
const NS = 'places';
let s: TestServer;
let client: OciClient;

const yaml = yamlDocs;
const json = (args: string[]) => kubectlJson(s, args);
async function ready(kind: string, name: string, unlike?: string) {
  for (let i = 0; i < 300; i++) {
    const o = await json(['get', kind, name, '-n', NS]);
    const c = o.status?.conditions?.find((x: { type: string }) => x.type === 'Ready');
    if (c?.status === 'True' && o.status.snapshot && o.status.snapshot !== unlike) return o;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${kind}/${name} never became Ready with a snapshot${unlike ? ` other than ${unlike}` : ''}: ${JSON.stringify((await json(['get', kind, name, '-n', NS])).status)}`);
}
async function pulled(snapshotName: string) {
  const snap = await json(['get', 'snapshot', snapshotName, '-n', NS]);
  const files = await archiveToFiles(await pullSnapshot(client, `${snap.status.repositoryURL}:${snap.status.tag}`, { expectedDigest: snap.status.digest }));
  return { snap, files: Object.fromEntries(Object.entries(files).map(([k, v]) => [k, v.toString('utf8')])) };
}

const A = 'image: old # resource one\n';
const C = 'image: registry.example.internal/app:1.0.0 # resource one\n'; // A, localized by Action x
const B = 'b: from resource two\n';

let registryPort: number;
t.before(async () => {
  registryPort = await freePort(); // the same after the restart below: the OCM repository lives in it
  s = await startServer({ reconcilers: 'all', keep: true, args: ['--registry-port', String(registryPort)] });
  const registry = s.logs.map((l) => /"registry":"([^"]+)"/.exec(l)?.[1]).find(Boolean)!;
  const certs = join(s.dataDir, 'certs');
  client = new OciClient({ ca: readFileSync(join(certs, 'ca.crt'), 'utf8'), cert: readFileSync(join(certs, 'admin.crt'), 'utf8'), key: readFileSync(join(certs, 'admin.key'), 'utf8') });
  await publish(
    new OcmRepository(client, `${registry}/${NS}/ocm`),
    {
      name: 'ocm.software/test/places',
      version: '1.0.0',
      provider: 'acme',
      resources: [
        { name: 'one', type: 'blob', input: { type: 'utf8', text: A, mediaType: 'application/yaml' } },
        { name: 'two', type: 'blob', input: { type: 'utf8', text: B, mediaType: 'application/yaml' } },
        {
          name: 'img',
          type: 'ociImage',
          relation: 'external',
          access: { type: 'ociArtifact', imageReference: 'registry.example.internal/app:1.0.0' },
          digest: { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'ociArtifactDigest/v1', value: '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08' },
        },
      ],
    },
    tempDir(),
  );
  await s.kubectl(['create', 'namespace', NS]);
  const res = (name: string, resource: string) => ({ apiVersion: GV, kind: 'OCMResource', metadata: { name, namespace: NS }, spec: { resource } });
  const source = (name: string, provider: string) => ({
    apiVersion: GV,
    kind: 'Source',
    metadata: { name, namespace: NS },
    spec: { componentRef: { name: 'comp' }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: provider } },
  });
  const a = await s.kubectl(['apply', '-f', '-'], {
    input: yaml(
      { apiVersion: GV, kind: 'OCMComponent', metadata: { name: 'comp', namespace: NS }, spec: { name: 'ocm.software/test/places', version: '1.0.0', repository: { url: `${registry}/${NS}/ocm` } } },
      res('b-c', 'one'),
      res('c', 'two'),
      res('x', 'two'),
      source('a', 'b-c'), // A
      source('a-b', 'c'), // B
      source('x', 'x'), // B
      { apiVersion: GV, kind: 'Localization', metadata: { name: 'x', namespace: NS }, spec: { rules: [{ resource: { name: 'img' }, file: 'one.yaml', image: 'image' }] } },
      // Action x: Source a's files, localized: C
      { apiVersion: GV, kind: 'Action', metadata: { name: 'x', namespace: NS }, spec: { componentRef: { name: 'comp' }, sourceRef: { kind: 'Source', name: 'a' }, providerRef: { apiVersion: GV, kind: 'Localization', name: 'x' } } },
    ),
  });
  if (a.code !== 0) throw new Error(a.stderr);
});
t.teardown(() => s?.stop());

t.test('producers whose names used to collide each get a repository and Snapshot names of their own', async (t) => {
  const producers: [string, string, string, string][] = [
    ['source', 'a', 'one.yaml', A],
    ['source', 'a-b', 'two.yaml', B],
    ['source', 'x', 'two.yaml', B],
    ['action', 'x', 'one.yaml', C],
  ];
  const repos = new Set<string>();
  const names = new Set<string>();
  for (const [kind, name, file, content] of producers) {
    const o = await ready(kind, name);
    const { snap, files } = await pulled(o.status.snapshot);
    t.same(files, { [file]: content }, `${kind}/${name}: the registry serves its own bytes`);
    t.equal(snap.metadata.ownerReferences[0].uid, o.metadata.uid, `${kind}/${name} owns ${snap.metadata.name}`);
    t.equal(snap.metadata.name, `${name}-${kind}-${snap.status.tag}`, 'Snapshot name: <producer>-<kind>-<tag>');
    repos.add(snap.status.repositoryURL.replace(/^[^/]+\//, ''));
    names.add(snap.metadata.name);
  }
  t.same([...repos].sort(), ['places/comp/action/x/x', 'places/comp/source/a-b/c', 'places/comp/source/a/b-c', 'places/comp/source/x/x'], 'four producers, four repositories');
  t.equal(names.size, 4, 'and four Snapshot names');
  const tags = (await json(['get', 'snapshots', '-n', NS])).items.length;
  t.equal(tags, 4, 'one Snapshot each');
});

t.test('a snapshot in a place of the scheme before moves to its own place after a restart', async (t) => {
  if (process.env.TEST_STORAGE === 'etcd') return t.pass('skipped: edits the LevelDB store directly');
  const before = await ready('source', 'a-b');
  const dataDir = s.dataDir;
  await s.stop();
  // As an older server left it: in the repository Source a (provider b-c) shared with it. Snapshots
  // are the server's to write (no API for it), so the stopped server's store is edited directly.
  const db = new Level<string, string>(join(dataDir, 'db'), { valueEncoding: 'utf8' });
  let edited = 0;
  for await (const [k, v] of db.iterator()) {
    if (!k.startsWith('o') || !k.endsWith(`/snapshots/${NS}/${before.status.snapshot}`)) continue;
    const o = JSON.parse(v);
    o.status.repositoryURL = `${o.status.repositoryURL.split('/')[0]}/places/comp/a-b-c`;
    await db.put(k, JSON.stringify(o));
    edited++;
  }
  await db.close();
  t.equal(edited, 1, 'the Snapshot object rewritten in the store');
  s = await startServer({ dataDir, reconcilers: 'all', args: ['--registry-port', String(registryPort)] });
  const after = await ready('source', 'a-b', before.status.snapshot);
  const { snap, files } = await pulled(after.status.snapshot);
  t.equal(snap.status.repositoryURL.replace(/^[^/]+\//, ''), 'places/comp/source/a-b/c', 'now in its own place');
  t.same(files, { 'two.yaml': B }, 'with the same bytes');
  t.not(snap.metadata.name, before.status.snapshot, 'as a new Snapshot');
  const a = await ready('source', 'a');
  t.equal((await json(['get', 'snapshot', a.status.snapshot, '-n', NS])).status.repositoryURL.replace(/^[^/]+\//, ''), 'places/comp/source/a/b-c', 'Source a stays where it is');
});

t.test('Snapshot object names cannot collide, long names included', async (t) => {
  const { snapshotObjectName } = await import('../reconcilers/snapshots.js');
  const seen = new Map<string, string>();
  const names = ['a', 'a-b', 'a-source', 'a-action', 'source', 'action', 'a-source-1', 'x'.repeat(234), 'x'.repeat(235), 'x'.repeat(253), `${'x'.repeat(252)}y`];
  for (const kind of ['Source', 'Action'] as const)
    for (const name of names)
      for (const tag of ['1', '1700000000', '17000000001']) {
        const n = snapshotObjectName(kind, name, tag);
        t.ok(n.length <= 253 && /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(n), `${n.length}: a valid object name`) || t.bailout();
        const key = `${kind}/${name}@${tag}`;
        if (seen.has(n)) t.fail(`${key} and ${seen.get(n)} share ${n}`);
        seen.set(n, key);
      }
  t.equal(seen.size, 2 * names.length * 3, 'as many names as (kind, producer, tag)');
  t.equal(snapshotObjectName('Source', 'manifests', '1700000000'), 'manifests-source-1700000000');
  t.match(snapshotObjectName('Action', 'x'.repeat(253), '1700000000'), /^x+-action-[a-f0-9]{16}-1700000000$/);
});
