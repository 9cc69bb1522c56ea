// `npm run bench`: every native bench, one table. Each bench also runs alone:
//   node dist/native-bench/<name>.bench.js
import { run as routeMatch } from './route-match.bench.js';
import { run as correlationId } from './correlation-id.bench.js';
import { run as requestHeaders } from './request-headers.bench.js';
import { run as rateLimit } from './rate-limit.bench.js';
import { run as jwtVerify } from './jwt-verify.bench.js';
import { run as responseWrite } from './response-write.bench.js';
import { run as upstreamParse } from './upstream-parse.bench.js';
import { run as metrics } from './metrics.bench.js';
import { run as edgeFilters } from './edge-filters.bench.js';
import { run as accessLog } from './access-log.bench.js';
import { run as health } from './health.bench.js';
import { run as retry } from './retry.bench.js';
import { run as grpcJson } from './grpc-json.bench.js';
import { run as breaker } from './breaker.bench.js';
import { run as grpcOffload } from './grpc-offload.bench.js';
import { run as grpcClient } from './grpc-client.bench.js';
import { run as wafEngines } from './waf-engines.bench.js';
import { run as waf } from './waf.bench.js';
import { run as keyAuth } from './key-auth.bench.js';
import { printRows, type BenchRow } from './bench-kit.js';

const benches: [string, () => Promise<BenchRow[]>][] = [
  ['route-match', () => routeMatch()],
  ['correlation-id', () => correlationId()],
  ['request-headers', () => requestHeaders()],
  ['rate-limit', () => rateLimit()],
  ['jwt-verify', () => jwtVerify()],
  ['response-write', () => responseWrite()],
  ['upstream-parse', () => upstreamParse()],
  ['metrics', () => metrics()],
  ['edge-filters', () => edgeFilters()],
  ['access-log', () => accessLog()],
  ['health', () => health()],
  ['retry', () => retry()],
  ['grpc-json', () => grpcJson()],
  ['breaker', () => breaker()],
  ['grpc-offload', () => grpcOffload()],
  ['grpc-client', () => grpcClient()],
  ['waf-engines', () => wafEngines()],
  ['waf', () => waf()],
  ['key-auth', () => keyAuth()],
];

const only = process.argv.slice(2);
const rows: BenchRow[] = [];
for (const [name, run] of benches) {
  if (only.length > 0 && !only.includes(name)) continue;
  process.stderr.write(`running ${name}…\n`);
  rows.push(...await run());
}
console.log(`\nNode ${process.version} · ${new Date().toISOString()}`);
printRows(rows);
