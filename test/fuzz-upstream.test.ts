// run-tests: alone (it measures the event loop; see scripts/run-tests.mjs)
// Hostile upstream registries, fuzzed (issue 15): test/helpers/hostile-registry.ts serves OCM
// component versions made hostile from a seeded PRNG (descriptors, manifests, configs, blobs and
// the transport itself), and an OCMComponent and a Source read each one. Asserted
// (test/helpers/upstream-fuzz.ts): no 5xx and every error a Status from the API meanwhile; every
// OCMComponent of corrupted content Ready=False with a reason (never Ready=True, never verified),
// every Source likewise, each within FUZZ_UPSTREAM_BOUND_MS; no condition showing a program error;
// nothing written downstream of them; the event-loop stall and RSS within the README's bounds; the
// process alive; a canary unchanged; and the same after a restart with the poisoned objects in
// place. Fixed seed plus REGRESSIONS; `npm run bench:chaos` runs it longer (--upstream-seed, ...).
import t from 'tap';
import { MAX_STALL_S } from './helpers/invariants.js';
import { type Regression, runUpstreamFuzz } from './helpers/upstream-fuzz.js';

const SEED = Number(process.env.FUZZ_UPSTREAM_SEED ?? 15);
const CASES = Number(process.env.FUZZ_UPSTREAM_CASES ?? 24);
// All cases settled in 7.3 to 10.9 s with the 3 s stall timeout below (14.6 s with the shared
// machine at a load of 14); 17.0 to 20.7 s while reads retried a stall inside the request (4 stall
// timeouts per drip), when the bound was 45 s. test/upstream-faults.test.ts asserts the drip itself.
const BOUND_MS = Number(process.env.FUZZ_UPSTREAM_BOUND_MS ?? 20_000);
const ONLY = process.env.FUZZ_UPSTREAM_ONLY; // one family of cases (debugging)

/** Inputs that broke an invariant once, each run every time. */
export const REGRESSIONS: Regression[] = [
  { i: 1000, seed: 10, only: 'hostile resource', found: 'a blob dripping a byte every 500 ms held its OCMComponent without a condition for 88 s (no low-speed limit; now cut after --upstream-stall-timeout)' },
  { i: 1001, seed: 7, only: 'hostile resource', found: 'an endless blob was read to 1 GiB in memory (RSS 1.4 GiB; two at once are past the 1.5 GiB bound); now cut at the size its layer declares (DigestMismatch), and the memory budget bounds it too' },
  { i: 1005, seed: 5, only: 'hostile resource', found: 'a second endless blob at the same time' },
  { i: 1010, seed: 2, only: 'hostile resource', found: 'not a failure: a blob honest while the OCMComponent checks it, then endless for the Source (DigestMismatch at its declared size)' },
  { i: 1011, seed: 18, only: 'hostile resource', found: 'not a failure: the same, dripping for the Source (cut by --upstream-stall-timeout)' },
  { i: 1002, seed: 9, only: 'hostile transport', found: 'tags/list paging forever: RSS 4.2 GiB, a 1.2 s stall, no condition; now at most 10,000 tags, 1 MiB over all pages' },
  { i: 1003, seed: 8, only: 'hostile transport', found: '10,000 tags sorted with a semver parse in every comparison held the event loop 0.2 to 0.7 s' },
  { i: 1004, seed: 15, only: 'hostile transport', found: 'a manifest dripping a byte a second' },
  { i: 1008, seed: 4, only: 'hostile config', found: 'a descriptor layer digest of 5 in the OCM config: FetchFailed "digest.split is not a function" (a program error as the reason); now InvalidComponentVersion' },
  { i: 1006, seed: 6, only: 'wide descriptor', found: '20,000 resources (2 MiB of JSON) held the event loop 2.1 s in the YAML parser before the element limit refused them; now parsed in a worker thread' },
];

t.test(`${CASES} hostile component versions (seed ${SEED}) and ${REGRESSIONS.length} regression cases`, async (t) => {
  const opts = { seed: SEED, cases: CASES, boundMs: BOUND_MS, only: ONLY, regressions: ONLY ? [] : REGRESSIONS, serverArgs: ['--upstream-stall-timeout', '3s'], log: (s: string) => t.comment(s) };
  const r = await runUpstreamFuzz(opts);
  for (const c of r.cases) {
    const o = r.outcomes.get(c.i);
    t.comment(`c${c.i} ${c.expect} ${c.what}: OCMComponent ${o?.component}, Source ${o?.source}${o?.ms ? ` after ${o.ms} ms` : ''}`);
  }
  for (const w of r.slowest) t.comment(`stall ${w.ms.toFixed(0)} ms at ${w.at} ms, serving ${w.served.join(', ')}`);
  t.comment(`event-loop stall ${r.stallMs.toFixed(0)} ms, RSS ${r.rssMiB.toFixed(0)} MiB, ${r.requests} requests to the hostile registry`);
  t.same(r.problems, [], 'no invariant broken');
  // The stall bound (with slack for the shared machine); a run over it is repeated once, and fails only if over it again.
  const again = r.stallMs > MAX_STALL_S * 1000 ? await runUpstreamFuzz({ ...opts, restart: false }) : undefined;
  if (again) t.comment(`the longest stall was ${r.stallMs.toFixed(0)} ms; the same run again: ${again.stallMs.toFixed(0)} ms`);
  t.ok(Math.min(r.stallMs, again?.stallMs ?? Infinity) <= MAX_STALL_S * 1000, `the longest event-loop stall ${r.stallMs.toFixed(0)} ms${again ? `, then ${again.stallMs.toFixed(0)} ms` : ''} (bound ${MAX_STALL_S * 1000} ms)`);
});
