// Issue 12, item 7 (the snapshot side): the same version re-pushed with different signed content.
// The OCMComponent sees the new manifest digest; every Source and Action on it runs again, because
// what they key their last run on includes the component's status (manifest digest and all), not
// only its version. Pulled from the registry: the Source's and the Action's new snapshots hold the
// new bytes, and nothing else moves afterwards.
import t from 'tap';
import type { ComponentSpec } from '../ocm/publish.js';
import { GV, VerifiedComponent } from './helpers/verified-component.js';

const NS = 'repush';
let v: VerifiedComponent;

const json = (args: string[]) => v.json(args);
async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const got = await fn().catch(() => undefined);
    if (got !== undefined) return got;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
const readyWith = (kind: string, name: string, pred: (o: any) => boolean = () => true) =>
  until(`${kind}/${name}`, async () => {
    const o = await json(['get', kind, name, '-n', NS]);
    return o.status?.conditions?.find((c: { type: string }) => c.type === 'Ready')?.status === 'True' && o.status.snapshot && pred(o) ? o : undefined;
  });
/** Events of one object, as kubectl lists them. */
async function events(kind: string, name: string): Promise<Array<{ type: string; reason: string; message: string }>> {
  return (await json(['get', 'events', '-n', NS])).items.filter((e: any) => e.involvedObject?.kind === kind && e.involvedObject?.name === name);
}
const content = async (snapshot: string): Promise<string> => (await v.file(snapshot, 'data.yaml')).toString('utf8');
let image = '';
const spec = (text: string): ComponentSpec => ({
  name: 'ocm.software/test/repush',
  version: '2.0.0',
  provider: 'acme',
  resources: [
    { name: 'data', type: 'blob', input: { type: 'utf8', text, mediaType: 'application/yaml' } },
    {
      name: 'img',
      type: 'ociImage',
      relation: 'external',
      // A minimal image next to the component (pushed in t.before): publishing records its digest.
      access: { type: 'ociArtifact', imageReference: image },
    },
  ],
});

t.before(async () => {
  v = await VerifiedComponent.start(NS);
  image = v.image;
  await v.create(spec('image: old # first push\n'), '2s', [
    { apiVersion: GV, kind: 'Source', metadata: { name: 'src', namespace: NS }, spec: { componentRef: { name: 'comp' }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: 'data' } } },
    { apiVersion: GV, kind: 'Localization', metadata: { name: 'loc', namespace: NS }, spec: { rules: [{ resource: { name: 'img' }, file: 'data.yaml', image: 'image' }] } },
    { apiVersion: GV, kind: 'Action', metadata: { name: 'loc', namespace: NS }, spec: { componentRef: { name: 'comp' }, sourceRef: { kind: 'Source', name: 'src' }, providerRef: { apiVersion: GV, kind: 'Localization', name: 'loc' } } },
  ]);
});
t.teardown(() => v?.s.stop());

t.test('new signed content under the same version flows through Source and Action', async (t) => {
  const src1 = await readyWith('source', 'src');
  const act1 = await readyWith('action', 'loc');
  t.equal(await content(src1.status.snapshot), 'image: old # first push\n');
  t.equal(await content(act1.status.snapshot), `image: ${image} # first push\n`);
  const comp1 = await json(['get', 'ocmcomponent', 'comp', '-n', NS]);

  await v.publish(spec('image: old # pushed again, same version\n'), true);
  const comp2 = await until('the new manifest digest', async () => {
    const c = await json(['get', 'ocmcomponent', 'comp', '-n', NS]);
    return c.status.manifestDigest && c.status.manifestDigest !== comp1.status.manifestDigest ? c : undefined;
  });
  t.equal(comp2.status.resolvedVersion, '2.0.0', 'the same version');
  const src2 = await readyWith('source', 'src', (o) => o.status.snapshot !== src1.status.snapshot);
  t.equal(await content(src2.status.snapshot), 'image: old # pushed again, same version\n', "the Source's new snapshot holds the new bytes");
  const act2 = await readyWith('action', 'loc', (o) => o.status.snapshot !== act1.status.snapshot && o.status.inputSnapshot === src2.status.snapshot);
  t.equal(await content(act2.status.snapshot), `image: ${image} # pushed again, same version\n`, "and the Action's, from it");

  // Every Source and Action it moved says so in an Event, and records the content it runs on.
  const moved = new RegExp(`OCMComponent comp moved to new content of ocm.software/test/repush:2\\.0\\.0 \\(the same version\\): manifest ${comp1.status.manifestDigest} is now ${comp2.status.manifestDigest}`);
  for (const [kind, name] of [['Source', 'src'], ['Action', 'loc']]) {
    const e = await until(`a ComponentContentChanged Event on ${kind}/${name}`, async () => (await events(kind, name)).find((x) => x.reason === 'ComponentContentChanged'));
    t.match(e.message, moved, `${kind}/${name}: an Event naming both manifests`);
    t.equal((await json(['get', kind.toLowerCase(), name, '-n', NS])).status.componentDigest, comp2.status.manifestDigest, `${kind}/${name} records the content it runs on`);
  }
  const d = await v.s.kubectl(['describe', 'source', 'src', '-n', NS]);
  t.match(d.stdout, /ComponentContentChanged/, 'kubectl describe shows it');

  // And then it rests: three intervals of the component later, no further snapshot.
  await new Promise((r) => setTimeout(r, 6000));
  t.equal((await json(['get', 'source', 'src', '-n', NS])).status.snapshot, src2.status.snapshot);
  t.equal((await json(['get', 'action', 'loc', '-n', NS])).status.snapshot, act2.status.snapshot);
  for (const [kind, name] of [['Source', 'src'], ['Action', 'loc']]) {
    t.equal((await events(kind, name)).filter((x) => x.reason === 'ComponentContentChanged').length, 1, `one Event on ${kind}/${name} for one change`);
  }
});
