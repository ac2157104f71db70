// The WebSocket transport: a `ws` socket as a SessionSocket, with corking and read backpressure on the TCP socket.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { Logger } from '../platform/log.js';
import { firstEvent, type SessionSocket, type SocketHandlers, tcpOf } from './transport.js';

/**
 * A `ws` WebSocket behind the session's socket interface. `ws` has no public API for corking
 * or pausing reads, so both reach the TCP socket underneath (`ws` corks the same way itself).
 */
export class WsSocket implements SessionSocket {
  readonly transport = 'ws' as const;
  private corked = false;

  constructor(
    private readonly ws: WebSocket,
    private readonly log: Logger,
  ) {}

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
    this.ws.on('message', (data, isBinary) => handlers.message(data as Buffer, isBinary));
    this.ws.on('pong', () => handlers.pong());
    this.ws.on('close', () => handlers.close());
    // An error ends in 'close' too; the peer caused it (bad framing, a reset), so it is only debug.
    this.ws.on('error', (err) => this.log.debug({ err }, 'socket error'));
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
