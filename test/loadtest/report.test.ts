import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { escapeHtml, percentileChartSvg, percentileLabel, renderHtmlReport, timeSeries } from '../../loadtest/report-html.js';
import { renderTextReport } from '../../loadtest/report-text.js';
import { assertRatioVerdict, summarizeRuns, type RunResult, type TargetRun, type WindowFigures } from '../../loadtest/results.js';
import { parseScenario, type TargetName } from '../../loadtest/scenario.js';
import { histogramDistribution, newLatencyHistogram, summarizeHistogram } from '../../loadtest/stats.js';

function figures(cpuUs: number, latencyUs: number, requests: number): WindowFigures {
  const histogram = newLatencyHistogram();
  for (let i = 0; i < 1000; i++) histogram.recordValue(latencyUs + i);
  return {
    label: 'measure',
    requests,
    errors: 0,
    timeouts: 0,
    non2xx: 0,
    statusCounts: { 200: requests },
    bytes: requests * 200,
    elapsedSec: 10,
    latency: summarizeHistogram(histogram),
    distribution: histogramDistribution(histogram),
    requestsPerSec: requests / 10,
    windowSec: 10.01,
    cpu: { userUs: requests * cpuUs * 0.25, systemUs: requests * cpuUs * 0.75, perRequest: { totalUs: cpuUs, userUs: cpuUs * 0.25, systemUs: cpuUs * 0.75 }, cores: 0.9 },
    coreLoad: { driverCore: 1, proxyCore: 0.92, otherOnProxyCore: 0.02 },
    rssBytesAfter: 60 * 1048576,
    warnings: [],
  };
}

function run(target: TargetName, round: number, cpuUs: number, latencyUs: number): TargetRun {
  return { target, round, pids: [1], figures: figures(cpuUs, latencyUs, 500_000) };
}

function result(runs: TargetRun[], rounds = 1): RunResult {
  const scenario = parseScenario({ name: 'proxy', description: 'small GET <test>' }, 'proxy.yaml', 'proxy');
  return {
    format: 'lobby-loadtest/1',
    command: 'node dist/loadtest/run.js --scenario proxy',
    startedAt: '2026-11-27T22:00:00.000Z',
    finishedAt: '2026-11-27T22:01:00.000Z',
    scenario,
    settings: { driver: 'autocannon', upstream: 'nginx', pinned: true, driverCpu: 0, proxyCpu: 1, rounds, ports: { lobby: 18080, upstream: 18081, nginx: 18082 }, lobbyConfigFile: null },
    machine: { cpuModel: 'Test CPU', logicalCpus: 2, kernel: '6.1', node: 'v20.20.2', nginx: '1.22.1', wrk: null, autocannon: '9.0.0', clockTicksPerSecond: 100 },
    runs,
    skipped: [],
    failures: [],
    summary: summarizeRuns(['lobby', 'nginx'], runs),
  };
}

describe('loadtest summary and reports', () => {
  it('takes medians over rounds and the lobby/nginx ratio of each figure', () => {
    const runs = [run('lobby', 1, 16, 1000), run('nginx', 1, 14, 900), run('lobby', 2, 18, 1000), run('nginx', 2, 15, 900), run('lobby', 3, 17, 1000), run('nginx', 3, 13, 900)];
    const summary = summarizeRuns(['lobby', 'nginx'], runs);
    const cpu = summary.rows.find((row) => row.key === 'cpuUsPerRequest')!;
    assert.equal(cpu.headline, true);
    assert.equal(cpu.values.lobby, 17);
    assert.equal(cpu.values.nginx, 14);
    assert.equal(cpu.ratio, 17 / 14);
    const requests = summary.rows.find((row) => row.key === 'requests')!;
    assert.equal(requests.values.lobby, 1_500_000, 'counters are summed over rounds');
    assert.equal(summary.rows.find((row) => row.key === 'errors')!.ratio, null, '0 vs 0 errors has no ratio');
    assert.ok(!summary.rows.some((row) => row.key === 'serviceP99Ms'), 'open-model rows are absent in a closed-loop run');
  });

  it('leaves a target that did not run empty instead of failing', () => {
    const summary = summarizeRuns(['lobby', 'nginx'], [run('nginx', 1, 14, 900)]);
    const cpu = summary.rows.find((row) => row.key === 'cpuUsPerRequest')!;
    assert.equal(cpu.values.lobby, null);
    assert.equal(cpu.ratio, null);
  });

  it('prints both targets, the ratio and the headline in the text summary', () => {
    const text = renderTextReport(result([run('lobby', 1, 16, 1000), run('nginx', 1, 14, 900)]), { json: 'a.json', html: 'a.html' });
    assert.match(text, /lobby\s+nginx\s+lobby\/nginx/);
    assert.match(text, /CPU µs\/request \(user\+sys\) \*\s+16\.00\s+14\.00\s+1\.14/);
    assert.match(text, /results: a\.json/);
  });

  it('renders a self-contained HTML report with a series per target', () => {
    const html = renderHtmlReport(result([run('lobby', 1, 16, 1000), run('nginx', 1, 14, 900)]));
    assert.match(html, /^<!DOCTYPE html>/);
    assert.match(html, /<polyline [^>]*data-series="lobby"/);
    assert.match(html, /<polyline [^>]*data-series="nginx"/);
    assert.equal((html.match(/<svg /g) ?? []).length, 2, 'a linear and a log-latency chart');
    assert.match(html, /99\.9%/, 'percentile axis labels');
    assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=|@import|url\(http/i, 'nothing loaded from elsewhere');
    assert.match(html, /small GET &lt;test&gt;/, 'text is escaped');
    // The embedded result is valid JSON.
    const embedded = /<script type="application\/json" id="result">(.*?)<\/script>/s.exec(html);
    assert.ok(embedded);
    assert.equal(JSON.parse(embedded[1]!).scenario.name, 'proxy');
  });

  it('compares lobby with lobby-ref (--ref): values side by side, the lobby/ref ratio, the user and total CPU lines', () => {
    const runs = [run('lobby', 1, 20, 1000), run('lobby-ref', 1, 19, 1000), run('nginx', 1, 14, 900),
      run('nginx', 2, 14, 900), run('lobby-ref', 2, 21, 1000), run('lobby', 2, 22, 1000)];
    const targets: TargetName[] = ['lobby', 'lobby-ref', 'nginx'];
    const withRef: RunResult = {
      ...result(runs, 2),
      settings: { ...result(runs, 2).settings, ref: { source: '44ad0ce', sha: '44ad0ce0123456789abcdef0123456789abcdef0', dir: '/tmp/lobby-loadtest-ref-44ad0ce01234', build: 'now' } },
      summary: summarizeRuns(targets, runs),
    };
    const user = withRef.summary.rows.find((row) => row.key === 'userUsPerRequest')!;
    assert.equal(user.values.lobby, 21 * 0.25);
    assert.equal(user.values['lobby-ref'], 20 * 0.25);
    assert.equal(user.refRatio, 21 / 20);
    assert.equal(user.ratio, 21 / 14, 'lobby/nginx is still there');
    assert.equal(user.plainRatio, undefined, 'no lobby-plain column without that target');

    const text = renderTextReport(withRef, null);
    assert.match(text, /lobby\s+lobby-ref\s+nginx\s+lobby\/nginx\s+lobby\/ref/);
    assert.match(text, /CPU µs\/request \(user\+sys\) \*\s+21\.00\s+20\.00\s+14\.00\s+1\.50\s+1\.05/);
    assert.match(text, /lobby \(this checkout\) against lobby-ref \(44ad0ce, \/tmp\/lobby-loadtest-ref-44ad0ce01234\)/);
    assert.match(text, /user µs\/request: 5\.25 vs 5\.00, ratio 1\.05 \(\+5\.0 %\)/);
    assert.match(text, /CPU µs\/request \(user\+sys\): 21\.00 vs 20\.00, ratio 1\.05 \(\+5\.0 %\)/);
    assert.match(text, /lobby-ref CPU µs\/request per round: 19\.00  21\.00/);

    const html = renderHtmlReport(withRef);
    assert.match(html, /<th>lobby \/ lobby-ref<\/th>/);
    assert.match(html, /<polyline [^>]*data-series="lobby-ref/);
    assert.equal(JSON.parse(/<script type="application\/json" id="result">(.*?)<\/script>/s.exec(html)![1]!).settings.ref.sha.length, 40);
  });

  it('shows the uncorrected service time next to the corrected latency in an open-model run', () => {
    const openRun = (target: TargetName, cpuUs: number, latencyUs: number, serviceUs: number): TargetRun => {
      const measured = run(target, 1, cpuUs, latencyUs);
      const service = newLatencyHistogram();
      for (let i = 0; i < 1000; i++) service.recordValue(serviceUs + i);
      measured.figures.serviceTime = summarizeHistogram(service);
      measured.figures.serviceTimeDistribution = histogramDistribution(service);
      return measured;
    };
    const closed = result([openRun('lobby', 16, 3000, 1000), openRun('nginx', 14, 2000, 900)]);
    const open: RunResult = { ...closed, scenario: { ...closed.scenario, rate: 20000 } };
    const serviceRow = open.summary.rows.find((row) => row.key === 'serviceP99Ms');
    assert.ok(serviceRow, 'service time row present when the driver reported it');
    assert.ok(Math.abs(serviceRow.values.lobby! - 1.99) < 0.005, `lobby service p99 ${serviceRow.values.lobby}`);
    assert.ok(Math.abs(serviceRow.values.nginx! - 1.89) < 0.005, `nginx service p99 ${serviceRow.values.nginx}`);
    assert.equal(serviceRow.ratio, serviceRow.values.lobby! / serviceRow.values.nginx!);
    const p99 = open.summary.rows.find((row) => row.key === 'p99Ms')!;
    assert.ok(Math.abs(p99.values.lobby! - 3.99) < 0.005, 'latency p99 stays the corrected (intended-send) figure');

    const html = renderHtmlReport(open);
    for (const target of ['lobby', 'nginx']) {
      assert.match(html, new RegExp(`<polyline [^>]*data-series="${target}"`));
      assert.match(html, new RegExp(`<polyline [^>]*data-series="${target}, service time \\(uncorrected\\)"`));
    }
    assert.match(html, /Open model at 20000 req\/s/);
    const text = renderTextReport(open, { json: 'a.json', html: 'a.html' });
    assert.match(text, /open model at 20000 req\/s/);
    assert.match(text, /service time p99 ms \(uncorrected\)\s+1\.9\d\d\s+1\.8\d\d\s+1\.05/);
  });

  it('draws one line per round when there are several', () => {
    const html = renderHtmlReport(result([run('lobby', 1, 16, 1000), run('nginx', 1, 14, 900), run('lobby', 2, 16, 1000), run('nginx', 2, 14, 900)], 2));
    assert.match(html, /data-series="lobby \(round 2\)"/);
    assert.match(html, /data-series="nginx \(round 1\)"/);
  });

  it('labels the percentile axis like HdrHistogram plots', () => {
    assert.deepEqual([0, 1, 2, 3, 4, 5].map(percentileLabel), ['0%', '90%', '99%', '99.9%', '99.99%', '99.999%']);
    assert.equal(escapeHtml(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  });

  it('keeps the last percentile label ("99.9999%") inside the chart', () => {
    const points = [{ percentile: 0, latencyMs: 1 }, { percentile: 99.9999, latencyMs: 5 }, { percentile: 100, latencyMs: 6 }];
    const svg = percentileChartSvg([{ name: 'lobby', color: '#000', dash: '', count: 1_000_000, points }], { title: 't', logY: false });
    const width = Number(/viewBox="0 0 (\d+) /.exec(svg)![1]);
    const label = /<text x="([\d.]+)"[^>]*text-anchor="middle" class="tick">99\.9999%<\/text>/.exec(svg);
    assert.ok(label, 'the 99.9999% tick is drawn');
    // .tick is 11 px; a digit or "%" is at most ~0.6 em wide in the sans-serif fonts used; the label is centred on x.
    const halfWidth = ('99.9999%'.length * 11 * 0.6) / 2;
    assert.ok(Number(label[1]) + halfWidth <= width, `label ends at ${Number(label[1]) + halfWidth} > ${width}`);
  });

  it('draws requests/s, p99 latency and proxy CPU over time from the per-second samples (autocannon)', () => {
    const runs = [run('lobby', 1, 16, 1000), run('nginx', 1, 14, 900)];
    for (const [index, measured] of runs.entries()) {
      measured.figures.perSecond = [1, 2, 3].map((t) => ({ tSec: t, durationSec: 1, requests: 40_000 + 1000 * index + t, p50Ms: 1, p99Ms: 2 + t, maxMs: 9 }));
      measured.figures.perSecondSource = 'driver';
      measured.figures.proxyPerSecond = [1, 2, 3].map((t) => ({ tSec: t, durationSec: 1, cores: 0.9 + t / 100, userCores: 0.5 }));
    }
    const withSeconds = result(runs);
    const series = timeSeries(withSeconds);
    assert.deepEqual(series.requestsPerSec.map((line) => line.name), ['lobby', 'nginx']);
    assert.deepEqual(series.requestsPerSec[1]!.points[0], { tSec: 1, value: 41_001 });
    assert.deepEqual(series.p99Ms[0]!.points.map((point) => point.value), [3, 4, 5]);
    assert.deepEqual(series.proxyCores[0]!.points.map((point) => point.value), [0.91, 0.92, 0.93]);
    const html = renderHtmlReport(withSeconds);
    assert.equal((html.match(/<svg /g) ?? []).length, 5, 'two percentile charts and three over time');
    for (const title of ['Requests/s per second', 'Latency p99 per second', 'Proxy CPU per second']) {
      const chart = new RegExp(`<svg [^>]*aria-label="${title}[^"]*">[\\s\\S]*?</svg>`).exec(html);
      assert.ok(chart, `${title} chart`);
      assert.match(chart[0], /<polyline [^>]*data-series="lobby"/);
      assert.match(chart[0], /<polyline [^>]*data-series="nginx"/);
    }
  });

  it('says that wrk gives no latency over time and marks its requests/s as derived from bytes read', () => {
    const runs = [run('lobby', 1, 16, 1000), run('nginx', 1, 14, 900)];
    for (const measured of runs) {
      measured.figures.perSecond = [1, 2].map((t) => ({ tSec: t, durationSec: 1, requests: 50_000, p50Ms: null, p99Ms: null, maxMs: null }));
      measured.figures.perSecondSource = 'wrk-read-bytes';
      measured.figures.proxyPerSecond = [1, 2].map((t) => ({ tSec: t, durationSec: 1, cores: 1, userCores: 0.4 }));
    }
    const wrkResult = result(runs);
    wrkResult.settings = { ...wrkResult.settings, driver: 'wrk' };
    const html = renderHtmlReport(wrkResult);
    assert.equal((html.match(/<svg /g) ?? []).length, 4, 'no p99-over-time chart');
    assert.match(html, /aria-label="Requests\/s per second \(wrk: from its bytes read\)"/);
    assert.match(html, /No latency over time: wrk gives only its whole-window histogram/);
  });

  it('prints the --assert-ratio verdict in both reports', () => {
    const runs = [run('lobby', 1, 28, 1000), run('nginx', 1, 20, 900)];
    const checked = result(runs);
    checked.assertRatio = assertRatioVerdict(checked.summary, 1.3);
    assert.equal(checked.assertRatio.pass, false);
    assert.match(renderTextReport(checked, null), /assert-ratio 1\.3: EXCEEDED, lobby 28\.00 \/ nginx 20\.00 CPU µs\/request = 1\.400 > 1\.3/);
    assert.match(renderHtmlReport(checked), /<p class="fail">assert-ratio 1\.3: EXCEEDED/);
    checked.assertRatio = assertRatioVerdict(checked.summary, 1.5);
    assert.match(renderTextReport(checked, null), /assert-ratio 1\.5: HELD/);
    assert.match(renderHtmlReport(checked), /<p class="pass">assert-ratio 1\.5: HELD/);
  });
});
