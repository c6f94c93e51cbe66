// Authentication, authorization and impersonation, as k8s.io/apiserver does them: request
// headers from a front proxy (only on connections whose client certificate comes from the
// requestheader CA with an allowed name), client certificates (CN = user, O = groups), bearer
// tokens (TokenReview); then an Authorizer decides on the request's attributes.
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import { certPullNamespace } from '../registry/server-auth.js';
import { ApiError, badRequest, forbidden } from './errors.js';
import type { RequestInfo } from './request-info.js';

export interface UserInfo {
  name: string;
  uid?: string;
  groups: string[];
  extra?: Record<string, string[]>;
}

export interface RequestHeaderConfig {
  cas: X509Certificate[];
  /** Empty: any CN signed by the CAs is accepted. */
  allowedNames: string[];
  usernameHeaders: string[];
  groupHeaders: string[];
  extraHeaderPrefixes: string[];
}

export interface AuthnConfig {
  clientCAs: X509Certificate[];
  requestHeader?: RequestHeaderConfig;
  /** Resolves a bearer token to a user (TokenReview against the host, or a static token file). */
  tokens?: (token: string) => Promise<UserInfo | undefined>;
}

/** Splits a PEM bundle into certificates. */
export function parsePemBundle(pem: string | undefined): X509Certificate[] {
  if (!pem) return [];
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? []).map((c) => new X509Certificate(c));
}

const signedBy = (cert: X509Certificate, cas: X509Certificate[]) => cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));

/** Request headers, one entry per header line: Node's `req.headersDistinct` (never `req.headers`,
 * which joins repeated headers with ", "). */
export type RequestHeaders = Record<string, string | string[] | undefined>;

/** Every non-empty value of a header, one per header line and never split at commas, as Go's
 * http.Header keeps them: kube reads `X-Remote-Group: a,b` as the one group "a,b" and two header
 * lines as two groups (k8s.io/apiserver/pkg/authentication/request/headerrequest/requestheader.go,
 * allHeaderValues; the same for Impersonate-Group in pkg/endpoints/filters/impersonation.go). */
function headerValues(headers: RequestHeaders, name: string): string[] {
  const v = headers[name.toLowerCase()];
  if (v === undefined) return [];
  return (Array.isArray(v) ? v : [v]).filter((x) => x !== '');
}

function dnField(subject: string, key: string): string[] {
  return subject
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

const withAuthenticated = (u: UserInfo): UserInfo =>
  u.groups.includes('system:authenticated') || u.name === 'system:anonymous' ? u : { ...u, groups: [...u.groups, 'system:authenticated'] };

export class Authenticator {
  constructor(public config: AuthnConfig) {}

  /** All CAs the TLS layer must ask client certificates for. */
  trustedCAs(): string[] {
    return [...this.config.clientCAs, ...(this.config.requestHeader?.cas ?? [])].map((c) => c.toString());
  }

  /** What a connection's client certificate is, computed once per TLS connection. */
  private readonly peers = new WeakMap<TLSSocket, { proxy: boolean; cn: string; user?: UserInfo }>();

  private classify(socket: TLSSocket) {
    let c = this.peers.get(socket);
    if (c) return c;
    c = { proxy: false, cn: '' };
    const peer = socket.authorized ? socket.getPeerX509Certificate() : undefined;
    if (peer) {
      c.cn = dnField(peer.subject, 'CN')[0] ?? '';
      if (this.config.requestHeader && signedBy(peer, this.config.requestHeader.cas)) c.proxy = true;
      // A registry pull certificate (ocm-registry-tls, for Flux) is no identity at the API.
      if (signedBy(peer, this.config.clientCAs) && certPullNamespace(peer.subjectAltName) === undefined)
        c.user = withAuthenticated({ name: c.cn, groups: dnField(peer.subject, 'O') });
    }
    this.peers.set(socket, c);
    return c;
  }

  async authenticate(socket: TLSSocket, headers: RequestHeaders): Promise<UserInfo | undefined> {
    const peer = this.classify(socket);
    const rh = this.config.requestHeader;
    if (peer.proxy && rh) {
      if (rh.allowedNames.length && !rh.allowedNames.includes(peer.cn))
        throw new ApiError(401, 'Unauthorized', `Unauthorized: client certificate CN ${JSON.stringify(peer.cn)} is not allowed for request headers`);
      const name = rh.usernameHeaders.map((h) => headerValues(headers, h)[0]).find((v) => v);
      if (name) {
        const groups = rh.groupHeaders.flatMap((h) => headerValues(headers, h));
        const extra: Record<string, string[]> = {};
        for (const [h, v] of Object.entries(headers)) {
          const prefix = rh.extraHeaderPrefixes.find((p) => h.startsWith(p.toLowerCase()));
          if (!prefix || v === undefined) continue;
          const key = unescapeExtraKey(h.slice(prefix.length));
          extra[key] = [...(extra[key] ?? []), ...(Array.isArray(v) ? v : [v])];
        }
        return withAuthenticated({ name, groups, ...(Object.keys(extra).length ? { extra } : {}) });
      }
    }
    if (peer.user) return peer.user;
    const auth = headerValues(headers, 'authorization')[0];
    if (auth && /^bearer /i.test(auth) && this.config.tokens) {
      const u = await this.config.tokens(auth.slice(7).trim());
      if (u) return withAuthenticated(u);
    }
    return undefined;
  }
}

// ---- request attributes (k8s.io/apiserver/pkg/endpoints/request.RequestInfo) ----

/** What an authorizer decides on: the request's RequestInfo fields and the user. */
export type Attributes = Pick<RequestInfo, 'verb' | 'resourceRequest' | 'path' | 'apiGroup' | 'apiVersion' | 'resource' | 'subresource' | 'namespace' | 'name'> & { user: UserInfo };

/** The authorizer's attributes of a request: its RequestInfo (apiserver/request-info.ts, read once per request) and the user. */
export function requestAttributes(user: UserInfo, info: RequestInfo): Attributes {
  const { path, resourceRequest, verb, apiGroup, apiVersion, resource, subresource, namespace, name } = info;
  return { user, path, resourceRequest, verb, apiGroup, apiVersion, resource, subresource, namespace, name };
}

export interface Decision {
  allowed: boolean;
  reason?: string;
}

/** What a user may do in a namespace (authorizer.RuleResolver; SelfSubjectRulesReview's status). */
export interface RulesResult {
  resourceRules: { verbs: string[]; apiGroups: string[]; resources: string[]; resourceNames?: string[] }[];
  nonResourceRules: { verbs: string[]; nonResourceURLs: string[] }[];
  incomplete: boolean;
  evaluationError?: string;
}

export interface Authorizer {
  authorize(a: Attributes): Promise<Decision>;
  /** The rules that apply to a user in a namespace; absent: the authorizer cannot list them (kube's webhook mode). */
  rulesFor?(user: UserInfo, namespace: string): Promise<RulesResult>;
}

/** kube-apiserver's wording of a 403. */
export function forbiddenError(a: Attributes, reason?: string): ApiError {
  const why = reason ? `: ${reason}` : '';
  if (!a.resourceRequest) return forbidden(`forbidden: User "${a.user.name}" cannot ${a.verb} path "${a.path}"${why}`);
  const gr = a.apiGroup ? `${a.resource}.${a.apiGroup}` : a.resource;
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const scope = a.namespace ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
  const e = forbidden(`${gr}${a.name ? ` "${a.name}"` : ''} is forbidden: User "${a.user.name}" cannot ${a.verb} resource "${res}" in API group "${a.apiGroup}" ${scope}${why}`);
  e.status.details = { name: a.name || undefined, group: a.apiGroup, kind: a.resource };
  return e;
}

// ---- static policy (standalone) ----

export interface PolicyRule {
  users?: string[];
  groups?: string[];
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  namespaces?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

const DEFAULT_RULES: PolicyRule[] = [
  { groups: ['system:masters'], verbs: ['*'], apiGroups: ['*'], resources: ['*'], nonResourceURLs: ['*'] },
  {
    groups: ['system:authenticated'],
    verbs: ['get'],
    nonResourceURLs: ['/api', '/api/*', '/apis', '/apis/*', '/openapi', '/openapi/*', '/version', '/version/', '/healthz', '/livez', '/readyz'],
  },
  { groups: ['system:authenticated'], verbs: ['create'], apiGroups: ['authorization.k8s.io'], resources: ['selfsubjectaccessreviews', 'selfsubjectrulesreviews'] },
  { groups: ['system:authenticated'], verbs: ['create'], apiGroups: ['authentication.k8s.io'], resources: ['selfsubjectreviews'] },
];

const matches = (list: string[] | undefined, v: string) => !list || list.includes('*') || list.includes(v);

function urlMatches(patterns: string[], path: string): boolean {
  return patterns.some((p) => p === '*' || p === path || (p.endsWith('*') && path.startsWith(p.slice(0, -1))));
}

const subjectOf = (r: PolicyRule, u: UserInfo) => (r.users && (r.users.includes('*') || r.users.includes(u.name))) || (r.groups && r.groups.some((g) => g === '*' || u.groups.includes(g)));

export function ruleAllows(r: PolicyRule, a: Attributes): boolean {
  if (!subjectOf(r, a.user) || !matches(r.verbs, a.verb)) return false;
  if (!a.resourceRequest) return !!r.nonResourceURLs && urlMatches(r.nonResourceURLs, a.path);
  if (!r.resources || !matches(r.apiGroups ?? [''], a.apiGroup)) return false;
  const res = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  if (!r.resources.includes('*') && !r.resources.includes(res) && !(a.subresource && r.resources.includes(`${a.resource}/*`))) return false;
  if (r.namespaces && !r.namespaces.includes('*') && !r.namespaces.includes(a.namespace)) return false;
  if (r.resourceNames && !r.resourceNames.includes(a.name)) return false;
  return true;
}

/** Standalone authorization: system:masters may do everything, everyone else what the policy says. */
export class StaticAuthorizer implements Authorizer {
  readonly rules: PolicyRule[];
  constructor(rules: PolicyRule[] = []) {
    this.rules = [...DEFAULT_RULES, ...rules];
  }
  async authorize(a: Attributes): Promise<Decision> {
    return this.rules.some((r) => ruleAllows(r, a)) ? { allowed: true } : { allowed: false };
  }
  /** The policy's rules for this user that hold in `namespace` (cluster-wide ones included), complete. */
  async rulesFor(user: UserInfo, namespace: string): Promise<RulesResult> {
    const out: RulesResult = { resourceRules: [], nonResourceRules: [], incomplete: false };
    for (const r of this.rules) {
      if (!subjectOf(r, user)) continue;
      if (r.resources && (!r.namespaces || r.namespaces.includes('*') || r.namespaces.includes(namespace)))
        out.resourceRules.push({ verbs: r.verbs, apiGroups: r.apiGroups ?? [''], resources: r.resources, ...(r.resourceNames ? { resourceNames: r.resourceNames } : {}) });
      if (r.nonResourceURLs) out.nonResourceRules.push({ verbs: r.verbs, nonResourceURLs: r.nonResourceURLs });
    }
    return out;
  }
}

/**
 * An authorizer's rules, or what kube's webhook authorizer answers when it cannot list them
 * (plugin/pkg/authorizer/webhook/webhook.go RulesFor): nothing, incomplete, with the reason.
 */
export async function rulesOf(authz: Authorizer, user: UserInfo, namespace: string): Promise<RulesResult> {
  if (authz.rulesFor) return authz.rulesFor(user, namespace);
  return { resourceRules: [], nonResourceRules: [], incomplete: true, evaluationError: 'webhook authorizer does not support user rule resolution' };
}

/** Caches decisions of a slower authorizer (SubjectAccessReviews) for a short time. */
export class CachingAuthorizer implements Authorizer {
  private readonly cache = new Map<string, { d: Decision; until: number }>();
  constructor(
    private readonly inner: Authorizer,
    private readonly allowTTL = 10_000,
    private readonly denyTTL = 10_000,
  ) {}
  async authorize(a: Attributes): Promise<Decision> {
    const key = JSON.stringify([a.user, a.verb, a.resourceRequest, a.path, a.apiGroup, a.resource, a.subresource, a.namespace, a.name]);
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return hit.d;
    const d = await this.inner.authorize(a);
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { d, until: Date.now() + (d.allowed ? this.allowTTL : this.denyTTL) });
    return d;
  }
  rulesFor(user: UserInfo, namespace: string): Promise<RulesResult> {
    return rulesOf(this.inner, user, namespace);
  }
}

// ---- impersonation ----

/**
 * The key of an `X-Remote-Extra-` or `Impersonate-Extra-` header: %-escapes decoded as Go's
 * url.PathUnescape does, and a malformed one (`%ZZ`) kept as it is, "Always record extra strings,
 * even if malformed/unencoded" (k8s.io/apiserver unescapeExtraKey, in
 * pkg/authentication/request/headerrequest/requestheader.go and the impersonation filter).
 */
export function unescapeExtraKey(encoded: string): string {
  if (!encoded.includes('%')) return encoded;
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    const c = encoded.charCodeAt(i);
    if (c === 0x25) {
      const hex = encoded.slice(i + 1, i + 3);
      if (!/^[0-9a-fA-F]{2}$/.test(hex)) return encoded;
      bytes.push(parseInt(hex, 16));
      i += 2;
    } else bytes.push(...Buffer.from(encoded[i], 'utf8'));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Applies Impersonate-* headers after checking that the real user may impersonate each. */
export async function impersonate(user: UserInfo, headers: RequestHeaders, authz: Authorizer): Promise<UserInfo> {
  const asUser = headerValues(headers, 'impersonate-user')[0];
  const asGroups = headerValues(headers, 'impersonate-group');
  const asUid = headerValues(headers, 'impersonate-uid')[0];
  const extraHeaders = Object.keys(headers).filter((h) => h.startsWith('impersonate-extra-'));
  const name = asUser;
  const uid = asUid;
  if (!name && !asGroups.length && !uid && !extraHeaders.length) return user;
  // k8s.io/apiserver pkg/endpoints/filters/impersonation/impersonation.go (buildImpersonationRequests): 400.
  if (!name) throw badRequest(`requested ${[...asGroups.map((g) => `group ${g}`), ...extraHeaders.map((h) => `extra ${h.slice('impersonate-extra-'.length)}`), ...(uid ? [`uid ${uid}`] : [])].join(', ')} without impersonating a user`);
  const check = async (resource: string, n: string, apiGroup = '') => {
    const a: Attributes = { user, verb: 'impersonate', resourceRequest: true, path: '', apiGroup, apiVersion: '', resource, subresource: '', namespace: '', name: n };
    if (!(await authz.authorize(a)).allowed) {
      const e = forbiddenError(a);
      e.status.message = `${resource}${apiGroup ? '.' + apiGroup : ''} "${n}" is forbidden: User "${user.name}" cannot impersonate resource "${resource}" in API group "${apiGroup}" at the cluster scope`;
      throw e;
    }
  };
  await check(name.startsWith('system:serviceaccount:') ? 'serviceaccounts' : 'users', name);
  for (const g of asGroups) await check('groups', g);
  if (uid) await check('uids', uid, 'authentication.k8s.io');
  const extra: Record<string, string[]> = {};
  for (const h of extraHeaders) {
    const key = unescapeExtraKey(h.slice('impersonate-extra-'.length));
    for (const v of headerValues(headers, h)) await check(`userextras/${key}`, v, 'authentication.k8s.io');
    extra[key] = headerValues(headers, h);
  }
  const groups = asGroups.length ? asGroups : [];
  return withAuthenticated({ name, groups, ...(uid ? { uid } : {}), ...(Object.keys(extra).length ? { extra } : {}) });
}

