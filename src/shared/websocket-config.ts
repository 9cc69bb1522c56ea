// A route's `websocket` key as the data plane gets it (docs/websocket.md), and the bounds the
// schema (control plane) and the relay (data plane) share, kept apart from the schema so the
// workers do not load zod.

/** The compiled `websocket: true` or policy of a route. */
export interface CompiledWebSocket {
  /** Largest message relayed in either direction (bytes); a larger one closes with 1009. */
  maxMessageBytes: number;
  /** Bytes one direction may hold waiting for a slow reader before the gateway acts
   * (pauses the upstream; closes a client it cannot pause with 1013). */
  maxBufferedBytes: number;
  /** No message, ping or pong either way for this long closes both sides with 1001; 0 = never. */
  idleMs: number;
  /** Connections of the route per instance (each worker admits its share); 0 = no cap. */
  maxConnections: number;
  /** Origins allowed to open a connection (lower-case `scheme://host[:port]`); null = any. */
  origins: string[] | null;
}

/**
 * The largest `max_message_bytes` a route may set. uWebSockets.js takes its message size limit
 * once for the listener, not per route, so it is set to this ceiling and each route's own limit
 * is applied to every message as it arrives: a client's message is held whole up to this size
 * before the route's limit can refuse it.
 */
export const WS_MESSAGE_CEILING = 16 * 1024 * 1024;

export const WS_DEFAULTS = {
  maxMessageBytes: 1024 * 1024,
  maxBufferedBytes: 4 * 1024 * 1024,
  idleTimeoutS: 300,
} as const;

/** The largest `max_buffered_bytes`: a bound, not a way around one. */
export const WS_BUFFER_CEILING = 256 * 1024 * 1024;
