// The SDK's connection: one transport at a time (WebSocket, or Socket.IO as the fallback), backoff with jitter, failover across gateways, re-login when the token is refused.
import type { Socket as IoSocket } from 'socket.io-client';
import { CLOSE, PROTOCOL, shouldReconnect, SOCKETIO_CLOSE_EVENT, SOCKETIO_EVENT, SOCKETIO_PATH, WS_PATH } from '../protocol/frames.js';
import { type Clock, systemClock } from './clock.js';
import { Emitter } from './emitter.js';
import { ParleyError } from './http.js';

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

/**
 * The cluster's gateways, one in use at a time, for the socket and REST calls alike. `next()`
 * moves on when the current one cannot be reached (a no-op with a single URL).
 */
export class Gateways {
  private readonly urls: string[];
  private index = 0;

  constructor(url: string | string[]) {
    this.urls = typeof url === 'string' ? [url] : [...url];
    if (this.urls.length === 0) throw new ParleyError('invalid', 'no server url');
  }

  get count(): number {
    return this.urls.length;
  }

  current(): string {
    return this.urls[this.index % this.urls.length]!;
  }

  next(): void {
    this.index++;
  }
}

/**
 * The delay before reconnect attempt `attempt` (0-based): doubling from `initialMs` up to
 * `maxMs`, with "equal jitter" (half fixed, half random), so a gateway's clients that lost it
 * together do not all come back at once.
 */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, initialMs * 2 ** attempt);
  return base / 2 + random() * (base / 2);
}

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

/** Opens a WebSocket at the gateway's WS_PATH, the token in the `bearer.<token>` subprotocol. */
export function openWebSocket(Ctor: SocketCtor, base: string, token: string, on: WireHandlers): Wire {
  const url = new URL(WS_PATH, base);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  const socket = new Ctor(url.toString(), [PROTOCOL, `bearer.${token}`]);
  let opened = false;
  let failure = '';
  socket.onopen = () => {
    opened = true;
    on.open('websocket');
  };
  socket.onerror = (ev) => {
    failure = ev.message ?? String(ev.error ?? '');
  };
  socket.onmessage = (ev) => on.frame(typeof ev.data === 'string' ? ev.data : dec.decode(ev.data as Uint8Array));
  socket.onclose = (ev) => on.close({ code: ev.code, reason: ev.reason, opened, ...(opened ? {} : { failure: classifyUpgradeFailure(failure) }) });
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
  socket.on('connect_error', (err: Error & { data?: RefusalData }) => {
    const code = err.data?.code;
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

/** Where the socket gets its token: `get` logs in again when there is none or it is about to expire; `refused` drops it. */
export interface TokenSource {
  get(): Promise<string>;
  refused(): void;
}

export interface ParleySocketOptions {
  gateways: Gateways;
  token: TokenSource;
  transport?: TransportChoice;
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  WebSocket?: SocketCtor;
  clock?: Clock;
  random?: () => number;
  /** Opens one transport attempt; defaults to openWebSocket / openSocketIo (tests give fakes). */
  dial?: (transport: 'websocket' | 'socketio', base: string, token: string, on: WireHandlers) => Promise<Wire>;
}

export interface SocketEvents extends Record<string, unknown> {
  /** A frame's JSON text from the server. */
  frame: string;
  /** A transport connected (the server's `ready` frame follows). */
  open: { transport: TransportName };
  /** The transport in use changed (Socket.IO upgraded from polling to WebSocket). */
  transport: TransportName;
  /** The connection closed; `wasReady`: the server had said `ready` on it. */
  close: { code: number; reason: string; wasReady: boolean; willReconnect: boolean };
  /** The client stopped trying for good (a token that cannot be had, a refusal, this device replaced). */
  failed: ParleyError;
}

/**
 * One device's connection, kept open until `close()`: it reconnects with backoff and jitter,
 * moves to the next gateway when one cannot be reached or goes away, logs in again when the
 * token is refused, and (transport 'auto') falls back to Socket.IO when the WebSocket upgrade
 * is blocked, staying on Socket.IO once that worked.
 */
export class ParleySocket extends Emitter<SocketEvents> {
  private wire: Wire | null = null;
  private current: TransportName | null = null;
  private ready = false;
  private dialing = false;
  private stopped = true;
  private attempt = 0;
  private timer: unknown = undefined;
  /** Resolves `close()` once the transport it closed reports its end. */
  private closeWaiter: (() => void) | undefined;
  /** 'auto': the next attempt uses Socket.IO (after a blocked upgrade, or for good once Socket.IO worked). */
  private useSocketIo: boolean;
  private socketIoWorked = false;
  private readonly clock: Clock;
  private readonly random: () => number;

  constructor(private readonly options: ParleySocketOptions) {
    super();
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.useSocketIo = options.transport === 'socketio';
  }

  /** The transport of the current (or last) connection; null before the first one opened. */
  get transport(): TransportName | null {
    return this.current;
  }

  /** Whether a transport is open (the server may not have said `ready` yet). */
  get isOpen(): boolean {
    return this.wire?.isOpen ?? false;
  }

  /** Starts connecting, unless already connected or trying. */
  open(): void {
    this.stopped = false;
    if (!this.wire && !this.dialing && this.timer === undefined) void this.dial();
  }

  /** The server accepted the session (its `ready` frame): backoff starts over. */
  markReady(): void {
    this.ready = true;
    this.attempt = 0;
  }

  /** Sends one frame's text; false when no transport is open. */
  send(text: string): boolean {
    if (!this.wire?.isOpen) return false;
    this.wire.send(text);
    return true;
  }

  /** Closes for good (until the next `open()`), waiting up to a second for the transport to close. */
  async close(): Promise<void> {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    const wire = this.wire;
    this.wire = null;
    this.ready = false;
    if (!wire) return;
    let guard: unknown;
    await new Promise<void>((resolve) => {
      this.closeWaiter = resolve;
      guard = this.clock.setTimeout(resolve, 1000);
      wire.close(1000, 'client closed');
    });
    this.clock.clearTimeout(guard);
    this.closeWaiter = undefined;
  }

  private async dial(): Promise<void> {
    this.dialing = true;
    try {
      await this.dialOnce();
    } finally {
      this.dialing = false;
    }
  }

  private async dialOnce(): Promise<void> {
    let token: string;
    try {
      token = await this.options.token.get();
    } catch (err) {
      const e = err instanceof ParleyError ? err : new ParleyError('unavailable', String(err));
      if (e.code === 'unauthorized' || e.code === 'invalid' || e.code === 'not_found') return this.fail(e);
      return this.retry();
    }
    if (this.stopped || this.wire) return;
    const kind = this.useSocketIo ? 'socketio' : 'websocket';
    const base = this.options.gateways.current();
    let wire: Wire | null = null;
    const handlers: WireHandlers = {
      open: (transport) => {
        if (this.wire !== wire) return;
        if (kind === 'socketio') this.socketIoWorked = true;
        this.setTransport(transport);
        this.emit('open', { transport });
      },
      frame: (text) => {
        if (this.wire === wire) this.emit('frame', text);
      },
      transport: (transport) => {
        if (this.wire === wire) this.setTransport(transport);
      },
      close: (ev) => {
        if (this.wire !== wire) {
          this.closeWaiter?.();
          return;
        }
        this.wire = null;
        this.onClose(kind, ev);
      },
    };
    try {
      wire = await (this.options.dial ?? defaultDial(this.options.WebSocket))(kind, base, token, handlers);
    } catch (err) {
      return this.fail(err instanceof ParleyError ? err : new ParleyError('invalid', `cannot open a ${kind} connection: ${String(err)}`));
    }
    if (this.stopped) return wire.close(1000, 'client closed');
    this.wire = wire;
  }

  private setTransport(transport: TransportName): void {
    if (this.current === transport) return;
    this.current = transport;
    this.emit('transport', transport);
  }

  private onClose(kind: 'websocket' | 'socketio', ev: WireClose): void {
    const wasReady = this.ready;
    this.ready = false;
    const f = ev.failure;
    if (f?.kind === 'forbidden') return this.fail(new ParleyError('forbidden', f.message), ev, wasReady);
    if (f?.kind === 'unauthorized' || ev.code === CLOSE.UNAUTHORIZED) this.options.token.refused(); // log in again first
    const auto = (this.options.transport ?? 'auto') === 'auto';
    if (auto && kind === 'websocket' && f?.kind === 'blocked') {
      // The upgrade did not reach our server: the same gateway, at once, over Socket.IO.
      this.useSocketIo = true;
      if (!this.stopped && !this.dialing) void this.dial();
      return;
    }
    if (auto && kind === 'socketio' && !this.socketIoWorked) this.useSocketIo = false; // the fallback did not help either: WebSocket first again
    // The gateway is gone or refused us: try the next one.
    if (!wasReady || ev.code === 1006 || ev.code === CLOSE.GOING_AWAY) this.options.gateways.next();
    const willReconnect = !this.stopped && (shouldReconnect(ev.code) || ev.code === CLOSE.UNAUTHORIZED);
    this.emit('close', { code: ev.code, reason: ev.reason, wasReady, willReconnect });
    if (willReconnect) this.retry(f?.kind === 'refused' ? f.retryAfterMs : undefined);
    else if (!this.stopped) this.fail(new ParleyError('closed', `connection closed: ${ev.reason || ev.code}`));
  }

  private retry(atLeastMs = 0): void {
    if (this.stopped || this.timer !== undefined) return;
    const delay = backoffDelay(this.attempt++, this.options.reconnect?.initialDelayMs ?? 250, this.options.reconnect?.maxDelayMs ?? 10_000, this.random);
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      void this.dial();
    }, Math.max(delay, atLeastMs));
  }

  private fail(err: ParleyError, ev?: WireClose, wasReady = false): void {
    this.stopped = true;
    if (ev) this.emit('close', { code: ev.code, reason: ev.reason, wasReady, willReconnect: false });
    this.emit('failed', err);
  }
}

/** Dials with the global WebSocket (or `ws` in Node), and socket.io-client, loaded when first needed. */
function defaultDial(Ctor: SocketCtor | undefined): NonNullable<ParleySocketOptions['dial']> {
  return async (transport, base, token, on) => {
    if (transport === 'socketio') return openSocketIo((await import('socket.io-client')).io, base, token, on);
    const WS = Ctor ?? (globalThis as { WebSocket?: SocketCtor }).WebSocket ?? ((await import('ws')).default as unknown as SocketCtor);
    return openWebSocket(WS, base, token, on);
  };
}
