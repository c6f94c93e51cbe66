// The provider contract, typed. A provider file holds only its transformation: the Source and
// Action reconcilers do the fetching of inputs, snapshot packing, pushing, verification and
// status around it.
import type { KubeObject } from '../kinds/types.js';
import type { ComponentDescriptor } from '../ocm/descriptor.js';
import type { OcmRepository } from '../ocm/repository.js';

/** Files of a snapshot, by relative path. */
export type Files = Record<string, Buffer>;

export interface SourceContext {
  source: KubeObject;
  provider: KubeObject;
  component: KubeObject;
  descriptor: ComponentDescriptor;
  repository: OcmRepository;
  componentVersion: { descriptor: ComponentDescriptor; manifest: unknown; manifestDigest: string };
}

export interface SourceOutput {
  files: Files;
  /** What the snapshot is a copy of (the component resource). */
  identity: { resourceName?: string; extraIdentity?: Record<string, string> };
}

export interface SourceProvider {
  kind: string;
  produce(ctx: SourceContext): Promise<SourceOutput>;
}
