// Descriptors: .proto files parsed with protobufjs (control plane, at config load), carried to
// the workers as protobufjs JSON and revived there once per generation.
//
// Imports resolve against the configured `include` folders, then the folder of the importing
// file, then the protos Lobby ships (google/rpc, reflection) and protobufjs's own
// (google/api/http.proto, annotations.proto, google/protobuf/descriptor.proto). The
// well-known types protobufjs has built in (timestamp, duration, any, struct, wrappers,
// empty, field_mask) are taken from it by name.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type protobuf from 'protobufjs';
import { lazily } from '../shared/lazy-require.js';

/** protobufjs, loaded on first use: a worker of a config without gRPC services never pays for it. */
export const pb = lazily<typeof protobuf>('protobufjs');

const require = createRequire(import.meta.url);
/** protobufjs's folder: google/api and google/protobuf/descriptor.proto ship in it. */
export const PROTOBUFJS_DIR = dirname(require.resolve('protobufjs/package.json'));
/** Lobby's own protos (google/rpc, grpc/reflection): the source folder, next to dist/. */
export const LOBBY_PROTOS_DIR = fileURLToPath(new URL('../../../src/grpc/protos', import.meta.url));

/** Loads .proto files into one resolved Root (throws with protobufjs's message, file and line). */
export function loadProtoFiles(files: readonly string[], include: readonly string[], baseDir: string): protobuf.Root {
  const dirs = [...include.map((d) => resolve(baseDir, d)), LOBBY_PROTOS_DIR, PROTOBUFJS_DIR];
  const root = new (pb().Root)();
  root.resolvePath = (origin, target) => {
    if (isAbsolute(target)) return target;
    for (const dir of dirs) {
      const path = join(dir, target);
      if (existsSync(path)) return path;
    }
    if (origin !== '') {
      const sibling = join(dirname(origin), target);
      if (existsSync(sibling)) return sibling;
    }
    return target; // a built-in well-known type (protobufjs's `common`), or "not found" from it
  };
  // As protoc: a file is found relative to the config's folder, else in an include folder.
  const located = files.map((f) => {
    const direct = resolve(baseDir, f);
    if (isAbsolute(f) || existsSync(direct)) return direct;
    for (const dir of dirs) if (existsSync(join(dir, f))) return join(dir, f);
    return direct;
  });
  root.loadSync(located, { keepCase: true });
  root.resolveAll();
  return root;
}

/** The Root a worker revives from a compiled service's descriptor JSON. */
export function rootFromJson(json: unknown): protobuf.Root {
  const root = pb().Root.fromJSON(json as protobuf.INamespace);
  root.resolveAll();
  return root;
}

let statusRoot: protobuf.Root | null = null;
/** google.rpc.Status and the standard error details (the Any registry of error bodies). */
export function rpcRoot(): protobuf.Root {
  statusRoot ??= loadProtoFiles(['google/rpc/status.proto', 'google/rpc/error_details.proto'], [], LOBBY_PROTOS_DIR);
  return statusRoot;
}
