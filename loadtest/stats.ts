// Latency histograms and the arithmetic of a report: percentiles, the percentile distribution that the
// HTML plot draws, ratios and medians. Latencies are recorded in integer microseconds.

import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;
// The distribution arithmetic lives with the shared chart (src/shared/percentile-chart.ts).
export { distributionPercentiles, histogramDistribution, percentileToX, type DistributionPoint } from '../src/shared/percentile-chart.js';

/**
 * A 3-significant-digit HDR histogram of microseconds (1 µs .. 60 s, resizing beyond). The plain JS
 * 32-bit build records in ~70 ns, well below the ~10 µs a driver spends per request; the faster WASM
 * build would need an async init and explicit destroy() for no visible gain.
 */
export function newLatencyHistogram(): Histogram {
  return hdr.build({
    bitBucketSize: 32,
    lowestDiscernibleValue: 1,
    highestTrackableValue: 60_000_000,
    numberOfSignificantValueDigits: 3,
    autoResize: true,
  });
}

export function encodeHistogram(histogram: Histogram): string {
  return hdr.encodeIntoCompressedBase64(histogram);
}

export function decodeHistogram(base64: string): Histogram {
  return hdr.decodeFromCompressedBase64(base64, 32);
}

/** The percentiles every report names (p50, p90, p99, p99.9). */
export const SUMMARY_PERCENTILES: readonly number[] = [50, 90, 99, 99.9];

export interface LatencySummary {
  count: number;
  meanMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
}

const MICROS_PER_MS = 1000;

export function summarizeHistogram(histogramUs: Histogram): LatencySummary {
  const at = (percentile: number): number => histogramUs.getValueAtPercentile(percentile) / MICROS_PER_MS;
  const count = histogramUs.totalCount;
  return {
    count,
    meanMs: count > 0 ? histogramUs.mean / MICROS_PER_MS : 0,
    p50Ms: count > 0 ? at(50) : 0,
    p90Ms: count > 0 ? at(90) : 0,
    p99Ms: count > 0 ? at(99) : 0,
    p999Ms: count > 0 ? at(99.9) : 0,
    maxMs: count > 0 ? histogramUs.maxValue / MICROS_PER_MS : 0,
  };
}

/** a / b, or null when the ratio is meaningless (missing value, zero denominator, e.g. 0 errors vs 0). */
export function ratio(numerator: number | null | undefined, denominator: number | null | undefined): number | null {
  if (numerator == null || denominator == null || !Number.isFinite(numerator) || !Number.isFinite(denominator)) return null;
  if (denominator === 0) return null;
  return numerator / denominator;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** CPU cost per request, µs: the headline figure. */
export interface CpuPerRequest {
  totalUs: number;
  userUs: number;
  systemUs: number;
}

export function cpuPerRequest(userUs: number, systemUs: number, requests: number): CpuPerRequest {
  if (requests <= 0) return { totalUs: Number.NaN, userUs: Number.NaN, systemUs: Number.NaN };
  return { totalUs: (userUs + systemUs) / requests, userUs: userUs / requests, systemUs: systemUs / requests };
}
