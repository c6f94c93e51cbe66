#!/usr/bin/env node
// `npm run example -- --kubeconfig FILE [--registry HOST:PORT] [--keys DIR] [--apply]`: prepares a running
// ocm-apiserver for the sample workflow in examples/podinfo/ (the walkthrough of the design):
//
//   1. reads the kubeconfig (server URL, CA, admin client certificate and key, or a token);
//   2. finds the snapshot registry: `--registry`, else ConfigMap kube-public/ocm-apiserver
//      (`data.registry`), which a standalone server publishes;
//   3. generates an RSA key pair once (examples/.keys/, gitignored; `--keys` elsewhere);
//   4. pushes a minimal image (registry/image.ts) for each image resource the component places in
//      that registry, then publishes the sample component (examples/podinfo/component/) into
//      `<registry>/<base path of the OCMComponent's repository url>` with the project's own
//      publisher (which records the image's manifest digest), signed, over mTLS with the
//      kubeconfig's client certificate;
//   5. creates the namespace the files name if it is missing, and creates or updates the Secret
//      with the public key that the OCMComponent's `spec.verify` names;
//   6. prints what to run next: the apply, with the registry address replaced when the server's
//      registry is not where the files say; with `--apply` it applies them itself.
//
// The namespace, repository, signature and Secret come from the OCMComponent in
// examples/podinfo/*.yaml, so the files and this command cannot disagree.
import { createPublicKey } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import YAML from 'yaml';
import { verifyRules } from '../kinds/ocmcomponent.js';
import { loadComponentSpecs, publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { generateKeyPair } from '../ocm/signing.js';
import { OciClient } from '../registry/client.js';
import { minimalImage, pushImage } from '../registry/image.js';

const USAGE = `usage: npm run example -- --kubeconfig FILE [--registry HOST:PORT] [--keys DIR] [--apply]

  --kubeconfig FILE     kubeconfig of the server (default: $KUBECONFIG, then ~/.kube/config);
                        a standalone server writes DATA_DIR/certs/admin.kubeconfig
  --registry HOST:PORT  the server's snapshot registry as this machine reaches it (default: read
                        from ConfigMap kube-public/ocm-apiserver, which a standalone server publishes)
  --keys DIR            where the signing key pair is kept (default: examples/.keys)
  --apply               also apply examples/podinfo/*.yaml (server-side apply, field manager
                        ocm-example), with the registry address in them replaced by this server's
`;

class UsageError extends Error {}

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const EXAMPLE_DIR = path.join(root, 'examples', 'podinfo');
const SPEC_FILE = path.join(EXAMPLE_DIR, 'component', 'component-constructor.yaml');
// `npm run` starts in the package root; relative paths on the command line mean the caller's directory.
const callerDir = process.env.INIT_CWD ?? process.cwd();
const fromCaller = (p: string) => path.resolve(callerDir, p.replace(/^~(?=$|\/)/, os.homedir()));
/** A path as the caller can type it: relative below their directory, else absolute. */
const rel = (p: string) => {
  const r = path.relative(callerDir, p);
  return !r ? '.' : r.startsWith('..') || path.isAbsolute(r) ? p : r;
};

// ---- kubeconfig -----------------------------------------------------------------------------

interface Connection {
  server: URL;
  ca?: string;
  cert?: string;
  key?: string;
  token?: string;
  insecure?: boolean;
}

function readKubeconfig(file: string): Connection {
  let cfg: any;
  try {
    cfg = YAML.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`cannot read kubeconfig ${file}: ${(e as Error).message}`);
  }
  const dir = path.dirname(file);
  const named = (list: unknown, name: string, what: string) => {
    const hit = (Array.isArray(list) ? list : []).find((x: any) => x?.name === name);
    if (!hit) throw new Error(`kubeconfig ${file}: no ${what} named "${name}"`);
    return hit;
  };
  const contextName = cfg?.['current-context'] ?? (Array.isArray(cfg?.contexts) && cfg.contexts.length === 1 ? cfg.contexts[0].name : undefined);
  if (!contextName) throw new Error(`kubeconfig ${file} has no current-context`);
  const context = named(cfg.contexts, contextName, 'context').context ?? {};
  const cluster = named(cfg.clusters, context.cluster, 'cluster').cluster ?? {};
  const user = context.user ? (named(cfg.users, context.user, 'user').user ?? {}) : {};
  const material = (data: unknown, ref: unknown): string | undefined => {
    if (typeof data === 'string' && data) return Buffer.from(data, 'base64').toString('utf8');
    if (typeof ref === 'string' && ref) return fs.readFileSync(path.resolve(dir, ref), 'utf8');
    return undefined;
  };
  if (typeof cluster.server !== 'string') throw new Error(`kubeconfig ${file}: cluster "${context.cluster}" has no server`);
  return {
    server: new URL(cluster.server),
    ca: material(cluster['certificate-authority-data'], cluster['certificate-authority']),
    cert: material(user['client-certificate-data'], user['client-certificate']),
    key: material(user['client-key-data'], user['client-key']),
    token: typeof user.token === 'string' ? user.token : typeof user.tokenFile === 'string' ? fs.readFileSync(path.resolve(dir, user.tokenFile), 'utf8').trim() : undefined,
    insecure: cluster['insecure-skip-tls-verify'] === true,
  };
}

// ---- a minimal API client -------------------------------------------------------------------

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function api(conn: Connection, method: string, urlPath: string, body?: unknown): Promise<any> {
  return request(conn, method, urlPath, body).then((r) => r.json);
}

function request(conn: Connection, method: string, urlPath: string, body?: unknown, contentType = 'application/json'): Promise<{ status: number; json: any }> {
  const url = new URL(conn.server.pathname.replace(/\/+$/, '') + urlPath, conn.server);
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      {
        method,
        ca: conn.ca,
        cert: conn.cert,
        key: conn.key,
        rejectUnauthorized: !conn.insecure,
        headers: {
          Accept: 'application/json',
          ...(conn.token ? { Authorization: `Bearer ${conn.token}` } : {}),
          ...(data ? { 'Content-Type': contentType, 'Content-Length': String(data.length) } : {}),
        },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: any;
          try {
            json = text ? JSON.parse(text) : undefined;
          } catch {
            json = undefined;
          }
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve({ status, json });
          reject(new ApiError(status, `${method} ${url.pathname}: ${status} ${json?.message ?? text.slice(0, 300)}`));
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url.href}: timed out`)));
    req.on('error', (e) => reject(new Error(`${method} ${url.href}: ${e.message}`)));
    req.end(data);
  });
}

const notFound = (e: unknown) => e instanceof ApiError && e.status === 404;

// ---- the example's objects ------------------------------------------------------------------

interface ExampleTarget {
  /** The file holding the OCMComponent. */
  file: string;
  namespace: string;
  repositoryUrl: string;
  registryHost: string;
  basePath: string;
  signatures: Array<{ signature: string; secret: string; key: string }>;
}

/** What examples/podinfo/*.yaml ask for: the OCMComponent's namespace, repository and signatures. */
function readExample(): ExampleTarget {
  const docs = fs
    .readdirSync(EXAMPLE_DIR)
    .filter((f) => /\.(ya?ml|json)$/.test(f))
    .sort()
    .flatMap((file) => YAML.parseAllDocuments(fs.readFileSync(path.join(EXAMPLE_DIR, file), 'utf8')).map((d) => ({ file, obj: d.toJS() })));
  const comps = docs.filter((d) => d.obj?.kind === 'OCMComponent');
  if (comps.length !== 1) throw new Error(`${rel(EXAMPLE_DIR)} should hold exactly one OCMComponent, it holds ${comps.length}`);
  const c = comps[0].obj;
  const url: string = c.spec?.repository?.url ?? '';
  const s = url.replace(/^(?:oci|https?):\/\//, '');
  const slash = s.indexOf('/');
  return {
    file: path.join(EXAMPLE_DIR, comps[0].file),
    namespace: c.metadata?.namespace ?? 'default',
    repositoryUrl: url,
    registryHost: (slash < 0 ? s : s.slice(0, slash)).replace(/^localhost(?=:)/, '127.0.0.1'),
    basePath: slash < 0 ? '' : s.slice(slash + 1).replace(/\/+$/, ''),
    signatures: verifyRules(c.spec?.verify).map((v: any) => ({ ...v, signature: v.signature ?? 'ocm-example' })).map((v: any) => ({ signature: v.signature, secret: v.secretRef?.name, key: v.key ?? v.signature })),
  };
}

/** The key pair, generated on first use; written so that two concurrent runs agree on one. */
export function ensureKeys(dir: string): { privateKeyPem: string; publicKeyPem: string; created: boolean } {
  const priv = path.join(dir, 'private-key.pem');
  const pub = path.join(dir, 'public-key.pem');
  let created = false;
  if (!fs.existsSync(priv) || !fs.existsSync(pub)) {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const pair = generateKeyPair(2048);
    const tmp = fs.mkdtempSync(path.join(dir, '.tmp-'));
    try {
      fs.writeFileSync(path.join(tmp, 'private-key.pem'), pair.privateKeyPem, { mode: 0o600 });
      fs.writeFileSync(path.join(tmp, 'public-key.pem'), pair.publicKeyPem);
      // Whoever links the private key first wins; the public key is derived from the winner's below.
      try {
        fs.linkSync(path.join(tmp, 'private-key.pem'), priv);
        fs.renameSync(path.join(tmp, 'public-key.pem'), pub);
        created = true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  const privateKeyPem = fs.readFileSync(priv, 'utf8');
  // The public key always follows from the private one (a stale or missing public-key.pem is rewritten).
  const publicKeyPem = createPublicKey(privateKeyPem).export({ type: 'spki', format: 'pem' }).toString();
  if (!fs.existsSync(pub) || fs.readFileSync(pub, 'utf8') !== publicKeyPem) fs.writeFileSync(pub, publicKeyPem);
  return { privateKeyPem, publicKeyPem, created };
}

/** The Namespace as kubectl apply records it, so that applying the file later merges cleanly. */
const lastApplied = (ns: string) => `${JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { annotations: {}, name: ns } })}\n`;

async function ensureNamespace(conn: Connection, name: string): Promise<boolean> {
  try {
    const ns = await api(conn, 'GET', `/api/v1/namespaces/${name}`);
    if (ns?.status?.phase === 'Terminating') throw new Error(`namespace ${name} is being deleted; wait until it is gone and run this again`);
    return false;
  } catch (e) {
    if (!notFound(e)) throw e;
  }
  try {
    const annotations = { 'kubectl.kubernetes.io/last-applied-configuration': lastApplied(name) };
    await api(conn, 'POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name, annotations } });
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 409)) throw e;
  }
  return true;
}

/** Creates the Secret, or brings its data up to date; says which. */
async function applySecret(conn: Connection, namespace: string, name: string, data: Record<string, string>): Promise<'created' | 'updated' | 'unchanged'> {
  const b64 = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
  const base = `/api/v1/namespaces/${namespace}/secrets`;
  const labels = { 'app.kubernetes.io/part-of': 'ocm-apiserver-example' };
  for (let attempt = 0; attempt < 5; attempt++) {
    let cur: any;
    try {
      cur = await api(conn, 'GET', `${base}/${name}`);
    } catch (e) {
      if (!notFound(e)) throw e;
    }
    try {
      if (!cur) {
        await api(conn, 'POST', base, { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name, namespace, labels }, data: b64 });
        return 'created';
      }
      if (Object.entries(b64).every(([k, v]) => cur.data?.[k] === v)) return 'unchanged';
      await api(conn, 'PUT', `${base}/${name}`, { ...cur, data: { ...cur.data, ...b64 } });
      return 'updated';
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 409)) throw e; // created or changed meanwhile: again
    }
  }
  throw new Error(`Secret ${namespace}/${name} keeps changing under us`);
}

async function registryFromServer(conn: Connection): Promise<string> {
  try {
    const cm = await api(conn, 'GET', '/api/v1/namespaces/kube-public/configmaps/ocm-apiserver');
    const r = cm?.data?.registry;
    if (typeof r === 'string' && r) return r;
    throw new Error('ConfigMap kube-public/ocm-apiserver has no data.registry');
  } catch (e) {
    if (notFound(e)) throw new UsageError('ConfigMap kube-public/ocm-apiserver not found (only a standalone server publishes it); pass --registry HOST:PORT');
    throw e;
  }
}

/** The example's files as this server needs them: every `<files' registry>/` replaced by `<registry>/`. */
function exampleDocs(target: ExampleTarget, registry: string): any[] {
  return fs
    .readdirSync(EXAMPLE_DIR)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .flatMap((f) => YAML.parseAllDocuments(fs.readFileSync(path.join(EXAMPLE_DIR, f), 'utf8').replaceAll(`${target.registryHost}/`, `${registry}/`)).map((d) => d.toJS()))
    .filter((o) => o && typeof o === 'object');
}

/**
 * Server-side apply of each object (as `kubectl apply --server-side --force-conflicts
 * --field-manager=ocm-example` would), resources found through discovery. Says what happened to each.
 */
async function applyDocs(conn: Connection, docs: any[], say: (s: string) => void): Promise<void> {
  const discovered = new Map<string, Array<{ name: string; kind: string; namespaced: boolean }>>();
  for (const o of docs) {
    const gv: string = o.apiVersion;
    if (!discovered.has(gv)) discovered.set(gv, (await api(conn, 'GET', gv.includes('/') ? `/apis/${gv}` : `/api/${gv}`)).resources ?? []);
    const r = discovered.get(gv)!.find((x) => x.kind === o.kind && !x.name.includes('/'));
    if (!r) throw new Error(`the server does not serve ${o.kind} (${gv})`);
    const ns = r.namespaced ? `/namespaces/${o.metadata.namespace ?? 'default'}` : '';
    const where = `${gv.includes('/') ? `/apis/${gv}` : `/api/${gv}`}${ns}/${r.name}/${o.metadata.name}`;
    const res = await request(conn, 'PATCH', `${where}?fieldManager=ocm-example&force=true`, o, 'application/apply-patch+yaml');
    const group = gv.includes('/') ? `.${gv.split('/')[0]}` : '';
    say(`${o.kind.toLowerCase()}${group}/${o.metadata.name} ${res.status === 201 ? 'created' : 'applied'}`);
  }
}

/**
 * Publishes the sample component into `registry` (as this machine reaches it) with `client`, each image
 * the spec places in that registry pushed first, signed with the (first) signature name the
 * OCMComponent verifies. With `namespace`, under that namespace instead of the files' one: the
 * component at `<registry>/<namespace>/ocm` and its image under `<namespace>/images/`, for an
 * OCMComponent in that namespace (the server reads its own registry for an object only under the
 * object's namespace). In-process, for many namespaces at once (bench/pipeline.ts).
 */
export async function publishSample(
  client: OciClient,
  registry: string,
  opts: { privateKeyPem: string; namespace?: string; say?: (s: string) => void },
): Promise<{ repositoryUrl: string; namespace: string; manifestDigest: string }> {
  const target = readExample();
  const say = opts.say ?? (() => {});
  registry = registry.replace(/^(?:oci|https?):\/\//, '').replace(/\/+$/, '');
  const namespace = opts.namespace ?? target.namespace;
  // A repository path under the files' namespace, moved under `namespace`.
  const moved = (p: string) => (p === target.namespace || p.startsWith(`${target.namespace}/`) ? namespace + p.slice(target.namespace.length) : p);
  const basePath = moved(target.basePath);
  const repoUrl = basePath ? `${registry}/${basePath}` : registry;
  const repo = new OcmRepository(client, repoUrl);
  // Overwrite: running this again publishes the same bytes (fixed creationTime, deterministic RSA
  // PKCS#1 v1.5 signature), or re-signs with a new key.
  const signature = target.signatures[0]?.signature ?? 'ocm-example';
  let manifestDigest = '';
  for (const spec of loadComponentSpecs(fs.readFileSync(SPEC_FILE, 'utf8'))) {
    // Images the spec places in this registry (the files' address, as for the OCMComponent): a
    // minimal real image is pushed there first, so that publishing records its manifest digest
    // and the OCMComponent checks it, as it does for any image.
    for (const r of spec.resources ?? []) {
      const ref = r.access?.type === 'ociArtifact' ? String(r.access.imageReference ?? '') : '';
      if (!ref.startsWith(`${target.registryHost}/`) && !ref.startsWith(`${registry}/`)) continue;
      r.access!.imageReference = `${registry}/${moved(ref.slice(ref.indexOf('/') + 1))}`;
      const image = await pushImage(client, r.access!.imageReference as string, minimalImage({ path: `${r.name}/VERSION`, content: `${spec.version}\n` }));
      say(`pushed image ${image.ref} (${image.digest}), a minimal one: a config and one layer`);
    }
    const r = await publish(repo, spec, path.dirname(SPEC_FILE), { sign: { name: signature, privateKeyPem: opts.privateKeyPem }, overwrite: true, creator: 'ocm-apiserver example' }).catch((e: Error) => {
      throw new Error(`publishing ${spec.name}:${spec.version} to ${repoUrl}: ${e.message}`);
    });
    manifestDigest = r.manifestDigest;
    say(`published ${spec.name}:${spec.version} to ${repoUrl}, signed as "${signature}" (${r.manifestDigest})`);
  }
  return { repositoryUrl: repoUrl, namespace, manifestDigest };
}

// ---- main -----------------------------------------------------------------------------------

async function main(): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      options: { kubeconfig: { type: 'string' }, registry: { type: 'string' }, keys: { type: 'string' }, apply: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
      strict: true,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const kubeconfig = values.kubeconfig
    ? fromCaller(values.kubeconfig)
    : process.env.KUBECONFIG
      ? fromCaller(process.env.KUBECONFIG.split(path.delimiter)[0])
      : path.join(os.homedir(), '.kube', 'config');
  if (!fs.existsSync(kubeconfig)) throw new UsageError(`kubeconfig ${kubeconfig} not found`);
  const conn = readKubeconfig(kubeconfig);
  const target = readExample();
  const say = (s: string) => process.stdout.write(`${s}\n`);

  // The registry, as this machine reaches it.
  const registry = (values.registry ?? (await registryFromServer(conn))).replace(/^(?:oci|https?):\/\//, '').replace(/\/+$/, '');

  // Keys, then the component.
  const keysDir = values.keys ? fromCaller(values.keys) : path.join(root, 'examples', '.keys');
  const keys = ensureKeys(keysDir);
  say(`${keys.created ? 'generated' : 'using'} signing key pair ${rel(path.join(keysDir, 'private-key.pem'))}, ${rel(path.join(keysDir, 'public-key.pem'))}`);

  const client = new OciClient({ ca: conn.ca, cert: conn.cert, key: conn.key, credentials: conn.token ? () => ({ username: 'token', password: conn.token }) : undefined, retries: 2 });
  try {
    await publishSample(client, registry, { privateKeyPem: keys.privateKeyPem, say });
  } finally {
    client.close();
  }

  // The namespace and the Secret(s) with the public key.
  if (await ensureNamespace(conn, target.namespace)) say(`created namespace ${target.namespace}`);
  const bySecret = new Map<string, Record<string, string>>();
  for (const s of target.signatures) bySecret.set(s.secret, { ...bySecret.get(s.secret), [s.key]: keys.publicKeyPem });
  for (const [secret, data] of bySecret) {
    const how = await applySecret(conn, target.namespace, secret, data);
    say(`${how === 'unchanged' ? 'Secret is up to date' : `${how} Secret`} ${target.namespace}/${secret} (key${Object.keys(data).length > 1 ? 's' : ''} ${Object.keys(data).join(', ')}: the public key)`);
  }

  // What next.
  const k = `kubectl --kubeconfig ${rel(kubeconfig)}`;
  const files = rel(EXAMPLE_DIR);
  say('');
  if (values.apply) {
    await applyDocs(conn, exampleDocs(target, registry), say);
    say('');
    say('Next:');
  } else if (registry.replace(/^localhost(?=:)/, '127.0.0.1') !== target.registryHost) {
    const port = /:(\d+)$/.exec(target.registryHost)?.[1];
    say(`NOTE: ${rel(target.file)} reads the component from ${target.repositoryUrl}, but this server's registry is ${registry}.`);
    say(`${port ? `Start the server with \`--registry-port ${port}\`${port === '5001' ? ' (the default)' : ''} and run this again, or a` : 'A'}pply the files with the address replaced:`);
    say(`  for f in ${files}/*.yaml; do echo ---; sed 's#${target.registryHost}/#${registry}/#' "$f"; done | ${k} apply -f -`);
    say(`(or run this command again with --apply, which applies them itself)`);
  } else {
    say('Next:');
    say(`  ${k} apply -f ${files}/`);
  }
  say(`  ${k} wait --for=condition=Ready action/deployer -n ${target.namespace} --timeout=120s`);
  say(`  ${k} get ocm -n ${target.namespace}`);
  return 0;
}

// Run only as a script (`node dist/cli/example.js`), not when imported (bench/pipeline.ts).
const isMain = (() => {
  try {
    return !!process.argv[1] && import.meta.url === pathToFileURL(fs.realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
})();
if (isMain)
  main().then(
    (code) => (process.exitCode = code),
    (e: Error) => {
      process.stderr.write(`example: ${e.message}\n${e instanceof UsageError ? `\n${USAGE}` : ''}`);
      process.exitCode = e instanceof UsageError ? 2 : 1;
    },
  );
