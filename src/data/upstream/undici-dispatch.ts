// undici behind the dispatch shape (dispatch.ts), for requests with a streamed body.
//
// undici's legacy handler callbacks are used underneath (onHeaders gives the raw header
// Buffers; its new API would parse them into an object), adapted here to the dispatch
// handler API with a controller, and undici's error codes are mapped to UPSTREAM_ERR codes
// in this one place, so nothing above this file knows which client carried a request.
import type { Dispatcher, Pool } from 'undici';
import type { UpstreamErrorCode } from '../../shared/errors.js';
import { upstreamError, type DispatchController, type DispatchFn, type DispatchHandler, type DispatchOptions, type HeaderField } from './dispatch.js';

/** The dispatch function of one undici Pool (`pool` is the Pool, or a getter that makes it
 * on first use: pools.ts). */
export function undiciDispatch(pool: Pool | (() => Pool)): DispatchFn {
  const poolOf = typeof pool === 'function' ? pool : () => pool;
  return (options, handler) => {
    poolOf().dispatch({
      path: options.path,
      method: options.method as Dispatcher.HttpMethod,
      headers: options.headers as string[],
      body: options.body,
    }, new UndiciRequest(options, handler));
  };
}

class UndiciRequest implements Dispatcher.DispatchHandler, DispatchController {
  aborted = false;
  paused = false;
  private abortFn: ((err?: Error) => void) | null = null;
  private resumeFn: (() => void) | null = null;
  private connected = false;

  constructor(private readonly options: DispatchOptions, private readonly handler: DispatchHandler) {}

  abort(reason: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.abortFn?.(reason);
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.resumeFn?.();
  }

  // --- undici's legacy callbacks ---------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    this.abortFn = abort;
    this.connected = true;
    if (this.aborted) { abort(); return; }
    this.handler.onRequestStart?.(this, this.options);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.aborted) return false;
    if (statusCode >= 100 && statusCode < 200) return true; // interim responses are not relayed
    this.resumeFn = resume;
    this.handler.onResponseStart?.(this, statusCode, rawHeaders as HeaderField[], statusText);
    return !this.paused;
  }

  onData(chunk: Buffer): boolean {
    if (this.aborted) return false;
    this.handler.onResponseData?.(this, chunk);
    return !this.paused;
  }

  onComplete(trailers: string[] | null): void {
    if (this.aborted) return;
    this.aborted = true;
    this.handler.onResponseEnd?.(this, trailers);
  }

  onError(err: Error & { code?: string }): void {
    if (this.aborted) return;
    this.aborted = true;
    this.handler.onResponseError?.(this, upstreamError(codeOf(err, this.connected), err.message));
  }
}

/** undici's error codes → UPSTREAM_ERR codes. */
export function codeOf(err: Error & { code?: string }, connected: boolean): UpstreamErrorCode {
  switch (err.code) {
    case 'UND_ERR_CONNECT_TIMEOUT': return 'connect_timeout';
    case 'UND_ERR_INVALID_ARG': return 'invalid_request';
    case 'UND_ERR_CLOSED':
    case 'UND_ERR_DESTROYED': return 'pool_closed';
    case 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH': return 'bad_response';
    case 'UND_ERR_SOCKET':
    case 'ECONNRESET':
    case 'EPIPE': return connected ? 'reset' : 'connect_failed';
    default:
      if (err.code?.startsWith('HPE_')) return 'bad_response';
      return connected ? 'reset' : 'connect_failed';
  }
}
