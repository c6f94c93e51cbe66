// Graceful shutdown, in order: the reconcilers stop (they call the API), the HTTP servers stop
// accepting connections, open watches end cleanly (a closed chunked stream, which clients take as
// "re-watch"), in-flight requests finish (bounded), the rest are cut, then storage is flushed
// and closed. Each step is bounded so that the whole fits in a pod's terminationGracePeriodSeconds.
import type { Server } from 'node:http';

export interface Logger {
  info(o: object, msg: string): void;
  warn(o: object, msg: string): void;
  error(o: object, msg: string): void;
}

/** Counts a Node HTTP server's requests in flight, leaving out long-running ones (watches). */
export class RequestTracker {
  private active = 0;
  private waiters: (() => void)[] = [];

  constructor(
    server: Server | { on(ev: 'request', f: (req: { url?: string }, res: NodeJS.EventEmitter) => void): unknown },
    private readonly longRunning: (url: string) => boolean = () => false,
  ) {
    (server as Server).on('request', (req, res) => {
      if (this.longRunning(req.url ?? '')) return;
      this.active++;
      res.once('close', () => {
        this.active--;
        if (this.active === 0) for (const w of this.waiters.splice(0)) w();
      });
    });
  }

  get inflight(): number {
    return this.active;
  }

  /** Resolves true when no request is in flight, false when `ms` passed first. */
  idle(ms: number): Promise<boolean> {
    if (this.active === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        resolve(false);
      }, ms);
      this.waiters.push(done);
    });
  }
}

/** A watch: `watch=true`/`watch=1` on a GET under /api or /apis (good enough to leave it out of draining). */
export const isWatchUrl = (url: string) => /^\/apis?\//.test(url) && /[?&]watch=(true|1)(&|$)/.test(url);

export interface HttpPart {
  name: string;
  /** Stops accepting connections (Node closes idle keep-alive ones). */
  stopAccepting(): void | Promise<void>;
  /** True when no request is in flight, false when `ms` passed first. */
  idle(ms: number): Promise<boolean>;
  /** Ends long-running responses (watches) cleanly. */
  endLongRunning?(): void;
  /** Cuts what is left and releases the server (fastify's close). */
  close(): Promise<void>;
}

export interface ShutdownPlan {
  log: Logger;
  /** Stops the reconcilers, waiting for the reconciles in progress. */
  stopReconcilers(): Promise<void>;
  http: HttpPart[];
  /** Flushes and closes storage. */
  closeStorage(): Promise<void>;
  reconcilersTimeoutMs?: number;
  drainTimeoutMs?: number;
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> =>
  new Promise((resolve, reject) => {
    const t = setTimeout(() => resolve('timeout'), ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });

export async function shutdown(plan: ShutdownPlan): Promise<void> {
  const { log } = plan;
  const started = Date.now();
  try {
    if ((await within(plan.stopReconcilers(), plan.reconcilersTimeoutMs ?? 5000)) === 'timeout') log.warn({}, 'shutdown: reconcilers did not stop in time; going on');
  } catch (err) {
    log.error({ err }, 'shutdown: stopping the reconcilers failed');
  }

  // Stop accepting; Node closes idle keep-alive connections at once.
  await Promise.all(plan.http.map((h) => Promise.resolve(h.stopAccepting()).catch((err) => log.error({ err, server: h.name }, 'shutdown: could not stop accepting'))));
  for (const h of plan.http) h.endLongRunning?.();
  const drained = await Promise.all(
    plan.http.map(async (h) => {
      const ok = await h.idle(plan.drainTimeoutMs ?? 15_000).catch(() => false);
      if (!ok) log.warn({ server: h.name }, 'shutdown: requests still in flight after the drain timeout; cutting them');
      return ok;
    }),
  );
  for (const h of plan.http) {
    h.endLongRunning?.(); // watches that arrived while draining
    try {
      await h.close();
    } catch (err) {
      log.error({ err, server: h.name }, 'shutdown: closing the server failed');
    }
  }

  try {
    await plan.closeStorage();
  } catch (err) {
    log.error({ err }, 'shutdown: closing storage failed');
  }
  log.info({ ms: Date.now() - started, drained: drained.every(Boolean) }, 'shutdown complete');
}
