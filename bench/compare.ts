// A bench against a previous build, in one run (the regression peer): builds REF once into
// .cache/baseline/<commit>/ (git archive, this checkout's node_modules when the lock file is the
// same, else `npm ci`; then tsc), then runs THIS checkout's bench script ROUNDS times against each
// server build, alternating which goes first, and prints the median of each figure and the ratio
// current / baseline. The bench is the same program both times; only the server differs
// (OCM_SERVER_ROOT). Figures come from the bench's BENCH_RESULT_FILE (bench/result.ts).
//
//   npm run bench:compare -- --baseline d9e3450 api -- --count 5000
//   npm run bench:compare -- --baseline HEAD~3 --rounds 3 pipeline -- --runs 10 --many 100
//
// Benches: api (bench/api.ts), pipeline (bench/pipeline.ts). Each run's output goes to a log file
// whose path is printed.
import { execFileSync, spawn } from 'node:child_process';
import { cpus, tmpdir } from 'node:os';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { BenchResult } from './result.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BENCHES = ['api', 'pipeline'];

const { values, positionals } = parseArgs({
  options: { baseline: { type: 'string' }, rounds: { type: 'string', default: '2' }, help: { type: 'boolean', short: 'h' } },
  allowPositionals: true,
});
const [bench, ...benchArgs] = positionals;
if (values.help || !values.baseline || !bench || !BENCHES.includes(bench)) {
  console.log(`usage: npm run bench:compare -- --baseline REF [--rounds N] ${BENCHES.join('|')} [-- bench flags]`);
  process.exit(values.help ? 0 : 2);
}
const rounds = Math.max(1, Number(values.rounds));

const git = (...args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8' }).trim();
const sha = git('rev-parse', '--verify', `${values.baseline}^{commit}`);
const short = sha.slice(0, 9);
const head = git('rev-parse', '--short=9', 'HEAD') + (git('status', '--porcelain', '--untracked-files=no') ? ' (with uncommitted changes)' : '');

/** The baseline's checkout with its own dist/, built once per commit. */
function buildBaseline(): string {
  const dir = join(root, '.cache', 'baseline', sha);
  if (existsSync(join(dir, 'dist', 'cli', 'server.js'))) return dir;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  console.log(`building ${short} into ${dir}`);
  execFileSync('bash', ['-c', `git -C "${root}" archive ${sha} | tar -x -C "${dir}"`], { stdio: 'inherit' });
  const sameLock = readFileSync(join(dir, 'package-lock.json'), 'utf8') === readFileSync(join(root, 'package-lock.json'), 'utf8');
  if (sameLock) symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'));
  else execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--ignore-scripts=false'], { cwd: dir, stdio: 'inherit' });
  execFileSync(process.execPath, [join(dir, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', dir], { cwd: dir, stdio: 'inherit' });
  return dir;
}

function runBench(serverRoot: string, label: string, logDir: string, i: number): Promise<BenchResult> {
  const resultFile = join(logDir, `${label}-${i}.json`);
  const logFile = join(logDir, `${label}-${i}.log`);
  return new Promise((res, rej) => {
    const out: Buffer[] = [];
    const p = spawn(process.execPath, [join(root, 'dist', 'bench', `${bench}.js`), ...benchArgs], {
      cwd: root,
      env: { ...process.env, OCM_SERVER_ROOT: serverRoot, BENCH_RESULT_FILE: resultFile, INIT_CWD: root },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => out.push(d));
    p.on('exit', (code) => {
      writeFileSync(logFile, Buffer.concat(out));
      if (code !== 0 || !existsSync(resultFile)) return rej(new Error(`${label} run ${i} exited ${code}; see ${logFile}`));
      res(JSON.parse(readFileSync(resultFile, 'utf8')));
    });
  });
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const baselineDir = buildBaseline();
const logDir = mkdtempSync(join(tmpdir(), `bench-compare-${bench}-`));
const machine = `${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}`;
console.log(`bench ${bench} ${benchArgs.join(' ')}: current ${head} vs baseline ${short}, ${rounds} rounds each, alternating; ${new Date().toISOString()}; ${machine}`);
console.log(`logs in ${logDir}`);
const results: Record<'current' | 'baseline', BenchResult[]> = { current: [], baseline: [] };
for (let i = 0; i < rounds; i++) {
  const order: Array<'current' | 'baseline'> = i % 2 ? ['current', 'baseline'] : ['baseline', 'current'];
  for (const label of order) {
    const t0 = Date.now();
    results[label].push(await runBench(label === 'current' ? root : baselineDir, label, logDir, i));
    console.log(`  round ${i + 1}: ${label} done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  }
}

const names = Object.keys(results.current[0].figures);
const w = Math.max(...names.map((n) => n.length), 6);
console.log(`\n  ${'figure'.padEnd(w)}  ${'baseline'.padStart(10)}  ${'current'.padStart(10)}  current/baseline`);
for (const name of names) {
  const pick = (label: 'current' | 'baseline') => results[label].map((r) => r.figures[name]?.value).filter((v): v is number => typeof v === 'number');
  const b = pick('baseline');
  const c = pick('current');
  if (!b.length || !c.length) {
    console.log(`  ${name.padEnd(w)}  ${'n/a'.padStart(10)}  ${'n/a'.padStart(10)}`);
    continue;
  }
  const mb = median(b);
  const mc = median(c);
  const ratio = mc / mb;
  const better = results.current[0].figures[name].better;
  const verdict = Math.abs(ratio - 1) < 0.1 ? 'same within 10 %' : (ratio > 1) === (better === 'higher') ? 'better' : 'worse';
  console.log(`  ${name.padEnd(w)}  ${mb.toFixed(1).padStart(10)}  ${mc.toFixed(1).padStart(10)}  ${ratio.toFixed(2)}x (${better} is better: ${verdict})`);
}
