import { Type, type Static } from '@sinclair/typebox';
import type { FieldError, KindDefinition, KubeObject } from './types.js';
import {
  CATEGORIES,
  CONFIG_KEY_PATTERN,
  GROUP,
  ResourceReference,
  VERSION,
  anyValue,
  commonColumns,
  fieldError,
  isRecord,
  objectName,
  sharedProviderStatusProperties,
  specOf,
  statusSchema,
  stringEnum,
} from './common.js';

export const VALUES_FROM_KINDS = ['ConfigMap', 'Secret'] as const;

/** A map of configuration values, or (as in the design walkthrough) a list of maps merged in order. */
export type ConfiguratorValues = Record<string, unknown> | Record<string, unknown>[];

export const ValuesReference = () =>
  Type.Object(
    {
      kind: stringEnum(VALUES_FROM_KINDS, { description: 'Kind of the object holding the values: ConfigMap or Secret.' }),
      name: objectName('Name of the ConfigMap or Secret, in the same namespace.'),
      key: Type.Optional(
        Type.String({
          description: 'Key of the data entry holding the values, as a YAML or JSON map. Defaults to `values.yaml`.',
          minLength: 1,
          maxLength: 253,
          pattern: CONFIG_KEY_PATTERN,
          default: 'values.yaml',
        }),
      ),
      optional: Type.Optional(
        Type.Boolean({ description: 'When true, a missing object or key is ignored instead of failing the run. Defaults to false.' }),
      ),
    },
    { description: 'A ConfigMap or Secret data entry holding configuration values.' },
  );
export type ValuesReference = Static<ReturnType<typeof ValuesReference>>;

export const ConfiguratorSpec = Type.Object(
  {
    configRef: Type.Optional(
      ResourceReference(
        'The ConfigData resource (`config.ocm.software/v1alpha1`) of the component that supplies `configuration.defaults`, `configuration.schema` and `configuration.rules`. Omitted: the component\'s resource of type `configdata.ocm.software`.',
      ),
    ),
    values: Type.Optional(
      anyValue<ConfiguratorValues>(
        'Configuration values, merged over the ConfigData defaults: a map (`{replicas: 2, message: hi}`), or a list of maps merged in order. Any YAML is kept as written; the merged values are validated against the ConfigData\'s JSON schema.',
      ),
    ),
    valuesFrom: Type.Optional(
      Type.Array(ValuesReference(), {
        description: 'ConfigMaps and Secrets with further values, merged in order after `values` (later entries win).',
      }),
    ),
  },
  {
    description:
      'Desired state of the Configurator: the values to apply to the input snapshot. Order of precedence, lowest first: ConfigData defaults, `values`, `valuesFrom`; the result is substituted into the files by the ConfigData\'s `configuration.rules` (`value: (( name ))`, `file`, `path`).',
  },
);
export type ConfiguratorSpec = Static<typeof ConfiguratorSpec>;

export const ConfiguratorStatus = statusSchema('Configurator', {
  ...sharedProviderStatusProperties(),
});
export type ConfiguratorStatus = Static<typeof ConfiguratorStatus>;

/** `spec.values` as a list of maps to merge in order (a single map becomes a list of one). */
export function configuratorValues(obj: KubeObject): Record<string, unknown>[] {
  const v = specOf(obj).values;
  if (Array.isArray(v)) return v.filter(isRecord);
  return isRecord(v) ? [v] : [];
}

/** Items named one by one (a Status names at most 1000 field errors, apiserver/errors.ts). */
const MAX_LISTED = 1000;

function validate(obj: KubeObject): FieldError[] {
  const v = specOf(obj).values;
  if (v === undefined || v === null || isRecord(v)) return [];
  if (Array.isArray(v)) {
    const errs: FieldError[] = [];
    let more = 0;
    for (let i = 0; i < v.length; i++) {
      if (isRecord(v[i])) continue;
      if (errs.length < MAX_LISTED) errs.push(fieldError('FieldValueTypeInvalid', `spec.values[${i}]`, 'must be a map of values'));
      else more++; // (a list of a million numbers: no million errors)
    }
    if (more) errs.push(fieldError('FieldValueTypeInvalid', 'spec.values', `and ${more} more items that are not maps`));
    return errs;
  }
  return [fieldError('FieldValueTypeInvalid', 'spec.values', 'must be a map of values or a list of maps')];
}

export const configuratorKind: KindDefinition = {
  group: GROUP,
  version: VERSION,
  kind: 'Configurator',
  plural: 'configurators',
  singular: 'configurator',
  shortNames: ['cfg'],
  categories: [...CATEGORIES],
  namespaced: true,
  description:
    'A Configurator is a built-in Action provider: it merges the defaults of the component\'s ConfigData with `values` and values from ConfigMaps and Secrets, validates them against the ConfigData\'s JSON schema, and substitutes them into the files of the input snapshot following the ConfigData\'s configuration rules. It produces a new snapshot. Several Actions may share one; its status says only that its spec was accepted, and each Action reports its own snapshot and failures.',
  schema: Type.Object({
    spec: Type.Optional(ConfiguratorSpec),
    status: Type.Optional(ConfiguratorStatus),
  }),
  statusFields: ['status'],
  subresources: { status: true },
  columns: [
    { name: 'Config', type: 'string', jsonPath: '.spec.configRef.name', description: 'The ConfigData resource used.' },
    ...commonColumns(),
  ],
  strategy: { validate },
};
