// What a retry policy and a deadline add to a request when nothing fails (issue 14: the proxy
// scenario within 1.03×, about 0.6-0.9 µs of a proxied request's 20-30 µs of CPU,
// docs/performance.md): the head with the gateway's headers as forward() builds it, without
// and with the deadline header (dropping a client copy, formatting the time left), plus the
// budget's per-request count and the interceptor's layer.
//
//   node dist/native-bench/retry.bench.js
import { Bench } from 'tinybench';
import { RequestContext } from '../src/data/request-context.js';
import { encodeRequestHead } from '../src/data/upstream/request-head.js';
import { pushDeadlineHeader } from '../src/data/upstream/deadline.js';
import { RetryBudget, retryInterceptor } from '../src/data/upstream/retry.js';
import type { DispatchFn } from '../src/data/upstream/dispatch.js';
import { collectRows, printRows, runWhenMain, type BenchRow } from './bench-kit.js';

const REQUEST = ['accept', '*/*', 'user-agent', 'bench/1.0', 'accept-encoding', 'gzip'];

function context(): RequestContext {
  const ctx = new RequestContext({} as never, {} as never, 0);
  ctx.method = 'GET';
  ctx.headers.push(...REQUEST);
  ctx.exchangeDeadline = performance.now() + 3000;
  return ctx;
}

function gatewayHeaders(h: string[]): void {
  h.push('host', '127.0.0.1:9001', 'x-forwarded-for', '127.0.0.1', 'x-forwarded-proto', 'http', 'x-forwarded-host', 'localhost');
  h.push('x-correlation-id', '0b6c4d52-3f5e-4f0e-9b1a-2d8e6f7a9c10');
}

export async function run(): Promise<BenchRow[]> {
  const bench = new Bench({ time: 500 });
  let sink = 0;
  const budget = new RetryBudget();
  const inner: DispatchFn = (o) => { sink += o.method.length; };
  const layered = retryInterceptor({ name: 'bench' } as never)(inner);
  const call = { method: 'GET', retryNext: null as DispatchFn | null, budget: null };
  bench
    .add('plain: context + gateway headers + head', () => {
      const ctx = context();
      gatewayHeaders(ctx.headers);
      sink += encodeRequestHead('GET', '/', ctx.headers)!.length;
    })
    .add('deadline: the same + X-Request-Deadline-Ms', () => {
      const ctx = context();
      sink += pushDeadlineHeader(ctx, ctx.headers, 'x-request-deadline-ms');
      gatewayHeaders(ctx.headers);
      sink += encodeRequestHead('GET', '/', ctx.headers)!.length;
    })
    .add('budget: one request counted', () => { budget.request(performance.now()); })
    .add('interceptor: one dispatch through the retry layer', () => {
      call.retryNext = null;
      layered(call as never, call as never);
    });
  const rows = await collectRows('retry', bench);
  if (sink === -1) console.log(sink);
  return rows;
}

await runWhenMain(import.meta.url, async () => {
  printRows(await run());
});
