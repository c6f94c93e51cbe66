// Starts a real, single-member etcd (Debian's `etcd-server`, /usr/bin/etcd; `bash
// scripts/ensure-debs.sh etcd-server`) on loopback with free client and peer ports and a temporary
// data directory. ETCD_BIN overrides the binary.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface EtcdTLS {
  /** PEM files: the CA that signed the server and client certificates, the server's certificate and key. */
  caFile: string;
  certFile: string;
  keyFile: string;
  /** A client certificate for the health check (etcd is started with --client-cert-auth). */
  clientCertFile: string;
  clientKeyFile: string;
}

export interface TestEtcd {
  /** Client URLs, e.g. ['http://127.0.0.1:40123'] (https:// with tls). */
  endpoints: string[];
  dataDir: string;
  proc(): ChildProcess;
  /** etcd's own output (for failure messages). */
  logs(): string;
  /** Stops etcd (SIGTERM) and starts it again on the same ports and data. */
  restart(): Promise<void>;
  /** Stops etcd (SIGTERM, then SIGKILL) and removes its data directory. Idempotent. */
  stop(): Promise<void>;
}

export const ETCD_BIN = process.env.ETCD_BIN || '/usr/bin/etcd';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function healthy(url: string, tls?: EtcdTLS): Promise<boolean> {
  try {
    if (!tls) {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(1000) });
      return res.ok && ((await res.json()) as { health?: string }).health === 'true';
    }
    const { readFileSync } = await import('node:fs');
    const body = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        `${url}/health`,
        { ca: readFileSync(tls.caFile), cert: readFileSync(tls.clientCertFile), key: readFileSync(tls.clientKeyFile), timeout: 1000 },
        (res) => {
          let b = '';
          res.setEncoding('utf8').on('data', (d: string) => (b += d));
          res.on('end', () => resolve(res.statusCode === 200 ? b : ''));
        },
      );
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.end();
    });
    return (JSON.parse(body || '{}') as { health?: string }).health === 'true';
  } catch {
    return false;
  }
}

/** Starts etcd and resolves once it answers /health; rejects (with its output) if it does not within timeoutMs. */
export async function startEtcd(opts: { timeoutMs?: number; args?: string[]; tls?: EtcdTLS } = {}): Promise<TestEtcd> {
  if (!existsSync(ETCD_BIN)) throw new Error(`${ETCD_BIN} not found: install it with \`bash scripts/ensure-debs.sh etcd-server\` (or set ETCD_BIN)`);
  const timeoutMs = opts.timeoutMs ?? 20000;
  const scheme = opts.tls ? 'https' : 'http';
  for (let attempt = 0; ; attempt++) {
    const dataDir = mkdtempSync(join(tmpdir(), 'ocm-etcd-'));
    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const client = `${scheme}://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const args = [
      '--name', 'test',
      '--data-dir', dataDir,
      '--listen-client-urls', client,
      '--advertise-client-urls', client,
      '--listen-peer-urls', peer,
      '--initial-advertise-peer-urls', peer,
      '--initial-cluster', `test=${peer}`,
      '--initial-cluster-state', 'new',
      '--initial-cluster-token', `ocm-test-${process.pid}-${clientPort}`,
      '--logger', 'zap',
      '--log-level', 'warn',
      ...(opts.tls
        ? ['--cert-file', opts.tls.certFile, '--key-file', opts.tls.keyFile, '--trusted-ca-file', opts.tls.caFile, '--client-cert-auth']
        : []),
      ...(opts.args ?? []),
    ];
    let out = '';
    let proc!: ChildProcess;
    let exited!: Promise<void>;
    const spawnIt = () => {
      proc = spawn(ETCD_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
      const keep = (d: Buffer) => {
        out += d.toString();
        if (out.length > 200000) out = out.slice(-100000);
      };
      proc.stdout!.on('data', keep);
      proc.stderr!.on('data', keep);
      const p = proc;
      exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
    };
    const running = () => proc.exitCode === null && proc.signalCode === null;
    const terminate = async () => {
      if (!running()) return;
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    };
    const waitHealthy = async (): Promise<boolean> => {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline && running()) {
        if (await healthy(client, opts.tls)) return true;
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    };
    // a test runner that dies must not leave etcd behind
    const killOnExit = () => proc.kill('SIGKILL');
    process.once('exit', killOnExit);

    let stopped: Promise<void> | undefined;
    const stop = () =>
      (stopped ??= (async () => {
        process.removeListener('exit', killOnExit);
        await terminate();
        rmSync(dataDir, { recursive: true, force: true });
      })());
    const restart = async () => {
      await terminate();
      spawnIt();
      if (!(await waitHealthy())) throw new Error(`etcd did not come back within ${timeoutMs}ms:\n${out.slice(-4000)}`);
    };

    spawnIt();
    if (await waitHealthy()) return { endpoints: [client], dataDir, proc: () => proc, logs: () => out, restart, stop };
    await stop();
    // a port taken between probing and binding: try again with new ports
    if (attempt < 2 && /address already in use/.test(out)) continue;
    throw new Error(`etcd did not become healthy within ${timeoutMs}ms (exit ${proc.exitCode ?? proc.signalCode}):\n${out.slice(-4000)}`);
  }
}
