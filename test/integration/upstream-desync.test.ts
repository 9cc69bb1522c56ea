// Issue 9, medium: an upstream connection is reused only while it is in sync. Bytes after a
// complete response (a second head after a 204, a body longer than its Content-Length, bytes
// on an idle socket) or a status outside 100-599 must close the socket: the next, unrelated
// client must get its own response, never the leftovers. Both upstream clients (the
// purpose-built one for GET, undici for a chunked POST) meet the same misbehaving upstream.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startRecordingUpstream, type RecordingUpstream } from '../helpers/recording-upstream.js';
import { rawExchange, type RawResponse } from '../helpers/raw-http.js';

let up: RecordingUpstream;
let gw: Gateway;

const EVIL = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n\r\nEVIL';
/** A response head whose body is still to come: whoever reads next on this socket gets it. */
const EVIL_OPEN = 'HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 60\r\n\r\nEVIL';

before(async () => {
  up = await startRecordingUpstream((req, socket, n) => {
    const path = req.url.replace(/^\/[a-z]+/, '');
    switch (path) {
      case '/204-then-head': socket.write(`HTTP/1.1 204 No Content\r\n\r\n${EVIL}`); return;
      case '/long-body': socket.write(`HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok${EVIL_OPEN}`); return;
      case '/late-bytes':
        socket.write('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok');
        setTimeout(() => socket.write(EVIL_OPEN), 50);
        return;
      case '/status-099': socket.write('HTTP/1.1 099 Odd\r\ncontent-length: 0\r\n\r\n'); return;
      case '/status-600': socket.write('HTTP/1.1 600 Odd\r\ncontent-length: 0\r\n\r\n'); return;
      case '/obs-text':
        socket.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nx-obs: caf'), Buffer.from([0xe9, 0x20, 0xc4, 0x8d]), Buffer.from('!\r\ncontent-length: 2\r\n\r\nok')]));
        return;
      default: {
        const answer = `{"n":${n}}`;
        socket.write(`HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${answer.length}\r\n\r\n${answer}`);
      }
    }
  });
  // One worker and one upstream connection: every request would reuse the same socket.
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
services: { up: { targets: ["${up.origin}"], connections: 1, timeouts: { response_ms: 3000 } } }
routes: [ { name: all, match: { prefix: / }, service: up } ]
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
});

type Client = 'fast GET' | 'undici chunked POST';

function send(client: Client | 'fast POST', path: string): Promise<RawResponse> {
  const prefix = client === 'undici chunked POST' ? '/undici' : '/fast';
  const request = client === 'fast GET'
    ? `GET ${prefix}${path} HTTP/1.1\r\nHost: gw\r\n\r\n`
    : client === 'fast POST'
      ? `POST ${prefix}${path} HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\nhi`
      : `POST ${prefix}${path} HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n`;
  return rawExchange(gw.port, Buffer.from(request), 8000);
}

/**
 * The next client after a misbehaving response gets the answer to its own request. It sends
 * a POST, which the fast client never retries: a retry on a fresh socket would hide a
 * socket left out of sync.
 */
async function nextClientIsInSync(client: Client): Promise<void> {
  const before = up.requests.length;
  const r = await send(client === 'fast GET' ? 'fast POST' : client, '/next');
  assert.equal(r.status, 200, r.raw);
  assert.doesNotMatch(r.raw, /EVIL/);
  assert.equal(JSON.parse(r.body).n, before + 1, 'the answer to this request, not a leftover');
}

function assertBadResponse(r: RawResponse): void {
  assert.equal(r.status, 502, r.raw);
  assert.match(r.body, /"code":"upstream_bad_response"/);
  assert.match(r.body, /"correlation_id":"[^"]+"/);
}

for (const client of ['fast GET', 'undici chunked POST'] as Client[]) {
  describe(`${client}: a socket out of sync is closed, never reused`, () => {
    it('a 204 followed by a second response head: 502, and the next client gets its own response', async () => {
      const connections = up.connections();
      const r = await send(client, '/204-then-head');
      if (client === 'fast GET') assertBadResponse(r);
      else assert.ok(r.status === 204 || r.status === 502, r.raw); // undici may relay the 204 before it sees the rest
      assert.doesNotMatch(r.raw, /EVIL/);
      await nextClientIsInSync(client);
      assert.ok(up.connections() > connections, 'the stray bytes closed the socket');
    });

    it('a body longer than its Content-Length: the extra bytes never reach anyone', async () => {
      const connections = up.connections();
      const r = await send(client, '/long-body');
      // The declared body is whole and may already be relayed; nothing past it is.
      assert.ok(r.status === 200 || r.status === 502, r.raw);
      if (r.status === 200) assert.equal(r.body, 'ok');
      assert.doesNotMatch(r.raw, /EVIL/);
      await nextClientIsInSync(client);
      assert.ok(up.connections() > connections, 'the stray bytes closed the socket');
    });

    it('bytes on an idle socket after a complete response close it', async () => {
      const connections = up.connections();
      const closedBefore = up.closedConnections();
      const r = await send(client, '/late-bytes');
      assert.equal(r.status, 200, r.raw);
      assert.equal(r.body, 'ok');
      // The stray bytes follow 50 ms later; the gateway answers them by closing the socket.
      const deadline = Date.now() + 10_000;
      while (up.closedConnections() === closedBefore && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(up.closedConnections() > closedBefore, 'the socket that got stray bytes was closed');
      await nextClientIsInSync(client);
      assert.ok(up.connections() > connections, 'the stray bytes closed the socket');
    });

    it('response header bytes above 0x7F reach the client as the upstream sent them', async () => {
      const r = await send(client, '/obs-text');
      assert.equal(r.status, 200, r.raw);
      const line = r.raw.split('\r\n').find((l) => l.toLowerCase().startsWith('x-obs:'));
      assert.equal(Buffer.from(line!, 'latin1').toString('hex'), Buffer.concat([Buffer.from('x-obs: caf'), Buffer.from([0xe9, 0x20, 0xc4, 0x8d]), Buffer.from('!')]).toString('hex'));
    });

    it('a status outside 100-599 answers 502 upstream_bad_response, and the exchange completes', async () => {
      for (const path of ['/status-099', '/status-600']) {
        // Without the status check the exchange would hang until response_ms and answer 504
        // upstream_timeout: the code, not a wall-clock bound, tells the two apart.
        assertBadResponse(await send(client, path));
        await nextClientIsInSync(client);
      }
    });
  });
}
