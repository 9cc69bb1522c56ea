// What a filter unit test runs a filter against, with no gateway process (Envoy's
// filter_test.cc idea): a RequestContext whose client response is a recorder (the real
// exchange writes the local reply into it: status, headers, JSON body), and a ResponseHead
// over a plain header list with the contract's set/append/remove semantics.
// Filters are built from the config the real compiler produced (compiledFilterConfig).
import { compileConfig } from '../../src/control/compile.js';
import type { FilterFactory, ResponseHead, WorkerEnv } from '../../src/data/chain.js';
import { RequestContext } from '../../src/data/request-context.js';
import type { RawConfigInput } from '../../src/control/config-schema.js';
import type { GatewayErrorSpec } from '../../src/shared/errors.js';
import { methodBit } from '../../src/shared/methods.js';

export interface RecordedReply {
  spec: GatewayErrorSpec;
  headers: readonly string[] | null;
}

export interface FakeRequest {
  headers?: string[];
  query?: string;
  clientIp?: string;
  /** Default GET. */
  method?: string;
  forwardedFor?: string;
}

/**
 * A context for one request; `replies` lists each local reply a filter made, read back from
 * what the exchange wrote: the error body's status/code/message and the response headers.
 */
export function fakeContext(req: FakeRequest = {}): { ctx: RequestContext; replies: RecordedReply[] } {
  const replies: RecordedReply[] = [];
  let headers: string[] = [];
  let status = 0;
  const res = {
    cork(fn: () => void) { fn(); },
    writeStatus(line: string) { headers = []; status = Number(line.slice(0, 3)); },
    // A bodiless reply (a CORS preflight's 204): recorded with an empty code and message.
    endWithoutBody() { replies.push({ spec: { status, code: '', message: '' }, headers }); },
    // uWS writes `name: value\r\n`; the exchange may join several headers into one call
    // (exchange.ts writeHeaders), so the recorder reads the lines back as the wire has them.
    writeHeader(name: string, value: string | Buffer) {
      for (const line of `${name}: ${String(value)}`.split('\r\n')) {
        const colon = line.indexOf(': ');
        headers.push(line.slice(0, colon), line.slice(colon + 2));
      }
    },
    end(body: string) {
      const { status, code, message } = (JSON.parse(body) as { error: GatewayErrorSpec }).error;
      replies.push({ spec: { status, code, message }, headers });
    },
  };
  const ctx = new RequestContext(res as never, {} as never, 0);
  ctx.headers.push(...(req.headers ?? []));
  ctx.query = req.query ?? '';
  ctx.clientIp = req.clientIp ?? '192.0.2.10';
  ctx.method = req.method ?? 'GET';
  ctx.methodBit = methodBit(ctx.method);
  ctx.forwardedFor = req.forwardedFor ?? '';
  return { ctx, replies };
}

/** A response head over [name, value, ...] (e.g. what an upstream sent); names compared lower-case. */
export function fakeHead(status: number, headers: string[] = []): ResponseHead & { headers: string[] } {
  const list = headers;
  const drop = (name: string) => {
    const n = name.toLowerCase();
    for (let i = list.length - 2; i >= 0; i -= 2) if (list[i].toLowerCase() === n) list.splice(i, 2);
  };
  return {
    status,
    headers: list,
    set(name, value) { drop(name); list.push(name.toLowerCase(), value); },
    append(name, value) { list.push(name.toLowerCase(), value); },
    remove: drop,
    removePrefixed(prefix) {
      for (let i = list.length - 2; i >= 0; i -= 2) if (list[i].toLowerCase().startsWith(prefix)) list.splice(i, 2);
    },
  };
}

/** The values of header `name` in a flat list. */
export function valuesOf(headers: readonly string[] | null, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; headers && i < headers.length; i += 2) if (headers[i] === name) out.push(headers[i + 1]);
  return out;
}

export const testEnv: WorkerEnv = { workerIndex: 0, post: () => undefined };

/** The names of a route's compiled chain, in order. */
export function chainOf(raw: RawConfigInput, route: string): string[] {
  return compileConfig(raw, 'test.yaml').routes.find((r) => r.name === route)!.filters.map((f) => f.name);
}

/** The config `factory` compiled for `route` by the real compiler (throws if the route has none). */
export function compiledFilterConfig<C>(factory: FilterFactory<C, never>, raw: RawConfigInput, route: string, baseDir?: string): C {
  const compiled = compileConfig(raw, baseDir ? `${baseDir}/test.yaml` : 'test.yaml');
  const entry = compiled.routes.find((r) => r.name === route)?.filters.find((f) => f.name === factory.name);
  if (!entry) throw new Error(`route ${route} has no ${factory.name} filter`);
  return entry.config as C; // made by factory.compile (the registry pairs them by name)
}

/** The ConfigError text of a config that must not compile. */
export function compileError(raw: RawConfigInput): string {
  try {
    compileConfig(raw, 'test.yaml');
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('the config compiled');
}
