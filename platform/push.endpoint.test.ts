// Which Web Push targets may be registered (endpoint and keys), and how push services' answers and Retry-After are read.
import { createECDH } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { checkPushEndpoint, checkPushKeys, outcomeOf, RETRY_AFTER_MAX_MS, retryAfterMs } from './push.js';

const HOSTS = ['fcm.googleapis.com', '*.push.services.mozilla.com', '*.notify.windows.com', 'web.push.apple.com'];

describe('checkPushEndpoint', () => {
  it('accepts https endpoints on allowed hosts, wildcards matching subdomains at any depth', () => {
    for (const ok of [
      'https://fcm.googleapis.com/fcm/send/abc:def',
      'https://FCM.googleapis.com/fcm/send/abc',
      'https://updates.push.services.mozilla.com/wpush/v2/gAAAA',
      'https://a.b.push.services.mozilla.com/x',
      'https://wns2-par02p.notify.windows.com/w/?token=AQE',
      'https://web.push.apple.com:443/QGuQyavXutnMPT',
    ]) {
      expect(checkPushEndpoint(ok, HOSTS, false), ok).toBeNull();
    }
  });

  it('refuses other hosts, the wildcard’s own domain, and look-alikes', () => {
    for (const bad of [
      'https://evil.example/fcm.googleapis.com',
      'https://push.services.mozilla.com/x',
      'https://evilpush.services.mozilla.com/x',
      'https://fcm.googleapis.com.evil.example/x',
      'https://fcm.googleapis.com./x',
      'https://127.0.0.1/x',
      'https://[::1]/x',
    ]) {
      expect(checkPushEndpoint(bad, HOSTS, false), bad).toMatch(/host not allowed/);
    }
    expect(checkPushEndpoint('https://fcm.googleapis.com/x', [], false)).toMatch(/host not allowed/);
  });

  it('refuses http unless allowHttp, and other schemes always', () => {
    expect(checkPushEndpoint('http://fcm.googleapis.com/x', HOSTS, false)).toMatch(/https/);
    expect(checkPushEndpoint('http://127.0.0.1:4567/push/x', ['127.0.0.1'], true)).toBeNull();
    for (const scheme of ['ftp://fcm.googleapis.com/x', 'file:///etc/passwd', 'javascript:alert(1)', 'data:text/plain,x']) {
      expect(checkPushEndpoint(scheme, HOSTS, true), scheme).not.toBeNull();
    }
  });

  it('refuses credentials, and ports other than the default unless allowHttp (local test services)', () => {
    expect(checkPushEndpoint('https://user:pw@fcm.googleapis.com/x', HOSTS, false)).toMatch(/credentials/);
    expect(checkPushEndpoint('https://user@fcm.googleapis.com/x', HOSTS, true)).toMatch(/credentials/);
    expect(checkPushEndpoint('https://fcm.googleapis.com:8443/x', HOSTS, false)).toMatch(/port/);
    expect(checkPushEndpoint('https://fcm.googleapis.com:8443/x', HOSTS, true)).toBeNull();
  });

  it('refuses what is not a URL, and anything longer than 2048 characters', () => {
    for (const bad of ['', 'fcm.googleapis.com/x', 'https://', '/push/x', 'https://fcm.googleapis .com/']) {
      expect(checkPushEndpoint(bad, HOSTS, false), bad).toBe('not a URL');
    }
    const base = 'https://fcm.googleapis.com/fcm/send/';
    expect(checkPushEndpoint(base + 'a'.repeat(2048 - base.length), HOSTS, false)).toBeNull();
    expect(checkPushEndpoint(base + 'a'.repeat(2049 - base.length), HOSTS, false)).toMatch(/2048/);
  });
});

describe('checkPushKeys', () => {
  const ecdh = createECDH('prime256v1');
  const p256dh = ecdh.generateKeys().toString('base64url');
  const auth = Buffer.alloc(16, 7).toString('base64url');

  it('accepts a browser’s keys', () => {
    expect(checkPushKeys(p256dh, auth)).toBeNull();
  });

  it('refuses keys that are not base64url, not an uncompressed point, not on the curve, or an auth that is not 16 bytes', () => {
    const offCurve = Buffer.from(p256dh, 'base64url');
    offCurve[64]! ^= 1;
    const compressed = ecdh.getPublicKey(null, 'compressed').toString('base64url');
    expect(checkPushKeys(`${p256dh}=`, auth)).toMatch(/base64url/);
    expect(checkPushKeys(p256dh, 'a+b/')).toMatch(/base64url/);
    expect(checkPushKeys(compressed, auth)).toMatch(/uncompressed/);
    expect(checkPushKeys(offCurve.toString('base64url'), auth)).toMatch(/not a P-256 point/);
    expect(checkPushKeys(p256dh, Buffer.alloc(15).toString('base64url'))).toMatch(/16 bytes/);
    expect(checkPushKeys(p256dh, Buffer.alloc(17).toString('base64url'))).toMatch(/16 bytes/);
  });
});

describe('outcomeOf and retryAfterMs', () => {
  const now = 1_700_000_000_000;

  it('maps statuses', () => {
    expect(outcomeOf(201, null, now)).toEqual({ result: 'sent' });
    expect(outcomeOf(410, null, now)).toEqual({ result: 'gone', status: 410 });
    expect(outcomeOf(404, '5', now)).toEqual({ result: 'gone', status: 404 });
    expect(outcomeOf(429, '5', now)).toEqual({ result: 'retry', status: 429, retryAfterMs: 5000 });
    expect(outcomeOf(503, null, now)).toEqual({ result: 'retry', status: 503 });
    expect(outcomeOf(401, null, now)).toEqual({ result: 'failed', status: 401 });
    expect(outcomeOf(302, null, now)).toEqual({ result: 'failed', status: 302 });
  });

  it('reads Retry-After as seconds or an HTTP date, capped, and ignores what it cannot read', () => {
    expect(retryAfterMs('0', now)).toBe(0);
    expect(retryAfterMs(' 30 ', now)).toBe(30_000);
    expect(retryAfterMs(new Date(now + 90_000).toUTCString(), now)).toBe(90_000);
    expect(retryAfterMs(new Date(now - 90_000).toUTCString(), now)).toBe(0);
    expect(retryAfterMs('99999999999', now)).toBe(RETRY_AFTER_MAX_MS);
    expect(retryAfterMs(null, now)).toBeUndefined();
    expect(retryAfterMs('soon', now)).toBeUndefined();
    expect(retryAfterMs('-5', now)).toBeUndefined();
  });
});
