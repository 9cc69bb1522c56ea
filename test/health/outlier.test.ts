// Passive outlier ejection end to end: one real gateway (2 workers) in front of real
// upstreams that answer 5xx or refuse connections. Asserted: ejection after consecutive_5xx
// counted across both workers (shared table), after consecutive connect failures, the
// max_eject_percent cap, no traffic to an ejected target, the return after eject_s, the
// ejection time growing with repeats, 503 no_healthy_upstream once every target is out, and
// what /upstreams, /status, /metrics and the log show.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { ControlledUpstream, freshRequest, upstreamRows } from './controlled-upstream.js';

const ol = [new ControlledUpstream('ol-a'), new ControlledUpstream('ol-b'), new ControlledUpstream('ol-c')];
const cap = [1, 2, 3, 4].map((i) => new ControlledUpstream(`cap-${i}`));
const cfUp = new ControlledUpstream('cf-up');
const only = new ControlledUpstream('only');
const all = [...ol, ...cap, cfUp, only];
let closedOrigin: string;
let gw: Gateway;
let admin: AdminClient;
let adminPort: number;
/** When the first ejection of ol-a ends, as the gateway reported it. */
let firstEjectedUntil = 0;

function config(): string {
  const list = (ups: ControlledUpstream[]) => ups.map((u) => `"${u.origin}"`).join(', ');
  return `
server: { host: 127.0.0.1, port: __PORT__, workers: 2, drain_timeout_ms: 2000 }
admin: { host: 127.0.0.1, port: ${adminPort} }
services:
  ol:
    targets: [${list(ol)}]
    outlier: { consecutive_5xx: 3, eject_s: 2, max_eject_s: 10, max_eject_percent: 34 }
  cap:
    targets: [${list(cap)}]
    outlier: { consecutive_5xx: 2, eject_s: 60, max_eject_percent: 50 }
  cf:
    targets: ["${closedOrigin}", "${cfUp.origin}"]
    timeouts: { connect_ms: 2000 }
    outlier: { consecutive_5xx: 0, consecutive_connect_failures: 2, eject_s: 60, max_eject_percent: 50 }
  only:
    targets: ["${only.origin}"]
    outlier: { consecutive_5xx: 2, eject_s: 60, max_eject_percent: 100 }
routes:
  - { name: ol, match: { prefix: /ol }, service: ol }
  - { name: cap, match: { prefix: /cap }, service: cap }
  - { name: cf, match: { prefix: /cf }, service: cf }
  - { name: only, match: { prefix: /only }, service: only }
`;
}

const fresh = (path: string) => freshRequest(gw.url + path);

const rows = (service: string) => upstreamRows(admin, service);
const rowOf = async (service: string, origin: string) => (await rows(service)).find((t) => t.target === origin);
const logLines = (msg: string, origin: string) => gw.stderr().split('\n').filter((l) => l.includes(`"msg":"${msg}"`) && l.includes(origin));

before(async () => {
  await Promise.all(all.map((u) => u.start()));
  closedOrigin = `http://127.0.0.1:${await freePort()}`; // nothing listens there
  adminPort = await freePort();
  gw = await startGateway(config());
  admin = adminClient(adminPort);
  await admin.waitReady();
});

after(async () => {
  await gw?.stop();
  await Promise.all(all.map((u) => u.stop()));
});

describe('outlier ejection', () => {
  it('ejects a target at its consecutive_5xx-th 5xx, counted across both workers', async () => {
    const [a] = ol;
    a.traffic = 500;
    // One request at a time on fresh connections: they land on both workers.
    for (let i = 0; i < 100 && a.trafficCount < 3; i++) {
      await fresh('/ol/x');
      if (a.trafficCount < 3) assert.equal((await rowOf('ol', a.origin)).ejected, false, `ejected after only ${a.trafficCount} 5xx`);
    }
    assert.equal(a.trafficCount, 3);
    const row = await rowOf('ol', a.origin);
    assert.equal(row.ejected, true, 'the third 5xx, whichever worker saw it, ejects');
    assert.equal(row.health, 'ejected');
    assert.equal(row.times_ejected, 1);
    assert.equal(row.ejections_total, 1);
    firstEjectedUntil = Date.parse(row.ejected_until);
    assert.ok(firstEjectedUntil > Date.now(), row.ejected_until);
    await waitUntil('the ejection logged', () => logLines('upstream target ejected', a.origin).length === 1, 5_000);
    assert.equal(JSON.parse(logLines('upstream target ejected', a.origin)[0]).for_s, 2);
  });

  it('brings it back after eject_s, and ejects it for twice as long the second time', async () => {
    const [a] = ol;
    await waitUntil('a to return', async () => (await rowOf('ol', a.origin)).ejected === false, 15_000);
    // Measured against the gateway's own ejected_until, not from this test's start: the first
    // test's waits (a log line, up to seconds on a loaded machine) eat into the 2 s.
    assert.ok(Date.now() >= firstEjectedUntil - 250, `returned ${firstEjectedUntil - Date.now()} ms before ejected_until`);
    await waitUntil('the return logged', () => logLines('upstream target returned', a.origin).length === 1, 5_000);
    const served = a.trafficCount;
    for (let i = 0; i < 100 && a.trafficCount < served + 3; i++) await fresh('/ol/x');
    const row = await rowOf('ol', a.origin);
    assert.equal(row.ejected, true);
    assert.equal(row.times_ejected, 2);
    await waitUntil('the second ejection logged', () => logLines('upstream target ejected', a.origin).length === 2, 5_000);
    assert.equal(JSON.parse(logLines('upstream target ejected', a.origin)[1]).for_s, 4, 'eject_s × times ejected');
    a.traffic = 200;
  });

  it('never ejects more than max_eject_percent of the targets, and an ejected target gets no traffic', async () => {
    for (const u of cap) u.traffic = 500;
    for (let round = 0; round < 10; round++) await Promise.all(Array.from({ length: 8 }, () => fresh('/cap/x')));
    const targets = await rows('cap');
    const ejected = targets.filter((t) => t.ejected);
    assert.equal(ejected.length, 2, `4 targets, 50%: ${JSON.stringify(targets.map((t) => [t.target, t.ejected, t.consecutive_5xx]))}`);
    const status = (await admin.get('/status')).body.upstream_health.services.find((s: any) => s.name === 'cap');
    assert.deepEqual({ ejected: status.ejected, max_ejected: status.max_ejected, healthy: status.healthy }, { ejected: 2, max_ejected: 2, healthy: 2 });
    const out = cap.filter((u) => ejected.some((t) => t.target === u.origin));
    const counts = out.map((u) => u.trafficCount);
    const results = await Promise.all(Array.from({ length: 16 }, () => fresh('/cap/x')));
    for (const r of results) assert.equal(r.status, 500, 'the two left keep answering (their 5xx is relayed)');
    assert.deepEqual(out.map((u) => u.trafficCount), counts, 'no request reached an ejected target');
    const text = await (await request(`${admin.url}/metrics`)).body.text();
    const total = [...text.matchAll(/lobby_upstream_ejections_total\{service="cap",target="[^"]+"\} (\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
    assert.equal(total, 2);
    assert.match(text, /lobby_upstream_healthy\{service="cap",target="[^"]+"\} 0/);
  });

  it('a reload keeps the ejections: the same targets stay out under the new config', async () => {
    const before = (await rows('cap')).filter((t) => t.ejected).map((t) => t.target).sort();
    assert.equal(before.length, 2);
    const generation = (await admin.get('/status')).body.generation;
    await writeFile(gw.configFile, config().replace('__PORT__', String(gw.port)) + '  - { name: extra, match: { prefix: /extra }, service: cap }\n');
    gw.proc.kill('SIGHUP');
    await waitUntil('the reload', async () => (await admin.get('/status')).body.generation > generation, 10_000);
    assert.deepEqual((await rows('cap')).filter((t) => t.ejected).map((t) => t.target).sort(), before);
    const out = cap.filter((u) => before.includes(u.origin));
    const counts = out.map((u) => u.trafficCount);
    await Promise.all(Array.from({ length: 12 }, () => fresh('/extra/x')));
    assert.deepEqual(out.map((u) => u.trafficCount), counts);
  });

  it('ejects a target after consecutive connect failures', async () => {
    for (let i = 0; i < 40; i++) {
      if ((await rowOf('cf', closedOrigin)).ejected) break;
      await fresh('/cf/x');
    }
    const row = await rowOf('cf', closedOrigin);
    assert.equal(row.ejected, true);
    const results = await Promise.all(Array.from({ length: 10 }, () => fresh('/cf/x')));
    for (const r of results) { assert.equal(r.status, 200); assert.equal(r.body.upstream, 'cf-up'); }
  });

  it('with every target ejected (max_eject_percent 100) the request fails fast: 503 no_healthy_upstream', async () => {
    only.traffic = 502;
    let last = { status: 0, body: null as any };
    for (let i = 0; i < 20 && last.status !== 503; i++) last = await fresh('/only/x');
    assert.equal(last.status, 503);
    assert.equal(last.body.error.code, 'no_healthy_upstream');
    const served = only.trafficCount;
    assert.equal((await fresh('/only/x')).body.error.code, 'no_healthy_upstream');
    assert.equal(only.trafficCount, served);
  });
});
