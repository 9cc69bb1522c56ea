// The text summary printed on stdout at the end of a run.

import type { RunResult, TargetRun } from './results.js';
import type { Scenario } from './scenario.js';

export function formatFigure(value: number | null | undefined, decimals: number): string {
  if (value == null || !Number.isFinite(value)) return '-';
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

export function formatRatio(value: number | null): string {
  return value == null || !Number.isFinite(value) ? '-' : value.toFixed(2);
}

export function describeLoad(scenario: Scenario): string {
  const model = scenario.rate !== null ? `open model at ${scenario.rate} req/s` : 'closed loop';
  const body = scenario.bodySize > 0 ? ` · ${scenario.bodySize} B body` : '';
  const timing = scenario.soak
    ? `soak to ${scenario.soak.checkpoints.map((n) => n.toLocaleString('en-US')).join(' / ')} requests`
    : `${scenario.durationSec} s measured after ${scenario.warmupSec} s warm-up`;
  return `${scenario.method} ${scenario.path}${body} · ${scenario.connections} connections · pipelining ${scenario.pipelining} · ${model} · ${timing}`;
}

export function describeSetup(result: RunResult): string {
  const { settings, machine } = result;
  const placement = settings.pinned
    ? `driver + upstream + harness on CPU ${settings.driverCpu}, proxy alone on CPU ${settings.proxyCpu}`
    : 'not pinned (--no-pin)';
  const driverVersion = settings.driver === 'wrk' ? machine.wrk ?? 'wrk' : settings.driver === 'websocket' ? 'websocket echo (ws)' : `autocannon ${machine.autocannon}`;
  return `driver ${driverVersion} · upstream ${settings.upstream} · ${placement} · ${settings.rounds} round(s)`;
}

/** " · nginx 1.22.1 · haproxy 2.6.12 · fastify 5.12.8, ..." for the machine line. */
export function peerVersions(result: RunResult): string {
  const { machine } = result;
  return [machine.nginx ? `nginx ${machine.nginx}` : null, machine.haproxy ? `haproxy ${machine.haproxy}` : null, machine.fastify ?? null]
    .filter((part) => part !== null).map((part) => ` · ${part}`).join('');
}

export function renderTextReport(result: RunResult, files: { json: string; html: string } | null): string {
  const { scenario, summary } = result;
  const lines: string[] = [];
  lines.push(`Lobby load test · scenario ${scenario.name}${scenario.description ? ` (${scenario.description})` : ''}`);
  lines.push(describeLoad(scenario));
  lines.push(describeSetup(result));
  lines.push(`${result.machine.cpuModel} · ${result.machine.logicalCpus} CPUs · Linux ${result.machine.kernel} · Node ${result.machine.node}${peerVersions(result)}`);
  lines.push('');

  const targets = summary.targets;
  const showRatio = targets.includes('lobby') && targets.includes('nginx');
  const showPlain = targets.includes('lobby') && targets.includes('lobby-plain');
  const showRef = targets.includes('lobby') && targets.includes('lobby-ref');
  const labelWidth = Math.max(...summary.rows.map((row) => row.label.length), 10) + 2;
  const columnWidth = 14;
  const header = ''.padEnd(labelWidth) + targets.map((target) => target.padStart(columnWidth)).join('') + (showRatio ? 'lobby/nginx'.padStart(columnWidth) : '') +
    (showPlain ? 'lobby/plain'.padStart(columnWidth) : '') + (showRef ? 'lobby/ref'.padStart(columnWidth) : '');
  lines.push(header);
  for (const row of summary.rows) {
    const label = (row.headline ? `${row.label} *` : row.label).padEnd(labelWidth);
    const cells = targets.map((target) => formatFigure(row.values[target], row.decimals).padStart(columnWidth)).join('');
    lines.push(label + cells + (showRatio ? formatRatio(row.ratio).padStart(columnWidth) : '') +
      (showPlain ? formatRatio(row.plainRatio ?? null).padStart(columnWidth) : '') +
      (showRef ? formatRatio(row.refRatio ?? null).padStart(columnWidth) : ''));
  }
  lines.push('');
  const aggregation = result.settings.rounds > 1 ? `medians over ${result.settings.rounds} rounds, counters summed` : 'one round';
  lines.push(`* headline: CPU time of the proxy process per request over the measured window (${aggregation}).`);
  if (result.settings.rounds > 1) {
    for (const target of targets) {
      const perRound = result.runs.filter((run) => run.target === target).map((run) => formatFigure(run.figures.cpu.perRequest.totalUs, 2));
      lines.push(`  ${target} CPU µs/request per round: ${perRound.join('  ')}`);
    }
  }
  if (showRef) lines.push(...refLines(result));
  if (result.assertRatio) {
    lines.push(result.assertRatio.message);
    for (const note of result.assertRatio.notes) lines.push(`  note: ${note}`);
  }
  if (scenario.rate !== null) {
    lines.push('Open model: latency is measured from each request\'s intended send time (coordinated-omission corrected);');
    lines.push('"service time" is from the actual send, as uncorrected tools report it.');
  }

  for (const run of result.runs.filter((candidate) => candidate.soak)) lines.push(...soakLines(run));

  const warnings = result.runs.flatMap((run) => run.figures.warnings.map((warning) => `[round ${run.round} · ${run.target}] ${warning}`));
  if (warnings.length > 0) {
    lines.push('', 'warnings:');
    for (const warning of warnings) lines.push(`  ${warning}`);
  }
  if (result.skipped.length > 0) {
    lines.push('', 'skipped:');
    for (const skipped of result.skipped) lines.push(`  ${skipped.target}: ${skipped.reason}`);
  }
  if (result.failures.length > 0) {
    lines.push('', 'failed:');
    for (const failure of result.failures) lines.push(`  [round ${failure.round} · ${failure.target}] ${failure.error.split('\n').join('\n    ')}`);
  }
  if (files) {
    lines.push('', `results: ${files.json}`, `report:  ${files.html}`);
  }
  return lines.join('\n') + '\n';
}

function soakLines(run: TargetRun): string[] {
  const soak = run.soak!;
  const points = soak.checkpoints.map((checkpoint) => `after ${checkpoint.requests.toLocaleString('en-US')}: ${(checkpoint.rssBytes / 1048576).toFixed(1)} MB`);
  return [
    '',
    `soak · ${run.target} RSS (VmRSS) ${points.join(' · ')}`,
    `  ratio last/first ${soak.rssRatio.toFixed(3)} (limit ${(1 + soak.maxGrowth).toFixed(2)}): ${soak.pass ? 'PASS' : 'FAIL'}`,
  ];
}

/** This checkout against the ref, on the two CPU figures a change is judged by (issue 10: user µs within 3 %). */
function refLines(result: RunResult): string[] {
  const ref = result.settings.ref;
  const name = ref ? `${ref.source}${ref.sha && !ref.sha.startsWith(ref.source) ? ` = ${ref.sha.slice(0, 12)}` : ''}` : 'the ref';
  const lines = [`lobby (this checkout) against lobby-ref (${name}${ref ? `, ${ref.dir}` : ''}):`];
  for (const key of ['userUsPerRequest', 'cpuUsPerRequest']) {
    const row = result.summary.rows.find((candidate) => candidate.key === key);
    if (!row) continue;
    const change = row.refRatio == null ? '' : ` (${row.refRatio >= 1 ? '+' : ''}${((row.refRatio - 1) * 100).toFixed(1)} %)`;
    lines.push(`  ${row.label.trim()}: ${formatFigure(row.values.lobby, row.decimals)} vs ${formatFigure(row.values['lobby-ref'], row.decimals)}, ratio ${formatRatio(row.refRatio ?? null)}${change}`);
  }
  return lines;
}
