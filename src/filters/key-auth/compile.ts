// The `key-auth` filter's compile: `consumers` into the instance's consumer table
// (CompiledConfig.consumers, src/shared/consumer-config.ts) and `routes[].key_auth` into each
// route's filter config. The schema (schema.ts) checked each value alone; here:
//   - consumer names are unique, key ids unique within a consumer;
//   - a key hash belongs to one consumer (naming both when it does not): a key must say who it is;
//   - `routes` name routes that exist;
//   - the key header is not a metadata header some consumer injects.
import { createHash } from 'node:crypto';
import type { FilterCompilation, FilterCompileContext, FilterConfigPath as KeyPath } from '../../data/chain.js';
import { unknownNameMessage } from '../../control/config-error.js';
import { toByteString } from '../../shared/http-syntax.js';
import { KEY_DIGEST_BYTES, type CompiledConsumer, type CompiledConsumers, type KeyAuthFilterConfig } from '../../shared/consumer-config.js';
import { consumerHeaderNames, keyDigestOf, type RawConsumer, type RawRouteKeyAuth } from './schema.js';
import { identityHeaderNames, type RawAuth } from '../auth-jwt/schema.js';
import { parsePer } from '../rate-limit/schema.js';

declare module '../../shared/compiled-config.js' {
  interface CompiledFilterRuntimes {
    /** Consumers and their API keys (absent when the config has none). */
    consumers?: CompiledConsumers;
  }
}

/** What compile reads of the config. */
export interface KeyAuthInput {
  consumers?: readonly RawConsumer[];
  routes: readonly { name: string; key_auth?: RawRouteKeyAuth; auth?: object }[];
  auth?: RawAuth;
}

export function compileKeyAuth(config: KeyAuthInput, { report }: FilterCompileContext): FilterCompilation<KeyAuthFilterConfig> {
  const rawConsumers = config.consumers ?? [];
  const routeNames = config.routes.map((r) => r.name);
  const routeSet = new Set(routeNames);
  const consumers: CompiledConsumer[] = [];
  const digests: Buffer[] = [];
  const keyConsumer: number[] = [];
  const keyDisabled: number[] = [];
  const seenNames = new Map<string, number>();
  // digest (hex) → where it was first given, to name both places of a shared hash.
  const owners = new Map<string, { consumer: number; key: number }>();

  rawConsumers.forEach((raw, index) => {
    const at = (...keys: (string | number)[]): KeyPath => ['consumers', index, ...keys];
    const first = seenNames.get(raw.name);
    if (first !== undefined) {
      report(at('name'), `duplicate consumer name ${JSON.stringify(raw.name)} (also consumers[${first}])`);
      return;
    }
    seenNames.set(raw.name, index);
    const consumerIndex = consumers.length;
    const ids = new Set<string>();
    raw.keys.forEach((key, k) => {
      if (ids.has(key.id)) { report(at('keys', k, 'id'), `duplicate key id ${JSON.stringify(key.id)} in consumer ${JSON.stringify(raw.name)}`); return; }
      ids.add(key.id);
      const digest = keyDigestOf(key.hash);
      if (digest === null) return; // the schema reported it
      const hex = digest.toString('hex');
      const owner = owners.get(hex);
      if (owner !== undefined) {
        const other = rawConsumers[owner.consumer];
        report(at('keys', k, 'hash'), owner.consumer === index
          ? `is the same key as keys[${owner.key}] (${JSON.stringify(other.keys[owner.key].id)}) of this consumer`
          : `is also the hash of key ${JSON.stringify(other.keys[owner.key].id)} of consumer ${JSON.stringify(other.name)} (consumers[${owner.consumer}].keys[${owner.key}]); ` +
            'a key must name one consumer');
        return;
      }
      owners.set(hex, { consumer: index, key: k });
      digests.push(digest);
      keyConsumer.push(consumerIndex);
      keyDisabled.push(key.disabled ? 1 : 0);
    });
    raw.routes?.forEach((route, r) => {
      if (!routeSet.has(route)) report(at('routes', r), unknownNameMessage('route', route, routeNames, 'no routes are defined'));
    });
    const headers: string[] = [];
    for (const [header, value] of Object.entries(raw.headers)) headers.push(header.toLowerCase(), toByteString(value));
    consumers.push({ name: raw.name, headers, routes: raw.routes ? [...new Set(raw.routes)] : null, rate: consumerRate(raw.rate_limit) });
  });

  const consumerHeaders = consumerHeaderNames(rawConsumers);
  const jwtHeaders = identityHeaderNames(config.auth);
  const routes = config.routes.map((route, index): KeyAuthFilterConfig | null => {
    const ka = route.key_auth;
    if (ka === undefined) return null;
    const header = ka.header.toLowerCase();
    if (consumerHeaders.includes(header)) {
      report(['routes', index, 'key_auth', 'header'], `${JSON.stringify(ka.header)} is a metadata header consumers inject; read the key from another header`);
    }
    // A route with auth has auth-jwt, which strips the JWT identity headers in its own pass.
    const strip = route.auth === undefined ? [...new Set([...consumerHeaders, ...jwtHeaders])].sort() : consumerHeaders;
    return { route: route.name, header, query: ka.query ?? null, forwardKey: ka.forward_key, optional: ka.optional, stripHeaders: strip };
  });

  const used = rawConsumers.length > 0 || routes.some((r) => r !== null);
  return {
    route: (index) => routes[index],
    runtime: used ? { consumers: consumerTable(consumers, digests, keyConsumer, keyDisabled) } : {},
  };
}

function consumerRate(raw: RawConsumer['rate_limit']): CompiledConsumer['rate'] {
  if (raw === undefined) return null;
  const per = parsePer(raw.per);
  if (!per.ok) throw new Error(`internal: schema let an invalid per through: ${per.error}`);
  return { ratePerMs: raw.rate / per.value, burst: raw.burst ?? raw.rate };
}

function consumerTable(consumers: CompiledConsumer[], digests: Buffer[], keyConsumer: number[], keyDisabled: number[]): CompiledConsumers {
  const sab = new SharedArrayBuffer(Math.max(1, digests.length) * KEY_DIGEST_BYTES);
  const bytes = Buffer.from(sab);
  digests.forEach((d, k) => d.copy(bytes, k * KEY_DIGEST_BYTES));
  const owner = Int32Array.from(keyConsumer);
  const disabled = Uint8Array.from(keyDisabled);
  const version = createHash('sha256')
    .update(bytes).update(Buffer.from(owner.buffer)).update(disabled).update(JSON.stringify(consumers))
    .digest('base64url');
  return { version, consumers, keyCount: digests.length, digests: sab, keyConsumer: owner, keyDisabled: disabled };
}
