// The transcoder's one door to the proto3 JSON codec (src/grpc/json/, its own helper's):
// every JSON ⇄ protobuf conversion of a call goes through these two functions, so the codec
// is swapped or offloaded (pool.ts) in one place.
import type protobuf from 'protobufjs';
import { pb } from './descriptors.js';

export interface PrintOptions {
  emitDefaults: boolean;
  protoFieldNames: boolean;
  enumsAsNumbers: boolean;
}

/** A field bound from the path or the query: its path in the message and its text. */
export interface BoundValue {
  fieldPath: string[];
  value: string;
  /** Where it came from, for messages: 'path' or 'query'. */
  source: 'path' | 'query';
}

/** A request the client got wrong: 400 INVALID_ARGUMENT with this message. */
export class TranscodeInputError extends Error {
  constructor(message: string, readonly kind: 'invalid' | 'unknown_query' | 'conflict' = 'invalid') { super(message); }
}

/** Parses the body JSON (null: no body) into `type`, merges the bound values, encodes. */
export function encodeRequest(type: protobuf.Type, body: Buffer | null, bodyField: string, bound: readonly BoundValue[]): Buffer {
  let obj: Record<string, unknown> = {};
  if (body !== null && body.length > 0) {
    let parsed: unknown;
    try { parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body)); } catch (err) {
      throw new TranscodeInputError(`the request body is not valid JSON: ${(err as Error).message}`);
    }
    if (bodyField === '*') {
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new TranscodeInputError('the request body must be a JSON object');
      obj = parsed as Record<string, unknown>;
    } else {
      obj = { [bodyField]: parsed };
    }
  }
  for (const b of bound) {
    let node = obj;
    let t: protobuf.Type | null = type;
    for (let i = 0; i < b.fieldPath.length; i++) {
      const name = b.fieldPath[i];
      const field: protobuf.Field | undefined = t?.fields[name];
      const last = i === b.fieldPath.length - 1;
      if (last) {
        if (b.source === 'path' && node[name] !== undefined) {
          throw new TranscodeInputError(`the body sets the field "${b.fieldPath.join('.')}", which the path binds`, 'conflict');
        }
        if (field?.repeated) ((node[name] ??= []) as unknown[]).push(b.value);
        else node[name] = b.value;
      } else {
        node = (node[name] ??= {}) as Record<string, unknown>;
        t = field?.resolvedType instanceof pb().Type ? field.resolvedType : null;
      }
    }
  }
  const err = type.verify(type.fromObject(obj));
  if (err) throw new TranscodeInputError(err);
  return Buffer.from(type.encode(type.fromObject(obj)).finish());
}

/** Decodes a message and prints it as proto3 JSON (`field`: print only that field). */
export function printMessage(type: protobuf.Type, bytes: Uint8Array, opts: PrintOptions, field = ''): string {
  const message = type.decode(bytes);
  const obj = type.toObject(message, { longs: String, enums: opts.enumsAsNumbers ? Number : String, bytes: String, defaults: opts.emitDefaults, json: true });
  return JSON.stringify(field === '' ? obj : obj[field] ?? null);
}
