// Large bodies stream through with backpressure both ways and bounded gateway memory.
// The gateway's RSS is read from /proc while a body much larger than any buffer passes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startUpstream, type Upstream } from '../helpers/upstream.js';

const BIG = 1024 * 1024 * 1024; // 1 GiB: far above every buffer; memory must stay far below it
const BLOCK = Buffer.alloc(1024 * 1024, 'lobby-stream-');

let up: Upstream;
let gw: Gateway;

function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

before(async () => {
  up = await startUpstream('stream', (req, res, rec) => {
    if (rec.url.startsWith('/download')) {
      // Write as fast as the socket accepts, honouring backpressure.
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG) });
      let sent = 0;
      const pump = () => {
        while (sent < BIG) {
          sent += BLOCK.length;
          if (!res.write(BLOCK)) { res.once('drain', pump); return; }
        }
        res.end();
      };
      pump();
      return;
    }
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (c: Buffer) => { bytes += c.length; hash.update(c); });
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ bodyBytes: bytes, sha: hash.digest('hex') }));
    });
  }, { consumeBody: false });
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1, limits: { max_body_bytes: ${BIG * 2} } }
services: { s: { targets: ["${up.origin}"], timeouts: { response_ms: 60000, idle_ms: 60000 } } }
routes: [ { name: all, match: { prefix: / }, service: s } ]
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
});

describe('streaming', () => {
  it(`downloads ${BIG / 1048576} MiB with bounded memory`, async () => {
    const baseline = rssMiB(gw.proc.pid!);
    const res = await request(`${gw.url}/download`);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-length'], String(BIG));
    let received = 0;
    let peak = baseline;
    let n = 0;
    for await (const chunk of res.body) {
      received += (chunk as Buffer).length;
      // A slow-ish reader part of the time, so backpressure really engages.
      if (++n % 64 === 0) {
        peak = Math.max(peak, rssMiB(gw.proc.pid!));
        if (n % 1024 === 0) await new Promise((r) => setTimeout(r, 5));
      }
    }
    assert.equal(received, BIG);
    assert.ok(peak - baseline < 128, `gateway RSS grew ${Math.round(peak - baseline)} MiB while streaming ${BIG / 1048576} MiB`);
  });

  // uWS 20.30 refuses a Content-Length of 10^9 or more (it closes the connection), so the
  // sized upload is the largest it accepts; larger uploads go chunked (docs/operations.md).
  it(`uploads ${BIG / 1048576} MiB chunked, and 999,999,999 bytes with Content-Length, with bounded memory`, async () => {
    for (const withLength of [false, true]) {
      const total = withLength ? 999_999_999 : BIG;
      const baseline = rssMiB(gw.proc.pid!);
      let peak = baseline;
      const expected = createHash('sha256');
      async function* body() {
        let n = 0;
        for (let sent = 0; sent < total; sent += BLOCK.length) {
          const block = total - sent >= BLOCK.length ? BLOCK : BLOCK.subarray(0, total - sent);
          expected.update(block);
          if (++n % 32 === 0) peak = Math.max(peak, rssMiB(gw.proc.pid!));
          yield block;
        }
      }
      const res = await request(`${gw.url}/upload`, {
        method: 'POST',
        body: Readable.from(body()),
        headers: withLength ? { 'content-length': String(total) } : {},
      });
      const json = await res.body.json() as { bodyBytes: number; sha: string };
      assert.equal(res.statusCode, 200);
      assert.equal(json.bodyBytes, total);
      assert.equal(json.sha, expected.digest('hex'));
      assert.ok(peak - baseline < 128, `gateway RSS grew ${Math.round(peak - baseline)} MiB while uploading (content-length: ${withLength})`);
    }
  });
});
