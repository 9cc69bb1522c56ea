// `npm start`'s demo: the demo services and the gateway on config/gateway.yaml answer the
// README's curl commands. (The demo services use fixed ports 9001, 9011 and 9002.)
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { freePort } from '../helpers/ports.js';

const DEMO_JS = fileURLToPath(new URL('../../src/demo.js', import.meta.url));

describe('demo', () => {
  it('serves /v1/users/42, /v1/orders/7 and the gRPC /v1/shelves/1 and stops on SIGTERM', async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, [DEMO_JS], { env: { ...process.env, LOBBY_PORT: String(port), LOBBY_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    proc.stderr!.on('data', (d) => { stderr += d; });
    const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
    try {
      const deadline = Date.now() + 15_000;
      let users;
      for (;;) {
        try { users = await request(`http://127.0.0.1:${port}/v1/users/42`); break; } catch {
          if (Date.now() > deadline) throw new Error(`demo did not start:\n${stderr}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const u = await users.body.json() as { service: string; path: string; id: string };
      assert.equal(users.statusCode, 200);
      assert.equal(u.service, 'users');
      assert.equal(u.path, '/users/42');
      const orders = await request(`http://127.0.0.1:${port}/v1/orders/7`);
      const o = await orders.body.json() as { service: string; path: string };
      assert.equal(o.service, 'orders');
      assert.equal(o.path, '/orders/7');
      // The gRPC demo behind /v1/shelves (docs/grpc.md), transcoded from JSON.
      const shelf = await request(`http://127.0.0.1:${port}/v1/shelves/1`);
      const sh = await shelf.body.json() as { id: string; theme: string };
      assert.equal(shelf.statusCode, 200);
      assert.deepEqual([sh.id, sh.theme], ['1', 'fiction']);
    } finally {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
  });
});
