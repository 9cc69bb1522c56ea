// Several real Lobby processes that share one Redis (one server, Sentinel or Cluster), each
// with its own admin API, for the multi-instance tests and loadtest/convergence.ts.
import { Agent, request } from 'undici';
import { startGateway, type Gateway } from './gateway.js';
import { adminClient, type AdminClient } from './admin.js';
import { freePort } from './ports.js';

export interface LobbyInstance {
  readonly id: string;
  readonly gw: Gateway;
  readonly admin: AdminClient;
}

/**
 * Starts one instance per id, in parallel; `config(id, adminPort)` is the YAML (with `__PORT__`
 * for the data-plane port). Waits until each is ready (it loaded the latest config from Redis).
 * Every started instance is pushed to `registry` at once, so an after hook stops it also when a
 * sibling failed to start.
 */
export async function startLobbyInstances(ids: string[], config: (id: string, adminPort: number) => string, registry: LobbyInstance[], token?: string): Promise<LobbyInstance[]> {
  return Promise.all(ids.map(async (id) => {
    const adminPort = await freePort();
    const gw = await startGateway(config(id, adminPort), token === undefined ? {} : { env: { LOBBY_ADMIN_TOKEN: token } });
    const instance = { id, gw, admin: adminClient(adminPort, token) };
    registry.push(instance);
    await instance.admin.waitReady(15_000);
    return instance;
  }));
}

/** How an instance reaches its Redis, besides what every fleet test shares. */
export interface FleetRedis {
  /** The topology's own lines of the `redis` section (`cluster: [...]`, or `sentinels:` + `name:`, credentials). */
  readonly topology: readonly string[];
  readonly keyPrefix: string;
  readonly heartbeatMs: number;
  readonly rateLimitSyncMs: number;
}

/**
 * The config of one instance of a Redis-backed fleet: one worker on `__PORT__`, its admin API,
 * the `redis` section (`topology` lines, then key prefix, instance id and intervals), then `rest`
 * (services, limits, routes) as given. What the Sentinel and Cluster tests have in common.
 */
export function fleetConfig(id: string, adminPort: number, redis: FleetRedis, rest: string): string {
  return `
server: { host: 127.0.0.1, port: __PORT__, workers: 1 }
admin: { host: 127.0.0.1, port: ${adminPort} }
redis:
${redis.topology.map((line) => `  ${line}\n`).join('')}  key_prefix: "${redis.keyPrefix}"
  instance_id: ${id}
  heartbeat_ms: ${redis.heartbeatMs}
  rate_limit_sync_ms: ${redis.rateLimitSyncMs}
${rest}`;
}

/** The name of the upstream that answered `path` on `gw` (the test upstreams echo their name), or the status. */
export async function routedTo(gw: Gateway, path: string): Promise<string> {
  const agent = new Agent({ pipelining: 0 });
  try {
    const res = await request(gw.url + path, { dispatcher: agent, headers: { connection: 'close' } });
    const text = await res.body.text();
    if (res.statusCode !== 200) return String(res.statusCode);
    return (JSON.parse(text) as { upstream: string }).upstream;
  } finally {
    await agent.close();
  }
}

/** Stops every instance of `registry` (SIGTERM, then SIGKILL) and empties it. */
export async function stopLobbyInstances(registry: LobbyInstance[]): Promise<void> {
  const all = registry.splice(0);
  await Promise.all(all.map((i) => i.gw.stop()));
}
