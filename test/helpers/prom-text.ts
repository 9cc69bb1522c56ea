// A strict parser of the Prometheus text exposition format (version 0.0.4), for tests. No npm
// package parses it (prom-client only writes it), so this follows the format's spec
// (prometheus.io/docs/instrumenting/exposition_formats) and refuses what Prometheus would:
// bad metric or label names, bad escapes, unparsable values, a sample before its family's TYPE,
// duplicate series, a histogram whose buckets are not cumulative or whose +Inf differs from _count.
// Tests use it together with `promtool check metrics` (Prometheus' own parser and linter).
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { waitUntil } from './admin.js';

export interface Sample { name: string; labels: Record<string, string>; value: number }
export interface MetricFamily { name: string; type: string; help: string; samples: Sample[] }

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

/** Values as Prometheus reads them (Go's strconv.ParseFloat: NaN and Inf in any case; prom-client writes "Nan"). */
function parseValue(text: string, line: number): number {
  if (/^\+?inf(inity)?$/i.test(text)) return Infinity;
  if (/^-inf(inity)?$/i.test(text)) return -Infinity;
  if (/^nan$/i.test(text)) return NaN;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text)) throw new Error(`line ${line}: value ${JSON.stringify(text)} is not a float`);
  return Number(text);
}

function parseLabels(text: string, line: number): Record<string, string> {
  const labels: Record<string, string> = {};
  let i = 0;
  while (i < text.length) {
    const eq = text.indexOf('=', i);
    if (eq < 0) throw new Error(`line ${line}: label without '='`);
    const name = text.slice(i, eq);
    if (!LABEL_NAME.test(name)) throw new Error(`line ${line}: bad label name ${JSON.stringify(name)}`);
    if (text[eq + 1] !== '"') throw new Error(`line ${line}: label value must be quoted`);
    let value = '';
    let j = eq + 2;
    for (;;) {
      if (j >= text.length) throw new Error(`line ${line}: unterminated label value`);
      const c = text[j];
      if (c === '\\') {
        const n = text[j + 1];
        if (n === 'n') value += '\n'; else if (n === '\\') value += '\\'; else if (n === '"') value += '"';
        else throw new Error(`line ${line}: bad escape \\${n}`);
        j += 2;
      } else if (c === '"') { j++; break; } else { value += c; j++; }
    }
    if (Object.hasOwn(labels, name)) throw new Error(`line ${line}: label ${name} twice`);
    labels[name] = value;
    if (text[j] === ',') j++;
    else if (j !== text.length) throw new Error(`line ${line}: expected ',' after a label`);
    i = j;
  }
  return labels;
}

/** Parses an exposition; throws with the line number on anything Prometheus would refuse. */
export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  const seen = new Set<string>();
  const familyOf = (sampleName: string): MetricFamily | undefined => {
    const direct = families.get(sampleName);
    if (direct) return direct;
    for (const suffix of ['_bucket', '_sum', '_count']) {
      if (sampleName.endsWith(suffix)) {
        const f = families.get(sampleName.slice(0, -suffix.length));
        if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
      }
    }
    return undefined;
  };
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    if (raw === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw);
      if (!m) return; // a comment
      const [, kind, name, rest] = m;
      if (!METRIC_NAME.test(name)) throw new Error(`line ${line}: bad metric name ${JSON.stringify(name)}`);
      let f = families.get(name);
      if (!f) { f = { name, type: 'untyped', help: '', samples: [] }; families.set(name, f); }
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`line ${line}: bad type ${JSON.stringify(rest)}`);
        if (f.samples.length > 0) throw new Error(`line ${line}: TYPE of ${name} after its samples`);
        f.type = rest;
      } else f.help = rest;
      return;
    }
    const m = /^([^{\s]+)(?:\{(.*)\})? (\S+)( -?\d+)?$/.exec(raw);
    if (!m) throw new Error(`line ${line}: not a sample: ${JSON.stringify(raw)}`);
    const [, name, labelText, valueText] = m;
    if (!METRIC_NAME.test(name)) throw new Error(`line ${line}: bad metric name ${JSON.stringify(name)}`);
    const labels = labelText === undefined ? {} : parseLabels(labelText, line);
    const key = name + JSON.stringify(Object.entries(labels).sort());
    if (seen.has(key)) throw new Error(`line ${line}: duplicate series ${raw}`);
    seen.add(key);
    const family = familyOf(name);
    if (!family) throw new Error(`line ${line}: sample ${name} before any TYPE/HELP of its family`);
    family.samples.push({ name, labels, value: parseValue(valueText, line) });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function checkHistogram(f: MetricFamily): void {
  const groups = new Map<string, { buckets: [number, number][]; count?: number }>();
  const groupOf = (labels: Record<string, string>) => {
    const key = JSON.stringify(Object.entries(labels).filter(([k]) => k !== 'le').sort());
    let g = groups.get(key);
    if (!g) { g = { buckets: [] }; groups.set(key, g); }
    return g;
  };
  for (const s of f.samples) {
    if (s.name.endsWith('_bucket')) {
      if (s.labels.le === undefined) throw new Error(`${f.name}: bucket without le`);
      groupOf(s.labels).buckets.push([parseValue(s.labels.le, 0), s.value]);
    } else if (s.name.endsWith('_count')) groupOf(s.labels).count = s.value;
  }
  for (const [key, g] of groups) {
    g.buckets.sort((a, b) => a[0] - b[0]);
    for (let i = 1; i < g.buckets.length; i++) if (g.buckets[i][1] < g.buckets[i - 1][1]) throw new Error(`${f.name}${key}: buckets not cumulative`);
    const inf = g.buckets.at(-1);
    if (!inf || inf[0] !== Infinity) throw new Error(`${f.name}${key}: no +Inf bucket`);
    if (g.count !== inf[1]) throw new Error(`${f.name}${key}: +Inf bucket ${inf[1]} but _count ${g.count}`);
  }
}

/** The value of the one sample of `name` whose labels include `labels` (0 when there is none). */
export function sampleValue(families: Map<string, MetricFamily>, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) total += s.value;
    }
  }
  return total;
}

/** `promtool check metrics` over the text: its complaints (parse errors and lint problems), one per line. */
export function promtoolProblems(text: string): string[] {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw r.error;
  return `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.trim()).filter((l) => l !== '');
}

/** One GET /metrics of the admin listener at `adminUrl`, parsed (a 200 in the exposition format). */
export async function scrapeMetrics(adminUrl: string): Promise<{ text: string; families: Map<string, MetricFamily> }> {
  const res = await request(`${adminUrl}/metrics`);
  const text = await res.body.text();
  assert.equal(res.statusCode, 200, text);
  assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return { text, families: parsePrometheusText(text) };
}

/**
 * A scrape once sum(lobby_requests_total) reached `expected`: every request a test sent is
 * counted (a request is counted in its end phase, just after its last byte is written).
 */
export async function scrapeCounted(adminUrl: string, expected: number): Promise<{ text: string; families: Map<string, MetricFamily> }> {
  await waitUntil(`${expected} requests counted`, async () =>
    sampleValue((await scrapeMetrics(adminUrl)).families, 'lobby_requests_total') === expected, 5_000);
  return scrapeMetrics(adminUrl);
}
