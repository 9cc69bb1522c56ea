// TLS settings as they cross to the data plane. The listener's certificates travel as
// snapshot files (src/control/tls-manager.ts): copies of exactly the bytes the control plane
// validated, so uWS (which reads files itself, and crashes the process on a bad key) never
// reads a file that changed after it was checked.

/** One certificate as uWS reads it. */
export interface TlsCertFiles {
  certFile: string;
  keyFile: string;
  /** sha256 of the certificate and key bytes: what rotation compares. */
  fingerprint: string;
}

/** Everything a worker's HTTPS listener is built from (message `tls`). */
export interface TlsListenerConfig {
  /** Grows with every applied change (the workers' acks name it). */
  version: number;
  passphrase: string | null;
  ciphers: string | null;
  /** Client CA bundle (mTLS); null = no client certificates asked for. */
  clientCaFile: string | null;
  /** `server.tls.client_auth.mode` (with clientCaFile): the listener is then src/data/mtls-listener.ts. */
  clientAuthMode: ClientAuthMode | null;
  defaultCert: TlsCertFiles;
  /** SNI certificates by server name (exact or `*.example.com`), one entry per name. */
  byName: { name: string; cert: TlsCertFiles }[];
}

/** The per-request part of `server.tls` (in CompiledServer; no key material). */
export interface CompiledServerTls {
  port: number;
  /** What the plain-HTTP listener does: serve as usual, redirect to HTTPS, or not listen. */
  plainHttp: 'serve' | 'redirect' | 'off';
  /** `Strict-Transport-Security` value sent on HTTPS responses, or null. */
  hsts: string | null;
  /** `:port` for redirect Locations ('' for 443). */
  portSuffix: string;
}

/** Source files of `server.tls`, resolved to absolute paths (the control plane re-reads them on rotation). */
export interface TlsSource {
  certFile: string;
  keyFile: string;
  passphrase: string | null;
  ciphers: string | null;
  clientCaFile: string | null;
  clientAuthMode: ClientAuthMode | null;
  certificates: { serverNames: string[]; certFile: string; keyFile: string }[];
}

/** `required`: a client without a certificate fails the handshake; `optional`: it is served without identity. */
export type ClientAuthMode = 'required' | 'optional';

/**
 * Which listener a request arrived on (RequestContext.listener). MTLS is the mTLS bridge's
 * internal listener (src/data/mtls-listener.ts); server.ts turns it into TLS once the
 * request's TLS connection is known.
 */
export const LISTENER = { PLAIN: 0, TLS: 1, REDIRECT: 2, MTLS: 3 } as const;

/**
 * The TLS connection a request on the mTLS listener came through (RequestContext.peer): the
 * client's address, and the verified certificate's identity as header values, encoded once
 * per connection (src/data/mtls-identity.ts); all null when no certificate was sent (optional).
 */
export interface ClientPeer {
  clientIp: string;
  subject: string | null;
  san: string | null;
  fingerprint: string | null;
}

/** The header names of `server.tls.client_auth.headers` (the client-cert filter's config); null = not sent. */
export interface ClientCertHeaders {
  subject: string | null;
  san: string | null;
  fingerprint: string | null;
}

/** `services.<name>.tls`, for the service's https:// targets (PEM text, read at compile time). */
export interface CompiledUpstreamTls {
  /** CA bundle to verify the upstream with; null = Node's bundled roots. */
  ca: string | null;
  cert: string | null;
  key: string | null;
  passphrase: string | null;
  /** SNI and the name verified; null = the target's host name (none for an IP). */
  servername: string | null;
  verify: boolean;
  /** Short hash of all of the above: part of the pool key. */
  fingerprint: string;
}
