// server.drain_delay_ms through a real gateway: on SIGTERM /readyz fails at once while the data
// port keeps accepting and serving for the delay, every response from then on closes its
// keep-alive connection, then the drain starts as before; a second SIGTERM ends the delay.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { adminClient, waitUntil } from '../helpers/admin.js';
import { freePort } from '../helpers/ports.js';
import { parseRawResponse, type RawResponse } from '../helpers/raw-http.js';

let up: Upstream;
let release: () => void = () => undefined;
let held = Promise.resolve();

before(async () => {
  up = await startUpstream('up', (req, res) => {
    const body = `ok ${req.url}`;
    const answer = () => { res.writeHead(200, { 'content-length': Buffer.byteLength(body) }); res.end(body); };
    if (req.url === '/api/held') void held.then(answer); else answer();
  });
});

after(async () => {
  release();
  await up?.close();
});

async function gateway(delayMs: number, adminPort: number): Promise<Gateway> {
  return startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 2, drain_timeout_ms: 5000, drain_delay_ms: ${delayMs} }
admin: { port: ${adminPort} }
services: { up: { targets: ["${up.origin}"] } }
routes: [ { name: all, match: { prefix: /api }, service: up } ]
`);
}

/** One keep-alive connection, one request at a time; `ended` once the gateway closed its side. */
class Connection {
  private readonly sock: Socket;
  private data = '';
  private waiter: (() => void) | null = null;
  ended = false;
  readonly open: Promise<void>;

  constructor(port: number) {
    this.sock = connect(port, '127.0.0.1');
    this.open = new Promise((resolve, reject) => { this.sock.once('connect', resolve); this.sock.once('error', reject); });
    this.sock.on('data', (d) => { this.data += d.toString('latin1'); this.waiter?.(); });
    this.sock.on('end', () => { this.ended = true; this.waiter?.(); });
    this.sock.on('error', () => { this.ended = true; this.waiter?.(); });
  }

  /** Sends GET path and resolves with the complete response (Content-Length framed). */
  async get(path: string): Promise<RawResponse> {
    this.data = '';
    this.sock.write(`GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`);
    for (;;) {
      const response = parseRawResponse(this.data, this.ended);
      const length = Number(response.headers.get('content-length')?.[0] ?? NaN);
      if (this.data.includes('\r\n\r\n') && Buffer.byteLength(response.body, 'latin1') >= length) return response;
      if (this.ended) throw new Error(`connection closed before the response was complete: ${JSON.stringify(this.data)}`);
      await new Promise<void>((resolve) => { this.waiter = resolve; });
      this.waiter = null;
    }
  }

  /** Resolves once the gateway closed the connection (rejects after timeoutMs). */
  async closedByGateway(timeoutMs = 3000): Promise<void> {
    await waitUntil('the gateway to close the connection', () => this.ended, timeoutMs);
  }

  destroy(): void {
    this.sock.destroy();
  }
}

function exitOf(gw: Gateway): Promise<number | null> {
  return new Promise((resolve) => {
    if (gw.proc.exitCode !== null) resolve(gw.proc.exitCode);
    else gw.proc.once('exit', (code) => resolve(code));
  });
}

describe('server.drain_delay_ms', () => {
  it('on SIGTERM /readyz fails at once, the data port accepts and serves for the delay with Connection: close, then drains and exits 0', async (t) => {
    const adminPort = await freePort();
    const delayMs = 2000;
    const gw = await gateway(delayMs, adminPort);
    const admin = adminClient(adminPort);
    const kept = new Connection(gw.port);
    try {
      await admin.waitReady();
      await kept.open;
      const before = await kept.get('/api/before');
      assert.equal(before.status, 200);
      assert.equal(before.headers.get('connection'), undefined, 'before SIGTERM the connection is kept alive');

      const exited = exitOf(gw);
      const signalledAt = Date.now();
      gw.proc.kill('SIGTERM');
      await waitUntil('/readyz to fail', async () => (await admin.get('/readyz')).status === 503, 1000);
      const failedAfter = Date.now() - signalledAt;
      assert.deepEqual((await admin.get('/readyz')).body, { ready: false, reasons: ['draining'] });

      // Still within the delay: the kept connection is served and told to close; a new
      // connection is accepted and served too, a proxied response and a local reply alike.
      const during = await kept.get('/api/during');
      assert.deepEqual([during.status, during.body, during.headers.get('connection')], [200, 'ok /api/during', ['close']]);
      const fresh = new Connection(gw.port);
      await fresh.open;
      const local = await fresh.get('/nowhere');
      assert.equal(local.status, 404);
      assert.deepEqual(local.headers.get('connection'), ['close']);
      // A local reply closes from the gateway's side (uWS's closing end()).
      await fresh.closedByGateway();
      const servedUntil = Date.now() - signalledAt;
      assert.ok(servedUntil < delayMs, `the checks above ran within the delay (${servedUntil} ms); the machine is too slow for this test`);
      assert.equal(gw.proc.exitCode, null, 'still running during the delay');

      // After the delay: the drain stops accepting (connection refused) and the process exits 0.
      assert.equal(await exited, 0);
      const exitedAfter = Date.now() - signalledAt;
      assert.ok(exitedAfter >= delayMs, `exited ${exitedAfter} ms after SIGTERM, before drain_delay_ms (${delayMs})`);
      const log = gw.stderr();
      assert.match(log, /"delay_ms":2000,"msg":"leaving: \/readyz fails, serving on until the drain"/);
      assert.ok(log.indexOf('"msg":"leaving') < log.indexOf('"msg":"draining"'), log);
      t.diagnostic(`drain delay: /readyz failed ${failedAfter} ms after SIGTERM, exit after ${exitedAfter} ms`);
    } finally {
      kept.destroy();
      await gw.stop();
    }
  });

  it('a second SIGTERM during the delay starts the drain at once', async () => {
    const adminPort = await freePort();
    const gw = await gateway(60_000, adminPort);
    const admin = adminClient(adminPort);
    try {
      await admin.waitReady();
      const exited = exitOf(gw);
      gw.proc.kill('SIGTERM');
      await waitUntil('/readyz to fail (the first SIGTERM handled)', async () => (await admin.get('/readyz')).status === 503, 2000);
      const secondAt = Date.now();
      gw.proc.kill('SIGTERM');
      assert.equal(await exited, 0);
      const took = Date.now() - secondAt;
      assert.ok(took < 10_000, `exited ${took} ms after the second SIGTERM (the delay is 60 s)`);
      assert.match(gw.stderr(), /"msg":"second signal during the drain delay: draining now"/);
    } finally {
      await gw.stop();
    }
  });

  it('without a delay (the default), a response written after SIGTERM closes its keep-alive connection, and the drain waits for it', async () => {
    const adminPort = await freePort();
    const gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1, drain_timeout_ms: 5000 }
admin: { port: ${adminPort} }
services: { up: { targets: ["${up.origin}"] } }
routes: [ { name: all, match: { prefix: /api }, service: up } ]
`);
    held = new Promise<void>((resolve) => { release = resolve; });
    const admin = adminClient(adminPort);
    const kept = new Connection(gw.port);
    try {
      await admin.waitReady();
      await kept.open;
      const seen = up.received.length;
      const inFlight = kept.get('/api/held');
      await waitUntil('the request to reach the upstream', () => up.received.length > seen, 3000);
      const exited = exitOf(gw);
      gw.proc.kill('SIGTERM');
      await waitUntil('/readyz to fail', async () => (await admin.get('/readyz')).status === 503, 2000);
      release();
      const response = await inFlight;
      assert.deepEqual([response.status, response.body, response.headers.get('connection')], [200, 'ok /api/held', ['close']], response.raw);
      assert.equal(await exited, 0);
    } finally {
      release();
      kept.destroy();
      await gw.stop();
    }
  });
});
