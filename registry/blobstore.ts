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
import { RegistryError, regError, storageError } from './server-errors.js';
import { Quota } from './server-quota.js';

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
  /** `admit` is asked before each chunk passes (a quota, the free-disk guard); a throw ends the stream. */
  constructor(
    readonly hash: Hash,
    private readonly admit?: (n: number) => Promise<void>,
  ) {
    super({ highWaterMark: CHUNK });
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback) {
    const pass = () => {
      this.hash.update(chunk);
      this.bytes += chunk.length;
      cb(null, chunk);
    };
    if (!this.admit) return pass();
    this.admit(chunk.length).then(pass, cb);
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
  /** Hash of the first `size` bytes; copied before each append so a failed append can be undone.
   * Unset for a session found on disk at start until it is used again (then its data is rehashed). */
  hash?: Hash;
  busy: boolean;
}

const isQuotaDenial = (e: unknown) => e instanceof RegistryError && e.code === 'DENIED';

export class BlobStore {
  readonly blobsDir: string;
  readonly uploadsDir: string;
  readonly tmpDir: string;
  private uploads = new Map<string, Upload>();

  /** Directories known to exist, so writes skip their mkdir. */
  private readonly knownDirs = new Set<string>();

  /** `quota`: what each namespace's uploads hold (sessions, bytes) is counted and limited there. */
  constructor(
    readonly root: string,
    readonly quota: Quota = new Quota(root),
  ) {
    this.blobsDir = path.join(root, 'blobs', 'sha256');
    this.uploadsDir = path.join(root, 'uploads');
    this.tmpDir = path.join(root, 'tmp');
  }

  async init(): Promise<void> {
    await fsp.rm(this.tmpDir, { recursive: true, force: true });
    for (const d of [this.blobsDir, this.uploadsDir, this.tmpDir]) await fsp.mkdir(d, { recursive: true });
    // Upload sessions survive restarts: each one counts again for its namespace (slot and bytes).
    for (const id of await fsp.readdir(this.uploadsDir)) {
      if (!UPLOAD_ID_RE.test(id)) continue;
      const dir = this.uploadDir(id);
      const info = await fsp
        .readFile(path.join(dir, 'info.json'), 'utf8')
        .then((s) => JSON.parse(s) as { repo: unknown })
        .catch(() => undefined);
      const st = await fsp.stat(path.join(dir, 'data')).catch(() => undefined);
      if (!st || typeof info?.repo !== 'string') continue;
      this.uploads.set(id, { id, repo: info.repo, size: st.size, busy: false });
      this.quota.openUpload(info.repo, true);
      this.quota.add(info.repo, st.size);
    }
  }

  /** Takes `n` bytes of `repo`'s quota and of the disk's headroom; `taken` counts what was taken. */
  private admitter(repo: string, taken: { bytes: number }) {
    return async (n: number) => {
      this.quota.take(repo, n);
      taken.bytes += n;
      await this.quota.admitDisk(n);
    };
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

  /** Writes a small file atomically: temp file, fsync, rename. Returns whether `file` is new: a
   * hard link that fails when the name exists tells, atomically, even with concurrent writers. */
  async writeAtomic(file: string, data: string | Buffer): Promise<boolean> {
    const tmp = this.tmpPath();
    const dir = path.dirname(file);
    const place = async () => {
      try {
        await fsp.link(tmp, file);
        return true;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        await fsp.rename(tmp, file);
        return false;
      }
    };
    try {
      await fsp.writeFile(tmp, data, { flush: data.length > 0 });
      if (!this.knownDirs.has(dir)) {
        await fsp.mkdir(dir, { recursive: true });
        if (this.knownDirs.size > 10_000) this.knownDirs.clear();
        this.knownDirs.add(dir);
      }
      return await place().catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e;
        // the directory went away (a repository's links removed by GC): make it again
        this.knownDirs.delete(dir);
        await fsp.mkdir(dir, { recursive: true });
        return place();
      });
    } catch (e) {
      throw storageError(e);
    } finally {
      await fsp.rm(tmp, { force: true }).catch(() => {});
    }
  }

  /** Stores small content (a manifest, a small blob) as a blob; returns its hex digest (`hex`, when
   * the caller has already hashed it). Content already stored is only touched: the name is its hash. */
  async putBytes(data: Buffer, hex = sha256(data)): Promise<string> {
    if (await this.stat(hex)) await this.touch(hex);
    else await this.writeAtomic(this.blobPath(hex), data);
    return hex;
  }

  /** Streams `src` into a temp file while hashing; the blob appears only if it hashes to `hex`.
   * The bytes are taken from `repo`'s quota as they arrive and stay taken (for the blob's link)
   * when it succeeds; a failure gives them back and deletes what arrived. */
  async ingest(src: Readable, hex: string, repo: string, expectLength?: number): Promise<number> {
    const tmp = this.tmpPath();
    const taken = { bytes: 0 };
    const hc = new HashCount(createHash('sha256'), this.admitter(repo, taken));
    try {
      await receive(src, hc, tmp, 'wx');
      if (expectLength !== undefined && hc.bytes !== expectLength) throw regError('SIZE_INVALID', 'body length does not match Content-Length');
      const got = hc.hash.digest('hex');
      if (got !== hex) throw regError('DIGEST_INVALID', 'provided digest did not match uploaded content', { expected: `sha256:${hex}`, actual: `sha256:${got}` });
      await fsyncFile(tmp);
      await fsp.rename(tmp, this.blobPath(hex));
      return hc.bytes;
    } catch (e) {
      this.quota.give(repo, taken.bytes);
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
    this.quota.openUpload(repo);
    try {
      await this.quota.admitDisk(0);
      await fsp.mkdir(dir);
      await fsp.writeFile(path.join(dir, 'data'), '');
      await fsp.writeFile(path.join(dir, 'info.json'), JSON.stringify({ repo, started: new Date().toISOString() }));
    } catch (e) {
      this.quota.closeUpload(repo);
      await fsp.rm(dir, { recursive: true, force: true }).catch(() => {});
      throw storageError(e);
    }
    const up: Upload = { id, repo, size: 0, hash: createHash('sha256'), busy: false };
    this.uploads.set(id, up);
    return up;
  }

  /** Finds an upload session of `repo`, rehashing its data once after a restart. */
  async getUpload(id: string, repo: string): Promise<Upload | undefined> {
    const up = UPLOAD_ID_RE.test(id) ? this.uploads.get(id) : undefined;
    if (!up || up.repo !== repo) return undefined;
    if (!up.hash && !up.busy) {
      up.busy = true;
      try {
        const hc = new HashCount(createHash('sha256'));
        await pipeline(fs.createReadStream(path.join(this.uploadDir(id), 'data')), hc, async function* (src) {
          for await (const _ of src);
        });
        if (hc.bytes > up.size) this.quota.add(repo, hc.bytes - up.size);
        else this.quota.give(repo, up.size - hc.bytes);
        [up.size, up.hash] = [hc.bytes, hc.hash];
      } catch {
        return undefined;
      } finally {
        up.busy = false;
      }
    }
    return up;
  }

  private claim(up: Upload): asserts up is Upload & { hash: Hash } {
    if (up.busy || !up.hash) throw regError('BLOB_UPLOAD_INVALID', 'another request is writing to this upload', { uuid: up.id });
    up.busy = true;
  }

  /** Appends a chunk; all or nothing: a failed or aborted chunk is cut off again. A chunk that
   * goes past the namespace's quota ends the whole session (its data deleted). */
  private async appendClaimed(up: Upload & { hash: Hash }, src: Readable, expectLength?: number): Promise<void> {
    const file = path.join(this.uploadDir(up.id), 'data');
    const taken = { bytes: 0 };
    const hc = new HashCount(up.hash.copy(), this.admitter(up.repo, taken));
    try {
      if (expectLength !== undefined) this.quota.check(up.repo, expectLength);
      await receive(src, hc, file, 'a');
      if (expectLength !== undefined && hc.bytes !== expectLength) throw regError('SIZE_INVALID', `chunk is ${hc.bytes} bytes, Content-Range says ${expectLength}`);
      up.hash = hc.hash;
      up.size += hc.bytes;
    } catch (e) {
      this.quota.give(up.repo, taken.bytes);
      if (isQuotaDenial(e)) await this.dropUpload(up);
      else await fsp.truncate(file, up.size).catch(() => {});
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
      await this.dropUpload(up, true);
      return up.size;
    } finally {
      up.busy = false;
    }
  }

  async cancel(up: Upload): Promise<void> {
    this.claim(up);
    await this.dropUpload(up);
  }

  /** Ends a session: its slot is given back, and its bytes unless they now belong to a blob (`keepBytes`). */
  private async dropUpload(up: Upload, keepBytes = false) {
    if (!this.uploads.has(up.id)) return;
    this.uploads.delete(up.id);
    this.quota.closeUpload(up.repo);
    if (!keepBytes) this.quota.give(up.repo, up.size);
    await fsp.rm(this.uploadDir(up.id), { recursive: true, force: true }).catch(() => {});
  }

  /** Removes upload sessions idle for longer than `maxAgeMs`. */
  async expireUploads(maxAgeMs: number): Promise<void> {
    const now = Date.now();
    for (const id of await fsp.readdir(this.uploadsDir).catch(() => [] as string[])) {
      const up = this.uploads.get(id);
      if (up?.busy) continue;
      const st = await fsp.stat(path.join(this.uploadDir(id), 'data')).catch(() => undefined);
      if (st && now - st.mtimeMs < maxAgeMs) continue;
      if (up && !up.busy) await this.dropUpload(up);
      else if (!up) await fsp.rm(this.uploadDir(id), { recursive: true, force: true }).catch(() => {});
    }
  }

  async listBlobs(): Promise<string[]> {
    return (await fsp.readdir(this.blobsDir)).filter((f) => /^[a-f0-9]{64}$/.test(f));
  }
}
