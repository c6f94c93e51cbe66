// The process's memory with the stored objects at their quota (issue 15, README "Limits"): a script,
// not a test. Fills --storage-quota-mib (256 MiB by default) with ConfigMaps of 2.5 MB in four
// namespaces of --namespace-storage-quota-mib (64 MiB) each, until every write is refused, then
// lists every namespace and restarts the server on the same data (the store is loaded again), and
// prints the server's RSS and peak RSS (VmHWM) at each step.
//
//   npm run bench:full-quota
//   node dist/bench/full-quota.js --object-mb 1 --namespaces 4
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Agent } from 'node:https';
import { startServer, tempDir, type TestServer } from '../test/helpers/server.js';
import { send } from '../test/helpers/stall.js';

const { values } = parseArgs({ options: { 'object-mb': { type: 'string', default: '2.5' }, namespaces: { type: 'string', default: '4' } } });
const objectBytes = Math.round(Number(values['object-mb']) * 1e6);
const namespaces = Number(values.namespaces);

const vm = (s: TestServer) => {
  const txt = readFileSync(`/proc/${s.proc.pid}/status`, 'utf8');
  const get = (k: string) => Math.round(Number(new RegExp(`${k}:\\s+(\\d+)`).exec(txt)![1]) / 1024);
  return `RSS ${get('VmRSS')} MiB, peak ${get('VmHWM')} MiB`;
};
const agentFor = (s: TestServer) => {
  const certs = join(s.dataDir, 'certs');
  return new Agent({ keepAlive: true, ca: readFileSync(join(certs, 'ca.crt')), cert: readFileSync(join(certs, 'admin.crt')), key: readFileSync(join(certs, 'admin.key')) });
};
const json = (v: unknown) => Buffer.from(JSON.stringify(v));
const CT = { 'Content-Type': 'application/json' };

const dataDir = tempDir('full-quota-bench-');
let s = await startServer({ dataDir });
let agent = agentFor(s);
console.log(`started: ${vm(s)}`);
let stored = 0;
for (let n = 0; n < namespaces; n++) {
  const ns = `quota-${n}`;
  await send(agent, s.port, 'POST', '/api/v1/namespaces', json({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } }), CT);
  for (let i = 0; ; i++) {
    const r = await send(agent, s.port, 'POST', `/api/v1/namespaces/${ns}/configmaps`, json({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: `c${i}` }, data: { x: String(i % 10).repeat(objectBytes) } }), CT);
    if (r.status === 201) {
      stored += objectBytes;
      continue;
    }
    if (r.status !== 403) throw new Error(`${ns}/c${i}: ${r.status} ${r.text.slice(0, 200)}`);
    break;
  }
  console.log(`${ns} full (${Math.round(stored / 1048576)} MiB stored): ${vm(s)}`);
}
for (let n = 0; n < namespaces; n++) await send(agent, s.port, 'GET', `/api/v1/namespaces/quota-${n}/configmaps`, undefined, {});
console.log(`after listing every namespace: ${vm(s)}`);
agent.destroy();
await s.stop();
s = await startServer({ dataDir });
agent = agentFor(s);
await new Promise((r) => setTimeout(r, 2000));
console.log(`restarted on the full store: ${vm(s)}`);
agent.destroy();
await s.stop();
rmSync(dataDir, { recursive: true, force: true });
