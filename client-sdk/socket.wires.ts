// The SDK's transports: one connection attempt over WebSocket or Socket.IO, and how it ended (what the socket decides on).
import type { Socket as IoSocket } from 'socket.io-client';
import { PROTOCOL, SOCKETIO_CLOSE_EVENT, SOCKETIO_EVENT, SOCKETIO_PATH, WS_PATH } from '../protocol/frames.js';

/** Which transport a connection runs on. Socket.IO starts on long-polling and upgrades to WebSocket when the path allows. */
export type TransportName = 'websocket' | 'socket.io:polling' | 'socket.io:websocket';

/** What `createClient({ transport })` asks for: `'auto'` tries WebSocket first and falls back to Socket.IO. */
export type TransportChoice = 'auto' | 'websocket' | 'socketio';

/** The part of the WebSocket API the client uses (browser WebSocket and the `ws` package both have it). */
export interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: { message?: string; error?: unknown }) => void) | null;
}
export type SocketCtor = new (url: string, protocols: string[]) => SocketLike;

/** Why a transport closed, as far as the client can tell. */
export type Failure =
  /** The token was refused (HTTP 401, Socket.IO `unauthorized`): log in again. */
  | { kind: 'unauthorized' }
  /** The server refused for now (`rate_limited`, `unavailable`): retry the same transport later. */
  | { kind: 'refused'; retryAfterMs?: number }
  /** The server refused for good (`forbidden`: e.g. an origin it does not allow). */
  | { kind: 'forbidden'; message: string }
  /** Nothing answered (connection refused, no such host): try the next gateway. */
  | { kind: 'unreachable' }
  /** Something answered the WebSocket upgrade that is not our server's refusal (a proxy's HTTP error, a dropped handshake, or a browser that hides why): Socket.IO may get through. */
  | { kind: 'blocked' };

/** A transport's end, reported once. `opened`: whether it had connected at all. */
export interface WireClose {
  code: number;
  reason: string;
  opened: boolean;
  failure?: Failure;
}

/** What a transport tells the socket. */
export interface WireHandlers {
  open(transport: TransportName): void;
  frame(text: string): void;
  transport(transport: TransportName): void;
  close(ev: WireClose): void;
}

/** One connection attempt on one transport. */
export interface Wire {
  readonly isOpen: boolean;
  send(text: string): void;
  close(code: number, reason: string): void;
}

/** Classifies a WebSocket that failed before it opened, from the error text the `ws` package gives (browsers give none). */
export function classifyUpgradeFailure(message: string): Failure {
  const status = /Unexpected server response: (\d+)/.exec(message)?.[1];
  if (status === '401') return { kind: 'unauthorized' };
  if (status === '429' || status === '503') return { kind: 'refused' };
  if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN|ETIMEDOUT/.test(message)) return { kind: 'unreachable' };
  return { kind: 'blocked' };
}

const dec = new TextDecoder();

/** A WebSocket handshake not answered within this long is given up as blocked (a proxy that holds it open). */
export const WS_HANDSHAKE_TIMEOUT_MS = 10_000;

/** Opens a WebSocket at the gateway's WS_PATH, the token in the `bearer.<token>` subprotocol. */
export function openWebSocket(Ctor: SocketCtor, base: string, token: string, on: WireHandlers, handshakeTimeoutMs = WS_HANDSHAKE_TIMEOUT_MS): Wire {
  const url = new URL(WS_PATH, base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new Ctor(url.toString(), [PROTOCOL, `bearer.${token}`]);
  let opened = false;
  let failure = '';
  let timedOut = false;
  // Something that accepts the connection and never answers the upgrade (a proxy holding it)
  // would otherwise keep the client waiting for good, never falling back or failing over.
  const handshake = setTimeout(() => {
    timedOut = true;
    socket.close();
  }, handshakeTimeoutMs);
  socket.onopen = () => {
    clearTimeout(handshake);
    opened = true;
    on.open('websocket');
  };
  socket.onerror = (ev) => {
    failure = ev.message ?? String(ev.error ?? '');
  };
  socket.onmessage = (ev) => on.frame(typeof ev.data === 'string' ? ev.data : dec.decode(ev.data as Uint8Array));
  socket.onclose = (ev) => {
    clearTimeout(handshake);
    const why: Failure = timedOut ? { kind: 'blocked' } : classifyUpgradeFailure(failure);
    on.close({ code: ev.code, reason: ev.reason, opened, ...(opened ? {} : { failure: why }) });
  };
  return {
    get isOpen() {
      return socket.readyState === 1;
    },
    send: (text) => socket.send(text),
    close: (code, reason) => socket.close(code, reason),
  };
}

/** The `err.data` of a Socket.IO `connect_error` that the server's middleware raised. */
interface RefusalData {
  code?: string;
  message?: string;
  retryAfterMs?: number;
}

type Io = typeof import('socket.io-client').io;

/**
 * Opens a Socket.IO session at SOCKETIO_PATH with the token in the handshake's `auth`
 * (long-polling first, then WebSocket when the path allows). Socket.IO's own reconnection is
 * off: the ParleySocket decides, as for WebSocket. A disconnect without the server's `close`
 * event first is abnormal (1006). Frames over the server's limit never leave the outbox
 * (`too_large`); a packet past Socket.IO's `maxHttpBufferSize` would end the session with no
 * `close` event, so it would look like 1006 here.
 */
export function openSocketIo(io: Io, base: string, token: string, on: WireHandlers): Wire {
  const socket: IoSocket = io(new URL(base).origin, { path: SOCKETIO_PATH, auth: { token }, reconnection: false, forceNew: true });
  let opened = false;
  let done = false;
  let closing: { code: number; reason: string } | undefined;
  const name = (): TransportName => (socket.io.engine?.transport?.name === 'websocket' ? 'socket.io:websocket' : 'socket.io:polling');
  const end = (ev: WireClose) => {
    if (done) return;
    done = true;
    on.close(ev);
  };
  socket.on('connect', () => {
    opened = true;
    socket.io.engine.on('upgrade', () => on.transport(name()));
    on.open(name());
  });
  socket.on('connect_error', (err: Error & { data?: RefusalData; description?: unknown }) => {
    // A long-polling request refused 403 (the server refuses a disallowed origin before the
    // handshake) is as final as the middleware's `forbidden`.
    const code = err.data?.code ?? (err.description === 403 ? 'forbidden' : undefined);
    const failure: Failure =
      code === 'unauthorized'
        ? { kind: 'unauthorized' }
        : code === 'forbidden'
          ? { kind: 'forbidden', message: err.data?.message ?? err.message }
          : code === 'rate_limited' || code === 'unavailable'
            ? { kind: 'refused', ...(err.data?.retryAfterMs !== undefined ? { retryAfterMs: err.data.retryAfterMs } : {}) }
            : { kind: 'unreachable' };
    end({ code: 1006, reason: err.message, opened: false, failure });
    socket.disconnect(); // no retry by Socket.IO itself: the ParleySocket decides
  });
  socket.on(SOCKETIO_EVENT, (text: unknown) => {
    if (typeof text === 'string') on.frame(text);
  });
  socket.on(SOCKETIO_CLOSE_EVENT, (c: { code?: unknown; reason?: unknown }) => {
    if (typeof c?.code === 'number') closing = { code: c.code, reason: typeof c.reason === 'string' ? c.reason : '' };
  });
  socket.on('disconnect', (reason) => end({ ...(closing ?? { code: reason === 'io client disconnect' ? 1000 : 1006, reason }), opened }));
  return {
    get isOpen() {
      return socket.connected;
    },
    send: (text) => void socket.emit(SOCKETIO_EVENT, text),
    close: (code, reason) => {
      closing = { code, reason };
      socket.disconnect();
    },
  };
}
