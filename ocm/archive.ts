// Tar helpers: the descriptor layer exactly as the OCM Go library writes it, reading small
// (optionally gzipped) tars in memory, and the main manifest of an OCI layout archive (streamed).
import { createHash } from 'node:crypto';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tar from 'tar-stream';

/** mtime of the descriptor tar entry in the Go library (2022-01-01T00:00:00Z). */
const GO_DESCRIPTOR_MTIME = 1640995200;

function octal(n: number, width: number): string {
  return `${n.toString(8).padStart(width - 1, '0')}\0`;
}

/** A one-file tar as Go's archive/tar writes it for the library (mode 0, uid/gid 0, USTAR). */
export function singleFileTar(name: string, content: Buffer, mtime = GO_DESCRIPTOR_MTIME): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name "${name}" is longer than 100 bytes`);
  const h = Buffer.alloc(512);
  h.write(name, 0, 'utf8');
  h.write(octal(0, 8), 100, 'latin1');
  h.write(octal(0, 8), 108, 'latin1');
  h.write(octal(0, 8), 116, 'latin1');
  h.write(octal(content.length, 12), 124, 'latin1');
  h.write(octal(mtime, 12), 136, 'latin1');
  h.fill(' ', 148, 156);
  h.write('0', 156, 'latin1');
  h.write('ustar\u000000', 257, 'latin1');
  h.write(octal(0, 8), 329, 'latin1');
  h.write(octal(0, 8), 337, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  const pad = Buffer.alloc((512 - (content.length % 512)) % 512);
  return Buffer.concat([h, content, pad, Buffer.alloc(1024)]);
}

const isGzip = (b: Buffer) => b.length > 2 && b[0] === 0x1f && b[1] === 0x8b;
export const looksLikeTar = (b: Buffer) => isGzip(b) || (b.length >= 512 && b.toString('latin1', 257, 262) === 'ustar');

/** The regular files of a tar (or tar.gz) held in memory, by name without a leading `./`. */
export async function readTar(data: Buffer, maxBytes = 512 << 20): Promise<Map<string, Buffer>> {
  const raw = isGzip(data) ? zlib.gunzipSync(data, { maxOutputLength: maxBytes }) : data;
  const ex = tar.extract();
  const files = new Map<string, Buffer>();
  const done = new Promise<void>((resolve, reject) => {
    ex.on('entry', (h, stream, next) => {
      const parts: Buffer[] = [];
      stream.on('data', (d) => parts.push(d as Buffer));
      stream.on('end', () => {
        if (h.type === 'file' || h.type === 'contiguous-file') files.set(h.name.replace(/^(\.\/)+/, ''), Buffer.concat(parts));
        next();
      });
      stream.on('error', reject);
    });
    ex.on('finish', resolve);
    ex.on('error', reject);
  });
  ex.end(raw);
  await done;
  return files;
}

/** Entries of an OCI layout kept in memory while looking for its main manifest (manifests are at most 4 MiB). */
const MAX_LAYOUT_METADATA = 4 << 20;

/**
 * index.json and the small blobs (manifests, configs: 4 MiB each, at most 64 MiB in all) of an OCI
 * image layout tar (or tar.gz), read as it streams: layers pass through without being kept, and at
 * most `maxBytes` (1 GiB) of tar are read.
 */
async function layoutMetadata(data: Buffer | Readable, maxBytes = 1 << 30): Promise<Map<string, Buffer>> {
  const source = Buffer.isBuffer(data) ? Readable.from([data], { objectMode: false }) : data;
  const extract = tar.extract();
  let tarBytes = 0;
  const meter = new Transform({
    transform(c: Buffer, _e, cb) {
      if ((tarBytes += c.length) > maxBytes) cb(new Error(`OCI image layout: more than ${maxBytes} bytes`));
      else cb(null, c);
    },
  });
  // gzip or not, told by the first two bytes
  const first = await new Promise<Buffer | null>((resolve, reject) => {
    const onReadable = () => {
      const c = source.read(2) as Buffer | null;
      if (c === null && !source.readableEnded) return;
      cleanup();
      resolve(c);
    };
    const onEnd = () => (cleanup(), resolve(null));
    const onError = (e: Error) => (cleanup(), reject(e));
    const cleanup = () => {
      source.off('readable', onReadable);
      source.off('end', onEnd);
      source.off('error', onError);
    };
    source.on('readable', onReadable);
    source.on('end', onEnd);
    source.on('error', onError);
  });
  if (first) source.unshift(first);
  const gz = first !== null && first.length >= 2 && first[0] === 0x1f && first[1] === 0x8b;
  const feeding = gz ? pipeline(source, zlib.createGunzip(), meter, extract) : pipeline(source, meter, extract);
  feeding.catch(() => {});
  const files = new Map<string, Buffer>();
  let kept = 0;
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const name = h.name.replace(/^(\.\/)+/, '');
      const keep = (h.type === 'file' || h.type === 'contiguous-file') && (name === 'index.json' || name.startsWith('blobs/')) && (h.size ?? 0) <= MAX_LAYOUT_METADATA && (kept += h.size ?? 0) <= 16 * MAX_LAYOUT_METADATA;
      if (!keep) {
        entry.resume();
        continue;
      }
      const parts: Buffer[] = [];
      for await (const c of entry as AsyncIterable<Buffer>) parts.push(c);
      files.set(name, Buffer.concat(parts));
    }
    await feeding;
  } catch (e) {
    extract.destroy();
    source.destroy();
    throw await feeding.then(() => e, (fe) => fe);
  }
  return files;
}

/**
 * The main artifact of an OCI image layout archive (the library's `software.ocm/main` annotation,
 * or the only manifest of index.json), checked against its blob. Read as it streams: only index.json
 * and the small blobs are kept (a layout of large layers is never held in memory).
 */
export async function ociLayoutMain(data: Buffer | Readable): Promise<{ digest: string; manifest: Buffer; mediaType: string }> {
  const files = await layoutMetadata(data);
  const index = files.get('index.json');
  if (!index) throw new Error('not an OCI image layout: index.json is missing');
  let json: any;
  try {
    json = JSON.parse(index.toString('utf8'));
  } catch {
    throw new Error('not an OCI image layout: index.json is not JSON');
  }
  const manifests: any[] = Array.isArray(json?.manifests) ? json.manifests : [];
  const main: string | undefined = json?.annotations?.['software.ocm/main'] ?? (manifests.length === 1 ? manifests[0]?.digest : undefined);
  if (typeof main !== 'string') throw new Error(`OCI image layout: cannot tell the main artifact (${manifests.length} manifests and no software.ocm/main annotation)`);
  const [alg, hex] = main.split(':');
  const blob = files.get(`blobs/${alg}/${hex}`) ?? files.get(`blobs/${alg}.${hex}`);
  if (!blob) throw new Error(`OCI image layout: the main manifest ${main} is not among the blobs`);
  if (createHash(alg === 'sha512' ? 'sha512' : 'sha256').update(blob).digest('hex') !== hex) throw new Error(`OCI image layout: blob ${main} does not match its digest`);
  const mediaType = manifests.find((m) => m?.digest === main)?.mediaType ?? JSON.parse(blob.toString('utf8'))?.mediaType ?? '';
  return { digest: main, manifest: blob, mediaType };
}
