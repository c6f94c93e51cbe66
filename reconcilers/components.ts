// The verified component version behind a Ready OCMComponent, for Sources and Actions: the
// repository it came from and its descriptor and manifest (cached briefly per version).
import type { KubeObject } from '../kinds/types.js';
import type { ComponentVersion, OcmRepository } from '../ocm/repository.js';
import { verifyRules } from '../kinds/ocmcomponent.js';
import { getObject, ocmRepositoryFor, type ReconcilerContext, resourceOf } from './context.js';
import { stalled, toReconcileError } from './runtime/errors.js';
import { condition, isReady } from './runtime/status.js';
import { createHash } from 'node:crypto';
import { BudgetCache, heldMemory, leaseMemory, memoryBudget } from '../registry/memory-budget.js';

const TTL_MS = 60_000;
// Component versions read lately, counted in the in-memory budget (registry/memory-budget.ts), 64
// MiB at most; a reconcile that takes one leases it too. Reads under way are shared meanwhile.
const cache = new BudgetCache<ComponentVersion>(64 << 20, memoryBudget, TTL_MS);
const reading = new Map<string, Promise<ComponentVersion>>();

export interface ReadyComponent {
  component: KubeObject;
  /** Namespace of the Source or Action that uses it: Secrets are read there, never in the component's. */
  for: string;
  name: string;
  version: string;
  /** The manifest the OCMComponent verified: the component version is read by this digest. */
  manifestDigest?: string;
}

/**
 * The OCMComponent a Source or Action names; a Stalled ReconcileError unless it is Ready, and,
 * when its spec.verify asks for verification, verified (ComponentNotVerified otherwise).
 */
export async function readyComponent(ctx: ReconcilerContext, ref: { name: string; namespace?: string }, namespace: string): Promise<ReadyComponent> {
  const ns = ref.namespace || namespace;
  if (ns !== namespace && !ctx.tenancy?.allowCrossNamespaceRefs)
    throw stalled('CrossNamespaceRefNotAllowed', `spec.componentRef names OCMComponent ${ns}/${ref.name} in another namespace; the server allows that only with --allow-cross-namespace-refs`);
  const component = await getObject(ctx, resourceOf(ctx, 'OCMComponent'), ns, ref.name);
  if (!component) throw stalled('ComponentNotFound', `OCMComponent ${ns}/${ref.name} not found`);
  const st = (component.status ?? {}) as { verified?: boolean; resolvedVersion?: string; manifestDigest?: string };
  if (verifyRules((component.spec as { verify?: unknown }).verify).length && st.verified !== true) {
    const v = condition(component, 'Verified') ?? condition(component);
    throw stalled('ComponentNotVerified', `OCMComponent ${ns}/${ref.name} asks for verification and is not verified${v ? `: ${v.message}` : ''}`);
  }
  if (!isReady(component) || !st.resolvedVersion) {
    const c = condition(component);
    throw stalled('ComponentNotReady', `OCMComponent ${ns}/${ref.name} is not ready${c ? `: ${c.message}` : ''}`);
  }
  return { component, for: namespace, name: (component.spec as { name: string }).name, version: st.resolvedVersion, manifestDigest: st.manifestDigest };
}

/**
 * What a Ready OCMComponent says about the version it delivers, without its conditions: resolved
 * version, descriptor, digests, verification. Sources and Actions run again when it changes, so
 * new content under the same version (a new manifest digest in the status) flows on too.
 */
export function componentState(component: KubeObject): string {
  const { conditions: _c, observedGeneration: _g, ...rest } = (component.status ?? {}) as Record<string, unknown>;
  return JSON.stringify(rest, (_k, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v));
}

/** Runs `fn` with the component's repository and the component version, by the digest the OCMComponent verified. */
export async function withComponentVersion<T>(ctx: ReconcilerContext, c: ReadyComponent, fn: (repo: OcmRepository, cv: ComponentVersion) => Promise<T>): Promise<T> {
  const spec = c.component.spec as { repository: { url: string; secretRef?: { name: string } } };
  const { repo, close } = await ocmRepositoryFor(ctx, c.for, spec.repository.url, spec.repository.secretRef);
  try {
    // per namespace: never another tenant's fetch (hashed: the status may be long)
    const key = createHash('sha256').update(`${c.for}|${spec.repository.secretRef?.name ?? ''}|${spec.repository.url}|${c.name}|${c.version}|${componentState(c.component)}`).digest('hex');
    // an upstream that cannot be read now (refused, 5xx, a stalled read) is FetchFailed, retried with backoff
    const cv = await componentVersion(key, () => repo.getComponentVersion(c.name, c.version, { digest: c.manifestDigest })).catch((err) => {
      throw toReconcileError(err, 'FetchFailed', `fetching ${c.name}:${c.version} from ${spec.repository.url}`);
    });
    return await fn(repo, cv);
  } finally {
    close();
  }
}

/**
 * A cached component version (leased by this reconcile before it is taken), or one read now. A read
 * under way is shared only by a reconcile that holds nothing of the memory budget: the reader may
 * wait for the budget, and a holder waiting on it would hold what the reader waits for.
 */
export async function componentVersion(key: string, read: () => Promise<ComponentVersion>): Promise<ComponentVersion> {
  const bytes = cache.bytesOf(key);
  if (bytes !== undefined) {
    const lease = await leaseMemory(bytes);
    const hit = cache.get(key);
    if (hit) return hit;
    lease.shrink(0); // evicted meanwhile (perhaps to make room for this lease): read below, leased there
  }
  const shared = heldMemory() === 0 ? reading.get(key) : undefined;
  if (shared) {
    const cv = await shared.catch(() => undefined);
    if (cv) {
      // the reader's leases count it while the reader runs, the cache's after: this one leases it too
      await leaseMemory(cv.bytes ?? 0);
      return cv;
    }
  }
  const p = read();
  reading.set(key, p);
  try {
    const cv = await p;
    cache.set(key, () => cv, cv.bytes ?? 0);
    return cv;
  } finally {
    if (reading.get(key) === p) reading.delete(key);
  }
}

/**
 * An Event on a Source or Action when the component version it runs on changes (`before` is what
 * its status names): every move a new, older or re-resolved version makes, and every move to new
 * content under the same version (another manifest digest, verified by the OCMComponent), is
 * visible in `kubectl describe` of everything it moves.
 */
export async function announceVersionChange(ctx: ReconcilerContext, obj: KubeObject, before: { componentVersion?: string; componentDigest?: string } | undefined, c: ReadyComponent): Promise<void> {
  const version = before?.componentVersion;
  if (!version) return;
  const what = `OCMComponent ${c.component.metadata.name}`;
  if (version !== c.version) {
    await ctx.events?.record(obj, 'Normal', 'ComponentVersionChanged', `${what} moved ${c.name} from ${version} to ${c.version}`).catch(() => undefined);
  } else if (before?.componentDigest && c.manifestDigest && before.componentDigest !== c.manifestDigest) {
    await ctx.events
      ?.record(obj, 'Normal', 'ComponentContentChanged', `${what} moved to new content of ${c.name}:${c.version} (the same version): manifest ${before.componentDigest} is now ${c.manifestDigest}`)
      .catch(() => undefined);
  }
}
