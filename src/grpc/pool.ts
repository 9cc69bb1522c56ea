// The transcoder's offload (the design's piscina pool): request bodies and unary response
// messages of at least `transcode.offload_bytes` are encoded / printed in pool threads
// (workers/grpc-codec.ts), so a large message never stalls the uWebSockets.js thread; small
// ones stay inline, where a pool round trip would cost more than the work
// (native-bench/grpc-offload.bench.ts measures both).
//
// What a thread needs to know a type travels as a DescriptorBundle: the service's descriptors
// as protobufjs JSON, serialized once into a SharedArrayBuffer; every task carries the
// bundle's id and the buffer (shared, not copied), and a thread decodes a bundle the first
// time it sees its id.
import type { Piscina } from 'piscina';
import type protobuf from 'protobufjs';
import { lazily } from '../shared/lazy-require.js';
import type { BoundValue, PrintOptions } from './codec.js';

const piscina = lazily<typeof import('piscina')>('piscina');
export const CODEC_TASK_FILE = new URL('../../workers/grpc-codec.js', import.meta.url).href;

export type CodecTask =
  | { op: 'encode'; bundle: number; data: SharedArrayBuffer; type: string; body: Uint8Array | null; bodyField: string; bound: BoundValue[] }
  | { op: 'print'; bundle: number; data: SharedArrayBuffer; type: string; bytes: Uint8Array; print: PrintOptions; field: string };

/** A task's answer: the bytes / JSON text, or a refusal the transcoder answers 400 with. */
export type CodecResult = { ok: true; value: Uint8Array | string } | { ok: false; message: string; kind: 'invalid' | 'unknown_query' | 'conflict' | 'internal' };

let nextBundleId = 1;

export class DescriptorBundle {
  readonly id = nextBundleId++;
  readonly data: SharedArrayBuffer;
  constructor(root: protobuf.Root) {
    const bytes = Buffer.from(JSON.stringify(root.toJSON()), 'utf8');
    this.data = new SharedArrayBuffer(bytes.length);
    new Uint8Array(this.data).set(bytes);
  }
}

export function decodeBundle(data: SharedArrayBuffer): unknown {
  return JSON.parse(Buffer.from(new Uint8Array(data)).toString('utf8'));
}

let pool: Piscina<CodecTask, CodecResult> | null = null;

/** This worker's codec pool (two threads), made on the first large message. */
export function codecPool(): Piscina<CodecTask, CodecResult> {
  pool ??= new (piscina().Piscina)<CodecTask, CodecResult>({
    filename: CODEC_TASK_FILE,
    minThreads: 1,
    maxThreads: 2,
    idleTimeout: 60_000,
    maxQueue: 1024,
    atomics: 'async',
  });
  return pool;
}
