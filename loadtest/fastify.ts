// Target `fastify`: @fastify/http-proxy (loadtest/fastify-server.ts) started like Lobby: one Node
// process pinned to the proxy core. Skipped when the devDependency is not installed.

import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { ManagedProcess, ProcessGroup } from './processes.js';

export const FASTIFY_SERVER_ENTRY = fileURLToPath(new URL('./fastify-server.js', import.meta.url));

export interface FastifyTargetOptions {
  host: string;
  port: number;
  upstreamUrl: string;
  /** Keep-alive connections to the upstream (Lobby `connections`, nginx `keepalive`). */
  upstreamConnections: number;
}

export function fastifyCommand(options: FastifyTargetOptions, entry = FASTIFY_SERVER_ENTRY): { command: string; args: string[] } {
  return {
    command: process.execPath,
    args: [entry, '--host', options.host, '--port', String(options.port), '--upstream', options.upstreamUrl, '--connections', String(options.upstreamConnections)],
  };
}

export function startFastify(group: ProcessGroup, options: FastifyTargetOptions, cpu: number | null): ManagedProcess {
  const { command, args } = fastifyCommand(options);
  return group.spawn('fastify', command, args, { cpu });
}

/** Versions of fastify and @fastify/http-proxy, or null when either is not installed (the target is then skipped). */
export function fastifyVersions(): { fastify: string; httpProxy: string } | null {
  const require = createRequire(import.meta.url);
  try {
    const fastify = (require('fastify/package.json') as { version: string }).version;
    const httpProxy = (require('@fastify/http-proxy/package.json') as { version: string }).version;
    return { fastify, httpProxy };
  } catch {
    return null;
  }
}
