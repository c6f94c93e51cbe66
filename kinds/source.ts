import { Type, type Static } from '@sinclair/typebox';
import type { FieldError, KindDefinition, KubeObject } from './types.js';
import {
  CATEGORIES,
  GROUP,
  NamespacedObjectReference,
  TypedReference,
  VERSION,
  commonColumns,
  interval,
  ociDigest,
  providerContractProperties,
  selectable,
  specOf,
  statusSchema,
  suspend,
  validateInterval,
  validateProviderRef,
} from './common.js';

/** Kinds of this group that can be the provider of a Source. */
export const BUILTIN_SOURCE_PROVIDERS = ['OCMResource'] as const;

export const SourceSpec = Type.Object(
  {
    componentRef: NamespacedObjectReference('The OCMComponent whose component version the provider takes its resource from.', 'OCMComponent'),
    providerRef: TypedReference(
      'The provider (Source sub-type) that produces the snapshot, e.g. `{apiVersion: delivery.ocm.software/v1alpha1, kind: OCMResource, name: ui-server}`. A kind of another API group is an external provider, read from the host cluster; its status must follow the provider contract (`ready`, `snapshot`, `digest`).',
      'provider',
    ),
    interval: Type.Optional(
      interval('How often to reconcile even without a change upstream, as a Go duration. Omitted: only on changes (a new component version, an edited provider).'),
    ),
    suspend: Type.Optional(suspend('Source')),
  },
  { description: 'Desired state of the Source: which component it procures a resource from and which provider does it.' },
);
export type SourceSpec = Static<typeof SourceSpec>;

export const SourceStatus = statusSchema('Source', {
  ...providerContractProperties(),
  componentVersion: Type.Optional(Type.String({ description: 'Version of the component the latest snapshot was made from.' })),
  componentDigest: Type.Optional(ociDigest('Manifest digest of that component version (the content the OCMComponent verified); new content under the same version is an Event.')),
});
export type SourceStatus = Static<typeof SourceStatus>;

function validate(obj: KubeObject): FieldError[] {
  return [...validateInterval(specOf(obj).interval, 'spec.interval'), ...validateProviderRef(obj, BUILTIN_SOURCE_PROVIDERS, 'Source')];
}

export const sourceKind: KindDefinition = {
  group: GROUP,
  version: VERSION,
  kind: 'Source',
  plural: 'sources',
  singular: 'source',
  shortNames: ['src'],
  categories: [...CATEGORIES],
  namespaced: true,
  description:
    'A Source makes a resource of an OCM component version available to Actions: its provider (a Source sub-type such as OCMResource) retrieves the resource and stores it as a snapshot in the server\'s OCI registry; the server verifies and attests the snapshot and mirrors the provider\'s `ready`, `snapshot` and `digest` here.',
  schema: Type.Object({
    spec: SourceSpec,
    status: Type.Optional(SourceStatus),
  }),
  statusFields: ['status'],
  subresources: { status: true },
  columns: [
    { name: 'Provider', type: 'string', jsonPath: '.spec.providerRef.kind', description: 'Kind of the provider.' },
    { name: 'Snapshot', type: 'string', jsonPath: '.status.snapshot', description: 'The latest Snapshot.' },
    ...commonColumns(),
    { name: 'Provider Name', type: 'string', jsonPath: '.spec.providerRef.name', description: 'Name of the provider.', priority: 1 },
    { name: 'Component', type: 'string', jsonPath: '.spec.componentRef.name', description: 'The OCMComponent.', priority: 1 },
    { name: 'Digest', type: 'string', jsonPath: '.status.digest', description: 'Digest of the latest snapshot.', priority: 1 },
  ],
  selectableFields: {
    'spec.componentRef.name': selectable('spec.componentRef.name'),
    'spec.providerRef.kind': selectable('spec.providerRef.kind'),
    'spec.providerRef.name': selectable('spec.providerRef.name'),
  },
  strategy: { validate },
};
