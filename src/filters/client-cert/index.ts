// The `client-cert` filter: with server.tls.client_auth, every route gets the verified client
// certificate's identity as headers (server.tls.client_auth.headers: subject, SAN, SHA-256
// fingerprint), and every client copy of those headers is removed first, on every listener
// (the plain one too), so no client can send its own X-Client-Cert-Subject. The values were
// encoded as header bytes once per TLS connection (src/data/mtls-identity.ts). A route with
// `client_cert: required` also refuses (403 client_cert_required) a request that came without
// a verified certificate: with `mode: optional`, some routes can demand one.
import { z } from 'zod';
import type { FilterCompilation, FilterCompileContext, FilterFactory } from '../../data/chain.js';
import type { ClientCertHeaders } from '../../shared/tls-config.js';
import { buildClientCert, type ClientCertFilterConfig } from './filter.js';

type HeaderKey = string | false;

/** What compile reads of the config. */
interface Input {
  server: { tls?: { client_auth?: { headers: { subject: HeaderKey; san: HeaderKey; fingerprint: HeaderKey } } } };
  routes: readonly { client_cert?: 'required' }[];
}

const nameOf = (h: HeaderKey): string | null => (h === false ? null : h.toLowerCase());

export const clientCert = {
  name: 'client-cert',
  phase: 'authn',
  routeKeys: { client_cert: z.enum(['required']).optional() },
  sections: {},
  compile(config: Input, ctx: FilterCompileContext): FilterCompilation<ClientCertFilterConfig> {
    const headers = config.server.tls?.client_auth?.headers;
    const names: ClientCertHeaders | null = headers === undefined ? null
      : { subject: nameOf(headers.subject), san: nameOf(headers.san), fingerprint: nameOf(headers.fingerprint) };
    const any = names !== null && (names.subject ?? names.san ?? names.fingerprint) !== null;
    config.routes.forEach((route, index) => {
      if (route.client_cert !== undefined && names === null) {
        ctx.report(['routes', index, 'client_cert'], 'needs server.tls.client_auth (client certificates are only verified on that listener)');
      }
    });
    return {
      route(index) {
        const require = config.routes[index].client_cert === 'required';
        return names !== null && (any || require) ? { ...names, require } : null;
      },
    };
  },
  build: buildClientCert,
} as const satisfies FilterFactory<ClientCertFilterConfig, Input>;
