// Flux objects, stored as-is in standalone mode so the KustomizationTemplate/HelmReleaseTemplate
// providers have somewhere to write them (in a cluster, Flux's own CRDs serve them).
import { Type } from '@sinclair/typebox';
import { ageColumn, freeFormObject, readyColumn, statusColumn } from '../common.js';
import type { KindDefinition } from '../types.js';

const fluxKind = (group: string, version: string, kind: string, plural: string, shortNames: string[], what: string): KindDefinition => ({
  group,
  version,
  kind,
  plural,
  singular: kind.toLowerCase(),
  shortNames,
  categories: ['flux'],
  namespaced: true,
  description: `${kind} (${group}/${version}) ${what} Stored as written; in a cluster Flux reconciles it.`,
  schema: Type.Object({
    spec: Type.Optional(freeFormObject(`The Flux ${kind} spec, as Flux defines it.`)),
    status: Type.Optional(freeFormObject(`The Flux ${kind} status, as Flux reports it.`)),
  }),
  statusFields: ['status'],
  subresources: { status: true },
  columns: [readyColumn(), statusColumn(), ageColumn()],
});

export const fluxKinds: KindDefinition[] = [
  fluxKind('source.toolkit.fluxcd.io', 'v1', 'OCIRepository', 'ocirepositories', ['ocirepo'], 'fetches an OCI artifact for Flux.'),
  fluxKind('source.toolkit.fluxcd.io', 'v1beta2', 'OCIRepository', 'ocirepositories', ['ocirepo'], 'fetches an OCI artifact for Flux.'),
  fluxKind('kustomize.toolkit.fluxcd.io', 'v1', 'Kustomization', 'kustomizations', ['ks'], 'applies the manifests of a source.'),
  fluxKind('helm.toolkit.fluxcd.io', 'v2', 'HelmRelease', 'helmreleases', ['hr'], 'installs a Helm chart.'),
];
