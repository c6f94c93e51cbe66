// Snapshot attestations: a signed in-toto statement about a snapshot, stored next to it in the
// registry as an OCI referrer.
//
// Formats
// -------
// Statement (in-toto Statement v1, serialised with JSON.stringify in this key order, UTF-8):
//   { "_type": "https://in-toto.io/Statement/v1",
//     "subject": [{ "name": "<repository, without the registry host>",
//                   "digest": { "sha256": "<hex of the snapshot's manifest digest>" } }],
//     "predicateType": "https://ocm.software/attestations/snapshot/v1",
//     "predicate": AttestationPredicate }   (component, producer, provider, input?, createdAt)
//
// Envelope (DSSE v1, https://github.com/secure-systems-lab/dsse, envelope.md and protocol.md):
//   { "payloadType": "application/vnd.in-toto+json",
//     "payload": "<standard base64 of the statement bytes>",
//     "signatures": [{ "keyid": "<hint>", "sig": "<standard base64 of the signature>" }] }
//   The signature covers PAE(payloadType, payload bytes) =
//     "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body
//   with LEN the ASCII decimal byte length (no leading zeros) and SP one 0x20 byte.
//   Algorithm: RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt (the hash length) when
//   signing; verification accepts any salt length (as Go's crypto/rsa and OpenSSL's "auto" do).
//   The key is RSA (an `rsa` or `rsa-pss` key object). keyid defaults to the lowercase hex SHA-256
//   of the DER SubjectPublicKeyInfo of the signing key; like DSSE says, it is only a hint and is
//   never used for a security decision: verification tries every signature against the key given.
//   Both base64 alphabets (standard and URL-safe) are accepted when verifying, as DSSE requires.
//
// OCI artifact (an image manifest, pushed by digest, no tag):
//   mediaType    application/vnd.oci.image.manifest.v1+json
//   artifactType ATTESTATION_ARTIFACT_TYPE
//   config       application/vnd.oci.empty.v1+json, the 2 bytes `{}`
//   layers[0]    application/vnd.dsse.envelope.v1+json, the envelope JSON (the only layer)
//   subject      the snapshot's manifest descriptor, so the registry lists it as a referrer
//   annotations  org.opencontainers.image.created = predicate.createdAt (picks the newest)
// Only the referrers API is written (our registry implements it); the referrers tag schema
// fallback (`sha256-<hex>` index tags) is not maintained, although OciClient reads it.
//
// verifyAttestation returns {ok: false, reason} for everything about the content (nothing found,
// malformed manifest/envelope/statement, signature, digests, unreadable key) and throws the
// OciError only for transport and registry failures (network, TLS, auth, 5xx), which a caller
// should retry rather than treat as a refusal.
import crypto, { type KeyObject } from 'node:crypto';
import { MEDIA_TYPES, OciError, type OciClient, type Reference, parseReference } from './client.js';

export interface AttestationPredicate {
  component: { name: string; version: string };
  producer: { kind: string; name: string; namespace: string };
  provider: { apiVersion: string; kind: string; name: string; generation?: number };
  /** The upstream snapshot this one was made from. */
  input?: { digest: string; repository?: string };
  createdAt: string;
}

export const ATTESTATION_ARTIFACT_TYPE = 'application/vnd.ocm.software.snapshot.attestation.v1+json';
export const ATTESTATION_PREDICATE_TYPE = 'https://ocm.software/attestations/snapshot/v1';
export const IN_TOTO_STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const IN_TOTO_PAYLOAD_TYPE = 'application/vnd.in-toto+json';
export const DSSE_ENVELOPE_MEDIA_TYPE = 'application/vnd.dsse.envelope.v1+json';
export const OCI_EMPTY_MEDIA_TYPE = 'application/vnd.oci.empty.v1+json';
const EMPTY_CONFIG = Buffer.from('{}');
const CREATED_ANNOTATION = 'org.opencontainers.image.created';
/** Envelopes larger than this are not fetched. */
const MAX_ENVELOPE_BYTES = 1 << 20;
const PSS_SALT_LENGTH = 32;

export interface InTotoStatement {
  _type: string;
  subject: { name: string; digest: Record<string, string> }[];
  predicateType: string;
  predicate: AttestationPredicate;
}

export interface DsseEnvelope {
  payloadType: string;
  payload: string;
  signatures: { keyid?: string; sig: string }[];
}

/** A bad argument to attachAttestation (key, digest, predicate, reference). */
export class AttestationError extends Error {
  override name = 'AttestationError';
}

// ---- DSSE -----------------------------------------------------------------------------------

/** DSSE's Pre-Authentication Encoding: "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body. */
export function pae(payloadType: string | Buffer, payload: Buffer): Buffer {
  const type = Buffer.isBuffer(payloadType) ? payloadType : Buffer.from(payloadType, 'utf8');
  return Buffer.concat([Buffer.from(`DSSEv1 ${type.length} `, 'ascii'), type, Buffer.from(` ${payload.length} `, 'ascii'), payload]);
}

const B64_RE = /^(?:[A-Za-z0-9+/]*|[A-Za-z0-9_-]*)={0,2}$/;

/** Standard or URL-safe base64 (padding optional); undefined if it is neither. */
export function decodeBase64(s: unknown): Buffer | undefined {
  if (typeof s !== 'string' || !B64_RE.test(s) || s.replace(/=+$/, '').length % 4 === 1) return undefined;
  return Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

// Parsed keys by PEM: the same server key signs and verifies every snapshot, and parsing a PEM
// costs about as much as the RSA operation.
const parsedKeys = new Map<string, KeyObject | string>();
function cachedKey<T extends KeyObject | string>(kind: string, pem: string, parse: () => T): T {
  const k = `${kind}\0${pem}`;
  let v = parsedKeys.get(k) as T | undefined;
  if (v === undefined) {
    if (parsedKeys.size >= 64) parsedKeys.clear();
    v = parse();
    parsedKeys.set(k, v);
  }
  return v;
}

function privateRsaKey(pem: string): KeyObject {
  return cachedKey('private', pem, () => parsePrivateRsaKey(pem));
}

function parsePrivateRsaKey(pem: string): KeyObject {
  let key: KeyObject;
  try {
    key = crypto.createPrivateKey(pem);
  } catch (e) {
    throw new AttestationError(`the signing key is not a PEM private key Node.js can read: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') throw new AttestationError(`the signing key is ${key.asymmetricKeyType ?? 'not asymmetric'}, not RSA`);
  return key;
}

/** A public key from a PEM public key, certificate or private key; a reason string if unusable. */
function publicRsaKey(pem: string): KeyObject | string {
  return cachedKey('public', pem, () => parsePublicRsaKey(pem));
}

function parsePublicRsaKey(pem: string): KeyObject | string {
  let key: KeyObject;
  try {
    key = crypto.createPublicKey(pem);
  } catch (e) {
    return `the public key is not a PEM public key or certificate Node.js can read: ${(e as Error).message}`;
  }
  if (key.asymmetricKeyType !== 'rsa' && key.asymmetricKeyType !== 'rsa-pss') return `the public key is ${key.asymmetricKeyType ?? 'not asymmetric'}, not RSA`;
  return key;
}

/** The default keyid: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo of the key (public, private or certificate PEM). */
export function attestationKeyId(keyPem: string): string {
  return cachedKey('keyid', keyPem, () => {
    const pub = crypto.createPublicKey(keyPem);
    return crypto.createHash('sha256').update(pub.export({ type: 'spki', format: 'der' })).digest('hex');
  });
}

/** Signs `payload` into a DSSE envelope (RSASSA-PSS SHA-256, salt 32). keyId '' omits the keyid. */
export function signEnvelope(payload: Buffer, payloadType: string, signingKeyPem: string, keyId?: string): DsseEnvelope {
  const key = privateRsaKey(signingKeyPem);
  const sig = crypto.sign('sha256', pae(payloadType, payload), { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: PSS_SALT_LENGTH });
  const keyid = keyId ?? attestationKeyId(signingKeyPem);
  return { payloadType, payload: payload.toString('base64'), signatures: [keyid ? { keyid, sig: sig.toString('base64') } : { sig: sig.toString('base64') }] };
}

/** Checks the envelope's structure and that one of its signatures verifies with the key. */
export function verifyEnvelope(envelope: unknown, publicKeyPem: string): { ok: true; payloadType: string; payload: Buffer; keyid?: string } | { ok: false; reason: string } {
  const key = publicRsaKey(publicKeyPem);
  if (typeof key === 'string') return { ok: false, reason: key };
  const env = envelope as Partial<DsseEnvelope> | null;
  if (!env || typeof env !== 'object' || Array.isArray(env)) return { ok: false, reason: 'not a DSSE envelope: not a JSON object' };
  if (typeof env.payloadType !== 'string') return { ok: false, reason: 'not a DSSE envelope: payloadType is not a string' };
  const payload = decodeBase64(env.payload);
  if (!payload) return { ok: false, reason: 'not a DSSE envelope: payload is not base64' };
  if (!Array.isArray(env.signatures) || env.signatures.length === 0) return { ok: false, reason: 'the DSSE envelope has no signatures' };
  const message = pae(env.payloadType, payload);
  const keyids: string[] = [];
  for (const s of env.signatures) {
    if (!s || typeof s !== 'object') continue;
    if (typeof s.keyid === 'string' && s.keyid) keyids.push(s.keyid);
    const sig = decodeBase64(s.sig);
    if (!sig || sig.length === 0) continue;
    const good = crypto.verify('sha256', message, { key, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_AUTO }, sig);
    if (good) return { ok: true, payloadType: env.payloadType, payload, ...(typeof s.keyid === 'string' && s.keyid ? { keyid: s.keyid } : {}) };
  }
  const n = env.signatures.length;
  return {
    ok: false,
    reason: `signature does not verify: none of the envelope's ${n} signature${n === 1 ? '' : 's'}${keyids.length ? ` (keyid ${keyids.join(', ')})` : ''} verifies with the given public key (keyid ${attestationKeyId(publicKeyPem)}) as RSASSA-PSS SHA-256 over the DSSE PAE`,
  };
}

// ---- statement ------------------------------------------------------------------------------

const SHA256_DIGEST_RE = /^sha256:([a-f0-9]{64})$/;
const isObj = (v: unknown): v is Record<string, any> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStr = (v: unknown): v is string => typeof v === 'string' && v.length > 0;

/** Why `p` is not a well-formed predicate, or undefined. */
export function predicateProblem(p: unknown): string | undefined {
  if (!isObj(p)) return 'predicate is not an object';
  if (!isObj(p.component) || !isStr(p.component.name) || !isStr(p.component.version)) return 'predicate.component needs a name and a version';
  if (!isObj(p.producer) || !isStr(p.producer.kind) || !isStr(p.producer.name) || !isStr(p.producer.namespace)) return 'predicate.producer needs kind, name and namespace';
  if (!isObj(p.provider) || !isStr(p.provider.apiVersion) || !isStr(p.provider.kind) || !isStr(p.provider.name)) return 'predicate.provider needs apiVersion, kind and name';
  if (p.provider.generation !== undefined && !Number.isSafeInteger(p.provider.generation)) return 'predicate.provider.generation must be an integer';
  if (p.input !== undefined) {
    if (!isObj(p.input) || !isStr(p.input.digest)) return 'predicate.input needs a digest';
    if (p.input.repository !== undefined && typeof p.input.repository !== 'string') return 'predicate.input.repository must be a string';
  }
  if (!isStr(p.createdAt) || Number.isNaN(Date.parse(p.createdAt))) return 'predicate.createdAt must be an RFC 3339 time';
  return undefined;
}

/** A copy with only the known fields, in a fixed order (so equal predicates serialise equally). */
function cleanPredicate(p: AttestationPredicate): AttestationPredicate {
  const provider: AttestationPredicate['provider'] = { apiVersion: p.provider.apiVersion, kind: p.provider.kind, name: p.provider.name };
  if (p.provider.generation !== undefined) provider.generation = p.provider.generation;
  const input = p.input ? { input: p.input.repository !== undefined ? { digest: p.input.digest, repository: p.input.repository } : { digest: p.input.digest } } : {};
  return {
    component: { name: p.component.name, version: p.component.version },
    producer: { kind: p.producer.kind, name: p.producer.name, namespace: p.producer.namespace },
    provider,
    ...input,
    createdAt: p.createdAt,
  };
}

export function buildStatement(repository: string, subjectDigest: string, predicate: AttestationPredicate): InTotoStatement {
  const m = SHA256_DIGEST_RE.exec(subjectDigest);
  if (!m) throw new AttestationError(`subject digest "${subjectDigest}" is not a sha256 digest`);
  const problem = predicateProblem(predicate);
  if (problem) throw new AttestationError(problem);
  return { _type: IN_TOTO_STATEMENT_TYPE, subject: [{ name: repository, digest: { sha256: m[1] } }], predicateType: ATTESTATION_PREDICATE_TYPE, predicate: cleanPredicate(predicate) };
}

function repositoryOf(repositoryRef: string): Reference {
  let r: Reference;
  try {
    r = parseReference(repositoryRef);
  } catch (e) {
    throw new AttestationError((e as Error).message);
  }
  if (r.tag !== undefined || r.digest !== undefined) throw new AttestationError(`repositoryRef "${repositoryRef}" must name a repository (host:port/repo), without a tag or digest`);
  return r;
}

// ---- push and verify ------------------------------------------------------------------------

/** Signs a statement about the snapshot `subject` and pushes it as a referrer of it (by digest, no tag). */
export async function attachAttestation(
  client: OciClient,
  opts: { repositoryRef: string; subject: { digest: string; size: number; mediaType: string }; predicate: AttestationPredicate; signingKeyPem: string; keyId?: string },
): Promise<{ digest: string }> {
  const base = repositoryOf(opts.repositoryRef);
  const { subject } = opts;
  if (!Number.isSafeInteger(subject.size) || subject.size < 0) throw new AttestationError(`subject size ${subject.size} is not a byte count`);
  if (!isStr(subject.mediaType)) throw new AttestationError('subject needs a mediaType');
  const statement = buildStatement(base.repository, subject.digest, opts.predicate);
  const envelope = signEnvelope(Buffer.from(JSON.stringify(statement), 'utf8'), IN_TOTO_PAYLOAD_TYPE, opts.signingKeyPem, opts.keyId);
  const envelopeBytes = Buffer.from(JSON.stringify(envelope), 'utf8');
  const config = await client.pushBlob(base, EMPTY_CONFIG);
  const layer = await client.pushBlob(base, envelopeBytes);
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    artifactType: ATTESTATION_ARTIFACT_TYPE,
    config: { mediaType: OCI_EMPTY_MEDIA_TYPE, digest: config.digest, size: config.size },
    layers: [{ mediaType: DSSE_ENVELOPE_MEDIA_TYPE, digest: layer.digest, size: layer.size }],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    annotations: { [CREATED_ANNOTATION]: statement.predicate.createdAt },
  };
  return client.putManifest({ host: base.host, repository: base.repository }, manifest, MEDIA_TYPES.ociManifest);
}

/** OciErrors that say the content is missing or bad (a refusal), not that the registry could not be reached. */
function contentError(e: unknown): e is OciError {
  if (!(e instanceof OciError)) return false;
  return e.status === 404 || ['MANIFEST_UNKNOWN', 'BLOB_UNKNOWN', 'NOT_FOUND', 'MANIFEST_INVALID', 'DIGEST_MISMATCH', 'SIZE_MISMATCH', 'TOO_LARGE', 'INVALID_RESPONSE', 'DIGEST_INVALID'].includes(e.code);
}

const createdOf = (d: any) => {
  const t = Date.parse(d?.annotations?.[CREATED_ANNOTATION] ?? '');
  return Number.isNaN(t) ? -Infinity : t;
};

/**
 * Verifies the newest attestation of `subjectDigest` in the repository: DSSE signature with the
 * key, payload and statement types, statement subject = `subjectDigest`, predicate shape; with
 * `namespace`, the repository must lie under `<namespace>/` and the signed producer be of that
 * namespace (an attestation never vouches for a snapshot in another tenant's namespace).
 */
export async function verifyAttestation(
  client: OciClient,
  opts: { repositoryRef: string; subjectDigest: string; publicKeyPem: string; namespace?: string },
): Promise<{ ok: true; predicate: AttestationPredicate; digest: string } | { ok: false; reason: string }> {
  const fail = (reason: string) => ({ ok: false as const, reason });
  let base: Reference;
  try {
    base = repositoryOf(opts.repositoryRef);
  } catch (e) {
    return fail((e as Error).message);
  }
  const where = `${base.host}/${base.repository}@${opts.subjectDigest}`;
  if (opts.namespace !== undefined && !base.repository.startsWith(`${opts.namespace}/`)) return fail(`${where} is not a repository of namespace ${opts.namespace}`);
  const m = SHA256_DIGEST_RE.exec(opts.subjectDigest);
  if (!m) return fail(`subject digest "${opts.subjectDigest}" is not a sha256 digest`);
  const key = publicRsaKey(opts.publicKeyPem);
  if (typeof key === 'string') return fail(key);

  const index = await client.referrers({ host: base.host, repository: base.repository, digest: opts.subjectDigest }, ATTESTATION_ARTIFACT_TYPE);
  const candidates = (Array.isArray(index?.manifests) ? index.manifests : []).filter((d: any) => d?.artifactType === ATTESTATION_ARTIFACT_TYPE && typeof d.digest === 'string');
  if (candidates.length === 0) return fail(`no attestation found for ${where} (no referrer with artifactType ${ATTESTATION_ARTIFACT_TYPE})`);
  // newest by the created annotation; on a tie, the one listed last
  let newest = candidates[0];
  for (const d of candidates.slice(1)) if (createdOf(d) >= createdOf(newest)) newest = d;
  const att = `attestation ${newest.digest} of ${where}`;

  let manifest: any;
  try {
    manifest = (await client.getManifest({ host: base.host, repository: base.repository, digest: newest.digest }, [MEDIA_TYPES.ociManifest])).manifest;
  } catch (e) {
    if (contentError(e)) return fail(`${att}: cannot read its manifest: ${e.message}`);
    throw e;
  }
  if (manifest?.artifactType !== ATTESTATION_ARTIFACT_TYPE) return fail(`${att}: manifest artifactType is ${JSON.stringify(manifest?.artifactType)}, not ${ATTESTATION_ARTIFACT_TYPE}`);
  if (manifest?.subject?.digest !== opts.subjectDigest) return fail(`${att}: manifest subject ${manifest?.subject?.digest ?? 'missing'} is not ${opts.subjectDigest}`);
  const layers = Array.isArray(manifest?.layers) ? manifest.layers : [];
  if (layers.length !== 1 || layers[0]?.mediaType !== DSSE_ENVELOPE_MEDIA_TYPE) return fail(`${att}: expected exactly one ${DSSE_ENVELOPE_MEDIA_TYPE} layer`);
  const layer = layers[0];
  if (typeof layer.digest !== 'string' || !Number.isSafeInteger(layer.size) || layer.size > MAX_ENVELOPE_BYTES) return fail(`${att}: envelope layer descriptor is malformed or larger than ${MAX_ENVELOPE_BYTES} bytes`);

  let envelopeBytes: Buffer;
  try {
    envelopeBytes = await client.getBlobBuffer({ host: base.host, repository: base.repository }, layer.digest, MAX_ENVELOPE_BYTES);
  } catch (e) {
    if (contentError(e)) return fail(`${att}: cannot read its envelope ${layer.digest}: ${e.message}`);
    throw e;
  }
  let envelope: unknown;
  try {
    envelope = JSON.parse(envelopeBytes.toString('utf8'));
  } catch {
    return fail(`${att}: the envelope is not JSON`);
  }

  const v = verifyEnvelope(envelope, opts.publicKeyPem);
  if (!v.ok) return fail(`${att}: ${v.reason}`);
  if (v.payloadType !== IN_TOTO_PAYLOAD_TYPE) return fail(`${att}: payloadType is "${v.payloadType}", not ${IN_TOTO_PAYLOAD_TYPE}`);
  let statement: any;
  try {
    statement = JSON.parse(v.payload.toString('utf8'));
  } catch {
    return fail(`${att}: the signed payload is not JSON`);
  }
  if (statement?._type !== IN_TOTO_STATEMENT_TYPE) return fail(`${att}: statement _type is ${JSON.stringify(statement?._type)}, not ${IN_TOTO_STATEMENT_TYPE}`);
  if (statement.predicateType !== ATTESTATION_PREDICATE_TYPE) return fail(`${att}: predicateType is ${JSON.stringify(statement.predicateType)}, not ${ATTESTATION_PREDICATE_TYPE}`);
  const subjects = Array.isArray(statement.subject) ? statement.subject : [];
  const hexes = subjects.map((s: any) => s?.digest?.sha256).filter((h: unknown): h is string => typeof h === 'string');
  if (!hexes.includes(m[1])) {
    return fail(`${att}: subject digest ${hexes.length ? hexes.map((h: string) => `sha256:${h}`).join(', ') : '(none)'} of the signed statement does not match ${opts.subjectDigest}`);
  }
  const problem = predicateProblem(statement.predicate);
  if (problem) return fail(`${att}: ${problem}`);
  const producerNs = (statement.predicate as AttestationPredicate).producer.namespace;
  if (opts.namespace !== undefined && producerNs !== opts.namespace) return fail(`${att}: attests a snapshot of namespace ${producerNs}, not ${opts.namespace}`);
  return { ok: true, predicate: statement.predicate as AttestationPredicate, digest: newest.digest };
}
