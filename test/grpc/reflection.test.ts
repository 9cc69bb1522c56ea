// Descriptors from gRPC server reflection (v1, and v1alpha for servers without v1): the
// gateway fetches them when a generation is built, compiles the google.api.http rules the
// reflected files carry, and transcodes as with .proto files. A server without reflection
// makes the route answer 503 grpc_descriptors_unavailable, as Status JSON.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { readFile, writeFile } from 'node:fs/promises';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { freePort } from '../helpers/ports.js';
import { startBookstore, type BookstoreServer } from './bookstore-server.js';

let v1: BookstoreServer;
let alpha: BookstoreServer;
let none: BookstoreServer;
let gw: Gateway;
const BIG = '9007199254740993';

async function get(host: string, path: string) {
  const res = await request(gw.url + path, { headers: { host } });
  const text = await res.body.text();
  return { status: res.statusCode, text, json: () => JSON.parse(text) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

before(async () => {
  v1 = await startBookstore({ reflection: ['v1'] });
  alpha = await startBookstore({ reflection: ['v1alpha'] });
  none = await startBookstore();
  gw = await startGateway(`
server: { port: __PORT__, workers: 1 }
services:
  reflect-v1: { grpc: { targets: ["${v1.address}"] }, descriptors: { reflection: true } }
  reflect-alpha: { grpc: { targets: ["${alpha.address}"] }, descriptors: { reflection: true } }
  reflect-none: { grpc: { targets: ["${none.address}"] }, descriptors: { reflection: true } }
routes:
  - { name: v1, match: { prefix: /v1, host: v1.example }, service: reflect-v1, transcode: { services: [bookstore.v1.Bookstore] } }
  - { name: alpha, match: { prefix: /v1, host: alpha.example }, service: reflect-alpha, transcode: { services: [bookstore.v1.Bookstore] } }
  - { name: none, match: { prefix: /v1, host: none.example }, service: reflect-none, transcode: { services: [bookstore.v1.Bookstore] } }
`);
});

after(async () => {
  await gw?.stop();
  await Promise.all([v1?.stop(), alpha?.stop(), none?.stop()]);
});

describe('server reflection', () => {
  it('v1: the reflected http rules are served, int64 in path and response intact', async () => {
    const r = await get('v1.example', `/v1/shelves/${BIG}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().id, BIG);
    const b = await get('v1.example', '/v1/shelves/1/books/2');
    assert.equal(b.json().author.authorId, BIG);
    assert.equal(b.json().genre, 'FICTION', 'enums resolved from reflected descriptors');
  });

  it('v1alpha when the server has no v1', async () => {
    const r = await get('alpha.example', '/v1/shelves/7');
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { id: '7', theme: 'default' });
  });

  it('no reflection on the server: 503 grpc_descriptors_unavailable as Status JSON', async () => {
    const r = await get('none.example', '/v1/shelves/7');
    assert.equal(r.status, 503, r.text);
    assert.equal(r.json().code, 14);
    assert.equal(r.json().details[0].reason, 'grpc_descriptors_unavailable');
    assert.equal(none.calls.GetShelf ?? 0, 0);
  });
});

describe('descriptors are fetched again on a config reload', () => {
  it('a route whose reflection failed serves once the server has reflection and the config is reloaded', async () => {
    const port = await freePort();
    const config = (ms: number) => `
server: { port: __PORT__, workers: 1 }
services:
  late: { grpc: { targets: ["127.0.0.1:${port}"] }, descriptors: { reflection: true }, timeouts: { response_ms: ${ms} } }
routes:
  - { name: late, match: { prefix: /v1 }, service: late, transcode: { services: [bookstore.v1.Bookstore] } }
`;
    const gw2 = await startGateway(config(4000));
    let late: BookstoreServer | null = null;
    try {
      const first = await request(`${gw2.url}/v1/shelves/3`);
      assert.equal(first.statusCode, 503, await first.body.text());
      late = await startBookstore({ reflection: ['v1'], port });
      // A real change (a timeout), so the reload makes a new generation.
      const text = (await readFile(gw2.configFile, 'utf8')).replace('response_ms: 4000', 'response_ms: 4001');
      await writeFile(gw2.configFile, text);
      gw2.proc.kill('SIGHUP');
      const deadline = Date.now() + 20_000;
      let status = 0;
      let body = '';
      while (Date.now() < deadline) {
        const res = await request(`${gw2.url}/v1/shelves/3`);
        status = res.statusCode;
        body = await res.body.text();
        if (status === 200) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(status, 200, body);
      assert.deepEqual(JSON.parse(body), { id: '3', theme: 'default' });
    } finally {
      await gw2.stop();
      await late?.stop();
    }
  });
});
