// The server's log format: JSON lines when stdout is not a terminal (pipes, CI, containers), one
// readable line per record (pino-pretty) when a person runs it in a terminal. The terminal is a
// real pseudo-terminal from util-linux `script`, the way `npm start` runs in a shell.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SERVER = join(root, 'dist', 'cli', 'server.js');

/** Runs the server (under a pty when `tty`) until its ready line; returns every line printed until then. */
function runUntilReady(extra: string[], tty: boolean): Promise<string[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'logging-'));
  const args = [SERVER, '--data-dir', dataDir, '--port', '0', '--registry-port', '0', '--reconcilers', 'none', ...extra];
  const cmd = tty ? 'script' : process.execPath;
  const argv = tty ? ['-qfec', [process.execPath, ...args].map((a) => `'${a}'`).join(' '), '/dev/null'] : args;
  const proc = spawn(cmd, argv, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  return new Promise((res, rej) => {
    let out = '';
    const timer = setTimeout(() => finish(new Error(`no ready line within 60 s:\n${out}`)), 60_000);
    const finish = (err?: Error) => {
      clearTimeout(timer);
      proc.kill('SIGTERM');
      proc.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
      if (err) rej(err);
      else res(out.split(/\r?\n/).filter(Boolean));
    };
    const onData = (d: Buffer) => {
      out += d.toString();
      if (/ocm-apiserver ready at [^\n]*\n/.test(out)) finish();
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => finish(new Error(`exited ${code} before it was ready:\n${out}`)));
  });
}

t.test('in a terminal: one readable line per record, not JSON', async (t) => {
  const lines = await runUntilReady([], true);
  const ready = lines.find((l) => l.includes('ocm-apiserver ready at'))!;
  t.match(ready, /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ocm-apiserver ready at https:\/\/127\.0\.0\.1:\d+ /, 'time, level, message');
  t.notOk(lines.some((l) => l.startsWith('{')), 'no JSON line at all (the registry thread logs the same way)');
});

t.test('in a terminal with --log-format json: JSON', async (t) => {
  const lines = await runUntilReady(['--log-format', 'json'], true);
  const ready = JSON.parse(lines.find((l) => l.includes('ocm-apiserver ready at'))!);
  t.equal(ready.level, 30);
});

t.test('not a terminal: JSON lines by default', async (t) => {
  const lines = await runUntilReady([], false);
  for (const l of lines) t.doesNotThrow(() => JSON.parse(l), l.slice(0, 80));
  t.match(JSON.parse(lines.find((l) => l.includes('ocm-apiserver ready at'))!), { level: 30, mode: 'standalone' });
});

t.test('a wrong --log-format is refused before anything starts', async (t) => {
  await t.rejects(runUntilReady(['--log-format', 'xml'], false), /--log-format must be auto, json or pretty/);
});
