// The fast HTTP/1.1 upstream client against raw TCP servers that answer exact bytes:
// framing variants, strictness, interim responses, keep-alive reuse, stale connections
// reported (never retried by the client itself), connection bound and queue bound. It is
// driven through the dispatch shape (dispatch.ts) as the proxy drives it.
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { H1Pool } from '../../src/data/upstream/h1-client.js';
import type { DispatchController, DispatchHandler, DispatchOptions } from '../../src/data/upstream/dispatch.js';
import { encodeRequestHead, type RequestHead } from '../../src/data/upstream/request-head.js';
import { freePort } from '../helpers/ports.js';

interface Outcome {
  status: number;
  statusText: string;
  headers: string[];
  body: string;
  error: (Error & { code?: string }) | null;
  connects: number;
}

function collect(): { handler: DispatchHandler & { controller: DispatchController | null }; done: Promise<Outcome> } {
  const out: Outcome = { status: 0, statusText: '', headers: [], body: '', error: null, connects: 0 };
  let resolve!: (o: Outcome) => void;
  const done = new Promise<Outcome>((r) => { resolve = r; });
  const handler = {
    controller: null as DispatchController | null,
    onRequestStart(controller: DispatchController) { out.connects++; handler.controller = controller; },
    onResponseStart(_c: DispatchController, status: number, headers: (string | Buffer)[], statusText: string) { out.status = status; out.headers = headers as string[]; out.statusText = statusText; },
    onResponseData(_c: DispatchController, chunk: Buffer) { out.body += chunk.toString('latin1'); },
    onResponseEnd() { resolve(out); },
    onResponseError(_c: DispatchController, err: Error & { code?: string }) { out.error = err; resolve(out); },
  };
  return { handler, done };
}

/** Dispatch options as the proxy makes them (request-head.ts encodes the head). */
function options(method: string, path: string, headers: string[], body: Buffer | null = null): DispatchOptions {
  const noTarget = () => { throw new Error('the pool is called directly'); };
  return { target: { fast: noTarget, general: noTarget }, method, path, headers, body, head: head(method, path, headers), idempotent: method === 'GET' };
}

const servers: Server[] = [];
const pools: H1Pool[] = [];
after(async () => {
  await Promise.all(pools.map((p) => p.close()));
  for (const s of servers) s.close();
});

/** A raw server: `respond(requestText, socket, index)` is called for each request head. */
async function rawServer(respond: (req: string, socket: Socket, n: number) => void): Promise<{ port: number; accepted: () => number }> {
  let accepted = 0;
  let n = 0;
  const server = createServer((socket) => {
    accepted++;
    let buf = '';
    socket.on('data', (d) => {
      buf += d.toString('latin1');
      let end: number;
      while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
        const head = buf.slice(0, end);
        const len = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) break;
        const req = buf.slice(0, end + 4 + len);
        buf = buf.slice(end + 4 + len);
        respond(req, socket, n++);
      }
    });
    socket.on('error', () => {});
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
  servers.push(server);
  return { port, accepted: () => accepted };
}

/** The request head as the proxy makes it (request-head.ts). */
function head(method: string, path: string, headers: string[]): RequestHead {
  const bytes = encodeRequestHead(method, path, headers);
  assert.ok(bytes, 'a sendable request');
  return bytes;
}

function pool(port: number, connections = 2, maxQueue = 100, pipelining = 1): H1Pool {
  const p = new H1Pool(`http://127.0.0.1:${port}`, { connections, connectTimeoutMs: 1000, keepAliveTimeoutMs: 4000, maxQueue, pipelining });
  pools.push(p);
  return p;
}

async function send(p: H1Pool, method = 'GET', path = '/', body: Buffer | null = null): Promise<Outcome> {
  const { handler, done } = collect();
  const headers = ['host', 'up'];
  if (body) headers.push('content-length', String(body.length));
  p.dispatch(options(method, path, headers, body), handler);
  return done;
}

describe('h1 client framing', () => {
  it('reads Content-Length, chunked and close-delimited bodies', async () => {
    const srv = await rawServer((req, s) => {
      if (req.startsWith('GET /cl ')) s.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');
      else if (req.startsWith('GET /chunked ')) s.write('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
      else s.end('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close');
    });
    const p = pool(srv.port);
    assert.equal((await send(p, 'GET', '/cl')).body, 'hello');
    assert.equal((await send(p, 'GET', '/chunked')).body, 'abcde');
    const closeDelimited = await send(p, 'GET', '/close');
    assert.equal(closeDelimited.error, null);
    assert.equal(closeDelimited.body, 'until-close');
  });

  it('sends the request head and body exactly', async () => {
    let seen = '';
    const srv = await rawServer((req, s) => { seen = req; s.write('HTTP/1.1 204 No Content\r\n\r\n'); });
    const p = pool(srv.port);
    const r = await send(p, 'POST', '/x?y=1', Buffer.from('payload'));
    assert.equal(r.status, 204);
    assert.equal(seen, 'POST /x?y=1 HTTP/1.1\r\nhost: up\r\ncontent-length: 7\r\n\r\npayload');
  });

  it('skips the body of a HEAD response whatever its headers say', async () => {
    const srv = await rawServer((req, s) => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n'));
    const p = pool(srv.port);
    const head = await send(p, 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    assert.equal((await send(p, 'HEAD')).status, 200, 'the connection stays usable');
  });

  it('relays the final response after interim 1xx responses', async () => {
    const srv = await rawServer((req, s) => s.write('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok'));
    const r = await send(pool(srv.port));
    assert.equal(r.status, 201);
    assert.equal(r.body, 'ok');
  });

  it('passes more than 32 response headers', async () => {
    let head = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n';
    for (let i = 0; i < 50; i++) head += `X-H${i}: v${i}\r\n`;
    const srv = await rawServer((req, s) => s.write(head + '\r\n'));
    const r = await send(pool(srv.port));
    assert.equal(r.headers.length, 51 * 2);
    assert.equal(r.headers[r.headers.length - 1], 'v49');
  });

  for (const [name, bytes] of [
    ['two different Content-Lengths', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabc'],
    ['Content-Length with Transfer-Encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n'],
    ['a folded header', 'HTTP/1.1 200 OK\r\nX-A: 1\r\n  continued\r\nContent-Length: 0\r\n\r\n'],
    ['a bad chunk size', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n'],
    ['a status line that is not HTTP', 'HTTP/9 OK\r\n\r\n'],
  ] as const) {
    it(`rejects ${name} as bad_response`, async () => {
      const srv = await rawServer((req, s) => s.write(bytes));
      const r = await send(pool(srv.port));
      assert.ok(r.error, `expected an error for ${name}`);
      assert.equal(r.error!.code, 'bad_response');
    });
  }

  it('reports a truncated body as an error, not a complete response', async () => {
    const srv = await rawServer((req, s) => s.end('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc'));
    const r = await send(pool(srv.port));
    assert.ok(r.error);
  });
});

describe('h1 client connections', () => {
  it('reuses keep-alive connections and never exceeds the pool size', async () => {
    const srv = await rawServer((req, s) => setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx'), 2));
    const p = pool(srv.port, 3);
    const all = await Promise.all(Array.from({ length: 60 }, () => send(p)));
    assert.ok(all.every((r) => r.status === 200));
    assert.equal(srv.accepted(), 3);
    for (let i = 0; i < 20; i++) await send(p);
    assert.equal(srv.accepted(), 3);
  });

  it('reports stale_connection (and does not retry) when a reused connection turns out closed', async () => {
    const srv = await rawServer((req, s, n) => {
      if (n === 0) { s.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na'); return; }
      if (n === 1) { s.destroy(); return; } // the server dropped the idle connection
      s.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb');
    });
    const p = pool(srv.port, 1);
    assert.equal((await send(p)).body, 'a');
    const stale = await send(p);
    assert.equal(stale.error?.code, 'stale_connection');
    assert.equal(stale.connects, 1, 'sent once: retrying is the caller\'s decision');
    assert.equal((await send(p)).body, 'b', 'the next request gets a fresh connection');
  });

  it('reports reset when a fresh connection closes before the response', async () => {
    const srv = await rawServer((req, s) => s.destroy());
    const r = await send(pool(srv.port, 1), 'POST', '/', Buffer.from('x'));
    assert.equal(r.error?.code, 'reset');
  });

  it('fails fast when the target refuses connections', async () => {
    const port = await freePort();
    const r = await send(pool(port));
    assert.equal(r.error?.code, 'connect_failed');
  });

  it('refuses requests beyond the queue bound with queue_full', async () => {
    const srv = await rawServer((req, s) => setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 100));
    const p = pool(srv.port, 1, 2);
    const results = await Promise.all(Array.from({ length: 5 }, () => send(p)));
    const full = results.filter((r) => r.error?.code === 'queue_full').length;
    assert.equal(full, 2);
    assert.equal(results.filter((r) => r.status === 200).length, 3);
  });

  it('pauses the socket when the handler reports backpressure, resumes on demand', async () => {
    const big = 'y'.repeat(4 * 1024 * 1024);
    const srv = await rawServer((req, s) => s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${big.length}\r\n\r\n${big}`));
    const p = pool(srv.port);
    let received = 0;
    let pauses = 0;
    const done = new Promise<number>((resolve, reject) => {
      p.dispatch(options('GET', '/', ['host', 'up']), {
        onResponseData(controller, chunk) {
          received += chunk.length;
          pauses++;
          controller.pause();
          setTimeout(() => controller.resume(), 1);
        },
        onResponseEnd() { resolve(received); },
        onResponseError: (_c, err) => reject(err),
      });
    });
    assert.equal(await done, big.length);
    assert.ok(pauses > 1);
  });
});

describe('h1 client pipelining (opt-in)', () => {
  /** Answers each request with its own path, after `delayMs`, in order. */
  async function pathEcho(delayMs = 0) {
    return rawServer((req, s) => {
      const path = req.split(' ')[1];
      const answer = () => s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${path.length}\r\n\r\n${path}`);
      if (delayMs > 0) setTimeout(answer, delayMs); else answer();
    });
  }

  it('sends GETs behind each other on one socket and matches every response to its request', async () => {
    const srv = await pathEcho(5);
    const p = pool(srv.port, 1, 100, 4);
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => send(p, 'GET', `/r${i}`)));
    results.forEach((r, i) => assert.equal(r.body, `/r${i}`));
    assert.equal(srv.accepted(), 1);
  });

  it('never pipelines a request with a body: it waits for a free socket', async () => {
    const seen: string[] = [];
    const srv = await rawServer((req, s) => {
      seen.push(req.split(' ').slice(0, 2).join(' '));
      setTimeout(() => s.write('HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'), 20);
    });
    const p = pool(srv.port, 1, 100, 4);
    const get1 = send(p, 'GET', '/a');
    const post = send(p, 'POST', '/b', Buffer.from('x'));
    const get2 = send(p, 'GET', '/c');
    await Promise.all([get1, post, get2]);
    // /c may go behind /a; /b only once the socket is free.
    assert.ok(seen.indexOf('POST /b') > seen.indexOf('GET /a'));
    assert.equal((await post).status, 200);
  });

  it('reports stale_connection for the pipelined requests that got no answer when the socket closes', async () => {
    let answered = 0;
    const srv = await rawServer((req, s) => {
      const path = req.split(' ')[1];
      if (answered === 1) { answered++; s.destroy(); return; } // drop the socket after one answer
      answered++;
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${path.length}\r\n\r\n${path}`);
    });
    const p = pool(srv.port, 1, 100, 4);
    const first = await send(p, 'GET', '/warm'); // the socket is now a reused one
    assert.equal(first.body, '/warm');
    const results = await Promise.all(['/x', '/y', '/z'].map((path) => send(p, 'GET', path)));
    assert.deepEqual(results.map((r) => r.error?.code ?? r.body), ['stale_connection', 'stale_connection', 'stale_connection']);
  });

  it('an aborted pipelined request is dropped; the ones behind it still get their own responses', async () => {
    const srv = await pathEcho(20);
    const p = pool(srv.port, 1, 100, 4);
    await send(p, 'GET', '/warm'); // a connected socket to pipeline on
    const a = collect();
    const b = collect();
    const c = collect();
    p.dispatch(options('GET', '/a', ['host', 'up']), a.handler);
    p.dispatch(options('GET', '/b', ['host', 'up']), b.handler);
    p.dispatch(options('GET', '/c', ['host', 'up']), c.handler);
    await new Promise((r) => setTimeout(r, 5));
    assert.ok(b.handler.controller, 'b was written');
    b.handler.controller!.abort(new Error('client gone'));
    assert.equal((await a.done).body, '/a');
    assert.equal((await c.done).body, '/c');
    const late = await Promise.race([b.done.then(() => 'completed'), new Promise((r) => setTimeout(() => r('dropped'), 100))]);
    assert.equal(late, 'dropped');
    assert.equal(srv.accepted(), 1, 'the socket stayed in use');
  });
});

describe('h1 client memory', () => {
  it('a closed connection is released: 4,000 refused connections leave the heap as it was', async () => {
    // Before the fix every connection's parser kept it (and its socket) alive: each refused
    // connect left a few KB behind, about 12 MB here.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const port = await freePort(); // nothing listens: every connect is refused
    const p = pool(port, 8);
    const settle = async () => {
      await new Promise((r) => setImmediate(r)); // parsers close once the stack unwound
      await new Promise((r) => setTimeout(r, 50));
      gc(); gc();
      return process.memoryUsage().heapUsed;
    };
    for (let i = 0; i < 200; i++) await send(p); // warm up: JIT, error paths
    const before = await settle();
    for (let round = 0; round < 40; round++) {
      const outcomes = await Promise.all(Array.from({ length: 100 }, () => send(p)));
      for (const o of outcomes) assert.equal(o.error?.code, 'connect_failed');
    }
    const grown = (await settle()) - before;
    assert.ok(grown < 3 * 1024 * 1024, `the heap grew by ${(grown / 1024 / 1024).toFixed(1)} MB over 4,000 refused connections`);
  });
});
