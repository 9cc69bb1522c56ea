// `npm run waf:score`: the WAF's detection and false-positive rates over the committed corpora
// (test/fixtures/waf/attacks.jsonl, benign.jsonl), per class and paranoia level, at the default
// threshold (5), through the same inspection code the filter runs (inspect.ts).
//   node dist/src/filters/waf/score.js [--threshold N] [--misses]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { WafScan, rulesFor } from './engine.js';
import { inspectRequest, DEFAULT_LIMITS, type InspectableRequest } from './request-scan.js';

export interface CorpusEntry {
  id: string;
  class: string;
  kind: string;
  location: string;
  field: string;
  request: { method: string; path: string; query: string; headers: string[]; content_type?: string; body?: string };
}

export function corpusDir(): string {
  // dist/src/filters/waf -> test/fixtures/waf in the source tree
  return join(dirname(fileURLToPath(import.meta.url)), '../../../../test/fixtures/waf');
}

export function readCorpus(name: 'attacks' | 'benign'): CorpusEntry[] {
  return readFileSync(join(corpusDir(), `${name}.jsonl`), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as CorpusEntry);
}

export function asInspectable(e: CorpusEntry): InspectableRequest {
  const headers = e.request.headers.slice();
  if (e.request.content_type !== undefined) headers.push('content-type', e.request.content_type);
  return { path: e.request.path, query: e.request.query, headers, body: e.request.body === undefined ? null : Buffer.from(e.request.body) };
}

export interface ScoreRow { paranoia: number; class: string; total: number; flagged: number; rate: number }

/** Per paranoia level and class: how many entries reach the threshold. */
export function score(threshold = 5, onMiss?: (paranoia: number, e: CorpusEntry, ids: number[]) => void): ScoreRow[] {
  const entries = [...readCorpus('attacks'), ...readCorpus('benign')];
  const rows: ScoreRow[] = [];
  for (let paranoia = 1; paranoia <= 4; paranoia++) {
    const scan = new WafScan(rulesFor(paranoia), null);
    const counts = new Map<string, { total: number; flagged: number }>();
    for (const e of entries) {
      scan.reset();
      inspectRequest(scan, asInspectable(e), DEFAULT_LIMITS);
      const flagged = scan.score >= threshold;
      const c = counts.get(e.class) ?? { total: 0, flagged: 0 };
      c.total++;
      if (flagged) c.flagged++;
      counts.set(e.class, c);
      if (onMiss && flagged === (e.class === 'benign')) onMiss(paranoia, e, scan.firedIds());
    }
    for (const [cls, c] of counts) rows.push({ paranoia, class: cls, total: c.total, flagged: c.flagged, rate: c.flagged / c.total });
  }
  return rows;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const t = process.argv.indexOf('--threshold');
  const threshold = t > 0 ? Number(process.argv[t + 1]) : 5;
  const misses = process.argv.includes('--misses');
  const rows = score(threshold, misses ? (pl, e, ids) => { if (pl === 1) console.log(`PL${pl} ${e.class === 'benign' ? 'FALSE POSITIVE' : 'MISSED'} ${e.id} ${e.kind} ${e.field} [${ids.join(',')}] ${JSON.stringify(e.request).slice(0, 300)}`); } : undefined);
  console.log(`threshold ${threshold}`);
  console.log('paranoia  class    entries  flagged  rate      (detection for sqli/xss, false positives for benign)');
  for (const r of rows) console.log(`${String(r.paranoia).padEnd(9)} ${r.class.padEnd(8)} ${String(r.total).padStart(7)}  ${String(r.flagged).padStart(7)}  ${(r.rate * 100).toFixed(1).padStart(5)} %`);
}
