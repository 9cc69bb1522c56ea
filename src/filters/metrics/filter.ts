// Data plane: the recorder. onEnd, once per exchange, adds the request to its worker's counters
// (src/shared/metrics-layout.ts): plain increments on a Float64Array this worker alone writes,
// no allocation, no lock, no message. Everything it reads was recorded by the exchange on the
// context (status, bytes, timings, response flags, the local reply's spec).
import type { Histogram } from 'hdr-histogram-js';
import { NEXT, type Filter, type WorkerEnv } from '../../data/chain.js';
import { CLOSED_BY, RESPONSE_FLAG, type RequestContext, type WebSocketLeg } from '../../data/request-context.js';
import {
  AUTH_RESULTS, AUTH_RESULT_INDEX, LOCAL_REPLY_CODES, LOCAL_REPLY_INDEX, RETRY_REASONS, RETRY_SLOTS, UPSTREAM_ERROR_KINDS, WAF_DECISIONS, WAF_RULE_INDEX, WAF_STRIDE,
  WEBSOCKET_CLOSERS, WEBSOCKET_STRIDE, WS_SLOT, bucketIndex, closeCodeSlot, statusSlots,
} from '../../shared/metrics-layout.js';
import type { MetricsFilterConfig, MetricsSlotOffsets } from './compile.js';
import { routeHistogram } from './latency.js';
import { RETRY_BUDGET_EXHAUSTED } from '../../data/upstream/retry.js';
import { MAX_VERSIONS } from '../../shared/api-version.js';

const views = new WeakMap<SharedArrayBuffer, Float64Array>();
function viewOf(sab: SharedArrayBuffer): Float64Array {
  let v = views.get(sab);
  if (v === undefined) { v = new Float64Array(sab); views.set(sab, v); }
  return v;
}

const F = RESPONSE_FLAG;
const UPSTREAM_FLAGS = F.UPSTREAM_CONNECT_FAILURE | F.UPSTREAM_TIMEOUT | F.UPSTREAM_RESET | F.UPSTREAM_PROTOCOL_ERROR | F.UPSTREAM_OVERFLOW;
const OTHER_CODE = LOCAL_REPLY_CODES.length - 1;

/** UPSTREAM_ERROR_KINDS index of the first upstream flag set. */
function upstreamKind(flags: number): number {
  if (flags & F.UPSTREAM_CONNECT_FAILURE) return 0;
  if (flags & F.UPSTREAM_TIMEOUT) return 1;
  if (flags & F.UPSTREAM_RESET) return 2;
  if (flags & F.UPSTREAM_PROTOCOL_ERROR) return 3;
  return 4;
}

/** Slots a config's offsets reach: the size of a private array when the worker gave none (tests, benches). */
function slotsNeeded(c: MetricsFilterConfig): number {
  const slotEnd = (o: MetricsSlotOffsets) => Math.max(
    o.requestsAt + statusSlots(c.statusCodes), o.bytesAt + 2, o.durationAt + c.buckets.length + 2, o.localRepliesAt + LOCAL_REPLY_CODES.length,
    o.upstreamDurationAt + c.upstreamBuckets.length + 2, o.upstreamErrorsAt + UPSTREAM_ERROR_KINDS.length, o.targetErrorsAt + 64, (o.retriesAt ?? -1) + RETRY_SLOTS,
  );
  return 1 + Math.max(
    slotEnd(c), ...(c.members ?? []).map(slotEnd), c.authAt + AUTH_RESULTS.length,
    (c.wafAt ?? -1) + WAF_STRIDE,
    Math.max(-1, ...(c.apiVersionAt ?? [])) + statusSlots(c.statusCodes),
    (c.websocketAt ?? -1) + WEBSOCKET_STRIDE,
  );
}

class MetricsRecorder implements Filter {
  readonly name = 'metrics';
  private readonly f: Float64Array;
  private readonly byClass: boolean;
  private readonly noneSlot: number;
  private readonly bounds: Float64Array;
  private readonly upstreamBounds: Float64Array;
  private readonly hist: Histogram | null;
  /** MetricsFilterConfig.apiVersionAt over every possible ctx.apiVersionIndex + 1 (-1..30), so
   * the lookup never leaves the array; null on a route without API versioning. */
  private readonly versionAt: Int32Array | null;

  constructor(private readonly c: MetricsFilterConfig, env: WorkerEnv) {
    this.f = env.metrics !== undefined ? viewOf(env.metrics) : new Float64Array(slotsNeeded(c));
    this.byClass = c.statusCodes === 'class';
    this.noneSlot = statusSlots(c.statusCodes) - 1;
    this.bounds = Float64Array.from(c.buckets);
    this.upstreamBounds = Float64Array.from(c.upstreamBuckets);
    this.hist = c.latencyReports ? routeHistogram(c.routeName) : null;
    if (c.apiVersionAt === undefined) this.versionAt = null;
    else {
      this.versionAt = new Int32Array(MAX_VERSIONS + 1).fill(-1);
      this.versionAt.set(c.apiVersionAt);
    }
  }

  onRequest(): typeof NEXT {
    return NEXT;
  }

  /** The WAF's fired rules (only requests where some rule fired come here). */
  private countWaf(ctx: RequestContext, at: number): void {
    const decision = !ctx.wafBlocked ? 2 : ctx.replySpec?.code === 'waf_blocked' ? 0 : 1;
    for (const id of ctx.wafRules.split(',')) {
      const i = WAF_RULE_INDEX.get(Number(id));
      if (i !== undefined) this.f[at + i * WAF_DECISION_COUNT + decision]++;
    }
  }

  /** A WebSocket connection opened: counted, and the relay counts its messages into the route's region. */
  onWebSocketOpen(ctx: RequestContext): void {
    const at = this.c.websocketAt;
    if (at === undefined || ctx.websocket === null) return;
    this.f[at + WS_SLOT.OPENED]++;
    ctx.websocket.countInto(this.f, at);
  }

  // Hot path: a dozen array increments (one more on a versioned route), two bucket scans of ~13 compares, one performance.now().
  onEnd(ctx: RequestContext): void {
    const f = this.f;
    const c = this.c;
    // A split member's requests count in its own slot and under its service (the unrouted
    // pseudo-route has no ctx.route).
    const member = ctx.route === null ? -1 : ctx.route.splitMember;
    const o: MetricsSlotOffsets = member < 0 || c.members === undefined ? c : c.members[member];
    const status = ctx.status;
    const slot = status === 0 ? this.noneSlot : this.byClass ? ((status / 100) | 0) - 1 : status - 100;
    f[o.requestsAt + slot]++;
    if (this.versionAt !== null) {
      const at = this.versionAt[ctx.apiVersionIndex + 1];
      if (at >= 0) f[at + slot]++;
    }
    // A relayed WebSocket connection: its close (its messages and bytes were counted as they
    // went); its lifetime stays out of the request bytes, duration and latency families.
    const ws = ctx.websocket;
    const relayed = ws !== null && ws.opened;
    if (relayed && c.websocketAt !== undefined) this.countClose(ws, c.websocketAt);
    const now = performance.now();
    const totalMs = now - ctx.startTime;
    if (!relayed) {
      f[o.bytesAt] += ctx.bytesIn;
      f[c.bytesAt + 1] += ctx.bytesOut;
      const seconds = totalMs / 1000;
      const d = o.durationAt;
      f[d + bucketIndex(this.bounds, seconds)]++;
      f[d + this.bounds.length + 1] += seconds;
    }
    const spec = ctx.replySpec;
    if (spec !== null) f[o.localRepliesAt + (LOCAL_REPLY_INDEX.get(spec.code) ?? OTHER_CODE)]++;
    if (o.upstreamDurationAt >= 0) {
      if (ctx.upstreamStartTime > 0 && !relayed) {
        const end = ctx.upstreamLastByteTime > 0 ? ctx.upstreamLastByteTime : now;
        const up = (end - ctx.upstreamStartTime) / 1000;
        const u = o.upstreamDurationAt;
        f[u + bucketIndex(this.upstreamBounds, up)]++;
        f[u + this.upstreamBounds.length + 1] += up;
      }
      const failed = ctx.responseFlags & UPSTREAM_FLAGS;
      if (failed !== 0) {
        f[o.upstreamErrorsAt + upstreamKind(failed)]++;
        const target = ctx.target;
        if (target !== null) {
          const i = ctx.route!.service.targets.indexOf(target);
          if (i >= 0) f[o.targetErrorsAt + i]++;
        }
      }
    }
    if (c.authAt >= 0) {
      const refusal = spec !== null ? AUTH_RESULT_INDEX.get(spec.code) : undefined;
      if (refusal !== undefined) f[c.authAt + refusal]++;
      // Past authentication: forwarded, or refused by a rate limit after it.
      else if (ctx.target !== null || (ctx.responseFlags & F.RATE_LIMITED) !== 0) f[c.authAt]++;
    }
    if (ctx.retryReasons !== 0 && o.retriesAt !== undefined && o.retriesAt >= 0) this.countRetries(ctx.retryReasons, o.retriesAt);
    if (ctx.wafRules !== '' && c.wafAt !== undefined && c.wafAt >= 0) this.countWaf(ctx, c.wafAt);
    if (this.hist !== null && !relayed) this.hist.recordValue(totalMs < 0.001 ? 1 : Math.round(totalMs * 1000));
  }

  private countClose(ws: WebSocketLeg, at: number): void {
    if (ws.closedBy === CLOSED_BY.NONE) return;
    this.f[at + WS_SLOT.CLOSES + closeCodeSlot(ws.closeCode) * WEBSOCKET_CLOSERS.length + ws.closedBy - 1]++;
  }

  /** The request's per-reason retry counts (4 bits each, src/data/upstream/retry.ts) and the budget bit. */
  private countRetries(packed: number, at: number): void {
    const f = this.f;
    for (let k = 0; k < RETRY_REASONS.length; k++) f[at + k] += (packed >> (k * 4)) & 0xf;
    if (packed & RETRY_BUDGET_EXHAUSTED) f[at + RETRY_REASONS.length]++;
  }
}

/** Slot of a decision for one rule: blocked 0, reported 1, scored 2 (WAF_DECISIONS). */
const WAF_DECISION_COUNT = WAF_DECISIONS.length;

export function buildMetrics(config: MetricsFilterConfig, env: WorkerEnv): Filter {
  return new MetricsRecorder(config, env);
}
