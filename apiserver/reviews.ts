// The create-only review kinds (authentication.k8s.io TokenReview and SelfSubjectReview,
// authorization.k8s.io SubjectAccessReview, SelfSubjectAccessReview, LocalSubjectAccessReview).
// They are answered from this server's own authenticator and authorizer and never stored.
import { Type } from '@sinclair/typebox';
import { freeFormObject } from '../kinds/common.js';
import type { KindDefinition, KubeObject } from '../kinds/types.js';
import { type Attributes, type Authorizer, rulesOf, type UserInfo } from './auth.js';
import { badRequest } from './errors.js';

export type VirtualCreate = (obj: KubeObject, user: UserInfo, namespace: string | undefined) => Promise<KubeObject>;

const review = (group: string, kind: string, plural: string, namespaced: boolean, description: string): KindDefinition => ({
  group,
  version: 'v1',
  kind,
  plural,
  singular: kind.toLowerCase(),
  namespaced,
  description,
  schema: Type.Object({
    spec: Type.Optional(freeFormObject('The request.')),
    status: Type.Optional(freeFormObject('The answer, filled in by the server.')),
  }),
  subresources: {},
  columns: [],
  verbs: ['create'],
});

export const tokenReviewKind = review('authentication.k8s.io', 'TokenReview', 'tokenreviews', false, 'TokenReview attempts to authenticate a token to a known user.');
export const selfSubjectReviewKind = review('authentication.k8s.io', 'SelfSubjectReview', 'selfsubjectreviews', false, 'SelfSubjectReview contains the user information that the server has about the requesting user.');
export const subjectAccessReviewKind = review('authorization.k8s.io', 'SubjectAccessReview', 'subjectaccessreviews', false, 'SubjectAccessReview checks whether or not a user or group can perform an action.');
export const selfSubjectAccessReviewKind = review('authorization.k8s.io', 'SelfSubjectAccessReview', 'selfsubjectaccessreviews', false, 'SelfSubjectAccessReview checks whether or the current user can perform an action.');
export const localSubjectAccessReviewKind = review('authorization.k8s.io', 'LocalSubjectAccessReview', 'localsubjectaccessreviews', true, 'LocalSubjectAccessReview checks whether or not a user or group can perform an action in a given namespace.');

interface AccessSpec {
  user?: string;
  uid?: string;
  groups?: string[];
  extra?: Record<string, string[]>;
  resourceAttributes?: { namespace?: string; verb?: string; group?: string; version?: string; resource?: string; subresource?: string; name?: string };
  nonResourceAttributes?: { path?: string; verb?: string };
}

function attributesOf(spec: AccessSpec, user: UserInfo): Attributes {
  const ra = spec.resourceAttributes;
  const na = spec.nonResourceAttributes;
  if (!ra && !na) throw badRequest('spec.resourceAttributes or spec.nonResourceAttributes is required');
  if (ra)
    return {
      user,
      verb: ra.verb ?? '',
      resourceRequest: true,
      path: '',
      apiGroup: ra.group ?? '',
      apiVersion: ra.version ?? '',
      resource: ra.resource ?? '',
      subresource: ra.subresource ?? '',
      namespace: ra.namespace ?? '',
      name: ra.name ?? '',
    };
  return { user, verb: na!.verb ?? '', resourceRequest: false, path: na!.path ?? '', apiGroup: '', apiVersion: '', resource: '', subresource: '', namespace: '', name: '' };
}

const spec = (obj: KubeObject) => (obj.spec ?? {}) as AccessSpec & { token?: string };

export function reviewHandlers(authz: Authorizer, tokens: ((t: string) => Promise<UserInfo | undefined>) | undefined) {
  const access = async (obj: KubeObject, subject: UserInfo, ns?: string) => {
    const a = attributesOf(spec(obj), subject);
    if (ns !== undefined) {
      if (a.resourceRequest && a.namespace && a.namespace !== ns) throw badRequest(`spec.resourceAttributes.namespace must match the namespace of the request (${ns})`);
      a.namespace = ns;
    }
    const d = await authz.authorize(a);
    return { ...obj, status: { allowed: d.allowed, ...(d.reason ? { reason: d.reason } : {}) } };
  };
  const handlers = new Map<KindDefinition, VirtualCreate>();
  handlers.set(tokenReviewKind, async (obj) => {
    const token = spec(obj).token;
    const u = token && tokens ? await tokens(token) : undefined;
    return {
      ...obj,
      status: u
        ? { authenticated: true, user: { username: u.name, ...(u.uid ? { uid: u.uid } : {}), groups: u.groups, ...(u.extra ? { extra: u.extra } : {}) } }
        : { authenticated: false, ...(token ? { error: 'invalid bearer token' } : {}) },
    };
  });
  handlers.set(selfSubjectReviewKind, async (obj, user) => ({
    ...obj,
    status: { userInfo: { username: user.name, ...(user.uid ? { uid: user.uid } : {}), groups: user.groups, ...(user.extra ? { extra: user.extra } : {}) } },
  }));
  const subjectOf = (obj: KubeObject): UserInfo => {
    const s = spec(obj);
    if (!s.user && !s.groups?.length) throw badRequest('at least one of spec.user and spec.groups must be specified');
    return { name: s.user ?? '', groups: s.groups ?? [], ...(s.uid ? { uid: s.uid } : {}), ...(s.extra ? { extra: s.extra } : {}) };
  };
  handlers.set(subjectAccessReviewKind, (obj) => access(obj, subjectOf(obj)));
  handlers.set(localSubjectAccessReviewKind, (obj, _user, ns) => access(obj, subjectOf(obj), ns));
  handlers.set(selfSubjectAccessReviewKind, (obj, user) => access(obj, user));
  // pkg/registry/authorization/selfsubjectrulesreview/rest.go: spec.namespace is required
  handlers.set(selfSubjectRulesReviewKind, async (obj, user) => {
    const ns = (obj.spec as { namespace?: unknown } | undefined)?.namespace;
    if (typeof ns !== 'string' || ns === '') throw badRequest('no namespace on request');
    return { ...obj, status: await rulesOf(authz, user, ns) };
  });
  return handlers;
}

export const selfSubjectRulesReviewKind = review('authorization.k8s.io', 'SelfSubjectRulesReview', 'selfsubjectrulesreviews', false, 'SelfSubjectRulesReview enumerates the set of actions the current user can perform within a namespace.');

export const reviewKinds = [tokenReviewKind, selfSubjectReviewKind, subjectAccessReviewKind, selfSubjectAccessReviewKind, localSubjectAccessReviewKind, selfSubjectRulesReviewKind];
