// W3C Trace Context (https://www.w3.org/TR/trace-context/): strict parsing of `traceparent`
// and `tracestate`, and new ids. A client's header is only ever used for the trace: a valid
// one gives the trace id, the caller's span id and the sampled flag; an invalid one is
// replaced by a new trace (and its tracestate dropped, as the spec requires), never forwarded.

import { randomFillSync } from 'node:crypto';

const HEX = /^[0-9a-f]+$/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

export interface TraceParent {
  traceId: string;
  parentId: string;
  sampled: boolean;
}

/**
 * Parses a traceparent value; null when invalid: version 2 lower-case hex and not `ff`; version
 * 00 exactly 55 characters, a later version at least 55 with a `-` after them (its extra fields
 * are ignored, the value re-emitted as version 00); trace id 32 and parent id 16 lower-case
 * hex, neither all zeros; flags 2 hex.
 */
export function parseTraceParent(value: string): TraceParent | null {
  if (value.length < 55 || value.charCodeAt(2) !== 0x2d || value.charCodeAt(35) !== 0x2d || value.charCodeAt(52) !== 0x2d) return null;
  const version = value.slice(0, 2);
  if (!HEX.test(version) || version === 'ff') return null;
  if (version === '00' ? value.length !== 55 : value.length > 55 && value.charCodeAt(55) !== 0x2d) return null;
  const traceId = value.slice(3, 35);
  const parentId = value.slice(36, 52);
  const flags = value.slice(53, 55);
  if (!HEX.test(traceId) || !HEX.test(parentId) || !HEX.test(flags)) return null;
  if (traceId === ZERO_TRACE || parentId === ZERO_SPAN) return null;
  return { traceId, parentId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

// list-member = key "=" value; key: simple or multi-tenant (tenant@system); value: 1-256
// printable ASCII except `,` and `=`, not ending in a space. At most 32 members.
const MEMBER = /^(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
const MAX_MEMBERS = 32;
/** Longest tracestate forwarded (the spec's limit for propagation is 512). */
const MAX_TRACESTATE = 512;

/** The tracestate to forward, or '' when it is invalid (dropped whole) or empty. */
export function validTraceState(value: string): string {
  if (value.length > MAX_TRACESTATE) return '';
  let members = 0;
  let out = '';
  for (const raw of value.split(',')) {
    const member = raw.trim();
    if (member === '') continue; // empty list members are allowed
    if (++members > MAX_MEMBERS || !MEMBER.test(member)) return '';
    out = out === '' ? member : out + ',' + member;
  }
  return out;
}

// Ids from a pooled random buffer: one randomFillSync per 512 ids instead of one call each.
const pool = Buffer.allocUnsafe(8192);
let offset = pool.length;

function randomHex(bytes: number): string {
  if (offset + bytes > pool.length) { randomFillSync(pool); offset = 0; }
  const hex = pool.toString('hex', offset, offset + bytes);
  offset += bytes;
  return hex;
}

/** A new 16-byte trace id (32 hex, never all zeros). */
export function newTraceId(): string {
  const id = randomHex(16);
  return id === ZERO_TRACE ? newTraceId() : id;
}

/** A new 8-byte span id (16 hex, never all zeros). */
export function newSpanId(): string {
  const id = randomHex(8);
  return id === ZERO_SPAN ? newSpanId() : id;
}

export function formatTraceParent(traceId: string, spanId: string, sampled: boolean): string {
  return '00-' + traceId + '-' + spanId + (sampled ? '-01' : '-00');
}
