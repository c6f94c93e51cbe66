// Signing and verification of component descriptors as the OCM tool does them, and resource digests.
//
// A signature covers the hash of the normalised descriptor: RSASSA-PKCS1-V1_5 (media type
// application/vnd.ocm.signature.rsa) or RSASSA-PSS (application/vnd.ocm.signature.rsa.pss, salt as
// long as possible when signing, any salt length when verifying, as Go's crypto/rsa does), the
// value hex; a PEM signature (application/x-pem-file, a SIGNATURE block) is verified too.
import crypto, { type KeyObject } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { type OciClient, type Ref, digestOf, hashInSlices } from '../registry/client.js';
import { ociLayoutMain, looksLikeTar } from './archive.js';
import type { ComponentDescriptor, DigestSpec, Resource, Signature } from './descriptor.js';
import { type Normalisation, NORMALISATIONS, hashHex, nodeHash, normalise } from './normalise.js';

export type SignatureAlgorithm = 'RSASSA-PKCS1-V1_5' | 'RSASSA-PSS';
export const MEDIA_TYPE_RSA = 'application/vnd.ocm.signature.rsa';
export const MEDIA_TYPE_RSA_PSS = 'application/vnd.ocm.signature.rsa.pss';
export const MEDIA_TYPE_PEM = 'application/x-pem-file';
export const GENERIC_BLOB_DIGEST = 'genericBlobDigest/v1';
export const OCI_ARTIFACT_DIGEST = 'ociArtifactDigest/v1';
const EXCLUDED = 'EXCLUDE-FROM-SIGNATURE';

export class SigningError extends Error {
  override name = 'SigningError';
}

function rsaKey(pem: string, kind: 'public' | 'private'): KeyObject {
  let key: KeyObject;
  try {
    key = kind === 'public' ? crypto.createPublicKey(pem) : crypto.createPrivateKey(pem);
  } catch (e) {
    throw new SigningError(`the ${kind} key is not a PEM ${kind === 'public' ? 'public key, certificate' : 'private key'} Node.js can read: ${(e as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'rsa') throw new SigningError(`the ${kind} key is ${key.asymmetricKeyType ?? 'not asymmetric'}, not RSA`);
  return key;
}

const padding = (alg: string, signing: boolean) =>
  alg === 'RSASSA-PSS'
    ? { padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: signing ? crypto.constants.RSA_PSS_SALTLEN_MAX_SIGN : crypto.constants.RSA_PSS_SALTLEN_AUTO }
    : { padding: crypto.constants.RSA_PKCS1_PADDING };

/** Resources whose content a signature would not cover: no digest and an access other than none. */
export function resourcesWithoutDigest(cd: ComponentDescriptor): Resource[] {
  return cd.component.resources.filter((r) => !r.digest && !['none', 'None'].includes(r.access?.type));
}

/** A copy of the descriptor with the signature `name` added (or replaced). */
export function signDescriptor(
  cd: ComponentDescriptor,
  opts: { name: string; privateKeyPem: string; normalisation?: Normalisation; algorithm?: SignatureAlgorithm; issuer?: string },
): ComponentDescriptor {
  const normalisation = opts.normalisation ?? 'jsonNormalisation/v3';
  const algorithm = opts.algorithm ?? 'RSASSA-PKCS1-V1_5';
  if (!opts.name) throw new SigningError('a signature needs a name');
  if (!['RSASSA-PKCS1-V1_5', 'RSASSA-PSS'].includes(algorithm)) throw new SigningError(`unsupported signature algorithm "${algorithm}" (supported: RSASSA-PKCS1-V1_5, RSASSA-PSS)`);
  const missing = resourcesWithoutDigest(cd);
  if (missing.length) throw new SigningError(`resource${missing.length > 1 ? 's' : ''} ${missing.map((r) => `"${r.name}"`).join(', ')} ha${missing.length > 1 ? 've' : 's'} no digest, so the signature would not cover their content; compute the digests first`);
  const key = rsaKey(opts.privateKeyPem, 'private');
  const data = normalise(cd, normalisation);
  const value = crypto.sign('sha256', data, { key, ...padding(algorithm, true) }).toString('hex');
  const sig: Signature = {
    name: opts.name,
    digest: { hashAlgorithm: 'SHA-256', normalisationAlgorithm: normalisation, value: hashHex(data) },
    signature: { algorithm, value, mediaType: algorithm === 'RSASSA-PSS' ? MEDIA_TYPE_RSA_PSS : MEDIA_TYPE_RSA, ...(opts.issuer ? { issuer: opts.issuer } : {}) },
  };
  const out = structuredClone(cd);
  out.signatures = [...(out.signatures ?? []).filter((s) => s.name !== opts.name), sig];
  return out;
}

function signatureBytes(s: Signature): Buffer | string {
  const { mediaType, value } = s.signature;
  if (mediaType === MEDIA_TYPE_RSA || mediaType === MEDIA_TYPE_RSA_PSS) {
    return /^([0-9a-fA-F]{2})+$/.test(value) ? Buffer.from(value, 'hex') : `the value of signature "${s.name}" is not hex`;
  }
  if (mediaType === MEDIA_TYPE_PEM) {
    const m = /-----BEGIN SIGNATURE-----\r?\n([\s\S]*?)-----END SIGNATURE-----/.exec(value);
    if (!m) return `signature "${s.name}" has media type ${MEDIA_TYPE_PEM} but no SIGNATURE PEM block`;
    const lines = m[1].split(/\r?\n/);
    const algo = lines.find((l) => /^Signature Algorithm:/i.test(l))?.split(':')[1]?.trim();
    if (algo && algo !== s.signature.algorithm) return `signature "${s.name}": its PEM block says algorithm ${algo}, the descriptor says ${s.signature.algorithm}`;
    return Buffer.from(lines.filter((l) => !l.includes(':')).join(''), 'base64');
  }
  return `signature "${s.name}" has media type "${mediaType}", which is not supported (${MEDIA_TYPE_RSA}, ${MEDIA_TYPE_RSA_PSS}, ${MEDIA_TYPE_PEM})`;
}

function verifyOne(cd: ComponentDescriptor, s: Signature, key: KeyObject): string | undefined {
  const alg = s.digest?.normalisationAlgorithm;
  if (!NORMALISATIONS.includes(alg as Normalisation)) return `signature "${s.name}" uses normalisation "${alg}", which is not supported (supported: ${NORMALISATIONS.join(', ')})`;
  const hash = nodeHash(s.digest.hashAlgorithm ?? '');
  if (!hash) return `signature "${s.name}" uses hash algorithm "${s.digest.hashAlgorithm}", which is not supported (SHA-256, SHA-512)`;
  // jsonNormalisation/v1 signers wrote a missing extraIdentity as null, older ones left it out
  const forms = alg === 'jsonNormalisation/v1' ? [normalise(cd, alg), normalise(cd, alg, { legacyV1: true })] : [normalise(cd, alg)];
  const digests = forms.map((f) => hashHex(f, hash));
  const i = digests.findIndex((d) => d === s.digest.value?.toLowerCase());
  if (i < 0) {
    return `digest mismatch: signature "${s.name}" was made for ${alg} ${s.digest.hashAlgorithm} digest ${s.digest.value}, but the descriptor's is ${digests[0]}; the component descriptor was changed after it was signed`;
  }
  const algorithm = s.signature?.algorithm;
  if (algorithm !== 'RSASSA-PKCS1-V1_5' && algorithm !== 'RSASSA-PSS') return `signature "${s.name}" uses algorithm "${algorithm}", which is not supported (supported: RSASSA-PKCS1-V1_5, RSASSA-PSS)`;
  const bytes = signatureBytes(s);
  if (typeof bytes === 'string') return bytes;
  let ok = false;
  try {
    ok = crypto.verify(hash, forms[i], { key, ...padding(algorithm, false) }, bytes);
  } catch {
    ok = false;
  }
  return ok ? undefined : `signature "${s.name}" (${algorithm}) does not verify with the given public key: it was made with another key or has been altered`;
}

/** Verifies one signature (`name`), or, without a name, any RSA signature of the descriptor. */
export function verifyDescriptor(cd: ComponentDescriptor, opts: { name?: string; publicKeyPem: string }): { ok: true; signature: Signature } | { ok: false; reason: string } {
  const sigs = cd.signatures ?? [];
  const what = `component ${cd.component?.name}:${cd.component?.version}`;
  if (!sigs.length) return { ok: false, reason: `${what} is not signed (it has no signatures)` };
  const candidates = opts.name ? sigs.filter((s) => s.name === opts.name) : sigs;
  if (!candidates.length) return { ok: false, reason: `${what} has no signature named "${opts.name}" (it has ${sigs.map((s) => `"${s.name}"`).join(', ')})` };
  let key: KeyObject;
  try {
    key = rsaKey(opts.publicKeyPem, 'public');
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  const reasons: string[] = [];
  for (const s of candidates) {
    let reason: string | undefined;
    try {
      reason = verifyOne(cd, s, key);
    } catch (e) {
      reason = `signature "${s.name}": the descriptor cannot be normalised: ${(e as Error).message}`;
    }
    if (!reason) return { ok: true, signature: s };
    reasons.push(reason);
  }
  return { ok: false, reason: reasons.join('; ') };
}

// ---- resource digests ----------------------------------------------------------------------

export function genericBlobDigest(data: Buffer, hash = 'SHA-256'): DigestSpec {
  return { hashAlgorithm: hash, normalisationAlgorithm: GENERIC_BLOB_DIGEST, value: hashHex(data, hash) };
}

const artifactDigest = (digest: string): DigestSpec => ({ hashAlgorithm: digest.startsWith('sha512:') ? 'SHA-512' : 'SHA-256', normalisationAlgorithm: OCI_ARTIFACT_DIGEST, value: digest.split(':')[1] });

/**
 * ociArtifactDigest/v1: the digest of the artifact's manifest (or index). From an OCI layout archive
 * (a localBlob such as `application/vnd.oci.image.manifest.v1+tar+gzip`: the main manifest inside),
 * from the manifest bytes, or fetched from a registry.
 */
export async function ociArtifactDigest(src: Buffer | { manifest: Buffer } | { client: OciClient; ref: Ref }): Promise<DigestSpec> {
  if (Buffer.isBuffer(src)) return artifactDigest((await ociLayoutMain(src)).digest);
  if ('manifest' in src) return artifactDigest(digestOf(src.manifest));
  return artifactDigest((await src.client.getManifest(src.ref)).digest);
}

export const isExcludedDigest = (d: DigestSpec | null | undefined) => d?.normalisationAlgorithm === EXCLUDED;

/** Checks fetched content (bytes, or the manifest digest of an OCI artifact) against the resource's digest. */
/** The first `n` bytes of a stream (fewer if it is shorter), and the whole stream again. */
async function peek(stream: Readable, n: number): Promise<{ head: Buffer; stream: Readable }> {
  const parts: Buffer[] = [];
  let have = 0;
  const it = stream[Symbol.asyncIterator]();
  while (have < n) {
    const r = await it.next();
    if (r.done) break;
    parts.push(r.value as Buffer);
    have += (r.value as Buffer).length;
  }
  const head = Buffer.concat(parts);
  const again = new PassThrough();
  again.write(head);
  void (async () => {
    try {
      for (let r = await it.next(); !r.done; r = await it.next()) if (!again.write(r.value)) await new Promise((res) => again.once('drain', res));
      again.end();
    } catch (e) {
      again.destroy(e as Error);
    }
  })();
  return { head, stream: again };
}

async function hashStream(stream: Readable, alg: string): Promise<string> {
  const h = crypto.createHash(alg);
  for await (const c of stream) h.update(c as Buffer);
  return h.digest('hex');
}

/**
 * Checks a resource's content against its digest: the content in memory, or a stream of it (read
 * once, nothing kept but an OCI layout's index and manifests), or an artifact's manifest digest.
 */
export async function verifyResourceDigest(resource: Resource, data: Buffer | Readable | { manifestDigest: string }): Promise<{ ok: boolean; reason?: string }> {
  const d = resource.digest;
  const what = `resource "${resource.name}"`;
  if (!d) return { ok: false, reason: `${what} has no digest to check its content against` };
  if (isExcludedDigest(d)) return { ok: true, reason: `${what} is excluded from signing` };
  const hash = nodeHash(d.hashAlgorithm);
  if (!hash) return { ok: false, reason: `${what}: hash algorithm "${d.hashAlgorithm}" is not supported (SHA-256, SHA-512)` };
  let actual: string;
  try {
    if (d.normalisationAlgorithm === GENERIC_BLOB_DIGEST) {
      if (data instanceof Readable) actual = await hashStream(data, hash);
      else if (!Buffer.isBuffer(data)) return { ok: false, reason: `${what}: ${GENERIC_BLOB_DIGEST} needs the content, not a manifest digest` };
      else actual = await hashInSlices(data, hash);
    } else if (d.normalisationAlgorithm === OCI_ARTIFACT_DIGEST) {
      if (data instanceof Readable) {
        const { head, stream } = await peek(data, 512);
        actual = looksLikeTar(head) ? (await ociLayoutMain(stream)).digest.split(':')[1] : await hashStream(stream, hash);
      } else if (!Buffer.isBuffer(data)) actual = data.manifestDigest.split(':')[1] ?? '';
      else if (looksLikeTar(data)) actual = (await ociLayoutMain(data)).digest.split(':')[1];
      else actual = await hashInSlices(data, hash);
    } else {
      return { ok: false, reason: `${what}: digest normalisation "${d.normalisationAlgorithm}" is not supported (${GENERIC_BLOB_DIGEST}, ${OCI_ARTIFACT_DIGEST})` };
    }
  } catch (e) {
    return { ok: false, reason: `${what}: cannot compute its ${d.normalisationAlgorithm} digest: ${(e as Error).message}` };
  }
  if (actual !== d.value.toLowerCase()) {
    return { ok: false, reason: `digest mismatch for ${what}: the content has ${d.normalisationAlgorithm} ${d.hashAlgorithm} digest ${actual}, the descriptor says ${d.value}` };
  }
  return { ok: true };
}

/** An RSA key pair as PEM (PKCS#1 private key, PKIX public key), as `ocm create rsakeypair` makes. */
export function generateKeyPair(bits = 2048): { privateKeyPem: string; publicKeyPem: string } {
  const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  };
}
