// The only reader of environment variables: validates them at start-up and names the bad setting.
import { z } from 'zod';

const int = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce.number().int().min(min).max(max).default(def);

/** Every setting, its default and its bounds. Documented in README.md ("Configuration"). */
const schema = z
  .object({
    PORT: int(8080, 0, 65535),
    HOST: z.string().min(1).default('0.0.0.0'),
    DATA_DIR: z.string().min(1).default('./data'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    GATEWAY_ID: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only, at most 64')
      .optional(),
    SQL_DRIVER: z.enum(['pglite', 'postgres']).default('pglite'),
    DATABASE_URL: z.string().url().optional(),
    SQL_POOL_SIZE: int(10, 1, 200),
    PRESENCE_DRIVER: z.enum(['memory', 'redis']).default('memory'),
    REDIS_URL: z.string().url().optional(),
    REDIS_KEY_PREFIX: z.string().regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'letters, digits, _ : . - only').default('parley:'),
    JWT_SECRET: z.string().min(32, 'at least 32 characters').optional(),
    /**
     * Browser origins allowed besides the server's own: REST answers CORS for them, and the
     * WebSocket and Socket.IO transports accept them. Comma-separated exact origins
     * (`https://app.example.com,http://localhost:5173`); default none.
     */
    CORS_ORIGINS: z
      .string()
      .default('')
      .transform((v) => v.split(',').map((o) => o.trim()).filter((o) => o.length > 0))
      .pipe(z.array(z.string().regex(/^https?:\/\/[^/\s,]+$/, 'origins like https://app.example.com (scheme, host, optional port; no path)'))),
    /**
     * The built web client (`npm run build` writes it to dist/web), served at `/` with a strict
     * Content-Security-Policy. Empty: no web client (`/` answers 404). Default: dist/web beside the server.
     */
    WEB_DIR: z.string().optional(),
    TOKEN_TTL_SECONDS: int(86_400, 60),
    AUTH_RATE_PER_MINUTE: int(120, 1),
    /** Failed logins for one username answered at once; each further attempt waits (accounts/login-backoff.ts). */
    LOGIN_FAILURES_FREE: int(5, 1, 1000),
    /** The longest wait between login attempts for one username (the backoff doubles from 1 s up to this). */
    LOGIN_BACKOFF_MAX_MS: int(900_000, 1000, 86_400_000),
    /** Devices per user; a login that would create one more is refused (5 linked devices plus the phone). */
    MAX_DEVICES_PER_USER: int(6, 1, 100),
    /** Users one user may block; one more is refused with `limit_exceeded`. */
    BLOCKS_MAX_PER_USER: int(1000, 1, 100_000),
    KEY_FETCH_RATE_PER_MINUTE: int(300, 1),
    WS_MAX_PAYLOAD_BYTES: int(262_144, 1024, 16 * 1024 * 1024),
    WS_RATE_PER_SECOND: int(200, 1),
    WS_RATE_BURST: int(400, 1),
    /** Frames per second per user, shared by all of the user's connections on a gateway. */
    WS_USER_RATE_PER_SECOND: int(300, 1),
    WS_USER_RATE_BURST: int(600, 1),
    /** WebSocket connections a user may open per minute (on one gateway; a bucket of the same size). */
    WS_CONNECT_RATE_PER_MINUTE: int(30, 1),
    /** Users one connection may watch the presence of. */
    PRESENCE_WATCH_MAX: int(1024, 1, 100_000),
    /** A JSON request body that has not fully arrived this long after the request began is answered 408 and dropped. */
    HTTP_BODY_TIMEOUT_MS: int(10_000, 100, 600_000),
    /** Request headers that have not fully arrived in this time: the connection is dropped (Node's headersTimeout). */
    HTTP_HEADERS_TIMEOUT_MS: int(10_000, 100, 600_000),
    /** A whole request (headers and body, uploads included) must arrive within this (Node's requestTimeout; 0: none). */
    HTTP_REQUEST_TIMEOUT_MS: int(300_000, 0, 86_400_000),
    HEARTBEAT_INTERVAL_MS: int(25_000, 100),
    PRESENCE_TTL_MS: int(75_000, 1000),
    SEND_BATCH_MAX: int(256, 1, 10_000),
    /** Default 1: one commit in flight gathers the biggest batches (measured: 4 on PostgreSQL doubled p99 at 2,000 msg/s). */
    SEND_COMMIT_SHARDS: z.coerce.number().int().min(1).max(64).optional(),
    /** Default 0: a batch that follows another waits one event-loop turn (sends read in that turn join it); n: also up to n ms while few sends wait. */
    SEND_COMMIT_LINGER_MS: z.coerce.number().int().min(0).max(50).optional(),
    GROUP_LOG_DRIVER: z.enum(['memory', 'kafka']).default('memory'),
    KAFKA_BROKERS: z
      .string()
      .regex(/^[A-Za-z0-9_.-]+:\d+(,[A-Za-z0-9_.-]+:\d+)*$/, 'host:port[,host:port…]')
      .optional(),
    KAFKA_TOPIC: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/, 'letters, digits, . _ - only').default('parley.group-messages'),
    KAFKA_PARTITIONS: int(8, 1, 1024),
    /** How long the group log keeps records (group message ciphertext) when it creates the topic. */
    KAFKA_RETENTION_HOURS: int(24, 1, 8760),
    FANOUT_WORKER: z.enum(['true', 'false']).default('true').transform((v) => v === 'true'),
    GROUP_MAX_MEMBERS: int(1024, 2, 100_000),
    GROUP_RECEIPT_INTERVAL_MS: int(250, 10, 60_000),
    GROUP_TYPING_MAX_MEMBERS: int(256, 0, 100_000),
    GROUP_BROADCAST_MIN_MEMBERS: int(100, 1, 1_000_000),
    /** Largest upload, in bytes of ciphertext. At most 5 GiB: what one S3 PUT may write. */
    FILE_MAX_BYTES: int(104_857_600, 1, 5 * 1024 ** 3),
    /** Days an uploaded file stays downloadable; then the retention sweep deletes it. */
    FILE_RETENTION_DAYS: int(30, 1, 36_500),
    /** How often each process runs the retention sweep. */
    FILE_SWEEP_INTERVAL_MS: int(600_000, 1000),
    /**
     * Message retention (messaging/purge.ts): `acked` (default) erases each device's copy once
     * that device acknowledged it, the message once every device it was for did, and anything
     * older than MESSAGE_RETENTION_DAYS; `days` keeps messages until MESSAGE_RETENTION_DAYS
     * (a device may sync again what it already had); `off` keeps everything (disappearing
     * messages are still erased at their expiry).
     */
    MESSAGE_RETENTION: z.enum(['acked', 'days', 'off']).default('acked'),
    MESSAGE_RETENTION_DAYS: int(30, 1, 36_500),
    /** How often each process runs the message purge (acked, old and expired messages). */
    MESSAGE_SWEEP_INTERVAL_MS: int(60_000, 100),
    /** Rows one purge run erases at most (per kind of purge), so a run stays short. */
    MESSAGE_SWEEP_BATCH: int(5_000, 1, 1_000_000),
    /** Push adapter (notifications/): `webpush` (default; VAPID keys generated and stored when unset), `webhook`, or `none`. */
    PUSH_DRIVER: z.enum(['webpush', 'webhook', 'none']).default('webpush'),
    /** At most one push per device per this interval (later messages are coalesced into it). */
    PUSH_COALESCE_MS: int(10_000, 0, 3_600_000),
    /** A message waits this long for the device to acknowledge it live before it is pushed (0: push at once). */
    PUSH_DELAY_MS: int(2_000, 0, 600_000),
    /** How long a process owns a push it claimed; a push still claimed after that (its process died) is sent by another. */
    PUSH_LEASE_MS: int(30_000, 1000, 3_600_000),
    /** How often each process looks for pushes that are due. */
    PUSH_POLL_MS: int(500, 10, 60_000),
    /** Webhook adapter: where pushes are POSTed (the app's own push relay) and the HMAC-SHA256 secret they are signed with. */
    PUSH_WEBHOOK_URL: z.string().url().optional(),
    PUSH_WEBHOOK_SECRET: z.string().min(32, 'at least 32 characters').optional(),
    /** Web Push: VAPID keys (base64url, as `web-push generate-vapid-keys` prints) and the contact (mailto: or https: URL). */
    VAPID_PUBLIC_KEY: z.string().regex(/^[A-Za-z0-9_-]{80,100}$/, 'a base64url P-256 public key').optional(),
    VAPID_PRIVATE_KEY: z.string().regex(/^[A-Za-z0-9_-]{40,50}$/, 'a base64url P-256 private key').optional(),
    VAPID_SUBJECT: z.string().regex(/^(mailto:|https:\/\/)\S+$/, 'a mailto: or https: URL').default('mailto:admin@localhost'),
    /**
     * Hosts a Web Push endpoint may point at (comma-separated; `*.example.com` matches
     * subdomains). The default is the browsers' push services; an endpoint elsewhere is refused
     * when registered, so a client cannot make the server POST to arbitrary hosts.
     */
    PUSH_ENDPOINT_HOSTS: z
      .string()
      .default('fcm.googleapis.com,updates.push.services.mozilla.com,*.push.services.mozilla.com,*.notify.windows.com,web.push.apple.com')
      .transform((v) => v.split(',').map((h) => h.trim().toLowerCase()).filter((h) => h.length > 0)),
    /** Allows http:// (not only https://) Web Push endpoints: for tests against a local push service only. */
    PUSH_ALLOW_HTTP: z.enum(['true', 'false']).default('false').transform((v) => v === 'true'),
    /** Delete for everyone: how long after sending the sender's device may erase a message for the devices that have not fetched it. */
    MESSAGE_UNSEND_WINDOW_SECONDS: int(172_800, 1, 31_536_000),
    /** Reports (`POST /v1/reports`) one user may file per hour (per gateway process; a bucket of the same size). */
    REPORT_RATE_PER_HOUR: int(20, 1, 10_000),
    /**
     * The operator's bearer token for `GET /v1/admin/reports…` (compared in constant time).
     * Unset: the operator API is off (its paths answer 404).
     */
    ADMIN_TOKEN: z.string().min(32, 'at least 32 characters').optional(),
    BLOB_DRIVER: z.enum(['disk', 's3']).default('disk'),
    /** Unset: AWS itself; set (e.g. http://127.0.0.1:9000) for an S3-compatible service, with path-style URLs. */
    S3_ENDPOINT: z.string().url().optional(),
    S3_REGION: z.string().regex(/^[a-z0-9-]{1,32}$/, 'lowercase letters, digits and - only').default('us-east-1'),
    S3_BUCKET: z
      .string()
      .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'an S3 bucket name: 3-63 of a-z 0-9 . -')
      .optional(),
    S3_ACCESS_KEY_ID: z.string().min(1).optional(),
    S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.SQL_DRIVER === 'postgres' && !c.DATABASE_URL) {
      ctx.addIssue({ code: 'custom', path: ['DATABASE_URL'], message: 'required when SQL_DRIVER=postgres' });
    }
    if (c.PRESENCE_DRIVER === 'redis' && !c.REDIS_URL) {
      ctx.addIssue({ code: 'custom', path: ['REDIS_URL'], message: 'required when PRESENCE_DRIVER=redis' });
    }
    if (c.GROUP_LOG_DRIVER === 'kafka' && !c.KAFKA_BROKERS) {
      ctx.addIssue({ code: 'custom', path: ['KAFKA_BROKERS'], message: 'required when GROUP_LOG_DRIVER=kafka' });
    }
    if (c.BLOB_DRIVER === 's3') {
      for (const key of ['S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'] as const) {
        if (!c[key]) ctx.addIssue({ code: 'custom', path: [key], message: 'required when BLOB_DRIVER=s3' });
      }
    }
    if (c.PUSH_DRIVER === 'webhook') {
      for (const key of ['PUSH_WEBHOOK_URL', 'PUSH_WEBHOOK_SECRET'] as const) {
        if (!c[key]) ctx.addIssue({ code: 'custom', path: [key], message: 'required when PUSH_DRIVER=webhook' });
      }
    }
    if ((c.VAPID_PUBLIC_KEY === undefined) !== (c.VAPID_PRIVATE_KEY === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['VAPID_PRIVATE_KEY'], message: 'set VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY together' });
    }
    if (c.PRESENCE_TTL_MS <= c.HEARTBEAT_INTERVAL_MS) {
      ctx.addIssue({ code: 'custom', path: ['PRESENCE_TTL_MS'], message: 'must be longer than HEARTBEAT_INTERVAL_MS' });
    }
  });

export type Config = z.infer<typeof schema>;

/** Thrown when the environment is invalid; the message names each bad setting. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * Reads and validates the configuration.
 * @example const config = loadConfig(process.env)
 */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = schema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.') || '(config)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  return parsed.data;
}
