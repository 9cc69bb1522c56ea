// A drain (SIGTERM) closes every relayed WebSocket connection with 1001 on both sides, and the
// gateway exits without waiting for its drain deadline: open connections never end by themselves.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { opened, recordClient, startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.js';

let up: WsUpstream;
let gw: Gateway;

before(async () => {
  up = await startWsUpstream();
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2, drain_timeout_ms: 20000 }
access_log: { path: stdout }
services: { chat: { targets: ["${up.origin}"] } }
routes:
  - { name: chat, match: { prefix: / }, service: chat, websocket: true }
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
});

describe('drain', () => {
  it('closes open connections with 1001 both ways and exits well before the drain deadline', async () => {
    const clients = [];
    for (let i = 0; i < 4; i++) {
      const c = recordClient(new WebSocket(`ws://127.0.0.1:${gw.port}/echo`));
      await opened(c.ws);
      clients.push(c);
    }
    await up.connection(3);
    const started = Date.now();
    const code = await gw.stop(30_000);
    assert.equal(code, 0);
    assert.ok(Date.now() - started < 10_000, `exit took ${Date.now() - started} ms`);
    for (const c of clients) assert.deepEqual(await c.whenClosed, { code: 1001, reason: 'gateway shutting down' });
    for (const u of up.connections) assert.deepEqual(await u.whenClosed, { code: 1001, reason: 'gateway shutting down' });
    const lines = gw.stdout().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((l) => l.websocket !== undefined);
    assert.equal(lines.length, 4);
    for (const line of lines) {
      assert.equal(line.status, 101);
      assert.equal(line.flags, 'SI');
      assert.deepEqual(line.websocket, { messages_in: 0, messages_out: 0, close_code: 1001, closed_by: 'gateway' });
    }
  });
});
