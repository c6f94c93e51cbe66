// Runs the snapshot registry (registry/server.ts) alone in this process, for bench/registry.ts, so
// that its memory can be read from /proc/<pid>/status. Key material comes from --cert-dir (as
// written by ensureCerts: ca.crt, server.crt, server.key). Prints one JSON line {"port":N,"pid":N}
// on stdout when listening; closes and exits 0 on SIGTERM/SIGINT (so that `node --cpu-prof` writes
// its profile).
//
//   node dist/bench/registry-runner.js --data-dir DIR --cert-dir DIR [--port 0] [--host 127.0.0.1]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startRegistry } from '../registry/server.js';

const { values } = parseArgs({
  options: {
    'data-dir': { type: 'string' },
    'cert-dir': { type: 'string' },
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    'log-level': { type: 'string', default: 'warn' },
  },
  strict: true,
});
if (!values['data-dir'] || !values['cert-dir']) {
  console.error('usage: registry-runner --data-dir DIR --cert-dir DIR [--port N] [--host ADDR] [--log-level LEVEL]');
  process.exit(2);
}
const certDir = values['cert-dir'];
const read = (f: string) => readFileSync(join(certDir, f), 'utf8');

const registry = await startRegistry({
  dataDir: values['data-dir'],
  port: Number(values.port),
  host: values.host!,
  tls: { key: read('server.key'), cert: read('server.crt'), clientCA: read('ca.crt') },
  logLevel: values['log-level'],
});
process.stdout.write(`${JSON.stringify({ port: registry.port, pid: process.pid })}\n`);

let closing = false;
const shutdown = () => {
  if (closing) return;
  closing = true;
  registry.close().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
};
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
