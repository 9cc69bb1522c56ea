// One authorization service as a worker sees it: its connection pool, its decision cache and
// the checks in flight. Kept per worker, per distinct service settings (`stateKey`), across
// generations and routes: a reload that leaves a service unchanged keeps its warm
// connections and its cache.
//
// The check goes through an undici Pool, not the gateway's upstream client
// (src/data/upstream/): that client is built around relaying one exchange (the route's
// deadlines, retries, breakers, the client response as the sink), while a check is a
// small request whose whole answer is read and judged here. A Pool keeps its connections
// alive, bounds them (`max_connections`) and queues beyond; the timeout is this module's
// own timer (undici's timers tick at about 1 s), which aborts the request.
//
// The Envoy ext_authz HTTP contract (docs/configuration.md#external-authorization):
//   2xx          → allowed; the `allowed_upstream_headers` of the answer go upstream;
//   3xx/4xx      → denied; the answer's status, `allowed_client_headers` and body (up to
//                  MAX_DENIAL_BODY_BYTES) go to the client;
//   5xx, 1xx, 304, no answer, a broken answer, the timeout → a failure: the route's
//                  failure mode decides (filter.ts); never cached.
// A header value that is not a safe byte string (CR, LF, NUL, controls: isFieldValueBytes)
// makes the whole answer a failure: nothing of it reaches the upstream or the client.
import { performance } from 'node:perf_hooks';
import type { Pool } from 'undici';
import { lazily } from '../../shared/lazy-require.js';
import { firedLate } from '../../data/deadlines.js';

// Loaded with the first ext_authz service a worker builds: workers without one do not carry
// undici (src/shared/lazy-require.ts).
const undici = lazily<typeof import('undici')>('undici');
import type { IncomingHttpHeaders } from 'node:http';
import { isFieldValueBytes } from '../../shared/http-syntax.js';
import { log } from '../../shared/log.js';
import { GW_ERR, withStatus } from '../../shared/errors.js';
import type { RequestContext } from '../../data/request-context.js';
import { DecisionCache, type AuthzDecision } from './cache.js';
import type { CompiledAuthzService } from './config.js';
import { MAX_DENIAL_BODY_BYTES } from './names.js';

/** A check that produced no decision. */
export const CHECK_FAILED = { TIMEOUT: 1, UNAVAILABLE: 2 } as const;
export type CheckOutcome = AuthzDecision | typeof CHECK_FAILED.TIMEOUT | typeof CHECK_FAILED.UNAVAILABLE;

/** What a check reports to: the filter of the request that waits for it. */
export interface CheckWaiter {
  settle(ctx: RequestContext, outcome: CheckOutcome): void;
}

interface Waiting {
  readonly ctx: RequestContext;
  readonly waiter: CheckWaiter;
}

/** Failures are logged at most this often per service and worker (a down service fails every request). */
const FAILURE_LOG_INTERVAL_MS = 10_000;

export class AuthzClient {
  readonly cache: DecisionCache | null;
  private readonly pool: Pool;
  /** Checks in flight by cache key (only with a cache): identical requests share one check. */
  private readonly inFlight = new Map<string, Waiting[]>();
  private lastFailureLog = 0;

  constructor(private readonly service: CompiledAuthzService) {
    this.cache = service.cache === null ? null : new DecisionCache(service.cache.entries, service.cache.ttlMs);
    this.pool = new (undici().Pool)(service.origin, {
      connections: service.maxConnections,
      pipelining: 1,
      // Our own timer bounds a check; these only keep a stuck socket from living forever.
      headersTimeout: service.timeoutMs + 1000,
      bodyTimeout: service.timeoutMs + 1000,
      connectTimeout: service.timeoutMs + 1000,
    });
  }

  /** Adds a request to the check in flight for `key`; false when there is none. */
  join(key: string, ctx: RequestContext, waiter: CheckWaiter): boolean {
    const waiting = this.inFlight.get(key);
    if (waiting === undefined) return false;
    waiting.push({ ctx, waiter });
    return true;
  }

  /**
   * Sends a check (`key` '' without a cache) and reports its outcome to `waiter` for `ctx`,
   * and to every request that joined it. Never throws, never rejects.
   */
  check(key: string, method: string, path: string, headers: string[], ctx: RequestContext, waiter: CheckWaiter): void {
    const waiting: Waiting[] = [{ ctx, waiter }];
    if (key !== '') this.inFlight.set(key, waiting);
    void this.ask(method, path, headers).then((outcome) => this.finish(key, waiting, outcome));
  }

  private finish(key: string, waiting: Waiting[], outcome: CheckOutcome): void {
    if (key !== '') {
      this.inFlight.delete(key);
      if (typeof outcome === 'object' && this.cache !== null) this.cache.set(key, outcome, Date.now());
    }
    if (typeof outcome !== 'object') this.logFailure(outcome);
    for (let i = 0; i < waiting.length; i++) waiting[i].waiter.settle(waiting[i].ctx, outcome);
  }

  private async ask(method: string, path: string, headers: string[]): Promise<CheckOutcome> {
    const abort = new AbortController();
    let timedOut = false;
    const timeoutMs = this.service.timeoutMs;
    const armedAt = performance.now();
    const expire = (): void => { timedOut = true; abort.abort(); };
    // Fired stall-late (src/data/deadlines.ts firedLate): an answer that arrived during the
    // stall waits in this turn's poll phase; it gets that turn before the check times out.
    const timer = setTimeout(() => { if (firedLate(armedAt, timeoutMs)) setImmediate(expire); else expire(); }, timeoutMs);
    try {
      const res = await this.pool.request({ method, path, headers, signal: abort.signal });
      const status = res.statusCode;
      if (status >= 200 && status < 300) {
        await res.body.dump();
        const upstream = pickHeaders(res.headers, this.service.upstreamHeaders);
        return upstream === null ? CHECK_FAILED.UNAVAILABLE : { allowed: true, headers: upstream, status: 0, body: null, spec: null };
      }
      if (status < 300 || status >= 500 || status === 304) {
        await res.body.dump();
        return CHECK_FAILED.UNAVAILABLE;
      }
      const client = pickHeaders(res.headers, this.service.clientHeaders);
      const body = await readBounded(res.body);
      if (client === null) return CHECK_FAILED.UNAVAILABLE;
      return denial(status, client, body);
    } catch {
      return timedOut ? CHECK_FAILED.TIMEOUT : CHECK_FAILED.UNAVAILABLE;
    } finally {
      clearTimeout(timer);
    }
  }

  private logFailure(outcome: number): void {
    const now = Date.now();
    if (now - this.lastFailureLog < FAILURE_LOG_INTERVAL_MS) return;
    this.lastFailureLog = now;
    log.warn('ext_authz check failed', {
      service: this.service.name,
      reason: outcome === CHECK_FAILED.TIMEOUT ? `no answer within ${this.service.timeoutMs} ms` : 'unreachable, 5xx or malformed answer',
    });
  }
}

/**
 * The headers of an answer named in `names` (lower case), flat; null when one of their values
 * is not a safe byte string (undici gives values as latin1 byte strings).
 */
export function pickHeaders(headers: IncomingHttpHeaders, names: readonly string[]): string[] | null {
  const out: string[] = [];
  for (const name of names) {
    const value = headers[name];
    if (value === undefined) continue;
    const values = typeof value === 'string' ? [value] : value;
    for (const v of values) {
      if (!isFieldValueBytes(v)) return null;
      out.push(name, v);
    }
  }
  return out;
}

/** A denial, with its reply's parts made once (a cached denial is answered from them as they are). */
export function denial(status: number, headers: string[], body: Buffer | null): AuthzDecision {
  // No body (or one past the bound): the gateway's JSON error with the service's status and
  // headers, but its own content type.
  let sent = headers;
  if (body === null) {
    sent = [];
    for (let i = 0; i < headers.length; i += 2) if (headers[i] !== 'content-type') sent.push(headers[i], headers[i + 1]);
  }
  return { allowed: false, headers: sent, status, body, spec: withStatus(GW_ERR.ext_authz_denied, status) };
}

/** The body, or null when it is empty or longer than MAX_DENIAL_BODY_BYTES (then replaced by the gateway's JSON error). */
async function readBounded(body: AsyncIterable<Buffer> & { destroy(): unknown }): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of body) {
    length += chunk.length;
    if (length > MAX_DENIAL_BODY_BYTES) {
      body.destroy();
      return null;
    }
    chunks.push(chunk);
  }
  return length === 0 ? null : Buffer.concat(chunks, length);
}

const clients = new Map<string, AuthzClient>();

/** This worker's client of a service (one per distinct settings). */
export function authzClient(service: CompiledAuthzService): AuthzClient {
  let client = clients.get(service.stateKey);
  if (client === undefined) {
    client = new AuthzClient(service);
    clients.set(service.stateKey, client);
  }
  return client;
}
