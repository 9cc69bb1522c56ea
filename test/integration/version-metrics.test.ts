// lobby_api_version_requests_total end to end: a real gateway (2 workers) with API versioning
// in front of a real upstream; requests name their version by Accept media type, the
// Api-Version header, the query, the default or the path (also refused by ip_deny before the
// api-version filter ran); the exposition, parsed strictly
// (test/helpers/prom-text.ts) and linted by promtool, counts each route by the version it
// served. A reload that adds a version keeps every kept series where it was.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { parsePrometheusText, promtoolProblems, sampleValue, scrapeCounted, scrapeMetrics, type MetricFamily } from '../helpers/prom-text.js';

let api: Upstream;
let gw: Gateway;
let admin: AdminClient;
let adminPort: number;
/** Requests this file sent to the data plane (every one goes through hit()). */
let sent = 0;
/** sum(lobby_requests_total) before the first hit (start-up probes). */
let baseline = 0;

/** The config, with `versions` declared and a users route per entry of `users`. */
function config(versions: string[], users: string[]): string {
  return `
server: { host: 127.0.0.1, port: ${gw?.port ?? '__PORT__'}, workers: 2 }
admin: { host: 127.0.0.1, port: ${adminPort} }
metrics: { status_codes: class }
versioning:
  sources: [accept, header, query]
  vendor: company
  default: "1"
  versions:
${versions.map((v) => `    "${v}": ${v === '1' ? '{ deprecated: "2026-01-01" }' : '{}'}`).join('\n')}
services:
  api: { targets: ["${api.origin}"] }
routes:
${users.map((v) => `  - { name: users-v${v}, match: { prefix: /users, version: "${v}" }, service: api }`).join('\n')}
  - { name: orders-v1, match: { prefix: /v1/orders }, version: "1", service: api }
  - { name: orders-v2, match: { prefix: /v2/orders }, version: "2", service: api }
  - { name: private-v2, match: { prefix: /v2/private }, version: "2", service: api, ip_deny: [127.0.0.0/8] }
  - { name: health, match: { path: /health }, service: api }
`;
}

/** Response headers of the last hit(). */
let lastHeaders: Record<string, unknown> = {};

async function hit(path: string, headers: Record<string, string> = {}): Promise<number> {
  sent++;
  const res = await request(`${gw.url}${path}`, { headers });
  await res.body.dump();
  lastHeaders = res.headers;
  return res.statusCode;
}

const scrape = () => scrapeMetrics(admin.url);

const scrapeCountedHere = () => scrapeCounted(admin.url, baseline + sent);

/** Every lobby_api_version_requests_total series as "route version code value", sorted. */
function versionSeries(families: Map<string, MetricFamily>): string[] {
  return (families.get('lobby_api_version_requests_total')?.samples ?? [])
    .map((s) => `${s.labels.route} ${s.labels.version} ${s.labels.code} ${s.value}`).sort();
}

before(async () => {
  api = await startUpstream('api');
  adminPort = await freePort();
  gw = await startGateway(config(['1', '2'], ['1', '2']));
  admin = adminClient(adminPort);
  await admin.waitReady();
  baseline = sampleValue((await scrape()).families, 'lobby_requests_total');
});

after(async () => {
  await gw?.stop();
  await api?.close();
});

describe('lobby_api_version_requests_total through a real gateway', () => {
  it('counts each versioned route by the version it served: Accept, header, query, default, path', async () => {
    for (let i = 0; i < 3; i++) assert.equal(await hit('/users/7', { accept: 'application/vnd.company.v2+json' }), 200);
    assert.equal(await hit('/users/7', { accept: 'application/json; version=2' }), 200);
    for (let i = 0; i < 2; i++) assert.equal(await hit('/users/7', { 'api-version': '2' }), 200);
    assert.equal(await hit('/users/7?version=1'), 200);
    for (let i = 0; i < 2; i++) assert.equal(await hit('/users/7'), 200); // the default, 1
    assert.equal(await hit('/users/7', { 'api-version': '1' }), 200);
    // The path decides on a path-versioned route, whatever the header says.
    for (let i = 0; i < 2; i++) assert.equal(await hit('/v1/orders/5', { 'api-version': '2' }), 200);
    assert.match(String(lastHeaders.deprecation), /^@\d+$/, 'version 1 is deprecated (RFC 9745)');
    assert.equal(await hit('/v2/orders/5'), 200);
    // Refused by ip_deny before the api-version filter ran: still the route's version.
    assert.equal(await hit('/v2/private', { 'api-version': '1' }), 403);
    assert.equal(lastHeaders.deprecation, undefined, 'the reply is version 2\'s, which is not deprecated');
    assert.equal(await hit('/v2/nothing', { 'api-version': '2' }), 404);
    // A route without versioning serves every version and is not counted by version; a
    // version no route serves is answered before routing (route "-"), not counted either.
    assert.equal(await hit('/health', { 'api-version': '2' }), 200);
    assert.equal(await hit('/users/7', { accept: 'application/vnd.company.v3+json' }), 406);
    assert.equal(await hit('/users/7', { 'api-version': '3' }), 400);

    const { text, families } = await scrapeCountedHere();
    assert.deepEqual(versionSeries(families), [
      'orders-v1 1 2xx 2', 'orders-v2 2 2xx 1', 'private-v2 2 4xx 1', 'users-v1 1 2xx 4', 'users-v2 2 2xx 6',
    ]);
    assert.equal(families.get('lobby_api_version_requests_total')!.type, 'counter');
    // Summed over both workers, and consistent with lobby_requests_total for each versioned route.
    for (const route of ['users-v1', 'users-v2', 'orders-v1', 'orders-v2', 'private-v2']) {
      assert.equal(sampleValue(families, 'lobby_api_version_requests_total', { route }), sampleValue(families, 'lobby_requests_total', { route }), route);
    }
    assert.equal(sampleValue(families, 'lobby_requests_total', { route: 'health' }), 1);
    assert.equal(sampleValue(families, 'lobby_local_replies_total', { route: '-', code: 'version_not_acceptable' }), 1);
    const problems = promtoolProblems(text).filter((p) => !/^nodejs_active_\w+_total non-counter/.test(p));
    assert.deepEqual(problems, []);
  });

  it('a reload that adds a version: the new one is counted, the kept series never go back', async () => {
    const before = versionSeries((await scrapeCountedHere()).families);
    await writeFile(gw.configFile, config(['1', '2', '3'], ['1', '2', '3']));
    const reload = await admin.post('/reload');
    assert.equal(reload.status, 200, JSON.stringify(reload.body));
    assert.equal(reload.body.changed, true);
    // After the 200 every worker routes by the new table.
    for (let i = 0; i < 2; i++) assert.equal(await hit('/users/7', { 'api-version': '3' }), 200);
    assert.equal(await hit('/users/7', { 'api-version': '2' }), 200);
    assert.equal(await hit('/users/7', { 'api-version': '2' }), 200);
    const { families } = await scrapeCountedHere();
    assert.deepEqual(before, ['orders-v1 1 2xx 2', 'orders-v2 2 2xx 1', 'private-v2 2 4xx 1', 'users-v1 1 2xx 4', 'users-v2 2 2xx 6']);
    assert.deepEqual(versionSeries(families), [
      'orders-v1 1 2xx 2', 'orders-v2 2 2xx 1', 'private-v2 2 4xx 1', 'users-v1 1 2xx 4', 'users-v2 2 2xx 8', 'users-v3 3 2xx 2',
    ]);
  });
});
