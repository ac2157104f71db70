// The Socket.IO transport: sessions over long-polling or WebSocket at /socket.io, on the HTTP server REST uses.
import type { IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import type { Socket as TcpSocket } from 'node:net';
import { type ExtendedError, Server, type Socket } from 'socket.io';
import type { WebSocket } from 'ws';
import { CLOSE, SOCKETIO_CLOSE_EVENT, SOCKETIO_EVENT, SOCKETIO_PATH } from '../protocol/frames.js';
import { AppError, toAppError } from '../platform/errors.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import type { TokenClaims } from '../platform/tokens.js';
import { answerOrigin, FORBIDDEN_ORIGIN_MESSAGE, type OriginPolicy } from './origins.js';
import { firstEvent, type SessionSocket, type SocketHandlers, tcpOf } from './transport.js';

/** Room for Socket.IO's framing around a frame's text (`42["frame",…]`, polling separators). */
const PACKET_OVERHEAD_BYTES = 1024;
/** The longest shutdown waits for Socket.IO clients to be told `close` before their transports are cut. */
const SHUTDOWN_DRAIN_MS = 1_000;

/** engine.io's connection under a Socket.IO socket: the parts used here (not in its public typings). */
interface EngineConn {
  readonly transport: { readonly name: string; readonly socket?: WebSocket };
  on(event: 'packet', cb: (packet: { type: string; data?: unknown }) => void): void;
  on(event: 'packetCreate', cb: (packet: { data?: unknown }) => void): void;
  on(event: 'flush', cb: (packets: { data?: unknown }[]) => void): void;
  once(event: string, cb: () => void): void;
  off(event: string, cb: () => void): void;
  close(discard?: boolean): void;
}

export interface SocketIoTransportOptions {
  /** The largest frame text accepted (WS_MAX_PAYLOAD_BYTES); a bigger one closes the session with 1009. */
  maxPayloadBytes: number;
  /** Socket.IO's ping interval and timeout (HEARTBEAT_INTERVAL_MS). */
  heartbeatMs: number;
  origins: OriginPolicy;
  /** Checks a handshake's token (same checks as the WebSocket upgrade); throws an AppError to refuse. */
  admit(token: string | undefined): Promise<TokenClaims>;
  /** Starts a device session on an admitted socket. */
  open(socket: SessionSocket, claims: TokenClaims): void;
  metrics: Metrics;
  log: Logger;
}

export interface SocketIoTransport {
  /** Waits briefly for closed sessions to leave (their `close` event first), then cuts every Socket.IO connection. */
  close(): Promise<void>;
}

/**
 * Serves Socket.IO on `server` (Socket.IO's default path, SOCKETIO_PATH). Order of checks:
 * a long-polling request from a disallowed origin is refused 403 before engine.io sees it
 * (an allowed cross-origin one gets CORS headers); then, before a connection is accepted, a
 * middleware checks the origin (WebSocket handshakes), the token in `auth.token` (or an
 * `Authorization: Bearer` header), the per-user connect limit and that the device exists. A
 * refusal is a `connect_error` whose message is the error code and whose `data` is
 * `{ code, message, retryAfterMs? }`.
 *
 * engine.io answers only paths under SOCKETIO_PATH and leaves other upgrades alone
 * (`destroyUpgrade: false`): the WebSocket endpoint's own upgrade handler answers those.
 */
export function attachSocketIo(server: HttpServer, options: SocketIoTransportOptions): SocketIoTransport {
  const { metrics, log, origins } = options;
  const io = new Server(server, {
    path: SOCKETIO_PATH,
    serveClient: false,
    destroyUpgrade: false,
    pingInterval: options.heartbeatMs,
    pingTimeout: options.heartbeatMs,
    // A frame's JSON text is escaped inside the packet (quotes double): room for that, the size
    // of the text itself is checked exactly per frame below.
    maxHttpBufferSize: 2 * options.maxPayloadBytes + PACKET_OVERHEAD_BYTES,
    perMessageDeflate: false,
    httpCompression: false,
  });

  io.engine.use((req: IncomingMessage, res: ServerResponse, next: () => void) => {
    // Upgrades are checked by the middleware below, where a refusal can be a connect_error.
    if (req.headers.upgrade !== undefined) return next();
    if (!answerOrigin(req, res, origins, metrics, 'socketio')) next();
  });

  // One join (Socket.IO CONNECT packet) per connection, whatever its namespace: refused or
  // not, a second one closes the connection. Otherwise one polling request could carry tens of
  // thousands of joins, each a token check and a queued refusal, before any budget applies.
  io.engine.on('connection', (conn: EngineConn) => {
    let joins = 0;
    conn.on('packet', (p) => {
      if (p.type !== 'message' || typeof p.data !== 'string' || !p.data.startsWith('0')) return;
      if (++joins > 1) {
        metrics.errors.inc({ code: 'invalid', transport: 'socketio' });
        conn.close(true);
      }
    });
  });

  io.use((socket, next) => {
    const refuse = (e: AppError) => {
      metrics.errors.inc({ code: e.code, transport: 'socketio' });
      const err: ExtendedError = new Error(e.code);
      const retryAfterMs = e.details?.retryAfterMs;
      err.data = { code: e.code, message: e.message, ...(typeof retryAfterMs === 'number' ? { retryAfterMs } : {}) };
      next(err);
    };
    if (!origins.allows(socket.request)) return refuse(new AppError('forbidden', FORBIDDEN_ORIGIN_MESSAGE));
    options.admit(handshakeToken(socket)).then(
      (claims) => {
        (socket.data as { claims?: TokenClaims }).claims = claims;
        next();
      },
      (err) => {
        const e = toAppError(err);
        if (e.code === 'unauthorized' || e.code === 'rate_limited') return refuse(e);
        log.error({ err }, 'socket.io handshake failed');
        refuse(new AppError('unavailable', 'try again later'));
      },
    );
  });

  const live = new Set<SocketIoSocket>();
  io.on('connection', (socket) => {
    const claims = (socket.data as { claims: TokenClaims }).claims;
    const s = new SocketIoSocket(socket, options.maxPayloadBytes);
    live.add(s);
    socket.on('disconnect', () => live.delete(s));
    try {
      options.open(s, claims);
    } catch (err) {
      metrics.handlerCrashes.inc({ where: 'socketio-connect' });
      log.error({ err }, 'starting a session failed');
      s.close(CLOSE.INTERNAL, 'internal error');
    }
  });

  return {
    close: async () => {
      // (The sessions close their sockets with 1001 first; this waits for those to leave.)
      const deadline = Date.now() + SHUTDOWN_DRAIN_MS;
      while (live.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      // Not io.close(): it would also close the HTTP server and wait for every keep-alive
      // connection; the gateway closes that itself, idle connections first.
      io.disconnectSockets(true);
      io.engine.close();
    },
  };
}

/** The token of a Socket.IO handshake: `auth.token`, else an `Authorization: Bearer` header. */
function handshakeToken(socket: Socket): string | undefined {
  const auth = socket.handshake.auth as { token?: unknown } | undefined;
  if (typeof auth?.token === 'string') return auth.token;
  const h = socket.handshake.headers.authorization;
  return h?.startsWith('Bearer ') ? h.slice(7).trim() : undefined;
}

/** The byte size of an engine.io packet's data, for the buffered count. */
function packetBytes(p: { data?: unknown }): number {
  const d = p.data;
  return typeof d === 'string' ? d.length : d instanceof Uint8Array ? d.byteLength : 0;
}

/**
 * A Socket.IO socket behind the session's socket interface. One Parley frame is one `frame`
 * event with the frame's JSON text as its only argument; anything else is an invalid frame.
 * `close` emits the `close` event with the code first, then disconnects. Buffered bytes are
 * engine.io's write buffer (what long-polling clients have not fetched yet) plus the
 * WebSocket's own buffer once upgraded. Reads pause only on WebSocket (a long-polling client
 * sends one request at a time, each bounded by maxHttpBufferSize).
 */
class SocketIoSocket implements SessionSocket {
  readonly transport = 'socketio' as const;
  private pending = 0;
  /** Bytes of the packets read since the last event was handed on (an event and its binary attachments). */
  private received = 0;
  private closing = false;
  private paused: TcpSocket | undefined;
  private readonly conn: EngineConn;

  constructor(
    private readonly socket: Socket,
    private readonly maxPayloadBytes: number,
  ) {
    this.conn = socket.conn as unknown as EngineConn;
    // Every packet's size is charged (or refused) with the event it makes up, whatever its
    // shape: binary attachments and non-string arguments too.
    this.conn.on('packet', (p) => {
      if (p.type === 'message') this.received += packetBytes(p);
    });
    this.conn.on('packetCreate', (p) => (this.pending += packetBytes(p)));
    this.conn.on('flush', (packets) => {
      for (const p of packets) this.pending -= packetBytes(p);
    });
  }

  /** The WebSocket under engine.io, once the session is on it. */
  private get ws(): WebSocket | undefined {
    return this.conn.transport.name === 'websocket' ? this.conn.transport.socket : undefined;
  }

  get open(): boolean {
    return this.socket.connected && !this.closing;
  }

  get bufferedAmount(): number {
    return Math.max(0, this.pending) + (this.ws?.bufferedAmount ?? 0);
  }

  listen(handlers: SocketHandlers): void {
    this.socket.onAny((event: string, ...args: unknown[]) => {
      const bytes = this.received;
      this.received = 0;
      if (this.closing) return;
      if (event !== SOCKETIO_EVENT || args.length !== 1 || typeof args[0] !== 'string') {
        // Not a frame. Past the frame size limit (e.g. binary attachments), the same answer as
        // a frame that big: 1009; else `invalid`, charged for its size.
        if (bytes > this.maxPayloadBytes) {
          this.close(CLOSE.TOO_BIG, 'frame too big');
          return;
        }
      }
      if (event !== SOCKETIO_EVENT || args.length !== 1) {
        handlers.onInvalid(
          event === SOCKETIO_EVENT
            ? `a ${SOCKETIO_EVENT} event carries exactly one argument: the frame's JSON text`
            : `unknown event; send frames as "${SOCKETIO_EVENT}" events`,
          bytes,
        );
        return;
      }
      const [data] = args;
      if (typeof data === 'string') {
        // The same limit as the WebSocket endpoint's maxPayload, and the same answer: 1009.
        if (data.length > this.maxPayloadBytes / 3 && Buffer.byteLength(data) > this.maxPayloadBytes) {
          this.close(CLOSE.TOO_BIG, 'frame too big');
          return;
        }
        handlers.onMessage(data, false);
      } else if (data instanceof Uint8Array || data instanceof ArrayBuffer) {
        handlers.onMessage(Buffer.from(data as ArrayBuffer), true);
      } else {
        handlers.onInvalid(`a ${SOCKETIO_EVENT} event's argument must be the frame's JSON text (a string)`, bytes);
      }
    });
    this.socket.on('disconnect', () => {
      this.pending = 0;
      handlers.onClose();
    });
  }

  send(text: string): void {
    this.socket.emit(SOCKETIO_EVENT, text);
  }

  close(code: number, reason: string): void {
    if (this.closing) return;
    this.closing = true;
    if (this.socket.connected) this.socket.emit(SOCKETIO_CLOSE_EVENT, { code, reason });
    // Disconnecting waits for the write buffer to drain, so the `close` event goes first.
    this.socket.disconnect(true);
  }

  terminate(): void {
    this.closing = true;
    this.ws?.terminate();
    this.conn.close(true);
  }

  pauseReading(): void {
    const tcp = tcpOf(this.ws);
    if (!tcp || this.paused) return;
    this.paused = tcp;
    tcp.pause();
  }

  resumeReading(): void {
    this.paused?.resume();
    this.paused = undefined;
  }

  drained(maxWaitMs: number): Promise<void> {
    return firstEvent(
      [
        [this.conn, 'drain'],
        [this.socket, 'disconnect'],
      ],
      maxWaitMs,
    );
  }
}
