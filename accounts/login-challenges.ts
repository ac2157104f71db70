// Login challenges: stateless, MACed nonces that a device signs to prove it holds the identity key it logs in with.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../platform/clock.js';

/** How long a challenge may be used: ample for one round trip and a signature, short enough to go stale soon. */
export const LOGIN_CHALLENGE_TTL_MS = 120_000;

/** The label the challenge MAC key is derived with from the token secret (Tokens.deriveKey). */
export const LOGIN_CHALLENGE_KEY_LABEL = 'parley login challenge v1';

const VERSION = 1;
const NONCE_BYTES = 16;
const BODY_BYTES = 1 + NONCE_BYTES + 8;
const MAC_BYTES = 32;
/** A challenge's length in bytes (76 characters of base64). */
export const LOGIN_CHALLENGE_BYTES = BODY_BYTES + MAC_BYTES;

/** What a presented challenge is: ours and in time, ours but too old, or not ours (forged, altered, malformed). */
export type ChallengeCheck = 'ok' | 'expired' | 'invalid';

/**
 * Issues and checks login challenges. Layout (57 bytes, sent as standard base64):
 * version `0x01` ‖ 16 random bytes ‖ expiry (uint64 BE, ms since the epoch) ‖
 * HMAC-SHA256(key, everything before). Nothing is stored: any gateway holding the same key
 * (derived from the shared token secret) checks a challenge another one issued.
 *
 * A challenge is not single-use: it may be presented again until it expires. That is
 * harmless: a proof only shows that the holder of the key signed this challenge for this
 * username and key; replaying it (with the password, which a login needs anyway) registers
 * the same key for the same user again, which its holder already agreed to.
 * @example const { challenge, expiresAt } = challenges.issue(); challenges.check(bytes) === 'ok'
 */
export class LoginChallenges {
  constructor(
    private readonly key: Uint8Array,
    private readonly clock: Clock,
    private readonly ttlMs = LOGIN_CHALLENGE_TTL_MS,
  ) {}

  issue(): { challenge: string; expiresAt: number } {
    const expiresAt = this.clock.now() + this.ttlMs;
    const body = Buffer.alloc(BODY_BYTES);
    body[0] = VERSION;
    randomBytes(NONCE_BYTES).copy(body, 1);
    body.writeBigUInt64BE(BigInt(expiresAt), 1 + NONCE_BYTES);
    return { challenge: Buffer.concat([body, this.mac(body)]).toString('base64'), expiresAt };
  }

  /** Checks the MAC first (in constant time), then the expiry, so a forged challenge is never reported as expired. */
  check(challenge: Uint8Array): ChallengeCheck {
    if (challenge.length !== LOGIN_CHALLENGE_BYTES || challenge[0] !== VERSION) return 'invalid';
    const bytes = Buffer.from(challenge.buffer, challenge.byteOffset, challenge.byteLength);
    const body = bytes.subarray(0, BODY_BYTES);
    if (!timingSafeEqual(this.mac(body), bytes.subarray(BODY_BYTES))) return 'invalid';
    const expiresAt = Number(body.readBigUInt64BE(1 + NONCE_BYTES));
    return this.clock.now() < expiresAt ? 'ok' : 'expired';
  }

  private mac(body: Uint8Array): Buffer {
    return createHmac('sha256', this.key).update(body).digest();
  }
}
