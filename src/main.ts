#!/usr/bin/env node
// Process entry: the `lobby` command. `start` runs the control plane on this (main) thread
// and the data plane on worker threads; `check` validates a config and prints its routes.
import { parseArgs } from 'node:util';
import { loadConfig } from './control/config-load.js';
import { ControlPlane, LOBBY_VERSION } from './control/control-plane.js';
import { runCheck } from './control/check.js';
import { Supervisor } from './control/supervisor.js';
import { log } from './shared/log.js';

const HELP = `lobby — an API gateway on uWebSockets.js

Usage:
  lobby start [--config FILE]   Run the gateway. FILE defaults to $LOBBY_CONFIG or config/gateway.yaml.
                                SIGTERM/SIGINT: stop accepting, finish in-flight requests (up to
                                server.drain_timeout_ms), exit 0. SIGHUP, or a change of FILE on
                                disk: reload FILE; an invalid file is reported and the running
                                config is kept. With an admin section: the admin API (docs/admin-api.md).
  lobby check [--config FILE]   Validate FILE, print the compiled route table; exit 1 listing every
                                error (file, key path, line, problem).
  lobby --help                  This text.
  lobby --version               Print the version.

Environment:
  LOBBY_CONFIG      default config file
  LOBBY_LOG_LEVEL   debug | info | warn | error (default info); logs are JSON lines on stderr
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  });
  const command = positionals[0];
  if (values.help || command === 'help') { process.stdout.write(HELP); return 0; }
  if (values.version) { process.stdout.write(`lobby ${LOBBY_VERSION}\n`); return 0; }
  const file = values.config ?? process.env.LOBBY_CONFIG ?? 'config/gateway.yaml';
  switch (command) {
    case 'check':
      return runCheck(file);
    case 'start':
      await start(file);
      return -1; // keeps running; exits from the signal handlers
    default:
      process.stderr.write(command ? `lobby: unknown command "${command}"\n\n${HELP}` : HELP);
      return 2;
  }
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
    host: config.server.host, port: config.server.port, workers: config.server.workers,
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
