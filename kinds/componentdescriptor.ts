import { createHash } from 'node:crypto';
import { Type, type Static } from '@sinclair/typebox';
import type { FieldError, KindDefinition, KubeObject } from './types.js';
import {
  CATEGORIES,
  GROUP,
  VERSION,
  anyValue,
  commonColumns,
  freeFormObject,
  selectable,
  statusSchema,
  stringEnum,
  stringMap,
  validateImmutable,
} from './common.js';

export const RESOURCE_RELATIONS = ['local', 'external'] as const;

const Label = () =>
  Type.Object(
    {
      name: Type.String({ description: 'Name of the label.', minLength: 1 }),
      value: anyValue('Value of the label: any JSON value.'),
      version: Type.Optional(Type.String({ description: 'Version of the label\'s value format.' })),
      signing: Type.Optional(Type.Boolean({ description: 'Whether the label is part of the signed (normalised) descriptor.' })),
      merge: Type.Optional(freeFormObject('How the label is merged when a component version is transferred (`algorithm`, `config`).')),
    },
    { description: 'A label: a named value attached to an element of the descriptor.' },
  );

const labels = (what: string) => Type.Optional(Type.Array(Label(), { description: `Labels of the ${what}.` }));

const Digest = (description: string) =>
  Type.Object(
    {
      hashAlgorithm: Type.String({ description: 'Hash algorithm, e.g. `SHA-256` (older descriptors write `sha256`).' }),
      normalisationAlgorithm: Type.String({
        description: 'How the content was normalised before hashing, e.g. `genericBlobDigest/v1`, `ociArtifactDigest/v1`, `jsonNormalisation/v2`.',
      }),
      value: Type.String({ description: 'The digest, hex-encoded.' }),
    },
    { description },
  );

const Access = (what: string) =>
  freeFormObject(`How to access the ${what}: a typed access specification (\`localBlob\`, \`ociArtifact\`, \`ociBlob\`, \`helm\`, \`git\`, ...) whose other fields depend on the type.`, {
    type: Type.String({ description: 'Type of the access method, e.g. `localBlob`, `ociArtifact`.', minLength: 1 }),
  });

export const DescriptorResource = () =>
  Type.Object(
    {
      name: Type.String({ description: 'Name of the resource, unique within the component together with extraIdentity.', minLength: 1 }),
      version: Type.String({ description: 'Version of the resource.' }),
      type: Type.String({ description: 'Type of the resource, e.g. `ociImage`, `helmChart`, `kustomize.ocm.fluxcd.io`, `configdata.ocm.software`.', minLength: 1 }),
      relation: stringEnum(RESOURCE_RELATIONS, {
        description: 'local: the resource is built and delivered with the component; external: it is produced elsewhere and only referenced.',
      }),
      extraIdentity: Type.Optional(stringMap('Extra identity attributes, distinguishing resources that share the name.')),
      labels: labels('resource'),
      srcRefs: Type.Optional(
        Type.Array(
          Type.Object(
            {
              identitySelector: Type.Optional(stringMap('Identity of the source (name and extra identity attributes).')),
              labels: labels('source reference'),
            },
            { description: 'Reference to a source of the component.' },
          ),
          { description: 'The sources of the component this resource was built from.' },
        ),
      ),
      access: Type.Optional(Access('resource')),
      digest: Type.Optional(Digest('Digest of the resource content, checked when the resource is fetched.')),
    },
    { description: 'A resource of the component: an artifact delivered with it.' },
  );

export const DescriptorSource = () =>
  Type.Object(
    {
      name: Type.String({ description: 'Name of the source.', minLength: 1 }),
      version: Type.String({ description: 'Version of the source.' }),
      type: Type.String({ description: 'Type of the source, e.g. `git`.', minLength: 1 }),
      extraIdentity: Type.Optional(stringMap('Extra identity attributes of the source.')),
      labels: labels('source'),
      access: Type.Optional(Access('source')),
    },
    { description: 'A source of the component: where it was built from.' },
  );

export const DescriptorComponentReference = () =>
  Type.Object(
    {
      name: Type.String({ description: 'Name of the reference, unique within the component.', minLength: 1 }),
      componentName: Type.String({ description: 'Name of the referenced component.', minLength: 1 }),
      version: Type.String({ description: 'Version of the referenced component.', minLength: 1 }),
      extraIdentity: Type.Optional(stringMap('Extra identity attributes of the reference.')),
      labels: labels('reference'),
      digest: Type.Optional(Digest('Digest of the normalised descriptor of the referenced component version.')),
    },
    { description: 'A reference to another component version.' },
  );

export const ComponentDescriptorSpec = Type.Object(
  {
    schemaVersion: Type.Optional(
      Type.String({ description: 'Schema version of the serialisation the descriptor was read from: `v2` or `ocm.software/v3alpha1`.' }),
    ),
    name: Type.String({ description: 'Name of the component, e.g. `github.com/weaveworks/weave-gitops`.', minLength: 1, maxLength: 255 }),
    version: Type.String({ description: 'Version of the component.', minLength: 1 }),
    provider: Type.Object(
      {
        name: Type.String({ description: 'Name of the provider.', minLength: 1 }),
        labels: labels('provider'),
      },
      { description: 'Who provides the component (a v2 descriptor\'s provider string becomes `{name}`).' },
    ),
    creationTime: Type.Optional(Type.String({ description: 'When the component version was created, as written in the descriptor.' })),
    labels: labels('component'),
    repositoryContexts: Type.Optional(
      Type.Array(freeFormObject('A repository (`type`, `baseUrl`, ...) the component version was stored in.'), {
        description: 'Repositories the component version has been transferred through, most recent last.',
      }),
    ),
    resources: Type.Optional(Type.Array(DescriptorResource(), { description: 'Resources of the component.' })),
    sources: Type.Optional(Type.Array(DescriptorSource(), { description: 'Sources of the component.' })),
    componentReferences: Type.Optional(
      Type.Array(DescriptorComponentReference(), {
        description: 'References to other component versions; each referenced version is stored as its own ComponentDescriptor.',
      }),
    ),
    signatures: Type.Optional(
      Type.Array(
        Type.Object(
          {
            name: Type.String({ description: 'Name of the signature.', minLength: 1 }),
            digest: Digest('Digest of the normalised descriptor that was signed.'),
            signature: Type.Object(
              {
                algorithm: Type.String({ description: 'Signature algorithm, e.g. `RSASSA-PKCS1-V1_5`, `RSASSA-PSS`.' }),
                mediaType: Type.String({ description: 'Media type of the value, e.g. `application/vnd.ocm.signature.rsa`.' }),
                value: Type.String({ description: 'The signature (hex for RSA signatures).' }),
                issuer: Type.Optional(Type.String({ description: 'Issuer of the signing key, if recorded.' })),
              },
              { description: 'The signature itself.' },
            ),
          },
          { description: 'One signature of the component version.' },
        ),
        { description: 'Signatures of the component version, as stored in the descriptor.' },
      ),
    ),
  },
  {
    description:
      'The component descriptor of one component version (OCM schema v2 or v3alpha1), as fetched from the OCM repository. Written by the server.',
  },
);
export type ComponentDescriptorSpec = Static<typeof ComponentDescriptorSpec>;

export const ComponentDescriptorStatus = statusSchema('ComponentDescriptor', {
  verified: Type.Optional(Type.Boolean({ description: 'True when this descriptor is part of what the owning OCMComponent verified (its signatures, reference digests and stored resource digests; see OCMComponent status.verified); false when the OCMComponent asks for no verification. The `Verified` condition says which.' })),
});
export type ComponentDescriptorStatus = Static<typeof ComponentDescriptorStatus>;

/**
 * Object name for the ComponentDescriptor that OCMComponent `owner` keeps of a component version:
 * `<owner>.<component>-<version>-<hash>` (`podinfo`, `github.com/weaveworks/wge`, `v0.9.4` ->
 * `podinfo.github-com-weaveworks-wge-v0-9-4-1a2b3c4d`). The owner's name keeps OCMComponents that
 * read the same version (from different repositories, with different content) out of each other's
 * objects, so none is shared or garbage-collected under another; the hash of the exact name and
 * version keeps versions apart that read the same (`a/b-1.0` and `a/b` `1.0`). Names too long for an
 * object name are cut, with a hash of all three.
 */
export function componentDescriptorName(owner: string, component: string, version: string): string {
  const readable = `${component}-${version}`.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '') || 'component';
  const hash = (s: string, n: number) => createHash('sha256').update(s).digest('hex').slice(0, n);
  const name = `${owner}.${readable}-${hash(`${component}:${version}`, 8)}`;
  if (name.length <= 253) return name;
  return `${`${owner}.${readable}`.slice(0, 236).replace(/[-.]+$/, '')}-${hash(`${owner}\n${component}:${version}`, 16)}`;
}

export const componentDescriptorKind: KindDefinition = {
  group: GROUP,
  version: VERSION,
  kind: 'ComponentDescriptor',
  plural: 'componentdescriptors',
  singular: 'componentdescriptor',
  shortNames: ['cd', 'ocmcd'],
  categories: [...CATEGORIES],
  namespaced: true,
  description:
    'A ComponentDescriptor holds the descriptor of one OCM component version (name, version, provider, resources, sources, component references, signatures) as fetched and verified by the server for an OCMComponent, so that other controllers and users can read it through the Kubernetes API. Written by the server; owned by the one OCMComponent that read it, and named after it (`<OCMComponent>.<component>-<version>-<hash>`), so OCMComponents never share one.',
  schema: Type.Object({
    spec: ComponentDescriptorSpec,
    status: Type.Optional(ComponentDescriptorStatus),
  }),
  statusFields: ['status'],
  subresources: { status: true },
  columns: [
    { name: 'Component', type: 'string', jsonPath: '.spec.name', description: 'Name of the component.' },
    { name: 'Version', type: 'string', jsonPath: '.spec.version', description: 'Version of the component.' },
    ...commonColumns(1),
    { name: 'Provider', type: 'string', jsonPath: '.spec.provider.name', description: 'Provider of the component.', priority: 1 },
  ],
  selectableFields: {
    'spec.name': selectable('spec.name'),
    'spec.version': selectable('spec.version'),
  },
  strategy: {
    validateUpdate: (obj: KubeObject, old: KubeObject): FieldError[] => validateImmutable(obj, old, ['spec.name', 'spec.version']),
  },
};
