// Snapshots: a directory or a set of files as a deterministic tar.gz, stored as an OCI artifact.
//
// Artifact layout (an OCI image manifest, `application/vnd.oci.image.manifest.v1+json`):
//   config   SNAPSHOT_CONFIG_MEDIA_TYPE  JSON {schemaVersion: 1, namespace, component, name, provider}
//   layer 0  SNAPSHOT_LAYER_MEDIA_TYPE   the tar.gz; annotation org.opencontainers.image.title = snapshot.tar.gz
//   annotations: org.opencontainers.image.created (from the tag's timestamp) and the caller's.
// Repository `<namespace>/<component>/<name>-<provider>` (sanitised to the OCI name rules) and tag
// `<unix timestamp>`, so two namespaces never share a repository.
//
// The tar: entries sorted by the UTF-8 bytes of their path, directories included, mtime 0,
// uid/gid 0, empty uname/gname, mode 0644 for files and 0755 for directories, ustar (pax only
// for paths ustar cannot hold). The gzip: level 6 with zlib's defaults; zlib writes header mtime 0,
// and the OS byte (3 = Unix from zlib on Linux and macOS, 10 on Windows builds) is forced to 3.
// So one input gives the same bytes, and digest, on every machine running the same Node.js zlib;
// another deflate implementation may compress the same tar to different bytes.
import { createHash } from 'node:crypto';
import { constants as fsc, createReadStream, promises as fsp } from 'node:fs';
import path from 'node:path';
import { Readable, Transform, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import zlib from 'node:zlib';
import tar from 'tar-stream';
import { digestOfAsync, MEDIA_TYPES, OciError, parseReference, type OciClient } from './client.js';
import { leaseMemory, MAX_ARCHIVE_IN_MEMORY_BYTES } from './memory-budget.js';

const isGzip = (b: Buffer) => b.length > 2 && b[0] === 0x1f && b[1] === 0x8b;

/** Lets the event loop run other work (the API) between batches of entries. */
const breather = () => new Promise<void>((resolve) => setImmediate(resolve));
/** Entries between breathers while packing or reading an archive. */
const BATCH = 500;
/** Most entries in a snapshot, packed or read. */
export const MAX_SNAPSHOT_ENTRIES = 100_000;
/** Longest entry path (Linux PATH_MAX). */
const MAX_PATH_BYTES = 4096;
/** Characters of directory paths an archive may make the reader check (bounds deep, wide trees). */
const MAX_DIRECTORY_CHARS = 64 << 20;

export const SNAPSHOT_CONFIG_MEDIA_TYPE = 'application/vnd.ocm.software.snapshot.config.v1+json';
export const SNAPSHOT_LAYER_MEDIA_TYPE = 'application/vnd.ocm.software.snapshot.layer.v1.tar+gzip';
export const SNAPSHOT_LAYER_TITLE = 'snapshot.tar.gz';

const EPOCH = new Date(0);

interface PackEntry {
  path: string;
  type: 'file' | 'directory';
  size: number;
  content?: Buffer;
  source?: string;
}


/** A relative POSIX path without `.`/`..`/empty segments, or an error. */
function cleanPath(p: string, what: string): string {
  if (p.includes('\0') || p.includes('\\')) throw new OciError('INVALID_PATH', `${what} "${p}": NUL or backslash in path`);
  if (p.startsWith('/') || /^[a-zA-Z]:/.test(p)) throw new OciError('INVALID_PATH', `${what} "${p}": absolute path`);
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..')) throw new OciError('INVALID_PATH', `${what} "${p}": ".." in path`);
  return parts.join('/');
}

async function walk(root: string, realRoot: string, rel: string, out: PackEntry[]): Promise<void> {
  for (const name of await fsp.readdir(path.join(root, rel))) {
    const r = rel ? `${rel}/${name}` : name;
    let source = path.join(root, r);
    const st = await fsp.lstat(source);
    if (st.isDirectory()) {
      out.push({ path: r, type: 'directory', size: 0 });
      await walk(root, realRoot, r, out);
      continue;
    }
    if (st.isSymbolicLink()) {
      // A link to a file inside the tree becomes a copy of that file; the tar holds no links.
      source = await fsp.realpath(source).catch(() => '');
      if (!source.startsWith(realRoot + path.sep)) throw new OciError('INVALID_PATH', `snapshot input "${r}": symlink points outside the directory or nowhere`);
    }
    const target = st.isSymbolicLink() ? await fsp.stat(source) : st;
    if (!target.isFile()) throw new OciError('INVALID_PATH', `snapshot input "${r}": not a regular file or directory`);
    out.push({ path: r, type: 'file', size: target.size, source });
  }
}

const GZIP_OPTIONS: zlib.ZlibOptions = { level: 6, memLevel: 8, windowBits: 15, strategy: zlib.constants.Z_DEFAULT_STRATEGY };

type PackInput = { dir: string } | { files: Record<string, Buffer | string> };
type Packed = { digest: string; size: number; files: { path: string; size: number }[] };

async function packEntries(input: PackInput): Promise<PackEntry[]> {
  const entries: PackEntry[] = [];
  if ('dir' in input) {
    const dir = path.resolve(input.dir);
    await walk(dir, await fsp.realpath(dir), '', entries);
  } else {
    // Linear in the number of files: sets, not searches of the list (100,000 files took 12 s).
    const dirs = new Set<string>();
    const paths = new Set<string>();
    let n = 0;
    for (const name in input.files) {
      if (++n % BATCH === 0) await breather();
      const data = input.files[name];
      const p = cleanPath(name, 'snapshot file');
      if (!p) throw new OciError('INVALID_PATH', `snapshot file "${name}": empty path`);
      const content = Buffer.isBuffer(data) ? data : Buffer.from(data);
      if (paths.has(p)) throw new OciError('INVALID_PATH', `snapshot file "${name}": given twice`);
      paths.add(p);
      entries.push({ path: p, type: 'file', size: content.length, content });
      for (let i = p.lastIndexOf('/'); i > 0; i = p.lastIndexOf('/', i - 1)) {
        const d = p.slice(0, i);
        if (dirs.has(d)) break; // and so are its parents
        dirs.add(d);
      }
    }
    for (const d of dirs) {
      if (paths.has(d)) throw new OciError('INVALID_PATH', `snapshot file "${d}" is also a directory`);
      entries.push({ path: d, type: 'directory', size: 0 });
    }
  }
  if (entries.length > MAX_SNAPSHOT_ENTRIES) throw new OciError('ARCHIVE_TOO_LARGE', `snapshot: ${entries.length} entries, over the limit of ${MAX_SNAPSHOT_ENTRIES}`);
  // Sorted by UTF-8 bytes: the same order as UTF-16 code units unless a path has a surrogate pair
  // (then each path is encoded once, not twice per comparison).
  if (entries.some((e) => /[\ud800-\udfff]/.test(e.path))) {
    const keyed = entries.map((e) => ({ e, k: Buffer.from(e.path) }));
    keyed.sort((a, b) => Buffer.compare(a.k, b.k));
    for (let i = 0; i < keyed.length; i++) entries[i] = keyed[i].e;
  } else entries.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  await breather();
  return entries;
}

const pad512 = (n: number) => Math.ceil(n / 512) * 512;
/** At least the size of the tar of `entries`: a header, and for a long path a pax header, per entry. */
function tarBound(entries: PackEntry[]): number {
  let n = 1024;
  for (const e of entries) n += 512 + pad512(e.size) + (e.path.length > 100 ? 1024 + pad512(3 * e.path.length + 64) : 0);
  return n;
}
/** zlib's deflateBound for the gzip of `n` bytes, with room for the header and trailer. */
const gzipBound = (n: number) => n + (n >> 12) + (n >> 14) + (n >> 25) + 64;

/** The tar's pieces (a header, content and padding per entry) in ~1 MiB buffers: one zlib call each, not three per entry. */
function coalesce(): Transform {
  let pending: Buffer[] = [];
  let bytes = 0;
  const flush = (t: Transform) => {
    if (pending.length) t.push(pending.length === 1 ? pending[0] : Buffer.concat(pending, bytes));
    pending = [];
    bytes = 0;
  };
  return new Transform({
    transform(c: Buffer, _e, cb) {
      if (c.length >= 1 << 20) {
        flush(this);
        this.push(c);
      } else {
        pending.push(c);
        if ((bytes += c.length) >= 1 << 20) flush(this);
      }
      cb();
    },
    flush(cb) {
      flush(this);
      cb();
    },
  });
}

/** Writes the tar.gz of `entries` into `sink`: the tar's pieces go through the zlib stream as they are made (never held whole). */
async function writeTar(entries: PackEntry[], sink: Writable): Promise<void> {
  const pack = tar.pack();
  const collected = pipeline(pack, coalesce(), zlib.createGzip(GZIP_OPTIONS), sink);
  collected.catch(() => {}); // awaited below; errors surface there
  try {
    let n = 0;
    for (const e of entries) {
      if (++n % BATCH === 0) await breather();
      const header = { name: e.path, type: e.type, size: e.size, mode: e.type === 'directory' ? 0o755 : 0o644, mtime: EPOCH, uid: 0, gid: 0, uname: '', gname: '' };
      if (e.type === 'directory' || e.content) {
        await new Promise<void>((res, rej) => pack.entry(header, e.content ?? Buffer.alloc(0), (err) => (err ? rej(err) : res())));
      } else {
        const done = new Promise<void>((res, rej) => {
          const sink = pack.entry(header, (err) => (err ? rej(err) : res()));
          pipeline(createReadStream(e.source!), sink).catch(rej);
        });
        await done;
      }
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    throw new OciError('PACK_FAILED', `packing snapshot: ${(err as Error).message}`, { cause: err });
  }
  await collected;
}

/** Collects what is written into ~1 MiB buffers: a few hundred objects for the collector to mark instead of three per entry. */
function collector(): { sink: Writable; chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const settle = () => {
    if (pending.length) chunks.push(pending.length === 1 ? pending[0] : Buffer.concat(pending, pendingBytes));
    pending = [];
    pendingBytes = 0;
  };
  const sink = new Writable({
    write(c: Buffer, _e, cb) {
      pending.push(c);
      if ((pendingBytes += c.length) >= 1 << 20) settle();
      cb();
    },
    final(cb) {
      settle();
      cb();
    },
  });
  return { sink, chunks };
}

const fileList = (entries: PackEntry[]) => entries.filter((e) => e.type === 'file').map((e) => ({ path: e.path, size: e.size }));

/**
 * The snapshot's tar.gz in memory. Inside a reconcile it leases what it holds from the in-memory
 * budget first: the tgz, at most zlib's bound for the tar. The tar itself is never held: its pieces
 * (a file's content is the caller's buffer, not a copy) go through one zlib stream, which gives the
 * same bytes as compressing the whole tar in one call (no flush points, same parameters). Before, a
 * tar of up to 8 MiB was built in memory and copied once more to be compressed in one call: two
 * copies of every file, MiBs of short-lived buffers per snapshot for the collector (issue 15).
 */
export async function packSnapshot(input: PackInput): Promise<Packed & { tgz: Buffer }> {
  const entries = await packEntries(input);
  await leaseMemory(gzipBound(tarBound(entries)));
  const { sink, chunks } = collector();
  await writeTar(entries, sink);
  const tgz = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks);
  tgz[9] = 3; // gzip OS byte: Unix, whatever zlib was built for (not covered by the gzip CRC)
  return { tgz, digest: await digestOfAsync(tgz), size: tgz.length, files: fileList(entries) };
}

/** The same tar.gz as packSnapshot, written to `file` as it is made (hashed on the way): nothing is held. */
export async function packSnapshotToFile(input: PackInput, file: string): Promise<Packed & { file: string }> {
  const entries = await packEntries(input);
  const hash = createHash('sha256');
  let size = 0;
  const out = await fsp.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_TRUNC, 0o600);
  const ws = out.createWriteStream();
  const tee = new Transform({
    transform(c: Buffer, _e, cb) {
      if (size <= 9 && size + c.length > 9) {
        c = Buffer.from(c);
        c[9 - size] = 3; // gzip OS byte, as packSnapshot
      }
      size += c.length;
      hash.update(c);
      cb(null, c);
    },
  });
  const written = pipeline(tee, ws);
  written.catch(() => {});
  try {
    await writeTar(entries, tee);
    await written;
  } catch (e) {
    ws.destroy();
    throw e;
  }
  return { file, digest: `sha256:${hash.digest('hex')}`, size, files: fileList(entries) };
}

/** One OCI path component (distribution's grammar): `[a-z0-9]+` joined by `.`, `_`, `__` or dashes. */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const MAX_REPOSITORY = 255; // distribution's limit on a repository name

export type ProducerKind = 'Source' | 'Action';

export interface SnapshotPlace {
  namespace: string;
  /** The OCMComponent object's name. */
  component: string;
  kind: ProducerKind;
  name: string;
  /** The provider object's name. */
  provider: string;
}

/**
 * The repository of one producer's snapshots, one that no other producer can have:
 * `<namespace>/<component>/<source|action>/<name>/<provider>` (with `/chart` appended for the
 * chart a HelmReleaseTemplate pushes beside it). Kubernetes names are already OCI path components,
 * so each segment is the name as it is, and the segments are separate: nothing can shift from one
 * to the next. When a name is not a path component as it is, or the result is longer than 255
 * characters, the place is `<namespace>/<source|action>/sha256/<hex>[/chart]` with the SHA-256 of
 * every segment (JSON-encoded). The shapes differ in their number of segments (5 or 6 readable, 4
 * or 5 hashed; the second or third segment is the kind), so no readable place equals a hashed one,
 * nor one of the scheme before it (`<namespace>/<component>/<name>-<provider>`: 3 segments).
 */
export function snapshotRepository(p: SnapshotPlace, suffix?: 'chart'): { repository: string } {
  if (!PATH_COMPONENT.test(p.namespace) || p.namespace.length > 63) {
    throw new OciError('INVALID_REFERENCE', `snapshot repository: namespace "${p.namespace}" is not a Kubernetes namespace name`);
  }
  if (p.kind !== 'Source' && p.kind !== 'Action') throw new OciError('INVALID_REFERENCE', `snapshot repository: producer kind "${p.kind}" is neither Source nor Action`);
  const kind = p.kind.toLowerCase();
  const tail = suffix ? `/${suffix}` : '';
  const readable = `${p.namespace}/${p.component}/${kind}/${p.name}/${p.provider}${tail}`;
  if ([p.component, p.name, p.provider].every((x) => PATH_COMPONENT.test(x)) && readable.length <= MAX_REPOSITORY) return { repository: readable };
  const hash = createHash('sha256').update(JSON.stringify([p.namespace, p.component, p.kind, p.name, p.provider])).digest('hex');
  return { repository: `${p.namespace}/${kind}/sha256/${hash}${tail}` };
}

/**
 * The namespace a snapshot repository belongs to, for the registry's garbage collector: any place
 * `snapshotRepository` gives, or one of the scheme before it (`<ns>/<component>/<producer>`).
 */
export function snapshotRepositoryNamespace(repository: string): string | undefined {
  const s = repository.split('/');
  const kind = (x: string | undefined) => x === 'source' || x === 'action';
  const hashed = kind(s[1]) && s[2] === 'sha256' && /^[a-f0-9]{64}$/.test(s[3] ?? '');
  const ok =
    s.length === 3 || // the scheme before: <ns>/<component>/<name>-<provider>
    (s.length === 5 && kind(s[2])) ||
    (s.length === 6 && kind(s[2]) && s[5] === 'chart') ||
    (s.length === 4 && hashed) ||
    (s.length === 5 && hashed && s[4] === 'chart');
  return ok ? s[0] : undefined;
}

export async function pushSnapshot(
  client: OciClient,
  opts: SnapshotPlace & { registry: string; timestamp?: number; tgz: Buffer | { file: string; digest: string; size: number }; annotations?: Record<string, string> },
): Promise<{ repository: string; tag: string; digest: string; layerDigest: string; size: number; ref: string }> {
  const registry = opts.registry.replace(/^oci:\/\//, '').replace(/\/+$/, '');
  const { repository } = snapshotRepository(opts);
  const timestamp = opts.timestamp ?? Math.floor(Date.now() / 1000);
  const tag = String(timestamp);
  const base = parseReference(`${registry}/${repository}`);
  const tgz = opts.tgz;
  const layer = Buffer.isBuffer(tgz) ? await client.pushBlob(base, tgz) : await client.pushBlob(base, () => createReadStream(tgz.file), tgz.digest, tgz.size);
  const configBody = Buffer.from(JSON.stringify({ schemaVersion: 1, namespace: opts.namespace, component: opts.component, kind: opts.kind, name: opts.name, provider: opts.provider }));
  const config = await client.pushBlob(base, configBody);
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: SNAPSHOT_CONFIG_MEDIA_TYPE, digest: config.digest, size: config.size },
    layers: [{ mediaType: SNAPSHOT_LAYER_MEDIA_TYPE, digest: layer.digest, size: layer.size, annotations: { 'org.opencontainers.image.title': SNAPSHOT_LAYER_TITLE } }],
    annotations: { 'org.opencontainers.image.created': new Date(timestamp * 1000).toISOString(), ...opts.annotations },
  };
  const { digest } = await client.putManifest({ ...base, tag }, manifest, MEDIA_TYPES.ociManifest);
  return { repository, tag, digest, layerDigest: layer.digest, size: layer.size, ref: `${base.host}/${repository}@${digest}` };
}

/**
 * The snapshot's tar.gz, verified; `expectedDigest` may be the manifest's or the layer's digest.
 * Inside a reconcile its size is leased from the in-memory budget before it is read.
 */
export async function pullSnapshot(client: OciClient, ref: string, opts: { expectedDigest?: string } = {}): Promise<Buffer> {
  const m = await client.getManifest(ref, [MEDIA_TYPES.ociManifest]);
  const config = m.manifest?.config;
  const layer = Array.isArray(m.manifest?.layers) ? m.manifest.layers.find((l: any) => l?.mediaType === SNAPSHOT_LAYER_MEDIA_TYPE) : undefined;
  if (config?.mediaType !== SNAPSHOT_CONFIG_MEDIA_TYPE || !layer || typeof layer.digest !== 'string' || !Number.isSafeInteger(layer.size)) {
    throw new OciError('NOT_A_SNAPSHOT', `${ref}: not a snapshot (config ${config?.mediaType ?? 'missing'}, no ${SNAPSHOT_LAYER_MEDIA_TYPE} layer)`);
  }
  if (opts.expectedDigest && opts.expectedDigest !== m.digest && opts.expectedDigest !== layer.digest) {
    throw new OciError('DIGEST_MISMATCH', `${ref}: manifest ${m.digest} / layer ${layer.digest}, expected ${opts.expectedDigest}`);
  }
  const tgz = await client.getBlobBuffer(ref, layer.digest, layer.size, { size: layer.size }); // leased by the client
  if (tgz.length !== layer.size) throw new OciError('SIZE_MISMATCH', `${ref}: layer is ${tgz.length} bytes, manifest says ${layer.size}`);
  return tgz;
}

const RATIO_FLOOR = 1 << 20; // the ratio limit applies once this much is inflated
const SMALL_ARCHIVE = 64 << 10; // compressed size up to which an archive is inflated in one call
/** zlib's output pieces when inflating: 64 KiB, a quarter of the buffers (and callbacks) of its default 16 KiB. */
const INFLATE_CHUNK = 64 << 10;

export interface ExtractLimits {
  maxBytes?: number;
  maxEntries?: number;
  maxRatio?: number;
  /** Inflate through a zlib stream also when the archive is small (nothing held but the entries). */
  stream?: boolean;
}

type Entry = { rel: string; type: 'file' | 'directory'; mode: number; size: number; stream: Readable };

/** Reads the archive (a tar.gz, or a plain tar), checking every entry and the limits; `visit` sees only entries that passed. */
async function readArchive(tgz: Buffer, limits: ExtractLimits, visit: (e: Entry) => Promise<void>): Promise<{ bytes: number }> {
  const maxBytes = limits.maxBytes ?? 1 << 30;
  const maxEntries = limits.maxEntries ?? MAX_SNAPSHOT_ENTRIES;
  const maxRatio = limits.maxRatio ?? 200;
  const fail = (code: string, msg: string) => new OciError(code, `snapshot archive: ${msg}`);
  /** The error for `n` bytes inflated so far, if that is past a limit. */
  const overLimit = (n: number) =>
    n > maxBytes
      ? fail('ARCHIVE_TOO_LARGE', `more than ${maxBytes} bytes uncompressed`)
      : n > RATIO_FLOOR && n / tgz.length > maxRatio
        ? fail('ARCHIVE_TOO_LARGE', `compression ratio above ${maxRatio}:1 (a gzip bomb?)`)
        : undefined;
  let inflated = 0;
  const meter = new Transform({
    transform(c: Buffer, _e, cb) {
      inflated += c.length;
      const err = overLimit(inflated);
      if (err) cb(err);
      else cb(null, c);
    },
  });
  const extract = tar.extract();
  let feeding: Promise<void>;
  if (!isGzip(tgz)) feeding = pipeline(Readable.from([tgz], { objectMode: false }), meter, extract);
  else if (tgz.length <= SMALL_ARCHIVE && !limits.stream) {
    // A small archive is inflated in one call (bounded by the same limits) instead of a zlib stream.
    const limit = Math.min(maxBytes, Math.max(RATIO_FLOOR, tgz.length * maxRatio));
    let tarBytes: Buffer;
    try {
      tarBytes = zlib.gunzipSync(tgz, { maxOutputLength: limit + 1 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') throw fail('INVALID_ARCHIVE', (e as Error).message);
      throw overLimit(limit + 1)!;
    }
    const err = overLimit(tarBytes.length);
    if (err) throw err;
    feeding = pipeline(Readable.from([tarBytes], { objectMode: false }), extract);
  } else feeding = pipeline(Readable.from([tgz], { objectMode: false }), zlib.createGunzip({ chunkSize: INFLATE_CHUNK }), meter, extract);
  feeding.catch(() => {}); // awaited below
  const seen = new Set<string>();
  const files = new Set<string>();
  const dirs = new Set<string>();
  let entries = 0;
  let total = 0;
  let dirChars = 0;
  try {
    for await (const entry of extract) {
      const h = entry.header;
      if (++entries > maxEntries) throw fail('ARCHIVE_TOO_LARGE', `more than ${maxEntries} entries`);
      if (entries % BATCH === 0) await breather();
      if (Buffer.byteLength(h.name) > MAX_PATH_BYTES) throw fail('UNSAFE_ARCHIVE', `an entry path is longer than ${MAX_PATH_BYTES} bytes`);
      if (h.type !== 'file' && h.type !== 'contiguous-file' && h.type !== 'directory') {
        throw fail('UNSAFE_ARCHIVE', `entry "${h.name}" is a ${h.type}${h.linkname ? ` to "${h.linkname}"` : ''}; only regular files and directories are allowed`);
      }
      let rel: string;
      try {
        rel = cleanPath(h.name, 'entry');
      } catch (e) {
        throw fail('UNSAFE_ARCHIVE', (e as Error).message);
      }
      if (!rel && h.type !== 'directory') throw fail('UNSAFE_ARCHIVE', `entry "${h.name}" has an empty path`);
      if (rel && seen.has(rel)) throw fail('UNSAFE_ARCHIVE', `entry "${rel}" appears twice`);
      seen.add(rel);
      if (h.type !== 'directory' && dirs.has(rel)) throw fail('UNSAFE_ARCHIVE', `entry "${rel}" is both a file and a directory`);
      // Parents from the deepest up, stopping at one already seen (its own parents were checked then).
      for (let i = rel.lastIndexOf('/'); i > 0; i = rel.lastIndexOf('/', i - 1)) {
        const p = rel.slice(0, i);
        if (dirs.has(p)) break;
        if (files.has(p)) throw fail('UNSAFE_ARCHIVE', `entry "${rel}" is both a file and a directory`);
        if ((dirChars += i) > MAX_DIRECTORY_CHARS) throw fail('ARCHIVE_TOO_LARGE', 'too many nested directories');
        dirs.add(p);
      }
      if (h.type !== 'directory') files.add(rel);
      if (h.type !== 'directory') {
        total += h.size ?? 0;
        if (total > maxBytes) throw fail('ARCHIVE_TOO_LARGE', `entry "${rel}" (${h.size} bytes) takes the content past ${maxBytes} bytes`);
      }
      if (!rel) {
        entry.resume();
        continue;
      }
      await visit({ rel, type: h.type === 'directory' ? 'directory' : 'file', mode: h.mode ?? 0, size: h.size ?? 0, stream: entry as unknown as Readable });
    }
    await feeding;
    return { bytes: total };
  } catch (e) {
    extract.destroy();
    const err = e instanceof OciError ? e : await feeding.then(() => e, (fe) => fe);
    throw err instanceof OciError ? err : fail('INVALID_ARCHIVE', (err as Error).message);
  }
}

/** Smallest lease readSnapshotFiles takes: small entries share one (a lease per tiny file would be 100,000 of them). */
const LEASE_STEP = 64 << 10;

/**
 * The snapshot's files in memory (path -> content, in archive order), with the same checks and
 * limits as extractSnapshot and nothing written to disk. Inflated once: each entry's size (from its
 * header, checked against the limits) is leased from the in-memory budget (inside a reconcile,
 * registry/memory-budget.ts) before its content is held, in leases of at least 64 KiB, so at most
 * 64 KiB more than the content. (Before, a first pass inflated the whole archive to measure it and a
 * second inflated it again: twice the zlib work and its buffers, issue 15.)
 */
export async function readSnapshotFiles(tgz: Buffer, limits: ExtractLimits = {}): Promise<Record<string, Buffer>> {
  limits = { ...limits, stream: true, maxBytes: Math.min(limits.maxBytes ?? MAX_ARCHIVE_IN_MEMORY_BYTES, MAX_ARCHIVE_IN_MEMORY_BYTES) };
  const out: Record<string, Buffer> = {};
  let leased = 0;
  let held = 0;
  await readArchive(tgz, limits, async ({ rel, type, size, stream }) => {
    if (type === 'directory') return void stream.resume();
    if (held + size > leased) {
      const n = Math.max(held + size - leased, LEASE_STEP);
      await leaseMemory(n);
      leased += n;
    }
    held += size;
    // One buffer of the entry's size, filled as it streams (not its pieces and then a copy of them).
    const content = Buffer.allocUnsafe(size);
    let at = 0;
    for await (const c of stream as AsyncIterable<Buffer>) {
      if (at + c.length > size) throw new OciError('INVALID_ARCHIVE', `snapshot archive: entry "${rel}" holds more than the ${size} bytes its header says`);
      at += c.copy(content, at);
    }
    if (at !== size) throw new OciError('INVALID_ARCHIVE', `snapshot archive: entry "${rel}" holds ${at} bytes, its header says ${size}`);
    out[rel] = content;
  });
  return out;
}

/**
 * Extracts a snapshot into targetDir (created if missing). A first pass checks the whole archive
 * without writing: only regular files and directories, no absolute paths, no `..`, no duplicates,
 * and the limits (defaults: 1 GiB uncompressed, 100,000 entries, compression ratio 200:1). The
 * second pass writes, never through an existing symlink and never over an existing file; when it
 * fails, what it created is removed again.
 */
export async function extractSnapshot(tgz: Buffer, targetDir: string, limits: ExtractLimits = {}): Promise<{ files: string[] }> {
  await readArchive(tgz, limits, async (e) => void e.stream.resume());
  await fsp.mkdir(targetDir, { recursive: true });
  const root = await fsp.realpath(targetDir);
  const created: { path: string; dir: boolean }[] = [];
  const knownDirs = new Set<string>([root]);
  const files: string[] = [];
  const fail = (msg: string) => new OciError('UNSAFE_ARCHIVE', `snapshot archive: ${msg}`);

  const ensureDir = async (abs: string): Promise<void> => {
    if (knownDirs.has(abs)) return;
    await ensureDir(path.dirname(abs));
    const st = await fsp.lstat(abs).catch(() => undefined);
    if (!st) {
      await fsp.mkdir(abs, { mode: 0o755 });
      created.push({ path: abs, dir: true });
    } else if (!st.isDirectory()) {
      throw fail(`"${path.relative(root, abs)}" exists and is not a directory`);
    }
    knownDirs.add(abs);
  };

  try {
    await readArchive(tgz, limits, async ({ rel, type, mode, stream }) => {
      const abs = path.join(root, rel);
      if (!abs.startsWith(root + path.sep)) throw fail(`entry "${rel}" escapes the target directory`);
      if (type === 'directory') {
        stream.resume();
        return ensureDir(abs);
      }
      await ensureDir(path.dirname(abs));
      let out;
      try {
        out = await fsp.open(abs, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode & 0o111 ? 0o755 : 0o644);
      } catch (e) {
        stream.resume();
        const code = (e as NodeJS.ErrnoException).code;
        throw fail(`cannot create "${rel}": ${code === 'EEXIST' ? 'it already exists' : (e as Error).message}`);
      }
      created.push({ path: abs, dir: false });
      await pipeline(stream, out.createWriteStream());
      files.push(rel);
    });
  } catch (e) {
    for (const c of created.reverse()) await (c.dir ? fsp.rmdir(c.path) : fsp.unlink(c.path)).catch(() => {});
    throw e;
  }
  return { files };
}
