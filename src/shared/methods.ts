// HTTP methods as bits, so a route's method set is one int in the route table and a
// method check is one AND. Methods outside this list share the OTHER bit.
export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'CONNECT'] as const;
export type KnownMethod = (typeof METHODS)[number];
export const OTHER_METHOD_BIT = 1 << METHODS.length;
/** Mask of every method. */
export const ANY_METHOD_MASK = (OTHER_METHOD_BIT << 1) - 1;
/** A route with no `methods` list: every method but TRACE, which echoes the request (and
 * so any credential in it) back; nginx refuses it too. A route that lists TRACE allows it. */
export const DEFAULT_METHOD_MASK = ANY_METHOD_MASK & ~(1 << METHODS.indexOf('TRACE'));

const bitByMethod = new Map<string, number>(METHODS.map((m, i) => [m, 1 << i]));

/** Bit of a method name (case-sensitive, as HTTP methods are). */
export function methodBit(method: string): number {
  return bitByMethod.get(method) ?? OTHER_METHOD_BIT;
}

/** Mask of a list of method names; null or empty list means any method but TRACE. */
export function methodMask(methods: readonly string[] | null | undefined): number {
  if (!methods || methods.length === 0) return DEFAULT_METHOD_MASK;
  let mask = 0;
  for (const m of methods) mask |= methodBit(m);
  return mask;
}

/** Method names in a mask, for the `Allow` header of a 405. */
export function methodsInMask(mask: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < METHODS.length; i++) if (mask & (1 << i)) out.push(METHODS[i]);
  return out;
}
