// The proto3 JSON codec (src/grpc/json): JSON body -> protobuf (jsonToProto) and protobuf -> JSON
// (protoToJson) at four message sizes, beside protobufjs's own (not proto3-correct) path
// JSON.parse + fromObject + encode / decode + toObject + JSON.stringify for scale. The transcoder
// offloads messages above a size threshold to the piscina pool: pick it where inline work costs
// more than a pool round trip (the `µs/op` column, and `MB/s` to extrapolate).
//
//   node dist/native-bench/grpc-json.bench.js
import { fileURLToPath } from 'node:url';
import { Bench } from 'tinybench';
import protobuf from 'protobufjs';

import { jsonToProto, protoToJson, type JsonPrintOptions } from '../src/grpc/json/index.js';
import { collectRows, printRows, runWhenMain, type BenchRow } from './bench-kit.js';

const PROTOS = fileURLToPath(new URL('../../test/fixtures/protos/', import.meta.url));
const PRINT: JsonPrintOptions = { emitDefaults: false, protoFieldNames: false, enumsAs: 'name' };
const PARSE = { ignoreUnknownFields: false };

function loadBook(): protobuf.Type {
  const root = new protobuf.Root();
  root.resolvePath = (_o, t) => (t.startsWith('google/protobuf/') ? t : PROTOS + t);
  root.loadSync('lobbytest/v1/library.proto', { keepCase: true });
  root.resolveAll();
  return root.lookupType('lobbytest.v1.Book');
}

function author(i: number): Record<string, unknown> {
  return { name: `Author number ${i}`, authorId: String(9007199254740993n + BigInt(i)), aliases: ['A', 'B'], address: { city: 'Oslo', countryCode: 'NO' } };
}

/** A Book with `n` contributors (n = 0: the small unary message of the load test). */
function book(n: number): string {
  return JSON.stringify({
    name: 'shelves/1/books/2', title: 'A small book', isbn: '9780000000001', genre: 'SCIENCE', pages: 321, price: 12.5, inPrint: true,
    published: '2020-01-01T10:00:00.500Z', labels: { lang: 'en' },
    ...(n > 0 ? { contributors: Array.from({ length: n }, (_, i) => author(i)), pageMarks: Array.from({ length: n }, (_, i) => String(i * 1000)), metadata: { k: 'v', list: [1, 2, 3] } } : {}),
  });
}

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const Book = loadBook();
  const rows: BenchRow[] = [];
  let sink = 0;
  for (const [label, n] of [['small', 0], ['1k', 6], ['16k', 110], ['256k', 1800]] as const) {
    const json = Buffer.from(book(n));
    const bin = jsonToProto(Book, json, PARSE);
    // protobufjs's own JSON form of the same message (snake_case, Timestamp as an object, ...).
    const pbjsJson = JSON.stringify(Book.toObject(Book.decode(bin), { longs: String, enums: String }));
    const bench = new Bench({ time: options.time ?? 300 });
    const sizes = `json ${json.length} B, proto ${bin.length} B`;
    bench
      .add(`${label} jsonToProto (${sizes})`, () => { sink += jsonToProto(Book, json, PARSE).length; })
      .add(`${label} protoToJson`, () => { sink += protoToJson(Book, bin, PRINT).length; })
      .add(`${label} protobufjs parse+fromObject+encode`, () => { sink += Book.encode(Book.fromObject(JSON.parse(pbjsJson) as object)).finish().length; })
      .add(`${label} protobufjs decode+toObject+stringify`, () => { sink += JSON.stringify(Book.toObject(Book.decode(bin), { longs: String, enums: String })).length; });
    const got = await collectRows('grpc-json', bench);
    for (const r of got) {
      const us = 1e6 / r.opsPerSec;
      rows.push({ ...r, case: `${r.case} · ${us.toFixed(1)} µs/op · ${((json.length / us)).toFixed(0)} MB/s json` });
    }
  }
  if (sink === -1) console.log(sink);
  return rows;
}

await runWhenMain(import.meta.url, async () => {
  printRows(await run());
});
