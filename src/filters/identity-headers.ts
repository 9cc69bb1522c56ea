// The identity headers: what the gateway tells an upstream about who the client is, so what no
// client may send itself. One list for the instance, read by every filter that strips them
// (auth-jwt in its header pass, key-auth on a route without auth, identity-strip on a route
// with neither) and by ext-authz, which never lets a client's copy reach its service.
import { identityHeaderNames, type RawAuth } from './auth-jwt/schema.js';
import { consumerHeaderNames } from './key-auth/schema.js';

/** The config sections the identity headers come from. */
export interface IdentityHeaderSources {
  auth?: Pick<RawAuth, 'providers'> | { providers: readonly { claims_to_headers: Readonly<Record<string, string>> }[] };
  consumers?: readonly { headers: Readonly<Record<string, string>> }[];
}

/**
 * Every identity header (lower case, sorted, each once): the `claims_to_headers` of every auth
 * provider and the metadata headers of every consumer. The client certificate's headers are
 * not here: the client-cert filter removes and sets its own, before these filters run.
 */
export function clientIdentityHeaders(config: IdentityHeaderSources): string[] {
  return [...new Set([...identityHeaderNames(config.auth), ...consumerHeaderNames(config.consumers)])].sort();
}
