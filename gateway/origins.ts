// Browser origins: which may call the REST API and open either transport, and the CORS answers REST gives them.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../platform/metrics.js';

/** Methods the REST API serves, as a CORS preflight answers them. */
const ALLOW_METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE';
/** Request headers a cross-origin page may send. */
const ALLOW_HEADERS = 'Authorization, Content-Type';
/** Response headers a cross-origin page may read (waits after 429 and 503). */
const EXPOSE_HEADERS = 'Retry-After';
/** How long a browser may cache a preflight answer, in seconds. */
const PREFLIGHT_MAX_AGE_S = 600;

/**
 * The origin rule, one for REST, the WebSocket upgrade and Socket.IO. A request without an
 * `Origin` header is allowed (non-browser clients). One with it is allowed when the origin is
 * the server's own (`http://` or `https://` plus the request's `Host` header: TLS is usually
 * ended by a proxy in front, so the scheme the browser saw is not known here), or is listed
 * in CORS_ORIGINS (exact strings). Anything else, `null` included, is refused.
 *
 * @example new OriginPolicy(['https://app.example.com']).allows(req) // false for Origin: https://evil.example
 */
export class OriginPolicy {
  private readonly listed: ReadonlySet<string>;

  constructor(origins: readonly string[]) {
    this.listed = new Set(origins);
  }

  /** Whether a request may proceed, by its `Origin` and `Host` headers. */
  allows(req: IncomingMessage): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    if (this.listed.has(origin)) return true;
    const host = req.headers.host;
    return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
  }

  /**
   * Answers CORS for an allowed request that carries an `Origin`: sets the response headers
   * and, for a preflight (`OPTIONS` with `Access-Control-Request-Method`), the allowed methods
   * and headers. Returns whether the request was a preflight (then nothing else answers it).
   */
  corsHeaders(req: IncomingMessage, set: (name: string, value: string) => void): boolean {
    const origin = req.headers.origin;
    if (origin === undefined) return false;
    set('Access-Control-Allow-Origin', origin);
    set('Vary', 'Origin');
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined) {
      set('Access-Control-Allow-Methods', ALLOW_METHODS);
      set('Access-Control-Allow-Headers', ALLOW_HEADERS);
      set('Access-Control-Max-Age', String(PREFLIGHT_MAX_AGE_S));
      return true;
    }
    set('Access-Control-Expose-Headers', EXPOSE_HEADERS);
    return false;
  }
}

/** The message of a refusal for a disallowed origin, on every transport. */
export const FORBIDDEN_ORIGIN_MESSAGE = 'origin not allowed';
/** The body of a refusal for a disallowed origin (the documented error shape). */
const FORBIDDEN_ORIGIN_BODY = JSON.stringify({ error: { code: 'forbidden', message: FORBIDDEN_ORIGIN_MESSAGE } });

/**
 * CORS for the REST API: a request from a disallowed origin is refused (403 `forbidden`, no
 * CORS headers, preflights included); an allowed one gets the CORS headers, and its
 * preflight is answered 204 here, before routing.
 */
export function registerCors(http: FastifyInstance, policy: OriginPolicy, metrics: Metrics): void {
  http.addHook('onRequest', async (req, reply) => {
    if (!policy.allows(req.raw)) {
      metrics.errors.inc({ code: 'forbidden', transport: 'http' });
      return reply.code(403).type('application/json').send(FORBIDDEN_ORIGIN_BODY);
    }
    if (policy.corsHeaders(req.raw, (name, value) => reply.header(name, value))) return reply.code(204).send();
  });
}

/**
 * The same rule for plain Node requests (Socket.IO's long-polling requests): answers a
 * disallowed origin 403 or a preflight 204 itself and returns true when it did.
 */
export function answerOrigin(req: IncomingMessage, res: ServerResponse, policy: OriginPolicy, metrics: Metrics, transport: string): boolean {
  if (!policy.allows(req)) {
    metrics.errors.inc({ code: 'forbidden', transport });
    res.writeHead(403, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(FORBIDDEN_ORIGIN_BODY) });
    res.end(FORBIDDEN_ORIGIN_BODY);
    return true;
  }
  if (policy.corsHeaders(req, (name, value) => res.setHeader(name, value))) {
    res.writeHead(204).end();
    return true;
  }
  return false;
}
