import { Type, type Static } from '@sinclair/typebox';
import type { KindDefinition } from './types.js';
import {
  CATEGORIES,
  GROUP,
  VERSION,
  commonColumns,
  freeFormObject,
  interval,
  namespaceName,
  sharedProviderStatusProperties,
  statusSchema,
} from './common.js';
import { validateTemplate, waitForReady } from './kustomizationtemplate.js';

/** Fields of the template that the provider fills in and that users must not set. */
export const HELMRELEASE_PROVIDER_FIELDS = ['chartRef', 'chart'] as const;

export const HelmReleaseTemplateSpec = Type.Object(
  {
    template: freeFormObject(
      'The spec of the Flux HelmRelease (helm.toolkit.fluxcd.io/v2) to generate. Any HelmRelease spec field may be given and is passed through; `chartRef` is set by the provider to the generated OCIRepository holding the chart.',
      {
        interval: Type.Optional(
          interval('Interval at which Flux reconciles the HelmRelease (and the generated OCIRepository), as a Go duration.', { default: '10m' }),
        ),
        releaseName: Type.Optional(
          Type.String({ description: 'Name of the Helm release. Defaults to `[targetNamespace-]name` of the HelmRelease, as Flux does.', minLength: 1, maxLength: 53 }),
        ),
        targetNamespace: Type.Optional(namespaceName('Namespace the chart is installed into.')),
        storageNamespace: Type.Optional(namespaceName('Namespace where Helm stores the release. Defaults to the namespace of the HelmRelease.')),
        timeout: Type.Optional(interval('Timeout for Helm operations (install, upgrade, test, rollback), as a Go duration.')),
        values: Type.Optional(freeFormObject('Helm values for the chart, merged over its defaults (and over values given by `valuesFrom`).')),
        install: Type.Optional(freeFormObject('Flux HelmRelease install settings (`createNamespace`, `remediation`, ...).')),
        upgrade: Type.Optional(freeFormObject('Flux HelmRelease upgrade settings (`remediation`, `cleanupOnFail`, ...).')),
      },
    ),
    waitForReady: Type.Optional(waitForReady('HelmRelease')),
  },
  { description: 'Desired state of the HelmReleaseTemplate: the Flux HelmRelease to generate for the chart in the input snapshot.' },
);
export type HelmReleaseTemplateSpec = Static<typeof HelmReleaseTemplateSpec>;

// Shared by any number of Actions: which Flux objects each one wrote is in that Action's status.
export const HelmReleaseTemplateStatus = statusSchema('HelmReleaseTemplate', {
  ...sharedProviderStatusProperties(),
});
export type HelmReleaseTemplateStatus = Static<typeof HelmReleaseTemplateStatus>;

export const helmReleaseTemplateKind: KindDefinition = {
  group: GROUP,
  version: VERSION,
  kind: 'HelmReleaseTemplate',
  plural: 'helmreleasetemplates',
  singular: 'helmreleasetemplate',
  shortNames: ['hrt'],
  categories: [...CATEGORIES],
  namespaced: true,
  description:
    'A HelmReleaseTemplate is a built-in Action provider that deploys a Helm chart resource with Flux: the chart in the input snapshot is stored with Helm\'s OCI media types, and the server writes to the host cluster a Flux OCIRepository pointing at it and a Flux HelmRelease made from `spec.template` with `chartRef` to that OCIRepository, both owned by the Action.',
  schema: Type.Object({
    spec: HelmReleaseTemplateSpec,
    status: Type.Optional(HelmReleaseTemplateStatus),
  }),
  statusFields: ['status'],
  subresources: { status: true },
  columns: [
    { name: 'Release', type: 'string', jsonPath: '.spec.template.releaseName', description: 'Name of the Helm release.' },
    { name: 'Target Namespace', type: 'string', jsonPath: '.spec.template.targetNamespace', description: 'Namespace the chart is installed into.', priority: 1 },
    ...commonColumns(),
  ],
  strategy: { validate: (obj) => validateTemplate(obj, HELMRELEASE_PROVIDER_FIELDS) },
};
