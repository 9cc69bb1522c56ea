// Issue 16: which engine runs the WAF's rules. The same 24 regexes in the manner of CRS
// (tautologies, UNION, time functions, comments, event handlers, javascript: URLs, tags) over
// the strings of one request (path, three query values, User-Agent, one cookie) and of a 2 KB
// JSON body (about 60 strings), on:
//   js     — V8's Irregexp (linear only if each pattern is proven safe: waf/regex-safety.ts);
//   re2    — the `re2` addon (linear by construction; one N-API call per test);
//   ddwaf  — @datadog/native-appsec (libddwaf: RE2 + libinjection, its own rule format),
//            one context per request as its API wants.
//
//   node dist/native-bench/waf-engines.bench.js
import { createRequire } from 'node:module';
import { Bench } from 'tinybench';
import { collectRows, printRows, ratio, runWhenMain, type BenchRow } from './bench-kit.js';

const require = createRequire(import.meta.url);

export const SAMPLE_PATTERNS = [
  String.raw`\b(?:or|and)\s+['"]?\w+['"]?\s*(?:=|<|>|like)\s*['"]?\w+`,
  String.raw`\bunion\b[\s(]+(?:all\s+|distinct\s+)?select\b`,
  String.raw`;\s*(?:drop|delete|insert|update|create|alter|exec|declare)\b`,
  String.raw`\b(?:sleep|benchmark|pg_sleep)\s*\(`,
  String.raw`\bwaitfor\s+delay\b`,
  String.raw`['"\d)]\s*(?:--|#)`,
  String.raw`/\*!?\d*`,
  String.raw`\b(?:information_schema|sysobjects|pg_catalog|sqlite_master)\b`,
  String.raw`\b(?:concat|char|chr|ascii|substring|hex|unhex|load_file)\s*\(`,
  String.raw`\bselect\b.{0,40}\bfrom\b`,
  String.raw`\border\s+by\s+\d`,
  String.raw`\b(?:xp_cmdshell|into\s+outfile|into\s+dumpfile)\b`,
  String.raw`<script[\s>/]`,
  String.raw`\bjavascript\s*:`,
  String.raw`\bon[a-z]{3,20}\s*=`,
  String.raw`<(?:svg|math|iframe|object|embed|img|body|video|audio|details)\b`,
  String.raw`\b(?:alert|prompt|confirm|eval)\s*[(\x60]`,
  String.raw`\bdocument\s*\.\s*(?:cookie|location|write|domain)`,
  String.raw`\{\{.{0,80}\}\}`,
  String.raw`\$\{.{0,80}\}`,
  String.raw`\bsrcdoc\s*=`,
  String.raw`\bdata\s*:\s*text/html`,
  String.raw`\bvbscript\s*:`,
  String.raw`\bexpression\s*\(`,
];

const GET_STRINGS = ['/api/v1/products/42', 'laptop stand', 'price_asc', '20',
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36', 'a3f9c2e1b7d84f0e'];

function jsonBody(): Record<string, unknown> {
  const items = [];
  for (let i = 0; i < 12; i++) items.push({ sku: `SKU-${1000 + i}`, name: `Item number ${i} in blue`, qty: i + 1, note: 'leave at the door please' });
  return { customer: { name: "Mary O'Brien", email: 'mary@example.com', address: '12 Harbour Road, Cork' }, items, comment: 'Please select a box from the shelf and ship it by Friday.' };
}

function stringsOf(value: unknown, out: string[]): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) stringsOf(v, out);
  else if (value !== null && typeof value === 'object') for (const [k, v] of Object.entries(value)) { out.push(k); stringsOf(v, out); }
  return out;
}

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  // The candidates were weighed with both packages installed; once the unused ones are dropped
  // from package.json (Lobby uses V8's engine), their rows are skipped.
  const optional = <T>(name: string): T | null => { try { return require(name) as T; } catch { return null; } };
  const RE2 = optional<new (p: string, f: string) => { test(s: string): boolean }>('re2');
  const DDWAF = optional<{ DDWAF: new (r: object, p: string) => { createContext(): { run(p: object, t: number): { status?: string }; dispose(): void } } }>('@datadog/native-appsec')?.DDWAF ?? null;
  const js = SAMPLE_PATTERNS.map((p) => new RegExp(p, 'is'));
  const re2 = RE2 === null ? [] : SAMPLE_PATTERNS.map((p) => new RE2(p, 'is'));
  const ddwaf = DDWAF === null ? null : new DDWAF({
    version: '2.2', metadata: { rules_version: '1.0.0' },
    rules: SAMPLE_PATTERNS.map((regex, i) => ({
      id: `r${i}`, name: `r${i}`, tags: { type: 'attack', category: 'attack_attempt' },
      conditions: [{ operator: 'match_regex', parameters: { inputs: [{ address: 'lobby.strings' }], regex, options: { case_sensitive: false } } }],
      transformers: [],
    })),
  }, 'lobby-bench');
  const body = jsonBody();
  const bodyText = JSON.stringify(body);
  let sink = 0;
  const scan = (set: { test(s: string): boolean }[], strings: readonly string[]) => {
    for (const s of strings) for (const r of set) if (r.test(s)) sink++;
  };
  const bench = new Bench({ time: options.time ?? 300 });
  bench
    .add('js get (6 strings)', () => scan(js, GET_STRINGS))
    .add('js json 2k (parse+walk)', () => scan(js, stringsOf(JSON.parse(bodyText), [])));
  if (RE2 !== null) {
    bench
      .add('re2 get (6 strings)', () => scan(re2, GET_STRINGS))
      .add('re2 json 2k (parse+walk)', () => scan(re2, stringsOf(JSON.parse(bodyText), [])));
  }
  if (ddwaf !== null) {
    bench
      .add('ddwaf get (6 strings)', () => {
        const c = ddwaf.createContext();
        if (c.run({ ephemeral: { 'lobby.strings': GET_STRINGS } }, 1e7).status === 'match') sink++;
        c.dispose();
      })
      .add('ddwaf json 2k (parse)', () => {
        const c = ddwaf.createContext();
        if (c.run({ ephemeral: { 'lobby.strings': JSON.parse(bodyText) } }, 1e7).status === 'match') sink++;
        c.dispose();
      });
  }
  const rows = await collectRows('waf-engines', bench);
  if (sink < 0) console.log(sink);
  return rows;
}

runWhenMain(import.meta.url, async () => {
  const rows = await run();
  printRows(rows);
  console.log(`js/re2 get: ${ratio(rows, 'js get (6 strings)', 're2 get (6 strings)')}x, js/ddwaf get: ${ratio(rows, 'js get (6 strings)', 'ddwaf get (6 strings)')}x`);
  console.log(`js/re2 json: ${ratio(rows, 'js json 2k (parse+walk)', 're2 json 2k (parse+walk)')}x, js/ddwaf json: ${ratio(rows, 'js json 2k (parse+walk)', 'ddwaf json 2k (parse)')}x`);
});
