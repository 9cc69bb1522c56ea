// A worker's own health figures, written into its stats block (WorkerBoot.workerStats) once a
// second for the control plane to read at scrape time: the event-loop delay (mean, p99, max of
// the last second, from perf_hooks' histogram; a busy worker shows it first).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { WORKER_STATS } from '../shared/metrics-layout.js';

export function startWorkerStats(sab: SharedArrayBuffer): void {
  const view = new Float64Array(sab);
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  setInterval(() => {
    // The histogram is in nanoseconds; it holds NaN-free zeros until its first sample.
    view[WORKER_STATS.LAG_MEAN] = (Number.isFinite(delay.mean) ? delay.mean : 0) / 1e9;
    view[WORKER_STATS.LAG_P99] = delay.percentile(99) / 1e9;
    view[WORKER_STATS.LAG_MAX] = delay.max / 1e9;
    delay.reset();
  }, 1000).unref();
}
