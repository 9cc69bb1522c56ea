// A service's `health_check` (active checks, src/control/health-checker.ts) and `outlier`
// (passive ejection, src/data/upstream/outlier.ts) keys: their schema and their compile.
// docs/configuration.md#services and docs/resilience.md say what each key does.
import { z } from 'zod';
import type { CompiledHealthCheck, CompiledOutlier } from '../shared/compiled-config.js';
import type { KeyPath } from './config-error.js';
import { milliseconds, positiveInt, rule, section } from './schema-kit.js';

// A request-target the checker sends as is: origin-form, visible ASCII only.
const CHECK_PATH = /^\/[\x21-\x7e]*$/;
// host or host:port (a bracketed IPv6 literal included), as a Host header value.
const CHECK_HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

const status = z.number().int().min(100, { error: 'must be an HTTP status (100-599)' }).max(599, { error: 'must be an HTTP status (100-599)' });
const count = positiveInt.max(1000, { error: 'must be at most 1000' });
const threshold = z.number().int().min(0).max(1000, { error: 'must be at most 1000' });
const seconds = positiveInt.max(86_400, { error: 'must be at most 86400 (a day)' });

export const healthCheckSchema = section({
  path: z.string().superRefine(rule((p) => (CHECK_PATH.test(p) ? null : 'must be a path starting with / (visible ASCII, no spaces)'))),
  interval_ms: milliseconds.min(100, { error: 'must be at least 100 ms' }).default(5000),
  timeout_ms: milliseconds.default(1000),
  unhealthy_after: count.default(3),
  healthy_after: count.default(2),
  expect_status: z.array(status).min(1, { error: 'must list at least one status' }).default([200]),
  host: z.string().superRefine(rule((h) => (CHECK_HOST.test(h) ? null : 'must be a host name or address, with an optional :port'))).optional(),
});

export const outlierSchema = section({
  consecutive_5xx: threshold.default(5),
  consecutive_connect_failures: threshold.default(5),
  eject_s: seconds.default(30),
  max_eject_s: seconds.default(300),
  max_eject_percent: z.number().int().min(0).max(100, { error: 'must be at most 100' }).default(50),
});

export type RawHealthCheck = z.output<typeof healthCheckSchema>;
export type RawOutlier = z.output<typeof outlierSchema>;

type Report = (path: KeyPath, message: string) => void;

export function compileHealthCheck(raw: RawHealthCheck | undefined, at: KeyPath, report: Report): CompiledHealthCheck | null {
  if (raw === undefined) return null;
  // A check still running when the next one is due would pile up sockets on a hanging target.
  if (raw.timeout_ms > raw.interval_ms) report([...at, 'timeout_ms'], `must be at most interval_ms (${raw.interval_ms})`);
  return {
    path: raw.path,
    intervalMs: raw.interval_ms,
    timeoutMs: raw.timeout_ms,
    unhealthyAfter: raw.unhealthy_after,
    healthyAfter: raw.healthy_after,
    expectStatus: [...new Set(raw.expect_status)],
    host: raw.host ?? null,
  };
}

export function compileOutlier(raw: RawOutlier | undefined, at: KeyPath, report: Report): CompiledOutlier | null {
  if (raw === undefined) return null;
  if (raw.max_eject_s < raw.eject_s) report([...at, 'max_eject_s'], `must be at least eject_s (${raw.eject_s})`);
  if (raw.consecutive_5xx === 0 && raw.consecutive_connect_failures === 0) {
    report(at, 'consecutive_5xx and consecutive_connect_failures are both 0: nothing would ever eject a target (remove outlier instead)');
  }
  return {
    consecutive5xx: raw.consecutive_5xx,
    consecutiveConnectFailures: raw.consecutive_connect_failures,
    ejectS: raw.eject_s,
    maxEjectS: raw.max_eject_s,
    maxEjectPercent: raw.max_eject_percent,
  };
}
