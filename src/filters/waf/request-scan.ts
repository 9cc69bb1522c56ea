// One request's inspection in order (path, query, headers and cookies, body), for the filter
// and the scorer alike.
import type { WafScan } from './engine.js';
import { inspectBody, inspectHeaders, inspectPairs, inspectPath, type InspectLimits } from './inspect.js';

export interface InspectableRequest {
  readonly path: string;
  readonly query: string;
  /** Flat [name, value, ...]. */
  readonly headers: readonly string[];
  readonly body: Buffer | null;
}

export const DEFAULT_LIMITS: InspectLimits = {
  headers: ['cookie', 'referer', 'user-agent'],
  jsonMaxDepth: 32,
  jsonMaxKeys: 2048,
  bodyMaxBytes: 64 * 1024,
};

export function contentTypeOf(headers: readonly string[]): string {
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i];
    if (n.length === 12 && n.toLowerCase() === 'content-type') return headers[i + 1];
  }
  return '';
}

/** Inspects every part; returns the body's UNINSPECTED code (0 when it was inspected or absent). */
export function inspectRequest(scan: WafScan, req: InspectableRequest, limits: InspectLimits): number {
  inspectPath(scan, req.path);
  inspectPairs(scan, req.query, 'query.');
  inspectHeaders(scan, req.headers, limits.headers);
  if (req.body === null || req.body.length === 0) return 0;
  return inspectBody(scan, req.body, contentTypeOf(req.headers), limits);
}
