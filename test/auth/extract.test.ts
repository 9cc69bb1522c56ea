// Header stripping, token extraction and the scope check of the auth filters.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bearerToken, cookieValue, hasScopes, MULTIPLE, queryValue, removeHeader, stripHeaders, stripSet, takeAuthorization } from '../../src/data/auth/extract.js';

describe('identity header stripping', () => {
  const strip = stripSet(['x-user-id', 'x-tenant-id']);

  it('removes every copy, keeps the rest in order', () => {
    const h = ['a', '1', 'x-user-id', 'root', 'b', '2', 'x-tenant-id', 't', 'x-user-id', 'root2', 'c', '3'];
    stripHeaders(h, strip);
    assert.deepEqual(h, ['a', '1', 'b', '2', 'c', '3']);
  });

  it('finds Authorization in the same pass', () => {
    const h = ['x-user-id', 'root', 'authorization', 'Bearer abc', 'b', '2'];
    assert.equal(takeAuthorization(h, strip), 'Bearer abc');
    assert.deepEqual(h, ['authorization', 'Bearer abc', 'b', '2']);
    removeHeader(h, 'authorization');
    assert.deepEqual(h, ['b', '2']);
    assert.equal(takeAuthorization(h, strip), null);
    assert.equal(takeAuthorization(['authorization', 'a', 'authorization', 'b'], strip), MULTIPLE);
  });
});

describe('token extraction', () => {
  it('Bearer scheme, case-insensitive, token68 only', () => {
    assert.equal(bearerToken('Bearer abc.def.ghi'), 'abc.def.ghi');
    assert.equal(bearerToken('bearer abc'), 'abc');
    assert.equal(bearerToken('BEARER   abc  '), 'abc');
    assert.equal(bearerToken('Bearer '), null);
    assert.equal(bearerToken('Bearer a b'), null);
    assert.equal(bearerToken('Basic abc'), null);
    assert.equal(bearerToken('Bearerabc'), null);
    assert.equal(bearerToken('Beare abc'), null);
  });

  it('cookie and query parameter', () => {
    const h = ['cookie', 'a=1; session=tok.en; b=2'];
    assert.equal(cookieValue(h, 'session'), 'tok.en');
    assert.equal(cookieValue(['cookie', 'x=1', 'cookie', 'session="q"'], 'session'), 'q');
    assert.equal(cookieValue(h, 'sess'), null);
    assert.equal(queryValue('a=1&access_token=abc%2Edef&b', 'access_token'), 'abc.def');
    assert.equal(queryValue('access_token=', 'access_token'), null);
    assert.equal(queryValue('x_access_token=1', 'access_token'), null);
    assert.equal(queryValue('access_token=%zz', 'access_token'), null);
  });
});

describe('scopes', () => {
  it('every required scope must be granted', () => {
    assert.ok(hasScopes(['a', 'b', 'c'], ['c', 'a']));
    assert.ok(hasScopes([], []));
    assert.ok(!hasScopes(['a'], ['a', 'b']));
    assert.ok(!hasScopes(['users:reader'], ['users:read']));
  });
});
