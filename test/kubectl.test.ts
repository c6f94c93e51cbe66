// Drives a real server with real kubectl, the way a user does: discovery, explain, apply, get (every
// output format, selectors, chunking, categories), watch, edit, patch (merge, json, status), delete
// with finalizers, wait, describe, the errors kubectl reports, dry run, generateName, and a restart
// on the same data dir. Every subtest works in its own namespace.
import t from 'tap';
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { ocmKinds } from '../kinds/index.js';
import { KUBECTL, type KubectlResult, startServer, tempDir, type TestServer } from './helpers/server.js';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];
type Obj = Record<string, any>;

const GROUP = 'delivery.ocm.software';
const GV = `${GROUP}/v1alpha1`;

const dataDir = tempDir('ocm-kubectl-test-');
let s: TestServer;

t.before(async () => {
  s = await startServer({ dataDir });
});
t.teardown(async () => {
  await s?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// helpers
// ---------------------------------------------------------------------------------------------

const kubectl = (args: string[], opts?: { input?: string; timeoutMs?: number; env?: Record<string, string> }) => s.kubectl(args, opts);

/** Asserts exit code 0 (showing stderr on failure) and returns the result. */
async function ok(t: Test, args: string[], opts?: { input?: string; env?: Record<string, string>; timeoutMs?: number }): Promise<KubectlResult> {
  const r = await kubectl(args, opts);
  t.equal(r.code, 0, `kubectl ${args.join(' ')} exits 0`, { stderr: r.stderr, stdout: r.stdout });
  return r;
}

/** Asserts a non-zero exit code and returns the result. */
async function fails(t: Test, args: string[], opts?: { input?: string; env?: Record<string, string>; timeoutMs?: number }): Promise<KubectlResult> {
  const r = await kubectl(args, opts);
  t.not(r.code, 0, `kubectl ${args.join(' ')} fails`, { stderr: r.stderr, stdout: r.stdout });
  return r;
}

/** The object as stored, read back with `kubectl get -o json`. */
async function getObj(t: Test, resource: string, ns: string, name: string): Promise<Obj> {
  const r = await ok(t, ['get', resource, name, '-n', ns, '-o', 'json']);
  return JSON.parse(r.stdout) as Obj;
}

/** Creates a namespace (objects can only be created in an existing one, as in kube). */
async function namespace(t: Test, name: string): Promise<void> {
  const r = await ok(t, ['create', 'namespace', name]);
  t.equal(r.stdout.trim(), `namespace/${name} created`);
}

/** Names from `kubectl get -o name` in a namespace (sorted). */
async function names(t: Test, resource: string, ns: string, extra: string[] = []): Promise<string[]> {
  const r = await ok(t, ['get', resource, '-n', ns, '-o', 'name', ...extra]);
  return lines(r.stdout).sort();
}

const lines = (s: string) => s.split('\n').filter((l) => l.trim() !== '');

/** A multi-document YAML manifest (YAML 1.1 quoting, as kubectl reads it: `"yes"` stays a string). */
const manifest = (...objs: Obj[]) => objs.map((o) => YAML.stringify(o, { version: '1.1' })).join('---\n');

/** Parses a kubectl table by the header's column offsets (cells may be empty). */
function table(out: string): Record<string, string>[] {
  const ls = lines(out);
  if (!ls.length) return [];
  const cols = [...ls[0].matchAll(/\S+(?: \S+)*/g)].map((m) => ({ name: m[0], start: m.index! }));
  return ls.slice(1).map((l) => Object.fromEntries(cols.map((c, i) => [c.name, l.slice(c.start, cols[i + 1]?.start).trim()])));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Typical specs, one per kind users write. */
const SPECS: Record<string, Obj> = {
  OCMComponent: { name: 'github.com/stefanprodan/podinfo', version: 'v6.x', repository: { url: 'ghcr.io/stefanprodan' } },
  OCMResource: { resource: 'podinfo-image' },
  Source: { componentRef: { name: 'podinfo' }, providerRef: { apiVersion: GV, kind: 'OCMResource', name: 'podinfo-image' } },
  Localization: { configRef: { name: 'podinfo-config' } },
  Action: {
    componentRef: { name: 'podinfo' },
    snapshotSourceRef: { kind: 'Source', name: 'podinfo' },
    providerRef: { apiVersion: GV, kind: 'Localization', name: 'podinfo-localizer' },
  },
  Configurator: { values: { replicaCount: 2 } },
  KustomizationTemplate: { template: { interval: '10m', path: './kubernetes', targetNamespace: 'podinfo' } },
  HelmReleaseTemplate: { template: { interval: '5m', releaseName: 'podinfo', targetNamespace: 'podinfo' } },
};

function obj(kind: string, ns: string, name: string, spec: Obj = SPECS[kind], meta: Obj = {}): Obj {
  return { apiVersion: GV, kind, metadata: { name, namespace: ns, ...meta }, spec };
}

const comp = (ns: string, name: string, spec: Obj = {}, meta: Obj = {}) => obj('OCMComponent', ns, name, { ...SPECS.OCMComponent, ...spec }, meta);

const readyPatch = (message: string, extra: Obj = {}) =>
  JSON.stringify({
    status: {
      ...extra,
      conditions: [{ type: 'Ready', status: 'True', reason: 'Succeeded', message, lastTransitionTime: '2024-05-01T10:00:00Z' }],
    },
  });

/** A kubectl process whose stdout is read while it runs (for `get -w`); killed after `limitMs`. */
function background(args: string[], limitMs = 20000) {
  const child = spawn(KUBECTL, ['--kubeconfig', s.kubeconfig, '--cache-dir', join(s.dataDir, 'kubectl-cache'), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, KUBECONFIG: s.kubeconfig, HOME: s.dataDir },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  let exited = false;
  const done = new Promise<void>((r) =>
    child.on('exit', () => {
      exited = true;
      r();
    }),
  );
  const limit = setTimeout(() => child.kill('SIGTERM'), limitMs);
  return {
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    /** Resolves true once stdout matches `re`, false after `ms` or when the process ended first. */
    async waitFor(re: RegExp, ms = 10000): Promise<boolean> {
      const end = Date.now() + ms;
      while (!re.test(stdout)) {
        if (exited || Date.now() > end) return re.test(stdout);
        await sleep(25);
      }
      return true;
    },
    async stop() {
      clearTimeout(limit);
      if (!exited) child.kill('SIGTERM');
      await done;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// discovery and explain
// ---------------------------------------------------------------------------------------------

const KINDS = [
  'OCMComponent',
  'Source',
  'Action',
  'OCMResource',
  'Localization',
  'Configurator',
  'KustomizationTemplate',
  'HelmReleaseTemplate',
  'Snapshot',
  'ComponentDescriptor',
];

t.test('kubectl api-resources lists all 10 kinds with short names, namespaced, in category ocm', async (t) => {
  const r = await ok(t, ['api-resources', `--api-group=${GROUP}`, '-o', 'wide']);
  const rows = table(r.stdout);
  t.equal(rows.length, 10, 'ten resources in the group');
  t.same(rows.map((row) => row.KIND).sort(), [...KINDS].sort(), 'every kind of the issue');
  for (const kind of KINDS) {
    const row = rows.find((x) => x.KIND === kind);
    const def = ocmKinds.find((k) => k.kind === kind);
    if (!row || !def) {
      t.fail(`${kind} missing`);
      continue;
    }
    t.equal(row.NAME, kind.toLowerCase() + 's', `${kind} plural`);
    t.ok(row.SHORTNAMES.length > 0, `${kind} has short names`);
    t.same(row.SHORTNAMES.split(','), def.shortNames, `${kind} short names as declared`);
    t.equal(row.APIVERSION, GV);
    t.equal(row.NAMESPACED, 'true', `${kind} is namespaced`);
    // Snapshots are written only by the server (issue 16): users may read and delete them.
    const verbs = kind === 'Snapshot' ? ['delete', 'deletecollection', 'get', 'list', 'watch'] : ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
    t.same(row.VERBS.split(',').sort(), verbs, `${kind} verbs`);
    t.equal(row.CATEGORIES, 'ocm', `${kind} category`);
  }
  const cat = await ok(t, ['api-resources', '--categories=ocm', '-o', 'name']);
  t.same(lines(cat.stdout).sort(), KINDS.map((k) => `${k.toLowerCase()}s.${GROUP}`).sort(), '--categories=ocm finds all ten');
  const all = await ok(t, ['api-resources']);
  t.match(all.stdout, /^ocmcomponents\s+ocmc,comp\s+delivery\.ocm\.software\/v1alpha1\s+true\s+OCMComponent$/m, 'plain api-resources too');
});

t.test('kubectl explain documents the spec and nested fields', async (t) => {
  const spec = await ok(t, ['explain', 'ocmcomponent.spec']);
  t.match(spec.stdout, /KIND:\s+OCMComponent/);
  t.match(spec.stdout, /GROUP:\s+delivery\.ocm\.software/);
  t.match(spec.stdout, /VERSION:\s+v1alpha1/);
  t.match(spec.stdout, /FIELD: spec <Object>/);
  t.match(spec.stdout, /DESCRIPTION:\n\s+Desired state of the OCMComponent/);
  t.match(spec.stdout, /^ {2}name\t<string> -required-$/m);
  t.match(spec.stdout, /^ {2}version\t<string> -required-$/m);
  t.match(spec.stdout, /^ {2}repository\t<Object> -required-$/m);
  t.match(spec.stdout, /^ {2}interval\t<string>$/m);
  t.match(spec.stdout, /^ {2}verify\t<Object>$/m, 'verify: list or object form (x-kubernetes-preserve-unknown-fields, checked by the strategy)');
  t.match(spec.stdout, /^ {2}suspend\t<boolean>$/m);

  const nested = await ok(t, ['explain', 'source.spec.providerRef']);
  t.match(nested.stdout, /KIND:\s+Source/);
  t.match(nested.stdout, /FIELD: providerRef <Object>/);
  t.match(nested.stdout, /^ {2}apiVersion\t<string> -required-$/m);
  t.match(nested.stdout, /^ {2}kind\t<string> -required-$/m);
  t.match(nested.stdout, /^ {2}name\t<string> -required-$/m);

  const short = await ok(t, ['explain', 'comp.spec.repository.url']);
  t.match(short.stdout, /FIELD: url <string>/, 'short name and a leaf field');
  t.match(short.stdout, /Registry and base path of the OCM repository/);

  const missing = await fails(t, ['explain', 'ocmcomponent.spec.nosuchfield']);
  t.match(missing.stderr, /nosuchfield/, 'unknown field named in the error');
});

// ---------------------------------------------------------------------------------------------
// apply
// ---------------------------------------------------------------------------------------------

t.test('kubectl apply creates, updates, bumps generation only on spec changes, and says unchanged', async (t) => {
  const ns = 'apply';
  await namespace(t, ns);
  const base = comp(ns, 'podinfo');
  const created = await ok(t, ['apply', '-f', '-'], { input: manifest(base) });
  t.equal(created.stdout.trim(), `ocmcomponent.${GROUP}/podinfo created`);
  const o1 = await getObj(t, 'ocmcomponent', ns, 'podinfo');
  t.equal(o1.metadata.generation, 1);
  t.match(o1.metadata.uid, /^[0-9a-f-]{36}$/);
  t.match(o1.metadata.creationTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  t.match(o1.metadata.resourceVersion, /^\d+$/);
  t.equal(o1.spec.interval, '10m', 'schema default filled in');
  t.ok(o1.metadata.annotations?.['kubectl.kubernetes.io/last-applied-configuration'], 'last-applied annotation kept');

  const again = await ok(t, ['apply', '-f', '-'], { input: manifest(base) });
  t.equal(again.stdout.trim(), `ocmcomponent.${GROUP}/podinfo unchanged`);
  t.equal((await getObj(t, 'ocmcomponent', ns, 'podinfo')).metadata.resourceVersion, o1.metadata.resourceVersion, 'nothing written');

  const labelled = comp(ns, 'podinfo', {}, { labels: { app: 'podinfo' }, annotations: { note: 'metadata only' } });
  const meta = await ok(t, ['apply', '-f', '-'], { input: manifest(labelled) });
  t.equal(meta.stdout.trim(), `ocmcomponent.${GROUP}/podinfo configured`);
  const o2 = await getObj(t, 'ocmcomponent', ns, 'podinfo');
  t.equal(o2.metadata.labels.app, 'podinfo');
  t.equal(o2.metadata.generation, 1, 'metadata change keeps the generation');
  t.ok(Number(o2.metadata.resourceVersion) > Number(o1.metadata.resourceVersion), 'resourceVersion moves');
  t.equal(o2.metadata.uid, o1.metadata.uid);

  const changed = comp(ns, 'podinfo', { version: 'v6.5.x' }, { labels: { app: 'podinfo' }, annotations: { note: 'metadata only' } });
  const spec = await ok(t, ['apply', '-f', '-'], { input: manifest(changed) });
  t.equal(spec.stdout.trim(), `ocmcomponent.${GROUP}/podinfo configured`);
  const o3 = await getObj(t, 'ocmcomponent', ns, 'podinfo');
  t.equal(o3.spec.version, 'v6.5.x');
  t.equal(o3.metadata.generation, 2, 'spec change bumps the generation');

  const twice = await ok(t, ['apply', '-f', '-'], { input: manifest(changed) });
  t.equal(twice.stdout.trim(), `ocmcomponent.${GROUP}/podinfo unchanged`);
  const o4 = await getObj(t, 'ocmcomponent', ns, 'podinfo');
  t.equal(o4.metadata.resourceVersion, o3.metadata.resourceVersion);
  t.equal(o4.metadata.generation, 2);

  // removing a field that was applied before removes it from the object
  const dropped = comp(ns, 'podinfo', { version: 'v6.5.x' }, { labels: { app: 'podinfo' } });
  await ok(t, ['apply', '-f', '-'], { input: manifest(dropped) });
  const o5 = await getObj(t, 'ocmcomponent', ns, 'podinfo');
  t.equal(o5.metadata.annotations?.note, undefined, 'annotation removed by apply');
  t.equal(o5.metadata.generation, 2);
});

t.test('multi-document apply of several kinds; kubectl get ocm lists them all', async (t) => {
  const ns = 'multi';
  await namespace(t, ns);
  const docs = [
    obj('OCMComponent', ns, 'podinfo'),
    obj('OCMResource', ns, 'podinfo-image'),
    obj('Source', ns, 'podinfo'),
    obj('Localization', ns, 'podinfo-localizer'),
    obj('Action', ns, 'podinfo-localized'),
    obj('Configurator', ns, 'podinfo-config'),
    obj('KustomizationTemplate', ns, 'podinfo-deploy'),
    obj('HelmReleaseTemplate', ns, 'podinfo-release'),
  ];
  const expected = docs.map((d) => `${d.kind.toLowerCase()}.${GROUP}/${d.metadata.name}`).sort();
  const r = await ok(t, ['apply', '-f', '-'], { input: manifest(...docs) });
  t.same(lines(r.stdout).sort(), expected.map((n) => `${n} created`), 'one line per document');

  t.same(await names(t, 'ocm', ns), expected, 'kubectl get ocm -o name: every kind');
  const tables = await ok(t, ['get', 'ocm', '-n', ns]);
  for (const n of expected) t.match(tables.stdout, new RegExp(`^${n.replace(/\./g, '\\.')}\\s`, 'm'), `get ocm shows ${n}`);
  t.ok((tables.stdout.match(/^NAME\s/gm) ?? []).length >= 8, 'one table per kind');

  for (const d of docs) {
    const back = await getObj(t, d.kind.toLowerCase(), ns, d.metadata.name);
    t.match(back.spec, d.spec, `${d.kind} stored as applied`);
  }
  const again = await ok(t, ['apply', '-f', '-'], { input: manifest(...docs) });
  t.same(lines(again.stdout).sort(), expected.map((n) => `${n} unchanged`), 'second apply: all unchanged');
});

// ---------------------------------------------------------------------------------------------
// get
// ---------------------------------------------------------------------------------------------

t.test('kubectl get: list, single, -o yaml/json/wide/name, labels, -A --show-labels, field selectors', async (t) => {
  const ns = 'get';
  await namespace(t, ns);
  await ok(t, ['apply', '-f', '-'], {
    input: manifest(
      comp(ns, 'get-prod', { version: 'v6.1.x' }, { labels: { env: 'prod', tier: 'web' } }),
      comp(ns, 'get-dev', { name: 'github.com/acme/dev-tools', version: 'v1.0.0' }, { labels: { env: 'dev', tier: 'web' } }),
      comp(ns, 'get-staging', { version: '>=6.0.0 <7' }, { labels: { env: 'staging' } }),
    ),
  });

  const list = await ok(t, ['get', 'ocmcomponents', '-n', ns]);
  const rows = table(list.stdout);
  t.same(Object.keys(rows[0] ?? {}), ['NAME', 'COMPONENT', 'VERSION', 'VERIFIED', 'READY', 'STATUS', 'AGE'], 'printer columns');
  t.same(rows.map((r) => r.NAME), ['get-dev', 'get-prod', 'get-staging'], 'sorted by name');
  t.equal(rows.find((r) => r.NAME === 'get-dev')?.COMPONENT, 'github.com/acme/dev-tools');
  t.match(rows[0].AGE, /^\d+s$/);

  const single = table((await ok(t, ['get', 'comp', 'get-prod', '-n', ns])).stdout);
  t.equal(single.length, 1);
  t.equal(single[0].NAME, 'get-prod');
  t.equal(single[0].COMPONENT, 'github.com/stefanprodan/podinfo');

  const y = YAML.parse((await ok(t, ['get', 'ocmc', 'get-prod', '-n', ns, '-o', 'yaml'])).stdout);
  t.equal(y.apiVersion, GV);
  t.equal(y.kind, 'OCMComponent');
  t.equal(y.metadata.name, 'get-prod');
  t.equal(y.metadata.namespace, ns);
  t.same(y.metadata.labels, { env: 'prod', tier: 'web' });
  t.equal(y.spec.version, 'v6.1.x');

  const j = JSON.parse((await ok(t, ['get', 'ocmcomponent', '-n', ns, '-o', 'json'])).stdout);
  t.equal(j.kind, 'List');
  t.same(j.items.map((i: Obj) => i.metadata.name), ['get-dev', 'get-prod', 'get-staging']);
  t.ok(j.items.every((i: Obj) => i.kind === 'OCMComponent' && i.apiVersion === GV), 'items carry apiVersion and kind');

  const wide = table((await ok(t, ['get', 'comp', '-n', ns, '-o', 'wide'])).stdout);
  t.same(Object.keys(wide[0] ?? {}), ['NAME', 'COMPONENT', 'VERSION', 'VERIFIED', 'READY', 'STATUS', 'AGE', 'CONSTRAINT', 'REPOSITORY'], '-o wide adds columns');
  t.equal(wide.find((r) => r.NAME === 'get-staging')?.CONSTRAINT, '>=6.0.0 <7');
  t.equal(wide.find((r) => r.NAME === 'get-prod')?.REPOSITORY, 'ghcr.io/stefanprodan');

  const all = (n: string[]) => n.map((x) => `ocmcomponent.${GROUP}/${x}`);
  t.same(await names(t, 'comp', ns), all(['get-dev', 'get-prod', 'get-staging']), '-o name');
  t.same(await names(t, 'comp', ns, ['-l', 'env=prod']), all(['get-prod']), '-l env=prod');
  t.same(await names(t, 'comp', ns, ['-l', 'env!=prod']), all(['get-dev', 'get-staging']), '-l env!=prod');
  t.same(await names(t, 'comp', ns, ['-l', 'env in (dev,staging)']), all(['get-dev', 'get-staging']), '-l env in (dev,staging)');
  t.same(await names(t, 'comp', ns, ['-l', 'env notin (dev)']), all(['get-prod', 'get-staging']), '-l env notin (dev)');
  t.same(await names(t, 'comp', ns, ['-l', 'tier']), all(['get-dev', 'get-prod']), '-l tier (exists)');
  t.same(await names(t, 'comp', ns, ['-l', '!tier']), all(['get-staging']), '-l !tier');
  t.same(await names(t, 'comp', ns, ['-l', 'tier=web,env!=dev']), all(['get-prod']), 'two requirements');
  const noMatch = await ok(t, ['get', 'comp', '-n', ns, '-l', 'env=nowhere']);
  t.equal(noMatch.stdout, '');
  t.match(noMatch.stderr, /No resources found in get namespace\./);
  const badSel = await fails(t, ['get', 'comp', '-n', ns, '-l', 'env in (a']);
  t.match(badSel.stderr, /unable to parse requirement|parse/i, 'bad label selector rejected');

  const labelled = table((await ok(t, ['get', 'comp', '-A', '--show-labels', '-l', 'tier=web'])).stdout);
  t.same(Object.keys(labelled[0] ?? {}), ['NAMESPACE', 'NAME', 'COMPONENT', 'VERSION', 'VERIFIED', 'READY', 'STATUS', 'AGE', 'LABELS'], '-A --show-labels columns');
  t.same(
    labelled.map((r) => [r.NAMESPACE, r.NAME, r.LABELS]),
    [
      [ns, 'get-dev', 'env=dev,tier=web'],
      [ns, 'get-prod', 'env=prod,tier=web'],
    ],
  );
  const everywhere = table((await ok(t, ['get', 'comp', '-A'])).stdout);
  t.ok(new Set(everywhere.map((r) => r.NAMESPACE)).size >= 2, '-A spans namespaces');
  t.ok(everywhere.some((r) => r.NAMESPACE === ns && r.NAME === 'get-staging'));

  const byName = lines((await ok(t, ['get', 'comp', '-A', '--field-selector', 'metadata.name=get-dev', '-o', 'custom-columns=NS:.metadata.namespace,N:.metadata.name', '--no-headers'])).stdout);
  t.same(byName.map((l) => l.split(/\s+/)), [[ns, 'get-dev']], '--field-selector metadata.name=');
  const byNs = lines((await ok(t, ['get', 'comp', '-A', '--field-selector', `metadata.namespace=${ns}`, '-o', 'custom-columns=NS:.metadata.namespace,N:.metadata.name', '--no-headers'])).stdout);
  t.same(byNs.map((l) => l.split(/\s+/)), [[ns, 'get-dev'], [ns, 'get-prod'], [ns, 'get-staging']], '--field-selector metadata.namespace=');
  t.same(await names(t, 'comp', ns, ['--field-selector', 'metadata.name!=get-dev']), all(['get-prod', 'get-staging']), 'metadata.name!=');
  t.same(await names(t, 'comp', ns, ['--field-selector', 'spec.name=github.com/acme/dev-tools']), all(['get-dev']), 'kind-specific selectable field');
  const unsupported = await fails(t, ['get', 'comp', '-n', ns, '--field-selector', 'spec.version=v1']);
  t.match(unsupported.stderr, /field label not supported: spec\.version/);

  const jp = await ok(t, ['get', 'comp', 'get-prod', '-n', ns, '-o', 'jsonpath={.spec.name}@{.metadata.labels.env}']);
  t.equal(jp.stdout, 'github.com/stefanprodan/podinfo@prod', '-o jsonpath');
});

t.test('kubectl get --chunk-size=2 over 7 objects returns each exactly once', async (t) => {
  const ns = 'chunk';
  await namespace(t, ns);
  const docs = Array.from({ length: 7 }, (_, i) => obj('OCMResource', ns, `res-${i + 1}`, { resource: `image-${i + 1}` }));
  await ok(t, ['apply', '-f', '-'], { input: manifest(...docs) });
  const expected = docs.map((d) => `ocmresource.${GROUP}/${d.metadata.name}`).sort();

  const byName = await ok(t, ['get', 'ocmr', '-n', ns, '--chunk-size=2', '-o', 'name', '-v=6']);
  const got = lines(byName.stdout);
  t.equal(got.length, 7, 'seven lines');
  t.same([...got].sort(), expected, 'each object exactly once');
  const requests = byName.stderr.split('\n').filter((l) => /GET https:\S+\/namespaces\/chunk\/ocmresources\?\S*limit=2/.test(l));
  t.equal(requests.length, 4, 'four pages of at most 2');
  t.equal(requests.filter((l) => /continue=/.test(l)).length, 3, 'three of them continue the list');

  const tbl = await ok(t, ['get', 'ocmr', '-n', ns, '--chunk-size=2']);
  t.equal((tbl.stdout.match(/^NAME\s/gm) ?? []).length, 1, 'one header');
  t.same(table(tbl.stdout).map((r) => r.NAME), docs.map((d) => d.metadata.name));
  const json = JSON.parse((await ok(t, ['get', 'ocmr', '-n', ns, '--chunk-size=2', '-o', 'json'])).stdout);
  t.same(json.items.map((i: Obj) => i.spec.resource), docs.map((d) => d.spec.resource), '-o json pages too');
  const all = await ok(t, ['get', 'ocmr', '-A', '--chunk-size=3', '-o', 'name', '-l', 'nothing-has-this']);
  t.equal(all.stdout, '', 'empty filtered chunked list');
});

// ---------------------------------------------------------------------------------------------
// watch
// ---------------------------------------------------------------------------------------------

t.test('kubectl get -w streams the created object and its changes', async (t) => {
  const ns = 'watch';
  await namespace(t, ns);
  await ok(t, ['apply', '-f', '-'], { input: manifest(obj('OCMResource', ns, 'w-existing')) });
  const plain = background(['get', 'ocmr', '-n', ns, '-w']);
  const events = background(['get', 'ocmr', '-n', ns, '-w', '--output-watch-events']);
  const nameWatch = background(['get', 'ocmr', '-n', ns, '-w', '-o', 'name']);
  t.teardown(() => Promise.all([plain.stop(), events.stop(), nameWatch.stop()]));
  t.ok(await plain.waitFor(/^w-existing\s/m), 'plain watch lists the existing object first', { stderr: plain.stderr });
  t.ok(await events.waitFor(/^ADDED\s+w-existing\s/m), 'event watch lists it as ADDED', { stderr: events.stderr });
  t.ok(await nameWatch.waitFor(/w-existing/), 'name watch lists it');

  await ok(t, ['apply', '-f', '-'], { input: manifest(obj('OCMResource', ns, 'w-new', { resource: 'new-image' })) });
  await ok(t, ['patch', 'ocmr', 'w-new', '-n', ns, '--subresource', 'status', '--type', 'merge', '-p', readyPatch('Snapshot stored')]);
  await ok(t, ['delete', 'ocmr', 'w-new', '-n', ns]);

  t.ok(await events.waitFor(/^DELETED\s+w-new\s/m), 'DELETED arrives', { stdout: events.stdout });
  t.ok(await plain.waitFor(/^w-new\s.*True\s+Snapshot stored/m), 'plain watch shows the change', { stdout: plain.stdout });
  await Promise.all([plain.stop(), events.stop(), nameWatch.stop()]);

  t.match(plain.stdout, /^NAME\s+RESOURCE\s+READY\s+STATUS\s+AGE$/m, 'header with printer columns');
  t.match(plain.stdout, /^w-new\s+new-image\s/m, 'the created object');
  t.match(plain.stdout, /^w-new\s+new-image\s+True\s+Snapshot stored\s/m, 'its status change');

  const ev = lines(events.stdout).map((l) => l.split(/\s+/).slice(0, 2).join(' '));
  t.match(events.stdout, /^EVENT\s+NAME\s+RESOURCE/m, 'EVENT column');
  t.same(
    ev.filter((l) => l.endsWith(' w-new')),
    ['ADDED w-new', 'MODIFIED w-new', 'DELETED w-new'],
    'ADDED, MODIFIED, DELETED in order',
  );
  t.match(events.stdout, /^MODIFIED\s+w-new\s+new-image\s+True\s+Snapshot stored/m);
  t.notOk(ev.some((l) => l.startsWith('MODIFIED w-existing') || l.startsWith('DELETED w-existing')), 'nothing about the untouched object');
  t.ok(lines(nameWatch.stdout).filter((l) => l === `ocmresource.${GROUP}/w-new`).length >= 3, '-o name watch streams every event');
});

t.test('kubectl get -w with a label selector', async (t) => {
  const ns = 'watch-sel';
  await namespace(t, ns);
  await ok(t, ['apply', '-f', '-'], { input: manifest(obj('OCMResource', ns, 'sel-a', undefined, { labels: { team: 'a' } })) });
  const w = background(['get', 'ocmr', '-n', ns, '-w', '-l', 'team=a', '--output-watch-events']);
  t.teardown(() => w.stop());
  t.ok(await w.waitFor(/^ADDED\s+sel-a\s/m), 'initial object');
  await ok(t, ['apply', '-f', '-'], { input: manifest(obj('OCMResource', ns, 'sel-b', undefined, { labels: { team: 'b' } })) });
  await ok(t, ['label', 'ocmr', 'sel-b', '-n', ns, 'team=a', '--overwrite']);
  await ok(t, ['label', 'ocmr', 'sel-a', '-n', ns, 'team=c', '--overwrite']);
  t.ok(await w.waitFor(/^DELETED\s+sel-a\s/m), 'object leaving the selector arrives as DELETED', { stdout: w.stdout });
  await w.stop();
  const ev = lines(w.stdout).slice(1).map((l) => l.split(/\s+/).slice(0, 2).join(' '));
  t.same(ev, ['ADDED sel-a', 'ADDED sel-b', 'DELETED sel-a'], 'entering is ADDED, leaving is DELETED');
});

// ---------------------------------------------------------------------------------------------
// edit and patch
// ---------------------------------------------------------------------------------------------

// TMPDIR: kubectl keeps a copy of a rejected edit there; inside the data dir it is cleaned up with it.
t.test('kubectl edit with KUBE_EDITOR', async (t) => {
  const ns = 'edit';
  await namespace(t, ns);
  await ok(t, ['apply', '-f', '-'], { input: manifest(comp(ns, 'podinfo', { interval: '10m' })) });
  const before = await getObj(t, 'comp', ns, 'podinfo');

  const r = await ok(t, ['edit', 'comp', 'podinfo', '-n', ns], { env: { TMPDIR: s.dataDir, KUBE_EDITOR: "sed -i 's/interval: 10m/interval: 7m/'" } });
  t.equal(r.stdout.trim(), `ocmcomponent.${GROUP}/podinfo edited`);
  const after = await getObj(t, 'comp', ns, 'podinfo');
  t.equal(after.spec.interval, '7m', 'edit stored');
  t.equal(after.metadata.generation, before.metadata.generation + 1, 'generation bumped');

  const noop = await ok(t, ['edit', 'comp', 'podinfo', '-n', ns], { env: { TMPDIR: s.dataDir, KUBE_EDITOR: 'true' } });
  t.match(noop.stderr, /Edit cancelled, no changes made\./);
  t.equal((await getObj(t, 'comp', ns, 'podinfo')).metadata.resourceVersion, after.metadata.resourceVersion, 'no-op edit writes nothing');

  const bad = await fails(t, ['edit', 'comp', 'podinfo', '-n', ns], { env: { TMPDIR: s.dataDir, KUBE_EDITOR: "sed -i 's/interval: 7m/interval: soon/'" } });
  t.match(bad.stderr, /is invalid/);
  t.equal((await getObj(t, 'comp', ns, 'podinfo')).spec.interval, '7m', 'invalid edit not stored');

  const labels = await ok(t, ['edit', 'comp', 'podinfo', '-n', ns], {
    env: { TMPDIR: s.dataDir, KUBE_EDITOR: "sed -i 's/^  name: podinfo$/  name: podinfo\\n  labels:\\n    edited: \"yes\"/'" },
  });
  t.equal(labels.stdout.trim(), `ocmcomponent.${GROUP}/podinfo edited`);
  const last = await getObj(t, 'comp', ns, 'podinfo');
  t.equal(last.metadata.labels?.edited, 'yes', 'metadata edit stored');
  t.equal(last.metadata.generation, after.metadata.generation, 'metadata edit keeps the generation');
});

t.test('kubectl patch: merge, json, and the status subresource', async (t) => {
  const ns = 'patch';
  await namespace(t, ns);
  await ok(t, ['apply', '-f', '-'], { input: manifest(comp(ns, 'podinfo', { interval: '10m' })) });

  const merge = await ok(t, ['patch', 'comp', 'podinfo', '-n', ns, '--type', 'merge', '-p', '{"spec":{"suspend":true,"interval":"2m"}}']);
  t.equal(merge.stdout.trim(), `ocmcomponent.${GROUP}/podinfo patched`);
  let o = await getObj(t, 'comp', ns, 'podinfo');
  t.equal(o.spec.suspend, true);
  t.equal(o.spec.interval, '2m');
  t.equal(o.metadata.generation, 2);

  const json = await ok(t, ['patch', 'comp', 'podinfo', '-n', ns, '--type', 'json', '-p', '[{"op":"replace","path":"/spec/version","value":"v6.2.x"},{"op":"remove","path":"/spec/suspend"}]']);
  t.equal(json.stdout.trim(), `ocmcomponent.${GROUP}/podinfo patched`);
  o = await getObj(t, 'comp', ns, 'podinfo');
  t.equal(o.spec.version, 'v6.2.x');
  t.equal(o.spec.suspend, undefined);
  t.equal(o.metadata.generation, 3);

  const failedTest = await fails(t, ['patch', 'comp', 'podinfo', '-n', ns, '--type', 'json', '-p', '[{"op":"test","path":"/spec/version","value":"v0"},{"op":"replace","path":"/spec/version","value":"v0.0.1"}]']);
  t.match(failedTest.stderr, /test/i);
  t.equal((await getObj(t, 'comp', ns, 'podinfo')).spec.version, 'v6.2.x', 'failed json patch test changes nothing');

  const invalid = await fails(t, ['patch', 'comp', 'podinfo', '-n', ns, '--type', 'merge', '-p', '{"spec":{"repository":{"url":"not a url!"}}}']);
  t.match(invalid.stderr, /spec\.repository\.url/, 'schema violation names the field');

  // custom resources take no strategic merge patch (kubectl's default): 415, as from kube for a CRD
  const strategic = await fails(t, ['patch', 'comp', 'podinfo', '-n', ns, '-p', '{"metadata":{"labels":{"patched":"strategic"}}}']);
  t.match(strategic.stderr, /unknown format|not supported/, 'kubectl says so');
  await ok(t, ['patch', 'comp', 'podinfo', '-n', ns, '--type', 'merge', '-p', '{"metadata":{"labels":{"patched":"merge"}}}']);
  t.equal((await getObj(t, 'comp', ns, 'podinfo')).metadata.labels?.patched, 'merge');

  const rvBefore = (await getObj(t, 'comp', ns, 'podinfo')).metadata.resourceVersion;
  const status = await ok(t, ['patch', 'comp', 'podinfo', '-n', ns, '--subresource', 'status', '--type', 'merge', '-p', readyPatch('Applied version v6.2.3', { resolvedVersion: 'v6.2.3' })]);
  t.equal(status.stdout.trim(), `ocmcomponent.${GROUP}/podinfo patched`);
  o = await getObj(t, 'comp', ns, 'podinfo');
  t.equal(o.status?.resolvedVersion, 'v6.2.3', 'status patch kept');
  t.equal(o.status?.conditions?.[0]?.type, 'Ready');
  t.equal(o.metadata.generation, 3, 'status patch does not bump the generation');
  t.ok(Number(o.metadata.resourceVersion) > Number(rvBefore));
  const row = table((await ok(t, ['get', 'comp', 'podinfo', '-n', ns])).stdout)[0];
  t.equal(row?.VERSION, 'v6.2.3', 'Version column from status');
  t.equal(row?.READY, 'True', 'Ready column');
  t.equal(row?.STATUS, 'Applied version v6.2.3', 'Status column');

  const mainStatus = await ok(t, ['patch', 'comp', 'podinfo', '-n', ns, '--type', 'merge', '-p', '{"status":{"resolvedVersion":"v9.9.9"}}']);
  t.match(mainStatus.stdout, /patched \(no change\)/, 'a main-resource patch to status changes nothing');
  o = await getObj(t, 'comp', ns, 'podinfo');
  t.equal(o.status?.resolvedVersion, 'v6.2.3', 'status written by the status patch is kept');

  const mixed = await ok(t, ['patch', 'comp', 'podinfo', '-n', ns, '--type', 'merge', '-p', '{"spec":{"interval":"3m"},"status":{"resolvedVersion":"v9.9.9"}}']);
  t.equal(mixed.stdout.trim(), `ocmcomponent.${GROUP}/podinfo patched`);
  o = await getObj(t, 'comp', ns, 'podinfo');
  t.equal(o.spec.interval, '3m', 'spec part applied');
  t.equal(o.status?.resolvedVersion, 'v6.2.3', 'status part ignored');
  t.equal(o.metadata.generation, 4);

  await ok(t, ['patch', 'comp', 'podinfo', '-n', ns, '--subresource', 'status', '--type', 'merge', '-p', '{"spec":{"interval":"1h"},"status":{"verified":true}}']);
  o = await getObj(t, 'comp', ns, 'podinfo');
  t.equal(o.spec.interval, '3m', 'status patch does not change spec');
  t.equal(o.metadata.generation, 4, 'nor the generation');
  t.equal(o.status?.verified, true, 'but its status part is kept');

  const statusJson = await ok(t, ['patch', 'comp', 'podinfo', '-n', ns, '--subresource', 'status', '--type', 'json', '-p', '[{"op":"replace","path":"/status/resolvedVersion","value":"v6.2.4"}]']);
  t.equal(statusJson.stdout.trim(), `ocmcomponent.${GROUP}/podinfo patched`);
  t.equal((await getObj(t, 'comp', ns, 'podinfo')).status?.resolvedVersion, 'v6.2.4', 'json patch on status');

  const badStatus = await fails(t, ['patch', 'comp', 'podinfo', '-n', ns, '--subresource', 'status', '--type', 'merge', '-p', '{"status":{"conditions":[{"type":"Ready","status":"Maybe"}]}}']);
  t.match(badStatus.stderr, /status\.conditions\[0\]/, 'status is validated too');

});

// ---------------------------------------------------------------------------------------------
// delete and wait
// ---------------------------------------------------------------------------------------------

t.test('kubectl delete, finalizers and kubectl wait --for=delete', async (t) => {
  const ns = 'delete';
  await namespace(t, ns);
  await ok(t, ['apply', '-f', '-'], {
    input: manifest(
      obj('OCMResource', ns, 'plain'),
      obj('OCMResource', ns, 'held', undefined, { finalizers: ['delivery.ocm.software/test-hold'] }),
      obj('OCMResource', ns, 'bulk-1', undefined, { labels: { bulk: 'yes' } }),
      obj('OCMResource', ns, 'bulk-2', undefined, { labels: { bulk: 'yes' } }),
    ),
  });

  const plain = await ok(t, ['delete', 'ocmr', 'plain', '-n', ns]);
  t.equal(plain.stdout.trim(), `ocmresource.${GROUP} "plain" deleted`);
  t.notOk((await names(t, 'ocmr', ns)).includes(`ocmresource.${GROUP}/plain`), 'gone');

  const dry = await ok(t, ['delete', 'ocmr', 'bulk-1', '-n', ns, '--dry-run=server']);
  t.match(dry.stdout, /deleted \(server dry run\)/);
  t.ok((await names(t, 'ocmr', ns)).includes(`ocmresource.${GROUP}/bulk-1`), 'dry-run delete keeps the object');

  const bulk = await ok(t, ['delete', 'ocmr', '-n', ns, '-l', 'bulk=yes']);
  t.same(lines(bulk.stdout).sort(), [`ocmresource.${GROUP} "bulk-1" deleted`, `ocmresource.${GROUP} "bulk-2" deleted`], 'delete -l');

  const held = await ok(t, ['delete', 'ocmr', 'held', '-n', ns, '--wait=false']);
  t.equal(held.stdout.trim(), `ocmresource.${GROUP} "held" deleted`);
  const marked = await getObj(t, 'ocmr', ns, 'held');
  t.match(marked.metadata.deletionTimestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'only marked with a deletionTimestamp');
  t.same(marked.metadata.finalizers, ['delivery.ocm.software/test-hold']);
  t.same(await names(t, 'ocmr', ns), [`ocmresource.${GROUP}/held`], 'still listed');

  const addFinalizer = await fails(t, ['patch', 'ocmr', 'held', '-n', ns, '--type', 'merge', '-p', '{"metadata":{"finalizers":["delivery.ocm.software/test-hold","another.io/one"]}}']);
  t.match(addFinalizer.stderr, /no new finalizers can be added if the object is being deleted/);
  const again = await ok(t, ['delete', 'ocmr', 'held', '-n', ns, '--wait=false']);
  t.match(again.stdout, /"held" deleted/, 'deleting again is accepted');
  t.equal((await getObj(t, 'ocmr', ns, 'held')).metadata.deletionTimestamp, marked.metadata.deletionTimestamp, 'deletionTimestamp unchanged');

  const waiting = kubectl(['wait', '--for=delete', 'ocmr/held', '-n', ns, '--timeout=20s']);
  await sleep(700);
  const removed = await ok(t, ['patch', 'ocmr', 'held', '-n', ns, '--type', 'json', '-p', '[{"op":"remove","path":"/metadata/finalizers"}]']);
  t.equal(removed.stdout.trim(), `ocmresource.${GROUP}/held patched`);
  const w = await waiting;
  t.equal(w.code, 0, 'wait --for=delete returns 0 once the finalizer is gone', { stderr: w.stderr });
  t.match(w.stdout, /ocmresource\.delivery\.ocm\.software\/held condition met/);
  t.same(await names(t, 'ocmr', ns), [], 'gone after the last finalizer is removed');

  const nothing = await fails(t, ['delete', 'ocmr', 'held', '-n', ns]);
  t.match(nothing.stderr, /Error from server \(NotFound\): ocmresources\.delivery\.ocm\.software "held" not found/);
  const ignored = await ok(t, ['delete', 'ocmr', 'held', '-n', ns, '--ignore-not-found']);
  t.equal(ignored.stdout, '');
});

t.test('kubectl wait --for=condition=Ready', async (t) => {
  const ns = 'wait';
  await namespace(t, ns);
  await ok(t, ['apply', '-f', '-'], { input: manifest(comp(ns, 'ready-later'), comp(ns, 'never-ready')) });

  const started = Date.now();
  const waiting = kubectl(['wait', '--for=condition=Ready', 'ocmcomponent/ready-later', '-n', ns, '--timeout=30s']);
  await sleep(1000);
  await ok(t, ['patch', 'comp', 'ready-later', '-n', ns, '--subresource', 'status', '--type', 'merge', '-p', readyPatch('Applied version v6.5.0')]);
  const w = await waiting;
  t.equal(w.code, 0, 'wait returns 0 when another process sets Ready', { stderr: w.stderr });
  t.equal(w.stdout.trim(), `ocmcomponent.${GROUP}/ready-later condition met`);
  t.ok(Date.now() - started >= 1000, 'it really waited');

  const already = await ok(t, ['wait', '--for=condition=Ready', 'comp/ready-later', '-n', ns, '--timeout=5s']);
  t.match(already.stdout, /condition met/, 'already ready');

  const t0 = Date.now();
  const never = await fails(t, ['wait', '--for=condition=Ready', 'comp/never-ready', '-n', ns, '--timeout=2s']);
  t.match(never.stderr, /timed out waiting for the condition on ocmcomponents\/never-ready/);
  t.ok(Date.now() - t0 >= 1900, 'waited for the timeout');

  const byLabel = await ok(t, ['wait', '--for=jsonpath={.status.conditions[0].reason}=Succeeded', 'comp/ready-later', '-n', ns, '--timeout=5s']);
  t.match(byLabel.stdout, /condition met/, '--for=jsonpath');
});

t.test('kubectl describe shows spec and status', async (t) => {
  const ns = 'describe';
  await namespace(t, ns);
  await ok(t, ['apply', '-f', '-'], { input: manifest(comp(ns, 'podinfo', { verify: [{ signature: 'acme', secretRef: { name: 'acme-key' } }] }, { labels: { app: 'podinfo' } })) });
  await ok(t, ['patch', 'comp', 'podinfo', '-n', ns, '--subresource', 'status', '--type', 'merge', '-p', readyPatch('Applied version v6.5.0', { resolvedVersion: 'v6.5.0', verified: true })]);
  const d = await ok(t, ['describe', 'ocmcomponent', 'podinfo', '-n', ns]);
  t.match(d.stdout, /^Name:\s+podinfo$/m);
  t.match(d.stdout, /^Namespace:\s+describe$/m);
  t.match(d.stdout, /^Labels:\s+app=podinfo$/m);
  t.match(d.stdout, /^API Version:\s+delivery\.ocm\.software\/v1alpha1$/m);
  t.match(d.stdout, /^Kind:\s+OCMComponent$/m);
  t.match(d.stdout, /^Spec:$/m);
  t.match(d.stdout, /^ {2}Name:\s+github\.com\/stefanprodan\/podinfo$/m);
  t.match(d.stdout, /^ {2}Repository:\n {4}URL:\s+ghcr\.io\/stefanprodan$/m);
  t.match(d.stdout, /^ {2}Version:\s+v6\.x$/m);
  t.match(d.stdout, /^ {2}Verify:\n {4}Secret Ref:\n {6}Name:\s+acme-key\n {4}Signature:\s+acme$/m);
  t.match(d.stdout, /^Status:$/m);
  t.match(d.stdout, /^ {2}Conditions:$/m);
  t.match(d.stdout, /^ {4}Message:\s+Applied version v6\.5\.0$/m);
  t.match(d.stdout, /^ {4}Type:\s+Ready$/m);
  t.match(d.stdout, /^ {2}Resolved Version:\s+v6\.5\.0$/m);
  t.match(d.stdout, /^ {2}Verified:\s+true$/m);

  const all = await ok(t, ['describe', 'comp', '-n', ns, '-l', 'app=podinfo']);
  t.match(all.stdout, /^Name:\s+podinfo$/m, 'describe by selector');
});

// ---------------------------------------------------------------------------------------------
// errors, dry run, generateName
// ---------------------------------------------------------------------------------------------

t.test('kubectl create -f of invalid objects, and --validate', async (t) => {
  const ns = 'invalid';
  await namespace(t, ns);
  const badName = await fails(t, ['create', '-f', '-'], { input: manifest(comp(ns, 'Foo_Bar')) });
  t.match(badName.stderr, /The OCMComponent "Foo_Bar" is invalid: metadata\.name: Invalid value: "Foo_Bar": a lowercase RFC 1123 subdomain/);

  const noVersion = comp(ns, 'no-version');
  delete noVersion.spec.version;
  const required = await fails(t, ['create', '-f', '-'], { input: manifest(noVersion) });
  t.match(required.stderr, /The OCMComponent "no-version" is invalid: spec\.version: Required value/);

  const badValue = await fails(t, ['create', '-f', '-'], { input: manifest(comp(ns, 'bad-interval', { interval: 'soon' })) });
  t.match(badValue.stderr, /spec\.interval/, 'schema violation names the field');

  const twoErrors = comp(ns, 'two-errors', { interval: 'soon' });
  delete twoErrors.spec.repository;
  const both = await fails(t, ['create', '-f', '-'], { input: manifest(twoErrors) });
  t.match(both.stderr, /spec\.repository: Required value/);
  t.match(both.stderr, /spec\.interval/);

  const unknown = (name: string) => comp(ns, name, { colour: 'blue' });
  const strict = await fails(t, ['create', '-f', '-'], { input: manifest(unknown('strict')) });
  t.match(strict.stderr, /Error from server \(BadRequest\): error when creating "STDIN": strict decoding error: unknown field "spec\.colour"/, 'default validation is strict');
  const unknownMeta = await fails(t, ['create', '-f', '-'], { input: manifest(comp(ns, 'meta-typo', {}, { lables: { a: 'b' } })) });
  t.match(unknownMeta.stderr, /unknown field "metadata\.lables"/);

  t.same(await names(t, 'comp', ns), [], 'nothing invalid was stored');

  const ignore = await ok(t, ['create', '-f', '-', '--validate=false'], { input: manifest(unknown('ignored')) });
  t.equal(ignore.stdout.trim(), `ocmcomponent.${GROUP}/ignored created`);
  t.notMatch(ignore.stderr, /unknown field/, '--validate=false: no warning');
  t.equal((await getObj(t, 'comp', ns, 'ignored')).spec.colour, undefined, 'unknown field dropped');

  const warn = await ok(t, ['create', '-f', '-', '--validate=warn'], { input: manifest(unknown('warned')) });
  t.equal(warn.stdout.trim(), `ocmcomponent.${GROUP}/warned created`);
  t.match(warn.stderr, /Warning: unknown field "spec\.colour"/, '--validate=warn: a warning naming the field');
  t.equal((await getObj(t, 'comp', ns, 'warned')).spec.colour, undefined, 'unknown field dropped');

  const warnStillValidates = await fails(t, ['create', '-f', '-', '--validate=warn'], { input: manifest(comp(ns, 'warn-bad', { interval: 'soon', colour: 'red' })) });
  t.match(warnStillValidates.stderr, /spec\.interval/, 'schema errors still reject under --validate=warn');

  const applyStrict = await fails(t, ['apply', '-f', '-'], { input: manifest(unknown('apply-strict')) });
  t.match(applyStrict.stderr, /unknown field "spec\.colour"/, 'apply is strict too');
  t.same(await names(t, 'comp', ns), [`ocmcomponent.${GROUP}/ignored`, `ocmcomponent.${GROUP}/warned`]);
});

// kubectl's default (strict) validation asks /openapi/v3 whether the server checks fields itself. For a
// kind it does not find there (a misspelt kind, a v1 List) it falls back to /openapi/v2, which client-go
// only reads as protobuf (Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf); JSON in
// reply fails with "failed to download openapi: proto: cannot parse invalid wire-format data".
t.test('kinds kubectl cannot verify through /openapi/v3: a List written by kubectl get -o yaml, a misspelt kind', async (t) => {
  const ns = 'roundtrip';
  await namespace(t, ns);
  await ok(t, ['apply', '-f', '-'], { input: manifest(obj('OCMResource', ns, 'rt-1'), obj('OCMResource', ns, 'rt-2')) });
  const dumped = YAML.parse((await ok(t, ['get', 'ocmr', '-n', ns, '-o', 'yaml'])).stdout);
  t.equal(dumped.kind, 'List');
  for (const i of dumped.items) i.spec.resource = `${i.metadata.name}-edited`;
  const applied = await kubectl(['apply', '-f', '-'], { input: YAML.stringify(dumped, { version: '1.1' }) });
  t.notMatch(applied.stderr, /failed to download openapi|proto:\s+cannot\s+parse/, 'apply of a List: no OpenAPI v2 download error');
  t.equal(applied.code, 0, 'kubectl apply -f of a `kubectl get -o yaml` List', { stderr: applied.stderr });
  t.same(lines(applied.stdout), [`ocmresource.${GROUP}/rt-1 configured`, `ocmresource.${GROUP}/rt-2 configured`]);
  t.equal((await getObj(t, 'ocmr', ns, 'rt-1')).spec.resource, 'rt-1-edited', 'List items applied');

  const wrong = manifest({ ...obj('OCMResource', ns, 'wrong'), kind: 'OCMThing' });
  const r = await fails(t, ['create', '-f', '-'], { input: wrong });
  t.notMatch(r.stderr, /failed to download openapi|proto:\s+cannot\s+parse/, 'misspelt kind: no OpenAPI v2 download error');
  t.match(r.stderr, /no matches for kind "OCMThing" in version "delivery\.ocm\.software\/v1alpha1"/, 'the mapping error kube gives');
  const lenient = await fails(t, ['create', '-f', '-', '--validate=false'], { input: wrong });
  t.match(lenient.stderr, /no matches for kind "OCMThing" in version "delivery\.ocm\.software\/v1alpha1"/, 'same with --validate=false');
  t.same(await names(t, 'ocmr', ns), [`ocmresource.${GROUP}/rt-1`, `ocmresource.${GROUP}/rt-2`]);
});

t.test('conflicts and not found: create twice, replace with a stale resourceVersion, get a missing object', async (t) => {
  const ns = 'conflict';
  await namespace(t, ns);
  const doc = manifest(obj('OCMResource', ns, 'dup'));
  await ok(t, ['create', '-f', '-'], { input: doc });
  const twice = await fails(t, ['create', '-f', '-'], { input: doc });
  t.match(twice.stderr, /Error from server \(AlreadyExists\): error when creating "STDIN": ocmresources\.delivery\.ocm\.software "dup" already exists/);

  const stale = YAML.parse((await ok(t, ['get', 'ocmr', 'dup', '-n', ns, '-o', 'yaml'])).stdout);
  await ok(t, ['patch', 'ocmr', 'dup', '-n', ns, '--type', 'merge', '-p', '{"spec":{"resource":"changed-meanwhile"}}']);
  stale.spec.resource = 'from-stale-copy';
  const conflict = await fails(t, ['replace', '-f', '-'], { input: YAML.stringify(stale) });
  t.match(conflict.stderr, /Error from server \(Conflict\): error when replacing "STDIN": Operation cannot be fulfilled on ocmresources\.delivery\.ocm\.software "dup": the object has been modified; please apply your changes to the latest version and try again/);
  t.equal((await getObj(t, 'ocmr', ns, 'dup')).spec.resource, 'changed-meanwhile', 'stale replace changed nothing');

  const fresh = await getObj(t, 'ocmr', ns, 'dup');
  fresh.spec.resource = 'replaced';
  const replaced = await ok(t, ['replace', '-f', '-'], { input: JSON.stringify(fresh) });
  t.equal(replaced.stdout.trim(), `ocmresource.${GROUP}/dup replaced`);
  t.equal((await getObj(t, 'ocmr', ns, 'dup')).spec.resource, 'replaced');

  const noRV = obj('OCMResource', ns, 'dup', { resource: 'unconditional' });
  await ok(t, ['replace', '-f', '-'], { input: manifest(noRV) });
  t.equal((await getObj(t, 'ocmr', ns, 'dup')).spec.resource, 'unconditional', 'replace without resourceVersion is unconditional');

  const missing = await fails(t, ['get', 'ocmcomponent', 'missing', '-n', ns]);
  t.equal(missing.code, 1, 'exit code 1');
  t.equal(missing.stdout, '');
  t.equal(missing.stderr.trim(), 'Error from server (NotFound): ocmcomponents.delivery.ocm.software "missing" not found');
  const missingDefault = await fails(t, ['get', 'ocmr', 'missing', '-o', 'yaml']);
  t.equal(missingDefault.stderr.trim(), 'Error from server (NotFound): ocmresources.delivery.ocm.software "missing" not found', 'in default too');
  const noNamespace = await fails(t, ['get', 'ocmr', 'missing', '-n', 'no-such-namespace']);
  t.equal(noNamespace.stderr.trim(), 'Error from server (NotFound): namespaces "no-such-namespace" not found', 'kubectl names a missing namespace');
  const createNoNamespace = await fails(t, ['create', '-f', '-'], { input: manifest(obj('OCMResource', 'no-such-namespace', 'orphan')) });
  t.match(createNoNamespace.stderr, /Error from server \(NotFound\): error when creating "STDIN": namespaces "no-such-namespace" not found/, 'no create in a missing namespace');
  const patchMissing = await fails(t, ['patch', 'comp', 'missing', '-n', ns, '--type', 'merge', '-p', '{"spec":{"suspend":true}}']);
  t.equal(patchMissing.stderr.trim(), 'Error from server (NotFound): ocmcomponents.delivery.ocm.software "missing" not found', 'patch of a missing object');
  const deleteMissing = await fails(t, ['delete', 'comp', 'missing', '-n', ns]);
  t.equal(deleteMissing.stderr.trim(), 'Error from server (NotFound): ocmcomponents.delivery.ocm.software "missing" not found', 'delete of a missing object');
  const ignored = await ok(t, ['get', 'ocmr', 'missing', '-n', ns, '--ignore-not-found']);
  t.equal(ignored.stdout, '');
});

t.test('--dry-run=server persists nothing', async (t) => {
  const ns = 'dryrun';
  await namespace(t, ns);
  const r = await ok(t, ['create', '-f', '-', '--dry-run=server', '-o', 'yaml'], { input: manifest(comp(ns, 'dry')) });
  const o = YAML.parse(r.stdout);
  t.equal(o.metadata.name, 'dry');
  t.match(o.metadata.uid, /^[0-9a-f-]{36}$/, 'server filled in the uid');
  t.equal(o.spec.interval, '10m', 'and defaults');
  t.same(await names(t, 'comp', ns), [], 'not stored');
  const plain = await ok(t, ['create', '-f', '-', '--dry-run=server'], { input: manifest(comp(ns, 'dry')) });
  t.equal(plain.stdout.trim(), `ocmcomponent.${GROUP}/dry created (server dry run)`);
  const invalidDry = await fails(t, ['create', '-f', '-', '--dry-run=server'], { input: manifest(comp(ns, 'Bad_Dry')) });
  t.match(invalidDry.stderr, /is invalid/, 'dry run still validates');

  await ok(t, ['apply', '-f', '-'], { input: manifest(comp(ns, 'real')) });
  const before = await getObj(t, 'comp', ns, 'real');
  const applyDry = await ok(t, ['apply', '-f', '-', '--dry-run=server'], { input: manifest(comp(ns, 'real', { version: 'v7.x' })) });
  t.match(applyDry.stdout, /configured \(server dry run\)/);
  const patchDry = await ok(t, ['patch', 'comp', 'real', '-n', ns, '--type', 'merge', '-p', '{"spec":{"suspend":true}}', '--dry-run=server', '-o', 'jsonpath={.spec.suspend}']);
  t.equal(patchDry.stdout, 'true', 'dry-run patch returns the patched object');
  const after = await getObj(t, 'comp', ns, 'real');
  t.same(after, before, 'dry-run apply and patch changed nothing');
});

t.test('generateName via kubectl create -f', async (t) => {
  const ns = 'generate';
  await namespace(t, ns);
  const doc = manifest({ apiVersion: GV, kind: 'OCMResource', metadata: { generateName: 'podinfo-', namespace: ns }, spec: SPECS.OCMResource });
  const a = await ok(t, ['create', '-f', '-'], { input: doc });
  t.match(a.stdout.trim(), /^ocmresource\.delivery\.ocm\.software\/podinfo-[a-z0-9]{5} created$/);
  const b = await ok(t, ['create', '-f', '-', '-o', 'name'], { input: doc });
  t.match(b.stdout.trim(), /^ocmresource\.delivery\.ocm\.software\/podinfo-[a-z0-9]{5}$/);
  const stored = await names(t, 'ocmr', ns);
  t.equal(stored.length, 2, 'two objects');
  t.not(stored[0], stored[1], 'with different names');
  const name = b.stdout.trim().split('/')[1];
  const o = await getObj(t, 'ocmr', ns, name);
  t.equal(o.metadata.generateName, 'podinfo-', 'generateName kept');
  t.ok(o.metadata.name.startsWith('podinfo-'), 'name has the prefix');
  const applyGen = await fails(t, ['apply', '-f', '-'], { input: doc });
  t.match(applyGen.stderr, /name/i, 'apply needs a name');
});

// ---------------------------------------------------------------------------------------------
// restart (last: it replaces the server)
// ---------------------------------------------------------------------------------------------

t.test('after a restart on the same data dir everything is still there, with the same resourceVersions', async (t) => {
  const ns = 'restart';
  await namespace(t, ns);
  await ok(t, ['apply', '-f', '-'], {
    input: manifest(comp(ns, 'kept', {}, { labels: { keep: 'yes' } }), obj('OCMResource', ns, 'terminating', undefined, { finalizers: ['delivery.ocm.software/test-hold'] })),
  });
  await ok(t, ['patch', 'comp', 'kept', '-n', ns, '--subresource', 'status', '--type', 'merge', '-p', readyPatch('Applied version v6.5.0', { resolvedVersion: 'v6.5.0' })]);
  await ok(t, ['delete', 'ocmr', 'terminating', '-n', ns, '--wait=false']);

  const snapshot = async () => {
    const list = JSON.parse((await ok(t, ['get', 'ocm', '-A', '-o', 'json'])).stdout) as { items: Obj[] };
    const nss = JSON.parse((await ok(t, ['get', 'namespaces', '-o', 'json'])).stdout) as { items: Obj[] };
    return new Map([...list.items, ...nss.items].map((i) => [`${i.kind}/${i.metadata.namespace ?? ''}/${i.metadata.name}`, i]));
  };
  const before = await snapshot();
  t.ok(before.size >= 2, `objects before the restart (${before.size})`);
  const maxRV = Math.max(...[...before.values()].map((o) => Number(o.metadata.resourceVersion)));

  const oldUrl = s.url;
  await s.stop();
  s = await startServer({ dataDir });
  t.not(s.url, '', 'restarted');
  t.comment(`restarted: ${oldUrl} -> ${s.url}`);

  const after = await snapshot();
  t.same([...after.keys()].sort(), [...before.keys()].sort(), 'the same objects');
  for (const [k, o] of before) {
    const a = after.get(k);
    if (!a) continue;
    if (a.metadata.resourceVersion !== o.metadata.resourceVersion || a.metadata.uid !== o.metadata.uid) t.fail(`${k} changed: rv ${o.metadata.resourceVersion} -> ${a.metadata.resourceVersion}`);
  }
  t.same(after, before, 'objects identical, resourceVersions included');

  const kept = await getObj(t, 'comp', ns, 'kept');
  t.equal(kept.status?.resolvedVersion, 'v6.5.0', 'status survived');
  t.same(kept.metadata.labels, { keep: 'yes' });
  const term = await getObj(t, 'ocmr', ns, 'terminating');
  t.ok(term.metadata.deletionTimestamp, 'deletionTimestamp survived');

  await ok(t, ['apply', '-f', '-'], { input: manifest(obj('OCMResource', ns, 'after-restart')) });
  const next = await getObj(t, 'ocmr', ns, 'after-restart');
  t.ok(Number(next.metadata.resourceVersion) > maxRV, `resourceVersion continues (${next.metadata.resourceVersion} > ${maxRV})`);

  await ok(t, ['patch', 'ocmr', 'terminating', '-n', ns, '--type', 'merge', '-p', '{"metadata":{"finalizers":null}}']);
  t.same(await names(t, 'ocmr', ns), [`ocmresource.${GROUP}/after-restart`], 'finalizer removal after restart completes the delete');
});
