import { Type, type Static } from '@sinclair/typebox';
import type { FieldError, KindDefinition, KubeObject } from './types.js';
import {
  CATEGORIES,
  GROUP,
  OCI_TAG_PATTERN,
  SnapshotSourceReference,
  TypedReference,
  VERSION,
  commonColumns,
  objectName,
  ociDigest,
  selectable,
  statusSchema,
  stringMap,
  validateImmutable,
} from './common.js';

export const SnapshotSpec = Type.Object(
  {
    identity: Type.Object(
      {
        componentName: Type.String({ description: 'Name of the OCM component the snapshot derives from.', minLength: 1 }),
        componentVersion: Type.String({ description: 'Version of the OCM component the snapshot derives from.', minLength: 1 }),
        resourceName: Type.Optional(Type.String({ description: 'Name of the component resource the snapshot derives from.' })),
        extraIdentity: Type.Optional(stringMap('Extra identity attributes of that resource.')),
      },
      { description: 'What the snapshot is a (possibly transformed) copy of.' },
    ),
    producerRef: SnapshotSourceReference('The Source or Action that produced the snapshot.'),
    providerRef: Type.Optional(TypedReference('The provider that produced the content.', 'provider')),
    input: Type.Optional(
      Type.Object(
        {
          snapshot: objectName('Name of the input Snapshot.'),
          digest: Type.Optional(ociDigest('Digest of the input snapshot.')),
        },
        { description: 'For a snapshot produced by an Action: the upstream snapshot it was made from.' },
      ),
    ),
  },
  { description: 'Identity and provenance of the snapshot. Written by the server when the snapshot is stored; immutable.' },
);
export type SnapshotSpec = Static<typeof SnapshotSpec>;

export const ChainLink = () =>
  Type.Object(
    {
      kind: Type.String({ description: 'Kind of this step: OCMComponent (the origin), Source or Action.', minLength: 1 }),
      name: Type.String({ description: 'Name of the object of this step.', minLength: 1 }),
      componentVersion: Type.Optional(Type.String({ description: 'For the OCMComponent step: the component name and version (`name:version`).' })),
      provider: Type.Optional(Type.String({ description: 'For Source and Action steps: the provider as `Kind/name`.' })),
      providerGeneration: Type.Optional(Type.Integer({ description: 'Generation of the provider object when it ran.', format: 'int64', minimum: 0 })),
      digest: Type.Optional(ociDigest('Digest of the snapshot this step produced.')),
    },
    { description: 'One step of the provenance chain.' },
  );

export const SnapshotStatus = statusSchema('Snapshot', {
  repositoryURL: Type.Optional(
    Type.String({ description: 'OCI repository in the server\'s registry that holds the snapshot, as `<host:port>/<repository>`.' }),
  ),
  tag: Type.Optional(Type.String({ description: 'Tag of the snapshot artifact in the repository.', pattern: OCI_TAG_PATTERN })),
  digest: Type.Optional(ociDigest('Digest of the snapshot\'s OCI manifest.')),
  size: Type.Optional(Type.Integer({ description: 'Size in bytes of the snapshot content (the gzip-compressed tar layer).', format: 'int64', minimum: 0 })),
  createdAt: Type.Optional(Type.String({ description: 'When the snapshot was pushed, RFC 3339.', format: 'date-time' })),
  attestation: Type.Optional(
    Type.Object(
      {
        digest: Type.Optional(ociDigest('Digest of the attestation artifact (an OCI referrer of the snapshot).')),
        verified: Type.Optional(Type.Boolean({ description: 'True when the attestation\'s signature and subject digest verified.' })),
      },
      { description: 'The signed in-toto statement the server attached to the snapshot.' },
    ),
  ),
  chain: Type.Optional(
    Type.Array(ChainLink(), {
      description: 'Provenance, from the component version through each Source and Action to this snapshot.',
      'x-kubernetes-list-type': 'atomic',
    }),
  ),
});
export type SnapshotStatus = Static<typeof SnapshotStatus>;

export const snapshotKind: KindDefinition = {
  group: GROUP,
  version: VERSION,
  kind: 'Snapshot',
  plural: 'snapshots',
  singular: 'snapshot',
  shortNames: ['snap'],
  categories: [...CATEGORIES],
  namespaced: true,
  description:
    'A Snapshot records one gzip-compressed tar archive stored by the server in its OCI registry: the content of a component resource as retrieved by a Source, or as transformed by an Action. Only the server writes Snapshots (users may get, list, watch and delete them); it verifies their digests and attaches a signed attestation whose chain leads back to the component version.',
  schema: Type.Object({
    spec: SnapshotSpec,
    status: Type.Optional(SnapshotStatus),
  }),
  statusFields: ['status'],
  subresources: { status: true },
  // Written only by the server's reconcilers (in-process, not over HTTP): a user-made Snapshot or
  // status could name another namespace's content. Users may read and delete (issue 16).
  verbs: ['delete', 'deletecollection', 'get', 'list', 'watch'],
  columns: [
    { name: 'Tag', type: 'string', jsonPath: '.status.tag', description: 'Tag of the snapshot artifact.' },
    { name: 'Digest', type: 'string', jsonPath: '.status.digest', description: 'Digest of the snapshot.' },
    ...commonColumns(1),
    { name: 'Component', type: 'string', jsonPath: '.spec.identity.componentName', description: 'The OCM component.', priority: 1 },
    { name: 'Version', type: 'string', jsonPath: '.spec.identity.componentVersion', description: 'The component version.', priority: 1 },
    { name: 'Producer', type: 'string', jsonPath: '.spec.producerRef.name', description: 'The Source or Action that produced it.', priority: 1 },
    { name: 'Size', type: 'integer', jsonPath: '.status.size', description: 'Size in bytes.', priority: 1 },
  ],
  selectableFields: {
    'spec.producerRef.kind': selectable('spec.producerRef.kind'),
    'spec.producerRef.name': selectable('spec.producerRef.name'),
    'spec.identity.componentName': selectable('spec.identity.componentName'),
  },
  strategy: {
    validateUpdate: (obj: KubeObject, old: KubeObject): FieldError[] => validateImmutable(obj, old, ['spec']),
  },
};
