// REST routes defined once: zod schemas validate each request and generate the OpenAPI document.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { AppError, type ErrorCode, HTTP_STATUS } from '../platform/errors.js';

export interface RouteDef<B extends z.ZodType, Q extends z.ZodType, P extends z.ZodType, R extends z.ZodType> {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: string;
  summary: string;
  tag: string;
  /** Whether a bearer token is required. */
  auth: boolean;
  body?: B;
  query?: Q;
  params?: P;
  /** The success response body; omit for 204. */
  response?: R;
  status?: number;
  /** Error codes this route can answer with (documented in the spec). */
  errors?: string[];
  /** Runs before the body is read or parsed (e.g. a rate limit), so a refusal costs no parsing. */
  early?: (req: FastifyRequest) => void;
  handler: (input: {
    body: z.infer<B>;
    query: z.infer<Q>;
    params: z.infer<P>;
    req: FastifyRequest;
    reply: FastifyReply;
  }) => Promise<z.infer<R> | undefined | void>;
}

type AnyRoute = RouteDef<z.ZodType, z.ZodType, z.ZodType, z.ZodType>;

/**
 * The spec of a route registered directly on fastify (e.g. one that streams a raw body), so
 * that it appears in the OpenAPI document beside the others.
 */
export interface RawRouteDoc {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'DELETE';
  url: string;
  summary: string;
  description?: string;
  tag: string;
  auth: boolean;
  params?: z.ZodType;
  /** Request headers, as an object schema (names in lowercase). */
  headers?: z.ZodType;
  requestBody?: { contentType: string; description: string };
  /** By status: what the response carries. */
  responses: Record<string, { description: string; contentType?: string; schema?: z.ZodType; headers?: Record<string, string> }>;
  errors?: string[];
}

/** Registers routes on a fastify instance and collects them for the OpenAPI document. */
export class Routes {
  private readonly defs: AnyRoute[] = [];
  private readonly raw: RawRouteDoc[] = [];

  constructor(
    private readonly app: FastifyInstance,
    private readonly authenticate: (req: FastifyRequest) => Promise<void>,
  ) {}

  add<B extends z.ZodType = z.ZodUndefined, Q extends z.ZodType = z.ZodUndefined, P extends z.ZodType = z.ZodUndefined, R extends z.ZodType = z.ZodUndefined>(
    def: RouteDef<B, Q, P, R>,
  ): void {
    this.defs.push(def as unknown as AnyRoute);
    const early = def.early;
    this.app.route({
      method: def.method,
      url: def.url,
      ...(early ? { onRequest: async (req: FastifyRequest) => early(req) } : {}),
      handler: async (req, reply) => {
        if (def.auth) await this.authenticate(req);
        const body = parse(def.body, req.body, 'body');
        const query = parse(def.query, req.query, 'query');
        const params = parse(def.params, req.params, 'path');
        const result = await def.handler({ body, query, params, req, reply } as never);
        reply.code(def.status ?? (def.response ? 200 : 204));
        return def.response ? result : reply.send();
      },
    });
  }

  /** Adds a route that was registered on fastify directly to the OpenAPI document. */
  document(doc: RawRouteDoc): void {
    this.raw.push(doc);
  }

  /** OpenAPI 3.1 for every route added (or documented) so far. */
  openapi(info: { title: string; version: string }): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const d of this.defs) {
      const path = d.url.replace(/:([A-Za-z]+)/g, '{$1}');
      const parameters: unknown[] = [];
      for (const [where, schema] of [['path', d.params], ['query', d.query]] as const) {
        if (!schema) continue;
        const js = z.toJSONSchema(schema) as { properties?: Record<string, unknown>; required?: string[] };
        for (const [name, s] of Object.entries(js.properties ?? {})) {
          parameters.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema: s });
        }
      }
      const status = String(d.status ?? (d.response ? 200 : 204));
      const responses: Record<string, unknown> = {
        [status]: d.response
          ? { description: 'OK', content: { 'application/json': { schema: z.toJSONSchema(d.response) } } }
          : { description: 'No content' },
      };
      for (const code of d.errors ?? []) responses[String(HTTP_STATUS[code as ErrorCode] ?? 400)] = { $ref: '#/components/responses/Error' };
      paths[path] ??= {};
      paths[path][d.method.toLowerCase()] = {
        summary: d.summary,
        tags: [d.tag],
        ...(d.auth ? { security: [{ bearer: [] }] } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(d.body ? { requestBody: { required: true, content: { 'application/json': { schema: z.toJSONSchema(d.body) } } } } : {}),
        responses,
      };
    }
    for (const d of this.raw) {
      const path = d.url.replace(/:([A-Za-z]+)/g, '{$1}');
      const parameters: unknown[] = [];
      for (const [where, schema] of [['path', d.params], ['header', d.headers]] as const) {
        if (!schema) continue;
        const js = z.toJSONSchema(schema) as { properties?: Record<string, unknown>; required?: string[] };
        for (const [name, s] of Object.entries(js.properties ?? {})) {
          parameters.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema: s });
        }
      }
      const responses: Record<string, unknown> = {};
      for (const [status, r] of Object.entries(d.responses)) {
        responses[status] = {
          description: r.description,
          ...(r.contentType ? { content: { [r.contentType]: r.schema ? { schema: z.toJSONSchema(r.schema) } : {} } } : {}),
          ...(r.headers ? { headers: Object.fromEntries(Object.entries(r.headers).map(([h, desc]) => [h, { description: desc, schema: { type: 'string' } }])) } : {}),
        };
      }
      for (const code of d.errors ?? []) responses[String(HTTP_STATUS[code as ErrorCode] ?? 400)] ??= { $ref: '#/components/responses/Error' };
      paths[path] ??= {};
      paths[path][d.method.toLowerCase()] = {
        summary: d.summary,
        ...(d.description ? { description: d.description } : {}),
        tags: [d.tag],
        ...(d.auth ? { security: [{ bearer: [] }] } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(d.requestBody
          ? { requestBody: { required: true, description: d.requestBody.description, content: { [d.requestBody.contentType]: { schema: { type: 'string', format: 'binary' } } } } }
          : {}),
        responses,
      };
    }
    return {
      openapi: '3.1.0',
      info,
      paths,
      components: {
        securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } },
        responses: {
          Error: {
            description: 'An error: `code` is stable (docs/protocol.md lists them all).',
            content: { 'application/json': { schema: z.toJSONSchema(errorBody) } },
          },
        },
      },
    };
  }
}


export const errorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), details: z.record(z.string(), z.unknown()).optional() }),
});

function parse<T extends z.ZodType>(schema: T | undefined, value: unknown, where: string): z.infer<T> | undefined {
  if (!schema) return undefined;
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const message = r.error.issues.map((i) => `${[where, ...i.path].join('.')}: ${i.message}`).join('; ');
  throw new AppError('invalid', message);
}
