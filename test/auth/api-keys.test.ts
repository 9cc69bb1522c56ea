// API keys end to end on a real gateway (2 workers) with its admin API: the consumer's
// headers reach the upstream and the key does not, spoofed consumer headers are removed on
// every route, refusals are JSON with the correlation id, listings show no hashes, and a key
// rotation (second key added, first disabled, then deleted) fails no request of a client that
// keeps sending during it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { adminClient, waitUntil, type AdminClient } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { keyHashText } from '../../src/filters/key-auth/schema.js';

const TOKEN = 'test-admin-token-0123456789';
const FIRST_KEY = 'acme-first-key-0123456789';
const METERED_KEY = 'metered-key-0123456789abcd';

let up: Upstream;
let gw: Gateway;
let admin: AdminClient;
// Several keep-alive connections, so that requests reach both workers.
const agent = new Agent({ connections: 8 });

interface Answer { status: number; body: any; headers: Record<string, unknown> }

async function send(path: string, headers: Record<string, string> = {}, fresh = false): Promise<Answer> {
  const dispatcher = fresh ? new Agent({ pipelining: 0 }) : agent;
  try {
    const res = await request(gw.url + path, { dispatcher, headers: fresh ? { ...headers, connection: 'close' } : headers });
    const text = await res.body.text();
    let body: unknown = text;
    try { body = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.statusCode, body, headers: res.headers };
  } finally {
    if (fresh) await dispatcher.close();
  }
}

/** `n` requests on fresh connections (spread over the workers by SO_REUSEPORT): their statuses. */
async function freshStatuses(path: string, headers: Record<string, string>, n = 6): Promise<number[]> {
  return (await Promise.all(Array.from({ length: n }, () => send(path, headers, true)))).map((a) => a.status);
}

before(async () => {
  up = await startUpstream('U');
  const adminPort = await freePort();
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2 }
admin:
  host: 127.0.0.1
  port: ${adminPort}
  token: \${LOBBY_ADMIN_TOKEN}
services:
  u: { targets: ["${up.origin}"] }
rate_limits:
  per-consumer: { key: consumer, rate: 1, per: 1h, burst: 3 }
consumers:
  - name: acme
    headers: { X-Consumer-Id: acme }
    keys: [{ id: first, hash: "${keyHashText(FIRST_KEY)}" }]
  - name: metered
    keys: [{ id: k, hash: "${keyHashText(METERED_KEY)}" }]
    rate_limit: { rate: 1, per: 1h, burst: 1 }
routes:
  - { name: limited, match: { prefix: /limited }, service: u, key_auth: {}, rate_limit: [per-consumer] }
  - { name: api, match: { prefix: /api }, service: u, key_auth: { query: apikey } }
  - { name: open, match: { prefix: /open }, service: u }
`, { env: { LOBBY_ADMIN_TOKEN: TOKEN } });
  admin = adminClient(adminPort, TOKEN);
  await admin.waitReady();
});

after(async () => {
  await agent.close();
  await gw?.stop();
  await up?.close();
});

describe('API keys on a real gateway', () => {
  it('a valid key reaches the upstream with the consumer headers and without the key', async () => {
    const r = await send('/api/x?apikey=ignored-when-header&b=1', { 'x-api-key': FIRST_KEY, 'x-consumer-id': 'root' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.headers['x-consumer-id'], 'acme', 'the consumer header is the gateway\'s, not the client\'s');
    assert.equal(r.body.headers['x-api-key'], undefined);
    // From the query: removed from the target the upstream gets.
    const q = await send(`/api/y?a=1&apikey=${FIRST_KEY}`);
    assert.equal(q.status, 200);
    assert.equal(q.body.url, '/api/y?a=1');
    // A route without key_auth strips the spoofable header as well.
    const open = await send('/open', { 'x-consumer-id': 'acme' });
    assert.equal(open.status, 200);
    assert.equal(open.body.headers['x-consumer-id'], undefined);
  });

  it('refusals: 401 with WWW-Authenticate and a JSON body with the correlation id', async () => {
    const missing = await send('/api/x', { 'x-correlation-id': 'key-test-1' });
    assert.equal(missing.status, 401);
    assert.equal(missing.headers['www-authenticate'], 'ApiKey realm="lobby", header="x-api-key", query="apikey"');
    assert.deepEqual(missing.body.error, { status: 401, code: 'api_key_required', message: 'An API key is required.', correlation_id: 'key-test-1' });
    const wrong = await send('/api/x', { 'x-api-key': 'not-a-key-0123456789' });
    assert.equal(wrong.status, 401);
    assert.equal(wrong.body.error.code, 'invalid_api_key');
  });

  it('key: consumer limits count per consumer across the workers; a consumer\'s own rate_limit replaces the limit\'s', async () => {
    const acme = await freshStatuses('/limited', { 'x-api-key': FIRST_KEY }, 4);
    assert.deepEqual(acme.sort(), [200, 200, 200, 429], 'burst 3 of the limit, on fresh connections over both workers');
    const metered = await freshStatuses('/limited', { 'x-api-key': METERED_KEY }, 3);
    assert.deepEqual(metered.sort(), [200, 429, 429], 'its own burst of 1, its own bucket');
  });

  it('the admin API lists consumers without hashes and makes a key shown once', async () => {
    const list = await admin.get('/consumers');
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.consumers, [
      { name: 'acme', headers: { 'X-Consumer-Id': 'acme' }, keys: [{ id: 'first', disabled: false }] },
      { name: 'metered', headers: {}, rate_limit: { rate: 1, per: '1h', burst: 1 }, keys: [{ id: 'k', disabled: false }] },
    ]);
    assert.doesNotMatch(JSON.stringify(list.body), /sha256/);

    const created = await admin.put('/consumers/globex', { headers: { 'X-Consumer-Id': 'globex' }, routes: ['api'] });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const key = await admin.post('/consumers/globex/keys');
    assert.equal(key.status, 201, JSON.stringify(key.body));
    assert.equal(key.body.key.id, 'key-1');
    assert.match(key.body.key.key, /^[A-Za-z0-9_-]{43}$/, 'a generated 32-byte base64url key');
    const shown = await admin.get('/consumers/globex');
    assert.doesNotMatch(JSON.stringify(shown.body), new RegExp(key.body.key.key));
    // Only the hash is stored in the config.
    const config = await admin.get('/config');
    const stored = config.body.config.consumers.find((c: { name: string }) => c.name === 'globex').keys[0];
    assert.equal(stored.hash, keyHashText(key.body.key.key));
    // The change is published before the answer: every worker knows the key now.
    assert.deepEqual(await freshStatuses('/api/z', { 'x-api-key': key.body.key.key }), [200, 200, 200, 200, 200, 200]);
    const r = await send('/api/z', { 'x-api-key': key.body.key.key });
    assert.equal(r.body.headers['x-consumer-id'], 'globex');

    // Errors: an unknown consumer or key is 404; a bad body is 400 with the issue.
    assert.equal((await admin.post('/consumers/nobody/keys')).body.error.code, 'consumer_not_found');
    const typo = await admin.post('/consumers/globex/keys', { hsh: 'sha256:00' });
    assert.equal(typo.status, 400);
    assert.equal(typo.body.error.issues[0].path, 'hsh');
    assert.equal((await admin.call('PATCH', '/consumers/globex/keys/nope', { disabled: true })).body.error.code, 'key_not_found');
    const bad = await admin.put('/consumers/globex', { routes: ['no-such-route'] });
    assert.equal(bad.status, 400);
    assert.match(JSON.stringify(bad.body.error.issues), /consumers\[2\]\.routes\[0\]/);

    // PUT without keys keeps them; DELETE removes the consumer and its keys stop working.
    assert.equal((await admin.put('/consumers/globex', { headers: { 'X-Consumer-Id': 'globex-2' } })).status, 200);
    assert.equal((await send('/api/z', { 'x-api-key': key.body.key.key })).body.headers['x-consumer-id'], 'globex-2');
    assert.equal((await admin.del('/consumers/globex')).status, 200);
    assert.deepEqual(await freshStatuses('/api/z', { 'x-api-key': key.body.key.key }), [401, 401, 401, 401, 401, 401]);
  });

  it('rotation: a client sending all along sees no failure while a second key is added and the first disabled and deleted', async () => {
    let key = FIRST_KEY;
    let stop = false;
    const failures: string[] = [];
    let sent = 0;
    // Clients that have finished a request begun with the second key (none uses the first after that).
    const moved = new Set<number>();
    const client = async (id: number) => {
      while (!stop) {
        const using = key;
        const r = await send('/api/rotate', { 'x-api-key': using });
        sent++;
        if (using !== FIRST_KEY) moved.add(id);
        if (r.status !== 200 || r.body.headers['x-consumer-id'] !== 'acme') failures.push(`${r.status} with ${using === FIRST_KEY ? 'first' : 'second'} key`);
      }
    };
    const clients = [client(0), client(1), client(2), client(3)];
    try {
      await new Promise((r) => setTimeout(r, 100));
      const second = await admin.post('/consumers/acme/keys', { id: 'second', key: 'acme-second-key-0123456789' });
      assert.equal(second.status, 201, JSON.stringify(second.body));
      assert.equal(second.body.key.key, 'acme-second-key-0123456789');
      await new Promise((r) => setTimeout(r, 100));
      // Both keys work now: the clients move to the second one.
      key = 'acme-second-key-0123456789';
      // Disable the first key only once no request with it can still be in flight.
      await waitUntil('every client on the second key', () => moved.size === 4, 15_000);
      const off = await admin.call('PATCH', '/consumers/acme/keys/first', { disabled: true });
      assert.equal(off.status, 200, JSON.stringify(off.body));
      assert.deepEqual(await freshStatuses('/api/x', { 'x-api-key': FIRST_KEY }), [401, 401, 401, 401, 401, 401]);
      const listed = await admin.get('/consumers/acme');
      assert.deepEqual(listed.body.consumer.keys.map((k: { id: string; disabled: boolean }) => [k.id, k.disabled]), [['first', true], ['second', false]]);
      assert.equal((await admin.del('/consumers/acme/keys/first')).status, 200);
      await new Promise((r) => setTimeout(r, 100));
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    assert.deepEqual(failures, []);
    assert.ok(sent > 20, `the clients sent ${sent} requests during the rotation`);
    assert.deepEqual(await freshStatuses('/api/x', { 'x-api-key': 'acme-second-key-0123456789' }), [200, 200, 200, 200, 200, 200]);
  });
});
