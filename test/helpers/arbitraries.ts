// fast-check input for the fuzz test and the chaos bench: a value of any JSON type, with strings
// that break names, paths and prototypes.
import fc from 'fast-check';

export const weird = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', ' ', '-', '-a', 'a-', 'a..b', 'UPPER', 'a'.repeat(254), 'a'.repeat(64), 'ä', '../x', 'x/y', '%2F', '\u0000', 'a b', '__proto__', 'constructor', 'prototype'),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);

// ---- every endpoint, every content type (test/fuzz-endpoints.test.ts, bench/chaos.ts) ----------

import YAML from 'yaml';
import { kubeProtoRoot, PROTOBUF_MAGIC } from '../../apiserver/protobuf.js';

export interface Endpoint {
  name: string;
  apiVersion: string;
  kind: string;
  /** The collection URL in namespace `ns`. */
  collection: (ns: string) => string;
  /** Stored (PUT/PATCH/DELETE make sense) or create-only (the review kinds). */
  stored: boolean;
  /** The protobuf message, for kinds this server takes as protobuf. */
  proto?: string;
  /** A valid object named `name`. */
  sample: (name: string) => Record<string, unknown>;
}

const core = (plural: string, kind: string, proto: string | undefined, extra: Record<string, unknown>): Endpoint => ({
  name: plural,
  apiVersion: 'v1',
  kind,
  collection: (ns) => `/api/v1/namespaces/${ns}/${plural}`,
  stored: true,
  proto,
  sample: (name) => ({ apiVersion: 'v1', kind, metadata: { name }, ...extra }),
});
const GV = 'delivery.ocm.software/v1alpha1';
const ocm = (plural: string, kind: string, spec: Record<string, unknown>): Endpoint => ({
  name: plural,
  apiVersion: GV,
  kind,
  collection: (ns) => `/apis/${GV}/namespaces/${ns}/${plural}`,
  stored: true,
  sample: (name) => ({ apiVersion: GV, kind, metadata: { name }, spec }),
});
const review = (group: string, plural: string, kind: string, namespaced: boolean, spec: Record<string, unknown>): Endpoint => ({
  name: plural,
  apiVersion: `${group}/v1`,
  kind,
  collection: (ns) => (namespaced ? `/apis/${group}/v1/namespaces/${ns}/${plural}` : `/apis/${group}/v1/${plural}`),
  stored: false,
  proto: `k8s.io.api.${group.split('.')[0]}.v1.${kind}`,
  sample: () => ({ apiVersion: `${group}/v1`, kind, metadata: {}, spec }),
});

export const ENDPOINTS: Endpoint[] = [
  core('configmaps', 'ConfigMap', 'k8s.io.api.core.v1.ConfigMap', { data: { a: '1' } }),
  core('secrets', 'Secret', 'k8s.io.api.core.v1.Secret', { stringData: { a: '1' } }),
  core('events', 'Event', 'k8s.io.api.core.v1.Event', { involvedObject: { kind: 'ConfigMap', name: 'x' }, reason: 'R', message: 'm' }),
  ocm('ocmcomponents', 'OCMComponent', { name: 'github.com/acme/app', version: '1.0.0', repository: { url: 'ghcr.io/acme' } }),
  ocm('ocmresources', 'OCMResource', { resource: 'manifests' }),
  ocm('sources', 'Source', { componentRef: { name: 'x' }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: 'x' } }),
  review('authorization.k8s.io', 'selfsubjectaccessreviews', 'SelfSubjectAccessReview', false, { nonResourceAttributes: { path: '/x', verb: 'get' } }),
  review('authorization.k8s.io', 'subjectaccessreviews', 'SubjectAccessReview', false, { user: 'u', resourceAttributes: { verb: 'get', resource: 'configmaps' } }),
  review('authorization.k8s.io', 'localsubjectaccessreviews', 'LocalSubjectAccessReview', true, { user: 'u', resourceAttributes: { verb: 'get', resource: 'configmaps', namespace: 'fz' } }),
  review('authentication.k8s.io', 'tokenreviews', 'TokenReview', false, { token: 'nope' }),
];

const CONTENT_TYPES = ['application/json', 'application/yaml', 'application/vnd.kubernetes.protobuf', 'application/merge-patch+json', 'application/strategic-merge-patch+json', 'application/json-patch+json', 'application/apply-patch+yaml', 'text/plain'] as const;

/** A value nested `n` deep as arrays or maps. */
const nested = (n: number, map: boolean): unknown => {
  let v: unknown = 1;
  for (let i = 0; i < n; i++) v = map ? { a: v } : [v];
  return v;
};

/** Mutations of an object: its fields replaced by weird values, unknown fields, deep values. */
const mutated = (e: Endpoint) =>
  fc.tuple(
    fc.oneof(fc.constant('x'), fc.constant('y'), weird),
    fc.dictionary(fc.constantFrom('metadata', 'spec', 'data', 'status', 'kind', 'apiVersion', 'extra', 'stringData'), fc.oneof({ weight: 3, arbitrary: weird }, { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 4 }) }, { weight: 1, arbitrary: fc.constantFrom(100, 511, 513, 3000).chain((n) => fc.boolean().map((m) => nested(n, m))) }), { maxKeys: 3 }),
  ).map(([name, over]) => ({ ...e.sample(typeof name === 'string' ? name : 'x'), ...over }) as Record<string, unknown>);

/** Encodings of an object by content type, some of them hostile. */
function encode(obj: Record<string, unknown>, ct: (typeof CONTENT_TYPES)[number], e: Endpoint, how: string): Buffer {
  switch (ct) {
    case 'application/vnd.kubernetes.protobuf': {
      const root = kubeProtoRoot();
      let raw: Uint8Array;
      try {
        const type = root.lookupType(e.proto ?? 'k8s.io.api.core.v1.ConfigMap');
        raw = type.encode(type.fromObject(obj)).finish();
      } catch {
        raw = Buffer.from(JSON.stringify(obj));
      }
      const unknown = root.lookupType('k8s.io.apimachinery.pkg.runtime.Unknown');
      return Buffer.concat([PROTOBUF_MAGIC, unknown.encode(unknown.fromObject({ typeMeta: { apiVersion: e.apiVersion, kind: e.kind }, raw })).finish()]);
    }
    case 'application/yaml':
    case 'application/apply-patch+yaml': {
      const text = (() => {
        try {
          return YAML.stringify(obj);
        } catch {
          return `${JSON.stringify(obj)}\n`;
        }
      })();
      if (how === 'anchors') return Buffer.from(`${text}${Array.from({ length: 1200 }, (_, i) => `x${i}: &a${i} [*a${Math.max(0, i - 1)}]`).join('\n')}\n`);
      if (how === 'documents') return Buffer.from(`${text}---\n${text}`);
      if (how === 'block-deep' && !text.startsWith('{')) return Buffer.from(`${text}deep:\n${Array.from({ length: 700 }, (_, i) => `${' '.repeat(i + 1)}- k:`).join('\n')} 1\n`);
      try {
        return Buffer.from(YAML.stringify(obj, { collectionStyle: how === 'flow' ? 'flow' : 'any' }));
      } catch {
        return Buffer.from(JSON.stringify(obj)); // too deep for the YAML writer; JSON is YAML
      }
    }
    case 'application/json-patch+json':
      return Buffer.from(JSON.stringify(how === 'copies' ? Array.from({ length: 40 }, (_, i) => ({ op: 'copy', from: '', path: `/metadata/annotations/k${i}` })) : [{ op: 'add', path: '/metadata/labels', value: (obj.metadata as Record<string, unknown>)?.labels ?? {} }, { op: 'replace', path: '/spec', value: obj.spec ?? {} }]));
    default:
      return Buffer.from(JSON.stringify(obj));
  }
}

export interface FuzzRequest {
  endpoint: string;
  method: string;
  path: string;
  contentType: string;
  what: string;
  body?: Buffer;
  headers: Record<string, string>;
}

/** One request against one of ENDPOINTS, in one of the content types, maybe truncated or with bytes flipped. */
export const hostileRequest = (ns: string) =>
  fc
    .tuple(fc.constantFrom(...ENDPOINTS), fc.constantFrom(...CONTENT_TYPES), fc.constantFrom('plain', 'flow', 'anchors', 'documents', 'block-deep', 'copies'), fc.constantFrom('whole', 'whole', 'whole', 'truncated', 'flipped'), fc.nat())
    .chain(([e, ct, how, damage, n]) =>
      mutated(e).map((obj): FuzzRequest => {
        const patch = /patch/.test(ct);
        const method = !e.stored ? 'POST' : patch ? 'PATCH' : ['POST', 'PUT', 'DELETE'][n % 3];
        const name = 'x';
        const path = method === 'POST' ? e.collection(ns) : `${e.collection(ns)}/${name}${ct === 'application/apply-patch+yaml' ? '?fieldManager=fuzz' : ''}`;
        if (method !== 'POST' && method !== 'DELETE') (obj.metadata as Record<string, unknown> | undefined) && typeof obj.metadata === 'object' && ((obj.metadata as Record<string, unknown>).name = name);
        let body = encode(obj, ct, e, how);
        if (damage === 'truncated') body = body.subarray(0, n % (body.length + 1));
        if (damage === 'flipped' && body.length) {
          body = Buffer.from(body);
          body[n % body.length] ^= 1 << n % 8;
        }
        return { endpoint: e.name, method, path, contentType: ct, what: `${how}, ${damage}`, body, headers: { 'Content-Type': ct } };
      }),
    );

/** One request against the snapshot registry's API (OCI distribution), from reads to broken pushes. */
export const registryRequest = () =>
  fc
    .tuple(
      fc.constantFrom('GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE'),
      fc.constantFrom('fz/app/src-ocmresource', 'fz/a', 'UPPER/case', '..%2F..', 'a'.repeat(300), ''),
      fc.constantFrom('/tags/list', '/manifests/latest', '/manifests/sha256:' + '0'.repeat(64), '/blobs/sha256:' + '1'.repeat(64), '/blobs/uploads/', '/blobs/uploads/nope?digest=sha256:00', '/referrers/sha256:' + '2'.repeat(64), '/tags/list?n=-1&last=%FF', '/manifests/' + 'x'.repeat(200)),
      fc.oneof(fc.constant(undefined), fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v))), fc.constant(Buffer.from(`{"schemaVersion":2,"layers":${'['.repeat(5000)}${']'.repeat(5000)}}`)), fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a))),
      fc.constantFrom('application/vnd.oci.image.manifest.v1+json', 'application/octet-stream', 'application/json', ''),
      fc.constantFrom('', 'bytes=0-', 'bytes=5-1', 'bytes=999999999-'),
    )
    .map(([method, name, tail, body, ct, range]): FuzzRequest => ({
      endpoint: 'registry',
      method,
      path: name === '' && tail === '/tags/list' ? '/v2/' : `/v2/${name}${tail}`,
      contentType: ct,
      what: method,
      body: method === 'GET' || method === 'HEAD' ? undefined : body,
      headers: { ...(ct ? { 'Content-Type': ct } : {}), ...(range ? { Range: range } : {}) },
    }));
