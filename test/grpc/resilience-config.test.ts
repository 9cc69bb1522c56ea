// The resilience keys of a gRPC service: no health_check or outlier (both speak HTTP: GET
// /path and HTTP statuses) and no deadline_header (grpc-timeout is the header), refused with the
// key path and why; retry.on takes gRPC statuses there and HTTP conditions elsewhere.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { compileConfig } from '../../src/control/compile.js';
import { ConfigError } from '../../src/control/config-error.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { BOOKSTORE_PROTO, FIXTURE_DIR } from './bookstore-server.js';

test('health_check and outlier on a gRPC service are config errors naming the key', () => {
  const config = {
    services: {
      books: {
        grpc: { targets: ['127.0.0.1:50051'] }, descriptors: { protos: [BOOKSTORE_PROTO], include: ['.'] },
        health_check: { path: '/healthz' }, outlier: { consecutive_5xx: 3 },
      },
    },
    routes: [{ name: 'r', match: { prefix: '/v1' }, service: 'books', transcode: { services: ['bookstore.v1.Bookstore'] } }],
  } as unknown as RawConfigInput;
  let message = '';
  try { compileConfig(config, join(FIXTURE_DIR, 'gateway.yaml')); } catch (err) { if (err instanceof ConfigError) message = err.message; else throw err; }
  assert.match(message, /services\.books\.health_check: is for HTTP services/);
  assert.match(message, /services\.books\.outlier: is for HTTP services/);
});

test('deadline_header on a gRPC service is a config error: grpc-timeout carries the time left', () => {
  const config = {
    services: {
      books: { grpc: { targets: ['127.0.0.1:50051'] }, descriptors: { protos: [BOOKSTORE_PROTO], include: ['.'] }, deadline_ms: 500, deadline_header: 'x-left' },
    },
    routes: [{ name: 'r', match: { prefix: '/v1' }, service: 'books', transcode: { services: ['bookstore.v1.Bookstore'] } }],
  } as unknown as RawConfigInput;
  let message = '';
  try { compileConfig(config, join(FIXTURE_DIR, 'gateway.yaml')); } catch (err) { if (err instanceof ConfigError) message = err.message; else throw err; }
  assert.match(message, /services\.books\.deadline_header: does not apply to a gRPC service: the time left of deadline_ms always goes upstream as grpc-timeout/);
});

test('retry.on of a gRPC service takes gRPC statuses and timeout, and an HTTP service none of them', () => {
  const grpcService = { grpc: { targets: ['127.0.0.1:50051'] }, descriptors: { protos: [BOOKSTORE_PROTO], include: ['.'] } };
  const config = {
    services: {
      books: { ...grpcService, retry: { on: ['unavailable', 'connect_failure', 503] } },
      web: { targets: ['http://127.0.0.1:1'], retry: { on: ['reset', 'unavailable'] } },
    },
    routes: [
      { name: 'r', match: { prefix: '/v1' }, service: 'books', retry: { on: ['reset', 'internal'] }, transcode: { services: ['bookstore.v1.Bookstore'] } },
      { name: 'w', match: { prefix: '/w' }, service: 'web', retry: { on: ['cancelled'] } },
    ],
  } as unknown as RawConfigInput;
  let message = '';
  try { compileConfig(config, join(FIXTURE_DIR, 'gateway.yaml')); } catch (err) { if (err instanceof ConfigError) message = err.message; else throw err; }
  assert.match(message, /services\.books\.retry\.on\[1\]: "connect_failure" is for HTTP services; a gRPC service retries on cancelled, deadline_exceeded, resource_exhausted, internal, unavailable or timeout/);
  assert.match(message, /services\.books\.retry\.on\[2\]: 503 is for HTTP services/);
  assert.match(message, /services\.web\.retry\.on\[1\]: "unavailable" is a gRPC status, for gRPC services/);
  assert.match(message, /routes\[0\]\.retry\.on\[0\]: "reset" is for HTTP services/);
  assert.match(message, /routes\[1\]\.retry\.on\[0\]: "cancelled" is a gRPC status/);
  assert.doesNotMatch(message, /on\[0\]: "unavailable"|routes\[0\]\.retry\.on\[1\]/, 'the kind\'s own conditions pass');
});

test('a gRPC service retries on unavailable by default; on lists codes as bits, timeout as for HTTP', () => {
  const grpcService = { grpc: { targets: ['127.0.0.1:50051'] }, descriptors: { protos: [BOOKSTORE_PROTO], include: ['.'] } };
  const config = {
    services: { books: { ...grpcService, retry: { attempts: 3 } } },
    routes: [
      { name: 'd', match: { prefix: '/v1' }, service: 'books', transcode: { services: ['bookstore.v1.Bookstore'] } },
      { name: 'c', match: { prefix: '/v2' }, service: 'books', retry: { on: ['resource_exhausted', 'deadline_exceeded', 'timeout'] }, transcode: { services: ['bookstore.v1.Bookstore'] } },
    ],
  } as unknown as RawConfigInput;
  const compiled = compileConfig(config, join(FIXTURE_DIR, 'gateway.yaml'));
  const [d, c] = compiled.routes;
  assert.equal(d.retry!.grpcCodes, 1 << 14, 'UNAVAILABLE');
  assert.deepEqual([d.retry!.onConnectFailure, d.retry!.onReset, d.retry!.onTimeout, d.retry!.statuses], [false, false, false, []]);
  assert.equal(c.retry!.grpcCodes, (1 << 8) | (1 << 4));
  assert.equal(c.retry!.onTimeout, true);
  assert.equal(compiled.services[0].retryUsed, true);
});
