// Signature verification and signing against the OCM vectors, resource digests, and the CLI.
import t from 'tap';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type ComponentDescriptor, parseDescriptor, serializeDescriptor } from '../ocm/descriptor.js';
import { descriptorDigest } from '../ocm/normalise.js';
import { genericBlobDigest, ociArtifactDigest, signDescriptor, verifyDescriptor, verifyResourceDigest } from '../ocm/signing.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const VECTORS = path.resolve(repoRoot, 'test/fixtures/ocm-vectors');
const vec = (p: string) => path.join(VECTORS, p);
const read = (p: string) => fs.readFileSync(vec(p));
const CLI = path.join(repoRoot, 'dist/cli/ocm.js');

const COMPAT = 'ocm-lib-compat-rsa-v1';
const PRIVATE = read('ocm-controller-testdata/pkg_ocm_testdata_private_key.pem').toString();
const PUBLIC1 = read('ocm-controller-testdata/pkg_ocm_testdata_public1_key.pem').toString();
const PUBLIC2 = read('ocm-controller-testdata/pkg_ocm_testdata_public2_key.pem').toString();
const compat = () => parseDescriptor(read(`${COMPAT}/component-archive/component-descriptor.yaml`));
const ocmcli = () => parseDescriptor(read('jsonNormalisation-v3-ocmcli-0.27.0/input.yaml'));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ocm-signing-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

t.test('legacy v1 RSASSA-PKCS1-V1_5 signature of the Go library verifies with rsa.pub', async (t) => {
  const r = verifyDescriptor(compat(), { name: 'test', publicKeyPem: read(`${COMPAT}/rsa.pub`).toString() });
  t.ok(r.ok, r.ok ? 'verified' : r.reason);
  if (r.ok) t.equal(r.signature.digest.value.slice(0, 8), 'b06e4c1a');
  t.ok(verifyDescriptor(compat(), { publicKeyPem: read(`${COMPAT}/rsa.pub`).toString() }).ok, 'without a name');
  t.ok(verifyDescriptor(compat(), { publicKeyPem: read(`${COMPAT}/rsa.priv`).toString() }).ok, 'a private key gives its public key');
});

t.test('failures have clear reasons', async (t) => {
  const wrongKey = verifyDescriptor(compat(), { name: 'test', publicKeyPem: PUBLIC2 });
  t.notOk(wrongKey.ok);
  t.match(!wrongKey.ok && wrongKey.reason, /signature "test" \(RSASSA-PKCS1-V1_5\) does not verify with the given public key/);

  const tampered = compat();
  tampered.component.resources[0].version = '1.0.1';
  const r = verifyDescriptor(tampered, { name: 'test', publicKeyPem: read(`${COMPAT}/rsa.pub`).toString() });
  t.notOk(r.ok);
  t.match(!r.ok && r.reason, /^digest mismatch: signature "test" was made for jsonNormalisation\/v1 sha256 digest b06e4c1a.*changed after it was signed/);

  t.match(verifyDescriptor(compat(), { name: 'other', publicKeyPem: PUBLIC1 }), { ok: false, reason: /has no signature named "other" \(it has "test"\)/ });
  t.match(verifyDescriptor(ocmcli(), { publicKeyPem: PUBLIC1 }), { ok: false, reason: /is not signed/ });
  t.match(verifyDescriptor(compat(), { publicKeyPem: 'not a key' }), { ok: false, reason: /public key is not a PEM/ });
  const sigstore = parseDescriptor(read('sigstore-jsonNormalisation-v3/component-descriptor-signed.yaml'));
  t.match(verifyDescriptor(sigstore, { name: 'sigstore-legacy', publicKeyPem: PUBLIC1 }), { ok: false, reason: /uses algorithm "sigstore", which is not supported/ });
  const podinfo = parseDescriptor(read('podinfo-6.8.0-rsa-v3-digest-only/component-descriptor.yaml'));
  t.match(verifyDescriptor(podinfo, { publicKeyPem: PUBLIC1 }), { ok: false, reason: /does not verify with the given public key/ }, 'digest matches, key does not');
});

t.test('sign with the ocm-controller test key, verify with public1 (PKCS1v15 and PSS)', async (t) => {
  for (const algorithm of ['RSASSA-PKCS1-V1_5', 'RSASSA-PSS'] as const) {
    for (const normalisation of ['jsonNormalisation/v1', 'jsonNormalisation/v2', 'jsonNormalisation/v3'] as const) {
      const signed = signDescriptor(ocmcli(), { name: 'acme', privateKeyPem: PRIVATE, algorithm, normalisation });
      const sig = signed.signatures!.find((s) => s.name === 'acme')!;
      t.equal(sig.signature.mediaType, algorithm === 'RSASSA-PSS' ? 'application/vnd.ocm.signature.rsa.pss' : 'application/vnd.ocm.signature.rsa');
      t.same(sig.digest, descriptorDigest(ocmcli(), normalisation));
      const reparsed = parseDescriptor(serializeDescriptor(signed));
      t.ok(verifyDescriptor(reparsed, { name: 'acme', publicKeyPem: PUBLIC1 }).ok, `${algorithm} ${normalisation}`);
      t.notOk(verifyDescriptor(reparsed, { name: 'acme', publicKeyPem: PUBLIC2 }).ok, `${algorithm} ${normalisation}: wrong key`);
    }
  }
  const twice = signDescriptor(signDescriptor(ocmcli(), { name: 'a', privateKeyPem: PRIVATE }), { name: 'b', privateKeyPem: PRIVATE, algorithm: 'RSASSA-PSS' });
  t.same(twice.signatures!.map((s) => s.name), ['a', 'b']);
  t.equal(signDescriptor(twice, { name: 'a', privateKeyPem: PRIVATE }).signatures!.length, 2, 'a signature of the same name is replaced');
  t.ok(verifyDescriptor(twice, { name: 'a', publicKeyPem: PUBLIC1 }).ok, 'the other signatures do not disturb the digest');
  t.equal(verifyDescriptor(twice, { publicKeyPem: PUBLIC1 }).ok, true);

  const noDigest: ComponentDescriptor = ocmcli();
  delete noDigest.component.resources[0].digest;
  t.throws(() => signDescriptor(noDigest, { name: 'x', privateKeyPem: PRIVATE }), { message: /resource "ocmcli" has no digest/ });
  t.throws(() => signDescriptor(ocmcli(), { name: 'x', privateKeyPem: PUBLIC1 }), { message: /private key is not a PEM private key/ });
});

t.test('a PEM signature (application/x-pem-file) verifies', async (t) => {
  const signed = signDescriptor(ocmcli(), { name: 'pem', privateKeyPem: PRIVATE });
  const s = signed.signatures![0].signature;
  const b64 = Buffer.from(s.value, 'hex').toString('base64').replace(/.{64}/g, '$&\n');
  s.value = `-----BEGIN SIGNATURE-----\nSignature Algorithm: RSASSA-PKCS1-V1_5\n\n${b64}\n-----END SIGNATURE-----\n`;
  s.mediaType = 'application/x-pem-file';
  t.ok(verifyDescriptor(signed, { publicKeyPem: PUBLIC1 }).ok);
});

t.test('resource digests', async (t) => {
  const blob = read(`${COMPAT}/component-archive/blobs/sha256.c893900c1106f13d55648a425f502dd6518e40eaa3ac7d24023d4c73d55dc12e`);
  t.equal(blob.length, 17);
  const res = compat().component.resources[0];
  t.same(genericBlobDigest(blob).value, res.digest!.value);
  t.same(await verifyResourceDigest(res, blob), { ok: true }, 'hash algorithm spelled sha256');
  t.match(await verifyResourceDigest(res, Buffer.concat([blob, Buffer.from('x')])), { ok: false, reason: /digest mismatch for resource "text"/ });
  t.match(await verifyResourceDigest({ ...res, digest: null }, blob), { ok: false, reason: /has no digest/ });

  const chart = read('ctf-compat/02/with-resource/blobs/sha256.e40e3a2f1ab1a98328dfd14539a79d27aff5c4d5c34cd16a85f0288bfa76490b');
  const d = await ociArtifactDigest(chart);
  t.same(d, { hashAlgorithm: 'SHA-256', normalisationAlgorithm: 'ociArtifactDigest/v1', value: '62be4af3382a4493cb7f1dd4ec47bcb28f1863b615fc9e4a1dceefbe93898dd0' });
  const mychart = { name: 'mychart', version: '6.7.1', type: 'helmChart', access: { type: 'localBlob' }, digest: d };
  t.same(await verifyResourceDigest(mychart, chart), { ok: true }, 'OCI layout blob');
  t.same(await verifyResourceDigest(mychart, { manifestDigest: `sha256:${d.value}` }), { ok: true }, 'manifest digest');
  t.match(await verifyResourceDigest(mychart, { manifestDigest: `sha256:${'0'.repeat(64)}` }), { ok: false, reason: /digest mismatch/ });
});

const run = (args: string[]) =>
  promisify(execFile)(process.execPath, [CLI, ...args], { encoding: 'utf8' }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (e: any) => ({ code: e.code as number, stdout: e.stdout as string, stderr: e.stderr as string }),
  );

t.test('CLI: exit codes and output', async (t) => {
  const archive = vec(`${COMPAT}/component-archive`);
  let r = await run(['verify', '--descriptor', archive, '--public-key', vec(`${COMPAT}/rsa.pub`), '--signature', 'test']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /signature "test" verified/);

  r = await run(['verify', '--descriptor', archive, '--public-key', vec('ocm-controller-testdata/pkg_ocm_testdata_public2_key.pem')]);
  t.equal(r.code, 1);
  t.match(r.stderr, /does not verify with the given public key/);

  const tampered = path.join(tmp, 'tampered.yaml');
  fs.writeFileSync(tampered, read(`${COMPAT}/component-archive/component-descriptor.yaml`).toString().replace('version: 1.0.0\n  sources', 'version: 1.0.1\n  sources'));
  r = await run(['verify', '--descriptor', tampered, '--public-key', vec(`${COMPAT}/rsa.pub`)]);
  t.equal(r.code, 1);
  t.match(r.stderr, /digest mismatch/);

  r = await run(['hash', '--descriptor', vec('jsonNormalisation-v3-ocmcli-0.27.0/input.yaml')]);
  t.equal(r.stdout, 'c97c44a4dca9fc85d4e634a617b662f72935cc202d52a46aa9367c937458b35b\n');
  r = await run(['hash', '--descriptor', archive, '--normalisation', 'jsonNormalisation/v1']);
  t.equal(r.code, 0);
  t.match(r.stdout, /^[0-9a-f]{64}\n$/);

  r = await run(['normalise', '--descriptor', vec('ocm-lib-norm-test-introspect/CD1.yaml'), '--normalisation', 'jsonNormalisation/v2']);
  t.equal(r.stdout, read('ocm-lib-norm-test-introspect/CD1.expected.jsonNormalisation-v2.txt').toString());

  const signed = path.join(tmp, 'signed.yaml');
  r = await run(['sign', '--descriptor', vec('jsonNormalisation-v3-ocmcli-0.27.0/input.yaml'), '--private-key', vec('ocm-controller-testdata/pkg_ocm_testdata_private_key.pem'), '--signature', 'acme', '--algorithm', 'RSASSA-PSS', '--out', signed]);
  t.equal(r.code, 0, r.stderr);
  r = await run(['verify', '--descriptor', signed, '--public-key', vec('ocm-controller-testdata/pkg_ocm_testdata_public1_key.pem'), '--signature', 'acme']);
  t.equal(r.code, 0, r.stderr);

  const keys = path.join(tmp, 'keys');
  r = await run(['keygen', '--out', keys]);
  t.equal(r.code, 0, r.stderr);
  r = await run(['sign', '--descriptor', signed, '--private-key', path.join(keys, 'private-key.pem'), '--signature', 'demo', '--out', signed]);
  t.equal(r.code, 0, r.stderr);
  t.equal((await run(['verify', '--descriptor', signed, '--public-key', path.join(keys, 'public-key.pem'), '--signature', 'demo'])).code, 0);
  t.equal((await run(['verify', '--descriptor', signed, '--public-key', path.join(keys, 'public-key.pem'), '--signature', 'acme'])).code, 1);

  r = await run(['verify', '--descriptor', signed]);
  t.equal(r.code, 2, 'usage error');
  t.match(r.stderr, /verify needs --public-key/);
  t.equal((await run(['verify', '--descriptor', path.join(tmp, 'missing.yaml'), '--public-key', path.join(keys, 'public-key.pem')])).code, 1);
});

// Issue 15: a resource blob (up to 256 MiB in memory) is hashed a slice per turn of the event loop,
// not in one update that holds it for the whole hash (0.22 s for 256 MiB on the idle test machine).
t.test('a large resource blob is hashed without holding the event loop', async (t) => {
  const blob = Buffer.alloc(64 << 20, 7);
  const res = { name: 'big', version: '1.0.0', type: 'blob', relation: 'local', access: { type: 'localBlob' }, digest: genericBlobDigest(blob) } as any;
  for (const data of [blob, (() => { const b = Buffer.from(blob); b[b.length - 1] = 8; return b; })()]) {
    let turns = 0;
    let running = true;
    const tick = () => {
      turns++;
      if (running) setImmediate(tick);
    };
    setImmediate(tick);
    const r = await verifyResourceDigest(res, data);
    running = false;
    t.equal(r.ok, data === blob, data === blob ? 'the digest holds' : 'a changed last byte is a mismatch');
    t.ok(turns >= 32, `the event loop turned ${turns} times while 64 MiB were hashed (a slice of 1 MiB per turn)`);
  }
});
