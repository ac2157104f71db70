// The one error type of the platform: a stable string code, a temporary flag and a cause.

/** Stable error codes. Clients branch on these; they are documented in docs/protocol.md. */
export const ERROR_CODES = [
  'invalid', // the request or frame is malformed or fails validation
  'unauthorized', // missing, bad or expired credentials
  'forbidden', // authenticated but not allowed (rarely used: strangers get not_found)
  'not_found', // no such thing, or not visible to the caller
  'conflict', // the thing already exists (e.g. a taken username)
  'devices_changed', // a send did not carry one ciphertext per current device
  'rate_limited', // too many requests or frames; retry after `retryAfterMs`
  'too_large', // the payload is over the configured limit
  'limit_exceeded', // a configured count limit would be passed (e.g. group size)
  'timeout', // the request (or its body) did not arrive in time
  'unavailable', // a backing service is down; retry with backoff
  'internal', // a bug; logged with its cause
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

/** Codes that are temporary unless said otherwise: the same request may succeed later. */
const TEMPORARY_BY_DEFAULT: ReadonlySet<ErrorCode> = new Set(['rate_limited', 'unavailable', 'internal', 'timeout']);

export interface AppErrorOptions {
  temporary?: boolean;
  cause?: unknown;
  /** Machine-readable details sent to the client (never secrets or plaintext). */
  details?: Record<string, unknown>;
}

/**
 * The platform's error. Adapters wrap driver errors in it; transports map `code` to an
 * HTTP status or an error frame in one place each.
 *
 * @example throw new AppError('not_found', 'no such user')
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly temporary: boolean;
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: AppErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.temporary = options.temporary ?? TEMPORARY_BY_DEFAULT.has(code);
    this.details = options.details;
  }
}

/** Turns anything thrown into an AppError; unknown errors become `internal`. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  return new AppError('internal', 'internal error', { cause: err });
}

/** HTTP status for each code: the only place REST maps errors to statuses. */
export const HTTP_STATUS: Record<ErrorCode, number> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  devices_changed: 409,
  too_large: 413,
  limit_exceeded: 409,
  timeout: 408,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};
