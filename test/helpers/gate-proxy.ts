// An HTTP proxy in front of a real registry (docker-registry) that holds the requests whose path
// contains a given substring until release(): a slow upstream whose answer does come, in full,
// when the test says so (the faulty registry's drip never completes).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export class GateProxy {
  private readonly server: http.Server;
  private readonly holding = new Set<string>();
  private waiting: { path: string; forward: () => void }[] = [];
  /** Paths of the requests held so far. */
  readonly held: string[] = [];

  constructor(private readonly upstream: string) {
    this.server = http.createServer((req, res) => {
      const forward = () => {
        const up = http.request(`http://${this.upstream}${req.url}`, { method: req.method, headers: { ...req.headers, host: this.upstream } }, (r) => {
          res.writeHead(r.statusCode ?? 502, r.headers);
          r.pipe(res);
        });
        up.on('error', () => res.destroy());
        req.pipe(up);
      };
      if (this.holds(req.url ?? '')) {
        this.held.push(req.url!);
        this.waiting.push({ path: req.url!, forward });
      } else forward();
    });
  }

  get host(): string {
    return `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    return this;
  }

  private holds(path: string): boolean {
    return [...this.holding].some((p) => path.includes(p));
  }

  /** Holds every request whose path contains `pathPart` from now on, until release(). */
  hold(pathPart: string) {
    this.holding.add(pathPart);
  }

  /** Stops holding `pathPart` (default: everything) and lets the requests held for it through. */
  release(pathPart?: string) {
    if (pathPart === undefined) this.holding.clear();
    else this.holding.delete(pathPart);
    const go = this.waiting.filter((w) => !this.holds(w.path));
    this.waiting = this.waiting.filter((w) => this.holds(w.path));
    for (const w of go) w.forward();
  }

  async stop(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}
