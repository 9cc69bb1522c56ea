// The breaker's state machine on a real SharedArrayBuffer (the layout workers share), driven
// through two views of one slot as two workers would: thresholds, the in-flight count's
// balance over any sequence of tries (fast-check), probes, and slot independence.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Breaker } from '../../src/data/upstream/breaker.js';
import { BREAKER_STATE, SLOT, bufferBytes, slotOffset, type CompiledBreaker } from '../../src/shared/breaker-layout.js';
import { now } from '../../src/data/deadlines.js';

function config(over: Partial<CompiledBreaker> = {}): CompiledBreaker {
  return {
    maxConcurrent: 0, maxPending: 0, consecutiveFailures: 0, failureRate: 0, windowMs: 10_000, minRequests: 20,
    slowCallMs: 0, openMs: 60_000, halfOpenProbes: 3, ...over,
  };
}

function buffer(slots = 2): SharedArrayBuffer {
  const sab = new SharedArrayBuffer(bufferBytes(slots));
  new Float64Array(sab, 0, 1)[0] = Date.now();
  return sab;
}

describe('breaker state', () => {
  it('two views of one slot (two workers) count together; another slot is independent', () => {
    const sab = buffer();
    const c = config({ consecutiveFailures: 4 });
    const a = new Breaker('s', c, sab, 0);
    const b = new Breaker('s', c, sab, 0);
    const other = new Breaker('t', c, sab, 1);
    for (const view of [a, b, a]) { assert.equal(view.admit(), 0); view.finish(0, -1, false); }
    assert.equal(a.state(), BREAKER_STATE.CLOSED);
    assert.equal(b.admit(), 0);
    b.finish(0, -1, false);
    assert.equal(a.state(), BREAKER_STATE.OPEN, 'the fourth failure, on the other view, opens it');
    assert.equal(a.admit(), -1);
    assert.equal(b.admit(), -1);
    assert.equal(other.state(), BREAKER_STATE.CLOSED);
    assert.equal(other.admit(), 0);
    assert.equal(new Int32Array(sab)[slotOffset(0) + SLOT.TO_OPEN], 1, 'one transition counted');
  });

  it('a success resets the consecutive count; neutral outcomes do not count', () => {
    const b = new Breaker('s', config({ consecutiveFailures: 2 }), buffer(), 0);
    b.admit(); b.finish(0, -1, false);
    b.admit(); b.finish(0, 1, false);
    b.admit(); b.finish(0, -1, false);
    b.admit(); b.finish(0, 0, false);
    assert.equal(b.state(), BREAKER_STATE.CLOSED);
    b.admit(); b.finish(0, -1, false);
    assert.equal(b.state(), BREAKER_STATE.OPEN);
  });

  it('half-open admits half_open_probes tries; a neutral probe frees its place', async () => {
    const b = new Breaker('s', config({ consecutiveFailures: 1, openMs: 1, halfOpenProbes: 2 }), buffer(), 0);
    b.admit(); b.finish(0, -1, false);
    assert.equal(b.state(), BREAKER_STATE.OPEN);
    await new Promise((r) => setTimeout(r, 30));
    now();
    assert.equal(b.admit(), 1);
    assert.equal(b.state(), BREAKER_STATE.HALF_OPEN);
    assert.equal(b.admit(), 1);
    assert.equal(b.admit(), -1, 'every probe is taken');
    b.finish(1, 0, false);
    assert.equal(b.admit(), 1, 'the neutral probe gave its place back');
    b.finish(1, 1, false);
    assert.equal(b.state(), BREAKER_STATE.HALF_OPEN);
    b.finish(1, 1, false);
    assert.equal(b.state(), BREAKER_STATE.CLOSED);
  });

  it('max_concurrent and max_pending: any sequence of tries leaves the counts balanced and never over the limits', () => {
    fc.assert(fc.property(
      fc.array(fc.record({ op: fc.constantFrom('admit', 'connect', 'finish'), outcome: fc.constantFrom(-1, 0, 1), pick: fc.nat() }), { maxLength: 200, size: 'max' }), // size 'max': the default caps sequences near 10 ops, too few to reach the limits
      (ops) => {
        const sab = buffer();
        const c = config({ maxConcurrent: 5, maxPending: 3, consecutiveFailures: 1000 });
        const views = [new Breaker('s', c, sab, 0), new Breaker('s', c, sab, 0)];
        const i32 = new Int32Array(sab);
        const live: { probe: number; pending: boolean; view: Breaker }[] = [];
        for (const { op, outcome, pick } of ops) {
          const view = views[pick % 2];
          if (op === 'admit') {
            const r = view.admit();
            if (r >= 0) live.push({ probe: r, pending: true, view });
          } else if (live.length > 0) {
            const t = live[pick % live.length];
            if (op === 'connect' && t.pending) { t.view.connected(); t.pending = false; }
            if (op === 'finish') { t.view.finish(t.probe, outcome, t.pending); live.splice(live.indexOf(t), 1); }
          }
          const inFlight = i32[slotOffset(0) + SLOT.IN_FLIGHT];
          const pending = i32[slotOffset(0) + SLOT.PENDING];
          assert.equal(inFlight, live.length);
          assert.equal(pending, live.filter((t) => t.pending).length);
          assert.ok(inFlight <= 5 && pending <= 3);
        }
      },
    ));
  });
});
