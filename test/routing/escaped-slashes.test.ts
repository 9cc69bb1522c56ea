// Escaped slashes and the other encodings an upstream could resolve differently from the
// gateway (issue 9): src/shared/path-normalize.ts and the per-route policy of
// src/data/escaped-slashes.ts, run on a real compiled config, route table and generation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { buildFilter } from '../../src/filters/builders.js';
import { compileConfig } from '../../src/control/compile.js';
import type { EscapedSlashes } from '../../src/shared/compiled-config.js';
import { encodeRouteTable } from '../../src/shared/route-table.js';
import { encodeRouteData, RouteData } from '../../src/shared/route-data.js';
import { escapedSlashesConfined, hadEscapedSlash, normalizePath } from '../../src/shared/path-normalize.js';
import { methodBit } from '../../src/shared/methods.js';
import { GW_ERR } from '../../src/shared/errors.js';
import { METHOD_NOT_ALLOWED, NO_ROUTE, RouteMatcher } from '../../src/data/route-match.js';
import { Generation, type RuntimeService } from '../../src/data/generation.js';
import { ESCAPED_SLASH, escapedPathError, matchEscapedPath } from '../../src/data/escaped-slashes.js';
import type { RequestContext } from '../../src/data/request-context.js';

const SETTINGS: EscapedSlashes[] = ['reject', 'keep', 'unescape'];

interface RouteSetup {
  server: EscapedSlashes;
  users?: EscapedSlashes;
  admin?: EscapedSlashes;
}

/** A generation with routes `users` (/v1/users, GET) and `admin` (/v1/admin), as a worker builds it. */
function generation(setup: RouteSetup): Generation {
  const config = compileConfig({
    server: { escaped_slashes: setup.server },
    services: { s: { targets: ['http://127.0.0.1:9'] } },
    routes: [
      { name: 'users', match: { prefix: '/v1/users', methods: ['GET'] }, service: 's', strip_prefix: '/v1', ...(setup.users ? { escaped_slashes: setup.users } : {}) },
      { name: 'admin', match: { prefix: '/v1/admin' }, service: 's', ...(setup.admin ? { escaped_slashes: setup.admin } : {}) },
    ],
  }, 'test.yaml');
  const service = { name: 's', targets: [] } as unknown as RuntimeService;
  return new Generation(1, config, new RouteMatcher(encodeRouteTable(config.routes)), new RouteData(encodeRouteData(config.routes)),
    [service], { workerIndex: 0, post: () => undefined }, buildFilter);
}

type Outcome = { route: string; path: string } | { status: number; error?: 'escaped_slash' | 'bad_path' };

/** What the data plane does with `url` (server.ts: normalize, then match or matchEscapedPath). */
function route(gen: Generation, url: string, method = 'GET'): Outcome {
  const path = normalizePath(url);
  if (path === null) return { status: 400, error: 'bad_path' };
  const ctx = { gen, methodBit: methodBit(method), hostName: '', path } as unknown as RequestContext;
  const index = hadEscapedSlash() ? matchEscapedPath(ctx, url) : gen.matcher.match(ctx.methodBit, '', path);
  if (index === NO_ROUTE) return { status: 404 };
  if (index === METHOD_NOT_ALLOWED) return { status: 405 };
  if (index < 0) {
    const spec = escapedPathError(index);
    assert.equal(spec.status, 400);
    return { status: 400, error: spec === ESCAPED_SLASH ? 'escaped_slash' : 'bad_path' };
  }
  return { route: gen.route(index).name, path: ctx.path };
}

const refused: Outcome = { status: 400, error: 'escaped_slash' };
const invalid: Outcome = { status: 400, error: 'bad_path' };
const users = (path: string): Outcome => ({ route: 'users', path });
const admin = (path: string): Outcome => ({ route: 'admin', path });

// Per input: the outcome under server.escaped_slashes = reject, keep, unescape (no route overrides).
const CASES: [string, Outcome, Outcome, Outcome][] = [
  ['/v1/users/..%2Fadmin/secret', refused, refused, admin('/v1/admin/secret')],
  ['/v1/users/..%2fadmin/secret', refused, refused, admin('/v1/admin/secret')],
  ['/v1/users/%2E%2E%2Fadmin', refused, refused, admin('/v1/admin')],
  ['/v1/users/x%2F..%2F..%2Fadmin', refused, refused, admin('/v1/admin')],
  ['/v1/users/..%5Cadmin/secret', refused, refused, admin('/v1/admin/secret')],
  ['/v1/users/..%5cadmin', refused, refused, admin('/v1/admin')],
  ['/v1/users/a%2Fb', refused, users('/v1/users/a%2Fb'), users('/v1/users/a/b')],
  ['/v1/users/a%2fb', refused, users('/v1/users/a%2Fb'), users('/v1/users/a/b')],
  ['/v1/users/a%5Cb', refused, users('/v1/users/a%5Cb'), users('/v1/users/a/b')],
  ['/v1/users/a%2F%2Fb', refused, users('/v1/users/a%2F%2Fb'), users('/v1/users/a/b')],
  ['/v1/users/a%2F.%2Fb', refused, refused, users('/v1/users/a/b')],
  ['/v1/users/a%2F..%3Bx', refused, refused, invalid],
  ['/v1/users/a%2F..;x/b', refused, refused, invalid],
  ['/v1/users%2F..%2Fadmin', refused, refused, admin('/v1/admin')],
  // `..;` (Tomcat, Spring: `..`), with or without escapes, is refused under every setting.
  ['/v1/users/..;/admin/secret', invalid, invalid, invalid],
  ['/v1/users/..;jsessionid=1/admin', invalid, invalid, invalid],
  ['/v1/users/.;/admin', invalid, invalid, invalid],
  ['/v1/users/%2e%2e;/admin', invalid, invalid, invalid],
  ['/v1/users/..%3B/admin', invalid, invalid, invalid],
  // Double encoding: one more decode would give %2e / %2F / %5C / %00.
  ['/v1/users/%252e%252e/admin', invalid, invalid, invalid],
  ['/v1/users/%252E%252E%252Fadmin', invalid, invalid, invalid],
  ['/v1/users/..%252Fadmin', invalid, invalid, invalid],
  ['/v1/users/..%255Cadmin', invalid, invalid, invalid],
  ['/v1/users/%25%32%65%25%32%65/admin', invalid, invalid, invalid],
  ['/v1/users/%25252e', invalid, invalid, invalid],
  ['/v1/users/%2500', invalid, invalid, invalid],
  ['/v1/users/%C0%AE%C0%AE/admin', invalid, invalid, invalid],
  ['/v1/users/%E0%80%AE%E0%80%AE/admin', invalid, invalid, invalid],
  ['/v1/users/%F0%80%80%AE%F0%80%80%AE/admin', invalid, invalid, invalid],
  ['/v1/users/%E0%80%AF', invalid, invalid, invalid],
  ['/v1/users/%FF', invalid, invalid, invalid],
  ['/v1/users/%c1%9c', invalid, invalid, invalid],
  // NUL, raw or escaped, is never a path.
  ['/v1/users/%00', invalid, invalid, invalid],
  ['/v1/users/a%00b', invalid, invalid, invalid],
  ['/v1/users/a%2F%00', invalid, invalid, invalid],
  ['/v1/users/a\u0000', invalid, invalid, invalid],
  // A `%` that is data stays data.
  ['/v1/users/100%25', users('/v1/users/100%25'), users('/v1/users/100%25'), users('/v1/users/100%25')],
  ['/v1/users/100%25off', users('/v1/users/100%25off'), users('/v1/users/100%25off'), users('/v1/users/100%25off')],
  // Non-ASCII: percent-encoded from UTF-8; a lone surrogate becomes U+FFFD.
  ['/v1/users/caf\u00e9', users('/v1/users/caf%C3%A9'), users('/v1/users/caf%C3%A9'), users('/v1/users/caf%C3%A9')],
  ['/v1/users/\u010d\u010a', users('/v1/users/%C4%8D%C4%8A'), users('/v1/users/%C4%8D%C4%8A'), users('/v1/users/%C4%8D%C4%8A')],
  ['/v1/users/\ud83d\ude00', users('/v1/users/%F0%9F%98%80'), users('/v1/users/%F0%9F%98%80'), users('/v1/users/%F0%9F%98%80')],
  ['/v1/users/\ud800x', users('/v1/users/%EF%BF%BDx'), users('/v1/users/%EF%BF%BDx'), users('/v1/users/%EF%BF%BDx')],
  ['/v1/users/x\udc00', users('/v1/users/x%EF%BF%BD'), users('/v1/users/x%EF%BF%BD'), users('/v1/users/x%EF%BF%BD')],
  ['/v1/users/\ufffd', users('/v1/users/%EF%BF%BD'), users('/v1/users/%EF%BF%BD'), users('/v1/users/%EF%BF%BD')],
  ['/v1/users/\u00e9/../x', users('/v1/users/x'), users('/v1/users/x'), users('/v1/users/x')],
  ['/v1/users/\u00e9%2F..%2Fx', refused, refused, users('/v1/users/x')],
  // Outside a route: the server's setting.
  ['/other/a%2Fb', refused, { status: 404 }, { status: 404 }],
  ['/v1/users/../admin/x', admin('/v1/admin/x'), admin('/v1/admin/x'), admin('/v1/admin/x')],
];

describe('escaped slashes: every encoding under each setting', () => {
  for (const [url, ...outcomes] of CASES) {
    SETTINGS.forEach((setting, i) => {
      it(`${setting}: ${JSON.stringify(url)}`, () => {
        assert.deepEqual(route(generation({ server: setting }), url), outcomes[i]);
      });
    });
  }
});

describe('escaped slashes: per-route override', () => {
  it('a route overrides the server default for paths it matches, and only for those', () => {
    const gen = generation({ server: 'reject', users: 'keep' });
    assert.deepEqual(route(gen, '/v1/users/a%2Fb'), users('/v1/users/a%2Fb'));
    assert.deepEqual(route(gen, '/v1/admin/a%2Fb'), refused);
    assert.deepEqual(route(gen, '/v1/users/..%2Fadmin'), refused, 'keep never forwards a dot segment behind an escaped slash');
  });

  it('unescape re-routes the decoded path, which must land on a route that also says unescape', () => {
    const gen = generation({ server: 'reject', users: 'unescape' });
    assert.deepEqual(route(gen, '/v1/users/a%2Fb'), users('/v1/users/a/b'));
    // Decoded, this is /v1/admin/secret: admin (reject) never gets it, also not through users.
    assert.deepEqual(route(gen, '/v1/users/..%2Fadmin/secret'), refused);
    const both = generation({ server: 'reject', users: 'unescape', admin: 'unescape' });
    assert.deepEqual(route(both, '/v1/users/..%2Fadmin/secret'), admin('/v1/admin/secret'));
    const keepAdmin = generation({ server: 'reject', users: 'unescape', admin: 'keep' });
    assert.deepEqual(route(keepAdmin, '/v1/users/..%2Fadmin/secret'), refused);
  });

  it('a route saying reject refuses what the server would unescape or keep', () => {
    assert.deepEqual(route(generation({ server: 'unescape', users: 'reject' }), '/v1/users/a%2Fb'), refused);
    assert.deepEqual(route(generation({ server: 'keep', users: 'reject' }), '/v1/users/a%2Fb'), refused);
    assert.deepEqual(route(generation({ server: 'keep', users: 'reject' }), '/v1/admin/a%2Fb'), admin('/v1/admin/a%2Fb'));
  });

  it('the decoded path is matched again: 404 and 405 come from that match', () => {
    const gen = generation({ server: 'unescape' });
    assert.deepEqual(route(gen, '/v1/users/..%2F..%2Fnowhere'), { status: 404 });
    assert.deepEqual(route(gen, '/v1/users/a%2Fb', 'POST'), { status: 405 });
    // Only the decoded path reaches a route: /v1/users%2Fx is no segment of /v1/users until decoded.
    assert.deepEqual(route(gen, '/v1/users%2Fx'), users('/v1/users/x'));
  });
});

describe('normalizePath and escaped slashes', () => {
  it('reports escaped slashes of the path it returned, and none after unescaping', () => {
    assert.equal(normalizePath('/a%2fb'), '/a%2Fb');
    assert.equal(hadEscapedSlash(), true);
    assert.equal(normalizePath('/a/b'), '/a/b');
    assert.equal(hadEscapedSlash(), false);
    assert.equal(normalizePath('/a%41b'), '/aAb');
    assert.equal(hadEscapedSlash(), false);
    assert.equal(normalizePath('/a%5cb', true), '/a/b');
    assert.equal(hadEscapedSlash(), false);
  });

  it('unescapeSlashes decodes before dot segments are removed', () => {
    assert.equal(normalizePath('/v1/users/..%2Fadmin', true), '/v1/admin');
    assert.equal(normalizePath('/a%2F%2F%2Fb%5C', true), '/a/b/');
    assert.equal(normalizePath('/%2F..%2F..', true), '/');
  });

  it('escapedSlashesConfined finds a dot segment between escaped and real slashes', () => {
    for (const ok of ['/a%2Fb', '/a%2F%2Fb', '/a%2F...%2Fb', '/..a%2Fb.', '/a%5Cb/c', '/a%2F.b', '/a%2F']) assert.equal(escapedSlashesConfined(ok), true, ok);
    for (const bad of ['/a%2F..', '/..%2Fa', '/a%2F.%2Fb', '/a%5C..%5Cb', '/a/b%2F..;x', '/a%2F.;x/b', '/a%2F..%3Bx']) assert.equal(escapedSlashesConfined(bad), false, bad);
  });

  it('every output is ASCII without controls, idempotent, and never throws', () => {
    let seed = 9;
    const rand = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
    const pieces = ['a', '.', '..', '', '%2e', '%2F', '%2f', '%5C', '%25', '%41', ';', '..;', 'é', '\u010d', '\ud800', '\udc00', '\ud83d\ude00', '\ufffd', '%C3%A9', '~'];
    for (let i = 0; i < 5000; i++) {
      let path = '';
      const n = Math.floor(rand() * 6);
      for (let k = 0; k < n; k++) path += (rand() < 0.8 ? '/' : '') + pieces[Math.floor(rand() * pieces.length)];
      path = '/' + path;
      for (const unescape of [false, true]) {
        const once = normalizePath(path, unescape);
        if (once === null) continue;
        assert.match(once, /^\/[\x21-\x7e]*$/, path);
        assert.equal(normalizePath(once, unescape), once, path);
        if (unescape) assert.ok(!/%2F|%5C/.test(once), path);
      }
    }
  });
});
