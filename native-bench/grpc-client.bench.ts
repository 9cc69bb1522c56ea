// The gRPC client's own CPU per unary call (src/grpc/client.ts on node:http2) against the
// @grpc/grpc-js call the data plane made before (a Client channel, makeServerStreamRequest with
// raw Buffer (de)serializers, a Metadata per call, a deadline), both to the same small unary
// answer from a raw node:http2 server in a child process, so only the client's CPU is counted:
// process.cpuUsage() over 20,000 calls with 32 in flight, five rounds, median.
//
//   node dist/native-bench/grpc-client.bench.js
import { spawn } from 'node:child_process';
import type * as grpcTypes from '@grpc/grpc-js';
import { grpc, grpcDispatch, type GrpcDispatchOptions } from '../src/grpc/client.js';
import { freePort } from '../test/helpers/ports.js';
import { runWhenMain, type BenchRow } from './bench-kit.js';

const BENCH = 'grpc-client';
const CALLS = 20_000;
const IN_FLIGHT = 32;
const PATH = '/shop.v1.BookstoreService/GetShelf';
const BODY = Buffer.from([0x08, 0x01]);
const METADATA = ['x-correlation-id', 'b7c1d2e3-0000-4000-8000-000000000001'];

// A unary answer: initial headers, one 12-byte message, trailers with grpc-status 0.
const SERVER = `
const http2 = require('node:http2');
const msg = Buffer.from([0, 0, 0, 0, 12, 0x0a, 1, 0x31, 0x12, 7, 0x66, 0x69, 0x63, 0x74, 0x69, 0x6f, 0x6e]);
const srv = http2.createServer();
srv.on('stream', (s) => {
  s.on('error', () => {});
  s.on('data', () => {});
  s.on('end', () => {
    s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
    s.end(msg);
  });
});
srv.listen(Number(process.argv[1]), '127.0.0.1', () => console.log('ready'));
`;

type Call = () => Promise<void>;

function h2Call(address: string): Call {
  const dispatch = grpcDispatch(address, null);
  return () => new Promise((resolve, reject) => {
    const options = { target: null, method: 'POST', path: PATH, headers: METADATA, body: BODY, head: null, idempotent: false, deadline: Date.now() + 10_000 } as unknown as GrpcDispatchOptions;
    dispatch(options, {
      onResponseEnd(_c, trailers) { if (trailers?.[1] === '0') resolve(); else reject(new Error(`status ${String(trailers?.[1])}`)); },
    });
  });
}

function grpcJsCall(address: string): { call: Call; close(): void } {
  const g = grpc();
  const identity = (b: Buffer): Buffer => b;
  const client = new g.Client(address, g.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024, 'grpc.enable_retries': 0, 'grpc.enable_channelz': 0 });
  const call: Call = () => new Promise((resolve, reject) => {
    const md = new g.Metadata();
    for (let i = 0; i < METADATA.length; i += 2) md.add(METADATA[i], METADATA[i + 1]);
    const c = client.makeServerStreamRequest(PATH, identity, identity, BODY, md, { deadline: Date.now() + 10_000 });
    c.on('metadata', () => {});
    c.on('data', () => {});
    c.on('error', () => {});
    c.on('status', (s: grpcTypes.StatusObject) => { if (s.code === 0) resolve(); else reject(new Error(s.details)); });
  });
  return { call, close: () => client.close() };
}

async function drive(call: Call, n: number): Promise<void> {
  let started = 0;
  const lane = async () => { while (started < n) { started++; await call(); } };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
}

/** Client CPU µs per call: the median of five rounds. */
async function cpuPerCall(call: Call): Promise<number> {
  await drive(call, 5000); // warm-up: JIT, the session
  const rounds: number[] = [];
  for (let r = 0; r < 5; r++) {
    const before = process.cpuUsage();
    await drive(call, CALLS);
    const used = process.cpuUsage(before);
    rounds.push((used.user + used.system) / CALLS);
  }
  rounds.sort((a, b) => a - b);
  return rounds[2];
}

export async function run(): Promise<BenchRow[]> {
  const port = await freePort();
  const server = spawn(process.execPath, ['-e', SERVER, String(port)], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      server.stdout!.once('data', () => resolve());
      server.once('exit', (code) => reject(new Error(`the bench server exited (${code})`)));
    });
    const address = `127.0.0.1:${port}`;
    const h2 = await cpuPerCall(h2Call(address));
    const js = grpcJsCall(address);
    let gjs: number;
    try { gjs = await cpuPerCall(js.call); } finally { js.close(); }
    return [
      { bench: BENCH, case: `client.ts (node:http2), client CPU µs/call ${h2.toFixed(1)}`, opsPerSec: 1e6 / h2 },
      { bench: BENCH, case: `@grpc/grpc-js, client CPU µs/call ${gjs.toFixed(1)}`, opsPerSec: 1e6 / gjs },
    ];
  } finally {
    server.kill();
  }
}

await runWhenMain(import.meta.url, async () => {
  for (const r of await run()) console.log(`${r.case.padEnd(60)} ${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(10)} calls/s of CPU`);
  process.exit(0); // the h2 session is unref'd, grpc-js's channel closed; exit at once either way
});
