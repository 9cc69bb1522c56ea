// W3C trace context, OTLP/HTTP export and Server-Timing against a real gateway, a real
// upstream and an OTLP receiver the test runs (node:http decoding the OTLP JSON).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { freePort } from '../helpers/ports.js';
import { waitUntil } from '../helpers/admin.js';
import { sign, type TestKey } from '../helpers/jwt.js';
import { parseTraceParent, validTraceState } from '../../src/filters/tracing/trace-context.js';

interface OtlpSpan {
  traceId: string; spanId: string; parentSpanId?: string; name: string; kind: number;
  startTimeUnixNano: string; endTimeUnixNano: string;
  attributes: { key: string; value: { stringValue?: string; intValue?: string } }[];
  status: { code?: number; message?: string };
}

let up: Upstream;
let gw: Gateway;
let receiver: Server;
const spans: OtlpSpan[] = [];
const resources: { key: string; value: { stringValue?: string } }[][] = [];

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT = '00f067aa0ba902b7';
const SECRET = 'server-timing-test-secret-of-32-bytes-or-more';
const hmac: TestKey = { alg: 'HS256', kid: 'h', signing: new TextEncoder().encode(SECRET), jwk: { kty: 'oct' } };

before(async () => {
  up = await startUpstream('up', (req, res) => {
    const body = JSON.stringify({ traceparent: req.headers.traceparent ?? null, tracestate: req.headers.tracestate ?? null });
    res.writeHead(req.url!.startsWith('/fail') ? 503 : 200, { 'content-type': 'application/json' });
    res.end(body);
  });
  const otlpPort = await freePort();
  receiver = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      assert.equal(req.url, '/v1/traces');
      assert.equal(req.headers['content-type'], 'application/json');
      const doc = JSON.parse(body) as { resourceSpans: { resource: { attributes: never[] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of doc.resourceSpans) {
        resources.push(rs.resource.attributes);
        for (const ss of rs.scopeSpans) spans.push(...ss.spans);
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(otlpPort, '127.0.0.1', r));
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2 }
services: { up: { targets: ["${up.origin}"] } }
tracing:
  sample: 1
  otlp: { endpoint: "http://127.0.0.1:${otlpPort}/v1/traces", service_name: gw-test, flush_interval_ms: 100 }
access_log: { path: stdout, fields: [correlation_id, trace_id] }
auth:
  providers:
    - { name: h, issuer: test, secret: "${SECRET}", algorithms: [HS256] }
rate_limits:
  many: { key: ip, rate: 1000, per: 1h }
routes:
  - { name: timed, match: { prefix: /timed }, service: up, server_timing: true, auth: { provider: h }, rate_limit: [many] }
  - { name: api, match: { prefix: /api }, service: up, server_timing: true }
  - { name: fail, match: { prefix: /fail }, service: up }
  - { name: untraced, match: { prefix: /untraced }, service: up, tracing: false }
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
  await new Promise((r) => receiver?.close(r));
});

async function get(path: string, headers: Record<string, string | string[]> = {}) {
  const res = await request(`${gw.url}${path}`, { headers });
  const json = await res.body.json() as { traceparent: string | null; tracestate: string | null };
  return { status: res.statusCode, headers: res.headers, up: json };
}

function attr(span: OtlpSpan, key: string): string | undefined {
  const a = span.attributes.find((x) => x.key === key);
  return a?.value.stringValue ?? a?.value.intValue;
}

describe('traceparent parsing (W3C Trace Context)', () => {
  it('accepts a valid one and refuses every malformed shape', () => {
    assert.deepEqual(parseTraceParent(`00-${TRACE}-${PARENT}-01`), { traceId: TRACE, parentId: PARENT, sampled: true });
    assert.equal(parseTraceParent(`00-${TRACE}-${PARENT}-00`)?.sampled, false);
    assert.equal(parseTraceParent(`01-${TRACE}-${PARENT}-01-extra`)?.traceId, TRACE, 'a later version with more fields');
    for (const bad of [
      `ff-${TRACE}-${PARENT}-01`, `00-${TRACE}-${PARENT}-01-x`, `00-${TRACE.toUpperCase()}-${PARENT}-01`,
      `00-${'0'.repeat(32)}-${PARENT}-01`, `00-${TRACE}-${'0'.repeat(16)}-01`, `00-${TRACE.slice(1)}-${PARENT}-01`,
      `00-${TRACE}-${PARENT}-0g`, `0-${TRACE}-${PARENT}-01`, `01-${TRACE}-${PARENT}-01x`, '', 'garbage',
      `00_${TRACE}-${PARENT}-01`,
    ]) assert.equal(parseTraceParent(bad), null, bad);
  });

  it('tracestate: valid lists kept, any bad member drops the whole header', () => {
    assert.equal(validTraceState('rojo=00f067aa0ba902b7, congo=t61rcWkgMzE'), 'rojo=00f067aa0ba902b7,congo=t61rcWkgMzE');
    assert.equal(validTraceState('tenant@vendor=x'), 'tenant@vendor=x');
    for (const bad of ['Upper=1', 'a=b=c', 'a=', 'a=x,y', 'a=\u0001', 'x'.repeat(600), Array.from({ length: 33 }, (_, i) => `k${i}=v`).join(',')]) {
      assert.equal(validTraceState(bad), '', bad);
    }
  });
});

describe('propagation and export', () => {
  it('keeps a valid trace, sends a new span id for its hop, exports its span with the client as parent', async () => {
    const r = await get('/api/x', { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'rojo=1', 'x-correlation-id': 'tr-1' });
    assert.equal(r.status, 200);
    const sent = parseTraceParent(r.up.traceparent!)!;
    assert.equal(sent.traceId, TRACE);
    assert.notEqual(sent.parentId, PARENT, 'Lobby sends its own span id');
    assert.equal(sent.sampled, true);
    assert.equal(r.up.tracestate, 'rojo=1');
    assert.equal(r.headers.traceparent, undefined, 'nothing echoed to the client');
    await waitUntil('the span at the receiver', () => spans.some((s) => s.spanId === sent.parentId), 10_000);
    const span = spans.find((s) => s.spanId === sent.parentId)!;
    assert.equal(span.traceId, TRACE);
    assert.equal(span.parentSpanId, PARENT);
    assert.equal(span.kind, 2);
    assert.equal(span.name, 'GET api');
    assert.equal(attr(span, 'http.response.status_code'), '200');
    assert.equal(attr(span, 'lobby.route'), 'api');
    assert.equal(attr(span, 'lobby.correlation_id'), 'tr-1');
    assert.equal(attr(span, 'url.path'), '/api/x');
    assert.deepEqual(span.status, {});
    assert.ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano));
    const ms = Number(BigInt(span.startTimeUnixNano) / 1_000_000n);
    assert.ok(Math.abs(Date.now() - ms) < 60_000, 'start time in Unix nanoseconds');
    assert.ok(resources.some((res) => res.some((a) => a.key === 'service.name' && a.value.stringValue === 'gw-test')));
    await waitUntil('the access-log line', () => gw.stdout().includes('"correlation_id":"tr-1"'), 10_000);
    const line = JSON.parse(gw.stdout().split('\n').find((l) => l.includes('"tr-1"'))!) as Record<string, string>;
    assert.equal(line.trace_id, TRACE);
    assert.equal(line.span_id, sent.parentId);
  });

  it('replaces an invalid traceparent (and drops its tracestate), never forwards it', async () => {
    for (const bad of [`00-${'0'.repeat(32)}-${PARENT}-01`, 'not-a-trace', [`00-${TRACE}-${PARENT}-01`, `00-${TRACE}-${PARENT}-01`]]) {
      const r = await get('/api/y', { traceparent: bad, tracestate: 'rojo=1' });
      const sent = parseTraceParent(r.up.traceparent!);
      assert.ok(sent, `a valid traceparent was sent for ${bad}`);
      assert.notEqual(sent.traceId, TRACE);
      assert.equal(r.up.tracestate, null);
    }
  });

  it('starts a trace when there is none; a 5xx span has an error status; tracing: false leaves the route alone', async () => {
    const r = await get('/fail/z');
    assert.equal(r.status, 503);
    const sent = parseTraceParent(r.up.traceparent!)!;
    await waitUntil('the new trace\'s span', () => spans.some((s) => s.traceId === sent.traceId), 10_000);
    const span = spans.find((s) => s.traceId === sent.traceId)!;
    assert.equal(span.parentSpanId, undefined);
    assert.equal(span.status.code, 2);
    const u = await get('/untraced', { traceparent: 'client-value' });
    assert.equal(u.up.traceparent, 'client-value', 'a route with tracing: false forwards the header as any other');
  });
});

describe('Server-Timing', () => {
  it('is sent on a route that asks for it, with gateway and upstream durations, and not elsewhere', async () => {
    const r = await get('/api/t');
    const value = String(r.headers['server-timing']);
    assert.match(value, /^gateway;dur=\d+\.\d\d, upstream;dur=\d+\.\d\d$/);
    const f = await get('/fail/t');
    assert.equal(f.headers['server-timing'], undefined);
  });

  it('adds the auth and rate-limit durations on a route with both', async () => {
    const token = await sign(hmac, { iss: 'test', sub: 'u', exp: Math.floor(Date.now() / 1000) + 60 }, { header: { kid: null } });
    const r = await get('/timed/t', { authorization: `Bearer ${token}` });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['server-timing']), /^gateway;dur=\d+\.\d\d, auth;dur=\d+\.\d\d, ratelimit;dur=\d+\.\d\d, upstream;dur=\d+\.\d\d$/);
  });
});

describe('sampling ratio', () => {
  let ratioGw: Gateway | null = null;
  after(async () => { await ratioGw?.stop(); });

  it('samples new traces at the configured ratio; a caller\'s sampled flag is kept either way', async () => {
    ratioGw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2 }
services: { up: { targets: ["${up.origin}"] } }
tracing: { sample: 0.25 }
routes:
  - { name: api, match: { prefix: /api }, service: up }
`);
    const sampledOf = async (headers: Record<string, string> = {}) => {
      const res = await request(`${ratioGw!.url}/api/s`, { headers });
      const json = await res.body.json() as { traceparent: string };
      return parseTraceParent(json.traceparent)!.sampled;
    };
    const N = 400;
    let sampled = 0;
    for (let i = 0; i < N; i += 8) {
      const batch = await Promise.all(Array.from({ length: 8 }, () => sampledOf()));
      sampled += batch.filter(Boolean).length;
    }
    // Binomial(400, 0.25): mean 100, sd 8.7; 60..140 is beyond 4.5 sd (a false failure about 1 in 150,000).
    assert.ok(sampled >= 60 && sampled <= 140, `${sampled} of ${N} sampled at 0.25`);
    for (let i = 0; i < 20; i++) {
      assert.equal(await sampledOf({ traceparent: `00-${TRACE}-${PARENT}-01` }), true, 'the caller sampled it');
      assert.equal(await sampledOf({ traceparent: `00-${TRACE}-${PARENT}-00` }), false, 'the caller did not');
    }
  });
});
