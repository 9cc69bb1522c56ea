// The autocannon load driver, run as a child process pinned to the driver core:
//   node dist/loadtest/driver-autocannon.js '<LoadSpec JSON>'
// The parent sends {type:'run', phase} messages; each phase is one autocannon run, answered with 'done'.
//
// Latency recording: autocannon's own result only carries a summary of its histogram, so this driver
// records every response itself into an HDR histogram from autocannon's per-response 'response' event
// (`responseTime`: hrtime from writing the request to the last byte of the response).
//
// Open model (--rate): autocannon's own `overallRate` is not an open model. Each connection may send
// rate/connections requests per second; it sends them back to back as fast as responses come, then
// idles until its once-a-second quota refill, so load arrives in bursts at the start of every second.
// Its coordinated-omission "correction" calls recordValueWithExpectedInterval(ms, ceil(1/rate)), i.e.
// an expected interval of 1 ms whatever the rate: it invents samples for any response slower than 1 ms
// and is not tied to the real schedule. So instead this driver paces autocannon's clients itself (via
// `setupClient`, wrapping the client's internal `_doRequest`/`_connect` of autocannon 9.0.0, which
// package.json pins): every connection sends on a fixed schedule (SendSchedule, like wrk2), a request
// that cannot go on time because its connection is still busy goes as soon as it is free, and latency
// is measured from the *intended* send time. Requests stuck behind a stall are therefore charged the
// stall, as real users arriving at that rate would be.

import autocannon from 'autocannon';
import { readFileSync } from 'node:fs';
import { encodeHistogram, newLatencyHistogram, type Histogram } from './stats.js';
import { requestBody, requestHeaders, SendSchedule, type DriverMessage, type LoadSpec, type ParentMessage, type Phase, type PhaseResult } from './driver-protocol.js';
import { PerSecondSampler } from './per-second.js';

/** The parts of autocannon 9.0.0's Client used for pacing (not in its public types). */
interface AutocannonClientInternals {
  destroyed: boolean;
  _doRequest(): void;
  _connect(): void;
}

function send(message: DriverMessage): void {
  process.send?.(message);
}

/**
 * Send timers are armed this much ahead of the intended time. Node timers run on a millisecond clock
 * sampled at the start of an event-loop turn, so they fire anywhere from ~1 ms early to ~1 ms late;
 * arming them early keeps the timer's own lateness out of the corrected latency (an early send counts
 * as on time). The remaining lateness is reported as the send-lag histogram.
 */
const TIMER_LEAD_MS = 1;

/** autocannon ticks once a second and once more right at the end: a shorter interval is folded into the next sample (or, at the end, dropped). */

function toMicros(ms: number): number {
  return Math.max(1, Math.round(ms * 1000));
}

const spec = JSON.parse(process.argv[2] ?? 'null') as LoadSpec | null;
if (!spec || typeof spec.url !== 'string') {
  console.error('usage: driver-autocannon.js <LoadSpec JSON> (started by loadtest/run.js)');
  process.exit(2);
}
const loadSpec: LoadSpec = spec;
const body = requestBody(loadSpec.bodySize, loadSpec.headers['content-type']);
const headers = requestHeaders(loadSpec);

function runPhase(phase: Phase): Promise<PhaseResult> {
  return new Promise((resolve, reject) => {
    const latency = newLatencyHistogram();
    const openModel = loadSpec.rate !== null;
    const serviceTime: Histogram | null = openModel ? newLatencyHistogram() : null;
    const sendLag: Histogram | null = openModel ? newLatencyHistogram() : null;
    const statusCounts: Record<string, number> = {};
    let requests = 0;
    let non2xx = 0;
    let bytes = 0;
    const startedAt = performance.now();
    const perSecond = new PerSecondSampler();
    perSecond.start(startedAt);
    const takeSample = (): void => perSecond.take(requests);

    // Open model state: per client, how late each of its requests in flight left (FIFO, because
    // HTTP/1.1 answers in order), and the pending send timers.
    const sendDelays = new WeakMap<object, number[]>();
    const pendingTimers = new Set<NodeJS.Timeout>();
    let connectionIndex = 0;

    const paceClient = (client: autocannon.Client): void => {
      const internals = client as unknown as AutocannonClientInternals;
      const schedule = new SendSchedule(loadSpec.rate!, loadSpec.connections, connectionIndex++, startedAt);
      const delaysInFlight: number[] = [];
      const clientTimers = new Set<NodeJS.Timeout>();
      sendDelays.set(client, delaysInFlight);
      const sendNow = internals._doRequest.bind(internals);
      const connect = internals._connect.bind(internals);

      const sendAt = (intendedMs: number): void => {
        if (internals.destroyed) return;
        // A request that leaves early counts as on time; one that leaves late is charged the delay.
        const lateMs = Math.max(0, performance.now() - intendedMs);
        sendLag!.recordValue(toMicros(lateMs));
        delaysInFlight.push(lateMs);
        sendNow();
      };
      // autocannon calls _doRequest once per free pipelining slot: on connect and after each response.
      internals._doRequest = () => {
        const intendedMs = schedule.take();
        const waitMs = intendedMs - performance.now() - TIMER_LEAD_MS;
        if (waitMs <= 0) {
          sendAt(intendedMs);
          return;
        }
        const timer = setTimeout(() => {
          clientTimers.delete(timer);
          pendingTimers.delete(timer);
          sendAt(intendedMs);
        }, waitMs);
        clientTimers.add(timer);
        pendingTimers.add(timer);
      };
      // A (re)connect drops whatever was in flight or scheduled on the old socket; autocannon then asks
      // for fresh sends, which continue the same schedule.
      internals._connect = () => {
        delaysInFlight.length = 0;
        for (const timer of clientTimers) {
          clearTimeout(timer);
          pendingTimers.delete(timer);
        }
        clientTimers.clear();
        connect();
      };
    };

    const options: autocannon.Options = {
      url: loadSpec.url,
      method: loadSpec.method,
      headers,
      body,
      connections: loadSpec.connections,
      pipelining: loadSpec.pipelining,
      timeout: loadSpec.timeoutSec,
      ...(phase.requests !== undefined ? { amount: phase.requests } : { duration: phase.durationSec ?? 10 }),
      ...(openModel ? { setupClient: paceClient } : {}),
      ...(loadSpec.clientCert ? { tlsOptions: { cert: readFileSync(loadSpec.clientCert.cert), key: readFileSync(loadSpec.clientCert.key) } } : {}),
    } as autocannon.Options;

    const instance = autocannon(options, (error, result) => {
      for (const timer of pendingTimers) clearTimeout(timer);
      takeSample();
      if (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      resolve({
        label: phase.label,
        requests,
        errors: result.errors,
        timeouts: result.timeouts,
        non2xx,
        statusCounts,
        bytes,
        elapsedSec: (performance.now() - startedAt) / 1000,
        perSecond: perSecond.samples,
        perSecondSource: 'driver',
        latencyHistogram: encodeHistogram(latency),
        ...(serviceTime ? { serviceTimeHistogram: encodeHistogram(serviceTime) } : {}),
        ...(sendLag ? { sendLagHistogram: encodeHistogram(sendLag) } : {}),
      });
    });

    instance.on('response', (client: autocannon.Client, statusCode: number, responseBytes: number, responseTimeMs: number) => {
      requests++;
      bytes += responseBytes;
      if (statusCode < 200 || statusCode > 299) non2xx++;
      statusCounts[statusCode] = (statusCounts[statusCode] ?? 0) + 1;
      if (serviceTime) {
        serviceTime.recordValue(toMicros(responseTimeMs));
        // Latency from the intended send time = service time + how late the request left. Without a
        // recorded entry (a reconnect raced the response) it falls back to the service time.
        const lateMs = sendDelays.get(client)?.shift() ?? 0;
        latency.recordValue(toMicros(responseTimeMs + lateMs));
        perSecond.latency.recordValue(toMicros(responseTimeMs + lateMs));
      } else {
        latency.recordValue(toMicros(responseTimeMs));
        perSecond.latency.recordValue(toMicros(responseTimeMs));
      }
    });
    instance.on('tick', () => {
      takeSample();
      send({ type: 'tick', label: phase.label, requests });
    });
  });
}

process.on('message', (message: ParentMessage) => {
  if (message.type === 'exit') {
    process.exit(0);
  }
  if (message.type === 'run') {
    runPhase(message.phase).then(
      (result) => send({ type: 'done', result }),
      (error: Error) => send({ type: 'failed', message: error.stack ?? error.message }),
    );
  }
});
// The parent going away (Ctrl-C, crash) must not leave a load generator running.
process.on('disconnect', () => process.exit(0));
send({ type: 'ready' });
