// The live declarative config of this instance and every way it changes.
//
// A change (admin API, file watch, SIGHUP, rollback, another instance through Redis) goes
// through one serialized path:
//
//   input ──► validate + compile (the `lobby check` validator) ──► instance keys unchanged?
//         ──► [cluster: store in Redis, compare-and-set on the version it was based on]
//         ──► Supervisor.publish (every worker prepared, then one Atomics.store)
//         ──► commit: current version, ring of the last 20, [persist to the file]
//
// Nothing is swapped before the whole config compiled; an invalid change throws ConfigError
// (every issue, with its key path) and a publish a worker refused throws ChangeError 500:
// either way the live config is the one before the change.
//
// Versions: a content hash (sha256 of a canonical JSON of the shared config, 12 hex chars)
// plus a counter. The counter is local without Redis and Redis's with it, so every instance
// of a cluster names the same config by the same number.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import type { CompiledConfig } from '../shared/compiled-config.js';
import { log } from '../shared/log.js';
import { compileValidatedConfig, validateConfig } from './compile.js';
import { ConfigError, issueAt, ROOT_PATH, type ConfigIssue, type KeyPath, type LineLocator } from './config-error.js';
import { parseConfigDocument } from './config-load.js';
import type { RawConfig } from './config-schema.js';
import { renderConfigFile, writeFileAtomic } from './config-persist.js';
import { canonicalJson, isPlainObject, LOCAL_SECTIONS, LOCAL_SERVER_KEYS, sharedPart, withLocalKeys, type SharedConfig } from './config-shared.js';

/** Where a change came from (shown in /config/versions and logs). */
export type ChangeSource = 'start' | 'admin' | 'file' | 'signal' | 'rollback' | 'cluster';

/** How many applied versions are kept for GET /config/versions and rollback. */
export const VERSIONS_KEPT = 20;

/** Shown instead of secrets (admin.token, the password of redis.url, redis.password and sentinel_password, HMAC secrets, introspection client secrets and `k` of JWKs); accepted back as "unchanged". */
export const REDACTED = '<redacted>';

const REDIS_SECRET_KEYS = ['password', 'sentinel_password'] as const;

export interface ConfigVersion {
  version: number;
  hash: string;
  source: ChangeSource;
  appliedAt: number;
  /** For a rollback: the version whose content it restored. */
  rolledBackTo?: number;
}

/** A kept version: its config as JSON text (a 10,000-route config is ~1 MB as text, several as objects). */
interface KeptVersion extends ConfigVersion {
  json: string;
}

export interface LiveConfig extends ConfigVersion {
  raw: RawConfig;
  compiled: CompiledConfig;
  generation: number;
}

export interface ChangeResult {
  changed: boolean;
  version: number;
  hash: string;
  generation: number;
  /** Validate + compile + publish, in ms (0 when nothing changed). */
  applyMs: number;
  /** Of which: validate + compile + hash (main thread), and publish (encode the route table, every worker prepared, swap). */
  compileMs: number;
  publishMs: number;
  rolledBackTo?: number;
  /** Present when admin.persist is on and the change was written back (or could not be). */
  persisted?: boolean;
  persistError?: string;
}

/** A refused change that is not a validation error: status and code for the admin API. */
export class ChangeError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'ChangeError';
  }
}

/** What the store needs from the supervisor. */
export interface Publisher {
  publish(config: CompiledConfig): Promise<number>;
}

/** A version as stored in Redis. */
export interface StoredVersion {
  version: number;
  hash: string;
  shared: SharedConfig;
  instance: string;
  at: string;
}

/** What the store needs from Redis (src/control/redis-sync.ts). */
export interface ClusterLink {
  /** Connected to Redis now. */
  readonly connected: boolean;
  /** The latest stored version, or null when none is stored. Throws when Redis is unreachable. */
  fetchLatest(): Promise<StoredVersion | null>;
  /** Stores a change of this instance as the next version, if the latest is still `base`; null when a newer one was stored meanwhile. */
  store(hash: string, shared: SharedConfig, base: number): Promise<number | null>;
  /** Offers this instance's version when Redis has none or an older one (after Redis lost its data). True when it is now the latest. */
  offer(version: number, hash: string, shared: SharedConfig): Promise<{ accepted: boolean; version: number }>;
  /** Called after every commit (heartbeat with the new applied version). */
  applied(): void;
}

/**
 * Content hash of a validated config: first 12 hex digits of sha256 over the JSON of its
 * shared part. The schema emits its objects' keys in schema order, so only the name-keyed
 * mappings near the top (sections, service names) are sorted here; JSON.stringify does the
 * rest 5x faster than a fully canonical walk (10,000 routes: ~3 ms).
 */
export function configHash(raw: RawConfig): string {
  const shared = sharedPart(raw);
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(shared).sort()) {
    const value = shared[key];
    sorted[key] = isPlainObject(value) ? Object.fromEntries(Object.keys(value).sort().map((k) => [k, value[k]])) : value;
  }
  return sha256(JSON.stringify(sorted)).slice(0, 12);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password === '') return url;
    parsed.password = 'REDACTED';
    return parsed.toString().replace('REDACTED', REDACTED);
  } catch {
    return url;
  }
}

type RawProvider = NonNullable<RawConfig['auth']>['providers'][number];

/** A provider as shown: its HMAC secret, its introspection client_secret and the `k` of every static JWK (oct keys are shared secrets) redacted. */
function redactedProvider(p: RawProvider): RawProvider {
  if (p.secret === undefined && p.client_secret === undefined && !p.keys?.some((key) => key.k !== undefined)) return p;
  const out = { ...p };
  if (p.secret !== undefined) out.secret = REDACTED;
  if (p.client_secret !== undefined) out.client_secret = REDACTED;
  if (p.keys) out.keys = p.keys.map((key) => (key.k === undefined ? key : { ...key, k: REDACTED }));
  return out;
}

/** The config as shown by the admin API: secrets replaced by REDACTED. */
export function redacted(raw: RawConfig): RawConfig {
  const out = { ...raw };
  if (raw.admin?.token !== undefined) out.admin = { ...raw.admin, token: REDACTED };
  if (raw.redis) {
    const r = { ...raw.redis };
    if (r.url !== undefined) r.url = redactUrl(r.url);
    for (const key of REDIS_SECRET_KEYS) if (r[key] !== undefined) r[key] = REDACTED;
    out.redis = r;
  }
  if (raw.auth) out.auth = { ...raw.auth, providers: raw.auth.providers.map(redactedProvider) };
  if (raw.server.tls?.passphrase !== undefined) out.server = { ...raw.server, tls: { ...raw.server.tls, passphrase: REDACTED } };
  if (Object.values(raw.services).some((s) => s.tls?.passphrase !== undefined)) {
    out.services = Object.fromEntries(Object.entries(raw.services).map(([name, s]) =>
      [name, s.tls?.passphrase === undefined ? s : { ...s, tls: { ...s.tls, passphrase: REDACTED } }]));
  }
  return out;
}

/**
 * A submitted provider with its REDACTED secrets replaced by the running ones: `secret` from
 * the running provider of the same name, a key's `k` from its running key with the same
 * `kid` (or at the same place when it has none). A REDACTED value with no running secret
 * behind it is refused rather than taken as the literal secret "<redacted>".
 */
function restoreProviderSecrets(p: Record<string, unknown>, index: number, running: RawProvider | undefined, issues: ConfigIssue[], file: string): Record<string, unknown> {
  const out = { ...p };
  const at: KeyPath = ['auth', 'providers', index];
  const name = JSON.stringify(String(p.name));
  const unknown = (path: KeyPath, what: string) => issues.push(issueAt(file, path, `is ${JSON.stringify(REDACTED)} but there is no running secret to keep (${what}); send the secret itself`));
  if (out.secret === REDACTED) {
    if (running?.secret !== undefined) out.secret = running.secret;
    else unknown([...at, 'secret'], `no running provider ${name} has a secret`);
  }
  if (out.client_secret === REDACTED) {
    if (running?.client_secret !== undefined) out.client_secret = running.client_secret;
    else unknown([...at, 'client_secret'], `no running provider ${name} has a client_secret`);
  }
  if (Array.isArray(out.keys)) {
    out.keys = out.keys.map((key: unknown, j: number) => {
      if (!isPlainObject(key) || key.k !== REDACTED) return key;
      const from = key.kid === undefined ? running?.keys?.[j] : running?.keys?.find((r) => r.kid === key.kid);
      if (from === undefined || typeof from.k !== 'string' || from.kid !== key.kid) {
        unknown([...at, 'keys', j, 'k'], `no running provider ${name} has a key ${key.kid === undefined ? `without kid at keys[${j}]` : `with kid ${JSON.stringify(key.kid)}`}`);
        return key;
      }
      return { ...key, k: from.k };
    });
  }
  return out;
}

/**
 * An admin API submission completed from the running config: instance keys it leaves out
 * keep their running values, and a REDACTED secret means "unchanged". Throws ConfigError.
 */
function completeSubmission(input: unknown, running: RawConfig, file: string): unknown {
  if (!isPlainObject(input)) return input;
  const out: Record<string, unknown> = { ...input };
  if (out.server === undefined) out.server = {};
  if (isPlainObject(out.server)) {
    const server = { ...out.server };
    for (const key of LOCAL_SERVER_KEYS) if (!(key in server)) server[key] = running.server[key];
    out.server = server;
  }
  for (const key of LOCAL_SECTIONS) {
    if (!(key in out)) {
      if (running[key] !== undefined) out[key] = running[key];
    }
  }
  if (isPlainObject(out.admin) && out.admin.token === REDACTED && running.admin?.token !== undefined) {
    out.admin = { ...out.admin, token: running.admin.token };
  }
  // A REDACTED TLS passphrase (server.tls, services.<name>.tls) keeps the running one.
  const server = out.server;
  if (isPlainObject(server) && isPlainObject(server.tls) && server.tls.passphrase === REDACTED && running.server.tls?.passphrase !== undefined) {
    out.server = { ...server, tls: { ...server.tls, passphrase: running.server.tls.passphrase } };
  }
  if (isPlainObject(out.services)) {
    out.services = Object.fromEntries(Object.entries(out.services).map(([name, s]) => {
      const kept = running.services[name]?.tls?.passphrase;
      return [name, isPlainObject(s) && isPlainObject(s.tls) && s.tls.passphrase === REDACTED && kept !== undefined ? { ...s, tls: { ...s.tls, passphrase: kept } } : s];
    }));
  }
  if (isPlainObject(out.redis) && running.redis) {
    const r: Record<string, unknown> = { ...out.redis };
    if (running.redis.url !== undefined && r.url === redactUrl(running.redis.url)) r.url = running.redis.url;
    for (const key of REDIS_SECRET_KEYS) if (r[key] === REDACTED && running.redis[key] !== undefined) r[key] = running.redis[key];
    out.redis = r;
  }
  // A provider secret shown as REDACTED means "keep the running secret of that provider".
  if (isPlainObject(out.auth) && Array.isArray(out.auth.providers)) {
    const issues: ConfigIssue[] = [];
    const runningProviders = new Map((running.auth?.providers ?? []).map((p) => [p.name, p]));
    out.auth = {
      ...out.auth,
      providers: out.auth.providers.map((p: unknown, index: number) =>
        (isPlainObject(p) ? restoreProviderSecrets(p, index, runningProviders.get(String(p.name)), issues, file) : p)),
    };
    if (issues.length > 0) throw new ConfigError(issues);
  }
  return out;
}

/** Issues for every instance key that differs from the running config (they apply on restart only). */
function localKeyIssues(next: RawConfig, running: RawConfig, file: string, locate?: LineLocator): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const refuse = (path: KeyPath, shown?: unknown) =>
    issues.push(issueAt(file, path, `cannot change at runtime${shown === undefined ? '' : ` (running: ${JSON.stringify(shown)})`}; restart Lobby to apply it`, locate));
  for (const key of LOCAL_SERVER_KEYS) {
    // server.tls is a mapping (compared as canonical JSON) and holds a passphrase (not shown).
    if (canonicalJson(next.server[key]) !== canonicalJson(running.server[key])) refuse(['server', key], key === 'tls' ? undefined : running.server[key]);
  }
  for (const section of LOCAL_SECTIONS) {
    const a = next[section] as Record<string, unknown> | undefined;
    const b = running[section] as Record<string, unknown> | undefined;
    if (a === undefined && b === undefined) continue;
    if (a === undefined || b === undefined) {
      issues.push(issueAt(file, [section], `cannot be ${a === undefined ? 'removed' : 'added'} at runtime; restart Lobby to apply it`, locate));
      continue;
    }
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (canonicalJson(a[key]) === canonicalJson(b[key])) continue;
      const secret = (section === 'admin' && key === 'token') || (section === 'redis' && (key === 'url' || (REDIS_SECRET_KEYS as readonly string[]).includes(key)));
      refuse([section, key], secret ? undefined : b[key]);
    }
  }
  return issues;
}

/** Names added, removed and changed in a name-keyed part of the config. */
export interface NamedChanges {
  added: string[];
  removed: string[];
  changed: string[];
}

/** What a change would do, by name (a dry run's answer). */
export interface ConfigDiff {
  routes: NamedChanges;
  services: NamedChanges;
  rate_limits: NamedChanges;
  auth_providers: NamedChanges;
  /** Other changed settings, as key paths (`server.limits`, `auth.verifier`, `routes (order)`). */
  settings: string[];
}

function namedChanges(before: Map<string, unknown>, after: Map<string, unknown>): NamedChanges {
  const out: NamedChanges = { added: [], removed: [], changed: [] };
  for (const [name, value] of after) {
    if (!before.has(name)) out.added.push(name);
    else if (canonicalJson(before.get(name)) !== canonicalJson(value)) out.changed.push(name);
  }
  for (const name of before.keys()) if (!after.has(name)) out.removed.push(name);
  return out;
}

const byName = <T extends { name: string }>(list: readonly T[] = []) => new Map(list.map((item) => [item.name, item as unknown]));
const entries = (record: Record<string, unknown> = {}) => new Map(Object.entries(record));

/** The difference between two validated configs, shared part only (instance keys never change at runtime). */
export function diffConfigs(before: RawConfig, after: RawConfig): ConfigDiff {
  const settings: string[] = [];
  const a = sharedPart(before);
  const b = sharedPart(after);
  for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (key === 'services' || key === 'rate_limits') continue;
    if (key === 'routes') {
      // Names in both, each config's order: two Sets, so a 10,000-route dry run stays linear.
      const inBefore = new Set(before.routes.map((r) => r.name));
      const inAfter = new Set(after.routes.map((r) => r.name));
      const order = (raw: RawConfig) => raw.routes.map((r) => r.name).filter((n) => inBefore.has(n) && inAfter.has(n));
      if (canonicalJson(order(before)) !== canonicalJson(order(after))) settings.push('routes (order)');
      continue;
    }
    const x = a[key];
    const y = b[key];
    if ((key === 'server' || key === 'auth') && (isPlainObject(x) || isPlainObject(y))) {
      const xo = isPlainObject(x) ? x : {};
      const yo = isPlainObject(y) ? y : {};
      for (const sub of new Set([...Object.keys(xo), ...Object.keys(yo)])) {
        if (key === 'auth' && sub === 'providers') continue;
        if (canonicalJson(xo[sub]) !== canonicalJson(yo[sub])) settings.push(`${key}.${sub}`);
      }
      if (key === 'auth' && (x === undefined) !== (y === undefined)) settings.push('auth');
    } else if (canonicalJson(x) !== canonicalJson(y)) {
      settings.push(key);
    }
  }
  return {
    routes: namedChanges(byName(before.routes), byName(after.routes)),
    services: namedChanges(entries(before.services), entries(after.services)),
    rate_limits: namedChanges(entries(before.rate_limits), entries(after.rate_limits)),
    auth_providers: namedChanges(byName(before.auth?.providers), byName(after.auth?.providers)),
    settings,
  };
}

/** The answer to a dry run: what the change would do; nothing was applied. */
export interface ChangePreview {
  /** False when the content would stay as it is. */
  changed: boolean;
  /** The running version the preview was computed against. */
  version: number;
  /** The hash the config would have. */
  hash: string;
  changes: ConfigDiff;
}

interface Prepared {
  raw: RawConfig;
  compiled: CompiledConfig;
  hash: string;
  /** When prepare() finished (performance.now()). */
  preparedAt: number;
}

/** A change to apply: a whole config, or an edit of the current one. */
export type ChangeInput =
  | { kind: 'document'; value: unknown }
  | { kind: 'edit'; edit: (current: RawConfig) => unknown };

export interface ConfigStoreOptions {
  file: string;
  /** The config the supervisor started with, and the file text it came from. */
  initial: { raw: RawConfig; compiled: CompiledConfig; text: string };
  generation: number;
  publisher: Publisher;
  /** Name of this instance (logs, Redis). */
  instance: string;
  /** With Redis, versions come from Redis; until the first sync this instance runs version 0. */
  clustered: boolean;
  env?: NodeJS.ProcessEnv;
}

export interface LastChange {
  at: number;
  source: ChangeSource;
  ok: boolean;
  version?: number;
  error?: string;
}

export class ConfigStore {
  private live: LiveConfig;
  private readonly ring: KeptVersion[] = [];
  private queue: Promise<unknown> = Promise.resolve();
  private cluster: ClusterLink | null = null;
  private pendingSync: Promise<void> | null = null;
  private stopped = false;
  /** sha256 of the config file as last read or written by this process (the watcher ignores it). */
  private fileTextHash: string;
  readonly file: string;
  /** The config file's folder: relative paths of every config, however submitted, resolve here (as at start). */
  private readonly baseDir: string;
  readonly persist: boolean;
  /** True once the latest config stored in Redis was loaded (always true without Redis). */
  synchronized: boolean;
  /** Why the last cluster sync failed, or null. */
  syncError: string | null = null;
  lastChange: LastChange | null = null;
  /** Changes applied and refused, by source (lobby_config_reloads_total). */
  readonly changeCounts = new Map<string, { source: string; ok: number; error: number }>();
  private countChange(source: string, ok: boolean): void {
    let c = this.changeCounts.get(source);
    if (c === undefined) { c = { source, ok: 0, error: 0 }; this.changeCounts.set(source, c); }
    if (ok) c.ok++; else c.error++;
  }

  constructor(private readonly opts: ConfigStoreOptions) {
    this.file = opts.file;
    this.baseDir = dirname(resolve(opts.file));
    this.persist = opts.initial.raw.admin?.persist ?? false;
    this.synchronized = !opts.clustered;
    this.fileTextHash = sha256(opts.initial.text);
    const version = opts.clustered ? 0 : 1;
    this.live = {
      version,
      hash: configHash(opts.initial.raw),
      raw: opts.initial.raw,
      compiled: opts.initial.compiled,
      generation: opts.generation,
      source: 'start',
      appliedAt: Date.now(),
    };
    this.record(this.live);
  }

  get current(): LiveConfig {
    return this.live;
  }

  /** Applied versions, newest first (at most VERSIONS_KEPT). */
  versions(): ConfigVersion[] {
    return this.ring.map(({ json: _json, ...version }) => version).reverse();
  }

  /** The config of a kept version, or null. */
  versionConfig(version: number): RawConfig | null {
    const entry = this.ring.find((v) => v.version === version);
    return entry ? (JSON.parse(entry.json) as RawConfig) : null;
  }

  /** Shutting down: every later change is refused (the workers are draining). */
  stop(): void {
    this.stopped = true;
  }

  attachCluster(link: ClusterLink): void {
    this.cluster = link;
  }

  // -------------------------------------------------------------------------------------
  // Changes.

  /**
   * Applies a whole config or an edit of the current one (an edit returns a new object and
   * must not modify the one it is given). Throws ConfigError (400) or ChangeError.
   */
  change(input: ChangeInput, source: ChangeSource, file = 'admin-api'): Promise<ChangeResult> {
    return this.enqueue(() => this.changeNow(() => this.prepareInput(input, file), source));
  }

  /**
   * A dry run of change(): validated and compiled exactly the same way (so it throws the
   * same ConfigError or ChangeError), then compared with the running config; nothing is published,
   * stored or recorded.
   */
  preview(input: ChangeInput, file = 'admin-api'): Promise<ChangePreview> {
    return this.enqueue(async () => {
      const next = this.prepareInput(input, file);
      return { changed: next.hash !== this.live.hash, version: this.live.version, hash: next.hash, changes: diffConfigs(this.live.raw, next.raw) };
    });
  }

  private prepareInput(input: ChangeInput, file: string): Prepared {
    const value = input.kind === 'document' ? input.value : input.edit(this.live.raw);
    return this.prepare(completeSubmission(value, this.live.raw, file), file);
  }

  /** Re-reads the config file and applies it. Without `force`, content this process last read or wrote is ignored (null). */
  reloadFile(source: 'file' | 'signal' | 'admin', force: boolean): Promise<ChangeResult | null> {
    return this.enqueue(async () => {
      let text: string;
      try {
        text = await readFile(this.file, 'utf8');
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
        throw new ConfigError([{ file: this.file, path: ROOT_PATH, message: `cannot read the file (${reason})` }]);
      }
      const textHash = sha256(text);
      if (!force && textHash === this.fileTextHash) return null;
      this.fileTextHash = textHash;
      return this.changeNow(() => {
        const { raw, locate } = parseConfigDocument(text, this.file, this.opts.env ?? process.env);
        return this.prepare(raw, this.file, locate);
      }, source);
    });
  }

  /** Applies again the content of a kept version, as a new version. */
  rollback(version: number): Promise<ChangeResult> {
    return this.enqueue(async () => {
      const raw = this.versionConfig(version);
      if (!raw) {
        throw new ChangeError(404, 'version_not_found', `version ${version} is not among the last ${VERSIONS_KEPT} kept`, {
          kept: this.versions().map((v) => v.version),
        });
      }
      const result = await this.changeNow(() => this.prepare(withLocalKeys(sharedPart(raw), this.live.raw), `version ${version}`), 'rollback', version);
      return { ...result, rolledBackTo: version };
    });
  }

  /**
   * Loads the latest config stored in Redis and applies it when newer; offers ours when
   * Redis has none or an older one. Calls while one is waiting in the queue share it.
   */
  syncFromCluster(): Promise<void> {
    if (this.pendingSync) return this.pendingSync;
    this.pendingSync = this.enqueue(async () => {
      this.pendingSync = null;
      if (this.stopped) return;
      try {
        await this.syncNow();
        this.syncError = null;
      } catch (error) {
        this.syncError = (error as Error).message;
        throw error;
      }
    });
    return this.pendingSync;
  }

  private enqueue<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Validates and compiles a whole config input; refuses changes of instance keys. Throws ConfigError. */
  private prepare(input: unknown, file: string, locate?: LineLocator): Prepared {
    const raw = validateConfig(input, file, locate, this.baseDir);
    const issues = localKeyIssues(raw, this.live.raw, file, locate);
    let compiled: CompiledConfig | null = null;
    try {
      compiled = compileValidatedConfig(raw, file, locate, this.baseDir);
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      issues.push(...error.issues);
    }
    if (issues.length > 0 || compiled === null) throw new ConfigError(issues);
    return { raw, compiled, hash: configHash(raw), preparedAt: performance.now() };
  }

  private async changeNow(build: () => Prepared, source: ChangeSource, rolledBackTo?: number): Promise<ChangeResult> {
    const started = performance.now();
    try {
      if (this.stopped) throw new ChangeError(503, 'shutting_down', 'Lobby is shutting down; no more changes are applied');
      const result = this.cluster ? await this.changeClustered(build, source, started, rolledBackTo) : await this.changeLocal(build, source, started, rolledBackTo);
      this.lastChange = { at: Date.now(), source, ok: true, version: result.version };
      this.countChange(source, true);
      return result;
    } catch (error) {
      this.lastChange = { at: Date.now(), source, ok: false, error: (error as Error).message };
      this.countChange(source, false);
      // File reloads are logged by the reloader (src/control/reload.ts).
      if (source !== 'file' && source !== 'signal') log.warn('config change refused; the running config is kept', { source, error: (error as Error).message });
      throw error;
    }
  }

  private unchanged(): ChangeResult {
    return { changed: false, version: this.live.version, hash: this.live.hash, generation: this.live.generation, applyMs: 0, compileMs: 0, publishMs: 0 };
  }

  private async changeLocal(build: () => Prepared, source: ChangeSource, started: number, rolledBackTo?: number): Promise<ChangeResult> {
    const next = build();
    if (next.hash === this.live.hash) return this.unchanged();
    const generation = await this.publish(next.compiled);
    const version = Math.max(...this.ring.map((v) => v.version)) + 1;
    return this.commit(next, version, generation, source, started, rolledBackTo);
  }

  /**
   * With Redis the change is stored first (compare-and-set on the version it was built on),
   * then applied here; the other instances apply it from the announcement. When another
   * instance stored a newer version meanwhile, that one is applied and the change is built
   * again on top of it (an edit keeps the other instance's change).
   */
  private async changeClustered(build: () => Prepared, source: ChangeSource, started: number, rolledBackTo?: number): Promise<ChangeResult> {
    const link = this.cluster!;
    for (let attempt = 0; attempt < 5; attempt++) {
      if (!link.connected) {
        throw new ChangeError(503, 'redis_unavailable', 'Redis is unreachable: changes are refused until it is back, so that every instance applies the same versions (this instance keeps serving its config)');
      }
      if (!this.synchronized) {
        throw new ChangeError(503, 'not_synchronized', 'this instance has not loaded the latest config stored in Redis yet; retry shortly');
      }
      const next = build();
      if (next.hash === this.live.hash) return this.unchanged();
      let version: number | null;
      try {
        version = await link.store(next.hash, sharedPart(next.raw), this.live.version);
      } catch (error) {
        throw new ChangeError(503, 'redis_unavailable', `could not store the change in Redis: ${(error as Error).message}`);
      }
      if (version === null) {
        await this.syncNow(); // a newer version exists: apply it, then build the change again on top of it
        continue;
      }
      let generation: number;
      try {
        generation = await this.publish(next.compiled);
      } catch (error) {
        // Stored (the other instances apply it) but not applied here: retry shortly.
        setTimeout(() => void this.syncFromCluster().catch(() => undefined), 1000).unref();
        throw new ChangeError(500, 'publish_failed', `stored as version ${version}, but this instance could not apply it: ${(error as ChangeError).message}`);
      }
      return this.commit(next, version, generation, source, started, rolledBackTo);
    }
    throw new ChangeError(503, 'conflict_retry', 'other instances kept changing the config; retry');
  }

  private async syncNow(): Promise<void> {
    const link = this.cluster;
    if (!link) return;
    for (let attempt = 0; attempt < 5; attempt++) {
      const latest = await link.fetchLatest();
      const live = this.live;
      if (latest === null || latest.version < live.version) {
        // Redis is empty (first instance, or it restarted without its data) or behind us.
        const offered = await link.offer(live.version, live.hash, sharedPart(live.raw));
        if (!offered.accepted) continue;
        if (offered.version !== live.version) this.relabel(offered.version);
      } else if (latest.hash === live.hash) {
        if (latest.version !== live.version) this.relabel(latest.version);
      } else {
        await this.applyStored(latest); // newer, or the same number with other content: Redis wins
      }
      this.synchronized = true;
      return;
    }
    throw new Error('the config stored in Redis kept changing; will retry');
  }

  private async applyStored(stored: StoredVersion): Promise<void> {
    const started = performance.now();
    let next: Prepared;
    try {
      next = this.prepare(withLocalKeys(stored.shared, this.live.raw), `redis version ${stored.version}`);
    } catch (error) {
      throw new Error(`cannot apply version ${stored.version} stored by ${stored.instance}: ${(error as Error).message}`);
    }
    const generation = await this.publish(next.compiled);
    await this.commit(next, stored.version, generation, 'cluster', started);
    this.lastChange = { at: Date.now(), source: 'cluster', ok: true, version: stored.version };
    this.countChange('cluster', true);
  }

  /** Same content, number given by Redis (seeding it, or after it lost its data). */
  private relabel(version: number): void {
    this.live = { ...this.live, version };
    this.ring[this.ring.length - 1].version = version; // the live version is always the last recorded
    log.info('config version numbered by redis', { version, hash: this.live.hash });
    this.cluster?.applied();
  }

  private async publish(compiled: CompiledConfig): Promise<number> {
    try {
      return await this.opts.publisher.publish(compiled);
    } catch (error) {
      throw new ChangeError(500, 'publish_failed', `a data-plane worker could not apply the config: ${(error as Error).message}`);
    }
  }

  private async commit(next: Prepared, version: number, generation: number, source: ChangeSource, started: number, rolledBackTo?: number): Promise<ChangeResult> {
    const now = performance.now();
    const round = (ms: number) => Math.round(ms * 10) / 10;
    const applyMs = round(now - started);
    this.live = { version, hash: next.hash, raw: next.raw, compiled: next.compiled, generation, source, appliedAt: Date.now(), rolledBackTo };
    this.record(this.live);
    log.info('config applied', { version, hash: next.hash, source, generation, routes: next.compiled.routes.length, apply_ms: applyMs });
    this.cluster?.applied();
    const result: ChangeResult = {
      changed: true, version, hash: next.hash, generation, applyMs, compileMs: round(next.preparedAt - started), publishMs: round(now - next.preparedAt), rolledBackTo,
    };
    if (this.persist && source !== 'file' && source !== 'signal') {
      try {
        await this.writeBack(next.raw);
        result.persisted = true;
      } catch (error) {
        result.persisted = false;
        result.persistError = (error as Error).message;
        log.error('config applied but not written back to the file', { file: this.file, error: result.persistError });
      }
    }
    return result;
  }

  private record(entry: LiveConfig): void {
    const { compiled: _compiled, generation: _generation, raw, ...version } = entry;
    this.ring.push({ ...version, json: JSON.stringify(raw) });
    if (this.ring.length > VERSIONS_KEPT) this.ring.splice(0, this.ring.length - VERSIONS_KEPT);
  }

  /** admin.persist: the file gets the new shared sections; instance keys and untouched sections keep their text. */
  private async writeBack(raw: RawConfig): Promise<void> {
    let previous: string;
    try {
      previous = await readFile(this.file, 'utf8');
    } catch (error) {
      throw new Error(`cannot read ${this.file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); not written`);
    }
    const text = renderConfigFile(previous, raw, this.file, this.opts.env ?? process.env);
    if (text === previous) return;
    this.fileTextHash = sha256(text);
    await writeFileAtomic(this.file, text);
  }
}
