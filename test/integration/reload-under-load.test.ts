// Hot reload without dropping a request: under continuous keep-alive load (autocannon),
// 50 route-table changes through the admin API and 10 reloads of the file on disk. No
// request fails, none gets a non-2xx, every request sent after a change's 200 is routed by
// the new table on every worker (probed on fresh connections and on keep-alive connections
// opened before the change), the pool of the unchanged service keeps its connections, and
// a slow request started before a change completes normally after it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import autocannon from 'autocannon';
import { Agent, Pool, request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, echoHandler, type Upstream } from '../helpers/upstream.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';

const CHANGES = 50;
const FILE_RELOADS = 10;
const LOAD_CONNECTIONS = 8;
const LOAD_UPSTREAM_CONNECTIONS = 8; // 4 per worker: the pool of the unchanged service stays at this

let upLoad: Upstream;
let upA: Upstream;
let upB: Upstream;
let gw: Gateway;
let admin: AdminClient;
let adminPort: number;

/** The whole config; `marker` goes into the probe route's rewrite, so a response tells which table routed it. */
function configYaml(marker: string, probeService: 'a' | 'b', withExtra: boolean, withSlow: boolean): string {
  return `
server: { host: 127.0.0.1, port: ${gw?.port ?? '__PORT__'}, workers: 2, drain_timeout_ms: 2000 }
admin: { host: 127.0.0.1, port: ${adminPort} }
services:
  load: { targets: ["${upLoad.origin}"], connections: ${LOAD_UPSTREAM_CONNECTIONS} }
  a: { targets: ["${upA.origin}"] }
  b: { targets: ["${upB.origin}"] }
${withExtra ? `  extra: { targets: ["${upB.origin}"], connections: 3 }\n` : ''}${withSlow ? `  slow: { targets: ["${upA.origin}"], connections: 5 }\n` : ''}routes:
  - { name: load, match: { prefix: /load }, service: load }
  - { name: probe, match: { prefix: /probe }, service: ${probeService}, rewrite: "/${marker}" }
${withExtra ? '  - { name: extra, match: { prefix: /extra }, service: extra }\n' : ''}${withSlow ? '  - { name: slow, match: { prefix: /slow }, service: slow }\n' : ''}`;
}

before(async () => {
  upLoad = await startUpstream('load');
  const slowAware = (name: string) => {
    const echo = echoHandler(name);
    return (req: Parameters<typeof echo>[0], res: Parameters<typeof echo>[1], rec: Parameters<typeof echo>[2]) => {
      const delay = Number(new URL(req.url!, 'http://x').searchParams.get('delay') ?? '0');
      setTimeout(() => echo(req, res, rec), delay);
    };
  };
  upA = await startUpstream('A', slowAware('A'));
  upB = await startUpstream('B', slowAware('B'));
  adminPort = await freePort();
  gw = await startGateway(configYaml('gen/0', 'a', false, true));
  admin = adminClient(adminPort);
  await admin.waitReady();
});

after(async () => {
  await gw?.stop();
  await Promise.all([upLoad?.close(), upA?.close(), upB?.close()]);
});

interface Probe {
  status: number;
  upstream: string;
  url: string;
}

async function readProbe(res: { statusCode: number; body: { text(): Promise<string> } }): Promise<Probe> {
  const text = await res.body.text();
  try {
    const body = JSON.parse(text) as { upstream: string; url: string };
    return { status: res.statusCode, upstream: body.upstream, url: body.url };
  } catch {
    return { status: res.statusCode, upstream: '?', url: text };
  }
}

describe('reload under load', () => {
  it(`${CHANGES} admin changes and ${FILE_RELOADS} file reloads: no failed request, every request after a change on the new table`, async (t) => {
    // Keep-alive connections opened before any change, spread over both workers.
    const keepAlive = new Pool(gw.url, { connections: 8, pipelining: 1 });
    const probeKeepAlive = () => Promise.all(Array.from({ length: 16 }, () => keepAlive.request({ path: '/probe', method: 'GET', headers: { host: 'x' } }).then(readProbe)));
    const probeFresh = () => Promise.all(Array.from({ length: 6 }, async () => {
      const agent = new Agent({ pipelining: 0 });
      try {
        return await request(gw.url + '/probe', { dispatcher: agent, headers: { connection: 'close' } }).then(readProbe);
      } finally {
        await agent.close();
      }
    }));
    const expectTable = async (marker: string, upstream: string, what: string) => {
      const results = [...(await probeKeepAlive()), ...(await probeFresh())];
      const wrong = results.filter((r) => r.status !== 200 || r.url !== `/${marker}` || r.upstream !== upstream);
      assert.equal(wrong.length, 0, `${what}: ${wrong.length}/${results.length} probes not routed by the new table (want /${marker} on ${upstream}): ${JSON.stringify(wrong.slice(0, 3))}`);
    };
    await expectTable('gen/0', 'A', 'before any change');

    let loadResult: autocannon.Result | null = null;
    const load = autocannon({ url: `${gw.url}/load`, connections: LOAD_CONNECTIONS, pipelining: 1, duration: 120, timeout: 10 }, (_err, result) => { loadResult = result; });
    const loadDone = new Promise<void>((resolve) => load.on('done', () => resolve()));
    try {
      await new Promise((r) => setTimeout(r, 500)); // the load's connections and the upstream pool are up
      const loadConnectionsBefore = upLoad.connections;

      // A slow request on the `slow` route starts before the change that removes the route and its service.
      const slow = request(`${gw.url}/slow/x?delay=1200`).then(readProbe);
      await new Promise((r) => setTimeout(r, 150));

      for (let i = 1; i <= CHANGES; i++) {
        const marker = `gen/${i}`;
        const service = i % 2 === 0 ? 'a' : 'b';
        const upstream = service === 'a' ? 'A' : 'B';
        let r;
        if (i % 5 === 0) {
          // The whole config, adding or removing the `extra` service (its pool is created or retired).
          const withExtra = i % 10 === 0;
          r = await admin.call('PUT', '/config', configYaml(marker, service, withExtra, false), { 'content-type': 'application/yaml' });
        } else {
          r = await admin.put('/routes/probe', { match: { prefix: '/probe' }, service, rewrite: `/${marker}` });
        }
        assert.equal(r.status, 200, `change ${i}: ${JSON.stringify(r.body)}`);
        assert.equal(r.body.changed, true);
        if (i === 1) {
          // Change 1 removed nothing yet; delete the slow route and its service while its request is in flight.
          assert.equal((await admin.del('/routes/slow')).status, 200);
          assert.equal((await admin.del('/services/slow')).status, 200);
          assert.equal((await request(`${gw.url}/slow/y`).then(readProbe)).status, 404);
        }
        await expectTable(marker, upstream, `change ${i}`);
      }

      const done = await slow;
      assert.deepEqual([done.status, done.upstream, done.url], [200, 'A', '/slow/x?delay=1200'], 'the slow request started before the change completed normally');

      // The file on disk: each write is picked up by the watcher (debounced) and applied.
      for (let j = 1; j <= FILE_RELOADS; j++) {
        const before = (await admin.get('/config')).body.version as number;
        const marker = `file/${j}`;
        const service = j % 2 === 0 ? 'a' : 'b';
        await writeFile(gw.configFile, configYaml(marker, service, j % 3 === 0, false));
        await waitUntil(`file reload ${j}`, async () => {
          const c = (await admin.get('/config')).body;
          return c.version > before && c.source === 'file';
        }, 5000);
        await expectTable(marker, service === 'a' ? 'A' : 'B', `file reload ${j}`);
      }

      assert.ok(upLoad.connections <= Math.max(loadConnectionsBefore, LOAD_UPSTREAM_CONNECTIONS),
        `the unchanged service's pool kept its connections: ${loadConnectionsBefore} before, ${upLoad.connections} after ${CHANGES + FILE_RELOADS} changes`);
    } finally {
      load.stop();
      await loadDone;
      await keepAlive.close();
    }
    const result = loadResult as autocannon.Result | null;
    assert.ok(result, 'autocannon finished');
    assert.equal(result.errors, 0, `failed requests under load: ${JSON.stringify(result)}`);
    assert.equal(result.timeouts, 0);
    assert.equal(result.non2xx, 0, `non-2xx answers under load: ${JSON.stringify(result.statusCodeStats)}`);
    assert.ok(result['2xx'] > 1000, `the load ran: ${result['2xx']} requests`);
    t.diagnostic(`load: ${result['2xx']} requests, p99 ${result.latency.p99} ms, max ${result.latency.max} ms; upstream connections of the unchanged service: ${upLoad.connections}`);
    const versions = (await admin.get('/config/versions')).body;
    assert.ok(versions.current >= 1 + CHANGES + 2 + FILE_RELOADS);
  });
});
