// Component descriptors parsed off the event loop (issue 15): the YAML parser is synchronous and
// takes about a second for 2 MiB of descriptor (20,000 resources held the server's event loop for
// 2.1 s before the element limit could refuse it), so descriptors over 64 KiB are parsed in a worker
// thread (apiserver/offthread.ts), one at a time, with its own heap limit (a parse past it is
// DescriptorTooLarge). Smaller ones are parsed in place.
import { type ComponentDescriptor, DescriptorError, parseDescriptor } from './descriptor.js';
import { OffThread, serveOffThread } from '../apiserver/offthread.js';

const IN_PLACE_BYTES = 64 << 10;
const HEAP_MIB = 512;

serveOffThread('descriptor parser', (text: Uint8Array) => parseDescriptor(Buffer.from(text.buffer, text.byteOffset, text.byteLength)));

const parser = new OffThread({
  name: 'descriptor parser',
  module: new URL(import.meta.url),
  heapMib: HEAP_MIB,
  fromWire: (e) => new DescriptorError(e.message, e.reason as never),
});

/** parseDescriptor, off the event loop for descriptors over 64 KiB. */
export function parseDescriptorAsync(text: Buffer): Promise<ComponentDescriptor> {
  if (text.length <= IN_PLACE_BYTES) {
    try {
      return Promise.resolve(parseDescriptor(text));
    } catch (e) {
      return Promise.reject(e);
    }
  }
  const copy = new Uint8Array(text); // moved to the thread, not copied again
  return parser.call<ComponentDescriptor>(copy, () => new DescriptorError(`parsing the component descriptor took more than ${HEAP_MIB} MiB of memory`, 'DescriptorTooLarge'), [copy.buffer]);
}
