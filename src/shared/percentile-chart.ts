// The percentile plot both reports draw: the load-test report (loadtest/report-html.ts) and the
// gateway's live latency report (GET /report, src/control/latency-report.ts). Inline SVG and CSS,
// no scripts: a self-contained page. Drawn like HdrHistogram's plotter, x = 1/(1-p) on a log axis
// (so 90 %, 99 %, 99.9 % ... are evenly spaced), y = latency in ms. Also the arithmetic of that
// axis over an HDR histogram of microseconds.
import type { Histogram } from 'hdr-histogram-js';

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** One point of the percentile distribution: percentile in 0..100, latency in ms. */
export interface DistributionPoint {
  percentile: number;
  latencyMs: number;
}

const MICROS_PER_MS = 1000;

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

export interface ChartSeries {
  name: string;
  color: string;
  dash: string;
  /** Number of latency samples (resolves the last percentile on the x axis). */
  count: number;
  points: DistributionPoint[];
}

interface ChartOptions {
  title: string;
  logY: boolean;
}

const WIDTH = 920;
const HEIGHT = 440;
/** right: room for half the last x tick label ("99.9999%" is centred on the frame's right edge). */
const MARGIN = { left: 70, right: 44, top: 36, bottom: 58 };
const PLOT_WIDTH = WIDTH - MARGIN.left - MARGIN.right;
const PLOT_HEIGHT = HEIGHT - MARGIN.top - MARGIN.bottom;

/** Tick label for a decade of the x axis: 1 → "0%", 10 → "90%", 1000 → "99.9%". */
export function percentileLabel(decade: number): string {
  if (decade === 0) return '0%';
  return `${(100 * (1 - 10 ** -decade)).toFixed(Math.max(0, decade - 2))}%`;
}

function niceStep(range: number, ticks: number): number {
  const raw = range / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const normalized = raw / magnitude;
  const factor = normalized <= 1 ? 1 : normalized <= 2 ? 2 : normalized <= 5 ? 5 : 10;
  return factor * magnitude;
}

function formatMs(value: number): string {
  if (value >= 100) return value.toFixed(0);
  if (value >= 10) return value.toFixed(1);
  if (value >= 1) return value.toFixed(2);
  return value.toPrecision(2);
}

/** The percentile distribution chart as an inline <svg>. */
export function percentileChartSvg(series: readonly ChartSeries[], options: ChartOptions): string {
  const drawable = series.filter((line) => line.points.length > 0);
  const maxDecade = Math.max(1, Math.ceil(Math.max(...drawable.map((line) => Math.log10(Math.max(line.count, 10))), 1)));
  const latencies = drawable.flatMap((line) => line.points.map((point) => point.latencyMs)).filter((ms) => ms > 0);
  const maxMs = latencies.length ? Math.max(...latencies) : 1;
  const minMs = latencies.length ? Math.min(...latencies) : 0.01;

  const xOf = (percentile: number, count: number): number => MARGIN.left + (Math.log10(percentileToX(percentile, count)) / maxDecade) * PLOT_WIDTH;
  let yOf: (ms: number) => number;
  const yTicks: number[] = [];
  if (options.logY) {
    const low = Math.floor(Math.log10(minMs));
    const high = Math.max(low + 1, Math.ceil(Math.log10(maxMs)));
    yOf = (ms) => MARGIN.top + PLOT_HEIGHT - ((Math.log10(Math.max(ms, 10 ** low)) - low) / (high - low)) * PLOT_HEIGHT;
    for (let decade = low; decade <= high; decade++) yTicks.push(10 ** decade);
  } else {
    const step = niceStep(maxMs, 6);
    const top = Math.ceil(maxMs / step) * step;
    yOf = (ms) => MARGIN.top + PLOT_HEIGHT - (ms / top) * PLOT_HEIGHT;
    for (let tick = 0; tick <= top + step / 2; tick += step) yTicks.push(tick);
  }

  const parts: string[] = [svgOpen(options.title)];
  for (let decade = 0; decade <= maxDecade; decade++) {
    const x = MARGIN.left + (decade / maxDecade) * PLOT_WIDTH;
    parts.push(`<line x1="${x.toFixed(1)}" y1="${MARGIN.top}" x2="${x.toFixed(1)}" y2="${MARGIN.top + PLOT_HEIGHT}" class="grid"/>`);
    parts.push(`<text x="${x.toFixed(1)}" y="${MARGIN.top + PLOT_HEIGHT + 18}" text-anchor="middle" class="tick">${percentileLabel(decade)}</text>`);
  }
  parts.push(...yAxis(yTicks, yOf), ...axisLabels('percentile (x = 1/(1-p), log scale; the last point of each line is the maximum)', `latency, ms${options.logY ? ' (log scale)' : ''}`));

  drawable.forEach((line, index) => {
    const coordinates = line.points.map((point) => `${xOf(point.percentile, line.count).toFixed(1)},${yOf(point.latencyMs).toFixed(1)}`).join(' ');
    const dash = line.dash ? ` stroke-dasharray="${line.dash}"` : '';
    parts.push(`<polyline points="${coordinates}" fill="none" stroke="${line.color}" stroke-width="2"${dash} data-series="${escapeHtml(line.name)}"><title>${escapeHtml(line.name)}</title></polyline>`);
    for (const point of line.points.filter((candidate) => [50, 90, 99, 99.9, 100].some((p) => Math.abs(candidate.percentile - p) < 1e-6))) {
      const label = point.percentile === 100 ? 'max' : `p${point.percentile}`;
      parts.push(`<circle cx="${xOf(point.percentile, line.count).toFixed(1)}" cy="${yOf(point.latencyMs).toFixed(1)}" r="3" fill="${line.color}"><title>${escapeHtml(line.name)} ${label}: ${formatMs(point.latencyMs)} ms</title></circle>`);
    }
    parts.push(...legendEntry(line, index));
  });
  parts.push('</svg>');
  return parts.join('\n');
}

function svgOpen(title: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${WIDTH} ${HEIGHT}" width="${WIDTH}" height="${HEIGHT}" role="img" aria-label="${escapeHtml(title)}">\n` +
    `<text x="${WIDTH / 2}" y="20" text-anchor="middle" class="chart-title">${escapeHtml(title)}</text>`;
}

/** Horizontal grid lines with their labels on the left. */
function yAxis(ticks: readonly number[], yOf: (value: number) => number): string[] {
  return ticks.flatMap((tick) => {
    const y = yOf(tick);
    return [`<line x1="${MARGIN.left}" y1="${y.toFixed(1)}" x2="${MARGIN.left + PLOT_WIDTH}" y2="${y.toFixed(1)}" class="grid"/>`,
      `<text x="${MARGIN.left - 8}" y="${(y + 4).toFixed(1)}" text-anchor="end" class="tick">${Number(tick.toPrecision(6))}</text>`];
  });
}

/** Axis titles and the plot frame. */
function axisLabels(xLabel: string, yLabel: string): string[] {
  return [
    `<text x="${MARGIN.left + PLOT_WIDTH / 2}" y="${HEIGHT - 12}" text-anchor="middle" class="axis-label">${escapeHtml(xLabel)}</text>`,
    `<text transform="translate(16 ${MARGIN.top + PLOT_HEIGHT / 2}) rotate(-90)" text-anchor="middle" class="axis-label">${escapeHtml(yLabel)}</text>`,
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${PLOT_WIDTH}" height="${PLOT_HEIGHT}" class="frame"/>`,
  ];
}

function legendEntry(line: { name: string; color: string; dash: string }, index: number): string[] {
  const legendY = MARGIN.top + 16 + index * 18;
  const dash = line.dash ? ` stroke-dasharray="${line.dash}"` : '';
  return [`<line x1="${MARGIN.left + 12}" y1="${legendY - 4}" x2="${MARGIN.left + 40}" y2="${legendY - 4}" stroke="${line.color}" stroke-width="2"${dash}/>`,
    `<text x="${MARGIN.left + 46}" y="${legendY}" class="legend">${escapeHtml(line.name)}</text>`];
}

/** One line of a time-series chart: x = seconds from the start of the measured window. */
export interface TimeSeries {
  name: string;
  color: string;
  dash: string;
  points: Array<{ tSec: number; value: number }>;
}

/** A chart of figures over the measured window (linear axes, y from 0). */
export function timeSeriesChartSvg(series: readonly TimeSeries[], options: { title: string; yLabel: string }): string {
  const drawable = series.filter((line) => line.points.length > 0);
  const values = drawable.flatMap((line) => line.points);
  const maxT = Math.max(1, ...values.map((point) => point.tSec));
  const maxValue = Math.max(...values.map((point) => point.value), 0);
  const xStep = niceStep(maxT, 10);
  const xRight = Math.ceil(maxT / xStep) * xStep;
  const yStep = maxValue > 0 ? niceStep(maxValue, 6) : 1;
  const yTop = Math.max(yStep, Math.ceil(maxValue / yStep) * yStep);
  const xOf = (tSec: number): number => MARGIN.left + (tSec / xRight) * PLOT_WIDTH;
  const yOf = (value: number): number => MARGIN.top + PLOT_HEIGHT - (value / yTop) * PLOT_HEIGHT;

  const parts: string[] = [svgOpen(options.title)];
  for (let tick = 0; tick <= xRight + xStep / 2; tick += xStep) {
    const x = xOf(tick);
    parts.push(`<line x1="${x.toFixed(1)}" y1="${MARGIN.top}" x2="${x.toFixed(1)}" y2="${MARGIN.top + PLOT_HEIGHT}" class="grid"/>`);
    parts.push(`<text x="${x.toFixed(1)}" y="${MARGIN.top + PLOT_HEIGHT + 18}" text-anchor="middle" class="tick">${Number(tick.toPrecision(6))}</text>`);
  }
  const yTicks: number[] = [];
  for (let tick = 0; tick <= yTop + yStep / 2; tick += yStep) yTicks.push(tick);
  parts.push(...yAxis(yTicks, yOf), ...axisLabels('seconds into the measured window', options.yLabel));
  drawable.forEach((line, index) => {
    const coordinates = line.points.map((point) => `${xOf(point.tSec).toFixed(1)},${yOf(point.value).toFixed(1)}`).join(' ');
    const dash = line.dash ? ` stroke-dasharray="${line.dash}"` : '';
    parts.push(`<polyline points="${coordinates}" fill="none" stroke="${line.color}" stroke-width="2"${dash} data-series="${escapeHtml(line.name)}"><title>${escapeHtml(line.name)}</title></polyline>`);
    for (const point of line.points) {
      parts.push(`<circle cx="${xOf(point.tSec).toFixed(1)}" cy="${yOf(point.value).toFixed(1)}" r="2" fill="${line.color}"><title>${escapeHtml(line.name)} at ${point.tSec.toFixed(1)} s: ${Number(point.value.toPrecision(4))}</title></circle>`);
    }
    parts.push(...legendEntry(line, index));
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** The stylesheet of both reports. */
export const REPORT_STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 960px; color: #212529; padding: 0 12px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.meta { color: #495057; margin: 2px 0; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid #dee2e6; text-align: right; font-variant-numeric: tabular-nums; }
th:first-child, td:first-child { text-align: left; }
tr.headline td { font-weight: 600; background: #fff4e6; }
.warn { color: #a61e4d; } .pass { color: #2b8a3e; font-weight: 600; } .fail { color: #c92a2a; font-weight: 600; }
svg { max-width: 100%; height: auto; }
.chart-title { font-size: 15px; font-weight: 600; } .tick { font-size: 11px; fill: #495057; }
.axis-label { font-size: 12px; fill: #343a40; } .legend { font-size: 12px; }
.grid { stroke: #e9ecef; stroke-width: 1; } .frame { fill: none; stroke: #adb5bd; }
code { background: #f1f3f5; padding: 1px 4px; border-radius: 3px; }
`;

