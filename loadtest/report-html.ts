// A self-contained HTML report (inline SVG and CSS, no scripts from anywhere): the summary table with
// ratios and the latency percentile distribution of every target drawn like HdrHistogram's plotter,
// x = 1/(1-p) on a log axis (so 90 %, 99 %, 99.9 % ... are evenly spaced), y = latency in ms.

import type { DistributionPoint } from './stats.js';
import { percentileToX } from './stats.js';
import type { RunResult } from './results.js';
import type { TargetName } from './scenario.js';
import { describeLoad, describeSetup, formatFigure, formatRatio, peerVersions } from './report-text.js';

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

const TARGET_COLORS: Record<TargetName, string> = {
  lobby: '#d9480f', nginx: '#1864ab', 'lobby-plain': '#2b8a3e', 'lobby-ref': '#7048e8', fastify: '#000000', haproxy: '#0c8599',
};
const ROUND_DASHES = ['', '8 4', '2 3', '12 3 2 3'];

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

/** The per-second series of every target and round: requests/s and p99 from the driver, cores from the proxy's /proc. */
export function timeSeries(result: RunResult): { requestsPerSec: TimeSeries[]; p99Ms: TimeSeries[]; proxyCores: TimeSeries[] } {
  const multipleRounds = result.settings.rounds > 1;
  const out = { requestsPerSec: [] as TimeSeries[], p99Ms: [] as TimeSeries[], proxyCores: [] as TimeSeries[] };
  for (const run of result.runs) {
    const style = { name: multipleRounds ? `${run.target} (round ${run.round})` : run.target, color: TARGET_COLORS[run.target], dash: ROUND_DASHES[(run.round - 1) % ROUND_DASHES.length]! };
    const seconds = run.figures.perSecond ?? [];
    out.requestsPerSec.push({ ...style, points: seconds.filter((second) => second.durationSec > 0).map((second) => ({ tSec: second.tSec, value: second.requests / second.durationSec })) });
    out.p99Ms.push({ ...style, points: seconds.filter((second) => second.p99Ms !== null).map((second) => ({ tSec: second.tSec, value: second.p99Ms! })) });
    out.proxyCores.push({ ...style, points: (run.figures.proxyPerSecond ?? []).map((second) => ({ tSec: second.tSec, value: second.cores })) });
  }
  for (const key of Object.keys(out) as Array<keyof typeof out>) out[key] = out[key].filter((line) => line.points.length > 0);
  return out;
}

/** One line per target and round, plus the uncorrected service time in open-model runs. */
export function chartSeries(result: RunResult): ChartSeries[] {
  const series: ChartSeries[] = [];
  const multipleRounds = result.settings.rounds > 1;
  for (const run of result.runs) {
    const dash = ROUND_DASHES[(run.round - 1) % ROUND_DASHES.length]!;
    const name = multipleRounds ? `${run.target} (round ${run.round})` : run.target;
    series.push({ name, color: TARGET_COLORS[run.target], dash, count: run.figures.latency.count, points: run.figures.distribution });
    if (run.figures.serviceTimeDistribution) {
      series.push({ name: `${name}, service time (uncorrected)`, color: TARGET_COLORS[run.target], dash: '1 4', count: run.figures.latency.count, points: run.figures.serviceTimeDistribution });
    }
  }
  return series;
}

const STYLE = `
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

export function renderHtmlReport(result: RunResult): string {
  const { scenario, summary } = result;
  const targets = summary.targets;
  const showRatio = targets.includes('lobby') && targets.includes('nginx');
  const showPlain = targets.includes('lobby') && targets.includes('lobby-plain');
  const showRef = targets.includes('lobby') && targets.includes('lobby-ref');
  const html: string[] = [];
  html.push('<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
    `<title>Lobby load test · ${escapeHtml(scenario.name)} · ${escapeHtml(result.startedAt)}</title>`,
    `<style>${STYLE}</style></head><body>`);
  html.push(`<h1>Lobby load test · ${escapeHtml(scenario.name)}</h1>`);
  if (scenario.description) html.push(`<p class="meta">${escapeHtml(scenario.description)}</p>`);
  html.push(`<p class="meta">${escapeHtml(describeLoad(scenario))}</p>`);
  html.push(`<p class="meta">${escapeHtml(describeSetup(result))}</p>`);
  html.push(`<p class="meta">${escapeHtml(`${result.machine.cpuModel} · ${result.machine.logicalCpus} CPUs · Linux ${result.machine.kernel} · Node ${result.machine.node}${peerVersions(result)} · ${result.startedAt}`)}</p>`);
  html.push(`<p class="meta">command: <code>${escapeHtml(result.command)}</code></p>`);

  html.push('<h2>Summary</h2><table><thead><tr><th>figure</th>');
  for (const target of targets) html.push(`<th>${escapeHtml(target)}</th>`);
  if (showRatio) html.push('<th>lobby / nginx</th>');
  if (showPlain) html.push('<th>lobby / lobby-plain</th>');
  if (showRef) html.push('<th>lobby / lobby-ref</th>');
  html.push('</tr></thead><tbody>');
  for (const row of summary.rows) {
    html.push(`<tr${row.headline ? ' class="headline"' : ''}><td>${escapeHtml(row.label.trim())}</td>`);
    for (const target of targets) html.push(`<td>${escapeHtml(formatFigure(row.values[target], row.decimals))}</td>`);
    if (showRatio) html.push(`<td>${escapeHtml(formatRatio(row.ratio))}</td>`);
    if (showPlain) html.push(`<td>${escapeHtml(formatRatio(row.plainRatio ?? null))}</td>`);
    if (showRef) html.push(`<td>${escapeHtml(formatRatio(row.refRatio ?? null))}</td>`);
    html.push('</tr>');
  }
  html.push('</tbody></table>');
  html.push(`<p class="meta">Headline: CPU time (utime + stime from /proc/PID/stat) of the proxy process over the measured window, divided by the requests served in it.${result.settings.rounds > 1 ? ` Medians over ${result.settings.rounds} rounds; counters summed.` : ''}</p>`);

  if (result.assertRatio) {
    html.push(`<p class="${result.assertRatio.pass ? 'pass' : 'fail'}">${escapeHtml(result.assertRatio.message)}</p>`);
    for (const note of result.assertRatio.notes) html.push(`<p class="meta warn">${escapeHtml(note)}</p>`);
  }

  const series = chartSeries(result).filter((line) => line.points.length > 0);
  if (series.length > 0) {
    html.push('<h2>Latency by percentile</h2>');
    if (scenario.rate !== null) {
      html.push(`<p class="meta">Open model at ${scenario.rate} req/s: solid lines measure from each request's intended send time (coordinated omission corrected); dotted lines from the actual send.</p>`);
    }
    html.push(percentileChartSvg(series, { title: `Latency percentile distribution · ${scenario.name}`, logY: false }));
    html.push(percentileChartSvg(series, { title: 'Same, latency on a log scale', logY: true }));
  }

  const overTime = timeSeries(result);
  if (overTime.requestsPerSec.length + overTime.p99Ms.length + overTime.proxyCores.length > 0) {
    html.push('<h2>Over time</h2>');
    const wrkEstimate = result.runs.some((run) => run.figures.perSecondSource === 'wrk-read-bytes');
    if (overTime.requestsPerSec.length > 0) {
      if (wrkEstimate) {
        html.push('<p class="meta">wrk reports nothing until it ends: its requests/s per second are its bytes read per second (<code>/proc/PID/io</code> rchar) times its requests per byte over the window.</p>');
      }
      html.push(timeSeriesChartSvg(overTime.requestsPerSec, { title: `Requests/s per second${wrkEstimate ? ' (wrk: from its bytes read)' : ''}`, yLabel: 'requests/s' }));
    }
    if (overTime.p99Ms.length > 0) {
      html.push(timeSeriesChartSvg(overTime.p99Ms, { title: 'Latency p99 per second', yLabel: 'latency p99, ms' }));
    } else {
      html.push(`<p class="meta">No latency over time: ${result.settings.driver === 'wrk' ? 'wrk gives only its whole-window histogram (its Lua response() hook would slow it down); use --driver autocannon for latency per second' : 'the driver reported no per-second latency'}.</p>`);
    }
    if (overTime.proxyCores.length > 0) {
      html.push(timeSeriesChartSvg(overTime.proxyCores, { title: 'Proxy CPU per second (/proc/PID/stat)', yLabel: 'cores busy' }));
    }
  }

  const soakRuns = result.runs.filter((run) => run.soak);
  if (soakRuns.length > 0) {
    html.push('<h2>Soak: resident memory</h2><table><thead><tr><th>target</th><th>requests served</th><th>VmRSS MB</th><th>CPU µs/request in segment</th></tr></thead><tbody>');
    for (const run of soakRuns) {
      for (const checkpoint of run.soak!.checkpoints) {
        html.push(`<tr><td>${escapeHtml(run.target)}</td><td>${checkpoint.requests.toLocaleString('en-US')}</td><td>${(checkpoint.rssBytes / 1048576).toFixed(1)}</td><td>${formatFigure(checkpoint.figures.cpu.perRequest.totalUs, 2)}</td></tr>`);
      }
    }
    html.push('</tbody></table>');
    for (const run of soakRuns) {
      const soak = run.soak!;
      html.push(`<p>${escapeHtml(run.target)}: RSS last/first = ${soak.rssRatio.toFixed(3)} (limit ${(1 + soak.maxGrowth).toFixed(2)}) <span class="${soak.pass ? 'pass' : 'fail'}">${soak.pass ? 'PASS' : 'FAIL'}</span></p>`);
    }
  }

  html.push('<h2>Runs</h2><table><thead><tr><th>round · target</th><th>requests</th><th>req/s</th><th>CPU µs/req</th><th>user</th><th>sys</th><th>p99 ms</th><th>proxy cores</th><th>core load (driver / proxy / other on proxy)</th></tr></thead><tbody>');
  for (const run of result.runs) {
    const f = run.figures;
    const load = f.coreLoad ? `${(f.coreLoad.driverCore * 100).toFixed(0)}% / ${(f.coreLoad.proxyCore * 100).toFixed(0)}% / ${(f.coreLoad.otherOnProxyCore * 100).toFixed(0)}%` : '-';
    html.push(`<tr><td>${run.round} · ${escapeHtml(run.target)}</td><td>${f.requests.toLocaleString('en-US')}</td><td>${formatFigure(f.requestsPerSec, 0)}</td>` +
      `<td>${formatFigure(f.cpu.perRequest.totalUs, 2)}</td><td>${formatFigure(f.cpu.perRequest.userUs, 2)}</td><td>${formatFigure(f.cpu.perRequest.systemUs, 2)}</td>` +
      `<td>${formatFigure(f.latency.p99Ms, 3)}</td><td>${formatFigure(f.cpu.cores, 2)}</td><td>${load}</td></tr>`);
  }
  html.push('</tbody></table>');

  const warnings = result.runs.flatMap((run) => run.figures.warnings.map((warning) => `round ${run.round} · ${run.target}: ${warning}`));
  const notes = [
    ...warnings,
    ...result.skipped.map((skipped) => `skipped ${skipped.target}: ${skipped.reason}`),
    ...result.failures.map((failure) => `failed round ${failure.round} · ${failure.target}: ${failure.error}`),
  ];
  if (notes.length > 0) {
    html.push('<h2>Warnings</h2><ul>');
    for (const note of notes) html.push(`<li class="warn">${escapeHtml(note)}</li>`);
    html.push('</ul>');
  }
  // The full result, for anyone who wants to re-plot or diff without the JSON file. '<' is escaped so
  // no string in it can close the script element.
  html.push(`<script type="application/json" id="result">${JSON.stringify(result).replace(/</g, '\\u003c')}</script>`);
  html.push('</body></html>');
  return html.join('\n') + '\n';
}
