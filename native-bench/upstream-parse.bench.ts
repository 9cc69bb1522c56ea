// The upstream parse path: Node's llhttp parser (the one the fast client uses, in strict
// mode, with the same callback slots) over a typical keep-alive JSON response, as one
// socket read; and the same bytes in two reads (head, then body). The client's own work
// around it is in response-write.bench.ts.
//
//   node dist/native-bench/upstream-parse.bench.js
import { createRequire } from 'node:module';
import { Bench } from 'tinybench';
import { collectRows, printRows, runWhenMain, type BenchRow } from './bench-kit.js';

const require = createRequire(import.meta.url);
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const { HTTPParser } = require('_http_common') as { HTTPParser: any };

const HEAD = Buffer.from('HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 23:00:00 GMT\r\n'
  + 'Content-Type: application/json\r\nContent-Length: 33\r\nConnection: keep-alive\r\nCache-Control: no-store\r\n\r\n');
const BODY = Buffer.from('{"hello":"world","n":1234567890}\n');
const WHOLE = Buffer.concat([HEAD, BODY]);

function parser(counts: { heads: number; bytes: number; done: number }) {
  const p = new HTTPParser();
  p.initialize(HTTPParser.RESPONSE, {}, 0, HTTPParser.kLenientNone);
  p[HTTPParser.kOnMessageBegin] = () => {};
  p[HTTPParser.kOnHeaders] = () => {};
  p[HTTPParser.kOnHeadersComplete] = (_a: number, _b: number, headers: string[]) => { counts.heads += headers.length; return 0; };
  p[HTTPParser.kOnBody] = (chunk: Buffer) => { counts.bytes += chunk.length; };
  p[HTTPParser.kOnMessageComplete] = () => { counts.done++; };
  p[HTTPParser.kOnExecute] = () => {};
  return p;
}

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const counts = { heads: 0, bytes: 0, done: 0 };
  const p = parser(counts);
  const bench = new Bench({ time: options.time ?? 300 });
  bench
    .add('llhttp: response in one read', () => { p.execute(WHOLE); })
    .add('llhttp: head and body in two reads', () => { p.execute(HEAD); p.execute(BODY); });
  const rows = await collectRows('upstream-parse', bench);
  if (counts.done === 0) throw new Error('the parser completed no response');
  return rows;
}

await runWhenMain(import.meta.url, async () => {
  printRows(await run());
});
