// Per-namespace limits of the snapshot registry (issue 15): one tenant's repositories cannot take
// the disk, the upload slots or the file count from the others. Repository `<ns>/...` belongs to
// namespace <ns>; names without a `/` share one bucket ("").
//  - bytes: every blob link and every manifest of the namespace's repositories at its size (a blob
//    linked into two repositories counts twice, as a project quota counts it once per project),
//    plus the bytes of its open uploads, taken as they stream in: an upload that would go past the
//    quota is cut there and its data deleted.
//  - files: blob links, manifests, tags and referrer entries (each one a file on disk).
//  - open upload sessions, per namespace and in all.
// Usage is recomputed from disk at start (Repos.recount), and given back by deletes and GC.
// Over a quota: `403 DENIED` (as Harbor answers its project quotas; docker does not retry it);
// out of upload slots: `429 TOOMANYREQUESTS` with Retry-After; the data disk low: `507`.
import fsp from 'node:fs/promises';
import { repoNamespace } from './server-auth.js';
import { regError } from './server-errors.js';

export interface RegistryLimits {
  /** Bytes one namespace's repositories may hold (links, manifests, open uploads). */
  namespaceBytes: number;
  /** Files (blob links, manifests, tags, referrer entries) one namespace may hold. */
  namespaceFiles: number;
  /** Upload sessions one namespace may hold open. */
  namespaceUploads: number;
  /** Upload sessions open in all. */
  totalUploads: number;
  /** Tags in one repository. */
  tagsPerRepository: number;
  /** Referrers (manifests naming it as their subject) of one manifest in one repository. */
  referrersPerSubject: number;
  /** Writes are refused while the data directory's filesystem has less than this free. */
  minFreeBytes: number;
}

const MiB = 1 << 20;
export const REGISTRY_LIMIT_DEFAULTS: RegistryLimits = {
  namespaceBytes: 2048 * MiB,
  namespaceFiles: 100_000,
  namespaceUploads: 100,
  totalUploads: 10_000,
  tagsPerRepository: 10_000,
  referrersPerSubject: 1000,
  minFreeBytes: 256 * MiB,
};

interface Usage {
  bytes: number;
  files: number;
  uploads: number;
}

export const namespaceOf = (repo: string) => repoNamespace(repo) ?? '';
const mib = (n: number) => `${(n / MiB).toFixed(1)} MiB`;

export class Quota {
  readonly limits: RegistryLimits;
  private readonly usage = new Map<string, Usage>();
  private openUploads = 0;
  /** Free bytes of the data filesystem when last asked, less what was admitted since. */
  private free = Infinity;
  private freeAt = 0;

  constructor(
    private readonly dataDir: string,
    limits: Partial<RegistryLimits> = {},
  ) {
    this.limits = { ...REGISTRY_LIMIT_DEFAULTS, ...limits };
  }

  private of(repo: string): Usage {
    const ns = namespaceOf(repo);
    let u = this.usage.get(ns);
    if (!u) this.usage.set(ns, (u = { bytes: 0, files: 0, uploads: 0 }));
    return u;
  }

  /** What the namespace of `repo` holds now. */
  used(repo: string): Usage {
    return { ...(this.usage.get(namespaceOf(repo)) ?? { bytes: 0, files: 0, uploads: 0 }) };
  }

  private denied(repo: string, what: string, detail: Record<string, unknown>) {
    const namespace = namespaceOf(repo);
    return regError('DENIED', `namespace ${JSON.stringify(namespace)} is over its registry quota: ${what}`, { namespace, ...detail });
  }

  /** Throws DENIED unless `bytes` and `files` more fit into the namespace of `repo`. */
  check(repo: string, bytes: number, files = 0): void {
    const u = this.of(repo);
    const { namespaceBytes, namespaceFiles } = this.limits;
    if (bytes > 0 && u.bytes + bytes > namespaceBytes)
      throw this.denied(repo, `${mib(u.bytes)} stored, ${bytes} bytes more would exceed the limit of ${mib(namespaceBytes)} (--registry-namespace-quota-mib)`, { limit: 'bytes', used: u.bytes, requested: bytes, hard: namespaceBytes });
    if (files > 0 && u.files + files > namespaceFiles)
      throw this.denied(repo, `${u.files} files (blob links, manifests, tags, referrers), the limit is ${namespaceFiles} (--registry-namespace-files)`, { limit: 'files', used: u.files, hard: namespaceFiles });
  }

  /** Takes `bytes` and `files` for the namespace of `repo`, or throws DENIED and takes nothing. */
  take(repo: string, bytes: number, files = 0): void {
    this.check(repo, bytes, files);
    this.add(repo, bytes, files);
  }

  /** Counts without checking (recount at start, a charge already paid for). */
  add(repo: string, bytes: number, files = 0): void {
    const u = this.of(repo);
    u.bytes += bytes;
    u.files += files;
  }

  give(repo: string, bytes: number, files = 0): void {
    const ns = namespaceOf(repo);
    const u = this.usage.get(ns);
    if (!u) return;
    u.bytes = Math.max(0, u.bytes - bytes);
    u.files = Math.max(0, u.files - files);
    if (!u.bytes && !u.files && !u.uploads) this.usage.delete(ns);
  }

  /** Counts an upload session as open; `force`: without the limits (sessions found at start). */
  openUpload(repo: string, force = false): void {
    const u = this.of(repo);
    if (!force) {
      const busy = (message: string, detail: Record<string, unknown>) => regError('TOOMANYREQUESTS', message, detail).withHeader('Retry-After', '60');
      if (u.uploads >= this.limits.namespaceUploads)
        throw busy(`namespace ${JSON.stringify(namespaceOf(repo))} has ${u.uploads} upload sessions open, the limit (--registry-namespace-uploads)`, { namespace: namespaceOf(repo), limit: 'uploads', hard: this.limits.namespaceUploads });
      if (this.openUploads >= this.limits.totalUploads) throw busy('too many open uploads', { limit: 'totalUploads', hard: this.limits.totalUploads });
    }
    u.uploads++;
    this.openUploads++;
  }

  closeUpload(repo: string): void {
    const u = this.of(repo);
    u.uploads = Math.max(0, u.uploads - 1);
    this.openUploads = Math.max(0, this.openUploads - 1);
    this.give(repo, 0);
  }

  /**
   * Throws 507 when writing `bytes` more would leave the data directory's filesystem with less than
   * `minFreeBytes` free (statfs at most once a second; what was admitted since is subtracted).
   */
  async admitDisk(bytes: number): Promise<void> {
    const min = this.limits.minFreeBytes;
    if (min <= 0) return;
    if (Date.now() - this.freeAt > 1000 || this.free - bytes < min) {
      const s = await fsp.statfs(this.dataDir).catch(() => undefined);
      this.freeAt = Date.now();
      this.free = s ? s.bavail * s.bsize : Infinity;
    }
    if (this.free - bytes < min)
      throw regError('UNKNOWN', `insufficient storage: the registry's disk has ${mib(Math.max(0, this.free))} free, writes stop below ${mib(min)} (--registry-min-free-mib)`, { free: this.free, min }, 507);
    this.free -= bytes;
  }
}
