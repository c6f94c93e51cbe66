// The official Kubernetes Python client (Debian python3-kubernetes, installed by `npm test`'s
// pretest and .ci/run through scripts/ensure-debs.sh), run with /usr/bin/python3 so that the
// Debian package is what is imported: typed core API, CustomObjectsApi, DynamicClient, watch,
// server-side apply. The checks are in test/fixtures/peers/python-client.py.
import { execFileSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { assertChecks, runPeerScript } from './helpers/peers.js';
import { startServer, type TestServer } from './helpers/server.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const PY = '/usr/bin/python3';

const CHECKS = [
  'version: VersionApi().get_code() (GET /version/)',
  'core: create a namespace from V1Namespace(metadata=...) without kind/apiVersion',
  'core: namespace has the kubernetes.io/metadata.name label',
  'core: ConfigMap create, read, list by label, replace, patch',
  'core: ConfigMap created from V1ConfigMap without kind/apiVersion',
  'core: Secret from string_data reads back base64',
  'core: delete of a ConfigMap returns Status Success',
  'core: watch ConfigMaps (watch=True)',
  'core: watch with allow_watch_bookmarks=True',
  'custom: CustomObjectsApi create, get, list, merge patch, replace, status, delete',
  'custom: watch custom objects (watch=True)',
  'dynamic: DynamicClient discovery finds OCMComponent and ConfigMap',
  'dynamic: create, get, list, merge patch, delete',
  'dynamic: a strategic merge patch of a custom resource is 415, as kube answers',
  'dynamic: server-side apply (custom resource and ConfigMap)',
  'dynamic: server-side apply with force_conflicts=True (force=True)',
  'dynamic: watch (watch=True)',
  'core: delete with V1DeleteOptions(propagation_policy="Orphan") keeps the dependent',
  'core: paginated list (limit, _continue, remaining_item_count)',
];

let s: TestServer;
t.before(async () => {
  s = await startServer();
});
t.teardown(() => s?.stop());

t.test('the Debian python3-kubernetes client is the one imported', async (t) => {
  const out = execFileSync(PY, ['-c', 'import kubernetes, sys; print(kubernetes.__version__); print(kubernetes.__file__)'], { encoding: 'utf8' });
  const [version, file] = out.trim().split('\n');
  t.match(version, /^\d+\.\d+\.\d+/);
  t.match(file, /^\/usr\/lib\/python3\/dist-packages\/kubernetes\//, 'from the Debian package');
  t.comment(`python3-kubernetes ${version}`);
});

t.test('official Python client', async (t) => {
  // HOME apart: the DynamicClient caches discovery under the temp dir, keyed by server.
  const run = await runPeerScript(PY, [join(root, 'test/fixtures/peers/python-client.py'), s.kubeconfig, 'python-peer'], { env: { ...process.env, HOME: s.dataDir, TMPDIR: s.dataDir } });
  t.equal(run.code, 0, 'the script ran to its end', { stderr: run.stderr.slice(-3000) });
  assertChecks(t, run, CHECKS);
});
