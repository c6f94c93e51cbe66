// Tenancy of the reconcilers (issue 16): they act with the server's own authority, so an object
// may reach only its own namespace. A reference into another namespace is refused unless the
// server runs with --allow-cross-namespace-refs (Flux's --no-cross-namespace-refs, inverted: off
// by default here), and even then no Secret of one namespace is read for an object of another.
import type { KubeObject } from '../kinds/types.js';
import type { ReconcilerContext } from './context.js';
import { stalled } from './runtime/errors.js';

const isRecord = (v: unknown): v is Record<string, unknown> => !!v && typeof v === 'object' && !Array.isArray(v);

/** Every field of the object's spec that names another namespace, as `field → namespace`. */
export function crossNamespaceRefs(obj: KubeObject): string[] {
  const own = obj.metadata.namespace;
  const spec = isRecord(obj.spec) ? obj.spec : {};
  const out: string[] = [];
  const check = (field: string, ref: unknown) => {
    if (isRecord(ref) && typeof ref.namespace === 'string' && ref.namespace !== '' && ref.namespace !== own) out.push(`${field} → ${ref.namespace}`);
  };
  check('spec.componentRef', spec.componentRef);
  // Flux templates (KustomizationTemplate, HelmReleaseTemplate): the generated objects' references.
  const tpl = isRecord(spec.template) ? spec.template : {};
  for (const f of ['sourceRef', 'chartRef']) check(`spec.template.${f}`, tpl[f]);
  if (Array.isArray(tpl.dependsOn)) tpl.dependsOn.forEach((d, i) => check(`spec.template.dependsOn[${i}]`, d));
  return out;
}

/** Throws a Stalled CrossNamespaceRefNotAllowed naming the references, unless the server allows them. */
export function refuseCrossNamespaceRefs(ctx: ReconcilerContext, ...objs: KubeObject[]): void {
  if (ctx.tenancy?.allowCrossNamespaceRefs) return;
  for (const obj of objs) {
    const refs = crossNamespaceRefs(obj);
    if (refs.length)
      throw stalled('CrossNamespaceRefNotAllowed', `${obj.kind} ${obj.metadata.namespace}/${obj.metadata.name}: cross-namespace references are not allowed (${refs.join(', ')}); the server allows them only with --allow-cross-namespace-refs`);
  }
}
