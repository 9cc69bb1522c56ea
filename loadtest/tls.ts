// The certificate of an HTTPS run (`tls: true` scenarios): one self-signed EC P-256 certificate
// for 127.0.0.1 made by openssl in the run's temp dir, served by Lobby and nginx alike, so both
// do the same handshake (same key type, same curve, TLS 1.3 with the driver).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export interface RunCertificate {
  cert: string;
  key: string;
}

export function makeRunCertificate(workDir: string): RunCertificate {
  const cert = join(workDir, 'tls-cert.pem');
  const key = join(workDir, 'tls-key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-days', '2', '-addext', 'subjectAltName=IP:127.0.0.1'],
  { stdio: ['ignore', 'ignore', 'pipe'] });
  return { cert, key };
}

/** The Lobby overlay for an HTTPS run: the listen port speaks HTTPS only. */
export function lobbyTlsOverlay(port: number, certificate: RunCertificate): Record<string, unknown> {
  return { server: { tls: { port, plain_http: 'off', cert_file: certificate.cert, key_file: certificate.key } } };
}

/** nginx directives for the same certificate (inside `server {}`). */
export function nginxTlsDirectives(certificate: RunCertificate): string {
  return `        ssl_certificate ${certificate.cert};
        ssl_certificate_key ${certificate.key};
        ssl_protocols TLSv1.2 TLSv1.3;
`;
}
