#!/usr/bin/env node
// Process entry: the `lobby` command. `start` runs the control plane on this (main) thread
// and the data plane on worker threads; `check` validates a config and prints its routes.
import { parseArgs } from 'node:util';
import { loadConfig } from './control/config-load.js';
import { ControlPlane, LOBBY_VERSION } from './control/control-plane.js';
import { runCheck } from './control/check.js';
import { probeListenPort, Supervisor } from './control/supervisor.js';
import { log } from './shared/log.js';

const USAGE = `Usage:
  lobby start [FILE]            Run the gateway on FILE (or --config FILE; default $LOBBY_CONFIG or
                                config/gateway.yaml). Refuses to start when another process listens
                                on server.host:port, unless server.reuse_port: true.
                                SIGTERM/SIGINT: stop accepting, finish in-flight requests (up to
                                server.drain_timeout_ms), exit 0. SIGHUP, or a change of FILE on
                                disk: reload FILE; an invalid file is reported and the running
                                config is kept. With an admin section: the admin API (docs/admin-api.md).
  lobby check [FILE]            Validate FILE (or --config FILE), print the compiled route table;
                                exit 1 listing every error (file, key path, line, problem).
  lobby --help                  This text.
  lobby --version               Print the version.

A command line that cannot be run as written (unknown command or flag, a flag without its
value, two config files) prints why and this usage, and exits 2.
`;

const HELP = `lobby — an API gateway on uWebSockets.js

${USAGE}
Environment:
  LOBBY_CONFIG      default config file
  LOBBY_LOG_LEVEL   debug | info | warn | error (default info); logs are JSON lines on stderr
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
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('draining', { signal, deadline_ms: config.server.drainTimeoutMs });
    control.beginDrain();
    const unfinished = await supervisor.drain();
    await control.close();
    log.info('stopped', { unfinished });
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGHUP', () => control.onSignal());
}

main(process.argv.slice(2)).then((code) => { if (code >= 0) process.exitCode = code; }, (err) => {
  process.stderr.write(`lobby: ${(err as Error).stack ?? err}\n`);
  process.exitCode = 1;
});
