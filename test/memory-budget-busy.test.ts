// Reconciles that each hold a lease of the in-memory budget and need more never wait on each
// other (registry/memory-budget.ts, README "Limits"): they wait ahead of the queue, and when all
// of them would, the one holding least gets MemoryBudgetBusy, gives its leases back and is retried
// with backoff. A real docker-registry
// serves three 20 MiB archives; three Sources read them at once from a server whose budget is
// 72 MiB: all three blobs fit (60 MiB), a second 20 MiB for inflating any of them does not. Without
// the rule the three would wait for each other for ever; with it every Source ends Ready=True and
// the budget is all given back.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { publish } from '../ocm/publish.js';
import { OcmRepository } from '../ocm/repository.js';
import { OciClient } from '../registry/client.js';
import { packSnapshot } from '../registry/snapshot.js';
import { startDistribution, type Distribution } from './helpers/distribution.js';
import { KUBECTL, kubectlJson, startServer, waitFor, yamlDocs, type TestServer } from './helpers/server.js';

const API = 'delivery.ocm.software/v1alpha1';
const MiB = 1 << 20;
const BUDGET_MIB = 72;
const BLOB_MIB = 20;
const SOURCES = 3;
const NS = 'busy';

let reg: Distribution;
let s: TestServer;
const work = mkdtempSync(join(tmpdir(), 'memory-budget-busy-'));

async function metric(name: string, label = ''): Promise<number> {
  const r = await s.request('GET', '/metrics');
  const line = r.body.split('\n').find((l) => l.startsWith(`${name}${label} `) || l.startsWith(`${name}${label}{`));
  return Number(line?.split(' ').pop());
}
const ready = (o: any) => o?.status?.conditions?.find((c: { type: string }) => c.type === 'Ready');

t.before(async () => {
  reg = await startDistribution();
  s = await startServer({ reconcilers: 'all', args: ['--allow-private-upstreams', '--memory-budget-mib', String(BUDGET_MIB)] });
});
t.teardown(async () => {
  await s?.stop();
  await reg?.stop();
  rmSync(work, { recursive: true, force: true });
});

t.test('a holder that needs more while another already waits: MemoryBudgetBusy, retried, then Ready', async (t) => {
  const repo = new OcmRepository(new OciClient({ insecureHttp: true }), `http://${reg.host}/ocm`);
  const resources = [];
  for (let i = 0; i < SOURCES; i++) {
    // random content: the tar.gz is as large as what it inflates to, so each Source leases 20 MiB twice
    writeFileSync(join(work, `a${i}.tgz`), (await packSnapshot({ files: { 'data.bin': randomBytes(BLOB_MIB * MiB) } })).tgz);
    resources.push({ name: `a${i}`, version: '1.0.0', type: 'blob', input: { type: 'file' as const, path: `a${i}.tgz`, mediaType: 'application/x-tgz' } });
  }
  await publish(repo, { name: 'ocm.software/it/busy', version: '1.0.0', provider: 'acme', resources }, work);
  t.equal((await s.kubectl(['create', 'namespace', NS])).code, 0);

  // Every Ready reason each Source goes through, from a watch.
  const seen: Record<string, string[]> = {};
  const watch = spawn(KUBECTL, ['--kubeconfig', s.kubeconfig, 'get', 'sources', '-n', NS, '--watch', '-o', 'jsonpath={.metadata.name} {.status.conditions[?(@.type=="Ready")].reason}{"\\n"}'], { env: { ...process.env, KUBECONFIG: s.kubeconfig, HOME: s.dataDir } });
  let buf = '';
  watch.stdout.on('data', (d) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const [name, reason] = buf.slice(0, i).trim().split(' ');
      buf = buf.slice(i + 1);
      if (name && reason && seen[name]?.at(-1) !== reason) (seen[name] ??= []).push(reason);
    }
  });
  t.teardown(() => void watch.kill());
  let waitingSeen = 0;
  let polling = true;
  const poll = (async () => {
    while (polling) {
      waitingSeen = Math.max(waitingSeen, await metric('ocm_memory_budget_waiting').catch(() => 0));
      await new Promise((r) => setTimeout(r, 100));
    }
  })();

  // The Sources first, so that all three start together when their OCMComponent becomes Ready.
  const objs: unknown[] = [];
  for (let i = 0; i < SOURCES; i++) {
    objs.push(
      { apiVersion: API, kind: 'OCMResource', metadata: { name: `a${i}`, namespace: NS }, spec: { resource: `a${i}` } },
      { apiVersion: API, kind: 'Source', metadata: { name: `a${i}`, namespace: NS }, spec: { componentRef: { name: 'busy' }, providerRef: { apiVersion: API, kind: 'OCMResource', name: `a${i}` } } },
    );
  }
  let r = await s.kubectl(['apply', '-f', '-'], { input: yamlDocs(...objs) });
  t.equal(r.code, 0, r.stderr);
  await waitFor('the Sources waiting for their component', async () => {
    const l = await kubectlJson(s, ['get', 'sources', '-n', NS]);
    return l.items.length === SOURCES && l.items.every((o: any) => ready(o)?.reason === 'ComponentNotFound' || ready(o)?.reason === 'ComponentNotReady') ? true : undefined;
  });
  r = await s.kubectl(['apply', '-f', '-'], {
    input: yamlDocs({ apiVersion: API, kind: 'OCMComponent', metadata: { name: 'busy', namespace: NS }, spec: { interval: '10m', repository: { url: `http://${reg.host}/ocm` }, name: 'ocm.software/it/busy', version: '1.0.0' } }),
  });
  t.equal(r.code, 0, r.stderr);

  const final = await waitFor('every Source Ready=True', async () => {
    const l = await kubectlJson(s, ['get', 'sources', '-n', NS]);
    return l.items.length === SOURCES && l.items.every((o: any) => ready(o)?.status === 'True') ? l.items : undefined;
  }, 120_000);
  polling = false;
  await poll;
  await new Promise((res) => setTimeout(res, 500)); // the watch's last lines
  t.comment(`Ready reasons seen: ${JSON.stringify(seen)}; most waiting at once: ${waitingSeen}`);

  const busy = Object.keys(seen).filter((n) => seen[n].includes('MemoryBudgetBusy'));
  t.ok(busy.length >= 1, `a Source was Ready=False MemoryBudgetBusy (${busy.join(', ')})`);
  for (const n of busy) t.equal(seen[n].at(-1), 'Succeeded', `${n} was retried and ended Ready=True`);
  for (const o of final) t.match(ready(o).message, /snapshot/, `${o.metadata.name}: ${ready(o).message}`);
  t.ok(waitingSeen >= 1, 'a reconcile waited for the budget meanwhile');
  const msgs = (await kubectlJson(s, ['get', 'sources', '-n', NS])).items.map((o: any) => ready(o).reason);
  t.same(msgs, Array(SOURCES).fill('Succeeded'));

  await waitFor('the budget given back', async () => ((await metric('ocm_memory_budget_bytes', '{state="used"}')) === 0 ? true : undefined), 10_000);
  t.equal(await metric('ocm_memory_budget_waiting'), 0, 'nobody waits');
  const peak = await metric('ocm_memory_budget_bytes', '{state="peak"}');
  t.ok(peak >= SOURCES * BLOB_MIB * MiB && peak <= BUDGET_MIB * MiB, `all three blobs held at once, never more than the budget (peak ${(peak / MiB).toFixed(1)} MiB)`);
});
