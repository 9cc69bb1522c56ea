// Retries of gRPC calls (docs/grpc.md#retries, docs/resilience.md#retries) through the one
// retry policy of the HTTP path, against real grpc-js servers: one that answers every call
// UNAVAILABLE (or RESOURCE_EXHAUSTED with a pushback), one that answers, one that is slow. A
// retry goes to the other target, only for a unary call of an idempotent client method, within
// attempts, the budget and the deadline, each try with its own grpc-timeout; the access log and
// the metrics count the retries as for HTTP.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { parsePrometheusText, sampleValue } from '../helpers/prom-text.js';
import { BOOKSTORE_PROTO, FIXTURE_DIR, startBookstore, type BookstoreServer } from './bookstore-server.js';

let down: BookstoreServer;
let up: BookstoreServer;
let slow: BookstoreServer;
let busy: BookstoreServer;
let refusing: BookstoreServer;
let gw: Gateway;
let admin: AdminClient;
let dir: string;
let logFile: string;

before(async () => {
  down = await startBookstore({ failWith: 14 });
  up = await startBookstore();
  slow = await startBookstore({ delayMs: 1500 });
  busy = await startBookstore({ failWith: 8, pushbackMs: '150' });
  refusing = await startBookstore({ failWith: 8, pushbackMs: '-1' });
  const adminPort = await freePort();
  dir = await mkdtemp(join(tmpdir(), 'lobby-grpc-retry-'));
  logFile = join(dir, 'access.log');
  const svc = (targets: BookstoreServer[], extra: string) => `
    grpc: { targets: [${targets.map((t) => `"${t.address}"`).join(', ')}] }
    descriptors: { protos: [${BOOKSTORE_PROTO}], include: ["${FIXTURE_DIR}"] }
    ${extra}`;
  const fast = 'backoff_ms: { base: 1, max: 5 }, budget_min_retries: 100000';
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
admin: { host: 127.0.0.1, port: ${adminPort} }
access_log: { path: ${logFile}, fields: [correlation_id, route, status, target, retries, flags, error_code] }
services:
  pair:${svc([down, up], `retry: { attempts: 2, ${fast} }`)}
  lone:${svc([down], `retry: { attempts: 3, ${fast} }`)}
  slowpoke:${svc([slow], `retry: { attempts: 2, on: [unavailable, timeout], per_try_timeout_ms: 300, ${fast} }`)}
  bounded:${svc([slow], `retry: { attempts: 10, on: [timeout], per_try_timeout_ms: 400, ${fast} }
    deadline_ms: 700`)}
  busy:${svc([busy], `retry: { attempts: 2, on: [resource_exhausted], backoff_ms: { base: 1, max: 1000 }, budget_min_retries: 100000 }`)}
  refusing:${svc([refusing], `retry: { attempts: 3, on: [resource_exhausted], ${fast} }`)}
  budget:${svc([down], 'retry: { attempts: 2, backoff_ms: { base: 1, max: 5 }, budget_percent: 0, budget_min_retries: 1 }')}
routes:
  - { name: pair, match: { prefix: /v1, host: pair.example }, service: pair, transcode: { services: [bookstore.v1.Bookstore] } }
  - { name: lone, match: { prefix: /v1, host: lone.example }, service: lone, transcode: { services: [bookstore.v1.Bookstore] } }
  - { name: slowpoke, match: { prefix: /v1, host: slow.example }, service: slowpoke, transcode: { services: [bookstore.v1.Bookstore] } }
  - { name: bounded, match: { prefix: /v1, host: bounded.example }, service: bounded, transcode: { services: [bookstore.v1.Bookstore] } }
  - { name: busy, match: { prefix: /v1, host: busy.example }, service: busy, transcode: { services: [bookstore.v1.Bookstore] } }
  - { name: refusing, match: { prefix: /v1, host: refusing.example }, service: refusing, transcode: { services: [bookstore.v1.Bookstore] } }
  - { name: budget, match: { prefix: /v1, host: budget.example }, service: budget, transcode: { services: [bookstore.v1.Bookstore] } }
`);
  admin = adminClient(adminPort);
  await admin.waitReady();
});

after(async () => {
  await gw?.stop();
  for (const s of [down, up, slow, busy, refusing]) await s?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function send(host: string, path: string, method = 'GET', body?: string) {
  const id = randomUUID();
  const started = Date.now();
  const res = await request(gw.url + path, { method: method as 'GET', headers: { host, 'x-correlation-id': id, 'content-type': 'application/json' }, body });
  const text = await res.body.text();
  return { status: res.statusCode, text, id, elapsed: Date.now() - started, json: () => JSON.parse(text) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** The access-log line of a request (written in the request's end phase: waited for). */
async function logLine(id: string): Promise<Record<string, unknown>> {
  let line: Record<string, unknown> | undefined;
  await waitUntil(`access-log line of ${id}`, async () => {
    const found = (await readFile(logFile, 'utf8').catch(() => '')).split('\n').find((l) => l.includes(`"${id}"`));
    if (found !== undefined) line = JSON.parse(found) as Record<string, unknown>;
    return line !== undefined;
  }, 15_000);
  return line!;
}

async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const res = await request(`${admin.url}/metrics`);
  return sampleValue(parsePrometheusText(await res.body.text()), name, labels);
}

const calls = (s: BookstoreServer, method: string) => s.calls[method] ?? 0;

describe('gRPC retries', () => {
  it('UNAVAILABLE from one target is retried on the other; the log and the metrics count each retry', async () => {
    const downBefore = calls(down, 'GetShelf');
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await send('pair.example', '/v1/shelves/7'));
    for (const r of results) {
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json(), { id: '7', theme: 'default' });
    }
    assert.equal(calls(up, 'GetShelf'), 4, 'every request answered by the target that is up');
    const retried = calls(down, 'GetShelf') - downBefore;
    assert.ok(retried >= 1, 'the balancer sent some tries to the target that is down');
    let logged = 0;
    for (const r of results) {
      const line = await logLine(r.id);
      logged += Number(line.retries ?? 0); // the field is left out at 0
      assert.equal(line.target, `grpc://${up.address}`, 'the last target tried is logged');
      assert.equal(line.flags, '-');
    }
    assert.equal(logged, retried, 'one retry per try that met UNAVAILABLE');
    await waitUntil('the retries in the metrics', async () => await metric('lobby_upstream_retries_total', { service: 'pair', reason: 'status' }) === retried);
  });

  it('a POST (not an idempotent client method) is not retried on UNAVAILABLE: 503 with the upstream\'s Status', async () => {
    const before = calls(down, 'CreateShelf');
    const r = await send('lone.example', '/v1/shelves', 'POST', '{"theme":"x"}');
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json().code, 14);
    assert.match(r.json().message, /fails on purpose/);
    assert.equal(calls(down, 'CreateShelf'), before + 1);
    assert.equal((await logLine(r.id)).retries, undefined, 'no retries field: none was sent again');
  });

  it('attempts run out: the last try\'s UNAVAILABLE goes to the client, flagged URX', async () => {
    const before = calls(down, 'GetShelf');
    const r = await send('lone.example', '/v1/shelves/1');
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json().code, 14);
    assert.equal(calls(down, 'GetShelf'), before + 3, 'attempts: 3');
    const line = await logLine(r.id);
    assert.equal(line.retries, 2);
    assert.equal(line.flags, 'URX');
  });

  it('a server stream is not retried', async () => {
    const before = calls(down, 'StreamBooks');
    const r = await send('lone.example', '/v1/shelves/1/books:stream?count=2');
    assert.equal(r.status, 503, r.text);
    assert.equal(calls(down, 'StreamBooks'), before + 1);
  });

  it('a configured code (resource_exhausted) is retried after the server\'s grpc-retry-pushback-ms', async () => {
    const before = calls(busy, 'GetShelf');
    const r = await send('busy.example', '/v1/shelves/1');
    assert.equal(r.status, 429, r.text);
    assert.equal(r.json().code, 8);
    assert.equal(calls(busy, 'GetShelf'), before + 2);
    assert.ok(r.elapsed >= 150, `the retry waited the pushback (${r.elapsed} ms)`);
    assert.equal((await logLine(r.id)).retries, 1);
  });

  it('a pushback that is no count of ms asks for no retry (gRFC A6)', async () => {
    const before = calls(refusing, 'GetShelf');
    const r = await send('refusing.example', '/v1/shelves/1');
    assert.equal(r.status, 429, r.text);
    assert.equal(calls(refusing, 'GetShelf'), before + 1);
  });

  it('per_try_timeout_ms: each try carries it as grpc-timeout and is cancelled past it, then retried on timeout', async () => {
    const before = slow.received.length;
    const cancelled = slow.cancelled;
    const r = await send('slow.example', '/v1/shelves/1');
    assert.equal(r.status, 504, r.text);
    assert.equal(r.json().code, 4);
    assert.equal(r.json().details[0].reason, 'upstream_timeout');
    const tries = slow.received.slice(before);
    assert.equal(tries.length, 2, 'attempts: 2');
    for (const t of tries) {
      const m = /^(\d+)m$/.exec(t.timeout ?? '');
      assert.ok(m && Number(m[1]) <= 300 && Number(m[1]) > 0, `grpc-timeout ${t.timeout} of a try is per_try_timeout_ms`);
    }
    assert.ok(r.elapsed < 1700, `two tries of 300 ms; a try not cut would take 1500 (${r.elapsed} ms)`);
    const line = await logLine(r.id);
    assert.equal(line.retries, 1);
    await waitUntil('both tries cancelled on the server', () => slow.cancelled >= cancelled + 2);
    await waitUntil('the timeout retry in the metrics', async () => await metric('lobby_upstream_retries_total', { service: 'slowpoke', reason: 'timeout' }) === 1);
  });

  it('the deadline bounds the retries: no try outlives it, the last one\'s grpc-timeout is what is left', async () => {
    const before = slow.received.length;
    const r = await send('bounded.example', '/v1/shelves/1');
    assert.equal(r.status, 504, r.text);
    assert.equal(r.json().details[0].reason, 'deadline_exceeded');
    // A 400 ms try, then one with what is left of 700 ms as its grpc-timeout (under 400: the
    // deadline, not per_try_timeout_ms, bounds it), never a third. The first try may end a tick
    // early (the ticker's clock is coarse), so the time left is not exactly 300.
    const tries = slow.received.slice(before);
    assert.equal(tries.length, 2, `tries: ${JSON.stringify(tries)}`);
    const first = Number(/^(\d+)m$/.exec(tries[0].timeout ?? '')?.[1]);
    const last = Number(/^(\d+)m$/.exec(tries[1].timeout ?? '')?.[1]);
    assert.ok(first > 0 && first <= 400, `the first try's grpc-timeout ${first} ms is per_try_timeout_ms`);
    assert.ok(last > 0 && last < 400, `the last try's grpc-timeout ${last} ms is the time left`);
    assert.ok(r.elapsed < 1200, `ended at the deadline (${r.elapsed} ms)`);
  });

  it('the retry budget refuses retries past budget_min_retries when budget_percent is 0', async () => {
    const before = calls(down, 'GetShelf');
    for (let i = 0; i < 3; i++) {
      const r = await send('budget.example', '/v1/shelves/1');
      assert.equal(r.status, 503, r.text);
    }
    assert.equal(calls(down, 'GetShelf'), before + 4, 'one retry, then two refused');
    await waitUntil('the refused retries in the metrics', async () => await metric('lobby_upstream_retry_budget_exhausted_total', { service: 'budget' }) === 2);
  });
});
