// The circuit breaker (docs/resilience.md#circuit-breaker) on a real gateway with 2 workers
// and real upstreams that fail, hang or answer slowly: every transition and threshold, the
// state shared by both workers, max_concurrent / max_pending overflow, and what /status,
// /upstreams and /metrics show.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { adminClient, breakerOnce as breakerOnceOf, breakerStatus, waitUntil, type AdminClient } from '../helpers/admin.js';
import type { BreakerStatus } from '../../src/control/breaker-store.js';
import { freePort } from '../helpers/ports.js';
import { startStalledListener, type StalledListener } from '../helpers/stalled-listener.js';
import { parsePrometheusText } from '../helpers/prom-text.js';

let gw: Gateway;
let admin: AdminClient;
const ups: Upstream[] = [];
let flaky: Upstream;
let rated: Upstream;
let slow: Upstream;
let hanging: Upstream;
let holder: Upstream;
let flakyFails = true;
const held: ServerResponse[] = [];
let stalled: StalledListener;

/** A request on a fresh connection (SO_REUSEPORT spreads those over both workers). */
async function get(path: string): Promise<{ status: number; headers: Record<string, unknown>; text: string; json: () => any }> {
  const res = await request(gw.url + path, { reset: true });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

const breaker = (service: string) => breakerStatus(admin, service);
/** The breaker once `check` holds (see test/helpers/admin.ts: a try is counted just after its last byte went out). */
const breakerOnce = (service: string, what: string, check: (b: BreakerStatus) => boolean) => breakerOnceOf(admin, service, what, check);
const inState = (state: string) => (b: BreakerStatus) => b.state === state;

before(async () => {
  flaky = await startUpstream('flaky', (req, res) => {
    if (flakyFails) { res.writeHead(500, { 'content-type': 'text/plain' }); res.end('boom'); return; }
    res.end('ok');
  });
  rated = await startUpstream('rated', (req, res) => {
    res.writeHead(req.url!.includes('fail') ? 502 : 200);
    res.end('r');
  });
  slow = await startUpstream('slow', (req, res) => { setTimeout(() => res.end('late'), 400); });
  hanging = await startUpstream('hanging', () => { /* never answers */ });
  holder = await startUpstream('holder', (req, res) => { held.push(res); });
  ups.push(flaky, rated, slow, hanging, holder);
  const stalledPort = await freePort();
  stalled = await startStalledListener(stalledPort);
  const adminPort = await freePort();
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2, drain_timeout_ms: 500 }
admin: { host: 127.0.0.1, port: ${adminPort} }
metrics: {}
services:
  flaky: { targets: ["${flaky.origin}"], circuit_breaker: { consecutive_failures: 3, open_s: 3, half_open_probes: 2 } }
  rated: { targets: ["${rated.origin}"], circuit_breaker: { failure_rate: 0.5, window_s: 30, min_requests: 10, open_s: 60 } }
  slow: { targets: ["${slow.origin}"], circuit_breaker: { consecutive_failures: 2, slow_call_ms: 150, open_s: 60 } }
  hanging: { targets: ["${hanging.origin}"], timeouts: { response_ms: 200 }, circuit_breaker: { consecutive_failures: 2, open_s: 60 } }
  holder: { targets: ["${holder.origin}"], circuit_breaker: { max_concurrent: 2 } }
  stalled: { targets: ["http://127.0.0.1:${stalledPort}"], timeouts: { connect_ms: 20000 }, circuit_breaker: { max_pending: 2 } }
routes:
  - { name: flaky, match: { prefix: /flaky }, service: flaky }
  - { name: rated, match: { prefix: /rated }, service: rated }
  - { name: slow, match: { prefix: /slow }, service: slow }
  - { name: hanging, match: { prefix: /hanging }, service: hanging }
  - { name: holder, match: { prefix: /holder }, service: holder }
  - { name: stalled, match: { prefix: /stalled }, service: stalled }
`);
  admin = adminClient(adminPort);
});

after(async () => {
  for (const r of held.splice(0)) r.end('released');
  await gw?.stop();
  await Promise.all(ups.map((u) => u.close()));
  stalled?.close();
});

describe('circuit breaker', () => {
  it('opens after consecutive failures, shared by both workers, and answers 503 upstream_circuit_open with Retry-After', async () => {
    assert.equal((await breaker('flaky')).state, 'closed');
    for (let i = 0; i < 3; i++) assert.equal((await get('/flaky')).status, 500, 'failures pass through while closed');
    await breakerOnce('flaky', 'open', inState('open'));
    const seen = flaky.received.length;
    // Twenty fresh connections land on both workers: none reaches the upstream. (open_s is 3,
    // not 1: twenty connections on a loaded machine may take a second, and a probe would pass.)
    for (let i = 0; i < 20; i++) {
      const r = await get('/flaky');
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json().error.code, 'upstream_circuit_open');
      assert.ok(Number(r.headers['retry-after']) >= 1, `Retry-After: ${r.headers['retry-after']}`);
    }
    assert.equal(flaky.received.length, seen, 'an open breaker sends nothing upstream, on either worker');
    const b = await breaker('flaky');
    assert.ok(b.rejected.open >= 20, JSON.stringify(b));
  });

  it('goes half-open after open_s, reopens on a failed probe, closes after half_open_probes successes', async () => {
    // Still failing: the first probe fails and it opens again.
    await waitUntil('a probe', async () => (await get('/flaky')).status === 500, 10_000);
    let b = await breakerOnce('flaky', 'open again', (x) => x.transitions.open === 2);
    assert.equal(b.state, 'open');
    assert.equal(b.transitions.half_open, 1);
    assert.equal(b.transitions.open, 2);
    flakyFails = false;
    await waitUntil('the first probe', async () => (await get('/flaky')).status === 200, 10_000);
    b = await breaker('flaky');
    assert.equal(b.state, 'half_open', 'one of two probes succeeded');
    assert.equal((await get('/flaky')).status, 200);
    // The state changes first, then the transition is counted, then logged.
    b = await breakerOnce('flaky', 'closed', (x) => x.state === 'closed' && x.transitions.closed === 1);
    assert.deepEqual(b.transitions, { closed: 1, open: 2, half_open: 2 });
    // Each transition is logged once per instance (by the worker that won the swap), into the
    // one stderr pipe and in order: once the last (closed) line is read, the earlier ones are.
    const flakyLines = () => gw.stderr().split('\n').filter((l) => l.includes('"service":"flaky"'));
    await waitUntil('the closed transition logged', () => flakyLines().some((l) => l.includes('circuit breaker closed')), 5_000);
    const lines = flakyLines();
    assert.equal(lines.filter((l) => l.includes('circuit breaker opened')).length, 2, lines.join('\n'));
    assert.equal(lines.filter((l) => l.includes('circuit breaker half-open')).length, 2);
    assert.equal(lines.filter((l) => l.includes('circuit breaker closed')).length, 1);
  });

  it('failure_rate opens only with min_requests tries in the window and the rate reached', async () => {
    for (let i = 0; i < 4; i++) assert.equal((await get('/rated/fail')).status, 502);
    assert.equal((await breaker('rated')).state, 'closed', '4 failures of 4: under min_requests');
    for (let i = 0; i < 6; i++) assert.equal((await get('/rated/ok')).status, 200);
    assert.equal((await get('/rated/fail')).status, 502);
    assert.equal((await breaker('rated')).state, 'closed', '5 of 11 failed: under 0.5');
    assert.equal((await get('/rated/fail')).status, 502);
    await breakerOnce('rated', 'open after 6 of 12 failed', inState('open'));
    assert.equal((await get('/rated/ok')).status, 503);
  });

  it('a call slower than slow_call_ms counts as a failure', async () => {
    assert.equal((await get('/slow')).status, 200);
    assert.equal((await get('/slow')).status, 200);
    await breakerOnce('slow', 'open', inState('open'));
    const r = await get('/slow');
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json().error.code, 'upstream_circuit_open');
  });

  it('an upstream timeout counts as a failure', async () => {
    assert.equal((await get('/hanging')).status, 504);
    assert.equal((await get('/hanging')).status, 504);
    await breakerOnce('hanging', 'open', inState('open'));
    assert.equal((await get('/hanging')).json().error.code, 'upstream_circuit_open');
  });

  it('max_concurrent: beyond it, 503 upstream_overloaded over both workers; freed slots admit again', async () => {
    const inFlight = [get('/holder/1'), get('/holder/2')];
    await waitUntil('two held requests', () => held.length === 2, 10_000);
    for (let i = 0; i < 6; i++) {
      const r = await get('/holder/3');
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json().error.code, 'upstream_overloaded');
    }
    assert.equal(held.length, 2, 'nothing over the limit reached the upstream');
    const b = await breaker('holder');
    assert.equal(b.in_flight, 2);
    assert.ok(b.rejected.overflow >= 6);
    assert.equal(b.state, 'closed', 'overflow is not a failure');
    for (const r of held.splice(0)) r.end('released');
    assert.deepEqual((await Promise.all(inFlight)).map((r) => r.status), [200, 200]);
    const next = get('/holder/4');
    await waitUntil('the next request upstream', () => held.length === 1, 10_000);
    held.splice(0)[0].end('ok');
    assert.equal((await next).status, 200);
    await breakerOnce('holder', 'no try in flight', (b) => b.in_flight === 0);
  });

  it('max_pending: tries waiting for a connection beyond it get 503 upstream_overloaded', async () => {
    const waiting = [get('/stalled/1'), get('/stalled/2')];
    await waitUntil('two pending tries', async () => (await breaker('stalled')).pending === 2, 10_000);
    const r = await get('/stalled/3');
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json().error.code, 'upstream_overloaded');
    void Promise.allSettled(waiting); // they end when the gateway stops
  });

  it('shows in /upstreams and /metrics', async () => {
    const up = await admin.get('/upstreams');
    const svc = up.body.services.find((s: { name: string }) => s.name === 'rated');
    assert.equal(svc.circuit_breaker.state, 'open');
    const metrics = await admin.get('/metrics');
    const samples = [...parsePrometheusText(metrics.body).values()].flatMap((f) => f.samples);
    const value = (name: string, labels: Record<string, string>) =>
      samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    assert.equal(value('lobby_breaker_state', { service: 'rated' }), 1);
    assert.equal(value('lobby_breaker_state', { service: 'flaky' }), 0);
    assert.equal(value('lobby_breaker_transitions_total', { service: 'flaky', to: 'open' }), 2);
    assert.ok((value('lobby_breaker_rejected_total', { service: 'holder', reason: 'overflow' }) ?? 0) >= 6);
  });

  it('a reload keeps every breaker state (slots are keyed by service name)', async () => {
    const before = await admin.get('/status');
    const file = await readFile(gw.configFile, 'utf8');
    await writeFile(gw.configFile, file + '  - { name: extra, match: { prefix: /extra }, service: rated }\n');
    const r = await admin.post('/reload');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    await waitUntil('the new generation', async () => (await admin.get('/status')).body.generation > before.body.generation, 10_000);
    const b = await breaker('rated');
    assert.equal(b.state, 'open');
    assert.equal(b.transitions.open, 1);
    assert.equal((await get('/extra')).status, 503, 'the new route meets the same open breaker');
    assert.equal((await breaker('flaky')).transitions.open, 2);
  });
});
