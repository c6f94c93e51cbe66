// A tiny in-memory OCI registry over plain HTTP for protocol tests that a real registry cannot
// stage: token flows, wrong content, failures and retries. `hook` runs first and may take over.
import { createHash, randomUUID } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Hook = (req: IncomingMessage, res: ServerResponse, url: URL) => boolean | Promise<boolean>;

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export async function readAll(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

export class FakeRegistry {
  blobs = new Map<string, Buffer>();
  /** digest -> bytes served instead of the real content */
  corrupt = new Map<string, Buffer>();
  manifests = new Map<string, { type: string; body: Buffer }>();
  uploads = new Map<string, Buffer[]>();
  referrers = new Map<string, any[]>();
  log: string[] = [];
  hook?: Hook;
  /** Require tokens from /token (Bearer) or Basic credentials. */
  auth?: { scheme: 'bearer'; tokenField?: 'token' | 'access_token'; users?: Record<string, string> } | { scheme: 'basic'; users: Record<string, string> };
  tokenRequests: { method: string; query: URLSearchParams; authorization?: string; form?: URLSearchParams }[] = [];
  authHeaders: (string | undefined)[] = [];
  private issued = new Set<string>();
  server = http.createServer((req, res) => {
    this.handle(req, res).catch((e) => {
      if (!res.headersSent) res.writeHead(500).end(String(e));
    });
  });
  host = '';

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.host = `127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }

  count(prefix: string): number {
    return this.log.filter((l) => l.startsWith(prefix)).length;
  }

  private error(res: ServerResponse, status: number, code: string, headers: Record<string, string> = {}) {
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify({ errors: [{ code, message: code.toLowerCase().replace(/_/g, ' ') }] }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url!, `http://${this.host}`);
    this.log.push(`${req.method} ${url.pathname}${url.search}`);
    if (this.hook && (await this.hook(req, res, url))) return;

    if (url.pathname === '/token') {
      const form = req.method === 'POST' ? new URLSearchParams((await readAll(req)).toString()) : undefined;
      this.tokenRequests.push({ method: req.method!, query: url.searchParams, authorization: req.headers.authorization, form });
      const users = this.auth?.users;
      if (users && req.headers.authorization) {
        const [u, p] = Buffer.from(req.headers.authorization.replace(/^Basic /, ''), 'base64').toString().split(':');
        if (users[u] !== p) return this.error(res, 401, 'UNAUTHORIZED');
      }
      const token = `tok-${this.issued.size}`;
      this.issued.add(token);
      const field = this.auth?.scheme === 'bearer' ? (this.auth.tokenField ?? 'token') : 'token';
      return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ [field]: token, expires_in: 300 }));
    }

    const m = /^\/v2\/(?:(.+?)\/(blobs\/uploads\/([^/]*)|blobs\/([^/]+)|manifests\/([^/]+)|tags\/list|referrers\/([^/]+)))?\/?$/.exec(url.pathname);
    if (!m) return this.error(res, 404, 'NOT_FOUND');
    const [, name, , uploadId, blobDigest, manifestRef, referrersOf] = m;

    this.authHeaders.push(req.headers.authorization);
    if (this.auth) {
      const a = req.headers.authorization ?? '';
      const ok =
        this.auth.scheme === 'bearer' ? this.issued.has(a.replace(/^Bearer /, ''))
        : (() => {
            const [u, p] = Buffer.from(a.replace(/^Basic /, ''), 'base64').toString().split(':');
            return a.startsWith('Basic ') && this.auth.users[u] === p;
          })();
      if (!ok) {
        req.resume();
        const actions = req.method === 'GET' || req.method === 'HEAD' ? 'pull' : 'pull,push';
        const challenge =
          this.auth.scheme === 'bearer' ? `Bearer realm="http://${this.host}/token",service="fake",scope="repository:${name ?? ''}:${actions}"`
          : `Basic realm="fake"`;
        return this.error(res, 401, 'UNAUTHORIZED', { 'www-authenticate': challenge });
      }
    }

    if (!name) return res.writeHead(200, { 'docker-distribution-api-version': 'registry/2.0' }).end('{}');

    if (uploadId !== undefined) {
      if (req.method === 'POST') {
        const id = randomUUID();
        this.uploads.set(id, []);
        return res.writeHead(202, { location: `/v2/${name}/blobs/uploads/${id}?_state=x%3D1`, range: '0-0' }).end();
      }
      const parts = this.uploads.get(uploadId);
      if (!parts) return this.error(res, 404, 'BLOB_UPLOAD_UNKNOWN');
      const size = () => parts.reduce((n, p) => n + p.length, 0);
      const loc = { location: `/v2/${name}/blobs/uploads/${uploadId}?_state=x%3D${parts.length + 1}` };
      if (req.method === 'GET') return res.writeHead(204, { ...loc, range: `0-${Math.max(0, size() - 1)}` }).end();
      if (req.method === 'DELETE') {
        this.uploads.delete(uploadId);
        return res.writeHead(204).end();
      }
      const body = await readAll(req);
      if (req.method === 'PATCH') {
        const cr = /^(\d+)-(\d+)$/.exec(String(req.headers['content-range'] ?? ''));
        if (cr && Number(cr[1]) !== size()) return this.error(res, 416, 'BLOB_UPLOAD_INVALID');
        parts.push(body);
        return res.writeHead(202, { ...loc, range: `0-${size() - 1}` }).end();
      }
      if (req.method === 'PUT') {
        parts.push(body);
        const all = Buffer.concat(parts);
        const digest = url.searchParams.get('digest');
        if (sha(all) !== digest) return this.error(res, 400, 'DIGEST_INVALID');
        this.uploads.delete(uploadId);
        this.blobs.set(digest, all);
        return res.writeHead(201, { location: `/v2/${name}/blobs/${digest}`, 'docker-content-digest': digest }).end();
      }
    }

    if (blobDigest) {
      const blob = this.corrupt.get(blobDigest) ?? this.blobs.get(blobDigest);
      if (!blob) return this.error(res, 404, 'BLOB_UNKNOWN');
      const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
      const start = range ? Number(range[1]) : 0;
      const headers: Record<string, string> = { 'content-length': String(blob.length - start), 'docker-content-digest': blobDigest, 'content-type': 'application/octet-stream' };
      if (range) headers['content-range'] = `bytes ${start}-${blob.length - 1}/${blob.length}`;
      res.writeHead(range ? 206 : 200, headers);
      return res.end(req.method === 'HEAD' ? undefined : blob.subarray(start));
    }

    if (manifestRef) {
      const key = `${name}:${manifestRef}`;
      if (req.method === 'PUT') {
        const body = await readAll(req);
        const digest = sha(body);
        const entry = { type: String(req.headers['content-type']), body };
        this.manifests.set(key, entry);
        this.manifests.set(`${name}:${digest}`, entry);
        return res.writeHead(201, { 'docker-content-digest': digest }).end();
      }
      const man = this.manifests.get(key);
      if (!man) return this.error(res, 404, 'MANIFEST_UNKNOWN');
      if (req.method === 'DELETE') {
        for (const [k, v] of this.manifests) if (v === man) this.manifests.delete(k);
        return res.writeHead(202).end();
      }
      res.writeHead(200, { 'content-type': man.type, 'content-length': String(man.body.length), 'docker-content-digest': sha(man.body) });
      return res.end(req.method === 'HEAD' ? undefined : man.body);
    }

    if (referrersOf) {
      const all = this.referrers.get(referrersOf) ?? [];
      const from = Number(url.searchParams.get('page') ?? 0);
      const headers: Record<string, string> = { 'content-type': 'application/vnd.oci.image.index.v1+json' };
      if (from + 1 < all.length) headers.link = `</v2/${name}/referrers/${referrersOf}?page=${from + 1}>; rel="next"`;
      return res.writeHead(200, headers).end(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: all.slice(from, from + 1) }));
    }

    // tags/list with n/last pagination
    const tags = [...this.manifests.keys()].filter((k) => k.startsWith(`${name}:`) && !k.slice(name.length + 1).startsWith('sha256:')).map((k) => k.slice(name.length + 1)).sort();
    if (!tags.length) return this.error(res, 404, 'NAME_UNKNOWN');
    const n = Number(url.searchParams.get('n') ?? 1000);
    const last = url.searchParams.get('last');
    const rest = last ? tags.filter((t) => t > last) : tags;
    const page = rest.slice(0, n);
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (rest.length > n) headers.link = `</v2/${name}/tags/list?n=${n}&last=${encodeURIComponent(page[page.length - 1])}>; rel="next"`;
    res.writeHead(200, headers).end(JSON.stringify({ name, tags: page }));
  }
}
