// Machine-readable figures of a bench run, for bench/compare.ts: when BENCH_RESULT_FILE is set, the
// bench writes its headline figures there as JSON, each with the direction that is better.
import { writeFileSync } from 'node:fs';

export interface Figure {
  value: number | undefined;
  better: 'higher' | 'lower';
}

export type BenchResult = { bench: string; figures: Record<string, Figure> };

export function writeBenchResult(bench: string, figures: Record<string, Figure>): void {
  const file = process.env.BENCH_RESULT_FILE;
  if (file) writeFileSync(file, JSON.stringify({ bench, figures } satisfies BenchResult));
}
