import { Type, type Static } from '@sinclair/typebox';
import type { FieldError, KindDefinition, KubeObject } from './types.js';
import {
  CATEGORIES,
  GROUP,
  NamespacedObjectReference,
  SnapshotSourceReference,
  TypedReference,
  VERSION,
  commonColumns,
  fieldError,
  interval,
  isRecord,
  objectName,
  ociDigest,
  providerContractProperties,
  selectable,
  specOf,
  statusSchema,
  suspend,
  validateInterval,
  validateProviderRef,
} from './common.js';

/** Kinds of this group that can be the provider of an Action. */
export const BUILTIN_ACTION_PROVIDERS = ['Localization', 'Configurator', 'KustomizationTemplate', 'HelmReleaseTemplate'] as const;

export const ActionSpec = Type.Object(
  {
    componentRef: NamespacedObjectReference('The OCMComponent the processed resource belongs to; providers read its component descriptor (e.g. the image resources for localization).', 'OCMComponent'),
    snapshotSourceRef: Type.Optional(
      SnapshotSourceReference('The Source or Action whose snapshot this Action consumes. Exactly one of snapshotSourceRef and sourceRef must be set.'),
    ),
    sourceRef: Type.Optional(
      SnapshotSourceReference('Alias of snapshotSourceRef, accepted for manifests written against the original design. Exactly one of snapshotSourceRef and sourceRef must be set.'),
    ),
    providerRef: TypedReference(
      'The provider (Action sub-type) that processes the snapshot: Localization, Configurator, KustomizationTemplate or HelmReleaseTemplate of this group, or a kind of another API group implemented by an external controller (read from the host cluster; its status must follow the provider contract).',
      'provider',
    ),
    interval: Type.Optional(
      interval('How often to reconcile even without a change upstream, as a Go duration. Omitted: only on changes (a new input snapshot, an edited provider).'),
    ),
    suspend: Type.Optional(suspend('Action')),
  },
  { description: 'Desired state of the Action: which snapshot it consumes and which provider processes it.' },
);
export type ActionSpec = Static<typeof ActionSpec>;

export const ActionStatus = statusSchema('Action', {
  ...providerContractProperties(),
  inputSnapshot: Type.Optional(objectName('Name of the Snapshot consumed by the latest run.')),
  inputDigest: Type.Optional(ociDigest('Digest of the snapshot consumed by the latest run; an unchanged input produces no new snapshot.')),
  componentVersion: Type.Optional(Type.String({ description: 'Version of the component the latest run used; a change is an Event.' })),
  componentDigest: Type.Optional(ociDigest('Manifest digest of that component version (the content the OCMComponent verified); new content under the same version is an Event.')),
});
export type ActionStatus = Static<typeof ActionStatus>;

/** The Action's input reference, whichever of `snapshotSourceRef` or its alias `sourceRef` is set. */
export function actionInputRef(obj: KubeObject): SnapshotSourceReference | undefined {
  const spec = specOf(obj);
  const ref = spec.snapshotSourceRef ?? spec.sourceRef;
  return isRecord(ref) ? (ref as unknown as SnapshotSourceReference) : undefined;
}

function validate(obj: KubeObject): FieldError[] {
  const spec = specOf(obj);
  const errs: FieldError[] = [...validateInterval(spec.interval, 'spec.interval'), ...validateProviderRef(obj, BUILTIN_ACTION_PROVIDERS, 'Action')];
  const hasPrimary = spec.snapshotSourceRef !== undefined && spec.snapshotSourceRef !== null;
  const hasAlias = spec.sourceRef !== undefined && spec.sourceRef !== null;
  if (!hasPrimary && !hasAlias) {
    errs.push(fieldError('FieldValueRequired', 'spec.snapshotSourceRef', 'the Source or Action to consume must be set (spec.snapshotSourceRef, or its alias spec.sourceRef)'));
  } else if (hasPrimary && hasAlias) {
    errs.push(fieldError('FieldValueForbidden', 'spec.sourceRef', 'may not be set together with spec.snapshotSourceRef (it is an alias of it)'));
  }
  const input = actionInputRef(obj);
  const name = obj.metadata?.name;
  if (input && input.kind === 'Action' && name && input.name === name) {
    errs.push(fieldError('FieldValueInvalid', `${hasPrimary ? 'spec.snapshotSourceRef' : 'spec.sourceRef'}.name`, 'an Action cannot consume its own snapshot'));
  }
  return errs;
}

export const actionKind: KindDefinition = {
  group: GROUP,
  version: VERSION,
  kind: 'Action',
  plural: 'actions',
  singular: 'action',
  shortNames: ['act'],
  categories: [...CATEGORIES],
  namespaced: true,
  description:
    'An Action consumes the snapshot of a Source or of another Action and runs its provider on it (localization, configuration, deployment through Flux, or an external provider), optionally producing a new snapshot that the server verifies and attests. A chain of Actions re-runs by itself when anything upstream changes.',
  schema: Type.Object({
    spec: ActionSpec,
    status: Type.Optional(ActionStatus),
  }),
  statusFields: ['status'],
  subresources: { status: true },
  columns: [
    { name: 'Provider', type: 'string', jsonPath: '.spec.providerRef.kind', description: 'Kind of the provider.' },
    { name: 'Snapshot', type: 'string', jsonPath: '.status.snapshot', description: 'The latest Snapshot produced, if any.' },
    ...commonColumns(),
    { name: 'Provider Name', type: 'string', jsonPath: '.spec.providerRef.name', description: 'Name of the provider.', priority: 1 },
    { name: 'Input', type: 'string', jsonPath: '.status.inputSnapshot', description: 'The Snapshot consumed by the latest run.', priority: 1 },
    { name: 'Digest', type: 'string', jsonPath: '.status.digest', description: 'Digest of the latest snapshot produced.', priority: 1 },
  ],
  selectableFields: {
    'spec.componentRef.name': selectable('spec.componentRef.name'),
    'spec.providerRef.kind': selectable('spec.providerRef.kind'),
    'spec.providerRef.name': selectable('spec.providerRef.name'),
    'spec.snapshotSourceRef.name': (obj) => actionInputRef(obj)?.name,
    'spec.snapshotSourceRef.kind': (obj) => actionInputRef(obj)?.kind,
  },
  strategy: { validate },
};
