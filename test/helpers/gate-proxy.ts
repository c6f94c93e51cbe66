// An HTTP proxy in front of a real registry (docker-registry) that holds the requests whose path
// contains a given substring until release(): a slow upstream whose answer does come, in full,
// when the test says so (the faulty registry's drip never completes).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export class GateProxy {
  private readonly server: http.Server;
  private holding?: string;
  private waiting: (() => void)[] = [];
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
      if (this.holding && req.url?.includes(this.holding)) {
        this.held.push(req.url);
        this.waiting.push(forward);
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

  /** Holds every request whose path contains `pathPart` from now on, until release(). */
  hold(pathPart: string) {
    this.holding = pathPart;
  }

  /** Lets the held requests through, and every later one. */
  release() {
    this.holding = undefined;
    for (const f of this.waiting.splice(0)) f();
  }

  async stop(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}
