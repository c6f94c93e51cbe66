// The snapshot registry on a worker thread of its own: blob transfers, their TLS and disk I/O run
// beside the API's event loop instead of on it (a 200 MB pull never stalls a watch), and on a
// second core. Same Registry interface as startRegistry; what needs the main thread (basic-auth
// token checks, the API's authorizer, metrics) travels as messages.
import { Worker } from 'node:worker_threads';
import type { TrafficSink } from './traffic.js';
import type { GcOptions, GcResult, Registry, RegistryOptions } from './server.js';

export interface WorkerRegistryData {
  options: Omit<RegistryOptions, 'authenticateBasic' | 'authorizePull' | 'instrument' | 'tokenSecret'> & { tokenSecret?: Uint8Array };
  basicAuth: boolean;
  pullAuthz: boolean;
}

export type ToWorker =
  | { op: 'auth-reply'; id: number; result: unknown }
  | { op: 'gc'; id: number; keepTags?: number; graceMs?: number; tagPattern?: string; namespaces?: string[] }
  | { op: 'blobCount' | 'stopAccepting' | 'close'; id: number }
  | { op: 'idle'; id: number; ms: number };

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

export type FromWorker =
  | { op: 'ready'; port: number; url: string }
  | { op: 'failed'; message: string }
  | { op: 'auth'; id: number; user: string; pass: string }
  | { op: 'authz'; id: number; user: { name: string; groups: string[] }; namespace: string }
  | { op: 'traffic'; bytesIn: number; bytesOut: number; requests: Record<string, number> }
  | { op: 'reply'; id: number; result?: unknown; error?: string };

export interface WorkerRegistry extends Omit<Registry, 'gc'> {
  /** GC; tags are chosen by a pattern (a function cannot cross threads). */
  gc(opts?: Omit<GcOptions, 'tagFilter'> & { tagPattern?: RegExp }): Promise<GcResult>;
  blobCount(): Promise<number>;
  /** Stops accepting connections (idle keep-alive ones close). */
  stopAccepting(): Promise<void>;
  /** True when no request is in flight, false when `ms` passed first. */
  idle(ms: number): Promise<boolean>;
}

export interface WorkerRegistryOptions extends Omit<RegistryOptions, 'instrument'> {
  traffic?: TrafficSink;
  /** The thread died: the registry is gone (the server exits and is restarted). */
  onExit?: (err: Error) => void;
}

export async function startRegistryWorker(opts: WorkerRegistryOptions): Promise<WorkerRegistry> {
  const { authenticateBasic, authorizePull, traffic, onExit, tokenSecret, ...options } = opts;
  const data: WorkerRegistryData = { options: { ...options, tokenSecret: tokenSecret && new Uint8Array(tokenSecret) }, basicAuth: !!authenticateBasic, pullAuthz: !!authorizePull };
  const worker = new Worker(new URL('./worker-thread.js', import.meta.url), { workerData: data });
  let nextId = 0;
  const pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  const call = <T>(m: WithoutId<ToWorker>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      const id = ++nextId;
      pending.set(id, { resolve, reject });
      worker.postMessage({ ...m, id });
    });
  let closing = false;
  const ready = new Promise<{ port: number; url: string }>((resolve, reject) => {
    worker.on('message', (m: FromWorker) => {
      switch (m.op) {
        case 'ready':
          return resolve(m);
        case 'failed':
          return reject(new Error(`registry thread failed to start: ${m.message}`));
        case 'traffic':
          if (!traffic) return;
          if (m.bytesIn) traffic.bytes('in', m.bytesIn);
          if (m.bytesOut) traffic.bytes('out', m.bytesOut);
          for (const [k, n] of Object.entries(m.requests)) {
            const [method, code] = k.split(' ');
            traffic.request(method, Number(code), n);
          }
          return;
        case 'auth':
          void (authenticateBasic?.(m.user, m.pass) ?? Promise.resolve(undefined)).then(
            (result) => worker.postMessage({ op: 'auth-reply', id: m.id, result } satisfies ToWorker),
            () => worker.postMessage({ op: 'auth-reply', id: m.id, result: undefined } satisfies ToWorker),
          );
          return;
        case 'authz':
          void (authorizePull?.(m.user, m.namespace) ?? Promise.resolve(false)).then(
            (result) => worker.postMessage({ op: 'auth-reply', id: m.id, result } satisfies ToWorker),
            () => worker.postMessage({ op: 'auth-reply', id: m.id, result: false } satisfies ToWorker),
          );
          return;
        case 'reply': {
          const p = pending.get(m.id);
          pending.delete(m.id);
          if (m.error !== undefined) p?.reject(new Error(m.error));
          else p?.resolve(m.result);
        }
      }
    });
    worker.on('error', (e) => reject(e));
    worker.on('exit', (code) => {
      const err = new Error(`registry thread exited (code ${code})`);
      reject(err);
      for (const p of pending.values()) p.reject(err);
      pending.clear();
      if (!closing) onExit?.(err);
    });
  });
  const { port, url } = await ready;
  return {
    port,
    url,
    gc: ({ tagPattern, ...rest } = {}) => call<GcResult>({ op: 'gc', ...rest, tagPattern: tagPattern?.source }),
    blobCount: () => call<number>({ op: 'blobCount' }),
    stopAccepting: () => call<void>({ op: 'stopAccepting' }),
    idle: (ms) => call<boolean>({ op: 'idle', ms }),
    async close() {
      if (closing) return;
      closing = true;
      await call({ op: 'close' }).catch(() => undefined);
      await worker.terminate();
    },
  };
}
