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
  certificates: { serverNames: string[]; certFile: string; keyFile: string }[];
}

/** Which listener a request arrived on (RequestContext.listener). */
export const LISTENER = { PLAIN: 0, TLS: 1, REDIRECT: 2 } as const;

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
