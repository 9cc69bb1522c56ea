// The control plane's JWKS manager against a real JWKS server: Cache-Control lifetimes,
// background refresh, refetch cooldown, keeping the last good keys, document checks.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { JwksManager, ttlFromCacheControl, type KeysMessage } from '../../src/control/jwks.js';
import { loadConfigText } from '../../src/control/config-load.js';
import type { CompiledJwksSource } from '../../src/shared/auth-config.js';
import { makeKey, startJwksServer, type JwksServer, type TestKey } from '../helpers/jwt.js';
import { waitUntil } from '../helpers/admin.js';

let server: JwksServer;
let k1: TestKey;
let k2: TestKey;

before(async () => {
  k1 = await makeKey('ES256', 'k1');
  k2 = await makeKey('ES256', 'k2');
  server = await startJwksServer([k1.jwk]);
});

after(async () => {
  await server?.close();
});

function configFor(uri: string, cache = '{ min_ttl_s: 1, default_ttl_s: 60, max_ttl_s: 120, refetch_cooldown_s: 1, fetch_timeout_ms: 500 }') {
  return loadConfigText(`
services: { s: { targets: ["http://127.0.0.1:9001"] } }
auth:
  providers:
    - { name: a, issuer: i, jwks_uri: "${uri}", algorithms: [ES256], jwks_cache: ${cache} }
    - { name: b, issuer: j, jwks_uri: "${uri}", algorithms: [ES256] }
routes:
  - { name: a, match: { prefix: /a }, service: s, auth: { provider: a } }
  - { name: b, match: { prefix: /b }, service: s, auth: { provider: b } }
`, 'test.yaml');
}

function manager(): { m: JwksManager; messages: KeysMessage[] } {
  const messages: KeysMessage[] = [];
  return { m: new JwksManager((msg) => messages.push(msg)), messages };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, deadlineMs = 5000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe('ttlFromCacheControl', () => {
  const source: CompiledJwksSource = { uri: 'x', minTtlS: 60, maxTtlS: 3600, defaultTtlS: 600, refetchCooldownS: 30, fetchTimeoutMs: 1000 };
  it('uses max-age within the bounds, the default without it, the minimum for no-cache', () => {
    assert.equal(ttlFromCacheControl('public, max-age=900', source), 900);
    assert.equal(ttlFromCacheControl('max-age=5', source), 60);
    assert.equal(ttlFromCacheControl('max-age=99999', source), 3600);
    assert.equal(ttlFromCacheControl(undefined, source), 600);
    assert.equal(ttlFromCacheControl('no-cache', source), 60);
    assert.equal(ttlFromCacheControl('no-store, max-age=900', source), 60);
    assert.equal(ttlFromCacheControl('s-maxage=900', source), 600);
  });
});

describe('JwksManager', () => {
  it('fetches each URI once for all providers and announces the keys', async () => {
    server.keys = [k1.jwk];
    server.cacheControl = 'max-age=60';
    const before = server.hits;
    const { m, messages } = manager();
    try {
      await m.configure(configFor(server.url));
      assert.equal(server.hits - before, 1, 'two providers, one URI, one fetch');
      assert.equal(messages.length, 1);
      assert.equal(messages[0].version, 1);
      assert.deepEqual(messages[0].keys!.map((k) => k.kid), ['k1']);
      assert.deepEqual(m.snapshot(), messages);
    } finally {
      m.stop();
    }
  });

  it('refreshes before max-age runs out, and announces only changes', async () => {
    server.keys = [k1.jwk];
    server.cacheControl = 'max-age=1';
    const { m, messages } = manager();
    try {
      await m.configure(configFor(server.url));
      const hits = server.hits;
      // The refresh is due at 80 % of 1 s: not before (a lower bound holds however loaded the
      // machine is); when exactly after depends on the machine, so it is waited for.
      const refreshedAfter = await waitUntil('the scheduled refresh', () => server.hits - hits >= 1, 10_000);
      assert.ok(refreshedAfter >= 700, `refreshed after ${refreshedAfter} ms, not at once`);
      assert.equal(messages.length, 1, 'same keys: nothing announced');
      server.keys = [k1.jwk, k2.jwk];
      await waitUntil('the next refresh announcing the new key', () => messages.length >= 2, 10_000);
      assert.equal(messages.length, 2);
      assert.equal(messages[1].version, 2);
      assert.deepEqual(messages[1].keys!.map((k) => k.kid), ['k1', 'k2']);
    } finally {
      m.stop();
      server.cacheControl = 'max-age=300';
    }
  });

  it('refetches on request at most once per cooldown, and answers every request', async () => {
    server.keys = [k1.jwk];
    const { m, messages } = manager();
    try {
      await m.configure(configFor(server.url));
      await sleep(1100);
      const hits = server.hits;
      for (let i = 0; i < 20; i++) m.refetch(server.url);
      await waitUntil('the one refetch', () => server.hits - hits >= 1 && messages.length >= 2, 10_000);
      await sleep(100);
      assert.equal(server.hits - hits, 1);
      assert.ok(messages.length >= 2, 'the waiting workers got an answer');
      for (let i = 0; i < 20; i++) m.refetch(server.url);
      await sleep(100);
      assert.equal(server.hits - hits, 1, 'still within the cooldown: no fetch');
      assert.ok(messages.length >= 22, 'answered from what there is');
      const left = messages.at(-1)!.refetchInMs;
      assert.ok(left > 0 && left <= 1000, `the answer says how long the cooldown still holds (${left} ms)`);
      await sleep(1000);
      m.refetch(server.url);
      await waitUntil('a refetch after the cooldown', () => server.hits - hits >= 2, 10_000);
      assert.equal(server.hits - hits, 2, 'after the cooldown: one more');
    } finally {
      m.stop();
    }
  });

  it('a start-up or scheduled fetch starts no cooldown: the first unknown kid after it fetches at once', async () => {
    const longCooldown = '{ min_ttl_s: 1, default_ttl_s: 60, max_ttl_s: 120, refetch_cooldown_s: 60, fetch_timeout_ms: 500 }';
    server.keys = [k1.jwk];
    server.cacheControl = 'max-age=300';
    const { m, messages } = manager();
    try {
      // Right after start-up: the provider publishes k2, a token names it.
      await m.configure(configFor(server.url, longCooldown));
      assert.equal(messages[0].refetchInMs, 0, 'the start-up fetch started no cooldown');
      const hits = server.hits;
      server.keys = [k1.jwk, k2.jwk];
      m.refetch(server.url);
      await until('the rotated key set', () => messages.some((msg) => msg.version === 2));
      assert.equal(server.hits - hits, 1, 'fetched at once');
      assert.ok(messages.at(-1)!.refetchInMs > 50_000, 'this kid-triggered fetch started the cooldown');
      const answered = messages.length;
      for (let i = 0; i < 50; i++) m.refetch(server.url);
      await until('the answers', () => messages.length >= answered + 50);
      assert.equal(server.hits - hits, 1, 'more unknown kids within the cooldown: no fetch');
    } finally {
      m.stop();
    }

    // After a scheduled refresh (80 % of max-age=1), same thing.
    server.keys = [k1.jwk];
    server.cacheControl = 'max-age=1';
    const second = manager();
    try {
      await second.m.configure(configFor(server.url, longCooldown));
      const hits = server.hits;
      await until('the scheduled refresh', () => server.hits > hits);
      server.cacheControl = 'max-age=300';
      await sleep(50);
      server.keys = [k1.jwk, k2.jwk];
      const before = server.hits;
      second.m.refetch(server.url);
      await until('the rotated key set', () => second.messages.some((msg) => msg.keys?.length === 2));
      assert.equal(server.hits - before, 1, 'fetched at once, the scheduled refresh notwithstanding');
    } finally {
      second.m.stop();
      server.cacheControl = 'max-age=300';
    }
  });

  it('keeps the last good keys while the provider is down, and retries', async () => {
    server.keys = [k1.jwk];
    server.cacheControl = 'max-age=1';
    const { m, messages } = manager();
    try {
      await m.configure(configFor(server.url));
      server.down = true;
      const hits = server.hits;
      await waitUntil('a refresh and at least one retry', () => server.hits - hits >= 2, 15_000);
      assert.deepEqual(m.snapshot()[0].keys!.map((k) => k.kid), ['k1']);
      assert.equal(messages.length, 1, 'no change announced');
      server.down = false;
      server.keys = [k2.jwk];
      await waitUntil('the new keys after the provider is back', () => m.snapshot()[0].keys?.[0]?.kid === 'k2', 15_000);
      assert.deepEqual(m.snapshot()[0].keys!.map((k) => k.kid), ['k2']);
    } finally {
      m.stop();
      server.down = false;
      server.cacheControl = 'max-age=300';
    }
  });

  it('a provider down at start: no keys yet (version 0), fetched as soon as it answers', async () => {
    server.down = true;
    server.keys = [k1.jwk];
    const { m } = manager();
    try {
      await m.configure(configFor(server.url));
      assert.deepEqual(m.snapshot(), [{ type: 'keys', uri: server.url, version: 0, keys: null, refetchInMs: 0 }]);
      server.down = false;
      await waitUntil('the first successful fetch', () => m.snapshot()[0].version === 1, 15_000);
    } finally {
      m.stop();
      server.down = false;
    }
  });

  it('takes only public signature keys from the document', async () => {
    const rsa = await makeKey('RS256', 'r');
    server.keys = [
      { ...rsa.jwk, d: 'private-part', p: 'x' },
      { kty: 'oct', k: Buffer.alloc(32).toString('base64url'), kid: 'secret' },
      { ...k2.jwk, use: 'enc' },
      { kty: 'EC', crv: 'P-256', kid: 'broken' },
      k1.jwk,
    ];
    const { m, messages } = manager();
    try {
      await m.configure(configFor(server.url));
      const keys = messages[0].keys!;
      assert.deepEqual(keys.map((k) => k.kid), ['r', 'k1']);
      assert.equal(keys[0].d, undefined, 'private members are dropped');
    } finally {
      m.stop();
    }
  });
});
