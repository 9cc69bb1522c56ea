// The admin API: a node:http server on the main thread (the control plane), on its own
// listener, never on the data-plane port. Every request needs `Authorization: Bearer
// <admin.token>` (compared in constant time); without a token the schema only lets it
// listen on loopback. Endpoints are documented in docs/admin-api.md.
//
// Every change goes through ConfigStore: validated and compiled completely first (the
// validator of `lobby check`), published to every worker, then answered 200. So a client
// that got 200 knows that every request arriving after it is routed by the new table.
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { parse as parseYaml } from 'yaml';
import { log } from '../shared/log.js';
import { ConfigError, ROOT_PATH } from './config-error.js';
import type { RawConfig } from './config-schema.js';
import { ChangeError, redacted, type ChangeResult, type ConfigStore, type ConfigVersion } from './config-store.js';

type AdminSettings = NonNullable<RawConfig['admin']>;

/** Largest request body accepted (a 10,000-route config is about 1 MB of JSON). */
export const MAX_ADMIN_BODY_BYTES = 32 * 1024 * 1024;

export interface AdminContext {
  store: ConfigStore;
  status(): Record<string, unknown>;
  readiness(): { ready: boolean; reasons: string[] };
  /** GET /cluster; throws ChangeError when Redis is unreachable. */
  cluster(): Promise<Record<string, unknown>>;
}

type Handler = (req: IncomingMessage, params: string[]) => Promise<Reply>;
interface Reply {
  status: number;
  body: unknown;
}

interface Endpoint {
  pattern: RegExp;
  methods: Partial<Record<string, Handler>>;
}

const NAME = '([A-Za-z0-9_.%-]+)';

export class AdminApi {
  private readonly server: Server;
  private readonly tokenDigest: Buffer | null;
  private readonly endpoints: Endpoint[];
  private boundPort = 0;

  constructor(private readonly settings: AdminSettings, private readonly ctx: AdminContext) {
    this.tokenDigest = settings.token === undefined ? null : digest(settings.token);
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5_000;
    this.endpoints = this.buildEndpoints();
  }

  get port(): number {
    return this.boundPort;
  }

  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(new Error(`cannot listen for the admin API on ${this.settings.host}:${this.settings.port}: ${error.message}`));
      this.server.once('error', onError);
      this.server.listen(this.settings.port, this.settings.host, () => {
        this.server.off('error', onError);
        const address = this.server.address();
        this.boundPort = typeof address === 'object' && address ? address.port : this.settings.port;
        resolve();
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private authorized(req: IncomingMessage): boolean {
    if (this.tokenDigest === null) return true; // loopback only (enforced by the schema)
    const header = req.headers.authorization ?? '';
    const match = /^Bearer[ ]+(.+)$/i.exec(header);
    // Digests have equal lengths, so the comparison time does not depend on the token.
    return timingSafeEqual(digest(match ? match[1].trim() : ''), this.tokenDigest) && match !== null;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let reply: Reply;
    const path = (req.url ?? '/').split('?')[0];
    try {
      if (!this.authorized(req)) {
        res.setHeader('www-authenticate', 'Bearer realm="lobby-admin"');
        if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) res.setHeader('connection', 'close');
        reply = failure(401, 'unauthorized', 'missing or wrong bearer token (Authorization: Bearer <admin.token>)');
      } else {
        reply = await this.route(req, path);
      }
    } catch (error) {
      reply = errorReply(error);
      if (reply.status === 500) log.error('admin API request failed', { method: req.method, path, error: (error as Error).message });
    }
    const text = JSON.stringify(reply.body, null, 2) + '\n';
    res.writeHead(reply.status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private async route(req: IncomingMessage, path: string): Promise<Reply> {
    for (const endpoint of this.endpoints) {
      const m = endpoint.pattern.exec(path);
      if (!m) continue;
      const handler = endpoint.methods[req.method ?? 'GET'];
      if (!handler) {
        const allow = Object.keys(endpoint.methods).join(', ');
        return { status: 405, body: { error: { status: 405, code: 'method_not_allowed', message: `${req.method} is not allowed here (allowed: ${allow})`, allow } } };
      }
      return handler(req, m.slice(1).map((p) => decodeURIComponent(p)));
    }
    return failure(404, 'not_found', `no admin endpoint ${path} (see docs/admin-api.md)`);
  }

  private buildEndpoints(): Endpoint[] {
    const { store } = this.ctx;
    const change = async (p: Promise<ChangeResult>): Promise<Reply> => ({ status: 200, body: changeBody(await p) });
    /** PUT of one named entry: 201 when the edit created it, 200 when it replaced it. */
    const upsert = async (edit: (raw: RawConfig) => { next: unknown; created: boolean }): Promise<Reply> => {
      let created = false;
      const result = await store.change({ kind: 'edit', edit: (raw) => { const r = edit(raw); created = r.created; return r.next; } }, 'admin');
      return { status: created && result.changed ? 201 : 200, body: changeBody(result) };
    };
    const live = () => store.current;
    return [
      { pattern: /^\/healthz$/, methods: { GET: async () => ({ status: 200, body: { status: 'ok' } }) } },
      {
        pattern: /^\/readyz$/,
        methods: {
          GET: async () => {
            const r = this.ctx.readiness();
            return { status: r.ready ? 200 : 503, body: r };
          },
        },
      },
      { pattern: /^\/status$/, methods: { GET: async () => ({ status: 200, body: this.ctx.status() }) } },
      { pattern: /^\/cluster$/, methods: { GET: async () => ({ status: 200, body: await this.ctx.cluster() }) } },
      {
        pattern: /^\/config$/,
        methods: {
          GET: async () => ({ status: 200, body: { ...versionHeader(live()), generation: live().generation, config: redacted(live().raw) } }),
          PUT: async (req) => change(store.change({ kind: 'document', value: await readBody(req) }, 'admin')),
        },
      },
      {
        pattern: /^\/config\/versions$/,
        methods: {
          GET: async () => ({ status: 200, body: { current: live().version, kept: store.versions().length, versions: store.versions().map((v) => ({ ...versionHeader(v), current: v.version === live().version })) } }),
        },
      },
      {
        pattern: /^\/config\/versions\/([0-9]+)$/,
        methods: {
          GET: async (_req, [v]) => {
            const entry = store.versions().find((e) => e.version === Number(v));
            const config = store.versionConfig(Number(v));
            if (!entry || !config) return failure(404, 'version_not_found', `version ${v} is not among the versions kept`);
            return { status: 200, body: { ...versionHeader(entry), config: redacted(config) } };
          },
        },
      },
      {
        pattern: /^\/config\/rollback\/([^/]+)$/,
        methods: {
          POST: async (_req, [v]) => {
            if (!/^[0-9]+$/.test(v)) return failure(404, 'version_not_found', `"${v}" is not a version number`);
            return change(store.rollback(Number(v)));
          },
        },
      },
      { pattern: /^\/reload$/, methods: { POST: async () => change(store.reloadFile('admin', true).then((r) => r!)) } },
      {
        pattern: /^\/routes$/,
        methods: { GET: async () => ({ status: 200, body: { ...versionHeader(live()), routes: live().raw.routes } }) },
      },
      {
        pattern: new RegExp(`^/routes/${NAME}$`),
        methods: {
          GET: async (_req, [name]) => {
            const route = live().raw.routes.find((r) => r.name === name);
            return route ? { status: 200, body: { ...versionHeader(live()), route } } : failure(404, 'route_not_found', `no route named "${name}"`);
          },
          PUT: async (req, [name]) => {
            const body = await readBody(req);
            checkName(body, name);
            return upsert((raw) => {
              const routes = [...raw.routes] as unknown[];
              const index = raw.routes.findIndex((r) => r.name === name);
              const route = { ...(body as object), name };
              if (index >= 0) routes[index] = route;
              else routes.push(route);
              return { next: { ...raw, routes }, created: index < 0 };
            });
          },
          DELETE: async (_req, [name]) => change(store.change({
            kind: 'edit',
            edit: (raw) => {
              if (!raw.routes.some((r) => r.name === name)) throw new ChangeError(404, 'route_not_found', `no route named "${name}"`);
              return { ...raw, routes: raw.routes.filter((r) => r.name !== name) };
            },
          }, 'admin')),
        },
      },
      {
        pattern: /^\/services$/,
        methods: { GET: async () => ({ status: 200, body: { ...versionHeader(live()), services: live().raw.services } }) },
      },
      {
        pattern: new RegExp(`^/services/${NAME}$`),
        methods: {
          GET: async (_req, [name]) => {
            const service = Object.hasOwn(live().raw.services, name) ? live().raw.services[name] : undefined;
            return service ? { status: 200, body: { ...versionHeader(live()), name, service } } : failure(404, 'service_not_found', `no service named "${name}"`);
          },
          PUT: async (req, [name]) => {
            const body = await readBody(req);
            return upsert((raw) => ({
              next: { ...raw, services: { ...raw.services, [name]: body } },
              created: !Object.hasOwn(raw.services, name),
            }));
          },
          DELETE: async (_req, [name]) => change(store.change({
            kind: 'edit',
            edit: (raw) => {
              if (!Object.hasOwn(raw.services, name)) throw new ChangeError(404, 'service_not_found', `no service named "${name}"`);
              const users = raw.routes.filter((r) => r.service === name).map((r) => r.name);
              if (users.length > 0) {
                throw new ChangeError(409, 'service_in_use', `service "${name}" is used by ${users.length === 1 ? 'route' : 'routes'} ${users.map((u) => `"${u}"`).join(', ')}; change or delete ${users.length === 1 ? 'it' : 'them'} first`, { routes: users });
              }
              const services = { ...raw.services };
              delete services[name];
              return { ...raw, services };
            },
          }, 'admin')),
        },
      },
    ];
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function failure(status: number, code: string, message: string, extra: Record<string, unknown> = {}): Reply {
  return { status, body: { error: { status, code, message, ...extra } } };
}

function errorReply(error: unknown): Reply {
  if (error instanceof ConfigError) {
    const issues = error.issues.map(({ path, line, message }) => (line === undefined ? { path, message } : { path, line, message }));
    return failure(400, 'config_invalid', `the config is invalid (${issues.length} ${issues.length === 1 ? 'issue' : 'issues'}); nothing was changed`, { issues });
  }
  if (error instanceof ChangeError) return failure(error.status, error.code, error.message, error.details);
  return failure(500, 'internal_error', (error as Error)?.message ?? String(error));
}

function versionHeader(v: ConfigVersion) {
  return {
    version: v.version,
    hash: v.hash,
    source: v.source,
    applied_at: new Date(v.appliedAt).toISOString(),
    ...(v.rolledBackTo === undefined ? {} : { rolled_back_to: v.rolledBackTo }),
  };
}

function changeBody(r: ChangeResult) {
  return {
    changed: r.changed,
    version: r.version,
    hash: r.hash,
    generation: r.generation,
    apply_ms: r.applyMs,
    compile_ms: r.compileMs,
    publish_ms: r.publishMs,
    ...(r.rolledBackTo === undefined ? {} : { rolled_back_to: r.rolledBackTo }),
    ...(r.persisted === undefined ? {} : { persisted: r.persisted }),
    ...(r.persistError === undefined ? {} : { persist_error: r.persistError }),
  };
}

/** A route body is a mapping whose name, if given, matches the one in the URL. */
function checkName(body: unknown, name: string): void {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ConfigError([{ file: 'admin-api', path: ROOT_PATH, message: 'expected a mapping (one route, as in the routes list of the config)' }]);
  }
  if ('name' in body && (body as { name: unknown }).name !== name) {
    throw new ConfigError([{ file: 'admin-api', path: 'name', message: `is ${JSON.stringify((body as { name: unknown }).name)} but the URL names "${name}" (leave it out or make them equal)` }]);
  }
}

/** The request body as JSON (or YAML with a yaml content type; `${ENV}` is not expanded). Throws ConfigError. */
async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ADMIN_BODY_BYTES) throw new ChangeError(413, 'payload_too_large', `the request body exceeds ${MAX_ADMIN_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  const issue = (message: string) => new ConfigError([{ file: 'admin-api', path: ROOT_PATH, message }]);
  if (text.trim() === '') throw issue('the request body is empty; expected the JSON value to apply');
  if (/yaml/i.test(req.headers['content-type'] ?? '')) {
    try {
      return parseYaml(text);
    } catch (error) {
      throw issue(`invalid YAML: ${(error as Error).message}`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw issue(`invalid JSON: ${(error as Error).message}`);
  }
}
