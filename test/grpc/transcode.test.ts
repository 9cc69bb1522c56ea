// End to end: a real Lobby process transcoding REST/JSON to a real @grpc/grpc-js server
// (test/grpc/bookstore-server.ts): every kind of google.api.http rule, query mapping, int64
// precision in body, query and path, the whole status table with details, metadata both
// ways, and server streaming as NDJSON and SSE, including an error in the middle.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { request } from 'undici';
import { startGateway, type Gateway } from '../helpers/gateway.js';
import { BOOKSTORE_PROTO, FIXTURE_DIR, startBookstore, type BookstoreServer } from './bookstore-server.js';

let store: BookstoreServer;
let gw: Gateway;
const BIG = '9007199254740993'; // 2^53 + 1: a JS Number would make it ...992

async function call(method: string, path: string, opts: { body?: string; headers?: Record<string, string> } = {}) {
  const res = await request(gw.url + path, { method: method as 'GET', headers: { 'content-type': 'application/json', ...opts.headers }, body: opts.body });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) as Record<string, any> }; // eslint-disable-line @typescript-eslint/no-explicit-any
}

before(async () => {
  store = await startBookstore();
  gw = await startGateway(`
server: { port: __PORT__, workers: 1 }
services:
  books:
    grpc: { targets: ["${store.address}"] }
    descriptors: { protos: [${BOOKSTORE_PROTO}], include: ["${FIXTURE_DIR}"] }
    timeouts: { response_ms: 5000 }
routes:
  - name: books
    match: { prefix: /v1 }
    service: books
    escaped_slashes: keep
    transcode:
      services: [bookstore.v1.Bookstore]
      request_headers: [x-tenant]
      response_headers: [x-shelf-source]
  - name: books-lenient
    match: { prefix: /v1, host: lenient.example }
    service: books
    transcode: { services: [bookstore.v1.Bookstore], unknown_query_parameters: ignore, print: { emit_defaults: true, proto_field_names: true, enums_as: number } }
  - name: books-small-offload
    match: { prefix: /v1, host: offload.example }
    service: books
    transcode: { services: [bookstore.v1.Bookstore], offload_bytes: 4096 }
  - name: books-auto
    match: { prefix: /bookstore.v1.Bookstore }
    service: books
    transcode: { services: [bookstore.v1.Bookstore], auto_mapping: true }
`);
});

after(async () => {
  await gw?.stop();
  await store?.stop();
});

describe('google.api.http rules', () => {
  it('GET with query parameters: page_size and a "+"/percent-encoded token', async () => {
    const r = await call('GET', '/v1/shelves?page_size=5&pageToken=a+b%21');
    assert.equal(r.status, 200, r.text);
    assert.match(String(r.headers['content-type']), /application\/json/);
    assert.deepEqual(r.json(), { shelves: [{ id: '1', theme: 'fiction' }, { id: BIG, theme: 'big' }], nextPageToken: '5:a b!' });
    assert.ok(r.text.includes(`"id":"${BIG}"`), 'int64 printed as a string, exactly');
  });

  it('a path variable {shelf} as int64 2^53+1, and the allowlisted initial metadata as a header', async () => {
    const r = await call('GET', `/v1/shelves/${BIG}`);
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().id, BIG);
    assert.equal(r.headers['x-shelf-source'], 'db');
    assert.equal(r.headers['x-internal'], undefined, 'metadata outside the allowlist stays out');
  });

  it('additional_bindings', async () => {
    const r = await call('GET', '/v1/stores/north/shelves/2');
    assert.deepEqual(r.json(), { id: '2', theme: 'north' });
  });

  it('POST with body: "shelf" and int64 2^53+1 in the body', async () => {
    const r = await call('POST', '/v1/shelves', { body: `{"theme":"poems","id":"${BIG}"}` });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { id: BIG, theme: 'poems' });
    const n = await call('POST', '/v1/shelves', { body: `{"theme":"poems","id":${BIG}}` });
    assert.equal(n.json().id, BIG, 'a JSON number above 2^53 is read without rounding');
  });

  it('DELETE returning Empty', async () => {
    const r = await call('DELETE', '/v1/shelves/3');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), {});
  });

  it('a custom verb (:archive) with body "*"', async () => {
    const r = await call('POST', '/v1/shelves/3:archive', { body: '{}' });
    assert.deepEqual(r.json(), { id: '3', theme: 'archived' });
  });

  it('{name=shelves/*/books/*}: a multi-segment variable; nested int64 and enum by name', async () => {
    const r = await call('GET', '/v1/shelves/1/books/2');
    assert.equal(r.status, 200, r.text);
    const b = r.json();
    assert.equal(b.name, 'shelves/1/books/2');
    assert.equal(b.author.authorId, BIG);
    assert.equal(b.genre, 'FICTION');
    assert.deepEqual(b.ratings, { a: 5 });
    assert.equal(b.pages, 412);
  });

  it('{book.name=...} with body "book", and a FieldMask from the query', async () => {
    const r = await call('PATCH', '/v1/shelves/1/books/2?updateMask=title,author.displayName', { body: '{"title":"Emma"}' });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().name, 'shelves/1/books/2');
    assert.equal(r.json().title, 'Emma (mask title,author.display_name)');
  });

  it('a body value for a path-bound field is a 400, never an override', async () => {
    const r = await call('PATCH', '/v1/shelves/1/books/2', { body: '{"name":"shelves/9/books/9"}' });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().code, 3);
    assert.equal(r.json().details[0].reason, 'grpc_bound_field_conflict');
    const put = await call('PUT', '/v1/shelves/1/books/2', { body: '{"name":"shelves/9/books/9"}' });
    assert.equal(put.status, 400, put.text);
  });

  it('a query value for a path-bound field is a 400', async () => {
    const r = await call('GET', '/v1/echo/7?id=8');
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().details[0].reason, 'grpc_bound_field_conflict');
    assert.equal(store.calls.Echo ?? 0, 0, 'nothing reached the upstream');
  });

  it('response_body prints one field of the response', async () => {
    const r = await call('GET', '/v1/shelves/1/books/2/title');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json(), 'The Title');
  });

  it('{path=**} keeps %2F encoded inside the variable', async () => {
    const r = await call('GET', '/v1/files/a/b%2Fc/d.txt');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json().path, 'a/b%2Fc/d.txt');
  });

  it('query: nested a.b, repeated x=1&x=2, int64 2^53+1, + as space, enum by name', async () => {
    const r = await call('GET', `/v1/echo?id=q&big=${BIG}&ubig=18446744073709551615&nums=1&nums=2&nested.b=${BIG}&nested.deeper.a=x&text=a+b%20c&genre=POETRY&flag=true`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { id: 'q', big: BIG, ubig: '18446744073709551615', nums: [1, 2], nested: { b: BIG, deeper: { a: 'x' } }, genre: 'POETRY', text: 'a b c', flag: true });
  });

  it('an unknown query parameter is a 400 by default, ignored with unknown_query_parameters: ignore', async () => {
    const r = await call('GET', '/v1/echo?id=1&nope=2');
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().details[0].reason, 'grpc_unknown_query_parameter');
    const lenient = await call('GET', '/v1/echo?id=1&nope=2', { headers: { host: 'lenient.example' } });
    assert.equal(lenient.status, 200, lenient.text);
    // print options of that route: proto names, defaults, enums as numbers
    assert.deepEqual(lenient.json(), { id: '1', big: '0', ubig: '0', nums: [], genre: 0, text: '', flag: false });
  });

  it('query map entries name[key]=value (grpc-gateway v2): keys of every kind, int64 keys and values exact', async () => {
    const before = store.calls.Tag ?? 0;
    const r = await call('GET', `/v1/tags?labels[env]=prod&labels%5Bteam%5D=a+b&labels[a[0]]=x&labels[]=empty`
      + `&genres[${BIG}]=POETRY&genres[-1]=2&sizes[18446744073709551615]=${BIG}`
      + `&waits[true]=1.5s&waits[false]=-0.5s&counts[7]=${BIG}&inner.flags[x]=true&inner.flags[y]=false&tags=t`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), {
      labels: { env: 'prod', team: 'a b', 'a[0]': 'x', '': 'empty' },
      genres: { [BIG]: 'POETRY', '-1': 'HISTORY' },
      waits: { true: '1.500s', false: '-0.500s' },
      sizes: { '18446744073709551615': BIG },
      inner: { flags: { x: true, y: false } },
      tags: ['t'],
      counts: { 7: BIG },
    });
    assert.ok(r.text.includes(`"${BIG}":"POETRY"`) && r.text.includes(`"7":"${BIG}"`), 'int64 keys and values keep every digit');
    assert.equal(store.calls.Tag, before + 1);
  });

  it('query map entries merge with a body and a path binding; a map entry inside the body field is that field\'s', async () => {
    const p = await call('GET', '/v1/tags/n1?labels[k]=v');
    assert.equal(p.status, 200, p.text);
    assert.deepEqual(p.json(), { name: 'n1', labels: { k: 'v' } });
    const b = await call('POST', '/v1/tags?labels[k]=v', { body: '{"note":"n","flags":{"z":true}}' });
    assert.equal(b.status, 200, b.text);
    assert.deepEqual(b.json(), { labels: { k: 'v' }, inner: { flags: { z: true }, note: 'n' } });
    const inBody = await call('POST', '/v1/tags?inner.flags[x]=true', { body: '{}' });
    assert.equal(inBody.status, 400, inBody.text);
    assert.equal(inBody.json().details[0].reason, 'grpc_unknown_query_parameter');
  });

  it('bad map entries are 400 Status JSON naming the map, never echoing the key or value; nothing reaches the upstream', async () => {
    const before = store.calls.Tag ?? 0;
    const cases: [string, RegExp][] = [
      ['genres[secret]=POETRY', /genres\[\]: expected a map key as a decimal integer string/],
      ['genres[1]=SECRET', /genres\[\]: unknown value for enum Genre/],
      ['waits[secret]=1s', /waits\[\]: expected a map key "true" or "false"/],
      ['waits[true]=secret', /waits\[\]: expected a Duration/],
      ['sizes[-1]=1', /sizes\[\]: /],
      ['sizes[1]=1.5', /sizes\[\]: /],
      ['genres[9223372036854775808]=1', /genres\[\]: /],
      ['counts[1]=secret', /counts\[\]: /],
      ['labels[k]=a&labels[k]=b', /labels\[\]: map key given more than once/],
      ['labels=secret', /labels: is a map field: set its entries as labels\[key\]=value/],
      ['name[k]=v', /name: is not a map field, so it takes no \[key\]/],
      ['shelves[a]=1', /shelves\[\]: map values of type Shelf cannot be set from a query string/],
    ];
    for (const [query, message] of cases) {
      const r = await call('GET', `/v1/tags?${query}`);
      assert.equal(r.status, 400, `${query}: ${r.text}`);
      const status = r.json();
      assert.equal(status.code, 3, query);
      assert.equal(status.details[0].reason, 'grpc_invalid_request', query);
      assert.match(status.message, message, query);
      assert.doesNotMatch(r.text, /secret|SECRET/, `${query}: the value is not echoed`);
    }
    assert.equal(store.calls.Tag ?? 0, before, 'no bad request reached the upstream');
  });

  it('a map entry of an unknown field is an unknown query parameter (400, or ignored by config)', async () => {
    const r = await call('GET', '/v1/tags?nope[a]=1');
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json().details[0].reason, 'grpc_unknown_query_parameter');
    const lenient = await call('GET', '/v1/tags?nope[a]=1&labels[a]=1', { headers: { host: 'lenient.example' } });
    assert.equal(lenient.status, 200, lenient.text);
    assert.deepEqual(lenient.json().labels, { a: '1' });
  });

  it('custom method (kind OPTIONS) with body "*"', async () => {
    const r = await call('OPTIONS', '/v1/echo:search', { body: '{"id":"s","nested":{"a":"x"}}' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { id: 's', nested: { a: 'x' } });
  });

  it('auto_mapping: POST /pkg.Service/Method for a method without an http rule', async () => {
    const r = await call('POST', '/bookstore.v1.Bookstore/Unmapped', { body: `{"id":"auto","big":"${BIG}"}` });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { id: 'auto', big: BIG });
  });

  it('an unknown path is a 404 and a wrong method a 405 with Allow, both google.rpc.Status JSON', async () => {
    const nf = await call('GET', '/v1/nothing/here');
    assert.equal(nf.status, 404, nf.text);
    assert.equal(nf.json().code, 5);
    assert.equal(nf.json().details[0]['@type'], 'type.googleapis.com/google.rpc.ErrorInfo');
    assert.equal(nf.json().details[0].reason, 'grpc_method_not_found');
    assert.equal(nf.json().details[0].metadata.correlation_id, nf.headers['x-correlation-id']);
    const na = await call('POST', '/v1/shelves/12');
    assert.equal(na.status, 405, na.text);
    assert.equal(na.headers.allow, 'GET, DELETE');
    assert.equal(na.json().code, 12);
  });

  it('bad JSON, trailing bytes and a body on a rule without one are 400s', async () => {
    for (const body of ['{"theme":', '{"theme":"a"} x', '{"theme":"\u00ff"}'.replace('\u00ff', '\\ud800')]) {
      const r = await call('POST', '/v1/shelves', { body });
      assert.equal(r.status, 400, `${body}: ${r.text}`);
      assert.equal(r.json().code, 3);
    }
    const r = await call('GET', '/v1/shelves/1', { body: '{"x":1}' });
    assert.equal(r.status, 400, r.text);
  });
});

describe('metadata', () => {
  it('forwards Authorization, the correlation id, trace context and listed headers; not others', async () => {
    const r = await call('GET', '/v1/echo?id=m', { headers: {
      authorization: 'Bearer abc', 'x-tenant': 't1', 'x-other': 'no', 'x-correlation-id': 'corr-123',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    } });
    assert.equal(r.status, 200, r.text);
    const md = store.lastMetadata;
    assert.equal(md.authorization, 'Bearer abc');
    assert.equal(md['x-tenant'], 't1');
    assert.equal(md['x-correlation-id'], 'corr-123');
    assert.equal(md.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.equal(md['x-other'], undefined);
    assert.equal(md['content-length'], undefined);
    assert.equal(md.connection, undefined);
  });

  it('an allowlisted header with bytes outside printable ASCII: no such byte reaches the upstream (U+20AC would go as its low byte)', async () => {
    // Raw bytes on the client socket: undici would not send these values as they are.
    const url = new URL(gw.url);
    const head = Buffer.concat([
      Buffer.from('GET /v1/echo?id=u HTTP/1.1\r\nHost: a\r\nConnection: close\r\nx-tenant: '),
      Buffer.from('\u20ac\u010d\u010ax', 'utf8'), Buffer.from('\r\nauthorization: caf'), Buffer.from([0xc3, 0xa9, 0xff]),
      Buffer.from('\r\ntraceparent: ok\r\n\r\n'),
    ]);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(url.port), url.hostname, () => socket.write(head));
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.on('end', () => resolve(Buffer.concat(chunks).toString('latin1')));
      socket.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 200/, answer);
    const md = store.lastMetadata;
    assert.equal(md.traceparent, 'ok', 'the call went out');
    // The bundled uWS hands these values to JS without their non-ASCII bytes ("x", "caf"); a
    // build that kept them would have client.ts refuse the values.
    for (const [name, value] of Object.entries(md)) assert.match(value, /^[\x20-\x7e]*$/, `${name}: ${JSON.stringify(value)}`);
  });
});

describe('gRPC status → HTTP', () => {
  const TABLE: [number, number][] = [
    [1, 499], [2, 500], [3, 400], [4, 504], [5, 404], [6, 409], [7, 403], [8, 429], [9, 400],
    [10, 409], [11, 400], [12, 501], [13, 500], [14, 503], [15, 500], [16, 401],
  ];
  for (const [code, http] of TABLE) {
    it(`code ${code} → ${http}, Status JSON with the percent-decoded message and decoded details`, async () => {
      const r = await call('GET', `/v1/fail/${code}?withDetails=true`);
      assert.equal(r.status, http, r.text);
      assert.match(String(r.headers['content-type']), /application\/json/);
      const s = r.json();
      assert.equal(s.code, code);
      assert.equal(s.message, 'shelf 7 is locked: 100% sure, ünïcode');
      assert.deepEqual(s.details, [
        { '@type': 'type.googleapis.com/google.rpc.ErrorInfo', reason: 'SHELF_LOCKED', domain: 'bookstore.example', metadata: { shelf: '7' } },
        { '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field: 'shelf', description: 'must be positive' }] },
        { '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '2.500s' },
      ]);
    });
  }
  it('a grpc-message of raw bytes from a real gRPC server: the bytes decoded once, UTF-8 (U+FFFD where not) only in the JSON', async () => {
    // "caf" C3 A9, " %C3" + raw BC, " 100%25 ", a raw FF, " %zz": raw UTF-8, an escape and a
    // raw byte of one character, an escaped %, a byte that is not UTF-8, a broken escape.
    const bytes = Buffer.concat([Buffer.from('caf\xc3\xa9 %C3\xbc 100%25 ', 'latin1'), Buffer.from([0xff]), Buffer.from(' %zz')]);
    const r = await call('GET', `/v1/fail/9?message=rawhex:${bytes.toString('hex')}`);
    assert.equal(r.status, 400, r.text);
    assert.deepEqual(r.json(), { code: 9, message: 'café ü 100% \ufffd %zz', details: [] });
  });

  it('without details: details is []', async () => {
    const r = await call('GET', '/v1/fail/5?message=no+such+shelf');
    assert.equal(r.status, 404);
    assert.deepEqual(r.json(), { code: 5, message: 'no such shelf', details: [] });
  });
});

describe('server streaming', () => {
  const lines = (text: string) => text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);

  it('NDJSON by default: one record per message', async () => {
    const r = await call('GET', '/v1/shelves/5/books:stream?count=3');
    assert.equal(r.status, 200, r.text);
    assert.match(String(r.headers['content-type']), /application\/x-ndjson/);
    const recs = lines(r.text);
    assert.equal(recs.length, 3);
    assert.deepEqual(recs[2], { name: 'shelves/5/books/2', title: 'Book 2', author: { authorId: BIG } });
  });

  it('SSE when Accept asks for text/event-stream', async () => {
    const r = await call('GET', '/v1/shelves/5/books:stream?count=2', { headers: { accept: 'text/event-stream' } });
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /text\/event-stream/);
    assert.equal(r.text, 'data: {"name":"shelves/5/books/0","title":"Book 0","author":{"authorId":"9007199254740993"}}\n\n' +
      'data: {"name":"shelves/5/books/1","title":"Book 1","author":{"authorId":"9007199254740993"}}\n\n');
  });

  it('an empty stream is a 200 with no records', async () => {
    const r = await call('GET', '/v1/shelves/5/books:stream?count=0');
    assert.equal(r.status, 200);
    assert.equal(r.text, '');
  });

  it('an error before the first message: the mapped status and a Status body', async () => {
    const r = await call('GET', '/v1/shelves/5/books:stream?count=3&failAfter=0&failCode=7');
    assert.equal(r.status, 403, r.text);
    assert.deepEqual(r.json(), { code: 7, message: 'the shelf caught fire', details: [] });
  });

  it('an error mid-stream ends the stream with a final {"error": Status} record', async () => {
    const r = await call('GET', '/v1/shelves/5/books:stream?count=5&failAfter=2&failCode=14');
    assert.equal(r.status, 200);
    const recs = lines(r.text);
    assert.equal(recs.length, 3, r.text);
    assert.deepEqual(recs[2], { error: { code: 14, message: 'the shelf caught fire', details: [] } });
  });

  it('an error mid-stream over SSE is an "error" event', async () => {
    const r = await call('GET', '/v1/shelves/5/books:stream?count=5&failAfter=1&failCode=13', { headers: { accept: 'text/event-stream' } });
    assert.ok(r.text.endsWith('event: error\ndata: {"code":13,"message":"the shelf caught fire","details":[]}\n\n'), r.text);
  });

  it('a long stream to a slow reader: backpressure, every record arrives', async () => {
    const res = await request(`${gw.url}/v1/shelves/5/books:stream?count=20000`);
    let count = 0;
    let rest = '';
    for await (const chunk of res.body) {
      const text = rest + (chunk as Buffer).toString();
      const parts = text.split('\n');
      rest = parts.pop()!;
      count += parts.length;
      if (count < 200) await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(count, 20000);
  });
});

describe('the codec pool (offload_bytes)', () => {
  // The pool's threads are threads of the gateway process: Linux lists them in /proc/PID/task.
  const threads = () => readdirSync(`/proc/${gw.proc.pid}/task`).length;

  it('small messages stay inline; from offload_bytes on they are encoded and printed in the pool, with the same result', async () => {
    const before = threads();
    for (let i = 0; i < 20; i++) {
      const r = await call('POST', '/v1/large', { body: JSON.stringify({ items: ['a', 'b'] }), headers: { host: 'offload.example' } });
      assert.equal(r.status, 200, r.text);
    }
    assert.equal(threads(), before, 'no pool thread for small messages');
    const items = Array.from({ length: 600 }, (_, i) => `item-${i}-${'x'.repeat(10)}`);
    const body = JSON.stringify({ items });
    assert.ok(body.length > 4096);
    const r = await call('POST', '/v1/large', { body, headers: { host: 'offload.example' } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json(), { items }, 'the same JSON as inline');
    const deadline = Date.now() + 10_000;
    while (threads() <= before && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    assert.ok(threads() > before, 'a pool thread was started for the large message');
    // A bad large body is refused from the pool with the same 400 as inline.
    const bad = await call('POST', '/v1/large', { body: `{"items":[${'"x",'.repeat(2000)}1]}`, headers: { host: 'offload.example' } });
    assert.equal(bad.status, 400, bad.text);
    assert.equal(bad.json().details[0].reason, 'grpc_invalid_request');
  });

  it('query map entries reach the pool with a large body (after the test above: it counts the pool\'s first thread)', async () => {
    const note = 'n'.repeat(6000);
    const r = await call('POST', `/v1/tags?labels[k]=v&genres[${BIG}]=FICTION`, { body: JSON.stringify({ note }), headers: { host: 'offload.example' } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json().labels, { k: 'v' });
    assert.deepEqual(r.json().genres, { [BIG]: 'FICTION' });
    assert.equal(r.json().inner.note.length, 6000);
  });
});
