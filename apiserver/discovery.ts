// Discovery documents: legacy (/api, /apis, /apis/<g>, /apis/<g>/<v>) and aggregated
// (apidiscovery.k8s.io/v2), all derived from the resource registry.
import { createHash } from 'node:crypto';
import type { Resource, ResourceRegistry } from './resources.js';

export const AGGREGATED_CONTENT_TYPE = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';

function storageVersionHash(r: Resource): string {
  return createHash('sha256').update(`${r.def.group}/${r.def.version}/${r.def.kind}`).digest().subarray(0, 8).toString('base64');
}

export function apiResourceList(group: string, version: string, resources: Resource[]) {
  const list: Record<string, unknown>[] = [];
  for (const r of resources) {
    const d = r.def;
    const entry: Record<string, unknown> = { name: d.plural, singularName: d.singular, namespaced: d.namespaced, kind: d.kind, verbs: [...r.verbs] };
    if (d.shortNames?.length) entry.shortNames = d.shortNames;
    if (d.categories?.length) entry.categories = d.categories;
    entry.storageVersionHash = storageVersionHash(r);
    list.push(entry);
    if (d.subresources.status) list.push({ name: `${d.plural}/status`, singularName: '', namespaced: d.namespaced, kind: d.kind, verbs: [...r.statusVerbs] });
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources: list };
}

function groupEntry(group: string, versions: string[]) {
  const vs = versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return { name: group, versions: vs, preferredVersion: vs[0] };
}

export function apiGroupList(reg: ResourceRegistry) {
  const groups = [...reg.groups()].filter(([g]) => g !== '').map(([g, vs]) => groupEntry(g, [...vs.keys()]));
  return { kind: 'APIGroupList', apiVersion: 'v1', groups };
}

export function apiGroup(reg: ResourceRegistry, group: string) {
  const vs = reg.groups().get(group);
  return vs && group !== '' ? { kind: 'APIGroup', apiVersion: 'v1', ...groupEntry(group, [...vs.keys()]) } : undefined;
}

export function apiVersions(reg: ResourceRegistry) {
  const core = reg.groups().get('');
  return { kind: 'APIVersions', versions: core ? [...core.keys()] : [], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '' }] };
}

/** apidiscovery.k8s.io/v2 APIGroupDiscoveryList for either the core group (/api) or the named groups (/apis). */
export function aggregatedDiscovery(reg: ResourceRegistry, core: boolean) {
  const items = [];
  for (const [group, versions] of reg.groups()) {
    if ((group === '') !== core) continue;
    items.push({
      metadata: { name: group, creationTimestamp: null },
      versions: [...versions].map(([version, rs]) => ({
        version,
        resources: rs.map((r) => {
          const d = r.def;
          const responseKind = { group, version, kind: d.kind };
          const res: Record<string, unknown> = {
            resource: d.plural,
            responseKind,
            scope: d.namespaced ? 'Namespaced' : 'Cluster',
            singularResource: d.singular,
            verbs: [...r.verbs],
          };
          if (d.shortNames?.length) res.shortNames = d.shortNames;
          if (d.categories?.length) res.categories = d.categories;
          if (d.subresources.status) res.subresources = [{ subresource: 'status', responseKind, verbs: [...r.statusVerbs] }];
          return res;
        }),
        freshness: 'Current',
      })),
    });
  }
  return { kind: 'APIGroupDiscoveryList', apiVersion: 'apidiscovery.k8s.io/v2', metadata: {}, items };
}
