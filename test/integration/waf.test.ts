// Issue 16, the WAF through a real gateway and a real upstream: attacks in a query, a path, a
// header and a JSON body are refused 403 waf_blocked (rule ids, correlation id, nothing
// upstream); benign requests, bodies included, reach the upstream unchanged; report mode
// admits; exclusions apply per field; the access log and lobby_waf_decisions_total name the rules.
import { after, before, it } from 'node:test';
import assert from 'node:assert/strict';
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
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
admin: { host: 127.0.0.1, port: ${adminPort} }
services: { app: { targets: ["${upstream.origin}"] } }
access_log: { path: stdout, fields: [path, route, status, error_code, waf] }
waf: { paranoia: 1 }
routes:
  - { name: cms, match: { prefix: /cms }, service: app, waf: { exclude: [{ field: body.html }] } }
  - { name: trial, match: { prefix: /trial }, service: app, waf: { mode: report } }
  - { name: open, match: { prefix: /open }, service: app, waf: false }
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
