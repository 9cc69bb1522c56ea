// The worker side of JWKS key sets (src/data/auth/keys-store.ts): key sets by URI, and the
// worker's refetch limit (one `jwks-refetch` message at a time, none while the control plane's
// cooldown holds, however many unknown kids meanwhile).
import { afterEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { abandonRefetch, keySetOf, receiveKeys, requestRefetch, resetKeyStore, subscribeKeys } from '../../src/data/auth/keys-store.js';
import type { FromWorker } from '../../src/shared/messages.js';

const URI = 'http://idp.test/jwks.json';

afterEach(() => resetKeyStore());

describe('keys store', () => {
  it('follows the cooldown the control plane reports; an unanswered request is joined, not repeated', () => {
    const posted: FromWorker[] = [];
    const post = (m: FromWorker) => posted.push(m);
    receiveKeys(URI, 1, [{ kty: 'oct', kid: 'a' }], 0, 0); // start-up fetch: no cooldown
    assert.equal(requestRefetch(URI, post, 5), true, 'right after a start-up fetch: asked at once');
    assert.equal(requestRefetch(URI, post, 10), true, 'outstanding: the caller may wait for it');
    assert.deepEqual(posted, [{ type: 'jwks-refetch', uri: URI }]);
    receiveKeys(URI, 2, [{ kty: 'oct', kid: 'b' }], 1000, 20); // the kid-triggered fetch started a 1 s cooldown
    assert.equal(requestRefetch(URI, post, 1019), false, 'within the cooldown: refused');
    assert.equal(posted.length, 1);
    assert.equal(requestRefetch(URI, post, 1020), true, 'after the cooldown: asked again');
    assert.equal(posted.length, 2);
    abandonRefetch(URI, 1000, 1500);
    assert.equal(requestRefetch(URI, post, 2499), false, 'abandoned: no more asking for a cooldown');
    assert.equal(requestRefetch(URI, post, 2500), true);
    assert.equal(posted.length, 3);
    receiveKeys(URI, 2, [{ kty: 'oct', kid: 'b' }], 0, 2600); // e.g. a scheduled refresh's message
    assert.equal(requestRefetch(URI, post, 2601), true, 'the control plane says no cooldown: asked');
    assert.equal(posted.length, 4);
  });

  it('keeps the newest key set and tells subscribers of every answer', () => {
    const seen: number[] = [];
    const unsubscribe = subscribeKeys(URI, (set) => seen.push(set.version));
    assert.deepEqual(keySetOf(URI), { version: 0, keys: null });
    receiveKeys(URI, 2, [{ kty: 'oct', kid: 'b' }], 0);
    receiveKeys(URI, 1, [{ kty: 'oct', kid: 'a' }], 0);
    assert.equal(keySetOf(URI).version, 2, 'an older version never replaces a newer one');
    assert.equal(keySetOf(URI).keys![0].kid, 'b');
    assert.deepEqual(seen, [2, 2], 'a stale answer still releases waiters, with the current set');
    unsubscribe();
    receiveKeys(URI, 3, null, 0);
    assert.deepEqual(seen, [2, 2]);
  });
});
