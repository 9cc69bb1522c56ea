// The control plane's breaker store over compiled configs: a route's own breaker gets a slot
// keyed by the route's name, kept across attaches (reloads), reset when the route goes to
// another service or comes back after it was removed; what /status and the metrics read.
// Driven through a real Breaker view on the store's buffer, as a worker would.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../src/control/config-load.js';
import { BreakerStore } from '../../src/control/breaker-store.js';
import { Breaker } from '../../src/data/upstream/breaker.js';
import type { CompiledBreaker } from '../../src/shared/breaker-layout.js';
import type { CompiledConfig } from '../../src/shared/compiled-config.js';

function compiled(payService: string, withPay = true): CompiledConfig {
  return loadConfigText(`server: { port: 8080 }
services:
  a: { targets: ["http://127.0.0.1:9001"], circuit_breaker: { consecutive_failures: 3 } }
  b: { targets: ["http://127.0.0.1:9002"] }
routes:
  - { name: list, match: { prefix: /list }, service: a }
${withPay ? `  - { name: pay, match: { prefix: /pay }, service: ${payService}, circuit_breaker: { consecutive_failures: 1 } }` : ''}
`, '/etc/lobby/gateway.yaml', {});
}

/** Opens the route's breaker as a worker would: one failed try through a view on its slot. */
function openPay(config: CompiledConfig): void {
  const route = config.routes.find((r) => r.name === 'pay')!;
  const view = new Breaker('x', route.circuitBreaker as CompiledBreaker, config.breakerState!.buffer, route.breakerSlot!, 'pay');
  assert.equal(view.admit(), 0);
  view.finish(0, -1, false);
}

const payState = (store: BreakerStore) => store.status().find((b) => b.route === 'pay')?.state;

describe('breaker store: route breakers', () => {
  it('slots keyed by route name: kept across attaches, reset when the route moves to another service or returns', () => {
    const store = new BreakerStore();
    const first = store.attach(compiled('a'));
    assert.equal(first.routes[0].breakerSlot, undefined, 'a route without its own breaker gets no slot');
    assert.notEqual(first.routes[1].breakerSlot, first.services[0].breakerShared!.slot);
    openPay(first);
    assert.equal(payState(store), 'open');
    assert.equal(store.statusOf('a')!.state, 'closed', "the service's own slot is another");

    const again = store.attach(compiled('a'));
    assert.equal(again.routes[1].breakerSlot, first.routes[1].breakerSlot);
    assert.equal(payState(store), 'open', 'a reload keeps the state');

    store.attach(compiled('b'));
    assert.equal(payState(store), 'closed', 'moved to another service: its state measured another upstream');
    assert.deepEqual(store.routesOf('b').map((b) => b.route), ['pay']);
    assert.deepEqual(store.routesOf('a'), []);

    openPay(store.attach(compiled('b')));
    assert.equal(payState(store), 'open');
    store.attach(compiled('b', false));
    assert.equal(payState(store), undefined, 'gone from the config: not shown');
    store.attach(compiled('b'));
    assert.equal(payState(store), 'closed', 'back after it was removed: starts closed');
  });

  it('labels: {service} for a service breaker, {service, route} for a route breaker', () => {
    const store = new BreakerStore();
    store.attach(compiled('b'));
    assert.deepEqual(store.stateValues().map((v) => v.labels), [{ service: 'a' }, { service: 'b', route: 'pay' }]);
    assert.deepEqual(store.status().map((b) => [b.service, b.route]), [['a', null], ['b', 'pay']]);
  });
});
