// The one upstream dispatch shape (src/data/upstream/dispatch.ts): interceptors compose in
// order, once, and one interceptor sees the requests of both clients (the purpose-built one
// for a buffered request, undici for a streamed body) with the same handler API, against a
// real upstream server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { Pool } from 'undici';
import { H1Pool } from '../../src/data/upstream/h1-client.js';
import { undiciDispatch } from '../../src/data/upstream/undici-dispatch.js';
import { compose, toTarget, type DispatchFn, type DispatchHandler, type DispatchOptions, type Interceptor, type UpstreamTarget } from '../../src/data/upstream/dispatch.js';
import { encodeRequestHead } from '../../src/data/upstream/request-head.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';
import { freePort } from '../helpers/ports.js';

let up: Upstream;
let fast: H1Pool;
let pool: Pool;
let target: UpstreamTarget;
/** Which client each request went to. */
const carried: string[] = [];

before(async () => {
  up = await startUpstream('up');
  fast = new H1Pool(up.origin, { connections: 2, connectTimeoutMs: 1000, keepAliveTimeoutMs: 4000, maxQueue: 100 });
  pool = new Pool(up.origin, { connections: 2 });
  const general = undiciDispatch(pool);
  target = {
    fast: (options, handler) => { carried.push('fast'); fast.dispatch(options, handler); },
    general: (options, handler) => { carried.push('undici'); general(options, handler); },
  };
});

after(async () => {
  await fast?.close();
  await pool?.close();
  await up?.close();
});

interface Result { status: number; body: string; error: string | null; events: string[] }

function run(dispatch: DispatchFn, options: DispatchOptions): Promise<Result> {
  return new Promise((resolve) => {
    const out: Result = { status: 0, body: '', error: null, events: [] };
    const handler: DispatchHandler = {
      onRequestStart() { out.events.push('start'); },
      onResponseStart(_c, status) { out.events.push('head'); out.status = status; },
      onResponseData(_c, chunk) { out.body += chunk.toString(); },
      onResponseEnd() { out.events.push('end'); resolve(out); },
      onResponseError(_c, err) { out.events.push('error'); out.error = err.code; resolve(out); },
    };
    dispatch(options, handler);
  });
}

function buffered(path: string): DispatchOptions {
  const headers = ['host', 'up'];
  return { target, method: 'GET', path, headers, body: null, head: encodeRequestHead('GET', path, headers), idempotent: true };
}

function streamed(path: string): DispatchOptions {
  return { target, method: 'POST', path, headers: ['host', 'up'], body: Readable.from([Buffer.from('abc'), Buffer.from('def')]), head: null, idempotent: false };
}

/** An interceptor that records what passes through it, in both directions. */
function recorder(name: string, log: string[]): Interceptor {
  return (next) => (options, handler) => {
    log.push(`${name}>${options.method} ${options.path}`);
    next(options, {
      ...handler,
      onResponseEnd(controller, trailers) { log.push(`${name}<end ${options.path}`); handler.onResponseEnd?.(controller, trailers); },
      onResponseError(controller, err) { log.push(`${name}<error ${err.code}`); handler.onResponseError?.(controller, err); },
    });
  };
}

describe('dispatch', () => {
  it('composes interceptors outermost first, and one sees both clients with the same handler API', async () => {
    const log: string[] = [];
    const dispatch = compose(toTarget, [recorder('outer', log), recorder('inner', log)]);
    const a = await run(dispatch, buffered('/fast'));
    assert.deepEqual(a.events, ['start', 'head', 'end']);
    assert.equal(a.status, 200);
    assert.equal(JSON.parse(a.body).url, '/fast');
    const b = await run(dispatch, streamed('/streamed'));
    assert.deepEqual(b.events, ['start', 'head', 'end']);
    assert.equal(JSON.parse(b.body).bodyBytes, 6);
    assert.deepEqual(carried, ['fast', 'undici'], 'the buffered GET took the fast client, the stream undici');
    assert.deepEqual(log, [
      'outer>GET /fast', 'inner>GET /fast', 'inner<end /fast', 'outer<end /fast',
      'outer>POST /streamed', 'inner>POST /streamed', 'inner<end /streamed', 'outer<end /streamed',
    ]);
  });

  it('reports failures of both clients with the same codes', async () => {
    const closed = await freePort();
    const h1 = new H1Pool(`http://127.0.0.1:${closed}`, { connections: 1, connectTimeoutMs: 1000, keepAliveTimeoutMs: 1000, maxQueue: 1 });
    const undici = new Pool(`http://127.0.0.1:${closed}`);
    try {
      const nowhere: UpstreamTarget = { fast: h1.dispatch, general: undiciDispatch(undici) };
      const a = await run(toTarget, { ...buffered('/x'), target: nowhere });
      const b = await run(toTarget, { ...streamed('/y'), target: nowhere });
      assert.equal(a.error, 'connect_failed');
      assert.equal(b.error, 'connect_failed');
    } finally {
      await h1.close();
      await undici.close();
    }
  });
});
