// A raw protocol client (plain `ws`) for tests that must send what the SDK never would.
import WebSocket from 'ws';
import type { ServerFrame } from '../../client-sdk/protocol.js';
import { until } from './wait.js';

export interface RawSession {
  ws: WebSocket;
  frames: ServerFrame[];
  closed: { code: number; reason: string } | null;
  sendJson(value: unknown): void;
  /** Waits for the first frame (after index `from`) that matches. */
  next<T extends ServerFrame['type']>(type: T, from?: number): Promise<Extract<ServerFrame, { type: T }>>;
}

export function wsUrl(httpUrl: string): string {
  return httpUrl.replace(/^http/, 'ws') + '/v1/ws';
}

/** Opens a raw session; resolves after `ready`. */
export async function rawConnect(httpUrl: string, token: string): Promise<RawSession> {
  const ws = new WebSocket(wsUrl(httpUrl), ['parley.v1', `bearer.${token}`]);
  const s: RawSession = {
    ws,
    frames: [],
    closed: null,
    sendJson: (v) => ws.send(JSON.stringify(v)),
    next: async (type, from = 0) => {
      let found: ServerFrame | undefined;
      await until(() => (found = s.frames.slice(from).find((f) => f.type === type)) !== undefined || s.closed !== null, `a ${type} frame`);
      if (!found) throw new Error(`closed (${s.closed?.code}) before a ${type} frame`);
      return found as never;
    },
  };
  ws.on('message', (d) => s.frames.push(JSON.parse(d.toString())));
  ws.on('close', (code, reason) => (s.closed = { code, reason: reason.toString() }));
  await s.next('ready');
  return s;
}

/** The HTTP status an upgrade attempt is refused with (0 if it was accepted). */
export function upgradeStatus(httpUrl: string, headers: Record<string, string>, protocols: string[] = ['parley.v1']): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(wsUrl(httpUrl), protocols, { headers });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? -1);
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(0);
      ws.close();
    });
    ws.on('error', () => {});
  });
}
