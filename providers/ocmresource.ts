// Source provider OCMResource: a snapshot of one resource of the component version.
import { findResource } from '../ocm/descriptor.js';
import { contentToFiles } from './content.js';
import type { SourceProvider } from './types.js';

export class ResourceNotFound extends Error {}

export const ocmResourceProvider: SourceProvider = {
  kind: 'OCMResource',
  async produce(ctx) {
    const want = (ctx.provider.spec ?? {}) as { resource: string; extraIdentity?: Record<string, string> };
    const resource = findResource(ctx.descriptor, want.resource, want.extraIdentity);
    if (!resource) {
      const have = ctx.descriptor.component.resources.map((r) => r.name).join(', ');
      throw new ResourceNotFound(`component ${ctx.descriptor.component.name}:${ctx.descriptor.component.version} has no resource "${want.resource}" (it has: ${have || 'none'})`);
    }
    const { data, mediaType } = await ctx.repository.getResourceContent(ctx.componentVersion, resource);
    return {
      files: await contentToFiles(data, mediaType, resource.name),
      identity: { resourceName: resource.name, ...(resource.extraIdentity ? { extraIdentity: resource.extraIdentity } : {}) },
    };
  },
};
