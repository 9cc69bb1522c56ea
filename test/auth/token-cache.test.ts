// The per-worker verified-token cache: bounded, least recently used evicted, entries dead at expiry.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TokenCache, type TokenCacheEntry } from '../../src/data/auth/token-cache.js';

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
