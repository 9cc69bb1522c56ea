// The `websocket` route key: defaults, a policy, and the rules between values, with their key paths.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { compileConfig } from '../../src/control/compile.js';
import { loadConfigFile } from '../../src/control/config-load.js';
import { configIssues } from '../helpers/config-issues.js';

function compile(route: Record<string, unknown>, service: Record<string, unknown> = { targets: ['http://127.0.0.1:9001'] }) {
  return compileConfig({
    services: { up: service },
    routes: [{ name: 'r', match: { prefix: '/' }, service: 'up', ...route }],
  } as never, 'gateway.yaml');
}

describe('websocket config', () => {
  it('true takes the defaults; false and absence take no upgrades', () => {
    const c = compile({ websocket: true });
    assert.deepEqual(c.routes[0].websocket, { maxMessageBytes: 1048576, maxBufferedBytes: 4194304, idleMs: 300_000, maxConnections: 0, origins: null });
    assert.equal(c.websocketRoutes, true);
    for (const off of [{ websocket: false }, {}]) {
      const none = compile(off);
      assert.equal(none.routes[0].websocket, undefined);
      assert.equal(none.websocketRoutes, undefined);
    }
  });

  it('a policy sets each limit; origins are compared lower-case', () => {
    const c = compile({ websocket: { max_message_bytes: 4096, max_buffered_bytes: 65536, idle_timeout_s: 0, max_connections: 10, origins: ['https://App.Example.com:8443', 'http://localhost:3000'] } });
    assert.deepEqual(c.routes[0].websocket, { maxMessageBytes: 4096, maxBufferedBytes: 65536, idleMs: 0, maxConnections: 10, origins: ['https://app.example.com:8443', 'http://localhost:3000'] });
  });

  it('refuses values and combinations that cannot work, each at its key path', () => {
    assert.deepEqual(configIssues(() => compile({ websocket: { max_message_bytes: 16777217 } })), ['routes[0].websocket.max_message_bytes: must be at most 16777216 (16 MiB)']);
    assert.match(configIssues(() => compile({ websocket: { max_conections: 1 } }))[0], /^routes\[0\]\.websocket\.max_conections: unknown key, did you mean "max_connections"\?/);
    assert.deepEqual(configIssues(() => compile({ websocket: { origins: ['https://*.example.com'] } })), [
      'routes[0].websocket.origins[0]: wildcards are not allowed here: list each origin (scheme://host[:port])',
    ]);
    assert.deepEqual(configIssues(() => compile({ websocket: { origins: ['https://example.com/app'] } })), [
      'routes[0].websocket.origins[0]: an origin has no path: write only scheme://host[:port]',
    ]);
    assert.deepEqual(configIssues(() => compile({ websocket: true, match: { prefix: '/', methods: ['POST'] } })), [
      'routes[0].websocket: a WebSocket upgrade is a GET request, and match.methods does not allow GET',
    ]);
    assert.deepEqual(configIssues(() => compile({ websocket: true }, { grpc: { targets: ['127.0.0.1:50051'] }, descriptors: { reflection: true } })), [
      'routes[0].websocket: needs an HTTP service: a gRPC service (grpc:) cannot take WebSocket connections',
    ]);
    const splitOrMirror = (extra: Record<string, unknown>) => configIssues(() => compileConfig({
      services: { up: { targets: ['http://127.0.0.1:9001'] }, canary: { targets: ['http://127.0.0.1:9002'] } },
      routes: [{ name: 'r', match: { prefix: '/' }, websocket: true, ...extra }],
    } as never, 'gateway.yaml'));
    assert.deepEqual(splitOrMirror({ services: [{ name: 'up', weight: 9 }, { name: 'canary', weight: 1 }] }), [
      'routes[0].websocket: cannot be combined with services (a weighted split): a WebSocket route names one service and is not mirrored',
    ]);
    assert.deepEqual(splitOrMirror({ service: 'up', mirror: { service: 'canary' } }), [
      'routes[0].websocket: cannot be combined with mirror: a WebSocket route names one service and is not mirrored',
    ]);
  });
});

describe('config/examples/websocket.yaml', () => {
  it('loads: both routes relay upgrades, with their policies', async () => {
    const config = await loadConfigFile(fileURLToPath(new URL('../../../config/examples/websocket.yaml', import.meta.url)));
    const [chat, prices] = config.routes;
    assert.equal(chat.websocket?.maxMessageBytes, 1048576);
    assert.deepEqual(prices.websocket, { maxMessageBytes: 65536, maxBufferedBytes: 1048576, idleMs: 60_000, maxConnections: 5000, origins: ['https://app.example.com', 'https://www.example.com'] });
    assert.equal(config.websocketRoutes, true);
  });
});
