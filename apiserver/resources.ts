// The set of resources this server serves, derived once from the kind definitions.
import { apiVersionOf, type KindDefinition } from '../kinds/types.js';
import { defaultFieldGetters, type FieldGetter } from './selectors.js';
import { compileKind, type CompiledKind } from './validation.js';
import type { VirtualCreate } from './reviews.js';

export const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'] as const;
export const STATUS_VERBS = ['get', 'patch', 'update'] as const;

/**
 * Groups compiled into kube-apiserver (not CRDs): their decoder fills a missing kind/apiVersion in
 * from the endpoint, and strategic merge patch applies to them.
 */
export const BUILTIN_GROUPS = new Set(['', 'coordination.k8s.io', 'authentication.k8s.io', 'authorization.k8s.io', 'events.k8s.io']);

export interface Resource {
  def: KindDefinition;
  /** A built-in type of kube-apiserver (BUILTIN_GROUPS) rather than a custom resource. */
  builtin: boolean;
  apiVersion: string;
  listKind: string;
  /** For Status messages: `ocmcomponents.delivery.ocm.software`. */
  gr: { group: string; resource: string; kind: string };
  compiled: CompiledKind;
  fieldGetters: Record<string, FieldGetter>;
  statusFields: string[];
  /** Storage key prefix of the whole resource: `/<group>/<plural>/`. */
  prefix: string;
  /** Create handler of a kind that is answered, not stored (reviews). */
  create?: VirtualCreate;
  verbs: readonly string[];
  /** Verbs of the status subresource: get, plus patch/update when the kind may be updated. */
  statusVerbs: readonly string[];
}

export function keyFor(r: Resource, namespace: string | undefined, name?: string): string {
  const ns = r.def.namespaced ? `${namespace}/` : '';
  return r.prefix + (r.def.namespaced && namespace === undefined ? '' : ns) + (name ?? '');
}

export class ResourceRegistry {
  private readonly byPath = new Map<string, Resource>();
  readonly all: Resource[] = [];

  constructor(defs: KindDefinition[]) {
    for (const def of defs) this.add(def);
  }

  add(def: KindDefinition): Resource {
    const r: Resource = {
      def,
      builtin: BUILTIN_GROUPS.has(def.group),
      apiVersion: apiVersionOf(def),
      listKind: def.listKind ?? `${def.kind}List`,
      gr: { group: def.group, resource: def.plural, kind: def.kind },
      compiled: compileKind(def),
      fieldGetters: { ...(def.namespaced ? defaultFieldGetters : { 'metadata.name': defaultFieldGetters['metadata.name'] }), ...def.selectableFields },
      statusFields: def.subresources.status ? (def.statusFields ?? ['status']) : [],
      prefix: `/${def.group || 'core'}/${def.plural}/`,
      verbs: def.verbs ?? VERBS,
      statusVerbs: (def.verbs ?? VERBS).includes('update') ? STATUS_VERBS : ['get'],
    };
    const path = `${apiVersionOf(def)}/${def.plural}`;
    if (this.byPath.has(path)) throw new Error(`duplicate resource ${path}`);
    this.byPath.set(path, r);
    this.all.push(r);
    return r;
  }

  resourceOf(def: KindDefinition): Resource {
    const r = this.all.find((x) => x.def === def);
    if (!r) throw new Error(`kind ${def.kind} is not registered`);
    return r;
  }

  lookup(group: string, version: string, plural: string): Resource | undefined {
    return this.byPath.get(`${group ? `${group}/${version}` : version}/${plural}`);
  }

  /** group -> versions -> resources, in registration order. */
  groups(): Map<string, Map<string, Resource[]>> {
    const out = new Map<string, Map<string, Resource[]>>();
    for (const r of this.all) {
      const g = out.get(r.def.group) ?? new Map<string, Resource[]>();
      out.set(r.def.group, g);
      const list = g.get(r.def.version) ?? [];
      g.set(r.def.version, list);
      list.push(r);
    }
    return out;
  }
}
