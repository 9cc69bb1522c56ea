// Shared bits of the native benches: the row shape every bench returns, the runner that
// turns a tinybench Bench into rows, and the table printer. Each bench file exports
// `run()` so `npm run bench` (run-all.ts) can print one table for all of them.
import { pathToFileURL } from 'node:url';
import { Bench } from 'tinybench';

export interface BenchRow {
  bench: string;
  case: string;
  opsPerSec: number;
}

/**
 * Runs the tasks of `bench` and returns one row per task. ops/s comes from the median call
 * latency: other processes on a shared machine show up as outliers, not as a shift.
 */
export async function collectRows(name: string, bench: Bench, opsPerCall = 1): Promise<BenchRow[]> {
  await bench.run();
  return bench.tasks.map((task) => {
    const result = task.result;
    if (result.state !== 'completed') throw new Error(`${name} ${task.name}: ${result.state}`);
    return { bench: name, case: task.name, opsPerSec: (opsPerCall * 1000) / result.latency.p50 };
  });
}

export function printRows(rows: readonly BenchRow[]): void {
  const width = Math.max(...rows.map((r) => r.case.length), 10);
  for (const r of rows) {
    console.log(`${r.bench.padEnd(16)} ${r.case.padEnd(width)} ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(14)} ops/s`);
  }
}

/** The ratio of two rows' ops/s, as text for a summary line. */
export function ratio(rows: readonly BenchRow[], a: string, b: string): string {
  const ra = rows.find((r) => r.case === a);
  const rb = rows.find((r) => r.case === b);
  if (!ra || !rb || rb.opsPerSec === 0) return 'n/a';
  return (ra.opsPerSec / rb.opsPerSec).toFixed(2);
}

/**
 * Runs `main` when the module at `moduleUrl` (pass `import.meta.url`) is the script Node was
 * started with, so a bench file both exports `run()` for run-all.ts and runs alone.
 */
export async function runWhenMain(moduleUrl: string, main: () => Promise<void>): Promise<void> {
  if (process.argv[1] && moduleUrl === pathToFileURL(process.argv[1]).href) await main();
}
