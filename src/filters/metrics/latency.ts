// Live latency: one HDR histogram per route in each worker (total request time, microseconds),
// kept across config generations by route name so a reload does not reset the curves. The
// control plane asks for them on demand (`latency-request`) and merges the workers' answers.
import type * as Hdr from 'hdr-histogram-js';
import { lazily } from '../../shared/lazy-require.js';

/** hdr-histogram-js, loaded on the first route with latency reports. */
const hdr = lazily<typeof Hdr>('hdr-histogram-js');

/**
 * 2 significant digits (1 % resolution) keep a route's histogram at about 10 KB (3 digits
 * would be about 70 KB per route per worker: 70 MB for 1,000 routes on a 1-worker instance);
 * 1 µs to 60 s, resizing beyond. Recording is an index computation and an increment.
 */
export function newRouteHistogram(): Hdr.Histogram {
  return hdr().build({ bitBucketSize: 32, lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 2, autoResize: true });
}

const byRoute = new Map<string, Hdr.Histogram>();

/** The worker's histogram of a route, created on the route's first build. */
export function routeHistogram(routeName: string): Hdr.Histogram {
  let h = byRoute.get(routeName);
  if (h === undefined) { h = newRouteHistogram(); byRoute.set(routeName, h); }
  return h;
}

/** The worker's answer to `latency-request`: every route with samples, encoded. */
export function encodeRouteHistograms(): { route: string; histogram: string }[] {
  const out: { route: string; histogram: string }[] = [];
  for (const [route, h] of byRoute) if (h.totalCount > 0) out.push({ route, histogram: hdr().encodeIntoCompressedBase64(h) });
  return out;
}

export function decodeRouteHistogram(base64: string): Hdr.Histogram {
  return hdr().decodeFromCompressedBase64(base64, 32);
}
