// Entry of one data-plane worker thread. It owns a uWebSockets.js app listening on the
// shared port (SO_REUSEPORT spreads connections across workers) and follows the control
// plane: `prepare` builds a generation's tables, the control block's published generation
// says which one new requests use, `drain` ends the worker gracefully.
import { parentPort, workerData } from 'node:worker_threads';
import type { FromWorker, ToWorker, WorkerBoot } from '../src/shared/messages.js';
import { CONTROL_SLOTS } from '../src/shared/control-block.js';
import { log } from '../src/shared/log.js';
import { DataPlaneServer } from '../src/data/server.js';
import { buildGeneration, type Generation } from '../src/data/generation.js';
import { buildFilter, FILTER_PREPARES } from '../src/filters/builders.js';
import { PoolRegistry } from '../src/data/upstream/pools.js';
import type { WorkerEnv } from '../src/data/chain.js';
import { receiveKeys } from '../src/data/auth/keys-store.js';
import { receiveIntrospection } from '../src/data/auth/introspection-client.js';
import { closeVerifyPool } from '../src/data/auth/verify-pool.js';
import { runDrainHooks, runFatalHooks, runReopenHooks } from '../src/data/worker-hooks.js';
import { encodeRouteHistograms } from '../src/filters/metrics/latency.js';
import { startWorkerStats } from '../src/data/worker-stats.js';
import { HealthTable } from '../src/shared/health-table.js';
import { configureOverload } from '../src/data/overload.js';
import { closeUnusedChannels } from '../src/grpc/client.js';
import { followControlBlock } from '../src/data/closing.js';

const boot = workerData as WorkerBoot;
const control = new Int32Array(boot.control);
followControlBlock(control);
const port = parentPort!;
const pools = new PoolRegistry();
const prepared = new Map<number, Generation>();
let current: Generation | null = null;
let currentId = -1;
/** Pools unused after a swap are closed this long after it, so requests that were still
 * reading their body on the old generation can finish on the old pools. */
const POOL_RETIRE_GRACE_MS = 30_000;

function send(msg: FromWorker): void {
  port.postMessage(msg);
}

// Hot path: one Atomics.load per request; the switch itself happens once per publish.
function currentGeneration(): Generation {
  const id = Atomics.load(control, CONTROL_SLOTS.PUBLISHED_GENERATION);
  if (id !== currentId) switchTo(id);
  return current!;
}

function switchTo(id: number): void {
  const next = prepared.get(id);
  if (!next) return; // not prepared here (cannot happen: the control plane waits for every ack)
  current = next;
  currentId = id;
  configureOverload(next.config, boot.workerIndex);
  for (const key of prepared.keys()) if (key < id) prepared.delete(key);
  setTimeout(() => {
    const live = new Set<string>();
    for (const g of prepared.values()) for (const k of g.poolKeys) live.add(k);
    pools.closeUnused(live);
    closeUnusedChannels(live); // gRPC channels (src/grpc/client.ts) no live generation uses
  }, POOL_RETIRE_GRACE_MS).unref();
}

const env: WorkerEnv = {
  workerIndex: boot.workerIndex, post: send, rateLimitTable: boot.rateLimitTable,
  healthTable: boot.health ? new HealthTable(boot.health.table, boot.health.epoch) : undefined,
};
const server = new DataPlaneServer({ currentGeneration, testHooks: boot.testHooks, workerIndex: boot.workerIndex });
if (boot.workerStats) startWorkerStats(boot.workerStats);

process.on('uncaughtException', (err) => {
  // A uWS listen socket left open when a worker dies aborts the whole process, so close
  // everything first; the supervisor then starts a replacement.
  log.error('data-plane worker fault', { worker: boot.workerIndex, error: String(err?.stack ?? err) });
  try { server.closeAll(); } finally { runFatalHooks(); setImmediate(() => process.exit(1)); }
});

port.on('message', async (msg: ToWorker) => {
  switch (msg.type) {
    case 'prepare':
      try {
        // The generation's metric counters reach its filters through their env.
        const genEnv = msg.metrics ? { ...env, metrics: msg.metrics } : env;
        for (const prepare of FILTER_PREPARES) prepare(msg.config);
        prepared.set(msg.generation, buildGeneration(msg.generation, msg.table, msg.routeData, msg.config, pools, genEnv, buildFilter));
        send({ type: 'prepared', generation: msg.generation });
      } catch (err) {
        send({ type: 'prepare-failed', generation: msg.generation, message: String((err as Error)?.message ?? err) });
      }
      break;
    case 'listen': {
      currentGeneration();
      const bound = await server.listen(msg.host, msg.port);
      send(bound === null ? { type: 'listen-failed', host: msg.host, port: msg.port } : { type: 'listening', port: bound });
      break;
    }
    case 'tls': {
      const error = await server.applyTls(msg.config);
      send({ type: 'tls-applied', version: msg.config.version, error });
      break;
    }
    case 'keys':
      receiveKeys(msg.uri, msg.version, msg.keys, msg.refetchInMs);
      break;
    case 'introspected':
      receiveIntrospection(msg);
      break;
    case 'reopen-logs':
      runReopenHooks();
      break;
    case 'latency-request':
      send({ type: 'latency', id: msg.id, worker: boot.workerIndex, routes: encodeRouteHistograms() });
      break;
    case 'upstreams-request':
      send({
        type: 'upstreams', id: msg.id, worker: boot.workerIndex,
        services: (current?.serviceList ?? []).map((s) => ({
          service: s.name,
          targets: s.targets.map((t) => ({ origin: t.origin, inFlight: t.inFlight, ...pools.stats(t.poolKey) })),
        })),
      });
      break;
    case 'retire':
      for (const key of prepared.keys()) if (key < msg.keepFrom && key !== currentId) prepared.delete(key);
      break;
    case 'drain': {
      const unfinished = await server.drain(msg.deadlineMs);
      // Every request has ended (its access-log line is buffered): write everything out first.
      await Promise.race([runDrainHooks(), new Promise((r) => setTimeout(r, 5000))]);
      await Promise.race([Promise.all([pools.closeAll(), closeVerifyPool()]), new Promise((r) => setTimeout(r, 1000))]);
      send({ type: 'drained', unfinished });
      setImmediate(() => process.exit(0));
      break;
    }
  }
});
