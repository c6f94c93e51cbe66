// The in-memory budget is a hard cap across concurrent reconciles (issue 15, README "Limits"). A real
// docker-registry serves a component whose resources are gzip bombs (1 MiB compressed, 96 MiB
// inflated: under the 200:1 ratio and the 256 MiB per-archive limits); several Sources and an
// Action read them at once from a server whose budget is lowered to 128 MiB. The server's own peak
// RSS (VmHWM) grows by no more than the budget and a fixed allowance; every Source ends Ready or
// Ready=False with its reason; the budget's leases are all given back and a later Source is Ready.
// The OCMComponent checks a 160 MiB resource's digest meanwhile, as it streams.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { packSnapshot } from '../registry/snapshot.js';
import { startDistribution, type Distribution } from './helpers/distribution.js';
import { kubectlJson, startServer, waitFor, yamlDocs, type TestServer } from './helpers/server.js';

const API = 'delivery.ocm.software/v1alpha1';
const MiB = 1 << 20;
const BUDGET_MIB = 128;
const BOMB_MIB = 96;
const BOMBS = 4;
/** What the process may hold besides the budget's content: zlib and tar streams, HTTP buffers, the 32 MiB blob cache, heap slack. */
const ALLOWANCE_MIB = Number(process.env.MEMORY_BOUND_ALLOWANCE_MIB ?? 64);

const keys = generateKeyPairSync('rsa', { modulusLength: 2048, publicKeyEncoding: { type: 'spki', format: 'pem' }, privateKeyEncoding: { type: 'pkcs8', format: 'pem' } });
let reg: Distribution;
let s: TestServer;
const work = mkdtempSync(join(tmpdir(), 'memory-bound-'));

/** A tar.gz of one file: `random` MiB of random bytes, then zeros up to `mib` MiB. */
async function bomb(mib: number, random = 1): Promise<Buffer> {
  const content = Buffer.alloc(mib * MiB);
  randomBytes(random * MiB).copy(content);
  return (await packSnapshot({ files: { 'bomb.bin': content } })).tgz;
}

/** The server's resident set now (VmRSS) or its peak so far (VmHWM), MiB. */
function rssMiB(which: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${which}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${s.proc.pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}

async function metric(name: string, label = ''): Promise<number> {
  const r = await s.request('GET', '/metrics');
  const line = r.body.split('\n').find((l) => l.startsWith(`${name}${label} `) || l.startsWith(`${name}${label}{`));
  return Number(line?.split(' ').pop());
}

const json = (args: string[]) => kubectlJson(s, args);
async function apply(...objs: unknown[]) {
  const r = await s.kubectl(['apply', '-f', '-'], { input: yamlDocs(...objs) });
  if (r.code !== 0) throw new Error(r.stderr);
}
const ready = (o: any) => o?.status?.conditions?.find((c: { type: string }) => c.type === 'Ready');
const source = (name: string, comp: string, resource: string) => [
  { apiVersion: API, kind: 'OCMResource', metadata: { name, namespace: 'bombs' }, spec: { resource } },
  { apiVersion: API, kind: 'Source', metadata: { name, namespace: 'bombs' }, spec: { componentRef: { name: comp }, providerRef: { apiVersion: API, kind: 'OCMResource', name } } },
];
const component = (name: string, version: string) => ({
  apiVersion: API,
  kind: 'OCMComponent',
  metadata: { name, namespace: 'bombs' },
  spec: { interval: '10m', repository: { url: `http://${reg.host}/ocm` }, name: `ocm.software/it/${name}`, version, verify: { secretRef: { name: 'key' } } },
});

t.before(async () => {
  reg = await startDistribution();
  s = await startServer({ reconcilers: 'all', args: ['--allow-private-upstreams', '--memory-budget-mib', String(BUDGET_MIB)] });
});
t.teardown(async () => {
  await s?.stop();
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

t.test('gzip bombs read by several Sources and an Action at once: peak RSS within the budget, every lease given back', async (t) => {
  const repo = new OcmRepository(new OciClient({ insecureHttp: true }), `http://${reg.host}/ocm`);
  const resources = [];
  for (let i = 0; i < BOMBS; i++) {
    writeFileSync(join(work, `bomb${i}.tgz`), await bomb(BOMB_MIB));
    resources.push({ name: `bomb${i}`, version: '1.0.0', type: 'blob', input: { type: 'file' as const, path: `bomb${i}.tgz`, mediaType: 'application/x-tgz' } });
  }
  // Under the per-archive limit and the ratio, but more than the whole budget: refused, not waited for.
  writeFileSync(join(work, 'huge.tgz'), await bomb(200, 2));
  resources.push({ name: 'huge', version: '1.0.0', type: 'blob', input: { type: 'file' as const, path: 'huge.tgz', mediaType: 'application/x-tgz' } });
  // A plain blob larger than the budget: the OCMComponent checks its digest as it streams (it held
  // it whole before); a Source cannot hold it (ArchiveTooLarge, refused before a byte is read).
  writeFileSync(join(work, 'plain.bin'), randomBytes(160 * MiB));
  resources.push({ name: 'plain', version: '1.0.0', type: 'blob', input: { type: 'file' as const, path: 'plain.bin', mediaType: 'application/octet-stream' } });
  resources.push({ name: 'small', version: '1.0.0', type: 'blob', input: { type: 'utf8' as const, text: 'small\n', mediaType: 'text/plain' } });
  await publish(repo, { name: 'ocm.software/it/bombs', version: '1.0.0', provider: 'acme', resources }, work, { sign: { name: 'acme', privateKeyPem: keys.privateKey } });

  await s.kubectl(['create', 'namespace', 'bombs']);
  const sec = await s.kubectl(['create', 'secret', 'generic', 'key', '-n', 'bombs', `--from-literal=acme=${keys.publicKey}`]);
  t.equal(sec.code, 0, sec.stderr);
  // From what it holds now (not its peak so far, which may be higher than what it holds now).
  const before = rssMiB('VmRSS');
  t.comment(`server RSS before the component: ${before.toFixed(0)} MiB (peak so far ${rssMiB('VmHWM').toFixed(0)} MiB)`);
  // The server must answer meanwhile.
  let liveMaxMs = 0;
  let liveFailures = 0;
  let polling = true;
  const live = (async () => {
    while (polling) {
      const t0 = Date.now();
      const r = await s.request('GET', '/livez').catch(() => undefined);
      if (r?.status !== 200) liveFailures++;
      liveMaxMs = Math.max(liveMaxMs, Date.now() - t0);
      await new Promise((res) => setTimeout(res, 200));
    }
  })();

  const started = Date.now();
  await apply(component('bombs', '1.0.0'));
  await waitFor('the component verified', async () => (ready(await json(['get', 'ocmcomponent', 'bombs', '-n', 'bombs']))?.reason === 'Succeeded' ? true : undefined));
  t.comment(`the component verified in ${((Date.now() - started) / 1000).toFixed(1)} s, server peak RSS ${rssMiB('VmHWM').toFixed(0)} MiB`);

  const names = [...Array.from({ length: BOMBS }, (_, i) => `bomb${i}`), 'huge', 'plain'];
  await apply(
    ...names.flatMap((n) => source(n, 'bombs', n)),
    { apiVersion: API, kind: 'KustomizationTemplate', metadata: { name: 'kt', namespace: 'bombs' }, spec: { template: { interval: '10m', path: './' } } },
    { apiVersion: API, kind: 'Action', metadata: { name: 'deploy', namespace: 'bombs' }, spec: { componentRef: { name: 'bombs' }, sourceRef: { kind: 'Source', name: 'bomb0' }, providerRef: { apiVersion: API, kind: 'KustomizationTemplate', name: 'kt' } } },
  );
  const final: Record<string, any> = {};
  for (const n of names) {
    final[n] = await waitFor(`Source ${n} settled`, async () => {
      const o = await json(['get', 'source', n, '-n', 'bombs']);
      const c = ready(o);
      return c && c.observedGeneration === o.metadata.generation && (c.reason === 'Succeeded' || c.reason === 'ArchiveTooLarge') ? o : undefined;
    }, 90_000);
  }
  const src0 = final.bomb0;
  const action = await waitFor('the Action read its big input', async () => {
    const o = await json(['get', 'action', 'deploy', '-n', 'bombs']);
    return o.status?.inputDigest === src0.status.digest && ready(o) ? o : undefined;
  }, 90_000);
  t.comment(`all settled in ${((Date.now() - started) / 1000).toFixed(1)} s; the Action: ${ready(action).reason}`);
  polling = false;
  await live;

  for (let i = 0; i < BOMBS; i++) t.equal(ready(final[`bomb${i}`]).reason, 'Succeeded', `bomb${i}: ${ready(final[`bomb${i}`]).message}`);
  t.equal(ready(final.huge).reason, 'ArchiveTooLarge', 'more than the whole budget: Ready=False ArchiveTooLarge');
  t.match(ready(final.huge).message, /in-memory budget/);
  t.equal(ready(final.plain).reason, 'ArchiveTooLarge', 'a plain blob larger than the budget: Ready=False ArchiveTooLarge');
  t.equal(liveFailures, 0, `the server answered /livez throughout (slowest ${liveMaxMs} ms)`);

  const after = rssMiB('VmHWM');
  const grew = after - before;
  t.comment(`server peak RSS after: ${after.toFixed(0)} MiB (+${grew.toFixed(0)} MiB; budget ${BUDGET_MIB} MiB, allowance ${ALLOWANCE_MIB} MiB)`);
  t.ok(grew <= BUDGET_MIB + ALLOWANCE_MIB, `peak RSS grew by ${grew.toFixed(0)} MiB, within the budget (${BUDGET_MIB}) and the allowance (${ALLOWANCE_MIB})`);
  const peak = await metric('ocm_memory_budget_bytes', '{state="peak"}');
  t.ok(peak > BOMB_MIB * MiB && peak <= BUDGET_MIB * MiB, `leases at most the budget at once (peak ${(peak / MiB).toFixed(1)} MiB)`);

  // Every lease given back, whichever way the reconciles ended: a later Source still runs.
  await waitFor('the budget released', async () => ((await metric('ocm_memory_budget_bytes', '{state="used"}')) === 0 ? true : undefined), 10_000);
  t.equal(await metric('ocm_memory_budget_waiting'), 0, 'nobody waits');
  await apply(...source('later', 'bombs', 'small'));
  const later = await waitFor('a later Source', async () => {
    const o = await json(['get', 'source', 'later', '-n', 'bombs']);
    return ready(o)?.reason === 'Succeeded' ? o : undefined;
  });
  t.ok(later.status.snapshot, 'the later Source is Ready');
});
