// Normalisation and descriptor (de)serialisation against the OCM conformance vectors
// (test/fixtures/ocm-vectors), byte for byte.
import t from 'tap';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import tar from 'tar-stream';
import { DescriptorError, findResource, parseDescriptor, serializeDescriptor } from '../ocm/descriptor.js';
import { descriptorDigest, jcs, normalise } from '../ocm/normalise.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const VECTORS = path.resolve(repoRoot, 'test/fixtures/ocm-vectors');
const read = (p: string) => fs.readFileSync(path.join(VECTORS, p));
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

async function untar(buf: Buffer): Promise<Map<string, Buffer>> {
  const ex = tar.extract();
  const out = new Map<string, Buffer>();
  const done = new Promise<void>((res, rej) => {
    ex.on('entry', (h, s, next) => {
      const parts: Buffer[] = [];
      s.on('data', (d) => parts.push(d as Buffer)).on('end', () => (out.set(h.name, Buffer.concat(parts)), next()));
    });
    ex.on('finish', res).on('error', rej);
  });
  ex.end(buf);
  await done;
  return out;
}

t.test('CD1 (introspect): the three normalised strings byte for byte', async (t) => {
  const cd = parseDescriptor(read('ocm-lib-norm-test-introspect/CD1.yaml'));
  for (const v of ['v1', 'v2', 'v3'] as const) {
    const expected = read(`ocm-lib-norm-test-introspect/CD1.expected.jsonNormalisation-${v}.txt`);
    const got = normalise(cd, `jsonNormalisation/${v}`);
    t.equal(got.toString(), expected.toString(), `jsonNormalisation/${v}`);
  }
  t.match(sha(normalise(cd, 'jsonNormalisation/v1')), /^60656e9a/);
  t.match(sha(normalise(cd, 'jsonNormalisation/v2')), /^2f8f029e/);
  t.equal(descriptorDigest(cd, 'jsonNormalisation/v3').value, sha(normalise(cd, 'jsonNormalisation/v2')), 'v2 = v3 here');
});

t.test('ocmcli 0.27.0: jsonNormalisation/v3 equals expected.json', async (t) => {
  const cd = parseDescriptor(read('jsonNormalisation-v3-ocmcli-0.27.0/input.yaml'));
  const expected = read('jsonNormalisation-v3-ocmcli-0.27.0/expected.json');
  t.ok(normalise(cd, 'jsonNormalisation/v3').equals(expected), 'byte for byte');
  const d = descriptorDigest(cd, 'jsonNormalisation/v3');
  t.match(d.value, /^c97c44a4/);
  t.same(d, { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'jsonNormalisation/v3', value: sha(expected) });
});

t.test('signed real descriptors: the v3 digest equals the signature digest', async (t) => {
  for (const [file, prefix] of [
    ['sigstore-jsonNormalisation-v3/component-descriptor-signed.yaml', '20d12fdf'],
    ['podinfo-6.8.0-rsa-v3-digest-only/component-descriptor.yaml', '76082d5a'],
  ]) {
    const cd = parseDescriptor(read(file));
    const digest = descriptorDigest(cd, 'jsonNormalisation/v3').value;
    t.match(digest, new RegExp(`^${prefix}`), file);
    for (const s of cd.signatures!) t.equal(digest, s.digest.value, `${file}: ${s.name}`);
  }
});

t.test('legacy jsonNormalisation/v1 (ocm-lib-compat-rsa-v1)', async (t) => {
  const cd = parseDescriptor(read('ocm-lib-compat-rsa-v1/component-archive/component-descriptor.yaml'));
  const expected = read('ocm-lib-compat-rsa-v1/normalized.legacy-jsonNormalisation-v1.txt').toString().trim();
  t.equal(normalise(cd, 'jsonNormalisation/v1', { legacyV1: true }).toString(), expected);
  t.equal(descriptorDigest(cd, 'jsonNormalisation/v1', 'sha256', { legacyV1: true }).value, cd.signatures![0].digest.value);
  t.match(cd.signatures![0].digest.value, /^b06e4c1a/);
  t.match(normalise(cd, 'jsonNormalisation/v1').toString(), /"extraIdentity":null/, 'current v1 writes the nulls');
});

t.test('v1 keeps meta, drops sources, filters labels of references; v2/v3 keep reference labels whole', async (t) => {
  const cd = parseDescriptor(`
meta: {schemaVersion: v2}
component:
  name: acme.org/x
  version: 1.0.0
  provider: '{"name":"acme","labels":[{"name":"p","value":1,"signing":true},{"name":"q","value":2}]}'
  labels: [{name: a, value: {z: 1, b: [true, null]}, signing: true, version: v1}, {name: b, value: x}]
  repositoryContexts: []
  sources: [{name: s, type: git, version: 1.0.0, access: {type: github}}]
  componentReferences: [{name: r, componentName: acme.org/y, version: 2.0.0, labels: [{name: l, value: v}]}]
  resources:
  - {name: nothing, type: t, version: 1.0.0, relation: external, access: {type: none}, digest: {hashAlgorithm: SHA-256, normalisationAlgorithm: genericBlobDigest/v1, value: abc}}
  - {name: dup, type: t, version: 1.0.0, relation: local, extraIdentity: {}, access: {type: localBlob}}
  - {name: dup, type: t, version: 2.0.0, relation: local, extraIdentity: {}, access: {type: localBlob}}
  - {name: loc, type: t, relation: local, access: {type: localBlob}}
`);
  const v1 = normalise(cd, 'jsonNormalisation/v1').toString();
  t.match(v1, '{"meta":[{"schemaVersion":"v2"}]}');
  t.notMatch(v1, '"sources"');
  t.match(v1, '{"provider":[{"labels":[[{"name":"p"},{"signing":true},{"value":1}]]},{"name":"acme"}]}');
  t.match(v1, '{"labels":[[{"name":"a"},{"signing":true},{"value":[{"b":[true,null]},{"z":1}]},{"version":"v1"}]]}');
  t.notMatch(v1, '"name":"l"', 'reference labels filtered in v1');
  const v3 = normalise(cd, 'jsonNormalisation/v3').toString();
  t.match(v3, '"labels":[{"name":"l","value":"v"}]', 'reference labels kept whole in v3');
  t.match(v3, '"provider":{"labels":[{"name":"p","signing":true,"value":1}],"name":"acme"}');
  t.notMatch(v3, '"value":"abc"', 'digest of a none-access resource dropped');
  t.match(v3, '{"name":"loc","relation":"local","type":"t","version":"1.0.0"}', 'local resource defaults to the component version');
  t.match(v3, '"extraIdentity":{"version":"1.0.0"},"name":"dup"', 'decoder defaulting: clash with a non-nil extraIdentity');
  t.match(v3, '{"name":"dup","relation":"local","type":"t","version":"2.0.0"}', 'the last of a clashing group keeps its extraIdentity');
});

t.test('JCS numbers and strings', async (t) => {
  t.equal(jcs({ b: [1.0, 1e21, 1e-7, 0.000001, 'é\u2028"\n'], a: { '\u20ac': 1, '\r': 2 } }), '{"a":{"\\r":2,"€":1},"b":[1,1e+21,1e-7,0.000001,"é\u2028\\"\\n"]}');
});

t.test('serializeDescriptor writes the descriptors of the ctf-compat vectors byte for byte', async (t) => {
  for (const [dir, layer] of [
    ['01/transport-archive', '7164be671f47d4f2b427363b3efd144c2705219e5046d23a28a181ce602cf152'],
    ['02/with-resource', '32aacda7b64939ff7ace455250d3fcefae2c1ba413252b1e2690440f54c13eed'],
    ['02/without-resource', '59b5d947b7b19bc579087cd504af2548bfa6e63a260f7c4f5b3aa8db8dff8dba'],
  ]) {
    const files = await untar(read(`ctf-compat/${dir}/blobs/sha256.${layer}`));
    const text = files.get('component-descriptor.yaml')!.toString();
    t.equal(serializeDescriptor(parseDescriptor(text)), text, dir);
  }
});

t.test('v3alpha1 is read into the same model', async (t) => {
  const v2 = parseDescriptor(read('jsonNormalisation-v3-ocmcli-0.27.0/input.yaml'));
  const v3text = serializeDescriptor({ ...v2, meta: { schemaVersion: 'ocm.software/v3alpha1' } });
  t.match(v3text, /^apiVersion: ocm.software\/v3alpha1\nkind: ComponentVersion\n/);
  const v3 = parseDescriptor(v3text);
  t.equal(v3.meta.schemaVersion, 'ocm.software/v3alpha1');
  t.ok(normalise(v3, 'jsonNormalisation/v3').equals(read('jsonNormalisation-v3-ocmcli-0.27.0/expected.json')));
  t.equal(serializeDescriptor(v3), v3text, 'round trip');
});

t.test('parseDescriptor: JSON input, clear errors, findResource', async (t) => {
  const cd = parseDescriptor(JSON.stringify(parseDescriptor(read('jsonNormalisation-v3-ocmcli-0.27.0/input.yaml'))));
  t.equal(findResource(cd, 'ocmcli', { os: 'linux', architecture: 'arm64' })?.digest?.value.slice(0, 8), '90d3a825');
  t.equal(findResource(cd, 'ocmcli-image')?.type, 'ociImage');
  t.equal(findResource(cd, 'nope'), undefined);
  t.throws(() => parseDescriptor('component: {}'), { name: 'DescriptorError', message: /meta.schemaVersion/ });
  const err = (() => {
    try {
      parseDescriptor('meta: {schemaVersion: v2}\ncomponent: {name: x, resources: [{name: r}]}');
    } catch (e) {
      return e as Error;
    }
  })();
  t.ok(err instanceof DescriptorError);
  for (const re of [/component.version is required/, /component.provider is required/, /resources\[0\] \(r\).type is required/, /resources\[0\] \(r\).access is required/]) t.match(err?.message, re);
  t.throws(() => parseDescriptor('meta: {schemaVersion: v2}\ncomponent: {name: x, version: 1.0, provider: p}'), { message: /component.version must be a string/ });
  t.throws(() => parseDescriptor(': : :\n  - ['), { message: /neither valid YAML nor JSON/ });
  t.throws(() => parseDescriptor('meta: {schemaVersion: v2}\ncomponent: {name: x, version: "1", provider: p, creationTime: yesterday}'), { message: /component.creationTime "yesterday" is not an RFC 3339 time/ });
  const offset = parseDescriptor('meta: {schemaVersion: v2}\ncomponent: {name: x, version: "1", provider: p, creationTime: "2025-01-01T01:00:00.6+01:00"}');
  t.match(serializeDescriptor(offset), 'creationTime: "2025-01-01T00:00:01Z"', 'UTC, rounded to the second, as Go keeps it');
});
