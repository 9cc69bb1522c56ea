// The tracing filter's data-plane side (phase `edge`, first): reads the client's traceparent
// and tracestate among the forwarded headers, keeps a valid trace (trace id, sampled flag,
// the caller's span as parent) or starts a new one (sampled with the configured ratio), and
// replaces the header with Lobby's hop: a new span id. The header stays in ctx.headers, so it
// is checked with every other header where the upstream request is encoded (request-head.ts).
// With OTLP export, onEnd queues one span per sampled request (otlp.ts).
import { NEXT, type Filter, type WorkerEnv } from '../../data/chain.js';
import { responseFlagNames, type RequestContext } from '../../data/request-context.js';
import type { TracingFilterConfig } from './compile.js';
import { formatTraceParent, newSpanId, newTraceId, parseTraceParent, validTraceState } from './trace-context.js';
import { exporterFor, intAttr, stringAttr, unixNanos, type OtlpExporter } from './otlp.js';

const SPAN_KIND_SERVER = 2;
const STATUS_ERROR = 2;

class TracingFilter implements Filter {
  readonly name = 'tracing';
  private readonly exporter: OtlpExporter | null;

  constructor(private readonly config: TracingFilterConfig, env: WorkerEnv) {
    this.exporter = config.otlp !== null ? exporterFor(config.otlp, env.workerIndex) : null;
  }

  onRequest(ctx: RequestContext): typeof NEXT {
    const h = ctx.headers;
    let parent = -1;
    let parents = 0;
    let state = '';
    // Scan once; the client's copies are removed (a valid one is re-sent with Lobby's span id).
    for (let i = h.length - 2; i >= 0; i -= 2) {
      const name = h[i];
      if (name.length === 11 && name === 'traceparent') {
        parents++;
        parent = i;
      } else if (name.length === 10 && name === 'tracestate') {
        state = state === '' ? h[i + 1] : h[i + 1] + ',' + state; // copies combine in order
        h.splice(i, 2);
        if (parent > i) parent -= 2;
      }
    }
    const parsed = parents === 1 ? parseTraceParent(h[parent + 1]) : null;
    if (parents > 0) {
      for (let i = h.length - 2; i >= 0; i -= 2) if (h[i] === 'traceparent') h.splice(i, 2);
    }
    ctx.spanId = newSpanId();
    if (parsed !== null) {
      ctx.traceId = parsed.traceId;
      ctx.parentSpanId = parsed.parentId;
      ctx.traceSampled = parsed.sampled;
      state = state !== '' ? validTraceState(state) : '';
    } else {
      ctx.traceId = newTraceId();
      ctx.traceSampled = this.config.sample >= 1 || (this.config.sample > 0 && Math.random() < this.config.sample);
      state = ''; // a tracestate without a valid traceparent is dropped (Trace Context §3.3)
    }
    h.push('traceparent', formatTraceParent(ctx.traceId, ctx.spanId, ctx.traceSampled));
    if (state !== '') h.push('tracestate', state);
    return NEXT;
  }

  onEnd(ctx: RequestContext): void {
    const exporter = this.exporter;
    if (exporter === null || !ctx.traceSampled || ctx.traceId === '') return;
    const route = ctx.route!;
    const attrs = [
      stringAttr('http.request.method', ctx.method), stringAttr('url.path', ctx.path),
      intAttr('http.response.status_code', ctx.status), stringAttr('lobby.route', route.name),
      stringAttr('lobby.service', route.service.name), stringAttr('lobby.correlation_id', ctx.correlationId),
      stringAttr('lobby.response_flags', responseFlagNames(ctx.responseFlags)),
    ];
    if (ctx.clientIp !== '') attrs.push(stringAttr('client.address', ctx.clientIp));
    if (ctx.target !== null) attrs.push(stringAttr('lobby.target', ctx.target.origin));
    if (ctx.replySpec !== null) attrs.push(stringAttr('lobby.error_code', ctx.replySpec.code));
    const failed = ctx.status >= 500 || ctx.status === 0;
    exporter.add('{"traceId":"' + ctx.traceId + '","spanId":"' + ctx.spanId + '"' +
      (ctx.parentSpanId !== '' ? ',"parentSpanId":"' + ctx.parentSpanId + '"' : '') +
      ',"name":' + JSON.stringify(ctx.method + ' ' + route.name) + ',"kind":' + SPAN_KIND_SERVER +
      ',"startTimeUnixNano":"' + unixNanos(ctx.startTime) + '","endTimeUnixNano":"' + unixNanos(performance.now()) + '"' +
      ',"attributes":[' + attrs.join(',') + ']' +
      (failed ? ',"status":{"code":' + STATUS_ERROR + ',"message":' + JSON.stringify(ctx.replySpec?.code ?? 'upstream error') + '}' : ',"status":{}') +
      '}');
  }
}

export function buildTracing(config: TracingFilterConfig, env: WorkerEnv): Filter {
  return new TracingFilter(config, env);
}
