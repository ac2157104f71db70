// Token buckets: per WebSocket connection and per user for frames, per client address for the login endpoints.
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
    this.refill();
    if (this.tokens >= n) {
      this.tokens -= n;
      return 0;
    }
    return Math.ceil(((n - this.tokens) / this.perSecond) * 1000);
  }

  /** Takes `n` tokens whether or not they are there (work found to cost more once done): the bucket may go into debt. */
  charge(n: number): void {
    this.refill();
    this.tokens -= n;
  }

  /** Gives back tokens taken for work that was not done. */
  refund(n: number): void {
    this.tokens = Math.min(this.burst, this.tokens + n);
  }

  /** Whether it has refilled to `burst`: then it is no different from a new bucket. */
  get full(): boolean {
    this.refill();
    return this.tokens >= this.burst;
  }

  private refill(): void {
    const now = this.clock.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
  }
}

export interface FrameLimits {
  /** Per connection: refill per second and bucket size (WS_RATE_PER_SECOND, WS_RATE_BURST). */
  ratePerSecond: number;
  burst: number;
}

/** What `FrameBudget.take` decided: 'ok', 'refused' (with the wait in ms) or 'flood' (close the connection). */
export type BudgetDecision = { kind: 'ok' } | { kind: 'refused'; waitMs: number } | { kind: 'flood' };

/**
 * The frame budget of one connection: its own bucket and its user's bucket (shared by all of
 * the user's connections on this gateway, see UserBudgets). A frame is accepted only when both
 * have its cost. Once a frame is refused, every frame is refused until the wait told with
 * that refusal is over, so that no later frame overtakes it. Refusals of frames sent before
 * the previous refusal's wait was over draw on an allowance of `burst` refusals that refills at a tenth of the frame rate; a connection
 * that uses it up is flooding (it keeps sending while refused) and is closed. A client that
 * waits `retryAfterMs` after each refusal never draws on it.
 *
 * @example const d = budget.take(frameCost(frame)); if (d.kind === 'flood') close(4001)
 */
export class FrameBudget {
  /**
   * This connection's bucket and its allowance of refusals, made when first used: a bucket
   * nothing was taken from is full, as a new one (most connections are idle).
   */
  private ownBucket: TokenBucket | undefined;
  private refusalBucket: TokenBucket | undefined;
  /** When the wait told with the last refusal ends: a refusal after it came from a client that waited as told. */
  private obeyedAfter = 0;

  constructor(
    private readonly limits: FrameLimits,
    private readonly user: UserBudget,
    private readonly clock: Clock,
  ) {}

  private get own(): TokenBucket {
    return (this.ownBucket ??= new TokenBucket(this.limits.ratePerSecond, this.limits.burst, this.clock));
  }

  private get refusals(): TokenBucket {
    return (this.refusalBucket ??= new TokenBucket(this.limits.ratePerSecond / 10, this.limits.burst, this.clock));
  }

  take(cost: number): BudgetDecision {
    // Until the told wait is over every frame is refused, however cheap: a later frame must
    // not overtake a refused one (the client resends them all, in order, after the wait).
    const now = this.clock.now();
    if (now < this.obeyedAfter) {
      if (this.refusals.take(1) > 0) return { kind: 'flood' };
      return { kind: 'refused', waitMs: Math.ceil(this.obeyedAfter - now) };
    }
    const own = this.own.take(cost);
    // The user's bucket is shared by all of their connections here: each is told to wait for
    // its share, so that connections that all obey `retryAfterMs` do not all come back at once.
    const user = own === 0 ? this.user.bucket.take(cost) * Math.max(1, this.user.holders) : 0;
    if (own === 0 && user === 0) return { kind: 'ok' };
    if (own === 0) this.own.refund(cost);
    // Only a frame sent before the last told wait was over draws on the refusal allowance
    // (above): a client that waits as told (a big frame may be refused more than once, and
    // connections share the user's bucket) is never closed for flooding.
    const waitMs = Math.max(own, user);
    this.obeyedAfter = now + waitMs;
    return { kind: 'refused', waitMs };
  }

  /** Charges work found once the frame ran (e.g. a group send's audience); later frames wait for it. */
  charge(cost: number): void {
    this.own.charge(cost);
    this.user.bucket.charge(cost);
  }

  /** Gives back what `take` granted for work that was then not done. */
  refund(cost: number): void {
    if (cost <= 0) return;
    this.own.refund(cost);
    this.user.bucket.refund(cost);
  }
}

/**
 * One frame bucket per user across all of their connections on this gateway, kept while the
 * user has a connection here. (Across gateways the cap on devices per user bounds the total:
 * a user's devices on G gateways get at most G times the per-user rate.)
 */
/** A user's shared bucket and how many of their connections on this gateway hold it. */
export interface UserBudget {
  readonly bucket: TokenBucket;
  readonly holders: number;
}

/** A user's budget; its bucket is made when first used (an untouched bucket is full, as a new one). */
class SharedBudget implements UserBudget {
  holders = 0;
  private made: TokenBucket | undefined;

  constructor(private readonly budgets: UserBudgets) {}

  get bucket(): TokenBucket {
    return (this.made ??= this.budgets.newBucket());
  }
}

export class UserBudgets {
  private readonly users = new Map<string, SharedBudget>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly clock: Clock,
  ) {}

  /** The user's budget, held until `release`. */
  acquire(userId: string): UserBudget {
    let u = this.users.get(userId);
    if (!u) this.users.set(userId, (u = new SharedBudget(this)));
    u.holders++;
    return u;
  }

  release(userId: string): void {
    const u = this.users.get(userId);
    if (u && --u.holders <= 0) this.users.delete(userId);
  }

  get size(): number {
    return this.users.size;
  }

  /** A full bucket at the per-user rate. */
  newBucket(): TokenBucket {
    return new TokenBucket(this.perSecond, this.burst, this.clock);
  }
}

/**
 * One bucket per key (e.g. client IP), forgetting the least recently used beyond `maxKeys`, and
 * those that have refilled (a full bucket is no different from a new one) as they come up.
 */
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
    // Oldest first: each take forgets the oldest while they are full (or too many), so keys
    // that stopped coming cost nothing once their buckets refilled.
    for (const [k, oldest] of this.buckets) {
      if (oldest === b || (this.buckets.size <= this.maxKeys && !oldest.full)) break;
      this.buckets.delete(k);
    }
    return b.take(n);
  }

  /** Keys with a bucket. */
  get size(): number {
    return this.buckets.size;
  }
}
