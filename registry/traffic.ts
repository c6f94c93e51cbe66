// What the registry's HTTP traffic amounts to, for metrics: bytes per direction (cleartext,
// headers included: what each connection read and wrote, attributed to the request that ended)
// and requests by method and code. Used in-process and on the registry's worker thread alike.
import type { FastifyInstance } from 'fastify';

export interface TrafficSink {
  bytes(direction: 'in' | 'out', n: number): void;
  request(method: string, code: number, count?: number): void;
}

export function countTraffic(app: FastifyInstance, sink: TrafficSink): void {
  const seen = Symbol('registry-bytes');
  type Counted = { bytesRead: number; bytesWritten: number; [seen]?: { r: number; w: number } };
  const account = (s: Counted) => {
    const last = (s[seen] ??= { r: 0, w: 0 });
    const r = s.bytesRead ?? 0;
    const w = s.bytesWritten ?? 0;
    if (r > last.r) sink.bytes('in', r - last.r);
    if (w > last.w) sink.bytes('out', w - last.w);
    last.r = Math.max(r, last.r);
    last.w = Math.max(w, last.w);
  };
  app.addHook('onRequest', (req, _reply, done) => {
    const s = req.raw.socket as unknown as Counted & NodeJS.EventEmitter;
    if (s && !s[seen]) {
      s[seen] = { r: 0, w: 0 };
      s.once('close', () => account(s)); // what a connection moved after its last response
    }
    done();
  });
  app.addHook('onResponse', (req, reply, done) => {
    if (req.raw.socket) account(req.raw.socket as unknown as Counted);
    sink.request(req.method, reply.statusCode);
    done();
  });
}
