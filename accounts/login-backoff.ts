// Per-username login backoff, shared by every gateway through the Cache port: password guessing slows down exponentially.
import type { Cache } from '../platform/cache.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';

export interface LoginBackoffOptions {
  /** Failed checks answered at once (LOGIN_FAILURES_FREE); after that many, each further attempt waits. */
  freeFailures: number;
  /** The longest wait (LOGIN_BACKOFF_MAX_MS). */
  maxWaitMs: number;
  /** The first wait, doubled after each further failure. Default 1 s. */
  baseWaitMs?: number;
}

/** Failures are forgotten this long after the first of a streak (a fixed window), or at the next success. */
const FAILURE_MEMORY_MS = 24 * 3_600_000;
/** How long a claimed turn is held: longer than a password check takes. */
const TURN_MS = 10_000;

/**
 * Counts failed password checks per username, across client addresses and gateways, and
 * makes attempts wait: after `freeFailures` failures in a row, the next check happens no
 * sooner than 1 s later, then 2 s, 4 s … up to `maxWaitMs`. An attempt during the wait is
 * refused with `rate_limited` (`details.retryAfterMs`) and its password is not checked. A
 * success clears the streak.
 *
 * The trade-off (lockout DoS): anyone who knows a username can keep it in backoff by failing
 * once per wait, and the owner waits too. So this is a backoff, not a lockout: the wait is
 * capped at `maxWaitMs`, nothing is ever locked for good, and the first attempt after each
 * wait, the owner's included, is checked. Unknown usernames are counted exactly like real
 * ones, so the answers do not tell which accounts exist. While the cache is away nothing is
 * counted and logins go on (the per-address limit still holds); with the memory cache the
 * counts are per process and share its entry bound, so a spray of usernames may push some out.
 *
 * Layout (Cache keys, the username is already validated `[a-z0-9_.-]{3,32}`):
 * - `login:fail:<username>` → failed checks in the streak (incr; FAILURE_MEMORY_MS).
 * - `login:wait:<username>` → until when attempts are refused (ms epoch; TTL = the wait).
 * - `login:checking:<username>` → password checks in progress (incr on admission, −1 when
 *   done; TURN_MS). An attempt is admitted only while checks in progress stay within the
 *   failures still free (`freeFailures - failures`, at least 1), so concurrent guesses cannot
 *   all slip in between a read and a write: no more than `freeFailures` checks happen before
 *   the first wait, however many guesses arrive at once (the others get a short
 *   `rate_limited`), while a user's devices logging in together are not held back.
 *
 * @example const user = await backoff.attempt(username, () => checkPassword(username, password))
 */
export class LoginBackoff {
  private readonly baseWaitMs: number;

  constructor(
    private readonly cache: Cache,
    private readonly clock: Clock,
    private readonly options: LoginBackoffOptions,
  ) {
    this.baseWaitMs = Math.min(options.baseWaitMs ?? 1000, options.maxWaitMs);
  }

  /**
   * Runs `check` if `username` may try now, else throws `rate_limited`. `check` resolves to
   * a truthy value on success (the streak ends) or a falsy one on a wrong password (counted).
   * A check that throws counts as neither (its turn lapses after TURN_MS).
   */
  async attempt<T>(username: string, check: () => Promise<T>): Promise<T> {
    const failKey = `login:fail:${username}`;
    const waitKey = `login:wait:${username}`;
    const checkingKey = `login:checking:${username}`;
    // Claim a place among the checks in progress first, then read the failures: a check counts
    // its failure before it gives its place back, so failures + checks in progress never
    // understate what has been and is being checked.
    const checking = await this.cache.incr(checkingKey, TURN_MS);
    const done = () => (checking === null ? Promise.resolve() : this.cache.incr(checkingKey, TURN_MS, -1).then(() => undefined));
    // Failures first, then the wait: a failure sets the wait before it is counted, so an
    // attempt that sees the new count also sees the wait.
    const failures = Number((await this.cache.get(failKey)) ?? 0);
    const until = Number((await this.cache.get(waitKey)) ?? 0);
    const now = this.clock.now();
    if (until > now) {
      await done();
      throw this.refusal(until - now);
    }
    if (checking !== null && checking > Math.max(1, this.options.freeFailures - failures)) {
      // As many checks as failures are still free are running for this account right now.
      await done();
      throw this.refusal(Math.max(this.baseWaitMs, this.waitAfter(failures + 1)));
    }
    try {
      const result = await check();
      if (result) {
        if (checking !== null) await this.cache.del([failKey, waitKey]); // the streak ends (not while the cache is away)
        return result;
      }
      await this.setWait(waitKey, failures + 1);
      const counted = await this.cache.incr(failKey, FAILURE_MEMORY_MS);
      if (counted !== null && counted !== failures + 1) await this.setWait(waitKey, counted);
      return result;
    } finally {
      await done();
    }
  }

  /** The wait after `failures` failures in a row: 0 while they are free, then doubling up to the cap. */
  waitAfter(failures: number): number {
    if (failures < this.options.freeFailures) return 0;
    return Math.min(this.options.maxWaitMs, this.baseWaitMs * 2 ** (failures - this.options.freeFailures));
  }

  private async setWait(waitKey: string, failures: number): Promise<void> {
    const wait = this.waitAfter(failures);
    if (wait > 0) await this.cache.set(waitKey, String(this.clock.now() + wait), wait);
  }

  private refusal(waitMs: number): AppError {
    return new AppError('rate_limited', 'too many failed logins for this account; try again later', { details: { retryAfterMs: waitMs } });
  }
}
