// A route's `services` (a weighted split over several services, optionally `sticky`) and its
// `mirror` (copies of its requests to another service): the schema fragments config-schema.ts
// places under each route, and their compilation (docs/traffic-splitting.md). What a request
// does with them is in src/data/upstream/split.ts and mirror.ts.
import { z } from 'zod';
import { BUFFERED_BODY_MAX, type CompiledMirror, type CompiledSplit, type CompiledSticky } from '../shared/compiled-config.js';
import { GATEWAY_OWNED_REQUEST_HEADERS } from '../shared/http-syntax.js';
import { HEADER_NAME_TOKEN, positiveInt, rule, section } from './schema-kit.js';
import { unknownNameMessage, type KeyPath } from './config-error.js';

/** Largest weight of one member: a typo guard (weights are relative; 90/10 is 9/1). */
export const MAX_SPLIT_WEIGHT = 1_000_000;
export const DEFAULT_MIRROR_IN_FLIGHT = 64;

/** `sticky.header`: a header a filter can see (the front door keeps the gateway's own). */
function checkStickyHeader(raw: string): string | null {
  if (!HEADER_NAME_TOKEN.test(raw)) return 'must be an HTTP header name (letters, digits and !#$%&\'*+.^`|~-)';
  if (GATEWAY_OWNED_REQUEST_HEADERS.has(raw.toLowerCase())) {
    return `cannot be ${JSON.stringify(raw)}: the gateway handles that header itself and the split never sees it`;
  }
  return null;
}

const splitMemberSchema = section({
  name: z.string().min(1),
  weight: z.number().int().min(0, { error: 'must be at least 0 (0: the member gets no requests)' })
    .max(MAX_SPLIT_WEIGHT, { error: `must be at most ${MAX_SPLIT_WEIGHT} (weights are relative: 90 and 10 split as 9 and 1 do)` }),
});

const stickySchema = section({
  header: z.string().superRefine(rule(checkStickyHeader)).optional(),
  cookie: z.string().regex(HEADER_NAME_TOKEN, 'must be a cookie name (RFC 6265 token characters)').optional(),
  claim: z.string().regex(/^[A-Za-z0-9_.:-]+$/, 'must be a claim name, like "sub"').optional(),
}).superRefine((sticky, ctx) => {
  const set = (['header', 'cookie', 'claim'] as const).filter((key) => sticky[key] !== undefined);
  if (set.length !== 1) {
    ctx.addIssue({ code: 'custom', message: set.length === 0
      ? 'needs one of header, cookie or claim: where the value that keeps a client on one service comes from'
      : `has ${set.join(' and ')}; use exactly one of header, cookie or claim` });
  }
});

const mirrorSchema = section({
  service: z.string().min(1),
  percent: z.number().gt(0, { error: 'must be greater than 0 (remove mirror to mirror nothing)' }).max(100).default(100),
  max_body_bytes: z.number().int().min(0).max(BUFFERED_BODY_MAX, {
    error: `must be at most ${BUFFERED_BODY_MAX}: larger bodies are streamed to the upstream, not buffered, and a stream cannot be copied`,
  }).default(BUFFERED_BODY_MAX),
  max_in_flight: positiveInt.max(100_000).default(DEFAULT_MIRROR_IN_FLIGHT),
});

/** Keys of a route (config-schema.ts routeSchema spreads them). */
export const trafficRouteKeys = {
  services: z.array(splitMemberSchema).min(1, { error: 'must list at least one service' }).optional(),
  sticky: stickySchema.optional(),
  mirror: mirrorSchema.optional(),
};

type RawSplitMember = z.output<typeof splitMemberSchema>;
type RawSticky = z.output<typeof stickySchema>;
type RawMirror = z.output<typeof mirrorSchema>;

/** What the compilation reads of a route and of the config. */
export interface TrafficRoute {
  service?: string;
  services?: RawSplitMember[];
  sticky?: RawSticky;
  mirror?: RawMirror;
  transcode?: unknown;
  auth?: { provider?: string; providers?: string[] };
}
export interface TrafficContext {
  serviceIndexByName: ReadonlyMap<string, number>;
  /** gRPC services by name: neither a split member nor a mirror may be one. */
  isGrpc(service: string): boolean;
  /** claims_to_headers of an auth provider, or undefined for an unknown one. */
  claimHeaders(provider: string): Readonly<Record<string, string>> | undefined;
  report(path: KeyPath, message: string): void;
}

/** A service name a route refers to: its index, or undefined after reporting why not. */
function serviceRef(name: string, path: KeyPath, rule: string, c: TrafficContext): number | undefined {
  const index = c.serviceIndexByName.get(name);
  if (index === undefined) {
    c.report(path, unknownNameMessage('service', name, [...c.serviceIndexByName.keys()], 'no services are defined'));
    return undefined;
  }
  if (c.isGrpc(name)) {
    c.report(path, `service ${JSON.stringify(name)} is a gRPC service (grpc:); ${rule}`);
    return undefined;
  }
  return index;
}

/**
 * The route's split, or null when it has none or when a problem was reported (then also
 * `failed`). Checks: exactly one of `service` and `services`; known, distinct, HTTP members;
 * weights summing to more than 0; `sticky` only on a split, a claim only with `auth`.
 */
export function compileSplit(route: TrafficRoute, at: KeyPath, c: TrafficContext): { split: CompiledSplit | null; failed: boolean } {
  let failed = false;
  const report = (path: KeyPath, message: string) => { failed = true; c.report(path, message); };
  if (route.services === undefined) {
    if (route.sticky !== undefined) report([...at, 'sticky'], 'applies to a weighted split (services: [...]); a route with one service has nothing to stick to');
    return { split: null, failed };
  }
  if (route.service !== undefined) {
    report([...at, 'services'], 'cannot be combined with service: a route sends to one service, or splits over several');
  }
  if (route.transcode !== undefined) {
    report([...at, 'transcode'], 'cannot be combined with services: a transcoding route calls one gRPC service');
  }
  const firstByName = new Map<string, number>();
  const members = route.services.map((member, k) => {
    const path: KeyPath = [...at, 'services', k, 'name'];
    const first = firstByName.get(member.name);
    if (first !== undefined) {
      report(path, `service ${JSON.stringify(member.name)} is already listed as services[${first}]`);
      return null;
    }
    firstByName.set(member.name, k);
    const service = serviceRef(member.name, path, 'the members of a split are HTTP services', { ...c, report });
    return service === undefined ? null : { service, weight: member.weight };
  });
  const total = route.services.reduce((sum, m) => sum + m.weight, 0);
  if (total === 0) report([...at, 'services'], 'weights sum to 0: at least one service needs a weight above 0');
  const sticky = route.sticky === undefined ? null : compileSticky(route, route.sticky, [...at, 'sticky'], c, report);
  if (failed || members.some((m) => m === null)) return { split: null, failed: true };
  let sum = 0;
  return {
    split: { members: members.map((m) => m!), cumulative: members.map((m) => (sum += m!.weight)), total, sticky },
    failed: false,
  };
}

function compileSticky(route: TrafficRoute, raw: RawSticky, at: KeyPath, c: TrafficContext, report: TrafficContext['report']): CompiledSticky | null {
  if (raw.header !== undefined) return { kind: 'header', header: raw.header.toLowerCase() };
  if (raw.cookie !== undefined) return { kind: 'cookie', cookie: raw.cookie };
  const claim = raw.claim!;
  if (route.auth === undefined) {
    report([...at, 'claim'], `needs auth on the route: the claim ${JSON.stringify(claim)} is only known once a token was verified`);
    return null;
  }
  // `sub` is the subject the auth filter records; another claim is read from the identity
  // header its provider injects it as, which no client can send (the auth filter strips it).
  if (claim === 'sub') return { kind: 'claim', claim, header: '' };
  // Every provider of the route (a jwt and an introspection one) must inject it, as one header.
  let header: string | undefined;
  for (const provider of route.auth.providers ?? [route.auth.provider ?? '']) {
    const headers = c.claimHeaders(provider);
    if (headers === undefined) return null; // an unknown provider: reported by the auth compiler
    const its = headers[claim]?.toLowerCase();
    if (its === undefined) {
      report([...at, 'claim'], `auth provider ${JSON.stringify(provider)} must inject the claim ${JSON.stringify(claim)} (claims_to_headers: { ${claim}: X-Some-Header }), or stick by sub`);
      return null;
    }
    if (header !== undefined && its !== header) {
      report([...at, 'claim'], `the route's auth providers inject the claim ${JSON.stringify(claim)} as ${header} and ${its}; use one header name`);
      return null;
    }
    header = its;
  }
  if (header === undefined) return null;
  return { kind: 'claim', claim, header };
}

/** The route's mirror, or null (none, or a problem reported). */
export function compileMirror(route: TrafficRoute, at: KeyPath, c: TrafficContext): CompiledMirror | null {
  const raw = route.mirror;
  if (raw === undefined) return null;
  const path: KeyPath = [...at, 'mirror', 'service'];
  const served = route.services?.map((m) => m.name) ?? (route.service === undefined ? [] : [route.service]);
  if (served.includes(raw.service)) {
    c.report(path, `${JSON.stringify(raw.service)} already serves this route: a mirror is another service (one under test)`);
    return null;
  }
  if (route.transcode !== undefined) {
    c.report([...at, 'mirror'], 'cannot be combined with transcode: a transcoded request is a gRPC call, not an HTTP request to copy');
    return null;
  }
  const service = serviceRef(raw.service, path, 'a mirror is an HTTP service', c);
  if (service === undefined) return null;
  return { service, percent: raw.percent, maxBodyBytes: raw.max_body_bytes, maxInFlight: raw.max_in_flight };
}
