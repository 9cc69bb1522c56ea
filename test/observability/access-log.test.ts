// The access log against a real gateway process: one pino-shaped JSON line per finished
// request (proxied, unrouted, refused by auth or a rate limit, failed upstream), per-route
// settings, SIGUSR1 reopening for logrotate, and no line lost on a drain.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { freePort } from '../helpers/ports.js';
import { sign, type TestKey } from '../helpers/jwt.js';
import { waitUntil } from '../helpers/admin.js';

const SECRET = 'access-log-test-secret-of-32-bytes-or-more';
const hmac: TestKey = { alg: 'HS256', kid: 'h', signing: new TextEncoder().encode(SECRET), jwk: { kty: 'oct' } };

let up: Upstream;
let gw: Gateway;
let dir: string;
let logFile: string;
let deadPort: number;

type Line = Record<string, unknown>;

async function lines(file = logFile): Promise<Line[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line);
}

/** Waits for the line of the request with correlation id `id` (lines are flushed within 1 s). */
async function lineOf(id: string, file = logFile): Promise<Line> {
  let found: Line | undefined;
  await waitUntil(`the access-log line of ${id}`, async () => (found = (await lines(file)).find((l) => l.correlation_id === id)) !== undefined, 10_000);
  return found!;
}

async function get(path: string, id: string, headers: Record<string, string> = {}) {
  const res = await request(`${gw.url}${path}`, { headers: { 'x-correlation-id': id, ...headers } });
  await res.body.dump();
  return res.statusCode;
}

/**
 * Returns once every worker has a line in `file` for a request sent after this call began: a
 * worker writes its lines in order, so any line it logged before is in the file too. (Fresh
 * connections, which the kernel spreads over the workers' listen sockets.)
 */
async function linesWrittenByEveryWorker(workers: number, file = logFile): Promise<void> {
  const tag = `al-after-all-${Date.now()}-`;
  let n = 0;
  await waitUntil(`a later line from each of ${workers} workers`, async () => {
    const res = await request(`${gw.url}/plain/marker`, { headers: { 'x-correlation-id': `${tag}${++n}` }, reset: true });
    await res.body.dump();
    const seen = new Set((await lines(file)).filter((l) => String(l.correlation_id).startsWith(tag)).map((l) => l.worker));
    return seen.size === workers;
  }, 10_000);
}

before(async () => {
  up = await startUpstream('up', (req, res) => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('hello world'); });
  dir = await mkdtemp(join(tmpdir(), 'lobby-access-'));
  logFile = join(dir, 'access.log');
  deadPort = await freePort();
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2, drain_timeout_ms: 5000 }
services:
  up: { targets: ["${up.origin}"] }
  dead: { targets: ["http://127.0.0.1:${deadPort}"], timeouts: { connect_ms: 500 } }
access_log: { path: ${logFile} }
auth:
  providers:
    - { name: h, issuer: test, secret: "${SECRET}", algorithms: [HS256] }
rate_limits:
  one: { key: ip, rate: 1, per: 1h }
routes:
  - { name: plain, match: { prefix: /plain }, service: up }
  - { name: secure, match: { prefix: /secure }, service: up, auth: { provider: h } }
  - { name: limited, match: { prefix: /limited }, service: up, rate_limit: [one] }
  - { name: dead, match: { prefix: /dead }, service: dead }
  - { name: quiet, match: { prefix: /quiet }, service: up, access_log: { enabled: false } }
  - { name: errors, match: { prefix: /errors }, service: up, access_log: { only_errors: true } }
  - { name: none, match: { prefix: /none }, service: up, access_log: { sample: 0 } }
  - { name: few, match: { prefix: /few }, service: up, access_log: { fields: [status, route] } }
  - { name: out, match: { prefix: /out }, service: up, access_log: { path: stdout } }
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('access log lines', () => {
  it('a proxied request: pino fields and every request field', async () => {
    assert.equal(await get('/plain/a?q=1', 'al-plain'), 200);
    const l = await lineOf('al-plain');
    assert.equal(l.level, 30);
    assert.equal(typeof l.time, 'number');
    assert.ok(Math.abs(Date.now() - (l.time as number)) < 60_000);
    assert.equal(typeof l.pid, 'number');
    assert.equal(typeof l.hostname, 'string');
    assert.ok(l.worker === 0 || l.worker === 1);
    assert.equal(l.msg, 'request');
    assert.equal(l.method, 'GET');
    assert.equal(l.path, '/plain/a');
    assert.equal(l.route, 'plain');
    assert.equal(l.service, 'up');
    assert.equal(l.target, up.origin);
    assert.equal(l.status, 200);
    assert.equal(l.bytes_in, 0);
    assert.equal(l.bytes_out, 'hello world'.length);
    assert.equal(l.client_ip, '127.0.0.1');
    assert.equal(l.flags, '-');
    assert.equal(l.error_code, undefined);
    for (const k of ['duration_ms', 'upstream_connect_ms', 'upstream_first_byte_ms', 'upstream_ms', 'gateway_ms']) {
      assert.equal(typeof l[k], 'number', k);
      assert.ok((l[k] as number) >= 0, `${k} = ${l[k]}`);
    }
    assert.ok((l.upstream_connect_ms as number) <= (l.upstream_first_byte_ms as number));
    assert.ok((l.upstream_ms as number) + (l.gateway_ms as number) <= (l.duration_ms as number) + 0.01);
  });

  it('an unrouted request: NR and LR flags, the error code, no route', async () => {
    assert.equal(await get('/nowhere', 'al-404'), 404);
    const l = await lineOf('al-404');
    assert.equal(l.status, 404);
    assert.equal(l.flags, 'NR,LR');
    assert.equal(l.error_code, 'route_not_found');
    assert.equal(l.route, undefined);
    assert.equal(l.client_ip, '127.0.0.1');
  });

  it('auth: the refusal (UAEX) and the subject of an accepted token', async () => {
    assert.equal(await get('/secure/x', 'al-401'), 401);
    const refused = await lineOf('al-401');
    assert.equal(refused.flags, 'UAEX,LR');
    assert.equal(refused.error_code, 'unauthenticated');
    const token = await sign(hmac, { iss: 'test', sub: 'user "42"', exp: Math.floor(Date.now() / 1000) + 60 }, { header: { kid: null } });
    assert.equal(await get('/secure/x', 'al-sub', { authorization: `Bearer ${token}` }), 200);
    assert.equal((await lineOf('al-sub')).subject, 'user "42"');
  });

  it('rate limit: allowed, then limited (RL)', async () => {
    assert.equal(await get('/limited', 'al-rl-1'), 200);
    assert.equal(await get('/limited', 'al-rl-2'), 429);
    assert.equal((await lineOf('al-rl-1')).rate_limit, 'allowed');
    const l = await lineOf('al-rl-2');
    assert.equal(l.rate_limit, 'limited');
    assert.equal(l.flags, 'RL,LR');
    assert.equal(l.error_code, 'rate_limited');
  });

  it('an upstream that refuses connections: UF, 502, the target', async () => {
    assert.equal(await get('/dead', 'al-uf'), 502);
    const l = await lineOf('al-uf');
    assert.equal(l.flags, 'UF,LR');
    assert.equal(l.target, `http://127.0.0.1:${deadPort}`);
    assert.equal(l.error_code, 'upstream_unavailable');
  });

  it('per route: off, only errors, sample 0, a field list, stdout', async () => {
    assert.equal(await get('/quiet', 'al-quiet'), 200);
    assert.equal(await get('/errors/ok', 'al-errors-ok'), 200);
    assert.equal(await get('/none', 'al-none'), 200);
    await get('/few', 'al-few');
    assert.equal(await get('/out', 'al-stdout'), 200);
    await waitUntil('the stdout line', () => gw.stdout().includes('"correlation_id":"al-stdout"'), 10_000);
    // The lines that must not be there: once both workers wrote a later line, they would be.
    await linesWrittenByEveryWorker(2);
    const all = await lines();
    for (const id of ['al-quiet', 'al-errors-ok', 'al-none', 'al-stdout']) {
      assert.equal(all.find((l) => l.correlation_id === id), undefined, id);
    }
    const few = all.filter((l) => l.route === 'few');
    assert.equal(few.length, 1);
    assert.deepEqual(Object.keys(few[0]).sort(), ['hostname', 'level', 'msg', 'pid', 'route', 'status', 'time', 'worker']);
    const out = gw.stdout().split('\n').find((l) => l.includes('al-stdout'))!;
    assert.equal((JSON.parse(out) as Line).route, 'out');
  });

  it('SIGUSR1 reopens the file after logrotate moved it', async () => {
    assert.equal(await get('/plain/before-rotate', 'al-before'), 200);
    await lineOf('al-before');
    const rotated = logFile + '.1';
    await rename(logFile, rotated);
    gw.proc.kill('SIGUSR1');
    await waitUntil('the reopen log line', () => gw.stderr().includes('access log files reopened'), 10_000);
    // Workers reopen on the control plane's message: retry until a line lands in the new file.
    let n = 0;
    await waitUntil('a line in the new file', async () => {
      await get('/plain/after-rotate', `al-after-${++n}`);
      return (await lines(logFile)).some((l) => String(l.correlation_id).startsWith('al-after-'));
    }, 15_000);
    assert.ok((await lines(rotated)).some((l) => l.correlation_id === 'al-before'));
    assert.ok(gw.proc.exitCode === null, 'the gateway is still running (SIGUSR1 did not kill it)');
  });
});

describe('drain', () => {
  it('flushes every buffered line before the process exits', async () => {
    const file = join(dir, 'drain.log');
    const g = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2, drain_timeout_ms: 5000 }
services: { up: { targets: ["${up.origin}"] } }
access_log: { path: ${file} }
routes: [ { name: all, match: { prefix: / }, service: up } ]
`);
    try {
      const n = 30;
      for (let i = 0; i < n; i++) {
        const res = await request(`${g.url}/x`, { headers: { 'x-correlation-id': `drain-${i}` } });
        await res.body.dump();
      }
      // 30 short lines are below the file buffer's write threshold: only the drain writes them
      // (the periodic flush would take up to a second; the stop is immediate).
      assert.equal(await g.stop(), 0);
    } finally {
      await g.stop();
    }
    const ids = new Set((await lines(file)).map((l) => l.correlation_id));
    for (let i = 0; i < 30; i++) assert.ok(ids.has(`drain-${i}`), `drain-${i} missing`);
    assert.ok((await stat(file)).size > 0);
  });
});
