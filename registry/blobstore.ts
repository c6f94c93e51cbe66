// Content-addressed blob storage and upload sessions under one data directory:
//   blobs/sha256/<hex>         blob content, written once, renamed in only after its digest matched
//   uploads/<uuid>/{info.json,data}  in-progress upload sessions (resumable across restarts)
//   tmp/                       temp files for monolithic uploads and atomic writes (emptied at start)
import { createHash, randomUUID, type Hash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { regError, storageError } from './server-errors.js';

const DIGEST_RE = /^sha256:[a-f0-9]{64}$/;
const ANY_DIGEST_RE = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const UPLOAD_ID_RE = /^[a-f0-9-]{36}$/;

export const isDigest = (d: unknown): d is string => typeof d === 'string' && DIGEST_RE.test(d);

/** Returns the hex part of a sha256 digest; throws DIGEST_INVALID for anything else. */
export function digestHex(d: string): string {
  if (DIGEST_RE.test(d)) return d.slice(7);
  throw regError('DIGEST_INVALID', ANY_DIGEST_RE.test(d) ? 'unsupported digest algorithm (only sha256)' : 'invalid digest', { digest: d });
}

export const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** 1 MiB stream buffers: far fewer syscalls and thread hand-offs than Node's 16/64 KiB defaults. */
const CHUNK = 1 << 20;

class HashCount extends Transform {
  bytes = 0;
  constructor(readonly hash: Hash) {
    super({ highWaterMark: CHUNK });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
}

/**
 * Streams a request body through `hc` into `file`. Unlike pipeline(src, ...), a failed write does not
 * destroy the request (which would reset the connection): the rest of the body is drained so that the
 * client still gets the error response. A client that goes away fails the transfer.
 */
async function receive(src: Readable, hc: HashCount, file: string, flags: string): Promise<void> {
  const done = pipeline(hc, fs.createWriteStream(file, { flags, highWaterMark: CHUNK }));
  const abort = () => hc.destroy(Object.assign(new Error('client closed the connection'), { code: 'ECONNRESET' }));
  const onClose = () => src.readableEnded || abort();
  src.once('error', abort).once('close', onClose);
  if (src.destroyed) onClose();
  src.pipe(hc);
  try {
    await done;
  } catch (e) {
    src.unpipe(hc);
    src.resume();
    throw e;
  } finally {
    src.off('error', abort).off('close', onClose);
  }
}

async function fsyncFile(file: string): Promise<void> {
  const fh = await fsp.open(file, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface Upload {
  id: string;
  repo: string;
  size: number;
  /** Hash of the first `size` bytes; copied before each append so a failed append can be undone. */
  hash: Hash;
  busy: boolean;
}

export class BlobStore {
  readonly blobsDir: string;
  readonly uploadsDir: string;
  readonly tmpDir: string;
  private uploads = new Map<string, Upload>();

  /** Directories known to exist, so writes skip their mkdir. */
  private readonly knownDirs = new Set<string>();

  constructor(readonly root: string) {
    this.blobsDir = path.join(root, 'blobs', 'sha256');
    this.uploadsDir = path.join(root, 'uploads');
    this.tmpDir = path.join(root, 'tmp');
  }

  async init(): Promise<void> {
    await fsp.rm(this.tmpDir, { recursive: true, force: true });
    for (const d of [this.blobsDir, this.uploadsDir, this.tmpDir]) await fsp.mkdir(d, { recursive: true });
  }

  blobPath(hex: string): string {
    return path.join(this.blobsDir, hex);
  }

  tmpPath(): string {
    return path.join(this.tmpDir, randomUUID());
  }

  async stat(hex: string): Promise<fs.Stats | undefined> {
    return fsp.stat(this.blobPath(hex)).catch(() => undefined);
  }

  async open(hex: string): Promise<{ fh: fsp.FileHandle; size: number } | undefined> {
    const fh = await fsp.open(this.blobPath(hex), 'r').catch(() => undefined);
    if (!fh) return undefined;
    return { fh, size: (await fh.stat()).size };
  }

  /** Marks a blob as recently used, so the GC grace period protects it. */
  async touch(hex: string): Promise<void> {
    const now = new Date();
    await fsp.utimes(this.blobPath(hex), now, now).catch(() => {});
  }

  /** Writes a small file atomically: temp file, fsync, rename. */
  async writeAtomic(file: string, data: string | Buffer): Promise<void> {
    const tmp = this.tmpPath();
    try {
      await fsp.writeFile(tmp, data, { flush: data.length > 0 });
      const dir = path.dirname(file);
      if (!this.knownDirs.has(dir)) {
        await fsp.mkdir(dir, { recursive: true });
        if (this.knownDirs.size > 10_000) this.knownDirs.clear();
        this.knownDirs.add(dir);
      }
      await fsp.rename(tmp, file).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
        // the directory went away (a repository's links removed by GC): make it again
        this.knownDirs.delete(dir);
        await fsp.mkdir(dir, { recursive: true });
        await fsp.rename(tmp, file);
      });
    } catch (e) {
      await fsp.rm(tmp, { force: true });
      throw storageError(e);
    }
  }

  /** Stores small content (a manifest, a small blob) as a blob; returns its hex digest (`hex`, when
   * the caller has already hashed it). Content already stored is only touched: the name is its hash. */
  async putBytes(data: Buffer, hex = sha256(data)): Promise<string> {
    if (await this.stat(hex)) await this.touch(hex);
    else await this.writeAtomic(this.blobPath(hex), data);
    return hex;
  }

  /** Streams `src` into a temp file while hashing; the blob appears only if it hashes to `hex`. */
  async ingest(src: Readable, hex: string, expectLength?: number): Promise<number> {
    const tmp = this.tmpPath();
    const hc = new HashCount(createHash('sha256'));
    try {
      await receive(src, hc, tmp, 'wx');
      if (expectLength !== undefined && hc.bytes !== expectLength) throw regError('SIZE_INVALID', 'body length does not match Content-Length');
      const got = hc.hash.digest('hex');
      if (got !== hex) throw regError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: `sha256:${hex}`, actual: `sha256:${got}` });
      await fsyncFile(tmp);
      await fsp.rename(tmp, this.blobPath(hex));
      return hc.bytes;
    } catch (e) {
      await fsp.rm(tmp, { force: true }).catch(() => {});
      throw storageError(e);
    }
  }

  get openUploads(): number {
    return this.uploads.size;
  }

  private uploadDir(id: string) {
    return path.join(this.uploadsDir, id);
  }

  async createUpload(repo: string): Promise<Upload> {
    const id = randomUUID();
    const dir = this.uploadDir(id);
    try {
      await fsp.mkdir(dir);
      await fsp.writeFile(path.join(dir, 'data'), '');
      await fsp.writeFile(path.join(dir, 'info.json'), JSON.stringify({ repo, started: new Date().toISOString() }));
    } catch (e) {
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
      throw storageError(e);
    }
    const up: Upload = { id, repo, size: 0, hash: createHash('sha256'), busy: false };
    this.uploads.set(id, up);
    return up;
  }

  /** Finds an upload session of `repo`, reloading (and rehashing) it from disk after a restart. */
  async getUpload(id: string, repo: string): Promise<Upload | undefined> {
    if (!UPLOAD_ID_RE.test(id)) return undefined;
    let up = this.uploads.get(id);
    if (!up) {
      const dir = this.uploadDir(id);
      const info = await fsp
        .readFile(path.join(dir, 'info.json'), 'utf8')
        .then((s) => JSON.parse(s) as { repo: string })
        .catch(() => undefined);
      if (!info) return undefined;
      const hc = new HashCount(createHash('sha256'));
      try {
        await pipeline(fs.createReadStream(path.join(dir, 'data')), hc, async function* (src) {
          for await (const _ of src);
        });
      } catch {
        return undefined;
      }
      up = this.uploads.get(id) ?? { id, repo: info.repo, size: hc.bytes, hash: hc.hash, busy: false };
      this.uploads.set(id, up);
    }
    return up.repo === repo ? up : undefined;
  }

  private claim(up: Upload) {
    if (up.busy) throw regError('BLOB_UPLOAD_INVALID', 'another request is writing to this upload', { uuid: up.id });
    up.busy = true;
  }

  /** Appends a chunk; all or nothing: a failed or aborted chunk is cut off again. */
  private async appendClaimed(up: Upload, src: Readable, expectLength?: number): Promise<void> {
    const file = path.join(this.uploadDir(up.id), 'data');
    const hc = new HashCount(up.hash.copy());
    try {
      await receive(src, hc, file, 'a');
      if (expectLength !== undefined && hc.bytes !== expectLength) throw regError('SIZE_INVALID', `chunk is ${hc.bytes} bytes, Content-Range says ${expectLength}`);
      up.hash = hc.hash;
      up.size += hc.bytes;
    } catch (e) {
      await fsp.truncate(file, up.size).catch(() => {});
      throw storageError(e);
    }
  }

  async append(up: Upload, src: Readable, expectLength?: number): Promise<void> {
    this.claim(up);
    try {
      await this.appendClaimed(up, src, expectLength);
    } finally {
      up.busy = false;
    }
  }

  /** Appends the last chunk (if any), checks the digest and moves the data into place. */
  async finish(up: Upload, src: Readable | undefined, hex: string, expectLength?: number): Promise<number> {
    this.claim(up);
    try {
      if (src) await this.appendClaimed(up, src, expectLength);
      const got = up.hash.copy().digest('hex');
      if (got !== hex) {
        await this.dropUpload(up);
        throw regError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: `sha256:${hex}`, actual: `sha256:${got}` });
      }
      const file = path.join(this.uploadDir(up.id), 'data');
      try {
        await fsyncFile(file);
        await fsp.rename(file, this.blobPath(hex));
        await this.touch(hex);
      } catch (e) {
        throw storageError(e);
      }
      await this.dropUpload(up);
      return up.size;
    } finally {
      up.busy = false;
    }
  }

  async cancel(up: Upload): Promise<void> {
    this.claim(up);
    await this.dropUpload(up);
  }

  private async dropUpload(up: Upload) {
    this.uploads.delete(up.id);
    await fsp.rm(this.uploadDir(up.id), { recursive: true, force: true }).catch(() => {});
  }

  /** Removes upload sessions idle for longer than `maxAgeMs`. */
  async expireUploads(maxAgeMs: number): Promise<void> {
    const now = Date.now();
    for (const id of await fsp.readdir(this.uploadsDir).catch(() => [] as string[])) {
      if (this.uploads.get(id)?.busy) continue;
      const st = await fsp.stat(path.join(this.uploadDir(id), 'data')).catch(() => undefined);
      if (st && now - st.mtimeMs < maxAgeMs) continue;
      this.uploads.delete(id);
      await fsp.rm(this.uploadDir(id), { recursive: true, force: true }).catch(() => {});
    }
  }

  async listBlobs(): Promise<string[]> {
    return (await fsp.readdir(this.blobsDir)).filter((f) => /^[a-f0-9]{64}$/.test(f));
  }
}
