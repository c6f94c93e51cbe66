// The YAML files Configurator and Localization edit, in place and in the worker thread
// (providers/edit-worker.ts): the same rules give the same bytes and the same errors either way, on
// the sample's manifests and on a 3 MiB one; the thread's heap and time limits fail the rule naming
// the file.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { parseConfigData, parseValues, SnapshotEditor } from '../providers/configdata.js';
import { configureEditThread, parseConfigDataOffThread, parseValuesOffThread, SnapshotEdits } from '../providers/edit-worker.js';
import type { Files } from '../providers/types.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SAMPLE = path.join(repoRoot, 'examples/podinfo/component/manifests');
const sample: Files = Object.fromEntries(fs.readdirSync(SAMPLE).map((f) => [f, fs.readFileSync(path.join(SAMPLE, f))]));

type Rule = [file: string, path: string, value: unknown];
const SAMPLE_RULES: Rule[] = [
  ['deploy.yaml', 'spec.template.spec.containers[0].image', 'ghcr.io/acme/podinfo:6.9.0@sha256:' + 'b'.repeat(64)],
  ['deploy.yaml', 'spec.replicas', 2],
  ['configmap.yaml', 'data.PODINFO_UI_MESSAGE', 'Delivered by OCM'],
  ['configmap.yaml', 'data.PODINFO_UI_COLOR', '#112233'],
  ['deploy.yaml', 'metadata.labels', { a: 1, b: 'yes' }],
  ['deploy.yaml', 'spec.template.spec.containers[0].resources', { requests: { memory: '1Gi' } }],
  ['service.yaml', 'spec.ports', [{ port: 80, name: 'http' }, { port: 443 }]],
  ['configmap.yaml', 'data.NEW_KEY', 'added'],
];

/** 3,000 Deployments: about 2.8 MiB. */
function big(): string {
  let out = '';
  for (let i = 0; i < 3000; i++) {
    out += `---\n# deployment ${i}\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-${i}\n  labels: {app: app-${i}, tier: "backend"}\n  annotations:\n    description: "${'padding '.repeat(80)}"\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n        - name: app\n          image: old # localized\n          env:\n            - {name: INDEX, value: "${i}"}\n`;
  }
  return out;
}
const BIG_RULES: Rule[] = [
  ['big.yaml', 'spec.template.spec.containers[0].image', 'ghcr.io/acme/app:2.0.0'],
  ['big.yaml', 'spec.replicas', 3],
  ['big.yaml', 'metadata.labels.tier', 'front, end'],
  ['big.yaml', 'spec.template.spec.containers[0].env', [{ name: 'A', value: 'b' }]],
];

function inline(files: Files, rules: Rule[]): Files | string {
  const ed = new SnapshotEditor(files);
  try {
    for (const [f, p, v] of rules) ed.set(f, p, v, `rule ${p}`);
    return ed.result();
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  }
}
async function threaded(files: Files, rules: Rule[], inPlaceBytes = 0): Promise<Files | string> {
  const ed = new SnapshotEdits(files, inPlaceBytes);
  try {
    for (const [f, p, v] of rules) {
      await ed.open(f, `rule ${p}`);
      await ed.set(f, p, v, `rule ${p}`);
    }
    return await ed.result();
  } catch (e) {
    return `${(e as Error).name}: ${(e as Error).message}`;
  } finally {
    ed.close();
  }
}
function same(t: Test, a: Files | string, b: Files | string, what: string) {
  if (typeof a === 'string' || typeof b === 'string') return t.equal(b, a, what);
  t.same(Object.keys(b), Object.keys(a), `${what}: the same files`);
  for (const k of Object.keys(a)) t.ok(a[k].equals(b[k]), `${what}: ${k} byte for byte`);
}

t.test('the sample: the same bytes in place and in the thread', async (t) => {
  const want = inline(sample, SAMPLE_RULES);
  t.type(want, 'object');
  t.not((want as Files)['deploy.yaml'].toString(), sample['deploy.yaml'].toString(), 'the rules change the files');
  same(t, want, await threaded(sample, SAMPLE_RULES), 'all in the thread');
  same(t, want, await threaded(sample, SAMPLE_RULES, 1000), 'some in the thread');
  for (const r of SAMPLE_RULES) same(t, inline(sample, [r]), await threaded(sample, [r]), `rule ${r[1]} alone`);
});

t.test('a 3 MiB manifest: the same bytes in place and in the thread (the default threshold)', async (t) => {
  const files = { 'big.yaml': Buffer.from(big()), 'small.yaml': Buffer.from('a: 1\n') };
  t.ok(files['big.yaml'].length > 2.7 * 2 ** 20, `${files['big.yaml'].length} bytes`);
  const want = inline(files, [...BIG_RULES, ['small.yaml', 'a', 2]]);
  t.type(want, 'object');
  t.match((want as Files)['big.yaml'].toString(), /image: ghcr\.io\/acme\/app:2\.0\.0 # localized/);
  same(t, want, await threaded(files, [...BIG_RULES, ['small.yaml', 'a', 2]], 64 << 10), 'big in the thread, small in place');
});

t.test('errors are the same in place and in the thread', async (t) => {
  const pad = `# ${'x'.repeat(70 << 10)}\n`;
  const cases: Array<[string, Files, Rule[]]> = [
    ['invalid YAML', { 'a.yaml': Buffer.from(`${pad}a: [1, 2\nb: 1\n`) }, [['a.yaml', 'a', 1]]],
    ['a path in no document', { 'a.yaml': Buffer.from(`${pad}a: {b: 1}\n`) }, [['a.yaml', 'a.c.d', 1]]],
    ['an ambiguous path', { 'a.yaml': Buffer.from(`${pad}a: {}\n---\na: {}\n`) }, [['a.yaml', 'a.b', 1]]],
    ['an invalid path', { 'a.yaml': Buffer.from(`${pad}a: 1\n`) }, [['a.yaml', 'a[', 1]]],
    ['too deep', { 'a.yaml': Buffer.from(`${pad}${'['.repeat(600)}${']'.repeat(600)}\n`) }, [['a.yaml', 'a', 1]]],
    ['a missing file', { 'a.yaml': Buffer.from(`${pad}a: 1\n`) }, [['b.yaml', 'a', 1]]],
    ['an escaping path', { 'a.yaml': Buffer.from(`${pad}a: 1\n`) }, [['../a.yaml', 'a', 1]]],
  ];
  for (const [what, files, rules] of cases) {
    const want = inline(files, rules);
    t.type(want, 'string', `${what}: fails`);
    t.match(want, /^TransformError: /, `${what}: a TransformError`);
    t.equal(await threaded(files, rules, 64 << 10), want, `${what}: the same error from the thread`);
  }
});

t.test('a ConfigData over 64 KiB: parsed in the thread to the same value, or the same error', async (t) => {
  const rules = Array.from({ length: 3000 }, (_, i) => `  - value: (( v${i} ))\n    file: f${i % 7}.yaml\n    path: a.b[${i}]\n`).join('');
  const good = Buffer.from(`apiVersion: config.ocm.software/v1alpha1\nkind: ConfigData\nconfiguration:\n  defaults:\n    enabled: yes\n    when: 2024-01-01\n  rules:\n${rules}`);
  t.ok(good.length > 64 << 10, `${good.length} bytes`);
  const want = parseConfigData(good, 'ConfigData x');
  t.equal((want.configuration!.defaults as Record<string, unknown>).enabled, true, 'YAML 1.1 booleans');
  t.same(await parseConfigDataOffThread(good, 'ConfigData x'), want, 'the same value');
  for (const [what, text] of [
    ['invalid YAML', `${'#'.repeat(70 << 10)}\nconfiguration: [\n`],
    ['a wrong apiVersion', `${'#'.repeat(70 << 10)}\napiVersion: v1\nconfiguration: {}\n`],
    ['invalid rules', `${'#'.repeat(70 << 10)}\nconfiguration:\n  rules: [{file: 1}]\n`],
  ]) {
    let inl = '';
    try {
      parseConfigData(Buffer.from(text), 'ConfigData x');
    } catch (e) {
      inl = `${(e as Error).name}: ${(e as Error).message}`;
    }
    t.match(inl, /^TransformError: ConfigData x/, `${what}: fails in place`);
    const off = await parseConfigDataOffThread(Buffer.from(text), 'ConfigData x').then(() => '', (e: Error) => `${e.name}: ${e.message}`);
    t.equal(off, inl, `${what}: the same error from the thread`);
  }
});

t.test('valuesFrom values over 64 KiB: parsed in the thread to the same value, or the same error', async (t) => {
  const good = Array.from({ length: 5000 }, (_, i) => `k${i}: {on: yes, n: ${i}, s: "v${i}"}\n`).join('');
  t.ok(good.length > 64 << 10, `${good.length} characters`);
  t.same(await parseValuesOffThread(good, 'spec.valuesFrom[0]', false), parseValues(good, 'spec.valuesFrom[0]', false), 'the same value');
  const bad = `${good}x: [1, *secretalias\n`;
  for (const secret of [false, true]) {
    let inl = '';
    try {
      parseValues(bad, 'spec.valuesFrom[0]', secret);
    } catch (e) {
      inl = `${(e as Error).name}: ${(e as Error).message}`;
    }
    t.match(inl, /^TransformError: spec\.valuesFrom\[0\]: not valid YAML or JSON/, `${secret ? 'Secret' : 'ConfigMap'}: fails in place`);
    const off = await parseValuesOffThread(bad, 'spec.valuesFrom[0]', secret).then(() => '', (e: Error) => `${e.name}: ${e.message}`);
    t.equal(off, inl, `${secret ? 'Secret' : 'ConfigMap'}: the same error from the thread`);
  }
});

t.test("over the thread's limits: a TransformError naming the file, and the next edit works", async (t) => {
  const files = { 'big.yaml': Buffer.from(big()) };
  configureEditThread({ heapMib: 16 });
  const mem = await threaded(files, BIG_RULES, 64 << 10);
  t.match(mem, /^TransformError: rule .*: file "big\.yaml": took more than 16 MiB of memory/, 'heap limit');
  configureEditThread({ heapMib: 1024, timeoutMs: 20 });
  const time = await threaded(files, BIG_RULES, 64 << 10);
  t.match(time, /^TransformError: rule .*: file "big\.yaml": took more than 0\.02 s/, 'time limit');
  configureEditThread({ timeoutMs: 60_000 });
  same(t, inline(files, BIG_RULES), await threaded(files, BIG_RULES, 64 << 10), 'then a new thread edits it');
});
