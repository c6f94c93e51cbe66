// Component descriptors parsed off the event loop (issue 15): the YAML parser is synchronous and
// takes about a second for 2 MiB of descriptor (20,000 resources held the server's event loop for
// 2.1 s before the element limit could refuse it), so descriptors over 64 KiB are parsed in a worker
// thread, one at a time, with its own heap limit (a parse past it is DescriptorTooLarge). Smaller
// ones are parsed in place.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { type ComponentDescriptor, DescriptorError, parseDescriptor } from './descriptor.js';

const IN_PLACE_BYTES = 64 << 10;
const HEAP_MIB = 512;

type Request = { id: number; text: Uint8Array };
type Reply = { id: number; ok: ComponentDescriptor } | { id: number; error: { message: string; reason?: string } };

if (!isMainThread && workerData?.descriptorParser) {
  parentPort!.on('message', ({ id, text }: Request) => {
    let reply: Reply;
    try {
      reply = { id, ok: parseDescriptor(Buffer.from(text.buffer, text.byteOffset, text.byteLength)) };
    } catch (e) {
      reply = { id, error: { message: (e as Error).message, reason: e instanceof DescriptorError ? e.reason : undefined } };
    }
    parentPort!.postMessage(reply);
  });
}

let worker: Worker | undefined;
let nextId = 0;
const pending = new Map<number, { resolve: (d: ComponentDescriptor) => void; reject: (e: Error) => void }>();

function parser(): Worker {
  if (worker) return worker;
  const w = new Worker(new URL(import.meta.url), { workerData: { descriptorParser: true }, resourceLimits: { maxOldGenerationSizeMb: HEAP_MIB } });
  w.unref();
  w.on('message', (m: Reply) => {
    const p = pending.get(m.id);
    pending.delete(m.id);
    if (pending.size === 0) w.unref();
    if ('ok' in m) p?.resolve(m.ok);
    else p?.reject(new DescriptorError(m.error.message, m.error.reason as never));
  });
  const fail = (err: Error) => {
    if (worker === w) worker = undefined;
    const oom = (err as NodeJS.ErrnoException).code === 'ERR_WORKER_OUT_OF_MEMORY';
    for (const p of pending.values()) p.reject(oom ? new DescriptorError(`parsing the component descriptor took more than ${HEAP_MIB} MiB of memory`, 'DescriptorTooLarge') : err);
    pending.clear();
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`the descriptor parser exited (${code})`)));
  worker = w;
  return w;
}

/** parseDescriptor, off the event loop for descriptors over 64 KiB. */
export function parseDescriptorAsync(text: Buffer): Promise<ComponentDescriptor> {
  if (text.length <= IN_PLACE_BYTES) {
    try {
      return Promise.resolve(parseDescriptor(text));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  return new Promise((resolve, reject) => {
    const id = ++nextId;
    pending.set(id, { resolve, reject });
    const w = parser();
    w.ref();
    w.postMessage({ id, text: new Uint8Array(text) } satisfies Request);
  });
}
