// Loads uWebSockets.js and refuses to run on its pure-JS fallback.
// The package we install (an alias of a Truffle build) silently falls back to a slow `ws`
// based server when its native binary does not load for this Node ABI/platform; Lobby's
// speed rests on the native server, so a fallback is a startup error, not a warning.
import { createRequire } from 'node:module';
import type * as UWS from 'uWebSockets.js';

const require = createRequire(import.meta.url);

export class NativeServerUnavailableError extends Error {
  readonly code = 'LOBBY_UWS_NOT_NATIVE';
}

function loadNative(): typeof UWS {
  if (process.env.UWS_USE_FALLBACK) {
    throw new NativeServerUnavailableError(
      'UWS_USE_FALLBACK is set: Lobby needs the native uWebSockets.js server; unset it.');
  }
  let mod: typeof UWS;
  const warn = console.warn;
  const log = console.log;
  let fellBack = false;
  // The package reports a failed native load only through console output.
  console.warn = console.log = (...args: unknown[]) => {
    if (String(args[0] ?? '').toLowerCase().includes('fallback')) fellBack = true;
    else warn(...args);
  };
  try {
    mod = require('uWebSockets.js');
  } finally {
    console.warn = warn;
    console.log = log;
  }
  if (fellBack || typeof mod.SSLApp !== 'function' || typeof mod.us_listen_socket_close !== 'function') {
    throw new NativeServerUnavailableError(
      `uWebSockets.js has no native binary for ${process.platform}-${process.arch} ` +
      `Node ${process.versions.node} (ABI ${process.versions.modules}); refusing to start on the slow fallback. ` +
      'See docs/operations.md "Using the official uWebSockets.js release".');
  }
  return mod;
}

export const uWS = loadNative();
export type HttpResponse = UWS.HttpResponse;
export type HttpRequest = UWS.HttpRequest;
export type TemplatedApp = UWS.TemplatedApp;
export type ListenSocket = UWS.us_listen_socket;
export type WebSocket<UserData> = UWS.WebSocket<UserData>;
export type WebSocketBehavior<UserData> = UWS.WebSocketBehavior<UserData>;
export type SocketContext = UWS.us_socket_context_t;
