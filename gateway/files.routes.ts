// REST for files: streaming upload, authorized download with ranges, and sharing into a conversation.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Routes } from './routes.js';
import { AppError } from '../platform/errors.js';
import type { ByteRange } from '../platform/blob-store.js';
import { type FileService, tooLarge } from '../files/files.js';

/**
 * A transfer that moves no byte for this long is dropped: an upload (its staging bytes are
 * deleted), or a download whose client stopped reading (it would hold a file open forever).
 */
const TRANSFER_IDLE_MS = 60_000;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;

/**
 * Parses a `Range` header against a file of `size` bytes (RFC 9110 §14): one `bytes=a-b`,
 * `bytes=a-` or `bytes=-n` range. Null means "send the whole file": no header, or one we
 * ignore as the RFC allows (malformed, several ranges, `b < a`). 'unsatisfiable' → 416.
 * @example parseRange('bytes=0-99', 1000) // { start: 0, end: 99 }
 */
export function parseRange(header: string | undefined, size: number): ByteRange | null | 'unsatisfiable' {
  if (!header) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return null;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  if (m[2] !== '' && Number(m[2]) < start) return null;
  if (start >= size) return 'unsatisfiable';
  return { start, end: m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1) };
}

export function fileRoutes(
  app: FastifyInstance,
  routes: Routes,
  files: FileService,
  authenticate: (req: FastifyRequest) => Promise<void>,
): void {
  const fileIdParam = z.object({ fileId: z.string().describe('the id from the upload (22 characters of base64url)') });

  /** Drops the connection if the transfer stalls; the returned function ends that watch. */
  const watch = (req: FastifyRequest): (() => void) => {
    const socket = req.raw.socket;
    const drop = () => socket.destroy();
    socket.setTimeout(TRANSFER_IDLE_MS);
    socket.once('timeout', drop);
    return () => {
      socket.setTimeout(0);
      socket.off('timeout', drop);
    };
  };

  // Upload and download stream their bodies, so they are plain fastify routes in a scope of
  // their own: there, an octet-stream body is left unread for the handler (no 64 KiB limit).
  void app.register(async (scope) => {
    scope.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null));
    // The body streams to storage for as long as it moves (the idle watch), not under the JSON body deadline.
    scope.post('/v1/files', { config: { streamingBody: true } }, async (req, reply) => {
      let unwatch = () => {};
      try {
        await authenticate(req);
        const sha256 = req.headers['x-content-sha256'];
        if (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256)) {
          throw new AppError('invalid', 'x-content-sha256 must be the hex SHA-256 of the body');
        }
        const length = req.headers['content-length'];
        if (length === undefined || !/^\d+$/.test(length)) throw new AppError('invalid', 'content-length is required');
        const size = Number(length);
        if (size > files.options.maxBytes) throw tooLarge(files.options.maxBytes);
        unwatch = watch(req);
        const r = await files.upload(req.auth!.userId, req.raw, { size, sha256: sha256.toLowerCase() });
        return reply.code(201).send({ id: r.id, size: r.size });
      } catch (err) {
        // Neither read nor wait for the rest of a refused body: answer, then close the connection.
        if (!req.raw.complete) reply.header('connection', 'close');
        throw err;
      } finally {
        unwatch();
      }
    });

    const serve = (withBody: boolean) => async (req: FastifyRequest, reply: FastifyReply) => {
      await authenticate(req);
      const { fileId } = req.params as { fileId: string };
      const file = await files.authorize(req.auth!.userId, fileId); // the same not_found for every "no"
      const etag = `"${file.id}"`; // a file's bytes never change
      const ifRange = req.headers['if-range'];
      const range = ifRange !== undefined && ifRange !== etag ? null : parseRange(req.headers.range, file.size);
      reply.header('accept-ranges', 'bytes').header('etag', etag).header('cache-control', 'private, no-store');
      if (range === 'unsatisfiable') {
        return reply
          .code(416)
          .header('content-range', `bytes */${file.size}`)
          .send({ error: { code: 'invalid', message: 'range not satisfiable', details: { size: file.size } } });
      }
      reply.header('content-type', 'application/octet-stream').header('x-content-type-options', 'nosniff');
      if (range) {
        reply.code(206).header('content-range', `bytes ${range.start}-${range.end}/${file.size}`).header('content-length', range.end - range.start + 1);
      } else {
        reply.code(200).header('content-length', file.size);
      }
      if (!withBody) return reply.send();
      const stream = await files.read(file, range ?? undefined);
      reply.raw.once('close', watch(req));
      return reply.send(stream);
    };
    scope.route({ method: 'GET', url: '/v1/files/:fileId', exposeHeadRoute: false, handler: serve(true) });
    scope.route({ method: 'HEAD', url: '/v1/files/:fileId', handler: serve(false) });
  });

  routes.document({
    method: 'POST',
    url: '/v1/files',
    summary: 'Upload an encrypted file (the raw ciphertext as the body)',
    description:
      'Streams the body to storage while hashing it. Over FILE_MAX_BYTES: 413 before anything is stored. ' +
      'A body whose SHA-256 differs from x-content-sha256, or shorter than content-length: 400, nothing kept. ' +
      'The file stays downloadable by its uploader (and whoever it is shared with) for FILE_RETENTION_DAYS.',
    tag: 'files',
    auth: true,
    headers: z.object({
      'content-type': z.literal('application/octet-stream'),
      'content-length': z.string().describe('required: the body length in bytes'),
      'x-content-sha256': z.string().regex(SHA256_HEX).describe('hex SHA-256 of the body'),
    }),
    requestBody: { contentType: 'application/octet-stream', description: 'the ciphertext' },
    responses: { '201': { description: 'Stored', contentType: 'application/json', schema: z.object({ id: z.string(), size: z.number() }) } },
    errors: ['invalid', 'unauthorized', 'too_large', 'unavailable'],
  });
  for (const method of ['GET', 'HEAD'] as const) {
    routes.document({
      method,
      url: '/v1/files/:fileId',
      summary: method === 'GET' ? 'Download a file (the ciphertext); one byte range allowed' : 'Size and headers of a file, without the bytes',
      description:
        'Allowed to the uploader and to the members of every conversation the file was shared in; ' +
        'anyone else, an unknown id and a malformed id all get the same 404. ' +
        '`Range: bytes=a-b`, `bytes=a-` or `bytes=-n` answers 206 with Content-Range; a range past the end answers 416 ' +
        '(Content-Range `bytes */size`). `If-Range` with the ETag resumes safely.',
      tag: 'files',
      auth: true,
      params: fileIdParam,
      headers: z.object({ range: z.string().optional(), 'if-range': z.string().optional() }),
      responses: {
        '200': {
          description: 'The whole file',
          contentType: 'application/octet-stream',
          headers: { 'content-length': 'bytes', 'accept-ranges': '`bytes`', etag: 'stable per file' },
        },
        '206': { description: 'One range', contentType: 'application/octet-stream', headers: { 'content-range': '`bytes a-b/size`' } },
        '416': {
          description: 'Range not satisfiable (error code `invalid`, `details.size`)',
          contentType: 'application/json',
          headers: { 'content-range': '`bytes */size`' },
        },
      },
      errors: ['unauthorized', 'not_found'],
    });
  }

  routes.add({
    method: 'GET',
    url: '/v1/files/limits',
    summary: "This server's file limits: the largest upload (bytes of ciphertext) and how long files are kept",
    tag: 'files',
    auth: true,
    response: z.object({ maxBytes: z.number(), retentionDays: z.number() }),
    errors: ['unauthorized'],
    handler: async () => ({ maxBytes: files.options.maxBytes, retentionDays: files.options.retentionMs / 86_400_000 }),
  });

  routes.add({
    method: 'POST',
    url: '/v1/files/:fileId/shares',
    summary: 'Let the members of a conversation download a file you can download (idempotent)',
    tag: 'files',
    auth: true,
    params: fileIdParam,
    body: z.union([z.strictObject({ conversationId: z.uuid() }), z.strictObject({ userId: z.uuid() })]),
    response: z.object({ conversationId: z.uuid() }),
    status: 201,
    errors: ['invalid', 'unauthorized', 'not_found'],
    handler: async ({ params, body, req }) => files.share(req.auth!.userId, params.fileId, body),
  });
}
