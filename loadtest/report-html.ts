// A self-contained HTML report (inline SVG and CSS, no scripts from anywhere): the summary table with
// ratios and the latency percentile distribution of every target drawn like HdrHistogram's plotter,
// x = 1/(1-p) on a log axis (so 90 %, 99 %, 99.9 % ... are evenly spaced), y = latency in ms.

import { REPORT_STYLE as STYLE, escapeHtml, percentileChartSvg, timeSeriesChartSvg, type ChartSeries, type TimeSeries } from '../src/shared/percentile-chart.js';
import type { RunResult } from './results.js';
import type { TargetName } from './scenario.js';
// One renderer for both reports: re-exported for the load test's callers.
export { escapeHtml, percentileChartSvg, percentileLabel, timeSeriesChartSvg, type ChartSeries, type TimeSeries } from '../src/shared/percentile-chart.js';
import { describeLoad, describeSetup, formatFigure, formatRatio, peerVersions } from './report-text.js';

const TARGET_COLORS: Record<TargetName, string> = {
  lobby: '#d9480f', nginx: '#1864ab', 'lobby-plain': '#2b8a3e', 'lobby-ref': '#7048e8', fastify: '#000000', haproxy: '#0c8599',
};
const ROUND_DASHES = ['', '8 4', '2 3', '12 3 2 3'];

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
