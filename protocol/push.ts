// Push notifications on the wire: how a device registers where its pushes go, and what a push carries (docs/protocol.md §Push).
import type { MsgFrame } from './frames.js';

/**
 * Where a device's pushes go (`PUT /v1/devices/{id}/push`):
 * - `webhook`: the server POSTs to the app's own push relay (PUSH_WEBHOOK_URL), naming this
 *   device and the app's opaque `token` for it (e.g. the FCM or APNs token the relay uses).
 * - `webpush`: an RFC 8030 push subscription, as a browser's `PushSubscription.toJSON()` gives it.
 */
export type PushTarget =
  | { kind: 'webhook'; token: string }
  | { kind: 'webpush'; endpoint: string; keys: { p256dh: string; auth: string } };

/** The Web Push topic (RFC 8030 §5.4) and webhook collapse key: a newer push replaces an undelivered older one. */
export const PUSH_COLLAPSE_KEY = 'parley-new-messages';

/**
 * What a Web Push carries once the device decrypted it (RFC 8291), as JSON. Never plaintext,
 * never names: `message` carries this device's own end-to-end ciphertext of the newest message
 * (the SDK's `handlePush` decrypts it); `wake` says only that messages wait (too big to carry,
 * or a system message). `count`: how many messages this push stands for (coalesced).
 */
export type PushPayload = { v: 1; kind: 'message'; count: number; msg: MsgFrame } | { v: 1; kind: 'wake'; count: number };

/**
 * The JSON body the webhook adapter POSTs. Headers: `Parley-Signature: t=<epoch ms>,v1=<hex
 * HMAC-SHA256(secret, "<t>.<body>")>`. A relay checks the signature, refuses a `t` older than
 * its tolerance, and refuses an `id` it has seen within that tolerance (replays).
 */
export interface WebhookPush {
  v: 1;
  /** Unique per POST (a retry of the same push gets a new one). */
  id: string;
  device: string;
  token: string;
  collapseKey: string;
  count: number;
  sentAt: number;
}

/** The header carrying the webhook's signature. */
export const WEBHOOK_SIGNATURE_HEADER = 'parley-signature';
