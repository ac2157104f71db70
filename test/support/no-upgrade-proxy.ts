// A loopback HTTP proxy that forwards plain requests (REST, Socket.IO long-polling) to the server and refuses every WebSocket upgrade, as some corporate proxies do.
import { type IncomingMessage, request, type Server, createServer } from 'node:http';
import type { Socket } from 'node:net';

export interface NoUpgradeProxy {
  readonly url: string;
  /** Upgrade requests seen (each refused). */
  readonly upgradesRefused: number;
  /** Plain requests forwarded. */
  readonly requestsForwarded: number;
  close(): Promise<void>;
}

/**
 * `refuse`: 'forbid' answers each upgrade `HTTP/1.1 403` with an HTML page (not the server's
 * JSON error), 'drop' closes the connection without an answer.
 */
export async function startNoUpgradeProxy(targetPort: number, options: { refuse?: 'forbid' | 'drop' } = {}): Promise<NoUpgradeProxy> {
  let upgradesRefused = 0;
  let requestsForwarded = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    requestsForwarded++;
    const upstream = request(
      { host: '127.0.0.1', port: targetPort, method: req.method, path: req.url, headers: req.headers },
      (answer: IncomingMessage) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(upstream);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
    upgradesRefused++;
    if (options.refuse === 'drop') return void socket.destroy();
    const page = '<html><body>WebSocket is not allowed here</body></html>';
    socket.end(`HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: ${page.length}\r\nConnection: close\r\n\r\n${page}`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    get upgradesRefused() {
      return upgradesRefused;
    },
    get requestsForwarded() {
      return requestsForwarded;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
