// The access log's line bytes (writer.ts LineSink, filter.ts): every piece is written straight
// into the batch, so these check the class of inputs rather than examples: any UTF-16 string
// (lone surrogates, controls, quotes, astral characters) comes out as exactly JSON.stringify's
// bytes, any integer and duration as a JSON number, and a whole line for a context with
// arbitrary client text parses back to the same values. Lines longer than a batch go out alone.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LineSink } from '../../src/filters/access-log/writer.js';
import { buildAccessLog } from '../../src/filters/access-log/filter.js';
import { destinationFor } from '../../src/filters/access-log/writer.js';
import { ACCESS_LOG_FIELDS } from '../../src/filters/access-log/fields.js';
import { RequestContext } from '../../src/data/request-context.js';

/** A sink whose destination keeps what it is handed. */
function capturingSink(batchBytes = 4096): { sink: LineSink; out: () => string; writes: Buffer[] } {
  const writes: Buffer[] = [];
  const dest = { write: (b: Buffer) => { writes.push(Buffer.from(b)); return true; } };
  const sink = new LineSink(dest as never, batchBytes);
  return { sink, writes, out: () => { sink.flush(); return Buffer.concat(writes).toString('utf8'); } };
}

describe('access-log line bytes', () => {
  it('writes any string as exactly the bytes JSON.stringify gives (lone surrogates and controls included)', () => {
    fc.assert(fc.property(fc.oneof(fc.string16bits(), fc.fullUnicodeString(), fc.string()), (s) => {
      const { sink, writes } = capturingSink(8 * s.length + 16);
      sink.begin(6 * s.length + 1);
      sink.text(s);
      sink.flush();
      const expected = Buffer.from(JSON.stringify(s).slice(1, -1), 'utf8');
      assert.deepEqual(Buffer.concat(writes), expected);
    }), { numRuns: 2000 });
  });

  it('writes integers and durations as the JSON numbers they are', () => {
    fc.assert(fc.property(fc.maxSafeNat(), fc.double({ min: 0, max: 2e6, noNaN: true }), (n, ms) => {
      const { sink, out } = capturingSink();
      sink.begin(64);
      sink.uint(n);
      sink.raw(Buffer.from(' '));
      sink.millis(ms);
      const [int, dur] = out().split(' ');
      assert.equal(int, String(n));
      assert.equal(Number(dur), Math.round(ms * 1000) / 1000);
      assert.match(dur, /^\d+\.\d{3}$/);
    }));
    // Values no request should have still make valid JSON, never a bare word.
    const { sink, out } = capturingSink();
    sink.begin(128);
    sink.uint(-1); sink.raw(Buffer.from(' ')); sink.millis(NaN); sink.raw(Buffer.from(' ')); sink.millis(-2.5);
    assert.deepEqual(out().split(' ').map((v) => JSON.parse(v)), [-1, null, -2.5]);
  });

  it('flushes a batch before a line that might not fit, and sends a line larger than a batch alone', () => {
    const { sink, writes } = capturingSink(64);
    sink.begin(40); sink.text('a'.repeat(30)); sink.end();
    sink.begin(40); sink.text('b'.repeat(30)); sink.end();
    assert.equal(writes.length, 1, 'the first batch went out before the second line');
    sink.begin(600); sink.text('c'.repeat(100)); sink.end();
    assert.equal(writes.length, 3, 'the pending batch, then the long line alone');
    assert.equal(writes[2].toString(), 'c'.repeat(100) + '\n');
    sink.begin(10); sink.text('d'); sink.end();
    sink.flush();
    assert.equal(writes[3].toString(), 'd\n', 'a normal batch again after the long line');
  });

  it('takes back a line that outgrew its estimate instead of writing it cut', () => {
    const { sink, writes } = capturingSink(64);
    sink.begin(20); sink.text('kept'); sink.end();
    sink.begin(10); sink.text('x'.repeat(100));
    assert.throws(() => sink.end(), /longer than its size estimate/);
    sink.begin(10); sink.text('next'); sink.end();
    sink.flush();
    assert.equal(Buffer.concat(writes).toString(), 'kept\nnext\n');
  });
});

describe('access-log lines from the filter', () => {
  it('gives a line that parses back to the context, whatever text the client sent', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lobby-line-'));
    try {
      const file = join(dir, 'a.log');
      const filter = buildAccessLog({ path: file, sample: 1, onlyErrors: false, fields: [...ACCESS_LOG_FIELDS] }, { workerIndex: 3 } as never);
      const cases: { path: string; subject: string; method: string; waf: number[] }[] = [];
      // Every string field the line carries, long ones included: the line's size estimate
      // (filter.ts fixedMax + onEnd) must bound them all, or bytes past the batch are lost.
      fc.assert(fc.property(
        // size 'max': fast-check's default size caps generated lengths near 10, far below these.
        fc.string16bits({ maxLength: 3000, size: 'max' }), fc.fullUnicodeString({ maxLength: 40, size: 'max' }), fc.constantFrom('GET', 'PUT', 'M"\\'),
        fc.array(fc.integer({ min: 900000, max: 999999 }), { maxLength: 400, size: 'max' }), fc.integer({ min: 0, max: (1 << 17) - 1 }),
        (path, subject, method, waf, flags) => {
          const ctx = new RequestContext({} as never, {} as never, performance.now() - 1.25);
          Object.assign(ctx, {
            path, subject, method, status: 200, bytesIn: 12, bytesOut: 345, correlationId: 'abc-123', clientIp: '127.0.0.1',
            traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', retries: 2, apiVersion: 'v2', responseFlags: flags,
            wafRules: waf.join(','), wafBlocked: waf.length > 0, replySpec: { status: 403, code: 'waf_blocked', message: '' },
            route: { name: 'route-' + 'r'.repeat(60), service: { name: 'service-' + 's'.repeat(60) } }, target: { origin: 'http://10.0.0.7:8080' },
          });
          filter.onEnd!(ctx);
          cases.push({ path, subject, method, waf });
        },
      ), { numRuns: 300 });
      const sink = destinationFor(file);
      sink.flush();
      // The writes are asynchronous: wait for every line (generously), then check them.
      let text = '';
      for (const until = Date.now() + 20_000; Date.now() < until; await new Promise((r) => setTimeout(r, 20))) {
        text = await readFile(file, 'utf8').catch(() => '');
        if (text.split('\n').length > cases.length) break;
      }
      const lines = text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.equal(lines.length, cases.length);
      for (let i = 0; i < cases.length; i++) {
        const line = lines[i];
        const c = cases[i];
        assert.equal(line.path, c.path === '' ? undefined : JSON.parse(JSON.stringify(c.path)));
        assert.equal(line.subject, c.subject === '' ? undefined : c.subject);
        assert.equal(line.method, c.method);
        assert.equal(line.level, 30);
        assert.equal(line.worker, 3);
        assert.equal(line.status, 200);
        assert.equal(line.bytes_out, 345);
        assert.equal(line.correlation_id, 'abc-123');
        assert.equal(typeof line.time, 'number');
        assert.ok(Math.abs((line.time as number) - Date.now()) < 600_000);
        assert.ok((line.duration_ms as number) >= 1.25);
        assert.equal(typeof line.flags, 'string');
        assert.equal(line.retries, 2);
        assert.equal(line.api_version, 'v2');
        assert.equal(line.error_code, 'waf_blocked');
        if (c.waf.length > 0) assert.deepEqual(line.waf, { rules: c.waf, decision: 'blocked' });
        else assert.equal(line.waf, undefined);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('counts the WAF rule ids in the line size: a long list is written whole, not cut at the batch end', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lobby-waf-line-'));
    try {
      const file = join(dir, 'w.log');
      const filter = buildAccessLog({ path: file, sample: 1, onlyErrors: false, fields: ['status', 'waf'] }, { workerIndex: 0 } as never);
      const ids = Array.from({ length: 8000 }, (_, i) => 100000 + i).join(','); // ~56 KB, more than a file batch
      const ctx = new RequestContext({} as never, {} as never, performance.now());
      Object.assign(ctx, { status: 200, wafRules: ids });
      filter.onEnd!(ctx);
      destinationFor(file).flush();
      let text = '';
      for (const until = Date.now() + 20_000; Date.now() < until; await new Promise((r) => setTimeout(r, 20))) {
        text = await readFile(file, 'utf8').catch(() => '');
        if (text.endsWith('\n')) break;
      }
      const line = JSON.parse(text.trim()) as { waf: { rules: number[]; decision: string } };
      assert.equal(line.waf.rules.join(','), ids);
      assert.equal(line.waf.decision, 'scored');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('sample 0.5 logs about half the requests, and only_errors skips a plain 2xx', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lobby-sample-'));
    try {
      const file = join(dir, 's.log');
      const errorsFile = join(dir, 'e.log');
      const half = buildAccessLog({ path: file, sample: 0.5, onlyErrors: false, fields: ['status'] }, { workerIndex: 0 } as never);
      // A file of its own: the skipped 2xx would be its first line, the 503 its last.
      const errors = buildAccessLog({ path: errorsFile, sample: 1, onlyErrors: true, fields: ['status'] }, { workerIndex: 0 } as never);
      const ctx = new RequestContext({} as never, {} as never, performance.now());
      ctx.status = 200;
      for (let i = 0; i < 2000; i++) half.onEnd!(ctx);
      errors.onEnd!(ctx); // a 2xx without flags: not an error
      ctx.status = 503;
      errors.onEnd!(ctx);
      // The sampled file's last line, logged whatever the sample draws.
      ctx.status = 200;
      const marker = buildAccessLog({ path: file, sample: 1, onlyErrors: false, fields: ['status', 'correlation_id'] }, { workerIndex: 0 } as never);
      ctx.correlationId = 'last';
      marker.onEnd!(ctx);
      destinationFor(file).flush();
      destinationFor(errorsFile).flush();
      // The writes are asynchronous and in order: each file is complete once its last line is there.
      const read = async (f: string, last: string) => {
        let text = '';
        for (const until = Date.now() + 20_000; Date.now() < until; await new Promise((r) => setTimeout(r, 20))) {
          text = await readFile(f, 'utf8').catch(() => '');
          if (text.includes(last)) break;
        }
        return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { status: number; correlation_id?: string });
      };
      const sampled = (await read(file, '"correlation_id":"last"')).filter((l) => l.correlation_id === undefined);
      const n = sampled.filter((l) => l.status === 200).length;
      // Binomial(2000, 0.5): outside 800..1200 has a probability below 1e-18.
      assert.ok(n > 800 && n < 1200, `${n} of 2000 lines at sample 0.5`);
      assert.deepEqual((await read(errorsFile, '"status":503')).map((l) => l.status), [503], 'only the 503: the plain 2xx was skipped');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
