// Per-route data in a SharedArrayBuffer: every route round-trips with structured-clone
// types, from any thread, without copying the whole buffer.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { encodeRouteData, RouteData } from '../../src/shared/route-data.js';
import type { CompiledRoute } from '../../src/shared/compiled-config.js';

function route(i: number): CompiledRoute {
  return {
    name: `r${i}`, service: i % 3,
    match: { kind: 'template', path: `/a/${i}/{id}`, host: i % 2 ? 'x.test' : null, methodMask: 3 },
    paramNames: ['id'], stripPrefix: null, rewrite: [{ literal: '/b/' }, { param: 0 }], preserveHost: false, escapedSlashes: 'reject',
    filters: [{ name: 'f', config: { limit: Infinity, when: new Date(0), bytes: new Uint8Array([1, 2]), none: undefined } }],
  };
}

describe('route data', () => {
  it('decodes every route exactly as encoded, structured-clone types included', () => {
    const routes = Array.from({ length: 500 }, (_, i) => route(i));
    const data = new RouteData(encodeRouteData(routes));
    assert.equal(data.count, 500);
    for (const i of [0, 1, 250, 499]) assert.deepEqual(data.route(i), routes[i]);
  });

  it('an empty route list encodes and decodes', () => {
    assert.equal(new RouteData(encodeRouteData([])).count, 0);
  });

  it('another thread decodes from the same shared memory', async () => {
    const sab = encodeRouteData([route(7), route(8)]);
    const url = new URL('../../src/shared/route-data.js', import.meta.url).href;
    const worker = new Worker(`import('${url}').then(({ RouteData }) => {
      const { parentPort, workerData } = require('node:worker_threads');
      parentPort.postMessage(new RouteData(workerData).route(1).name);
    });`, { eval: true, workerData: sab });
    const name = await new Promise((resolve, reject) => { worker.once('message', resolve); worker.once('error', reject); });
    await worker.terminate();
    assert.equal(name, 'r8');
  });
});
