// The piscina task of the transcoder's codec pool (src/grpc/pool.ts): encodes a request
// message from its JSON body and bound values, or prints a response message as JSON, with the
// same functions the transcoder runs inline (src/grpc/codec.ts).
import type protobuf from 'protobufjs';
import { encodeRequest, printMessage, TranscodeInputError } from '../src/grpc/codec.js';
import { rootFromJson } from '../src/grpc/descriptors.js';
import { decodeBundle, type CodecResult, type CodecTask } from '../src/grpc/pool.js';

const roots = new Map<number, protobuf.Root>();
const MAX_ROOTS = 32;

function rootOf(task: CodecTask): protobuf.Root {
  let root = roots.get(task.bundle);
  if (root === undefined) {
    root = rootFromJson(decodeBundle(task.data));
    if (roots.size >= MAX_ROOTS) roots.delete(roots.keys().next().value!);
    roots.set(task.bundle, root);
  }
  return root;
}

export default function run(task: CodecTask): CodecResult {
  try {
    const type = rootOf(task).lookupType(task.type);
    if (task.op === 'encode') {
      return { ok: true, value: encodeRequest(type, task.body === null ? null : Buffer.from(task.body), task.bodyField, task.bound) };
    }
    return { ok: true, value: printMessage(type, task.bytes, task.print, task.field) };
  } catch (err) {
    if (err instanceof TranscodeInputError) return { ok: false, message: err.message, kind: err.kind };
    return { ok: false, message: (err as Error).message, kind: 'internal' };
  }
}
