// The snapshot registry as the server runs it, on its own worker thread: a bearer token given as a
// basic-auth password is checked by the main thread (the API's authenticator); a download in
// flight when SIGTERM arrives is finished before the process exits; the API answers while a large
// blob is being pulled.
import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { OciClient } from '../registry/client.js';
import { startServer, tempDir, type TestServer } from './helpers/server.js';

const dir = tempDir('registry-thread-test-');
writeFileSync(join(dir, 'tokens.csv'), 'alicetoken,alice,1001,"devs"\n');
let s: TestServer;
let port: number;
let tls: { ca: string; cert: string; key: string };
let client: OciClient;

t.before(async () => {
  s = await startServer({ args: ['--token-auth-file', join(dir, 'tokens.csv')] });
  const ready = s.logs.map((l) => (l.startsWith('{') ? JSON.parse(l) : {})).find((j) => j.registry);
  port = Number(String(ready.registry).split(':').pop());
  const certs = join(s.dataDir, 'certs');
  tls = { ca: readFileSync(join(certs, 'ca.crt'), 'utf8'), cert: readFileSync(join(certs, 'admin.crt'), 'utf8'), key: readFileSync(join(certs, 'admin.key'), 'utf8') };
  client = new OciClient({ ...tls, retries: 0 });
});
t.teardown(async () => {
  client?.close();
  await s?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function get(path: string, headers: Record<string, string> = {}, withCert = false): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path, headers, ca: tls.ca, ...(withCert ? { cert: tls.cert, key: tls.key } : {}), agent: false }, (res) => {
        let body = '';
        res.on('data', (c) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      })
      .on('error', reject);
  });
}

t.test('a token from --token-auth-file works as a basic-auth password at /token', async (t) => {
  const basic = (user: string, pass: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}` });
  const ok = await get('/token?service=ocm-apiserver&scope=repository:team/app:pull', basic('alice', 'alicetoken'));
  t.equal(ok.status, 200, `token issued (${ok.status})`);
  t.type(JSON.parse(ok.body).token, 'string', 'a registry token');
  const bad = await get('/token?service=ocm-apiserver&scope=repository:team/app:pull', basic('alice', 'wrong'));
  t.equal(bad.status, 401, 'a wrong password is refused');
});

t.test('the API answers while a large blob is pulled', async (t) => {
  const blob = randomBytes(64 << 20);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  const host = `127.0.0.1:${port}`;
  await client.pushBlob(`${host}/big/blob`, blob, digest, blob.length);
  let pulled = 0;
  const pull = (async () => {
    for await (const c of (await client.getBlob(`${host}/big/blob`, digest)) as AsyncIterable<Buffer>) pulled += c.length;
  })();
  const latencies: number[] = [];
  while (pulled < blob.length) {
    const t0 = performance.now();
    const r = await s.request('GET', '/api/v1/namespaces');
    latencies.push(performance.now() - t0);
    if (r.status !== 200) t.fail(`GET namespaces: ${r.status}`);
    if (latencies.length > 10_000) break;
  }
  await pull;
  t.equal(pulled, blob.length, 'the whole blob, verified');
  t.ok(latencies.length >= 1, `${latencies.length} API requests answered during the pull (slowest ${Math.max(...latencies).toFixed(0)} ms)`);
});

t.test('SIGTERM during a download: the download finishes, then the server exits cleanly', async (t) => {
  const blob = randomBytes(32 << 20);
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`;
  await client.pushBlob(`127.0.0.1:${port}/drain/blob`, blob, digest, blob.length);
  const got = await new Promise<{ bytes: number; digest: string; code?: number }>((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, path: `/v2/drain/blob/blobs/${digest}`, ...tls, agent: false }, (res) => {
        const h = createHash('sha256');
        let bytes = 0;
        let signalled = false;
        res.on('data', (c: Buffer) => {
          h.update(c);
          bytes += c.length;
          if (!signalled && bytes > 1 << 20) {
            signalled = true;
            s.proc.kill('SIGTERM');
            // read slowly for a while, so the download is still in flight during the shutdown
            res.pause();
            setTimeout(() => res.resume(), 500);
          }
        });
        res.on('end', () => resolve({ bytes, digest: `sha256:${h.digest('hex')}` }));
        res.on('error', reject);
      })
      .on('error', reject);
  });
  t.equal(got.bytes, blob.length, 'every byte arrived');
  t.equal(got.digest, digest, 'and they are the blob');
  const code = await new Promise<number | null>((resolve) => (s.proc.exitCode !== null ? resolve(s.proc.exitCode) : s.proc.once('exit', resolve)));
  t.equal(code, 0, 'the server exited cleanly');
  t.match(s.logs.join('\n'), /shutdown complete/);
});
