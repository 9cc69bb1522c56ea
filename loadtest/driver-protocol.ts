// What a load driver is asked to do and what it reports. The autocannon driver runs in a child process
// (pinned to the driver core) and speaks these messages over Node's IPC channel.

import type { HttpMethod, WebSocketSpec } from './scenario.js';

/** The request stream, identical for every target of a run. */
export interface LoadSpec {
  url: string;
  method: HttpMethod;
  headers: Record<string, string>;
  bodySize: number;
  connections: number;
  pipelining: number;
  timeoutSec: number;
  /** Open model: requests/s over all connections; null = closed loop. */
  rate: number | null;
  /** mTLS scenarios: the client certificate to present (files); absent or null = none. */
  clientCert?: ClientCertFiles | null;
  /** WebSocket scenarios: echoed messages instead of requests (loadtest/driver-websocket.ts). */
  websocket?: WebSocketSpec | null;
}

export interface ClientCertFiles {
  cert: string;
  key: string;
}

/** One uninterrupted stretch of load: a fixed duration or a fixed number of requests (soak checkpoints). */
export interface Phase {
  label: string;
  durationSec?: number;
  requests?: number;
}

/**
 * One second (about) of a phase, for the report's time series. `requests` completed in the interval
 * ending at `tSec` (seconds from the phase start) of `durationSec`; latency percentiles of those
 * requests when the driver records them (autocannon), null when it cannot (wrk).
 */
export interface SecondSample {
  tSec: number;
  durationSec: number;
  requests: number;
  p50Ms: number | null;
  p99Ms: number | null;
  maxMs: number | null;
}

/** The counters of one phase, as the driver reports them and as the harness keeps them. */
export interface PhaseCounters {
  label: string;
  /** Completed responses, any status. */
  requests: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  statusCounts: Record<string, number>;
  /** Response bytes received (headers included). */
  bytes: number;
  elapsedSec: number;
  /** Per-second samples; `perSecondSource` says how they were taken. */
  perSecond?: SecondSample[];
  /** `driver`: counted per response by the driver; `wrk-read-bytes`: wrk's bytes read per second
   * (/proc/PID/io rchar) scaled to its request total (wrk reports nothing until it ends). */
  perSecondSource?: 'driver' | 'wrk-read-bytes';
}

/** Counters and encoded HDR histograms (integer microseconds) of one phase. */
export interface PhaseResult extends PhaseCounters {
  /**
   * Latency per request. Closed loop: from send to last byte. Open model: from the intended send time
   * (corrected for coordinated omission).
   */
  latencyHistogram: string;
  /** Open model only: from the actual send time (what an uncorrected tool reports). */
  serviceTimeHistogram?: string;
  /** Open model only: how late requests left compared with their schedule (a driver self-check). */
  sendLagHistogram?: string;
}

export type ParentMessage =
  | { type: 'run'; phase: Phase }
  | { type: 'exit' };

export type DriverMessage =
  | { type: 'ready' }
  | { type: 'tick'; label: string; requests: number }
  | { type: 'done'; result: PhaseResult }
  | { type: 'failed'; message: string };

export function requestBody(bodySize: number, contentType = ''): Buffer | undefined {
  if (bodySize <= 0) return undefined;
  // A JSON content type gets a JSON document of about that size (an order: names, addresses,
  // prose), so filters that parse bodies (waf, request-validation) do their real work.
  if (/^application\/(?:[\w.+-]*\+)?json/i.test(contentType)) return jsonBody(bodySize);
  // Printable bytes: some upstreams and filters treat binary bodies differently from text.
  return Buffer.alloc(bodySize, 'x');
}

function jsonBody(bodySize: number): Buffer {
  const items: unknown[] = [];
  const doc = { customer: { name: "Mary O'Brien", email: 'mary.obrien@example.com', address: '12 Harbour Road, Cork' }, items, comment: 'Please select a box from the shelf and ship it by Friday.' };
  for (let i = 0; JSON.stringify(doc).length < bodySize - 90; i++) items.push({ sku: `SKU-${1000 + i}`, name: `Item number ${i} in blue`, qty: (i % 5) + 1, note: 'leave at the door' });
  const text = JSON.stringify(doc);
  return Buffer.from(text + ' '.repeat(Math.max(0, bodySize - text.length)));
}

/** Headers sent with the body: a content type unless the scenario chose one. */
export function requestHeaders(spec: LoadSpec): Record<string, string> {
  const headers = { ...spec.headers };
  if (spec.bodySize > 0 && !('content-type' in headers)) headers['content-type'] = 'application/octet-stream';
  return headers;
}

/**
 * The open-model send schedule of one connection, like wrk2: the overall rate is split evenly over the
 * connections and their first sends are staggered, so that requests leave every 1/rate seconds overall.
 * Times are in milliseconds from the phase start.
 */
export class SendSchedule {
  private nextSendMs: number;
  readonly intervalMs: number;

  constructor(rate: number, connections: number, connectionIndex: number, startMs = 0) {
    this.intervalMs = (connections * 1000) / rate;
    this.nextSendMs = startMs + (connectionIndex * 1000) / rate;
  }

  /** Intended time of the next request; each call advances the schedule by one request. */
  take(): number {
    const intended = this.nextSendMs;
    this.nextSendMs += this.intervalMs;
    return intended;
  }
}
