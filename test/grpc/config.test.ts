// The transcoder's config: config/examples/grpc.yaml loads, and each mistake is reported with
// its key path and what is wrong (an unknown service, a rule that names a missing field, a
// template that does not parse, a missing proto, a service both HTTP and gRPC).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { loadConfigFile } from '../../src/control/config-load.js';
import { compileConfig } from '../../src/control/compile.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { ConfigError } from '../../src/control/config-error.js';
import { BOOKSTORE_PROTO, FIXTURE_DIR } from './bookstore-server.js';
import { parseTemplate } from '../../src/grpc/http-rule.js';

const EXAMPLES = fileURLToPath(new URL('../../../config/examples/', import.meta.url));

function errors(config: RawConfigInput): string {
  try {
    compileConfig(config, join(FIXTURE_DIR, 'gateway.yaml'));
  } catch (err) {
    if (err instanceof ConfigError) return err.message;
    throw err;
  }
  return '';
}

const service = (extra: object = {}) => ({ grpc: { targets: ['127.0.0.1:50051'] }, descriptors: { protos: [BOOKSTORE_PROTO], include: ['.'] }, ...extra });
const route = (transcode: { services: string[] }) => ({ name: 'r', match: { prefix: '/v1' }, service: 'books', transcode });

test('config/examples/grpc.yaml loads, with its proto', async () => {
  const config = await loadConfigFile(join(EXAMPLES, 'grpc.yaml'));
  const svc = config.services[0];
  assert.equal(svc.grpc?.targets[0].address, '127.0.0.1:9003');
  assert.ok(svc.grpc?.descriptorJson, 'descriptors parsed from config/protos/shop/v1/bookstore.proto');
  assert.deepEqual(config.routes[0].transcode?.services, ['shop.v1.BookstoreService']);
  assert.ok(config.routes[0].transcode?.requestHeaders.includes('authorization'));
  assert.ok(config.routes[0].transcode?.requestHeaders.includes('x-tenant'));
});

test('a valid gRPC service and transcoding route compile', () => {
  assert.equal(errors({ services: { books: service() }, routes: [route({ services: ['bookstore.v1.Bookstore'] })] }), '');
});

test('mistakes are reported with their key paths', () => {
  assert.match(errors({ services: { books: service() }, routes: [route({ services: ['bookstore.v1.Nope'] })] }),
    /routes\[0\]\.transcode\.services: service "bookstore\.v1\.Nope" is not in the descriptors/);
  assert.match(errors({ services: { books: service({ descriptors: { protos: ['missing.proto'] } }) }, routes: [] }),
    /services\.books\.descriptors\.protos: cannot load the descriptors/);
  assert.match(errors({ services: { books: service({ targets: ['http://127.0.0.1:1'] }) }, routes: [] }),
    /services\.books\.targets: cannot be combined with grpc/);
  assert.match(errors({ services: { books: { grpc: { targets: ['127.0.0.1:1'] } } }, routes: [] }),
    /services\.books\.descriptors: is required for a gRPC service/);
  assert.match(errors({ services: { books: { grpc: { targets: ['http://127.0.0.1:1'] } }, descriptors: { reflection: true } } as never, routes: [] }),
    /must be "host:port"/);
  assert.match(errors({ services: { books: { targets: ['http://127.0.0.1:1'] } }, routes: [route({ services: ['x.Y'] })] }),
    /routes\[0\]\.transcode: needs a gRPC service/);
});

test('a rule naming a field the message lacks is reported', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lobby-grpc-'));
  try {
    await writeFile(join(dir, 'bad.proto'), `syntax = "proto3"; package bad; import "google/api/annotations.proto";
service S {
  rpc A(M) returns (M) { option (google.api.http) = { get: "/v1/{nope}" }; }
  rpc B(M) returns (M) { option (google.api.http) = { post: "/v1/b" body: "missing" }; }
  rpc C(M) returns (M) { option (google.api.http) = { get: "/v1/{id=**}/x" }; }
  rpc D(M) returns (M) { option (google.api.http) = { get: "/v1/d" response_body: "gone" }; }
  rpc E(M) returns (M) { option (google.api.http) = { get: "/v1/e/{labels}" }; }
}
message M { string id = 1; map<string, string> labels = 2; }`);
    const msg = (() => { try { compileConfig({ services: { s: { grpc: { targets: ['127.0.0.1:1'] }, descriptors: { protos: ['bad.proto'] } } }, routes: [{ name: 'r', match: { prefix: '/v1' }, service: 's', transcode: { services: ['bad.S'] } }] }, join(dir, 'g.yaml')); return ''; } catch (e) { return (e as Error).message; } })();
    assert.match(msg, /bad\.S\.A: path template "\/v1\/\{nope\}": bad\.M has no field "nope"/);
    assert.match(msg, /bad\.S\.B: body "missing": bad\.M has no such field/);
    assert.match(msg, /bad\.S\.C: path template "\/v1\/\{id=\*\*\}\/x" "\*\*" must be the last segment/);
    assert.match(msg, /bad\.S\.D: response_body "gone"/);
    // A map's entries come only from the query (labels[key]=value) or the body.
    assert.match(msg, /bad\.S\.E: path template "\/v1\/e\/\{labels\}": "labels" must be a singular scalar field/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('path templates: what parses and what does not', () => {
  const ok = parseTemplate('/v1/{book.name=shelves/*/books/*}:publish');
  assert.ok(typeof ok === 'object');
  assert.equal(ok.verb, 'publish');
  assert.deepEqual(ok.variables, [{ fieldPath: ['book', 'name'], start: 1, end: 5 }]);
  for (const bad of ['v1/x', '/v1/{a', '/v1/{a}/{a}', '/v1/**/x', '/v1/{a={b}}', '/v1//x', '/v1/{1a}']) {
    assert.equal(typeof parseTemplate(bad), 'string', bad);
  }
});

test('request_headers: a name gRPC metadata cannot have is a config error with its key path, not dropped on every request', () => {
  const transcode = { services: ['bookstore.v1.Bookstore'], request_headers: ['X-Tenant', 'grpc-timeout', 'x!y', 'te', 'X_Ok'] };
  const msg = errors({ services: { books: service() }, routes: [route(transcode)] });
  assert.match(msg, /routes\[0\]\.transcode\.request_headers\[1\]: "grpc-timeout" is a grpc-\* name/);
  assert.match(msg, /routes\[0\]\.transcode\.request_headers\[2\]: "x!y" is not a gRPC metadata name/);
  assert.match(msg, /routes\[0\]\.transcode\.request_headers\[3\]: "te" is a header the gRPC client writes itself/);
  assert.doesNotMatch(msg, /request_headers\[(0|4)\]/, 'upper case is lowered; "_" is a metadata character');
  const ok = compileConfig({ services: { books: service() }, routes: [route({ services: ['bookstore.v1.Bookstore'], request_headers: ['X-Tenant', 'x_ok'] } as never)] }, join(FIXTURE_DIR, 'gateway.yaml'));
  assert.deepEqual(ok.routes[0].transcode?.requestHeaders, ['authorization', 'traceparent', 'tracestate', 'x-tenant', 'x_ok']);
});
