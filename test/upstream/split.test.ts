// The choice of a split's member (src/data/upstream/split.ts), on its own: zero weights never
// chosen, sticky values from each source, and the property weight changes rely on (raising the
// last member's weight only moves clients onto it).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chooseMember, stickyFraction, stickyValue } from '../../src/data/upstream/split.js';
import { RequestContext, type RuntimeRoute, type RuntimeSplit } from '../../src/data/request-context.js';
import type { CompiledSticky } from '../../src/shared/compiled-config.js';

/** A split over members named by index; `chooseMember` returns one of them. */
function split(weights: number[], sticky: CompiledSticky | null = null): RuntimeSplit {
  let sum = 0;
  const cumulative = Float64Array.from(weights, (w) => (sum += w));
  let last = 0;
  weights.forEach((w, k) => { if (w > 0) last = k; });
  const members = weights.map((_, k) => ({ splitMember: k }) as unknown as RuntimeRoute);
  return { members, cumulative, total: sum, last, sticky };
}

function ctx(headers: string[] = [], subject = ''): RequestContext {
  const c = new RequestContext(null as never, null as never, 0);
  c.headers.push(...headers);
  c.subject = subject;
  return c;
}

const memberOf = (s: RuntimeSplit, c: RequestContext) => chooseMember(c, s).splitMember;

describe('split member choice', () => {
  it('never chooses a member of weight 0, at random or sticky', () => {
    const s = split([0, 5, 0, 0]);
    for (let i = 0; i < 2000; i++) assert.equal(memberOf(s, ctx()), 1);
    const sticky = split([3, 0], { kind: 'header', header: 'x-user' });
    for (let i = 0; i < 2000; i++) assert.equal(memberOf(sticky, ctx(['x-user', `u${i}`])), 0);
  });

  it('reads the sticky value from a header, a cookie, the subject or a claim header; none when absent or empty', () => {
    const headers = ['x-user', 'alice', 'cookie', 'a=1; bucket="b7"; c=2', 'x-tenant', 't-1'];
    assert.equal(stickyValue(ctx(headers), { kind: 'header', header: 'x-user' }), 'alice');
    assert.equal(stickyValue(ctx(headers), { kind: 'cookie', cookie: 'bucket' }), 'b7');
    assert.equal(stickyValue(ctx(headers, 'sub-9'), { kind: 'claim', claim: 'sub', header: '' }), 'sub-9');
    assert.equal(stickyValue(ctx(headers), { kind: 'claim', claim: 'tenant', header: 'x-tenant' }), 't-1');
    assert.equal(stickyValue(ctx(['x-user', '']), { kind: 'header', header: 'x-user' }), null);
    assert.equal(stickyValue(ctx(), { kind: 'cookie', cookie: 'bucket' }), null);
    assert.equal(stickyValue(ctx(), { kind: 'claim', claim: 'sub', header: '' }), null);
  });

  it('spreads near values evenly, and raising the last member\'s weight only moves clients onto it', () => {
    const n = 20_000;
    const before = split([90, 10], { kind: 'header', header: 'x-user' });
    const after = split([75, 25], { kind: 'header', header: 'x-user' });
    const scaled = split([3, 1], { kind: 'header', header: 'x-user' }); // 75/25 in other units
    let onCanary = 0;
    for (let i = 0; i < n; i++) {
      const c = ctx(['x-user', `user-${i}`]);
      const a = memberOf(before, c);
      const b = memberOf(after, c);
      if (a === 1) assert.equal(b, 1, `user-${i} left the canary when its weight grew`);
      assert.equal(memberOf(scaled, c), b, 'the weights are relative');
      onCanary += b;
    }
    assert.ok(Math.abs(onCanary / n - 0.25) < 0.01, `${onCanary} of ${n} on a 25% member`);
    for (const v of ['', 'a', 'user-1', 'x'.repeat(1000)]) {
      const f = stickyFraction(v);
      assert.ok(f >= 0 && f < 1, `${v}: ${f}`);
    }
  });
});
