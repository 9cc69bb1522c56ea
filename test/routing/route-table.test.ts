import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';

import type { CompiledRoute } from '../../src/shared/compiled-config.js';
import { METHODS, methodBit, methodMask, methodsInMask } from '../../src/shared/methods.js';
import { normalizePath } from '../../src/shared/path-normalize.js';
import { describeRouteTable, encodeRouteTable } from '../../src/shared/route-table.js';
import { METHOD_NOT_ALLOWED, NO_ROUTE, RouteMatcher } from '../../src/data/route-match.js';
import { compileSpec, MATCH_CASES, mulberry32, type RouteSpec } from './route-match.cases.js';

// ---- Reference matcher: a plain linear scan implementing the precedence rules written atop
// src/data/route-match.ts, with none of the table machinery.

interface Outcome {
  /** Route index, NO_ROUTE or METHOD_NOT_ALLOWED. */
  result: number;
  /** start,end offsets of the params (empty unless a route matched). */
  params: number[];
  /** OR of the masks of the path-matching routes; only meaningful for METHOD_NOT_ALLOWED. */
  allowMask: number;
}

interface Candidate {
  index: number;
  full: boolean;
  /** Full-path routes: one char per segment, '0' static, '1' param (compared as strings). */
  pattern: string;
  /** Prefix routes: segment count. */
  depth: number;
  params: number[];
}

function splitPath(path: string): { text: string; start: number; end: number }[] {
  if (path === '/') return [];
  const out = [];
  let start = 1;
  for (const text of path.slice(1).split('/')) {
    out.push({ text, start, end: start + text.length });
    start += text.length + 1;
  }
  return out;
}

function referenceMatch(routes: readonly CompiledRoute[], bit: number, host: string, path: string): Outcome {
  const requestSegments = splitPath(path);
  const groups: (string | null)[] = [];
  if (host !== '' && routes.some((r) => r.match.host === host)) groups.push(host);
  groups.push(null);

  let pathMatched = false;
  let allowMask = 0;
  for (const group of groups) {
    const candidates: Candidate[] = [];
    routes.forEach((route, index) => {
      const routeHost = route.match.host === '' ? null : route.match.host;
      if (routeHost !== group) return;
      const routeSegments = route.match.path === '/' ? [] : route.match.path.slice(1).split('/');
      if (route.match.kind === 'prefix') {
        if (routeSegments.length > requestSegments.length) return;
        if (routeSegments.every((s, i) => s === requestSegments[i].text)) {
          candidates.push({ index, full: false, pattern: '', depth: routeSegments.length, params: [] });
        }
        return;
      }
      if (routeSegments.length !== requestSegments.length) return;
      let pattern = '';
      const params: number[] = [];
      for (let i = 0; i < routeSegments.length; i++) {
        const s = routeSegments[i];
        const seg = requestSegments[i];
        if (route.match.kind === 'template' && s.startsWith('{') && s.endsWith('}')) {
          if (seg.text === '') return;
          pattern += '1';
          params.push(seg.start, seg.end);
        } else {
          if (s !== seg.text) return;
          pattern += '0';
        }
      }
      candidates.push({ index, full: true, pattern, depth: routeSegments.length, params });
    });
    candidates.sort((a, b) => {
      if (a.full !== b.full) return a.full ? -1 : 1;
      if (a.full && a.pattern !== b.pattern) return a.pattern < b.pattern ? -1 : 1;
      if (!a.full && a.depth !== b.depth) return b.depth - a.depth;
      return a.index - b.index;
    });
    for (const c of candidates) {
      const mask = routes[c.index].match.methodMask;
      pathMatched = true;
      allowMask |= mask;
      if (mask & bit) return { result: c.index, params: c.params, allowMask };
    }
  }
  return { result: pathMatched ? METHOD_NOT_ALLOWED : NO_ROUTE, params: [], allowMask };
}

function sabMatch(matcher: RouteMatcher, bit: number, host: string, path: string): Outcome {
  const result = matcher.match(bit, host, path);
  return {
    result,
    params: Array.from(matcher.params.subarray(0, 2 * matcher.paramCount)),
    allowMask: matcher.allowMask,
  };
}

// ---- Conformance table

describe('route matching conformance table', () => {
  for (const c of MATCH_CASES) {
    test(c.name, () => {
      const routes = c.routes.map(compileSpec);
      const matcher = new RouteMatcher(encodeRouteTable(routes));
      for (const request of c.requests) {
        const bit = methodBit(request.method);
        const host = request.host ?? '';
        const label = `${request.method} ${host}${request.path}`;
        const outcomes = {
          sab: sabMatch(matcher, bit, host, request.path),
          reference: referenceMatch(routes, bit, host, request.path),
        };
        for (const [which, got] of Object.entries(outcomes)) {
          const at = `${which}: ${label}`;
          const expect = request.expect;
          if ('route' in expect) {
            assert.ok(got.result >= 0, `${at}: expected ${expect.route}, got ${got.result}`);
            const route = routes[got.result];
            assert.equal(route.name, expect.route, at);
            const params: Record<string, string> = {};
            route.paramNames.forEach((name, i) => (params[name] = request.path.slice(got.params[2 * i], got.params[2 * i + 1])));
            assert.deepEqual(params, expect.params ?? {}, at);
          } else if (expect.status === 404) {
            assert.equal(got.result, NO_ROUTE, at);
          } else {
            assert.equal(got.result, METHOD_NOT_ALLOWED, at);
            assert.deepEqual(methodsInMask(got.allowMask).sort(), [...expect.allow].sort(), at);
          }
        }
      }
    });
  }
});

// ---- Randomized differential test


const SEGMENTS = ['a', 'b', 'c', 'ab', 'ba', 'a%2F'];
const HOSTS = ['h1', 'h2'];
const REQUEST_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'BREW'];

function randomRoutes(rand: () => number, count: number): CompiledRoute[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const specs: RouteSpec[] = [];
  for (let i = 0; i < count; i++) {
    const kind = pick(['exact', 'prefix', 'template'] as const);
    const depth = Math.floor(rand() * 5);
    const segments: string[] = [];
    let params = 0;
    for (let d = 0; d < depth; d++) {
      segments.push(kind === 'template' && rand() < 0.4 ? `{p${params++}}` : pick(SEGMENTS));
    }
    const hostRoll = rand();
    const methods = rand() < 0.3 ? undefined
      : ['GET', 'POST', 'PUT', 'DELETE', 'BREW'].filter(() => rand() < 0.4);
    specs.push({
      name: `r${i}`,
      kind,
      path: '/' + segments.join('/'),
      host: hostRoll < 0.6 ? undefined : hostRoll < 0.85 ? HOSTS[0] : HOSTS[1],
      methods: methods && methods.length === 0 ? ['GET'] : methods,
    });
  }
  return specs.map(compileSpec);
}

function randomPath(rand: () => number): string {
  const depth = Math.floor(rand() * 6);
  const segments: string[] = [];
  for (let d = 0; d < depth; d++) segments.push(SEGMENTS[Math.floor(rand() * SEGMENTS.length)]);
  let path = '/' + segments.join('/');
  if (depth > 0 && rand() < 0.2) path += '/';
  return path;
}

function assertAgree(routes: CompiledRoute[], rand: () => number, requests: number): { hits: number; m405: number; m404: number } {
  const matcher = new RouteMatcher(encodeRouteTable(routes));
  const tally = { hits: 0, m405: 0, m404: 0 };
  for (let i = 0; i < requests; i++) {
    const path = randomPath(rand);
    const host = ['', 'h1', 'h2', 'h3'][Math.floor(rand() * 4)];
    const bit = methodBit(REQUEST_METHODS[Math.floor(rand() * REQUEST_METHODS.length)]);
    const expected = referenceMatch(routes, bit, host, path);
    const got = sabMatch(matcher, bit, host, path);
    const label = `bit ${bit} ${host}${path}`;
    assert.equal(got.result, expected.result, label);
    if (expected.result >= 0) {
      assert.deepEqual(got.params, expected.params, label);
      tally.hits++;
    } else if (expected.result === METHOD_NOT_ALLOWED) {
      assert.equal(got.allowMask, expected.allowMask, label);
      tally.m405++;
    } else {
      tally.m404++;
    }
  }
  return tally;
}

describe('randomized differential: SAB matcher vs reference', () => {
  test('many small tables', () => {
    const rand = mulberry32(0x10bb1);
    const total = { hits: 0, m405: 0, m404: 0 };
    for (let round = 0; round < 40; round++) {
      const routes = randomRoutes(rand, 1 + Math.floor(rand() * 120));
      const t = assertAgree(routes, rand, 400);
      total.hits += t.hits; total.m405 += t.m405; total.m404 += t.m404;
    }
    // The generator must exercise every outcome, or the comparison proves little.
    assert.ok(total.hits > 1000 && total.m405 > 300 && total.m404 > 300, JSON.stringify(total));
  });

  test('one large table (3,000 routes)', () => {
    const rand = mulberry32(42);
    const routes = randomRoutes(rand, 3000);
    assertAgree(routes, rand, 4000);
  });
});

// ---- Encoder and table properties

describe('route table encoding', () => {
  test('describeRouteTable reports nodes and bytes; the buffer is shared memory', () => {
    const routes = [
      compileSpec({ name: 'a', kind: 'exact', path: '/v1/users' }),
      compileSpec({ name: 'b', kind: 'template', path: '/v1/users/{id}' }),
      compileSpec({ name: 'c', kind: 'prefix', path: '/', host: 'x.example' }),
    ];
    const sab = encodeRouteTable(routes);
    assert.ok(sab instanceof SharedArrayBuffer);
    const info = describeRouteTable(sab);
    // host-less: root, v1, users, {id}; x.example: root.
    assert.equal(info.nodes, 5);
    assert.equal(info.bytes, sab.byteLength);
  });

  test('a node with 10,000 static children', () => {
    const routes: CompiledRoute[] = [];
    for (let i = 0; i < 10_000; i++) routes.push(compileSpec({ name: `s${i}`, kind: 'exact', path: `/svc/s${i}` }));
    const matcher = new RouteMatcher(encodeRouteTable(routes));
    const get = methodBit('GET');
    for (let i = 0; i < 10_000; i += 7) assert.equal(matcher.match(get, '', `/svc/s${i}`), i);
    assert.equal(matcher.match(get, '', '/svc/s10000'), NO_ROUTE);
    assert.equal(matcher.match(get, '', '/svc/'), NO_ROUTE);
  });

  test('many hosts', () => {
    const routes: CompiledRoute[] = [];
    for (let i = 0; i < 500; i++) routes.push(compileSpec({ name: `h${i}`, kind: 'prefix', path: '/', host: `h${i}.example` }));
    routes.push(compileSpec({ name: 'fallback', kind: 'prefix', path: '/' }));
    const matcher = new RouteMatcher(encodeRouteTable(routes));
    const get = methodBit('GET');
    for (let i = 0; i < 500; i++) assert.equal(matcher.match(get, `h${i}.example`, '/x'), i);
    assert.equal(matcher.match(get, 'h500.example', '/x'), 500);
  });

  test('rejects routes the matcher could not honour', () => {
    const bad: RouteSpec[] = [
      { name: 'no-slash', kind: 'exact', path: 'v1' },
      { name: 'prefix-slash', kind: 'prefix', path: '/v1/' },
      { name: 'non-ascii', kind: 'exact', path: '/caf\u00e9' },
      { name: 'upper-host', kind: 'exact', path: '/', host: 'A.example' },
    ];
    for (const spec of bad) assert.throws(() => encodeRouteTable([compileSpec(spec)]), /route table/, spec.name);
    const mismatch = compileSpec({ name: 't', kind: 'template', path: '/{a}/{b}' });
    mismatch.paramNames = ['a'];
    assert.throws(() => encodeRouteTable([mismatch]), /paramNames/);
    assert.throws(() => new RouteMatcher(new SharedArrayBuffer(64)), /magic/);
  });

  test('params scratch is sized from the table', () => {
    const none = new RouteMatcher(encodeRouteTable([compileSpec({ name: 'a', kind: 'exact', path: '/a' })]));
    assert.equal(none.params.length, 0);
    const three = new RouteMatcher(encodeRouteTable([compileSpec({ name: 't', kind: 'template', path: '/{a}/{b}/x/{c}' })]));
    assert.equal(three.params.length, 6);
    assert.equal(three.match(methodBit('GET'), '', '/1/22/x/333'), 0);
    assert.equal(three.paramCount, 3);
    assert.deepEqual(Array.from(three.params), [1, 2, 3, 5, 8, 11]);
  });

  test('a worker thread matches against the same buffer, without a copy', async () => {
    const sab = encodeRouteTable([
      compileSpec({ name: 'u', kind: 'template', path: '/users/{id}', methods: ['GET'] }),
    ]);
    const moduleUrl = new URL('../../src/data/route-match.js', import.meta.url).href;
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       import(workerData.moduleUrl).then(({ RouteMatcher }) => {
         const m = new RouteMatcher(workerData.sab);
         const route = m.match(1, '', '/users/42');
         parentPort.postMessage({ route, params: Array.from(m.params), same: workerData.sab instanceof SharedArrayBuffer });
       });`,
      { eval: true, workerData: { sab, moduleUrl } },
    );
    const reply = await new Promise<{ route: number; params: number[]; same: boolean }>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    await worker.terminate();
    assert.deepEqual(reply, { route: 0, params: [7, 9], same: true });
  });

  test('every known method bit fits the table masks', () => {
    const routes = METHODS.map((m, i) => compileSpec({ name: m, kind: 'exact', path: `/m${i}`, methods: [m] }));
    const matcher = new RouteMatcher(encodeRouteTable(routes));
    METHODS.forEach((m, i) => assert.equal(matcher.match(methodBit(m), '', `/m${i}`), i));
    assert.equal(matcher.match(methodBit('GET'), '', '/m1'), METHOD_NOT_ALLOWED);
    assert.equal(matcher.allowMask, methodMask(['HEAD']));
  });
});

// ---- Path normalization (src/shared/path-normalize.ts)

describe('normalizePath', () => {
  const cases: [string, string | null][] = [
    ['/v1/users/../admin', '/v1/admin'],
    ['/v1/users/%2e%2e/admin', '/v1/admin'],
    ['/v1/users/%2E%2e/admin', '/v1/admin'],
    ['/v1/users/.%2E/admin', '/v1/admin'],
    ['//a///b', '/a/b'],
    ['/a/./b', '/a/b'],
    ['/a/%2e/b', '/a/b'],
    ['/..', '/'],
    ['/../../a', '/a'],
    ['/a/../..', '/'],
    ['/a/b/..', '/a/'],
    ['/a/.', '/a/'],
    ['/%2e', '/'],
    ['/a/b/%2E%2E/', '/a/'],
    ['/.', '/'],
    ['//', '/'],
    ['/%41', '/A'],
    ['/%7e%2D%5f', '/~-_'],
    ['/a%2fb', '/a%2Fb'],
    ['/a%2Fb', '/a%2Fb'],
    ['/%c3%a9', '/%C3%A9'],
    ['/a/..b/.c', '/a/..b/.c'],
    ['/zz', '/zz'],
    ['/a/', '/a/'],
    ['/a//', '/a/'],
    ['/', '/'],
    ['/%zz', null],
    ['/%4', null],
    ['/a%', null],
    ['/%4g', null],
    ['/a b', null],
    ['/a\tb', null],
    ['/a\u0000', null],
    ['/a\u007f', null],
    ['/caf\u00e9', '/caf%C3%A9'],
    ['/a\\b', null],
    ['/a#b', null],
    ['/a?b', null],
    ['a/b', null],
    ['', null],
    ['*', null],
  ];
  for (const [input, expected] of cases) {
    test(`${JSON.stringify(input)} -> ${JSON.stringify(expected)}`, () => {
      assert.equal(normalizePath(input), expected);
    });
  }

  // (JS cannot observe string identity; the fast path returns its argument, this pins the value.)
  test('a path that needs no change comes back unchanged', () => {
    for (const path of ['/', '/v1/users/42', '/a/b/', "/x-y_z.~!$&'()*+,;=:@"]) {
      assert.equal(normalizePath(path), path);
    }
  });

  test('normalization is idempotent', () => {
    const rand = mulberry32(7);
    const pieces = ['a', '.', '..', '', '%2e', '%2E%2e', '%41', '%2f', 'b'];
    for (let i = 0; i < 2000; i++) {
      let path = '';
      const n = Math.floor(rand() * 6);
      for (let k = 0; k < n; k++) path += '/' + pieces[Math.floor(rand() * pieces.length)];
      if (path === '') path = '/';
      const once = normalizePath(path);
      assert.ok(once !== null, path);
      assert.equal(normalizePath(once), once, path);
    }
  });
});
