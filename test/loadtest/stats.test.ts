import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { SendSchedule } from '../../loadtest/driver-protocol.js';
import { cpuPerRequest, decodeHistogram, distributionPercentiles, encodeHistogram, histogramDistribution, median, newLatencyHistogram, percentileToX, ratio, summarizeHistogram } from '../../loadtest/stats.js';

describe('loadtest statistics', () => {
  it('summarizes a histogram of microseconds in milliseconds', () => {
    const histogram = newLatencyHistogram();
    for (let us = 1; us <= 10000; us++) histogram.recordValue(us); // 1 µs .. 10 ms, uniform
    const summary = summarizeHistogram(histogram);
    assert.equal(summary.count, 10000);
    // 3 significant digits: values agree within 0.1 %.
    const near = (actual: number, expected: number) => assert.ok(Math.abs(actual - expected) / expected < 0.002, `${actual} ≉ ${expected}`);
    near(summary.p50Ms, 5);
    near(summary.p90Ms, 9);
    near(summary.p99Ms, 9.9);
    near(summary.p999Ms, 9.99);
    near(summary.maxMs, 10);
    near(summary.meanMs, 5.0005);
  });

  it('survives the encode/decode round trip between driver and harness', () => {
    const histogram = newLatencyHistogram();
    for (const value of [120, 340, 560, 5000, 90000]) histogram.recordValue(value);
    const decoded = summarizeHistogram(decodeHistogram(encodeHistogram(histogram)));
    const original = summarizeHistogram(histogram);
    // The decoded maximum is its bucket's highest equivalent value (within the 3-digit precision).
    assert.ok(Math.abs(decoded.maxMs - original.maxMs) / original.maxMs < 0.001);
    assert.deepEqual({ ...decoded, maxMs: 0 }, { ...original, maxMs: 0 });
  });

  it('an empty histogram summarizes to zeros and an empty distribution', () => {
    const histogram = newLatencyHistogram();
    assert.equal(summarizeHistogram(histogram).p99Ms, 0);
    assert.deepEqual(histogramDistribution(histogram), []);
  });

  it('samples the distribution evenly on the 1/(1-p) log axis up to the resolvable rank', () => {
    const percentiles = distributionPercentiles(1000);
    assert.equal(percentiles[0], 0);
    assert.ok(percentiles.includes(90));
    assert.ok(percentiles.includes(99));
    assert.ok(percentiles.includes(99.9));
    assert.ok(!percentiles.some((p) => p > 99.9), 'no percentile beyond what 1000 samples resolve');
    assert.equal(percentiles.length, 31); // 3 decades × 10 points + p0
    for (let i = 1; i < percentiles.length; i++) assert.ok(percentiles[i]! > percentiles[i - 1]!);
    assert.deepEqual(distributionPercentiles(0), []);
  });

  it('ends the plotted distribution with the maximum at 100', () => {
    const histogram = newLatencyHistogram();
    for (let i = 0; i < 100; i++) histogram.recordValue(1000);
    histogram.recordValue(50_000);
    const points = histogramDistribution(histogram);
    assert.deepEqual(points.at(-1), { percentile: 100, latencyMs: histogram.maxValue / 1000 });
    assert.ok(Math.abs(percentileToX(90, 100) - 10) < 1e-9);
    assert.equal(percentileToX(100, 101), 101);
  });

  it('computes ratios only when they mean something', () => {
    assert.equal(ratio(30, 15), 2);
    assert.equal(ratio(0, 0), null);
    assert.equal(ratio(5, 0), null);
    assert.equal(ratio(null, 3), null);
    assert.equal(ratio(3, undefined), null);
    assert.equal(ratio(Number.NaN, 3), null);
  });

  it('takes medians of odd and even counts', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  it('divides CPU time by requests, user and sys separately', () => {
    assert.deepEqual(cpuPerRequest(2_000_000, 8_000_000, 500_000), { totalUs: 20, userUs: 4, systemUs: 16 });
    assert.ok(Number.isNaN(cpuPerRequest(1, 1, 0).totalUs));
  });

  it('spreads open-model sends evenly over connections (wrk2 style)', () => {
    // 1000 req/s over 4 connections: each sends every 4 ms, staggered by 1 ms.
    const schedules = [0, 1, 2, 3].map((index) => new SendSchedule(1000, 4, index, 100));
    const sends = schedules.flatMap((schedule) => [schedule.take(), schedule.take()]).sort((a, b) => a - b);
    assert.deepEqual(sends, [100, 101, 102, 103, 104, 105, 106, 107]);
    assert.equal(schedules[0]!.intervalMs, 4);
  });
});
