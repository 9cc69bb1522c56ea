// Unit tests of small data-plane modules: balancers, Host parsing, status lines, error bodies.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { leastRequest, roundRobin } from '../../src/data/upstream/balancer.js';
import { hostNameOf } from '../../src/data/front-door.js';
import { statusLine, upstreamStatusLine } from '../../src/data/status-lines.js';
import { errorBody } from '../../src/data/exchange.js';
import { GW_ERR, UPSTREAM_ERR } from '../../src/shared/errors.js';
import { correlationIdFor, isValidCorrelationId, newCorrelationId } from '../../src/data/correlation-id.js';
import type { RuntimeTarget } from '../../src/data/generation.js';
import { codeOf } from '../../src/data/upstream/undici-dispatch.js';

function targets(...inFlight: number[]): RuntimeTarget[] {
  return inFlight.map((n, i) => ({ origin: `t${i}`, inFlight: n }) as unknown as RuntimeTarget);
}

describe('balancers', () => {
  it('round robin rotates through every target in order', () => {
    const pick = roundRobin();
    const ts = targets(0, 0, 0);
    assert.deepEqual(Array.from({ length: 7 }, () => pick(ts).origin), ['t0', 't1', 't2', 't0', 't1', 't2', 't0']);
  });

  it('least request picks the less busy of two distinct random targets', () => {
    // random() sequence 0.0 → a = 0, then 0.0 → b = 0 → shifted to 1 (never the same target).
    const seq = [0, 0];
    const pick = leastRequest(() => seq.shift() ?? 0);
    assert.equal(pick(targets(5, 1, 9)).origin, 't1');
    const always = leastRequest(() => 0.99);
    // a = 2, b = floor(0.99*2)=1 → t1 (3) vs t2 (0): t2 wins.
    assert.equal(always(targets(0, 3, 0)).origin, 't2');
  });

  it('least request spreads evenly when all targets are idle', () => {
    const pick = leastRequest();
    const ts = targets(0, 0, 0, 0);
    const counts = new Map<string, number>();
    for (let i = 0; i < 4000; i++) { const t = pick(ts).origin; counts.set(t, (counts.get(t) ?? 0) + 1); }
    for (const n of counts.values()) assert.ok(n > 800 && n < 1200, `uneven spread ${[...counts.values()]}`);
  });
});

describe('Host parsing', () => {
  it('lower-cases and strips the port', () => {
    assert.equal(hostNameOf('API.Example.com:8443'), 'api.example.com');
    assert.equal(hostNameOf('example.com.'), 'example.com');
    assert.equal(hostNameOf('[::1]:8080'), '[::1]');
    assert.equal(hostNameOf('10.0.0.1'), '10.0.0.1');
  });

  it('refuses what is not a host', () => {
    for (const bad of ['', 'a b', 'a,b', 'a@b', 'a/b', 'host:port', 'host:123456', '-a.com', '[zz]']) {
      assert.equal(hostNameOf(bad), null, bad);
    }
  });
});

describe('status lines and error bodies', () => {
  it('uses standard reason phrases and keeps safe upstream ones', () => {
    assert.equal(statusLine(404), '404 Not Found');
    assert.equal(upstreamStatusLine(418, 'Short And Stout'), '418 Short And Stout');
    assert.equal(upstreamStatusLine(200, 'bad\r\nphrase'), '200 OK');
    assert.equal(upstreamStatusLine(599, ''), '599 Unknown');
  });

  it('error bodies are JSON with the correlation id', () => {
    assert.deepEqual(JSON.parse(errorBody(GW_ERR.upstream_timeout, 'abc')), {
      error: { status: 504, code: 'upstream_timeout', message: GW_ERR.upstream_timeout.message, correlation_id: 'abc' },
    });
  });
});

describe('correlation ids', () => {
  it('accepts common id shapes and refuses unsafe ones', () => {
    for (const ok of ['5b0c9a3e-1f2d-4c1b-9e77-0d7a5f2c9b11', '01HZX3N4Q6W8E2R5T7Y9U1I3O5', 'a:b/c+d=', 'x'.repeat(128)]) assert.ok(isValidCorrelationId(ok), ok);
    for (const bad of ['', 'x'.repeat(129), 'a b', 'a"b', 'a,b', 'é', 'a\tb']) assert.ok(!isValidCorrelationId(bad), bad);
  });

  it('mints a UUID when the client id is missing or invalid', () => {
    assert.equal(correlationIdFor('keep-me'), 'keep-me');
    assert.match(correlationIdFor(''), /^[0-9a-f-]{36}$/);
    assert.notEqual(correlationIdFor(''), correlationIdFor(''));
  });

  it('mints RFC 9562 version-4 UUIDs, distinct and uniformly random across pool refills', () => {
    const V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    const seen = new Set<string>();
    const counts = new Uint32Array(16); // how often each hex digit shows in the 30 random positions
    const ids = 256 * 12 + 7; // crosses several refills of the 256-id pool, not at a boundary
    for (let i = 0; i < ids; i++) {
      const id = newCorrelationId();
      assert.match(id, V4);
      assert.ok(isValidCorrelationId(id));
      seen.add(id);
      for (let c = 0; c < 36; c++) if (c !== 8 && c !== 13 && c !== 14 && c !== 18 && c !== 19 && c !== 23) counts[parseInt(id[c], 16)]++;
    }
    assert.equal(seen.size, ids, 'every id distinct');
    // Each digit expected ids*30/16 ≈ 5,774 times; a digit stuck or missing (a wrong table or
    // offset) is far outside ±12 %, chance alone essentially never (about 9 standard deviations).
    const expected = (ids * 30) / 16;
    for (let d = 0; d < 16; d++) assert.ok(Math.abs(counts[d] - expected) < expected * 0.12, `digit ${d.toString(16)}: ${counts[d]}`);
    // The id is a value, not a view of the reused buffer: an earlier one is unchanged by later mints.
    const first = newCorrelationId();
    const copy = first.split('').join('');
    for (let i = 0; i < 10; i++) newCorrelationId();
    assert.equal(first, copy);
  });
});

describe('upstream error classification', () => {
  it('maps undici and socket error codes to upstream codes and the gateway errors of docs/errors.md', () => {
    const cases: [string, boolean, string, string][] = [
      ['ECONNREFUSED', false, 'connect_failed', 'upstream_unavailable'],
      ['ECONNRESET', true, 'reset', 'upstream_reset'],
      ['UND_ERR_SOCKET', true, 'reset', 'upstream_reset'],
      ['UND_ERR_CONNECT_TIMEOUT', false, 'connect_timeout', 'upstream_connect_timeout'],
      ['HPE_UNEXPECTED_CONTENT_LENGTH', true, 'bad_response', 'upstream_bad_response'],
      ['HPE_INVALID_CHUNK_SIZE', true, 'bad_response', 'upstream_bad_response'],
      ['UND_ERR_INVALID_ARG', true, 'invalid_request', 'invalid_header'],
      ['UND_ERR_CLOSED', false, 'pool_closed', 'upstream_unavailable'],
    ];
    for (const [code, connected, upstreamCode, answer] of cases) {
      const mapped = codeOf(Object.assign(new Error(code), { code }), connected);
      assert.equal(mapped, upstreamCode, code);
      assert.equal(UPSTREAM_ERR[mapped].code, answer, code);
    }
  });

  it('every upstream code answers a code of the gateway table', () => {
    const codes = new Set(Object.values(GW_ERR).map((s) => s.code));
    for (const [name, spec] of Object.entries(UPSTREAM_ERR)) assert.ok(codes.has(spec.code), name);
    assert.equal(UPSTREAM_ERR.queue_full, GW_ERR.upstream_overloaded);
  });
});
