// Control plane: a gRPC service's and a transcoding route's config checked and compiled at
// config load. .proto descriptors are parsed here (an error names the file, line and the
// config key), and every route's binding table is built once to report what does not fit
// (an unknown service, a template that does not parse, a field a rule names that is not
// there); workers build the same table from the same descriptors.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type protobuf from 'protobufjs';
import type { KeyPath } from '../control/config-error.js';
import { identityHeaderNames, type RawAuth } from '../filters/auth-jwt/schema.js';
import type { CompiledGrpcService, CompiledTranscode } from './compiled.js';
import { loadProtoFiles } from './descriptors.js';
import { metadataNameProblem } from './metadata.js';
import type { RawGrpcService, RawTranscode } from './schema.js';
import { buildBindings } from './transcoder.js';

type Report = (path: KeyPath, message: string) => void;

/** Request headers always forwarded as metadata (besides the gateway's correlation id). */
export const DEFAULT_REQUEST_HEADERS = ['authorization', 'traceparent', 'tracestate'];

/** Parsed descriptors per service name, for the routes' checks of this compile. */
export type GrpcRoots = Map<string, protobuf.Root | 'reflection' | 'failed'>;

export function compileGrpcService(name: string, raw: RawGrpcService, baseDir: string, report: Report, roots: GrpcRoots): CompiledGrpcService | null {
  const at = (...keys: (string | number)[]): KeyPath => ['services', name, ...keys];
  if (raw.grpc === undefined) {
    if (raw.descriptors !== undefined) report(at('descriptors'), 'applies to a gRPC service (one with grpc: { targets })');
    return null;
  }
  let tls: CompiledGrpcService['tls'] = null;
  const rawTls = raw.grpc.tls;
  if (rawTls !== false) {
    let caPem: string | null = null;
    const opts = rawTls === true ? {} : rawTls;
    if (opts.ca_file !== undefined) {
      try {
        caPem = readFileSync(resolve(baseDir, opts.ca_file), 'utf8');
        if (!caPem.includes('-----BEGIN CERTIFICATE-----')) { report(at('grpc', 'tls', 'ca_file'), `${opts.ca_file} holds no PEM certificate`); caPem = null; }
      } catch (err) {
        report(at('grpc', 'tls', 'ca_file'), `cannot read ${opts.ca_file}: ${(err as Error).message}`);
      }
    }
    tls = { caPem, serverName: opts.server_name ?? null };
  }
  const seen = new Set<string>();
  raw.grpc.targets.forEach((t, i) => {
    if (seen.has(t)) report(at('grpc', 'targets', i), `${t} is already listed`);
    seen.add(t);
  });
  let descriptorJson: unknown = null;
  const d = raw.descriptors;
  if (d === undefined) {
    roots.set(name, 'failed');
    report(at('descriptors'), 'is required for a gRPC service: { protos: [...], include: [...] } or { reflection: true }');
  } else if ('reflection' in d) {
    roots.set(name, 'reflection');
  } else {
    try {
      const root = loadProtoFiles(d.protos, d.include, baseDir);
      roots.set(name, root);
      descriptorJson = root.toJSON();
    } catch (err) {
      roots.set(name, 'failed');
      report(at('descriptors', 'protos'), `cannot load the descriptors: ${(err as Error).message}`);
    }
  }
  return { targets: raw.grpc.targets.map((address) => ({ address })), tls, descriptorJson };
}

/** The request headers a route forwards as metadata, lower case, each a name gRPC metadata
 * may have (metadata.ts): the built-ins, the auth providers' identity headers that can be
 * metadata (one with a character metadata names lack stays out), and `request_headers`, where
 * a name that cannot be is a config error. Checked here once; per request only the values are. */
function requestMetadataNames(listed: readonly string[], auth: RawAuth | undefined, bad: (index: number, problem: string) => void): string[] {
  const names = new Set(DEFAULT_REQUEST_HEADERS);
  for (const h of identityHeaderNames(auth)) if (metadataNameProblem(h) === null) names.add(h);
  listed.forEach((h, i) => {
    const name = h.toLowerCase();
    const problem = metadataNameProblem(name);
    if (problem === null) names.add(name);
    else bad(i, `${JSON.stringify(h)} ${problem}: it cannot be sent as metadata`);
  });
  return [...names];
}

/** A route's `transcode`, checked against its service's descriptors. */
export function compileTranscode(
  raw: RawTranscode, index: number, service: string, roots: GrpcRoots, auth: RawAuth | undefined, report: Report,
): CompiledTranscode | null {
  const at = (...keys: (string | number)[]): KeyPath => ['routes', index, 'transcode', ...keys];
  const root = roots.get(service);
  const compiled: CompiledTranscode = {
    services: raw.services,
    print: { emitDefaults: raw.print.emit_defaults, protoFieldNames: raw.print.proto_field_names, enumsAsNumbers: raw.print.enums_as === 'number' },
    rejectUnknownQuery: raw.unknown_query_parameters === 'reject',
    autoMapping: raw.auto_mapping,
    requestHeaders: requestMetadataNames(raw.request_headers, auth, (i, problem) => report(at('request_headers', i), problem)),
    responseHeaders: [...new Set(raw.response_headers.map((h) => h.toLowerCase()))],
    offloadBytes: raw.offload_bytes,
  };
  if (root === undefined) {
    report(at(), `needs a gRPC service; service ${JSON.stringify(service)} has no grpc key`);
    return null;
  }
  if (root === 'failed') return null;
  if (root !== 'reflection') {
    let count = 0;
    const matcher = buildBindings(root, compiled, (message) => { count++; report(at('services'), message); });
    if (count === 0 && matcher.bindings.length === 0) {
      report(at('services'), 'map no method to HTTP: add option (google.api.http) to the methods, or set auto_mapping: true');
    }
  }
  return compiled;
}
