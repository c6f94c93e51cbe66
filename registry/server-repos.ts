// Per-repository links under <dataDir>/repositories/<name>/ (every file written by temp + rename):
//   _blobs/<hex>                      the blob belongs to this repository; its size (empty before quotas)
//   _manifests/revisions/<hex>        ManifestMeta JSON: the manifest belongs to this repository
//   _manifests/tags/<tag>             the digest the tag points at
//   _referrers/<subject hex>/<hex>    the referrer's descriptor
// Repository path components never start with "_", so these never clash with nested repositories.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { BlobStore } from './blobstore.js';
import { regError } from './server-errors.js';
import type { Quota } from './server-quota.js';

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

/** Every write and delete is counted in `quota` (server-quota.ts): bytes of links and manifests,
 * one file each for a link, a manifest, a tag, a referrer entry. */
export class Repos {
  readonly root: string;
  private readonly quota: Quota;
  constructor(
    dataDir: string,
    private readonly store: BlobStore,
  ) {
    this.root = path.join(dataDir, 'repositories');
    this.quota = store.quota;
  }

  /** Settles when every namespace's usage has been counted from disk (writes wait for it). */
  counted: Promise<void> = Promise.resolve();

  /** Starts counting in the background: pulls are served meanwhile, writes wait (`counted`). */
  async init() {
    await fsp.mkdir(this.root, { recursive: true });
    this.counted = this.recount();
    this.counted.catch(() => {}); // reported to each write that waits for it
  }

  /** Counts what every namespace holds, from disk (at start). A link from before quotas (empty)
   * gets its blob's size written into it, so that its delete gives back what was counted. */
  private async recount() {
    for (const repo of await this.list()) {
      const link = async (hex: string) => {
        const file = this.dir(repo, '_blobs', hex);
        const s = await fsp.readFile(file, 'utf8').catch(() => undefined);
        if (s === undefined) return;
        let size = /^\d+$/.test(s) ? Number(s) : undefined;
        if (size === undefined) {
          size = (await this.store.stat(hex))?.size ?? 0;
          await this.store.writeAtomic(file, String(size)).catch(() => {});
        }
        this.quota.add(repo, size, 1);
      };
      // 256 reads at a time: 100,000 links one after the other took 11-30 s of the start.
      const hexes = await this.blobLinks(repo);
      for (let i = 0; i < hexes.length; i += 256) await Promise.all(hexes.slice(i, i + 256).map(link));
      for (const hex of await readdir(this.dir(repo, '_manifests', 'revisions'))) {
        const meta = await this.getRevision(repo, hex).catch(() => undefined);
        if (meta) this.quota.add(repo, meta.size, 1);
      }
      this.quota.add(repo, 0, (await this.tags(repo)).length);
      for (const subject of await readdir(this.dir(repo, '_referrers'))) this.quota.add(repo, 0, (await readdir(this.dir(repo, '_referrers', subject))).length);
    }
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
  /**
   * Links a blob of `size` bytes into the repository, taking its size and a file from the quota
   * (DENIED when they do not fit); `paid`: the bytes were taken as they streamed in. Whatever turns
   * out not to be needed (the link was there already) or fails is given back.
   */
  async linkBlob(repo: string, hex: string, size: number, paid = false): Promise<void> {
    try {
      this.quota.take(repo, paid ? 0 : size, 1);
    } catch (e) {
      if (paid) this.quota.give(repo, size);
      throw e;
    }
    let created = false;
    try {
      created = await this.store.writeAtomic(this.dir(repo, '_blobs', hex), String(size));
    } finally {
      if (!created) this.quota.give(repo, size, 1);
    }
  }
  async unlinkBlob(repo: string, hex: string): Promise<boolean> {
    const file = this.dir(repo, '_blobs', hex);
    const s = await fsp.readFile(file, 'utf8').catch(() => undefined);
    if (!(await unlink(file))) return false;
    this.quota.give(repo, s && /^\d+$/.test(s) ? Number(s) : 0, 1);
    return true;
  }
  async blobLinks(repo: string): Promise<string[]> {
    return readdir(this.dir(repo, '_blobs'));
  }

  /** The size of a revision's file; undefined when there is none. */
  async revisionBytes(repo: string, hex: string): Promise<number | undefined> {
    return (await fsp.stat(this.dir(repo, '_manifests', 'revisions', hex)).catch(() => undefined))?.size;
  }
  async getRevision(repo: string, hex: string): Promise<ManifestMeta | undefined> {
    const s = await fsp.readFile(this.dir(repo, '_manifests', 'revisions', hex), 'utf8').catch(() => undefined);
    return s === undefined ? undefined : (JSON.parse(s) as ManifestMeta);
  }
  /** Stores a manifest's metadata, counting its size and a file (DENIED when they do not fit). */
  async putRevision(repo: string, hex: string, meta: ManifestMeta): Promise<void> {
    this.quota.take(repo, meta.size, 1);
    let created = false;
    try {
      created = await this.store.writeAtomic(this.dir(repo, '_manifests', 'revisions', hex), JSON.stringify(meta));
    } finally {
      if (!created) this.quota.give(repo, meta.size, 1);
    }
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
    if (meta.subject && (await unlink(this.dir(repo, '_referrers', meta.subject.slice(7), hex)))) this.quota.give(repo, 0, 1);
    if (!(await unlink(this.dir(repo, '_manifests', 'revisions', hex)))) return false;
    this.quota.give(repo, meta.size, 1);
    return true;
  }

  async resolveTag(repo: string, tag: string): Promise<string | undefined> {
    return fsp.readFile(this.dir(repo, '_manifests', 'tags', tag), 'utf8').catch(() => undefined);
  }
  /** When the tag was last written; undefined when there is no such tag. */
  async tagWrittenMs(repo: string, tag: string): Promise<number | undefined> {
    return (await fsp.stat(this.dir(repo, '_manifests', 'tags', tag)).catch(() => undefined))?.mtimeMs;
  }
  /** Points a tag at a digest; a new tag is a file of the quota and one of at most
   * `tagsPerRepository` (DENIED past either). */
  async putTag(repo: string, tag: string, digest: string): Promise<void> {
    const file = this.dir(repo, '_manifests', 'tags', tag);
    await this.roomForTag(repo, tag);
    this.quota.take(repo, 0, 1);
    let created = false;
    try {
      created = await this.store.writeAtomic(file, digest);
    } finally {
      if (!created) this.quota.give(repo, 0, 1);
    }
  }
  async deleteTag(repo: string, tag: string): Promise<boolean> {
    if (!(await unlink(this.dir(repo, '_manifests', 'tags', tag)))) return false;
    this.quota.give(repo, 0, 1);
    return true;
  }

  /** DENIED when a new tag would be one too many for the repository. */
  async roomForTag(repo: string, tag: string): Promise<void> {
    if (!(await exists(this.dir(repo, '_manifests', 'tags', tag))))
      await this.checkRoom(this.dir(repo, '_manifests', 'tags'), this.quota.limits.tagsPerRepository, 'tags in the repository', { repository: repo });
  }
  /** DENIED when a new referrer would be one too many for its subject. */
  async roomForReferrer(repo: string, subjectHex: string, hex: string): Promise<void> {
    const dir = this.dir(repo, '_referrers', subjectHex);
    if (!(await exists(path.join(dir, hex)))) await this.checkRoom(dir, this.quota.limits.referrersPerSubject, 'referrers of the manifest', { repository: repo, subject: `sha256:${subjectHex}` });
  }

  /** DENIED when `dir` holds `limit` entries already. */
  private async checkRoom(dir: string, limit: number, what: string, detail: Record<string, unknown>) {
    const n = (await readdir(dir)).length;
    if (n >= limit) throw regError('DENIED', `${n} ${what}, the limit`, { ...detail, limit: what, hard: limit });
  }
  /** Tags in lexical (code point) order. */
  async tags(repo: string): Promise<string[]> {
    return (await readdir(this.dir(repo, '_manifests', 'tags'))).filter((t) => TAG_RE.test(t)).sort();
  }

  /** Records a referrer of a subject: a file of the quota, one of at most `referrersPerSubject`. */
  async putReferrer(repo: string, subjectHex: string, hex: string, desc: Descriptor): Promise<void> {
    const dir = this.dir(repo, '_referrers', subjectHex);
    await this.roomForReferrer(repo, subjectHex, hex);
    this.quota.take(repo, 0, 1);
    let created = false;
    try {
      created = await this.store.writeAtomic(path.join(dir, hex), JSON.stringify(desc));
    } finally {
      if (!created) this.quota.give(repo, 0, 1);
    }
  }
  /** Referrers of a subject in digest order after `last`, as many as fit `maxBytes` of JSON (at
   * least one); `next`: where the next page starts, when there is one. */
  async referrers(repo: string, subjectHex: string, last?: string, maxBytes = Infinity): Promise<{ manifests: Descriptor[]; next?: string }> {
    const dir = this.dir(repo, '_referrers', subjectHex);
    const manifests: Descriptor[] = [];
    let bytes = 0;
    for (const f of (await readdir(dir)).sort()) {
      if (last !== undefined && f <= last) continue;
      const s = await fsp.readFile(path.join(dir, f), 'utf8').catch(() => undefined);
      if (s === undefined) continue;
      if (manifests.length && bytes + s.length > maxBytes) return { manifests, next: manifests[manifests.length - 1].digest.slice(7) };
      bytes += s.length + 1;
      manifests.push(JSON.parse(s) as Descriptor);
    }
    return { manifests };
  }
}
