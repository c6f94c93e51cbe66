import crypto from 'node:crypto';
import net from 'node:net';
import { promisify } from 'node:util';
import forge from 'node-forge';

const { pki } = forge;

export interface KeyPair {
  certPem: string;
  keyPem: string;
}

export interface Subject {
  commonName: string;
  organizations?: string[];
}

const DAY_MS = 24 * 60 * 60 * 1000;
const generateKeyPairAsync = promisify(crypto.generateKeyPair);
const RSA_OPTS = {
  modulusLength: 2048,
  publicKeyEncoding: { type: 'spki', format: 'pem' },
  privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
} as const;

interface PemKeys {
  publicKey: string;
  privateKey: string;
}

export const newKeys = (): Promise<PemKeys> => generateKeyPairAsync('rsa', RSA_OPTS);
export const newKeysSync = (): PemKeys => crypto.generateKeyPairSync('rsa', RSA_OPTS);

function randomSerial(): string {
  const bytes = crypto.randomBytes(16);
  // Keep the DER INTEGER positive and minimally encoded: top bit clear, first byte non-zero.
  bytes[0] = (bytes[0] & 0x3f) | 0x40;
  return bytes.toString('hex');
}

function toAttrs(subject: Subject): forge.pki.CertificateField[] {
  return [
    ...(subject.organizations ?? []).map((value) => ({ name: 'organizationName', value })),
    { name: 'commonName', value: subject.commonName },
  ];
}

interface Issuer {
  cert: forge.pki.Certificate;
  keyPem: string;
}

/** Signs a certificate for `keys` (self-signed when no issuer is given). */
function sign(keys: PemKeys, subject: Subject, days: number, extensions: object[], issuer?: Issuer): string {
  const cert = pki.createCertificate();
  cert.publicKey = pki.publicKeyFromPem(keys.publicKey);
  cert.serialNumber = randomSerial();
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + days * DAY_MS);
  cert.setSubject(toAttrs(subject));
  cert.setIssuer(issuer ? issuer.cert.subject.attributes : toAttrs(subject));
  const exts: object[] = [...extensions, { name: 'subjectKeyIdentifier' }];
  if (issuer) {
    const ski = issuer.cert.getExtension('subjectKeyIdentifier') as { subjectKeyIdentifier?: string } | undefined;
    const keyIdentifier = ski?.subjectKeyIdentifier
      ? forge.util.hexToBytes(ski.subjectKeyIdentifier)
      : issuer.cert.generateSubjectKeyIdentifier().getBytes();
    exts.push({ name: 'authorityKeyIdentifier', keyIdentifier });
  }
  cert.setExtensions(exts);
  // forge builds the certificate; Node's native RSA signs it (forge's JS RSA held the event loop 50-90 ms per certificate).
  cert.siginfo.algorithmOid = cert.signatureOid = pki.oids.sha256WithRSAEncryption;
  const tbs = Buffer.from(forge.asn1.toDer(getTBSCertificate(cert)).getBytes(), 'binary');
  cert.signature = crypto.sign('sha256', tbs, issuer?.keyPem ?? keys.privateKey).toString('binary');
  return pki.certificateToPem(cert);
}

// In node-forge, missing from its type definitions.
const getTBSCertificate = (pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate;

function loadIssuer(ca: KeyPair): Issuer {
  return { cert: pki.certificateFromPem(ca.certPem), keyPem: ca.keyPem };
}

const leafUsage = (purpose: 'serverAuth' | 'clientAuth') => [
  { name: 'basicConstraints', cA: false, critical: true },
  { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
  { name: 'extKeyUsage', [purpose]: true },
];

export function createCA(keys: PemKeys, commonName: string, days: number): KeyPair {
  const certPem = sign(keys, { commonName }, days, [
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
  ]);
  return { certPem, keyPem: keys.privateKey };
}

export function createServerCert(ca: KeyPair, keys: PemKeys, commonName: string, hosts: string[], days: number): KeyPair {
  const altNames = hosts.map((h) => (net.isIP(h) ? { type: 7, ip: h } : { type: 2, value: h }));
  const certPem = sign(keys, { commonName }, days, [...leafUsage('serverAuth'), { name: 'subjectAltName', altNames }], loadIssuer(ca));
  return { certPem, keyPem: keys.privateKey };
}

/** A client certificate; `uris` become URI subject alternative names. */
export function createClientCert(ca: KeyPair, keys: PemKeys, subject: Subject, days: number, uris: string[] = []): KeyPair {
  const sans = uris.length ? [{ name: 'subjectAltName', altNames: uris.map((value) => ({ type: 6, value })) }] : [];
  return { certPem: sign(keys, subject, days, [...leafUsage('clientAuth'), ...sans], loadIssuer(ca)), keyPem: keys.privateKey };
}

/** True if the certificate's SANs match every host (DNS names via checkHost, IPs via checkIP). */
export function coversHosts(certPem: string, hosts: string[]): boolean {
  const x509 = new crypto.X509Certificate(certPem);
  return hosts.every((h) => (net.isIP(h) ? x509.checkIP(h) : x509.checkHost(h, { subject: 'never' })) !== undefined);
}
