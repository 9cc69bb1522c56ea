// A gRPC service takes no health_check or outlier (both speak HTTP: GET /path and HTTP
// statuses): the config is refused with the key path and why, not probed over HTTP.
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
