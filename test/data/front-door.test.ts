// The front door's header pass (src/data/front-door.ts readRequestHead), driven with a
// request shaped as uWS hands it over (forEach over lower-case names, values as text).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readRequestHead } from '../../src/data/front-door.js';
import { RequestContext } from '../../src/data/request-context.js';
import { GATEWAY_OWNED_REQUEST_HEADERS } from '../../src/shared/http-syntax.js';
import type { HttpRequest } from '../../src/data/uws.js';

const LIMITS = { maxUrlBytes: 8192, maxHeaderBytes: 65536, maxBodyBytes: 1 << 20 };

function scan(headers: [string, string][]): RequestContext {
  const ctx = new RequestContext({} as never, {} as never, 0);
  ctx.method = 'GET';
  const req = { forEach(cb: (k: string, v: string) => void) { for (const [k, v] of headers) cb(k, v); } } as unknown as HttpRequest;
  readRequestHead(ctx, req, LIMITS, '/');
  return ctx;
}

describe('front door', () => {
  it('forwards none of the headers the gateway owns (GATEWAY_OWNED_REQUEST_HEADERS matches the code)', () => {
    const owned = [...GATEWAY_OWNED_REQUEST_HEADERS];
    const values: Record<string, string> = { host: 'a', 'content-length': '0', 'transfer-encoding': 'chunked', connection: 'keep-alive' };
    const ctx = scan([...owned.map((name): [string, string] => [name, values[name] ?? 'v']), ['x-kept', '1']]);
    assert.deepEqual(ctx.headers, ['x-kept', '1']);
  });

  it('drops header names with an underscore, as nginx does: X_User_Id never stands in for X-User-Id', () => {
    const ctx = scan([['host', 'a'], ['x_user_id', 'admin'], ['x-user-id', 'spoof'], ['accept', '*/*']]);
    assert.deepEqual(ctx.headers, ['x-user-id', 'spoof', 'accept', '*/*']);
  });

  it('keeps values as byte strings: the UTF-8 of what uWS decoded', () => {
    const ctx = scan([['host', 'a'], ['x-note', 'caf\u00e9 \u010d']]);
    assert.equal(Buffer.from(ctx.headers[1], 'latin1').toString('utf8'), 'caf\u00e9 \u010d');
  });
});
