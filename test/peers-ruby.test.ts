// The Ruby client (Debian ruby-kubeclient, installed by `npm test`'s pretest and .ci/run through
// scripts/ensure-debs.sh): discovery, get, watch. kubeclient watches through the deprecated
// `/watch/` paths, which kube 1.32 still serves. The checks are in test/fixtures/peers/ruby-client.rb.
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { assertChecks, runPeerScript } from './helpers/peers.js';
import { startServer, type TestServer } from './helpers/server.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const RUBY = '/usr/bin/ruby';

const CHECKS = [
  'discovery: core v1 and delivery.ocm.software/v1alpha1',
  'get: namespaces, create, get, patch and apply ConfigMaps and OCMComponents',
  'watch: OCMComponents (GET /apis/delivery.ocm.software/v1alpha1/watch/namespaces/NS/ocmcomponents)',
  'watch: ConfigMaps (GET /api/v1/watch/namespaces/NS/configmaps)',
  'watch: one object by name, from a resourceVersion',
  'delete: OCMComponent and ConfigMap',
];

let s: TestServer;
t.before(async () => {
  s = await startServer();
});
t.teardown(() => s?.stop());

t.test('the Debian ruby-kubeclient is the one loaded', async (t) => {
  const out = execFileSync(RUBY, ['-e', 'require "kubeclient"; puts Kubeclient::VERSION; puts $LOADED_FEATURES.grep(/kubeclient\\.rb$/).first'], { encoding: 'utf8' });
  const [version, file] = out.trim().split('\n');
  t.match(version, /^\d+\.\d+\.\d+/);
  t.match(file, /^\/usr\/(share|lib)\/.*kubeclient/, 'from the Debian package');
  t.comment(`ruby-kubeclient ${version}`);
});

t.test('Ruby kubeclient', async (t) => {
  const run = await runPeerScript(RUBY, [join(root, 'test/fixtures/peers/ruby-client.rb'), s.kubeconfig, 'ruby-peer'], { env: { ...process.env, HOME: s.dataDir } });
  t.equal(run.code, 0, 'the script ran to its end', { stderr: run.stderr.slice(-3000) });
  assertChecks(t, run, CHECKS);
});
