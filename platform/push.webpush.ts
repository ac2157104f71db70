// The Web Push adapter: RFC 8030 delivery of an RFC 8291-encrypted payload with RFC 8292 VAPID, through `web-push`.
import webPush from 'web-push';
import { PUSH_COLLAPSE_KEY } from '../protocol/push.js';
import { systemClock, type Clock } from './clock.js';
import { checkPushEndpoint, postPush, PUSH_PAYLOAD_MAX, type PushDelivery, type PushOutcome, type PushSender, type VapidKeys } from './push.js';

export interface WebPushOptions {
  vapid: VapidKeys;
  /** VAPID_SUBJECT: the contact push services may use (mailto: or https:). */
  subject: string;
  /** PUSH_ENDPOINT_HOSTS and PUSH_ALLOW_HTTP: checked again before each send. */
  endpointHosts: readonly string[];
  allowHttp: boolean;
  /** Whole-request timeout; default 5 s. */
  timeoutMs?: number;
  /** How long the push service keeps an undelivered push; default a day (a later push replaces it anyway, by Topic). */
  ttlSeconds?: number;
  clock?: Clock;
}

/**
 * Sends each push with `Topic: parley-new-messages` (a newer push replaces an undelivered
 * one), `Urgency: high` and the payload encrypted with aes128gcm. `web-push` does all the
 * cryptography and builds the request (generateRequestDetails); the POST itself goes through
 * Node's fetch rather than web-push's sendNotification, because sendNotification speaks only
 * https (a local push service in tests is http, PUSH_ALLOW_HTTP) and its timeout is a socket
 * idle timeout, not a bound on the whole request. Redirects are not followed.
 */
export class WebPushSender implements PushSender {
  readonly kind = 'webpush' as const;
  private readonly timeoutMs: number;
  private readonly ttlSeconds: number;
  private readonly clock: Clock;

  constructor(private readonly options: WebPushOptions) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.ttlSeconds = options.ttlSeconds ?? 86_400;
    this.clock = options.clock ?? systemClock;
  }

  async send(d: PushDelivery): Promise<PushOutcome> {
    const request = this.request(d);
    if (!request) return { result: 'failed' };
    // The body as a plain Uint8Array copy, as fetch's types want it.
    return postPush(request.endpoint, { headers: request.headers, ...(request.body ? { body: new Uint8Array(request.body) } : {}) }, this.timeoutMs, this.clock);
  }

  /** The encrypted, VAPID-signed request, or null for a target or payload this adapter cannot send. */
  private request(d: PushDelivery): { endpoint: string; headers: Record<string, string>; body: Buffer | null } | null {
    const { endpoint, p256dh, auth, kind } = d.target;
    if (kind !== 'webpush' || !endpoint || !p256dh || !auth) return null;
    if (checkPushEndpoint(endpoint, this.options.endpointHosts, this.options.allowHttp) !== null) return null;
    if (d.payload !== undefined && Buffer.byteLength(d.payload) > PUSH_PAYLOAD_MAX) return null;
    let details: ReturnType<typeof webPush.generateRequestDetails>;
    try {
      details = webPush.generateRequestDetails({ endpoint, keys: { p256dh, auth } }, d.payload, {
        vapidDetails: { subject: this.options.subject, ...this.options.vapid },
        TTL: this.ttlSeconds,
        topic: PUSH_COLLAPSE_KEY,
        urgency: 'high',
        contentEncoding: 'aes128gcm',
      });
    } catch {
      return null; // keys web-push cannot use (registration checks them; rows from before that)
    }
    // fetch sets Content-Length itself from the body.
    const headers = Object.fromEntries(
      Object.entries(details.headers)
        .filter(([name]) => name.toLowerCase() !== 'content-length')
        .map(([name, value]) => [name, String(value)]),
    );
    return { endpoint, headers, body: details.body };
  }
}
