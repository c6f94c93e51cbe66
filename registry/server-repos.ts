// Per-repository links under <dataDir>/repositories/<name>/ (every file written by temp + rename):
//   _blobs/<hex>                      empty: the blob belongs to this repository
//   _manifests/revisions/<hex>        ManifestMeta JSON: the manifest belongs to this repository
//   _manifests/tags/<tag>             the digest the tag points at
//   _referrers/<subject hex>/<hex>    the referrer's descriptor
// Repository path components never start with "_", so these never clash with nested repositories.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { BlobStore } from './blobstore.js';

export const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
export const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
export const MAX_NAME = 255;

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
  urls?: string[];
}

export interface ManifestMeta {
  mediaType: string;
  size: number;
  subject?: string;
  artifactType?: string;
  annotations?: Record<string, string>;
  /** Digests of the config and layers (image manifests). */
  blobs: string[];
  /** Digests of the child manifests (indexes). */
  manifests: string[];
}

const readdir = (dir: string) => fsp.readdir(dir).catch(() => [] as string[]);
const exists = (p: string) =>
  fsp.access(p).then(
    () => true,
    () => false,
  );
const unlink = (p: string) =>
  fsp.unlink(p).then(
    () => true,
    () => false,
  );

export class Repos {
  readonly root: string;
  constructor(
    dataDir: string,
    private readonly store: BlobStore,
  ) {
    this.root = path.join(dataDir, 'repositories');
  }

  async init() {
    await fsp.mkdir(this.root, { recursive: true });
  }

  private dir(repo: string, ...rest: string[]) {
    return path.join(this.root, ...repo.split('/'), ...rest);
  }

  exists(repo: string): Promise<boolean> {
    return exists(this.dir(repo, '_manifests')).then((m) => m || exists(this.dir(repo, '_blobs')));
  }

  /** All repositories, sorted. */
  async list(): Promise<string[]> {
    const out: string[] = [];
    const walk = async (rel: string) => {
      const entries = await fsp.readdir(path.join(this.root, rel), { withFileTypes: true }).catch(() => []);
      if (rel && entries.some((e) => e.name === '_manifests' || e.name === '_blobs')) out.push(rel);
      for (const e of entries) if (e.isDirectory() && !e.name.startsWith('_')) await walk(rel ? `${rel}/${e.name}` : e.name);
    };
    await walk('');
    return out.sort();
  }

  hasBlob(repo: string, hex: string) {
    return exists(this.dir(repo, '_blobs', hex));
  }
  linkBlob(repo: string, hex: string) {
    return this.store.writeAtomic(this.dir(repo, '_blobs', hex), '');
  }
  unlinkBlob(repo: string, hex: string) {
    return unlink(this.dir(repo, '_blobs', hex));
  }
  async blobLinks(repo: string): Promise<string[]> {
    return readdir(this.dir(repo, '_blobs'));
  }

  async getRevision(repo: string, hex: string): Promise<ManifestMeta | undefined> {
    const s = await fsp.readFile(this.dir(repo, '_manifests', 'revisions', hex), 'utf8').catch(() => undefined);
    return s === undefined ? undefined : (JSON.parse(s) as ManifestMeta);
  }
  putRevision(repo: string, hex: string, meta: ManifestMeta) {
    return this.store.writeAtomic(this.dir(repo, '_manifests', 'revisions', hex), JSON.stringify(meta));
  }
  async revisions(repo: string): Promise<{ hex: string; meta: ManifestMeta; mtimeMs: number }[]> {
    const out = [];
    for (const hex of await readdir(this.dir(repo, '_manifests', 'revisions'))) {
      const file = this.dir(repo, '_manifests', 'revisions', hex);
      const st = await fsp.stat(file).catch(() => undefined);
      const meta = await this.getRevision(repo, hex).catch(() => undefined);
      if (st && meta) out.push({ hex, meta, mtimeMs: st.mtimeMs });
    }
    return out;
  }
  /** Removes a manifest from the repository with its tags and its referrer entry. */
  async deleteRevision(repo: string, hex: string): Promise<boolean> {
    const meta = await this.getRevision(repo, hex);
    if (!meta) return false;
    for (const tag of await this.tags(repo)) if ((await this.resolveTag(repo, tag)) === `sha256:${hex}`) await this.deleteTag(repo, tag);
    if (meta.subject) await unlink(this.dir(repo, '_referrers', meta.subject.slice(7), hex));
    return unlink(this.dir(repo, '_manifests', 'revisions', hex));
  }

  async resolveTag(repo: string, tag: string): Promise<string | undefined> {
    return fsp.readFile(this.dir(repo, '_manifests', 'tags', tag), 'utf8').catch(() => undefined);
  }
  /** When the tag was last written; undefined when there is no such tag. */
  async tagWrittenMs(repo: string, tag: string): Promise<number | undefined> {
    return (await fsp.stat(this.dir(repo, '_manifests', 'tags', tag)).catch(() => undefined))?.mtimeMs;
  }
  putTag(repo: string, tag: string, digest: string) {
    return this.store.writeAtomic(this.dir(repo, '_manifests', 'tags', tag), digest);
  }
  deleteTag(repo: string, tag: string) {
    return unlink(this.dir(repo, '_manifests', 'tags', tag));
  }
  /** Tags in lexical (code point) order. */
  async tags(repo: string): Promise<string[]> {
    return (await readdir(this.dir(repo, '_manifests', 'tags'))).filter((t) => TAG_RE.test(t)).sort();
  }

  putReferrer(repo: string, subjectHex: string, hex: string, desc: Descriptor) {
    return this.store.writeAtomic(this.dir(repo, '_referrers', subjectHex, hex), JSON.stringify(desc));
  }
  async referrers(repo: string, subjectHex: string): Promise<Descriptor[]> {
    const dir = this.dir(repo, '_referrers', subjectHex);
    const out: Descriptor[] = [];
    for (const f of (await readdir(dir)).sort()) {
      const s = await fsp.readFile(path.join(dir, f), 'utf8').catch(() => undefined);
      if (s !== undefined) out.push(JSON.parse(s) as Descriptor);
    }
    return out;
  }
}
