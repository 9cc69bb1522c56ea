// Route lookup: the SharedArrayBuffer matcher vs find-my-way vs a naive linear scan, at
// 10, 1,000 and 10,000 routes (exact, `{param}` and prefix routes mixed). The requests are
// the same shape at every size (ids zero-padded to one width), so the sizes differ only in
// the table, and lookup@10k / lookup@10 shows whether lookup cost grows with route count.
// `sab versioned`: the same paths, each served by two routes that differ only by API version
// (match.version 1 and 2), the requests alternating between the two versions, against `sab`
// (one unversioned route per path): the cost of the version constraint (issue 13: <= 3%).
//
//   node dist/native-bench/route-match.bench.js

import { Bench } from 'tinybench';
import FindMyWay from 'find-my-way';

import type { CompiledRoute } from '../src/shared/compiled-config.js';
import { ANY_METHOD_MASK, methodBit } from '../src/shared/methods.js';
import { encodeRouteTable, describeRouteTable } from '../src/shared/route-table.js';
import { RouteMatcher } from '../src/data/route-match.js';
import { versionBit } from '../src/shared/api-version.js';

import { collectRows, runWhenMain, type BenchRow } from './bench-kit.js';

const BENCH = 'route-match';
const ROUTE_COUNTS = [10, 1_000, 10_000];
/** Lookups per task call: one call is far longer than a timer tick. */
const REQUESTS_PER_CALL = 512;

function serviceName(i: number): string {
  return 'svc' + String(i).padStart(5, '0');
}

/** Routes cycle through: exact, template, prefix. */
function makeRoutes(count: number): CompiledRoute[] {
  const routes: CompiledRoute[] = [];
  for (let i = 0; i < count; i++) {
    const svc = serviceName(i);
    const kind = i % 3 === 0 ? 'exact' : i % 3 === 1 ? 'template' : 'prefix';
    const path = kind === 'exact' ? `/api/v1/${svc}/status`
      : kind === 'template' ? `/api/v1/${svc}/items/{id}`
      : `/static/${svc}`;
    routes.push({
      name: `r${i}`,
      service: 0,
      match: { kind, path, host: null, methodMask: ANY_METHOD_MASK },
      paramNames: kind === 'template' ? ['id'] : [],
      stripPrefix: null,
      rewrite: null,
      preserveHost: false, escapedSlashes: 'reject',
      filters: [],
    });
  }
  return routes;
}

/** Each route twice, serving version 1 (bit 0) and version 2 (bit 1), on the same path. */
function versioned(routes: readonly CompiledRoute[]): CompiledRoute[] {
  return routes.flatMap((r) => [0, 1].map((v) => ({ ...r, name: `${r.name}-v${v + 1}`, match: { ...r.match, versionMask: versionBit(v) } })));
}

/** A request path for route i (matching it). */
function requestFor(routes: readonly CompiledRoute[], i: number): string {
  const { kind, path } = routes[i].match;
  if (kind === 'template') return path.replace('{id}', '12345');
  if (kind === 'prefix') return path + '/css/app.css';
  return path;
}

/** Deterministic spread of requests over all routes. */
function makeRequests(routes: readonly CompiledRoute[]): string[] {
  const requests: string[] = [];
  let seed = 12345;
  for (let i = 0; i < REQUESTS_PER_CALL; i++) {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    // Re-create as a flat string, as the HTTP server hands it over (a concatenation result
    // would make every charCodeAt follow an extra indirection).
    requests.push(Buffer.from(requestFor(routes, seed % routes.length), 'latin1').toString('latin1'));
  }
  return requests;
}

// A naive gateway router: check every route in turn, keep the best by the same precedence
// (full-path over prefix; static over param from the left; longest prefix).
interface LinearRoute { full: boolean; segments: string[]; isParam: boolean[]; paramBits: number }

function makeLinear(routes: readonly CompiledRoute[]): (path: string) => number {
  const table: LinearRoute[] = routes.map((r) => {
    const segments = r.match.path === '/' ? [] : r.match.path.slice(1).split('/');
    const isParam = segments.map((s) => r.match.kind === 'template' && s.startsWith('{'));
    let paramBits = 0;
    isParam.forEach((p, i) => { if (p) paramBits |= 1 << (30 - i); });
    return { full: r.match.kind !== 'prefix', segments, isParam, paramBits };
  });
  return (path: string): number => {
    const parts = path === '/' ? [] : path.slice(1).split('/');
    let best = -1, bestFull = false, bestRank = 0;
    for (let i = 0; i < table.length; i++) {
      const r = table[i];
      if (r.full ? r.segments.length !== parts.length : r.segments.length > parts.length) continue;
      let ok = true;
      for (let s = 0; s < r.segments.length && ok; s++) {
        ok = r.isParam[s] ? parts[s] !== '' : r.segments[s] === parts[s];
      }
      if (!ok) continue;
      const rank = r.full ? -r.paramBits : r.segments.length;
      if (best < 0 || (r.full && !bestFull) || (r.full === bestFull && rank > bestRank)) {
        best = i; bestFull = r.full; bestRank = rank;
      }
    }
    return best;
  };
}

function makeFindMyWay(routes: readonly CompiledRoute[]): (path: string) => unknown {
  const router = FindMyWay();
  const handler = (): void => {};
  for (const r of routes) {
    const { kind, path } = r.match;
    if (kind === 'template') router.on('GET', path.replace(/\{(\w+)\}/g, ':$1'), handler);
    else router.on('GET', path, handler);
    if (kind === 'prefix') router.on('GET', path + '/*', handler);
  }
  return (path: string) => router.find('GET', path);
}

export async function run(options: { time?: number } = {}): Promise<BenchRow[]> {
  const bench = new Bench({ time: options.time ?? 500, iterations: 10 });
  const get = methodBit('GET');
  let sink = 0;

  for (const count of ROUTE_COUNTS) {
    const routes = makeRoutes(count);
    const requests = makeRequests(routes);

    const sab = encodeRouteTable(routes);
    const matcher = new RouteMatcher(sab);
    const linear = makeLinear(routes);
    const fmw = makeFindMyWay(routes);
    // Every request must hit, in every router, or the bench measures misses.
    for (const path of requests) {
      if (matcher.match(get, '', path) < 0 || linear(path) < 0 || fmw(path) === null) {
        throw new Error(`bench setup: ${path} does not match`);
      }
    }
    const info = describeRouteTable(sab);
    console.log(`${count} routes: table ${info.nodes} nodes, ${info.bytes} bytes`);

    const vmatcher = new RouteMatcher(encodeRouteTable(versioned(routes)));
    const versionBits = requests.map((_path, i) => versionBit(i & 1));
    requests.forEach((path, i) => {
      vmatcher.versionBit = versionBits[i];
      if ((vmatcher.match(get, '', path) & 1) !== (i & 1)) throw new Error(`bench setup: ${path} v${(i & 1) + 1} does not match its version`);
    });

    bench.add(`sab @${count}`, () => {
      for (let i = 0; i < requests.length; i++) sink += matcher.match(get, '', requests[i]);
    });
    bench.add(`sab versioned @${count}`, () => {
      for (let i = 0; i < requests.length; i++) {
        vmatcher.versionBit = versionBits[i];
        sink += vmatcher.match(get, '', requests[i]);
      }
    });
    bench.add(`find-my-way @${count}`, () => {
      for (let i = 0; i < requests.length; i++) sink += fmw(requests[i]) === null ? 0 : 1;
    });
    bench.add(`linear @${count}`, () => {
      for (let i = 0; i < requests.length; i++) sink += linear(requests[i]);
    });
  }

  const rows = await collectRows(BENCH, bench, REQUESTS_PER_CALL);
  if (sink === 0.5) console.log(sink); // keep the results observable
  return rows;
}

function printMatrix(rows: readonly BenchRow[]): void {
  const ops = new Map(rows.map((r) => [r.case, r.opsPerSec]));
  console.log('\nlookups/s            ' + ROUTE_COUNTS.map((n) => `@${n}`.padStart(14)).join(''));
  for (const name of ['sab', 'sab versioned', 'find-my-way', 'linear']) {
    const cells = ROUTE_COUNTS.map((n) => Math.round(ops.get(`${name} @${n}`) ?? 0).toLocaleString('en-US').padStart(14));
    console.log(name.padEnd(21) + cells.join(''));
  }
  const first = ops.get(`sab @${ROUTE_COUNTS[0]}`)!;
  const last = ops.get(`sab @${ROUTE_COUNTS[ROUTE_COUNTS.length - 1]}`)!;
  console.log(`\nsab lookup time @${ROUTE_COUNTS.at(-1)} / @${ROUTE_COUNTS[0]}: ${(first / last).toFixed(2)}x (target <= 1.30x)`);
  for (const n of ROUTE_COUNTS) {
    const over = ops.get(`sab @${n}`)! / ops.get(`sab versioned @${n}`)! - 1;
    console.log(`versioned over unversioned @${n}: ${(over * 100).toFixed(1)}% (target <= 3%)`);
  }
}

await runWhenMain(import.meta.url, async () => printMatrix(await run()));
