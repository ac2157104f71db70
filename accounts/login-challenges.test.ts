// Login challenges: any gateway with the key accepts them until they expire; altered, foreign and malformed ones are refused.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../platform/clock.js';
import { Tokens } from '../platform/tokens.js';
import { LOGIN_CHALLENGE_BYTES, LOGIN_CHALLENGE_KEY_LABEL, LOGIN_CHALLENGE_TTL_MS, LoginChallenges } from './login-challenges.js';

const SECRET = 'challenge-secret-'.padEnd(40, 'x');
const keyOf = (secret: string) => new Tokens(secret, 3600, new ManualClock()).deriveKey(LOGIN_CHALLENGE_KEY_LABEL);
const bytes = (challenge: string) => new Uint8Array(Buffer.from(challenge, 'base64'));

describe('LoginChallenges', () => {
  it('issues 57-byte challenges (76 base64 characters), each different, that expire after the lifetime', () => {
    const clock = new ManualClock();
    const c = new LoginChallenges(keyOf(SECRET), clock);
    const { challenge, expiresAt } = c.issue();
    expect(challenge).toMatch(/^[A-Za-z0-9+/]{76}$/);
    expect(bytes(challenge).length).toBe(LOGIN_CHALLENGE_BYTES);
    expect(expiresAt).toBe(clock.now() + LOGIN_CHALLENGE_TTL_MS);
    expect(c.issue().challenge).not.toBe(challenge);
    expect(c.check(bytes(challenge))).toBe('ok');
    clock.advance(LOGIN_CHALLENGE_TTL_MS - 1);
    expect(c.check(bytes(challenge))).toBe('ok');
    clock.advance(1);
    expect(c.check(bytes(challenge))).toBe('expired');
  });

  it('is stateless: another instance with the same key (another gateway) accepts it, any number of times', () => {
    const clock = new ManualClock();
    const { challenge } = new LoginChallenges(keyOf(SECRET), clock).issue();
    const elsewhere = new LoginChallenges(keyOf(SECRET), clock);
    expect([elsewhere.check(bytes(challenge)), elsewhere.check(bytes(challenge))]).toEqual(['ok', 'ok']);
  });

  it('refuses every altered byte, another key, a wrong length or version, as invalid (never as expired)', () => {
    const clock = new ManualClock();
    const c = new LoginChallenges(keyOf(SECRET), clock);
    const good = bytes(c.issue().challenge);
    for (let i = 0; i < good.length; i++) {
      const bad = Uint8Array.from(good);
      bad[i]! ^= 0x01;
      expect(c.check(bad), `byte ${i}`).toBe('invalid');
    }
    expect(new LoginChallenges(keyOf('other-secret-'.padEnd(40, 'y')), clock).check(good)).toBe('invalid');
    expect(c.check(good.subarray(0, 56))).toBe('invalid');
    expect(c.check(new Uint8Array(LOGIN_CHALLENGE_BYTES))).toBe('invalid');
    expect(c.check(new Uint8Array(0))).toBe('invalid');
    // A forged challenge whose (unauthenticated) expiry is past is still just invalid.
    clock.advance(10 * LOGIN_CHALLENGE_TTL_MS);
    const forged = Uint8Array.from(good);
    forged[3]! ^= 0x80;
    expect(c.check(forged)).toBe('invalid');
  });
});

describe('Tokens.deriveKey', () => {
  it('gives 32 bytes that depend on the secret and the label, the same on every instance', () => {
    const a = keyOf(SECRET);
    expect(a.length).toBe(32);
    expect(Buffer.from(keyOf(SECRET)).equals(Buffer.from(a))).toBe(true);
    expect(Buffer.from(keyOf('z'.repeat(40))).equals(Buffer.from(a))).toBe(false);
    const t = new Tokens(SECRET, 3600, new ManualClock());
    expect(Buffer.from(t.deriveKey('another purpose')).equals(Buffer.from(a))).toBe(false);
    expect(Buffer.from(a).includes(Buffer.from(SECRET.slice(0, 8)))).toBe(false);
  });
});
