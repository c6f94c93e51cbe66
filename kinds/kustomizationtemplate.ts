import { Type, type Static } from '@sinclair/typebox';
import type { FieldError, KindDefinition, KubeObject } from './types.js';
import {
  CATEGORIES,
  GROUP,
  VERSION,
  commonColumns,
  fieldError,
  freeFormObject,
  interval,
  isRecord,
  namespaceName,
  specOf,
  sharedProviderStatusProperties,
  statusSchema,
  validateInterval,
} from './common.js';


export const waitForReady = (what: string) =>
  Type.Boolean({
    description: `When true, the Action becomes Ready only once the generated ${what} reports Ready; otherwise as soon as the Flux objects are written. Defaults to false.`,
  });

/** Fields of the template that the provider fills in and that users must not set. */
export const KUSTOMIZATION_PROVIDER_FIELDS = ['sourceRef'] as const;

export const KustomizationTemplateSpec = Type.Object(
  {
    template: freeFormObject(
      'The spec of the Flux Kustomization (kustomize.toolkit.fluxcd.io/v1) to generate. Any Kustomization spec field may be given and is passed through; `sourceRef` is set by the provider to the generated OCIRepository.',
      {
        interval: Type.Optional(
          interval('Interval at which Flux reconciles the Kustomization (and the generated OCIRepository), as a Go duration.', { default: '10m' }),
        ),
        path: Type.Optional(
          Type.String({ description: 'Path to the directory with the manifests (or kustomization.yaml) inside the snapshot, e.g. `./kubernetes`. Defaults to the root of the snapshot.' }),
        ),
        prune: Type.Optional(
          Type.Boolean({ description: 'Whether Flux garbage-collects objects that were applied before but are no longer in the snapshot.', default: true }),
        ),
        targetNamespace: Type.Optional(namespaceName('Namespace that Flux sets on every object it applies (overriding theirs).')),
        timeout: Type.Optional(interval('Timeout for Flux\'s apply and health-check operations, as a Go duration.')),
        wait: Type.Optional(Type.Boolean({ description: 'Whether Flux waits for every applied object to become ready.' })),
        force: Type.Optional(Type.Boolean({ description: 'Whether Flux recreates objects whose immutable fields changed.' })),
      },
    ),
    waitForReady: Type.Optional(waitForReady('Kustomization')),
  },
  {
    description:
      'Desired state of the KustomizationTemplate: the Flux Kustomization to generate for the input snapshot.',
  },
);
export type KustomizationTemplateSpec = Static<typeof KustomizationTemplateSpec>;

// Shared by any number of Actions: which Flux objects each one wrote is in that Action's status.
export const KustomizationTemplateStatus = statusSchema('KustomizationTemplate', {
  ...sharedProviderStatusProperties(),
});
export type KustomizationTemplateStatus = Static<typeof KustomizationTemplateStatus>;

/** Shared by both Flux deployers: intervals, and fields the provider sets itself. */
export function validateTemplate(obj: KubeObject, providerFields: readonly string[]): FieldError[] {
  const template = specOf(obj).template;
  if (!isRecord(template)) return [];
  const errs: FieldError[] = [
    ...validateInterval(template.interval, 'spec.template.interval'),
    ...validateInterval(template.timeout, 'spec.template.timeout'),
  ];
  for (const f of providerFields) {
    if (template[f] !== undefined) errs.push(fieldError('FieldValueForbidden', `spec.template.${f}`, 'is set by the provider to the OCIRepository of the input snapshot'));
  }
  return errs;
}

export const kustomizationTemplateKind: KindDefinition = {
  group: GROUP,
  version: VERSION,
  kind: 'KustomizationTemplate',
  plural: 'kustomizationtemplates',
  singular: 'kustomizationtemplate',
  shortNames: ['kt'],
  categories: [...CATEGORIES],
  namespaced: true,
  description:
    'A KustomizationTemplate is a built-in Action provider that deploys the input snapshot with Flux: it writes to the host cluster a Flux OCIRepository pointing at the snapshot and a Flux Kustomization made from `spec.template`, both owned by the Action and updated when the snapshot changes.',
  schema: Type.Object({
    spec: KustomizationTemplateSpec,
    status: Type.Optional(KustomizationTemplateStatus),
  }),
  statusFields: ['status'],
  subresources: { status: true },
  columns: [
    { name: 'Path', type: 'string', jsonPath: '.spec.template.path', description: 'Path inside the snapshot.' },
    { name: 'Target Namespace', type: 'string', jsonPath: '.spec.template.targetNamespace', description: 'Namespace the objects are applied to.', priority: 1 },
    ...commonColumns(),
  ],
  strategy: { validate: (obj) => validateTemplate(obj, KUSTOMIZATION_PROVIDER_FIELDS) },
};
