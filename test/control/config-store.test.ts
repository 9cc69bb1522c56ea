// ConfigStore: validation before any swap, versions, rollback, instance keys, persist, and
// the cluster protocol (against an in-memory ClusterLink with the Lua scripts' semantics).
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { CompiledConfig } from '../../src/shared/compiled-config.js';
import { compileConfig } from '../../src/control/compile.js';
import { ConfigError } from '../../src/control/config-error.js';
import { loadConfig, parseConfigDocument } from '../../src/control/config-load.js';
import { runCheck } from '../../src/control/check.js';
import {
  ChangeError,
  ConfigStore,
  REDACTED,
  configHash,
  redacted,
  type ClusterLink,
  type StoredVersion,
} from '../../src/control/config-store.js';
import { canonicalJson, type SharedConfig } from '../../src/control/config-shared.js';
import { detachedKeyPair } from '../helpers/keys.js';
import { validateRawConfig, type RawConfig } from '../../src/control/config-schema.js';

const TOKEN = 'a-very-secret-admin-token';
const HS_SECRET = 'hmac-secret-from-env-0123456789-abcdef';
const HS_K = Buffer.from('an-oct-key-from-the-env-32-bytes').toString('base64url');
const ENV = { TEST_ADMIN_TOKEN: TOKEN, HS_SECRET, HS_K };


const BASE = `# the test config
server: { host: 127.0.0.1, port: 18080, workers: 2 }
admin:
  port: 19901
  token: \${TEST_ADMIN_TOKEN}   # from the environment
services:
  a: { targets: ["http://127.0.0.1:9001"] }   # service a
  b: { targets: ["http://127.0.0.1:9002"] }
routes:
  - { name: ra, match: { prefix: /a }, service: a }
  - { name: rb, match: { prefix: /b }, service: b }
`;

/** BASE with two HMAC providers whose secrets come from the environment. */
const WITH_SECRETS = BASE + `auth:
  providers:
    - name: hs     # secret from the environment
      issuer: https://issuer.test
      audiences: [api]
      secret: \${HS_SECRET}
      algorithms: [HS256]
    - { name: jwk, issuer: https://issuer.test, keys: [ { kty: oct, kid: k1, k: "\${HS_K}" } ], algorithms: [HS256] }
`;

class FakePublisher {
  published: CompiledConfig[] = [];
  generation = 1;
  failNext: string | null = null;
  async publish(config: CompiledConfig): Promise<number> {
    if (this.failNext) {
      const message = this.failNext;
      this.failNext = null;
      throw new Error(message);
    }
    this.published.push(config);
    return ++this.generation;
  }
}

let dir: string;
before(async () => { dir = await mkdtemp(join(tmpdir(), 'lobby-store-')); });
after(async () => { await rm(dir, { recursive: true, force: true }); });

let fileCount = 0;
async function makeStore(text = BASE, opts: { clustered?: boolean; persist?: boolean } = {}) {
  const file = join(dir, `gateway-${fileCount++}.yaml`);
  const body = opts.persist ? text.replace('  port: 19901\n', '  port: 19901\n  persist: true\n') : text;
  await writeFile(file, body);
  const { raw, locate } = parseConfigDocument(body, file, ENV);
  const compiled = compileConfig(raw, file, locate);
  const publisher = new FakePublisher();
  const store = new ConfigStore({ file, initial: { raw, compiled, text: body }, generation: 1, publisher, instance: 'test', clustered: opts.clustered ?? false, env: ENV });
  return { store, publisher, file };
}

function withRoute(raw: RawConfig, name: string, prefix: string, service = 'a'): unknown {
  return { ...raw, routes: [...raw.routes, { name, match: { prefix }, service }] };
}

async function rejects(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  assert.fail('expected a rejection');
}

describe('config store: changes', () => {
  it('validates and compiles before publishing; the version counts and the hash names the content', async () => {
    const { store, publisher } = await makeStore();
    assert.equal(store.current.version, 1);
    const before = store.current.hash;
    assert.match(before, /^[0-9a-f]{12}$/);
    const r = await store.change({ kind: 'edit', edit: (raw) => withRoute(raw, 'rc', '/c') }, 'admin');
    assert.deepEqual([r.changed, r.version, r.generation], [true, 2, 2]);
    assert.notEqual(r.hash, before);
    assert.equal(publisher.published.length, 1);
    assert.deepEqual(publisher.published[0].routes.map((route) => route.name), ['ra', 'rb', 'rc']);
    assert.equal(store.current.hash, configHash(store.current.raw));
  });

  it('a submission with a schema error checks its relative keys_file against the config folder, not the cwd', async () => {
    const { store } = await makeStore();
    const jwk = { ...detachedKeyPair({ type: 'rsa', bits: 2048 }).publicKey.export({ format: 'jwk' }), kid: 'k1' };
    await writeFile(join(dir, 'store-keys.json'), JSON.stringify({ keys: [jwk] }));
    const error = await rejects(store.change({
      kind: 'document',
      value: {
        ...store.current.raw, bogus: 1,
        auth: { providers: [{ name: 'p', issuer: 'me', keys_file: 'store-keys.json', algorithms: ['RS256'] }] },
      },
    }, 'admin'));
    assert.ok(error instanceof ConfigError);
    // Only the schema's issue: the keys file beside the config was found.
    assert.deepEqual(error.issues.map((i) => `${i.path}: ${i.message}`).filter((t) => !t.startsWith('bogus')), []);
  });

  it('refuses an invalid change with every issue and publishes nothing', async () => {
    const { store, publisher } = await makeStore();
    const live = store.current;
    const error = await rejects(store.change({
      kind: 'document',
      value: { services: { a: { targets: ['ftp://x'] } }, routes: [{ name: 'r', match: { prefix: 'nope' }, service: 'a' }], bogus: 1 },
    }, 'admin'));
    assert.ok(error instanceof ConfigError);
    assert.deepEqual(error.issues.map((i) => i.path).sort(), ['bogus', 'routes[0].match.prefix', 'services.a.targets[0]']);
    assert.equal(publisher.published.length, 0);
    assert.equal(store.current, live);
    // Rules between values are reported too (phase 2), with the instance-key check, all at once.
    const error2 = await rejects(store.change({ kind: 'document', value: { server: { port: 18081 }, routes: [{ name: 'r', match: { prefix: '/r' }, service: 'nope' }] } }, 'admin'));
    assert.ok(error2 instanceof ConfigError);
    assert.deepEqual(error2.issues.map((i) => i.path), ['server.port', 'routes[0].service']);
    assert.match(error2.issues[0].message, /cannot change at runtime \(running: 18080\); restart Lobby/);
  });

  it('a publish that a worker refuses leaves the live config and the versions as they were', async () => {
    const { store, publisher } = await makeStore();
    const live = store.current;
    publisher.failNext = 'worker 1 could not prepare generation 2: boom';
    const error = await rejects(store.change({ kind: 'edit', edit: (raw) => withRoute(raw, 'rc', '/c') }, 'admin'));
    assert.ok(error instanceof ChangeError);
    assert.equal(error.status, 500);
    assert.equal(error.code, 'publish_failed');
    assert.match(error.message, /boom/);
    assert.equal(store.current, live);
    assert.equal(store.versions().length, 1);
    // And the next change works and gets the next number.
    assert.equal((await store.change({ kind: 'edit', edit: (raw) => withRoute(raw, 'rc', '/c') }, 'admin')).version, 2);
  });

  it('the same content is not a new version', async () => {
    const { store, publisher } = await makeStore();
    const r = await store.change({ kind: 'document', value: structuredClone(store.current.raw) }, 'admin');
    assert.equal(r.changed, false);
    assert.equal(r.version, 1);
    assert.equal(publisher.published.length, 0);
  });

  it('HMAC provider secrets are redacted and a redacted secret round-trips unchanged', async () => {
    const secret = 'hmac-secret-0123456789-0123456789-abcdef';
    const text = BASE + `auth:
  providers:
    - { name: hs, issuer: https://issuer.test, audiences: [api], secret: "${secret}", algorithms: [HS256] }
`;
    const { store } = await makeStore(text);
    const shown = redacted(store.current.raw);
    assert.equal(shown.auth?.providers[0].secret, REDACTED);
    assert.ok(!JSON.stringify(shown).includes(secret));
    assert.equal((await store.change({ kind: 'document', value: withRoute(shown, 'rc', '/c') }, 'admin')).version, 2);
    assert.equal(store.current.raw.auth?.providers[0].secret, secret);
  });

  it('introspection client secrets are redacted; a redacted one round-trips unchanged, a renamed provider\'s is refused', async () => {
    const secret = 'introspection-client-secret-0123456789';
    const text = BASE + `auth:
  providers:
    - { name: op, kind: introspection, introspection_endpoint: "http://127.0.0.1:9100/i", client_id: lobby, client_secret: "${secret}" }
`;
    const { store } = await makeStore(text);
    const shown = redacted(store.current.raw);
    assert.equal(shown.auth?.providers[0].client_secret, REDACTED);
    assert.ok(!JSON.stringify(shown).includes(secret));
    assert.equal((await store.change({ kind: 'document', value: withRoute(shown, 'rc', '/c') }, 'admin')).version, 2);
    assert.equal(store.current.raw.auth?.providers[0].client_secret, secret);
    const renamed = { ...shown, auth: { ...shown.auth!, providers: [{ ...shown.auth!.providers[0], name: 'other' }] } };
    const error = await rejects(store.change({ kind: 'document', value: renamed }, 'admin'));
    assert.ok(error instanceof ConfigError, String(error));
    assert.deepEqual(error.issues.map((i) => i.path), ['auth.providers[0].client_secret']);
  });

  it('the k of oct JWKs is redacted, in the config and in kept versions; a redacted k round-trips unchanged', async () => {
    const { store } = await makeStore(WITH_SECRETS);
    const shown = redacted(store.current.raw);
    assert.equal(shown.auth?.providers[0].secret, REDACTED);
    assert.deepEqual(shown.auth?.providers[1].keys, [{ kty: 'oct', kid: 'k1', k: REDACTED }]);
    assert.ok(!JSON.stringify(shown).includes(HS_K) && !JSON.stringify(shown).includes(HS_SECRET));
    assert.equal(store.current.raw.auth?.providers[1].keys?.[0].k, HS_K, 'the running config keeps the key');
    const r = await store.change({ kind: 'document', value: withRoute(shown, 'rc', '/c') }, 'admin');
    assert.equal(r.version, 2);
    assert.equal(store.current.raw.auth?.providers[1].keys?.[0].k, HS_K);
    assert.equal(store.current.raw.auth?.providers[0].secret, HS_SECRET);
    assert.ok(!JSON.stringify(redacted(store.versionConfig(2)!)).includes(HS_K));
  });

  it('a redacted secret with no running secret behind it is refused, not taken as the secret "<redacted>"', async () => {
    const { store } = await makeStore(WITH_SECRETS);
    const shown = redacted(store.current.raw) as RawConfig;
    const providers = shown.auth!.providers;
    const attempts: [unknown[], string][] = [
      [[{ ...providers[0], name: 'renamed' }, providers[1]], 'auth.providers[0].secret'],
      [[providers[0], { ...providers[1], keys: [{ ...providers[1].keys![0], kid: 'other' }] }], 'auth.providers[1].keys[0].k'],
      [[providers[0], { ...providers[1], keys: [providers[1].keys![0], { kty: 'oct', k: REDACTED }] }], 'auth.providers[1].keys[1].k'],
    ];
    for (const [list, path] of attempts) {
      const error = await rejects(store.change({ kind: 'document', value: { ...shown, auth: { ...shown.auth, providers: list } } }, 'admin'));
      assert.ok(error instanceof ConfigError, String(error));
      assert.deepEqual(error.issues.map((i) => i.path), [path]);
      assert.match(error.issues[0].message, /is "<redacted>" but there is no running secret to keep \(no running provider "(renamed|jwk)" has/);
    }
    assert.equal(store.current.version, 1);
  });

  it('instance keys may be left out or redacted; changing them is refused', async () => {
    const { store } = await makeStore();
    const shown = redacted(store.current.raw);
    assert.equal(shown.admin?.token, REDACTED);
    assert.ok(!JSON.stringify(shown).includes(TOKEN));
    // GET /config → PUT /config round trip with the redacted token works.
    const shownWithRoute = withRoute(shown, 'rc', '/c') as RawConfig;
    assert.equal((await store.change({ kind: 'document', value: shownWithRoute }, 'admin')).version, 2);
    assert.equal(store.current.raw.admin?.token, TOKEN);
    // Without server/admin at all: kept.
    const { services, routes } = store.current.raw;
    assert.equal((await store.change({ kind: 'document', value: { services, routes: routes.slice(0, 2) } }, 'admin')).version, 3);
    assert.equal(store.current.raw.server.port, 18080);
    assert.equal(store.current.raw.admin?.port, 19901);
    // Other values of instance keys are refused, each named.
    const error = await rejects(store.change({ kind: 'document', value: { server: { workers: 3, host: '0.0.0.0' }, admin: { port: 19902, token: 'another-token-0123456789' }, services, routes } }, 'admin'));
    assert.ok(error instanceof ConfigError);
    assert.deepEqual(error.issues.map((i) => i.path), ['server.host', 'server.workers', 'admin.port', 'admin.token']);
    assert.ok(!error.message.includes(TOKEN), 'the running token is not shown');
    // Runtime keys of server are fine.
    const r = await store.change({ kind: 'document', value: { server: { drain_timeout_ms: 1234, limits: { max_body_bytes: 1000 } }, services, routes } }, 'admin');
    assert.equal(r.changed, true);
    assert.equal(store.current.compiled.server.limits.maxBodyBytes, 1000);
    assert.equal(store.current.compiled.server.drainTimeoutMs, 1234);
  });

  it('keeps the last 20 versions; rollback applies an old content as a new version', async () => {
    const { store } = await makeStore();
    const hashes = new Map<number, string>([[1, store.current.hash]]);
    for (let i = 0; i < 24; i++) {
      const r = await store.change({ kind: 'edit', edit: (raw) => ({ ...raw, routes: [...raw.routes.slice(0, 2), { name: 'x', match: { prefix: `/x${i}` }, service: 'a' }] }) }, 'admin');
      hashes.set(r.version, r.hash);
    }
    const versions = store.versions();
    assert.equal(versions.length, 20);
    assert.deepEqual(versions.map((v) => v.version), Array.from({ length: 20 }, (_, i) => 25 - i));
    const gone = await rejects(store.rollback(3));
    assert.ok(gone instanceof ChangeError && gone.status === 404 && gone.code === 'version_not_found');
    const r = await store.rollback(10);
    assert.deepEqual([r.changed, r.version, r.hash, r.rolledBackTo], [true, 26, hashes.get(10), 10]);
    assert.equal(store.versions()[0].source, 'rollback');
    assert.equal(store.versions()[0].rolledBackTo, 10);
  });

  it('hashes ignore key order and instance keys', async () => {
    assert.equal(canonicalJson({ b: 1, a: [{ y: 2, x: 1 }] }), '{"a":[{"x":1,"y":2}],"b":1}');
    const { store } = await makeStore();
    const raw = store.current.raw;
    const reordered = validateRawConfig({
      routes: raw.routes.map((r) => ({ service: r.service, match: r.match, name: r.name })),
      services: { b: raw.services.b, a: { timeouts: raw.services.a.timeouts, targets: raw.services.a.targets } },
      server: { ...raw.server, port: 1 },
    }, 'x');
    assert.equal(configHash(reordered), configHash(raw));
    assert.notEqual(configHash({ ...raw, routes: raw.routes.slice(1) }), configHash(raw));
  });
});

describe('config store: file', () => {
  it('reloads the file when it changed; its own content is ignored without force', async () => {
    const { store, file } = await makeStore();
    assert.equal(await store.reloadFile('file', false), null, 'unchanged file: nothing to do');
    await writeFile(file, BASE.replace('prefix: /b', 'prefix: /bb'));
    const r = await store.reloadFile('file', false);
    assert.equal(r?.changed, true);
    assert.equal(store.current.compiled.routes[1].match.path, '/bb');
    assert.equal(store.current.source, 'file');
    // An invalid file: refused with file, line and key path; the live config stays.
    await writeFile(file, BASE.replace('prefix: /b }', 'prefix: b }'));
    const error = await rejects(store.reloadFile('signal', true));
    assert.ok(error instanceof ConfigError);
    assert.equal(error.issues[0].line, 11);
    assert.equal(store.current.compiled.routes[1].match.path, '/bb');
  });

  it('persist: true writes changed sections back, keeping comments, ${ENV} references and instance keys', async () => {
    const { store, file } = await makeStore(BASE, { persist: true });
    const r = await store.change({ kind: 'edit', edit: (raw) => withRoute(raw, 'rc', '/c', 'b') }, 'admin');
    assert.equal(r.persisted, true);
    const text = await readFile(file, 'utf8');
    assert.ok(text.includes('token: ${TEST_ADMIN_TOKEN}'), text);
    assert.ok(!text.includes(TOKEN), 'the token is never written in clear');
    assert.ok(text.includes('# the test config') && text.includes('# service a'), text);
    assert.ok(text.includes('persist: true'));
    // The file is a valid config that routes exactly like the live one.
    const reread = await loadConfig(file, ENV);
    assert.equal(configHash(reread.raw), store.current.hash);
    // Our own write is not a change to reload.
    assert.equal(await store.reloadFile('file', false), null);
    // Deleting a service rewrites the services section only.
    await store.change({ kind: 'edit', edit: (raw) => ({ ...raw, routes: raw.routes.filter((x) => x.service !== 'b'), services: { a: raw.services.a } }) }, 'admin');
    const reread2 = await loadConfig(file, ENV);
    assert.deepEqual(Object.keys(reread2.raw.services), ['a']);
    assert.equal(configHash(reread2.raw), store.current.hash);
  });

  it('persist: true never writes a secret from the environment: ${VAR} stays, also for a changed or added provider', async () => {
    const { store, file } = await makeStore(WITH_SECRETS, { persist: true });
    const clear = (text: string) => assert.ok(!text.includes(HS_SECRET) && !text.includes(HS_K), `a resolved secret was written:\n${text}`);
    // A change inside the auth section (an audience of each provider), submitted as shown (redacted).
    const shown = redacted(store.current.raw);
    const providers = shown.auth!.providers.map((p) => ({ ...p, audiences: ['api', 'api2'] }));
    const r = await store.change({ kind: 'document', value: { ...shown, auth: { ...shown.auth, providers } } }, 'admin');
    assert.equal(r.persisted, true, r.persistError);
    let text = await readFile(file, 'utf8');
    clear(text);
    assert.ok(text.includes('secret: ${HS_SECRET}') && text.includes('k: "${HS_K}"') && text.includes('# secret from the environment'), text);
    assert.equal(configHash((await loadConfig(file, ENV)).raw), store.current.hash, 'the file reads back as the live config');
    // A provider added with the same secret in clear (the API does not know where it came from), and one reordered.
    const running = store.current.raw.auth!;
    const copy = { ...running.providers[0], name: 'hs-copy' };
    const copyKeys = { ...running.providers[1], name: 'jwk-copy' };
    const r2 = await store.change({ kind: 'edit', edit: (raw) => ({ ...raw, auth: { ...running, providers: [running.providers[1], running.providers[0], copy, copyKeys] } }) }, 'admin');
    assert.equal(r2.persisted, true, r2.persistError);
    text = await readFile(file, 'utf8');
    clear(text);
    assert.equal(text.split('${HS_SECRET}').length - 1, 2, text);
    assert.equal(text.split('${HS_K}').length - 1, 2, text);
    assert.ok(text.includes('# secret from the environment'), 'the moved provider keeps its text');
    const reread = await loadConfig(file, ENV);
    assert.equal(configHash(reread.raw), store.current.hash);
    assert.equal(reread.raw.auth?.providers.find((p) => p.name === 'hs-copy')?.secret, HS_SECRET);
    // Submitted text with "${" is written so that it reads back as submitted (not expanded on restart).
    const literal = 'https://issuer.test/${NOT_AN_ENV_REF}';
    const r3 = await store.change({ kind: 'edit', edit: (raw) => ({ ...raw, auth: { ...raw.auth!, providers: raw.auth!.providers.map((p) => (p.name === 'hs-copy' ? { ...p, issuer: literal } : p)) } }) }, 'admin');
    assert.equal(r3.persisted, true, r3.persistError);
    const reread3 = await loadConfig(file, ENV);
    assert.equal(reread3.raw.auth?.providers.find((p) => p.name === 'hs-copy')?.issuer, literal);
    assert.equal(configHash(reread3.raw), store.current.hash);
  });

  it('persist: a changed route rewrites that route only; the other routes keep their text', async () => {
    const { store, file } = await makeStore(BASE.replace('service: b }', 'service: b }   # route b'), { persist: true });
    await store.change({ kind: 'edit', edit: (raw) => ({ ...raw, routes: [{ ...raw.routes[0], strip_prefix: '/a' }, raw.routes[1]] }) }, 'admin');
    const text = await readFile(file, 'utf8');
    assert.ok(text.includes('# route b') && text.includes('# service a'), text);
    assert.ok(text.includes('- { name: rb, match: { prefix: /b }, service: b }'), text);
    assert.equal(configHash((await loadConfig(file, ENV)).raw), store.current.hash);
  });

  it('persist: a file with anchors shared by two values still reads back as the live config', async () => {
    const text = BASE.replace('  a: { targets: ["http://127.0.0.1:9001"] }   # service a\n  b: { targets: ["http://127.0.0.1:9002"] }',
      '  a: &svc { targets: ["http://127.0.0.1:9001"] }   # service a\n  b: *svc');
    const { store, file } = await makeStore(text, { persist: true });
    const r = await store.change({ kind: 'edit', edit: (raw) => ({ ...raw, services: { ...raw.services, a: { ...raw.services.a, balance: 'least_request' } } }) }, 'admin');
    assert.equal(r.persisted, true, r.persistError);
    const reread = await loadConfig(file, ENV);
    assert.equal(reread.raw.services.b.balance, 'round_robin', 'b (an alias of a in the file) did not change');
    assert.equal(configHash(reread.raw), store.current.hash);
  });

  it('persist: false never touches the file', async () => {
    const { store, file } = await makeStore();
    await store.change({ kind: 'edit', edit: (raw) => withRoute(raw, 'rc', '/c') }, 'admin');
    assert.equal(await readFile(file, 'utf8'), BASE);
  });

  it('a file that no longer parses is not overwritten; the change still applies and says so', async () => {
    const { store, file } = await makeStore(BASE, { persist: true });
    await writeFile(file, 'server: [');
    const r = await store.change({ kind: 'edit', edit: (raw) => withRoute(raw, 'rc', '/c') }, 'admin');
    assert.equal(r.changed, true);
    assert.equal(r.persisted, false);
    assert.match(r.persistError!, /not a valid config any more/);
    assert.equal(await readFile(file, 'utf8'), 'server: [');
  });
});

/** An in-memory Redis with the semantics of redis-sync.ts's Lua scripts. */
class FakeCluster implements ClusterLink {
  connected = true;
  latest: StoredVersion | null = null;
  counter = 0;
  /** Called before a store, to let "another instance" store first. */
  beforeStore: (() => void) | null = null;

  async fetchLatest() {
    if (!this.connected) throw new Error('down');
    return this.latest && structuredClone(this.latest);
  }
  put(version: number, hash: string, shared: SharedConfig, instance: string) {
    this.latest = { version, hash, shared: structuredClone(shared), instance, at: new Date().toISOString() };
  }
  async store(hash: string, shared: SharedConfig, base: number) {
    const hook = this.beforeStore;
    this.beforeStore = null;
    hook?.();
    const cur = this.latest?.version ?? 0;
    if (cur > base) return null;
    const v = Math.max(this.counter, cur, base) + 1;
    this.counter = v;
    this.put(v, hash, shared, 'me');
    return v;
  }
  async offer(version: number, hash: string, shared: SharedConfig) {
    const cur = this.latest?.version ?? 0;
    if (cur > 0 && cur >= version) return { accepted: false, version: cur };
    const v = version === 0 ? Math.max(this.counter, cur) + 1 : version;
    this.counter = Math.max(this.counter, v);
    this.put(v, hash, shared, 'me');
    return { accepted: true, version: v };
  }
  applied() {}
}

describe('config store: cluster protocol', () => {
  it('seeds an empty Redis, refuses changes until synchronized and while Redis is down', async () => {
    const { store } = await makeStore(BASE, { clustered: true });
    const cluster = new FakeCluster();
    store.attachCluster(cluster);
    assert.equal(store.current.version, 0);
    assert.equal(store.synchronized, false);
    const early = await rejects(store.change({ kind: 'edit', edit: (raw) => withRoute(raw, 'rc', '/c') }, 'admin'));
    assert.ok(early instanceof ChangeError && early.code === 'not_synchronized' && early.status === 503);
    await store.syncFromCluster();
    assert.deepEqual([store.synchronized, store.current.version, cluster.latest?.version, cluster.latest?.hash], [true, 1, 1, store.current.hash]);
    assert.equal(cluster.latest?.shared.admin, undefined, 'instance keys are not shared');
    cluster.connected = false;
    const down = await rejects(store.change({ kind: 'edit', edit: (raw) => withRoute(raw, 'rc', '/c') }, 'admin'));
    assert.ok(down instanceof ChangeError && down.code === 'redis_unavailable' && down.status === 503);
    assert.equal(store.current.version, 1);
  });

  it('loads a newer stored version with its own instance keys; offers its own when Redis lost it', async () => {
    const { store, publisher } = await makeStore(BASE, { clustered: true });
    const cluster = new FakeCluster();
    store.attachCluster(cluster);
    // Another instance (other ports) stored version 7.
    const other = parseConfigDocument(BASE.replace('18080', '28080').replace('prefix: /b', 'prefix: /other'), 'other', ENV).raw;
    const { admin: _a, ...otherShared } = other;
    cluster.counter = 7;
    cluster.put(7, configHash(other), { ...otherShared, server: { ...other.server, host: undefined, port: undefined, workers: undefined } }, 'other');
    await store.syncFromCluster();
    assert.equal(store.current.version, 7);
    assert.equal(store.current.hash, configHash(other));
    assert.equal(store.current.source, 'cluster');
    assert.equal(store.current.raw.server.port, 18080, 'own listen port kept');
    assert.equal(publisher.published.at(-1)?.routes[1].match.path, '/other');
    // Redis restarted empty: our version 7 is offered under its number.
    cluster.latest = null;
    cluster.counter = 0;
    await store.syncFromCluster();
    assert.equal(cluster.latest!.version, 7);
    // The next change continues from 8, not 1.
    assert.equal((await store.change({ kind: 'edit', edit: (raw) => withRoute(raw, 'rc', '/c') }, 'admin')).version, 8);
  });

  it('an edit racing with another instance is rebuilt on top of the newer version (no lost update)', async () => {
    const { store } = await makeStore(BASE, { clustered: true });
    const cluster = new FakeCluster();
    store.attachCluster(cluster);
    await store.syncFromCluster();
    cluster.beforeStore = () => {
      // Another instance adds route "theirs" as version 2 just before our store.
      const theirs = { ...structuredClone(store.current.raw), routes: [...store.current.raw.routes, { name: 'theirs', match: { prefix: '/t' }, service: 'a', preserve_host: false }] };
      const { admin: _a, ...shared } = theirs;
      cluster.counter = 2;
      cluster.put(2, configHash(theirs as RawConfig), { ...shared, server: { limits: theirs.server.limits, drain_timeout_ms: theirs.server.drain_timeout_ms } }, 'other');
    };
    const r = await store.change({ kind: 'edit', edit: (raw) => withRoute(raw, 'mine', '/m') }, 'admin');
    assert.equal(r.version, 3);
    assert.deepEqual(store.current.raw.routes.map((x) => x.name), ['ra', 'rb', 'theirs', 'mine']);
    assert.deepEqual(store.versions().map((v) => [v.version, v.source]), [[3, 'admin'], [2, 'cluster'], [1, 'start']]);
  });
});

describe('config: admin and redis sections', () => {
  const check = (text: string) => {
    try {
      parseConfigDocument(text, 'f.yaml', ENV);
      compileConfig(parseConfigDocument(text, 'f.yaml', ENV).raw, 'f.yaml');
      return [];
    } catch (error) {
      assert.ok(error instanceof ConfigError, String(error));
      return error.issues.map((i) => `${i.path}: ${i.message}`);
    }
  };

  it('without a token the admin API may only listen on loopback', () => {
    assert.deepEqual(check('admin: { host: 127.0.0.1 }\n'), []);
    assert.deepEqual(check('admin: { host: "::1" }\n'), []);
    const issues = check('admin: { host: 0.0.0.0 }\n');
    assert.equal(issues.length, 1);
    assert.match(issues[0], /^admin\.host: without admin\.token the admin API listens only on a loopback address/);
    assert.deepEqual(check('admin: { host: 0.0.0.0, token: "0123456789abcdef" }\n'), []);
  });

  it('checks token length, ports, redis URL and unknown keys', () => {
    assert.deepEqual(check('admin: { token: short, colour: red }\nredis: { url: "http://x", heartbeat_ms: 10 }\n'), [
      'admin.token: must be at least 16 characters (a short token is guessable)',
      'admin.colour: unknown key (allowed: host, port, token, persist)',
      'redis.url: must start with redis:// or rediss://',
      'redis.heartbeat_ms: must be at least 100',
    ]);
    assert.deepEqual(check('server: { port: 9000 }\nadmin: { port: 9000 }\n'), ['admin.port: 9000 is the data-plane port (server.port); the admin API needs its own port']);
    assert.deepEqual(check('redis: { url: "redis://:pw@127.0.0.1:6379/2", key_prefix: "x:" }\n'), []);
  });

  it('redis: exactly one of url, sentinels and cluster, each with its own keys', () => {
    assert.deepEqual(check('redis: { sentinels: ["127.0.0.1:26379", "[::1]:26380"], name: mymaster, username: lobby, password: pw, sentinel_password: spw }\n'), []);
    assert.deepEqual(check('redis: { cluster: ["10.0.0.1:7000", "redis-a.internal:7001"], password: pw, key_prefix: "gw:" }\n'), []);
    assert.deepEqual(check('redis: { key_prefix: "x:" }\n'), [
      'redis: needs exactly one of url (one server), sentinels (with name: Redis Sentinel) or cluster (Redis Cluster)',
    ]);
    assert.deepEqual(check('redis: { url: "redis://127.0.0.1:6379", cluster: ["127.0.0.1:7000"], sentinels: ["127.0.0.1:26379"], name: m }\n'), [
      'redis.sentinels: cannot be combined with url: set exactly one of url, sentinels or cluster',
      'redis.cluster: cannot be combined with url: set exactly one of url, sentinels or cluster',
      'redis.name: applies only with sentinels',
    ]);
    assert.deepEqual(check('redis: { sentinels: ["127.0.0.1:26379"] }\n'), [
      'redis.name: is required with sentinels: the master group they monitor (`sentinel monitor <name> ...` in their config)',
    ]);
    assert.deepEqual(check('redis: { cluster: ["127.0.0.1", "host:99999", "::1:7000"], sentinel_password: x, name: m }\n'), [
      'redis.cluster[0]: must be "host:port", like "10.0.0.7:26379" (an IPv6 address in brackets: "[fd00::7]:26379")',
      'redis.cluster[1]: must be "host:port", like "10.0.0.7:26379" (an IPv6 address in brackets: "[fd00::7]:26379")',
      'redis.cluster[2]: must be "host:port", like "10.0.0.7:26379" (an IPv6 address in brackets: "[fd00::7]:26379")',
      'redis.name: applies only with sentinels',
      'redis.sentinel_password: applies only with sentinels',
    ]);
    assert.deepEqual(check('redis: { cluster: ["127.0.0.1:7000"], sentinel_password: x, name: m, key_prefix: "{gw}:" }\n'), [
      'redis.name: applies only with sentinels',
      'redis.sentinel_password: applies only with sentinels',
      'redis.key_prefix: may not contain { or } with cluster: Lobby puts its own hash tags into the key names (docs/configuration.md#redis)',
    ]);
    assert.deepEqual(check('redis: { sentinels: [], name: m }\n'), [
      'redis.sentinels: must list at least one "host:port"',
    ]);
    assert.deepEqual(check('redis: { url: "redis://127.0.0.1:6379", password: pw }\n'), [
      'redis.password: with url, put the credentials in the URL (redis://user:password@host:port)',
    ]);
  });

  it('redis passwords are redacted by the admin API and accepted back as unchanged', async () => {
    const text = `server: { port: 18081 }\nadmin: { port: 19911 }\nredis: { sentinels: ["127.0.0.1:26379"], name: m, password: "\${PW}", sentinel_password: s3cret }\n`;
    const env = { ...ENV, PW: 'p4ssword' };
    const { raw } = parseConfigDocument(text, 'f.yaml', env);
    const shown = redacted(raw);
    assert.deepEqual([shown.redis?.password, shown.redis?.sentinel_password], [REDACTED, REDACTED]);
    assert.deepEqual([raw.redis?.password, raw.redis?.sentinel_password], ['p4ssword', 's3cret'], 'the running config keeps them');
    const store = new ConfigStore({ file: 'f.yaml', initial: { raw, compiled: compileConfig(raw, 'f.yaml'), text }, generation: 1, publisher: { publish: async () => 2 }, instance: 'i', clustered: false, env });
    const result = await store.change({ kind: 'document', value: { ...shown, routes: [] } }, 'admin');
    assert.equal(result.changed, false, 'the redacted passwords mean "unchanged"');
    await assert.rejects(store.change({ kind: 'document', value: { ...shown, redis: { ...shown.redis, password: 'other' } } }, 'admin'), (error: Error) => {
      assert.match(error.message, /redis\.password: cannot change at runtime; restart Lobby/);
      assert.doesNotMatch(error.message, /p4ssword/);
      return true;
    });
  });

  it('the example config with admin and redis passes lobby check', async () => {
    const file = fileURLToPath(new URL('../../../config/examples/admin-cluster.yaml', import.meta.url));
    const sink = () => ({ text: '', write(chunk: string) { this.text += chunk; return true; } });
    const err = sink();
    const saved = process.env.LOBBY_ADMIN_TOKEN;
    process.env.LOBBY_ADMIN_TOKEN = TOKEN;
    try {
      assert.equal(await runCheck(file, sink(), err), 0, err.text);
    } finally {
      if (saved === undefined) delete process.env.LOBBY_ADMIN_TOKEN;
      else process.env.LOBBY_ADMIN_TOKEN = saved;
    }
  });
});
