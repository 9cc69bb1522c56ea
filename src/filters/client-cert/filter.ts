// The `client-cert` filter's data-plane side (index.ts says what it does).
import { localReply, NEXT, type Filter, type WorkerEnv } from '../../data/chain.js';
import type { RequestContext } from '../../data/request-context.js';
import type { ClientCertHeaders } from '../../shared/tls-config.js';
import { GW_ERR } from '../../shared/errors.js';
import { stripHeaders, stripSet } from '../../data/auth/extract.js';

export interface ClientCertFilterConfig extends ClientCertHeaders {
  /** The route's `client_cert: required`. */
  require: boolean;
}

export function buildClientCert(config: ClientCertFilterConfig, _env?: WorkerEnv): Filter {
  const strip = stripSet([config.subject, config.san, config.fingerprint].filter((n): n is string => n !== null));
  return {
    name: 'client-cert',
    // Hot path: one pass over the headers; a request with a certificate pushes its values.
    onRequest(ctx: RequestContext) {
      stripHeaders(ctx.headers, strip);
      const peer = ctx.peer;
      if (peer === null || peer.subject === null) return config.require ? localReply(ctx, GW_ERR.client_cert_required) : NEXT;
      if (config.subject !== null) ctx.headers.push(config.subject, peer.subject);
      if (config.san !== null && peer.san !== null) ctx.headers.push(config.san, peer.san);
      if (config.fingerprint !== null) ctx.headers.push(config.fingerprint, peer.fingerprint!);
      return NEXT;
    },
  };
}
