// A small client for Lobby's admin API in tests.
import { request } from 'undici';
import type { BreakerStatus } from '../../src/control/breaker-store.js';

export interface AdminResponse {
  status: number;
  body: any;
  headers: Record<string, string | string[] | undefined>;
}

export interface AdminClient {
  readonly url: string;
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<AdminResponse>;
  get(path: string): Promise<AdminResponse>;
  put(path: string, body: unknown): Promise<AdminResponse>;
  post(path: string, body?: unknown): Promise<AdminResponse>;
  del(path: string): Promise<AdminResponse>;
  /** Polls GET /readyz until 200 (throws after timeoutMs with the last answer). */
  waitReady(timeoutMs?: number): Promise<void>;
}

export function adminClient(port: number, token?: string): AdminClient {
  const url = `http://127.0.0.1:${port}`;
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<AdminResponse> => {
    const res = await request(url + path, {
      method: method as 'GET',
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.body.text();
    let parsed: unknown = text;
    try { parsed = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.statusCode, body: parsed, headers: res.headers };
  };
  return {
    url,
    call,
    get: (path) => call('GET', path),
    put: (path, body) => call('PUT', path, body),
    post: (path, body) => call('POST', path, body),
    del: (path) => call('DELETE', path),
    async waitReady(timeoutMs = 10_000) {
      const deadline = Date.now() + timeoutMs;
      let last = '';
      for (;;) {
        try {
          const r = await call('GET', '/readyz');
          if (r.status === 200) return;
          last = JSON.stringify(r.body);
        } catch (error) {
          last = String(error);
        }
        if (Date.now() > deadline) throw new Error(`admin API on ${port} not ready in ${timeoutMs} ms: ${last}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}

/** Polls `check` every 20 ms until it returns true (throws with `what` after timeoutMs). */
export async function waitUntil(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 5_000): Promise<number> {
  const started = Date.now();
  for (;;) {
    if (await check()) return Date.now() - started;
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A breaker as GET /status lists it; `route` names a route's own breaker (null or absent: the service's). */
type ShownBreaker = BreakerStatus & { route?: string | null };

/** The circuit breaker of `service` (of its route `route`, when given) as GET /status shows it. */
export async function breakerStatus(admin: AdminClient, service: string, route: string | null = null): Promise<BreakerStatus> {
  const status = await admin.get('/status');
  return status.body.circuit_breakers.find((b: ShownBreaker) => b.service === service && (b.route ?? null) === route);
}

/**
 * The breaker of `service` (of its route `opts.route`) once `check` holds. A try is counted
 * when its upstream response is complete, which a client can see a moment before: the gateway
 * writes the last byte of a sized body as it relays it, and the worker thread may be preempted
 * before it records the outcome (GET /status reads the shared slots without asking the
 * workers). A transition is counted just after the state changes: wait for the count, not only
 * the state, before asserting it.
 */
export async function breakerOnce(
  admin: AdminClient, service: string, what: string, check: (b: BreakerStatus) => boolean,
  opts: { route?: string | null; timeoutMs?: number } = {},
): Promise<BreakerStatus> {
  let b: BreakerStatus | undefined;
  try {
    await waitUntil(`${opts.route ?? service}: ${what}`, async () => {
      b = await breakerStatus(admin, service, opts.route ?? null);
      return b !== undefined && check(b);
    }, opts.timeoutMs ?? 5_000);
  } catch (err) {
    throw new Error(`${(err as Error).message}; last seen: ${JSON.stringify(b)}`);
  }
  return b!;
}
