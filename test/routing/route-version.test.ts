// The API-version constraint of the route table (src/shared/route-table.ts VERSION_MASK,
// src/data/route-match.ts versionBit). Its specification, checked by a randomized
// differential test: matching under version v is matching against only the routes that serve
// v (their mask has v's bit; a route without match.version serves every version), except that
// where that finds no route but the full table matches the path, the answer is
// VERSION_NOT_SERVED (the gateway's 406/400) rather than 404.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { CompiledRoute, MatchKind } from '../../src/shared/compiled-config.js';
import { methodBit } from '../../src/shared/methods.js';
import { encodeRouteTable } from '../../src/shared/route-table.js';
import { METHOD_NOT_ALLOWED, NO_ROUTE, RouteMatcher, VERSION_NOT_SERVED } from '../../src/data/route-match.js';
import { UNKNOWN_VERSION, versionBit } from '../../src/shared/api-version.js';
import { compileSpec, mulberry32, type RouteSpec } from './route-match.cases.js';

function route(spec: RouteSpec & { versions?: number[] }): CompiledRoute {
  const compiled = compileSpec(spec);
  if (spec.versions) compiled.match.versionMask = spec.versions.reduce((m, v) => m | versionBit(v), 0);
  return compiled;
}

const GET = methodBit('GET'), POST = methodBit('POST');

function matchAs(matcher: RouteMatcher, version: number, bit: number, path: string, host = ''): number {
  matcher.versionBit = versionBit(version);
  return matcher.match(bit, host, path);
}

describe('version constraint: examples', () => {
  const routes = [
    route({ name: 'users-v1', kind: 'prefix', path: '/users', versions: [0] }),
    route({ name: 'users-v2', kind: 'prefix', path: '/users', versions: [1, 2] }),
    route({ name: 'user-v3', kind: 'template', path: '/users/{id}', versions: [2], methods: ['POST'] }),
    route({ name: 'health', kind: 'exact', path: '/health' }),
  ];
  const matcher = new RouteMatcher(encodeRouteTable(routes));

  test('two routes on one path differ only by version', () => {
    assert.equal(matchAs(matcher, 0, GET, '/users/7'), 0);
    assert.equal(matchAs(matcher, 1, GET, '/users/7'), 1);
    assert.equal(matchAs(matcher, 2, GET, '/users/7'), 1);
    // The exact-version template wins its method, the prefix route takes the rest.
    assert.equal(matchAs(matcher, 2, POST, '/users/7'), 2);
    assert.equal(matcher.paramCount, 1);
  });

  test('a version no route on the path serves', () => {
    assert.equal(matchAs(matcher, 3, GET, '/users/7'), VERSION_NOT_SERVED);
    assert.equal(matchAs(matcher, UNKNOWN_VERSION, GET, '/users'), VERSION_NOT_SERVED);
    // A route serving the version but not the method is a 405, which outranks it.
    assert.equal(matchAs(matcher, 0, POST, '/users/7'), 0);
    assert.equal(matchAs(matcher, 3, GET, '/nowhere'), NO_ROUTE);
  });

  test('a route without match.version serves every version, unknown ones too', () => {
    for (const v of [0, 1, 5, UNKNOWN_VERSION]) assert.equal(matchAs(matcher, v, GET, '/health'), 3);
    assert.equal(matchAs(matcher, 1, POST, '/health'), 3);
  });

  test('versionBit -1 (no versioning configured) matches as before', () => {
    matcher.versionBit = -1;
    assert.equal(matcher.match(GET, '', '/users/1'), 0);
  });

  test('405 lists only the methods of routes serving the version', () => {
    const table = new RouteMatcher(encodeRouteTable([
      route({ name: 'a', kind: 'exact', path: '/a', versions: [0], methods: ['PUT'] }),
      route({ name: 'b', kind: 'exact', path: '/a', versions: [1], methods: ['DELETE'] }),
    ]));
    assert.equal(matchAs(table, 0, GET, '/a'), METHOD_NOT_ALLOWED);
    assert.equal(table.allowMask, methodBit('PUT'));
    assert.equal(matchAs(table, 2, GET, '/a'), VERSION_NOT_SERVED);
  });

  test('a host route of another version falls through to a host-less one', () => {
    const table = new RouteMatcher(encodeRouteTable([
      route({ name: 'h', kind: 'prefix', path: '/', host: 'h.example', versions: [1] }),
      route({ name: 'any', kind: 'prefix', path: '/', versions: [0] }),
    ]));
    assert.equal(matchAs(table, 1, GET, '/x', 'h.example'), 0);
    assert.equal(matchAs(table, 0, GET, '/x', 'h.example'), 1);
    assert.equal(matchAs(table, 2, GET, '/x', 'h.example'), VERSION_NOT_SERVED);
  });

  test('the encoder refuses an empty version mask', () => {
    const bad = route({ name: 'x', kind: 'exact', path: '/x' });
    bad.match.versionMask = 0;
    assert.throws(() => encodeRouteTable([bad]), /version mask/);
  });
});

// ---- Randomized differential


const SEGMENTS = ['a', 'b', 'c', 'ab'];
const METHOD_BITS = ['GET', 'POST', 'PUT'].map(methodBit);

describe('randomized differential: versioned table vs the table of the routes serving the version', () => {
  test('many tables, every version, random requests', () => {
    const rand = mulberry32(0x5e51);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
    const tally = { hit: 0, notServed: 0, m405: 0, m404: 0 };
    for (let round = 0; round < 60; round++) {
      const routes: CompiledRoute[] = [];
      const count = 1 + Math.floor(rand() * 60);
      for (let i = 0; i < count; i++) {
        const kind = pick(['exact', 'prefix', 'template'] as MatchKind[]);
        const depth = Math.floor(rand() * 4);
        const segs: string[] = [];
        let p = 0;
        for (let d = 0; d < depth; d++) segs.push(kind === 'template' && rand() < 0.4 ? `{p${p++}}` : pick(SEGMENTS));
        const versions = rand() < 0.25 ? undefined : [0, 1, 2, 3].filter(() => rand() < 0.4);
        routes.push(route({
          name: `r${i}`, kind, path: '/' + segs.join('/'),
          host: rand() < 0.2 ? 'h' : undefined,
          methods: rand() < 0.4 ? undefined : [pick(['GET', 'POST', 'PUT'])],
          versions: versions && versions.length === 0 ? [0] : versions,
        }));
      }
      const full = new RouteMatcher(encodeRouteTable(routes));
      for (const version of [0, 1, 2, 3, 4, UNKNOWN_VERSION]) {
        const bit = versionBit(version);
        const serving = routes.map((r, i) => [r, i] as const).filter(([r]) => ((r.match.versionMask ?? -1) & bit) !== 0);
        const sub = new RouteMatcher(encodeRouteTable(serving.map(([r]) => ({ ...r, match: { ...r.match, versionMask: -1 } }))));
        const unversioned = new RouteMatcher(encodeRouteTable(routes.map((r) => ({ ...r, match: { ...r.match, versionMask: -1 } }))));
        for (let k = 0; k < 60; k++) {
          let path = '/' + Array.from({ length: Math.floor(rand() * 5) }, () => pick(SEGMENTS)).join('/');
          if (rand() < 0.1) path += '/';
          const host = rand() < 0.3 ? 'h' : '';
          const method = pick(METHOD_BITS);
          const label = `v${version} ${method} ${host}${path}`;
          const got = matchAs(full, version, method, path, host);
          const expected = sub.match(method, host, path);
          if (expected >= 0) {
            assert.equal(got, serving[expected][1], label);
            assert.deepEqual(Array.from(full.params.subarray(0, 2 * full.paramCount)), Array.from(sub.params.subarray(0, 2 * sub.paramCount)), label);
            tally.hit++;
          } else if (expected === METHOD_NOT_ALLOWED) {
            assert.equal(got, METHOD_NOT_ALLOWED, label);
            assert.equal(full.allowMask, sub.allowMask, label);
            tally.m405++;
          } else if (unversioned.match(method, host, path) !== NO_ROUTE) {
            assert.equal(got, VERSION_NOT_SERVED, label);
            tally.notServed++;
          } else {
            assert.equal(got, NO_ROUTE, label);
            tally.m404++;
          }
        }
      }
    }
    assert.ok(tally.hit > 1000 && tally.notServed > 200 && tally.m405 > 200 && tally.m404 > 200, JSON.stringify(tally));
  });
});
