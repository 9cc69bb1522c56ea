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
import { CORRELATION_HEADER, correlationIdFor } from '../data/correlation-id.js';
import { ConfigError, ROOT_PATH } from './config-error.js';
import type { RawConfig } from './config-schema.js';
import type { Observability } from './observability.js';
import type { TlsManager } from './tls-manager.js';
import { consumerEndpoints } from './admin-consumers.js';
import { ChangeError, redacted, type ChangeInput, type ChangePreview, type ChangeResult, type ConfigStore, type ConfigVersion } from './config-store.js';

type AdminSettings = NonNullable<RawConfig['admin']>;

/** Largest request body accepted (a 10,000-route config is about 1 MB of JSON). */
export const MAX_ADMIN_BODY_BYTES = 32 * 1024 * 1024;

export interface AdminContext {
  store: ConfigStore;
  status(): Record<string, unknown>;
  readiness(): { ready: boolean; reasons: string[] };
  /** GET /cluster; throws ChangeError when Redis is unreachable. */
  cluster(): Promise<Record<string, unknown>>;
  /** GET /metrics, /stats/latency, /report, /upstreams (docs/observability.md). */
  observability?: Observability;
  /** The HTTPS listener's certificates (GET /tls, POST /tls/reload); null without server.tls. */
  tls(): TlsManager | null;
}

type Handler = (req: IncomingMessage, params: string[], query: URLSearchParams) => Promise<Reply>;
interface Reply {
  status: number;
  body: unknown;
  /** A body that is not JSON (Prometheus text, HTML): sent as is. */
  raw?: { contentType: string; text: string };
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
    const sent = req.headers[CORRELATION_HEADER];
    const correlationId = correlationIdFor(typeof sent === 'string' ? sent : '');
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    try {
      if (!this.authorized(req)) {
        res.setHeader('www-authenticate', 'Bearer realm="lobby-admin"');
        if (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined) res.setHeader('connection', 'close');
        reply = failure(401, 'unauthorized', 'missing or wrong bearer token (Authorization: Bearer <admin.token>)');
      } else {
        reply = await this.route(req, path, new URLSearchParams(queryAt === -1 ? '' : url.slice(queryAt + 1)));
      }
    } catch (error) {
      reply = errorReply(error);
      if (reply.status === 500) log.error('admin API request failed', { method: req.method, path, error: (error as Error).message, correlation_id: correlationId });
    }
    // Errors carry the correlation id in the body too, as the data plane's do (docs/errors.md).
    const body = reply.body as { error?: unknown } | null;
    if (reply.raw === undefined && typeof body?.error === 'object' && body.error !== null) (body.error as Record<string, unknown>).correlation_id = correlationId;
    const text = reply.raw !== undefined ? reply.raw.text : JSON.stringify(reply.body, null, 2) + '\n';
    const contentType = reply.raw !== undefined ? reply.raw.contentType : 'application/json';
    res.writeHead(reply.status, { 'content-type': contentType, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(text), [CORRELATION_HEADER]: correlationId });
    res.end(text);
  }

  private async route(req: IncomingMessage, path: string, query: URLSearchParams): Promise<Reply> {
    for (const endpoint of this.endpoints) {
      const m = endpoint.pattern.exec(path);
      if (!m) continue;
      const handler = endpoint.methods[req.method ?? 'GET'];
      if (!handler) {
        const allow = Object.keys(endpoint.methods).join(', ');
        return { status: 405, body: { error: { status: 405, code: 'method_not_allowed', message: `${req.method} is not allowed here (allowed: ${allow})`, allow } } };
      }
      let params: string[];
      try {
        params = m.slice(1).map((p) => decodeURIComponent(p));
      } catch {
        return failure(400, 'invalid_path', `the path ${JSON.stringify(path)} has a malformed percent-escape (each % must start a UTF-8 sequence like %C3%A9)`);
      }
      return handler(req, params, query);
    }
    return failure(404, 'not_found', `no admin endpoint ${path} (see docs/admin-api.md)`);
  }

  /** GET /metrics, /stats/latency, /report, /upstreams: read-only views of the data plane. */
  private observabilityEndpoints(): Endpoint[] {
    const o = this.ctx.observability;
    if (o === undefined) return [];
    return [
      { pattern: /^\/metrics$/, methods: { GET: async () => ({ status: 200, body: null, raw: { contentType: o.contentType, text: await o.metricsText() } }) } },
      { pattern: /^\/stats\/latency$/, methods: { GET: async () => ({ status: 200, body: await o.latency() }) } },
      { pattern: /^\/report$/, methods: { GET: async () => ({ status: 200, body: null, raw: { contentType: 'text/html; charset=utf-8', text: await o.reportHtml() } }) } },
      { pattern: /^\/upstreams$/, methods: { GET: async () => ({ status: 200, body: await o.upstreams() }) } },
    ];
  }

  private withTls(run: (tls: TlsManager) => Promise<Reply>): Promise<Reply> {
    const tls = this.ctx.tls();
    return tls === null ? Promise.resolve(tlsNotConfigured()) : run(tls);
  }

  private buildEndpoints(): Endpoint[] {
    const { store } = this.ctx;
    const change = async (p: Promise<ChangeResult>): Promise<Reply> => ({ status: 200, body: changeBody(await p) });
    /** An admin change, or with ?dry_run=true what it would change (validated the same way, not applied). */
    const apply = async (input: ChangeInput, dryRun: boolean): Promise<Reply> =>
      (dryRun ? { status: 200, body: previewBody(await store.preview(input)) } : change(store.change(input, 'admin')));
    /** PUT of one named entry: 201 when the edit created it, 200 when it replaced it. */
    const upsert = async (query: URLSearchParams, edit: (raw: RawConfig) => { next: unknown; created: boolean }): Promise<Reply> => {
      const { dryRun } = writeOptions(query, ['dry_run']);
      let created = false;
      const input: ChangeInput = { kind: 'edit', edit: (raw) => { const r = edit(raw); created = r.created; return r.next; } };
      if (dryRun) return apply(input, true);
      const result = await store.change(input, 'admin');
      return { status: created && result.changed ? 201 : 200, body: changeBody(result) };
    };
    /** DELETE of one named entry (?dry_run=true answers what it would change). */
    const remove = (query: URLSearchParams, edit: (raw: RawConfig) => unknown): Promise<Reply> =>
      apply({ kind: 'edit', edit }, writeOptions(query, ['dry_run']).dryRun);
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
      ...this.observabilityEndpoints(),
      { pattern: /^\/cluster$/, methods: { GET: async () => ({ status: 200, body: await this.ctx.cluster() }) } },
      {
        pattern: /^\/config$/,
        methods: {
          GET: async () => ({ status: 200, body: { ...versionHeader(live()), generation: live().generation, config: redacted(live().raw) } }),
          PUT: async (req, _params, query) => {
            const { dryRun, allowEmpty } = writeOptions(query, ['dry_run', 'allow_empty']);
            const body = await readBody(req);
            requireWholeConfig(body, allowEmpty);
            return apply({ kind: 'document', value: body }, dryRun);
          },
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
          POST: async (_req, [v], query) => {
            writeOptions(query, []);
            if (!/^[0-9]+$/.test(v)) return failure(404, 'version_not_found', `"${v}" is not a version number`);
            return change(store.rollback(Number(v)));
          },
        },
      },
      {
        pattern: /^\/tls$/,
        methods: { GET: async () => this.withTls(async (tls) => ({ status: 200, body: tls.status() })) },
      },
      {
        // Re-reads the certificate files now (the file watch does the same on a change).
        pattern: /^\/tls\/reload$/,
        methods: {
          POST: async (_req, _params, query) => {
            writeOptions(query, []);
            return this.withTls(async (tls) => {
              const { changed, status } = await tls.reload();
              return { status: 200, body: { changed, ...status } };
            });
          },
        },
      },
      { pattern: /^\/reload$/, methods: { POST: async (_req, _params, query) => { writeOptions(query, []); return change(store.reloadFile('admin', true).then((r) => r!)); } } },
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
          PUT: async (req, [name], query) => {
            const body = await readBody(req);
            checkName(body, name);
            return upsert(query, (raw) => {
              const routes = [...raw.routes] as unknown[];
              const index = raw.routes.findIndex((r) => r.name === name);
              const route = { ...(body as object), name };
              if (index >= 0) routes[index] = route;
              else routes.push(route);
              return { next: { ...raw, routes }, created: index < 0 };
            });
          },
          DELETE: async (_req, [name], query) => remove(query, (raw) => {
            if (!raw.routes.some((r) => r.name === name)) throw new ChangeError(404, 'route_not_found', `no route named "${name}"`);
            return { ...raw, routes: raw.routes.filter((r) => r.name !== name) };
          }),
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
          PUT: async (req, [name], query) => {
            const body = await readBody(req);
            return upsert(query, (raw) => ({
              next: { ...raw, services: { ...raw.services, [name]: body } },
              created: !Object.hasOwn(raw.services, name),
            }));
          },
          DELETE: async (_req, [name], query) => remove(query, (raw) => {
            if (!Object.hasOwn(raw.services, name)) throw new ChangeError(404, 'service_not_found', `no service named "${name}"`);
            // Its routes: the one service, a split member or the mirror of each.
            const users = raw.routes.filter((r) => r.service === name || r.services?.some((m) => m.name === name) || r.mirror?.service === name).map((r) => r.name);
            if (users.length > 0) {
              throw new ChangeError(409, 'service_in_use', `service "${name}" is used by ${users.length === 1 ? 'route' : 'routes'} ${users.map((u) => `"${u}"`).join(', ')}; change or delete ${users.length === 1 ? 'it' : 'them'} first`, { routes: users });
            }
            const services = { ...raw.services };
            delete services[name];
            return { ...raw, services };
          }),
        },
      },
      ...consumerEndpoints({ name: NAME, live, versionHeader: () => versionHeader(live()), upsert, remove, readBody }),
    ];
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function tlsNotConfigured(): Reply {
  return failure(404, 'tls_not_configured', 'this instance has no server.tls (no HTTPS listener)');
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

function previewBody(p: ChangePreview) {
  return { dry_run: true, changed: p.changed, version: p.version, hash: p.hash, changes: p.changes };
}

/** Sections PUT /config empties when a body leaves them out: refused unless the request says so. */
const WHOLE_CONFIG_SECTIONS = { services: '{}', routes: '[]' } as const;

interface WriteOptions {
  dryRun: boolean;
  allowEmpty: ReadonlySet<string>;
}

/**
 * The query of a write. An unknown parameter is refused (400), so that a misspelt
 * `dry_run` never applies the change it meant to preview.
 */
function writeOptions(query: URLSearchParams, allowed: readonly ('dry_run' | 'allow_empty')[]): WriteOptions {
  const refuse = (message: string) => new ChangeError(400, 'invalid_query', message);
  const options: WriteOptions = { dryRun: false, allowEmpty: new Set() };
  for (const [key, value] of query) {
    if (!(allowed as readonly string[]).includes(key)) {
      throw refuse(`unknown query parameter ${JSON.stringify(key)} (${allowed.length === 0 ? 'this endpoint takes none' : `this endpoint takes ${allowed.join(', ')}`})`);
    }
    if (key === 'dry_run') {
      if (value === '' || value === 'true' || value === '1') options.dryRun = true;
      else if (value !== 'false' && value !== '0') throw refuse(`dry_run must be true or false, got ${JSON.stringify(value)}`);
    } else {
      for (const section of value.split(',').map((v) => v.trim()).filter((v) => v !== '')) {
        if (!Object.hasOwn(WHOLE_CONFIG_SECTIONS, section)) throw refuse(`allow_empty takes ${Object.keys(WHOLE_CONFIG_SECTIONS).join(', ')}, got ${JSON.stringify(section)}`);
        (options.allowEmpty as Set<string>).add(section);
      }
    }
  }
  return options;
}

/** PUT /config replaces everything: a body without services or routes would empty them, so that must be meant. */
function requireWholeConfig(body: unknown, allowEmpty: ReadonlySet<string>): void {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return; // the schema says what is wrong
  const missing = Object.entries(WHOLE_CONFIG_SECTIONS).filter(([key]) => !Object.hasOwn(body, key) && !allowEmpty.has(key));
  if (missing.length === 0) return;
  throw new ConfigError(missing.map(([key, empty]) => ({
    file: 'admin-api',
    path: key,
    message: `is missing: PUT /config replaces the whole config, so this would remove every ${key === 'routes' ? 'route' : 'service'}; ` +
      `send "${key}": ${empty} or add ?allow_empty=${key} if that is meant`,
  })));
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
