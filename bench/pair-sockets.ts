// One end of a bench pair over a plain `ws` WebSocket or a raw socket.io-client (WebSocket upgrade, or long-polling only), behind one small interface.
import { io } from 'socket.io-client';
import WebSocket, { type RawData } from 'ws';
import { SOCKETIO_CLOSE_EVENT, SOCKETIO_EVENT, SOCKETIO_PATH } from '../protocol/frames.js';

/** How the load generator reaches Parley: its WebSocket endpoint, or Socket.IO (upgrading to WebSocket, or long-polling only). */
export type BenchTransport = 'ws' | 'socketio' | 'polling';
export const BENCH_TRANSPORTS: readonly BenchTransport[] = ['ws', 'socketio', 'polling'];

/** Where one end connects: a `ws://` URL with subprotocols, or Socket.IO at an `http://` base with a token in the handshake. */
export type EndAddress =
  | { kind: 'ws'; url: string; protocols: string[] }
  | { kind: 'socketio'; url: string; token: string; pollingOnly: boolean };

/** A pair's end: text frames both ways, and one close report (code and reason, 1006 when the transport just dropped). */
export interface EndSocket {
  send(text: string): void;
  close(): void;
  /** Whether frames can be written now. */
  readonly open: boolean;
  onText(listener: (text: string, at: number) => void): void;
  onError(listener: (err: Error) => void): void;
  onClose(listener: (code: number, reason: string) => void): void;
}

export function openEnd(address: EndAddress): EndSocket {
  return address.kind === 'ws' ? wsEnd(address.url, address.protocols) : socketIoEnd(address.url, address.token, address.pollingOnly);
}

function wsEnd(url: string, protocols: string[]): EndSocket {
  const ws = new WebSocket(url, protocols, { perMessageDeflate: false });
  return {
    send: (text) => ws.send(text),
    close: () => ws.close(1000, 'bench done'),
    get open() {
      return ws.readyState === WebSocket.OPEN;
    },
    onText: (listener) => ws.on('message', (data: RawData) => listener((data as Buffer).toString('utf8'), performance.now())),
    onError: (listener) => ws.on('error', listener),
    onClose: (listener) => ws.on('close', (code, reason) => listener(code, reason.toString())),
  };
}

/**
 * The stock client as an app would use it (docs/protocol.md): the token in `auth`, one `frame`
 * event per frame carrying its JSON text, and a `close` event with the code before the server
 * disconnects. Socket.IO's own reconnection is off: a drop is reported, as with `ws`.
 */
function socketIoEnd(url: string, token: string, pollingOnly: boolean): EndSocket {
  const socket = io(url, {
    path: SOCKETIO_PATH,
    auth: { token },
    transports: pollingOnly ? ['polling'] : ['polling', 'websocket'],
    forceNew: true,
    reconnection: false,
  });
  let closedWith: { code: number; reason: string } | null = null;
  let closing = false;
  const closeListeners: ((code: number, reason: string) => void)[] = [];
  socket.on(SOCKETIO_CLOSE_EVENT, (c: { code?: number; reason?: string }) => {
    closedWith = { code: c.code ?? 1006, reason: c.reason ?? '' };
  });
  socket.on('disconnect', (why) => {
    const { code, reason } = closedWith ?? (closing ? { code: 1000, reason: 'bench done' } : { code: 1006, reason: why });
    for (const l of closeListeners) l(code, reason);
  });
  return {
    send: (text) => void socket.emit(SOCKETIO_EVENT, text),
    close: () => {
      closing = true;
      socket.disconnect();
    },
    get open() {
      return socket.connected;
    },
    onText: (listener) => socket.on(SOCKETIO_EVENT, (text: string) => listener(text, performance.now())),
    onError: (listener) => socket.on('connect_error', (err) => listener(new Error(`connect_error ${err.message}`))),
    onClose: (listener) => void closeListeners.push(listener),
  };
}
