// The shared part of a config and its canonical JSON: what both the config store (hashing,
// Redis, rollback) and admin.persist (what changed, what to write back) compare. Its own
// module so that config-store.ts and config-persist.ts both import it instead of each other.
import type { RawConfig } from './config-schema.js';
import { isMapping } from './schema-kit.js';

/** The declarative config without the instance keys: what is hashed and shared through Redis. */
export type SharedConfig = Record<string, unknown>;

// ---------------------------------------------------------------------------------------
// Instance keys: where this process listens and how it reaches its peers. They come from
// this instance's file, are read at start only and are never shared between instances.

// `tls` too: its files and port are this machine's; new certificates at the same paths
// rotate without a restart (src/control/tls-manager.ts).
export const LOCAL_SERVER_KEYS = ['host', 'port', 'workers', 'reuse_port', 'tls'] as const;
export const LOCAL_SECTIONS = ['admin', 'redis'] as const;

/** A mapping (not an array, not null): schema-kit's one definition. */
export const isPlainObject = isMapping;

/** The config minus instance keys (server.host/port/workers/reuse_port/tls, admin, redis). */
export function sharedPart(raw: RawConfig): SharedConfig {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) {
    if ((LOCAL_SECTIONS as readonly string[]).includes(key)) continue;
    if (key === 'server' && isPlainObject(value)) {
      const server: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) if (!(LOCAL_SERVER_KEYS as readonly string[]).includes(k)) server[k] = v;
      out.server = server;
    } else {
      out[key] = value;
    }
  }
  return out;
}

/** `shared` completed with the instance keys of `local`: a whole config input. */
export function withLocalKeys(shared: SharedConfig, local: RawConfig): Record<string, unknown> {
  const out: Record<string, unknown> = { ...shared };
  const server = isPlainObject(out.server) ? { ...out.server } : {};
  for (const key of LOCAL_SERVER_KEYS) server[key] = local.server[key];
  out.server = server;
  for (const key of LOCAL_SECTIONS) {
    if (local[key] !== undefined) out[key] = local[key];
    else delete out[key];
  }
  return out;
}

/** JSON with object keys sorted, so equal configs hash equally whatever the key order. */
export function canonicalJson(value: unknown): string {
  // One string built in place: this runs over every route of every change (10,000 routes: ~5 ms).
  let out = '';
  const write = (v: unknown): void => {
    if (typeof v !== 'object' || v === null) {
      out += JSON.stringify(v) ?? 'null';
    } else if (Array.isArray(v)) {
      out += '[';
      for (let i = 0; i < v.length; i++) {
        if (i > 0) out += ',';
        if (v[i] === undefined) out += 'null';
        else write(v[i]);
      }
      out += ']';
    } else {
      const o = v as Record<string, unknown>;
      const keys = Object.keys(o).sort();
      out += '{';
      let first = true;
      for (const key of keys) {
        if (o[key] === undefined) continue;
        if (!first) out += ',';
        first = false;
        out += JSON.stringify(key) + ':';
        write(o[key]);
      }
      out += '}';
    }
  };
  write(value);
  return out;
}
