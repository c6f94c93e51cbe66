// A minimal real OCI image (a config and one uncompressed tar layer holding one file), built
// deterministically (the same file gives the same manifest digest), and pushed with the OCI client.
// For samples and tests that need an image whose digest can be checked, without a container tool.
import { singleFileTar } from '../ocm/archive.js';
import { digestOf, MEDIA_TYPES, type OciClient, type Ref, formatReference, parseReference } from './client.js';

export const OCI_CONFIG_MEDIA_TYPE = 'application/vnd.oci.image.config.v1+json';
export const OCI_LAYER_TAR_MEDIA_TYPE = 'application/vnd.oci.image.layer.v1.tar';

export interface MinimalImage {
  config: Buffer;
  layer: Buffer;
  manifest: Buffer;
  /** The manifest's digest: what an ociArtifactDigest/v1 digest of the image holds. */
  digest: string;
}

/** The image of one file (`path` inside the image, no leading slash). */
export function minimalImage(file: { path: string; content: Buffer | string }, opts: { created?: string } = {}): MinimalImage {
  const layer = singleFileTar(file.path.replace(/^\/+/, ''), Buffer.from(file.content));
  const created = opts.created ?? '2025-01-01T00:00:00Z';
  const config = Buffer.from(
    JSON.stringify({
      created,
      architecture: 'amd64',
      os: 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: [digestOf(layer)] },
      history: [{ created, created_by: `ocm-apiserver: one file, /${file.path.replace(/^\/+/, '')}` }],
    }),
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociManifest,
      config: { mediaType: OCI_CONFIG_MEDIA_TYPE, digest: digestOf(config), size: config.length },
      layers: [{ mediaType: OCI_LAYER_TAR_MEDIA_TYPE, digest: digestOf(layer), size: layer.length }],
    }),
  );
  return { config, layer, manifest, digest: digestOf(manifest) };
}

/** Pushes the image under `ref`'s tag (blobs, then the manifest); returns the reference and digest. */
export async function pushImage(client: OciClient, ref: Ref, image: MinimalImage): Promise<{ digest: string; ref: string }> {
  const r = parseReference(ref);
  await client.pushBlob(r, image.layer, digestOf(image.layer), image.layer.length);
  await client.pushBlob(r, image.config, digestOf(image.config), image.config.length);
  const { digest } = await client.putManifest(r, image.manifest, MEDIA_TYPES.ociManifest);
  return { digest, ref: formatReference(r) };
}
