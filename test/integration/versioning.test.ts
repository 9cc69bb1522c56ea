// API versioning end to end: config/examples/versioning.yaml runs on a real gateway with one
// real upstream per version. The request's version comes from Accept (vnd form, version=
// parameter, q-values), the Api-Version header or ?version=, in the configured order, else
// the default; two routes on one path differ only by version; 406/400 JSON for a version no
// route serves; Vary names the headers consulted; a deprecated version answers with
// Deprecation, Sunset and Link; a path-versioned route stamps its own version.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { loadConfigFile } from '../../src/control/config-load.js';

const EXAMPLE = fileURLToPath(new URL('../../../config/examples/versioning.yaml', import.meta.url));

let v1: Upstream, v2: Upstream, orders: Upstream;
let gw: Gateway;

before(async () => {
  [v1, v2, orders] = await Promise.all([startUpstream('users-v1'), startUpstream('users-v2'), startUpstream('orders')]);
  // The example as shipped, with this run's ports.
  const text = (await readFile(EXAMPLE, 'utf8'))
    .replace('port: 8080', 'port: __PORT__\n  workers: 1')
    .replace('http://127.0.0.1:9101', v1.origin).replace('http://127.0.0.1:9102', v2.origin).replace('http://127.0.0.1:9103', orders.origin);
  gw = await startGateway(text);
});
after(async () => {
  await gw?.stop();
  await Promise.all([v1?.close(), v2?.close(), orders?.close()]);
});

async function get(path: string, headers: Record<string, string | string[]> = {}) {
  const res = await request(gw.url + path, { headers });
  const text = await res.body.text();
  const json = JSON.parse(text) as { upstream?: string; error?: { status: number; code: string; correlation_id: string } };
  return { status: res.statusCode, headers: res.headers, json };
}

describe('config/examples/versioning.yaml', () => {
  it('loads and compiles', async () => {
    const config = await loadConfigFile(EXAMPLE);
    assert.deepEqual(config.versioning?.versions, ['1', '2']);
    assert.deepEqual(config.routes.map((r) => [r.name, r.match.versionMask ?? -1]), [
      ['users-v1', 1], ['users-v2', 2], ['orders-v1', -1], ['orders-v2', -1], ['health', -1],
    ]);
  });
});

describe('API versioning through a real gateway', () => {
  it('picks the route by the version in Accept, the header or the query', async () => {
    const cases: [string, Record<string, string>, string][] = [
      ['/users/7', { accept: 'application/vnd.company.v2+json' }, 'users-v2'],
      ['/users/7', { accept: 'application/vnd.company.v1+json' }, 'users-v1'],
      ['/users/7', { accept: 'application/json; version=2' }, 'users-v2'],
      ['/users/7', { 'api-version': '2' }, 'users-v2'],
      ['/users/7?version=2', {}, 'users-v2'],
      ['/users/7', {}, 'users-v1'], // the default
      ['/users/7', { accept: '*/*' }, 'users-v1'],
      // Accept comes first in sources, so it wins over the header.
      ['/users/7', { accept: 'application/vnd.company.v1+json', 'api-version': '2' }, 'users-v1'],
      // q-values: the most preferred version a route serves.
      ['/users/7', { accept: 'application/vnd.company.v1+json;q=0.4, application/vnd.company.v2+json;q=0.8' }, 'users-v2'],
      ['/users/7', { accept: 'application/vnd.company.v9+json, application/vnd.company.v1+json;q=0.1' }, 'users-v1'],
    ];
    for (const [path, headers, upstream] of cases) {
      const res = await get(path, headers);
      assert.equal(res.status, 200, `${path} ${JSON.stringify(headers)}`);
      assert.equal(res.json.upstream, upstream, `${path} ${JSON.stringify(headers)}`);
    }
  });

  it('Vary names every header consulted up to the one the version came from', async () => {
    assert.equal((await get('/users/7', { accept: 'application/vnd.company.v2+json' })).headers.vary, 'Accept');
    assert.equal((await get('/users/7', { 'api-version': '2' })).headers.vary, 'Accept, Api-Version');
    assert.equal((await get('/users/7?version=2')).headers.vary, 'Accept, Api-Version');
    assert.equal((await get('/users/7')).headers.vary, 'Accept, Api-Version');
    // A path-versioned route and an unversioned one do not vary by those headers.
    assert.equal((await get('/v2/orders/1', { 'api-version': '1' })).headers.vary, undefined);
    assert.equal((await get('/health')).headers.vary, undefined);
  });

  it('a version no route serves: 406 for Accept, 400 for the header and the query, JSON with the correlation id', async () => {
    const forwarded = v1.received.length + v2.received.length;
    const accept = await get('/users/7', { accept: 'application/vnd.company.v3+json' });
    assert.equal(accept.status, 406);
    assert.equal(accept.json.error?.code, 'version_not_acceptable');
    assert.equal(accept.headers.vary, 'Accept');
    assert.equal(accept.json.error?.correlation_id, accept.headers['x-correlation-id']);
    const header = await get('/users/7', { 'api-version': '3' });
    assert.equal(header.status, 400);
    assert.equal(header.json.error?.code, 'unsupported_version');
    assert.equal(header.headers.vary, 'Accept, Api-Version');
    const query = await get('/users/7?version=9');
    assert.equal(query.status, 400);
    assert.equal(query.json.error?.code, 'unsupported_version');
    // Two different Api-Version headers name no one version.
    const twice = await get('/users/7', { 'api-version': ['1', '2'] });
    assert.equal(twice.status, 400);
    assert.equal(twice.json.error?.code, 'unsupported_version');
    // Routes without a version serve any, and unknown paths stay 404.
    assert.equal((await get('/health', { 'api-version': '3' })).status, 200);
    assert.equal((await get('/nowhere', { 'api-version': '3' })).status, 404);
    assert.equal(v1.received.length + v2.received.length, forwarded, 'no refused request reached a users upstream');
  });

  it('a deprecated version answers with Deprecation, Sunset and a successor Link; the current one without', async () => {
    const old = await get('/users/7', { 'api-version': '1' });
    assert.equal(old.json.upstream, 'users-v1');
    assert.equal(old.headers.deprecation, '@1735689600');
    assert.equal(old.headers.sunset, 'Thu, 31 Dec 2026 23:59:59 GMT');
    assert.equal(old.headers.link, '<https://api.example.com/docs/v2>; rel="successor-version"');
    const current = await get('/users/7', { 'api-version': '2' });
    for (const name of ['deprecation', 'sunset', 'link']) assert.equal(current.headers[name], undefined, name);
    // The path-versioned route: its own version, whatever the header says.
    const pathV1 = await get('/v1/orders/5', { 'api-version': '2' });
    assert.equal(pathV1.status, 200);
    assert.equal(pathV1.headers.deprecation, '@1735689600');
    assert.equal((await get('/v2/orders/5', { 'api-version': '1' })).headers.deprecation, undefined);
  });
});
