// The worker side of JWKS key sets (src/data/auth/keys-store.ts): key sets by URI, and the
// worker's own refetch cooldown (one `jwks-refetch` message per cooldown, however many
// unknown kids meanwhile).
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { abandonRefetch, keySetOf, receiveKeys, requestRefetch, resetKeyStore, subscribeKeys } from '../../src/data/auth/keys-store.js';
import type { FromWorker } from '../../src/shared/messages.js';

const URI = 'http://idp.test/jwks.json';

afterEach(() => resetKeyStore());

describe('keys store', () => {
  it('one refetch message per cooldown; an unanswered request is joined, not repeated', () => {
    const posted: FromWorker[] = [];
    const post = (m: FromWorker) => posted.push(m);
    assert.equal(requestRefetch(URI, 1000, post, 0), true);
    assert.equal(requestRefetch(URI, 1000, post, 10), true, 'outstanding: the caller may wait for it');
    assert.deepEqual(posted, [{ type: 'jwks-refetch', uri: URI }]);
    receiveKeys(URI, 1, [{ kty: 'oct', kid: 'a' }]);
    assert.equal(requestRefetch(URI, 1000, post, 999), false, 'answered, within the cooldown: refused');
    assert.equal(posted.length, 1);
    assert.equal(requestRefetch(URI, 1000, post, 1000), true, 'after the cooldown: asked again');
    assert.equal(posted.length, 2);
    abandonRefetch(URI);
    assert.equal(requestRefetch(URI, 1000, post, 1500), false, 'abandoned: the cooldown still holds');
    assert.equal(posted.length, 2);
  });

  it('keeps the newest key set and tells subscribers of every answer', () => {
    const seen: number[] = [];
    const unsubscribe = subscribeKeys(URI, (set) => seen.push(set.version));
    assert.deepEqual(keySetOf(URI), { version: 0, keys: null });
    receiveKeys(URI, 2, [{ kty: 'oct', kid: 'b' }]);
    receiveKeys(URI, 1, [{ kty: 'oct', kid: 'a' }]);
    assert.equal(keySetOf(URI).version, 2, 'an older version never replaces a newer one');
    assert.equal(keySetOf(URI).keys![0].kid, 'b');
    assert.deepEqual(seen, [2, 2], 'a stale answer still releases waiters, with the current set');
    unsubscribe();
    receiveKeys(URI, 3, null);
    assert.deepEqual(seen, [2, 2]);
  });
});
