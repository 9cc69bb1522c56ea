// The proto3 JSON mapping, each type both ways: JSON -> binary is checked with protobufjs's own
// decoder (independent of our walk), binary made by protobufjs's encoder -> JSON is checked as text.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { jsonToProto, protoToJson } from '../../../src/grpc/json/index.js';
import { Author, Book, PRINT, decoded, enc, through } from './fixture.js';

/** protobufjs-encoded binary of a Book given as a protobufjs object (longs as strings). */
function bookBytes(obj: Record<string, unknown>): Uint8Array {
  return Book.encode(Book.fromObject(obj)).finish();
}

function printBook(obj: Record<string, unknown>, opts: Partial<typeof PRINT> = {}): string {
  return protoToJson(Book, bookBytes(obj), { ...PRINT, ...opts });
}

describe('64-bit integers keep every digit', () => {
  const cases: [string, string][] = [
    ['isbn', '9007199254740993'], // 2^53 + 1
    ['isbn', '-9223372036854775808'],
    ['isbn', '9223372036854775807'],
    ['copiesSold', '18446744073709551615'], // uint64 max
    ['balance', '-9007199254740993'], // sint64
    ['checksum', '18446744073709551615'], // fixed64
    ['delta', '-9223372036854775808'], // sfixed64
  ];
  for (const [key, digits] of cases) {
    it(`${key} = ${digits} from a string, from a number, printed as a string`, () => {
      for (const body of [`{"${key}":"${digits}"}`, `{"${key}":${digits}}`]) {
        const bytes = enc(Book, body);
        const snake = key.replace(/[A-Z]/g, (c) => '_' + c.toLowerCase());
        assert.equal(decoded(Book, bytes)[snake], digits);
        assert.equal(protoToJson(Book, bytes, PRINT), `{"${key}":"${digits}"}`);
      }
    });
  }
  it('prints a uint64 max written by protobufjs', () => {
    assert.equal(printBook({ copies_sold: '18446744073709551615' }), '{"copiesSold":"18446744073709551615"}');
  });
  it('rejects values one past the range', () => {
    assert.throws(() => enc(Book, '{"copiesSold":"18446744073709551616"}'), /copiesSold: a uint64 value out of range/);
    assert.throws(() => enc(Book, '{"isbn":9223372036854775808}'), /isbn: an int64 value out of range/);
    assert.throws(() => enc(Book, '{"copiesSold":-1}'), /out of range/);
  });
  it('accepts integral exponent and fraction forms, rejects fractions', () => {
    assert.equal(through(Book, '{"isbn":1e3,"pages":"2.0e1","copiesSold":1.5e1}'), '{"isbn":"1000","copiesSold":"15","pages":20}');
    assert.throws(() => enc(Book, '{"pages":1.5}'), /pages: expected an int32/);
    assert.throws(() => enc(Book, '{"isbn":"12a"}'), /isbn: expected an int64/);
    assert.throws(() => enc(Book, '{"isbn":" 12"}'), /isbn: expected an int64/);
  });
  it('repeated int64 and int64 map keys keep precision', () => {
    const json = '{"pageMarks":["9007199254740993","-1"],"genreByYear":{"9007199254740993":"FICTION"}}';
    assert.equal(through(Book, json), json);
  });
});

describe('32-bit integers', () => {
  it('ranges', () => {
    assert.equal(through(Book, '{"pages":-2147483648,"edition":4294967295,"ratingChange":-5,"shelfCode":"4294967295","offset":-1}'),
      '{"pages":-2147483648,"edition":4294967295,"ratingChange":-5,"shelfCode":4294967295,"offset":-1}');
    assert.throws(() => enc(Book, '{"pages":2147483648}'), /pages: an int32 value out of range/);
    assert.throws(() => enc(Book, '{"edition":-1}'), /edition: a uint32 value out of range/);
  });
  it('from protobufjs binary', () => {
    assert.equal(printBook({ pages: -7, edition: 7, rating_change: -3, shelf_code: 4294967295, offset: -2 }),
      '{"pages":-7,"edition":7,"ratingChange":-3,"shelfCode":4294967295,"offset":-2}');
  });
});

describe('float and double', () => {
  it('NaN and the infinities as strings both ways', () => {
    const json = '{"weight":"-Infinity","price":"NaN"}';
    assert.equal(through(Book, json), json);
    assert.equal(through(Book, '{"price":"Infinity"}'), '{"price":"Infinity"}');
    assert.equal(printBook({ price: -Infinity, weight: NaN }), '{"weight":"NaN","price":"-Infinity"}');
  });
  it('floats print their shortest form; numbers in strings are accepted', () => {
    assert.equal(through(Book, '{"weight":0.1,"price":"2.5"}'), '{"weight":0.1,"price":2.5}');
    assert.equal(through(Book, '{"price":1e300}'), '{"price":1e+300}');
  });
  it('overflow is an error, not Infinity', () => {
    assert.throws(() => enc(Book, '{"price":1e400}'), /price: a double value out of range/);
    assert.throws(() => enc(Book, '{"weight":3.5e38}'), /weight: a float value out of range/);
    assert.throws(() => enc(Book, '{"price":"nan"}'), /price: expected a double/);
  });
});

describe('bool, string, bytes', () => {
  it('bool only as true/false', () => {
    assert.equal(through(Book, '{"inPrint":true}'), '{"inPrint":true}');
    assert.throws(() => enc(Book, '{"inPrint":"true"}'), /inPrint: expected a boolean/);
    assert.throws(() => enc(Book, '{"inPrint":1}'), /inPrint: expected a boolean/);
  });
  it('strings with escapes and non-BMP characters', () => {
    const json = '{"title":"a\\"b\\\\c\\n\\u00e9\\ud83d\\ude00 😀"}';
    assert.equal(decoded(Book, enc(Book, json)).title, 'a"b\\c\né😀 😀');
    assert.equal(through(Book, json), '{"title":"a\\"b\\\\c\\né😀 😀"}');
  });
  it('bytes: standard and URL-safe, padded or not, printed standard', () => {
    for (const b64 of ['+/8=', '-_8=', '-_8', '+/8']) {
      assert.equal(through(Book, `{"cover":"${b64}"}`), '{"cover":"+/8="}');
    }
    assert.equal(printBook({ cover: Buffer.from([0xfb, 0xff]) }), '{"cover":"+/8="}');
    assert.throws(() => enc(Book, '{"cover":"a+b_"}'), /cover: expected bytes as standard or URL-safe base64/);
    assert.throws(() => enc(Book, '{"cover":"abcde"}'), /cover: expected bytes/);
    assert.throws(() => enc(Book, '{"cover":"ab=c"}'), /cover: expected bytes/);
  });
});

describe('enums', () => {
  it('by name or number; unknown numbers print as numbers', () => {
    assert.equal(through(Book, '{"genre":2,"genres":["FICTION",3,99]}'), '{"genre":"SCIENCE","genres":["FICTION","HISTORY",99]}');
    assert.equal(through(Book, '{"genre":"HISTORY"}', { enumsAs: 'number' }), '{"genre":3}');
    assert.equal(printBook({ genre: 42 }), '{"genre":42}');
  });
  it('unknown names fail, or are dropped with ignoreUnknownFields', () => {
    assert.throws(() => enc(Book, '{"genre":"POETRY"}'), /genre: unknown value for enum Genre/);
    assert.equal(protoToJson(Book, enc(Book, '{"genre":"POETRY","genres":["POETRY","FICTION"],"genreByYear":{"1":"POETRY"}}', true), PRINT),
      '{"genres":["FICTION"]}');
  });
});

describe('messages, repeated fields, maps, oneofs', () => {
  it('nested messages and repeated messages', () => {
    const json = '{"author":{"name":"Ann","authorId":"7","aliases":["A","B"],"address":{"city":"Oslo","countryCode":"NO"}},"contributors":[{"name":"x"},{}]}';
    assert.equal(through(Book, json), json);
    assert.deepEqual(decoded(Book, enc(Book, json)).author, { name: 'Ann', author_id: '7', aliases: ['A', 'B'], address: { city: 'Oslo', country_code: 'NO' } });
  });
  it('maps with string, int, bool and int64 keys (keys are JSON strings)', () => {
    const json = '{"labels":{"k":"v","":"empty"},"byRank":{"-1":{"name":"last"},"1":{}},"flags":{"true":"y","false":"n"},"scores":{"0":1.5}}';
    assert.equal(through(Book, json), json);
    assert.deepEqual(decoded(Book, enc(Book, json)).flags, { true: 'y', false: 'n' });
    assert.throws(() => enc(Book, '{"flags":{"yes":"x"}}'), /flags\[\]: expected a map key "true" or "false"/);
    assert.throws(() => enc(Book, '{"byRank":{"x":{}}}'), /byRank\[\]: expected an int32/);
    assert.throws(() => enc(Book, '{"labels":{"a":null}}'), /labels\[\]: null is not allowed as a map value/);
  });
  it('oneof: one member is fine, two are an error, null does not count', () => {
    assert.equal(through(Book, '{"ebookBytes":5}'), '{"ebookBytes":5}');
    assert.equal(through(Book, '{"narratedBy":{}}'), '{"narratedBy":{}}');
    assert.equal(through(Book, '{"paperSize":null,"ebookBytes":0}'), '{"ebookBytes":0}');
    assert.throws(() => enc(Book, '{"paperSize":"A4","ebookBytes":5}'), /ebookBytes: more than one field of oneof format is set/);
  });
  it('oneof: the last member on the wire wins', () => {
    const a = enc(Book, '{"paperSize":"A4"}');
    const b = enc(Book, '{"ebookBytes":9}');
    assert.equal(protoToJson(Book, Buffer.concat([a, b]), PRINT), '{"ebookBytes":9}');
  });
  it('proto3 optional prints when set, even to zero; implicit zero values do not', () => {
    assert.equal(through(Book, '{"maybeCount":0,"pages":0,"title":""}'), '{"maybeCount":0}');
  });
  it('json_name and proto names are both accepted; output uses one or the other', () => {
    assert.equal(through(Book, '{"display_name":"x"}'), '{"shownAs":"x"}');
    assert.equal(through(Book, '{"shownAs":"x","copies_sold":1}', { protoFieldNames: true }), '{"copies_sold":"1","display_name":"x"}');
  });
  it('null means unset for ordinary fields', () => {
    assert.equal(through(Book, '{"title":null,"author":null,"genres":null,"labels":null,"published":null,"wInt32":null}'), '{}');
  });
  it('the same field twice (also by its two names) is an error', () => {
    assert.throws(() => enc(Book, '{"title":"a","title":"b"}'), /title: field set twice/);
    assert.throws(() => enc(Book, '{"copiesSold":1,"copies_sold":2}'), /copies_sold: field set twice/);
  });
  it('emitDefaults prints fields without presence, not messages or optionals', () => {
    const out = JSON.parse(protoToJson(Author, new Uint8Array(0), { ...PRINT, emitDefaults: true })) as unknown;
    assert.deepEqual(out, { name: '', authorId: '0', aliases: [] });
    const book = JSON.parse(protoToJson(Book, new Uint8Array(0), { ...PRINT, emitDefaults: true })) as Record<string, unknown>;
    assert.equal(book.genre, 'GENRE_UNSPECIFIED');
    assert.deepEqual(book.labels, {});
    assert.equal(book.nullField, null);
    assert.equal('maybeCount' in book || 'author' in book || 'paperSize' in book || 'published' in book, false);
  });
  it('merges repeated occurrences of a message field on the wire', () => {
    const a = enc(Book, '{"author":{"name":"n"}}');
    const b = enc(Book, '{"author":{"authorId":"3"}}');
    assert.equal(protoToJson(Book, Buffer.concat([a, b]), PRINT), '{"author":{"name":"n","authorId":"3"}}');
  });
  it('reads unpacked repeated scalars and skips unknown fields', () => {
    const bytes = Buffer.from([0xa0, 0x01, 0x05, 0xa0, 0x01, 0x06, 0xf8, 0x3e, 0x01]); // field 20 twice unpacked; field 1007 unknown
    assert.equal(protoToJson(Book, bytes, PRINT), '{"pageMarks":["5","6"]}');
  });
});

describe('well-known types', () => {
  it('Timestamp: offsets on input, Z and 0/3/6/9 digits on output', () => {
    const cases: [string, string][] = [
      ['1970-01-01T00:00:00Z', '1970-01-01T00:00:00Z'],
      ['1972-01-01T10:00:20.021+01:30', '1972-01-01T08:30:20.021Z'],
      ['2000-02-29T23:59:59.1-00:30', '2000-03-01T00:29:59.100Z'],
      ['0001-01-01T00:00:00Z', '0001-01-01T00:00:00Z'],
      ['9999-12-31T23:59:59.999999999Z', '9999-12-31T23:59:59.999999999Z'],
      ['1969-12-31T23:59:59.000001z', '1969-12-31T23:59:59.000001Z'],
    ];
    for (const [input, output] of cases) assert.equal(through(Book, `{"published":"${input}"}`), `{"published":"${output}"}`);
    assert.deepEqual(decoded(Book, enc(Book, '{"published":"1969-12-31T23:59:59.5Z"}')).published, { seconds: '-1', nanos: 500000000 });
  });
  it('Timestamp: bad dates and out-of-range values fail both ways', () => {
    for (const bad of ['2021-02-29T00:00:00Z', '2021-13-01T00:00:00Z', '2021-01-01 00:00:00Z', '2021-01-01T00:00:00', '2021-01-01T24:00:00Z', '2021-01-01T00:00:00.1234567890Z']) {
      assert.throws(() => enc(Book, `{"published":"${bad}"}`), /published: expected a Timestamp in RFC 3339 form/, bad);
    }
    assert.throws(() => enc(Book, '{"published":"0000-12-31T23:59:59Z"}'), /published: Timestamp out of range|expected a Timestamp/);
    assert.throws(() => enc(Book, '{"published":"9999-12-31T23:59:59-01:00"}'), /published: Timestamp out of range/);
    assert.throws(() => printBook({ published: { seconds: '253402300800' } }), /published: Timestamp out of range/);
    assert.throws(() => printBook({ published: { seconds: 0, nanos: -1 } }), /published: Timestamp out of range/);
  });
  it('Duration: fractions, negatives, "-0.5s", range', () => {
    const cases: [string, string][] = [['1.5s', '1.500s'], ['-0.5s', '-0.500s'], ['0s', '0s'], ['-3s', '-3s'], ['1.000000001s', '1.000000001s'], ['315576000000s', '315576000000s'], ['0.00001s', '0.000010s']];
    for (const [input, output] of cases) assert.equal(through(Book, `{"readingTime":"${input}"}`), `{"readingTime":"${output}"}`);
    assert.deepEqual(decoded(Book, enc(Book, '{"readingTime":"-1.5s"}')).reading_time, { seconds: '-1', nanos: -500000000 });
    for (const bad of ['1.5', '1.5S', '+1s', '1.0000000001s', '315576000001s', '1m']) {
      assert.throws(() => enc(Book, `{"readingTime":"${bad}"}`), /readingTime: (expected a Duration|Duration out of range)/, bad);
    }
    assert.throws(() => printBook({ reading_time: { seconds: 1, nanos: -1 } }), /readingTime: Duration out of range or with mixed signs/);
  });
  it('FieldMask: camelCase in JSON, snake_case on the wire', () => {
    const bytes = enc(Book, '{"updateMask":"title,author.authorId,author.address.countryCode"}');
    assert.deepEqual(decoded(Book, bytes).update_mask, { paths: ['title', 'author.author_id', 'author.address.country_code'] });
    assert.equal(protoToJson(Book, bytes, PRINT), '{"updateMask":"title,author.authorId,author.address.countryCode"}');
    assert.equal(through(Book, '{"updateMask":""}'), '{"updateMask":""}');
    assert.throws(() => enc(Book, '{"updateMask":"author_id"}'), /updateMask: expected a FieldMask/);
    assert.throws(() => printBook({ update_mask: { paths: ['Bad_name'] } }), /updateMask: FieldMask path has no lowerCamel form/);
  });
  it('Struct, Value and ListValue keep key names as written', () => {
    const json = '{"metadata":{"snake_case":1,"camelCase":[true,null,"s",{"nested_key":{}}],"":-0.5},"extra":{"a_b":[]},"tags":[1,[2],{"x_y":null}]}';
    assert.equal(through(Book, json), json);
    assert.equal(through(Book, json, { protoFieldNames: true }), json.replace('"metadata"', '"metadata"').replace(/"extra"/, '"extra"'));
    assert.equal(through(Book, '{"extra":"str"}'), '{"extra":"str"}');
    assert.equal(through(Book, '{"extra":12.5}'), '{"extra":12.5}');
    assert.equal(through(Book, '{"extra":false}'), '{"extra":false}');
  });
  it('Value: null is a value, not unset (also in repeated fields and maps)', () => {
    assert.equal(through(Book, '{"extra":null,"values":[null],"props":{"k":null}}'), '{"extra":null,"values":[null],"props":{"k":null}}');
    assert.deepEqual(decoded(Book, enc(Book, '{"extra":null}')).extra, { nullValue: 'NULL_VALUE' });
  });
  it('Value: numbers that JSON cannot carry fail', () => {
    assert.throws(() => printBook({ extra: { numberValue: NaN } }), /extra: a Value number cannot be NaN or Infinity/);
    assert.throws(() => enc(Book, '{"extra":1e999}'), /extra: number out of range for a Value/);
    assert.throws(() => enc(Book, '{"metadata":{"a":1,"a":2}}'), /metadata\[\]: Struct key set twice/);
    assert.throws(() => enc(Book, '{"metadata":[]}'), /metadata: expected an object for Struct/);
  });
  it('NullValue field: null is its value', () => {
    assert.deepEqual(decoded(Book, enc(Book, '{"nullField":null}')).null_field, undefined); // zero: not written
    assert.equal(through(Book, '{"nullField":"NULL_VALUE"}', { emitDefaults: true }).includes('"nullField":null'), true);
  });
  it('wrappers: the bare value, null as unset, 64-bit as strings, zero kept', () => {
    const json = '{"wDouble":"NaN","wFloat":1.5,"wInt64":"9007199254740993","wUint64":"18446744073709551615","wInt32":0,"wUint32":7,"wBool":false,"wString":"","wBytes":"AQ=="}';
    assert.equal(through(Book, json), json);
    assert.deepEqual(decoded(Book, enc(Book, '{"wInt32":0}')).w_int32, {});
    assert.equal(through(Book, '{"wInt64":5}'), '{"wInt64":"5"}');
    assert.throws(() => enc(Book, '{"wInt32":{"value":1}}'), /wInt32: expected an int32, got an object/);
  });
  it('Empty is {}', () => {
    assert.equal(through(Book, '{"nothing":{}}'), '{"nothing":{}}');
    assert.throws(() => enc(Book, '{"nothing":{"x":1}}'), /nothing.x: unknown field/);
  });
  it('Any: a message type from the registry, "@type" anywhere in the object', () => {
    const json = '{"attachment":{"name":"n","@type":"type.googleapis.com/lobbytest.v1.Author","authorId":"9007199254740993"}}';
    assert.equal(through(Book, json), '{"attachment":{"@type":"type.googleapis.com/lobbytest.v1.Author","name":"n","authorId":"9007199254740993"}}');
    const any = decoded(Book, enc(Book, json)).attachment as { type_url: string; value: string };
    assert.equal(any.type_url, 'type.googleapis.com/lobbytest.v1.Author');
    assert.deepEqual(decoded(Author, Buffer.from(any.value, 'base64')), { name: 'n', author_id: '9007199254740993' });
  });
  it('Any: well-known types use the "value" form, also nested Any', () => {
    const cases = [
      '{"@type":"type.googleapis.com/google.protobuf.Duration","value":"1.500s"}',
      '{"@type":"type.googleapis.com/google.protobuf.Timestamp","value":"2020-01-01T00:00:00Z"}',
      '{"@type":"type.googleapis.com/google.protobuf.Struct","value":{"a_b":1}}',
      '{"@type":"type.googleapis.com/google.protobuf.Value","value":null}',
      '{"@type":"type.googleapis.com/google.protobuf.Int64Value","value":"9007199254740993"}',
      '{"@type":"type.googleapis.com/google.protobuf.FieldMask","value":"a.bC"}',
      '{"@type":"type.googleapis.com/google.protobuf.Empty","value":{}}',
      '{"@type":"type.googleapis.com/google.protobuf.Any","value":{"@type":"type.googleapis.com/lobbytest.v1.Author","name":"x"}}',
    ];
    for (const c of cases) assert.equal(through(Book, `{"attachment":${c}}`), `{"attachment":${c}}`, c);
    assert.equal(through(Book, '{"attachments":[{},{"@type":"type.googleapis.com/google.protobuf.Empty"}]}'),
      '{"attachments":[{},{"@type":"type.googleapis.com/google.protobuf.Empty","value":{}}]}');
  });
  it('Any: unknown types and malformed forms fail', () => {
    assert.throws(() => enc(Book, '{"attachment":{"@type":"type.googleapis.com/no.Such"}}'), /attachment.@type: unknown type in the type registry/);
    assert.throws(() => enc(Book, '{"attachment":{"name":"x"}}'), /attachment: Any needs an "@type"/);
    assert.throws(() => enc(Book, '{"attachment":{"@type":"type.googleapis.com/google.protobuf.Duration","seconds":1}}'), /attachment: Any of Duration takes exactly "@type" and "value"/);
    assert.throws(() => enc(Book, '{"attachment":{"@type":"type.googleapis.com/lobbytest.v1.Author","nope":1}}'), /attachment.nope: unknown field/);
  });
});

describe('body framing', () => {
  it('an empty body is an empty message', () => {
    assert.equal(jsonToProto(Book, new Uint8Array(0), { ignoreUnknownFields: false }).length, 0);
  });
  it('a body for one field (google.api.http body: "<field>")', () => {
    const bytes = jsonToProto(Book, Buffer.from('{"name":"n"}'), { ignoreUnknownFields: false }, undefined, 'author');
    assert.equal(protoToJson(Book, bytes, PRINT), '{"author":{"name":"n"}}');
  });
  it('whitespace around the value is fine; anything else after it is not', () => {
    assert.equal(through(Book, ' \n{"title":"t"}\r\n\t'), '{"title":"t"}');
    assert.throws(() => enc(Book, '{"title":"t"} {}'), /unexpected data after the JSON value/);
    assert.throws(() => enc(Book, '{"title":"t"}x'), /unexpected data after the JSON value/);
  });
  it('invalid UTF-8 is rejected (fatal decoder), not replaced', () => {
    const body = Buffer.concat([Buffer.from('{"title":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    assert.throws(() => jsonToProto(Book, body, { ignoreUnknownFields: false }), /request body is not valid UTF-8/);
  });
  it('lone surrogates, control characters, JSON syntax errors', () => {
    assert.throws(() => enc(Book, '{"title":"\\ud800"}'), /unpaired surrogate/);
    assert.throws(() => enc(Book, '{"title":"a\u0001"}'), /control character/);
    for (const bad of ['{', '{"a" 1}', '[1,]', '{"title":tru}', '{"pages":01}', '{"pages":+1}', '{"pages":.5}', "{'a':1}", '{"a":1,}']) {
      assert.throws(() => enc(Book, bad), /invalid JSON at offset \d+/, bad);
    }
  });
  it('the top level must be an object', () => {
    assert.throws(() => enc(Book, '[]'), /expected an object for Book, got an array/);
  });
});
