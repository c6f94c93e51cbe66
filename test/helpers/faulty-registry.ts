// The in-memory FakeRegistry (which holds OCM component versions published with ocm/publish.ts)
// with switchable faults: per path substring, answer 500 or 429, cut a blob's body off after
// a given byte, or drip any GET's answer (a 200 with its headers, then one byte per `everyMs`,
// 100 ms by default: far below 16 KiB per stall timeout); and down()/up() to close and reopen its port (connection refused meanwhile).
// Every request is timestamped, so tests can count what reached the registry and when.
import type { AddressInfo } from 'node:net';
import { FakeRegistry } from './fake-registry.js';

export type Fault = { mode: '500' } | { mode: '429'; retryAfterSeconds?: number } | { mode: 'cut'; atByte: number } | { mode: 'drip'; everyMs?: number };

export class FaultyRegistry {
  readonly fake = new FakeRegistry();
  /** path substring -> fault */
  readonly faults = new Map<string, Fault>();
  readonly requests: { at: number; method: string; path: string; fault?: string }[] = [];
  private port = 0;

  get host(): string {
    return this.fake.host;
  }

  async start(): Promise<this> {
    await this.fake.start();
    this.port = (this.fake.server.address() as AddressInfo).port;
    this.fake.hook = (req, res, url) => {
      const entry: { at: number; method: string; path: string; fault?: string } = { at: Date.now(), method: req.method!, path: url.pathname };
      this.requests.push(entry);
      const hit = [...this.faults].find(([k]) => url.pathname.includes(k));
      if (!hit) return false;
      const f = hit[1];
      if (f.mode === '500' || f.mode === '429') {
        entry.fault = f.mode;
        req.resume();
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (f.mode === '429') headers['retry-after'] = String(f.retryAfterSeconds ?? 1);
        const code = f.mode === '429' ? 'TOOMANYREQUESTS' : 'UNKNOWN';
        const message = f.mode === '429' ? 'rate limit exceeded (injected by the test)' : 'internal server error (injected by the test)';
        res.writeHead(Number(f.mode), headers).end(JSON.stringify({ errors: [{ code, message }] }));
        return true;
      }
      if (f.mode === 'drip' && req.method === 'GET') {
        entry.fault = 'drip';
        req.resume();
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(1 << 20) });
        const timer = setInterval(() => res.write('x'), f.everyMs ?? 100);
        res.on('close', () => clearInterval(timer));
        return true;
      }
      const m = /\/blobs\/(sha256:[a-f0-9]{64})$/.exec(url.pathname);
      const blob = m && this.fake.blobs.get(m[1]);
      if (f.mode === 'cut' && req.method === 'GET' && blob && blob.length > f.atByte) {
        entry.fault = 'cut';
        const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
        const start = range ? Number(range[1]) : 0;
        const headers: Record<string, string> = { 'content-length': String(blob.length - start), 'docker-content-digest': m[1], 'content-type': 'application/octet-stream' };
        if (range) headers['content-range'] = `bytes ${start}-${blob.length - 1}/${blob.length}`;
        res.writeHead(range ? 206 : 200, headers);
        const upTo = Math.max(start, Math.min(f.atByte, blob.length - 1));
        res.write(blob.subarray(start, upTo), () => setTimeout(() => req.socket.destroy(), 10));
        return true;
      }
      return false;
    };
    return this;
  }

  /** Closes the port: connections are refused until up(). */
  async down(): Promise<void> {
    this.fake.server.closeAllConnections();
    await new Promise<void>((r) => this.fake.server.close(() => r()));
  }

  async up(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.fake.server.once('error', reject);
      this.fake.server.listen(this.port, '127.0.0.1', () => {
        this.fake.server.off('error', reject);
        resolve();
      });
    });
  }

  count(pathPart: string, since = 0, until = Infinity): number {
    return this.requests.filter((r) => r.path.includes(pathPart) && r.at >= since && r.at < until).length;
  }

  close(): Promise<void> {
    return this.fake.server.listening ? this.fake.close() : Promise.resolve();
  }
}
