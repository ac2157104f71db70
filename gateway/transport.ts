// The socket a device session talks to: what every transport (WebSocket, Socket.IO) implements, and what they share.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';

/** The transports a device session can run on, as metrics and logs name them. */
export type TransportName = 'ws' | 'socketio';

/**
 * What a session hears from its socket. Each method is called from the transport's own event
 * handlers. (Named `on…` so that the session can be its own handlers: no closures per socket.)
 */
export interface SocketHandlers {
  /** One inbound frame, exactly as the peer sent it (text, or binary data, which the session refuses). */
  onMessage(data: string | Buffer, isBinary: boolean): void;
  /**
   * An inbound message that is not a frame at all (Socket.IO: another event name, a non-string
   * argument, extra arguments): answered and charged like malformed JSON, plus its size
   * (`bytes`, as a frame of that size would pay).
   */
  onInvalid(reason: string, bytes?: number): void;
  /** The peer answered a `ping()`. */
  onPong(): void;
  /** The socket closed, for whatever reason (called once). */
  onClose(): void;
}

/**
 * One connected peer, as the device session sees it. The contract every transport keeps:
 * - `send` queues one frame's text; frames leave in the order sent. Writes in one tick may be
 *   batched into one system call (the transport corks on its own).
 * - `bufferedAmount` is the bytes sent but not yet handed to the network (the session closes a
 *   peer this far behind as a slow consumer, and pages syncs by it).
 * - `close(code, reason)` tells the peer why and then ends the session; the session never
 *   writes after it. `terminate()` drops the connection at once.
 * - `pauseReading()` reads nothing more from the peer until `resumeReading()`; what the peer
 *   sends meanwhile waits in the network, costing the server nothing. A transport that cannot
 *   pause (HTTP long-polling) may ignore both.
 * - `ping` probes liveness, answered by `pong`; a transport that runs its own heartbeats and
 *   closes dead peers itself leaves it undefined.
 */
export interface SessionSocket {
  readonly transport: TransportName;
  /** Whether frames can still be sent. */
  readonly open: boolean;
  readonly bufferedAmount: number;
  /** Registers the session's handlers; called once, before any event can arrive. */
  listen(handlers: SocketHandlers): void;
  send(text: string): void;
  close(code: number, reason: string): void;
  terminate(): void;
  pauseReading(): void;
  resumeReading(): void;
  /** Resolves when buffered data has drained, the socket closed, or after at most `maxWaitMs`. */
  drained(maxWaitMs: number): Promise<void>;
  ping?(): void;
}

/**
 * The TCP socket under a `ws` WebSocket, for corking and pausing reads (`ws` has no public API
 * for either and corks the same way itself); undefined once it is closed.
 */
export function tcpOf(ws: WebSocket | undefined): Socket | undefined {
  return (ws as unknown as { _socket?: Socket } | undefined)?._socket;
}

/** Something that emits events (a TCP socket, an engine.io connection, a Socket.IO socket). */
interface Emitter {
  once(event: string, listener: () => void): unknown;
  off(event: string, listener: () => void): unknown;
}

/** Resolves on the first of `events` or after `maxWaitMs`, whichever comes first, and removes its listeners. */
export function firstEvent(events: readonly [Emitter | undefined, string][], maxWaitMs: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      for (const [emitter, event] of events) emitter?.off(event, done);
      resolve();
    };
    const timer = setTimeout(done, maxWaitMs);
    for (const [emitter, event] of events) emitter?.once(event, done);
  });
}
