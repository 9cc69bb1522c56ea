// Conformance table for route matching: each case is a route list and requests with the
// expected outcome. Run against both the SAB matcher and the reference matcher
// (route-table.test.ts), so the table also pins down the precedence rules.

import type { CompiledRoute, MatchKind } from '../../src/shared/compiled-config.js';
import { methodMask } from '../../src/shared/methods.js';

export interface RouteSpec {
  name: string;
  kind: MatchKind;
  path: string;
  host?: string;
  /** Omitted = any method. */
  methods?: string[];
}

export type Expectation =
  | { route: string; params?: Record<string, string> }
  | { status: 404 }
  | { status: 405; allow: string[] };

export interface RequestCase {
  method: string;
  host?: string;
  path: string;
  expect: Expectation;
}

export interface MatchCase {
  name: string;
  routes: RouteSpec[];
  requests: RequestCase[];
}

/** CompiledRoute for a spec (param names taken from the `{name}` segments). */
export function compileSpec(spec: RouteSpec): CompiledRoute {
  const paramNames = spec.kind === 'template'
    ? spec.path.split('/').filter((s) => s.startsWith('{') && s.endsWith('}')).map((s) => s.slice(1, -1))
    : [];
  return {
    name: spec.name,
    service: 0,
    match: { kind: spec.kind, path: spec.path, host: spec.host ?? null, methodMask: methodMask(spec.methods) },
    paramNames,
    stripPrefix: null,
    rewrite: null,
    preserveHost: false, escapedSlashes: 'reject',
    filters: [],
  };
}

const r = (name: string, kind: MatchKind, path: string, extra: Partial<RouteSpec> = {}): RouteSpec =>
  ({ name, kind, path, ...extra });
const get = (path: string, expect: Expectation, host?: string): RequestCase => ({ method: 'GET', path, expect, host });
const req = (method: string, path: string, expect: Expectation, host?: string): RequestCase => ({ method, path, expect, host });
const to = (route: string, params?: Record<string, string>): Expectation => ({ route, params });
const notFound: Expectation = { status: 404 };
const notAllowed = (...allow: string[]): Expectation => ({ status: 405, allow });

export const MATCH_CASES: MatchCase[] = [
  {
    name: 'exact routes',
    routes: [r('root', 'exact', '/'), r('users', 'exact', '/v1/users'), r('me', 'exact', '/v1/users/me')],
    requests: [
      get('/', to('root')),
      get('/v1/users', to('users')),
      get('/v1/users/me', to('me')),
      get('/v1/users/', notFound),
      get('/v1/user', notFound),
      get('/v1/usersX', notFound),
      get('/v1', notFound),
      get('/v1/users/me/x', notFound),
    ],
  },
  {
    name: 'prefix routes are segment-aligned, longest wins',
    routes: [r('all', 'prefix', '/'), r('v1', 'prefix', '/v1'), r('users', 'prefix', '/v1/users')],
    requests: [
      get('/', to('all')),
      get('/x', to('all')),
      get('/v1', to('v1')),
      get('/v1/', to('v1')),
      get('/v1x', to('all')),
      get('/v1/users', to('users')),
      get('/v1/users/', to('users')),
      get('/v1/users/42', to('users')),
      get('/v1/users/42/orders/', to('users')),
      get('/v1/usersX', to('v1')),
      get('/v2/users', to('all')),
    ],
  },
  {
    name: 'prefix without a root prefix',
    routes: [r('api', 'prefix', '/api')],
    requests: [get('/api', to('api')), get('/api/a/b', to('api')), get('/', notFound), get('/apix', notFound)],
  },
  {
    name: 'templates capture non-empty segments',
    routes: [
      r('user', 'template', '/v1/users/{id}'),
      r('order', 'template', '/v1/users/{userId}/orders/{orderId}'),
      r('any2', 'template', '/{a}/{b}'),
    ],
    requests: [
      get('/v1/users/42', to('user', { id: '42' })),
      get('/v1/users/42/orders/7', to('order', { userId: '42', orderId: '7' })),
      get('/v1/users/', notFound), // {id} never matches the empty last segment
      get('/v1/users/42/', notFound),
      get('/x/y', to('any2', { a: 'x', b: 'y' })),
      get('/x/', notFound),
      get('/x', notFound),
      get('/v1/users/42/orders/', notFound),
    ],
  },
  {
    name: 'static beats param at the first differing segment',
    routes: [
      r('p-s', 'template', '/{a}/b'),
      r('s-p', 'template', '/a/{b}'),
      r('me', 'exact', '/users/me'),
      r('user', 'template', '/users/{id}'),
      r('deep-param', 'template', '/x/{p}/z'),
      r('deep-static', 'exact', '/x/y/w'),
    ],
    requests: [
      get('/a/b', to('s-p', { b: 'b' })),
      get('/q/b', to('p-s', { a: 'q' })),
      get('/a/c', to('s-p', { b: 'c' })),
      get('/users/me', to('me')),
      get('/users/you', to('user', { id: 'you' })),
      // Static `y` is tried first but leads nowhere for `/x/y/z`: backtrack to `{p}`.
      get('/x/y/z', to('deep-param', { p: 'y' })),
      get('/x/y/w', to('deep-static')),
    ],
  },
  {
    name: 'full-path match beats prefix; method picks among candidates',
    routes: [
      r('api', 'prefix', '/api', { methods: ['GET'] }),
      r('create', 'exact', '/api/items', { methods: ['POST'] }),
      r('item', 'template', '/api/items/{id}', { methods: ['PUT', 'DELETE'] }),
      r('item-get', 'template', '/api/items/{id}', { methods: ['GET'] }),
    ],
    requests: [
      req('POST', '/api/items', to('create')),
      req('GET', '/api/items', to('api')),
      req('DELETE', '/api/items', notAllowed('GET', 'POST')),
      req('GET', '/api/items/3', to('item-get', { id: '3' })),
      req('PUT', '/api/items/3', to('item', { id: '3' })),
      req('PATCH', '/api/items/3', notAllowed('GET', 'PUT', 'DELETE')),
      req('POST', '/api/other', notAllowed('GET')),
      req('GET', '/nope', notFound),
    ],
  },
  {
    name: 'same path, disjoint methods; full-path search continues past a method miss',
    routes: [
      r('me-post', 'exact', '/users/me', { methods: ['POST'] }),
      r('user-get', 'template', '/users/{id}', { methods: ['GET'] }),
      r('users-get', 'exact', '/users', { methods: ['GET'] }),
      r('users-post', 'exact', '/users', { methods: ['POST'] }),
    ],
    requests: [
      req('GET', '/users/me', to('user-get', { id: 'me' })),
      req('POST', '/users/me', to('me-post')),
      req('DELETE', '/users/me', notAllowed('GET', 'POST')),
      req('GET', '/users', to('users-get')),
      req('POST', '/users', to('users-post')),
      req('HEAD', '/users', notAllowed('GET', 'POST')),
      req('BREW', '/users', notAllowed('GET', 'POST')),
    ],
  },
  {
    name: 'route order breaks ties; unknown methods use the OTHER bit',
    routes: [r('first', 'exact', '/a'), r('second', 'exact', '/a'), r('other', 'exact', '/b', { methods: ['BREW'] })],
    requests: [get('/a', to('first')), req('PROPFIND', '/b', to('other')), get('/b', notAllowed())],
  },
  {
    name: 'host routes first, then host-less',
    routes: [
      r('a-users', 'prefix', '/users', { host: 'a.example' }),
      r('a-post-only', 'exact', '/items', { host: 'a.example', methods: ['POST'] }),
      r('users', 'prefix', '/users'),
      r('items', 'exact', '/items', { methods: ['GET'] }),
      r('b-root', 'prefix', '/', { host: 'b.example' }),
      r('c-only', 'exact', '/c', { host: 'c.example', methods: ['PUT'] }),
    ],
    requests: [
      get('/users/1', to('a-users'), 'a.example'),
      get('/users/1', to('users'), 'z.example'),
      get('/users/1', to('users'), ''),
      get('/users/1', to('users')),
      // Host route matches the path but not the method: the host-less route still serves it.
      get('/items', to('items'), 'a.example'),
      req('POST', '/items', to('a-post-only'), 'a.example'),
      req('DELETE', '/items', notAllowed('GET', 'POST'), 'a.example'),
      req('DELETE', '/items', notAllowed('GET'), 'q.example'),
      // Host prefix `/` beats a longer host-less prefix: host groups are tried first.
      get('/users/1', to('b-root'), 'b.example'),
      get('/c', notAllowed('PUT'), 'c.example'),
      get('/c', notFound, 'a.example'),
      get('/c', notFound),
      req('PUT', '/c', to('c-only'), 'c.example'),
    ],
  },
  {
    name: 'host-only table',
    routes: [r('h', 'prefix', '/', { host: 'h.example' })],
    requests: [get('/x', to('h'), 'h.example'), get('/x', notFound, 'h.examplex'), get('/x', notFound)],
  },
  {
    name: 'trailing slashes',
    routes: [
      r('docs', 'exact', '/docs'),
      r('docs-prefix', 'prefix', '/docs', { methods: ['HEAD'] }),
      r('file', 'template', '/files/{name}'),
    ],
    requests: [
      get('/docs', to('docs')),
      get('/docs/', notAllowed('HEAD')),
      req('HEAD', '/docs/', to('docs-prefix')),
      req('HEAD', '/docs', to('docs')),
      get('/files/a', to('file', { name: 'a' })),
      get('/files/', notFound),
      get('/files', notFound),
    ],
  },
  {
    name: 'escaped bytes are plain segment text',
    routes: [r('enc', 'exact', '/a%2Fb'), r('t', 'template', '/t/{x}')],
    requests: [get('/a%2Fb', to('enc')), get('/a/b', notFound), get('/t/a%2Fb', to('t', { x: 'a%2Fb' }))],
  },
  {
    name: 'paths deeper than every route reach prefix routes only',
    routes: [r('p', 'prefix', '/a'), r('e', 'exact', '/a/b'), r('t', 'template', '/a/{x}')],
    requests: [
      get('/a/b/c/d/e/f/g', to('p')),
      get('/a/b', to('e')),
      get('/a/c', to('t', { x: 'c' })),
      get('/a/b/c', to('p')),
    ],
  },
  {
    name: 'empty table',
    routes: [],
    requests: [get('/', notFound), get('/a', notFound, 'h')],
  },
];

/** A small seeded PRNG (mulberry32) for the randomized differential tests: a failure names
 * its seed and replays. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
