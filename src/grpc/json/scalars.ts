// Text forms of proto3 JSON scalars and of the well-known types with a string form, shared by the
// body codec and the path/query bindings. Integers go through BigInt, never through a JS Number.
import { ProtoJsonError } from './errors.js';

const INT_TEXT = /^(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([+-]?[0-9]+))?$/;

/** The exact integer a JSON number text denotes ("1e3", "5.0" are integers; "1.5" is not), or
 * null when it is not an integer or is absurdly large. */
export function integerOf(text: string): bigint | null {
  const m = INT_TEXT.exec(text);
  if (m === null) return null;
  let digits = m[2]! + (m[3] ?? '');
  let exp = (m[4] === undefined ? 0 : Number(m[4])) - (m[3]?.length ?? 0);
  if (exp < 0) {
    const cut = digits.length + exp;
    const dropped = cut <= 0 ? digits : digits.slice(cut);
    if (!/^0*$/.test(dropped)) return null;
    digits = cut <= 0 ? '0' : digits.slice(0, cut);
    exp = 0;
  }
  digits = digits.replace(/^0+(?=.)/, '');
  if (digits !== '0' && digits.length + exp > 40) return null; // far beyond 2^64
  const v = BigInt(digits + (digits === '0' ? '' : '0'.repeat(exp)));
  return m[1] === '-' ? -v : v;
}

export interface IntRange { min: bigint; max: bigint; name: string }
export const INT32: IntRange = { min: -(2n ** 31n), max: 2n ** 31n - 1n, name: 'an int32' };
export const UINT32: IntRange = { min: 0n, max: 2n ** 32n - 1n, name: 'a uint32' };
export const INT64: IntRange = { min: -(2n ** 63n), max: 2n ** 63n - 1n, name: 'an int64' };
export const UINT64: IntRange = { min: 0n, max: 2n ** 64n - 1n, name: 'a uint64' };

export function intInRange(text: string, r: IntRange, path: string): bigint {
  const v = integerOf(text);
  if (v === null) throw new ProtoJsonError(path, `expected ${r.name} (an integer as a JSON number or a decimal string)`);
  if (v < r.min || v > r.max) throw new ProtoJsonError(path, `${r.name} value out of range`);
  return v;
}

const FLOAT_TEXT = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;
const FLOAT_MAX = 3.4028234663852886e38;

/** A double or float from a JSON number text or a string ("NaN", "Infinity", "-Infinity" or a
 * number). Finite text that overflows the type is an error, not Infinity. */
export function floatOf(text: string, isString: boolean, single: boolean, path: string): number {
  const what = single ? 'a float' : 'a double';
  if (isString) {
    if (text === 'NaN') return NaN;
    if (text === 'Infinity') return Infinity;
    if (text === '-Infinity') return -Infinity;
  }
  if (!FLOAT_TEXT.test(text)) throw new ProtoJsonError(path, `expected ${what} (a JSON number, or "NaN", "Infinity", "-Infinity")`);
  const v = Number(text);
  if (!Number.isFinite(v) || (single && Math.abs(v) > FLOAT_MAX)) throw new ProtoJsonError(path, `${what} value out of range`);
  return single ? Math.fround(v) : v;
}

/** Proto3 JSON text of a double: NaN and the infinities as strings, -0 kept. */
export function printDouble(v: number): string {
  if (Number.isFinite(v)) return Object.is(v, -0) ? '-0' : String(v);
  return Number.isNaN(v) ? '"NaN"' : v > 0 ? '"Infinity"' : '"-Infinity"';
}

/** The shortest decimal that reads back as the same float32 (0.1f prints as 0.1, not
 * 0.10000000149011612). */
export function printFloat(v: number): string {
  if (!Number.isFinite(v) || v === 0) return printDouble(v);
  for (let p = 1; p < 9; p++) {
    const s = Number(v.toPrecision(p));
    if (Math.fround(s) === v) return String(s);
  }
  return String(Number(v.toPrecision(9)));
}

const BASE64 = /^(?:[A-Za-z0-9+/]*|[A-Za-z0-9\-_]*)={0,2}$/;

/** Standard or URL-safe base64, padded or not (not mixed within one value). */
export function base64Decode(text: string, path: string): Uint8Array {
  const body = text.replace(/=+$/, '');
  if (!BASE64.test(text) || body.length % 4 === 1 || (text.length !== body.length && text.length % 4 !== 0)) {
    throw new ProtoJsonError(path, 'expected bytes as standard or URL-safe base64');
  }
  return Buffer.from(body.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
}

export function base64Encode(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

// ---- Timestamp -------------------------------------------------------------------------------

const TS_MIN = -62135596800; // 0001-01-01T00:00:00Z
const TS_MAX = 253402300799; // 9999-12-31T23:59:59Z
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/** Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(z: number): [number, number, number] {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor((doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365);
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** RFC 3339 text -> [seconds, nanos] since the epoch, within 0001-01-01 .. 9999-12-31. */
export function parseTimestamp(text: string, path: string): [number, number] {
  const m = RFC3339.exec(text);
  const bad = (): never => { throw new ProtoJsonError(path, 'expected a Timestamp in RFC 3339 form, e.g. "1972-01-01T10:00:20.021Z"'); };
  if (m === null) return bad();
  const [y, mo, d, h, mi, s] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number) as [number, number, number, number, number, number];
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  if (mo < 1 || mo > 12 || d < 1 || d > (mo === 2 && !leap ? 28 : DAYS_IN_MONTH[mo - 1]!) || h > 23 || mi > 59 || s > 59) return bad();
  let secs = daysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s;
  if (m[8] !== undefined) {
    const oh = Number(m[9]);
    const om = Number(m[10]);
    if (oh > 23 || om > 59) return bad();
    secs -= (m[8] === '-' ? -1 : 1) * (oh * 3600 + om * 60);
  }
  if (secs < TS_MIN || secs > TS_MAX) throw new ProtoJsonError(path, 'Timestamp out of range (0001-01-01 to 9999-12-31)');
  return [secs, m[7] === undefined ? 0 : Number(m[7].padEnd(9, '0'))];
}

function pad(n: number, w: number): string {
  return String(n).padStart(w, '0');
}

/** 0, 3, 6 or 9 fractional digits, as the proto3 JSON spec prints them. */
function fraction(nanos: number): string {
  if (nanos === 0) return '';
  if (nanos % 1_000_000 === 0) return '.' + pad(nanos / 1_000_000, 3);
  if (nanos % 1000 === 0) return '.' + pad(nanos / 1000, 6);
  return '.' + pad(nanos, 9);
}

export function printTimestamp(seconds: number, nanos: number, path: string): string {
  if (seconds < TS_MIN || seconds > TS_MAX || nanos < 0 || nanos > 999_999_999 || !Number.isInteger(seconds)) {
    throw new ProtoJsonError(path, 'Timestamp out of range');
  }
  const days = Math.floor(seconds / 86400);
  let rest = seconds - days * 86400;
  const [y, mo, d] = civilFromDays(days);
  const h = Math.floor(rest / 3600);
  rest -= h * 3600;
  const mi = Math.floor(rest / 60);
  return `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}T${pad(h, 2)}:${pad(mi, 2)}:${pad(rest - mi * 60, 2)}${fraction(nanos)}Z`;
}

// ---- Duration --------------------------------------------------------------------------------

const DUR_MAX = 315_576_000_000; // 10,000 years
const DURATION = /^(-)?(\d{1,12})(?:\.(\d{1,9}))?s$/;

export function parseDuration(text: string, path: string): [number, number] {
  const m = DURATION.exec(text);
  if (m === null) throw new ProtoJsonError(path, 'expected a Duration as seconds with an "s" suffix, e.g. "1.5s" or "-0.5s"');
  const secs = Number(m[2]);
  const nanos = m[3] === undefined ? 0 : Number(m[3].padEnd(9, '0'));
  if (secs > DUR_MAX) throw new ProtoJsonError(path, 'Duration out of range (at most 315576000000s either way)');
  return m[1] === '-' ? [secs === 0 ? 0 : -secs, nanos === 0 ? 0 : -nanos] : [secs, nanos];
}

export function printDuration(seconds: number, nanos: number, path: string): string {
  if (Math.abs(seconds) > DUR_MAX || Math.abs(nanos) > 999_999_999 || (seconds > 0 && nanos < 0) || (seconds < 0 && nanos > 0)) {
    throw new ProtoJsonError(path, 'Duration out of range or with mixed signs');
  }
  const neg = seconds < 0 || nanos < 0;
  return `${neg ? '-' : ''}${Math.abs(seconds)}${fraction(Math.abs(nanos))}s`;
}

// ---- FieldMask -------------------------------------------------------------------------------

/** JSON "user.displayName,photo" -> paths ["user.display_name", "photo"]. */
export function parseFieldMask(text: string, path: string): string[] {
  if (text === '') return [];
  return text.split(',').map((p) => {
    if (!/^[A-Za-z0-9.]+$/.test(p)) throw new ProtoJsonError(path, 'expected a FieldMask as comma-separated lowerCamel paths');
    return p.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
  });
}

/** Paths that would not read back the same (upper case, "_" not before a lower-case letter) are an error. */
export function printFieldMask(paths: readonly string[], path: string): string {
  return paths.map((p) => {
    if (!/^(?:[a-z0-9.]|_[a-z])*$/.test(p)) throw new ProtoJsonError(path, 'FieldMask path has no lowerCamel form');
    return p.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
  }).join(',');
}
