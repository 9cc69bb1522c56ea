// Deadlines of gRPC calls (docs/grpc.md#deadlines): the time left of the exchange's
// deadline_ms (else the service's response_ms) goes upstream as grpc-timeout, read here from
// the raw HTTP/2 headers a real grpc-js server received; a call that runs past it is cancelled
// on the server and answered 504 with a DEADLINE_EXCEEDED Status; a stream that stalls past
// idle_ms or the deadline ends with a final error record.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { waitUntil } from '../helpers/admin.js';
import { BOOKSTORE_PROTO, FIXTURE_DIR, startBookstore, type BookstoreServer } from './bookstore-server.js';

let store: BookstoreServer;
let gw: Gateway;

before(async () => {
  store = await startBookstore();
  const descriptors = `{ protos: [${BOOKSTORE_PROTO}], include: ["${FIXTURE_DIR}"] }`;
  gw = await startGateway(`
server: { port: __PORT__, workers: 1 }
services:
  books:
    grpc: { targets: ["${store.address}"] }
    descriptors: ${descriptors}
    timeouts: { response_ms: 5000 }
  quick:
    grpc: { targets: ["${store.address}"] }
    descriptors: ${descriptors}
    timeouts: { response_ms: 300, idle_ms: 300 }
routes:
  - { name: deadline, match: { prefix: /v1, host: deadline.example }, service: books, deadline_ms: 700, transcode: { services: [bookstore.v1.Bookstore] } }
  - { name: quick, match: { prefix: /v1, host: quick.example }, service: quick, transcode: { services: [bookstore.v1.Bookstore] } }
  - { name: plain, match: { prefix: /v1 }, service: books, transcode: { services: [bookstore.v1.Bookstore] } }
`);
});

after(async () => {
  await gw?.stop();
  await store?.stop();
});

async function get(path: string, host?: string) {
  const started = Date.now();
  const res = await request(gw.url + path, { headers: host === undefined ? {} : { host } });
  const text = await res.body.text();
  return { status: res.statusCode, text, elapsed: Date.now() - started, json: () => JSON.parse(text) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** The grpc-timeout (in ms) of the last call the server received at `method`. */
function lastTimeoutMs(method: string): number {
  const calls = store.received.filter((r) => r.path === `/bookstore.v1.Bookstore/${method}`);
  const raw = calls.at(-1)?.timeout;
  assert.ok(raw !== undefined, `the ${method} call carried a grpc-timeout`);
  const m = /^(\d{1,8})([HMSmun])$/.exec(raw);
  assert.ok(m, `grpc-timeout ${raw} has the wire form of the gRPC spec`);
  const perUnit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2] as 'H'];
  return Number(m[1]) * perUnit;
}

describe('grpc-timeout', () => {
  it('is the time left of the route deadline_ms', async () => {
    const r = await get('/v1/slow/0', 'deadline.example');
    assert.equal(r.status, 200, r.text);
    const ms = lastTimeoutMs('Slow');
    assert.ok(ms > 0 && ms <= 700, `grpc-timeout ${ms} ms: what is left of 700 ms`);
  });

  it('is the service response_ms without a deadline (and the smaller of the two with one)', async () => {
    const r = await get('/v1/slow/0');
    assert.equal(r.status, 200, r.text);
    const ms = lastTimeoutMs('Slow');
    assert.ok(ms > 700 && ms <= 5000, `grpc-timeout ${ms} ms: response_ms 5000`);
  });

  it('a server stream without a deadline carries none (idle_ms bounds it between messages)', async () => {
    const r = await get('/v1/shelves/1/books:stream?count=1');
    assert.equal(r.status, 200, r.text);
    const calls = store.received.filter((c) => c.path === '/bookstore.v1.Bookstore/StreamBooks');
    assert.equal(calls.at(-1)?.timeout, undefined);
  });
});

describe('past the deadline', () => {
  it('a unary call is cancelled upstream and answered 504 DEADLINE_EXCEEDED, without grpc-js\'s message', async () => {
    const cancelledBefore = store.cancelled;
    const r = await get('/v1/slow/4000', 'deadline.example');
    assert.equal(r.status, 504, r.text);
    const status = r.json();
    assert.equal(status.code, 4, 'DEADLINE_EXCEEDED');
    assert.equal(status.details[0].reason, 'deadline_exceeded');
    assert.doesNotMatch(r.text, /127\.0\.0\.1|remote_addr/, 'no upstream address in the answer');
    assert.ok(r.elapsed < 3000, `answered at the deadline (${r.elapsed} ms), not when the upstream would have`);
    await waitUntil('the server saw the call cancelled', () => store.cancelled > cancelledBefore);
  });

  it('response_ms bounds a unary call without a deadline: 504 upstream_timeout', async () => {
    const r = await get('/v1/slow/4000', 'quick.example');
    assert.equal(r.status, 504, r.text);
    assert.equal(r.json().code, 4);
    assert.equal(r.json().details[0].reason, 'upstream_timeout');
    assert.ok(lastTimeoutMs('Slow') <= 300);
  });

  it('a stream that outlives the deadline ends with a final DEADLINE_EXCEEDED record', async () => {
    const r = await get('/v1/shelves/1/books:stream?count=3&pauseMs=3000', 'deadline.example');
    assert.equal(r.status, 200, r.text);
    const records = r.text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(records.length, 2, r.text);
    assert.equal(records[0].title, 'Book 0');
    assert.equal(records[1].error.code, 4);
    assert.equal(records[1].error.details[0].reason, 'deadline_exceeded');
    assert.ok(r.elapsed < 2500, `cut at the deadline (${r.elapsed} ms)`);
  });

  it('a stream that pauses past idle_ms ends with a final error record, and the worker goes on', async () => {
    const r = await get('/v1/shelves/1/books:stream?count=3&pauseMs=3000', 'quick.example');
    assert.equal(r.status, 200, r.text);
    const records = r.text.trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any
    assert.equal(records.length, 2, r.text);
    assert.equal(records[1].error.code, 4);
    assert.equal(records[1].error.details[0].reason, 'upstream_timeout');
    const next = await get('/v1/slow/0');
    assert.equal(next.status, 200, 'the same worker answers the next request');
    assert.doesNotMatch(gw.stderr(), /worker fault/);
  });
});
