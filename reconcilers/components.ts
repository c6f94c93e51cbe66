// The verified component version behind a Ready OCMComponent, for Sources and Actions: the
// repository it came from and its descriptor and manifest (cached briefly per version).
import type { KubeObject } from '../kinds/types.js';
import { type ComponentVersion, OcmRepository } from '../ocm/repository.js';
import { getObject, ReconcileError, type ReconcilerContext, repositoryClient, resourceOf } from './context.js';
import { condition, isReady } from './runtime/status.js';

const cache = new Map<string, { at: number; value: Promise<ComponentVersion> }>();
const TTL_MS = 60_000;

export interface ReadyComponent {
  component: KubeObject;
  name: string;
  version: string;
}

/** The OCMComponent a Source or Action names; a ReconcileError (no retry) unless it is Ready. */
export async function readyComponent(ctx: ReconcilerContext, ref: { name: string; namespace?: string }, namespace: string): Promise<ReadyComponent> {
  const ns = ref.namespace ?? namespace;
  const component = await getObject(ctx, resourceOf(ctx, 'OCMComponent'), ns, ref.name);
  if (!component) throw new ReconcileError('ComponentNotFound', `OCMComponent ${ns}/${ref.name} not found`, false);
  if (!isReady(component)) {
    const c = condition(component);
    throw new ReconcileError('ComponentNotReady', `OCMComponent ${ns}/${ref.name} is not ready${c ? `: ${c.message}` : ''}`, false);
  }
  return { component, name: (component.spec as { name: string }).name, version: (component.status as { resolvedVersion: string }).resolvedVersion };
}

/** Runs `fn` with the component's repository and fetched component version. */
export async function withComponentVersion<T>(ctx: ReconcilerContext, c: ReadyComponent, fn: (repo: OcmRepository, cv: ComponentVersion) => Promise<T>): Promise<T> {
  const spec = c.component.spec as { repository: { url: string; secretRef?: { name: string } } };
  const client = await repositoryClient(ctx, c.component.metadata.namespace!, spec.repository.url, spec.repository.secretRef);
  try {
    const repo = new OcmRepository(client, spec.repository.url);
    const key = `${spec.repository.url}|${c.name}|${c.version}`;
    let hit = cache.get(key);
    if (!hit || Date.now() - hit.at > TTL_MS) {
      hit = { at: Date.now(), value: repo.getComponentVersion(c.name, c.version) };
      cache.set(key, hit);
      hit.value.catch(() => cache.delete(key));
    }
    return await fn(repo, await hit.value);
  } finally {
    if (client !== ctx.snapshots.client) client.close?.();
  }
}
