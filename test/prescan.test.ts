// The pre-parse scanner (apiserver/prescan.ts): its YAML depth is never below the depth the `yaml`
// package builds (property over YAML the package itself writes in every style, and the project's
// and its dependencies' YAML files), hostile shapes from issue 15 are refused in one linear pass,
// and documents and anchors are counted.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import t from 'tap';
import YAML from 'yaml';
import { valueDepth } from '../apiserver/limits.js';
import { MAX_BYTES, MAX_DEPTH, prescanJson, prescanYaml, PrescanError } from '../apiserver/prescan.js';

/** The smallest maxDepth prescanYaml accepts `text` with (its depth estimate). */
function estimate(text: string): number {
  let lo = 0;
  let hi = 4096;
  while (lo < hi) {
    const m = (lo + hi) >> 1;
    try {
      prescanYaml(text, 'x', { maxDepth: m, maxDocuments: 1e9, maxAliases: 1e9 });
      hi = m;
    } catch (e) {
      if (!(e instanceof PrescanError) || e.limit !== 'depth') throw e;
      lo = m + 1;
    }
  }
  return lo;
}
const realDepth = async (text: string) => Math.max(0, ...(await Promise.all(YAML.parseAllDocuments(text, { logLevel: 'error' }).map((d) => valueDepth(d.toJS({ maxAliasCount: -1 }))))));
const limitOf = (f: () => void) => {
  try {
    f();
  } catch (e) {
    if (e instanceof PrescanError) return e.limit;
    throw e;
  }
  return undefined;
};

t.test('the YAML depth estimate is never below the real depth (YAML as the yaml package writes it)', async (t) => {
  const str = fc.oneof(fc.string({ maxLength: 6 }), fc.constantFrom('- a', 'a: b', '|', '>', '#x', ' # y', '[', ']', '{', '}', '"', "'", ': ', '---', '...', '&a', '*a', 'k:\n  - x', 'a\nb', 'x: [y: z]'));
  const value = fc.letrec((tie) => ({ v: fc.oneof({ depthSize: 'small' }, str, fc.integer(), fc.constant(null), fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(str, tie('v'), { maxKeys: 4 })) })).v;
  const style = fc.record({ indentSeq: fc.boolean(), indent: fc.integer({ min: 1, max: 4 }), collectionStyle: fc.constantFrom('any', 'block', 'flow') as fc.Arbitrary<'any' | 'block' | 'flow'>, blockQuote: fc.constantFrom(true, false, 'folded', 'literal') as fc.Arbitrary<boolean | 'folded' | 'literal'> });
  let checked = 0;
  await fc.assert(
    fc.asyncProperty(value, style, async (v, o) => {
      const text = YAML.stringify(v, o);
      let d: number;
      try {
        d = await realDepth(text);
      } catch {
        return true; // the package writes a few texts it cannot read back
      }
      checked++;
      return estimate(text) >= d;
    }),
    { numRuns: 3000, seed: 15 },
  );
  t.ok(checked > 2500, `${checked} texts checked`);
});

t.test('the estimate is exact on real files: the project, its fixtures and its dependencies', async (t) => {
  const files = execFileSync('find', ['deploy', 'examples', 'test/fixtures', 'node_modules/', '-name', '*.yaml', '-o', '-name', '*.yml'], { encoding: 'utf8' }).trim().split('\n').filter(Boolean);
  let n = 0;
  const off: string[] = [];
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    let d: number;
    try {
      if (YAML.parseAllDocuments(text, { logLevel: 'error' }).some((x) => x.errors.length)) continue;
      d = await realDepth(text);
    } catch {
      continue;
    }
    n++;
    const e = estimate(text);
    if (e < d || e > d + 1) off.push(`${f}: real ${d}, estimate ${e}`);
  }
  t.ok(n > 20, `${n} files`);
  t.same(off, [], 'no file under its real depth, none more than one level over');
});

t.test("issue 15's shapes are refused, fast, with the limit named", async (t) => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const cases: [string, string, 'json' | 'yaml', string][] = [
    ['30000 nested [ as YAML (apply-patch, reviews)', deep(30_000), 'yaml', 'depth'],
    ['30000 nested [ as JSON', deep(30_000), 'json', 'depth'],
    ['a flow mapping 30000 deep', `${'{a: '.repeat(30_000)}1${'}'.repeat(30_000)}`, 'yaml', 'depth'],
    ['implicit pairs in flow sequences 300 deep (600 levels)', `${'[a: '.repeat(300)}1${']'.repeat(300)}`, 'yaml', 'depth'],
    ['block mappings 600 deep', Array.from({ length: 600 }, (_, i) => `${' '.repeat(i)}k:`).join('\n'), 'yaml', 'depth'],
    ['sequences of sequences on one line', `x: ${'- '.repeat(3000)}1`, 'yaml', 'depth'],
    ['a sequence under each key at its column (2 levels per indent)', Array.from({ length: 300 }, (_, i) => `${' '.repeat(2 * i)}- k:`).join('\n'), 'yaml', 'depth'],
    ['a descriptor nested 30000 deep', `meta: {schemaVersion: v2}\ncomponent:\n  name: x\n  labels: ${deep(30_000)}\n`, 'yaml', 'depth'],
    ['1001 anchors', Array.from({ length: 1001 }, (_, i) => `k${i}: &a${i} v`).join('\n'), 'yaml', 'aliases'],
    ['two documents', 'a: 1\n---\nb: 2\n', 'yaml', 'documents'],
    ['a document after an end marker', 'a: 1\n...\nb: 2\n', 'yaml', 'documents'],
    ['over 3 MiB', `a: "${'x'.repeat(MAX_BYTES)}"`, 'yaml', 'size'],
  ];
  for (const [what, text, format, limit] of cases) {
    const started = performance.now();
    const got = limitOf(() => (format === 'json' ? prescanJson(text) : prescanYaml(text)));
    const ms = performance.now() - started;
    t.equal(got, limit, what);
    t.ok(ms < 100, `${what}: ${ms.toFixed(1)} ms`);
  }
  try {
    prescanYaml(deep(600), 'the object');
  } catch (e) {
    t.equal((e as Error).message, `the object nests deeper than the limit of ${MAX_DEPTH} levels`, 'the message names the limit');
  }
});

t.test('what the limits let through', async (t) => {
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  t.equal(limitOf(() => prescanJson(deep(MAX_DEPTH))), undefined, 'JSON exactly at the depth limit');
  t.equal(limitOf(() => prescanJson(deep(MAX_DEPTH + 1))), 'depth', 'one more');
  t.equal(limitOf(() => prescanJson(`{"a":"${'['.repeat(10_000)}"}`)), undefined, 'brackets inside a JSON string');
  t.equal(limitOf(() => prescanYaml(`a: "${'['.repeat(10_000)}"\nb: '${'{'.repeat(10_000)}'\nc: x${'['.repeat(10_000)}\n`)), undefined, 'brackets inside quoted and plain YAML scalars');
  t.equal(limitOf(() => prescanYaml(`a: |\n${Array.from({ length: 2000 }, (_, i) => `  ${' '.repeat(i % 50)}- [{`).join('\n')}\nb: 1\n`)), undefined, 'a block scalar is text, whatever it looks like');
  t.equal(limitOf(() => prescanYaml('---\na: 1\n...\n')), undefined, 'one document with both markers');
  t.equal(limitOf(() => prescanYaml('%YAML 1.2\n---\na: 1\n')), undefined, 'a directive');
  t.equal(limitOf(() => prescanYaml(Array.from({ length: 500 }, (_, i) => `k${i}: &a${i} v\nr${i}: *a${i}`).join('\n'))), undefined, '1000 anchors and aliases');
  t.equal(limitOf(() => prescanYaml('a: "x # not a comment [" # a comment [[[\nb: 1\n')), undefined, 'comments');
  t.equal(await realDepth('a:\n- b:\n  - c: 1\n'), 5);
  t.equal(estimate('a:\n- b:\n  - c: 1\n'), 5, 'sequences at their mapping key column count');
});
