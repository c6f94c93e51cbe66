// Action provider HelmReleaseTemplate: deploys the Helm chart in the input snapshot with Flux.
//
// 1. Finds the chart in the snapshot: a directory with Chart.yaml (the shallowest one; at the root
//    or e.g. `podinfo/Chart.yaml` as an OCM helmChart resource unpacks), else one packaged chart
//    `.tgz`. A directory is packaged as Helm does (`<chart name>/Chart.yaml, <chart name>/...`), as a
//    deterministic tar.gz (sorted entries, mtime 0), so the same chart gives the same digest; a
//    packaged chart is kept byte for byte. A chart as the `ocm` tool stores it (a local blob of media
//    type `application/vnd.oci.image.manifest.v1+tar+gzip`: an OCI image layout holding what `helm
//    push` would have pushed, unpacked by the Source or still an archive) is taken from the layout:
//    its main manifest, config and chart layer, each checked against its digest (and the manifest
//    against the resource's ociArtifactDigest in the component descriptor), and pushed unchanged, so
//    Flux pulls the very artifact the component version records.
// 2. Pushes it to the snapshot registry as a Helm OCI artifact (what `helm push` writes): config
//    `application/vnd.cncf.helm.config.v1+json` (the Chart.yaml metadata as JSON), one layer
//    `application/vnd.cncf.helm.chart.content.v1.tar+gzip` (the packaged chart), to repository
//    `<namespace>/<OCMComponent>/action/<Action>/<provider>/chart` (the Action's own place with
//    `/chart`; see snapshotRepository), tagged with the input snapshot's tag.
// 3. Writes, named after the Action and owned by it, a Flux OCIRepository for that artifact (pinned
//    by digest, `layerSelector` with the chart media type and `operation: copy`, as Flux wants for
//    charts) and a Flux HelmRelease (helm.toolkit.fluxcd.io/v2): `spec.template` passed through,
//    `chartRef` set to the OCIRepository.
// With `spec.waitForReady` the output is ready only once the HelmRelease is Ready for the current
// generation and (when Flux reports `lastAttemptedRevisionDigest`) for the chart just pushed.
import { createHash } from 'node:crypto';
import YAML from 'yaml';
import { findResource } from '../ocm/descriptor.js';
import { OCI_ARTIFACT_DIGEST } from '../ocm/signing.js';
import { DigestMismatch } from '../reconcilers/runtime/errors.js';
import type { KubeObject } from '../kinds/types.js';
import { MEDIA_TYPES, parseReference, type OciClient } from '../registry/client.js';
import { packSnapshot, snapshotRepository } from '../registry/snapshot.js';
import { archiveToFiles } from './content.js';
import {
  createOrReplace,
  deleteOwned,
  desiredObject,
  FluxProviderError,
  fluxReadiness,
  HELM_RELEASE,
  inClusterURL,
  intervalOf,
  OCI_REPOSITORY,
  objectKey,
  ociRepositorySpec,
  registryHost,
  target,
  templateOf,
} from './flux.js';
import type { ActionContext, ActionProvider, Files } from './types.js';

export const HELM_CONFIG_MEDIA_TYPE = 'application/vnd.cncf.helm.config.v1+json';
export const HELM_CHART_MEDIA_TYPE = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isGzip = (b: Buffer) => b.length > 2 && b[0] === 0x1f && b[1] === 0x8b;
const depth = (p: string) => p.split('/').length;
const dirOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');

/** The fields of Helm's chart.Metadata, in the order Go marshals them. */
const METADATA_FIELDS = [
  'name',
  'home',
  'sources',
  'version',
  'description',
  'keywords',
  'maintainers',
  'icon',
  'apiVersion',
  'condition',
  'tags',
  'appVersion',
  'deprecated',
  'annotations',
  'kubeVersion',
  'dependencies',
  'type',
] as const;
const STRING_FIELDS = new Set(['name', 'home', 'version', 'description', 'icon', 'apiVersion', 'condition', 'tags', 'appVersion', 'kubeVersion', 'type']);

export interface ChartMetadata {
  name: string;
  version: string;
  apiVersion: string;
  [k: string]: unknown;
}

/** Chart.yaml → Helm's metadata (validated as far as Helm insists), and the config blob `helm push` writes. */
export function chartMetadata(chartYaml: Buffer, where: string): { metadata: ChartMetadata; config: Buffer } {
  let parsed: YAML.Document.Parsed;
  let doc: unknown;
  try {
    parsed = YAML.parseDocument(chartYaml.toString('utf8'));
    if (parsed.errors.length) throw parsed.errors[0];
    doc = parsed.toJS();
  } catch (err) {
    throw new FluxProviderError('InvalidChart', `${where}: Chart.yaml is not YAML: ${(err as Error).message}`, false);
  }
  if (!isRecord(doc)) throw new FluxProviderError('InvalidChart', `${where}: Chart.yaml is not a mapping`, false);
  const out: Record<string, unknown> = {};
  for (const f of METADATA_FIELDS) {
    let v = doc[f];
    // YAML reads `version: 1.0` or `appVersion: 2` as numbers; Helm's fields are strings: keep the text as written.
    if (STRING_FIELDS.has(f) && (typeof v === 'number' || typeof v === 'boolean')) {
      const node = parsed.get(f, true);
      v = YAML.isScalar(node) && typeof node.source === 'string' ? node.source : String(v);
    }
    // Go's omitempty: no empty strings, lists, maps, false.
    if (v === undefined || v === null || v === '' || v === false || (Array.isArray(v) && !v.length) || (isRecord(v) && !Object.keys(v).length)) continue;
    out[f] = v;
  }
  for (const f of ['apiVersion', 'name', 'version'] as const) {
    if (typeof out[f] !== 'string') throw new FluxProviderError('InvalidChart', `${where}: Chart.yaml has no ${f}`, false);
  }
  const name = out.name as string;
  if (name === '.' || name === '..' || /[/\\\s]/.test(name)) throw new FluxProviderError('InvalidChart', `${where}: chart name "${name}" cannot be a directory name`, false);
  return { metadata: out as ChartMetadata, config: Buffer.from(JSON.stringify(out)) };
}

export interface PackagedChart {
  metadata: ChartMetadata;
  config: Buffer;
  tgz: Buffer;
  /** Where in the snapshot the chart came from. */
  from: string;
  /** From an OCI layout: the manifest as stored there (pushed unchanged) and its digest. */
  manifest?: { bytes: Buffer; digest: string };
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** A blob of the layout at `prefix` (OCI `blobs/sha256/<hex>` or OCM's `blobs/sha256.<hex>`), checked against its digest and size. */
function layoutBlob(files: Files, prefix: string, d: { digest?: unknown; size?: unknown }, what: string, where: string): Buffer {
  const digest = String(d.digest ?? '');
  if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw new FluxProviderError('InvalidChart', `${where}: the ${what} has digest "${digest}", not a sha256 digest`, false);
  const hex = digest.slice(7);
  const blob = files[`${prefix}blobs/sha256/${hex}`] ?? files[`${prefix}blobs/sha256.${hex}`];
  if (!blob) throw new FluxProviderError('InvalidChart', `${where}: the ${what} ${digest} is not among the layout's blobs`, false);
  const actual = sha256(blob);
  if (actual !== digest) throw new DigestMismatch(`${where}: the ${what} ${digest} holds bytes with digest ${actual}`);
  if (d.size !== undefined && d.size !== blob.length) throw new DigestMismatch(`${where}: the ${what} ${digest} is ${blob.length} bytes, its descriptor says ${String(d.size)}`);
  return blob;
}

const parseJson = (b: Buffer, what: string, where: string): any => {
  try {
    return JSON.parse(b.toString('utf8'));
  } catch {
    throw new FluxProviderError('InvalidChart', `${where}: ${what} is not JSON`, false);
  }
};

/** The Helm chart in an OCI image layout at `prefix` (`<prefix>oci-layout`, `<prefix>index.json`). */
export async function chartFromOciLayout(files: Files, prefix: string, where: string): Promise<PackagedChart> {
  const index = parseJson(files[`${prefix}index.json`], 'index.json', where);
  const manifests: any[] = Array.isArray(index?.manifests) ? index.manifests : [];
  const main = index?.annotations?.['software.ocm/main'] ?? (manifests.length === 1 ? manifests[0]?.digest : undefined);
  if (typeof main !== 'string') throw new FluxProviderError('AmbiguousChart', `${where}: the OCI layout holds ${manifests.length} manifests and no software.ocm/main annotation`, false);
  const entry = manifests.find((m) => m?.digest === main) ?? { digest: main };
  const bytes = layoutBlob(files, prefix, entry, 'manifest', where);
  const m = parseJson(bytes, `manifest ${main}`, where);
  if (m?.mediaType !== undefined && m.mediaType !== MEDIA_TYPES.ociManifest) {
    throw new FluxProviderError('NoHelmChart', `${where}: the OCI layout's main artifact is a ${m.mediaType}, not an image manifest holding a chart`, false);
  }
  const layers: any[] = (Array.isArray(m?.layers) ? m.layers : []).filter((l: any) => l?.mediaType === HELM_CHART_MEDIA_TYPE);
  if (layers.length !== 1 || m?.config?.mediaType !== HELM_CONFIG_MEDIA_TYPE) {
    throw new FluxProviderError('NoHelmChart', `${where}: the OCI layout's main manifest ${main} is not a Helm chart (config ${m?.config?.mediaType ?? 'none'}, ${layers.length} ${HELM_CHART_MEDIA_TYPE} layers)`, false);
  }
  const config = layoutBlob(files, prefix, m.config, 'chart config', where);
  const tgz = layoutBlob(files, prefix, layers[0], 'chart layer', where);
  const chart = await readPackagedChart(tgz, `${where} (layer ${layers[0].digest})`);
  if (!chart) throw new FluxProviderError('InvalidChart', `${where}: the chart layer ${layers[0].digest} is not a packaged chart (one top directory with Chart.yaml)`, false);
  return { ...chart, config, from: where, manifest: { bytes, digest: main } };
}

const layoutPrefixes = (files: Files) =>
  Object.keys(files)
    .filter((p) => p === 'oci-layout' || p.endsWith('/oci-layout'))
    .map((p) => p.slice(0, p.length - 'oci-layout'.length))
    .filter((pre) => files[`${pre}index.json`]);

/** A packaged chart: gzip tar whose entries all sit under one `<dir>/`, with `<dir>/Chart.yaml`. */
async function readPackagedChart(tgz: Buffer, where: string): Promise<PackagedChart | undefined> {
  if (!isGzip(tgz)) return undefined;
  let files: Files;
  try {
    files = await archiveToFiles(tgz);
  } catch {
    return undefined;
  }
  const tops = new Set(Object.keys(files).map((p) => p.split('/')[0]));
  const [top] = tops;
  if (tops.size !== 1 || !files[`${top}/Chart.yaml`]) return undefined;
  return { ...chartMetadata(files[`${top}/Chart.yaml`], where), tgz, from: where };
}

/** Finds the chart in the snapshot's files and packages it as `helm package` lays it out. */
export async function packageChart(files: Files): Promise<PackagedChart> {
  const paths = Object.keys(files);
  const charts = paths.filter((p) => p === 'Chart.yaml' || p.endsWith('/Chart.yaml'));
  if (charts.length) {
    const min = Math.min(...charts.map(depth));
    const top = charts.filter((p) => depth(p) === min);
    if (top.length > 1) throw new FluxProviderError('AmbiguousChart', `the input snapshot holds several charts side by side (${top.join(', ')}); a HelmReleaseTemplate deploys one`, false);
    const dir = dirOf(top[0]);
    const where = top[0];
    const { metadata, config } = chartMetadata(files[top[0]], where);
    const prefix = dir ? `${dir}/` : '';
    const chartFiles: Record<string, Buffer> = {};
    for (const p of paths) if (p.startsWith(prefix)) chartFiles[`${metadata.name}/${p.slice(prefix.length)}`] = files[p];
    const { tgz } = await packSnapshot({ files: chartFiles });
    return { metadata, config, tgz, from: dir || '.' };
  }
  const layouts = layoutPrefixes(files).sort((a, b) => depth(a) - depth(b) || a.localeCompare(b));
  if (layouts.length > 1) throw new FluxProviderError('AmbiguousChart', `the input snapshot holds several OCI layouts (${layouts.map((l) => l || '.').join(', ')}); a HelmReleaseTemplate deploys one`, false);
  if (layouts.length === 1) return chartFromOciLayout(files, layouts[0], layouts[0] ? `OCI layout ${layouts[0]}` : 'the OCI layout');
  const archives = paths.filter((p) => /\.tgz$|\.tar\.gz$|\.tar$/.test(p)).sort((a, b) => depth(a) - depth(b) || a.localeCompare(b));
  const found: PackagedChart[] = [];
  for (const p of archives) {
    const c = (await readPackagedChart(files[p], p)) ?? (await layoutInArchive(files[p], p));
    if (c && (!found.length || depth(p) === depth(found[0].from))) found.push(c);
  }
  if (found.length === 1) return found[0];
  if (found.length > 1) throw new FluxProviderError('AmbiguousChart', `the input snapshot holds several packaged charts (${found.map((c) => c.from).join(', ')}); a HelmReleaseTemplate deploys one`, false);
  const shown = paths.slice(0, 10).join(', ') + (paths.length > 10 ? ', …' : '');
  throw new FluxProviderError('NoHelmChart', `the input snapshot holds no Helm chart (no Chart.yaml, no packaged chart .tgz): ${shown || 'no files'}`, false);
}

/** An archive that is an OCI layout (e.g. the `ocm` tool's blob kept as one file): its chart. */
async function layoutInArchive(data: Buffer, where: string): Promise<PackagedChart | undefined> {
  let files: Files;
  try {
    files = await archiveToFiles(data); // a tar.gz or a plain tar
  } catch {
    return undefined;
  }
  return files['oci-layout'] && files['index.json'] ? chartFromOciLayout(files, '', `OCI layout ${where}`) : undefined;
}

/** `host:port` of the snapshot registry as this process reaches it. */
function pushHost(ctx: ActionContext): string {
  if (ctx.snapshotHost) return registryHost(ctx.snapshotHost);
  return parseReference(ctx.input.repositoryURL.replace(/^oci:\/\//, '')).host;
}

/** Pushes the chart as `helm push` would; returns where it is. */
export async function pushChart(
  client: OciClient,
  o: { host: string; namespace: string; component: string; action: string; provider: string; tag: string; chart: PackagedChart; annotations?: Record<string, string> },
): Promise<{ repository: string; tag: string; digest: string; layerDigest: string; size: number }> {
  const { repository } = snapshotRepository({ namespace: o.namespace, component: o.component, kind: 'Action', name: o.action, provider: o.provider }, 'chart');
  const base = parseReference(`${o.host}/${repository}`);
  const layer = await client.pushBlob(base, o.chart.tgz);
  const config = await client.pushBlob(base, o.chart.config);
  if (o.chart.manifest) {
    // The artifact exactly as the layout holds it (its digest is what the component version records).
    const { digest } = await client.putManifest({ ...base, tag: o.tag }, o.chart.manifest.bytes, MEDIA_TYPES.ociManifest);
    const head = await client.headManifest({ ...base, tag: o.tag });
    if (digest !== o.chart.manifest.digest || head?.digest !== digest) {
      throw new FluxProviderError('ChartPushFailed', `the registry serves ${head?.digest ?? 'nothing'} for ${repository}:${o.tag}, not the chart manifest ${o.chart.manifest.digest}`);
    }
    return { repository, tag: o.tag, digest, layerDigest: layer.digest, size: layer.size };
  }
  const m = o.chart.metadata;
  const annotations: Record<string, string> = {
    'org.opencontainers.image.title': m.name,
    'org.opencontainers.image.version': m.version,
    ...(typeof m.description === 'string' ? { 'org.opencontainers.image.description': m.description } : {}),
    ...(typeof m.home === 'string' ? { 'org.opencontainers.image.url': m.home } : {}),
    ...(Array.isArray(m.sources) && typeof m.sources[0] === 'string' ? { 'org.opencontainers.image.source': m.sources[0] } : {}),
    ...o.annotations,
  };
  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: HELM_CONFIG_MEDIA_TYPE, digest: config.digest, size: config.size },
    layers: [{ mediaType: HELM_CHART_MEDIA_TYPE, digest: layer.digest, size: layer.size }],
    annotations,
  };
  const { digest } = await client.putManifest({ ...base, tag: o.tag }, manifest, MEDIA_TYPES.ociManifest);
  const head = await client.headManifest({ ...base, tag: o.tag });
  if (head?.digest !== digest) {
    throw new FluxProviderError('ChartPushFailed', `the registry serves ${head?.digest ?? 'nothing'} for ${repository}:${o.tag}, not the chart manifest just pushed (${digest})`);
  }
  return { repository, tag: o.tag, digest, layerDigest: layer.digest, size: layer.size };
}

/**
 * A chart taken from an OCI layout whose input snapshot is a copy of a component resource with an
 * ociArtifactDigest: the layout's main manifest must be the one that digest names.
 */
function checkAgainstDescriptor(ctx: ActionContext, manifestDigest: string) {
  const id = (ctx.input.snapshot.spec as { identity?: { resourceName?: string; extraIdentity?: Record<string, string> } } | undefined)?.identity;
  if (!id?.resourceName) return;
  const resource = findResource(ctx.descriptor, id.resourceName, id.extraIdentity);
  const d = resource?.digest;
  if (!d || d.normalisationAlgorithm !== OCI_ARTIFACT_DIGEST) return;
  if (`sha256:${d.value.toLowerCase()}` !== manifestDigest) {
    throw new DigestMismatch(`the chart's OCI manifest is ${manifestDigest}, but resource "${id.resourceName}" of ${ctx.descriptor.component.name}:${ctx.descriptor.component.version} records ${OCI_ARTIFACT_DIGEST} ${d.value}`);
  }
}

export const helmReleaseTemplateProvider: ActionProvider = {
  kind: 'HelmReleaseTemplate',

  async run(ctx) {
    const { template, waitForReady } = templateOf(ctx.provider);
    const { name, namespace } = target(ctx.action);
    const interval = intervalOf(template);
    if (!ctx.snapshotClient) {
      throw new FluxProviderError('NoRegistryClient', 'HelmReleaseTemplate needs a snapshot registry client (ActionContext.snapshotClient) to push the chart', false);
    }
    const chart = await packageChart(ctx.input.files);
    if (chart.manifest) checkAgainstDescriptor(ctx, chart.manifest.digest);
    const host = pushHost(ctx);
    let pushed;
    try {
      pushed = await pushChart(ctx.snapshotClient, {
        host,
        namespace,
        component: ctx.component.metadata.name ?? 'component',
        action: name,
        provider: ctx.provider.metadata.name ?? 'helmreleasetemplate',
        tag: ctx.input.tag,
        chart,
        annotations: {
          'delivery.ocm.software/producer': `${ctx.action.kind}/${name}`,
          'delivery.ocm.software/input-snapshot': ctx.input.snapshot.metadata.name ?? '',
        },
      });
    } catch (err) {
      if (err instanceof FluxProviderError) throw err;
      throw new FluxProviderError('ChartPushFailed', `pushing chart ${chart.metadata.name}:${chart.metadata.version} to ${host}: ${(err as Error).message}`);
    }

    const repo = desiredObject(
      ctx,
      OCI_REPOSITORY,
      ociRepositorySpec({
        url: inClusterURL(`${host}/${pushed.repository}`, ctx.snapshotRegistry.url),
        tag: pushed.tag,
        digest: pushed.digest,
        interval,
        tlsSecretName: ctx.snapshotRegistry.tlsSecretName,
        mediaType: HELM_CHART_MEDIA_TYPE,
        operation: 'copy',
      }),
    );
    delete template.chart; // both forbidden by the kind's validation; chart and chartRef exclude each other
    delete template.chartRef;
    const hr = desiredObject(ctx, HELM_RELEASE, { ...template, interval, chartRef: { kind: OCI_REPOSITORY.kind, name } });

    const wroteRepo = await createOrReplace(ctx.host, repo);
    const wroteHr = await createOrReplace(ctx.host, hr);
    const wrote = [objectKey(wroteRepo.object), objectKey(wroteHr.object)];
    const what = `chart ${chart.metadata.name}:${chart.metadata.version} (${pushed.digest})`;
    if (!waitForReady) return { ready: true, message: `${wrote.join(' and ')} deploy ${what}`, wrote };
    const readiness = fluxReadiness(
      wroteHr.object,
      (st) => {
        if (typeof st.lastAttemptedRevisionDigest === 'string') return st.lastAttemptedRevisionDigest;
        const latest = Array.isArray(st.history) ? st.history[0] : undefined;
        return isRecord(latest) && typeof latest.ociDigest === 'string' ? latest.ociDigest : undefined;
      },
      pushed.digest,
    );
    return { ...readiness, wrote };
  },

  async cleanup(ctx: Pick<ActionContext, 'action' | 'provider' | 'host'>) {
    // The HelmRelease first, so Flux uninstalls the release while its chart source still exists.
    await deleteOwned(ctx.host, HELM_RELEASE, ctx.action as KubeObject);
    await deleteOwned(ctx.host, OCI_REPOSITORY, ctx.action as KubeObject);
  },
};
