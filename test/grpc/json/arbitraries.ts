// Random messages of a type as JSON text in random but valid proto3 JSON forms (int64 as numbers
// or strings, URL-safe base64, proto or JSON names, Timestamps at 0/3/6/9 digits, ...), for the
// property tests.
import fc from 'fast-check';
import type { Type } from 'protobufjs';

import { typeInfo, Wkt, type FieldInfo, type Kind } from '../../../src/grpc/json/descriptors.js';
import { root } from './fixture.js';


function intArb(min: bigint, max: bigint, big: boolean): fc.Arbitrary<string> {
  return fc.tuple(fc.bigInt({ min, max }), fc.boolean()).map(([v, quoted]) => (quoted || !big && false ? `"${v}"` : String(v)));
}

function floatText(v: number): string {
  if (Number.isNaN(v)) return '"NaN"';
  if (v === Infinity) return '"Infinity"';
  if (v === -Infinity) return '"-Infinity"';
  return Object.is(v, -0) ? '-0' : String(v);
}

function base64Arb(): fc.Arbitrary<string> {
  return fc.tuple(fc.uint8Array({ maxLength: 10 }), fc.boolean(), fc.boolean()).map(([b, urlSafe, pad]) => {
    let s = Buffer.from(b).toString('base64');
    if (urlSafe) s = s.replace(/\+/g, '-').replace(/\//g, '_');
    if (!pad) s = s.replace(/=+$/, '');
    return JSON.stringify(s);
  });
}

function scalarArb(kind: Kind, fi: FieldInfo): fc.Arbitrary<string> {
  switch (kind) {
    case 'int32': case 'sint32': case 'sfixed32': return intArb(-(2n ** 31n), 2n ** 31n - 1n, false);
    case 'uint32': case 'fixed32': return intArb(0n, 2n ** 32n - 1n, false);
    case 'int64': case 'sint64': case 'sfixed64': return intArb(-(2n ** 63n), 2n ** 63n - 1n, true);
    case 'uint64': case 'fixed64': return intArb(0n, 2n ** 64n - 1n, true);
    case 'float': return fc.float().map(floatText);
    case 'double': return fc.double().map(floatText);
    case 'bool': return fc.boolean().map(String);
    case 'string': return fc.fullUnicodeString({ maxLength: 12 }).map((s) => JSON.stringify(s));
    case 'bytes': return base64Arb();
    case 'enum': {
      const names = Object.keys(fi.enumType!.values);
      return fc.oneof(fc.constantFrom(...names).map((n) => JSON.stringify(n)), fc.integer({ min: -3, max: 20 }).map(String));
    }
    case 'message': throw new Error('not a scalar');
  }
}

function mapKeyArb(kind: Kind): fc.Arbitrary<string> {
  switch (kind) {
    case 'string': return fc.fullUnicodeString({ maxLength: 6 });
    case 'bool': return fc.boolean().map(String);
    case 'int32': return fc.integer().map(String);
    case 'uint32': return fc.integer({ min: 0, max: 2 ** 32 - 1 }).map(String);
    default: return fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String);
  }
}

const timestampArb = fc.tuple(fc.integer({ min: -62135596800, max: 253402300799 }), fc.constantFrom(0, 3, 6, 9), fc.integer({ min: 0, max: 999_999_999 }))
  .map(([s, digits, nanos]) => {
    const iso = new Date(s * 1000).toISOString().slice(0, 19);
    const frac = digits === 0 ? '' : '.' + String(nanos).padStart(9, '0').slice(0, digits);
    return JSON.stringify(`${iso}${frac}Z`);
  });

const durationArb = fc.tuple(fc.integer({ min: 0, max: 315576000000 }), fc.integer({ min: 0, max: 999_999_999 }), fc.boolean())
  .map(([s, n, neg]) => JSON.stringify(`${neg ? '-' : ''}${s}${n === 0 ? '' : '.' + String(n).padStart(9, '0')}s`));

const camel = fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,6}$/).filter((s) => !/[A-Z][A-Z0-9]|[0-9][A-Z]/.test(s));
const fieldMaskArb = fc.array(fc.array(camel, { minLength: 1, maxLength: 3 }).map((p) => p.join('.')), { maxLength: 3 }).map((ps) => JSON.stringify(ps.join(',')));

const jsonArb = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v));
const structArb = fc.dictionary(fc.fullUnicodeString({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 })).map((v) => JSON.stringify(v));
const listArb = fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }).map((v) => JSON.stringify(v));

function wktArb(t: Type, depth: number): fc.Arbitrary<string> {
  const info = typeInfo(t);
  switch (info.wkt) {
    case Wkt.Timestamp: return timestampArb;
    case Wkt.Duration: return durationArb;
    case Wkt.FieldMask: return fieldMaskArb;
    case Wkt.Struct: return structArb;
    case Wkt.Value: return jsonArb;
    case Wkt.ListValue: return listArb;
    case Wkt.Empty: return fc.constant('{}');
    case Wkt.Wrapper: { const fi = info.byKey.get('value')!; return scalarArb(fi.kind, fi); }
    case Wkt.Any: {
      const author = root.lookupType('lobbytest.v1.Author');
      return fc.oneof(
        fc.constant('{}'),
        messageArb(author, depth + 1).map((m) => `{"@type":"type.googleapis.com/lobbytest.v1.Author"${m === '{}' ? '}' : ',' + m.slice(1)}`),
        durationArb.map((d) => `{"@type":"type.googleapis.com/google.protobuf.Duration","value":${d}}`),
        structArb.map((s) => `{"value":${s},"@type":"type.googleapis.com/google.protobuf.Struct"}`),
      );
    }
    case Wkt.None: throw new Error('not a WKT');
  }
}

function valueArb(fi: FieldInfo, depth: number): fc.Arbitrary<string> {
  if (fi.kind !== 'message') return fi.isNullValue ? fc.constant('null') : scalarArb(fi.kind, fi);
  const t = fi.messageType!;
  return typeInfo(t).wkt !== Wkt.None ? wktArb(t, depth) : messageArb(t, depth + 1);
}

function fieldArb(fi: FieldInfo, depth: number): fc.Arbitrary<string> {
  if (fi.map) {
    return fc.uniqueArray(fc.tuple(mapKeyArb(fi.keyKind!), valueArb(fi, depth)), { selector: ([k]) => k, maxLength: 3 })
      .map((es) => '{' + es.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',') + '}');
  }
  if (fi.repeated) return fc.array(valueArb(fi, depth), { maxLength: 3 }).map((vs) => `[${vs.join(',')}]`);
  return valueArb(fi, depth);
}

const MAX_NESTING = 2;

export function messageArb(t: Type, depth: number): fc.Arbitrary<string> {
  const info = typeInfo(t);
  const plain = info.fields.filter((f) => f.oneof === null && !(f.messageType === t && depth >= MAX_NESTING));
  const oneofs = [...new Set(info.fields.filter((f) => f.oneof !== null).map((f) => f.oneof!))];
  const entry = (fi: FieldInfo) => fc.tuple(fc.boolean(), fieldArb(fi, depth)).map(([proto, v]) => `${JSON.stringify(proto ? fi.protoName : fi.jsonName)}:${v}`);
  const plainArbs = plain.map((fi) => fc.option(entry(fi), { freq: 3 }));
  const oneofArbs = oneofs.map((name) => fc.option(fc.oneof(...info.fields.filter((f) => f.oneof === name).map(entry))));
  return fc.tuple(fc.tuple(...plainArbs, ...oneofArbs), fc.integer()).map(([entries, seed]) => {
    const present = (entries as (string | null)[]).filter((e): e is string => e !== null);
    // Key order does not matter in JSON: shuffle deterministically from the seed.
    present.sort((a, b) => ((a.length * 31 + seed) % 7) - ((b.length * 31 + seed) % 7));
    return '{' + present.join(',') + '}';
  });
}
