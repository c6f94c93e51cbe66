// Snapshot attestations (registry/attestation.ts) against our own registry over HTTPS: attach and
// verify, the failure cases (wrong key, replayed attestation of another snapshot, none at all,
// tampered payload), the referrers API with its artifactType filter, and DSSE's PAE and envelope
// against the DSSE specification's test vectors.
import t from 'tap';
import crypto from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { ensureCerts } from '../certs/index.js';
import {
  ATTESTATION_ARTIFACT_TYPE,
  ATTESTATION_PREDICATE_TYPE,
  AttestationError,
  DSSE_ENVELOPE_MEDIA_TYPE,
  IN_TOTO_PAYLOAD_TYPE,
  IN_TOTO_STATEMENT_TYPE,
  OCI_EMPTY_MEDIA_TYPE,
  attachAttestation,
  attestationKeyId,
  decodeBase64,
  pae,
  signEnvelope,
  verifyAttestation,
  verifyEnvelope,
  type AttestationPredicate,
  type DsseEnvelope,
} from '../registry/attestation.js';
import { MEDIA_TYPES, OciClient } from '../registry/client.js';
import { startRegistry } from '../registry/server.js';
import { packSnapshot, pushSnapshot } from '../registry/snapshot.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ocm-attestation-'));
const certs = await ensureCerts(path.join(tmp, 'certs'));
const reg = await startRegistry({
  dataDir: path.join(tmp, 'data'),
  port: 0,
  host: '127.0.0.1',
  tls: { key: certs.serverKeyPem, cert: certs.serverCertPem, clientCA: certs.caCertPem },
  tokenSecret: crypto.randomBytes(32),
  logLevel: 'silent',
});
const client = new OciClient({ ca: certs.caCertPem, cert: certs.adminCertPem, key: certs.adminKeyPem, retries: 1, retryBaseMs: 10 });
t.teardown(async () => {
  client.close();
  await reg.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const registry = `127.0.0.1:${reg.port}`;
// the server's key signs, as the reconcilers will; verifiers hold its certificate or public key
const signingKeyPem = certs.serverKeyPem;
const publicKeyPem = crypto.createPublicKey(certs.serverKeyPem).export({ type: 'spki', format: 'pem' }) as string;
const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const otherPublicPem = other.publicKey.export({ type: 'spki', format: 'pem' }) as string;
const otherPrivatePem = other.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;

let seq = 0;
/** A fresh snapshot in its own repository. */
async function snapshot(name = `step${seq++}`, files: Record<string, string> = { 'deploy/app.yaml': `kind: Deployment\nname: ${name}\n` }) {
  const { tgz } = await packSnapshot({ files });
  const s = await pushSnapshot(client, { registry, namespace: 'team-a', component: 'podinfo', kind: 'Action', name, provider: 'localization', tgz });
  const head = await client.headManifest(s.ref);
  return { ...s, repositoryRef: `${registry}/${s.repository}`, descriptor: { mediaType: MEDIA_TYPES.ociManifest, digest: s.digest, size: head!.size } };
}

function predicate(over: Partial<AttestationPredicate> = {}): AttestationPredicate {
  return {
    component: { name: 'acme.org/podinfo', version: '6.5.0' },
    producer: { kind: 'Action', name: 'localize', namespace: 'team-a' },
    provider: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'Localization', name: 'podinfo', generation: 3 },
    input: { digest: `sha256:${'ab'.repeat(32)}`, repository: 'team-a/podinfo/source-ocmresource' },
    createdAt: '2025-01-02T03:04:05.000Z',
    ...over,
  };
}

/** Pushes a hand-made referrer of `subject` whose single layer is `envelope` (bytes as given). */
async function pushReferrer(repositoryRef: string, subject: { mediaType: string; digest: string; size: number }, envelope: Buffer, created: string) {
  const config = await client.pushBlob(repositoryRef, Buffer.from('{}'));
  const layer = await client.pushBlob(repositoryRef, envelope);
  return client.putManifest(
    repositoryRef,
    {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      artifactType: ATTESTATION_ARTIFACT_TYPE,
      config: { mediaType: OCI_EMPTY_MEDIA_TYPE, digest: config.digest, size: config.size },
      layers: [{ mediaType: DSSE_ENVELOPE_MEDIA_TYPE, digest: layer.digest, size: layer.size }],
      subject,
      annotations: { 'org.opencontainers.image.created': created },
    },
    MEDIA_TYPES.ociManifest,
  );
}

async function envelopeOf(repositoryRef: string, attestationDigest: string): Promise<{ manifest: any; envelope: DsseEnvelope; statement: any }> {
  const { manifest } = await client.getManifest(`${repositoryRef}@${attestationDigest}`, [MEDIA_TYPES.ociManifest]);
  const envelope = JSON.parse((await client.getBlobBuffer(repositoryRef, manifest.layers[0].digest)).toString('utf8'));
  return { manifest, envelope, statement: JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) };
}

function get(p: string): Promise<{ status: number; headers: Record<string, any>; json: any }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port: reg.port, path: p, ca: certs.caCertPem, cert: certs.adminCertPem, key: certs.adminKeyPem, agent: false }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, json: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

// ---- DSSE ----------------------------------------------------------------------------------

t.test('PAE matches the DSSE specification', async (t) => {
  // protocol.md, "Test Vectors" (secure-systems-lab/dsse)
  t.equal(pae('http://example.com/HelloWorld', Buffer.from('hello world')).toString('utf8'), 'DSSEv1 29 http://example.com/HelloWorld 11 hello world', 'protocol.md example');

  // testvectors/vectors.json (secure-systems-lab/dsse): PAE bytes, and Ed25519 signatures by key A
  // over exactly those bytes, so a PAE that differs in one byte would fail the signature check too.
  const seedA = '9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60';
  const publicA = 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a';
  const keyA = crypto.createPublicKey({ key: Buffer.from(`302a300506032b6570032100${publicA}`, 'hex'), format: 'der', type: 'spki' });
  const privA = crypto.createPrivateKey({ key: Buffer.from(`302e020100300506032b657004220420${seedA}`, 'hex'), format: 'der', type: 'pkcs8' });
  t.equal(crypto.createPublicKey(privA).export({ type: 'spki', format: 'der' }).toString('hex').slice(-64), publicA, 'key A: seed and public key agree');
  const vectors = [
    {
      id: 'single-signature',
      payloadType: 'application/vnd.in-toto+json',
      payload: 'eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==',
      sig: '2WAfaHm5jluo0w+0rk8uVkluELJYWjSmU9x7EUzx+AyteDGJ4/nqyJXfmAUVFIAoQafWm7AxBZNw5M9ixNHiCA==',
      pae: '445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203433207b225f74797065223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d656e742f7631227d',
    },
    {
      id: 'url-safe-base64',
      payloadType: 'application/vnd.in-toto+json',
      payload: '-_-_Pj8=',
      sig: 'P-_KHICeR7tI6S_YyejJTRtrXhcQyQ2LYPaL8h90KjC9qN8HU_svOQ6TuDOT1HIrsGW886DbWNWcCmX5twLrAw==',
      pae: '445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203520fbffbf3e3f',
    },
    {
      id: 'non-ascii-payload-type',
      payloadType: 'application/vnd.exämple+json',
      payload: 'eyJfdHlwZSI6Imh0dHBzOi8vaW4tdG90by5pby9TdGF0ZW1lbnQvdjEifQ==',
      sig: 'xmSk/ug66ysT7ayhkCIjhAq42zgZXSsEWuzUaNL7w2eGAdF/NU6/fRXPtmfN+5DNSAs5/i2lUnHjbbjPsu0tAw==',
      pae: '445353457631203239206170706c69636174696f6e2f766e642e6578c3a46d706c652b6a736f6e203433207b225f74797065223a2268747470733a2f2f696e2d746f746f2e696f2f53746174656d656e742f7631227d',
    },
    {
      id: 'empty-payload',
      payloadType: 'application/vnd.in-toto+json',
      payload: '',
      sig: 'gSggCAaTLTYyRH6FIDBem6meyIynsYy8RTHVzwx9tnTb7Bg/1jMWnuVgI/gffqmbsC2VX5/jHfkkDqsj7CDbDg==',
      pae: '445353457631203238206170706c69636174696f6e2f766e642e696e2d746f746f2b6a736f6e203020',
    },
  ];
  for (const v of vectors) {
    const payload = decodeBase64(v.payload);
    t.ok(payload, `${v.id}: payload decodes`);
    const m = pae(v.payloadType, payload!);
    t.equal(m.toString('hex'), v.pae, `${v.id}: PAE bytes`);
    t.ok(crypto.verify(null, m, keyA, decodeBase64(v.sig)!), `${v.id}: the vector's signature verifies over our PAE`);
  }
  // hand-computed: lengths are bytes, not characters; an empty type keeps both spaces
  t.same(pae('t', Buffer.from('é')), Buffer.from('DSSEv1 1 t 2 é'), 'UTF-8 body length in bytes');
  t.same(pae('', Buffer.from('x')), Buffer.from('DSSEv1 0  1 x'), 'empty payload type');
  t.same(pae('bin', Buffer.from([0, 255])), Buffer.concat([Buffer.from('DSSEv1 3 bin 2 '), Buffer.from([0, 255])]), 'binary body');
  t.equal(decodeBase64('not base64!'), undefined, 'rejects non-base64');
  t.equal(decodeBase64('ab+_'), undefined, 'rejects mixed alphabets');
});

t.test('DSSE envelope: sign, verify, tamper', async (t) => {
  const payload = Buffer.from('{"_type":"https://in-toto.io/Statement/v1"}');
  const env = signEnvelope(payload, IN_TOTO_PAYLOAD_TYPE, signingKeyPem);
  t.equal(env.payloadType, IN_TOTO_PAYLOAD_TYPE);
  t.equal(env.payload, payload.toString('base64'));
  t.equal(env.signatures.length, 1);
  t.equal(env.signatures[0].keyid, attestationKeyId(publicKeyPem), 'default keyid: SHA-256 of the SPKI');
  t.equal(attestationKeyId(certs.serverCertPem), attestationKeyId(publicKeyPem), 'same keyid from the certificate');
  const sig = decodeBase64(env.signatures[0].sig)!;
  t.ok(
    crypto.verify('sha256', pae(IN_TOTO_PAYLOAD_TYPE, payload), { key: crypto.createPublicKey(publicKeyPem), padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, sig),
    'RSASSA-PSS SHA-256, salt 32, over the PAE',
  );
  t.match(verifyEnvelope(env, publicKeyPem), { ok: true, payloadType: IN_TOTO_PAYLOAD_TYPE, payload });
  t.match(verifyEnvelope(env, certs.serverCertPem), { ok: true }, 'a certificate works as the public key');
  const urlSafe = { ...env, payload: env.payload.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), signatures: [{ sig: env.signatures[0].sig.replace(/\+/g, '-').replace(/\//g, '_') }] };
  t.match(verifyEnvelope(urlSafe, publicKeyPem), { ok: true }, 'URL-safe base64 accepted');
  t.match(verifyEnvelope(env, otherPublicPem), { ok: false, reason: /signature does not verify/ }, 'wrong key');
  t.match(verifyEnvelope({ ...env, payloadType: 'application/json' }, publicKeyPem), { ok: false, reason: /signature does not verify/ }, 'payloadType is signed too');
  t.match(verifyEnvelope({ ...env, payload: Buffer.from('{"_type":"x"}').toString('base64') }, publicKeyPem), { ok: false, reason: /signature does not verify/ }, 'payload is signed');
  const two = { ...env, signatures: [signEnvelope(payload, IN_TOTO_PAYLOAD_TYPE, otherPrivatePem).signatures[0], env.signatures[0]] };
  t.match(verifyEnvelope(two, publicKeyPem), { ok: true }, 'one good signature among several is enough');
  t.match(verifyEnvelope({ ...env, signatures: [] }, publicKeyPem), { ok: false, reason: /no signatures/ });
  t.match(verifyEnvelope('nope', publicKeyPem), { ok: false, reason: /not a DSSE envelope/ });
  t.same(signEnvelope(payload, IN_TOTO_PAYLOAD_TYPE, signingKeyPem, '').signatures[0].keyid, undefined, "keyId '' omits keyid");
  t.equal(signEnvelope(payload, IN_TOTO_PAYLOAD_TYPE, signingKeyPem, 'server-2025').signatures[0].keyid, 'server-2025');
  const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
  t.throws(() => signEnvelope(payload, IN_TOTO_PAYLOAD_TYPE, ec.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string), AttestationError, 'an EC key is refused');
  t.match(verifyEnvelope(env, ec.publicKey.export({ type: 'spki', format: 'pem' }) as string), { ok: false, reason: /not RSA/ });
});

// ---- against the registry -------------------------------------------------------------------

t.test('attach and verify', async (t) => {
  const s = await snapshot();
  const p = predicate();
  const { digest } = await attachAttestation(client, { repositoryRef: s.repositoryRef, subject: s.descriptor, predicate: p, signingKeyPem });
  t.match(digest, /^sha256:[a-f0-9]{64}$/);

  const res = await verifyAttestation(client, { repositoryRef: s.repositoryRef, subjectDigest: s.digest, publicKeyPem });
  t.same(res, { ok: true, predicate: p, digest }, 'verifies and returns the predicate');
  t.match(await verifyAttestation(client, { repositoryRef: s.repositoryRef, subjectDigest: s.digest, publicKeyPem: certs.serverCertPem }), { ok: true }, 'with the server certificate');

  // the artifact's layout
  const { manifest, envelope, statement } = await envelopeOf(s.repositoryRef, digest);
  t.equal(manifest.mediaType, MEDIA_TYPES.ociManifest);
  t.equal(manifest.artifactType, ATTESTATION_ARTIFACT_TYPE);
  t.same(manifest.config, { mediaType: OCI_EMPTY_MEDIA_TYPE, digest: 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a', size: 2 });
  t.equal(manifest.layers.length, 1);
  t.equal(manifest.layers[0].mediaType, DSSE_ENVELOPE_MEDIA_TYPE);
  t.same(manifest.subject, s.descriptor, 'subject is the snapshot manifest descriptor');
  t.equal(manifest.annotations['org.opencontainers.image.created'], p.createdAt);
  t.equal(envelope.payloadType, IN_TOTO_PAYLOAD_TYPE);
  t.equal(envelope.signatures[0].keyid, attestationKeyId(publicKeyPem));
  t.same(statement, {
    _type: IN_TOTO_STATEMENT_TYPE,
    subject: [{ name: s.repository, digest: { sha256: s.digest.slice('sha256:'.length) } }],
    predicateType: ATTESTATION_PREDICATE_TYPE,
    predicate: p,
  });
  t.same(await client.listTags(s.repositoryRef), [s.tag], 'pushed by digest: no new tag');

  // a later attestation of the same snapshot wins; a predicate without optional fields round-trips
  const { input: _input, ...rest } = predicate();
  const later = { ...rest, provider: { apiVersion: 'delivery.ocm.software/v1alpha1', kind: 'Localization', name: 'podinfo' }, createdAt: '2025-06-01T00:00:00.000Z' };
  const second = await attachAttestation(client, { repositoryRef: s.repositoryRef, subject: s.descriptor, predicate: later, signingKeyPem, keyId: 'server-key' });
  t.same(await verifyAttestation(client, { repositoryRef: s.repositoryRef, subjectDigest: s.digest, publicKeyPem }), { ok: true, predicate: later, digest: second.digest }, 'the newest one is verified');
  t.equal((await envelopeOf(s.repositoryRef, second.digest)).envelope.signatures[0].keyid, 'server-key', 'keyId option');
});

t.test('an attestation is bound to the producer\'s namespace (issue 16)', async (t) => {
  const s = await snapshot();
  await attachAttestation(client, { repositoryRef: s.repositoryRef, subject: s.descriptor, predicate: predicate(), signingKeyPem });
  t.match(await verifyAttestation(client, { repositoryRef: s.repositoryRef, subjectDigest: s.digest, publicKeyPem, namespace: 'team-a' }), { ok: true }, 'its own namespace');
  t.match(await verifyAttestation(client, { repositoryRef: s.repositoryRef, subjectDigest: s.digest, publicKeyPem, namespace: 'team-b' }), { ok: false, reason: /is not a repository of namespace team-b/ }, 'a team-a repository for team-b');
  // The same content under team-b's prefix, with a genuine signature over a team-a producer: refused for team-b.
  const { tgz } = await packSnapshot({ files: { 'deploy/app.yaml': 'kind: Deployment\nname: copied\n' } });
  const b = await pushSnapshot(client, { registry, namespace: 'team-b', component: 'podinfo', kind: 'Action', name: 'copied', provider: 'localization', tgz });
  const head = await client.headManifest(b.ref);
  const bRef = `${registry}/${b.repository}`;
  await attachAttestation(client, { repositoryRef: bRef, subject: { mediaType: MEDIA_TYPES.ociManifest, digest: b.digest, size: head!.size }, predicate: predicate(), signingKeyPem });
  t.match(await verifyAttestation(client, { repositoryRef: bRef, subjectDigest: b.digest, publicKeyPem }), { ok: true }, 'without a namespace the signature alone verifies');
  t.match(await verifyAttestation(client, { repositoryRef: bRef, subjectDigest: b.digest, publicKeyPem, namespace: 'team-b' }), { ok: false, reason: /attests a snapshot of namespace team-a, not team-b/ }, 'a team-a producer does not vouch in team-b');
});

t.test('the referrer is visible through the referrers API with the artifactType filter', async (t) => {
  const s = await snapshot();
  const { digest } = await attachAttestation(client, { repositoryRef: s.repositoryRef, subject: s.descriptor, predicate: predicate(), signingKeyPem });
  // an unrelated referrer of the same snapshot, with another artifactType
  const sbom = await client.pushBlob(s.repositoryRef, Buffer.from('{"sbom":true}'));
  const emptyCfg = await client.pushBlob(s.repositoryRef, Buffer.from('{}'));
  const sbomManifest = await client.putManifest(
    s.repositoryRef,
    {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      artifactType: 'application/spdx+json',
      config: { mediaType: OCI_EMPTY_MEDIA_TYPE, digest: emptyCfg.digest, size: emptyCfg.size },
      layers: [{ mediaType: 'application/spdx+json', digest: sbom.digest, size: sbom.size }],
      subject: s.descriptor,
    },
    MEDIA_TYPES.ociManifest,
  );

  const base = `/v2/${s.repository}/referrers/${s.digest}`;
  const filtered = await get(`${base}?artifactType=${encodeURIComponent(ATTESTATION_ARTIFACT_TYPE)}`);
  t.equal(filtered.status, 200);
  t.equal(filtered.headers['oci-filters-applied'], 'artifactType', 'the registry applied the filter');
  t.equal(filtered.json.mediaType, MEDIA_TYPES.ociIndex);
  t.same(
    filtered.json.manifests.map((d: any) => ({ digest: d.digest, artifactType: d.artifactType, mediaType: d.mediaType })),
    [{ digest, artifactType: ATTESTATION_ARTIFACT_TYPE, mediaType: MEDIA_TYPES.ociManifest }],
    'only the attestation',
  );
  const all = await get(base);
  t.same(all.json.manifests.map((d: any) => d.digest).sort(), [digest, sbomManifest.digest].sort(), 'unfiltered: both referrers');
  const none = await get(`${base}?artifactType=${encodeURIComponent('application/vnd.example.none')}`);
  t.same(none.json.manifests, [], 'another artifactType: none');

  const viaClient = await client.referrers(`${s.repositoryRef}@${s.digest}`, ATTESTATION_ARTIFACT_TYPE);
  t.same(viaClient.manifests.map((d: any) => d.digest), [digest], 'OciClient.referrers with the filter');
  t.match(await verifyAttestation(client, { repositoryRef: s.repositoryRef, subjectDigest: s.digest, publicKeyPem }), { ok: true, digest }, 'the other referrer does not get in the way');
});

t.test('wrong key fails', async (t) => {
  const s = await snapshot();
  await attachAttestation(client, { repositoryRef: s.repositoryRef, subject: s.descriptor, predicate: predicate(), signingKeyPem });
  const res = await verifyAttestation(client, { repositoryRef: s.repositoryRef, subjectDigest: s.digest, publicKeyPem: otherPublicPem });
  t.match(res, { ok: false, reason: /signature does not verify/ });
  t.comment((res as { reason: string }).reason);

  // and signed by another key, verified with the server's
  const s2 = await snapshot();
  await attachAttestation(client, { repositoryRef: s2.repositoryRef, subject: s2.descriptor, predicate: predicate(), signingKeyPem: otherPrivatePem });
  t.match(await verifyAttestation(client, { repositoryRef: s2.repositoryRef, subjectDigest: s2.digest, publicKeyPem }), { ok: false, reason: /signature does not verify/ });
  t.match(await verifyAttestation(client, { repositoryRef: s2.repositoryRef, subjectDigest: s2.digest, publicKeyPem: 'not a key' }), { ok: false, reason: /public key/ });
});

t.test("another snapshot's attestation fails (replayed onto this snapshot)", async (t) => {
  const a = await snapshot('replay', { 'a.yaml': 'a: 1\n' });
  const b = await snapshot('replay', { 'b.yaml': 'b: 2\n' }); // same repository, other content
  t.equal(a.repository, b.repository);
  t.not(a.digest, b.digest);
  const attB = await attachAttestation(client, { repositoryRef: b.repositoryRef, subject: b.descriptor, predicate: predicate(), signingKeyPem });
  t.match(await verifyAttestation(client, { repositoryRef: b.repositoryRef, subjectDigest: b.digest, publicKeyPem }), { ok: true });
  // copy B's validly signed envelope into a referrer of A
  const { manifest } = await envelopeOf(b.repositoryRef, attB.digest);
  const envelopeBytes = await client.getBlobBuffer(b.repositoryRef, manifest.layers[0].digest);
  await pushReferrer(a.repositoryRef, a.descriptor, envelopeBytes, '2025-01-02T03:04:06.000Z');
  const res = await verifyAttestation(client, { repositoryRef: a.repositoryRef, subjectDigest: a.digest, publicKeyPem });
  t.match(res, { ok: false, reason: new RegExp(`subject digest ${b.digest} .*does not match ${a.digest}`) });
  t.comment((res as { reason: string }).reason);

  // a digest nobody attested: B's attestation is not listed for it
  t.match(await verifyAttestation(client, { repositoryRef: b.repositoryRef, subjectDigest: `sha256:${'0'.repeat(64)}`, publicKeyPem }), { ok: false, reason: /no attestation found for/ });
});

t.test('no attestation fails', async (t) => {
  const s = await snapshot();
  const res = await verifyAttestation(client, { repositoryRef: s.repositoryRef, subjectDigest: s.digest, publicKeyPem });
  t.match(res, { ok: false, reason: new RegExp(`^no attestation found for ${registry}/${s.repository}@${s.digest}`) });
  t.comment((res as { reason: string }).reason);
  t.match(await verifyAttestation(client, { repositoryRef: `${registry}/team-a/never/pushed`, subjectDigest: s.digest, publicKeyPem }), { ok: false, reason: /no attestation found/ }, 'unknown repository');
  t.match(await verifyAttestation(client, { repositoryRef: s.repositoryRef, subjectDigest: 'sha512:abc', publicKeyPem }), { ok: false, reason: /not a sha256 digest/ });
  t.match(await verifyAttestation(client, { repositoryRef: `${s.repositoryRef}:latest`, subjectDigest: s.digest, publicKeyPem }), { ok: false, reason: /without a tag or digest/ });
});

t.test('a tampered envelope fails', async (t) => {
  const s = await snapshot();
  const att = await attachAttestation(client, { repositoryRef: s.repositoryRef, subject: s.descriptor, predicate: predicate(), signingKeyPem });
  const { envelope, statement } = await envelopeOf(s.repositoryRef, att.digest);
  statement.predicate.component.version = '6.6.6';
  const tampered: DsseEnvelope = { ...envelope, payload: Buffer.from(JSON.stringify(statement)).toString('base64') }; // the old signature
  const pushed = await pushReferrer(s.repositoryRef, s.descriptor, Buffer.from(JSON.stringify(tampered)), '2025-01-02T03:04:06.000Z');
  const res = await verifyAttestation(client, { repositoryRef: s.repositoryRef, subjectDigest: s.digest, publicKeyPem });
  t.match(res, { ok: false, reason: /signature does not verify/ });
  t.match((res as { reason: string }).reason, pushed.digest, 'the reason names the attestation');
  t.comment((res as { reason: string }).reason);

  // an envelope that is not JSON, and one with a statement of another type (validly signed)
  const s2 = await snapshot();
  await pushReferrer(s2.repositoryRef, s2.descriptor, Buffer.from('garbage'), '2025-01-02T03:04:06.000Z');
  t.match(await verifyAttestation(client, { repositoryRef: s2.repositoryRef, subjectDigest: s2.digest, publicKeyPem }), { ok: false, reason: /not JSON/ });
  const s3 = await snapshot();
  const wrongType = signEnvelope(Buffer.from(JSON.stringify({ ...statement, predicateType: 'https://slsa.dev/provenance/v1' })), IN_TOTO_PAYLOAD_TYPE, signingKeyPem);
  await pushReferrer(s3.repositoryRef, s3.descriptor, Buffer.from(JSON.stringify(wrongType)), '2025-01-02T03:04:06.000Z');
  t.match(await verifyAttestation(client, { repositoryRef: s3.repositoryRef, subjectDigest: s3.digest, publicKeyPem }), { ok: false, reason: /predicateType/ });
});

t.test('attachAttestation refuses bad input', async (t) => {
  const s = await snapshot();
  const base = { repositoryRef: s.repositoryRef, subject: s.descriptor, predicate: predicate(), signingKeyPem };
  await t.rejects(attachAttestation(client, { ...base, subject: { ...s.descriptor, digest: 'sha256:xyz' } }), AttestationError);
  await t.rejects(attachAttestation(client, { ...base, predicate: { ...predicate(), createdAt: 'yesterday' } }), /createdAt/);
  await t.rejects(attachAttestation(client, { ...base, predicate: { ...predicate(), component: { name: '', version: '1' } } }), /component/);
  await t.rejects(attachAttestation(client, { ...base, signingKeyPem: publicKeyPem }), /signing key/);
  await t.rejects(attachAttestation(client, { ...base, repositoryRef: `${s.repositoryRef}@${s.digest}` }), /without a tag or digest/);
  t.match(await verifyAttestation(client, { repositoryRef: s.repositoryRef, subjectDigest: s.digest, publicKeyPem }), { ok: false, reason: /no attestation found/ }, 'nothing was pushed');
});
