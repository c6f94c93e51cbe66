// Source provider OCMResource: a snapshot of one resource of the component version, or, with a
// referencePath, of the component version it leads to through component references (each step
// checked against the digest its parent records).
import { findResource } from '../ocm/descriptor.js';
import { ComponentResolver, componentName, ReferenceNotFound } from './configdata.js';
import { contentToFiles } from './content.js';
import type { SourceProvider } from './types.js';
import { MAX_ARCHIVE_IN_MEMORY_BYTES } from '../registry/memory-budget.js';

export class ResourceNotFound extends Error {}
export { ReferenceNotFound };

export const ocmResourceProvider: SourceProvider = {
  kind: 'OCMResource',
  async produce(ctx) {
    const want = (ctx.provider.spec ?? {}) as { resource: string; extraIdentity?: Record<string, string>; referencePath?: Array<Record<string, string>> };
    const resolver = new ComponentResolver({ componentVersion: ctx.componentVersion, repository: ctx.repository });
    const component = await resolver.follow(resolver.root, want.referencePath);
    const resource = findResource(component.descriptor, want.resource, want.extraIdentity);
    if (!resource) {
      const have = component.descriptor.component.resources.map((r) => r.name).join(', ');
      throw new ResourceNotFound(`component ${componentName(component)} has no resource "${want.resource}" (it has: ${have || 'none'})`);
    }
    // The blob is leased from the in-memory budget before it is read (by the OCI client), and is at most one archive's worth.
    const { data, mediaType } = await ctx.repository.getResourceContent(component, resource, { maxBytes: MAX_ARCHIVE_IN_MEMORY_BYTES });
    return {
      files: await contentToFiles(data, mediaType, resource.name),
      identity: { resourceName: resource.name, ...(resource.extraIdentity ? { extraIdentity: resource.extraIdentity } : {}) },
    };
  },
};
