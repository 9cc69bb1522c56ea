// The `key-auth` filter's compile: `consumers` into the instance's consumer table
// (CompiledConfig.consumers, src/shared/consumer-config.ts) and `routes[].key_auth` into each
// route's filter config. The schema (schema.ts) checked each value alone; here:
//   - consumer names are unique, key ids unique within a consumer;
//   - a key hash belongs to one consumer (naming both when it does not): a key must say who it is;
//   - `routes` name routes that exist;
//   - the key header is not a metadata header some consumer injects.
import { createHash } from 'node:crypto';
import type { FilterCompilation, FilterCompileContext } from '../../data/chain.js';
import { unknownNameMessage } from '../../control/config-error.js';
import { toByteString } from '../../shared/http-syntax.js';
import { KEY_DIGEST_BYTES, type CompiledConsumer, type CompiledConsumers, type KeyAuthFilterConfig } from '../../shared/consumer-config.js';
import { consumerHeaderNames, writeKeyDigest, type RawConsumer, type RawRouteKeyAuth } from './schema.js';
import { identityHeaderNames, type RawAuth } from '../auth-jwt/schema.js';
import { clientIdentityHeaders } from '../identity-headers.js';
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
  // The digests go straight into the table's shared buffer: 100,000 keys, no Buffer each.
  let keyTotal = 0;
  for (const c of rawConsumers) keyTotal += c.keys.length;
  const sab = new SharedArrayBuffer(Math.max(1, keyTotal) * KEY_DIGEST_BYTES);
  const bytes = Buffer.from(sab);
  const keyConsumer = new Int32Array(keyTotal);
  const keyDisabled = new Uint8Array(keyTotal);
  let keyCount = 0;
  const seenNames = new Map<string, number>();
  // digest (latin1) → where it was first given, to name both places of a shared hash.
  const owners = new Map<string, number>();
  const ownerAt: [consumer: number, key: number][] = [];

  const jwtNames = identityHeaderNames(config.auth);
  for (let index = 0; index < rawConsumers.length; index++) {
    const raw = rawConsumers[index];
    const first = seenNames.get(raw.name);
    if (first !== undefined) {
      report(['consumers', index, 'name'], `duplicate consumer name ${JSON.stringify(raw.name)} (also consumers[${first}])`);
      continue;
    }
    seenNames.set(raw.name, index);
    const consumerIndex = consumers.length;
    const ids = raw.keys.length > 1 ? new Set<string>() : null;
    raw.keys.forEach((key, k) => {
      if (ids !== null) {
        if (ids.has(key.id)) { report(['consumers', index, 'keys', k, 'id'], `duplicate key id ${JSON.stringify(key.id)} in consumer ${JSON.stringify(raw.name)}`); return; }
        ids.add(key.id);
      }
      const at = keyCount * KEY_DIGEST_BYTES;
      if (!writeKeyDigest(key.hash, bytes, at)) return; // the schema reported it
      const digest = bytes.toString('latin1', at, at + KEY_DIGEST_BYTES);
      const owner = owners.get(digest);
      if (owner !== undefined) {
        const [oc, ok] = ownerAt[owner];
        const other = rawConsumers[oc];
        report(['consumers', index, 'keys', k, 'hash'], oc === index
          ? `is the same key as keys[${ok}] (${JSON.stringify(other.keys[ok].id)}) of this consumer`
          : `is also the hash of key ${JSON.stringify(other.keys[ok].id)} of consumer ${JSON.stringify(other.name)} (consumers[${oc}].keys[${ok}]); ` +
            'a key must name one consumer');
        return;
      }
      owners.set(digest, ownerAt.length);
      ownerAt.push([index, k]);
      keyConsumer[keyCount] = consumerIndex;
      keyDisabled[keyCount] = key.disabled ? 1 : 0;
      keyCount++;
    });
    raw.routes?.forEach((route, r) => {
      if (!routeSet.has(route)) report(['consumers', index, 'routes', r], unknownNameMessage('route', route, routeNames, 'no routes are defined'));
    });
    const headers: string[] = [];
    for (const header in raw.headers) {
      const lower = header.toLowerCase();
      // Two spellings of one name would inject it twice (the upstream may read either value);
      // a name a token provider injects would replace the verified claim on a route with both.
      if (headers.some((h, i) => i % 2 === 0 && h === lower)) {
        report(['consumers', index, 'headers', header], `names the header ${JSON.stringify(lower)} twice (header names ignore case)`);
      } else if (jwtNames.includes(lower)) {
        report(['consumers', index, 'headers', header], `${JSON.stringify(header)} is an identity header an auth provider injects (claims_to_headers); use another name`);
      }
      headers.push(lower, toByteString(raw.headers[header]));
    }
    consumers.push({ name: raw.name, headers, routes: raw.routes ? [...new Set(raw.routes)] : null, rate: consumerRate(raw.rate_limit) });
  }

  const consumerHeaders = consumerHeaderNames(rawConsumers);
  const identityHeaders = clientIdentityHeaders(config);
  const routes = config.routes.map((route, index): KeyAuthFilterConfig | null => {
    const ka = route.key_auth;
    if (ka === undefined) return null;
    const header = ka.header.toLowerCase();
    if (consumerHeaders.includes(header)) {
      report(['routes', index, 'key_auth', 'header'], `${JSON.stringify(ka.header)} is a metadata header consumers inject; read the key from another header`);
    }
    // A route with auth has auth-jwt before this filter, which strips them all in its own pass
    // (and adds the token's claims, which this filter must leave alone).
    const strip = route.auth === undefined ? identityHeaders : consumerHeaders;
    return { route: route.name, header, query: ka.query ?? null, forwardKey: ka.forward_key, optional: ka.optional, stripHeaders: strip };
  });

  const used = rawConsumers.length > 0 || routes.some((r) => r !== null);
  return {
    route: (index) => routes[index],
    runtime: used ? { consumers: consumerTable(consumers, sab, keyCount, keyConsumer, keyDisabled) } : {},
  };
}

function consumerRate(raw: RawConsumer['rate_limit']): CompiledConsumer['rate'] {
  if (raw === undefined) return null;
  const per = parsePer(raw.per);
  if (!per.ok) throw new Error(`internal: schema let an invalid per through: ${per.error}`);
  return { ratePerMs: raw.rate / per.value, burst: raw.burst ?? raw.rate };
}

function consumerTable(consumers: CompiledConsumer[], sab: SharedArrayBuffer, keyCount: number, keyConsumer: Int32Array, keyDisabled: Uint8Array): CompiledConsumers {
  const owner = keyConsumer.slice(0, keyCount);
  const disabled = keyDisabled.slice(0, keyCount);
  const version = createHash('sha256')
    .update(new Uint8Array(sab, 0, keyCount * KEY_DIGEST_BYTES)).update(new Uint8Array(owner.buffer)).update(disabled).update(JSON.stringify(consumers))
    .digest('base64url');
  return { version, consumers, keyCount, digests: sab, keyConsumer: owner, keyDisabled: disabled };
}
