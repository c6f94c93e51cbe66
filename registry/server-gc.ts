// Garbage collection: old tags, then unreachable manifests, then unreferenced blobs (mark and sweep).
import fsp from 'node:fs/promises';
import type { BlobStore } from './blobstore.js';
import { snapshotRepositoryNamespace } from './snapshot.js';
import type { Repos } from './server-repos.js';

export interface GcOptions {
  /** Tags to keep per repository (newest first); unset: no tag is deleted. */
  keepTags?: number;
  /** Which tags are subject to `keepTags` (default: all). */
  tagFilter?: (repo: string, tag: string) => boolean;
  /** Blobs and manifests written less than this long ago are never collected (default 1 hour). */
  graceMs?: number;
  /**
   * The namespaces that exist. Snapshot repositories (`snapshotRepositoryNamespace`) of any
   * other namespace lose all their tags that `tagFilter` selects, once older than the grace period:
   * a deleted pipeline's snapshots go with it. Unset: no such sweep.
   */
  namespaces?: string[];
}

export interface GcResult {
  blobsDeleted: number;
  manifestsDeleted: number;
  bytesFreed: number;
}

const DEFAULT_GRACE_MS = 60 * 60 * 1000;
const UPLOAD_TTL_MS = 24 * 60 * 60 * 1000;

/** Lets writers run concurrently with each other but never with a GC run. */
export class WriteGate {
  private active = 0;
  private gcRun?: Promise<void>;
  private idle?: () => void;

  async run<T>(fn: () => Promise<T>): Promise<T> {
    while (this.gcRun) await this.gcRun;
    this.active++;
    try {
      return await fn();
    } finally {
      if (--this.active === 0) this.idle?.();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.gcRun) await this.gcRun;
    let release!: () => void;
    this.gcRun = new Promise((r) => (release = r));
    try {
      if (this.active > 0) await new Promise<void>((r) => (this.idle = r));
      this.idle = undefined;
      return await fn();
    } finally {
      this.gcRun = undefined;
      release();
    }
  }
}

/** Oldest first: numerically when every tag is a number (unix timestamps), else lexically. */
export function sortTags(tags: string[]): string[] {
  const numeric = tags.every((t) => /^\d+$/.test(t));
  return [...tags].sort(numeric ? (a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0) : undefined);
}

export async function collectGarbage(store: BlobStore, repos: Repos, opts: GcOptions = {}): Promise<GcResult> {
  const cutoff = Date.now() - (opts.graceMs ?? DEFAULT_GRACE_MS);
  const res: GcResult = { blobsDeleted: 0, manifestsDeleted: 0, bytesFreed: 0 };
  const marked = new Set<string>();
  const repoList = await repos.list();

  const namespaces = opts.namespaces && new Set(opts.namespaces);
  for (const repo of repoList) {
    const ns = snapshotRepositoryNamespace(repo);
    if (namespaces && ns !== undefined && !namespaces.has(ns)) {
      for (const t of await repos.tags(repo)) if ((opts.tagFilter?.(repo, t) ?? true) && ((await repos.tagWrittenMs(repo, t)) ?? Infinity) <= cutoff) await repos.deleteTag(repo, t);
    } else if (opts.keepTags !== undefined) {
      const subject = (await repos.tags(repo)).filter((t) => opts.tagFilter?.(repo, t) ?? true);
      for (const t of sortTags(subject).slice(0, Math.max(0, subject.length - opts.keepTags))) await repos.deleteTag(repo, t);
    }

    // Live manifests: tagged or recent, and everything an index or a referrer relation reaches from them.
    const revs = new Map((await repos.revisions(repo)).map((r) => [r.hex, r]));
    const referrersOf = new Map<string, string[]>();
    for (const r of revs.values()) {
      if (!r.meta.subject) continue;
      const s = r.meta.subject.slice(7);
      referrersOf.set(s, [...(referrersOf.get(s) ?? []), r.hex]);
    }
    const live = new Set<string>();
    const work: string[] = [];
    const keep = (hex: string) => {
      if (!revs.has(hex) || live.has(hex)) return;
      live.add(hex);
      work.push(hex);
    };
    for (const t of await repos.tags(repo)) {
      const d = await repos.resolveTag(repo, t);
      if (d) keep(d.slice(7));
    }
    for (const r of revs.values()) if (r.mtimeMs > cutoff) keep(r.hex);
    while (work.length) {
      const hex = work.pop()!;
      for (const m of revs.get(hex)!.meta.manifests) keep(m.slice(7));
      for (const ref of referrersOf.get(hex) ?? []) keep(ref);
    }

    for (const r of revs.values()) {
      if (live.has(r.hex)) {
        marked.add(r.hex);
        for (const d of [...r.meta.blobs, ...r.meta.manifests]) marked.add(d.slice(7));
      } else if (await repos.deleteRevision(repo, r.hex)) res.manifestsDeleted++;
    }
  }

  for (const hex of await store.listBlobs()) {
    if (marked.has(hex)) continue;
    const st = await store.stat(hex);
    if (!st || st.mtimeMs > cutoff) continue;
    await fsp.unlink(store.blobPath(hex));
    res.blobsDeleted++;
    res.bytesFreed += st.size;
  }
  for (const repo of repoList)
    for (const hex of await repos.blobLinks(repo)) if (!marked.has(hex) && !(await store.stat(hex))) await repos.unlinkBlob(repo, hex);

  await store.expireUploads(UPLOAD_TTL_MS);
  return res;
}
