// The Web Push adapter against a real local RFC 8030 push service; the service's own decryption against RFC 8291's example; VAPID keys kept in the database.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PUSH_COLLAPSE_KEY, type PushPayload } from '../protocol/push.js';
import { decryptAes128gcm, startPushService, type PushService, type PushSubscriptionJson } from '../test/support/push-service.js';
import { ManualClock } from './clock.js';
import { migrate } from './migrations.js';
import { PUSH_PAYLOAD_MAX, type StoredPushTarget, type VapidKeys } from './push.js';
import { vapidKeys } from './push.vapid.js';
import { WebPushSender } from './push.webpush.js';
import { PgliteSql } from './sql.pglite.js';

const target = (sub: PushSubscriptionJson, endpoint = sub.endpoint): StoredPushTarget => ({
  deviceId: 'device-1',
  kind: 'webpush',
  token: null,
  endpoint,
  p256dh: sub.keys.p256dh,
  auth: sub.keys.auth,
});

let sql: PgliteSql;
let keys: VapidKeys;
let service: PushService;
let sender: WebPushSender;
const clock = new ManualClock();

beforeAll(async () => {
  sql = await PgliteSql.open();
  await migrate(sql);
  keys = await vapidKeys(sql, {});
  service = await startPushService();
  sender = new WebPushSender({ vapid: keys, subject: 'mailto:ops@example.com', endpointHosts: ['127.0.0.1'], allowHttp: true, clock });
});

afterAll(async () => {
  await service?.close();
  await sql?.close();
});

describe('WebPushSender → a local push service', () => {
  it('delivers the payload RFC 8291-encrypted and VAPID-signed, with Topic, TTL and Urgency', async () => {
    const sub = service.subscribe();
    const payload = JSON.stringify({ v: 1, kind: 'wake', count: 3 } satisfies PushPayload);
    expect(await sender.send({ target: target(sub), count: 3, payload })).toEqual({ result: 'sent' });
    const [push] = await service.waitFor(1, sub.endpoint);
    expect(push!.payload).toBe(payload);
    expect(push!.headers).toEqual({ ttl: '86400', topic: PUSH_COLLAPSE_KEY, urgency: 'high' });
    expect(push!.vapidKey).toBe(keys.publicKey);
    expect(service.rejected()).toEqual([]);
  });

  it('carries a payload of PUSH_PAYLOAD_MAX bytes within the 4096-byte limit, and refuses one byte more without sending', async () => {
    const sub = service.subscribe();
    const largest = 'é'.repeat((PUSH_PAYLOAD_MAX - 1) / 2) + 'x'; // multi-byte: the limit is in bytes
    expect(Buffer.byteLength(largest)).toBe(PUSH_PAYLOAD_MAX);
    expect(await sender.send({ target: target(sub), count: 1, payload: largest })).toEqual({ result: 'sent' });
    const [push] = await service.waitFor(1, sub.endpoint);
    expect(push!.payload).toBe(largest);
    expect(push!.bodyBytes).toBeLessThanOrEqual(4096);
    expect(await sender.send({ target: target(sub), count: 1, payload: `${largest}x` })).toEqual({ result: 'failed' });
    expect(service.received(sub.endpoint)).toHaveLength(1);
  });

  it('sends a push without a payload', async () => {
    const sub = service.subscribe();
    expect(await sender.send({ target: target(sub), count: 1 })).toEqual({ result: 'sent' });
    expect((await service.waitFor(1, sub.endpoint))[0]!.payload).toBe('');
  });

  it('maps the service’s answers: 410 and 404 gone, 500 and 429 retry (with Retry-After), other 4xx failed', async () => {
    const sub = service.subscribe();
    const send = () => sender.send({ target: target(sub), count: 1, payload: '{}' });
    service.respond(sub.endpoint, 410);
    expect(await send()).toEqual({ result: 'gone', status: 410 });
    service.respond(sub.endpoint, 404);
    expect(await send()).toEqual({ result: 'gone', status: 404 });
    service.respond(sub.endpoint, 500);
    expect(await send()).toEqual({ result: 'retry', status: 500 });
    service.respond(sub.endpoint, 429, { 'retry-after': '120' });
    expect(await send()).toEqual({ result: 'retry', status: 429, retryAfterMs: 120_000 });
    service.respond(sub.endpoint, 503, { 'retry-after': new Date(clock.now() + 30_000).toUTCString() });
    expect(await send()).toEqual({ result: 'retry', status: 503, retryAfterMs: 30_000 });
    service.respond(sub.endpoint, 413);
    expect(await send()).toEqual({ result: 'failed', status: 413 });
    service.respond(sub.endpoint, 301, { location: 'http://127.0.0.1:1/elsewhere' });
    expect(await send()).toEqual({ result: 'failed', status: 301 });
    expect(service.received(sub.endpoint)).toEqual([]);
  });

  it('an endpoint the service does not know is gone', async () => {
    const sub = service.subscribe();
    expect(await sender.send({ target: target(sub, `${service.origin}/push/unknown`), count: 1, payload: '{}' })).toEqual({ result: 'gone', status: 404 });
  });

  it('an unreachable endpoint or one that never answers is retry', async () => {
    const sub = service.subscribe();
    const closed = await listening(createServer());
    const port = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    expect(await sender.send({ target: target(sub, `http://127.0.0.1:${port}/push/x`), count: 1, payload: '{}' })).toEqual({ result: 'retry' });

    const silent = await listening(createServer(() => {})); // accepts, never answers
    const impatient = new WebPushSender({ vapid: keys, subject: 'mailto:ops@example.com', endpointHosts: ['127.0.0.1'], allowHttp: true, timeoutMs: 200 });
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}/push/x`;
    expect(await impatient.send({ target: target(sub, url), count: 1, payload: '{}' })).toEqual({ result: 'retry' });
    silent.closeAllConnections();
    await new Promise((r) => silent.close(r));
  });

  it('sends nothing for a target it cannot serve: another kind, a host no longer allowed, unusable keys', async () => {
    const sub = service.subscribe();
    expect(await sender.send({ target: { ...target(sub), kind: 'webhook', token: 't' }, count: 1 })).toEqual({ result: 'failed' });
    const narrowed = new WebPushSender({ vapid: keys, subject: 'mailto:ops@example.com', endpointHosts: ['push.example.com'], allowHttp: true });
    expect(await narrowed.send({ target: target(sub), count: 1, payload: '{}' })).toEqual({ result: 'failed' });
    const strict = new WebPushSender({ vapid: keys, subject: 'mailto:ops@example.com', endpointHosts: ['127.0.0.1'], allowHttp: false });
    expect(await strict.send({ target: target(sub), count: 1, payload: '{}' })).toEqual({ result: 'failed' });
    expect(await sender.send({ target: { ...target(sub), p256dh: 'AAAA' }, count: 1, payload: '{}' })).toEqual({ result: 'failed' });
    expect(service.received(sub.endpoint)).toEqual([]);
  });
});

describe('the local push service checks what a real one checks', () => {
  it('refuses a push without VAPID, signed by another key than k, or for another audience', async () => {
    const sub = service.subscribe();
    const post = (authorization?: string) =>
      fetch(sub.endpoint, { method: 'POST', headers: { ttl: '60', ...(authorization ? { authorization } : {}) } }).then((r) => r.status);
    const jwt = async (claims: { aud: string }, signer = pair) =>
      new SignJWT({ sub: 'mailto:ops@example.com' }).setProtectedHeader({ alg: 'ES256' }).setAudience(claims.aud).setExpirationTime('1h').sign(signer.privateKey);
    const pair = await generateKeyPair('ES256');
    const other = await generateKeyPair('ES256');
    const { x, y } = await exportJWK(pair.publicKey);
    const k = Buffer.concat([Buffer.from([4]), Buffer.from(x!, 'base64url'), Buffer.from(y!, 'base64url')]).toString('base64url');

    expect(await post()).toBe(401);
    expect(await post(`vapid t=${await jwt({ aud: service.origin }, other)}, k=${k}`)).toBe(401);
    expect(await post(`vapid t=${await jwt({ aud: 'https://elsewhere.example' })}, k=${k}`)).toBe(401);
    expect(await post(`vapid t=${await jwt({ aud: service.origin })}, k=${k}`)).toBe(201);
    expect(service.rejected().filter((r) => r.endpoint === sub.endpoint).map((r) => r.status)).toEqual([401, 401, 401]);
  });

  it('decrypts the RFC 8291 §5 example, and refuses it tampered', () => {
    const body = Buffer.from(
      'DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN',
      'base64url',
    );
    const uaPrivate = Buffer.from('q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94', 'base64url');
    const auth = Buffer.from('BTBZMqHH6r4Tts7J_aSIgg', 'base64url');
    expect(decryptAes128gcm(body, uaPrivate, auth).toString()).toBe('When I grow up, I want to be a watermelon');
    const tampered = Buffer.from(body);
    tampered[tampered.length - 1]! ^= 1;
    expect(() => decryptAes128gcm(tampered, uaPrivate, auth)).toThrow();
  });
});

describe('vapidKeys', () => {
  it('generates a pair once and returns that same pair afterwards', async () => {
    expect(keys.publicKey).toMatch(/^[A-Za-z0-9_-]{87}$/);
    expect(await vapidKeys(sql, {})).toEqual(keys);
    expect(await vapidKeys(sql, {})).toEqual(keys);
  });

  it('concurrent first calls agree on one pair', async () => {
    await sql.query(`DELETE FROM settings WHERE key = 'vapid_keys'`);
    const [a, b] = await Promise.all([vapidKeys(sql, {}), vapidKeys(sql, {})]);
    expect(a).toEqual(b);
    expect(a).not.toEqual(keys);
    expect(await vapidKeys(sql, {})).toEqual(a);
  });

  it('returns the configured pair as is', async () => {
    const configured = { VAPID_PUBLIC_KEY: 'B'.repeat(87), VAPID_PRIVATE_KEY: 'p'.repeat(43) };
    expect(await vapidKeys(sql, configured)).toEqual({ publicKey: configured.VAPID_PUBLIC_KEY, privateKey: configured.VAPID_PRIVATE_KEY });
  });
});

async function listening(server: Server): Promise<Server> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}
