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

/** What an Action provider gets: the input snapshot's files and the component it belongs to. */
export interface ActionContext {
  action: KubeObject;
  provider: KubeObject;
  component: KubeObject;
  descriptor: ComponentDescriptor;
  repository: OcmRepository;
  componentVersion: { descriptor: ComponentDescriptor; manifest: unknown; manifestDigest: string };
  /** The input snapshot: its files, and where it lives in the snapshot registry. */
  input: { files: Files; snapshot: KubeObject; repositoryURL: string; tag: string; digest: string };
  /** Reads a ConfigMap or Secret value in the Action's namespace through the host-cluster client. */
  readValue(kind: 'ConfigMap' | 'Secret', name: string, key: string): Promise<string | undefined>;
  /** The host-cluster client, for deployers that write objects (Flux) into the cluster. */
  host: import('../reconcilers/runtime/host.js').HostCluster;
  /** The snapshot registry as clients in the cluster reach it, and a Secret name holding its TLS material. */
  snapshotRegistry: { url: string; tlsSecretName: string };
  /** A client of the snapshot registry (mTLS), and its `host:port` as this process reaches it. */
  snapshotClient?: import('../registry/client.js').OciClient;
  snapshotHost?: string;
}

export interface ActionOutput {
  /** A transformer's result: becomes the Action's snapshot. */
  files?: Files;
  /** A deployer's result (no snapshot): whether what it deployed is ready, and why not. */
  ready?: boolean;
  message?: string;
  /** Objects the deployer wrote (`Kind/namespace/name`), for status and events. */
  wrote?: string[];
}

export interface ActionProvider {
  kind: string;
  run(ctx: ActionContext): Promise<ActionOutput>;
  /** Called when the Action is deleted, to remove what the deployer wrote (owner references do the rest). */
  cleanup?(ctx: Pick<ActionContext, 'action' | 'provider' | 'host'>): Promise<void>;
}
