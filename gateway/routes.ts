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
  handler: (input: {
    body: z.infer<B>;
    query: z.infer<Q>;
    params: z.infer<P>;
    req: FastifyRequest;
    reply: FastifyReply;
  }) => Promise<z.infer<R> | undefined | void>;
}

type AnyRoute = RouteDef<z.ZodType, z.ZodType, z.ZodType, z.ZodType>;

/** Registers routes on a fastify instance and collects them for the OpenAPI document. */
export class Routes {
  private readonly defs: AnyRoute[] = [];

  constructor(
    private readonly app: FastifyInstance,
    private readonly authenticate: (req: FastifyRequest) => Promise<void>,
  ) {}

  add<B extends z.ZodType = z.ZodUndefined, Q extends z.ZodType = z.ZodUndefined, P extends z.ZodType = z.ZodUndefined, R extends z.ZodType = z.ZodUndefined>(
    def: RouteDef<B, Q, P, R>,
  ): void {
    this.defs.push(def as unknown as AnyRoute);
    this.app.route({
      method: def.method,
      url: def.url,
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

  /** OpenAPI 3.1 for every route added so far. */
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
