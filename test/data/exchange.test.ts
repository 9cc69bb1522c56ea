// The exchange and the filter phases (issue 10), in process: a real uWS data-plane server
// built from a compiled config exactly as a worker builds it, in front of real upstream
// servers, with one extra filter on the routes: a probe that records every phase call by
// correlation id. It checks that onResponse runs for upstream responses and local replies
// (401, 429) and that a header it sets replaces the upstream's; that onEnd runs exactly once
// however the exchange ends (response, local reply, 502, 504, client abort mid-body, drain);
// and what the exchange records (status, bytes, flags).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { request } from 'undici';
import { compileConfig } from '../../src/control/compile.js';
import { buildFilter } from '../../src/filters/builders.js';
import { buildGeneration, type Generation } from '../../src/data/generation.js';
import { DataPlaneServer } from '../../src/data/server.js';
import { PoolRegistry } from '../../src/data/upstream/pools.js';
import { encodeRouteTable } from '../../src/shared/route-table.js';
import { encodeRouteData } from '../../src/shared/route-data.js';
import { NEXT, RESPONSE_FLAG, responseFlagNames, type Filter, type RequestContext } from '../../src/data/request-context.js';
import type { CompiledFilter } from '../../src/shared/compiled-config.js';
import type { WorkerEnv } from '../../src/data/chain.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { freePort } from '../helpers/ports.js';
import { waitUntil } from '../helpers/admin.js';

interface Seen { requests: number; responses: number[]; ends: number; status: number; flags: number; bytesOut: number; durationMs: number }
const seen = new Map<string, Seen>();
function record(ctx: RequestContext): Seen {
  let s = seen.get(ctx.correlationId);
  if (!s) { s = { requests: 0, responses: [], ends: 0, status: 0, flags: 0, bytesOut: 0, durationMs: 0 }; seen.set(ctx.correlationId, s); }
  return s;
}

/** The probe: a filter with every phase, setting a header on every response it sees. */
const probe: Filter = {
  name: 'probe',
  onRequest(ctx) { record(ctx).requests++; return NEXT; },
  onResponse(ctx, head) {
    record(ctx).responses.push(head.status);
    head.set('Access-Control-Allow-Origin', 'https://gateway.example');
    head.append('vary', 'origin');
    // Values and names no header may carry, set by a (buggy) filter: the exchange must drop
    // them, whichever of its two header paths the list takes.
    const bad = ctx.headers.indexOf('x-probe-bad');
    if (bad !== -1) {
      head.set('x-ok', 'fine');
      head.set('bad name', 'v');
      if (ctx.headers[bad + 1] === 'values') {
        head.set('x-crlf', 'a\r\nx-injected: 1');
        head.set('x-wide', 'caf\u00e9 \u4e2d');
        head.set('x-nul', 'a\u0000b');
      }
    }
  },
  onEnd(ctx) {
    const s = record(ctx);
    s.ends++;
    s.status = ctx.status;
    s.flags = ctx.responseFlags;
    s.bytesOut = ctx.bytesOut;
    s.durationMs = performance.now() - ctx.startTime;
  },
};

let up: Upstream;
let server: DataPlaneServer;
let pools: PoolRegistry;
let port: number;
const HMAC_SECRET = 'exchange-test-secret-of-32-bytes-or-more!';

before(async () => {
  up = await startUpstream('up', (req, res) => {
    const path = req.url ?? '';
    if (path.startsWith('/p/slow')) { setTimeout(() => { if (!res.destroyed) res.end('late'); }, 3000); return; }
    if (path.startsWith('/p/hold')) { setTimeout(() => { if (!res.destroyed) res.end('held'); }, 5000); return; }
    if (path.startsWith('/p/stream')) { res.writeHead(200, { 'content-length': '100000' }); res.write('x'.repeat(1000)); return; }
    res.setHeader('ratelimit', 'upstream-value');
    res.setHeader('access-control-allow-origin', '*');
    res.setHeader('vary', 'accept-encoding');
    res.end('hello');
  });
  const refused = await freePort();
  port = await freePort();
  const config = compileConfig({
    server: { host: '127.0.0.1', port, workers: 1 },
    services: {
      up: { targets: [up.origin], timeouts: { response_ms: 400 } },
      // The drain test's request: far from any timeout, so only the drain can end it.
      patient: { targets: [up.origin], timeouts: { response_ms: 30000 } },
      down: { targets: [`http://127.0.0.1:${refused}`] },
    },
    auth: { providers: [{ name: 'h', issuer: 'me', secret: HMAC_SECRET, algorithms: ['HS256'] }] },
    rate_limits: {
      wide: { key: 'header:x-k', rate: 1000, per: '1s', burst: 1000 },
      one: { key: 'header:x-k', rate: 1, per: '1m', burst: 1 },
    },
    routes: [
      { name: 'hold', match: { prefix: '/p/hold' }, service: 'patient' },
      { name: 'p', match: { prefix: '/p' }, service: 'up', rate_limit: ['wide'] },
      { name: 'l', match: { prefix: '/l' }, service: 'up', rate_limit: ['one'] },
      { name: 'a', match: { prefix: '/a' }, service: 'up', auth: { provider: 'h' } },
      { name: 'd', match: { prefix: '/d' }, service: 'down' },
    ],
  }, 'exchange-test.yaml');
  // The probe goes first on every route, so its onResponse runs last (reverse order) and its
  // onEnd sees the exchange's final record.
  for (const route of config.routes) route.filters.unshift({ name: 'probe', config: null } as CompiledFilter);
  const env: WorkerEnv = { workerIndex: 0, post: () => undefined };
  pools = new PoolRegistry();
  const gen: Generation = buildGeneration(1, encodeRouteTable(config.routes), encodeRouteData(config.routes), config, pools, env,
    (f, e) => (f.name === 'probe' ? probe : buildFilter(f, e)));
  server = new DataPlaneServer({ currentGeneration: () => gen, testHooks: false });
  assert.equal(await server.listen('127.0.0.1', port), port);
});

after(async () => {
  server?.closeAll();
  await pools?.closeAll();
  await up?.close();
  // Everything that could end an exchange again is closed now (client and upstream
  // connections, the deadline ticker, closeAll's own end of what was open), and had the rest
  // of the file to do it: a second onEnd of any exchange would show here.
  for (const [id, s] of seen) assert.ok(s.ends <= 1, `${id}: onEnd ran ${s.ends} times`);
});

let n = 0;
async function get(path: string, headers: Record<string, string> = {}) {
  const id = `ex-${++n}`;
  const res = await request(`http://127.0.0.1:${port}${path}`, { headers: { 'x-correlation-id': id, 'x-k': id, ...headers } });
  const text = await res.body.text();
  return { id, status: res.statusCode, headers: res.headers, text };
}

/**
 * onEnd ran for `id`: waits for it (an exchange may end just after the client saw its last
 * byte, e.g. after a client abort). A second onEnd in the same turn shows in `ends` now; a
 * later one in the after hook, once everything that could cause it is closed.
 */
async function ended(id: string): Promise<Seen> {
  await waitUntil(`onEnd for ${id}`, () => (seen.get(id)?.ends ?? 0) > 0, 5_000);
  return seen.get(id)!;
}

describe('onResponse', () => {
  it('runs on an upstream response; a header it sets replaces the upstream\'s, a list header is appended', async () => {
    const r = await get('/p/ok');
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], 'https://gateway.example', 'the gateway\'s value, once');
    assert.deepEqual(r.headers.vary, ['accept-encoding', 'origin'], 'appended: one more line of the list');
    // rate-limit's onResponse replaces the upstream's RateLimit too.
    assert.match(String(r.headers.ratelimit), /^"wide";r=\d+;t=\d+$/);
    assert.deepEqual((await ended(r.id)).responses, [200]);
  });

  it('runs on local replies: a 429 and a 401 carry the headers filters set', async () => {
    await get('/l/x', { 'x-k': 'same' });
    const limited = await get('/l/x', { 'x-k': 'same' });
    assert.equal(limited.status, 429);
    assert.equal(limited.headers['access-control-allow-origin'], 'https://gateway.example');
    assert.match(String(limited.headers.ratelimit), /^"one";r=0;t=\d+$/);
    assert.deepEqual((await ended(limited.id)).responses, [429]);
    const refused = await get('/a/x');
    assert.equal(refused.status, 401);
    assert.equal(refused.headers['access-control-allow-origin'], 'https://gateway.example');
    assert.deepEqual((await ended(refused.id)).responses, [401]);
  });
});

describe('response header bytes', () => {
  it('a header a filter sets with a non-token name, CR/LF, NUL or a character above U+00FF is dropped, on both header paths', async () => {
    // 'name': every value plain ASCII (the joined path, refused by the name);
    // 'values': values that need the header-by-header path.
    for (const kind of ['name', 'values']) {
      const r = await get('/p/ok', { 'x-probe-bad': kind });
      assert.equal(r.status, 200, kind);
      assert.equal(r.headers['x-ok'], 'fine', `${kind}: the good header is written`);
      assert.equal(r.headers['access-control-allow-origin'], 'https://gateway.example', kind);
      for (const h of ['bad name', 'x-crlf', 'x-injected', 'x-wide', 'x-nul']) assert.equal(r.headers[h], undefined, `${kind}: ${h} must not reach the client`);
      assert.equal(r.headers['x-correlation-id'], r.id, kind);
    }
  });
});

describe('onEnd runs exactly once, however the exchange ends', () => {
  it('a normal response: status, bytes and no flags recorded', async () => {
    const r = await get('/p/ok');
    const s = await ended(r.id);
    assert.equal(s.ends, 1);
    assert.equal(s.requests, 1);
    assert.equal(s.status, 200);
    assert.equal(s.bytesOut, 5);
    assert.equal(s.flags, 0);
  });

  it('a local reply (429, 401): LR and the reason flag', async () => {
    await get('/l/y', { 'x-k': 'again' });
    const limited = await get('/l/y', { 'x-k': 'again' });
    const s = await ended(limited.id);
    assert.equal(s.ends, 1);
    assert.equal(responseFlagNames(s.flags), 'RL,LR');
    const refused = await ended((await get('/a/y')).id);
    assert.equal(refused.ends, 1);
    assert.equal(refused.status, 401);
    assert.equal(responseFlagNames(refused.flags), 'UAEX,LR');
  });

  it('a 502 (connection refused): UF', async () => {
    const r = await get('/d/x');
    assert.equal(r.status, 502);
    const s = await ended(r.id);
    assert.equal(s.ends, 1);
    assert.equal(s.status, 502);
    assert.ok(s.flags & RESPONSE_FLAG.UPSTREAM_CONNECT_FAILURE, responseFlagNames(s.flags));
  });

  it('a 504 (response_ms passed): UT', async () => {
    const r = await get('/p/slow');
    assert.equal(r.status, 504);
    const s = await ended(r.id);
    assert.equal(s.ends, 1);
    assert.ok(s.flags & RESPONSE_FLAG.UPSTREAM_TIMEOUT, responseFlagNames(s.flags));
    assert.deepEqual(s.responses, [504]);
  });

  it('a client that goes away mid-body: DC', async () => {
    const id = `ex-abort-${++n}`;
    await new Promise<void>((resolve, reject) => {
      const sock = connect(port, '127.0.0.1', () => sock.write(`GET /p/stream HTTP/1.1\r\nHost: x\r\nX-Correlation-Id: ${id}\r\n\r\n`));
      sock.once('data', () => { sock.destroy(); resolve(); }); // the head and the first body bytes, then gone
      sock.on('error', reject);
    });
    const s = await ended(id);
    assert.equal(s.ends, 1);
    assert.equal(s.status, 200);
    assert.ok(s.flags & RESPONSE_FLAG.DOWNSTREAM_CLOSED, responseFlagNames(s.flags));
  });

  it('a drain that reaches its deadline ends what is still open: SI', async () => {
    const held = get('/p/hold').catch(() => null);
    const deadline = Date.now() + 5000;
    while (![...seen.values()].some((s) => s.requests > 0 && s.ends === 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    const open = [...seen.entries()].filter(([, s]) => s.ends === 0).map(([id]) => id);
    assert.equal(open.length, 1, `one exchange open before the drain: ${open.join(',')}`);
    const unfinished = await server.drain(200);
    assert.equal(unfinished, 1);
    await held;
    const s = await ended(open[0]);
    assert.equal(s.ends, 1);
    assert.ok(s.flags & RESPONSE_FLAG.DRAINED, responseFlagNames(s.flags));
  });
});
