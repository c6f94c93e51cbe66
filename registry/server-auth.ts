// Who is calling (client certificate, bearer token or nobody) and what they may do.
// Tokens are `base64url(JSON claims).base64url(HMAC-SHA256(secret, first part))`.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import type { TLSSocket } from 'node:tls';

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
  via: 'cert' | 'token' | 'anonymous';
  /** What a token grants; certificate holders may do everything. */
  access?: Access[];
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
    const subject = (sock.getPeerCertificate()?.subject ?? {}) as Record<string, string | string[] | undefined>;
    const o = subject.O;
    p = { name: String(subject.CN ?? ''), groups: o === undefined ? [] : Array.isArray(o) ? o : [o], via: 'cert' };
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

export function allowed(p: Principal, type: 'repository' | 'registry', name: string, action: string, anonymousPull: boolean): boolean {
  if (p.via === 'cert') return true;
  if (p.via === 'anonymous') return anonymousPull && type === 'repository' && action === 'pull';
  return (p.access ?? []).some((a) => a.type === type && a.name === name && (a.actions.includes(action) || a.actions.includes('*')));
}

/** What the token endpoint grants: everything asked for to an authenticated caller, pull only to anonymous ones. */
export function grant(requested: Access[], authenticated: boolean): Access[] {
  if (authenticated) return requested;
  return requested
    .filter((a) => a.type === 'repository')
    .map((a) => ({ ...a, actions: a.actions.filter((x) => x === 'pull') }))
    .filter((a) => a.actions.length);
}
