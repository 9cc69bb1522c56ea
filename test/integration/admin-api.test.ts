// The admin API end to end on a real gateway: auth, every endpoint, validation errors,
// rollback, 409 on a service in use, instance keys, persist on and off (and a restart on the
// written file), SIGHUP and the watched file, readiness (also while draining), dry runs,
// refused empty sections, relative paths and secrets in admin writes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { Agent, request } from 'undici';
import { MAIN_JS, startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { makeKey, sign } from '../helpers/jwt.js';

const TOKEN = 'test-admin-token-0123456789';

let upA: Upstream;
let upB: Upstream;
let gw: Gateway;
let admin: AdminClient;
let adminPort: number;

function config(adminSection: string) {
  return `
server: { host: 127.0.0.1, port: __PORT__, workers: 2, drain_timeout_ms: 2000 }
${adminSection}
services:
  a: { targets: ["${upA.origin}"] }
  b: { targets: ["${upB.origin}"] }
routes:
  - { name: ra, match: { prefix: /a }, service: a }
  - { name: rb, match: { prefix: /b }, service: b }
`;
}

/** Requests on fresh connections, so that SO_REUSEPORT spreads them over both workers. */
async function fresh(path: string, g: Gateway = gw): Promise<{ status: number; upstream?: string; url?: string }> {
  const agent = new Agent({ pipelining: 0 });
  try {
    const res = await request(g.url + path, { dispatcher: agent, headers: { connection: 'close' } });
    const text = await res.body.text();
    let body: { upstream?: string; url?: string } = {};
    try { body = JSON.parse(text); } catch { /* a gateway error or plain text */ }
    return { status: res.statusCode, upstream: body.upstream, url: body.url };
  } finally {
    await agent.close();
  }
}

/** Every one of `n` fresh requests to `path` gets `status` (from `upstream`). */
async function expectRouted(path: string, status: number, upstream?: string, n = 6): Promise<void> {
  const results = await Promise.all(Array.from({ length: n }, () => fresh(path)));
  for (const r of results) {
    assert.equal(r.status, status, `${path}: ${JSON.stringify(results)}`);
    if (upstream) assert.equal(r.upstream, upstream, `${path}: ${JSON.stringify(results)}`);
  }
}

before(async () => {
  upA = await startUpstream('A');
  upB = await startUpstream('B');
  adminPort = await freePort();
  gw = await startGateway(config(`admin:\n  host: 127.0.0.1\n  port: ${adminPort}\n  token: \${LOBBY_ADMIN_TOKEN}`), { env: { LOBBY_ADMIN_TOKEN: TOKEN } });
  admin = adminClient(adminPort, TOKEN);
  await admin.waitReady();
});

after(async () => {
  await gw?.stop();
  await upA?.close();
  await upB?.close();
});

describe('admin API: auth', () => {
  it('answers 401 without or with a wrong token, and changes nothing', async () => {
    const before = (await admin.get('/config')).body;
    const attempts: Record<string, string>[] = [{}, { authorization: 'Bearer wrong-token-0123456789' }, { authorization: TOKEN }, { authorization: `Basic ${TOKEN}` }];
    for (const headers of attempts) {
      const anonymous = adminClient(adminPort);
      for (const [method, path] of [['GET', '/config'], ['GET', '/healthz'], ['DELETE', '/routes/ra'], ['PUT', '/routes/rz']] as const) {
        const r = await anonymous.call(method, path, method === 'PUT' ? { match: { prefix: '/z' }, service: 'a' } : undefined, headers);
        assert.equal(r.status, 401, `${method} ${path} ${JSON.stringify(headers)}`);
        assert.equal(r.body.error.code, 'unauthorized');
        assert.equal(r.headers['www-authenticate'], 'Bearer realm="lobby-admin"');
      }
    }
    const afterwards = (await admin.get('/config')).body;
    assert.equal(afterwards.version, before.version);
    assert.equal(afterwards.hash, before.hash);
    await expectRouted('/a', 200, 'A');
    await expectRouted('/z', 404);
    // The scheme is case-insensitive.
    assert.equal((await adminClient(adminPort).call('GET', '/healthz', undefined, { authorization: `bearer ${TOKEN}` })).status, 200);
  });

  it('never listens on the data-plane port, and refuses to start without a token on a non-loopback address', async () => {
    assert.equal((await fresh('/config')).status, 404, 'the data port does not serve the admin API');
    const run = (args: string[], env: Record<string, string>) => new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = spawn(process.execPath, [MAIN_JS, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      p.stderr.on('data', (d) => { stderr += d; });
      p.on('exit', (code) => resolve({ code, stderr }));
    });
    const file = gw.configFile.replace('gateway.yaml', 'open.yaml');
    await writeFile(file, `server: { port: ${await freePort()} }\nadmin: { host: 0.0.0.0, port: ${await freePort()} }\n`);
    const r = await run(['start', '--config', file], {});
    assert.equal(r.code, 1);
    assert.match(r.stderr, /admin\.host: without admin\.token the admin API listens only on a loopback address/);
  });
});

describe('admin API: reading', () => {
  it('GET /config shows the config and its version, with the token redacted', async () => {
    const r = await admin.get('/config');
    assert.equal(r.status, 200);
    assert.equal(typeof r.body.version, 'number');
    assert.match(r.body.hash, /^[0-9a-f]{12}$/);
    assert.equal(r.body.config.admin.token, '<redacted>');
    assert.ok(!JSON.stringify(r.body).includes(TOKEN));
    assert.deepEqual(Object.keys(r.body.config.services), ['a', 'b']);
    assert.equal(r.body.config.services.a.balance, 'round_robin', 'defaults are shown');
  });

  it('GET /routes, /routes/{name}, /services, /services/{name}; unknown names 404', async () => {
    assert.deepEqual((await admin.get('/routes')).body.routes.map((r: { name: string }) => r.name).slice(0, 2), ['ra', 'rb']);
    assert.equal((await admin.get('/routes/ra')).body.route.service, 'a');
    assert.equal((await admin.get('/routes/nope')).status, 404);
    assert.deepEqual((await admin.get('/services/b')).body.service.targets, [upB.origin]);
    assert.equal((await admin.get('/services/nope')).body.error.code, 'service_not_found');
    assert.ok('a' in (await admin.get('/services')).body.services);
  });

  it('every answer has a correlation id (the client\'s when valid), and errors carry it in the body', async () => {
    const minted = await admin.get('/routes/nope');
    assert.match(String(minted.headers['x-correlation-id']), /^[0-9a-f-]{36}$/);
    assert.equal(minted.body.error.correlation_id, minted.headers['x-correlation-id']);
    const kept = await admin.call('GET', '/routes/nope', undefined, { 'x-correlation-id': 'ticket-42' });
    assert.deepEqual([kept.headers['x-correlation-id'], kept.body.error.correlation_id], ['ticket-42', 'ticket-42']);
    const junk = await admin.call('GET', '/routes/nope', undefined, { 'x-correlation-id': 'has space' });
    assert.notEqual(junk.body.error.correlation_id, 'has space');
    const ok = await admin.get('/routes/ra');
    assert.match(String(ok.headers['x-correlation-id']), /^[0-9a-f-]{36}$/);
    assert.equal(ok.body.correlation_id, undefined, 'a success body is unchanged');
  });

  it('GET /status, /healthz, /readyz; unknown paths 404 and wrong methods 405', async () => {
    const s = (await admin.get('/status')).body;
    assert.equal(s.ready, true);
    assert.deepEqual(s.workers, { configured: 2, listening: 2, restarts: 0 });
    assert.ok(s.generation >= 1);
    assert.equal(typeof s.uptime_s, 'number');
    assert.equal(s.config.version, (await admin.get('/config')).body.version);
    assert.equal(s.redis, null);
    assert.deepEqual((await admin.get('/healthz')).body, { status: 'ok' });
    assert.deepEqual((await admin.get('/readyz')).body, { ready: true, reasons: [] });
    assert.equal((await admin.get('/nope')).status, 404);
    const m = await admin.call('POST', '/config', {});
    assert.equal(m.status, 405);
    assert.equal(m.body.error.allow, 'GET, PUT');
    const c = await admin.get('/cluster');
    assert.equal(c.body.clustered, false);
    assert.equal(c.body.instances.length, 1);
  });
});

describe('admin API: changes', () => {
  it('PUT /routes/{name} creates (201) and replaces (200); the 200 means every worker routes by it', async () => {
    const created = await admin.put('/routes/rc', { match: { prefix: '/c' }, service: 'b' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.equal(created.body.changed, true);
    await expectRouted('/c/1', 200, 'B');
    const replaced = await admin.put('/routes/rc', { name: 'rc', match: { prefix: '/c' }, service: 'a', strip_prefix: '/c' });
    assert.equal(replaced.status, 200);
    assert.equal(replaced.body.version, created.body.version + 1);
    assert.ok(replaced.body.generation > created.body.generation);
    await expectRouted('/c/1', 200, 'A');
    assert.equal((await fresh('/c/1')).url, '/1');
    const mismatch = await admin.put('/routes/rc', { name: 'other', match: { prefix: '/c' }, service: 'a' });
    assert.equal(mismatch.status, 400);
    assert.equal(mismatch.body.error.issues[0].path, 'name');
    const deleted = await admin.del('/routes/rc');
    assert.equal(deleted.status, 200);
    await expectRouted('/c/1', 404);
    assert.equal((await admin.del('/routes/rc')).status, 404);
  });

  it('an invalid change answers 400 with every error (key path and reason); the live config is untouched', async () => {
    const before = (await admin.get('/config')).body;
    const r = await admin.put('/config', {
      services: { a: { targets: ['ftp://x'], balance: 'random' } },
      routes: [
        { name: 'ok', match: { prefix: '/a' }, service: 'a' },
        { name: 'bad', match: { prefix: 'nope', methods: ['get'] }, service: 'a', colour: 'red' },
      ],
    });
    assert.equal(r.status, 400);
    assert.equal(r.body.error.code, 'config_invalid');
    assert.deepEqual(r.body.error.issues.map((i: { path: string }) => i.path).sort(), [
      'routes[1].colour', 'routes[1].match.methods[0]', 'routes[1].match.prefix', 'services.a.balance', 'services.a.targets[0]',
    ]);
    for (const issue of r.body.error.issues) assert.ok(issue.message.length > 5, issue.message);
    // Rules between values: an unknown service and an ambiguous route, both reported.
    const r2 = await admin.put('/config', { services: before.config.services, routes: [
      { name: 'x', match: { prefix: '/a' }, service: 'nope' },
      { name: 'y', match: { prefix: '/b' }, service: 'a' },
      { name: 'z', match: { prefix: '/b' }, service: 'b' },
    ] });
    assert.equal(r2.status, 400);
    assert.deepEqual(r2.body.error.issues.map((i: { path: string }) => i.path), ['routes[0].service', 'routes[2].match']);
    // Malformed JSON and an empty body.
    const r3 = await admin.call('PUT', '/config', '{"routes": [', { 'content-type': 'application/json' });
    assert.equal(r3.status, 400);
    assert.match(r3.body.error.issues[0].message, /invalid JSON/);
    const after = (await admin.get('/config')).body;
    assert.deepEqual([after.version, after.hash], [before.version, before.hash]);
    await expectRouted('/a', 200, 'A');
    await expectRouted('/b', 200, 'B');
  });

  it('the listen address cannot change at runtime: 400 naming the key', async () => {
    const current = (await admin.get('/config')).body.config;
    const r = await admin.put('/config', { ...current, server: { ...current.server, port: current.server.port + 1, workers: 1 } });
    assert.equal(r.status, 400);
    assert.deepEqual(r.body.error.issues.map((i: { path: string }) => i.path), ['server.port', 'server.workers']);
    assert.match(r.body.error.issues[0].message, /cannot change at runtime .*restart Lobby/);
    // The same config as shown (redacted token included) is accepted as "no change".
    const same = await admin.put('/config', current);
    assert.equal(same.status, 200);
    assert.equal(same.body.changed, false);
  });

  it('services: PUT creates, DELETE of a service in use answers 409 naming the routes', async () => {
    const created = await admin.put('/services/c', { targets: [upB.origin], balance: 'least_request' });
    assert.equal(created.status, 201);
    const inUse = await admin.del('/services/a');
    assert.equal(inUse.status, 409);
    assert.equal(inUse.body.error.code, 'service_in_use');
    assert.deepEqual(inUse.body.error.routes, ['ra']);
    await expectRouted('/a', 200, 'A');
    assert.equal((await admin.put('/routes/rc', { match: { prefix: '/c' }, service: 'c' })).status, 201);
    assert.equal((await admin.del('/services/c')).status, 409);
    assert.equal((await admin.del('/routes/rc')).status, 200);
    assert.equal((await admin.del('/services/c')).status, 200);
    assert.equal((await admin.del('/services/c')).status, 404);
    const bad = await admin.put('/services/d', { targets: [] });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.issues[0].path, 'services.d.targets');
  });

  it('versions and rollback', async () => {
    const base = (await admin.get('/config')).body;
    const v1 = await admin.put('/routes/rv', { match: { prefix: '/v' }, service: 'a' });
    const v2 = await admin.put('/routes/rv', { match: { prefix: '/v' }, service: 'b' });
    await expectRouted('/v', 200, 'B');
    const list = (await admin.get('/config/versions')).body;
    assert.equal(list.current, v2.body.version);
    assert.deepEqual(list.versions.slice(0, 3).map((v: { version: number }) => v.version), [v2.body.version, v1.body.version, base.version]);
    assert.equal(list.versions[0].current, true);
    const old = await admin.get(`/config/versions/${v1.body.version}`);
    assert.equal(old.body.config.routes.find((r: { name: string }) => r.name === 'rv').service, 'a');
    const rolled = await admin.post(`/config/rollback/${v1.body.version}`);
    assert.equal(rolled.status, 200);
    assert.deepEqual([rolled.body.version, rolled.body.hash, rolled.body.rolled_back_to], [v2.body.version + 1, v1.body.hash, v1.body.version]);
    await expectRouted('/v', 200, 'A');
    const back = await admin.post(`/config/rollback/${base.version}`);
    assert.equal(back.body.hash, base.hash);
    await expectRouted('/v', 404);
    assert.equal((await admin.post('/config/rollback/99999')).status, 404);
    assert.equal((await admin.post('/config/rollback/x')).status, 404);
  });

  it('POST /reload re-reads the file; an invalid file is refused with its line; persist off leaves the file alone', async () => {
    const original = await readFile(gw.configFile, 'utf8');
    assert.ok(original.includes('name: rb'), 'admin changes were not written to the file (persist: false)');
    await admin.put('/routes/only-in-memory', { match: { prefix: '/mem' }, service: 'a' });
    assert.equal(await readFile(gw.configFile, 'utf8'), original);
    const r = await admin.post('/reload');
    assert.equal(r.status, 200);
    assert.equal(r.body.changed, true);
    await expectRouted('/mem', 404);
    const s = (await admin.get('/status')).body;
    assert.equal(s.config.source, 'admin');
    await writeFile(gw.configFile, original.replace('prefix: /b }', 'prefix: b }'));
    const bad = await admin.post('/reload');
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.issues[0].path, 'routes[1].match.prefix');
    assert.equal(bad.body.error.issues[0].line, original.split('\n').findIndex((l) => l.includes('name: rb')) + 1);
    await expectRouted('/b', 200, 'B');
    await writeFile(gw.configFile, original);
  });
});

describe('admin API: persist', () => {
  it('persist: true writes admin changes back to the file (atomically), keeping the rest', async () => {
    const port = await freePort();
    const g = await startGateway(config(`admin: { port: ${port}, persist: true }   # loopback, no token`));
    try {
      const a = adminClient(port);
      await a.waitReady();
      const r = await a.put('/routes/rp', { match: { prefix: '/p' }, service: 'b' });
      assert.equal(r.status, 201);
      assert.equal(r.body.persisted, true);
      const text = await readFile(g.configFile, 'utf8');
      assert.match(text, /name: rp/);
      assert.ok(text.includes('admin: { port: ') && text.includes('# loopback, no token'), text);
      // The write is not mistaken for an outside edit (no reload, no new version).
      await new Promise((r) => setTimeout(r, 400));
      const s = (await a.get('/status')).body;
      assert.deepEqual([s.config.version, s.config.source], [r.body.version, 'admin']);
      assert.equal(await g.stop(), 0);
      // A restart on the written file serves the change.
      const again = await startGateway(text.replace(`port: ${g.port},`, 'port: __PORT__,'));
      try {
        await a.waitReady();
        assert.equal((await fresh('/p', again)).upstream, 'B');
        assert.equal((await a.get('/routes/rp')).status, 200);
      } finally {
        await again.stop();
      }
    } finally {
      await g.stop();
    }
  });

  it('SIGHUP re-reads the file even when it did not change; an invalid file keeps the running config', async () => {
    const original = await readFile(gw.configFile, 'utf8');
    const added = await admin.put('/routes/rs', { match: { prefix: '/sig' }, service: 'a' });
    assert.equal(added.status, 201);
    await expectRouted('/sig', 200, 'A');
    // The file is unchanged (persist off), so only the signal can bring it back.
    gw.proc.kill('SIGHUP');
    await waitUntil('the SIGHUP reload to apply', async () => (await admin.get('/config')).body.source === 'signal', 3000);
    assert.equal((await admin.get('/config')).body.version, added.body.version + 1);
    await expectRouted('/sig', 404);
    const applied = (await admin.get('/config')).body;
    // An invalid file: refused, logged, and the running config stays.
    await writeFile(gw.configFile, original.replace('prefix: /b }', 'prefix: b }'));
    gw.proc.kill('SIGHUP');
    await waitUntil('the SIGHUP reload to be refused', async () => {
      const last = (await admin.get('/status')).body.last_change;
      return last.source === 'signal' && last.ok === false && /routes\[1\]\.match\.prefix/.test(last.error);
    }, 3000);
    const after = (await admin.get('/config')).body;
    assert.deepEqual([after.version, after.hash], [applied.version, applied.hash]);
    await expectRouted('/b', 200, 'B');
    await writeFile(gw.configFile, original);
  });

  it('a change of the file on disk is applied (watched, debounced)', async () => {
    const original = await readFile(gw.configFile, 'utf8');
    const before = (await admin.get('/config')).body.version;
    await writeFile(gw.configFile, original.replace('prefix: /b }', 'prefix: /bw }'));
    await waitUntil('the file change to apply', async () => (await admin.get('/config')).body.version > before, 3000).catch((e) => { throw new Error(`${e}\n${gw.stderr()}`); });
    await expectRouted('/bw', 200, 'B');
    await writeFile(gw.configFile, original);
    await waitUntil('the file change back to apply', async () => (await admin.get('/config')).body.version > before + 1, 3000);
    await expectRouted('/bw', 404);
  });
});

describe('admin API: draining', () => {
  it('while draining (SIGTERM) /readyz answers 503 "draining" and changes are refused; the in-flight request completes', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((resolve) => { release = resolve; });
    const slowUp = await startUpstream('slow', (_req, res) => void held.then(() => res.end('done')));
    const port = await freePort();
    const g = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1, drain_timeout_ms: 5000 }
admin: { port: ${port} }
services:
  s: { targets: ["${slowUp.origin}"] }
routes:
  - { name: rs, match: { prefix: /s }, service: s }
`);
    try {
      const a = adminClient(port);
      await a.waitReady();
      const inFlight = request(`${g.url}/s`).then(async (r) => [r.statusCode, await r.body.text()]);
      await waitUntil('the request to reach the upstream', () => slowUp.received.length === 1, 3000);
      const exited = g.stop();
      await waitUntil('/readyz to report draining', async () => (await a.get('/readyz')).status === 503, 3000);
      assert.deepEqual((await a.get('/readyz')).body, { ready: false, reasons: ['draining'] });
      const refused = await a.put('/routes/rx', { match: { prefix: '/x' }, service: 's' });
      assert.deepEqual([refused.status, refused.body.error.code], [503, 'shutting_down']);
      release();
      assert.deepEqual(await inFlight, [200, 'done']);
      assert.equal(await exited, 0);
    } finally {
      release();
      await g.stop();
      await slowUp.close();
    }
  });
});

describe('admin API: bad requests', () => {
  it('a malformed percent-escape in an admin path answers 400 invalid_path (JSON), not 500', async () => {
    for (const path of ['/routes/%E0%A4%A', '/services/%', '/routes/%FF']) {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const r = await admin.call(method, path, method === 'PUT' ? { match: { prefix: '/z' }, service: 'a' } : undefined);
        assert.equal(r.status, 400, `${method} ${path}: ${JSON.stringify(r.body)}`);
        assert.equal(r.headers['content-type'], 'application/json');
        assert.deepEqual([r.body.error.status, r.body.error.code], [400, 'invalid_path']);
        assert.match(r.body.error.message, /malformed percent-escape/);
      }
    }
    // A well-formed escape still names the entry.
    assert.equal((await admin.get('/routes/r%61')).body.route.name, 'ra');
  });

  it('PUT /config without services or routes is refused, naming what is missing, unless the request means it', async () => {
    const before = (await admin.get('/config')).body;
    const { services, routes } = before.config;
    const noRoutes = await admin.put('/config', { services });
    assert.equal(noRoutes.status, 400, JSON.stringify(noRoutes.body));
    assert.equal(noRoutes.body.error.code, 'config_invalid');
    assert.deepEqual(noRoutes.body.error.issues.map((i: { path: string }) => i.path), ['routes']);
    assert.match(noRoutes.body.error.issues[0].message, /is missing: .*remove every route.*"routes": \[\].*allow_empty=routes/);
    const neither = await admin.call('PUT', '/config', 'server: { drain_timeout_ms: 1000 }\n', { 'content-type': 'application/yaml' });
    assert.deepEqual(neither.body.error.issues.map((i: { path: string }) => i.path), ['services', 'routes']);
    assert.equal((await admin.get('/config')).body.version, before.version, 'nothing applied');
    await expectRouted('/a', 200, 'A');
    // Meant: ?allow_empty= or explicit empty values (checked with dry runs, to keep the shared gateway's routes).
    const allowed = await admin.put('/config?allow_empty=routes&dry_run=true', { services });
    assert.equal(allowed.status, 200, JSON.stringify(allowed.body));
    assert.deepEqual(allowed.body.changes.routes.removed, routes.map((r: { name: string }) => r.name));
    const explicit = await admin.put('/config?dry_run=true', { services: {}, routes: [] });
    assert.equal(explicit.status, 200, JSON.stringify(explicit.body));
    assert.deepEqual(explicit.body.changes.services.removed, Object.keys(services));
    const bad = await admin.put('/config?allow_empty=routes,everything', { services });
    assert.deepEqual([bad.status, bad.body.error.code], [400, 'invalid_query']);
    assert.match(bad.body.error.message, /allow_empty takes services, routes, got "everything"/);
  });

  it('an unknown or misspelt query parameter of a write is refused, never applied', async () => {
    const before = (await admin.get('/config')).body;
    for (const [method, path] of [['PUT', '/routes/rq?dryrun=true'], ['PUT', '/routes/rq?dry_run=maybe'], ['DELETE', '/routes/ra?force=1'], ['POST', '/reload?dry_run=true']] as const) {
      const r = await admin.call(method, path, method === 'PUT' ? { match: { prefix: '/q' }, service: 'a' } : undefined);
      assert.deepEqual([r.status, r.body.error.code], [400, 'invalid_query'], `${method} ${path}: ${JSON.stringify(r.body)}`);
    }
    assert.equal((await admin.get('/config')).body.version, before.version);
    await expectRouted('/q', 404);
  });
});

describe('admin API: dry runs', () => {
  it('?dry_run=true on PUT /config answers what would change, by name, and applies nothing', async () => {
    const before = (await admin.get('/config')).body;
    const current = before.config;
    const next = {
      ...current,
      services: { a: current.services.a, b: { ...current.services.b, balance: 'least_request' }, c: { targets: [upA.origin] } },
      routes: [...current.routes.filter((r: { name: string }) => r.name !== 'rb'), { name: 'rd', match: { prefix: '/d' }, service: 'c' }],
      rate_limits: { per_ip: { key: 'ip', rate: 10, per: '1s' } },
      server: { ...current.server, limits: { ...current.server.limits, max_body_bytes: 1000 } },
    };
    const r = await admin.put('/config?dry_run=true', next);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.dry_run, true);
    assert.equal(r.body.changed, true);
    assert.equal(r.body.version, before.version, 'the version it was computed against');
    assert.notEqual(r.body.hash, before.hash);
    assert.deepEqual(r.body.changes, {
      routes: { added: ['rd'], removed: ['rb'], changed: [] },
      services: { added: ['c'], removed: [], changed: ['b'] },
      rate_limits: { added: ['per_ip'], removed: [], changed: [] },
      auth_providers: { added: [], removed: [], changed: [] },
      settings: ['server.limits'],
    });
    const afterwards = (await admin.get('/config')).body;
    assert.deepEqual([afterwards.version, afterwards.hash], [before.version, before.hash]);
    await expectRouted('/d', 404);
    await expectRouted('/b', 200, 'B');
    // The same content is a dry run with nothing to change.
    const same = await admin.put('/config?dry_run=true', current);
    assert.deepEqual([same.status, same.body.changed, same.body.hash], [200, false, before.hash]);
    // The applied change has the hash the dry run announced.
    const applied = await admin.put('/config?dry_run=false', next);
    assert.deepEqual([applied.status, applied.body.changed, applied.body.hash], [200, true, r.body.hash]);
    await expectRouted('/d', 200, 'A');
    assert.equal((await admin.put('/config', current)).status, 200);
    await expectRouted('/b', 200, 'B');
  });

  it('?dry_run=true on PUT and DELETE of routes and services', async () => {
    const before = (await admin.get('/config')).body;
    const route = await admin.put('/routes/rn?dry_run=true', { match: { prefix: '/n' }, service: 'a' });
    assert.deepEqual([route.status, route.body.dry_run, route.body.changes.routes], [200, true, { added: ['rn'], removed: [], changed: [] }]);
    const replaced = await admin.put('/routes/ra?dry_run', { match: { prefix: '/a' }, service: 'b' });
    assert.deepEqual(replaced.body.changes.routes, { added: [], removed: [], changed: ['ra'] });
    const service = await admin.put('/services/a?dry_run=1', { targets: [upB.origin] });
    assert.deepEqual(service.body.changes.services, { added: [], removed: [], changed: ['a'] });
    const deleted = await admin.call('DELETE', '/routes/rb?dry_run=true');
    assert.deepEqual(deleted.body.changes.routes, { added: [], removed: ['rb'], changed: [] });
    // Refusals are the same as for the real write.
    const inUse = await admin.call('DELETE', '/services/a?dry_run=true');
    assert.deepEqual([inUse.status, inUse.body.error.code], [409, 'service_in_use']);
    const afterwards = (await admin.get('/config')).body;
    assert.deepEqual([afterwards.version, afterwards.hash], [before.version, before.hash]);
    await expectRouted('/n', 404);
    await expectRouted('/a', 200, 'A');
    await expectRouted('/b', 200, 'B');
  });

  it('a dry run of an invalid change answers exactly the 400 of the real write, and is not a change attempt', async () => {
    const current = (await admin.get('/config')).body.config;
    const lastChange = async () => (await admin.get('/status')).body.last_change;
    const invalid = [
      ['/config', { ...current, routes: [{ name: 'x', match: { prefix: 'nope' }, service: 'missing' }] }],
      ['/config', { ...current, server: { ...current.server, port: current.server.port + 1 } }],
      ['/routes/rx', { match: { prefix: '/x' }, service: 'nope' }],
      ['/services/sx', { targets: [] }],
    ] as const;
    for (const [path, body] of invalid) {
      const before = await lastChange();
      const dry = await admin.put(`${path}?dry_run=true`, body);
      assert.deepEqual(await lastChange(), before, 'a dry run is not recorded as a change');
      const real = await admin.put(path, body);
      assert.equal(dry.status, 400, `${path}: ${JSON.stringify(dry.body)}`);
      const { correlation_id: dryId, ...dryError } = dry.body.error;
      const { correlation_id: realId, ...realError } = real.body.error;
      assert.deepEqual(dryError, realError, path);
      assert.notEqual(dryId, realId, 'each answer has its own correlation id');
    }
  });
});

describe('admin API: relative paths and secrets', () => {
  it('a relative keys_file resolves against the config folder for admin writes and rollbacks; oct keys are redacted', async () => {
    // The gateway runs with the test's cwd; the config is in a temp folder and names the keys
    // file relative to that folder (in a sibling folder: the helper creates the config's).
    const keysDir = await mkdtemp(join(tmpdir(), 'lobby-keys-'));
    const fileKey = await makeKey('HS256', 'f1');
    const inlineKey = await makeKey('HS256', 'i1');
    await writeFile(join(keysDir, 'keys.json'), JSON.stringify({ keys: [fileKey.jwk] }));
    const port = await freePort();
    const issuer = 'https://issuer.test';
    const g = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
admin: { port: ${port} }
auth:
  providers:
    - { name: files, issuer: "${issuer}", audiences: [api], keys_file: ../${basename(keysDir)}/keys.json, algorithms: [HS256] }
    - { name: inline, issuer: "${issuer}", audiences: [api], keys: [${JSON.stringify(inlineKey.jwk)}], algorithms: [HS256] }
services:
  a: { targets: ["${upA.origin}"] }
routes:
  - { name: ra, match: { prefix: /a }, service: a, auth: { provider: files } }
  - { name: ri, match: { prefix: /i }, service: a, auth: { provider: inline } }
`);
    try {
      const a = adminClient(port);
      await a.waitReady();
      const token = await sign(fileKey, { iss: issuer, aud: 'api', exp: Math.floor(Date.now() / 1000) + 600 });
      const withToken = async (path: string) => {
        const res = await request(g.url + path, { headers: { authorization: `Bearer ${token}` } });
        await res.body.dump();
        return res.statusCode;
      };
      assert.equal(await withToken('/a'), 200);
      const start = (await a.get('/config')).body;
      // Secrets are never shown: the oct key's `k`, in the config and in every kept version.
      const secret = inlineKey.jwk.k as string;
      assert.equal(start.config.auth.providers[1].keys[0].k, '<redacted>');
      assert.equal(start.config.auth.providers[1].keys[0].kid, 'i1');
      assert.ok(!JSON.stringify(start).includes(secret));
      // A whole config through the admin API, the redacted key sent back as shown.
      const put = await a.put('/config', { ...start.config, routes: [...start.config.routes, { name: 'rb', match: { prefix: '/b' }, service: 'a', auth: { provider: 'files' } }] });
      assert.equal(put.status, 200, JSON.stringify(put.body));
      assert.equal(await withToken('/b'), 200);
      const inlineToken = await sign(inlineKey, { iss: issuer, aud: 'api', exp: Math.floor(Date.now() / 1000) + 600 });
      const res = await request(g.url + '/i', { headers: { authorization: `Bearer ${inlineToken}` } });
      await res.body.dump();
      assert.equal(res.statusCode, 200, 'the redacted k kept the running key');
      const version = await a.get(`/config/versions/${put.body.version}`);
      assert.equal(version.body.config.auth.providers[1].keys[0].k, '<redacted>');
      assert.ok(!JSON.stringify(version.body).includes(secret));
      // Rollback to the start version: compiled again, keys_file read from the same place.
      const rolled = await a.post(`/config/rollback/${start.version}`);
      assert.equal(rolled.status, 200, JSON.stringify(rolled.body));
      assert.equal(rolled.body.hash, start.hash);
      assert.equal(await withToken('/b'), 404);
      assert.equal(await withToken('/a'), 200);
      // A route PUT recompiles the providers too.
      assert.equal((await a.put('/routes/rc', { match: { prefix: '/c' }, service: 'a', auth: { provider: 'files' } })).status, 201);
      assert.equal(await withToken('/c'), 200);
    } finally {
      await g.stop();
      await rm(keysDir, { recursive: true, force: true });
    }
  });
});
