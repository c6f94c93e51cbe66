// The fuzzers' invariants (issue 15), shared by test/fuzz-endpoints.test.ts, test/fuzz-upstream.test.ts
// and bench/chaos.ts: what every answer of the API and of the snapshot registry must look like, and
// the README's bounds on the server's event-loop stall and resident memory, read from its /metrics.

/** The README's bound on the event loop (FUZZ_MAX_STALL_MS overrides it): the fuzzers run alone (scripts/run-tests.mjs), not beside other suites. */
export const MAX_STALL_S = Number(process.env.FUZZ_MAX_STALL_MS ?? 100) / 1000;
/** The README's memory bound. */
export const MAX_RSS = 1536 << 20;

export interface Answer {
  status: number;
  text: string;
}

/** The API's answer: a 2xx object or a 4xx Status; never a 5xx, never a dropped connection. */
export function apiProblem(r: Answer): string | undefined {
  if (r.status < 0 || r.status >= 500) return `${r.status}: ${r.text.slice(0, 300)}`;
  let body: any;
  try {
    body = JSON.parse(r.text);
  } catch {
    return `${r.status} with a body that is not JSON: ${r.text.slice(0, 200)}`;
  }
  if (r.status >= 400) {
    if (body.kind !== 'Status' || body.code !== r.status || typeof body.reason !== 'string' || typeof body.message !== 'string') return `${r.status} without a Status: ${r.text.slice(0, 200)}`;
  } else if (typeof body.kind !== 'string') return `${r.status} without an object: ${r.text.slice(0, 200)}`;
  return undefined;
}

/** The registry's answer: never a 5xx; a 4xx carries the distribution spec's error body (HEAD none). */
export function registryProblem(method: string, r: Answer): string | undefined {
  if (r.status < 0 || r.status >= 500) return `${r.status}: ${r.text.slice(0, 300)}`;
  if (r.status >= 400 && method !== 'HEAD') {
    try {
      const body = JSON.parse(r.text);
      if (!Array.isArray(body.errors) || !body.errors.every((e: any) => typeof e.code === 'string')) return `${r.status} without OCI errors: ${r.text.slice(0, 200)}`;
    } catch {
      return `${r.status} with a body that is not JSON: ${r.text.slice(0, 200)}`;
    }
  }
  return undefined;
}

/** One sample of a Prometheus text exposition (NaN when absent). */
export function metricValue(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}
