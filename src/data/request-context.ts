// Per-request state. Every field is set in the constructor with its final type, so all
// contexts share one hidden class (fast property access, no dictionary mode).
import type { HttpResponse } from './uws.js';
import type { Readable } from 'node:stream';
import type { Generation, RuntimeRoute, RuntimeTarget } from './generation.js';
import type { UpstreamCall } from './upstream/proxy.js';

/** Where the request is in its life; the deadline ticker reads it. */
export const PHASE = {
  /** Not forwarded yet (front door, filters, reading a buffered body). */
  ACCEPTED: 0,
  /** Routed, waiting for an upstream connection. */
  CONNECTING: 1,
  /** Connected, request body still streaming from the client. */
  SENDING: 2,
  /** Request sent, waiting for response headers. */
  WAITING: 3,
  /** Response headers received, body streaming to the client. */
  STREAMING: 4,
  /** Response finished or connection gone. */
  DONE: 5,
} as const;

/** Requests accepted and not yet answered or abandoned (what a drain waits for), per worker. */
let openRequests = 0;

export function openRequestCount(): number {
  return openRequests;
}

/** A request's life in this worker ended (answered, relayed, or the client went away). Idempotent. */
export function closeRequest(ctx: RequestContext): void {
  if (ctx.open) {
    ctx.open = false;
    openRequests--;
  }
}

export class RequestContext {
  readonly res: HttpResponse;
  gen: Generation;
  route: RuntimeRoute | null = null;
  target: RuntimeTarget | null = null;
  /** Method as sent by the client (case-sensitive). */
  method = '';
  methodBit = 0;
  /** Normalized path (no query). */
  path = '';
  /** Raw query string without `?` ('' when absent). */
  query = '';
  /** Host header as sent ('' when absent). */
  host = '';
  /** Lower-case host without port, for routing. */
  hostName = '';
  clientIp = '';
  correlationId = '';
  /** Client's correlation id header ('' when absent). */
  clientCorrelationId = '';
  /** Client's X-Forwarded-For ('' when absent). */
  forwardedFor = '';
  /** Tokens of the client's Connection header other than keep-alive/close, or ''. */
  connectionTokens = '';
  /** Request headers to forward, flat [name, value, ...], end-to-end headers only. */
  readonly headers: string[] = [];
  headerBytes = 0;
  /** Declared Content-Length, or -1. */
  contentLength = -1;
  chunked = false;
  /** Path (and query) to request upstream, computed right after routing. */
  upstreamPath = '';
  /** Request body to forward: a buffer (small bodies), a stream (large/chunked) or null. */
  body: Buffer | Readable | null = null;
  /** The upstream exchange, created once the request is routed. */
  call: UpstreamCall | null = null;
  /** Headers filters add to the response (flat [name, value, ...]), or null. */
  responseHeaders: string[] | null = null;
  /** The rate-limit filter's RateLimit header value for this request ('' = it sends none), and
   * its X-RateLimit-Limit/-Remaining/-Reset values: set in onRequest, sent by onResponse. */
  rateLimit = '';
  rateLimitLimit = '';
  rateLimitRemaining = '';
  rateLimitReset = '';
  /** Index of the next filter in the route's chain (see chain.ts). */
  nextFilter = 0;
  phase = 0;
  /** Absolute deadline (coarse clock ms) for the current phase; 0 = none. */
  deadline = 0;
  /** The client connection is gone: never touch `res` again. */
  aborted = false;
  /** The response status line has been written to the client. */
  responseStarted = false;
  /** Intrusive list of in-flight requests (deadlines.ts). */
  prevInFlight: RequestContext | null = null;
  nextInFlight: RequestContext | null = null;

  /** Counted in openRequests until closeRequest(). */
  open = true;

  constructor(res: HttpResponse, gen: Generation) {
    this.res = res;
    this.gen = gen;
    openRequests++;
  }
}
