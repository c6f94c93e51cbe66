// A keep-alive HTTPS client for load and chaos tests (the admin certificate by default, or any
// client certificate / bearer token), and a watch stream reader that records every line.
import { readFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  ms: number;
}

export class ApiClient {
  readonly agent: Agent;
  constructor(
    readonly port: number,
    dataDir: string,
    private readonly o: { maxSockets?: number; token?: string; cert?: { cert: string; key: string } | null } = {},
  ) {
    const certDir = join(dataDir, 'certs');
    const cert = o.cert === undefined ? { cert: readFileSync(join(certDir, 'admin.crt'), 'utf8'), key: readFileSync(join(certDir, 'admin.key'), 'utf8') } : o.cert;
    this.agent = new Agent({
      keepAlive: true,
      maxSockets: o.maxSockets ?? 8,
      ca: readFileSync(join(certDir, 'ca.crt'), 'utf8'),
      servername: 'localhost',
      ...(cert ? cert : {}),
    });
  }

  /** One request; rejects only on transport errors (connection refused/reset), never on a status. */
  send(method: string, path: string, body?: unknown, contentType = 'application/json', timeoutMs = 30_000): Promise<Answer> {
    const buf = body === undefined ? undefined : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const started = performance.now();
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: this.port,
          method,
          path,
          agent: this.agent,
          headers: {
            ...(buf ? { 'Content-Type': contentType, 'Content-Length': String(buf.length) } : {}),
            ...(this.o.token ? { Authorization: `Bearer ${this.o.token}` } : {}),
          },
        },
        (r) => {
          const chunks: Buffer[] = [];
          r.on('data', (c: Buffer) => chunks.push(c));
          r.on('end', () => resolve({ status: r.statusCode ?? 0, headers: r.headers, text: Buffer.concat(chunks).toString('utf8'), ms: performance.now() - started }));
          r.on('error', reject);
          r.on('aborted', () => reject(new Error('response aborted')));
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(buf);
    });
  }

  close() {
    this.agent.destroy();
  }
}

export interface WatchLine {
  type: string;
  object: any;
}

/**
 * Reads a watch stream: `onLine` sees every parsed line in order; `done` resolves when the stream
 * ends (cleanly, by an error, or by the server dying) with the reason.
 */
export function openWatch(
  port: number,
  dataDir: string,
  path: string,
  onLine: (l: WatchLine) => void,
): { done: Promise<{ status: number; reason: string }>; close(): void } {
  const certDir = join(dataDir, 'certs');
  let close = () => {};
  const done = new Promise<{ status: number; reason: string }>((resolve) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        method: 'GET',
        path,
        agent: false,
        ca: readFileSync(join(certDir, 'ca.crt'), 'utf8'),
        cert: readFileSync(join(certDir, 'admin.crt'), 'utf8'),
        key: readFileSync(join(certDir, 'admin.key'), 'utf8'),
        servername: 'localhost',
      },
      (r) => {
        let buf = '';
        r.setEncoding('utf8');
        r.on('data', (d: string) => {
          buf += d;
          let i;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 1);
            if (line.trim()) onLine(JSON.parse(line));
          }
        });
        r.on('end', () => resolve({ status: r.statusCode ?? 0, reason: 'end' }));
        r.on('error', (e) => resolve({ status: r.statusCode ?? 0, reason: `error: ${e.message}` }));
        r.on('aborted', () => resolve({ status: r.statusCode ?? 0, reason: 'aborted' }));
        r.on('close', () => resolve({ status: r.statusCode ?? 0, reason: 'close' }));
      },
    );
    req.on('error', (e) => resolve({ status: 0, reason: `error: ${e.message}` }));
    req.end();
    close = () => req.destroy();
  });
  return { done, close: () => close() };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
