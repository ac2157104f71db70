// The HTTP server: REST routes, health, metrics, the OpenAPI document, and the WebSocket upgrade at /v1/ws.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest } from 'fastify';
import { WebSocketServer } from 'ws';
import { sodiumReady } from '../client-sdk/e2e.bytes.js';
import { CLOSE, PROTOCOL, WS_PATH } from '../client-sdk/protocol.js';
import type { FileService } from '../files/files.js';
import { fileRoutes } from '../files/files.routes.js';
import type { MessageStore } from '../messaging/message-store.js';
import type { MessagesManager } from '../messaging/messages.js';
import type { GroupsManager } from '../groups/groups.js';
import { groupRoutes } from '../groups/groups.routes.js';
import type { Clock } from '../platform/clock.js';
import type { Config } from '../platform/config.js';
import { AppError, HTTP_STATUS, toAppError } from '../platform/errors.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import type { Sql } from '../platform/sql.js';
import type { TokenClaims, Tokens } from '../platform/tokens.js';
import type { Accounts } from './accounts.js';
import { accountRoutes } from './accounts.routes.js';
import { Connection } from './connection.js';
import type { Delivery } from './delivery.js';
import { KeyDirectory } from './keys.js';
import { keyRoutes } from './keys.routes.js';
import { KeyedLimiter } from './rate-limit.js';
import { Routes } from './routes.js';

declare module 'fastify' {
  interface FastifyRequest {
    auth?: TokenClaims;
  }
}

export interface GatewayDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  clock: Clock;
  sql: Sql;
  tokens: Tokens;
  accounts: Accounts;
  store: MessageStore;
  messages: MessagesManager;
  delivery: Delivery;
  groups: GroupsManager;
  /** The file service; its REST routes are served when it is given. */
  files?: FileService;
}

export interface Gateway {
  http: FastifyInstance;
  /** Closes every socket with 1001 (clients reconnect elsewhere) and stops the HTTP server. */
  close(): Promise<void>;
}

/** The bearer token from `Authorization`, or from the `bearer.<token>` WebSocket subprotocol (browsers). */
export function bearerToken(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (h?.startsWith('Bearer ')) return h.slice(7).trim();
  const protocols = req.headers['sec-websocket-protocol'];
  for (const p of (protocols ?? '').split(',')) {
    const t = p.trim();
    if (t.startsWith('bearer.')) return t.slice(7);
  }
  return undefined;
}

export async function buildGateway(deps: GatewayDeps): Promise<Gateway> {
  const { config, log, metrics } = deps;
  const http: FastifyInstance = Fastify({
    // Request logging off (warn and above only): URLs and headers stay out of the logs.
    loggerInstance: log.child({ component: 'http' }, { level: 'warn' }) as FastifyBaseLogger,
    bodyLimit: 64 * 1024,
    trustProxy: false,
  });

  http.setErrorHandler((err, req, reply) => {
    // Fastify's own 4xx errors (bad JSON, unsupported media type, body too large) become ours.
    const status = (err as { statusCode?: number }).statusCode;
    const e =
      err instanceof AppError || status === undefined || status >= 500
        ? toAppError(err)
        : status === 413
          ? new AppError('too_large', 'request body too large')
          : new AppError('invalid', (err as Error).message);
    metrics.errors.inc({ code: e.code, transport: 'http' });
    if (e.code === 'internal' || e.code === 'unavailable') req.log.error({ err, url: req.routeOptions.url }, 'request failed');
    const retryAfter = e.details?.retryAfterMs;
    if (typeof retryAfter === 'number') reply.header('retry-after', Math.ceil(retryAfter / 1000));
    reply.code(HTTP_STATUS[e.code]).send({
      error: { code: e.code, message: e.code === 'internal' ? 'internal error' : e.message, ...(e.details ? { details: e.details } : {}) },
    });
  });
  http.setNotFoundHandler((_req, reply) => {
    reply.code(404).send({ error: { code: 'not_found', message: 'no such route' } });
  });

  const authenticate = async (req: FastifyRequest) => {
    const claims = await deps.tokens.verify(bearerToken(req.raw));
    if (!(await deps.accounts.deviceBelongs(claims.userId, claims.deviceId))) {
      throw new AppError('unauthorized', 'device no longer exists');
    }
    req.auth = claims;
  };
  const routes = new Routes(http, authenticate);
  const authLimiter = new KeyedLimiter(config.AUTH_RATE_PER_MINUTE / 60, config.AUTH_RATE_PER_MINUTE, deps.clock);
  await sodiumReady(); // identity keys and prekey signatures are checked with libsodium (login, key directory)
  accountRoutes(routes, deps.accounts, deps.delivery, authLimiter);
  groupRoutes(routes, deps.groups);
  const keyDirectory = new KeyDirectory(deps.sql, deps.clock, {
    onLow: (userId, deviceId, remaining) =>
      void deps.delivery.relay([userId], { type: 'prekeys_low', deviceId, remaining }).catch((err) => {
        metrics.backendFailures.inc({ backend: 'presence', operation: 'prekeys_low' });
        log.error({ err }, 'prekeys_low notification failed');
      }),
  });
  const bundleLimiter = new KeyedLimiter(config.KEY_FETCH_RATE_PER_MINUTE / 60, config.KEY_FETCH_RATE_PER_MINUTE, deps.clock);
  keyRoutes(routes, keyDirectory, bundleLimiter);
  if (deps.files) fileRoutes(http, routes, deps.files, authenticate);

  http.get('/healthz', async () => ({ ok: true }));
  http.get('/readyz', async (_req, reply) => {
    try {
      await deps.sql.query('SELECT 1');
      return { ok: true, gateway: deps.delivery.gatewayId };
    } catch {
      metrics.backendFailures.inc({ backend: 'sql', operation: 'readyz' });
      return reply.code(503).send({ ok: false, error: { code: 'unavailable', message: 'database unavailable' } });
    }
  });
  http.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
  http.get(WS_PATH, async (_req, reply) =>
    reply.code(426).header('upgrade', 'websocket').send({ error: { code: 'invalid', message: 'WebSocket upgrade required' } }),
  );
  const spec = routes.openapi({ title: 'Parley REST API', version: '1' });
  http.get('/openapi.json', async () => spec);

  // WebSocket: authenticate before the upgrade completes; answer 401 without upgrading otherwise.
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.WS_MAX_PAYLOAD_BYTES,
    perMessageDeflate: false,
    handleProtocols: (protocols) => (protocols.has(PROTOCOL) ? PROTOCOL : false),
  });
  const sockets = new Set<Connection>();

  const refuse = (socket: Duplex, status: number, code: string, message: string) => {
    const body = JSON.stringify({ error: { code, message } });
    socket.end(
      `HTTP/1.1 ${status} ${status === 401 ? 'Unauthorized' : status === 404 ? 'Not Found' : 'Service Unavailable'}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  };

  http.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const path = (req.url ?? '').split('?')[0];
    if (path !== WS_PATH) return refuse(socket, 404, 'not_found', 'no such path');
    void (async () => {
      let claims: TokenClaims;
      try {
        claims = await deps.tokens.verify(bearerToken(req));
        if (!(await deps.accounts.deviceBelongs(claims.userId, claims.deviceId))) {
          throw new AppError('unauthorized', 'device no longer exists');
        }
      } catch (err) {
        const e = toAppError(err);
        metrics.errors.inc({ code: e.code, transport: 'ws' });
        if (e.code === 'unauthorized') return refuse(socket, 401, 'unauthorized', e.message);
        log.error({ err }, 'upgrade failed');
        return refuse(socket, 503, 'unavailable', 'try again later');
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        const conn = new Connection(ws, claims.userId, claims.deviceId, claims.exp * 1000, {
          store: deps.store,
          messages: deps.messages,
          delivery: deps.delivery,
          metrics,
          log,
          clock: deps.clock,
          limits: {
            ratePerSecond: config.WS_RATE_PER_SECOND,
            burst: config.WS_RATE_BURST,
            maxPayloadBytes: config.WS_MAX_PAYLOAD_BYTES,
            heartbeatMs: config.HEARTBEAT_INTERVAL_MS,
          },
        });
        sockets.add(conn);
        ws.on('close', () => sockets.delete(conn));
        conn.open().catch((err) => {
          log.error({ err }, 'opening session failed');
          conn.close(CLOSE.INTERNAL, 'internal error');
        });
      });
    })();
  });

  return {
    http,
    close: async () => {
      for (const c of sockets) c.close(CLOSE.GOING_AWAY, 'server shutting down');
      wss.close();
      // Node's server.close() waits for every connection, even one that never sent a request
      // (an HTTP client's spare connection): give requests in flight a moment, then cut the rest.
      const rest = setTimeout(() => http.server.closeAllConnections(), 2_000);
      await http.close();
      clearTimeout(rest);
    },
  };
}
