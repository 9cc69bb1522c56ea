// Compiled (plain, structured-cloneable) config of the transcoder, control plane → workers.

export interface CompiledGrpcTarget {
  /** `host:port` as configured (the channel address). */
  address: string;
}

export interface CompiledGrpcService {
  targets: CompiledGrpcTarget[];
  /** null: h2c. Otherwise TLS with this CA (PEM; null = the system's) and name. */
  tls: { caPem: string | null; serverName: string | null } | null;
  /** The descriptors as protobufjs JSON (Root#toJSON) from .proto files, or null: fetched by
   * server reflection by each worker when its generation is built. */
  descriptorJson: unknown | null;
}

export interface CompiledTranscode {
  services: string[];
  print: { emitDefaults: boolean; protoFieldNames: boolean; enumsAsNumbers: boolean };
  rejectUnknownQuery: boolean;
  autoMapping: boolean;
  /** Lower-case request header names forwarded as metadata (built-ins included). */
  requestHeaders: string[];
  /** Lower-case initial-metadata names returned as response headers. */
  responseHeaders: string[];
  offloadBytes: number;
}
