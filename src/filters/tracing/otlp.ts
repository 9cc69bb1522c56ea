// OTLP/HTTP JSON export of Lobby's spans, one exporter per worker and endpoint.
//
// Hand-written on purpose: the OpenTelemetry JS SDK would make a Span object per request
// (attributes map, events, links, a processor chain) on the worker's request thread; here a
// sampled request costs one string built in onEnd (the span's JSON), queued. Batches go out
// off the request path: when `batch_size` spans wait or every `flush_interval_ms`, one POST
// of `{"resourceSpans":[…]}` (the OTLP/HTTP JSON encoding: hex ids, nanosecond times and
// int64 values as decimal strings) with undici. A full queue drops new spans (counted in the
// warning); a failed POST drops its batch and warns at most every 10 s. A drain sends what is
// queued before the worker exits.
import { hostname } from 'node:os';
import { lazily } from '../../shared/lazy-require.js';
import { log } from '../../shared/log.js';
import { onWorkerDrain } from '../../data/worker-hooks.js';
import type { TracingFilterConfig } from './compile.js';

/** undici, loaded when a worker first exports spans. */
const undici = lazily<typeof import('undici')>('undici');

type OtlpConfig = NonNullable<TracingFilterConfig['otlp']>;

/** An OTLP attribute, JSON-encoded. */
export function stringAttr(key: string, value: string): string {
  return '{"key":"' + key + '","value":{"stringValue":' + JSON.stringify(value) + '}}';
}
export function intAttr(key: string, value: number): string {
  return '{"key":"' + key + '","value":{"intValue":"' + value + '"}}';
}

/** performance.now() → Unix nanoseconds as a decimal string (exact: no 2^53 overflow). */
export function unixNanos(t: number): string {
  const abs = performance.timeOrigin + t;
  const ms = Math.floor(abs);
  return ms + String(Math.floor((abs - ms) * 1e6)).padStart(6, '0');
}

export class OtlpExporter {
  private queue: string[] = [];
  private dropped = 0;
  private lastWarn = 0;
  private inFlight: Promise<void> = Promise.resolve();
  private readonly head: string;
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly config: OtlpConfig, workerIndex: number) {
    const resource = [
      stringAttr('service.name', config.serviceName), stringAttr('host.name', hostname()),
      intAttr('process.pid', process.pid), intAttr('lobby.worker', workerIndex),
    ].join(',');
    this.head = '{"resourceSpans":[{"resource":{"attributes":[' + resource + ']},"scopeSpans":[{"scope":{"name":"lobby"},"spans":[';
    this.timer = setInterval(() => this.flush(), config.flushIntervalMs);
    this.timer.unref();
  }

  /** Queues one span (its JSON object). */
  add(span: string): void {
    if (this.queue.length >= this.config.maxQueue) { this.dropped++; return; }
    this.queue.push(span);
    if (this.queue.length >= this.config.batchSize) this.flush();
  }

  /** Sends what is queued (in batches of batch_size); resolves when every POST finished. */
  flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.queue.splice(0, this.config.batchSize);
      const body = this.head + batch.join(',') + ']}]}]}';
      const sent = this.post(body, batch.length);
      this.inFlight = Promise.all([this.inFlight, sent]).then(() => {});
    }
    if (this.dropped > 0) this.warn('trace export queue full: spans dropped', { dropped: this.dropped });
    return this.inFlight;
  }

  private async post(body: string, spans: number): Promise<void> {
    try {
      const res = await undici().request(this.config.endpoint, {
        method: 'POST', body, headers: { 'content-type': 'application/json' },
        headersTimeout: this.config.timeoutMs, bodyTimeout: this.config.timeoutMs,
      });
      await res.body.dump();
      if (res.statusCode >= 300) this.warn('trace export refused by the collector; batch dropped', { status: res.statusCode, spans });
    } catch (err) {
      this.warn('trace export failed; batch dropped', { error: (err as Error).message, spans });
    }
  }

  private warn(msg: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.lastWarn < 10_000) return;
    this.lastWarn = now;
    log.warn(msg, { endpoint: this.config.endpoint, ...fields });
    this.dropped = 0;
  }
}

const exporters = new Map<string, OtlpExporter>();

/** This worker's exporter for these settings (one per distinct config, kept across generations). */
export function exporterFor(config: OtlpConfig, workerIndex: number): OtlpExporter {
  const key = JSON.stringify(config);
  let exporter = exporters.get(key);
  if (exporter === undefined) {
    if (exporters.size === 0) onWorkerDrain(() => Promise.all([...exporters.values()].map((e) => e.flush())).then(() => {}));
    exporter = new OtlpExporter(config, workerIndex);
    exporters.set(key, exporter);
  }
  return exporter;
}
