// The WebSocket transport: a `ws` socket as a SessionSocket, with corking and read backpressure on the TCP socket.
import type { Socket } from 'node:net';
import type { RawData, WebSocket } from 'ws';
import type { Logger } from '../platform/log.js';
import { firstEvent, type SessionSocket, type SocketHandlers, tcpOf } from './transport.js';

/** The WsSocket a `ws` WebSocket belongs to, so that one set of listeners serves every socket. */
const OWNER = Symbol('parley.wsSocket');
type Owned = WebSocket & { [OWNER]: WsSocket };
const ownerOf = (ws: WebSocket): WsSocket => (ws as Owned)[OWNER];

// The listeners, shared by every socket (`this` is the WebSocket that emitted): an idle
// connection then holds no closures of its own.
function onWsMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
  ownerOf(this).handlers?.onMessage(data as Buffer, isBinary);
}
function onWsPong(this: WebSocket): void {
  ownerOf(this).handlers?.onPong();
}
function onWsClose(this: WebSocket): void {
  ownerOf(this).handlers?.onClose();
}
function onWsError(this: WebSocket, err: Error): void {
  // An error ends in 'close' too; the peer caused it (bad framing, a reset), so it is only debug.
  ownerOf(this).log.debug({ err }, 'socket error');
}

/**
 * A `ws` WebSocket behind the session's socket interface. `ws` has no public API for corking
 * or pausing reads, so both reach the TCP socket underneath (`ws` corks the same way itself).
 */
export class WsSocket implements SessionSocket {
  readonly transport = 'ws' as const;
  private corked = false;
  /** The session's handlers, once it listens. */
  handlers: SocketHandlers | undefined;

  constructor(
    private readonly ws: WebSocket,
    readonly log: Logger,
  ) {
    (ws as Owned)[OWNER] = this;
  }

  /** The TCP socket under the WebSocket (gone once it is closed). */
  private get tcp(): Socket | undefined {
    return tcpOf(this.ws);
  }

  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  listen(handlers: SocketHandlers): void {
    this.handlers = handlers;
    this.ws.on('message', onWsMessage);
    this.ws.on('pong', onWsPong);
    this.ws.on('close', onWsClose);
    this.ws.on('error', onWsError);
  }

  /**
   * Frames written in one tick leave in one write: the TCP socket is corked until the next
   * tick. Each write is a system call, and under load a device gets several frames per tick.
   */
  send(text: string): void {
    const tcp = this.tcp;
    if (tcp && !this.corked) {
      this.corked = true;
      tcp.cork();
      process.nextTick(() => {
        this.corked = false;
        tcp.uncork();
      });
    }
    this.ws.send(text);
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }

  terminate(): void {
    this.ws.terminate();
  }

  pauseReading(): void {
    this.tcp?.pause();
  }

  resumeReading(): void {
    this.tcp?.resume();
  }

  drained(maxWaitMs: number): Promise<void> {
    const tcp = this.tcp;
    return firstEvent(
      [
        [tcp, 'drain'],
        [tcp, 'close'],
      ],
      maxWaitMs,
    );
  }

  ping(): void {
    this.ws.ping();
  }
}
