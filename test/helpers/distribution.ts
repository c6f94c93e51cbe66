// Debian's docker-registry (the CNCF distribution registry) on loopback for tests, with no auth,
// htpasswd basic auth, or token auth against a small token server run by the test.
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, createSign, generateKeyPairSync, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import forge from 'node-forge';
import YAML from 'yaml';

export const DOCKER_REGISTRY = '/usr/bin/docker-registry';

export interface Distribution {
  host: string; // 127.0.0.1:PORT
  port: number;
  dir: string;
  logs: string[];
  stop(): Promise<void>;
  /** Stops the registry and keeps its storage: startDistribution({ dir, port }) brings it back with its content. */
  kill(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as AddressInfo;
  await new Promise((r) => srv.close(r));
  return port;
}

export function htpasswd(users: Record<string, string>): string {
  return Object.entries(users).map(([u, p]) => `${u}:${bcrypt.hashSync(p, 5)}\n`).join('');
}

export interface TokenAuth {
  realm: string;
  service: string;
  issuer: string;
  rootCertBundle: string; // path
}

/** TLS for the registry (PEM texts); with clientCa, clients must present a certificate it signed (mTLS). */
export interface DistributionTls {
  cert: string;
  key: string;
  clientCa?: string;
  /** What the readiness probe presents when clientCa is set. */
  probe?: { cert: string; key: string };
}

export async function startDistribution(opts: { htpasswd?: Record<string, string>; token?: TokenAuth; tls?: DistributionTls; dir?: string; port?: number } = {}): Promise<Distribution> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'distribution-'));
  const logs: string[] = [];
  let proc: ChildProcess | undefined;
  let port = 0;
  for (let attempt = 0; attempt < 5; attempt++) {
    port = opts.port ?? (await freePort());
    const config: any = {
      version: 0.1,
      log: { level: 'warn', accesslog: { disabled: true } },
      storage: { filesystem: { rootdirectory: path.join(dir, 'storage') }, delete: { enabled: true } },
      http: { addr: `127.0.0.1:${port}`, secret: randomBytes(16).toString('hex') },
    };
    if (opts.htpasswd) {
      fs.writeFileSync(path.join(dir, 'htpasswd'), htpasswd(opts.htpasswd));
      config.auth = { htpasswd: { realm: 'test-realm', path: path.join(dir, 'htpasswd') } };
    }
    if (opts.tls) {
      const file = (name: string, text: string) => (fs.writeFileSync(path.join(dir, name), text, { mode: 0o600 }), path.join(dir, name));
      config.http.tls = { certificate: file('tls.crt', opts.tls.cert), key: file('tls.key', opts.tls.key) };
      if (opts.tls.clientCa) config.http.tls.clientcas = [file('client-ca.crt', opts.tls.clientCa)];
    }
    if (opts.token) {
      const { realm, service, issuer, rootCertBundle } = opts.token;
      config.auth = { token: { realm, service, issuer, rootcertbundle: rootCertBundle } };
    }
    fs.writeFileSync(path.join(dir, 'config.yml'), YAML.stringify(config));
    const p = spawn(DOCKER_REGISTRY, ['serve', path.join(dir, 'config.yml')], { stdio: ['ignore', 'pipe', 'pipe'] });
    proc = p;
    p.stdout!.on('data', (d) => logs.push(String(d)));
    p.stderr!.on('data', (d) => logs.push(String(d)));
    let exited = false;
    p.once('exit', () => (exited = true));
    const deadline = Date.now() + 15_000;
    while (!exited && Date.now() < deadline) {
      const status = await new Promise<number>((resolve) => {
        const done = (res: http.IncomingMessage) => (res.resume(), resolve(res.statusCode ?? 0));
        if (!opts.tls) http.get(`http://127.0.0.1:${port}/v2/`, done).on('error', () => resolve(0));
        else https.get(`https://127.0.0.1:${port}/v2/`, { rejectUnauthorized: false, ...opts.tls.probe }, done).on('error', () => resolve(0));
      });
      if (status === 200 || status === 401) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (!exited) break;
    proc = undefined; // port taken in the meantime: try another
  }
  if (!proc) throw new Error(`docker-registry did not start:\n${logs.join('')}`);
  const child = proc;
  const kill = async () => {
    if (child.exitCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    }
  };
  return {
    host: `127.0.0.1:${port}`,
    port,
    dir,
    logs,
    kill,
    async stop() {
      await kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A distribution-compatible token server: JWTs signed with a self-signed certificate's key (x5c). */
export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  rootCertBundle: string;
  requests: { account?: string; scopes: string[] }[];
  close(): Promise<void>;
}

export async function startTokenServer(opts: { users: Record<string, string>; dir: string; anonymousPull?: boolean }): Promise<TokenServer> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString());
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 3600_000);
  cert.validity.notAfter = new Date(Date.now() + 86400_000);
  const attrs = [{ name: 'commonName', value: 'test token signer' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.sign(forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs1', format: 'pem' }).toString()), forge.md.sha256.create());
  const pem = forge.pki.certificateToPem(cert);
  const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
  const bundle = path.join(opts.dir, 'token-root.pem');
  fs.writeFileSync(bundle, pem);
  const service = 'test-registry';
  const issuer = 'test-token-issuer';
  const requests: TokenServer['requests'] = [];
  const b64url = (b: Buffer | string) => Buffer.from(b).toString('base64url');

  const server = http.createServer((req, res) => {
    const url = new URL(req.url!, 'http://x');
    let account: string | undefined;
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [u, ...rest] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      if (opts.users[u] !== rest.join(':')) {
        res.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"bad credentials"}');
        return;
      }
      account = u;
    }
    const scopes = url.searchParams.getAll('scope');
    requests.push({ account, scopes });
    const access = scopes.map((s) => {
      const [type, ...restParts] = s.split(':');
      const actions = restParts.pop()!.split(',');
      const allowed = account ? actions : opts.anonymousPull ? actions.filter((a) => a === 'pull') : [];
      return { type, name: restParts.join(':'), actions: allowed };
    });
    const now = Math.floor(Date.now() / 1000);
    const header = { typ: 'JWT', alg: 'RS256', x5c: [der.toString('base64')] };
    const claims = { iss: issuer, sub: account ?? '', aud: service, exp: now + 300, nbf: now - 10, iat: now, jti: randomBytes(8).toString('hex'), access };
    const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const sig = createSign('RSA-SHA256').update(signingInput).sign(privateKey);
    const token = `${signingInput}.${b64url(sig)}`;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300, issued_at: new Date().toISOString() }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    rootCertBundle: bundle,
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

export const sha256 = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
