// The one shape every upstream request takes, whichever client carries it.
//
// `dispatch(options, handler)` with undici's handler API (undici/lib/handler/decorator-
// handler.js): onRequestStart, onResponseStart, onResponseData, onResponseEnd,
// onResponseError, each given the request's controller (abort, pause, resume). Two things
// differ from undici, both for speed: response headers are the flat raw list
// [name, value, ...] (strings from the fast client, Buffers from undici), never an object,
// and errors are UpstreamErrors with a code from UPSTREAM_ERR (src/shared/errors.ts).
//
// Upstream policies are interceptors, `(next) => dispatch`, composed once per service per
// generation (undici's compose()): retries, breakers and health bookkeeping are written once
// and apply to both clients.
import type { Readable } from 'node:stream';
import type { UpstreamErrorCode } from '../../shared/errors.js';
import type { RequestHead } from './request-head.js';

/** A response header name or value: a string from the fast client, a Buffer from undici. */
export type HeaderField = Buffer | string;

/** A target's two clients: the purpose-built one (buffered or no body) and undici (streams). */
export interface UpstreamTarget {
  readonly fast: DispatchFn;
  readonly general: DispatchFn;
  /** Its slot in the health table (src/shared/health-table.ts): outlier.ts counts its
   * failures there. -1 or absent: no health policy. */
  readonly healthSlot?: number;
}

export interface DispatchOptions {
  /** Where the request goes (the balancer chose it before the head was encoded: Host). */
  readonly target: UpstreamTarget;
  readonly method: string;
  /** Request-target, checked (request-head.ts). */
  readonly path: string;
  /** Flat [name, value, ...] byte strings, Host included, all checked (request-head.ts). */
  readonly headers: readonly string[];
  /** A buffered body, a stream, or null. */
  readonly body: Buffer | Readable | null;
  /** The encoded head for the fast client (null when the body is a stream). */
  readonly head: RequestHead | null;
  /** GET/HEAD/OPTIONS/PUT/DELETE/TRACE: may be sent again (retries decide by this). */
  readonly idempotent: boolean;
}

export interface DispatchController {
  /** Ends the request: the connection is closed unless the response was complete. */
  abort(reason: Error): void;
  /** Stops reading the response (backpressure) until resume(). */
  pause(): void;
  resume(): void;
  readonly aborted: boolean;
  readonly paused: boolean;
}

export interface DispatchHandler {
  /** The request is on its way (a connection is assigned); the controller is the request's. */
  onRequestStart?(controller: DispatchController, context: unknown): void;
  /** `headers` is a fresh array per response that the handler owns (it may edit it in place). */
  onResponseStart?(controller: DispatchController, statusCode: number, headers: HeaderField[], statusMessage: string): void;
  onResponseData?(controller: DispatchController, chunk: Buffer): void;
  onResponseEnd?(controller: DispatchController, trailers: HeaderField[] | null): void;
  onResponseError?(controller: DispatchController, err: UpstreamError): void;
}

export type DispatchFn = (options: DispatchOptions, handler: DispatchHandler) => void;
export type Interceptor = (next: DispatchFn) => DispatchFn;

/** An upstream failure with its code (the table says what the client gets). */
export interface UpstreamError extends Error {
  readonly code: UpstreamErrorCode;
}

/** An UpstreamError without a stack: these are expected outcomes on the request path. */
export function upstreamError(code: UpstreamErrorCode, message: string): UpstreamError {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  const err = new Error(message) as Error & { code: UpstreamErrorCode };
  Error.stackTraceLimit = limit;
  err.code = code;
  return err;
}

/** The base of every service's chain: the fast client when the head is encoded, else undici. */
export const toTarget: DispatchFn = (options, handler) => {
  if (options.head !== null) options.target.fast(options, handler);
  else options.target.general(options, handler);
};

/** undici's compose(): the first interceptor is the outermost. Done once per service. */
export function compose(base: DispatchFn, interceptors: readonly Interceptor[]): DispatchFn {
  let dispatch = base;
  for (let i = interceptors.length - 1; i >= 0; i--) dispatch = interceptors[i](dispatch);
  return dispatch;
}
