// The registry quota in a started server (issue 15): the server's own snapshot pushes count against
// their namespace. A namespace over `--registry-namespace-quota-mib` gets Ready=False
// RegistryQuotaExceeded on its Source (retried with backoff, not in a hot loop, the server alive),
// while another namespace's Source stores its snapshot; a restart counts the same usage.
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import t from 'tap';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { freePort } from './helpers/distribution.js';
import { kubectlJson, yamlDocs, startServer, tempDir, type TestServer } from './helpers/server.js';

const GV = 'delivery.ocm.software/v1alpha1';
let s: TestServer;
let registry: string;
let registryPort: number;
const args = () => ['--registry-port', String(registryPort), '--registry-namespace-quota-mib', '1'];

async function condition(ns: string, want: (c: { status: string; reason: string; message: string }) => boolean, ms = 60_000) {
  const until = Date.now() + ms;
  let last: unknown;
  while (Date.now() < until) {
    const o = await kubectlJson(s, ['get', 'source', 'src', '-n', ns]);
    const c = o.status?.conditions?.find((x: { type: string }) => x.type === 'Ready');
    last = o.status;
    if (c && want(c)) return c;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`source ${ns}/src: ${JSON.stringify(last)}`);
}

t.before(async () => {
  registryPort = await freePort();
  s = await startServer({ reconcilers: 'all', keep: true, args: args() });
  registry = s.logs.map((l) => /"registry":"([^"]+)"/.exec(l)?.[1]).find(Boolean)!;
  const certs = join(s.dataDir, 'certs');
  const client = new OciClient({ ca: readFileSync(join(certs, 'ca.crt'), 'utf8'), cert: readFileSync(join(certs, 'admin.crt'), 'utf8'), key: readFileSync(join(certs, 'admin.key'), 'utf8') });
  // team-a's resource: 600 KiB that does not compress; published (600 KiB of its quota) and then
  // snapshotted (600 KiB more) it does not fit into 1 MiB. team-b's is small.
  const text = { 'team-a': randomBytes(450 * 1024).toString('base64'), 'team-b': 'b: small\n' };
  for (const ns of ['team-a', 'team-b'] as const) {
    await publish(
      new OcmRepository(client, `${registry}/${ns}/ocm`),
      { name: `ocm.software/test/${ns}`, version: '1.0.0', provider: 'acme', resources: [{ name: 'one', type: 'blob', input: { type: 'utf8', text: text[ns], mediaType: 'text/plain' } }] },
      tempDir(),
    );
    await s.kubectl(['create', 'namespace', ns]);
    const r = await s.kubectl(['apply', '-f', '-'], {
      input: yamlDocs(
        { apiVersion: GV, kind: 'OCMComponent', metadata: { name: 'comp', namespace: ns }, spec: { name: `ocm.software/test/${ns}`, version: '1.0.0', repository: { url: `${registry}/${ns}/ocm` } } },
        { apiVersion: GV, kind: 'OCMResource', metadata: { name: 'one', namespace: ns }, spec: { resource: 'one' } },
        { apiVersion: GV, kind: 'Source', metadata: { name: 'src', namespace: ns }, spec: { componentRef: { name: 'comp' }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: 'one' } } },
      ),
    });
    if (r.code !== 0) throw new Error(r.stderr);
  }
});
t.teardown(() => s?.stop());

const failures = () => s.logs.filter((l) => l.includes('reconcile failed') && l.includes('team-a')).length;

t.test("a namespace over its quota: its Source is Ready=False RegistryQuotaExceeded, another namespace's is stored", async (t) => {
  const b = await condition('team-b', (c) => c.status === 'True');
  t.equal(b.reason, 'Succeeded', 'team-b stores its snapshot');
  const a = await condition('team-a', (c) => c.reason === 'RegistryQuotaExceeded');
  t.equal(a.status, 'False');
  t.match(a.message, /namespace "team-a" is over its registry quota/, 'the message says which quota');
  t.match(a.message, /--registry-namespace-quota-mib/);
  // Retried with backoff, not in a loop: a few attempts in 5 s, the server serving meanwhile.
  const n = failures();
  await new Promise((r) => setTimeout(r, 5000));
  t.ok(failures() - n <= 8, `${failures() - n} retries in 5 s`);
  t.equal((await s.request('GET', '/readyz')).status, 200, 'the server is alive');
});

t.test('a restart counts the same usage: still refused, the other namespace still stored', async (t) => {
  const dataDir = s.dataDir;
  await s.stop();
  s = await startServer({ dataDir, reconcilers: 'all', keep: true, args: args() });
  // The restarted server's own attempt (its logs), not the status the one before left.
  for (let i = 0; i < 240 && failures() === 0; i++) await new Promise((r) => setTimeout(r, 250));
  t.ok(failures() > 0, "the restarted server's push was refused too");
  const a = await condition('team-a', (c) => c.reason === 'RegistryQuotaExceeded' && c.status === 'False');
  t.match(a.message, /over its registry quota/);
  t.equal((await condition('team-b', (c) => c.status === 'True')).status, 'True');
});
