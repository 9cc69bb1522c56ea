// One request's inspection in order (path, query, headers and cookies, body), for the filter
// and the scorer alike.
import type { WafScan } from './engine.js';
import { inspectBody, inspectHeaders, inspectLimits, inspectPairs, inspectPath, OWN_PARSE, type InspectLimits, type JsonSource } from './inspect.js';

export interface InspectableRequest {
  readonly path: string;
  readonly query: string;
  /** Flat [name, value, ...]. */
  readonly headers: readonly string[];
  readonly body: Buffer | null;
}

export const DEFAULT_LIMITS: InspectLimits = inspectLimits({
  headers: ['cookie', 'referer', 'user-agent'],
  jsonMaxDepth: 32,
  jsonMaxKeys: 2048,
  bodyMaxBytes: 64 * 1024,
});

export function contentTypeOf(headers: readonly string[]): string {
  for (let i = 0; i < headers.length; i += 2) {
    const n = headers[i];
    if (n.length === 12 && n.toLowerCase() === 'content-type') return headers[i + 1];
  }
  return '';
}

/** The parts before the body: path, query, headers. */
export function inspectHead(scan: WafScan, req: Pick<InspectableRequest, 'path' | 'query' | 'headers'>, limits: InspectLimits): void {
  inspectPath(scan, req.path);
  inspectPairs(scan, req.query, 'query.');
  inspectHeaders(scan, req.headers, limits);
}

/** Inspects every part; returns the body's UNINSPECTED code (0 when it was inspected or absent). */
export function inspectRequest(scan: WafScan, req: InspectableRequest, limits: InspectLimits, source: JsonSource = OWN_PARSE): number {
  inspectHead(scan, req, limits);
  if (req.body === null || req.body.length === 0) return 0;
  return inspectBody(scan, req.body, contentTypeOf(req.headers), limits, source);
}
