// Schema pieces shared by the kinds of delivery.ocm.software/v1alpha1.
//
// Every helper is a factory: it returns a fresh schema object on each call, so that two fields
// of the same shape can carry different descriptions (what `kubectl explain` shows) and so that
// no schema object is shared between kinds.
//
// The schemas must stay *structural* in the sense of CRDs: every node has a `type` (or
// `x-kubernetes-preserve-unknown-fields: true`), no anyOf/oneOf, maps are `additionalProperties`.
import { Type, type SchemaOptions, type Static, type TProperties } from '@sinclair/typebox';
import type { FieldError, FieldErrorType, KubeObject, PrinterColumn } from './types.js';

export const GROUP = 'delivery.ocm.software';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;
/** `kubectl get ocm` lists every kind of the group. */
export const CATEGORIES: readonly string[] = ['ocm'];

// ---------------------------------------------------------------------------------------------
// Patterns
// ---------------------------------------------------------------------------------------------

/** DNS-1123 subdomain: the rule for object names. */
export const DNS1123_SUBDOMAIN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** DNS-1123 label: the rule for namespace names. */
export const DNS1123_LABEL = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** `group/version` or `version` (core group); the version is a DNS-1035 label. */
export const API_VERSION_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[a-z]([-a-z0-9]*[a-z0-9])?$';
/** A kind is a CamelCase identifier. */
export const KIND_PATTERN = '^[A-Za-z][A-Za-z0-9]*$';
/** Go `time.Duration` string as Flux accepts it: `30s`, `10m`, `1h30m`, `1.5h`, `500ms`. */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$';
/** OCI content digest (`algorithm:encoded`), e.g. `sha256:9f86d0...`. */
export const OCI_DIGEST_PATTERN = '^[a-z0-9]+([+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$';
/** OCI tag. */
export const OCI_TAG_PATTERN = '^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$';
/** Key of a ConfigMap or Secret data entry. */
export const CONFIG_KEY_PATTERN = '^[-._a-zA-Z0-9]+$';
/** OCM component name (OCM specification, component-descriptor v2 schema `componentName`). */
export const COMPONENT_NAME_PATTERN =
  '^[a-z][-a-z0-9]*([.][a-z][-a-z0-9]*)*[.][a-z]{2,}(/[a-z][-a-z0-9_]*([.][a-z][-a-z0-9_]*)*)+$';
/** kube's metav1.Condition `type`. */
export const CONDITION_TYPE_PATTERN =
  '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$';
/** kube's metav1.Condition `reason`. */
export const CONDITION_REASON_PATTERN = '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$';

// ---------------------------------------------------------------------------------------------
// Small building blocks
// ---------------------------------------------------------------------------------------------

/** A string restricted to `values` (a plain `enum`, not a TypeBox union, to stay structural). */
export const stringEnum = <T extends string>(values: readonly T[], options: SchemaOptions & { description: string }) =>
  Type.Unsafe<T>({ type: 'string', enum: [...values], ...options });

/** A map of string to string (labels-like), as kube writes it: `additionalProperties`. */
export const stringMap = (description: string) =>
  Type.Unsafe<Record<string, string>>({ type: 'object', description, additionalProperties: { type: 'string' } });

/** An object whose content is not checked and kept as written. */
export const freeFormObject = (description: string, properties: TProperties = {}) =>
  Type.Object(properties, { description, 'x-kubernetes-preserve-unknown-fields': true });

/** Any JSON value (object, list, scalar) kept as written; `kubectl explain` shows no type. */
export const anyValue = <T = unknown>(description: string) =>
  Type.Unsafe<T>({ description, 'x-kubernetes-preserve-unknown-fields': true });

/** Name of an object (DNS-1123 subdomain). */
export const objectName = (description: string) =>
  Type.String({ description, minLength: 1, maxLength: 253, pattern: DNS1123_SUBDOMAIN });

/** Name of a namespace (DNS-1123 label). */
export const namespaceName = (description: string) =>
  Type.String({ description, minLength: 1, maxLength: 63, pattern: DNS1123_LABEL });

/** Go duration string (`10m`, `1h30m`, `30s`). */
export const interval = (description: string, options: SchemaOptions = {}) =>
  Type.String({ description, pattern: DURATION_PATTERN, ...options });

export const suspend = (what: string) =>
  Type.Boolean({
    description: `Suspend tells the server to stop reconciling this ${what}; the last produced state is kept. Defaults to false.`,
  });

export const ociDigest = (description: string) => Type.String({ description, pattern: OCI_DIGEST_PATTERN });

// ---------------------------------------------------------------------------------------------
// Conditions and status
// ---------------------------------------------------------------------------------------------

export const CONDITION_STATUSES = ['True', 'False', 'Unknown'] as const;

/** metav1.Condition, with kube's own descriptions. */
export const Condition = () =>
  Type.Object(
    {
      type: Type.String({
        description: 'type of condition in CamelCase or in foo.example.com/CamelCase. The condition every kind of this group reports is `Ready`.',
        maxLength: 316,
        pattern: CONDITION_TYPE_PATTERN,
      }),
      status: stringEnum(CONDITION_STATUSES, { description: 'status of the condition, one of True, False, Unknown.' }),
      observedGeneration: Type.Optional(
        Type.Integer({
          description:
            'observedGeneration represents the .metadata.generation that the condition was set based upon. For instance, if .metadata.generation is currently 12, but the .status.conditions[x].observedGeneration is 9, the condition is out of date with respect to the current state of the instance.',
          format: 'int64',
          minimum: 0,
        }),
      ),
      lastTransitionTime: Type.String({
        description:
          'lastTransitionTime is the last time the condition transitioned from one status to another. This should be when the underlying condition changed.  If that is not known, then using the time when the API field changed is acceptable.',
        format: 'date-time',
      }),
      reason: Type.String({
        description:
          "reason contains a programmatic identifier indicating the reason for the condition's last transition. Producers of specific condition types may define expected values and meanings for this field, and whether the values are considered a guaranteed API. The value should be a CamelCase string. This field may not be empty.",
        minLength: 1,
        maxLength: 1024,
        pattern: CONDITION_REASON_PATTERN,
      }),
      message: Type.String({
        description: 'message is a human readable message indicating details about the transition. This may be an empty string.',
        maxLength: 32768,
      }),
    },
    { description: 'Condition contains details for one aspect of the current state of this API Resource.' },
  );

/** `status.conditions`: a list-map keyed by `type`, as kube's own types declare it. */
export const conditions = (description = 'Conditions hold the latest observations of the object\'s state. `Ready` summarises them: True when the last reconciliation succeeded, False with a reason and message when it failed, Unknown while it is in progress.') =>
  Type.Array(Condition(), {
    description,
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
  });

export const observedGeneration = () =>
  Type.Integer({
    description: 'The metadata.generation of the object that the status was last computed from.',
    format: 'int64',
    minimum: 0,
  });

/** observedGeneration + conditions, the base of every status. */
export const statusBaseProperties = () => ({
  observedGeneration: Type.Optional(observedGeneration()),
  conditions: Type.Optional(conditions()),
});

/** The `status` object of a kind: the common base plus the kind's own fields. Never has defaults. */
export const statusSchema = <P extends TProperties>(what: string, properties: P) =>
  Type.Object(
    { ...statusBaseProperties(), ...properties },
    {
      description: `Most recently observed status of the ${what}. Written by the server through the status subresource; read-only for users.`,
    },
  );

/**
 * The status of a built-in provider, which several Sources or Actions may share: only what holds
 * for the provider itself, written by its own reconciler (reconcilers/providers.ts).
 */
export const sharedProviderStatusProperties = () => ({
  ready: Type.Optional(
    Type.Boolean({
      description:
        'True when the provider\'s spec was accepted. A provider may be shared by several Sources or Actions, which never write here: each reports its own snapshot, digest and failures in its own status.',
    }),
  ),
});

/**
 * The provider contract of the design: `ready`, and for producers `snapshot` and `digest`.
 * Sources must set all three; Actions may omit snapshot and digest.
 */
export const providerContractProperties = () => ({
  ready: Type.Optional(
    Type.Boolean({ description: 'Provider contract: true when the latest snapshot (or, for deployers, the latest run) is complete and usable downstream.' }),
  ),
  snapshot: Type.Optional(
    objectName('Provider contract: name of the Snapshot object (in this namespace) holding the latest snapshot produced.'),
  ),
  digest: Type.Optional(ociDigest('Provider contract: digest of the OCI manifest of the latest snapshot, e.g. `sha256:9f86d0...`.')),
});

// ---------------------------------------------------------------------------------------------
// References
// ---------------------------------------------------------------------------------------------

/** {name} of an object in the same namespace. */
export const LocalObjectReference = (description: string, what = 'referenced object') =>
  Type.Object({ name: objectName(`Name of the ${what}.`) }, { description });

/** {name} of a Secret in the same namespace. */
export const SecretRef = (description: string) => LocalObjectReference(description, 'Secret, in the same namespace');

/** {name, namespace?}: an object that may live in another namespace. */
export const NamespacedObjectReference = (description: string, what = 'referenced object') =>
  Type.Object(
    {
      name: objectName(`Name of the ${what}.`),
      namespace: Type.Optional(namespaceName(`Namespace of the ${what}. Defaults to the namespace of this object.`)),
    },
    { description },
  );

/** {apiVersion, kind, name}: a typed reference to an object in the same namespace (providerRef). */
export const TypedReference = (description: string, what = 'referenced object') =>
  Type.Object(
    {
      apiVersion: Type.String({
        description: `API version of the ${what}, e.g. \`${API_VERSION}\`.`,
        minLength: 1,
        maxLength: 317,
        pattern: API_VERSION_PATTERN,
      }),
      kind: Type.String({ description: `Kind of the ${what}, e.g. \`OCMResource\`.`, minLength: 1, maxLength: 63, pattern: KIND_PATTERN }),
      name: objectName(`Name of the ${what}, in the same namespace.`),
    },
    { description },
  );

/** {apiVersion?, kind, name, namespace?}: any object, possibly in another namespace. */
export const ObjectReference = (description: string, what = 'referenced object') =>
  Type.Object(
    {
      apiVersion: Type.Optional(
        Type.String({ description: `API version of the ${what}.`, maxLength: 317, pattern: API_VERSION_PATTERN }),
      ),
      kind: Type.String({ description: `Kind of the ${what}.`, minLength: 1, maxLength: 63, pattern: KIND_PATTERN }),
      name: objectName(`Name of the ${what}.`),
      namespace: Type.Optional(namespaceName(`Namespace of the ${what}. Defaults to the namespace of this object.`)),
    },
    { description },
  );

/** Points at a resource of an OCM component version, by identity (as ConfigData rules do). */
export const ResourceReference = (description: string) =>
  Type.Object(
    {
      name: Type.String({ description: 'Name of the resource in the component descriptor.', minLength: 1 }),
      extraIdentity: Type.Optional(
        stringMap('Extra identity attributes of the resource, needed when several resources share the name (e.g. `{architecture: arm64}`).'),
      ),
      referencePath: Type.Optional(referencePath()),
    },
    { description },
  );

/** Path of component references leading to the component that holds a resource. */
export const referencePath = () =>
  Type.Array(stringMap('Identity of one component reference: its `name`, plus extra identity attributes if needed.'), {
    description:
      'Path of component references, from the referenced OCMComponent\'s component down to the component that holds the resource, each step the identity of a reference (e.g. `[{name: backend}]`). Empty or omitted: the resource is in the component itself.',
  });

export const SNAPSHOT_SOURCE_KINDS = ['Source', 'Action'] as const;
export type SnapshotSourceKind = (typeof SNAPSHOT_SOURCE_KINDS)[number];

/** {kind: Source|Action, name}: where an Action takes its input snapshot from. */
export const SnapshotSourceReference = (description: string) =>
  Type.Object(
    {
      kind: stringEnum(SNAPSHOT_SOURCE_KINDS, { description: 'Kind of the object whose snapshot is consumed: Source or Action.' }),
      name: objectName('Name of the Source or Action, in the same namespace.'),
    },
    { description },
  );
export type SnapshotSourceReference = Static<ReturnType<typeof SnapshotSourceReference>>;

// ---------------------------------------------------------------------------------------------
// Printer columns
// ---------------------------------------------------------------------------------------------

export const readyColumn = (): PrinterColumn => ({
  name: 'Ready',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].status',
  description: 'Status of the Ready condition: True, False or Unknown.',
});

export const statusColumn = (priority = 0): PrinterColumn => ({
  name: 'Status',
  type: 'string',
  jsonPath: '.status.conditions[?(@.type=="Ready")].message',
  description: 'Message of the Ready condition.',
  priority,
});

export const ageColumn = (): PrinterColumn => ({
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'Time since the object was created.',
});

/** Ready, Status, Age: the columns every kind ends with. */
export const commonColumns = (statusPriority = 0): PrinterColumn[] => [readyColumn(), statusColumn(statusPriority), ageColumn()];

// ---------------------------------------------------------------------------------------------
// Helpers for strategies (and for the reconcilers that read these objects)
// ---------------------------------------------------------------------------------------------

export const fieldError = (type: FieldErrorType, field: string, message: string): FieldError => ({ type, field, message });

/** Reads a dotted path (`spec.providerRef.kind`) from an object, undefined when absent. */
export function getPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

/** Deletes the named top-level maps when empty: Go's omitempty on a built-in type's map fields (ConfigMap data, Secret data). */
export function dropEmptyMaps(obj: Record<string, unknown>, fields: string[]) {
  for (const f of fields) if (obj[f] === null || (isRecord(obj[f]) && Object.keys(obj[f] as object).length === 0)) delete obj[f];
}

export const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

export const specOf = (obj: KubeObject): Record<string, unknown> => (isRecord(obj.spec) ? obj.spec : {});

const DURATION_UNITS_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go duration as accepted by DURATION_PATTERN into milliseconds; undefined when invalid. */
export function parseDuration(s: string): number | undefined {
  if (typeof s !== 'string' || !new RegExp(DURATION_PATTERN).test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)/g)) total += Number(m[1]) * DURATION_UNITS_MS[m[2]];
  return total;
}

/** An interval, if set, must be a positive duration (the pattern alone admits `0s`). */
export function validateInterval(value: unknown, field: string): FieldError[] {
  if (value === undefined) return [];
  const ms = typeof value === 'string' ? parseDuration(value) : undefined;
  if (ms === undefined) return []; // the schema's pattern reports it
  if (ms <= 0) return [fieldError('FieldValueInvalid', field, 'must be greater than zero')];
  return [];
}

/** A file inside a snapshot: relative, without `..` segments, so that it cannot escape the snapshot. */
export function validateRelativePath(value: unknown, field: string): FieldError[] {
  if (typeof value !== 'string') return [];
  if (value.startsWith('/') || /^[A-Za-z]:[\\/]/.test(value))
    return [fieldError('FieldValueInvalid', field, 'must be a path relative to the root of the snapshot')];
  if (value.split(/[\\/]/).includes('..')) return [fieldError('FieldValueInvalid', field, "must not contain '..'")];
  return [];
}

/** Reports list entries whose `key` value repeats (list-map semantics that JSON schema cannot state). */
export function validateUniqueKeys(list: unknown, key: string, field: string): FieldError[] {
  if (!Array.isArray(list)) return [];
  const seen = new Set<unknown>();
  const errs: FieldError[] = [];
  list.forEach((item, i) => {
    const v = isRecord(item) ? item[key] : undefined;
    if (v === undefined) return;
    if (seen.has(v)) errs.push(fieldError('FieldValueDuplicate', `${field}[${i}].${key}`, `duplicate value ${JSON.stringify(v)}`));
    seen.add(v);
  });
  return errs;
}

/**
 * A providerRef pointing into this group must name one of the built-in providers for its role;
 * references to other groups are external providers (read from the host cluster).
 */
export function validateProviderRef(obj: KubeObject, builtIn: readonly string[], role: string): FieldError[] {
  const ref = specOf(obj).providerRef;
  if (!isRecord(ref) || ref.apiVersion !== API_VERSION) return [];
  if (typeof ref.kind === 'string' && !builtIn.includes(ref.kind)) {
    return [
      fieldError(
        'FieldValueNotSupported',
        'spec.providerRef.kind',
        `supported values for a ${role} provider in ${API_VERSION}: ${builtIn.map((k) => `"${k}"`).join(', ')} (or a kind of another API group, implemented by an external controller)`,
      ),
    ];
  }
  return [];
}

/** Fields that must not change after creation: reports each one that did. */
export function validateImmutable(obj: KubeObject, old: KubeObject, paths: string[]): FieldError[] {
  return paths
    .filter((p) => !deepEqual(getPath(obj, p), getPath(old, p)))
    .map((p) => fieldError('FieldValueInvalid', p, 'field is immutable'));
}

/** Structural equality of JSON values (key order does not matter). */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  if (isRecord(a) && isRecord(b)) {
    const ka = Object.keys(a).filter((k) => a[k] !== undefined);
    const kb = Object.keys(b).filter((k) => b[k] !== undefined);
    return ka.length === kb.length && ka.every((k) => deepEqual(a[k], b[k]));
  }
  return false;
}

/** Getter for selectableFields: a string (or number/boolean as string) at a dotted path. */
export const selectable = (path: string) => (obj: KubeObject): string | undefined => {
  const v = getPath(obj, path);
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? String(v) : undefined;
};
