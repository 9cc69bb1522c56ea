// Issue 16, the WAF through a real gateway and a real upstream: attacks in a query, a path, a
// header and a JSON body are refused 403 waf_blocked (rule ids, correlation id, nothing
// upstream); benign requests, bodies included, reach the upstream unchanged; report mode
// admits; exclusions apply per field; request validation answers 400 request_invalid; per-route limits override the server's (413/431/414); the access log and lobby_waf_decisions_total name the rules.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { adminClient, waitUntil } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';

let upstream: Upstream;
let gw: Gateway;
let adminPort: number;

before(async () => {
  upstream = await startUpstream('app');
  adminPort = await freePort();
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1, limits: { max_body_bytes: 4000 } }
admin: { host: 127.0.0.1, port: ${adminPort} }
services: { app: { targets: ["${upstream.origin}"] } }
access_log: { path: stdout, fields: [path, route, status, error_code, waf] }
waf: { paranoia: 1 }
routes:
  - { name: cms, match: { prefix: /cms }, service: app, waf: { exclude: [{ field: body.html }] } }
  - { name: trial, match: { prefix: /trial }, service: app, waf: { mode: report } }
  - { name: open, match: { prefix: /open }, service: app, waf: false }
  - { name: small, match: { prefix: /small }, service: app, limits: { max_body_bytes: 100, max_header_bytes: 1500, max_url_bytes: 80, max_headers: 12 } }
  - { name: big, match: { prefix: /big }, service: app, waf: false, limits: { max_body_bytes: 100000 } }
  - name: orders
    match: { prefix: /orders }
    service: app
    validate:
      POST: { body: { type: object, required: [email], properties: { email: { type: string, format: email }, qty: { type: integer, minimum: 1 } } } }
      GET: { query: { type: object, properties: { page: { type: integer, minimum: 1 } } } }
  - { name: api, match: { prefix: / }, service: app }
`);
  await adminClient(adminPort).waitReady();
});

after(async () => {
  await gw?.stop();
  await upstream?.close();
});

async function send(path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}) {
  const res = await request(`${gw.url}${path}`, { method: (opts.method ?? 'GET') as 'GET', headers: opts.headers, body: opts.body });
  return { status: res.statusCode, body: await res.body.text() };
}

it('attacks are refused 403 waf_blocked with the rule ids and the correlation id, and reach no upstream', async () => {
  const json = { 'content-type': 'application/json' };
  const attacks: [string, Parameters<typeof send>[1]][] = [
    ["/items?id=1'%20OR%20'1'%3D'1", {}],
    ['/items/1%20UNION%20SELECT%20password%20FROM%20users', {}],
    ['/items', { headers: { 'user-agent': '<script>alert(1)</script>' } }],
    ['/items', { headers: { cookie: 'session=x%27%3B%20DROP%20TABLE%20users--' } }],
    ['/items', { method: 'POST', headers: json, body: JSON.stringify({ comment: '<img src=x onerror=alert(1)>' }) }],
    ['/items', { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'q=%7B%7B7*7%7D%7D' }],
  ];
  for (const [path, opts] of attacks) {
    const before = upstream.received.length;
    const got = await send(path, opts);
    assert.equal(got.status, 403, `${path}: ${got.body}`);
    const { error } = JSON.parse(got.body) as { error: { code: string; message: string; correlation_id: string } };
    assert.equal(error.code, 'waf_blocked');
    assert.match(error.message, /Rules: \d{4}/);
    assert.doesNotMatch(error.message, /script|union|drop|onerror|7\*7/i);
    assert.match(error.correlation_id, /^[0-9a-f-]{36}$/);
    assert.equal(upstream.received.length, before, 'nothing reaches the upstream');
  }
});

it('benign requests and their bodies reach the upstream; report mode admits; exclusions and waf: false apply', async () => {
  const body = JSON.stringify({ name: "Mary O'Brien", comment: 'Please select the items from the list.', html: '<b>hi</b>' });
  for (const [path, status] of [
    ['/items?q=select+comfort&name=O%27Brien', 200],
    ["/trial?id=1'%20OR%20'1'%3D'1", 200], // report mode
    ['/open?q=%3Cscript%3E', 200], // no WAF
  ] as const) assert.equal((await send(path)).status, status, path);
  const posted = await send('/items', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  assert.equal(posted.status, 200);
  assert.equal(upstream.received.at(-1)!.bodyBytes, Buffer.byteLength(body), 'the inspected body is forwarded whole');
  const markup = JSON.stringify({ html: '<script>alert(1)</script>' });
  assert.equal((await send('/cms/page', { method: 'POST', headers: { 'content-type': 'application/json' }, body: markup })).status, 200);
  assert.equal((await send('/items', { method: 'POST', headers: { 'content-type': 'application/json' }, body: markup })).status, 403);
});

it('the access log and lobby_waf_decisions_total record the rule ids and decisions', async () => {
  await waitUntil('access log lines', () => gw.stdout().includes('"route":"trial"') && gw.stdout().includes('"decision":"blocked"'), 10_000);
  const lines = gw.stdout().split('\n').filter((l) => l.includes('"waf"')).map((l) => JSON.parse(l) as { route: string; waf: { rules: number[]; decision: string }; error_code?: string });
  const trial = lines.find((l) => l.route === 'trial')!;
  assert.equal(trial.waf.decision, 'reported');
  assert.ok(trial.waf.rules.includes(2101));
  assert.ok(lines.some((l) => l.route === 'api' && l.waf.decision === 'blocked' && l.error_code === 'waf_blocked'));
  let text = '';
  await waitUntil('waf metrics', async () => {
    const res = await request(`http://127.0.0.1:${adminPort}/metrics`);
    text = await res.body.text();
    return /lobby_waf_decisions_total\{route="trial",rule="2101",decision="reported"\} 1/.test(text);
  }, 10_000);
  assert.match(text, /lobby_waf_decisions_total\{route="api",rule="\d{4}",decision="blocked"\} \d/);
  assert.doesNotMatch(text, /lobby_waf_decisions_total\{route="open"/);
});

it('per-route limits override the server-wide ones both ways: 413, 431, 414 as the front door answers', async () => {
  const post = (path: string, bytes: number, headers: Record<string, string> = {}) =>
    send(path, { method: 'POST', headers: { 'content-type': 'application/octet-stream', ...headers }, body: 'x'.repeat(bytes) });
  assert.equal((await post('/small/a', 100)).status, 200);
  assert.equal(JSON.parse((await post('/small/a', 101)).body).error.code, 'payload_too_large');
  assert.equal((await post('/items', 3000)).status, 200);
  assert.equal((await post('/items', 4001)).status, 413, 'the server-wide limit holds where no route raised it');
  assert.equal((await post('/big/a', 50_000)).status, 200, 'a route may allow more than the server');
  assert.equal((await post('/big/a', 100_001)).status, 413);
  // Chunked: counted as it streams, against the route's limit.
  const chunked = await request(`${gw.url}/big/a`, { method: 'POST', body: Readable.from((function* () { for (let i = 0; i < 30; i++) yield Buffer.alloc(5000, 120); })()) });
  assert.equal(chunked.statusCode, 413);
  await chunked.body.dump();
  const small = await request(`${gw.url}/small/a`, { method: 'POST', body: Readable.from([Buffer.alloc(3000, 120)]) });
  assert.equal(small.statusCode, 413, 'a chunked body past the route\'s own (smaller) limit');
  await small.body.dump();
  // A route without limits of its own keeps the server's for a chunked body too (another route raised the front door's).
  const plain = await request(`${gw.url}/items`, { method: 'POST', body: Readable.from([Buffer.alloc(3000, 120), Buffer.alloc(3000, 120)]) });
  assert.equal(plain.statusCode, 413, 'a chunked body past the server-wide limit on a route without its own');
  await plain.body.dump();
  assert.equal((await send('/small/' + 'a'.repeat(60))).status, 200);
  assert.equal(JSON.parse((await send('/small/' + 'a'.repeat(80))).body).error.code, 'uri_too_long');
  assert.equal(JSON.parse((await send('/small/a', { headers: { 'x-pad': 'p'.repeat(1500) } })).body).error.code, 'request_header_fields_too_large');
  const many: Record<string, string> = {};
  for (let i = 0; i < 12; i++) many[`x-h${i}`] = '1';
  assert.equal((await send('/small/a', { headers: many })).status, 431, 'more header fields than max_headers');
  assert.equal((await send('/items', { headers: many })).status, 200);
});

it('request validation: a body or query failing the route\'s schema is 400 request_invalid with pointers and keywords, nothing upstream', async () => {
  const json = { 'content-type': 'application/json' };
  assert.equal((await send('/orders', { method: 'POST', headers: json, body: '{"email":"a@example.com","qty":2}' })).status, 200);
  const before = upstream.received.length;
  const bad = await send('/orders', { method: 'POST', headers: json, body: '{"email":"hunter2-not-mail","qty":0}' });
  assert.equal(bad.status, 400);
  const { error } = JSON.parse(bad.body) as { error: { code: string; message: string; correlation_id: string } };
  assert.equal(error.code, 'request_invalid');
  assert.match(error.message, /body\/email \(format\), body\/qty \(minimum\)/);
  assert.doesNotMatch(error.message, /hunter2/);
  assert.match(error.correlation_id, /^[0-9a-f-]{36}$/);
  assert.equal(JSON.parse((await send('/orders?page=0')).body).error.message.includes('query/page (minimum)'), true);
  assert.equal((await send('/orders?page=3')).status, 200);
  assert.equal(upstream.received.length, before + 1, 'only the valid GET reached the upstream');
});
