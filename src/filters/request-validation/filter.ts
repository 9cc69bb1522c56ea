// The `request-validation` filter's runtime (phase `policy`): the method's schemas (its own, or
// `*`'s) against the query parameters and the JSON body; a failure is 400 `request_invalid`
// naming each failing JSON pointer and schema keyword, never the value. The body is parsed only
// when the method has a body schema (src/data/request-body.ts, shared with the waf filter).
import { NEXT, localReply, type Filter, type Verdict } from '../../data/chain.js';
import type { RequestContext } from '../../data/request-context.js';
import { GW_ERR, type GatewayErrorSpec } from '../../shared/errors.js';
import { jsonBodyOf, MALFORMED } from '../../data/request-body.js';
import { compileSchema, type ValidateFunction } from './ajv.js';

export interface RequestValidationConfig {
  /** methodBit 0: every method without its own entry. */
  readonly entries: readonly { methodBit: number; body: unknown; query: unknown }[];
}

interface Compiled { body: ValidateFunction | null; query: ValidateFunction | null; named: ReadonlySet<string> }

/** Every property name a schema declares (properties, required, dependentRequired), walked once at build. */
function declaredNames(schema: unknown, into: Set<string>): Set<string> {
  if (Array.isArray(schema)) { for (const s of schema) declaredNames(s, into); return into; }
  if (schema === null || typeof schema !== 'object') return into;
  const o = schema as Record<string, unknown>;
  if (o.properties !== null && typeof o.properties === 'object') for (const k of Object.keys(o.properties)) into.add(k);
  if (Array.isArray(o.required)) for (const k of o.required) if (typeof k === 'string') into.add(k);
  for (const v of Object.values(o)) declaredNames(v, into);
  return into;
}

/** A pointer segment the client chose (an additionalProperties/patternProperties key) is not echoed: '*'. */
function pointerOf(path: string, named: ReadonlySet<string>): string {
  if (path === '') return path;
  let out = '';
  for (const seg of path.slice(1).split('/')) {
    const key = seg.replace(/~1/g, '/').replace(/~0/g, '~');
    out += '/' + (named.has(key) || /^\d{1,6}$/.test(seg) ? seg : '*');
  }
  return out;
}

/** At most this many failures are named in one answer. */
const MAX_NAMED = 10;

/** The query string as an object: a name given once is a string, more often an array. */
export function queryObject(query: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
  if (query === '') return out;
  for (const [name, value] of new URLSearchParams(query)) {
    const prev = out[name];
    out[name] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
  }
  return out;
}

function failure(part: 'body' | 'query', errors: ValidateFunction['errors'], declared: ReadonlySet<string>): string {
  const named = (errors ?? []).slice(0, MAX_NAMED).map((e) => {
    // A missing property names the schema's key (the schema's text, not the client's).
    const at = pointerOf(e.instancePath, declared) + (e.keyword === 'required' ? `/${String((e.params as { missingProperty?: string }).missingProperty ?? '')}` : '');
    return `${part}${at} (${e.keyword})`;
  });
  return named.join(', ');
}

class RequestValidationFilter implements Filter {
  readonly name = 'request-validation';
  private readonly byMethod = new Map<number, Compiled>();
  private fallback: Compiled | null = null;

  constructor(config: RequestValidationConfig) {
    for (const e of config.entries) {
      const c: Compiled = {
        body: e.body === null ? null : compileSchema(e.body, 'body'),
        query: e.query === null ? null : compileSchema(e.query, 'query'),
        named: declaredNames([e.body, e.query], new Set()),
      };
      if (e.methodBit === 0) this.fallback = c; else this.byMethod.set(e.methodBit, c);
    }
  }

  onRequest(ctx: RequestContext): Verdict {
    const c = this.byMethod.get(ctx.methodBit) ?? this.fallback;
    if (c === null) return NEXT;
    if (c.query !== null && !c.query(queryObject(ctx.query))) return this.refuse(ctx, failure('query', c.query.errors, c.named));
    if (c.body !== null) {
      if (ctx.body !== null && !Buffer.isBuffer(ctx.body)) return localReply(ctx, GW_ERR.payload_too_large); // streamed: too large to validate
      const json = jsonBodyOf(ctx);
      if (json === MALFORMED) return this.refuse(ctx, 'body (not JSON)');
      if (!c.body(json === null ? undefined : json)) return this.refuse(ctx, failure('body', c.body.errors, c.named));
    }
    return NEXT;
  }

  private refuse(ctx: RequestContext, what: string): Verdict {
    // A spec per failure: only refused requests make one (the exchange keys body prefixes weakly).
    const spec: GatewayErrorSpec = { status: 400, code: 'request_invalid', message: `${GW_ERR.request_invalid.message} Failing: ${what}.` };
    return localReply(ctx, spec);
  }
}

export function buildRequestValidation(config: RequestValidationConfig): Filter {
  return new RequestValidationFilter(config);
}
