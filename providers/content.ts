// Turns a resource's bytes into snapshot files: a tar or tar.gz becomes its entries (checked as
// strictly as a snapshot: no links, no escaping paths, size limits; a plain tar is read as it is,
// not gzipped first), anything else one file.
import { readSnapshotFiles } from '../registry/snapshot.js';
import type { Files } from './types.js';

const isGzip = (b: Buffer) => b.length > 2 && b[0] === 0x1f && b[1] === 0x8b;
const isTar = (b: Buffer) => b.length > 262 && b.subarray(257, 262).toString('latin1') === 'ustar';

export async function archiveToFiles(tgz: Buffer): Promise<Files> {
  return readSnapshotFiles(tgz);
}

export async function contentToFiles(data: Buffer, mediaType: string, fallbackName: string): Promise<Files> {
  if (isGzip(data) || /tar\+gzip|tgz|gzip/.test(mediaType)) {
    if (isGzip(data)) return archiveToFiles(data);
  }
  if (isTar(data) || /x-tar|\+tar$|\.tar$/.test(mediaType)) return archiveToFiles(data);
  const ext = /yaml/.test(mediaType) ? '.yaml' : /json/.test(mediaType) ? '.json' : '';
  const name = ext && !fallbackName.endsWith(ext) ? fallbackName + ext : fallbackName;
  return { [name]: data };
}
