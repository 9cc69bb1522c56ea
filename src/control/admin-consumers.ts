// The admin API's consumer endpoints (docs/admin-api.md#consumers): consumers and their API
// keys are config edits like routes and services, so each change is validated, compiled,
// published to every worker (and stored in Redis / the file) by ConfigStore before it is
// answered. Listings never show key hashes; a key the gateway generates is shown once, in
// the answer that created it, and only its SHA-256 is kept.
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { RawConfig } from './config-schema.js';
import { ChangeError } from './config-store.js';
import { ConfigError, ROOT_PATH } from './config-error.js';
import { keyHashText, type RawConsumer } from '../filters/key-auth/schema.js';

interface Reply {
  status: number;
  body: unknown;
}
type Handler = (req: IncomingMessage, params: string[], query: URLSearchParams) => Promise<Reply>;
interface Endpoint {
  pattern: RegExp;
  methods: Partial<Record<string, Handler>>;
}

/** What admin-api.ts lends these endpoints: its edit helpers (dry_run, 201 on create) and body reader. */
export interface ConsumerEndpointKit {
  /** The name pattern of a path segment. */
  name: string;
  live(): { raw: RawConfig };
  versionHeader(): Record<string, unknown>;
  upsert(query: URLSearchParams, edit: (raw: RawConfig) => { next: unknown; created: boolean }): Promise<Reply>;
  remove(query: URLSearchParams, edit: (raw: RawConfig) => unknown): Promise<Reply>;
  readBody(req: IncomingMessage): Promise<unknown>;
}

/** Bytes of a generated key (base64url: 43 characters). */
const GENERATED_KEY_BYTES = 32;

type RawKey = RawConsumer['keys'][number];

/** A consumer as listed: everything but its key hashes. */
function publicConsumer(c: RawConsumer) {
  return {
    name: c.name,
    headers: c.headers,
    ...(c.routes === undefined ? {} : { routes: c.routes }),
    ...(c.rate_limit === undefined ? {} : { rate_limit: c.rate_limit }),
    keys: c.keys.map(publicKey),
  };
}

function publicKey(k: RawKey) {
  return { id: k.id, disabled: k.disabled, ...(k.created_at === undefined ? {} : { created_at: k.created_at }) };
}

function notFound(name: string): ChangeError {
  return new ChangeError(404, 'consumer_not_found', `no consumer named "${name}"`);
}

function mapping(body: unknown, what: string): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ConfigError([{ file: 'admin-api', path: ROOT_PATH, message: `expected a mapping (${what})` }]);
  }
  return body as Record<string, unknown>;
}

/** The consumers with `name`'s entry replaced by `edit(entry)` (404 when there is none). */
function withConsumer(raw: RawConfig, name: string, edit: (c: RawConsumer) => RawConsumer): RawConfig {
  const consumers = raw.consumers ?? [];
  const index = consumers.findIndex((c) => c.name === name);
  if (index < 0) throw notFound(name);
  const next = [...consumers];
  next[index] = edit(consumers[index]);
  return { ...raw, consumers: next };
}

function keyIndex(c: RawConsumer, id: string): number {
  const index = c.keys.findIndex((k) => k.id === id);
  if (index < 0) throw new ChangeError(404, 'key_not_found', `consumer "${c.name}" has no key "${id}"`);
  return index;
}

/** A key id not taken in `c`: key-1, key-2 ... */
function freeKeyId(c: RawConsumer): string {
  const taken = new Set(c.keys.map((k) => k.id));
  for (let n = c.keys.length + 1; ; n++) if (!taken.has(`key-${n}`)) return `key-${n}`;
}

export function consumerEndpoints(kit: ConsumerEndpointKit): Endpoint[] {
  const NAME = kit.name;
  const consumersOf = () => kit.live().raw.consumers ?? [];
  return [
    {
      pattern: /^\/consumers$/,
      methods: { GET: async () => ({ status: 200, body: { ...kit.versionHeader(), consumers: consumersOf().map(publicConsumer) } }) },
    },
    {
      pattern: new RegExp(`^/consumers/${NAME}$`),
      methods: {
        GET: async (_req, [name]) => {
          const consumer = consumersOf().find((c) => c.name === name);
          if (!consumer) throw notFound(name);
          return { status: 200, body: { ...kit.versionHeader(), consumer: publicConsumer(consumer) } };
        },
        // Creates or replaces the consumer; `keys` left out keeps its keys (so a metadata edit
        // never drops credentials), given it replaces them (as hashes, like the config).
        PUT: async (req, [name], query) => {
          const body = mapping(await kit.readBody(req), 'one consumer, as in the consumers list of the config');
          if ('name' in body && body.name !== name) {
            throw new ConfigError([{ file: 'admin-api', path: 'name', message: `is ${JSON.stringify(body.name)} but the URL names "${name}" (leave it out or make them equal)` }]);
          }
          return kit.upsert(query, (raw) => {
            const consumers = [...(raw.consumers ?? [])] as unknown[];
            const index = (raw.consumers ?? []).findIndex((c) => c.name === name);
            const keys = 'keys' in body ? body.keys : index >= 0 ? raw.consumers![index].keys : [];
            const consumer = { ...body, name, keys };
            if (index >= 0) consumers[index] = consumer;
            else consumers.push(consumer);
            return { next: { ...raw, consumers }, created: index < 0 };
          });
        },
        DELETE: async (_req, [name], query) => kit.remove(query, (raw) => {
          if (!(raw.consumers ?? []).some((c) => c.name === name)) throw notFound(name);
          return { ...raw, consumers: raw.consumers!.filter((c) => c.name !== name) };
        }),
      },
    },
    {
      // A new key: `key` given (its hash is kept), `hash` given, or generated (shown once).
      pattern: new RegExp(`^/consumers/${NAME}/keys$`),
      methods: {
        POST: async (req, [name], query) => {
          const text = await readOptionalBody(req, kit);
          const body = text === null ? {} : mapping(text, 'the new key: {"id": ..., "key": ...} or {"hash": ...}, or no body');
          const unknown = Object.keys(body).filter((k) => !['id', 'key', 'hash', 'disabled'].includes(k));
          if (unknown.length > 0) throw new ConfigError([{ file: 'admin-api', path: unknown[0], message: 'unknown key (allowed: id, key, hash, disabled)' }]);
          if (body.disabled !== undefined && typeof body.disabled !== 'boolean') {
            throw new ConfigError([{ file: 'admin-api', path: 'disabled', message: 'must be true or false' }]);
          }
          const given = body.key;
          if (given !== undefined && (typeof given !== 'string' || given.length < 16 || given.length > 4096)) {
            throw new ConfigError([{ file: 'admin-api', path: 'key', message: 'must be a string of 16 to 4096 characters (or leave it out: the gateway generates one)' }]);
          }
          if (given !== undefined && body.hash !== undefined) {
            throw new ConfigError([{ file: 'admin-api', path: 'hash', message: 'give key or hash, not both' }]);
          }
          const generated = given === undefined && body.hash === undefined ? randomBytes(GENERATED_KEY_BYTES).toString('base64url') : null;
          const clear = (given as string | undefined) ?? generated;
          let added: RawKey | null = null;
          const reply = await kit.upsert(query, (raw) => ({
            next: withConsumer(raw, name, (c) => {
              added = {
                id: body.id === undefined ? freeKeyId(c) : body.id as string,
                hash: clear === null ? body.hash as string : keyHashText(clear),
                disabled: body.disabled === true,
                created_at: new Date().toISOString(),
              };
              return { ...c, keys: [...c.keys, added] };
            }),
            created: true,
          }));
          const key = added as RawKey | null;
          return {
            status: reply.status,
            body: { ...(reply.body as object), consumer: name, key: key === null ? null : { ...publicKey(key), ...(clear === null ? {} : { key: clear }) } },
          };
        },
      },
    },
    {
      pattern: new RegExp(`^/consumers/${NAME}/keys/${NAME}$`),
      methods: {
        // {"disabled": true|false}: a disabled key is refused like an unknown one.
        PATCH: async (req, [name, id], query) => {
          const body = mapping(await kit.readBody(req), '{"disabled": true} or {"disabled": false}');
          const extra = Object.keys(body).filter((k) => k !== 'disabled');
          if (typeof body.disabled !== 'boolean' || extra.length > 0) {
            throw new ConfigError([{ file: 'admin-api', path: extra[0] ?? 'disabled', message: extra.length > 0 ? 'unknown key (allowed: disabled)' : 'must be true or false' }]);
          }
          return kit.upsert(query, (raw) => ({
            next: withConsumer(raw, name, (c) => {
              const keys = [...c.keys];
              const i = keyIndex(c, id);
              keys[i] = { ...keys[i], disabled: body.disabled as boolean };
              return { ...c, keys };
            }),
            created: false,
          }));
        },
        DELETE: async (_req, [name, id], query) => kit.remove(query, (raw) => withConsumer(raw, name, (c) => {
          const i = keyIndex(c, id);
          return { ...c, keys: c.keys.filter((_, j) => j !== i) };
        })),
      },
    },
  ];
}

/** The body, or null when the request has none (POST .../keys may come without one). */
async function readOptionalBody(req: IncomingMessage, kit: ConsumerEndpointKit): Promise<unknown> {
  const length = req.headers['content-length'];
  if ((length === undefined || length === '0') && req.headers['transfer-encoding'] === undefined) return null;
  return kit.readBody(req);
}
