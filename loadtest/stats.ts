// Latency histograms and the arithmetic of a report: percentiles, the percentile distribution that the
// HTML plot draws, ratios and medians. Latencies are recorded in integer microseconds.

import * as hdr from 'hdr-histogram-js';

export type Histogram = hdr.Histogram;

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

/** One point of the percentile distribution: percentile in 0..100, latency in ms. */
export interface DistributionPoint {
  percentile: number;
  latencyMs: number;
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

/** Points per decade of 1/(1-p) in the plotted distribution (HdrHistogram's plotter uses a similar density). */
const POINTS_PER_DECADE = 10;

/**
 * Percentiles (0..100) at which to sample a distribution of `count` values: evenly spaced on the log axis
 * x = 1/(1-p), from x = 1 (p = 0) up to x = count, the last rank the data can resolve. The maximum is added
 * separately by the caller because it has no finite x.
 */
export function distributionPercentiles(count: number): number[] {
  const percentiles: number[] = [];
  if (count < 1) return percentiles;
  const lastDecade = Math.log10(Math.max(count, 1));
  for (let step = 0; step / POINTS_PER_DECADE <= lastDecade + 1e-9; step++) {
    const x = 10 ** (step / POINTS_PER_DECADE);
    percentiles.push(roundPercentile(100 * (1 - 1 / x)));
  }
  return percentiles;
}

function roundPercentile(percentile: number): number {
  return Math.round(percentile * 1e7) / 1e7;
}

/** The percentile distribution of a microsecond histogram, ending with the maximum at 100. */
export function histogramDistribution(histogramUs: Histogram): DistributionPoint[] {
  const count = histogramUs.totalCount;
  if (count === 0) return [];
  const points = distributionPercentiles(count).map((percentile) => ({
    percentile,
    latencyMs: histogramUs.getValueAtPercentile(percentile) / MICROS_PER_MS,
  }));
  points.push({ percentile: 100, latencyMs: histogramUs.maxValue / MICROS_PER_MS });
  return points;
}

/** x coordinate of a percentile on the HdrHistogram-style axis: 1/(1-p); the maximum maps to `count`. */
export function percentileToX(percentile: number, count: number): number {
  if (percentile >= 100) return Math.max(count, 1);
  return 1 / (1 - percentile / 100);
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
