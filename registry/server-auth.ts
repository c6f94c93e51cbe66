// Who is calling (client certificate, bearer token or nobody) and what they may do.
// Tokens are `base64url(JSON claims).base64url(HMAC-SHA256(secret, first part))`.
//
// The registry decides as the API would (issue 16): repository `<ns>/...` holds the snapshots of
// namespace <ns>, so pulling it needs `get` on snapshots.delivery.ocm.software in <ns> (the API's
// own authorizer: SubjectAccessReview in a cluster, the policy file standalone); pushing and
// deleting are the server's own (its certificate: system:masters from its CA); the catalog lists
// only what the caller may pull. A certificate naming a namespace (the one in each namespace's
// ocm-registry-tls Secret, for Flux) pulls that namespace and nothing else.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { Attributes, Authorizer } from '../apiserver/auth.js';

export const SERVICE = 'ocm-apiserver-registry';
export const TOKEN_TTL_SECONDS = 900;

export interface Access {
  type: string;
  name: string;
  actions: string[];
}

export interface Principal {
  name: string;
  groups: string[];
  /** `password`: at the token endpoint, with HTTP Basic (the password an API bearer token). */
  via: 'cert' | 'token' | 'password' | 'anonymous';
  /** What a token grants (decided when it was issued). */
  access?: Access[];
  /** A certificate of the server's own identity (system:masters, signed by its CA): every action. */
  server?: boolean;
  /** A certificate that may pull the repositories of this namespace and nothing else. */
  pullNamespace?: string;
}

export const SNAPSHOT_GROUP = 'delivery.ocm.software';
/** The URI SAN of a certificate scoped to pulling one namespace's snapshots: PREFIX + namespace. */
export const PULL_URI_PREFIX = 'urn:ocm-apiserver:registry:pull:';

/** The namespace a repository belongs to: its first path segment; none for a one-segment name. */
export function repoNamespace(name: string): string | undefined {
  const i = name.indexOf('/');
  return i > 0 ? name.slice(0, i) : undefined;
}

/** May `user` pull the repositories of `namespace`? */
export type PullCheck = (user: { name: string; groups: string[] }, namespace: string) => Promise<boolean>;

/** What the API's authorizer is asked for a pull: `get` on snapshots in the namespace. */
export function snapshotAttributes(user: { name: string; groups: string[] }, verb: string, namespace: string): Attributes {
  const groups = user.groups.includes('system:authenticated') ? user.groups : [...user.groups, 'system:authenticated'];
  return {
    user: { name: user.name, groups },
    verb,
    resourceRequest: true,
    path: `/apis/${SNAPSHOT_GROUP}/v1alpha1/namespaces/${namespace}/snapshots`,
    apiGroup: SNAPSHOT_GROUP,
    apiVersion: 'v1alpha1',
    resource: 'snapshots',
    subresource: '',
    namespace,
    name: '',
  };
}

/** The registry's pull check from the API's authorizer. */
export const pullCheck =
  (authz: Authorizer): PullCheck =>
  async (user, namespace) =>
    (await authz.authorize(snapshotAttributes(user, 'get', namespace))).allowed;

/** The namespace a certificate is scoped to, from its URI SANs (Node's `subjectaltname` string). */
export function certPullNamespace(subjectAltName: string | undefined): string | undefined {
  for (const part of (subjectAltName ?? '').split(', ')) if (part.startsWith(`URI:${PULL_URI_PREFIX}`)) return part.slice(4 + PULL_URI_PREFIX.length);
  return undefined;
}

interface Claims {
  iss: string;
  aud: string;
  sub: string;
  groups: string[];
  access: Access[];
  iat: number;
  exp: number;
  jti: string;
}

const KNOWN_ACTIONS = new Set(['pull', 'push', 'delete', '*']);

/** Parses `repository:<name>:pull,push` scopes (several per parameter, space separated). */
export function parseScopes(scopes: string[]): Access[] {
  const out: Access[] = [];
  for (const s of scopes.flatMap((x) => x.split(' ')).filter(Boolean)) {
    const first = s.indexOf(':');
    const last = s.lastIndexOf(':');
    if (first < 0 || last === first) continue;
    const type = s.slice(0, first).replace(/\(.*\)$/, '');
    const actions = s
      .slice(last + 1)
      .split(',')
      .filter((a) => KNOWN_ACTIONS.has(a));
    if ((type === 'repository' || type === 'registry') && actions.length) out.push({ type, name: s.slice(first + 1, last), actions });
  }
  return out;
}

const principals = new WeakMap<TLSSocket, Principal>();

/** The client certificate's identity, read once per TLS connection. */
export function certPrincipal(sock: TLSSocket): Principal | undefined {
  if (!sock.authorized) return undefined;
  let p = principals.get(sock);
  if (!p) {
    const peer = sock.getPeerCertificate();
    const subject = (peer?.subject ?? {}) as Record<string, string | string[] | undefined>;
    const o = subject.O;
    const groups = o === undefined ? [] : Array.isArray(o) ? o : [o];
    const ns = certPullNamespace(peer?.subjectaltname);
    p = { name: String(subject.CN ?? ''), groups: ns === undefined ? groups : [], via: 'cert' };
    if (ns !== undefined) p.pullNamespace = ns;
    else if (groups.includes('system:masters')) p.server = true;
    principals.set(sock, p);
  }
  return p;
}

export class Tokens {
  constructor(private readonly secret: Buffer) {}

  private sign(payload: string) {
    return createHmac('sha256', this.secret).update(payload).digest('base64url');
  }

  issue(who: { name: string; groups: string[] }, access: Access[], ttl = TOKEN_TTL_SECONDS) {
    const now = Math.floor(Date.now() / 1000);
    const claims: Claims = { iss: SERVICE, aud: SERVICE, sub: who.name, groups: who.groups, access, iat: now, exp: now + ttl, jti: randomUUID() };
    const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
    const token = `${payload}.${this.sign(payload)}`;
    return { token, access_token: token, expires_in: ttl, issued_at: new Date(now * 1000).toISOString() };
  }

  verify(token: string): Principal | undefined {
    const [payload, sig, extra] = token.split('.');
    if (!payload || !sig || extra !== undefined) return undefined;
    const want = Buffer.from(this.sign(payload));
    const got = Buffer.from(sig);
    if (want.length !== got.length || !timingSafeEqual(want, got)) return undefined;
    let c: Claims;
    try {
      c = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as Claims;
    } catch {
      return undefined;
    }
    if (c.aud !== SERVICE || typeof c.exp !== 'number' || c.exp <= Date.now() / 1000 || !Array.isArray(c.access)) return undefined;
    return { name: String(c.sub), groups: Array.isArray(c.groups) ? c.groups : [], via: 'token', access: c.access };
  }
}

/** Registry decisions, with the pull checks cached for a short time (a pull is many requests). */
export class RegistryPolicy {
  private readonly cache = new Map<string, { allowed: boolean; until: number }>();
  constructor(
    private readonly check: PullCheck | undefined,
    private readonly anonymousPull: boolean,
    private readonly ttlMs = 10_000,
  ) {}

  /** Asks the API's authorizer (no authorizer: nobody but the server may pull). */
  async mayPull(user: { name: string; groups: string[] }, namespace: string): Promise<boolean> {
    if (!this.check) return false;
    const key = JSON.stringify([user.name, user.groups, namespace]);
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return hit.allowed;
    const allowed = await this.check(user, namespace).catch(() => false);
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(key, { allowed, until: Date.now() + this.ttlMs });
    return allowed;
  }

  /** May the caller do `action` on repository `name` (or read the catalog) now? */
  async allowed(p: Principal, type: 'repository' | 'registry', name: string, action: string): Promise<boolean> {
    if (p.server) return true;
    if (p.via === 'token') return (p.access ?? []).some((a) => a.type === type && a.name === name && (a.actions.includes(action) || a.actions.includes('*')));
    if (type === 'registry') return p.via !== 'anonymous'; // the catalog, filtered by readable()
    return action === 'pull' && this.pullable(p, name); // snapshots are the server's to write
  }

  private async pullable(p: Principal, name: string): Promise<boolean> {
    if (p.server) return true;
    if (p.via === 'anonymous') return this.anonymousPull;
    const ns = repoNamespace(name);
    if (ns === undefined) return false;
    if (p.pullNamespace !== undefined) return ns === p.pullNamespace;
    return this.mayPull(p, ns);
  }

  /** The repositories of a list the caller may pull (the catalog). */
  async readable(p: Principal, repos: string[]): Promise<string[]> {
    if (p.server) return repos;
    const byNs = new Map<string, boolean>();
    for (const ns of new Set(repos.map(repoNamespace))) {
      if (ns === undefined) continue;
      byNs.set(ns, p.pullNamespace !== undefined ? ns === p.pullNamespace : p.via !== 'anonymous' && (await this.mayPull(p, ns)));
    }
    return repos.filter((r) => byNs.get(repoNamespace(r) ?? '') === true);
  }

  /** What the token endpoint grants: the intersection of what is asked and what the caller may do
   * (as docker's token server and distribution do: fewer actions, never an error). */
  async grant(who: Principal, requested: Access[]): Promise<Access[]> {
    const out: Access[] = [];
    for (const a of requested) {
      let actions: string[];
      if (who.server) actions = a.actions;
      else if (a.type === 'registry') actions = a.name === 'catalog' && who.via !== 'anonymous' ? a.actions : [];
      else actions = (a.actions.includes('pull') || a.actions.includes('*')) && (await this.pullable(who, a.name)) ? ['pull'] : [];
      if (actions.length) out.push({ ...a, actions });
    }
    return out;
  }
}
