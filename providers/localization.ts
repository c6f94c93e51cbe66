// Action provider Localization: rewrites image references in the files of the input snapshot so
// that they point at the images named by the component's resources.
//
// Rules (kinds/localization.ts LocalizationRule, the ConfigData `localization:` format of the Go
// ocm-controller): `resource` names a resource by identity, `file` a file of the snapshot, and one
// or more of `image`, `registry`, `repository`, `fullyQualifiedRepository`, `tag` a YAML path in
// that file receiving that part of the resource's image reference. Where the rules come from:
//   - spec.configRef: the `localization` rules of that ConfigData, then spec.rules (inline);
//   - no configRef but spec.rules: only those;
//   - neither: the rules of the component's resource of type configdata.ocm.software.
// Rules of a ConfigData name resources of the component holding the ConfigData (so a configRef
// with a referencePath localizes with the referenced component's images); inline rules name
// resources of the Action's component. Either may add its own referencePath.
import { accessKind } from '../ocm/repository.js';
import type { Resource } from '../ocm/descriptor.js';
import { LOCALIZATION_TARGETS } from '../kinds/localization.js';
import { specOf } from '../kinds/common.js';
import {
  type ComponentHandle,
  ComponentResolver,
  TransformError,
  componentName,
  loadConfigData,
  resourceText,
  toResourceRef,
} from './configdata.js';
import { SnapshotEdits } from './edit-worker.js';
import type { ActionProvider } from './types.js';

export type LocalizationTarget = (typeof LOCALIZATION_TARGETS)[number];

/** The parts of an image reference a rule can write. */
export interface ImageParts {
  /** The reference as the resource's access gives it: `ghcr.io/acme/app:1.0`, `…@sha256:…`. */
  image: string;
  /** `ghcr.io`; `docker.io` for Docker Hub short names. */
  registry: string;
  /** `acme/app`; `library/nginx` for a Docker Hub official image. */
  repository: string;
  /** `ghcr.io/acme/app`. */
  fullyQualifiedRepository: string;
  /** The digest (`sha256:…`) when the reference has one, else the tag, else `latest`. */
  tag: string;
}

const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
const REPOSITORY = new RegExp(`^${PATH_COMPONENT}(?:/${PATH_COMPONENT})*$`);
const HOST = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;

/**
 * Splits an image reference as Docker does: the first path component is a registry when it has
 * a `.` or `:` or is `localhost`, otherwise the image is on Docker Hub (`docker.io`, and a
 * one-component name is under `library/`). `host/repo:tag@digest` keeps both in `image`.
 */
export function parseImageReference(ref: string): ImageParts {
  const image = ref.trim().replace(/^oci:\/\//i, '');
  const bad = (why: string) => new TransformError(`${JSON.stringify(ref)} is not a valid image reference: ${why}`);
  let rest = image;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw bad(`invalid digest ${JSON.stringify(digest)}`);
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw bad(`invalid tag ${JSON.stringify(tag)}`);
  }
  let registry = 'docker.io';
  let repository = rest;
  const slash = rest.indexOf('/');
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (/[.:]/.test(first) || first === 'localhost') {
      registry = first;
      repository = rest.slice(slash + 1);
      if (!HOST.test(registry)) throw bad(`invalid registry ${JSON.stringify(registry)}`);
    }
  }
  if (registry === 'docker.io' && !repository.includes('/')) repository = `library/${repository}`;
  if (!REPOSITORY.test(repository)) throw bad(`invalid repository ${JSON.stringify(repository)}`);
  return { image, registry, repository, fullyQualifiedRepository: `${registry}/${repository}`, tag: digest ?? tag ?? 'latest' };
}

/**
 * The image reference a resource's access gives: an ociArtifact's (ociRegistry, ociImage)
 * `imageReference`, an ociBlob's `ref` (with `@digest` when the ref has neither tag nor digest),
 * a localBlob's `globalAccess`.
 */
export function imageReferenceOf(resource: Resource, what: string): string {
  const from = (access: unknown, depth: number): string => {
    const a = (access ?? {}) as Record<string, unknown>;
    const kind = accessKind(a.type as string | undefined);
    if (kind === 'ociartifact') {
      if (typeof a.imageReference !== 'string' || !a.imageReference) throw new TransformError(`${what}: its ${a.type} access has no imageReference`);
      return a.imageReference;
    }
    if (kind === 'ociblob') {
      if (typeof a.ref !== 'string' || !a.ref) throw new TransformError(`${what}: its ociBlob access has no ref`);
      const r = a.ref.replace(/^oci:\/\//i, '');
      const tagged = r.includes('@') || r.lastIndexOf(':') > r.lastIndexOf('/');
      return !tagged && typeof a.digest === 'string' && a.digest ? `${r}@${a.digest}` : r;
    }
    if (kind === 'localblob') {
      if (a.globalAccess && depth === 0) return from(a.globalAccess, 1);
      throw new TransformError(
        `${what}: its access is a localBlob without globalAccess, which names no image a cluster can pull (transfer the component to an OCI registry, which gives local blobs a globalAccess, or localize from a resource with an ociArtifact access)`,
      );
    }
    throw new TransformError(`${what}: access type ${JSON.stringify(a.type)} gives no image reference (ociArtifact, ociRegistry, ociBlob, or localBlob with globalAccess)`);
  };
  return from(resource.access, 0);
}

interface Rule {
  where: string;
  raw: Record<string, unknown>;
  base: ComponentHandle;
}

export const localizationProvider: ActionProvider = {
  kind: 'Localization',
  async run(ctx) {
    const spec = specOf(ctx.provider);
    const resolver = new ComponentResolver(ctx);
    const rules: Rule[] = [];
    const inline = Array.isArray(spec.rules) ? (spec.rules as unknown[]) : [];
    if (spec.configRef != null || !inline.length) {
      const cfg = await loadConfigData(ctx, resolver, spec.configRef);
      (cfg.config.localization ?? []).forEach((raw, i) => rules.push({ where: `${cfg.what} localization[${i}]`, raw, base: cfg.component }));
    }
    inline.forEach((raw, i) => rules.push({ where: `spec.rules[${i}]`, raw: (raw ?? {}) as Record<string, unknown>, base: resolver.root }));

    const editor = new SnapshotEdits(ctx.input.files); // large files edited off the event loop
    try {
      for (const rule of rules) {
        const { raw } = rule;
        const file = typeof raw.file === 'string' ? raw.file : undefined;
        const resName = typeof raw.resource === 'string' ? raw.resource : (raw.resource as { name?: unknown } | undefined)?.name;
        const label = `localization rule ${rule.where} (resource ${JSON.stringify(resName ?? null)}, file ${JSON.stringify(file ?? null)})`;
        if (raw.mapping != null) {
          throw new TransformError(`${label}: mapping rules (a CUE transform) are not supported; use image, registry, repository, fullyQualifiedRepository or tag`);
        }
        if (!file) throw new TransformError(`${label}: file is required`);
        const targets = LOCALIZATION_TARGETS.filter((t) => raw[t] !== undefined && raw[t] !== null && raw[t] !== '');
        for (const t of targets) if (typeof raw[t] !== 'string') throw new TransformError(`${label}: ${t} must be a YAML path (a string)`);
        if (!targets.length) throw new TransformError(`${label}: sets none of ${LOCALIZATION_TARGETS.join(', ')}`);
        const ref = toResourceRef(raw.resource, label);
        let resource: Resource;
        let holder: ComponentHandle;
        try {
          ({ resource, component: holder } = await resolver.resource(rule.base, ref));
        } catch (e) {
          if (e instanceof TransformError) throw new TransformError(`${label}: ${e.message}`);
          throw e;
        }
        await editor.open(file, label);
        const parts = withLabel(label, () => parseImageReference(imageReferenceOf(resource, `${resourceText(ref)} of ${componentName(holder)}`)));
        for (const t of targets) await editor.set(file, raw[t] as string, parts[t], `${label}, ${t}`);
      }
      return { files: await editor.result() };
    } finally {
      editor.close();
    }
  },
};

function withLabel<T>(label: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof TransformError) throw new TransformError(`${label}: ${e.message}`);
    throw e;
  }
}
