// Bugs met while handling a request: logged once, with what ties the line to the request.
import { log } from '../shared/log.js';
import type { RequestContext } from './request-context.js';

/** Logs a bug met while handling a request, with the correlation id its client was told. */
export function logRequestFault(ctx: RequestContext | null, err: unknown): void {
  log.error('request handler fault', {
    correlation_id: ctx?.correlationId || undefined,
    route: ctx?.route?.name,
    error: String((err as Error)?.stack ?? err),
  });
}
