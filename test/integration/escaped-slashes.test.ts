// Issue 9: an encoded slash (or `..;`, a double escape, NUL) must not let a client reach an
// upstream path outside its route. The upstream is a real nginx, which resolves paths as many
// upstreams do: it decodes %2F into `/` before removing dot segments, so
// `/users/..%2Fadmin/secret` is its `/admin/secret`. Its `$uri` (echoed in every answer) is
// exactly the path it resolved.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startNginx, NGINX_MISSING, type Nginx } from '../helpers/nginx.js';
import { rawRequest } from '../helpers/raw-http.js';

let nginx: Nginx;
let gw: Gateway;

// Route prefix per setting: `d` has no escaped_slashes (the default, reject), `k` keep, `u` unescape.
const ROUTES = { d: 'reject', k: 'keep', u: 'unescape' } as const;

before(async () => {
  if (NGINX_MISSING) return;
  nginx = await startNginx(`
        location /users/ { return 200 "users:$uri"; }
        location /admin/ { return 200 "ADMIN:$uri"; }
        location / { return 200 "other:$uri"; }
`);
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
services: { nginx: { targets: ["${nginx.origin}"] } }
routes:
  - { name: d, match: { prefix: /d/users }, service: nginx, strip_prefix: /d }
  - { name: k, match: { prefix: /k/users }, service: nginx, strip_prefix: /k, escaped_slashes: keep }
  - { name: u, match: { prefix: /u/users }, service: nginx, strip_prefix: /u, escaped_slashes: unescape }
`);
});

after(async () => {
  await gw?.stop();
  await nginx?.stop();
});

/** GET `path` (sent as raw UTF-8 bytes) on `port`; the connection closes after the answer. */
async function get(port: number, path: string) {
  const r = await rawRequest(port, Buffer.from(`GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`, 'utf8'), 10_000);
  return { status: r.status, body: Buffer.from(r.body, 'latin1').toString('utf8') };
}

type Expect = number | string;
// Path after the route prefix → expected answer under d (reject), k (keep), u (unescape):
// a status (a gateway error), or the body nginx answers (status 200).
const CASES: [string, Expect, Expect, Expect][] = [
  // Decoded, these leave /X/users: under unescape Lobby routes what they decode to (no route: 404).
  ['/..%2Fadmin/secret', 400, 400, 404],
  ['/..%2fadmin/secret', 400, 400, 404],
  ['/%2e%2e%2Fadmin/secret', 400, 400, 404],
  ['/x/..%2F..%2Fadmin/secret', 400, 400, 404],
  ['/..%5Cadmin/secret', 400, 400, 404],
  ['/..%5cadmin/secret', 400, 400, 404],
  ['/x%2F..%2F..%2F..%2Fadmin/secret', 400, 400, 404],
  // Refused whatever the setting.
  ['/..;/admin/secret', 400, 400, 400],
  ['/..;x=1/admin/secret', 400, 400, 400],
  ['/%252e%252e/admin/secret', 400, 400, 400],
  ['/%252e%252e%252Fadmin/secret', 400, 400, 400],
  ['/..%252Fadmin/secret', 400, 400, 400],
  ['/%252F..%252F..%252Fadmin/secret', 400, 400, 400],
  ['/%00/../../admin/secret', 400, 400, 400],
  ['/%2F%00', 400, 400, 400],
  // Benign: an escaped slash inside the route, forwarded escaped (keep) or decoded (unescape).
  ['/a%2Fb', 400, 'users:/users/a/b', 'users:/users/a/b'],
  ['/a%5Cb', 400, 'users:/users/a\\b', 'users:/users/a/b'],
  // Non-ASCII: forwarded percent-encoded, nginx decodes it back to the same UTF-8.
  ['/caf\u00e9', 'users:/users/caf\u00e9', 'users:/users/caf\u00e9', 'users:/users/caf\u00e9'],
  ['/\u010d\u010a/x', 'users:/users/\u010d\u010a/x', 'users:/users/\u010d\u010a/x', 'users:/users/\u010d\u010a/x'],
];

describe('escaped slashes against a real nginx upstream', { skip: NGINX_MISSING }, () => {
  it('nginx itself resolves the attack paths to /admin (so the cases below mean something)', async () => {
    assert.deepEqual(await get(nginx.port, '/users/..%2Fadmin/secret'), { status: 200, body: 'ADMIN:/admin/secret' });
    assert.deepEqual(await get(nginx.port, '/users/x/..%2F..%2Fadmin/secret'), { status: 200, body: 'ADMIN:/admin/secret' });
  });

  for (const [suffix, ...expected] of CASES) {
    it(`${JSON.stringify(suffix)}: ${expected.join(' / ')}`, async () => {
      for (const [i, prefix] of (['d', 'k', 'u'] as const).entries()) {
        const want = expected[i];
        const r = await get(gw.port, `/${prefix}/users${suffix}`);
        const where = `${ROUTES[prefix]} ${suffix}: ${r.status} ${r.body}`;
        assert.ok(!r.body.includes('ADMIN'), `the upstream answered as /admin: ${where}`);
        if (typeof want === 'number') {
          assert.equal(r.status, want, where);
          const code = want === 404 ? 'route_not_found' : 'invalid_path';
          assert.match(r.body, new RegExp(`"code":"${code}"`), where);
        } else {
          assert.equal(r.status, 200, where);
          assert.equal(r.body, want, where);
        }
      }
    });
  }

  it('invalid UTF-8 in the path is forwarded as the escapes of U+FFFD, never as raw bytes', async () => {
    const request = Buffer.concat([Buffer.from('GET /d/users/a'), Buffer.from([0xff, 0xc0, 0x2e]), Buffer.from('b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')]);
    const r = await rawRequest(gw.port, request, 10_000);
    const body = Buffer.from(r.body, 'latin1').toString('utf8');
    assert.ok(!body.includes('ADMIN'), body);
    assert.equal(r.status, 200, r.raw);
    assert.match(body, /^users:\/users\/a(\ufffd)+\.b$/);
  });

  it('an escaped slash refused by policy says so in its message', async () => {
    const r = await get(gw.port, '/d/users/a%2Fb');
    assert.match(r.body, /encoded slash/);
    const invalid = await get(gw.port, '/d/users/..;/admin');
    assert.match(invalid.body, /not a valid URI path/);
  });
});
