// The certificate of an HTTPS run (`tls: true` scenarios): one self-signed EC P-256 certificate
// for 127.0.0.1 made by openssl in the run's temp dir, served by Lobby and nginx alike, so both
// do the same handshake (same key type, same curve, TLS 1.3 with the driver).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

export interface RunCertificate {
  cert: string;
  key: string;
  /** `clientCert: true` scenarios (mTLS): the client CA and the certificate the driver presents. */
  client?: { ca: string; cert: string; key: string };
}

export function makeRunCertificate(workDir: string): RunCertificate {
  const cert = join(workDir, 'tls-cert.pem');
  const key = join(workDir, 'tls-key.pem');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-subj', '/CN=127.0.0.1', '-days', '2', '-addext', 'subjectAltName=IP:127.0.0.1']);
  return { cert, key };
}

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A client CA and one client certificate it signs (EC P-256, as the server's). */
export function makeClientCertificate(workDir: string): NonNullable<RunCertificate['client']> {
  const ca = join(workDir, 'client-ca.pem');
  const caKey = join(workDir, 'client-ca.key');
  const cert = join(workDir, 'client.pem');
  const key = join(workDir, 'client.key');
  const csr = join(workDir, 'client.csr');
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', ca,
    '-subj', '/CN=Loadtest Client CA', '-days', '2', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign']);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=loadtest-client/O=Lobby']);
  openssl(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-set_serial', '1', '-days', '2', '-out', cert]);
  return { ca, cert, key };
}

/** The Lobby overlay for an HTTPS run: the listen port speaks HTTPS only. */
export function lobbyTlsOverlay(port: number, certificate: RunCertificate): Record<string, unknown> {
  const clientAuth = certificate.client ? { client_auth: { mode: 'required', ca_file: certificate.client.ca } } : {};
  return { server: { tls: { port, plain_http: 'off', cert_file: certificate.cert, key_file: certificate.key, ...clientAuth } } };
}

/** nginx directives for the same certificate (inside `server {}`). */
export function nginxTlsDirectives(certificate: RunCertificate): string {
  return `        ssl_certificate ${certificate.cert};
        ssl_certificate_key ${certificate.key};
        ssl_protocols TLSv1.2 TLSv1.3;
${certificate.client ? `        ssl_client_certificate ${certificate.client.ca};
        ssl_verify_client on;
        proxy_set_header X-Client-Cert-Subject $ssl_client_s_dn;
` : ''}`;
}
