// Token buckets: per WebSocket connection for frames, per client address for the login endpoints.
import type { Clock } from '../platform/clock.js';

/**
 * A bucket of `burst` tokens refilled at `perSecond`.
 * @example if (bucket.take() > 0) reject('rate_limited')
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly clock: Clock,
  ) {
    this.tokens = burst;
    this.last = clock.now();
  }

  /** Takes `n` tokens: 0 if granted, else the milliseconds until they would be. */
  take(n = 1): number {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens >= n) {
      this.tokens -= n;
      return 0;
    }
    return Math.ceil(((n - this.tokens) / this.perSecond) * 1000);
  }
}

/** One bucket per key (e.g. client IP), forgetting the least recently used beyond `maxKeys`. */
export class KeyedLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly clock: Clock,
    private readonly maxKeys = 10_000,
  ) {}

  take(key: string, n = 1): number {
    let b = this.buckets.get(key);
    if (b) this.buckets.delete(key);
    else b = new TokenBucket(this.perSecond, this.burst, this.clock);
    this.buckets.set(key, b); // most recently used last
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    return b.take(n);
  }
}
