// The HTTP server: REST routes, health, metrics, the OpenAPI document, CORS, the WebSocket upgrade at /v1/ws and Socket.IO.
import type { IncomingMessage } from 'node:http';
import { type Duplex, PassThrough, pipeline, type Readable } from 'node:stream';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { WebSocketServer } from 'ws';
import { sodiumReady } from '../protocol/bytes.js';
import { CLOSE, PROTOCOL, SOCKETIO_PATH, WS_PATH } from '../protocol/frames.js';
import type { FileService } from '../files/files.js';
import { fileRoutes } from './files.routes.js';
import type { MessageStore } from '../messaging/message-store.js';
import type { MessagesManager } from '../messaging/messages.js';
import type { GroupsManager } from '../groups/groups.js';
import { groupRoutes } from './groups.routes.js';
import type { Clock } from '../platform/clock.js';
import type { Config } from '../platform/config.js';
import { AppError, HTTP_STATUS, toAppError } from '../platform/errors.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import type { Sql } from '../platform/sql.js';
import type { TokenClaims, Tokens } from '../platform/tokens.js';
import type { Accounts } from '../accounts/accounts.js';
import type { Blocks } from '../accounts/blocks.js';
import type { Reports } from '../accounts/reports.js';
import type { Conversations } from '../messaging/conversations.js';
import { accountRoutes } from './accounts.routes.js';
import { controlRoutes } from './control.routes.js';
import { conversationRoutes } from './conversations.routes.js';
import { DeviceSession, type DeviceSessionDeps } from './device-session.js';
import { ReceiptCoalescer } from './receipt-coalescer.js';
import type { Delivery } from '../routing/delivery.js';
import { KeyDirectory } from '../accounts/keys.js';
import { keyRoutes } from './keys.routes.js';
import { FORBIDDEN_ORIGIN_MESSAGE, OriginPolicy, registerCors } from './origins.js';
import { KeyedLimiter, UserBudgets } from './rate-limit.js';
import { Routes } from './routes.js';
import { type PushRouteOptions, pushRoutes } from './push.routes.js';
import type { Notifier } from '../notifications/notifier.js';
import type { SessionSocket } from './transport.js';
import { attachSocketIo } from './transport.socketio.js';
import { WsSocket } from './transport.ws.js';
import { defaultWebDir, registerWeb } from './web.js';

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
  /** Runs the file retention sweep now (a deleted account's uploads go with it). */
  sweepFiles?: () => Promise<unknown>;
  /** Push targets and mutes; their REST routes are served when it is given. */
  push?: { notifier: Notifier; options: PushRouteOptions };
  /** Blocks (shared with the message path, whose cache they invalidate), reports and the inbox. */
  blocks: Blocks;
  reports: Reports;
  conversations: Conversations;
}

export interface Gateway {
  http: FastifyInstance;
  /** Closes every session with 1001 (clients reconnect elsewhere), on both transports, and stops the HTTP server. */
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
    // Requests that never parse as HTTP (bad request line, headers too large, a request that
    // never completes) get the documented error shape too, then the connection closes.
    clientErrorHandler: (err, socket) => answerClientError(err, socket, metrics),
    // The router's own refusals (a malformed percent-encoding, a path parameter over 100
    // characters) get the documented shape too: 400 invalid, 414 too_large.
    frameworkErrors: (err, _req, reply) => {
      const tooLong = (err as { code?: string }).code === 'FST_ERR_MAX_PARAM_LENGTH';
      metrics.errors.inc({ code: tooLong ? 'too_large' : 'invalid', transport: 'http' });
      void (reply as unknown as FastifyReply)
        .code(tooLong ? 414 : 400)
        .send({ error: { code: tooLong ? 'too_large' : 'invalid', message: tooLong ? 'a path parameter is too long' : 'malformed URL' } });
    },
  });
  http.server.headersTimeout = config.HTTP_HEADERS_TIMEOUT_MS;
  http.server.requestTimeout = config.HTTP_REQUEST_TIMEOUT_MS;

  // A JSON body that has not fully arrived HTTP_BODY_TIMEOUT_MS after the request began is
  // refused (408 `timeout`) and its connection closed. Streaming routes (file uploads) opt
  // out with `config.streamingBody` and watch their own transfer instead.
  http.addHook('preParsing', async (req, _reply, payload) => {
    if (req.raw.complete || (req.routeOptions.config as { streamingBody?: boolean } | undefined)?.streamingBody) return payload;
    return withDeadline(payload, config.HTTP_BODY_TIMEOUT_MS);
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
    // The rest of an unread body would be parsed as the next request: close instead.
    if (!req.raw.complete) reply.header('connection', 'close');
    const retryAfter = e.details?.retryAfterMs;
    if (typeof retryAfter === 'number') reply.header('retry-after', Math.ceil(retryAfter / 1000));
    reply.code(HTTP_STATUS[e.code]).send({
      error: { code: e.code, message: e.code === 'internal' ? 'internal error' : e.message, ...(e.details ? { details: e.details } : {}) },
    });
  });
  const origins = new OriginPolicy(config.CORS_ORIGINS);
  registerCors(http, origins, metrics);
  http.setNotFoundHandler((_req, reply) => {
    reply.code(404).send({ error: { code: 'not_found', message: 'no such route' } });
  });

  /** A token opens a session while its device exists and its sessions were not revoked since it was issued (Accounts.sessionValid). */
  const checkSession = async (claims: TokenClaims): Promise<void> => {
    if (!(await deps.accounts.sessionValid(claims))) {
      throw new AppError('unauthorized', 'this session was ended: the device was removed or its sessions were revoked');
    }
  };
  const authenticate = async (req: FastifyRequest) => {
    const token = bearerToken(req.raw);
    const claims = await deps.tokens.verify(token);
    await checkSession(claims);
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
  if (deps.push) pushRoutes(routes, deps.push.notifier, deps.messages, deps.push.options);
  conversationRoutes(routes, deps.conversations, deps.store, deps.clock, { unsendWindowMs: config.MESSAGE_UNSEND_WINDOW_SECONDS * 1000 });
  controlRoutes(routes, {
    accounts: deps.accounts,
    blocks: deps.blocks,
    reports: deps.reports,
    messages: deps.messages,
    store: deps.store,
    groups: deps.groups,
    delivery: deps.delivery,
    ...(deps.sweepFiles ? { sweepFiles: deps.sweepFiles } : {}),
    reportLimiter: new KeyedLimiter(config.REPORT_RATE_PER_HOUR / 3600, config.REPORT_RATE_PER_HOUR, deps.clock),
    adminToken: config.ADMIN_TOKEN,
  });

  // The web client (WEB_DIR, default dist/web; WEB_DIR= for none) at `/`.
  await registerWeb(http, config.WEB_DIR ?? defaultWebDir());
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

  const sessions = new Set<DeviceSession>();
  const receipts = new ReceiptCoalescer({ store: deps.store, messages: deps.messages, metrics, log });
  const budgets = new UserBudgets(config.WS_USER_RATE_PER_SECOND, config.WS_USER_RATE_BURST, deps.clock);
  // Connections per user: each one costs a token check, a device lookup, a route and a sync,
  // so a client that reconnects in a loop (e.g. after every flood close) is slowed down here.
  const connectLimiter = new KeyedLimiter(config.WS_CONNECT_RATE_PER_MINUTE / 60, config.WS_CONNECT_RATE_PER_MINUTE, deps.clock);

  /**
   * The checks before either transport accepts a connection: the token, the per-user connect
   * limit and that the device still exists. Throws `unauthorized`, `rate_limited` (with
   * `retryAfterMs` in its details) or whatever the backends threw.
   */
  const admit = async (token: string | undefined): Promise<TokenClaims> => {
    const claims = await deps.tokens.verify(token);
    const wait = connectLimiter.take(claims.userId);
    if (wait > 0) throw new AppError('rate_limited', 'too many connections; wait', { details: { retryAfterMs: wait } });
    await checkSession(claims);
    lastSeen(claims.deviceId);
    return claims;
  };
  /** Records a connect or disconnect as the device's last-seen time (batched; a failed write is logged and counted, never fatal). */
  const lastSeen = (deviceId: string): void => {
    deps.accounts.seen(deviceId).catch((err: unknown) => {
      metrics.backendFailures.inc({ backend: 'sql', operation: 'last_seen' });
      log.error({ err }, 'recording last seen failed');
    });
  };

  /** What every device session of this gateway shares (one object: an idle connection holds only a reference). */
  const sessionDeps: DeviceSessionDeps = {
    store: deps.store,
    messages: deps.messages,
    delivery: deps.delivery,
    receipts,
    metrics,
    log,
    clock: deps.clock,
    budgets,
    limits: {
      ratePerSecond: config.WS_RATE_PER_SECOND,
      burst: config.WS_RATE_BURST,
      maxPayloadBytes: config.WS_MAX_PAYLOAD_BYTES,
      heartbeatMs: config.HEARTBEAT_INTERVAL_MS,
      maxPresenceWatch: config.PRESENCE_WATCH_MAX,
    },
    onClosed: (closed) => {
      sessions.delete(closed);
      lastSeen(closed.deviceId);
    },
  };

  /** Starts a device session on an admitted socket of either transport. */
  const openSession = (socket: SessionSocket, claims: TokenClaims): void => {
    const session = new DeviceSession(socket, claims.userId, claims.deviceId, claims.exp * 1000, sessionDeps);
    sessions.add(session);
    session.open().catch((err) => {
      log.error({ err }, 'opening session failed');
      session.close(CLOSE.INTERNAL, 'internal error');
    });
  };

  // WebSocket: authenticate before the upgrade completes; answer 401 without upgrading otherwise.
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.WS_MAX_PAYLOAD_BYTES,
    perMessageDeflate: false,
    // The gateway keeps its own set of sessions (and closes them itself): no second set in `ws`.
    clientTracking: false,
    handleProtocols: (protocols) => (protocols.has(PROTOCOL) ? PROTOCOL : false),
  });
  const STATUS_TEXT: Record<number, string> = {
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not Found',
    429: 'Too Many Requests',
    503: 'Service Unavailable',
  };
  const refuse = (socket: Duplex, status: number, code: string, message: string, details?: { retryAfterMs: number }) => {
    const body = JSON.stringify({ error: { code, message, ...(details ? { details } : {}) } });
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}\r\n` +
        (details ? `Retry-After: ${Math.ceil(details.retryAfterMs / 1000)}\r\n` : '') +
        `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  };

  // Nothing made here may outlive the upgrade: a listener or closure left on the socket would
  // keep the request (its headers, the token) and the buffer it was read in for as long as
  // the connection lives.
  http.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '').split('?')[0]!;
    // Socket.IO's upgrades are engine.io's to answer (it listens for them itself).
    if (path.startsWith(`${SOCKETIO_PATH}/`)) return;
    socket.on('error', destroyOnError);
    if (path !== WS_PATH) return refuse(socket, 404, 'not_found', 'no such path');
    if (!origins.allows(req)) {
      metrics.errors.inc({ code: 'forbidden', transport: 'ws' });
      return refuse(socket, 403, 'forbidden', FORBIDDEN_ORIGIN_MESSAGE);
    }
    admit(bearerToken(req))
      .then(
        (claims) =>
          wss.handleUpgrade(req, socket, head, (ws) => {
            socket.off('error', destroyOnError); // `ws` handles the socket's errors from here on
            try {
              openSession(new WsSocket(ws, log), claims);
            } catch (err) {
              metrics.handlerCrashes.inc({ where: 'upgrade' });
              log.error({ err }, 'starting a session failed');
              ws.close(CLOSE.INTERNAL, 'internal error');
            }
          }),
        (err: unknown) => {
          const e = toAppError(err);
          metrics.errors.inc({ code: e.code, transport: 'ws' });
          if (e.code === 'unauthorized') return refuse(socket, 401, 'unauthorized', e.message);
          if (e.code === 'rate_limited') return refuse(socket, 429, 'rate_limited', e.message, e.details as { retryAfterMs: number });
          log.error({ err }, 'upgrade failed');
          return refuse(socket, 503, 'unavailable', 'try again later');
        },
      )
      .catch((err: unknown) => {
        metrics.handlerCrashes.inc({ where: 'upgrade' });
        log.error({ err }, 'upgrade failed');
        socket.destroy();
      });
  });

  const socketIo = attachSocketIo(http.server, {
    maxPayloadBytes: config.WS_MAX_PAYLOAD_BYTES,
    heartbeatMs: config.HEARTBEAT_INTERVAL_MS,
    origins,
    admit,
    open: openSession,
    metrics,
    log,
  });

  return {
    http,
    close: async () => {
      for (const s of sessions) s.close(CLOSE.GOING_AWAY, 'server shutting down');
      wss.close();
      // Node's server.close() waits for every connection, even one that never sent a request
      // (an HTTP client's spare connection): give requests in flight a moment, then cut the rest.
      const rest = setTimeout(() => http.server.closeAllConnections(), 2_000);
      await socketIo.close();
      await http.close();
      clearTimeout(rest);
      await receipts.flush(); // the last acks and reads, before the store closes
      await deps.accounts.flush(); // the last disconnects' last-seen times
    },
  };
}

/** An upgrading socket's error listener: one function for all of them, so that it holds nothing of any request. */
function destroyOnError(this: Duplex): void {
  this.destroy();
}

/** Wraps a request body so that it fails with `timeout` unless it ends within `ms`. */
function withDeadline(payload: Readable, ms: number): Readable {
  const guarded = new PassThrough();
  const timer = setTimeout(() => guarded.destroy(new AppError('timeout', `the request body did not arrive within ${ms} ms`)), ms);
  pipeline(payload, guarded, () => clearTimeout(timer));
  return guarded;
}

const CLIENT_ERROR_STATUS: Record<string, [number, string, string, string]> = {
  HPE_HEADER_OVERFLOW: [431, 'Request Header Fields Too Large', 'too_large', 'request headers too large'],
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'Request Timeout', 'timeout', 'the request did not arrive in time'],
  HPE_URI_TOO_LONG: [414, 'URI Too Long', 'too_large', 'request line too long'],
};

/** Answers a request Node could not parse (or that timed out) with the documented error shape, then closes. */
function answerClientError(err: Error & { code?: string }, socket: Duplex, metrics: Metrics): void {
  const [status, text, code, message] = CLIENT_ERROR_STATUS[err.code ?? ''] ?? [400, 'Bad Request', 'invalid', 'malformed HTTP request'];
  metrics.errors.inc({ code, transport: 'http' });
  if (!socket.writable || err.code === 'ECONNRESET') {
    socket.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
