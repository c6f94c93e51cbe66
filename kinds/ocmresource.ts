import { Type, type Static } from '@sinclair/typebox';
import type { FieldError, KindDefinition, KubeObject } from './types.js';
import {
  CATEGORIES,
  GROUP,
  VERSION,
  commonColumns,
  fieldError,
  isRecord,
  sharedProviderStatusProperties,
  referencePath,
  specOf,
  statusSchema,
  stringMap,
} from './common.js';

export const OCMResourceSpec = Type.Object(
  {
    resource: Type.String({
      description: 'Name of the resource, in the component version of the Source\'s componentRef, to make a snapshot of.',
      minLength: 1,
    }),
    extraIdentity: Type.Optional(
      stringMap('Extra identity attributes that select the resource when several share the name (e.g. `{architecture: arm64}`).'),
    ),
    referencePath: Type.Optional(referencePath()),
  },
  { description: 'Which resource of the component version to retrieve.' },
);
export type OCMResourceSpec = Static<typeof OCMResourceSpec>;

export const OCMResourceStatus = statusSchema('OCMResource', {
  ...sharedProviderStatusProperties(),
});
export type OCMResourceStatus = Static<typeof OCMResourceStatus>;

function validate(obj: KubeObject): FieldError[] {
  const extra = specOf(obj).extraIdentity;
  if (isRecord(extra) && 'name' in extra) {
    return [fieldError('FieldValueInvalid', 'spec.extraIdentity.name', 'the name is given by spec.resource; extraIdentity holds the other identity attributes')];
  }
  return [];
}

export const ocmResourceKind: KindDefinition = {
  group: GROUP,
  version: VERSION,
  kind: 'OCMResource',
  plural: 'ocmresources',
  singular: 'ocmresource',
  shortNames: ['ocmr'],
  categories: [...CATEGORIES],
  namespaced: true,
  description:
    'An OCMResource is the built-in Source provider: it retrieves one resource (by name and optional extra identity) of the component version that the Source refers to, and stores its content as a snapshot for downstream Actions. Several Sources may share one; its status says only that its spec was accepted (written by its own reconciler), and each Source reports its own snapshot and failures.',
  schema: Type.Object({
    spec: OCMResourceSpec,
    status: Type.Optional(OCMResourceStatus),
  }),
  statusFields: ['status'],
  subresources: { status: true },
  columns: [
    { name: 'Resource', type: 'string', jsonPath: '.spec.resource', description: 'Name of the component resource.' },
    ...commonColumns(),
  ],
  strategy: { validate },
};
