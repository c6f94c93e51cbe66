// apiserver/json.ts memberJson and RawJson: a stored object's JSON used as it is in Table rows and
// PartialObjectMetadata (apiserver/resource-routes.ts), so that their serialisation never enumerates
// the keys of 200,000 labels in one go (issue 15). The text must be byte for byte what serialising
// the object gives: kube's Table row carries the object as its own RawExtension
// (k8s.io/apimachinery/pkg/apis/meta/v1/types.go, TableRow.Object).
import fc from 'fast-check';
import t from 'tap';
import { countMembers, memberJson, RawJson, stringifyJson, stringifyJsonParts } from '../apiserver/json.js';

const tricky = fc.oneof(fc.string(), fc.constantFrom('"', '\\', '\\"', '"\\', '{', '}', '[', ']', ',', ':', ' \n\t', '\u2028', 'é'));
const value = fc.letrec((tie) => ({
  v: fc.oneof({ depthSize: 'small' }, fc.constant(null), fc.boolean(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(), tricky, fc.array(tie('v'), { maxLength: 4 }), fc.dictionary(tricky, tie('v'), { maxKeys: 4 })),
})).v;

t.test('memberJson: the text of each member, as JSON.stringify writes it', async (t) => {
  await fc.assert(
    fc.asyncProperty(fc.dictionary(tricky, value, { maxKeys: 6 }), async (o) => {
      const json = JSON.stringify(o);
      for (const k of Object.keys(o)) if ((await memberJson(json, k)) !== JSON.stringify(o[k])) return false;
      return (await memberJson(json, '\u0000absent')) === undefined;
    }),
    { seed: 15, numRuns: 500 },
  );
  t.equal(await memberJson(' { "a" : 1 , "metadata" : {"b":[1,"}"]} } ', 'metadata'), '{"b":[1,"}"]}', 'white space around members');
  t.equal(await memberJson('[1]', 'metadata'), undefined, 'not an object');
});

t.test('countMembers: the keys of an object, counted in its text (a Table DATA column)', async (t) => {
  await fc.assert(
    fc.asyncProperty(value, async (v) => (await countMembers(JSON.stringify(v))) === (v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.keys(v).length : 0)),
    { seed: 15, numRuns: 500 },
  );
  t.equal(await countMembers(' {} '), 0, 'empty');
  t.equal(await countMembers('{"a":{"b":1,"c":[1,2]},"d":"x,y"}'), 2, 'nested commas not counted');
  const big = JSON.stringify(Object.fromEntries(Array.from({ length: 200_000 }, (_, i) => [`k${i}`, 'v'])));
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  t.equal(await countMembers(big), 200_000);
  clearInterval(timer);
  t.ok(ticks > 0, `timers ran while it counted (${ticks} times)`);
});

t.test('RawJson: serialised as its text, anywhere in a value', async (t) => {
  await fc.assert(
    fc.asyncProperty(value, value, async (a, b) => {
      const want = JSON.stringify({ a, list: [a, b], b });
      const raw = { a: new RawJson(JSON.stringify(a)), list: [new RawJson(JSON.stringify(a)), b], b };
      return (await stringifyJson(raw)) === want && (await stringifyJsonParts(raw)).join('') === want;
    }),
    { seed: 15, numRuns: 300 },
  );
  t.equal(await stringifyJson(new RawJson('{"x":1}')), '{"x":1}', 'at the top');
});

t.test('memberJson of 200,000 labels gives the event loop back', async (t) => {
  const labels: Record<string, string> = {};
  for (let i = 0; i < 200_000; i++) labels[`k${i}`] = 'v';
  const json = JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x', labels } });
  let turns = 0;
  const tick = setInterval(() => turns++, 0);
  const meta = await memberJson(json, 'metadata');
  clearInterval(tick);
  t.equal(meta, JSON.stringify({ name: 'x', labels }));
  t.ok(turns > 0, `timers ran while it scanned (${turns} times)`);
});
