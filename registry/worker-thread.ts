// The registry's worker thread (see worker.ts): starts the registry and answers the main thread.
import { parentPort, workerData } from 'node:worker_threads';
import { RequestTracker } from '../cli/shutdown.js';
import { startRegistry } from './server.js';
import { countTraffic } from './traffic.js';
import type { BlobStore } from './blobstore.js';
import type { FastifyInstance } from 'fastify';
import type { FromWorker, ToWorker, WorkerRegistryData } from './worker.js';

const port = parentPort!;
const data = workerData as WorkerRegistryData;
const send = (m: FromWorker) => port.postMessage(m);

// Calls into the main thread (basic-auth token checks, pull authorization), by id.
let nextId = 0;
const calls = new Map<number, (v: unknown) => void>();
const ask = (m: { op: 'auth'; user: string; pass: string } | { op: 'authz'; user: { name: string; groups: string[] }; namespace: string }) =>
  new Promise<unknown>((resolve) => {
    const id = ++nextId;
    calls.set(id, resolve);
    send({ ...m, id });
  });

// Traffic, batched into one message per 100 ms.
let bytesIn = 0;
let bytesOut = 0;
let requests: Record<string, number> = {};
let flushTimer: NodeJS.Timeout | undefined;
const flush = () => {
  flushTimer = undefined;
  send({ op: 'traffic', bytesIn, bytesOut, requests });
  [bytesIn, bytesOut, requests] = [0, 0, {}];
};
const later = () => (flushTimer ??= setTimeout(flush, 100));

let app: FastifyInstance | undefined;
let blobs: BlobStore | undefined;
let tracker: RequestTracker | undefined;
try {
  const registry = await startRegistry({
    ...data.options,
    tokenSecret: data.options.tokenSecret ? Buffer.from(data.options.tokenSecret) : undefined,
    authenticateBasic: data.basicAuth ? async (user, pass) => (await ask({ op: 'auth', user, pass })) as { name: string; groups: string[] } | undefined : undefined,
    authorizePull: data.pullAuthz ? async (user, namespace) => (await ask({ op: 'authz', user: { name: user.name, groups: user.groups }, namespace })) === true : undefined,
    instrument: (a, b) => {
      [app, blobs] = [a, b];
      tracker = new RequestTracker(a.server);
      countTraffic(a, {
        bytes: (d, n) => (d === 'in' ? (bytesIn += n) : (bytesOut += n), later()),
        request: (method, code) => ((requests[`${method} ${code}`] = (requests[`${method} ${code}`] ?? 0) + 1), later()),
      });
    },
  });
  port.on('message', async (m: ToWorker) => {
    try {
      switch (m.op) {
        case 'auth-reply':
          calls.get(m.id)?.(m.result);
          calls.delete(m.id);
          return;
        case 'gc': {
          const tagRe = m.tagPattern === undefined ? undefined : new RegExp(m.tagPattern);
          const result = await registry.gc({ keepTags: m.keepTags, graceMs: m.graceMs, namespaces: m.namespaces, tagFilter: tagRe && ((_repo, tag) => tagRe.test(tag)) });
          return send({ op: 'reply', id: m.id, result });
        }
        case 'blobCount':
          return send({ op: 'reply', id: m.id, result: blobs ? (await blobs.listBlobs()).length : NaN });
        case 'stopAccepting':
          app?.server.close();
          return send({ op: 'reply', id: m.id, result: true });
        case 'idle':
          return send({ op: 'reply', id: m.id, result: tracker ? await tracker.idle(m.ms) : true });
        case 'close':
          await registry.close();
          if (flushTimer) clearTimeout(flushTimer);
          flush();
          send({ op: 'reply', id: m.id, result: true });
          port.close();
          return;
      }
    } catch (e) {
      if ('id' in m) send({ op: 'reply', id: m.id, error: (e as Error).message });
    }
  });
  send({ op: 'ready', port: registry.port, url: registry.url });
} catch (e) {
  send({ op: 'failed', message: (e as Error).stack ?? String(e) });
}
