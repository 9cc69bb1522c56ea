// request-validation on its own (issue 16): ajv (draft 2020-12, formats) schemas per route and
// method for the JSON body and the query; failures name pointers and keywords, never values;
// a schema ajv refuses is a config error at its key path; the body is parsed only when needed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NEXT, REPLY } from '../../src/data/chain.js';
import { requestValidation } from '../../src/filters/request-validation/index.js';
import { NOT_PARSED } from '../../src/data/request-body.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import { compileError, compiledFilterConfig, fakeContext } from './fake-exchange.js';

const order = {
  type: 'object', required: ['email', 'items'], additionalProperties: false,
  properties: {
    email: { type: 'string', format: 'email' },
    items: { type: 'array', minItems: 1, items: { type: 'object', required: ['sku'], properties: { sku: { type: 'string', pattern: '^SKU-[0-9]+$' }, qty: { type: 'integer', minimum: 1 } } } },
  },
};
const raw = (validate: unknown): RawConfigInput => ({
  services: { s: { targets: ['http://127.0.0.1:9'] } },
  routes: [{ name: 'r', match: { prefix: '/' }, service: 's', validate }],
} as RawConfigInput);

function run(validate: unknown, req: { method?: string; query?: string; body?: string }) {
  const filter = requestValidation.build(compiledFilterConfig(requestValidation, raw(validate), 'r'));
  const { ctx, replies } = fakeContext({ method: req.method ?? 'POST', query: req.query });
  if (req.body !== undefined) ctx.body = Buffer.from(req.body);
  return { verdict: filter.onRequest(ctx), replies, ctx };
}

test('a body that fails the method\'s schema is 400 request_invalid naming each pointer and keyword, never the value', () => {
  const v = { POST: { body: order } };
  assert.equal(run(v, { body: JSON.stringify({ email: 'a@example.com', items: [{ sku: 'SKU-1', qty: 2 }] }) }).verdict, NEXT);
  const bad = run(v, { body: JSON.stringify({ email: 'secret-not-an-email', items: [{ sku: 'evil<script>', qty: 0 }], extra: 'x' }) });
  assert.equal(bad.verdict, REPLY);
  const { status, code, message } = bad.replies[0].spec;
  assert.equal(status, 400);
  assert.equal(code, 'request_invalid');
  for (const part of ['body (additionalProperties)', 'body/email (format)', 'body/items/0/sku (pattern)', 'body/items/0/qty (minimum)']) assert.ok(message.includes(part), `${part} in ${message}`);
  assert.doesNotMatch(message, /secret|evil|extra/);
  assert.match(run(v, { body: '{"email": ' }).replies[0].spec.message, /body \(not JSON\)/);
  assert.match(run(v, {}).replies[0].spec.message, /body \(type\)/, 'no body where one is required');
  assert.match(run(v, { body: '{"items":[{"sku":"SKU-1"}]}' }).replies[0].spec.message, /body\/email \(required\)/);
});

test('a key the client chose (additionalProperties, patternProperties) is not echoed in the pointer: *', () => {
  const v = { POST: { body: { type: 'object', properties: { tags: { type: 'object', additionalProperties: { type: 'integer' } } }, additionalProperties: { type: 'string' } } },
    GET: { query: { type: 'object', additionalProperties: { type: 'integer' } } } };
  const bad = run(v, { body: JSON.stringify({ hunter2: 1, tags: { 'secret<script>': 'x', ok: 2 } }) }).replies[0].spec.message;
  assert.match(bad, /body\/\* \(type\), body\/tags\/\* \(type\)/);
  assert.doesNotMatch(bad, /hunter2|secret|script/);
  const q = run(v, { method: 'GET', query: 'password123=x' }).replies[0].spec.message;
  assert.match(q, /query\/\* \(type\)/);
  assert.doesNotMatch(q, /password123/);
});

test('per method, * for the others; query schemas coerce strings; no schema for the method parses nothing', () => {
  const v = { GET: { query: { type: 'object', properties: { page: { type: 'integer', minimum: 1 }, sort: { enum: ['asc', 'desc'] } }, required: ['page'] } }, '*': { body: { type: 'object' } } };
  assert.equal(run(v, { method: 'GET', query: 'page=2&sort=asc' }).verdict, NEXT);
  assert.match(run(v, { method: 'GET', query: 'page=0' }).replies[0].spec.message, /query\/page \(minimum\)/);
  assert.match(run(v, { method: 'GET', query: 'sort=sideways' }).replies[0].spec.message, /query\/page \(required\), query\/sort \(enum\)/);
  assert.equal(run(v, { method: 'PUT', body: '{}' }).verdict, NEXT);
  assert.equal(run(v, { method: 'PUT', body: '[]' }).verdict, REPLY);
  const get = run(v, { method: 'GET', query: 'page=1', body: '{"not":"parsed"}' });
  assert.equal(get.ctx.bodyJson, NOT_PARSED, 'a method without a body schema leaves the body unparsed');
});

test('a schema ajv refuses is a config error naming its key path', () => {
  assert.match(compileError(raw({ POST: { body: { type: 'no-such-type' } } })), /routes\[0\]\.validate\.POST\.body|routes.0.validate.POST.body/);
  assert.match(compileError(raw({ post: { body: {} } })), /must be a method in capitals/);
});
