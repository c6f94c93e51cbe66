import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { PULL_URI_PREFIX } from '../registry/server-auth.js';
import { coversHosts, createCA, createClientCert, createServerCert, newKeys, newKeysSync, type KeyPair, type Subject } from './pki.js';

export interface CertBundle {
  frontProxyCACertPem: string;
  frontProxyCAKeyPem: string;
  frontProxyClientCertPem: string;
  frontProxyClientKeyPem: string;
  caCertPem: string;
  caKeyPem: string;
  serverCertPem: string;
  serverKeyPem: string;
  /** Signs snapshot attestations; kept across reissues of the serving certificate and new CAs. */
  attestationKeyPem: string;
  attestationPublicKeyPem: string;
  adminCertPem: string;
  adminKeyPem: string;
  dir: string;
}

export const DEFAULT_HOSTS = [
  'localhost',
  'ocm-apiserver',
  'ocm-apiserver.ocm-system',
  'ocm-apiserver.ocm-system.svc',
  'ocm-apiserver.ocm-system.svc.cluster.local',
  '127.0.0.1',
  '::1',
];

const CA_DAYS = 3650;
const SERVER_DAYS = 825;
const CLIENT_DAYS = 365;

function readPair(dir: string, name: string): KeyPair | undefined {
  const cert = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  if (!fs.existsSync(cert) || !fs.existsSync(key)) return undefined;
  return { certPem: fs.readFileSync(cert, 'utf8'), keyPem: fs.readFileSync(key, 'utf8') };
}

function writePair(dir: string, name: string, pair: KeyPair): void {
  const key = path.join(dir, `${name}.key`);
  fs.writeFileSync(key, pair.keyPem, { mode: 0o600 });
  fs.chmodSync(key, 0o600); // writeFileSync's mode only applies when the file is created
  fs.writeFileSync(path.join(dir, `${name}.crt`), pair.certPem, { mode: 0o644 });
}

/**
 * The attestation signing key (`attestation.key`). Snapshots stay attested only while this key is
 * the same, so it is independent of the serving certificate (reissued when hosts change) and of
 * the CA. A data dir from before it existed adopts the serving key that signed its attestations.
 */
async function ensureAttestationKey(dir: string, previousServerKey: string | undefined): Promise<string> {
  const file = path.join(dir, 'attestation.key');
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8');
  const key = previousServerKey ?? (await newKeys()).privateKey;
  try {
    fs.writeFileSync(file, key, { mode: 0o600 });
  } catch (e) {
    // A read-only cert dir rendered before attestation.key existed (a cluster Secret): sign with the
    // serving key as before; rendering the Secret again adds the file.
    if (!previousServerKey || !['EROFS', 'EACCES', 'EPERM'].includes((e as NodeJS.ErrnoException).code ?? '')) throw e;
  }
  return key;
}

/**
 * Loads the CA, serving and admin key pairs from `dir`, generating whatever is missing.
 * A new CA invalidates the other pairs; an existing server cert is reissued only if
 * its SANs do not cover every requested host.
 */
export async function ensureCerts(dir: string, opts: { hosts?: string[] } = {}): Promise<CertBundle> {
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const hosts = [...new Set([...DEFAULT_HOSTS, ...(opts.hosts ?? []).map((h) => h.replace(/^\[(.*)\]$/, '$1'))])];

  let ca = readPair(dir, 'ca');
  const fresh = !ca;
  if (!ca) {
    ca = createCA(await newKeys(), 'ocm-apiserver-ca', CA_DAYS);
    writePair(dir, 'ca', ca);
  }
  let server = fresh ? undefined : readPair(dir, 'server');
  const attestationKey = await ensureAttestationKey(dir, readPair(dir, 'server')?.keyPem);
  if (!server || !coversHosts(server.certPem, hosts)) {
    server = createServerCert(ca, await newKeys(), 'ocm-apiserver', hosts, SERVER_DAYS);
    writePair(dir, 'server', server);
  }
  let admin = fresh ? undefined : readPair(dir, 'admin');
  if (!admin) {
    admin = createClientCert(ca, await newKeys(), { commonName: 'admin', organizations: ['system:masters'] }, CLIENT_DAYS);
    writePair(dir, 'admin', admin);
  }
  // The front-proxy CA signs the client certificate an aggregator (kube-apiserver) presents with
  // X-Remote-User headers; standalone mode publishes it as requestheader-client-ca-file.
  let fpCA = fresh ? undefined : readPair(dir, 'front-proxy-ca');
  const fpFresh = !fpCA;
  if (!fpCA) {
    fpCA = createCA(await newKeys(), 'ocm-apiserver-front-proxy-ca', CA_DAYS);
    writePair(dir, 'front-proxy-ca', fpCA);
  }
  let fpClient = fpFresh ? undefined : readPair(dir, 'front-proxy-client');
  if (!fpClient) {
    fpClient = createClientCert(fpCA, await newKeys(), { commonName: 'front-proxy-client' }, CLIENT_DAYS);
    writePair(dir, 'front-proxy-client', fpClient);
  }
  return {
    frontProxyCACertPem: fpCA.certPem,
    frontProxyCAKeyPem: fpCA.keyPem,
    frontProxyClientCertPem: fpClient.certPem,
    frontProxyClientKeyPem: fpClient.keyPem,
    caCertPem: ca.certPem,
    caKeyPem: ca.keyPem,
    serverCertPem: server.certPem,
    serverKeyPem: server.keyPem,
    attestationKeyPem: attestationKey,
    attestationPublicKeyPem: createPublicKey(attestationKey).export({ type: 'spki', format: 'pem' }) as string,
    adminCertPem: admin.certPem,
    adminKeyPem: admin.keyPem,
    dir,
  };
}

export function issueClientCert(
  ca: { certPem: string; keyPem: string },
  subject: Subject,
  days = CLIENT_DAYS,
): { certPem: string; keyPem: string } {
  return createClientCert(ca, newKeysSync(), subject, days);
}

export function writeKubeconfig(
  file: string,
  opts: { server: string; caCertPem: string; clientCertPem: string; clientKeyPem: string; user?: string; context?: string },
): void {
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const cluster = 'ocm-apiserver';
  const user = opts.user ?? 'ocm-apiserver';
  const context = opts.context ?? 'ocm-apiserver';
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: cluster, cluster: { server: opts.server, 'certificate-authority-data': b64(opts.caCertPem) } }],
    users: [{ name: user, user: { 'client-certificate-data': b64(opts.clientCertPem), 'client-key-data': b64(opts.clientKeyPem) } }],
    contexts: [{ name: context, context: { cluster, user } }],
    'current-context': context,
    preferences: {},
  };
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, YAML.stringify(config), { mode: 0o600 });
  fs.chmodSync(file, 0o600);
}

const RENEW_BEFORE_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * The client certificate of a namespace's registry Secret (ocm-registry-tls, for Flux): it names
 * the namespace in a URI SAN (PULL_URI_PREFIX + namespace) and so pulls that namespace's snapshots
 * and nothing else; the API does not accept it as an identity. `current` (the Secret's tls.crt and
 * tls.key) is kept while it is this CA's, for this namespace, its key matches and it is valid for
 * 30 more days; otherwise (a new CA among them) a new one is issued.
 */
export async function namespacePullCert(ca: { certPem: string; keyPem: string }, namespace: string, current?: { certPem?: string; keyPem?: string }): Promise<KeyPair> {
  if (current?.certPem && current.keyPem) {
    try {
      const x = new X509Certificate(current.certPem);
      const issuer = new X509Certificate(ca.certPem);
      const sans = (x.subjectAltName ?? '').split(', ');
      if (
        x.checkIssued(issuer) &&
        x.verify(issuer.publicKey) &&
        sans.includes(`URI:${PULL_URI_PREFIX}${namespace}`) &&
        Date.parse(x.validTo) - Date.now() > RENEW_BEFORE_MS &&
        x.checkPrivateKey(createPrivateKey(current.keyPem))
      )
        return { certPem: current.certPem, keyPem: current.keyPem };
    } catch {
      // unreadable: issue a new one
    }
  }
  return createClientCert(ca, await newKeys(), { commonName: `ocm-registry-pull:${namespace}` }, CLIENT_DAYS, [`${PULL_URI_PREFIX}${namespace}`]);
}
