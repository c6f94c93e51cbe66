// Every kind served in delivery.ocm.software/v1alpha1.
import type { KindDefinition } from './types.js';
import { actionKind } from './action.js';
import { componentDescriptorKind } from './componentdescriptor.js';
import { configuratorKind } from './configurator.js';
import { helmReleaseTemplateKind } from './helmreleasetemplate.js';
import { kustomizationTemplateKind } from './kustomizationtemplate.js';
import { localizationKind } from './localization.js';
import { ocmComponentKind } from './ocmcomponent.js';
import { ocmResourceKind } from './ocmresource.js';
import { snapshotKind } from './snapshot.js';
import { sourceKind } from './source.js';

export const ocmKinds: KindDefinition[] = [
  ocmComponentKind,
  componentDescriptorKind,
  sourceKind,
  ocmResourceKind,
  actionKind,
  localizationKind,
  configuratorKind,
  kustomizationTemplateKind,
  helmReleaseTemplateKind,
  snapshotKind,
];

export {
  actionKind,
  componentDescriptorKind,
  configuratorKind,
  helmReleaseTemplateKind,
  kustomizationTemplateKind,
  localizationKind,
  ocmComponentKind,
  ocmResourceKind,
  snapshotKind,
  sourceKind,
};
export { metaSchemas } from './meta.js';
