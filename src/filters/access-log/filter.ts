// The access log's data-plane side: one JSON line per finished request, built in onEnd (the
// exchange runs it exactly once, however the request ended) and appended to the worker's
// buffered destination (writer.ts). The line has pino's shape, so pino-pretty reads it:
//   {"level":30,"time":<epoch ms>,"pid":..,"hostname":..,"worker":N,"msg":"request",<fields>}
// The constant parts are bytes built once per worker; the fields are chosen at build time (config
// `fields`), each a case of writeField, so a request pays only for the fields it logs. onRequest
// records when the chain let the request through (the filter runs last, in `transform`): the
// upstream durations are measured from there.
import { performance } from 'node:perf_hooks';
import { hostname } from 'node:os';
import { NEXT, type Filter, type WorkerEnv } from '../../data/chain.js';
import { CLOSED_BY_NAMES, RESPONSE_FLAG, RESPONSE_FLAG_NAMES, responseFlagNames, type RequestContext } from '../../data/request-context.js';
import type { AccessLogFilterConfig } from './compile.js';
import { ACCESS_LOG_FIELDS, type AccessLogField } from './fields.js';
import { destinationFor, type LineSink } from './writer.js';

/** A constant piece of a line, as bytes (all of them are ASCII). */
const bytes = (text: string): Uint8Array => Buffer.from(text, 'latin1');
const numberKey = (name: string): Uint8Array => bytes(`,"${name}":`);
const stringKey = (name: string): Uint8Array => bytes(`,"${name}":"`);
const QUOTE = bytes('"');

/** `,"name":"<text>"` for a string field. */
function stringField(key: Uint8Array, text: string, out: LineSink): void {
  out.raw(key);
  out.text(text);
  out.raw(QUOTE);
}

/** When the upstream side stopped (last byte, or the end of the exchange if it never came). */
function upstreamEnd(ctx: RequestContext, now: number): number {
  return ctx.upstreamLastByteTime !== 0 ? ctx.upstreamLastByteTime : now;
}

const K = {
  correlationId: stringKey('correlation_id'), traceId: stringKey('trace_id'), spanId: bytes('","span_id":"'),
  method: stringKey('method'), path: stringKey('path'), route: stringKey('route'), service: stringKey('service'), apiVersion: stringKey('api_version'),
  target: stringKey('target'), status: numberKey('status'), bytesIn: numberKey('bytes_in'), bytesOut: numberKey('bytes_out'),
  duration: numberKey('duration_ms'), connect: numberKey('upstream_connect_ms'), firstByte: numberKey('upstream_first_byte_ms'),
  upstream: numberKey('upstream_ms'), gateway: numberKey('gateway_ms'), clientIp: stringKey('client_ip'),
  subject: stringKey('subject'), limited: bytes(',"rate_limit":"limited"'), allowed: bytes(',"rate_limit":"allowed"'),
  flags: stringKey('flags'), retries: numberKey('retries'), errorCode: stringKey('error_code'),
  waf: bytes(',"waf":{"rules":['), wafDecision: bytes('],"decision":"'), wafEnd: bytes('"}'),
  wsIn: bytes(',"websocket":{"messages_in":'), wsOut: bytes(',"messages_out":'), wsCode: bytes(',"close_code":'),
  wsBy: bytes(',"closed_by":"'), wsEnd: bytes('"}'),
};

const F = Object.fromEntries(ACCESS_LOG_FIELDS.map((name, i) => [name, i])) as Record<AccessLogField, number>;

/**
 * Writes one field of the line. One function with a switch rather than a writer per field:
 * a loop over twenty closures is a megamorphic call site V8 cannot inline, a switch on a small
 * integer is a jump table with every `out` call inlined. Every string goes through out.text
 * (JSON escaping, UTF-8), whoever made it: client text (method, path, subject) and config
 * names alike.
 */
function writeField(field: number, ctx: RequestContext, now: number, out: LineSink): void {
  switch (field) {
    case F.correlation_id: stringField(K.correlationId, ctx.correlationId, out); break;
    case F.trace_id:
      if (ctx.traceId === '') break;
      out.raw(K.traceId); out.text(ctx.traceId); out.raw(K.spanId); out.text(ctx.spanId); out.raw(QUOTE);
      break;
    case F.method: stringField(K.method, ctx.method, out); break;
    case F.path: if (ctx.path !== '') stringField(K.path, ctx.path, out); break;
    case F.route: if (ctx.route !== null) stringField(K.route, ctx.route.name, out); break;
    case F.service: if (ctx.route !== null) stringField(K.service, ctx.route.service.name, out); break;
    case F.api_version: if (ctx.apiVersion !== '') stringField(K.apiVersion, ctx.apiVersion, out); break;
    case F.target: if (ctx.target !== null) stringField(K.target, ctx.target.origin, out); break;
    case F.status: out.raw(K.status); out.uint(ctx.status); break;
    case F.bytes_in: out.raw(K.bytesIn); out.uint(ctx.bytesIn); break;
    case F.bytes_out: out.raw(K.bytesOut); out.uint(ctx.bytesOut); break;
    case F.duration_ms: out.raw(K.duration); out.millis(now - ctx.startTime); break;
    case F.upstream_connect_ms:
      if (ctx.upstreamStartTime !== 0 && ctx.dispatchTime !== 0) { out.raw(K.connect); out.millis(ctx.upstreamStartTime - ctx.dispatchTime); }
      break;
    case F.upstream_first_byte_ms:
      if (ctx.upstreamFirstByteTime !== 0 && ctx.dispatchTime !== 0) { out.raw(K.firstByte); out.millis(ctx.upstreamFirstByteTime - ctx.dispatchTime); }
      break;
    case F.upstream_ms:
      if (ctx.dispatchTime !== 0 && ctx.target !== null) { out.raw(K.upstream); out.millis(upstreamEnd(ctx, now) - ctx.dispatchTime); }
      break;
    case F.gateway_ms:
      out.raw(K.gateway);
      out.millis((now - ctx.startTime) - (ctx.dispatchTime !== 0 && ctx.target !== null ? upstreamEnd(ctx, now) - ctx.dispatchTime : 0));
      break;
    case F.client_ip: if (ctx.clientIp !== '') stringField(K.clientIp, ctx.clientIp, out); break;
    case F.subject: if (ctx.subject !== '') stringField(K.subject, ctx.subject, out); break;
    case F.rate_limit:
      if ((ctx.responseFlags & RESPONSE_FLAG.RATE_LIMITED) !== 0) out.raw(K.limited);
      else if (ctx.rateLimit !== '') out.raw(K.allowed);
      break;
    case F.flags: stringField(K.flags, responseFlagNames(ctx.responseFlags), out); break;
    case F.retries: if (ctx.retries !== 0) { out.raw(K.retries); out.uint(ctx.retries); } break;
    case F.waf:
      // Rule ids are digits and commas (src/filters/waf), written as a JSON array's contents.
      if (ctx.wafRules === '') break;
      out.raw(K.waf); out.text(ctx.wafRules); out.raw(K.wafDecision);
      out.text(!ctx.wafBlocked ? 'scored' : ctx.replySpec?.code === 'waf_blocked' ? 'blocked' : 'reported');
      out.raw(K.wafEnd);
      break;
    case F.error_code: if (ctx.replySpec !== null) stringField(K.errorCode, ctx.replySpec.code, out); break;
    case F.websocket: {
      // A relayed WebSocket connection (the line is written when it closes).
      const ws = ctx.websocket;
      if (ws === null || !ws.opened) break;
      out.raw(K.wsIn); out.uint(ws.messagesIn); out.raw(K.wsOut); out.uint(ws.messagesOut);
      out.raw(K.wsCode); out.uint(ws.closeCode); out.raw(K.wsBy); out.text(CLOSED_BY_NAMES[ws.closedBy]); out.raw(K.wsEnd);
      break;
    }
  }
}

/** pino's level number for the access log's lines (info). */
const INFO = 30;

/** `{"level":30,"time":` and, after the time, `,"pid":..,"hostname":..,"worker":N,"msg":"request"`. */
function linePrefix(workerIndex: number): [Uint8Array, Uint8Array] {
  return [bytes(`{"level":${INFO},"time":`),
    Buffer.from(`,"pid":${process.pid},"hostname":${JSON.stringify(hostname())},"worker":${workerIndex},"msg":"request"`, 'utf8')];
}

const CLOSE = bytes('}');

/**
 * The most bytes a line takes apart from the strings of its request and route: the constant
 * parts, numbers (at most 24 bytes each), every response flag, an error code and the WAF's
 * decision (escaped: 6 bytes per char), all counted as if present. onEnd adds 6 bytes per char
 * of the rest. It must be an upper bound: a byte past the batch is dropped (typed-array writes
 * out of range are), and LineSink.end() then takes the whole line back and reports the fault.
 */
function fixedMax(pieces: readonly Uint8Array[]): number {
  // + the longest WAF decision word ('reported') and closed_by name ('upstream'), escaped.
  let n = 1 + 24 * 16 + 6 * 64 + 6 * 8 + 6 * 8;
  for (const p of pieces) n += p.length;
  for (const [, name] of RESPONSE_FLAG_NAMES) n += 6 * (name.length + 1);
  return n;
}

/** Whether an exchange counts as an error for `only_errors`: a 4xx/5xx, or any response flag
 * (a cut upstream, a client gone, a drain) even under a 2xx. */
export function isErrorExchange(ctx: RequestContext): boolean {
  return ctx.status >= 400 || ctx.status === 0 || ctx.responseFlags !== 0;
}

class AccessLogFilter implements Filter {
  readonly name = 'access-log';
  /** The configured fields, as indexes into ACCESS_LOG_FIELDS. */
  private readonly fields: Uint8Array;
  private readonly dest: LineSink;
  private readonly head: Uint8Array;
  private readonly pinoFields: Uint8Array;
  private readonly fixedMax: number;

  constructor(private readonly config: AccessLogFilterConfig, env: WorkerEnv) {
    this.fields = Uint8Array.from(config.fields, (f) => F[f]);
    this.dest = destinationFor(config.path);
    [this.head, this.pinoFields] = linePrefix(env.workerIndex);
    this.fixedMax = fixedMax([this.head, this.pinoFields, CLOSE, QUOTE, ...Object.values(K)]);
  }

  onRequest(ctx: RequestContext): typeof NEXT {
    ctx.dispatchTime = performance.now();
    return NEXT;
  }

  onEnd(ctx: RequestContext): void {
    const config = this.config;
    if (config.onlyErrors && !isErrorExchange(ctx)) return;
    if (config.sample < 1 && Math.random() >= config.sample) return;
    const now = performance.now();
    const out = this.dest;
    const route = ctx.route;
    out.begin(this.fixedMax + 6 * (ctx.method.length + ctx.path.length + ctx.subject.length + ctx.correlationId.length
      + ctx.clientIp.length + ctx.traceId.length + ctx.spanId.length + ctx.wafRules.length + ctx.apiVersion.length
      + (route !== null ? route.name.length + route.service.name.length : 0) + (ctx.target !== null ? ctx.target.origin.length : 0)));
    out.raw(this.head);
    out.uint(Date.now());
    out.raw(this.pinoFields);
    const fields = this.fields;
    for (let i = 0; i < fields.length; i++) writeField(fields[i], ctx, now, out);
    out.raw(CLOSE);
    out.end();
  }
}

export function buildAccessLog(config: AccessLogFilterConfig, env: WorkerEnv): Filter {
  return new AccessLogFilter(config, env);
}
