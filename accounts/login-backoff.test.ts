import { beforeEach, describe, expect, it } from 'vitest';
import type { Cache } from '../platform/cache.js';
import { MemoryCache } from '../platform/cache.memory.js';
import { ManualClock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { LoginBackoff } from './login-backoff.js';

const refusal = async (p: Promise<unknown>) => {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AppError);
  expect((e as AppError).code).toBe('rate_limited');
  return (e as AppError).details!.retryAfterMs as number;
};

describe('LoginBackoff', () => {
  let clock: ManualClock;
  let cache: MemoryCache;
  let backoff: LoginBackoff;
  let checks: number;
  const wrong = async () => (checks++, null);
  const right = async () => (checks++, { id: 'u1' });

  beforeEach(() => {
    clock = new ManualClock();
    cache = new MemoryCache(clock);
    backoff = new LoginBackoff(cache, clock, { freeFailures: 3, maxWaitMs: 10_000 });
    checks = 0;
  });

  it('answers the free failures at once, then doubles the wait up to the cap', async () => {
    expect([0, 1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoff.waitAfter(n))).toEqual([0, 0, 0, 1000, 2000, 4000, 8000, 10_000, 10_000]);
    expect(backoff.waitAfter(10_000)).toBe(10_000);
    for (let i = 0; i < 3; i++) expect(await backoff.attempt('alice', wrong)).toBeNull();
    expect(checks).toBe(3);
    expect(await refusal(backoff.attempt('alice', right))).toBe(1000); // not checked, right or not
    expect(checks).toBe(3);
    clock.advance(400);
    expect(await refusal(backoff.attempt('alice', wrong))).toBe(600);
    for (const wait of [1000, 2000, 4000, 8000, 10_000, 10_000]) {
      clock.advance(wait);
      expect(await backoff.attempt('alice', wrong)).toBeNull();
      expect(await refusal(backoff.attempt('alice', right))).toBe(backoff.waitAfter(checks));
    }
  });

  it('a success ends the streak: the next failures are free again', async () => {
    for (let i = 0; i < 3; i++) await backoff.attempt('alice', wrong);
    clock.advance(1000);
    expect(await backoff.attempt('alice', right)).toEqual({ id: 'u1' });
    for (let i = 0; i < 3; i++) expect(await backoff.attempt('alice', wrong)).toBeNull();
    await refusal(backoff.attempt('alice', right));
  });

  it('counts per username: another account is not slowed down', async () => {
    for (let i = 0; i < 3; i++) await backoff.attempt('alice', wrong);
    await refusal(backoff.attempt('alice', right));
    expect(await backoff.attempt('bob', right)).toEqual({ id: 'u1' });
  });

  it('lets only one of many concurrent attempts be checked once the free failures are used', async () => {
    for (let i = 0; i < 3; i++) await backoff.attempt('alice', wrong);
    clock.advance(1000);
    checks = 0;
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, () => backoff.attempt('alice', wrong)));
    expect(checks).toBe(1);
    expect(outcomes.filter((o) => o.status === 'rejected')).toHaveLength(19);
  });

  it('bounds concurrent checks by the failures still free, so no more than those are checked before the first wait', async () => {
    const outcomes = await Promise.allSettled(Array.from({ length: 20 }, () => backoff.attempt('alice', wrong)));
    expect(checks).toBe(3);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(3);
    // Round after round of concurrent guesses, as from many addresses: no more checks until the wait is over.
    for (let round = 0; round < 10; round++) await Promise.allSettled(Array.from({ length: 20 }, () => backoff.attempt('alice', wrong)));
    expect(checks).toBe(3);
  });

  it('lets a user’s devices log in at the same moment', async () => {
    const outcomes = await Promise.all(Array.from({ length: 3 }, () => backoff.attempt('alice', right)));
    expect(outcomes).toEqual([{ id: 'u1' }, { id: 'u1' }, { id: 'u1' }]);
  });

  it('does not hold back sequential successes (several devices logging in one after another)', async () => {
    for (let i = 0; i < 10; i++) expect(await backoff.attempt('alice', right)).toEqual({ id: 'u1' });
  });

  it('a check that throws counts as no failure', async () => {
    const broken = async () => {
      throw new AppError('unavailable', 'database unavailable');
    };
    for (let i = 0; i < 5; i++) {
      await expect(backoff.attempt('alice', broken)).rejects.toMatchObject({ code: expect.stringMatching(/unavailable|rate_limited/) });
      clock.advance(10_000);
    }
    for (let i = 0; i < 3; i++) expect(await backoff.attempt('alice', wrong)).toBeNull();
  });

  it('counts nothing, and lets logins through, while the cache is away', async () => {
    const away: Cache = {
      get: async () => null,
      set: async () => {},
      incr: async () => null,
      del: async () => {
        throw new AppError('unavailable', 'cache unavailable');
      },
      close: async () => {},
    };
    const open = new LoginBackoff(away, clock, { freeFailures: 1, maxWaitMs: 10_000 });
    for (let i = 0; i < 5; i++) expect(await open.attempt('alice', wrong)).toBeNull();
    expect(await open.attempt('alice', right)).toEqual({ id: 'u1' });
  });
});
