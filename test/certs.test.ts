import t from 'tap';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import forge from 'node-forge';
import YAML from 'yaml';
import { ensureCerts, issueClientCert, namespacePullCert, writeKubeconfig, type CertBundle } from '../certs/index.js';
import { certPullNamespace } from '../registry/server-auth.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ocm-certs-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const dir = path.join(tmp, 'pki');
const bundle = await ensureCerts(dir);
const FILES = ['ca.crt', 'ca.key', 'server.crt', 'server.key', 'admin.crt', 'admin.key'];
const mode = (f: string) => fs.statSync(f).mode & 0o777;
const subjectOf = (pem: string) => new X509Certificate(pem).subject.split('\n').sort();

t.test('writes all files with private keys readable only by the owner', async (t) => {
  t.equal(bundle.dir, dir);
  t.equal(mode(dir), 0o700);
  for (const f of FILES) t.ok(fs.existsSync(path.join(dir, f)), f);
  for (const f of ['ca.key', 'server.key', 'admin.key']) t.equal(mode(path.join(dir, f)), 0o600, f);
  t.equal(fs.readFileSync(path.join(dir, 'server.crt'), 'utf8'), bundle.serverCertPem);
});

t.test('second call reuses the existing material', async (t) => {
  t.same(await ensureCerts(dir), bundle);
  t.same(await ensureCerts(dir, { hosts: ['localhost', '127.0.0.1'] }), bundle, 'hosts already covered');
});

t.test('CA is a self-signed 10 year CA', async (t) => {
  const ca = new X509Certificate(bundle.caCertPem);
  t.equal(ca.subject, 'CN=ocm-apiserver-ca');
  t.ok(ca.ca);
  t.ok(ca.verify(ca.publicKey));
  const years = (Date.parse(ca.validTo) - Date.parse(ca.validFrom)) / (365 * 864e5);
  t.ok(years >= 9.9, `valid ${years.toFixed(1)} years`);
});

t.test('server cert is signed by the CA and covers the default hosts', async (t) => {
  const ca = new X509Certificate(bundle.caCertPem);
  const cert = new X509Certificate(bundle.serverCertPem);
  t.ok(cert.checkIssued(ca));
  t.ok(cert.verify(ca.publicKey));
  t.notOk(cert.ca);
  t.ok(cert.checkPrivateKey(createPrivateKey(bundle.serverKeyPem)));
  t.equal(cert.checkHost('localhost'), 'localhost');
  t.equal(cert.checkHost('ocm-apiserver.ocm-system.svc'), 'ocm-apiserver.ocm-system.svc');
  t.equal(cert.checkIP('127.0.0.1'), '127.0.0.1');
  t.ok(cert.checkIP('::1'));
  t.equal(cert.checkHost('example.com'), undefined);
  t.same(cert.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'extKeyUsage serverAuth');
  t.ok(Date.parse(cert.validTo) - Date.now() >= 365 * 864e5, 'valid for at least a year');
  t.ok(Date.parse(cert.validFrom) < Date.now(), 'notBefore in the past');
  t.match(cert.serialNumber, /^[0-7][0-9A-F]+$/i, 'positive hex serial');
});

t.test('admin cert is CN=admin O=system:masters for client auth', async (t) => {
  const cert = new X509Certificate(bundle.adminCertPem);
  t.same(subjectOf(bundle.adminCertPem), ['CN=admin', 'O=system:masters']);
  t.ok(cert.checkIssued(new X509Certificate(bundle.caCertPem)));
  t.same(cert.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'extKeyUsage clientAuth');
});

t.test('server cert is reissued with the same CA when new hosts are requested', async (t) => {
  const dir2 = path.join(tmp, 'reissue');
  fs.cpSync(dir, dir2, { recursive: true });
  const b = await ensureCerts(dir2, { hosts: ['api.example.com', '10.0.0.7', '[fd00::1]'] });
  t.not(b.serverCertPem, bundle.serverCertPem);
  t.not(b.serverKeyPem, bundle.serverKeyPem);
  t.equal(b.caCertPem, bundle.caCertPem);
  t.equal(b.adminCertPem, bundle.adminCertPem);
  const cert = new X509Certificate(b.serverCertPem);
  t.ok(cert.checkIssued(new X509Certificate(b.caCertPem)));
  t.equal(cert.checkHost('api.example.com'), 'api.example.com');
  t.equal(cert.checkIP('10.0.0.7'), '10.0.0.7');
  t.ok(cert.checkIP('fd00::1'));
  t.equal(cert.checkHost('localhost'), 'localhost', 'defaults kept');
  t.equal(fs.readFileSync(path.join(dir2, 'server.crt'), 'utf8'), b.serverCertPem);
  t.equal(mode(path.join(dir2, 'server.key')), 0o600);
  t.same(await ensureCerts(dir2, { hosts: ['api.example.com'] }), b, 'stable once covered');
});

t.test('the attestation key outlives reissued serving certificates and new CAs; an old data dir adopts its serving key', async (t) => {
  t.equal(mode(path.join(dir, 'attestation.key')), 0o600);
  t.not(bundle.attestationKeyPem, bundle.serverKeyPem, 'its own key');
  t.equal(createPrivateKey(bundle.attestationKeyPem).asymmetricKeyType, 'rsa');
  const reissued = path.join(tmp, 'attest-reissue');
  fs.cpSync(dir, reissued, { recursive: true });
  const b = await ensureCerts(reissued, { hosts: ['other.example.com'] });
  t.not(b.serverKeyPem, bundle.serverKeyPem, 'a new serving key');
  t.equal(b.attestationKeyPem, bundle.attestationKeyPem, 'the same attestation key');
  const newCA = path.join(tmp, 'attest-ca');
  fs.cpSync(dir, newCA, { recursive: true });
  for (const f of ['ca.crt', 'ca.key']) fs.rmSync(path.join(newCA, f));
  const c = await ensureCerts(newCA);
  t.not(c.caCertPem, bundle.caCertPem, 'a new CA');
  t.equal(c.attestationKeyPem, bundle.attestationKeyPem, 'the same attestation key');
  const old = path.join(tmp, 'attest-old');
  fs.cpSync(dir, old, { recursive: true });
  fs.rmSync(path.join(old, 'attestation.key'));
  const d = await ensureCerts(old, { hosts: ['new.example.com'] });
  t.equal(d.attestationKeyPem, bundle.serverKeyPem, 'a data dir from before: the serving key that signed its attestations');
  t.not(d.serverKeyPem, bundle.serverKeyPem);
});

t.test('issueClientCert mints certs for other users and groups', async (t) => {
  const c = issueClientCert({ certPem: bundle.caCertPem, keyPem: bundle.caKeyPem }, { commonName: 'alice', organizations: ['dev', 'ops'] }, 2);
  const cert = new X509Certificate(c.certPem);
  t.same(subjectOf(c.certPem), ['CN=alice', 'O=dev', 'O=ops']);
  t.ok(cert.verify(new X509Certificate(bundle.caCertPem).publicKey));
  t.ok(Date.parse(cert.validTo) - Date.now() < 3 * 864e5);
});

t.test('issueClientCert works with a CA lacking subjectKeyIdentifier', async (t) => {
  const keys = forge.pki.rsa.generateKeyPair(1024);
  const ca = forge.pki.createCertificate();
  ca.publicKey = keys.publicKey;
  ca.serialNumber = '01';
  ca.validity.notAfter = new Date(Date.now() + 864e5);
  ca.setSubject([{ name: 'commonName', value: 'external-ca' }]);
  ca.setIssuer(ca.subject.attributes);
  ca.setExtensions([{ name: 'basicConstraints', cA: true }, { name: 'keyUsage', keyCertSign: true }]);
  ca.sign(keys.privateKey, forge.md.sha256.create());
  const caPem = forge.pki.certificateToPem(ca);
  const c = issueClientCert({ certPem: caPem, keyPem: forge.pki.privateKeyToPem(keys.privateKey) }, { commonName: 'bob' });
  t.same(subjectOf(c.certPem), ['CN=bob']);
  t.ok(new X509Certificate(c.certPem).checkIssued(new X509Certificate(caPem)));
});

interface Handshake {
  serverAuthorized: boolean;
  serverAuthError?: string;
  peerCN?: string;
  clientAuthorized: boolean;
}

async function handshake(b: CertBundle, client: { certPem: string; keyPem: string }): Promise<Handshake> {
  let seen: Omit<Handshake, 'clientAuthorized'> = { serverAuthorized: false };
  const server = https.createServer(
    { cert: b.serverCertPem, key: b.serverKeyPem, ca: b.caCertPem, requestCert: true, rejectUnauthorized: false },
    (req, res) => {
      const sock = req.socket as TLSSocket;
      const err = sock.authorizationError;
      seen = { serverAuthorized: sock.authorized, serverAuthError: err ? String(err) : undefined, peerCN: String(sock.getPeerCertificate().subject?.CN) };
      res.end('ok');
    },
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    const clientAuthorized = await new Promise<boolean>((resolve, reject) => {
      https
        .get(
          { host: '127.0.0.1', port, path: '/', servername: 'localhost', ca: b.caCertPem, cert: client.certPem, key: client.keyPem, agent: false },
          (res) => {
            const authorized = (res.socket as TLSSocket).authorized;
            res.resume().on('end', () => resolve(authorized));
          },
        )
        .on('error', reject);
    });
    return { ...seen, clientAuthorized };
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

t.test('TLS handshake with the admin cert is mutually authenticated', async (t) => {
  const r = await handshake(bundle, { certPem: bundle.adminCertPem, keyPem: bundle.adminKeyPem });
  t.equal(r.serverAuthorized, true, r.serverAuthError ?? 'server authorized the client');
  t.equal(r.peerCN, 'admin');
  t.equal(r.clientAuthorized, true, 'client verified server for servername localhost');
});

t.test('a client cert from a different CA is not authorized', async (t) => {
  const other = await ensureCerts(path.join(tmp, 'other'));
  t.not(other.caCertPem, bundle.caCertPem);
  const rogue = issueClientCert({ certPem: other.caCertPem, keyPem: other.caKeyPem }, { commonName: 'admin', organizations: ['system:masters'] });
  const r = await handshake(bundle, rogue);
  t.equal(r.serverAuthorized, false);
  t.ok(r.serverAuthError, `authorizationError: ${r.serverAuthError}`);
});

t.test('client rejects a server whose cert is not from its CA', async (t) => {
  const other = await ensureCerts(path.join(tmp, 'other'));
  const mixed = { ...bundle, caCertPem: other.caCertPem };
  await t.rejects(handshake(mixed, { certPem: bundle.adminCertPem, keyPem: bundle.adminKeyPem }), { code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
});

t.test('writeKubeconfig round-trips the PEMs', async (t) => {
  const file = path.join(tmp, 'kube', 'config');
  writeKubeconfig(file, { server: 'https://127.0.0.1:6443', caCertPem: bundle.caCertPem, clientCertPem: bundle.adminCertPem, clientKeyPem: bundle.adminKeyPem });
  t.equal(mode(file), 0o600);
  const cfg = YAML.parse(fs.readFileSync(file, 'utf8'));
  const unb64 = (s: string) => Buffer.from(s, 'base64').toString();
  t.equal(cfg.kind, 'Config');
  t.equal(cfg['current-context'], 'ocm-apiserver');
  t.same(cfg.contexts, [{ name: 'ocm-apiserver', context: { cluster: 'ocm-apiserver', user: 'ocm-apiserver' } }]);
  t.equal(cfg.clusters[0].name, 'ocm-apiserver');
  t.equal(cfg.clusters[0].cluster.server, 'https://127.0.0.1:6443');
  t.equal(unb64(cfg.clusters[0].cluster['certificate-authority-data']), bundle.caCertPem);
  t.equal(cfg.users[0].name, 'ocm-apiserver');
  t.equal(unb64(cfg.users[0].user['client-certificate-data']), bundle.adminCertPem);
  t.equal(unb64(cfg.users[0].user['client-key-data']), bundle.adminKeyPem);

  writeKubeconfig(file, { server: 'https://x', caCertPem: 'a', clientCertPem: 'b', clientKeyPem: 'c', user: 'alice', context: 'dev' });
  const cfg2 = YAML.parse(fs.readFileSync(file, 'utf8'));
  t.equal(cfg2['current-context'], 'dev');
  t.same(cfg2.contexts[0], { name: 'dev', context: { cluster: 'ocm-apiserver', user: 'alice' } });
  t.equal(cfg2.users[0].name, 'alice');
});

t.test('namespacePullCert: one per namespace, named in a URI SAN; kept while valid, reissued for another CA or namespace', async (t) => {
  const ca = { certPem: bundle.caCertPem, keyPem: bundle.caKeyPem };
  const a = await namespacePullCert(ca, 'team-a');
  const x = new X509Certificate(a.certPem);
  t.equal(certPullNamespace(x.subjectAltName), 'team-a', 'URI SAN names the namespace');
  t.ok(x.verify(new X509Certificate(ca.certPem).publicKey), 'signed by the CA');
  t.equal(x.subject, 'CN=ocm-registry-pull:team-a', 'no groups');
  t.ok(x.checkPrivateKey(createPrivateKey(a.keyPem)));
  t.same(await namespacePullCert(ca, 'team-a', a), a, 'kept as it is');
  t.not((await namespacePullCert(ca, 'team-b', a)).certPem, a.certPem, "team-a's is not team-b's");
  const other = await ensureCerts(path.join(tmp, 'other-ca'));
  const rotated = await namespacePullCert({ certPem: other.caCertPem, keyPem: other.caKeyPem }, 'team-a', a);
  t.not(rotated.certPem, a.certPem, 'a new CA: a new certificate');
  t.ok(new X509Certificate(rotated.certPem).verify(new X509Certificate(other.caCertPem).publicKey));
  const b = await namespacePullCert(ca, 'team-b');
  t.not((await namespacePullCert(ca, 'team-a', { certPem: a.certPem, keyPem: b.keyPem })).certPem, a.certPem, 'a key that does not match: reissued');
  t.not((await namespacePullCert(ca, 'team-a', { certPem: 'garbage', keyPem: 'garbage' })).certPem, a.certPem, 'garbage: reissued');
});
