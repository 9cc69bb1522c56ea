// A small client for Lobby's admin API in tests.
import { request } from 'undici';

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
