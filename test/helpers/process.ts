// Child processes for the tests and the benches: a node process that logs JSON lines, waited on
// until a line says it is ready (the server, the benches' registry), and a command run to its end.
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The server program to start: this checkout's, or the build in OCM_SERVER_ROOT (a checkout with
 * its own dist/; bench/compare.ts runs the same bench against a previous build that way).
 */
export function serverScript(): string {
  const root = process.env.OCM_SERVER_ROOT ?? resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
  return join(root, 'dist', 'cli', 'server.js');
}

export interface NodeProcess<T> {
  proc: ChildProcess;
  /** Its output lines (stderr chunks too), the newest `keepLines` of them. */
  logs: string[];
  /** What `ready` returned for the line that said the process was ready. */
  ready: T;
  /** SIGTERM, then SIGKILL after 15 s; resolves once it has exited. */
  stop(): Promise<void>;
  kill9(): Promise<void>;
}

export interface NodeProcessOptions<T> {
  /** For messages, e.g. "server". */
  name: string;
  script: string;
  args: string[];
  nodeArgs?: string[];
  cwd?: string;
  /** A value when this JSON log line says the process is ready, else undefined. */
  ready(line: Record<string, unknown>): T | undefined;
  keepLines?: number;
  /** Echo its warnings and errors (JSON level >= 40) and its stderr to ours. */
  echo?: boolean;
  timeoutMs?: number;
}

export async function startNodeProcess<T>(o: NodeProcessOptions<T>): Promise<NodeProcess<T>> {
  const proc = spawn(process.execPath, [...(o.nodeArgs ?? []), o.script, ...o.args], { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  const keep = (l: string) => {
    logs.push(l);
    if (o.keepLines && logs.length > o.keepLines) logs.shift();
  };
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const gone = () => proc.exitCode !== null || proc.signalCode !== null;
  const stop = async () => {
    if (gone()) return;
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(t);
  };
  const kill9 = async () => {
    if (gone()) return;
    proc.kill('SIGKILL');
    await exited;
  };
  let onReady: ((v: T) => void) | undefined;
  let buf = '';
  proc.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      keep(line);
      let j: Record<string, unknown>;
      try {
        j = JSON.parse(line);
      } catch {
        continue; // not a JSON log line
      }
      const v = o.ready(j);
      if (v !== undefined) onReady?.(v);
      else if (o.echo && typeof j.level === 'number' && j.level >= 40) console.error(`[${o.name}] ${line}`);
    }
  });
  proc.stderr!.on('data', (d: Buffer) => {
    keep(d.toString());
    if (o.echo) process.stderr.write(`[${o.name} stderr] ${d}`);
  });
  const timeoutMs = o.timeoutMs ?? 60_000; // generous: shared CI machines start a TLS server with fresh keys slowly under load
  try {
    const ready = await new Promise<T>((resolve, reject) => {
      onReady = resolve;
      proc.once('exit', (code, sig) => reject(new Error(`${o.name} exited (${code ?? sig}) before it was ready:\n${logs.join('\n')}`)));
      setTimeout(() => reject(new Error(`${o.name} not ready in ${timeoutMs / 1000} s:\n${logs.join('\n')}`)), timeoutMs).unref();
    });
    onReady = undefined;
    return { proc, logs, ready, stop, kill9 };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Runs a command to its end (killed after timeoutMs), with stdout and stderr together. */
export function runCommand(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number }): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      res({ code, out });
    });
  });
}
