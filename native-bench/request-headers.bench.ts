// Request header processing per request: Lobby's front door (one forEach pass: sizes,
// framing, Host, hop-by-hop removal, forwarded-header list) plus the X-Forwarded-* and
// Host additions of forward(), against the common alternative of building a headers
// object, lower-casing, deleting hop-by-hop names and re-joining X-Forwarded-For.
//
//   node dist/native-bench/request-headers.bench.js
import { Bench } from 'tinybench';
import { readRequestHead } from '../src/data/front-door.js';
import { RequestContext } from '../src/data/request-context.js';
import type { HttpRequest, HttpResponse } from '../src/data/uws.js';
import type { Generation } from '../src/data/generation.js';
import { collectRows, printRows, ratio, runWhenMain, type BenchRow } from './bench-kit.js';

// A typical API request as uWS presents it (lower-case names).
const HEADERS: [string, string][] = [
  ['host', 'api.example.com'],
  ['user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36'],
  ['accept', 'application/json'],
  ['accept-encoding', 'gzip, deflate, br'],
  ['authorization', 'Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJ1MSJ9.c2ln'],
  ['connection', 'keep-alive'],
  ['x-forwarded-for', '203.0.113.7'],
  ['x-correlation-id', '5b0c9a3e-1f2d-4c1b-9e77-0d7a5f2c9b11'],
];
const fakeRequest = {
  forEach(cb: (k: string, v: string) => void) { for (const [k, v] of HEADERS) cb(k, v); },
} as unknown as HttpRequest;
const LIMITS = { maxUrlBytes: 8192, maxHeaderBytes: 16384, maxBodyBytes: 1 << 20 };
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization']);

function lobbyPath(): number {
  const ctx = new RequestContext({} as HttpResponse, {} as Generation, 0);
  ctx.method = 'GET';
  if (readRequestHead(ctx, fakeRequest, LIMITS, '/v1/users/42') !== null) throw new Error('bench request refused');
  const h = ctx.headers;
  h.push('host', 'users.internal:8080');
  h.push('x-forwarded-for', ctx.forwardedFor === '' ? '10.0.0.1' : ctx.forwardedFor + ', 10.0.0.1');
  h.push('x-forwarded-proto', 'http');
  h.push('x-forwarded-host', ctx.host);
  return h.length;
}

function objectPath(): number {
  const headers: Record<string, string> = {};
  fakeRequest.forEach((k, v) => { headers[k.toLowerCase()] = v; });
  for (const name of (headers.connection ?? '').split(',')) delete headers[name.trim().toLowerCase()];
  for (const name of HOP_BY_HOP) delete headers[name];
  const xff = headers['x-forwarded-for'];
  headers['x-forwarded-for'] = xff ? `${xff}, 10.0.0.1` : '10.0.0.1';
  headers['x-forwarded-proto'] = 'http';
  headers['x-forwarded-host'] = headers.host;
  headers.host = 'users.internal:8080';
  return Object.keys(headers).length;
}

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const bench = new Bench({ time: options.time ?? 300 });
  let sink = 0;
  bench
    .add('front door + forwarded headers (lobby)', () => { sink += lobbyPath(); })
    .add('headers object + delete + join', () => { sink += objectPath(); });
  const rows = await collectRows('request-headers', bench);
  if (sink === -1) console.log(sink);
  return rows;
}

await runWhenMain(import.meta.url, async () => {
  const rows = await run();
  printRows(rows);
  console.log(`lobby / object approach: ${ratio(rows, 'front door + forwarded headers (lobby)', 'headers object + delete + join')}x`);
});
