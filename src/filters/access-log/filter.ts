// The access log's data-plane side: one JSON line per finished request, built in onEnd (the
// exchange runs it exactly once, however the request ended) and appended to the worker's
// buffered destination (writer.ts). The line has pino's shape, so pino-pretty reads it:
//   {"level":30,"time":<epoch ms>,"pid":..,"hostname":..,"worker":N,"msg":"request",<fields>}
// The constant part is built once per worker; the fields are chosen at build time (config
// `fields`), each a small writer, so a request pays only for the fields it logs. onRequest
// records when the chain let the request through (the filter runs last, in `transform`): the
// upstream durations are measured from there.
import { performance } from 'node:perf_hooks';
import { hostname } from 'node:os';
import { NEXT, type Filter, type WorkerEnv } from '../../data/chain.js';
import { RESPONSE_FLAG, responseFlagNames, type RequestContext } from '../../data/request-context.js';
import type { AccessLogFilterConfig } from './compile.js';
import type { AccessLogField } from './schema.js';
import { destinationFor } from './writer.js';

type FieldWriter = (ctx: RequestContext, now: number) => string;

/** Milliseconds with microsecond precision, as a JSON number (`1.05` -> "1.050"). Built
 * from integers: a double's shortest-round-trip formatting costs several times more. */
function ms(value: number): string {
  const us = Math.round(value * 1000);
  if (!(us >= 0 && us < 0x7fffffff)) return String(us / 1000);
  const whole = (us / 1000) | 0;
  const frac = us - whole * 1000;
  return whole + (frac < 10 ? '.00' : frac < 100 ? '.0' : '.') + frac;
}

// `,"method":"GET"` per method seen, built once (a few methods make nearly all traffic).
const methodFields = new Map<string, string>();
function methodField(method: string): string {
  let field = methodFields.get(method);
  if (field === undefined) {
    field = ',"method":' + JSON.stringify(method);
    if (methodFields.size < 64) methodFields.set(method, field);
  }
  return field;
}

/** When the upstream side stopped (last byte, or the end of the exchange if it never came). */
function upstreamEnd(ctx: RequestContext, now: number): number {
  return ctx.upstreamLastByteTime !== 0 ? ctx.upstreamLastByteTime : now;
}

// Names, ids and addresses below come from the config (NAME_PATTERN), the correlation id's
// charset (correlation-id.ts), the trace filter's hex or the socket: they need no escaping.
// Client-controlled text (method, path, subject) goes through JSON.stringify.
const WRITERS: Record<AccessLogField, FieldWriter> = {
  correlation_id: (ctx) => ',"correlation_id":"' + ctx.correlationId + '"',
  trace_id: (ctx) => (ctx.traceId !== '' ? ',"trace_id":"' + ctx.traceId + '","span_id":"' + ctx.spanId + '"' : ''),
  method: (ctx) => methodField(ctx.method),
  path: (ctx) => (ctx.path !== '' ? ',"path":' + JSON.stringify(ctx.path) : ''),
  route: (ctx) => (ctx.route !== null ? ',"route":"' + ctx.route.name + '"' : ''),
  service: (ctx) => (ctx.route !== null ? ',"service":"' + ctx.route.service.name + '"' : ''),
  target: (ctx) => (ctx.target !== null ? ',"target":"' + ctx.target.origin + '"' : ''),
  status: (ctx) => ',"status":' + ctx.status,
  bytes_in: (ctx) => ',"bytes_in":' + ctx.bytesIn,
  bytes_out: (ctx) => ',"bytes_out":' + ctx.bytesOut,
  duration_ms: (ctx, now) => ',"duration_ms":' + ms(now - ctx.startTime),
  upstream_connect_ms: (ctx) => (ctx.upstreamStartTime !== 0 && ctx.dispatchTime !== 0
    ? ',"upstream_connect_ms":' + ms(ctx.upstreamStartTime - ctx.dispatchTime) : ''),
  upstream_first_byte_ms: (ctx) => (ctx.upstreamFirstByteTime !== 0 && ctx.dispatchTime !== 0
    ? ',"upstream_first_byte_ms":' + ms(ctx.upstreamFirstByteTime - ctx.dispatchTime) : ''),
  upstream_ms: (ctx, now) => (ctx.dispatchTime !== 0 && ctx.target !== null
    ? ',"upstream_ms":' + ms(upstreamEnd(ctx, now) - ctx.dispatchTime) : ''),
  gateway_ms: (ctx, now) => ',"gateway_ms":' + ms((now - ctx.startTime) -
    (ctx.dispatchTime !== 0 && ctx.target !== null ? upstreamEnd(ctx, now) - ctx.dispatchTime : 0)),
  client_ip: (ctx) => (ctx.clientIp !== '' ? ',"client_ip":"' + ctx.clientIp + '"' : ''),
  subject: (ctx) => (ctx.subject !== '' ? ',"subject":' + JSON.stringify(ctx.subject) : ''),
  rate_limit: (ctx) => ((ctx.responseFlags & RESPONSE_FLAG.RATE_LIMITED) !== 0 ? ',"rate_limit":"limited"'
    : ctx.rateLimit !== '' ? ',"rate_limit":"allowed"' : ''),
  flags: (ctx) => ',"flags":"' + responseFlagNames(ctx.responseFlags) + '"',
  error_code: (ctx) => (ctx.replySpec !== null ? ',"error_code":"' + ctx.replySpec.code + '"' : ''),
  // Rule ids are digits and commas (src/filters/waf): safe to embed.
  waf: (ctx) => (ctx.wafRules !== '' ? ',"waf":{"rules":[' + ctx.wafRules + '],"decision":"' + (!ctx.wafBlocked ? 'scored' : ctx.replySpec?.code === 'waf_blocked' ? 'blocked' : 'reported') + '"}' : ''),
};

/** pino's level number for the access log's lines (info). */
const INFO = 30;

/** `{"level":30,"time":` and, after the time, `,"pid":..,"hostname":..,"worker":N,"msg":"request"`. */
function linePrefix(workerIndex: number): [string, string] {
  return [`{"level":${INFO},"time":`,
    `,"pid":${process.pid},"hostname":${JSON.stringify(hostname())},"worker":${workerIndex},"msg":"request"`];
}

/** Whether an exchange counts as an error for `only_errors`: a 4xx/5xx, or any response flag
 * (a cut upstream, a client gone, a drain) even under a 2xx. */
export function isErrorExchange(ctx: RequestContext): boolean {
  return ctx.status >= 400 || ctx.status === 0 || ctx.responseFlags !== 0;
}

class AccessLogFilter implements Filter {
  readonly name = 'access-log';
  private readonly writers: readonly FieldWriter[];
  private readonly dest: ReturnType<typeof destinationFor>;
  private readonly head: string;
  private readonly pinoFields: string;

  constructor(private readonly config: AccessLogFilterConfig, env: WorkerEnv) {
    this.writers = config.fields.map((f) => WRITERS[f]);
    this.dest = destinationFor(config.path);
    [this.head, this.pinoFields] = linePrefix(env.workerIndex);
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
    let line = this.head + Date.now() + this.pinoFields;
    const writers = this.writers;
    for (let i = 0; i < writers.length; i++) line += writers[i](ctx, now);
    this.dest.write(line + '}\n');
  }
}

export function buildAccessLog(config: AccessLogFilterConfig, env: WorkerEnv): Filter {
  return new AccessLogFilter(config, env);
}
