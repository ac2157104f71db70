// Real local push receivers for tests: an RFC 8030 push service (VAPID checked, RFC 8291 payloads decrypted) and a webhook relay.
import { createDecipheriv, createECDH, createPublicKey, hkdfSync, randomBytes, type ECDH } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { jwtVerify } from 'jose';
import { WEBHOOK_SIGNATURE_HEADER, type WebhookPush } from '../../protocol/push.js';
import { verifyWebhook } from '../../platform/push.webhook.js';
import { until } from './wait.js';

/** A subscription as a browser's `PushSubscription.toJSON()` gives it. */
export interface PushSubscriptionJson {
  endpoint: string;
  keys: { p256dh: string; auth: string };
}

/** A push the service accepted: its RFC 8030 headers and the decrypted payload. */
export interface ReceivedPush {
  subscriptionEndpoint: string;
  headers: { ttl: string; topic: string | undefined; urgency: string | undefined };
  /** The decrypted text ('' for a push without a payload). */
  payload: string;
  /** Size of the encrypted body as it arrived (RFC 8291 §4: at most 4096). */
  bodyBytes: number;
  /** The VAPID public key (`k=`) the push was signed with, verified. */
  vapidKey: string;
}

/** A request refused by a receiver, with why (never a scripted answer). */
export interface RefusedRequest {
  endpoint: string;
  status: number;
  reason: string;
}

export interface PushService {
  /** http://127.0.0.1:<port> */
  origin: string;
  /** A fresh subscription: a new P-256 key pair and auth secret; the service keeps the private key. */
  subscribe(): PushSubscriptionJson;
  /** The next `times` POSTs to `endpoint` get this status (and headers) instead of being processed. */
  respond(endpoint: string, status: number, headers?: Record<string, string>, times?: number): void;
  received(endpoint?: string): ReceivedPush[];
  rejected(): RefusedRequest[];
  /** Resolves with the pushes received once there are at least `n` (for `endpoint`, if given). */
  waitFor(n: number, endpoint?: string): Promise<ReceivedPush[]>;
  /** From now on, accepted pushes are recorded but not answered (the sender waits) until `release`. */
  hold(): void;
  /** Answers every held push (201) and stops holding. */
  release(): void;
  close(): Promise<void>;
}

/** A request body is refused beyond this (the encrypted push limit is 4096 bytes). */
const PUSH_BODY_LIMIT = 8192;

/**
 * Starts an RFC 8030 push service on 127.0.0.1: each POST to a subscription's endpoint must
 * carry a valid VAPID `Authorization: vapid t=<ES256 JWT>, k=<key>` (RFC 8292: signed by k,
 * `aud` the endpoint's origin, `exp` in the future and within 24 h, `sub` present; else 401)
 * and a TTL header (else 400); an `aes128gcm` body is decrypted with the subscription's keys
 * (RFC 8291; a body that does not decrypt is 400). Accepted pushes are recorded and answered
 * 201. An unknown endpoint is 404. No web-push code is used here: the receiving side is
 * written from the RFCs with node:crypto and jose.
 */
export async function startPushService(): Promise<PushService> {
  const subscriptions = new Map<string, { ecdh: ECDH; auth: Buffer }>();
  const scripts = new Map<string, Script>();
  const accepted: ReceivedPush[] = [];
  const refused: RefusedRequest[] = [];
  let origin = '';

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const endpoint = `${origin}${req.url ?? ''}`;
    const refuse = (status: number, reason: string) => {
      refused.push({ endpoint, status, reason });
      answer(res, status);
    };
    const sub = subscriptions.get(endpoint);
    if (!sub) return refuse(404, 'unknown endpoint');
    if (req.method !== 'POST') return refuse(405, 'not a POST');
    const body = await readBody(req, PUSH_BODY_LIMIT);
    if (!body) return refuse(413, 'body too large');
    const scripted = scripts.get(endpoint)?.take();
    if (scripted) return answer(res, scripted.status, scripted.headers);
    const vapid = await checkVapid(req.headers.authorization, origin, Math.floor(Date.now() / 1000));
    if ('reason' in vapid) return refuse(401, vapid.reason);
    const ttl = req.headers.ttl;
    if (typeof ttl !== 'string' || !/^\d+$/.test(ttl)) return refuse(400, 'no TTL header');
    let payload = '';
    if (body.length > 0) {
      if (req.headers['content-encoding'] !== 'aes128gcm') return refuse(415, 'not aes128gcm');
      try {
        payload = decryptAes128gcm(body, sub.ecdh.getPrivateKey(), sub.auth).toString('utf8');
      } catch (err) {
        return refuse(400, `does not decrypt: ${(err as Error).message}`);
      }
    }
    accepted.push({
      subscriptionEndpoint: endpoint,
      headers: { ttl, topic: header(req, 'topic'), urgency: header(req, 'urgency') },
      payload,
      bodyBytes: body.length,
      vapidKey: vapid.key,
    });
    const reply = () => answer(res, 201, { location: `${origin}/message/${randomBytes(8).toString('hex')}` });
    if (holding) held.push(reply);
    else reply();
  };
  let holding = false;
  const held: (() => void)[] = [];

  const server = await listen(handle);
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const received = (endpoint?: string) => accepted.filter((p) => endpoint === undefined || p.subscriptionEndpoint === endpoint);
  return {
    origin,
    subscribe: () => {
      const ecdh = createECDH('prime256v1');
      ecdh.generateKeys();
      const auth = randomBytes(16);
      const endpoint = `${origin}/push/${randomBytes(12).toString('base64url')}`;
      subscriptions.set(endpoint, { ecdh, auth });
      return { endpoint, keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: auth.toString('base64url') } };
    },
    respond: (endpoint, status, headers = {}, times = 1) => {
      const script = scripts.get(endpoint) ?? new Script();
      scripts.set(endpoint, script);
      script.add(status, headers, times);
    },
    received,
    rejected: () => [...refused],
    waitFor: async (n, endpoint) => {
      await until(() => received(endpoint).length >= n, () => `${n} pushes (have ${received(endpoint).length}; refused: ${JSON.stringify(refused)})`);
      return received(endpoint);
    },
    hold: () => {
      holding = true;
    },
    release: () => {
      holding = false;
      for (const reply of held.splice(0)) reply();
    },
    close: () => close(server),
  };
}

/**
 * Decrypts an RFC 8291 push message body (RFC 8188 `aes128gcm`, one record) with the user
 * agent's P-256 private key and auth secret; throws if it does not decrypt or is malformed.
 */
export function decryptAes128gcm(body: Buffer, uaPrivateKey: Buffer, authSecret: Buffer): Buffer {
  if (body.length < 21) throw new Error('shorter than the aes128gcm header');
  const salt = body.subarray(0, 16);
  const recordSize = body.readUInt32BE(16);
  const idLength = body[20]!;
  if (idLength !== 65) throw new Error('the key id is not a P-256 public key (RFC 8291 §4)');
  const asPublic = body.subarray(21, 21 + idLength);
  const record = body.subarray(21 + idLength);
  if (record.length < 17) throw new Error('no record');
  if (record.length > recordSize) throw new Error('more than one record (RFC 8291 §4 allows one)');
  const ua = createECDH('prime256v1');
  ua.setPrivateKey(uaPrivateKey);
  const keyInfo = Buffer.concat([Buffer.from('WebPush: info\0'), ua.getPublicKey(), asPublic]);
  const ikm = hkdf(authSecret, ua.computeSecret(asPublic), keyInfo, 32);
  const cek = hkdf(salt, ikm, Buffer.from('Content-Encoding: aes128gcm\0'), 16);
  const nonce = hkdf(salt, ikm, Buffer.from('Content-Encoding: nonce\0'), 12); // record 0: the nonce itself
  const decipher = createDecipheriv('aes-128-gcm', cek, nonce);
  decipher.setAuthTag(record.subarray(record.length - 16));
  const padded = Buffer.concat([decipher.update(record.subarray(0, record.length - 16)), decipher.final()]);
  let end = padded.length - 1;
  while (end >= 0 && padded[end] === 0) end--; // padding zeros after the delimiter
  if (end < 0 || padded[end] !== 0x02) throw new Error('no last-record delimiter');
  return padded.subarray(0, end);
}

function hkdf(salt: Buffer, ikm: Buffer, info: Buffer, length: number): Buffer {
  return Buffer.from(hkdfSync('sha256', ikm, salt, info, length));
}

/** RFC 8292 §2–3: the JWT is ES256, signed by `k`, for this origin, unexpired and at most 24 h ahead, with a `sub`. */
async function checkVapid(authorization: string | undefined, origin: string, nowSeconds: number): Promise<{ key: string } | { reason: string }> {
  const match = /^vapid\s+(.+)$/i.exec(authorization ?? '');
  if (!match) return { reason: 'no vapid authorization' };
  const params = new Map(
    match[1]!.split(',').map((p) => {
      const at = p.indexOf('=');
      return [p.slice(0, at).trim(), p.slice(at + 1).trim()] as const;
    }),
  );
  const token = params.get('t');
  const k = params.get('k');
  if (!token || !k) return { reason: 'vapid t= or k= missing' };
  const raw = Buffer.from(k, 'base64url');
  if (raw.length !== 65 || raw[0] !== 0x04) return { reason: 'k is not an uncompressed P-256 key' };
  try {
    const key = createPublicKey({
      key: { kty: 'EC', crv: 'P-256', x: raw.subarray(1, 33).toString('base64url'), y: raw.subarray(33).toString('base64url') },
      format: 'jwk',
    });
    const { payload } = await jwtVerify(token, key, { algorithms: ['ES256'], audience: origin, requiredClaims: ['exp', 'sub'] });
    if (payload.exp! > nowSeconds + 86_400) return { reason: 'exp more than 24 h ahead' };
    if (typeof payload.sub !== 'string' || !/^(mailto:|https:)/.test(payload.sub)) return { reason: 'sub is not a mailto: or https: URL' };
  } catch (err) {
    return { reason: `vapid JWT refused: ${(err as Error).message}` };
  }
  return { key: k };
}

/** A webhook the receiver accepted, with its bytes as they arrived (for `replay`). */
export interface AcceptedWebhook {
  push: WebhookPush;
  rawBody: Buffer;
  signature: string;
}

export interface WebhookReceiver {
  /** Where to POST (PUSH_WEBHOOK_URL). */
  url: string;
  /** The next `times` requests that pass the checks get this status (and headers) instead of being accepted. */
  respond(status: number, headers?: Record<string, string>, times?: number): void;
  received(): AcceptedWebhook[];
  rejected(): RefusedRequest[];
  waitFor(n: number): Promise<AcceptedWebhook[]>;
  /** POSTs a recorded request again, byte for byte (body and signature); resolves with the status. */
  replay(last: AcceptedWebhook): Promise<number>;
  close(): Promise<void>;
}

/**
 * Starts a webhook relay on 127.0.0.1 as an app would run one: checks the signature with
 * verifyWebhook (401 if bad, malformed or stale), refuses an `id` it has already seen with 409
 * (ids are remembered for twice the tolerance: a `t` may be up to the tolerance ahead, and is
 * accepted until the tolerance after it), records accepted pushes and answers 200.
 */
export async function startWebhookReceiver(secret: string, toleranceMs = 300_000): Promise<WebhookReceiver> {
  const seen = new Map<string, number>(); // id → forget after (epoch ms)
  const script = new Script();
  const accepted: AcceptedWebhook[] = [];
  const refused: RefusedRequest[] = [];
  let url = '';

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const refuse = (status: number, reason: string) => {
      refused.push({ endpoint: url, status, reason });
      answer(res, status);
    };
    if (req.method !== 'POST') return refuse(405, 'not a POST');
    const rawBody = await readBody(req, 65_536);
    if (!rawBody) return refuse(413, 'body too large');
    const signature = header(req, WEBHOOK_SIGNATURE_HEADER);
    const now = Date.now();
    const verdict = verifyWebhook(secret, signature, rawBody, now, toleranceMs);
    if (verdict !== 'ok') return refuse(401, verdict);
    let push: WebhookPush;
    try {
      push = JSON.parse(rawBody.toString('utf8')) as WebhookPush;
    } catch {
      return refuse(400, 'not JSON');
    }
    for (const [id, forgetAt] of seen) if (forgetAt < now) seen.delete(id);
    if (typeof push.id !== 'string' || seen.has(push.id)) return refuse(409, 'replay');
    seen.set(push.id, now + 2 * toleranceMs);
    const scripted = script.take();
    if (scripted) return answer(res, scripted.status, scripted.headers);
    accepted.push({ push, rawBody, signature: signature! });
    answer(res, 200);
  };

  const server = await listen(handle);
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/push`;
  return {
    url,
    respond: (status, headers = {}, times = 1) => script.add(status, headers, times),
    received: () => [...accepted],
    rejected: () => [...refused],
    waitFor: async (n) => {
      await until(() => accepted.length >= n, () => `${n} webhooks (have ${accepted.length}; refused: ${JSON.stringify(refused)})`);
      return [...accepted];
    },
    replay: async (last) => {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', [WEBHOOK_SIGNATURE_HEADER]: last.signature },
        body: new Uint8Array(last.rawBody),
      });
      await res.body?.cancel();
      return res.status;
    },
    close: () => close(server),
  };
}

/** Scripted answers, consumed one per request, in order. */
class Script {
  private readonly queue: { status: number; headers: Record<string, string> }[] = [];
  add(status: number, headers: Record<string, string>, times: number): void {
    for (let i = 0; i < times; i++) this.queue.push({ status, headers });
  }
  take(): { status: number; headers: Record<string, string> } | undefined {
    return this.queue.shift();
  }
}

function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function answer(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  if (res.destroyed) return; // the sender went away (a held push whose process was killed)
  res.writeHead(status, headers).end();
}

/** The whole body, or null if it passes `limit` bytes. */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) return null;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function listen(handle: (req: IncomingMessage, res: ServerResponse) => Promise<void>): Promise<Server> {
  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) answer(res, 500);
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return server;
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
