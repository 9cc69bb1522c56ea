// The `client-cert` filter: with server.tls.client_auth, every route gets the verified client
// certificate's identity as headers (server.tls.client_auth.headers: subject, SAN, SHA-256
// fingerprint), and every client copy of those headers is removed first, on every listener
// (the plain one too), so no client can send its own X-Client-Cert-Subject. The values were
// encoded as header bytes once per TLS connection (src/data/mtls-identity.ts). No config keys
// of its own: compile derives it from server.tls.
import { NEXT, type Filter, type FilterCompilation, type FilterFactory, type WorkerEnv } from '../../data/chain.js';
import type { RequestContext } from '../../data/request-context.js';
import type { ClientCertHeaders } from '../../shared/tls-config.js';
import { stripHeaders, stripSet } from '../../data/auth/extract.js';

type HeaderKey = string | false;

/** What compile reads of the config. */
interface Input {
  server: { tls?: { client_auth?: { headers: { subject: HeaderKey; san: HeaderKey; fingerprint: HeaderKey } } } };
}

const nameOf = (h: HeaderKey): string | null => (h === false ? null : h.toLowerCase());

export const clientCert = {
  name: 'client-cert',
  phase: 'authn',
  routeKeys: {},
  sections: {},
  compile(config: Input): FilterCompilation<ClientCertHeaders> {
    const headers = config.server.tls?.client_auth?.headers;
    const compiled: ClientCertHeaders | null = headers === undefined ? null
      : { subject: nameOf(headers.subject), san: nameOf(headers.san), fingerprint: nameOf(headers.fingerprint) };
    const any = compiled !== null && (compiled.subject ?? compiled.san ?? compiled.fingerprint) !== null;
    return { route: () => (any ? compiled : null) };
  },
  build(config: ClientCertHeaders, _env: WorkerEnv): Filter {
    const strip = stripSet([config.subject, config.san, config.fingerprint].filter((n): n is string => n !== null));
    return {
      name: 'client-cert',
      // Hot path: one pass over the headers; a request with a certificate pushes its values.
      onRequest(ctx: RequestContext) {
        stripHeaders(ctx.headers, strip);
        const peer = ctx.peer;
        if (peer === null || peer.subject === null) return NEXT;
        if (config.subject !== null) ctx.headers.push(config.subject, peer.subject);
        if (config.san !== null && peer.san !== null) ctx.headers.push(config.san, peer.san);
        if (config.fingerprint !== null) ctx.headers.push(config.fingerprint, peer.fingerprint!);
        return NEXT;
      },
    };
  },
} as const satisfies FilterFactory<ClientCertHeaders, Input>;
