// Starts a real server process on a temporary data dir and gives tests kubectl and raw HTTPS.
import { type ChildProcess, execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd, type TestEtcd } from './etcd.js';
import { serverScript, startNodeProcess } from './process.js';
import YAML from 'yaml';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const KUBECTL = process.env.KUBECTL || 'kubectl';

export interface HttpResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  json<T = any>(): T;
}

export interface KubectlResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface TestServer {
  url: string;
  port: number;
  dataDir: string;
  kubeconfig: string;
  proc: ChildProcess;
  logs: string[];
  /** Sends a request with the admin client certificate (or `cert: null` for none). */
  request(method: string, path: string, opts?: { body?: unknown; headers?: Record<string, string>; cert?: { cert: string; key: string } | null }): Promise<HttpResult>;
  /** Runs kubectl against this server; `env` adds to (or overrides) the environment, e.g. KUBE_EDITOR. */
  kubectl(args: string[], opts?: { input?: string; timeoutMs?: number; env?: Record<string, string> }): Promise<KubectlResult>;
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

const etcdByDataDir = new Map<string, TestEtcd>();
process.on('exit', () => {
  for (const e of etcdByDataDir.values()) e.proc().kill('SIGKILL');
});

export function tempDir(prefix = 'ocm-apiserver-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/**
 * Starts a server. Reconcilers are off unless asked for (`reconcilers: 'all'`): API tests set
 * status by hand, and their objects name registries that must not be contacted.
 */
/**
 * tap puts its @tapjs/processinfo loader into every child's NODE_OPTIONS, and it turns source maps
 * on: the server then held every source map it loaded, parsed (1.4 million arrays, 144 MiB of its
 * 200 MiB heap), and each major GC marked them, in steps of up to 66 ms (issue 15, action-stall).
 * The server runs as deployed: source maps off again (this --import runs after NODE_OPTIONS' own).
 */
const UNINSTRUMENTED = ['--import=data:text/javascript,process.setSourceMapsEnabled(false)'];

/** nodeArgs: extra node options for the server process (benchmarks: --cpu-prof and the like). */
export async function startServer(opts: { dataDir?: string; certDir?: string; args?: string[]; nodeArgs?: string[]; keep?: boolean; reconcilers?: string } = {}): Promise<TestServer> {
  const dataDir = opts.dataDir ?? tempDir();
  // TEST_STORAGE=etcd runs the same suites on a real etcd (one per server, same data across restarts).
  let etcd: TestEtcd | undefined;
  const storageArgs: string[] = [];
  if (process.env.TEST_STORAGE === 'etcd' && !(opts.args ?? []).includes('--storage')) {
    etcd = etcdByDataDir.get(dataDir) ?? (await startEtcd());
    etcdByDataDir.set(dataDir, etcd);
    storageArgs.push('--storage', 'etcd', '--etcd-endpoints', etcd.endpoints.join(','));
  }
  const server = await startNodeProcess({
    name: 'server',
    script: serverScript(),
    nodeArgs: [...UNINSTRUMENTED, ...(opts.nodeArgs ?? [])],
    args: ['--data-dir', dataDir, '--port', '0', '--registry-port', '0', '--log-level', 'info', '--reconcilers', opts.reconcilers ?? 'none', ...(opts.certDir ? ['--cert-dir', opts.certDir] : []), ...storageArgs, ...(opts.args ?? [])],
    ready: (j) => (typeof j.url === 'string' && typeof j.msg === 'string' && j.msg.includes('ready') ? j.url : undefined),
  });
  const { proc, logs, ready: url } = server;
  const certDir = opts.certDir ?? join(dataDir, 'certs');
  const ca = readFileSync(join(certDir, 'ca.crt'), 'utf8');
  const admin = { cert: readFileSync(join(certDir, 'admin.crt'), 'utf8'), key: readFileSync(join(certDir, 'admin.key'), 'utf8') };
  const kubeconfig = join(dataDir, 'certs', 'admin.kubeconfig');
  const port = Number(new URL(url).port);
  const cacheDir = join(dataDir, 'kubectl-cache');

  const request: TestServer['request'] = (method, path, o = {}) =>
    new Promise((res, rej) => {
      const body = o.body === undefined ? undefined : typeof o.body === 'string' ? o.body : JSON.stringify(o.body);
      const cert = o.cert === undefined ? admin : o.cert;
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port,
          method,
          path,
          ca,
          servername: 'localhost',
          ...(cert ? { cert: cert.cert, key: cert.key } : {}),
          headers: { ...(body !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) } : {}), ...o.headers },
          agent: false,
        },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c) => chunks.push(c));
          r.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            res({ status: r.statusCode ?? 0, headers: r.headers, body: text, json: () => JSON.parse(text) });
          });
        },
      );
      req.on('error', rej);
      if (body !== undefined) req.write(body);
      req.end();
    });

  const kubectl: TestServer['kubectl'] = (args, o = {}) =>
    new Promise((res) => {
      const child = execFile(
        KUBECTL,
        ['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, ...args],
        { timeout: o.timeoutMs ?? 60000, maxBuffer: 64 * 1024 * 1024, env: { ...process.env, KUBECONFIG: kubeconfig, HOME: dataDir, ...o.env } },
        (err, stdout, stderr) => res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
      );
      if (o.input !== undefined) child.stdin!.end(o.input);
      else child.stdin!.end();
    });

  const cleanup = async () => {
    if (!opts.keep && !opts.dataDir) {
      rmSync(dataDir, { recursive: true, force: true });
      await etcd?.stop();
      etcdByDataDir.delete(dataDir);
    }
  };
  return {
    url,
    port,
    dataDir,
    kubeconfig,
    proc,
    logs,
    request,
    kubectl,
    async stop() {
      await server.stop();
      await cleanup();
    },
    kill9: server.kill9,
  };
}

/** Objects as one multi-document YAML stream, for `kubectl apply -f -`. */
export const yamlDocs = (...objs: unknown[]): string => objs.map((o) => YAML.stringify(o)).join('---\n');

/** `kubectl ARGS -o json` against a server, parsed; throws with kubectl's stderr when it fails. */
export async function kubectlJson(s: Pick<TestServer, 'kubectl'>, args: string[]): Promise<any> {
  const r = await s.kubectl([...args, '-o', 'json']);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

/** Polls `fn` every 250 ms until it returns a value; past `ms`, fails naming `what` and the last error. */
export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
