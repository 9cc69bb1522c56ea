// Fields bound from the path and the query (BoundFields), merged with the body by jsonToProto: the
// string forms of each type, int64 precision at 2^53+1, repeated appends, and the conflicts
// (a body or query value never overrides a path-bound field: grpc-gateway #3069).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { BoundFields, jsonToProto, protoToJson, type ProtoJsonError } from '../../../src/grpc/json/index.js';
import { Book, GetBookRequest, PRINT, decoded } from './fixture.js';

function request(bindings: [string, string, 'path' | 'query'][], body = ''): string {
  const bound = new BoundFields(GetBookRequest);
  for (const [k, v, o] of bindings) bound.set(k, v, o);
  return protoToJson(GetBookRequest, jsonToProto(GetBookRequest, Buffer.from(body), { ignoreUnknownFields: false }, bound), PRINT);
}

describe('BoundFields: string forms', () => {
  it('int64 at 2^53+1 from the path and the query, exact', () => {
    const out = request([['book.isbn', '9007199254740993', 'path'], ['ids', '9007199254740993', 'query'], ['book.copies_sold', '18446744073709551615', 'query']]);
    assert.equal(out, '{"book":{"isbn":"9007199254740993","copiesSold":"18446744073709551615"},"ids":["9007199254740993"]}');
  });
  it('every scalar kind, by proto or JSON name', () => {
    const out = request([
      ['name', 'shelves/1/books/2', 'path'], ['book.pages', '-5', 'query'], ['book.weight', '0.5', 'query'], ['book.price', 'NaN', 'query'],
      ['book.inPrint', 'true', 'query'], ['book.cover', '-_8', 'query'], ['book.genre', 'SCIENCE', 'query'], ['book.genres', '3', 'query'],
      ['book.genres', 'FICTION', 'query'], ['book.author.address.city', 'Oslo', 'query'], ['book.shownAs', 'shown', 'query'],
    ]);
    assert.equal(out, '{"name":"shelves/1/books/2","book":{"author":{"address":{"city":"Oslo"}},"genre":"SCIENCE","genres":["HISTORY","FICTION"],'
      + '"pages":-5,"weight":0.5,"price":"NaN","inPrint":true,"cover":"+/8=","shownAs":"shown"}}');
  });
  it('well-known types from their JSON string forms', () => {
    const out = request([
      ['read_mask', 'title,author.authorId', 'query'], ['book.published', '2020-01-01T01:00:00+01:00', 'query'],
      ['book.reading_time', '-1.5s', 'query'], ['book.w_int64', '9007199254740993', 'query'], ['book.wBool', 'false', 'query'],
      ['book.w_string', '', 'query'], ['book.history', '1970-01-01T00:00:01Z', 'query'], ['book.history', '1970-01-01T00:00:02Z', 'query'],
    ]);
    assert.equal(out, '{"book":{"published":"2020-01-01T00:00:00Z","readingTime":"-1.500s","wInt64":"9007199254740993","wBool":false,"wString":"",'
      + '"history":["1970-01-01T00:00:01Z","1970-01-01T00:00:02Z"]},"readMask":"title,author.authorId"}');
    assert.deepEqual(decoded(GetBookRequest, jsonToProto(GetBookRequest, new Uint8Array(0), { ignoreUnknownFields: false },
      bound([['read_mask', 'author.author_id,bookTitle', 'query']]))).read_mask, { paths: ['author.author_id', 'book_title'] });
  });
  it('bad values fail with the field path and without the value', () => {
    assert.throws(() => request([['book.pages', 'abc123secret', 'query']]), (e: Error) => /^book\.pages: expected an int32/.test(e.message) && !e.message.includes('secret'));
    assert.throws(() => request([['book.inPrint', 'yes', 'query']]), /book.inPrint: expected a boolean/);
    assert.throws(() => request([['book.genre', 'POETRY', 'query']]), /book.genre: unknown value for enum Genre/);
    assert.throws(() => request([['book.published', 'now', 'query']]), /book.published: expected a Timestamp/);
  });
});

function bound(bindings: [string, string, 'path' | 'query'][]): BoundFields {
  const b = new BoundFields(GetBookRequest);
  for (const [k, v, o] of bindings) b.set(k, v, o);
  return b;
}

describe('BoundFields: merging with the body', () => {
  it('body and bound fields of the same message merge', () => {
    assert.equal(request([['book.name', 'n', 'path']], '{"book":{"title":"t"},"ids":[1]}'), '{"book":{"name":"n","title":"t"},"ids":["1"]}');
  });
  it('a body value for a path-bound field is refused, also nested and by the other name', () => {
    assert.throws(() => request([['name', 'a', 'path']], '{"name":"b"}'), /^Error|name: field is bound from the path and must not also be set in the body/);
    assert.throws(() => request([['book.name', 'a', 'path']], '{"book":{"name":"b"}}'), /book.name: field is bound from the path/);
    assert.throws(() => request([['book.copies_sold', '1', 'path']], '{"book":{"copiesSold":"2"}}'), /book.copiesSold: field is bound from the path/);
  });
  it('conflicts and unknown bound fields carry their codes (the transcoder may ignore unknown query parameters)', () => {
    assert.throws(() => request([['name', 'a', 'path']], '{"name":"b"}'), (e: ProtoJsonError) => e.code === 'bound_conflict');
    assert.throws(() => bound([['name', 'a', 'path'], ['name', 'b', 'query']]), (e: ProtoJsonError) => e.code === 'bound_conflict');
    assert.throws(() => bound([['book.nope', '1', 'query']]), (e: ProtoJsonError) => e.code === 'unknown_field' && e.fieldPath === 'book.nope');
  });
  it('a body value for a query-bound field is refused too', () => {
    assert.throws(() => request([['ids', '1', 'query']], '{"ids":[2]}'), /ids: field is bound from the query and must not also be set in the body/);
  });
  it('a body null for a bound field is not a conflict (null is unset)', () => {
    assert.equal(request([['name', 'a', 'path']], '{"name":null}'), '{"name":"a"}');
  });
  it('a query value for a path-bound field is refused', () => {
    assert.throws(() => bound([['name', 'a', 'path'], ['name', 'b', 'query']]), /name: field is bound from the path and must not also be set in the query/);
    assert.throws(() => bound([['ids', '1', 'path'], ['ids', '2', 'query']]), /ids: field is bound from the path/);
  });
  it('a singular field twice in the query is refused; repeated fields append', () => {
    assert.throws(() => bound([['name', 'a', 'query'], ['name', 'b', 'query']]), /name: a singular field is given more than once/);
    assert.equal(request([['ids', '1', 'query'], ['ids', '2', 'query']]), '{"ids":["1","2"]}');
  });
  it('a oneof with one member bound and another in the body or query is refused', () => {
    assert.throws(() => request([['book.paper_size', 'A4', 'path']], '{"book":{"ebookBytes":1}}'), /book.paperSize: more than one field of oneof format is set/);
    assert.throws(() => bound([['book.paper_size', 'A4', 'path'], ['book.ebook_bytes', '1', 'query']]), /book.ebookBytes: more than one field of oneof format/);
  });
  it('the body of one field (body: "book") merges with path bindings', () => {
    const b = bound([['name', 'shelves/1', 'path'], ['book.name', 'x', 'path']]);
    const bytes = jsonToProto(GetBookRequest, Buffer.from('{"title":"t"}'), { ignoreUnknownFields: false }, b, 'book');
    assert.equal(protoToJson(GetBookRequest, bytes, PRINT), '{"name":"shelves/1","book":{"name":"x","title":"t"}}');
    assert.throws(() => jsonToProto(GetBookRequest, Buffer.from('{"name":"y"}'), { ignoreUnknownFields: false }, b, 'book'), /book.name: field is bound from the path/);
  });
});

describe('BoundFields: what cannot be bound', () => {
  it('unknown fields, messages, maps, repeated messages, Struct/Any', () => {
    assert.throws(() => bound([['nope', '1', 'query']]), /^Error|nope: unknown field/);
    assert.throws(() => bound([['book.nope.x', '1', 'query']]), /book.nope: unknown field/);
    assert.throws(() => bound([['book', '1', 'query']]), /book: cannot be set from a path or query string/);
    assert.throws(() => bound([['book.labels', '1', 'query']]), /book.labels: is a map field: set its entries as book.labels\[key\]=value/);
    assert.throws(() => bound([['book.labels', '1', 'path']]), /book.labels: is a map field and cannot be set from the path/);
    assert.throws(() => bound([['book.contributors.name', '1', 'query']]), /book.contributors: is not a singular message field/);
    assert.throws(() => bound([['book.metadata', '{}', 'query']]), /book.metadata: cannot be set/);
    assert.throws(() => bound([['book.published.seconds', '1', 'query']]), /book.published: is not a singular message field/);
    assert.throws(() => bound([['book.name', 'a', 'path'], ['book', 'x', 'query']]), /book: (is already bound|cannot be set)/);
  });
  it('a BoundFields is for one type', () => {
    assert.throws(() => jsonToProto(Book, new Uint8Array(0), { ignoreUnknownFields: false }, new BoundFields(GetBookRequest)), /another type/);
  });
});

describe('BoundFields: map entries (the query\'s name[key]=value)', () => {
  function entries(list: [string, string, string][], body = ''): string {
    const b = new BoundFields(GetBookRequest);
    for (const [field, key, value] of list) b.set(field, value, 'query', key);
    return protoToJson(GetBookRequest, jsonToProto(GetBookRequest, Buffer.from(body), { ignoreUnknownFields: false }, b), PRINT);
  }
  it('every key kind, values as other query values, int64 keys exact', () => {
    const out = entries([
      ['book.labels', 'env', 'prod'], ['book.labels', '', ''], ['book.flags', 'true', 'yes'], ['book.flags', 'false', 'no'],
      ['book.genre_by_year', '9007199254740993', 'SCIENCE'], ['book.genreByYear', '-1', '1'], ['book.scores', '4294967295', 'NaN'],
    ]);
    assert.deepEqual(JSON.parse(out), { book: {
      labels: { env: 'prod', '': '' }, flags: { true: 'yes', false: 'no' },
      genreByYear: { '9007199254740993': 'SCIENCE', '-1': 'FICTION' }, scores: { '4294967295': 'NaN' },
    } });
    assert.ok(out.includes('"9007199254740993":"SCIENCE"'), 'the int64 key keeps every digit');
  });
  it('bad keys and values name the map and never quote the key or the value', () => {
    const cases: [string, string, string, RegExp][] = [
      ['book.genre_by_year', 'secret1', 'SCIENCE', /^book\.genreByYear\[\]: expected a map key as a decimal integer string$/],
      ['book.genre_by_year', '1e3', 'SCIENCE', /genreByYear\[\]: expected a map key as a decimal integer/],
      ['book.genre_by_year', '9223372036854775808', 'SCIENCE', /genreByYear\[\]: /],
      ['book.genre_by_year', '1', 'secret2', /^book\.genreByYear\[\]: unknown value for enum Genre$/],
      ['book.flags', 'secret3', 'x', /^book\.flags\[\]: expected a map key "true" or "false"$/],
      ['book.scores', '-1', '1', /^book\.scores\[\]: /],
      ['book.scores', '1', 'secret4', /^book\.scores\[\]: expected a double/],
    ];
    for (const [field, key, value, re] of cases) {
      assert.throws(() => entries([[field, key, value]]), (e: Error) => re.test(e.message) && !/secret/.test(e.message), `${field}[${key}]=${value}`);
    }
  });
  it('a key twice, an entry of a field that is no map, message values, and a body value for the map are refused', () => {
    assert.throws(() => entries([['book.labels', 'k', 'a'], ['book.labels', 'k', 'b']]), /^Error|book\.labels\[\]: map key given more than once/);
    assert.equal(entries([['book.labels', 'k', 'a'], ['book.labels', 'K', 'b']]), '{"book":{"labels":{"k":"a","K":"b"}}}');
    assert.throws(() => entries([['book.title', 'k', 'a']]), /book\.title: is not a map field, so it takes no \[key\]/);
    assert.throws(() => entries([['book.by_rank', '1', 'a']]), /book\.byRank\[\]: map values of type Author cannot be set from a query string/);
    assert.throws(() => entries([['book.labels', 'k', 'a']], '{"book":{"labels":{"j":"b"}}}'), (e: ProtoJsonError) => e.code === 'bound_conflict');
  });
});
