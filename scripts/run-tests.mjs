#!/usr/bin/env node
// Test runner behind `npm test` (package.json runs `npm run build` first).
//
//   npm test                                     # all of dist/test/**/*.test.js
//   npm test -- dist/test/foo.test.js            # one file (globs work too)
//   npm test -- test/foo.test.ts                 # same, mapped to dist/...js
//   npm test -- --grep=name dist/test/x.test.js  # args starting with - go to tap
//   TEST_JOBS=1 TEST_TIMEOUT=600 npm test        # override the defaults
//
// 1. Resolves a kubectl >= 1.30 via scripts/ensure-kubectl.sh and exports it
//    to the tests as $KUBECTL.
// 2. Runs tap 21 with its normal reporter streaming to the terminal:
//      tap run --disable-coverage --jobs=2 --timeout=300 <files...>
//    then, alone (--jobs=1), the files marked `// run-tests: alone` (they
//    measure the event loop, which a neighbouring test would disturb)
//    and captures the runner's raw TAP stream (every test file is a subtest,
//    with its exit code / signal in the file's YAML diagnostics):
//     - stdout is a TTY (reporter `base`): `--reporter=base --output-file=<tmp>`
//     - otherwise (CI, pipes; reporter `tap`): tap's stdout is raw TAP, which
//       is teed to our stdout and parsed as it streams. (--output-file is not
//       used here: with the raw `tap` reporter tap 21 then prints everything
//       to stdout twice.)
// 3. Parses that stream with tap-parser and prints, as the LAST line:
//      N passed, N failed[, N skipped]
//    counting the top-level test points of every test file: each top-level
//    t.test() and each top-level assertion is one; skip/todo points count as
//    skipped. A test file that fails without a failing top-level point
//    (throws at top level, exits non-zero, is killed, times out) or that never
//    reports a result counts as one failure.
// Exit status is 1 if anything failed or if no test ran, else 0.

import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Parser } from 'tap-parser'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
process.chdir(root)

const DEFAULT_GLOB = 'dist/test/**/*.test.js'
const jobs = process.env.TEST_JOBS || '2'
const timeout = process.env.TEST_TIMEOUT || '300'
const tapBin = join(root, 'node_modules', 'tap', 'dist', 'esm', 'run.mjs')

const log = msg => process.stderr.write(`run-tests: ${msg}\n`)

const counts = { passed: 0, failed: 0, skipped: 0 }
const failures = []

/** Print the summary as the very last line and set the exit code. */
function finish() {
  if (failures.length) {
    process.stdout.write('\nFailures:\n' + failures.map(f => `  - ${f}\n`).join(''))
  }
  const total = counts.passed + counts.failed + counts.skipped
  if (total === 0) log('no tests ran')
  process.stdout.write(
    `${counts.passed} passed, ${counts.failed} failed` +
      (counts.skipped ? `, ${counts.skipped} skipped` : '') +
      '\n',
  )
  process.exitCode = counts.failed > 0 || total === 0 ? 1 : 0
}

function fatal(msg) {
  log(msg)
  counts.failed++
  failures.push(msg)
  finish()
  process.exit()
}

// ---- 1. kubectl -----------------------------------------------------------
{
  const kc = spawnSync('bash', [join(root, 'scripts/ensure-kubectl.sh')], {
    stdio: ['ignore', 'pipe', 'inherit'],
    encoding: 'utf8',
  })
  const kubectl = (kc.stdout || '').trim().split('\n').pop()
  if (kc.status !== 0 || !kubectl) {
    fatal(`could not provide kubectl (scripts/ensure-kubectl.sh exited ${kc.status ?? kc.signal})`)
  }
  process.env.KUBECTL = kubectl
  log(`KUBECTL=${kubectl}`)
}

// ---- 2. which files, which reporter ---------------------------------------
const tapFlags = []
const files = []
for (const a of process.argv.slice(2)) {
  if (a.startsWith('-')) tapFlags.push(a)
  else if (/\.[cm]?ts$/.test(a) && !isAbsolute(a) && !a.startsWith('dist/')) {
    // test/foo.test.ts -> dist/test/foo.test.js
    files.push(join('dist', a.replace(/\.([cm]?)ts$/, '.$1js')))
  } else files.push(a)
}
if (files.length === 0) files.push(DEFAULT_GLOB)

// The files tap will run, named the way tap names their subtests.
const listed = spawnSync(process.execPath, [tapBin, 'list', ...tapFlags, ...files], {
  stdio: ['ignore', 'pipe', 'inherit'],
  encoding: 'utf8',
})
const expected = (listed.stdout || '').split('\n').filter(Boolean)
if (expected.length === 0) {
  log(`no test files match: ${files.join(' ')}`)
  finish()
  process.exit()
}

// Reporter: an explicit -R/--reporter wins; else tap's own default
// (base on a TTY, raw tap otherwise).
let reporter = null
for (const f of tapFlags) {
  const m = /^(?:--reporter=|-R)(.+)$/.exec(f)
  if (m) reporter = m[1]
}
const userReporter = reporter !== null
reporter ??= process.stdout.isTTY ? 'base' : 'tap'
const rawMode = reporter === 'tap' || process.env.TAP === '1'

// Files that measure the event loop run after the others, one at a time: on two shared cores a
// neighbouring test's server holds them off the CPU and their stall figures mean nothing. A test
// file asks for this with the line `// run-tests: alone` in its first 2 KiB.
const alone = f => {
  try {
    return readFileSync(f, 'utf8').slice(0, 2048).includes('// run-tests: alone')
  } catch {
    return false
  }
}
const phases = [
  { files: expected.filter(f => !alone(f)), jobs },
  { files: expected.filter(alone), jobs: '1' },
].filter(p => p.files.length)

// ---- 3. run tap, parse the runner's TAP stream ------------------------------
const results = new Map() // file name -> { ok, diag, points }
const expired = new Set()
let bailout = null
let tapCode = 0
let tapSignal = null
for (const phase of phases) {
  const outDir = mkdtempSync(join(tmpdir(), 'run-tests-'))
  const tapOut = join(outDir, 'run.tap')
  const tapArgs = [
    'run',
    '--disable-coverage',
    `--jobs=${phase.jobs}`,
    `--timeout=${timeout}`,
    ...(userReporter ? [] : [`--reporter=${reporter}`]),
    ...(rawMode ? [] : [`--output-file=${tapOut}`]),
    ...tapFlags,
    ...phase.files,
  ]
  log(`tap ${tapArgs.join(' ')}`)
  const parser = new Parser({ passes: true })
  const parsed = new Promise(res => parser.on('complete', res))
  {
    let points = null // top-level points of the file being reported
    parser.on('child', cp => {
      const p = (points = [])
      cp.on('assert', r => p.push(r))
    })
    parser.on('bailout', reason => (bailout = reason || 'bail out'))
    parser.on('assert', r => {
      const filePoints = points ?? []
      points = null
      if (r.name === 'timeout!' && r.diag?.expired) {
        // tap's marker for a file killed on timeout; the file's own result is
        // reported separately. (The next file's result can get lost after it;
        // that file is then caught as "no result" below.)
        expired.add(String(r.diag.expired))
        return
      }
      results.set(r.name, { ok: r.ok, skip: r.skip, todo: r.todo, diag: r.diag, points: filePoints })
    })
  }

  const child = spawn(process.execPath, [tapBin, ...tapArgs], {
    stdio: ['inherit', rawMode ? 'pipe' : 'inherit', 'inherit'],
    env: process.env,
  })
  const forward = sig => child.kill(sig)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, forward)
  if (rawMode) {
    child.stdout.on('data', chunk => {
      process.stdout.write(chunk)
      parser.write(chunk)
    })
  }
  const [code, signal] = await new Promise(res => {
    child.on('error', err => {
      log(`cannot start tap: ${err.message}`)
      res([127, null])
    })
    child.on('close', (code, signal) => res([code, signal]))
  })
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.off(sig, forward)
  if (code !== 0 && tapCode === 0) tapCode = code
  tapSignal ??= signal
  if (!rawMode && existsSync(tapOut)) parser.write(readFileSync(tapOut, 'utf8'))
  parser.end()
  await parsed
  rmSync(outDir, { recursive: true, force: true })
  if (signal) break
}

// ---- 4. count ---------------------------------------------------------------
const names = [...new Set([...expected, ...results.keys()])]
for (const name of names) {
  const r = results.get(name)
  if (!r) {
    counts.failed++
    failures.push(`${name} (no result reported${expired.size ? ' - lost after a runner timeout' : ''})`)
    continue
  }
  let fileFailures = 0
  for (const p of r.points) {
    if (p.skip || p.todo) counts.skipped++
    else if (p.ok) counts.passed++
    else {
      counts.failed++
      fileFailures++
      failures.push(`${name} > ${p.name || `#${p.id}`}`)
    }
  }
  if (r.points.length === 0 && r.ok && (r.skip || r.todo)) {
    counts.skipped++ // whole file skipped (e.g. plan 1..0 # SKIP)
  } else if ((!r.ok || expired.has(name)) && fileFailures === 0) {
    const d = r.diag || {}
    const why =
      expired.has(name) ? `timed out after ${timeout}s`
      : d.signal ? `killed by ${d.signal}`
      : d.exitCode != null ? `exit code ${d.exitCode}`
      : 'failed'
    counts.failed++
    failures.push(`${name} (${why}; no failing test point reported)`)
  }
}
if (bailout && counts.failed === 0) {
  counts.failed++
  failures.push(`bail out: ${bailout}`)
}
// tap failed in a way none of the above accounts for (runner crash, killed,
// config error): still count it, so the summary agrees with the exit status.
if ((tapCode !== 0 || tapSignal) && counts.failed === 0) {
  counts.failed++
  failures.push(`tap exited with ${tapSignal ? `signal ${tapSignal}` : `code ${tapCode}`}`)
}
finish()
