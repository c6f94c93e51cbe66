import { Type, type Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import semver from 'semver';
import { ajvToFieldErrors } from '../apiserver/validation.js';
import type { FieldError, KindDefinition, KubeObject } from './types.js';
import {
  CATEGORIES,
  COMPONENT_NAME_PATTERN,
  CONFIG_KEY_PATTERN,
  GROUP,
  NamespacedObjectReference,
  ObjectReference,
  SecretRef,
  VERSION,
  anyValue,
  isRecord,
  stringEnum,
  commonColumns,
  fieldError,
  interval,
  selectable,
  specOf,
  statusSchema,
  suspend,
  validateInterval,
} from './common.js';

/** OCI registry (optionally with scheme) and base path of an OCM repository. */
export const REPOSITORY_URL_PATTERN = '^((oci|https?)://)?([a-zA-Z0-9.-]+|\\[[0-9a-fA-F:]+\\])(:[0-9]+)?(/[a-z0-9._/-]*)?$';

const verifyEntryProps = () => ({
  component: Type.Optional(
    Type.String({
      description:
        'Name of a component that this component references (directly or further down) whose own signature this is: every referenced version of it must carry the signature and verify. Omitted: the signature of the OCMComponent\'s own component.',
      minLength: 1,
      maxLength: 255,
      pattern: COMPONENT_NAME_PATTERN,
    }),
  ),
  secretRef: SecretRef('Secret holding the PEM-encoded RSA public key(s).'),
  key: Type.Optional(
    Type.String({
      description: 'Key of the Secret\'s data entry holding the PEM public key. Defaults to the signature name.',
      minLength: 1,
      maxLength: 253,
      pattern: CONFIG_KEY_PATTERN,
    }),
  ),
});
const signatureName = () => Type.String({ description: 'Name of the signature in the component descriptor (`signatures[].name`) that must verify.', minLength: 1 });

/** One signature that must verify (an entry of the list form). */
export const VerifyEntry = Type.Object({ signature: signatureName(), ...verifyEntryProps() }, { additionalProperties: false });
/** The design's object form: `{secretRef}` (every Secret entry names a signature), or one entry. */
export const VerifyObject = Type.Object({ signature: Type.Optional(signatureName()), ...verifyEntryProps() }, { additionalProperties: false });
export type VerifyEntry = Static<typeof VerifyEntry>;
export type VerifySpec = VerifyEntry[] | Static<typeof VerifyObject>;

/** A required signature: named, or (`signature` undefined) every data entry of the Secret. */
export interface VerifyRule {
  signature?: string;
  component?: string;
  secretRef: { name: string };
  key?: string;
}

/** The rules of `spec.verify` in either form. */
export function verifyRules(verify: unknown): VerifyRule[] {
  if (Array.isArray(verify)) return verify as VerifyRule[];
  if (isRecord(verify)) return [verify as unknown as VerifyRule];
  return [];
}

const verifyCheck = new Ajv({ strict: false, allErrors: true }).compile({
  type: 'object',
  properties: { spec: { type: 'object', properties: { verify: { type: 'array', items: VerifyEntry } } } },
});
const verifyObjectCheck = new Ajv({ strict: false, allErrors: true }).compile({
  type: 'object',
  properties: { spec: { type: 'object', properties: { verify: VerifyObject } } },
});

function validateVerify(obj: KubeObject): FieldError[] {
  const v = specOf(obj).verify;
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v) && !isRecord(v)) {
    return [fieldError('FieldValueTypeInvalid', 'spec.verify', `Invalid value: ${JSON.stringify(v)}: spec.verify in body must be of type array or object`)];
  }
  const check = Array.isArray(v) ? verifyCheck : verifyObjectCheck;
  if (!check({ spec: { verify: v } })) return ajvErrors(check.errors ?? [], v);
  if (!Array.isArray(v)) return [];
  // one entry per signature and component
  const seen = new Set<string>();
  const errs: FieldError[] = [];
  v.forEach((e: VerifyEntry, i) => {
    const id = `${e.signature}|${e.component ?? ''}`;
    if (seen.has(id)) errs.push(fieldError('FieldValueDuplicate', `spec.verify[${i}].signature`, `duplicate value ${JSON.stringify(e.signature)}${e.component ? ` for component ${e.component}` : ''}`));
    seen.add(id);
  });
  return errs;
}

function ajvErrors(errors: NonNullable<typeof verifyCheck.errors>, v: unknown): FieldError[] {
  return ajvToFieldErrors(
    errors.map((e) =>
      e.keyword === 'additionalProperties' ? { ...e, instancePath: `${e.instancePath}/${e.params.additionalProperty}`, message: 'is not a known field' } : e,
    ),
    { spec: { verify: v } },
  );
}

export const DOWNGRADE_POLICIES = ['Allow', 'Deny', 'Enforce'] as const;

export const OCMComponentSpec = Type.Object(
  {
    interval: Type.Optional(
      interval(
        'How often the server checks the repository for a new version matching `version`, as a Go duration (`10m`, `1h30m`). Changes to the object are acted on at once regardless.',
        { default: '10m' },
      ),
    ),
    name: Type.String({
      description: 'Name of the OCM component, e.g. `github.com/weaveworks/weave-gitops`.',
      minLength: 1,
      maxLength: 255,
      pattern: COMPONENT_NAME_PATTERN,
    }),
    version: Type.String({
      description:
        'Version of the component: an exact version (`v0.9.4`) or a semver constraint (`v0.9.x`, `>=1.2 <2`, `^1.0.0`); with a constraint the newest matching version in the repository is used.',
      minLength: 1,
      maxLength: 256,
    }),
    repository: Type.Object(
      {
        url: Type.String({
          description:
            'Registry and base path of the OCM repository, e.g. `ghcr.io/weaveworks`; component versions are read from `<url>/component-descriptors/<component name>`. Prefix `http://` for a registry that serves plain HTTP.',
          minLength: 1,
          pattern: REPOSITORY_URL_PATTERN,
        }),
        secretRef: Type.Optional(
          SecretRef(
            'Secret with the credentials for the registry: a `kubernetes.io/dockerconfigjson` Secret, or one with `username` and `password` keys. Omitted: anonymous access.',
          ),
        ),
      },
      { description: 'The OCM repository (an OCI registry) that holds the component versions.' },
    ),
    verify: Type.Optional(
      anyValue<VerifySpec>(
        'Signatures that must verify before the component version is used; a version that does not verify (signatures, resource digests, referenced components) produces nothing downstream. Two forms. ' +
          'A list, each entry `{signature, secretRef: {name}, key?, component?}`: the descriptor\'s signature `signature` must verify with the PEM RSA public key in that Secret under `key` (default: the signature name); with `component`, the signature of every referenced version of that component instead. ' +
          'An object, the design\'s form `{secretRef: {name}}`: every data entry of the Secret is `<signature name>: <PEM public key>` and each of those signatures must verify (at least one entry); with `signature` (and `key`) set it is one entry of the list form. Server-side apply treats either form as one value (atomic): an apply replaces it whole.',
      ),
    ),
    downgradePolicy: Type.Optional(
      stringEnum(DOWNGRADE_POLICIES, {
        description:
          'What happens when the version to use is older than the one in use (a tag deleted upstream, a constraint edited, newer versions that do not verify), as the OCM controller (ocm-k8s-toolkit) has it. `Deny` (default): never; the OCMComponent stays on its version with Ready=False `DowngradeDenied`. `Allow`: when the version in use carries the label `ocm.software/ocm-k8s-toolkit/downgradable` whose value is a semver constraint the older version satisfies. `Enforce`: always. Either way the move is an Event.',
        default: 'Deny',
      }),
    ),
    suspend: Type.Optional(suspend('component')),
  },
  { description: 'Desired state of the OCMComponent: which component version to fetch, from where, and how to verify it.' },
);
export type OCMComponentSpec = Static<typeof OCMComponentSpec>;

export const OCMComponentStatus = statusSchema('OCMComponent', {
  resolvedVersion: Type.Optional(
    Type.String({ description: 'The exact component version that `spec.version` resolved to and that was fetched last.' }),
  ),
  componentDescriptor: Type.Optional(
    NamespacedObjectReference('The ComponentDescriptor object holding the descriptor of the resolved version.', 'ComponentDescriptor'),
  ),
  deployPackage: Type.Optional(
    ObjectReference('The object holding the deploy package (the component\'s resource with the Flux package media type), if the component has one.', 'object holding the deploy package'),
  ),
  skippedVersions: Type.Optional(
    Type.Array(
      Type.Object(
        {
          version: Type.String({ description: 'The version.' }),
          reason: Type.String({ description: 'Why it was skipped, as a condition reason (`VerificationFailed`, `DigestMismatch`, ...).' }),
          message: Type.String({ description: 'What failed.' }),
        },
        { description: 'A version that was skipped.' },
      ),
      { description: 'Versions newer than the one in use that `spec.version` admits but that did not verify, newest first; each was named in an Event when first skipped.' },
    ),
  ),
  manifestDigest: Type.Optional(
    Type.String({
      description:
        'Digest of the OCI manifest of the component version in use: the exact content that was verified. Sources and Actions read the component version by this digest, so content pushed again under the same version reaches them only once it is verified in its turn.',
    }),
  ),
  verified: Type.Optional(
    Type.Boolean({
      description:
        'True when all of it verified: every signature `spec.verify` names, every referenced component against the digest its parent records (and its own signatures where `spec.verify` names them), and every resource against its digest: those stored with a component version, and those stored elsewhere (an image or an ociBlob in another registry; checked again once per interval). False when any of it failed, could not be checked (a resource or reference without a digest), or verification was not requested. The `Verified` condition says why.',
    }),
  ),
});
export type OCMComponentStatus = Static<typeof OCMComponentStatus>;

function validate(obj: KubeObject): FieldError[] {
  const spec = specOf(obj);
  const errs: FieldError[] = [...validateInterval(spec.interval, 'spec.interval')];
  const v = spec.version;
  if (typeof v === 'string' && v.length > 0 && semver.validRange(v, { loose: true }) === null) {
    errs.push(fieldError('FieldValueInvalid', 'spec.version', 'must be a semantic version (v1.2.3) or a semver constraint (v0.9.x, >=1.2 <2)'));
  }
  errs.push(...validateVerify(obj));
  return errs;
}

export const ocmComponentKind: KindDefinition = {
  group: GROUP,
  version: VERSION,
  kind: 'OCMComponent',
  plural: 'ocmcomponents',
  singular: 'ocmcomponent',
  // either form, list or object, is one value to server-side apply: replaced whole, never merged
  atomicFields: ['spec.verify'],
  shortNames: ['ocmc', 'comp'],
  categories: [...CATEGORIES],
  namespaced: true,
  description:
    'An OCMComponent names a component version in an OCM repository. The server resolves the version (exact or semver constraint), fetches the component descriptor, verifies its signatures and resource digests, and stores it as a ComponentDescriptor object, together with the deploy package; Sources and Actions refer to the OCMComponent to obtain its resources.',
  schema: Type.Object({
    spec: OCMComponentSpec,
    status: Type.Optional(OCMComponentStatus),
  }),
  statusFields: ['status'],
  subresources: { status: true },
  columns: [
    { name: 'Component', type: 'string', jsonPath: '.spec.name', description: 'Name of the OCM component.' },
    { name: 'Version', type: 'string', jsonPath: '.status.resolvedVersion', description: 'The component version in use.' },
    { name: 'Verified', type: 'boolean', jsonPath: '.status.verified', description: 'Whether the signatures verified.' },
    ...commonColumns(),
    { name: 'Constraint', type: 'string', jsonPath: '.spec.version', description: 'The requested version or constraint.', priority: 1 },
    { name: 'Repository', type: 'string', jsonPath: '.spec.repository.url', description: 'The OCM repository.', priority: 1 },
  ],
  selectableFields: {
    'spec.name': selectable('spec.name'),
  },
  strategy: { validate },
};
