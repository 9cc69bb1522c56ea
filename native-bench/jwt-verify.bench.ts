// JWT verification: where a signature check should run and with what.
//   jose seq      jose's jwtVerify, one await at a time (an imported CryptoKey; WebCrypto, async)
//   jose x64      jose's jwtVerify, 64 at once (what an inline jose verifier sees under load)
//   node:crypto   Lobby's TokenVerifier (src/data/auth/jwt.ts), synchronous
//   pool x64      Lobby's piscina pool (workers/jwt-verify.js, 1 thread, the default settings), 64 in
//                 flight, sent as the gateway sends them: batches of MAX_BATCH (16) tokens per task
// per algorithm, plus the pool's round trip alone (tokens refused at their first byte) under
// several piscina settings, one token per task and 16 per task, and a token-cache hit for scale. opsPerSec is verifications (or
// lookups) per second of wall time, from the median time of a batch; cpuUsPerOp is the
// process's CPU time (every thread: the caller, pool threads, libuv's crypto threads) per
// verification, the cost that matters on a loaded gateway where every core is busy.
//
//   node dist/native-bench/jwt-verify.bench.js

import { Bench } from 'tinybench';
import { Piscina } from 'piscina';
import { importJWK, jwtVerify } from 'jose';

import type { Jwk, JwtAlgorithm, VerifierSpec } from '../src/shared/auth-config.js';
import { MAX_BATCH } from '../src/data/auth/provider-state.js';
import { TokenVerifier, type VerifyResult } from '../src/data/auth/jwt.js';
import { KeyBundle, VERIFY_TASK_FILE, type VerifyTask } from '../src/data/auth/verify-pool.js';
import { refusedKey, TokenCache } from '../src/data/auth/token-cache.js';
import { introspectionState } from '../src/data/auth/introspection-client.js';
import { makeKey, sign } from '../test/helpers/jwt.js';
import { collectRows, runWhenMain, type BenchRow } from './bench-kit.js';
import { authJwt } from '../src/filters/auth-jwt/index.js';
import { identityStrip } from '../src/filters/identity-strip/index.js';
import { RequestContext } from '../src/data/request-context.js';
import { NEXT } from '../src/data/chain.js';
import type { AuthJwtFilterConfig } from '../src/shared/auth-config.js';

/** A bench-kit row plus the CPU µs of the whole process per operation. */
export interface JwtBenchRow extends BenchRow {
  cpuUsPerOp: number;
}

const BENCH = 'jwt-verify';
const ALGORITHMS: JwtAlgorithm[] = ['HS256', 'RS256', 'PS256', 'ES256', 'ES384', 'EdDSA'];
const BATCH = 64;
const ISSUER = 'https://issuer.bench';

function spec(alg: JwtAlgorithm): VerifierSpec {
  return { issuer: ISSUER, audiences: ['api'], algorithms: [alg], clockSkewS: 30, requireExp: true, claimsToHeaders: [['sub', 'x-user-id']] };
}

type Pool = Piscina<VerifyTask, VerifyResult[]>;

/** Verifies `tokens` as the gateway does: tasks of up to MAX_BATCH tokens, all in flight at once. */
async function poolVerify(pool: Pool, bundle: KeyBundle, tokens: readonly string[], perTask = MAX_BATCH): Promise<VerifyResult[]> {
  const tasks: Promise<VerifyResult[]>[] = [];
  for (let i = 0; i < tokens.length; i += perTask) {
    tasks.push(pool.run({ tokens: tokens.slice(i, i + perTask), bundle: bundle.id, data: bundle.data }));
  }
  return (await Promise.all(tasks)).flat();
}

function makePool(atomics: 'sync' | 'async' | 'disabled', perThread: number, threads = 1): Pool {
  return new Piscina<VerifyTask, VerifyResult[]>({
    filename: VERIFY_TASK_FILE, minThreads: threads, maxThreads: threads, idleTimeout: 60_000,
    atomics, concurrentTasksPerWorker: perThread,
  });
}

export async function run(options: { time?: number } = {}): Promise<JwtBenchRow[]> {
  const bench = new Bench({ time: options.time ?? 500, iterations: 10 });
  const cpu = new Map<string, { us: number; calls: number }>();
  /** Adds a case whose every call (one batch) is also timed in process CPU. */
  const add = (name: string, fn: () => unknown): void => {
    const acc = { us: 0, calls: 0 };
    cpu.set(name, acc);
    bench.add(name, async () => {
      const start = process.cpuUsage();
      await fn();
      const d = process.cpuUsage(start);
      acc.us += d.user + d.system;
      acc.calls++;
    });
  };
  const pools: Pool[] = [];
  let sink = 0;
  const check = (r: VerifyResult) => { if (!r.ok) throw new Error(`bench token refused: ${r.code}`); sink++; };

  const pool = makePool('async', 16);
  pools.push(pool);
  for (const alg of ALGORITHMS) {
    const key = await makeKey(alg, `bench-${alg}`);
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const tokens = await Promise.all(Array.from({ length: BATCH }, (_, i) =>
      sign(key, { iss: ISSUER, aud: 'api', sub: `user-${i}`, exp })));
    const verifier = new TokenVerifier(spec(alg), [key.jwk as Jwk]);
    const bundle = new KeyBundle(spec(alg), [key.jwk as Jwk]);
    const joseKey = alg.startsWith('HS') ? await importJWK({ ...key.jwk, alg }, alg) : await importJWK({ ...key.jwk }, alg);
    const joseOptions = { issuer: ISSUER, audience: 'api', algorithms: [alg] };
    for (const t of tokens) {
      check(verifier.verify(t, Date.now()));
      await jwtVerify(t, joseKey, joseOptions);
    }
    for (const r of await poolVerify(pool, bundle, tokens)) check(r);

    add(`jose seq ${alg}`, async () => {
      for (let i = 0; i < BATCH; i++) { await jwtVerify(tokens[i], joseKey, joseOptions); sink++; }
    });
    add(`jose x64 ${alg}`, async () => {
      await Promise.all(tokens.map((t) => jwtVerify(t, joseKey, joseOptions)));
      sink++;
    });
    add(`node:crypto ${alg}`, () => {
      const now = Date.now();
      for (let i = 0; i < BATCH; i++) check(verifier.verify(tokens[i], now));
    });
    add(`pool x64 ${alg}`, async () => {
      for (const r of await poolVerify(pool, bundle, tokens)) check(r);
    });
  }

  // The pool's own cost: tokens refused at once ('x' is malformed), 1 and 16 per task.
  const bundle = new KeyBundle(spec('RS256'), []);
  const junk = Array.from({ length: BATCH }, () => 'x');
  const settings: ['sync' | 'async' | 'disabled', number][] = [['sync', 1], ['async', 1], ['async', 16], ['disabled', 16]];
  for (const [atomics, perThread] of settings) {
    const p = atomics === 'async' && perThread === 16 ? pool : makePool(atomics, perThread);
    if (p !== pool) pools.push(p);
    for (const perTask of [1, MAX_BATCH]) {
      await poolVerify(p, bundle, junk, perTask);
      add(`pool round-trip ${atomics}/${perThread} ${perTask}/task`, async () => { await poolVerify(p, bundle, junk, perTask); sink++; });
    }
  }

  // The whole filter on a request whose token is cached (strip identity headers, find the
  // token, one lookup, scopes, inject 3 headers), against identity-strip alone and against
  // copying the request's headers (what every case pays to get a fresh header list).
  {
    const key = await makeKey('RS256', 'filter-1');
    const token = await sign(key, { iss: ISSUER, aud: 'api', sub: 'user-1', scope: 'a b', tenant: 't', exp: Math.floor(Date.now() / 1000) + 3600 });
    const config: AuthJwtFilterConfig = {
      provider: {
        name: 'bench', fingerprint: 'bench', keys: [key.jwk as Jwk], jwks: null, fromCookie: null, fromQuery: null, forwardToken: true,
        spec: { ...spec('RS256'), claimsToHeaders: [['sub', 'x-user-id'], ['scope', 'x-user-scopes'], ['tenant', 'x-tenant-id']] },
      },
      introspection: null, scopes: ['a'], optional: false, stripHeaders: ['x-tenant-id', 'x-user-id', 'x-user-scopes'],
      runtime: { mode: 'inline', threads: 1, concurrentTasksPerThread: 1, atomics: 'async', maxQueue: 16, taskTimeoutMs: 1000, cacheEntries: 1000, cacheMaxBytes: 32 * 1024 * 1024, cacheMaxTtlS: 3600, negativeTtlS: 30 },
    };
    const env = { workerIndex: 0, post: () => {} };
    const filter = authJwt.build(config, env);
    const strip = identityStrip.build({ stripHeaders: config.stripHeaders }, env);
    const request = ['user-agent', 'autocannon', 'accept', '*/*', 'authorization', `Bearer ${token}`, 'accept-encoding', 'gzip'];
    const ctx = new RequestContext({} as never, {} as never, 0);
    const fresh = (): RequestContext => {
      (ctx as { headers: string[] }).headers.length = 0;
      for (let i = 0; i < request.length; i++) ctx.headers.push(request[i]);
      return ctx;
    };
    // Each request's header value is a new string (as uWS hands them over), so the token is hashed each time.
    const tokenCopies = Array.from({ length: BATCH }, () => `Bearer ${token}`.slice(0));
    const flat = tokenCopies.map((t) => Buffer.from(t, 'latin1').toString('latin1'));
    if (filter.onRequest(fresh()) !== NEXT) throw new Error('bench filter refused its token');
    add('filter: headers copy only', () => { for (let i = 0; i < BATCH; i++) { fresh().headers[5] = flat[i]; sink += ctx.headers.length; } });
    add('filter: identity-strip', () => { for (let i = 0; i < BATCH; i++) { fresh().headers[5] = flat[i]; sink += strip.onRequest(ctx); } });
    add('filter: auth-jwt cache hit', () => { for (let i = 0; i < BATCH; i++) { fresh().headers[5] = flat[i]; sink += filter.onRequest(ctx); } });

    // The same request with an opaque token (43 characters, as oidc-provider issues them) of an
    // introspection provider, its answer in the worker's cache: SHA-256 of the token + lookup.
    const opaque = '6LyhWn9u0wNGNcxLJKgmH2on5WhEVFaLIZfDU8LyF2s';
    const ref = { name: 'bench-opaque', fingerprint: 'bench', fromCookie: null, fromQuery: null, forwardToken: true, onUnavailable: 'deny', waitMs: 3000 } as const;
    const opaqueFilter = authJwt.build({ ...config, provider: null, introspection: ref }, env);
    introspectionState(ref, config.runtime, env.post).cache.set(refusedKey(opaque), {
      expiresAt: Date.now() + 3_600_000, headers: ['x-user-id', 'user-1', 'x-user-scopes', 'a b', 'x-tenant-id', 't'], scopes: ['a', 'b'], subject: 'user-1', code: null, seq: 0,
    });
    const opaqueCopies = Array.from({ length: BATCH }, () => Buffer.from(`Bearer ${opaque}`, 'latin1').toString('latin1'));
    fresh().headers[5] = opaqueCopies[0];
    if (opaqueFilter.onRequest(ctx) !== NEXT) throw new Error('bench: the opaque token is not served from the cache');
    add('filter: introspection cache hit', () => { for (let i = 0; i < BATCH; i++) { fresh().headers[5] = opaqueCopies[i]; sink += opaqueFilter.onRequest(ctx); } });
  }

  const cache = new TokenCache(10_000);
  const hot = 'eyJhbGciOiJSUzI1NiJ9.' + 'x'.repeat(600);
  cache.set(hot, { expiresAt: Date.now() + 3_600_000, headers: ['x-user-id', 'u'], scopes: ['a'], code: null, seq: 0 });
  add('token cache hit', () => {
    for (let i = 0; i < BATCH; i++) if (cache.get(hot, Date.now()) !== undefined) sink++;
  });

  let rows: BenchRow[];
  try {
    rows = await collectRows(BENCH, bench, BATCH);
  } finally {
    await Promise.all(pools.map((p) => p.destroy()));
  }
  if (sink === 0.5) console.log(sink);
  return rows.map((r) => {
    const c = cpu.get(r.case)!;
    return { ...r, cpuUsPerOp: c.us / (c.calls * BATCH) };
  });
}

function printRows(rows: readonly JwtBenchRow[]): void {
  const byCase = new Map(rows.map((r) => [r.case, r]));
  const cell = (name: string) => {
    const r = byCase.get(name);
    return r === undefined ? '-'.padStart(22) : `${Math.round(r.opsPerSec).toLocaleString('en-US').padStart(9)} ${r.cpuUsPerOp.toFixed(1).padStart(6)} µs`;
  };
  const kinds = ['jose seq', 'jose x64', 'node:crypto', 'pool x64'];
  console.log('\nverifications/s, CPU µs each'.padEnd(12) + kinds.map((k) => k.padStart(23)).join(''));
  for (const alg of ALGORITHMS) console.log(alg.padEnd(28) + kinds.map((k) => ' ' + cell(`${k} ${alg}`)).join(''));
  console.log('\npool round trip (atomics/concurrentTasksPerWorker, tokens per task; 64 tokens in flight, 1 thread): tokens/s, CPU µs each');
  for (const r of rows.filter((x) => x.case.startsWith('pool round-trip'))) {
    console.log(`  ${r.case.slice('pool round-trip '.length).padEnd(22)} ${cell(r.case)}`);
  }
  console.log(`\ntoken cache hit: ${cell('token cache hit')}`);
  const ns = (name: string) => (1e9 / (byCase.get(name)?.opsPerSec ?? NaN));
  const base = ns('filter: headers copy only');
  console.log(`filter per request (ns, header-list copy of ${base.toFixed(0)} ns subtracted): ` +
    `identity-strip ${(ns('filter: identity-strip') - base).toFixed(0)}, auth-jwt cache hit ${(ns('filter: auth-jwt cache hit') - base).toFixed(0)}, ` +
    `introspection cache hit ${(ns('filter: introspection cache hit') - base).toFixed(0)}`);
}

await runWhenMain(import.meta.url, async () => printRows(await run()));
