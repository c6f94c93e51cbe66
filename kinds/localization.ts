import { Type, type Static } from '@sinclair/typebox';
import type { FieldError, KindDefinition, KubeObject } from './types.js';
import {
  CATEGORIES,
  GROUP,
  ResourceReference,
  VERSION,
  commonColumns,
  fieldError,
  isRecord,
  sharedProviderStatusProperties,
  specOf,
  statusSchema,
  validateRelativePath,
} from './common.js';

/** The parts of an image reference a localization rule can write, each with its own YAML path. */
export const LOCALIZATION_TARGETS = ['image', 'registry', 'repository', 'fullyQualifiedRepository', 'tag'] as const;

const yamlPath = (what: string, example: string) =>
  Type.Optional(
    Type.String({
      description: `YAML path in the file (e.g. \`${example}\`) of the field that receives ${what}.`,
      minLength: 1,
    }),
  );

/** One localization rule, in the format of ConfigData's `localization:` list. */
export const LocalizationRule = () =>
  Type.Object(
    {
      resource: ResourceReference('The component resource (usually an image) whose access gives the value, by name and optional extra identity.'),
      file: Type.String({
        description: 'Path of the file to modify, relative to the root of the input snapshot, e.g. `manifests/deploy.yaml`. Multi-document YAML files are supported.',
        minLength: 1,
      }),
      image: yamlPath('the full image reference (`registry/repository:tag` or `@digest`)', 'spec.template.spec.containers[0].image'),
      registry: yamlPath('the registry host of the image (`ghcr.io`)', 'image.registry'),
      repository: yamlPath('the repository of the image without the registry (`stefanprodan/podinfo`)', 'image.repository'),
      fullyQualifiedRepository: yamlPath('the registry and repository of the image without tag (`ghcr.io/stefanprodan/podinfo`)', 'image.repository'),
      tag: yamlPath('the tag (or digest) of the image', 'image.tag'),
    },
    {
      description:
        'Rewrites one image reference: the value comes from the access of `resource` (ociArtifact image reference, ociBlob, or localBlob with globalAccess) and is written at the YAML paths given for image, registry, repository, fullyQualifiedRepository and/or tag (at least one).',
    },
  );
export type LocalizationRule = Static<ReturnType<typeof LocalizationRule>>;

export const LocalizationSpec = Type.Object(
  {
    configRef: Type.Optional(
      ResourceReference(
        'The ConfigData resource (`config.ocm.software/v1alpha1`) of the component whose `localization` rules apply. When neither configRef nor rules is set, the component\'s resource of type `configdata.ocm.software` is used.',
      ),
    ),
    rules: Type.Optional(
      Type.Array(LocalizationRule(), {
        description: 'Inline localization rules, in the format of ConfigData\'s `localization:` list; applied after those of configRef.',
      }),
    ),
  },
  {
    description:
      'Desired state of the Localization: the rules that rewrite image references in the manifests of the input snapshot so that they point at the images named by the component\'s resources.',
  },
);
export type LocalizationSpec = Static<typeof LocalizationSpec>;

export const LocalizationStatus = statusSchema('Localization', {
  ...sharedProviderStatusProperties(),
});
export type LocalizationStatus = Static<typeof LocalizationStatus>;

function validate(obj: KubeObject): FieldError[] {
  const rules = specOf(obj).rules;
  if (!Array.isArray(rules)) return [];
  const errs: FieldError[] = [];
  rules.forEach((rule, i) => {
    if (!isRecord(rule)) return;
    const field = `spec.rules[${i}]`;
    if (!LOCALIZATION_TARGETS.some((t) => typeof rule[t] === 'string' && rule[t] !== '')) {
      errs.push(fieldError('FieldValueRequired', field, `at least one of ${LOCALIZATION_TARGETS.join(', ')} must be set`));
    }
    errs.push(...validateRelativePath(rule.file, `${field}.file`));
  });
  return errs;
}

export const localizationKind: KindDefinition = {
  group: GROUP,
  version: VERSION,
  kind: 'Localization',
  plural: 'localizations',
  singular: 'localization',
  shortNames: ['loc'],
  categories: [...CATEGORIES],
  namespaced: true,
  description:
    'A Localization is a built-in Action provider: it rewrites image references in the manifests of the input snapshot so that they point at the images named by the component\'s resources, following inline rules or the `localization` rules of a ConfigData resource of the component, keeping comments and formatting of untouched lines. It produces a new snapshot. Several Actions may share one; its status says only that its spec was accepted, and each Action reports its own snapshot and failures.',
  schema: Type.Object({
    spec: Type.Optional(LocalizationSpec),
    status: Type.Optional(LocalizationStatus),
  }),
  statusFields: ['status'],
  subresources: { status: true },
  columns: [
    { name: 'Config', type: 'string', jsonPath: '.spec.configRef.name', description: 'The ConfigData resource used.' },
    ...commonColumns(),
  ],
  strategy: { validate },
};
