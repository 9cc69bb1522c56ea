// The response-writing path per response: what the exchange (src/data/exchange.ts) does
// with an upstream response, from the parsed head to the end of the body, with the upstream
// handler's header scan (proxy.ts UpstreamCall.onResponseStart: hop-by-hop headers dropped,
// Content-Length read), against a uWS-shaped response that only records (the native write
// is not what is measured here: the loadtest measures it). Cases: a route with no response
// filters (one comparison), and one with an onResponse filter setting a header (the merge).
//
//   node dist/native-bench/response-write.bench.js
import { Bench } from 'tinybench';
import { RequestContext, type Filter, type RuntimeRoute } from '../src/data/request-context.js';
import { UpstreamCall } from '../src/data/upstream/proxy.js';
import type { DispatchController } from '../src/data/upstream/dispatch.js';
import { collectRows, printRows, ratio, runWhenMain, type BenchRow } from './bench-kit.js';

// What the fast client hands over for a typical JSON response (llhttp: strings).
const HEADERS = ['Server', 'nginx/1.22.1', 'Date', 'Tue, 01 Dec 2026 23:00:00 GMT', 'Content-Type', 'application/json',
  'Content-Length', '33', 'Connection', 'keep-alive', 'Cache-Control', 'no-store'];
const BODY = Buffer.from('{"hello":"world","n":1234567890}\n');

/** A uWS HttpResponse that accepts everything and counts what it was given. */
class RecordingResponse {
  written = 0;
  offset = 0;
  cork(fn: () => void): void { fn(); }
  writeStatus(line: string): void { this.written += line.length; }
  writeHeader(name: string, value: string | Buffer): void { this.written += name.length + value.length; }
  getWriteOffset(): number { return this.offset; }
  tryEnd(chunk: Buffer): [boolean, boolean] { this.offset += chunk.length; return [true, true]; }
  end(): void {}
  onWritable(): void {}
}

const controller: DispatchController = { abort() {}, pause() {}, resume() {}, aborted: false, paused: false };
const setsHeader: Filter = { name: 'sets', onRequest: () => 0, onResponse(_ctx, head) { head.set('access-control-allow-origin', '*'); } };

function route(responseFilters: Filter[] | null): RuntimeRoute {
  const service = { name: 's', targets: [], pick: () => { throw new Error('unused'); }, dispatch: () => {}, connectMs: 1000, responseMs: 1000, idleMs: 1000 };
  return { index: 0, name: 'r', service, filters: [], responseFilters, endFilters: null, stripPrefixLength: 0, rewrite: null, preserveHost: false, escapedSlashes: 'reject' } as unknown as RuntimeRoute;
}

function oneResponse(r: RuntimeRoute): number {
  const res = new RecordingResponse();
  const ctx = new RequestContext(res as never, {} as never, 0);
  ctx.method = 'GET';
  ctx.correlationId = '5b0c9a3e-1f2d-4c1b-9e77-0d7a5f2c9b11';
  ctx.route = r;
  const target = { origin: 'http://u', hostHeader: 'u', poolKey: 'k', inFlight: 1, healthSlot: -1, fast: () => {}, general: () => {} };
  const call = new UpstreamCall(ctx, target, [], null, null);
  ctx.upstream = call;
  call.onRequestStart(controller);
  call.onResponseStart(controller, 200, HEADERS.slice(), 'OK');
  call.onResponseData(controller, BODY);
  call.onResponseEnd();
  return res.written;
}

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const plain = route(null);
  const filtered = route([setsHeader]);
  const bench = new Bench({ time: options.time ?? 300 });
  let sink = 0;
  bench
    .add('upstream response, no response filters', () => { sink += oneResponse(plain); })
    .add('upstream response, one onResponse filter', () => { sink += oneResponse(filtered); });
  const rows = await collectRows('response-write', bench);
  if (sink === -1) console.log(sink);
  return rows;
}

await runWhenMain(import.meta.url, async () => {
  const rows = await run();
  printRows(rows);
  console.log(`one onResponse filter / none: ${ratio(rows, 'upstream response, one onResponse filter', 'upstream response, no response filters')}x`);
});
