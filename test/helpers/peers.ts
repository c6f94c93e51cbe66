// Runs a peer-client script (test/fixtures/peers/) and turns its JSON lines
// ({"check": NAME, "ok": BOOL, "detail": TEXT}) into tap assertions.
import { spawn } from 'node:child_process';
import type { Tap } from './store-conformance.js';

export interface CheckResult {
  check: string;
  ok: boolean;
  detail: string;
}

export function runPeerScript(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {}): Promise<{ code: number | null; results: CheckResult[]; stdout: string; stderr: string }> {
  return new Promise((res) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const limit = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 180_000);
    child.on('close', (code) => {
      clearTimeout(limit);
      const results: CheckResult[] = [];
      for (const line of stdout.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          results.push(JSON.parse(line) as CheckResult);
        } catch {
          // not one of ours
        }
      }
      res({ code, results, stdout, stderr });
    });
  });
}

/**
 * One assertion per expected check, in order: a check the script never reported fails. `todo`
 * maps a check to the not-yet-landed part of issue 13 it waits for (tap todo, not a failure).
 */
export function assertChecks(t: Tap, run: { results: CheckResult[]; stderr: string }, expected: string[], todo: Record<string, string> = {}) {
  for (const name of expected) {
    const r = run.results.find((x) => x.check === name);
    const extra: Record<string, unknown> = todo[name] ? { todo: todo[name] } : {};
    if (!r) t.fail(`${name}: not reported`, { ...extra, stderr: run.stderr.slice(-3000) });
    else t.ok(r.ok, name, { ...extra, ...(r.ok ? {} : { detail: r.detail }) });
  }
  for (const r of run.results) if (!expected.includes(r.check)) t.fail(`unexpected check ${r.check}`);
}
