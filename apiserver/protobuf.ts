// Decoding of Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`).
//
// kubectl's typed clients (create secret/configmap/namespace, auth can-i/whoami, the DeleteOptions
// of delete...) send built-in types as protobuf. We answer in JSON (their Accept header allows it)
// and only need to turn the request body into the object the JSON API would have received.
//
// The wire format is read by protobufjs from a trimmed copy of the upstream `generated.proto`
// files (only the messages needed here). Every field number below is taken from:
//   k8s.io/apimachinery/pkg/runtime/generated.proto            (TypeMeta, Unknown)
//   k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto       (ObjectMeta, Time, DeleteOptions...)
//   k8s.io/api/core/v1/generated.proto                         (Secret, ConfigMap, Namespace, Event)
//   k8s.io/api/authentication/v1/generated.proto               (TokenReview, UserInfo; SelfSubjectReview
//                                                               as in authentication/v1beta1, same struct)
//   k8s.io/api/authorization/v1/generated.proto                (SubjectAccessReview & friends)
//
// Envelope: the 4 bytes `k8s\0`, then a runtime.Unknown whose typeMeta names the kind and whose
// `raw` holds the message itself (which has no TypeMeta of its own).
//
// JSON shape follows Go's encoding/json on the k8s types: `omitempty` scalars are dropped when zero
// (protobuf has no presence for them either), pointer fields (`*bool`, `*int64`...) keep an explicit
// zero, fields without `omitempty` are always present, non-pointer structs are always present, and
// `[]byte` becomes base64. A zero metav1.Time (which Go renders as `null`) is left out: absent and
// null decode the same way, and our schemas type timestamps as strings.
import protobuf from 'protobufjs';
import { prescanJson } from './prescan.js';

const RUNTIME = `
syntax = "proto2";
package k8s.io.apimachinery.pkg.runtime;

message TypeMeta {
  optional string apiVersion = 1;
  optional string kind = 2;
}

message Unknown {
  optional TypeMeta typeMeta = 1;
  optional bytes raw = 2;
  optional string contentEncoding = 3;
  optional string contentType = 4;
}
`;

const META = `
syntax = "proto2";
package k8s.io.apimachinery.pkg.apis.meta.v1;

message Time {
  optional int64 seconds = 1;
  optional int32 nanos = 2;
}

message MicroTime {
  optional int64 seconds = 1;
  optional int32 nanos = 2;
}

message FieldsV1 {
  optional bytes Raw = 1;
}

message ManagedFieldsEntry {
  optional string manager = 1;
  optional string operation = 2;
  optional string apiVersion = 3;
  optional Time time = 4;
  optional string fieldsType = 6;
  optional FieldsV1 fieldsV1 = 7;
  optional string subresource = 8;
}

message OwnerReference {
  optional string apiVersion = 5;
  optional string kind = 1;
  optional string name = 3;
  optional string uid = 4;
  optional bool controller = 6;
  optional bool blockOwnerDeletion = 7;
}

message ObjectMeta {
  optional string name = 1;
  optional string generateName = 2;
  optional string namespace = 3;
  optional string selfLink = 4;
  optional string uid = 5;
  optional string resourceVersion = 6;
  optional int64 generation = 7;
  optional Time creationTimestamp = 8;
  optional Time deletionTimestamp = 9;
  optional int64 deletionGracePeriodSeconds = 10;
  map<string, string> labels = 11;
  map<string, string> annotations = 12;
  repeated OwnerReference ownerReferences = 13;
  repeated string finalizers = 14;
  repeated ManagedFieldsEntry managedFields = 17;
}

message Preconditions {
  optional string uid = 1;
  optional string resourceVersion = 2;
}

message DeleteOptions {
  optional int64 gracePeriodSeconds = 1;
  optional Preconditions preconditions = 2;
  optional bool orphanDependents = 3;
  optional string propagationPolicy = 4;
  repeated string dryRun = 5;
}

message LabelSelectorRequirement {
  optional string key = 1;
  optional string operator = 2;
  repeated string values = 3;
}
`;

const CORE = `
syntax = "proto2";
package k8s.io.api.core.v1;

message ConfigMap {
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
  optional bool immutable = 4;
  map<string, string> data = 2;
  map<string, bytes> binaryData = 3;
}

message Event {
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
  optional ObjectReference involvedObject = 2;
  optional string reason = 3;
  optional string message = 4;
  optional EventSource source = 5;
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.Time firstTimestamp = 6;
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.Time lastTimestamp = 7;
  optional int32 count = 8;
  optional string type = 9;
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime eventTime = 10;
  optional EventSeries series = 11;
  optional string action = 12;
  optional ObjectReference related = 13;
  optional string reportingComponent = 14;
  optional string reportingInstance = 15;
}

message EventSeries {
  optional int32 count = 1;
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime lastObservedTime = 2;
}

message EventSource {
  optional string component = 1;
  optional string host = 2;
}

message Namespace {
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
  optional NamespaceSpec spec = 2;
  optional NamespaceStatus status = 3;
}

message NamespaceCondition {
  optional string type = 1;
  optional string status = 2;
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.Time lastTransitionTime = 4;
  optional string reason = 5;
  optional string message = 6;
}

message NamespaceSpec {
  repeated string finalizers = 1;
}

message NamespaceStatus {
  optional string phase = 1;
  repeated NamespaceCondition conditions = 2;
}

message ObjectReference {
  optional string kind = 1;
  optional string namespace = 2;
  optional string name = 3;
  optional string uid = 4;
  optional string apiVersion = 5;
  optional string resourceVersion = 6;
  optional string fieldPath = 7;
}

message Secret {
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
  optional bool immutable = 5;
  map<string, bytes> data = 2;
  map<string, string> stringData = 4;
  optional string type = 3;
}
`;

const AUTHENTICATION = `
syntax = "proto2";
package k8s.io.api.authentication.v1;

message ExtraValue {
  repeated string items = 1;
}

message SelfSubjectReview {
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
  optional SelfSubjectReviewStatus status = 2;
}

message SelfSubjectReviewStatus {
  optional UserInfo userInfo = 1;
}

message TokenReview {
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
  optional TokenReviewSpec spec = 2;
  optional TokenReviewStatus status = 3;
}

message TokenReviewSpec {
  optional string token = 1;
  repeated string audiences = 2;
}

message TokenReviewStatus {
  optional bool authenticated = 1;
  optional UserInfo user = 2;
  repeated string audiences = 4;
  optional string error = 3;
}

message UserInfo {
  optional string username = 1;
  optional string uid = 2;
  repeated string groups = 3;
  map<string, ExtraValue> extra = 4;
}
`;

const AUTHORIZATION = `
syntax = "proto2";
package k8s.io.api.authorization.v1;

message ExtraValue {
  repeated string items = 1;
}

message FieldSelectorAttributes {
  optional string rawSelector = 1;
  repeated FieldSelectorRequirement requirements = 2;
}

message FieldSelectorRequirement {
  optional string key = 1;
  optional string operator = 2;
  repeated string values = 3;
}

message LabelSelectorAttributes {
  optional string rawSelector = 1;
  repeated .k8s.io.apimachinery.pkg.apis.meta.v1.LabelSelectorRequirement requirements = 2;
}

message LocalSubjectAccessReview {
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
  optional SubjectAccessReviewSpec spec = 2;
  optional SubjectAccessReviewStatus status = 3;
}

message NonResourceAttributes {
  optional string path = 1;
  optional string verb = 2;
}

message ResourceAttributes {
  optional string namespace = 1;
  optional string verb = 2;
  optional string group = 3;
  optional string version = 4;
  optional string resource = 5;
  optional string subresource = 6;
  optional string name = 7;
  optional FieldSelectorAttributes fieldSelector = 8;
  optional LabelSelectorAttributes labelSelector = 9;
}

message SelfSubjectAccessReview {
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
  optional SelfSubjectAccessReviewSpec spec = 2;
  optional SubjectAccessReviewStatus status = 3;
}

message SelfSubjectAccessReviewSpec {
  optional ResourceAttributes resourceAttributes = 1;
  optional NonResourceAttributes nonResourceAttributes = 2;
}

message SelfSubjectRulesReview {
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
  optional SelfSubjectRulesReviewSpec spec = 2;
  optional SubjectRulesReviewStatus status = 3;
}

message SelfSubjectRulesReviewSpec {
  optional string namespace = 1;
}

message SubjectRulesReviewStatus {
  repeated ResourceRule resourceRules = 1;
  repeated NonResourceRule nonResourceRules = 2;
  optional bool incomplete = 3;
  optional string evaluationError = 4;
}

message ResourceRule {
  repeated string verbs = 1;
  repeated string apiGroups = 2;
  repeated string resources = 3;
  repeated string resourceNames = 4;
}

message NonResourceRule {
  repeated string verbs = 1;
  repeated string nonResourceURLs = 2;
}

message SubjectAccessReview {
  optional .k8s.io.apimachinery.pkg.apis.meta.v1.ObjectMeta metadata = 1;
  optional SubjectAccessReviewSpec spec = 2;
  optional SubjectAccessReviewStatus status = 3;
}

message SubjectAccessReviewSpec {
  optional ResourceAttributes resourceAttributes = 1;
  optional NonResourceAttributes nonResourceAttributes = 2;
  optional string user = 3;
  repeated string groups = 4;
  map<string, ExtraValue> extra = 5;
  optional string uid = 6;
}

message SubjectAccessReviewStatus {
  optional bool allowed = 1;
  optional bool denied = 4;
  optional string reason = 2;
  optional string evaluationError = 3;
}
`;

/** The magic prefix of every Kubernetes protobuf body. */
export const PROTOBUF_MAGIC = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
export const PROTOBUF_CONTENT_TYPE = 'application/vnd.kubernetes.protobuf';

const META_PKG = 'k8s.io.apimachinery.pkg.apis.meta.v1';

let root: protobuf.Root | undefined;

/** The protobufjs Root holding the trimmed schema (parsed once). Exported for tests. */
export function kubeProtoRoot(): protobuf.Root {
  if (!root) {
    const r = new protobuf.Root();
    for (const src of [RUNTIME, META, CORE, AUTHENTICATION, AUTHORIZATION]) protobuf.parse(src, r, { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

/** apiVersion/kind → message, for the kinds this server accepts as protobuf. */
const KINDS: Record<string, string> = {
  'v1/Secret': 'k8s.io.api.core.v1.Secret',
  'v1/ConfigMap': 'k8s.io.api.core.v1.ConfigMap',
  'v1/Namespace': 'k8s.io.api.core.v1.Namespace',
  'v1/Event': 'k8s.io.api.core.v1.Event',
  'authentication.k8s.io/v1/TokenReview': 'k8s.io.api.authentication.v1.TokenReview',
  'authentication.k8s.io/v1/SelfSubjectReview': 'k8s.io.api.authentication.v1.SelfSubjectReview',
  'authorization.k8s.io/v1/SubjectAccessReview': 'k8s.io.api.authorization.v1.SubjectAccessReview',
  'authorization.k8s.io/v1/SelfSubjectAccessReview': 'k8s.io.api.authorization.v1.SelfSubjectAccessReview',
  'authorization.k8s.io/v1/LocalSubjectAccessReview': 'k8s.io.api.authorization.v1.LocalSubjectAccessReview',
  'authorization.k8s.io/v1/SelfSubjectRulesReview': 'k8s.io.api.authorization.v1.SelfSubjectRulesReview',
};

/**
 * Go fields without `omitempty`: always rendered, with their zero value when unset. For message
 * fields this is a non-pointer struct, rendered as `{}` when absent.
 */
const ALWAYS = new Set([
  'OwnerReference.apiVersion',
  'OwnerReference.kind',
  'OwnerReference.name',
  'OwnerReference.uid',
  'LabelSelectorRequirement.key',
  'LabelSelectorRequirement.operator',
  'FieldSelectorRequirement.key',
  'FieldSelectorRequirement.operator',
  'NamespaceCondition.type',
  'NamespaceCondition.status',
  'Event.reportingComponent',
  'Event.reportingInstance',
  'SubjectAccessReviewStatus.allowed',
  // non-pointer structs (omitempty has no effect on a struct in encoding/json)
  'Secret.metadata',
  'ConfigMap.metadata',
  'Namespace.metadata',
  'Namespace.spec',
  'Namespace.status',
  'Event.metadata',
  'Event.involvedObject',
  'Event.source',
  'TokenReview.metadata',
  'TokenReview.spec',
  'TokenReview.status',
  'TokenReviewStatus.user',
  'SelfSubjectReview.metadata',
  'SelfSubjectReview.status',
  'SelfSubjectReviewStatus.userInfo',
  'SubjectAccessReview.metadata',
  'SubjectAccessReview.spec',
  'SubjectAccessReview.status',
  'SelfSubjectAccessReview.metadata',
  'SelfSubjectAccessReview.spec',
  'SelfSubjectAccessReview.status',
  'LocalSubjectAccessReview.metadata',
  'LocalSubjectAccessReview.spec',
  'LocalSubjectAccessReview.status',
  'SelfSubjectRulesReview.metadata',
  'SelfSubjectRulesReview.spec',
  'SelfSubjectRulesReview.status',
]);

/** Go pointer scalars (`*bool`, `*int64`, `*string`): an explicit zero on the wire is kept. */
const POINTER = new Set([
  'Secret.immutable',
  'ConfigMap.immutable',
  'ObjectMeta.deletionGracePeriodSeconds',
  'OwnerReference.controller',
  'OwnerReference.blockOwnerDeletion',
  'DeleteOptions.gracePeriodSeconds',
  'DeleteOptions.orphanDependents',
  'DeleteOptions.propagationPolicy',
  'Preconditions.uid',
  'Preconditions.resourceVersion',
]);

export class ProtobufDecodeError extends Error {
  /** 415: a kind (or encoding) this server does not take as protobuf; 400: a malformed body. */
  readonly code: 400 | 415;
  constructor(code: 400 | 415, message: string) {
    super(message);
    this.name = 'ProtobufDecodeError';
    this.code = code;
  }
}

type Plain = Record<string, unknown>;

const CONVERSION: protobuf.IConversionOptions = { longs: Number, bytes: String, defaults: false, arrays: false, objects: false };

/**
 * Decodes a Kubernetes protobuf body (magic + runtime.Unknown) into the JSON object the JSON API
 * would have received. Throws ProtobufDecodeError (415 for kinds not handled, 400 for garbage).
 */
export function decodeKubeProtobuf(body: Buffer): Record<string, unknown> {
  if (body.length < PROTOBUF_MAGIC.length || !body.subarray(0, PROTOBUF_MAGIC.length).equals(PROTOBUF_MAGIC))
    throw new ProtobufDecodeError(400, `provided data does not appear to be a protobuf message, expected prefix ${JSON.stringify(PROTOBUF_MAGIC.toString('latin1'))}`);
  const r = kubeProtoRoot();
  let unknown: { typeMeta?: { apiVersion?: string; kind?: string }; raw?: Uint8Array; contentEncoding?: string; contentType?: string };
  try {
    unknown = r.lookupType('k8s.io.apimachinery.pkg.runtime.Unknown').decode(body.subarray(PROTOBUF_MAGIC.length)) as typeof unknown;
  } catch (err) {
    throw new ProtobufDecodeError(400, `error decoding protobuf envelope: ${(err as Error).message}`);
  }
  const apiVersion = unknown.typeMeta?.apiVersion ?? '';
  const kind = unknown.typeMeta?.kind ?? '';
  if (!kind) throw new ProtobufDecodeError(400, `Object 'Kind' is missing in the protobuf body`);
  if (unknown.contentEncoding) throw new ProtobufDecodeError(415, `unsupported protobuf content encoding ${JSON.stringify(unknown.contentEncoding)}`);
  if (unknown.contentType && unknown.contentType !== PROTOBUF_CONTENT_TYPE)
    throw new ProtobufDecodeError(415, `unsupported content type ${JSON.stringify(unknown.contentType)} inside the protobuf envelope`);

  // DeleteOptions is registered in every group version (and in meta.k8s.io/v1).
  const isDeleteOptions = kind === 'DeleteOptions' && (apiVersion === 'v1' || apiVersion.endsWith('/v1'));
  const typeName = isDeleteOptions ? `${META_PKG}.DeleteOptions` : KINDS[`${apiVersion}/${kind}`];
  if (!typeName)
    throw new ProtobufDecodeError(415, `${kind} in version ${JSON.stringify(apiVersion)} cannot be sent as ${PROTOBUF_CONTENT_TYPE} to this server; use application/json`);

  const type = r.lookupType(typeName);
  let plain: Plain;
  try {
    plain = type.toObject(type.decode(unknown.raw ?? new Uint8Array()), CONVERSION) as Plain;
  } catch (err) {
    throw new ProtobufDecodeError(400, `error decoding ${kind} from protobuf: ${(err as Error).message}`);
  }
  return { apiVersion, kind, ...toJSON(type, plain) };
}

/** Renders one decoded message the way Go's encoding/json renders the k8s type. */
function toJSON(type: protobuf.Type, msg: Plain): Plain {
  const out: Plain = {};
  for (const field of type.fieldsArray) {
    const key = `${type.name}.${field.name}`;
    const v = msg[field.name];
    const sub = field.resolvedType instanceof protobuf.Type ? field.resolvedType : undefined;
    if (field.map) {
      const m = (v ?? {}) as Plain;
      if (Object.keys(m).length === 0) continue;
      out[field.name] = Object.fromEntries(Object.entries(m).map(([k, x]) => [k, sub ? value(sub, x as Plain) : x]));
    } else if (field.repeated) {
      const a = (v ?? []) as unknown[];
      if (a.length === 0) continue;
      out[field.name] = a.map((x) => (sub ? value(sub, x as Plain) : x));
    } else if (sub) {
      if (v === undefined) {
        if (ALWAYS.has(key) && !isTime(sub)) out[field.name] = toJSON(sub, {}); // Go renders the zero struct
        continue;
      }
      const x = value(sub, v as Plain);
      if (x !== undefined) out[field.name] = x;
    } else if (v !== undefined && (POINTER.has(key) || !isZero(v))) {
      out[field.name] = v;
    } else if (ALWAYS.has(key)) {
      out[field.name] = zeroOf(field.type);
    }
  }
  return out;
}

const isTime = (t: protobuf.Type) => t.fullName === `.${META_PKG}.Time` || t.fullName === `.${META_PKG}.MicroTime`;

/** A message-typed value: the well-known wrappers get their JSON forms, others recurse. */
function value(type: protobuf.Type, msg: Plain): unknown {
  switch (type.fullName) {
    case `.${META_PKG}.Time`:
      return formatTime(msg, false);
    case `.${META_PKG}.MicroTime`:
      return formatTime(msg, true);
    case `.${META_PKG}.FieldsV1`: {
      const raw = typeof msg.Raw === 'string' ? Buffer.from(msg.Raw, 'base64').toString('utf8') : '';
      if (raw === '') return undefined;
      prescanJson(raw, 'metadata.managedFields[].fieldsV1'); // JSON inside protobuf: depth before JSON.parse and the walks after it
      try {
        return JSON.parse(raw);
      } catch (err) {
        throw new ProtobufDecodeError(400, `error decoding fieldsV1: ${(err as Error).message}`);
      }
    }
    case '.k8s.io.api.authentication.v1.ExtraValue':
    case '.k8s.io.api.authorization.v1.ExtraValue':
      return (msg.items as string[] | undefined) ?? [];
    default:
      return toJSON(type, msg);
  }
}

/** metav1.Time → RFC3339 (`2026-01-02T03:04:05Z`); MicroTime → RFC3339 with microseconds. Zero → undefined. */
function formatTime(msg: Plain, micro: boolean): string | undefined {
  const seconds = Number(msg.seconds ?? 0);
  const nanos = Number(msg.nanos ?? 0);
  if (seconds === 0 && nanos === 0) return undefined; // Go's Time.Unmarshal: the zero time
  if (!Number.isSafeInteger(seconds) || !Number.isInteger(nanos) || nanos < 0 || nanos > 999_999_999)
    throw new ProtobufDecodeError(400, `invalid timestamp {seconds: ${msg.seconds}, nanos: ${msg.nanos}}`);
  const d = new Date(seconds * 1000);
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() < 0 || d.getUTCFullYear() > 9999)
    throw new ProtobufDecodeError(400, `timestamp out of range: ${seconds}s`);
  const base = d.toISOString().slice(0, 19); // YYYY-MM-DDTHH:MM:SS
  return micro ? `${base}.${String(Math.floor(nanos / 1000)).padStart(6, '0')}Z` : `${base}Z`;
}

const isZero = (v: unknown) => v === '' || v === 0 || v === false;

function zeroOf(protoType: string): unknown {
  if (protoType === 'string' || protoType === 'bytes') return '';
  if (protoType === 'bool') return false;
  return 0;
}
