// Tar helpers: the descriptor layer exactly as the OCM Go library writes it, reading small
// (optionally gzipped) tars in memory, and the main manifest of an OCI layout archive.
import { createHash } from 'node:crypto';
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

/**
 * The main artifact of an OCI image layout archive (the library's `software.ocm/main` annotation,
 * or the only manifest of index.json), checked against its blob.
 */
export async function ociLayoutMain(data: Buffer): Promise<{ digest: string; manifest: Buffer; mediaType: string }> {
  const files = await readTar(data);
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
