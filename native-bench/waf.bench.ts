// The waf filter's cost (issue 16): its onRequest for the `waf-get` request (path, a query of
// four parameters, User-Agent, Referer, Cookie) and for the `waf-json` 2 KB order body, against
// a context without the filter; and the per-rule cost: each paranoia-1 rule's regex on a
// typical normalised value that passes the gate (a browser User-Agent) and on a 2 KB prose
// value. A plain proxied request costs about 20 µs of CPU (docs/performance.md): the GET's
// budget (1.10x) is about 2 µs, the JSON body's (1.25x) about 5 µs.
//
//   node dist/native-bench/waf.bench.js
import { Bench } from 'tinybench';
import { compileConfig } from '../src/control/compile.js';
import { buildFilter } from '../src/filters/builders.js';
import { RequestContext } from '../src/data/request-context.js';
import { WAF_RULES } from '../src/filters/waf/rules.js';
import { normalizeValue } from '../src/filters/waf/normalize.js';
import { requestBody } from '../loadtest/driver-protocol.js';
import { collectRows, printRows, runWhenMain, type BenchRow } from './bench-kit.js';

const env = { workerIndex: 0, post: () => {} };
const UA = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36';
const GET_HEADERS = ['user-agent', UA, 'referer', 'https://shop.example.com/search?q=laptop+stand&page=1', 'cookie', 'session=a3f9c2e1b7d84f0e9c2e1b7d84f0e123; theme=dark', 'accept', '*/*'];
const JSON_HEADERS = ['content-type', 'application/json', 'user-agent', 'okhttp/4.12.0'];

function wafFilter() {
  const compiled = compileConfig({
    services: { s: { targets: ['http://127.0.0.1:9'] } },
    waf: { paranoia: 1 },
    routes: [{ name: 'r', match: { prefix: '/' }, service: 's' }],
  }, 'bench.yaml');
  return compiled.routes[0].filters.map((f) => buildFilter(f, env)).find((f) => f.name === 'waf')!;
}

function context(headers: readonly string[], path: string, query: string, body: Buffer | null): RequestContext {
  const ctx = new RequestContext({} as never, {} as never, 0);
  ctx.method = body === null ? 'GET' : 'POST';
  ctx.path = path;
  ctx.query = query;
  ctx.headers.push(...headers);
  ctx.body = body;
  return ctx;
}

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const bench = new Bench({ time: options.time ?? 300 });
  const waf = wafFilter();
  const body = requestBody(2048, 'application/json')!;
  let sink = 0;
  bench
    .add('context only (get)', () => { sink += context(GET_HEADERS, '/api/v1/products', 'q=laptop+stand&sort=price_asc&page=2&lang=en-GB', null).headers.length; })
    .add('waf get', () => { sink += waf.onRequest(context(GET_HEADERS, '/api/v1/products', 'q=laptop+stand&sort=price_asc&page=2&lang=en-GB', null)); })
    .add('context only (json 2k)', () => { sink += context(JSON_HEADERS, '/api/v2/orders', '', body).headers.length; })
    .add('waf json 2k', () => { sink += waf.onRequest(context(JSON_HEADERS, '/api/v2/orders', '', body)); })
    .add('JSON.parse 2k alone', () => { sink += (JSON.parse(body.toString('utf8')) as { items: unknown[] }).items.length; });
  const prose = normalizeValue('Please select the items from the list and ship them by Friday; the union office (3rd floor) is open. '.repeat(20), false);
  const ua = normalizeValue(UA, false);
  for (const rule of WAF_RULES.filter((r) => r.paranoia === 1)) {
    const re = new RegExp(rule.pattern);
    bench.add(`rule ${rule.id} ua`, () => { if (re.test(ua)) sink++; });
    bench.add(`rule ${rule.id} prose 2k`, () => { if (re.test(prose)) sink++; });
  }
  const rows = await collectRows('waf', bench);
  if (sink < 0) console.log(sink);
  return rows;
}

runWhenMain(import.meta.url, async () => {
  const rows = await run();
  printRows(rows);
  const us = (name: string) => 1e6 / rows.find((r) => r.case === name)!.opsPerSec;
  console.log(`waf get: ${(us('waf get') - us('context only (get)')).toFixed(2)} µs over the context; json 2k: ${(us('waf json 2k') - us('context only (json 2k)')).toFixed(2)} µs, of which JSON.parse ${us('JSON.parse 2k alone').toFixed(2)} µs`);
});
