#!/usr/bin/env node
// Process entry: the `lobby` command. `start` runs the control plane on this (main) thread
// and the data plane on worker threads; `check` validates a config and prints its routes.
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { loadConfig } from './control/config-load.js';
import { ControlPlane, LOBBY_VERSION } from './control/control-plane.js';
import { runCheck } from './control/check.js';
import { keyHashText } from './filters/key-auth/schema.js';
import { probeListenPort, Supervisor } from './control/supervisor.js';
import { log } from './shared/log.js';

const USAGE = `Usage:
  lobby start [FILE]            Run the gateway on FILE (or --config FILE; default $LOBBY_CONFIG or
                                config/gateway.yaml). Refuses to start when another process listens
                                on server.host:port, unless server.reuse_port: true.
                                SIGTERM/SIGINT: /readyz fails; after server.drain_delay_ms (a
                                second signal ends it) stop accepting, finish in-flight requests
                                (up to server.drain_timeout_ms), exit 0. SIGHUP, or a change of FILE on
                                disk: reload FILE; an invalid file is reported and the running
                                config is kept. With an admin section: the admin API (docs/admin-api.md).
  lobby check [FILE]            Validate FILE (or --config FILE), print the compiled route table;
                                exit 1 listing every error (file, key path, line, problem).
  lobby report --admin URL --out FILE
                                Save the live latency report (GET /report of the admin API at URL,
                                e.g. http://127.0.0.1:9901) as a self-contained HTML file. The
                                admin token comes from --token or $LOBBY_ADMIN_TOKEN.
  lobby hash-key [KEY]          Print the hash of an API key as consumers[].keys[].hash takes it
                                (sha256:<hex>). Reads the key from stdin when KEY is not given
                                (one trailing newline is not part of it), so it stays out of
                                the shell history.
  lobby --help                  This text.
  lobby --version               Print the version.

A command line that cannot be run as written (unknown command or flag, a flag without its
value, two config files) prints why and this usage, and exits 2.
`;

const HELP = `lobby — an API gateway on uWebSockets.js

${USAGE}
Environment:
  LOBBY_CONFIG      default config file
  LOBBY_LOG_LEVEL   debug | info | warn | error (default info); logs are pino JSON lines on stderr

Signals: SIGTERM/SIGINT drain and stop, SIGHUP reloads the config, SIGUSR1 reopens the
access-log files (logrotate).
`;

/** Exit code of a command line that cannot be run as written (after printing why and the usage). */
const USAGE_ERROR = 2;

function usageError(problem: string): number {
  process.stderr.write(`lobby: ${problem}\n\n${USAGE}`);
  return USAGE_ERROR;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        admin: { type: 'string' },
        out: { type: 'string', short: 'o' },
        token: { type: 'string' },
      },
    });
  } catch (err) {
    // Unknown flags and a flag without its value (`--config` last, or followed by a flag).
    if (!String((err as NodeJS.ErrnoException).code).startsWith('ERR_PARSE_ARGS')) throw err;
    return usageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [command, ...operands] = positionals;
  if (values.help || command === 'help') { process.stdout.write(HELP); return 0; }
  if (values.version) { process.stdout.write(`lobby ${LOBBY_VERSION}\n`); return 0; }
  if (command === 'report') return report(operands, values);
  if (command === 'hash-key') return hashKey(operands, values);
  if (values.admin !== undefined || values.out !== undefined || values.token !== undefined) {
    return usageError(`--admin, --out and --token belong to lobby report, not ${command ?? 'no command'}`);
  }
  if (command !== 'check' && command !== 'start') {
    return command ? usageError(`unknown command "${command}"`) : usageError('no command given');
  }
  if (operands.length > 1) return usageError(`${command} takes one config file, got ${operands.length}: ${operands.join(' ')}`);
  if (operands.length === 1 && values.config !== undefined) {
    return usageError(`two config files given (${operands[0]} and --config ${values.config}); give one`);
  }
  const file = operands[0] ?? values.config ?? process.env.LOBBY_CONFIG ?? 'config/gateway.yaml';
  if (command === 'check') return runCheck(file);
  await start(file);
  return -1; // keeps running; exits from the signal handlers
}

/** `lobby hash-key [KEY]`: the key's `sha256:<hex>`, as the config takes it. */
async function hashKey(operands: string[], values: { admin?: string; out?: string; token?: string; config?: string }): Promise<number> {
  if (values.admin !== undefined || values.out !== undefined || values.token !== undefined || values.config !== undefined) {
    return usageError('hash-key takes no flags, only the key (or the key on stdin)');
  }
  if (operands.length > 1) return usageError(`hash-key takes one key, got ${operands.length}`);
  // From stdin the key's bytes are hashed as they are (the filter hashes a header's raw
  // bytes): decoding them as UTF-8 first would turn bytes that are not UTF-8 into U+FFFD.
  let key: string | Buffer | undefined = operands[0];
  if (key === undefined) {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
    let bytes = Buffer.concat(chunks);
    if (bytes.at(-1) === 0x0a) bytes = bytes.subarray(0, bytes.at(-2) === 0x0d ? -2 : -1);
    key = bytes;
  }
  if (key.length === 0) {
    process.stderr.write('lobby: hash-key: the key is empty\n');
    return 1;
  }
  process.stdout.write(`${keyHashText(key)}\n`);
  return 0;
}

/** `lobby report --admin URL --out FILE`: GET /report, written to FILE. */
async function report(operands: string[], values: { admin?: string; out?: string; token?: string; config?: string }): Promise<number> {
  if (operands.length > 0) return usageError(`report takes no operands, got ${operands.join(' ')}`);
  if (values.config !== undefined) return usageError('report reads a running gateway (--admin URL), not a config file');
  if (values.admin === undefined || values.out === undefined) return usageError('report needs --admin URL and --out FILE');
  let url: URL;
  try {
    url = new URL('/report', values.admin);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
  } catch {
    return usageError(`--admin must be the admin API's http(s) URL, like http://127.0.0.1:9901; got ${JSON.stringify(values.admin)}`);
  }
  const token = values.token ?? process.env.LOBBY_ADMIN_TOKEN;
  let res: Response;
  try {
    res = await fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    process.stderr.write(`lobby: cannot reach the admin API at ${url.origin}: ${(err as Error).cause ?? (err as Error).message}\n`);
    return 1;
  }
  const text = await res.text();
  if (res.status !== 200) {
    process.stderr.write(`lobby: ${url.href} answered ${res.status}${res.status === 401 ? ' (give the admin token with --token or $LOBBY_ADMIN_TOKEN)' : ''}: ${text.trim().slice(0, 500)}\n`);
    return 1;
  }
  await writeFile(values.out, text);
  process.stdout.write(`wrote ${values.out} (${text.length} bytes)\n`);
  return 0;
}

async function start(file: string): Promise<void> {
  let config;
  let initial;
  try {
    initial = await loadConfig(file); // keeps the file text: the reload watcher compares it
    config = initial.compiled;
  } catch (err) {
    process.stderr.write(`lobby: cannot start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  if (!initial.raw.server.reuse_port) {
    try {
      if (config.server.tls?.plainHttp !== 'off') await probeListenPort(config.server.host, config.server.port);
      if (config.server.tls) await probeListenPort(config.server.host, config.server.tls.port);
    } catch (err) {
      process.stderr.write(`lobby: cannot start: ${(err as Error).message}\n`);
      process.exit(1);
    }
  }
  const supervisor = new Supervisor(config, { testHooks: process.env.LOBBY_TEST_HOOKS === '1' });
  try {
    await supervisor.start();
  } catch (err) {
    process.stderr.write(`lobby: cannot start: ${(err as Error).message}\n`);
    await supervisor.drain().catch(() => 0);
    process.exit(1);
  }
  let control: ControlPlane;
  try {
    control = await ControlPlane.start({ file, initial, supervisor });
  } catch (err) {
    process.stderr.write(`lobby: cannot start: ${(err as Error).message}\n`);
    await supervisor.drain().catch(() => 0);
    process.exit(1);
  }
  log.info('lobby listening', {
    host: config.server.host, port: config.server.port, workers: config.server.workers, tls_port: config.server.tls?.port,
    routes: config.routes.length, generation: supervisor.generation,
  });

  let stopping = false;
  /** Ends the drain delay early (a second SIGTERM/SIGINT during it); null outside it. */
  let endDelay: (() => void) | null = null;
  const stop = async (signal: string) => {
    if (stopping) {
      if (endDelay !== null) { log.info('second signal during the drain delay: draining now', { signal }); endDelay(); }
      return;
    }
    stopping = true;
    // The live config: drain_delay_ms and drain_timeout_ms may have changed since the start.
    const { drainDelayMs, drainTimeoutMs } = control.store.current.compiled.server;
    // /readyz fails from now on, and every response closes its keep-alive connection, so the
    // balancer takes this instance out and its clients reconnect to the others while the
    // listeners still serve whoever comes during the delay (docs/operations.md).
    control.beginDrain();
    supervisor.closeConnections();
    if (drainDelayMs > 0) {
      log.info('leaving: /readyz fails, serving on until the drain', { signal, delay_ms: drainDelayMs });
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainDelayMs);
        endDelay = () => { clearTimeout(timer); resolve(); };
      });
      endDelay = null;
    }
    log.info('draining', { signal, deadline_ms: drainTimeoutMs });
    const unfinished = await supervisor.drain();
    await control.close();
    log.info('stopped', { unfinished });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => control.onSignal());
  // logrotate: reopen the access-log files. A listener also keeps SIGUSR1 from starting the
  // inspector (Node's default), which a production gateway must not do on a stray signal.
  process.on('SIGUSR1', () => { supervisor.reopenLogs(); log.info('access log files reopened', { signal: 'SIGUSR1' }); });
}

main(process.argv.slice(2)).then((code) => { if (code >= 0) process.exitCode = code; }, (err) => {
  process.stderr.write(`lobby: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
