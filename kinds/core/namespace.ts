import { Type } from '@sinclair/typebox';
import { ageColumn, stringEnum } from '../common.js';
import type { KindDefinition, KubeObject } from '../types.js';

/**
 * `kubernetes.io/metadata.name` = the name, set on every create and update whatever the body says,
 * so it can be neither changed nor removed (pkg/registry/core/namespace/strategy.go Canonicalize).
 */
function nameLabel(obj: KubeObject) {
  const labels = obj.metadata.labels && typeof obj.metadata.labels === 'object' ? obj.metadata.labels : {};
  labels['kubernetes.io/metadata.name'] = obj.metadata.name!;
  obj.metadata.labels = labels;
}

export const namespaceKind: KindDefinition = {
  group: '',
  version: 'v1',
  kind: 'Namespace',
  plural: 'namespaces',
  singular: 'namespace',
  shortNames: ['ns'],
  namespaced: false,
  description: 'Namespace provides a scope for Names. Use of multiple namespaces is optional.',
  schema: Type.Object({
    spec: Type.Optional(
      Type.Object(
        { finalizers: Type.Optional(Type.Array(Type.String(), { description: 'Finalizers is an opaque list of values that must be empty to permanently remove object from storage.' })) },
        { description: 'Spec defines the behavior of the Namespace.' },
      ),
    ),
    status: Type.Optional(
      Type.Object(
        {
          phase: Type.Optional(stringEnum(['Active', 'Terminating'], { description: 'Phase is the current lifecycle phase of the namespace.' })),
          conditions: Type.Optional(
            Type.Array(
              Type.Object({
                type: Type.String({ description: 'Type of namespace controller condition.' }),
                status: Type.String({ description: 'Status of the condition, one of True, False, Unknown.' }),
                lastTransitionTime: Type.Optional(Type.String({ description: 'Last time the condition transitioned from one status to another.' })),
                reason: Type.Optional(Type.String({ description: 'Unique, one-word, CamelCase reason for the condition\'s last transition.' })),
                message: Type.Optional(Type.String({ description: 'Human-readable message indicating details about last transition.' })),
              }),
              { description: 'Represents the latest available observations of a namespace\'s current state.' },
            ),
          ),
        },
        { description: 'Status describes the current status of a Namespace.' },
      ),
    ),
  }),
  statusFields: ['status'],
  // k8s.io/api/core/v1 NamespaceStatus.Conditions: patchStrategy:"merge" patchMergeKey:"type"
  patchStrategies: { 'status.conditions': 'type' },
  subresources: { status: true },
  columns: [{ name: 'Status', type: 'string', jsonPath: '.status.phase', description: 'The phase of the namespace.' }, ageColumn()],
  selectableFields: { 'status.phase': (o) => (o.status as { phase?: string } | undefined)?.phase },
  strategy: {
    prepareForCreate(obj) {
      nameLabel(obj);
      obj.status = { phase: 'Active' };
      const spec = (obj.spec ??= {}) as { finalizers?: string[] };
      spec.finalizers = [...new Set([...(spec.finalizers ?? []), 'kubernetes'])];
    },
    prepareForUpdate: nameLabel,
    deletionPending: (obj) => ((obj.spec as { finalizers?: string[] } | undefined)?.finalizers?.length ?? 0) > 0,
    prepareForDelete(obj) {
      obj.status = { ...(obj.status as object), phase: 'Terminating' };
    },
  },
};
