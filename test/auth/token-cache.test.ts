// The per-worker token caches: bounded in entries and in bytes, least recently used evicted,
// entries dead at expiry; refused tokens kept as digests only, so a flood of large invalid
// tokens leaves a worker's memory bounded (by the caches' own accounting and on the heap).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { RefusedCache, REFUSED_ENTRY_BYTES, refusedKey, TokenCache, type TokenCacheEntry } from '../../src/data/auth/token-cache.js';
import { ProviderState, type VerificationClient } from '../../src/data/auth/provider-state.js';
import { loadConfigText } from '../../src/control/config-load.js';
import type { RequestContext } from '../../src/data/request-context.js';
import type { AuthJwtFilterConfig } from '../../src/shared/auth-config.js';
import { makeKey, rawToken, sign } from '../helpers/jwt.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap in use after a full collection. */
function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const MB = 1024 * 1024;

const entry = (expiresAt: number, sub = 'u'): TokenCacheEntry => ({ expiresAt, headers: ['x-user-id', sub], scopes: [], code: null, seq: 0 });

describe('TokenCache', () => {
  it('returns live entries and drops them at their expiry', () => {
    const c = new TokenCache(10);
    c.set('t', entry(1000));
    assert.equal(c.get('t', 999)?.headers?.[1], 'u');
    assert.equal(c.get('t', 1000), undefined);
    assert.equal(c.size, 0, 'an expired entry is removed on lookup');
  });

  it('never holds more than its capacity', () => {
    const c = new TokenCache(100);
    for (let i = 0; i < 10_000; i++) c.set(`t${i}`, entry(Infinity));
    assert.equal(c.size, 100);
    assert.equal(c.get('t0', 0), undefined);
    assert.ok(c.get('t9999', 0));
  });

  it('evicts the least recently used: a token in use survives a stream of new ones', () => {
    const c = new TokenCache(8);
    c.set('hot', entry(Infinity, 'hot'));
    for (let i = 0; i < 1000; i++) {
      c.set(`cold${i}`, entry(Infinity));
      assert.ok(c.get('hot', 0), `hot evicted after ${i} inserts`);
    }
    assert.equal(c.size, 8);
  });

  it('capacity 0 caches nothing', () => {
    const c = new TokenCache(0);
    c.set('t', entry(Infinity));
    assert.equal(c.get('t', 0), undefined);
  });

  it('tokens sharing their last characters never stand in for each other', () => {
    const c = new TokenCache(10);
    const tail = 'S'.repeat(40);
    c.set('a'.repeat(100) + tail, entry(Infinity, 'a'));
    assert.equal(c.get('b'.repeat(100) + tail, 0), undefined);
    assert.equal(c.get('a'.repeat(100) + tail, 0)?.headers?.[1], 'a');
    c.set('b'.repeat(100) + tail, entry(Infinity, 'b'));
    assert.equal(c.get('b'.repeat(100) + tail, 0)?.headers?.[1], 'b');
    assert.equal(c.get('a'.repeat(100) + tail, 0), undefined, 'replaced: a miss, never b\'s entry');
  });
});

describe('TokenCache bytes', () => {
  it('holds at most max_bytes by its own accounting, evicting the oldest', () => {
    const c = new TokenCache(1000, 200_000);
    for (let i = 0; i < 100; i++) c.set(`${i}.`.padEnd(15_000, 'x') + `-${i}`.padStart(40, 's'), entry(Infinity));
    assert.ok(c.bytes <= 200_000, `${c.bytes} bytes`);
    assert.ok(c.bytes > 150_000, 'filled up to the bound');
    assert.ok(c.size >= 10 && c.size <= 13, `${c.size} entries`);
    assert.ok(c.get(`99.`.padEnd(15_000, 'x') + `-99`.padStart(40, 's'), 0), 'the newest is kept');
    assert.equal(c.get(`0.`.padEnd(15_000, 'x') + `-0`.padStart(40, 's'), 0), undefined);
    c.clear();
    assert.equal(c.bytes, 0);
  });

  it('an entry larger than max_bytes alone is not cached; replacing and expiring keep the account exact', () => {
    const c = new TokenCache(10, 10_000);
    c.set('x'.repeat(20_000), entry(Infinity));
    assert.equal(c.size, 0);
    assert.equal(c.bytes, 0);
    c.set('a'.repeat(100), entry(1000));
    const one = c.bytes;
    c.set('a'.repeat(100), entry(1000));
    assert.equal(c.bytes, one, 'the same token again: accounted once');
    assert.equal(c.get('a'.repeat(100), 1000), undefined);
    assert.equal(c.bytes, 0, 'expired on lookup: its bytes given back');
  });

  it('keeps its own copy of a token, not the larger string it was cut from (a Cookie header)', () => {
    const c = new TokenCache(1000, 64 * MB);
    const before = heapUsed();
    for (let i = 0; i < 200; i++) {
      const cookie = `session=${randomBytes(600).toString('base64url')}; other=${'y'.repeat(100_000)}${i}`;
      const token = cookie.slice(8, cookie.indexOf(';'));
      c.set(token, entry(Infinity));
    }
    const grown = heapUsed() - before;
    assert.equal(c.size, 200);
    assert.ok(grown < 5 * MB, `200 cookies of 100 KB stayed alive: the heap grew ${(grown / MB).toFixed(1)} MB`);
  });
});

describe('refused tokens', () => {
  it('RefusedCache keeps a digest: the same bytes per entry whatever the token length', () => {
    const c = new RefusedCache(100);
    const big = 'b'.repeat(15_000);
    c.set(refusedKey(big), { ...entry(Infinity), headers: null, code: 'bad_signature' });
    c.set(refusedKey('small'), { ...entry(Infinity), headers: null, code: 'malformed' });
    assert.equal(c.bytes, 2 * REFUSED_ENTRY_BYTES);
    assert.equal(c.get(refusedKey(big), 0)?.code, 'bad_signature');
    assert.equal(c.get(refusedKey('b'.repeat(14_999) + 'c'), 0), undefined);
    assert.equal(c.get(refusedKey(big), 0)?.token, undefined, 'no token kept');
    // UTF-8, not latin1: a character above U+00FF never stands for its low byte.
    assert.notEqual(refusedKey('abc\u0141'), refusedKey('abcA'));
  });

  it('3,000 distinct invalid 15 KB tokens leave the worker\'s caches bounded', async () => {
    const key = await makeKey('RS256', 'k1');
    const config = loadConfigText(`
services: { s: { targets: ["http://127.0.0.1:9001"] } }
auth:
  verifier: { mode: inline }
  providers:
    - { name: p, issuer: i, keys: [${JSON.stringify(key.jwk)}], algorithms: [RS256] }
routes: [ { name: r, match: { prefix: / }, service: s, auth: { provider: p } } ]
`, 'test.yaml');
    const { provider, runtime } = config.routes[0].filters[0].config as AuthJwtFilterConfig;
    const state = new ProviderState(provider!, runtime, () => {});
    const ctx = {} as RequestContext;
    const client: VerificationClient = { settle: () => assert.fail('answered synchronously'), unavailable: () => assert.fail('no 503') };
    const good = await sign(key, { iss: 'i', exp: Math.floor(Date.now() / 1000) + 600 });
    const accepted = state.verify(good, ctx, client);
    assert.ok(accepted && 'expiresAt' in accepted && accepted.headers !== null, 'a valid token is accepted');

    const before = heapUsed();
    let first: unknown = null;
    let firstToken = '';
    for (let i = 0; i < 3000; i++) {
      // Half with the provider's kid and a bad signature, half garbage.
      const pad = randomBytes(11_000).toString('base64url');
      const token = i % 2 === 0
        ? rawToken({ alg: 'RS256', kid: 'k1' }, { iss: 'i', exp: 2e9, pad }, randomBytes(256).toString('base64url'))
        : `${pad}.${pad.slice(0, 3000)}.${randomBytes(256).toString('base64url')}`;
      assert.ok(token.length >= 14_000, `${token.length}`);
      const verdict = state.verify(token, ctx, client);
      assert.ok(verdict && 'expiresAt' in verdict && verdict.headers === null, 'refused');
      if (i === 2998) { first = verdict; firstToken = token; }
    }
    const grown = heapUsed() - before;
    const refused = state.refused;
    assert.equal(refused.size, refused.capacity, 'full: the oldest were evicted');
    assert.equal(refused.bytes, refused.size * REFUSED_ENTRY_BYTES);
    assert.ok(refused.bytes <= refused.maxBytes);
    assert.ok(refused.bytes < 1 * MB, `${refused.bytes} bytes for ${refused.size} refused tokens`);
    assert.ok(state.cache.bytes < 4096, 'the verified-token cache holds the one valid token');
    assert.ok(grown < 8 * MB, `the heap grew ${(grown / MB).toFixed(1)} MB for 3,000 refused tokens of 15 KB`);
    // A replay is answered from the cache (the stored verdict, no second verification).
    assert.equal(state.verify(firstToken, ctx, client), first);
    const again = state.verify(good, ctx, client);
    assert.ok(again && 'headers' in again && again.headers !== null, 'the valid token is still accepted');
    state.retire();
  });
});
