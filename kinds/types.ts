// The shape of every kind this server serves. One KindDefinition per kind; the generic
// REST store (apiserver/) derives discovery, OpenAPI, validation, Table output and verbs from it.
import type { TObject } from '@sinclair/typebox';

export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  deletionGracePeriodSeconds?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  finalizers?: string[];
  ownerReferences?: OwnerReference[];
  managedFields?: unknown[];
  [k: string]: unknown;
}

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller?: boolean;
  blockOwnerDeletion?: boolean;
}

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMeta;
  [field: string]: unknown;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  reason: string;
  message: string;
  lastTransitionTime: string;
  observedGeneration?: number;
}

/** A column of `kubectl get` output (meta.k8s.io/v1 TableColumnDefinition + how to fill it). */
export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  /** Simple JSONPath as in CRD additionalPrinterColumns, e.g. `.status.conditions[?(@.type=="Ready")].status`. */
  jsonPath: string;
  description: string;
  /** 0 = shown by default, >0 = only with `-o wide`. */
  priority?: number;
  format?: string;
  /**
   * A computed cell, as kube's built-in printers compute theirs (pkg/printers/internalversion);
   * `since` formats a timestamp as kubectl's age (`<unknown>` when absent). Overrides jsonPath.
   */
  value?: (obj: KubeObject, since: (timestamp: unknown) => string) => unknown;
  /**
   * The cell is the number of keys of these top-level maps (`value` computes the same): a stored
   * object's are counted in its stored JSON, in slices, once per version (apiserver/table.ts), not
   * enumerated (Object.keys of 200,000 keys holds the event loop 30 to 150 ms in one go).
   */
  countsKeysOf?: string[];
}

export type FieldErrorType =
  | 'FieldValueRequired'
  | 'FieldValueInvalid'
  | 'FieldValueNotSupported'
  | 'FieldValueForbidden'
  | 'FieldValueDuplicate'
  | 'FieldValueTooLong'
  | 'FieldValueTypeInvalid';

/** One validation failure; `field` is a path such as `spec.providerRef.kind`. */
export interface FieldError {
  type: FieldErrorType;
  field: string;
  message: string;
}

/**
 * What a kind does differently from the generic defaults (k8s.io/apiserver's RESTCreateStrategy /
 * RESTUpdateStrategy). Every hook is optional.
 */
export interface KindStrategy {
  /** Called on create after schema defaults are applied; may set defaults in place. */
  prepareForCreate?(obj: KubeObject): void;
  /** Called on update of the main resource (status already copied from `old`). */
  prepareForUpdate?(obj: KubeObject, old: KubeObject): void;
  /** Extra validation beyond the schema, on create and update. */
  validate?(obj: KubeObject): FieldError[];
  /** True while the kind itself holds back deletion (a namespace with spec.finalizers). */
  deletionPending?(obj: KubeObject): boolean;
  /** Called when deletion starts but must wait (deletionTimestamp is being set). */
  prepareForDelete?(obj: KubeObject): void;
  /** Extra validation only on update (e.g. immutable fields). */
  validateUpdate?(obj: KubeObject, old: KubeObject): FieldError[];
}

export type Verb = 'create' | 'delete' | 'deletecollection' | 'get' | 'list' | 'patch' | 'update' | 'watch';

export interface KindDefinition {
  group: string; // '' for the core group
  version: string;
  kind: string;
  listKind?: string; // defaults to kind + 'List'
  plural: string;
  singular: string;
  shortNames?: string[];
  categories?: string[];
  namespaced: boolean;
  /** One paragraph: what this kind is for (shown by `kubectl explain`). */
  description: string;
  /**
   * The top-level fields besides apiVersion/kind/metadata, e.g. Type.Object({ spec, status }).
   * Used for validation, pruning of unknown fields, defaults, OpenAPI and `kubectl explain`.
   */
  schema: TObject;
  /** Top-level fields that only the status subresource may change (normally ['status']). */
  statusFields?: string[];
  columns: PrinterColumn[];
  /**
   * Built-in types: the fields with patchStrategy "merge" beyond ObjectMeta's, by dotted path,
   * with their patchMergeKey ('' for lists of scalars), from k8s.io/api's struct tags.
   */
  patchStrategies?: Record<string, string>;
  /** Fields (`spec.verify`) server-side apply owns and replaces whole, also when they are maps (kube's `x-kubernetes-map-type: atomic`). */
  atomicFields?: string[];
  /** false: no leading NAME column (kube's Event table has none; its name is a wide column). */
  nameColumn?: false;
  subresources: { status?: boolean };
  /** The verbs served; all of them when absent. Create-only kinds (reviews) are not stored. */
  verbs?: readonly Verb[];
  /** Field selectors beyond metadata.name / metadata.namespace: field path -> getter. */
  selectableFields?: Record<string, (obj: KubeObject) => string | undefined>;
  strategy?: KindStrategy;
}

export const apiVersionOf = (k: Pick<KindDefinition, 'group' | 'version'>): string =>
  k.group ? `${k.group}/${k.version}` : k.version;
