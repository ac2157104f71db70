// The SDK's connection: one transport at a time (WebSocket, or Socket.IO as the fallback), backoff with jitter, failover across gateways, re-login when the token is refused.
import { CLOSE, shouldReconnect } from '../protocol/frames.js';
import { type Clock, systemClock } from './clock.js';
import { Emitter } from './emitter.js';
import { ParleyError } from './http.js';
import { openSocketIo, openWebSocket, type SocketCtor, type TransportChoice, type TransportName, type Wire, type WireClose, type WireHandlers } from './socket.wires.js';

export type { SocketCtor, SocketLike, TransportChoice, TransportName } from './socket.wires.js';

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
      // Loading the transport's code can fail for a while (a browser offline when Socket.IO is first needed): try again later.
      if (err instanceof ParleyError && err.code === 'unavailable') return this.retry();
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
    if (transport === 'socketio') return openSocketIo((await load(() => import('socket.io-client'))).io, base, token, on);
    const WS = Ctor ?? (globalThis as { WebSocket?: SocketCtor }).WebSocket ?? ((await load(() => import('ws'))).default as unknown as SocketCtor);
    return openWebSocket(WS, base, token, on);
  };
}

/** A module loaded on demand; a failed load (a browser fetches it, maybe while offline) is `unavailable`, so the socket retries. */
async function load<T>(importer: () => Promise<T>): Promise<T> {
  try {
    return await importer();
  } catch (err) {
    throw new ParleyError('unavailable', `cannot load the transport: ${String(err)}`);
  }
}
