// The edge filters' hot path (issue 13: at most 3 % of a proxied request each): ip-rules'
// onRequest with the peer as client and through a trusted proxy, and cors' onRequest +
// onResponse (on the exchange's own HeadEditor, over a typical upstream head) for an exact
// origin, a wildcard origin and a request without Origin. A plain proxied request costs
// about 20 µs of CPU (docs/performance.md), so 3 % is about 0.6 µs (≥ 1.7 M ops/s here).
//
//   node dist/native-bench/edge-filters.bench.js
import { Bench } from 'tinybench';
import { compileConfig } from '../src/control/compile.js';
import { buildFilter } from '../src/filters/builders.js';
import { HeadEditor } from '../src/data/exchange.js';
import { RequestContext } from '../src/data/request-context.js';
import type { HeaderField } from '../src/data/upstream/dispatch.js';
import { collectRows, printRows, runWhenMain, type BenchRow } from './bench-kit.js';

const env = { workerIndex: 0, post: () => {} };

function filtersOf(extra: Record<string, unknown>) {
  const compiled = compileConfig({
    services: { s: { targets: ['http://127.0.0.1:9'] } },
    server: { trusted_proxies: ['10.0.0.0/8'] },
    routes: [{ name: 'r', match: { prefix: '/' }, service: 's' }],
    ...extra,
  }, 'bench.yaml');
  return compiled.routes[0].filters.map((f) => buildFilter(f, env));
}

const REQUEST = ['accept', '*/*', 'user-agent', 'bench/1.0', 'accept-encoding', 'gzip'];
const UPSTREAM: HeaderField[] = ['Content-Type', 'application/json', 'Content-Length', '100', 'Date', 'Tue, 01 Dec 2026 00:00:00 GMT', 'Server', 'nginx'];

function context(headers: string[], clientIp = '127.0.0.1', forwardedFor = ''): RequestContext {
  const ctx = new RequestContext({} as never, {} as never, 0);
  ctx.method = 'GET';
  ctx.methodBit = 1;
  ctx.clientIp = clientIp;
  ctx.forwardedFor = forwardedFor;
  ctx.headers.push(...headers);
  return ctx;
}

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const bench = new Bench({ time: options.time ?? 300 });
  const [ipRules] = filtersOf({ ip_deny: ['198.51.100.0/24', '2001:db8:bad::/48'], ip_allow: ['192.168.0.0/16', 'fd00::/8', '172.16.0.0/12', '127.0.0.0/8', '10.0.0.0/8'] });
  const [cors] = filtersOf({ cors: { allow_origins: ['https://app.example.com', 'https://*.preview.example.com'], expose_headers: ['x-request-id'], allow_credentials: true, max_age: 600 } });
  const editor = new HeadEditor();
  let sink = 0;
  const corsCase = (headers: string[]) => () => {
    const ctx = context(headers);
    sink += cors.onRequest(ctx);
    editor.list = UPSTREAM.slice();
    cors.onResponse!(ctx, editor);
    sink += editor.list.length;
  };
  bench
    .add('baseline: context + head copy (no filter)', () => {
      const ctx = context([...REQUEST, 'origin', 'https://app.example.com']);
      editor.list = UPSTREAM.slice();
      sink += ctx.headers.length + editor.list.length;
    })
    .add('ip-rules: peer, 2 deny + 5 allow ranges', () => { sink += ipRules.onRequest(context(REQUEST)); })
    .add('ip-rules: X-Forwarded-For via trusted proxy', () => { sink += ipRules.onRequest(context(REQUEST, '10.1.2.3', '127.0.0.9, 10.0.0.7')); })
    .add('cors: exact origin (request + response)', corsCase([...REQUEST, 'origin', 'https://app.example.com']))
    .add('cors: wildcard origin (request + response)', corsCase([...REQUEST, 'origin', 'https://pr-7.preview.example.com']))
    .add('cors: no Origin (request + response)', corsCase(REQUEST));
  const rows = await collectRows('edge-filters', bench);
  if (sink === -1) console.log(sink);
  return rows;
}

await runWhenMain(import.meta.url, async () => {
  printRows(await run());
});
