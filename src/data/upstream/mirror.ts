// Request mirroring (docs/traffic-splitting.md#mirroring): a copy of a route's request goes to
// the route's mirror service right after the client's request was handed to its upstream
// client. The copy is fire-and-forget: its response is read and discarded, its failures and
// timeouts end it quietly, and nothing of it ever reaches the client's exchange (it holds no
// reference to the request context). Its load is bounded per worker (max_in_flight; a copy
// beyond it is dropped), and every outcome is counted (lobby_mirror_requests_total).
//
// The copy is the request as the upstream gets it: method, path after strip_prefix/rewrite,
// the client's headers and the gateway's own (X-Forwarded-*, the correlation id, the
// deadline), the mirror target's Host (the client's with preserve_host), plus
// `X-Lobby-Mirror: <route>`, a header the front door drops from every client request, so only
// a copy carries it. Only buffered bodies up to max_body_bytes are copied: a streamed body is
// read once, by the client's upstream request.
import { coarseNow } from '../deadlines.js';
import { MIRROR_HEADER } from '../../shared/http-syntax.js';
import { MIRROR_RESULT } from '../../shared/metrics-layout.js';
import type { RequestContext, RuntimeMirror, RuntimeTarget } from '../request-context.js';
import { upstreamError, type DispatchController, type DispatchFn, type DispatchHandler, type DispatchOptions } from './dispatch.js';
import { encodeRequestHead, type RequestHead } from './request-head.js';

/** How often open copies are checked against their deadlines (mirrors need no 10 ms precision). */
const SWEEP_MS = 50;

const open = new Set<MirrorCall>();
let sweeper: NodeJS.Timeout | null = null;

function count(mirror: RuntimeMirror, result: number): void {
  if (mirror.counters !== null) mirror.counters[mirror.countersAt + result]++;
}

/**
 * Mirrors the request just forwarded, when the route's percent samples it. `headers` is the
 * list the client's request was encoded from; `hostAt` the index of its Host value (-1: the
 * client's Host is kept). Never throws into the caller's exchange: it is past its dispatch.
 */
export function mirrorRequest(ctx: RequestContext, mirror: RuntimeMirror, headers: readonly string[], hostAt: number): void {
  if (mirror.percent < 100 && Math.random() * 100 >= mirror.percent) return;
  const body = ctx.body;
  if (body !== null && (!Buffer.isBuffer(body) || body.length > mirror.maxBodyBytes)) { count(mirror, MIRROR_RESULT.SKIPPED_BODY); return; }
  if (mirror.inFlight.n >= mirror.maxInFlight) { count(mirror, MIRROR_RESULT.DROPPED); return; }
  const service = mirror.service;
  const target = service.pick(service.targets);
  if (target === null) { count(mirror, MIRROR_RESULT.FAILED); return; }
  const h = headers.slice();
  if (hostAt >= 0) h[hostAt] = target.hostHeader;
  h.push(MIRROR_HEADER, mirror.routeName);
  // Checked like every head (request-head.ts): the parts the client's passed, the target's Host and the route name are config.
  const head = encodeRequestHead(ctx.method, ctx.upstreamPath, h);
  if (head === null) { count(mirror, MIRROR_RESULT.FAILED); return; }
  const call = new MirrorCall(mirror, target, ctx.method, ctx.upstreamPath, h, body, head);
  call.send(service.dispatch);
}

/** Aborts the copies whose phase deadline passed; stops itself when none is open. */
function sweep(): void {
  const now = coarseNow;
  for (const call of open) if (now >= call.deadline) call.timedOut();
  if (open.size === 0 && sweeper !== null) { clearInterval(sweeper); sweeper = null; }
}

// A copy that timed out counts as a failure for the mirror service's breaker, as the client's
// requests do: before a connection was assigned as a connect timeout, after it as a cut exchange.
const CONNECT_TIMED_OUT = upstreamError('connect_timeout', 'mirror request: no connection in time');
const RESPONSE_TIMED_OUT = upstreamError('reset', 'mirror request: no response in time');

/** One copy: its dispatch options and handler in one object, as the client's UpstreamCall is. */
class MirrorCall implements DispatchOptions, DispatchHandler {
  readonly idempotent: boolean;
  /** What the retry interceptor of a service with retries records (a copy is never retried). */
  retryNext: DispatchFn | null = null;
  budget: unknown = null;
  /** Coarse-clock end of the current phase: connect, then response head, then each body chunk. */
  deadline: number;
  private controller: DispatchController | null = null;
  private done = false;

  constructor(
    private readonly mirror: RuntimeMirror,
    readonly target: RuntimeTarget,
    readonly method: string,
    readonly path: string,
    readonly headers: string[],
    readonly body: Buffer | null,
    readonly head: RequestHead,
  ) {
    this.idempotent = false;
    this.deadline = coarseNow + mirror.service.connectMs;
  }

  send(dispatch: DispatchFn): void {
    this.mirror.inFlight.n++;
    this.target.inFlight++;
    open.add(this);
    if (sweeper === null) sweeper = setInterval(sweep, SWEEP_MS).unref();
    try {
      dispatch(this, this);
    } catch {
      this.finish(MIRROR_RESULT.FAILED);
    }
  }

  timedOut(): void {
    this.controller?.abort(this.controller === null ? CONNECT_TIMED_OUT : RESPONSE_TIMED_OUT);
    this.finish(MIRROR_RESULT.FAILED);
  }

  private finish(result: number): void {
    if (this.done) return;
    this.done = true;
    open.delete(this);
    this.mirror.inFlight.n--;
    this.target.inFlight--;
    count(this.mirror, result);
  }

  onRequestStart(controller: DispatchController): void {
    this.controller = controller;
    // Timed out while waiting for a connection: nothing more is wanted.
    if (this.done) { controller.abort(CONNECT_TIMED_OUT); return; }
    this.deadline = coarseNow + this.mirror.service.responseMs;
  }

  onResponseStart(): void {
    this.deadline = coarseNow + this.mirror.service.idleMs;
  }

  onResponseData(): void {
    this.deadline = coarseNow + this.mirror.service.idleMs;
  }

  onResponseEnd(): void {
    this.finish(MIRROR_RESULT.SENT);
  }

  onResponseError(): void {
    this.finish(MIRROR_RESULT.FAILED);
  }
}
