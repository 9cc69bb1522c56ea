// The drivers' per-second samples for the report's time series: requests and latency
// percentiles of each ~1 s slice, from a histogram reset every sample. Both in-process drivers
// (driver-autocannon.ts, driver-websocket.ts) record into it; wrk's come from its own output.
import { newLatencyHistogram } from './stats.js';
import type { SecondSample } from './driver-protocol.js';

/** A slice shorter than this (the last one, cut by the end of the window) is not a sample. */
const MIN_SAMPLE_SEC = 0.5;

export class PerSecondSampler {
  readonly samples: SecondSample[] = [];
  /** This slice's latencies, µs: the driver records every response here and in its total. */
  readonly latency = newLatencyHistogram();
  private startedAt = 0;
  private sliceStartedAt = 0;
  private sliceStartRequests = 0;

  /** The window starts now (performance.now() ms). */
  start(now: number): void {
    this.startedAt = now;
    this.sliceStartedAt = now;
  }

  /** Closes the slice at `requests` counted so far (called every ~second and at the end). */
  take(requests: number): void {
    const now = performance.now();
    const durationSec = (now - this.sliceStartedAt) / 1000;
    if (durationSec < MIN_SAMPLE_SEC) return;
    const slice = this.latency;
    const has = slice.totalCount > 0;
    this.samples.push({
      tSec: (now - this.startedAt) / 1000, durationSec, requests: requests - this.sliceStartRequests,
      p50Ms: has ? slice.getValueAtPercentile(50) / 1000 : null,
      p99Ms: has ? slice.getValueAtPercentile(99) / 1000 : null,
      maxMs: has ? slice.maxValue / 1000 : null,
    });
    slice.reset();
    this.sliceStartedAt = now;
    this.sliceStartRequests = requests;
  }
}
