// The OCI client acting for a user (issue 16, item 6): where it may connect (the resolved address,
// checked at connect time), what it does with redirects (no credentials to another origin, no
// downgrade to http, never to link-local or this server's ports), and that upstream bodies never
// reach error messages (which end up in status). Real HTTP servers on loopback.
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { createCA, createServerCert, newKeysSync } from '../certs/pki.js';
import { OciClient, OciError } from '../registry/client.js';
import { upstreamProblem } from '../registry/upstream.js';

const SECRET = 'FAKE-CLOUD-CREDS-4242';

async function server(handler: http.RequestListener): Promise<{ port: number; seen: http.IncomingHttpHeaders[]; close(): Promise<void> }> {
  const seen: http.IncomingHttpHeaders[] = [];
  const srv = http.createServer((req, res) => {
    seen.push(req.headers);
    handler(req, res);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as AddressInfo).port, seen, close: () => new Promise((r) => srv.close(() => r())) };
}

const fails = async (t: Tap, p: Promise<unknown>, code: string, re: RegExp) => {
  const e = await p.then(() => undefined, (x) => x);
  t.ok(e instanceof OciError, `an OciError (${e?.message})`);
  t.equal(e?.code, code);
  t.match(e?.message, re);
  t.notMatch(e?.message ?? '', SECRET, 'no upstream body in the message');
  return e as OciError;
};
type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

t.test('address classification', async (t) => {
  const none = {};
  const priv = { allowPrivate: true, ownPorts: [8443] };
  for (const [addr, port, policy, want] of [
    ['8.8.8.8', 443, none, undefined],
    ['127.0.0.1', 5000, none, /loopback or private/],
    ['::1', 5000, none, /loopback or private/],
    ['::ffff:127.0.0.1', 5000, none, /loopback or private/],
    ['10.1.2.3', 443, none, /loopback or private/],
    ['192.168.1.1', 443, none, /loopback or private/],
    ['172.20.0.1', 443, none, /loopback or private/],
    ['fd00::1', 443, none, /loopback or private/],
    ['169.254.169.254', 80, priv, /link-local/],
    ['fe80::1', 80, priv, /link-local/],
    ['0.0.0.0', 80, priv, /unspecified/],
    ['224.0.0.1', 80, priv, /multicast/],
    ['127.0.0.1', 5000, priv, undefined],
    ['10.1.2.3', 443, priv, undefined],
    ['127.0.0.1', 8443, priv, /this server itself/],
    ['127.0.0.2', 8443, priv, /this server itself/],
    ['::ffff:127.0.0.1', 8443, priv, /this server itself/],
  ] as const) {
    const got = upstreamProblem(policy, addr, port);
    if (want) t.match(got, want, `${addr}:${port} refused`);
    else t.equal(got, undefined, `${addr}:${port} allowed`);
  }
});

t.test('loopback upstreams are refused unless private ones are allowed; by name too (resolved, then checked)', async (t) => {
  const reg = await server((_q, r) => r.writeHead(200, { 'content-type': 'application/json' }).end('{"tags":["1.0.0"]}'));
  t.teardown(reg.close);
  const strict = new OciClient({ insecureHttp: true, retries: 0, upstream: { allowPrivate: false } });
  await fails(t, strict.listTags(`127.0.0.1:${reg.port}/x/y`), 'UPSTREAM_FORBIDDEN', /127\.0\.0\.1 is a loopback or private address.*--allow-private-upstreams/);
  await fails(t, strict.listTags(`localhost:${reg.port}/x/y`), 'UPSTREAM_FORBIDDEN', /localhost resolves to (127\.0\.0\.1|::1) is a loopback/);
  t.equal(reg.seen.length, 0, 'no request reached it');
  const open = new OciClient({ insecureHttp: true, retries: 0, upstream: { allowPrivate: true } });
  t.same(await open.listTags(`127.0.0.1:${reg.port}/x/y`), ['1.0.0'], 'with --allow-private-upstreams');
  const own = new OciClient({ insecureHttp: true, retries: 0, upstream: { allowPrivate: true, ownPorts: [reg.port] } });
  await fails(t, own.listTags(`localhost:${reg.port}/x/y`), 'UPSTREAM_FORBIDDEN', /this server itself/);
});

t.test('redirects: no credentials to another origin, never to link-local or this server, nor to other schemes', async (t) => {
  const internal = await server((_q, r) => r.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ tags: [SECRET] })));
  const apiServer = await server((_q, r) => r.writeHead(200).end('{}'));
  const redirector = await server((req, res) => {
    if (!req.headers.authorization) return res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    const to = req.url!.includes('/internal/') ? `http://127.0.0.1:${internal.port}/latest/meta-data/` : req.url!.includes('/api/') ? `http://127.0.0.1:${apiServer.port}/api/v1/secrets` : req.url!.includes('/metadata/') ? 'http://169.254.169.254/latest/meta-data/' : 'ftp://127.0.0.1/x';
    res.writeHead(302, { location: to }).end();
  });
  t.teardown(async () => {
    await internal.close();
    await apiServer.close();
    await redirector.close();
  });
  const creds = { username: 'user-b', password: 'secret-b' };
  const c = new OciClient({ insecureHttp: true, retries: 0, credentials: () => creds, upstream: { allowPrivate: true, ownPorts: [apiServer.port] } });
  const h = `127.0.0.1:${redirector.port}`;
  // Followed (private ranges allowed here), but the other origin sees no Authorization.
  t.same(await c.listTags(`${h}/internal/x`), [SECRET], 'the internal endpoint answered');
  t.ok(redirector.seen.some((x) => x.authorization), 'the registry got the credentials');
  t.equal(internal.seen.length, 1);
  t.equal(internal.seen[0].authorization, undefined, 'the redirect target did not');
  await fails(t, c.listTags(`${h}/api/x`), 'UPSTREAM_FORBIDDEN', /this server itself/);
  t.equal(apiServer.seen.length, 0, 'this server\'s port was never contacted');
  await fails(t, c.listTags(`${h}/metadata/x`), 'UPSTREAM_FORBIDDEN', /169\.254\.169\.254 is a link-local/);
  await fails(t, c.listTags(`${h}/other/x`), 'REDIRECT_REFUSED', /redirect to a ftp URL/);
});

t.test('error messages carry the status and the spec\'s code, never the upstream\'s words', async (t) => {
  const reg = await server((req, res) => {
    if (req.url!.includes('/spec/')) return res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: SECRET }] }));
    if (req.url!.includes('/made-up/')) return res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ errors: [{ code: SECRET, message: SECRET }] }));
    res.writeHead(500).end(`<html>${SECRET}</html>`);
  });
  t.teardown(reg.close);
  const c = new OciClient({ insecureHttp: true, retries: 0, upstream: { allowPrivate: true } });
  const h = `127.0.0.1:${reg.port}`;
  await fails(t, c.getManifest(`${h}/spec/x:1`), 'MANIFEST_UNKNOWN', /: 404 MANIFEST_UNKNOWN$/);
  await fails(t, c.getManifest(`${h}/made-up/x:1`), 'HTTP_400', /: 400 HTTP_400$/);
  await fails(t, c.getManifest(`${h}/html/x:1`), 'HTTP_500', /: 500 HTTP_500$/);
});

t.test('a redirect from https to http is refused, with nothing sent to the http side', async (t) => {
  const ca = createCA(newKeysSync(), 'test CA', 1);
  const plain = await server((_q, r) => r.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ tags: [SECRET] })));
  const tls = createServerCert(ca, newKeysSync(), '127.0.0.1', ['127.0.0.1'], 1);
  const seen: http.IncomingHttpHeaders[] = [];
  const srv = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    seen.push(req.headers);
    if (!req.headers.authorization) return res.writeHead(401, { 'www-authenticate': 'Basic realm="r"' }).end();
    res.writeHead(302, { location: `http://127.0.0.1:${plain.port}${req.url}` }).end();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(async () => {
    await plain.close();
    await new Promise((r) => srv.close(r));
  });
  const c = new OciClient({ ca: ca.certPem, retries: 0, credentials: () => ({ username: 'user-b', password: 'secret-b' }), upstream: { allowPrivate: true } });
  await fails(t, c.listTags(`127.0.0.1:${(srv.address() as AddressInfo).port}/x/y`), 'REDIRECT_REFUSED', /refused a redirect from https to http/);
  t.ok(seen.some((h) => h.authorization), 'the https registry was asked (with the credentials)');
  t.equal(plain.seen.length, 0, 'the http side never saw a request');
});
