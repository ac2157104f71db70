// The webhook push adapter: a signed JSON POST to the app's own push relay, and the signature check a relay runs.
import { createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { PUSH_COLLAPSE_KEY, WEBHOOK_SIGNATURE_HEADER, type WebhookPush } from '../protocol/push.js';
import { systemClock, type Clock } from './clock.js';
import { postPush, type PushDelivery, type PushOutcome, type PushSender } from './push.js';

export interface WebhookPushOptions {
  /** PUSH_WEBHOOK_URL. */
  url: string;
  /** PUSH_WEBHOOK_SECRET: the HMAC-SHA256 key. */
  secret: string;
  /** Whole-request timeout; default 5 s. */
  timeoutMs?: number;
  /** For `t` and `sentAt`; default the system clock. */
  clock?: Clock;
}

/**
 * POSTs a WebhookPush (protocol/push.ts) per push, signed `t=<epoch ms>,v1=<hex HMAC>` over
 * "<t>.<body>". Each POST, retries included, gets a fresh `id`, so a relay that remembers ids
 * refuses only true replays. Redirects are not followed (a 3xx is `failed`): a signed push
 * goes to the configured URL or nowhere.
 */
export class WebhookPushSender implements PushSender {
  readonly kind = 'webhook' as const;
  private readonly timeoutMs: number;
  private readonly clock: Clock;

  constructor(private readonly options: WebhookPushOptions) {
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.clock = options.clock ?? systemClock;
  }

  async send(d: PushDelivery): Promise<PushOutcome> {
    const { target } = d;
    if (target.kind !== 'webhook' || !target.token) return { result: 'failed' };
    const t = this.clock.now();
    const push: WebhookPush = { v: 1, id: randomUUID(), device: target.deviceId, token: target.token, collapseKey: PUSH_COLLAPSE_KEY, count: d.count, sentAt: t };
    const body = JSON.stringify(push);
    const headers = { 'content-type': 'application/json', [WEBHOOK_SIGNATURE_HEADER]: signWebhook(this.options.secret, t, body) };
    return postPush(this.options.url, { headers, body }, this.timeoutMs, this.clock);
  }
}

/** The signature header's value for `body` sent at `t` (epoch ms). */
export function signWebhook(secret: string, t: number, body: string | Uint8Array): string {
  return `t=${t},v1=${hmac(secret, String(t), body).toString('hex')}`;
}

function hmac(secret: string, t: string, body: string | Uint8Array): Buffer {
  return createHmac('sha256', secret).update(`${t}.`).update(body).digest();
}

/** Why a webhook was refused, or 'ok'. */
export type WebhookVerdict = 'ok' | 'malformed' | 'bad_signature' | 'stale';

/**
 * Checks a webhook as a relay receives it: `signatureHeader` is the parley-signature value,
 * `rawBody` the body exactly as received (bytes, before any JSON parsing). The signature is
 * compared in constant time; a `t` more than `toleranceMs` from `now` (either way) is
 * `stale`. Any `v1=` may match (a relay rotating secrets checks each). Replays within the
 * tolerance are the relay's to refuse: it remembers each accepted body's `id` that long.
 * @example if (verifyWebhook(secret, req.headers['parley-signature'], raw, Date.now(), 300_000) !== 'ok') reply(401)
 */
export function verifyWebhook(
  secret: string,
  signatureHeader: string | undefined,
  rawBody: string | Uint8Array,
  now: number,
  toleranceMs: number,
): WebhookVerdict {
  const parsed = parseSignature(signatureHeader);
  if (!parsed) return 'malformed';
  const expected = hmac(secret, parsed.t, rawBody);
  const matches = parsed.v1.some((sig) => timingSafeEqual(Buffer.from(sig, 'hex'), expected));
  if (!matches) return 'bad_signature';
  return Math.abs(now - Number(parsed.t)) > toleranceMs ? 'stale' : 'ok';
}

function parseSignature(header: string | undefined): { t: string; v1: string[] } | null {
  if (header === undefined || header.length > 1024) return null;
  let t: string | undefined;
  const v1: string[] = [];
  for (const part of header.split(',')) {
    const [key, value] = part.trim().split('=', 2);
    if (key === 't' && value !== undefined && /^\d{1,16}$/.test(value)) t = value;
    else if (key === 'v1' && value !== undefined && /^[0-9a-f]{64}$/i.test(value)) v1.push(value);
  }
  return t !== undefined && v1.length > 0 ? { t, v1 } : null;
}
