// The webhook adapter against a real local relay (signature checked, replays refused), verifyWebhook itself, and createPushSender's choice of adapters.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PUSH_COLLAPSE_KEY, WEBHOOK_SIGNATURE_HEADER } from '../protocol/push.js';
import { startWebhookReceiver, type WebhookReceiver } from '../test/support/push-service.js';
import { ManualClock } from './clock.js';
import { createPushSender, type PushConfig, type StoredPushTarget } from './push.js';
import { signWebhook, verifyWebhook, WebhookPushSender } from './push.webhook.js';

const SECRET = 'a-webhook-secret-of-at-least-32-characters';
const target: StoredPushTarget = { deviceId: 'device-1', kind: 'webhook', token: 'fcm-token-1', endpoint: null, p256dh: null, auth: null };

let receiver: WebhookReceiver;
let sender: WebhookPushSender;

beforeAll(async () => {
  receiver = await startWebhookReceiver(SECRET);
  sender = new WebhookPushSender({ url: receiver.url, secret: SECRET });
});

afterAll(() => receiver?.close());

describe('WebhookPushSender → a local relay', () => {
  it('POSTs a signed WebhookPush that the relay verifies and accepts', async () => {
    const before = Date.now();
    expect(await sender.send({ target, count: 3 })).toEqual({ result: 'sent' });
    const [got] = await receiver.waitFor(1);
    expect(got!.push).toEqual({ v: 1, id: expect.stringMatching(/^[0-9a-f-]{36}$/), device: 'device-1', token: 'fcm-token-1', collapseKey: PUSH_COLLAPSE_KEY, count: 3, sentAt: expect.any(Number) });
    expect(got!.push.sentAt).toBeGreaterThanOrEqual(before);
    expect(verifyWebhook(SECRET, got!.signature, got!.rawBody, Date.now(), 300_000)).toBe('ok');
    expect(receiver.rejected()).toEqual([]);
  });

  it('gives every POST its own id', async () => {
    await sender.send({ target, count: 1 });
    await sender.send({ target, count: 1 });
    const ids = (await receiver.waitFor(3)).map((w) => w.push.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('a byte-for-byte replay is refused with 409', async () => {
    const [first] = await receiver.waitFor(1);
    expect(await receiver.replay(first!)).toBe(409);
    expect(receiver.rejected().at(-1)).toMatchObject({ status: 409, reason: 'replay' });
  });

  it('a tampered body is refused with 401', async () => {
    const [first] = await receiver.waitFor(1);
    const tampered = first!.rawBody.toString().replace('"count":3', '"count":4');
    expect(tampered).not.toBe(first!.rawBody.toString());
    const res = await fetch(receiver.url, { method: 'POST', headers: { 'content-type': 'application/json', [WEBHOOK_SIGNATURE_HEADER]: first!.signature }, body: tampered });
    expect(res.status).toBe(401);
    expect(receiver.rejected().at(-1)).toMatchObject({ status: 401, reason: 'bad_signature' });
  });

  it('a stale timestamp is refused', async () => {
    const late = new WebhookPushSender({ url: receiver.url, secret: SECRET, clock: new ManualClock(Date.now() - 600_000) });
    expect(await late.send({ target, count: 1 })).toEqual({ result: 'failed', status: 401 });
    expect(receiver.rejected().at(-1)).toMatchObject({ status: 401, reason: 'stale' });
  });

  it('maps the relay’s answers: 410 and 404 gone, 5xx and 429 retry (with Retry-After), other 4xx and 3xx failed', async () => {
    const cases: [number, Record<string, string>, unknown][] = [
      [410, {}, { result: 'gone', status: 410 }],
      [404, {}, { result: 'gone', status: 404 }],
      [502, {}, { result: 'retry', status: 502 }],
      [429, { 'retry-after': '7' }, { result: 'retry', status: 429, retryAfterMs: 7000 }],
      [400, {}, { result: 'failed', status: 400 }],
      [307, { location: 'http://127.0.0.1:1/' }, { result: 'failed', status: 307 }],
    ];
    for (const [status, headers, outcome] of cases) {
      receiver.respond(status, headers);
      expect(await sender.send({ target, count: 1 })).toEqual(outcome);
    }
  });

  it('an unreachable relay is retry', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    await new Promise((r) => server.close(r));
    const nowhere = new WebhookPushSender({ url: `http://127.0.0.1:${port}/push`, secret: SECRET });
    expect(await nowhere.send({ target, count: 1 })).toEqual({ result: 'retry' });
  });

  it('sends nothing for a Web Push target or a webhook target without a token', async () => {
    const count = receiver.received().length;
    expect(await sender.send({ target: { ...target, kind: 'webpush', token: null, endpoint: 'https://x.example/' }, count: 1 })).toEqual({ result: 'failed' });
    expect(await sender.send({ target: { ...target, token: null }, count: 1 })).toEqual({ result: 'failed' });
    expect(receiver.received()).toHaveLength(count);
  });
});

describe('verifyWebhook', () => {
  const body = '{"v":1}';
  const t = 1_700_000_000_000;

  it('accepts its own signature, on the body as text or bytes', () => {
    expect(verifyWebhook(SECRET, signWebhook(SECRET, t, body), body, t, 1000)).toBe('ok');
    expect(verifyWebhook(SECRET, signWebhook(SECRET, t, body), Buffer.from(body), t + 1000, 1000)).toBe('ok');
  });

  it('refuses another secret, another body, a stale or far-future t, and malformed headers', () => {
    expect(verifyWebhook(SECRET, signWebhook(`${SECRET}x`, t, body), body, t, 1000)).toBe('bad_signature');
    expect(verifyWebhook(SECRET, signWebhook(SECRET, t, body), `${body} `, t, 1000)).toBe('bad_signature');
    expect(verifyWebhook(SECRET, signWebhook(SECRET, t, body), body, t + 1001, 1000)).toBe('stale');
    expect(verifyWebhook(SECRET, signWebhook(SECRET, t, body), body, t - 1001, 1000)).toBe('stale');
    const sig = signWebhook(SECRET, t, body).split(',v1=')[1]!;
    for (const header of [undefined, '', `v1=${sig}`, `t=${t}`, `t=${t},v1=${sig.slice(2)}`, `t=abc,v1=${sig}`]) {
      expect(verifyWebhook(SECRET, header, body, t, 1000)).toBe('malformed');
    }
  });

  it('accepts any matching v1 (secret rotation)', () => {
    const old = signWebhook(`${SECRET}-old`, t, body).split(',v1=')[1]!;
    expect(verifyWebhook(SECRET, `${signWebhook(SECRET, t, body)},v1=${old}`, body, t, 1000)).toBe('ok');
  });
});

describe('createPushSender', () => {
  const base: PushConfig = {
    PUSH_DRIVER: 'webhook',
    PUSH_WEBHOOK_URL: 'http://127.0.0.1:1/push',
    PUSH_WEBHOOK_SECRET: SECRET,
    VAPID_SUBJECT: 'mailto:ops@example.com',
    PUSH_ENDPOINT_HOSTS: ['fcm.googleapis.com'],
    PUSH_ALLOW_HTTP: false,
  };

  it('is null for PUSH_DRIVER=none', () => {
    expect(createPushSender({ ...base, PUSH_DRIVER: 'none' }, null)).toBeNull();
  });

  it('serves the kinds whose settings are there, and fails the others without sending', async () => {
    const webhookOnly = createPushSender({ ...base, PUSH_WEBHOOK_URL: receiver.url }, null)!;
    expect(webhookOnly.kind).toBe('webhook');
    expect([webhookOnly.serves('webhook'), webhookOnly.serves('webpush')]).toEqual([true, false]);
    expect(await webhookOnly.send({ target, count: 1 })).toEqual({ result: 'sent' });
    expect(await webhookOnly.send({ target: { ...target, kind: 'webpush' }, count: 1 })).toEqual({ result: 'failed' });

    const vapid = { publicKey: 'B'.repeat(87), privateKey: 'p'.repeat(43) };
    const both = createPushSender({ ...base, PUSH_DRIVER: 'webpush' }, vapid)!;
    expect(both.kind).toBe('webpush');
    expect([both.serves('webhook'), both.serves('webpush')]).toEqual([true, true]);
    const webpushOnly = createPushSender({ ...base, PUSH_DRIVER: 'webpush', PUSH_WEBHOOK_URL: undefined, PUSH_WEBHOOK_SECRET: undefined }, vapid)!;
    expect([webpushOnly.serves('webhook'), webpushOnly.serves('webpush')]).toEqual([false, true]);
  });

  it('refuses a driver without its settings', () => {
    expect(() => createPushSender({ ...base, PUSH_DRIVER: 'webpush' }, null)).toThrow(/VAPID/);
    expect(() => createPushSender({ ...base, PUSH_WEBHOOK_URL: undefined }, null)).toThrow(/PUSH_WEBHOOK_URL/);
  });
});
