// Retries and deadlines (docs/resilience.md#retries, #deadlines) against real upstreams that
// refuse, reset, answer 503 with Retry-After, cut a started response, hang, and a real gateway
// process: each retry condition, each refusal to retry, another target, backoff bounds,
// Retry-After, the budget under a burst, per-try timeout, the whole deadline, the deadline
// header, and the resend after a stale keep-alive connection. One gateway for the whole file.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import fc from 'fast-check';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { freePort } from '../helpers/ports.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { parsePrometheusText, promtoolProblems, sampleValue } from '../helpers/prom-text.js';

// A scripted upstream: the n-th request carrying `x-id` does the n-th outcome of `x-script`
// (comma-separated; 200 after the script ends): a status, `reset` (socket destroyed),
// `partial` (200 head and part of the body, then destroyed), `hang` (never answers).
// What each reception carried is recorded by id.
const seen = new Map<string, { at: number; deadline: string | undefined; host: string | undefined }[]>();
function scripted(name: string) {
  return startUpstream(name, (req, res) => {
    const id = String(req.headers['x-id'] ?? '');
    const list = seen.get(id) ?? [];
    seen.set(id, list);
    list.push({ at: Date.now(), deadline: req.headers['x-request-deadline-ms'] as string | undefined, host: req.headers.host });
    const script = String(req.headers['x-script'] ?? '').split(',').filter((s) => s !== '');
    const outcome = script[list.length - 1] ?? '200';
    if (outcome === 'reset') { req.socket.destroy(); return; }
    if (outcome === 'hang') return;
    if (outcome === 'partial') { res.writeHead(200, { 'content-length': '100' }); res.write('0123456789'); setTimeout(() => req.socket.destroy(), 20); return; }
    const status = Number(outcome);
    const headers: Record<string, string> = { 'content-type': 'text/plain', 'x-from': name };
    if (status === 503 && req.headers['x-retry-after'] !== undefined) headers['retry-after'] = String(req.headers['x-retry-after']);
    const body = status === 200 ? `ok from ${name}` : `failed ${status}`;
    res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
    res.end(body);
  });
}

/** Answers the first request of each connection, then closes the connection when the next one
 * arrives, unanswered: the gateway's reused socket turns out stale. */
async function startOneShotServer(): Promise<{ port: number; requests: number; server: Server; sockets: Set<Socket> }> {
  const state = { port: await freePort(), requests: 0, server: null as unknown as Server, sockets: new Set<Socket>() };
  state.server = createServer((socket) => {
    state.sockets.add(socket);
    let answered = false;
    socket.on('data', (chunk) => {
      if (!chunk.includes('\r\n\r\n')) return;
      if (answered) { socket.destroy(); return; }
      answered = true;
      state.requests++;
      socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
    });
    socket.on('error', () => {});
    socket.on('close', () => state.sockets.delete(socket));
  });
  await new Promise<void>((resolve) => state.server.listen(state.port, '127.0.0.1', resolve));
  return state;
}

let s: Upstream;
let a: Upstream;
let b503: Upstream;
let oneShot: Awaited<ReturnType<typeof startOneShotServer>>;
let gw: Gateway;
let admin: AdminClient;
let dir: string;
let logFile: string;

before(async () => {
  s = await scripted('s');
  a = await scripted('a');
  b503 = await startUpstream('b503', (_req, res) => { res.writeHead(503, { 'content-length': '4' }); res.end('busy'); });
  oneShot = await startOneShotServer();
  const refused = await freePort();
  const adminPort = await freePort();
  dir = await mkdtemp(join(tmpdir(), 'lobby-retry-'));
  logFile = join(dir, 'access.log');
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
admin: { host: 127.0.0.1, port: ${adminPort} }
access_log: { path: ${logFile}, fields: [correlation_id, route, status, target, retries, flags, error_code] }
services:
  scripted:
    targets: ["${s.origin}"]
    retry: { attempts: 3, on: [connect_failure, reset, timeout, 502, 503, 504], backoff_ms: { base: 10, max: 50 }, budget_percent: 100, budget_min_retries: 100000, per_try_timeout_ms: 600 }
    deadline_ms: 20000
  failover:
    targets: ["http://127.0.0.1:${refused}", "${a.origin}"]
    retry: { attempts: 2, budget_min_retries: 100000 }
  pair:
    targets: ["${s.origin}", "${a.origin}"]
    balance: least_request
    retry: { attempts: 2, on: [503], budget_min_retries: 100000 }
    deadline_ms: 20000
  budget:
    targets: ["${b503.origin}"]
    retry: { attempts: 2, on: [503], budget_percent: 0, budget_min_retries: 2 }
  oneshot:
    targets: ["http://127.0.0.1:${oneShot.port}"]
    retry: { attempts: 2 }
routes:
  - { name: s, match: { prefix: /s }, service: scripted }
  - { name: s-deadline, match: { prefix: /deadline }, service: scripted, deadline_ms: 900, retry: { attempts: 10, per_try_timeout_ms: 250 } }
  - { name: s-ra, match: { prefix: /ra }, service: scripted, retry: { backoff_ms: { base: 10, max: 5000 } } }
  - { name: s-ra-capped, match: { prefix: /capped }, service: scripted, retry: { backoff_ms: { base: 10, max: 200 } } }
  - { name: s-off, match: { prefix: /off }, service: scripted, retry: false, deadline_ms: false }
  - { name: failover, match: { prefix: /failover }, service: failover }
  - { name: pair, match: { prefix: /pair }, service: pair }
  - { name: budget, match: { prefix: /budget }, service: budget }
  - { name: oneshot, match: { prefix: /oneshot }, service: oneshot }
`);
  admin = adminClient(adminPort);
  await admin.waitReady();
});

after(async () => {
  await gw?.stop();
  for (const u of [s, a, b503]) await u?.close();
  if (oneShot) { for (const sock of oneShot.sockets) sock.destroy(); await new Promise((r) => oneShot.server.close(r)); }
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Sent { status: number; body: string; id: string; elapsed: number; headers: Record<string, unknown> }
async function send(path: string, opts: { method?: string; script?: string; body?: string | Readable; headers?: Record<string, string> } = {}): Promise<Sent> {
  const id = randomUUID();
  const started = Date.now();
  const res = await request(`${gw.url}${path}`, {
    method: (opts.method ?? 'GET') as 'GET',
    headers: { 'x-id': id, 'x-correlation-id': id, 'x-script': opts.script ?? '', ...opts.headers },
    body: opts.body,
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
  });
  const body = await res.body.text();
  return { status: res.statusCode, body, id, elapsed: Date.now() - started, headers: res.headers };
}
const receptions = (id: string) => seen.get(id)?.length ?? 0;

/** The access-log line of a request (the log is flushed in batches: waited for). */
async function logLine(id: string): Promise<Record<string, unknown>> {
  let line: Record<string, unknown> | undefined;
  await waitUntil(`access-log line of ${id}`, async () => {
    const text = await readFile(logFile, 'utf8').catch(() => '');
    const found = text.split('\n').find((l) => l.includes(`"${id}"`));
    if (found !== undefined) line = JSON.parse(found) as Record<string, unknown>;
    return line !== undefined;
  }, 15_000);
  return line!;
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const res = await request(`${admin.url}/metrics`);
  return sampleValue(parsePrometheusText(await res.body.text()), name, labels);
}

describe('retry conditions', () => {
  it('a 503 is consumed and retried; the client sees the later answer, the log counts the retry', async () => {
    const r = await send('/s', { script: '503,200' });
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok from s');
    assert.equal(receptions(r.id), 2);
    const line = await logLine(r.id);
    assert.equal(line.retries, 1);
    assert.equal(line.flags, '-');
  });

  it('502 and 504 and a reset are retried for an idempotent method', async () => {
    const r = await send('/s', { script: '502,reset,200', method: 'PUT', body: 'x' });
    assert.equal(r.status, 200);
    assert.equal(receptions(r.id), 3);
    const q = await send('/s', { script: '504,200', method: 'DELETE' });
    assert.equal(q.status, 200);
    assert.equal(receptions(q.id), 2);
  });

  it('the last try\'s retryable status goes to the client as it is, flagged URX', async () => {
    const r = await send('/s', { script: '503,503,503,200' });
    assert.equal(r.status, 503);
    assert.equal(r.body, 'failed 503');
    assert.equal(r.headers['x-from'], 's');
    assert.equal(receptions(r.id), 3, 'attempts: 3 sends in all');
    const line = await logLine(r.id);
    assert.equal(line.retries, 2);
    assert.equal(line.flags, 'URX');
  });

  it('a connection refused is retried on the other target, also for a POST (it never reached an upstream)', async () => {
    for (let i = 0; i < 6; i++) {
      const r = await send('/failover', { method: i % 2 === 0 ? 'GET' : 'POST', body: i % 2 === 0 ? undefined : 'payload' });
      assert.equal(r.status, 200, r.body);
      assert.equal(receptions(r.id), 1);
    }
    assert.ok(await metric('lobby_upstream_retries_total', { service: 'failover', reason: 'connect_failure' }) >= 3);
  });

  it('a retry goes to another target when the service has one', async () => {
    // `s` answers 503 (the script), `a` ignores the script's first step only when it is the second try.
    let onS = 0;
    for (let i = 0; i < 16; i++) {
      // A client's deadline header too: dropping it must not disturb the Host rewritten for the retry.
      const r = await send('/pair', { script: '503', headers: { 'x-request-deadline-ms': '5' } });
      assert.equal(r.status, 200, 'a retry that went back to the 503 target would have been relayed');
      if (r.body === 'ok from a' && receptions(r.id) === 2) {
        onS++;
        const [first, second] = seen.get(r.id)!;
        assert.equal(first.host, `127.0.0.1:${s.port}`);
        assert.equal(second.host, `127.0.0.1:${a.port}`, 'the retry carries its own target\'s Host');
        assert.ok(Number(second.deadline) > 1000);
      }
    }
    assert.ok(onS > 0, 'some first tries went to the 503 target');
  });

  it('a try that passes per_try_timeout_ms is abandoned and retried', async () => {
    const r = await send('/s', { script: 'hang,200' });
    assert.equal(r.status, 200);
    assert.equal(receptions(r.id), 2);
    assert.ok(await metric('lobby_upstream_retries_total', { service: 'scripted', reason: 'timeout' }) >= 1);
  });
});

describe('refusals to retry', () => {
  it('a POST that reached the upstream is never sent twice (status or reset)', async () => {
    const r = await send('/s', { method: 'POST', body: 'x', script: '503,200' });
    assert.equal(r.status, 503);
    assert.equal(receptions(r.id), 1);
    const q = await send('/s', { method: 'POST', body: 'x', script: 'reset,200' });
    assert.equal(q.status, 502);
    assert.equal(receptions(q.id), 1);
  });

  it('a streamed body is never sent twice, even for an idempotent method', async () => {
    const r = await send('/s', { method: 'PUT', body: Readable.from([Buffer.alloc(70_000, 'a')]), script: '503,200' });
    assert.equal(r.status, 503);
    assert.equal(receptions(r.id), 1);
  });

  it('a response that started towards the client is never retried', async () => {
    const id = randomUUID();
    await assert.rejects(async () => {
      const res = await request(`${gw.url}/s`, { headers: { 'x-id': id, 'x-correlation-id': id, 'x-script': 'partial,200' } });
      await res.body.text();
    });
    // The exchange's log line is written when it ended: any retry would have been sent by then
    // (a fixed sleep could end before a wrong retry on a loaded machine).
    const line = await logLine(id);
    assert.equal(line.retries ?? 0, 0, 'no retry logged (the field is left out at 0)');
    assert.equal(receptions(id), 1);
  });

  it('retry: false on the route turns the service policy off', async () => {
    const r = await send('/off', { script: '503,200' });
    assert.equal(r.status, 503);
    assert.equal(receptions(r.id), 1);
  });
});

describe('backoff and Retry-After', () => {
  it('Retry-After is honoured', async () => {
    const r = await send('/ra', { script: '503,200', headers: { 'x-retry-after': '1' } });
    assert.equal(r.status, 200);
    const [first, second] = seen.get(r.id)!;
    assert.ok(second.at - first.at >= 900, `waited ${second.at - first.at} ms for Retry-After: 1`);
  });

  it('backoff_ms.max bounds the wait, Retry-After included', async () => {
    const r = await send('/capped', { script: '503,503,200', headers: { 'x-retry-after': '30' } });
    assert.equal(r.status, 200);
    assert.ok(r.elapsed < 10_000, `a 30 s Retry-After was capped at 200 ms, took ${r.elapsed} ms`);
  });
});

describe('the retry budget', () => {
  it('under a burst, retries stop at the budget and the refusals are counted', async () => {
    const before = b503.received.length;
    const results = await Promise.all(Array.from({ length: 10 }, () => send('/budget')));
    for (const r of results) assert.equal(r.status, 503);
    // budget_percent 0, budget_min_retries 2: two retries in the window, not ten.
    assert.equal(b503.received.length - before, 12);
    await waitUntil('budget metrics', async () => await metric('lobby_upstream_retry_budget_exhausted_total', { service: 'budget' }) === 8, 10_000);
    assert.equal(await metric('lobby_upstream_retries_total', { service: 'budget', reason: 'status' }), 2);
    // Prometheus' own parser and linter have nothing to say about the retry families.
    const text = await (await request(`${admin.url}/metrics`)).body.text();
    assert.match(text, /# TYPE lobby_upstream_retry_budget_exhausted_total counter/);
    assert.deepEqual(promtoolProblems(text).filter((p) => /retr/.test(p)), []);
  });
});

describe('deadlines', () => {
  it('the whole deadline bounds the retries: 504 deadline_exceeded', async () => {
    const r = await send('/deadline', { script: 'hang,hang,hang,hang,hang,hang,hang,hang,hang,hang' });
    assert.equal(r.status, 504);
    assert.equal(JSON.parse(r.body).error.code, 'deadline_exceeded');
    assert.ok(r.elapsed >= 850, `answered after ${r.elapsed} ms, before the 900 ms deadline`);
    assert.ok(r.elapsed < 8_000);
    // Tries start at 0, >= 250, >= 500, >= 750 ms: at most 4 (fewer when the machine is slow).
    const n = receptions(r.id);
    assert.ok(n >= 1 && n <= 4, `per-try 250 ms within 900 ms: ${n} tries`);
    const line = await logLine(r.id);
    assert.equal(line.error_code, 'deadline_exceeded');
    assert.match(String(line.flags), /UT/);
  });

  it('the time left goes upstream, decreasing over the tries and never negative', async () => {
    const r = await send('/s', { script: '503,503,200' });
    assert.equal(r.status, 200);
    const values = seen.get(r.id)!.map((x) => Number(x.deadline));
    assert.equal(values.length, 3);
    for (const v of values) assert.ok(Number.isInteger(v) && v >= 0 && v <= 20_000, String(v));
    assert.ok(values[0] >= values[1] && values[1] >= values[2], values.join(' '));
    assert.ok(values[0] > 15_000);
  });

  it('a client\'s own deadline header is replaced, and a route without a deadline sends none', async () => {
    const r = await send('/s', { headers: { 'x-request-deadline-ms': '999999999' } });
    const v = Number(seen.get(r.id)![0].deadline);
    assert.ok(v <= 20_000, String(v));
    const q = await send('/off');
    assert.equal(seen.get(q.id)![0].deadline, undefined);
  });

  it('the deadline covers the time before forwarding (a body that never arrives)', async () => {
    const socket = connect(gw.port, '127.0.0.1');
    let text = '';
    socket.on('data', (d) => { text += d.toString(); });
    socket.write('POST /deadline HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc');
    const started = Date.now();
    await waitUntil('504 for the stalled body', () => text.includes('deadline_exceeded'), 10_000);
    assert.match(text, /^HTTP\/1\.1 504/);
    assert.ok(Date.now() - started >= 800);
    socket.destroy();
  });
});

describe('the stale-connection resend', () => {
  it('still happens under a retry policy (a GET on a reused socket that closed), counted as stale_connection', async () => {
    const first = await send('/oneshot');
    assert.equal(first.status, 200);
    const second = await send('/oneshot');
    assert.equal(second.status, 200, second.body);
    assert.equal(oneShot.requests, 2);
    const line = await logLine(second.id);
    assert.equal(line.retries, 1);
    assert.ok(await metric('lobby_upstream_retries_total', { service: 'oneshot', reason: 'stale_connection' }) >= 1);
  });
});

describe('property: never more sends than attempts, never a non-idempotent or streamed body twice', () => {
  it('holds for any script of upstream outcomes', async () => {
    const outcome = fc.constantFrom('200', '502', '503', '504', 'reset', '500');
    await fc.assert(fc.asyncProperty(
      fc.constantFrom('GET', 'POST', 'PUT-streamed'),
      fc.array(outcome, { minLength: 1, maxLength: 5 }),
      async (kind, script) => {
        const method = kind === 'PUT-streamed' ? 'PUT' : kind;
        const body = kind === 'PUT-streamed' ? Readable.from([Buffer.alloc(70_000, 'b')]) : kind === 'POST' ? 'x' : undefined;
        const r = await send('/s', { method, body, script: script.join(',') });
        const n = receptions(r.id);
        if (kind !== 'GET') return n === 1;
        // GET: retried on every failure of the policy's list (500 is not on it) up to 3 sends.
        let expected = 0;
        for (let i = 0; i < 3; i++) {
          expected++;
          const o = script[i] ?? '200';
          if (o === '200' || o === '500') break;
        }
        return n === expected && n <= 3;
      },
    ), { numRuns: 30 });
  });
});
