// Objects the server itself keeps present: standard namespaces and, in standalone mode, the
// kube-system/extension-apiserver-authentication ConfigMap that kube-apiserver publishes.
import type { KubeObject } from '../kinds/types.js';
import { ApiError } from './errors.js';
import type { ResourceRegistry } from './resources.js';
import { type GenericREST, internalOptions } from './rest.js';


/** Creates the object, or brings the given top-level fields of an existing one up to date. */
export async function ensureObject(rest: GenericREST, registry: ResourceRegistry, obj: KubeObject, fields: string[] = []): Promise<void> {
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : ['', obj.apiVersion];
  const r = registry.all.find((x) => x.def.group === group && x.def.version === version && x.def.kind === obj.kind);
  if (!r) throw new Error(`${obj.apiVersion} ${obj.kind} is not served`);
  const ns = obj.metadata.namespace;
  try {
    await rest.create(r, ns, structuredClone(obj), internalOptions('Strict'));
  } catch (err) {
    if (!(err instanceof ApiError && err.status.reason === 'AlreadyExists') || !fields.length) {
      if (err instanceof ApiError && err.status.reason === 'AlreadyExists') return;
      throw err;
    }
    const patch = JSON.stringify(Object.fromEntries(fields.map((f) => [f, obj[f] ?? null])));
    await rest.patch(r, ns, obj.metadata.name!, 'merge-patch', patch, false, internalOptions('Strict'));
  }
}

export function authenticationConfigMap(clientCA: string, requestHeaderCA: string, allowedNames: string[]): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'extension-apiserver-authentication', namespace: 'kube-system' },
    data: {
      'client-ca-file': clientCA,
      'requestheader-client-ca-file': requestHeaderCA,
      'requestheader-allowed-names': JSON.stringify(allowedNames),
      'requestheader-extra-headers-prefix': JSON.stringify(['X-Remote-Extra-']),
      'requestheader-group-headers': JSON.stringify(['X-Remote-Group']),
      'requestheader-username-headers': JSON.stringify(['X-Remote-User']),
    },
  };
}

export const STANDARD_NAMESPACES = ['default', 'kube-system', 'kube-public', 'ocm-system'];
