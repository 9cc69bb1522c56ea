// The waf filter's cost (issue 16): its onRequest for the `waf-get` request (path, a query of
// four parameters, User-Agent, Referer, Cookie) and for the `waf-json` 2 KB order body (the
// body loadtest/driver-protocol.ts sends), against a context without the filter; the
// prefilter's pass over the body alone; and per paranoia-1 rule: its regex on a normalised
// browser User-Agent and on 2 KB of prose, and how many times it runs for each of the two
// requests (the prefilter runs a rule only on a value that has an atom of its trigger).
//
//   node dist/native-bench/waf.bench.js [--ref-dir DIR] [--rounds N]
//
// --ref-dir: also runs another build's filter (DIR: its dist/, e.g. of the commit before a
// change) in the same run; the rounds alternate and each figure is the median of its rounds,
// so the ratios come from one run on the same (shared, noisy) machine.
import { Bench } from 'tinybench';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { compileConfig } from '../src/control/compile.js';
import { buildFilter } from '../src/filters/builders.js';
import { RequestContext } from '../src/data/request-context.js';
import type { Filter } from '../src/data/chain.js';
import { WAF_RULES } from '../src/filters/waf/rules.js';
import { normalizeValue } from '../src/filters/waf/normalize.js';
import { rulesFor, WafScan, type RuleSet } from '../src/filters/waf/engine.js';
import { inspectRequest, DEFAULT_LIMITS } from '../src/filters/waf/request-scan.js';
import { requestBody } from '../loadtest/driver-protocol.js';
import { collectRows, printRows, runWhenMain, type BenchRow } from './bench-kit.js';

const env = { workerIndex: 0, post: () => {} };
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';
const GET_HEADERS = ['user-agent', UA, 'referer', 'https://shop.example.com/search?q=laptop+stand&page=1', 'cookie', 'session=a3f9c2e1b7d84f0e9c2e1b7d84f0e123; theme=dark', 'accept', '*/*'];
const GET_PATH = '/api/v1/products';
const GET_QUERY = 'q=laptop+stand&sort=price_asc&page=2&lang=en-GB';
const JSON_HEADERS = ['content-type', 'application/json', 'user-agent', 'okhttp/4.12.0'];
const JSON_PATH = '/api/v2/orders';

type Build = { compileConfig: typeof compileConfig; buildFilter: typeof buildFilter; RequestContext: typeof RequestContext };

function wafFilter(build: Build): Filter {
  const compiled = build.compileConfig({
    services: { s: { targets: ['http://127.0.0.1:9'] } },
    waf: { paranoia: 1 },
    routes: [{ name: 'r', match: { prefix: '/' }, service: 's' }],
  }, 'bench.yaml');
  return compiled.routes[0].filters.map((f) => build.buildFilter(f, env)).find((f) => f.name === 'waf')!;
}

function contextOf(build: Build, headers: readonly string[], path: string, query: string, body: Buffer | null): RequestContext {
  const ctx = new build.RequestContext({} as never, {} as never, 0);
  ctx.method = body === null ? 'GET' : 'POST';
  ctx.path = path;
  ctx.query = query;
  ctx.headers.push(...headers);
  ctx.body = body;
  return ctx;
}

/** How many times each rule's regex runs when the scorer's inspection reads `req` (the filter runs the same code) a second time (header verdicts memoised). */
function runsPerRule(set: RuleSet, req: Parameters<typeof inspectRequest>[1]): Map<number, number> {
  const runs = new Map<number, number>();
  let counting = false;
  const counted: RuleSet = {
    prefilter: set.prefilter,
    rules: set.rules.map((r) => ({ ...r, re: { test: (t: string) => { if (counting) runs.set(r.id, (runs.get(r.id) ?? 0) + 1); return r.re.test(t); } } as RegExp })),
  };
  const scan = new WafScan(counted, null);
  inspectRequest(scan, req, DEFAULT_LIMITS);
  counting = true;
  scan.reset();
  inspectRequest(scan, req, DEFAULT_LIMITS);
  return runs;
}

export interface WafBenchOptions { time?: number; refDir?: string; rounds?: number }

export async function run(options: WafBenchOptions = {}): Promise<BenchRow[]> {
  const self: Build = { compileConfig, buildFilter, RequestContext };
  const builds: [string, Build][] = [['', self]];
  if (options.refDir !== undefined) {
    const from = (p: string) => import(pathToFileURL(resolve(options.refDir!, p)).href);
    builds.push(['ref ', {
      compileConfig: (await from('src/control/compile.js')).compileConfig,
      buildFilter: (await from('src/filters/builders.js')).buildFilter,
      RequestContext: (await from('src/data/request-context.js')).RequestContext,
    }]);
  }
  const body = requestBody(2048, 'application/json')!;
  const set = rulesFor(1);
  let sink = 0;
  const rounds = options.rounds ?? (options.refDir === undefined ? 1 : 5);
  const byCase = new Map<string, number[]>();
  const record = (rows: BenchRow[]) => { for (const r of rows) byCase.set(r.case, [...(byCase.get(r.case) ?? []), r.opsPerSec]); };
  for (let round = 0; round < rounds; round++) {
    const bench = new Bench({ time: options.time ?? 300 });
    // Alternate which build goes first, round by round.
    const order = round % 2 === 0 ? builds : [...builds].reverse();
    for (const [tag, build] of order) {
      const filter = wafFilter(build);
      bench
        .add(`${tag}context only (get)`, () => { sink += contextOf(build, GET_HEADERS, GET_PATH, GET_QUERY, null).headers.length; })
        .add(`${tag}waf get`, () => { sink += filter.onRequest(contextOf(build, GET_HEADERS, GET_PATH, GET_QUERY, null)); })
        .add(`${tag}context only (json 2k)`, () => { sink += contextOf(build, JSON_HEADERS, JSON_PATH, '', body).headers.length; })
        .add(`${tag}waf json 2k`, () => { sink += filter.onRequest(contextOf(build, JSON_HEADERS, JSON_PATH, '', body)); });
    }
    if (round === 0) {
      const scan = new WafScan(set, null);
      bench
        .add('JSON.parse 2k alone', () => { sink += (JSON.parse(body.toString('utf8')) as { items: unknown[] }).items.length; })
        .add('waf json 2k inspectRequest alone', () => { scan.reset(); sink += inspectRequest(scan, { path: '/', query: '', headers: JSON_HEADERS, body }, DEFAULT_LIMITS); });
      const prose = normalizeValue('Please select the items from the list and ship them by Friday; the union office (3rd floor) is open. '.repeat(20), false);
      const ua = normalizeValue(UA, false);
      for (const rule of WAF_RULES.filter((r) => r.paranoia === 1)) {
        const re = new RegExp(rule.pattern);
        bench.add(`rule ${rule.id} ua`, () => { if (re.test(ua)) sink++; });
        bench.add(`rule ${rule.id} prose 2k`, () => { if (re.test(prose)) sink++; });
      }
    }
    record(await collectRows('waf', bench));
  }
  if (sink < 0) console.log(sink);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rows = [...byCase].map(([name, ops]) => ({ bench: 'waf', case: name, opsPerSec: median(ops) }));
  // Not timings: how often each rule ran for the two requests (rows of count/request, printed apart).
  const get = runsPerRule(set, { path: GET_PATH, query: GET_QUERY, headers: GET_HEADERS, body: null });
  const json = runsPerRule(set, { path: JSON_PATH, query: '', headers: JSON_HEADERS, body });
  runsTable = set.rules.map((r) => ({ id: r.id, get: get.get(r.id) ?? 0, json: json.get(r.id) ?? 0 }));
  return rows;
}

/** The last run's regex runs per rule for the two requests. */
export let runsTable: { id: number; get: number; json: number }[] = [];

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : undefined;
}

runWhenMain(import.meta.url, async () => {
  const refDir = flag('--ref-dir');
  const rounds = flag('--rounds');
  const rows = await run({ refDir, rounds: rounds === undefined ? undefined : Number(rounds) });
  printRows(rows);
  const us = (name: string) => 1e6 / rows.find((r) => r.case === name)!.opsPerSec;
  const over = (tag: string, what: 'get' | 'json 2k') => us(`${tag}waf ${what}`) - us(`${tag}context only (${what})`);
  console.log(`waf get: ${over('', 'get').toFixed(2)} µs over the context; json 2k: ${over('', 'json 2k').toFixed(2)} µs (JSON.parse alone ${us('JSON.parse 2k alone').toFixed(2)} µs)`);
  if (refDir !== undefined) {
    console.log(`ref (${refDir}): waf get ${over('ref ', 'get').toFixed(2)} µs, json 2k ${over('ref ', 'json 2k').toFixed(2)} µs over the context`);
    console.log(`this / ref: get ${(over('', 'get') / over('ref ', 'get')).toFixed(2)}, json 2k ${(over('', 'json 2k') / over('ref ', 'json 2k')).toFixed(2)}`);
  }
  console.log('regex runs per request by rule (get / json 2k):', runsTable.filter((r) => r.get + r.json > 0).map((r) => `${r.id} ${r.get}/${r.json}`).join(', ') || 'none');
});
