// `lobby check`: validate and compile a config file without starting anything, then show
// the route table as the gateway will use it (after defaults and normalization), so the
// operator sees what each route really does.

import type { CompiledConfig, CompiledRoute, CompiledService, RewritePart } from '../shared/compiled-config.js';
import { DEFAULT_METHOD_MASK, methodsInMask, OTHER_METHOD_BIT } from '../shared/methods.js';
import { ConfigError } from './config-error.js';
import { loadConfig } from './config-load.js';

/** Where check output goes (process.stdout, or a collector in tests). */
export interface TextSink {
  write(text: string): unknown;
}

/** Validates `file`; prints the route table and a summary to `out` (0), or every issue to `err` (1). */
export async function runCheck(file: string, out: TextSink = process.stdout, err: TextSink = process.stderr): Promise<number> {
  let loaded;
  try {
    loaded = await loadConfig(file);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    err.write(`${error.message}\n`);
    const count = error.issues.length;
    err.write(`${file}: invalid configuration (${count} ${count === 1 ? 'issue' : 'issues'})\n`);
    return 1;
  }
  const { raw, compiled } = loaded;
  out.write(formatRouteTable(compiled));
  const { server } = compiled;
  const workers = `${server.workers} ${server.workers === 1 ? 'worker' : 'workers'}${raw.server.workers === 'auto' ? ' (auto)' : ''}`;
  out.write(
    `\n${file}: OK: ${plural(compiled.routes.length, 'route')}, ${plural(compiled.services.length, 'service')}, ` +
      `${workers}, listening on ${formatListen(server.host, server.port)}\n`,
  );
  return 0;
}

const COLUMNS = ['ROUTE', 'HOST', 'METHODS', 'MATCH', 'SERVICE', 'TARGETS', 'PATH CHANGE', 'FILTERS'] as const;

/** The compiled routes as an aligned text table, one route per line, in config order. */
export function formatRouteTable(config: CompiledConfig): string {
  if (config.routes.length === 0) return '(no routes: every request gets 404)\n';
  const rows = config.routes.map((route) => {
    const service = config.services[route.service];
    const targets = (s: CompiledService) => `${s.balance}: ${s.targets.map((target) => target.origin).join(', ')}`;
    // A split: each member with its weight (`users-v1 90, users-v2 10`), and their targets.
    const members = route.split?.members.map((m) => ({ service: config.services[m.service], weight: m.weight }));
    const mirror = route.mirror ? ` (mirror: ${config.services[route.mirror.service].name} ${route.mirror.percent}%)` : '';
    return [
      route.name,
      route.match.host ?? '*',
      formatMethods(route.match.methodMask),
      `${route.match.kind} ${route.match.path}`,
      (members ? members.map((m) => `${m.service.name} ${m.weight}`).join(', ') : service.name) + mirror,
      members ? members.map((m) => `${m.service.name}: ${targets(m.service)}`).join('; ') : targets(service),
      formatPathChange(route),
      route.filters.length > 0 ? route.filters.map((f) => f.name).join(' > ') : '-',
    ];
  });
  const widths = COLUMNS.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const line = (cells: readonly string[]) => cells.map((cell, column) => cell.padEnd(widths[column])).join('  ').trimEnd();
  return [line(COLUMNS), ...rows.map(line)].join('\n') + '\n';
}

function formatMethods(mask: number): string {
  if (mask === DEFAULT_METHOD_MASK) return '*';
  const names = methodsInMask(mask);
  // Non-standard methods share one bit, so a route listing PURGE accepts any of them.
  if (mask & OTHER_METHOD_BIT) names.push('(other)');
  return names.join(',');
}

function formatPathChange(route: CompiledRoute): string {
  const changes: string[] = [];
  if (route.stripPrefix !== null) changes.push(`strip_prefix ${route.stripPrefix}`);
  if (route.rewrite !== null) changes.push(`rewrite ${formatRewrite(route.rewrite, route.paramNames)}`);
  if (route.preserveHost) changes.push('preserve_host');
  return changes.length > 0 ? changes.join(', ') : '-';
}

function formatRewrite(parts: readonly RewritePart[], paramNames: readonly string[]): string {
  return parts.map((part) => ('literal' in part ? part.literal : `{${paramNames[part.param]}}`)).join('');
}

/** `host:port`, with an IPv6 host in brackets. */
export function formatListen(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
