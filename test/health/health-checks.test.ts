// Active health checks end to end: one real gateway (2 workers) checks real upstreams that a
// test takes down, brings up, makes answer 5xx, hang or flap. Asserted: the thresholds both
// ways, expect_status, the check timeout, no traffic to an unhealthy target, 503
// no_healthy_upstream with flag UH when none is healthy, the state kept across a reload, an
// https target checked with the service's TLS settings and a Host header, and what /upstreams,
// /status and /metrics show.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { TestPki } from '../helpers/tls-certs.js';
import { ControlledUpstream, freshRequest, upstreamRows } from './controlled-upstream.js';

const a = new ControlledUpstream('a');
const b = new ControlledUpstream('b');
const solo = new ControlledUpstream('solo');
const flappy = new ControlledUpstream('flappy');
const steady = new ControlledUpstream('steady');
let secure: ControlledUpstream;
let pki: TestPki;
let gw: Gateway;
let admin: AdminClient;
let adminPort: number;

// Generous timeouts: a check of a healthy upstream must not time out on a loaded machine.
const CHECK = 'path: /healthz, interval_ms: 500, timeout_ms: 500, unhealthy_after: 2, healthy_after: 2';

function config(hcInterval = 500): string {
  return `
server: { host: 127.0.0.1, port: __PORT__, workers: 2, drain_timeout_ms: 2000 }
admin: { host: 127.0.0.1, port: ${adminPort} }
access_log: { path: stdout }
services:
  hc:
    targets: ["${a.origin}", "${b.origin}"]
    health_check: { path: /healthz, interval_ms: ${hcInterval}, timeout_ms: 500, unhealthy_after: 2, healthy_after: 2, expect_status: [200, 204] }
  solo:
    targets: ["${solo.origin}"]
    health_check: { ${CHECK} }
  flap:
    targets: ["${flappy.origin}", "${steady.origin}"]
    health_check: { ${CHECK} }
  secure:
    targets: ["${secure.origin}"]
    tls: { ca_file: ${pki.ca.cert}, servername: localhost }
    health_check: { path: /healthz, interval_ms: 500, timeout_ms: 500, unhealthy_after: 2, healthy_after: 1, host: "check.example:8443" }
routes:
  - { name: hc, match: { prefix: /hc }, service: hc }
  - { name: solo, match: { prefix: /solo }, service: solo }
  - { name: flap, match: { prefix: /flap }, service: flap }
  - { name: secure, match: { prefix: /secure }, service: secure }
`;
}

const fresh = (path: string) => freshRequest(gw.url + path);

const targetRow = async (service: string, origin: string) => (await upstreamRows(admin, service)).find((t) => t.target === origin);

const healthOf = async (service: string, up: ControlledUpstream) => (await targetRow(service, up.origin)).health;

async function waitHealth(service: string, up: ControlledUpstream, health: string): Promise<void> {
  await waitUntil(`${up.name} to be ${health}`, async () => (await healthOf(service, up)) === health, 15_000);
}

before(async () => {
  pki = new TestPki();
  const leaf = pki.leaf('secure-upstream', { names: ['localhost', 'IP:127.0.0.1'] });
  secure = new ControlledUpstream('secure', leaf);
  await Promise.all([a, b, solo, flappy, steady, secure].map((u) => u.start()));
  adminPort = await freePort();
  gw = await startGateway(config());
  admin = adminClient(adminPort);
  await admin.waitReady();
});

after(async () => {
  await gw?.stop();
  await Promise.all([a, b, solo, flappy, steady, secure].map((u) => u?.stop()));
  pki?.remove();
});

describe('active health checks', () => {
  it('checks every target from the control plane; both healthy take traffic', async () => {
    await waitUntil('the first checks', () => a.healthChecks >= 2 && b.healthChecks >= 2, 10_000);
    assert.equal(await healthOf('hc', a), 'healthy');
    const row = await targetRow('hc', a.origin);
    assert.equal(row.active_check.healthy, true);
    assert.equal(row.active_check.last_result, 'ok');
    const before = { a: a.trafficCount, b: b.trafficCount };
    const results = await Promise.all(Array.from({ length: 12 }, () => fresh('/hc/x')));
    for (const r of results) assert.equal(r.status, 200);
    assert.ok(a.trafficCount > before.a && b.trafficCount > before.b, `both targets served: a ${a.trafficCount - before.a}, b ${b.trafficCount - before.b}`);
  });

  it('a target failing unhealthy_after checks in a row gets no traffic; healthy_after passes bring it back (expect_status)', async () => {
    a.health = 500;
    await waitHealth('hc', a, 'unhealthy');
    assert.match((await targetRow('hc', a.origin)).active_check.last_result, /bad_status: status 500/);
    const served = a.trafficCount;
    const results = await Promise.all(Array.from({ length: 16 }, () => fresh('/hc/x')));
    for (const r of results) { assert.equal(r.status, 200); assert.equal(r.body.upstream, 'b'); }
    assert.equal(a.trafficCount, served, 'no request reached the unhealthy target');
    // 204 is in expect_status: two passes and it is back.
    a.health = 204;
    await waitHealth('hc', a, 'healthy');
    await waitUntil('traffic to a again', async () => (await fresh('/hc/x')).body.upstream === 'a', 10_000);
    const lines = gw.stderr().split('\n').filter((l) => l.includes(a.origin));
    assert.equal(lines.filter((l) => l.includes('"msg":"upstream target unhealthy"')).length, 1, 'the transition is logged once');
    assert.equal(lines.filter((l) => l.includes('"msg":"upstream target healthy"')).length, 1);
  });

  it('a check that gets no answer within timeout_ms fails (a hanging target), and a target that is down fails too', async () => {
    a.health = 'hang';
    await waitHealth('hc', a, 'unhealthy');
    assert.match((await targetRow('hc', a.origin)).active_check.last_result, /timeout/);
    a.health = 200;
    await waitHealth('hc', a, 'healthy');
    await a.stop();
    await waitHealth('hc', a, 'unhealthy');
    assert.match((await targetRow('hc', a.origin)).active_check.last_result, /error: ECONNREFUSED/);
    await a.start();
    await waitHealth('hc', a, 'healthy');
  });

  it('flapping: alternating results never cross a threshold of 2; two-and-two flips both ways each cycle', async () => {
    flappy.health = [200, 500];
    const from = flappy.healthChecks;
    await waitUntil('ten alternating checks', () => flappy.healthChecks >= from + 10, 15_000);
    assert.equal(await healthOf('flap', flappy), 'healthy');
    const logged = (msg: string) => gw.stderr().split('\n').filter((l) => l.includes(flappy.origin) && l.includes(`"msg":"${msg}"`)).length;
    assert.equal(logged('upstream target unhealthy'), 0);
    flappy.health = [500, 500, 200, 200];
    await waitUntil('two flips each way', () => logged('upstream target unhealthy') >= 2 && logged('upstream target healthy') >= 2, 20_000);
    flappy.health = 200;
    await waitHealth('flap', flappy, 'healthy');
  });

  it('with every target unhealthy the request fails fast: 503 no_healthy_upstream, flag UH', async () => {
    solo.health = 503;
    await waitHealth('solo', solo, 'unhealthy');
    const served = solo.trafficCount;
    const r = await fresh('/solo/x');
    assert.equal(r.status, 503);
    assert.equal(r.body.error.code, 'no_healthy_upstream');
    assert.equal(r.body.error.status, 503);
    assert.ok(r.body.error.correlation_id);
    assert.equal(solo.trafficCount, served);
    await waitUntil('the access-log line', () => gw.stdout().includes('"error_code":"no_healthy_upstream"'), 5_000);
    const line = gw.stdout().split('\n').find((l) => l.includes('"error_code":"no_healthy_upstream"'))!;
    assert.match(JSON.parse(line).flags, /\bUH\b/);
    const status = (await admin.get('/status')).body;
    const svc = status.upstream_health.services.find((s: any) => s.name === 'solo');
    assert.deepEqual({ targets: svc.targets, healthy: svc.healthy, unhealthy: svc.unhealthy }, { targets: 1, healthy: 0, unhealthy: 1 });
    solo.health = 200;
    await waitHealth('solo', solo, 'healthy');
    assert.equal((await fresh('/solo/x')).status, 200);
  });

  it('a reload keeps what is known: an unhealthy target stays out at once under the new config', async () => {
    b.health = 500;
    await waitHealth('hc', b, 'unhealthy');
    const generation = (await admin.get('/status')).body.generation;
    // New check settings (a long interval): a target starting over as healthy would take
    // traffic until two more checks failed.
    await writeFile(gw.configFile, config(5000).replace('__PORT__', String(gw.port)));
    gw.proc.kill('SIGHUP');
    await waitUntil('the reload', async () => (await admin.get('/status')).body.generation > generation, 10_000);
    assert.equal(await healthOf('hc', b), 'unhealthy');
    const served = b.trafficCount;
    const results = await Promise.all(Array.from({ length: 12 }, () => fresh('/hc/x')));
    for (const r of results) assert.equal(r.body.upstream, 'a');
    assert.equal(b.trafficCount, served);
    b.health = 200;
    await writeFile(gw.configFile, config().replace('__PORT__', String(gw.port)));
    gw.proc.kill('SIGHUP');
    await waitHealth('hc', b, 'healthy');
  });

  it('an https target is checked over TLS with the service settings, with the configured Host header', async () => {
    await waitUntil('TLS checks', () => secure.healthChecks >= 2, 10_000);
    assert.equal(await healthOf('secure', secure), 'healthy');
    assert.equal(secure.healthHosts.at(-1), 'check.example:8443');
    assert.equal((await fresh('/secure/x')).status, 200);
    secure.health = 500;
    await waitHealth('secure', secure, 'unhealthy');
    secure.health = 200;
    await waitHealth('secure', secure, 'healthy');
  });

  it('metrics: lobby_upstream_healthy per target and lobby_upstream_health_checks_total by result', async () => {
    solo.health = 500;
    await waitHealth('solo', solo, 'unhealthy');
    const text = await (await request(`${admin.url}/metrics`)).body.text();
    assert.match(text, new RegExp(`lobby_upstream_healthy\\{service="solo",target="${solo.origin}"\\} 0`));
    assert.match(text, new RegExp(`lobby_upstream_healthy\\{service="hc",target="${a.origin}"\\} 1`));
    const ok = Number(new RegExp(`lobby_upstream_health_checks_total\\{service="hc",target="${a.origin}",result="ok"\\} (\\d+)`).exec(text)?.[1]);
    const timeouts = Number(new RegExp(`lobby_upstream_health_checks_total\\{service="hc",target="${a.origin}",result="timeout"\\} (\\d+)`).exec(text)?.[1]);
    assert.ok(ok > 0 && timeouts > 0, `ok ${ok}, timeout ${timeouts}`);
    solo.health = 200;
  });
});
