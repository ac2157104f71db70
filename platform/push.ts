// The push port: sends a device its push (webhook or Web Push), and the checks a push target must pass when registered.
import { ECDH } from 'node:crypto';
import type { Clock } from './clock.js';
import type { Config } from './config.js';
import { WebhookPushSender } from './push.webhook.js';
import { WebPushSender } from './push.webpush.js';

/** A device's push target as stored (push_targets row). */
export interface StoredPushTarget {
  deviceId: string;
  kind: 'webhook' | 'webpush';
  token: string | null;
  endpoint: string | null;
  p256dh: string | null;
  auth: string | null;
}

/** One push to send. `payload`: Web Push only, the JSON text of a PushPayload (protocol/push.ts), at most PUSH_PAYLOAD_MAX bytes. */
export interface PushDelivery {
  target: StoredPushTarget;
  count: number;
  payload?: string;
}

export type PushOutcome =
  | { result: 'sent' }
  /** 404/410: the target is dead; the caller drops it. */
  | { result: 'gone'; status: number }
  /** 429, 5xx, timeout, network error. `retryAfterMs`: what the service asked for (Retry-After), at most RETRY_AFTER_MAX_MS. */
  | { result: 'retry'; status?: number; retryAfterMs?: number }
  /** Other 4xx (and 3xx: redirects are not followed), or a target this adapter cannot serve. */
  | { result: 'failed'; status?: number };

/**
 * Sends one push. Contract (both adapters):
 * - Never throws for anything the remote end or the target does: every result is a PushOutcome.
 * - A target of the other kind, or one missing the fields its kind needs, is `failed` without any request.
 * - Logs nothing: tokens, endpoints and payloads stay out of logs (the caller logs outcomes).
 * - Each request is bounded by the adapter's timeout (a timeout is `retry`).
 */
export interface PushSender {
  readonly kind: 'webhook' | 'webpush';
  send(d: PushDelivery): Promise<PushOutcome>;
}

/** A VAPID key pair (RFC 8292), base64url as `web-push generate-vapid-keys` prints it. */
export interface VapidKeys {
  publicKey: string;
  privateKey: string;
}

/**
 * Largest PushPayload JSON the Web Push adapter carries. RFC 8291 §4 caps the encrypted body
 * at 4096 bytes: a 86-byte header (salt 16, record size 4, key id length 1, the sender's
 * public key 65) plus the plaintext, its 1-byte padding delimiter and the 16-byte AES-GCM tag,
 * so 3993 bytes would fit. We stop at 2969, the plaintext whose body is 3072 bytes, i.e. 4096
 * characters once base64-encoded: it stays inside the limit even for a push service that
 * counts the limit on the encoded form, at the cost of sending a wake-up for messages of
 * roughly 2–3 KB that would otherwise have fitted.
 */
export const PUSH_PAYLOAD_MAX = 2969;

/** The longest Retry-After honoured: a service asking for more gets this (the push's TTL is a day anyway). */
export const RETRY_AFTER_MAX_MS = 3_600_000;

const ENDPOINT_MAX = 2048;

/**
 * Whether a Web Push endpoint may be registered: https (http only when allowHttp), host in
 * `hosts` (`*.x.y` matches subdomains of x.y, not x.y itself), no credentials, no port other
 * than the scheme's default unless allowHttp (local test services listen on any port), length
 * ≤ 2048. The adapter checks again before each send, so narrowing PUSH_ENDPOINT_HOSTS stops
 * pushes to targets registered earlier. Returns null if fine, else the reason.
 * @example checkPushEndpoint('https://fcm.googleapis.com/fcm/send/abc', ['fcm.googleapis.com'], false) // null
 */
export function checkPushEndpoint(endpoint: string, hosts: readonly string[], allowHttp: boolean): string | null {
  if (endpoint.length > ENDPOINT_MAX) return `longer than ${ENDPOINT_MAX} characters`;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return 'not a URL';
  }
  if (url.protocol !== 'https:' && !(allowHttp && url.protocol === 'http:')) return allowHttp ? 'not an http(s) URL' : 'not an https URL';
  if (url.username !== '' || url.password !== '') return 'credentials in the URL';
  if (url.port !== '' && !allowHttp) return 'a non-default port';
  if (!hosts.some((h) => hostMatches(url.hostname, h))) return 'host not allowed (PUSH_ENDPOINT_HOSTS)';
  return null;
}

function hostMatches(hostname: string, pattern: string): boolean {
  if (!pattern.startsWith('*.')) return hostname === pattern;
  const suffix = pattern.slice(1); // ".x.y"
  return hostname.length > suffix.length && hostname.endsWith(suffix);
}

/**
 * Whether a Web Push subscription's keys are usable (RFC 8291 §3.2): `p256dh` an uncompressed
 * P-256 point on the curve, `auth` 16 bytes, both base64url. Checked at registration so a bad
 * key is refused there rather than failing every push. Returns null if fine, else the reason.
 */
export function checkPushKeys(p256dh: string, auth: string): string | null {
  const b64url = /^[A-Za-z0-9_-]+$/;
  if (!b64url.test(p256dh) || !b64url.test(auth)) return 'keys must be base64url';
  const point = Buffer.from(p256dh, 'base64url');
  if (point.length !== 65 || point[0] !== 0x04) return 'p256dh must be an uncompressed P-256 point';
  try {
    ECDH.convertKey(point, 'prime256v1'); // throws for a point not on the curve
  } catch {
    return 'p256dh is not a P-256 point';
  }
  if (Buffer.from(auth, 'base64url').length !== 16) return 'auth must be 16 bytes';
  return null;
}

/**
 * POSTs one push (a push service or a relay) and maps the answer: redirects are not followed,
 * the response body is discarded, and a network error or a timeout is `retry`.
 */
export async function postPush(url: string, init: { headers: Record<string, string>; body?: string | Uint8Array<ArrayBuffer> }, timeoutMs: number, clock: Clock): Promise<PushOutcome> {
  try {
    const res = await fetch(url, { method: 'POST', ...init, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel().catch(() => {});
    return outcomeOf(res.status, res.headers.get('retry-after'), clock.now());
  } catch {
    return { result: 'retry' };
  }
}

/** The outcome of an HTTP answer from a push service or relay (redirects are not followed: 3xx is `failed`). */
export function outcomeOf(status: number, retryAfter: string | null, now: number): PushOutcome {
  if (status >= 200 && status < 300) return { result: 'sent' };
  if (status === 404 || status === 410) return { result: 'gone', status };
  if (status === 429 || status >= 500) {
    const ms = retryAfterMs(retryAfter, now);
    return ms === undefined ? { result: 'retry', status } : { result: 'retry', status, retryAfterMs: ms };
  }
  return { result: 'failed', status };
}

/** A Retry-After header (delay in seconds, or an HTTP date) as milliseconds from `now`, capped at RETRY_AFTER_MAX_MS; undefined if absent or unreadable. */
export function retryAfterMs(header: string | null, now: number): number | undefined {
  const ms = header === null ? undefined : delayMs(header.trim(), now);
  return ms === undefined ? undefined : Math.min(ms, RETRY_AFTER_MAX_MS);
}

function delayMs(value: string, now: number): number | undefined {
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  // An HTTP-date (RFC 9110 §5.6.7): every form starts with the day's name; Date.parse alone would read "-5" as a year.
  if (!/^[A-Za-z]{3}/.test(value)) return undefined;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** The settings createPushSender reads. */
export type PushConfig = Pick<
  Config,
  'PUSH_DRIVER' | 'PUSH_WEBHOOK_URL' | 'PUSH_WEBHOOK_SECRET' | 'VAPID_SUBJECT' | 'PUSH_ENDPOINT_HOSTS' | 'PUSH_ALLOW_HTTP'
>;

/** A PushSender for both kinds of target: each goes to its own adapter, and a kind with no adapter configured is `failed`. */
export interface PushSenders extends PushSender {
  /** Whether targets of this kind can be served (registration of the other kind should be refused). */
  serves(kind: StoredPushTarget['kind']): boolean;
}

/**
 * Builds the adapter the config asks for (null for PUSH_DRIVER=none). Whatever the driver,
 * webhook targets go to the webhook adapter (present when PUSH_WEBHOOK_URL and
 * PUSH_WEBHOOK_SECRET are set) and webpush targets to the Web Push adapter (present when
 * `vapid` is given); PUSH_DRIVER names the kind that must be served (its settings are
 * required) and becomes `kind`. Pass `vapid` under PUSH_DRIVER=webhook only to serve Web Push
 * too (e.g. when VAPID_PUBLIC_KEY is configured).
 * @example const sender = createPushSender(config, await vapidKeys(sql, config))
 */
export function createPushSender(
  config: PushConfig,
  vapid: VapidKeys | null,
  options: { timeoutMs?: number; clock?: Clock } = {},
): PushSenders | null {
  if (config.PUSH_DRIVER === 'none') return null;
  const webhook =
    config.PUSH_WEBHOOK_URL && config.PUSH_WEBHOOK_SECRET
      ? new WebhookPushSender({ url: config.PUSH_WEBHOOK_URL, secret: config.PUSH_WEBHOOK_SECRET, ...options })
      : null;
  const webpush = vapid
    ? new WebPushSender({
        vapid,
        subject: config.VAPID_SUBJECT,
        endpointHosts: config.PUSH_ENDPOINT_HOSTS,
        allowHttp: config.PUSH_ALLOW_HTTP,
        ...options,
      })
    : null;
  if (config.PUSH_DRIVER === 'webpush' && !webpush) throw new Error('PUSH_DRIVER=webpush needs VAPID keys');
  if (config.PUSH_DRIVER === 'webhook' && !webhook) throw new Error('PUSH_DRIVER=webhook needs PUSH_WEBHOOK_URL and PUSH_WEBHOOK_SECRET');
  const byKind = { webhook, webpush };
  return {
    kind: config.PUSH_DRIVER,
    serves: (kind) => byKind[kind] !== null,
    send: (d) => byKind[d.target.kind]?.send(d) ?? Promise.resolve({ result: 'failed' }),
  };
}
