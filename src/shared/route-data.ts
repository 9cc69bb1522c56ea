// Per-route data of a generation, in a SharedArrayBuffer, decoded by a worker only when a
// route is first used.
//
// Why: a reload of 10,000 routes used to structured-clone every CompiledRoute into every
// worker and build all of them there, blocking each worker's event loop for 10-35 ms per
// reload. Now the control plane serializes each route once (v8.serialize: structured-clone
// semantics, so filter configs keep their types) into one shared buffer; a worker's prepare
// costs O(services), and a route is decoded and built on its first request.
//
// Layout: Int32 count, Int32 offsets[count + 1] (byte offsets into the data area), then the
// serialized routes back to back.
import { deserialize, serialize } from 'node:v8';
import type { CompiledRoute } from './compiled-config.js';

export function encodeRouteData(routes: readonly CompiledRoute[]): SharedArrayBuffer {
  const blobs = routes.map((r) => serialize(r));
  const headerBytes = (routes.length + 2) * 4;
  const total = headerBytes + blobs.reduce((n, b) => n + b.length, 0);
  const sab = new SharedArrayBuffer(total);
  const header = new Int32Array(sab, 0, routes.length + 2);
  const bytes = new Uint8Array(sab);
  header[0] = routes.length;
  let offset = headerBytes;
  for (let i = 0; i < blobs.length; i++) {
    header[i + 1] = offset;
    bytes.set(blobs[i], offset);
    offset += blobs[i].length;
  }
  header[routes.length + 1] = offset;
  return sab;
}

/** Read side: one per worker per generation. */
export class RouteData {
  readonly count: number;
  private readonly header: Int32Array;
  private readonly bytes: Uint8Array;

  constructor(sab: SharedArrayBuffer) {
    this.count = new Int32Array(sab, 0, 1)[0];
    this.header = new Int32Array(sab, 0, this.count + 2);
    this.bytes = new Uint8Array(sab);
  }

  /** Decodes route `index` (a copy: v8.deserialize cannot read shared memory). */
  route(index: number): CompiledRoute {
    const start = this.header[index + 1];
    const end = this.header[index + 2];
    return deserialize(Buffer.from(this.bytes.slice(start, end))) as CompiledRoute;
  }
}
