// Issue 9, critical: a client must never be able to make the gateway send an upstream
// anything but its one request. uWS hands over the URL, query and header values decoded
// from UTF-8; written with a lossy encoding, U+010D U+010A became CR LF and one request
// became two at the upstream, past every filter. Each vector below goes through both
// upstream clients (the purpose-built one: GET and buffered POST; undici: chunked POST)
// to a raw-socket upstream that parses every byte it gets and must see exactly one
// well-formed request per client request. The property test then throws random Unicode at
// the path, the query and every header a client controls.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { startRecordingUpstream, type RecordedRequest, type RecordingUpstream } from '../helpers/recording-upstream.js';
import { rawExchange, type RawResponse } from '../helpers/raw-http.js';

let up: RecordingUpstream;
let gw: Gateway;

before(async () => {
  up = await startRecordingUpstream();
  gw = await startGateway(`
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
services: { up: { targets: ["${up.origin}"], connections: 1 } }
routes:
  - { name: users, match: { prefix: /v1/users }, service: up, strip_prefix: /v1 }
`);
});

after(async () => {
  await gw?.stop();
  await up?.close();
});

const U = (cp: number) => String.fromCodePoint(cp);
/** CR LF and SP once uWS's UTF-8 decoding met a 'latin1' write: U+010D U+010A U+0120. */
const CRLF = U(0x10d) + U(0x10a);
const SP = U(0x120);
const SMUGGLED = `GET${SP}/admin/secret${SP}HTTP/1.1${CRLF}Host:${SP}x${CRLF}${CRLF}`;
/** A query that once ended the request line and started a second request. */
const QUERY_SPLIT = `a=b${SP}HTTP/1.1${CRLF}Host:${SP}x${CRLF}${CRLF}${SMUGGLED}`;
/** A header value that once ended its header and started a second request. It ends in
 * ASCII: the bundled uWS drops non-ASCII bytes at the end of a value (docs/operations.md). */
const HEADER_SPLIT = `1.2.3.4${CRLF}X-Injected:${SP}yes${CRLF}${CRLF}${SMUGGLED}end`;

type Client = 'fast GET' | 'fast POST' | 'undici chunked POST';
const CLIENTS: Client[] = ['fast GET', 'fast POST', 'undici chunked POST'];

/** The client's request as UTF-8 bytes (WTF-8 for lone surrogates, as a hostile client may send). */
function requestBytes(client: Client, target: string, headers: [string, string][]): Buffer {
  const method = client === 'fast GET' ? 'GET' : 'POST';
  let head = `${method} ${target} HTTP/1.1\r\nHost: gw\r\n`;
  for (const [name, value] of headers) head += `${name}: ${value}\r\n`;
  let body = '';
  if (client === 'fast POST') head += 'Content-Length: 5\r\n', body = 'hello';
  if (client === 'undici chunked POST') head += 'Transfer-Encoding: chunked\r\n', body = '5\r\nhello\r\n0\r\n\r\n';
  return Buffer.concat([wtf8(head + '\r\n'), Buffer.from(body)]);
}

/** UTF-8 that keeps lone surrogates as their 3-byte forms (Buffer.from would make them U+FFFD). */
function wtf8(s: string): Buffer {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      c = 0x10000 + ((c - 0xd800) << 10) + (s.charCodeAt(++i) - 0xdc00);
    }
    if (c < 0x80) out.push(c);
    else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
    else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
  }
  return Buffer.from(out);
}

/**
 * Sends one client request and checks the upstream side: at most one request arrived for
 * it (exactly one when the gateway answered 200, none when it refused), well-formed, with
 * no bytes left over, and no parse error ever. Then a plain request of the same client
 * follows on the same upstream socket (one connection per client): it must arrive as the
 * very next request, so bytes of a split still in flight would show up before it.
 */
async function exchange(client: Client, bytes: Buffer): Promise<{ res: RawResponse; forwarded: RecordedRequest | null }> {
  const before = up.requests.length;
  const res = await rawExchange(gw.port, bytes, 5000);
  const arrived = up.requests.length - before;
  const forwarded = arrived === 1 ? lastRequest() : null;
  if (res.status === 200) {
    assert.equal(arrived, 1, `exactly one request upstream for one client request (${res.raw.slice(0, 200)})`);
    assert.equal(JSON.parse(res.body).n, up.requests.length, 'the client got the answer to its own request');
  } else {
    assert.ok(res.status >= 400 && res.status < 500, `refused with a 4xx, not ${res.status}: ${res.raw.slice(0, 300)}`);
    assert.equal(arrived, 0, 'a refused request sends nothing upstream');
    assert.match(res.body, /"correlation_id":"[^"]+"/);
  }
  const next = await rawExchange(gw.port, requestBytes(client, '/v1/users/next', []), 5000);
  assert.equal(next.status, 200, next.raw.slice(0, 300));
  assert.equal(JSON.parse(next.body).n, before + arrived + 1, 'the follow-up is the very next request upstream');
  assert.equal(lastRequest().url, '/users/next');
  assert.deepEqual(up.errors, [], 'the upstream parsed every byte it got as valid HTTP/1.1');
  assert.equal(up.openMessages(), 0, 'no bytes after the requests (no other request begun)');
  return { res, forwarded };
}

function lastRequest() {
  return up.requests[up.requests.length - 1];
}

function headerValues(headers: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i].toLowerCase() === name) out.push(headers[i + 1]);
  return out;
}

describe('request splitting: the vectors of issue 9', () => {
  for (const client of CLIENTS) {
    it(`${client}: a query carrying U+010D U+010A is forwarded percent-encoded, one request`, async () => {
      const { res, forwarded } = await exchange(client, requestBytes(client, `/v1/users/1?${QUERY_SPLIT}`, []));
      assert.equal(res.status, 200, res.raw);
      assert.ok(forwarded);
      assert.match(forwarded.url, /^\/users\/1\?a=b%C4%A0HTTP\/1\.1%C4%8D%C4%8AHost:%C4%A0x/);
      assert.match(forwarded.url, /^[\x21-\x7e]+$/, 'the request-target is visible ASCII only');
      if (client !== 'fast GET') assert.equal(forwarded.body.toString(), 'hello');
    });

    it(`${client}: X-Forwarded-For carrying U+010D U+010A stays one header of one request`, async () => {
      const { res, forwarded } = await exchange(client, requestBytes(client, '/v1/users/2', [['X-Forwarded-For', HEADER_SPLIT]]));
      assert.equal(res.status, 200, res.raw);
      assert.ok(forwarded);
      assert.deepEqual(headerValues(forwarded.headers, 'x-injected'), []);
      const xff = headerValues(forwarded.headers, 'x-forwarded-for');
      assert.equal(xff.length, 1);
      // The client's bytes, as it sent them (UTF-8 of U+010D U+010A), then the peer.
      assert.equal(Buffer.from(xff[0], 'latin1').toString('utf8'), `${HEADER_SPLIT}, 127.0.0.1`);
    });

    it(`${client}: any other header carrying U+010D U+010A stays one header of one request`, async () => {
      const { res, forwarded } = await exchange(client, requestBytes(client, '/v1/users/3', [['X-Note', HEADER_SPLIT], ['Accept', `*/*${CRLF}X-Injected: yes`]]));
      assert.equal(res.status, 200, res.raw);
      assert.ok(forwarded);
      assert.deepEqual(headerValues(forwarded.headers, 'x-injected'), []);
      assert.equal(Buffer.from(headerValues(forwarded.headers, 'x-note')[0], 'latin1').toString('utf8'), HEADER_SPLIT);
    });

    it(`${client}: a path carrying U+010D U+010A is forwarded percent-encoded, never split`, async () => {
      const { res, forwarded } = await exchange(client, requestBytes(client, `/v1/users/${SP}HTTP/1.1${CRLF}${CRLF}${SMUGGLED}`, []));
      assert.equal(res.status, 200, res.raw.slice(0, 300));
      assert.match(forwarded!.url, /^\/users\/%C4%A0HTTP\/1\.1%C4%8D%C4%8A%C4%8D%C4%8AGET%C4%A0\/admin\/secret%C4%A0/);
      assert.match(forwarded!.url, /^[\x21-\x7e]+$/);
    });
  }

  it('a smuggled POST cannot capture the next client\'s request as its body', async () => {
    const smuggledPost = `a=b${SP}HTTP/1.1${CRLF}Host:${SP}x${CRLF}${CRLF}POST${SP}/store${SP}HTTP/1.1${CRLF}Content-Length:${SP}300${CRLF}${CRLF}`;
    const first = await exchange('fast GET', requestBytes('fast GET', `/v1/users/1?${smuggledPost}`, []));
    assert.equal(first.res.status, 200);
    const second = await exchange('fast GET', requestBytes('fast GET', '/v1/users/victim', [['Authorization', 'Bearer victim-token']]));
    assert.equal(second.res.status, 200);
    assert.equal(second.forwarded!.url, '/users/victim');
    assert.deepEqual(headerValues(second.forwarded!.headers, 'authorization'), ['Bearer victim-token']);
  });
});

// Characters a client can put in a request without breaking its own framing: anything but
// ASCII controls, DEL and (in a request-target) space. Surrogate halves alone included; the
// weights make U+0100..U+FFFF (the lossy range) common.
const wide = fc.oneof(
  { arbitrary: fc.integer({ min: 0x100, max: 0xffff }), weight: 4 },
  { arbitrary: fc.integer({ min: 0x80, max: 0xff }), weight: 1 },
  { arbitrary: fc.integer({ min: 0x21, max: 0x7e }), weight: 3 },
  { arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }), weight: 1 },
  { arbitrary: fc.integer({ min: 0x10000, max: 0x10ffff }), weight: 1 },
  { arbitrary: fc.constantFrom(0x10a, 0x10d, 0x120, 0x100, 0x17f), weight: 3 },
).map((cp) => (cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp)));
const targetText = fc.array(wide, { maxLength: 24 }).map((a) => a.join(''));
const headerText = fc.array(fc.oneof(wide, fc.constant(' ')), { maxLength: 24 }).map((a) => a.join('').trim());

/** Cases per client per run; the seed is random unless LOBBY_FC_SEED is set (fast-check prints it on failure). */
const RUNS = Number(process.env.LOBBY_FC_RUNS ?? 150);
const SEED = process.env.LOBBY_FC_SEED === undefined ? undefined : Number(process.env.LOBBY_FC_SEED);

describe('request splitting: property', () => {
  for (const client of CLIENTS) {
    it(`${client}: random Unicode in path, query and every client header gives exactly one well-formed request`, async () => {
      let forwardedCases = 0;
      await fc.assert(fc.asyncProperty(
        fc.oneof(fc.constant(''), targetText), targetText, headerText, headerText, headerText, headerText,
        async (path, query, xff, note, auth, correlation) => {
          const target = `/v1/users/${path}${query === '' ? '' : '?' + query}`;
          const { res, forwarded } = await exchange(client, requestBytes(client, target, [
            ['X-Forwarded-For', xff], ['X-Note', note], ['Authorization', auth], ['X-Correlation-Id', correlation],
          ]));
          if (forwarded === null) return;
          forwardedCases++;
          assert.match(forwarded.url, /^\/[\x21-\x7e]*$/, 'visible ASCII request-target');
          for (let i = 0; i < forwarded.headers.length; i += 2) {
            assert.match(forwarded.headers[i], /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, 'header names are tokens');
            assert.doesNotMatch(forwarded.headers[i + 1], /[\0\r\n]/, 'no CR, LF or NUL in a value');
          }
          assert.equal(res.status, 200);
        }), { numRuns: RUNS, seed: SEED, endOnFailure: true });
      // Not a vacuous pass: most cases must really reach the upstream.
      assert.ok(forwardedCases >= RUNS * 0.3, `only ${forwardedCases} of ${RUNS} cases were forwarded`);
    });
  }
});
