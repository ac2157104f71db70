import { describe, expect, it } from 'vitest';
import { ManualClock } from '../platform/clock.js';
import { FrameBudget, KeyedLimiter, TokenBucket, UserBudgets } from './rate-limit.js';

describe('TokenBucket', () => {
  it('grants the burst, then refuses with the wait, then refills', () => {
    const clock = new ManualClock();
    const b = new TokenBucket(10, 3, clock);
    expect([b.take(), b.take(), b.take()]).toEqual([0, 0, 0]);
    expect(b.take()).toBe(100);
    clock.advance(100);
    expect(b.take()).toBe(0);
    clock.advance(10_000);
    expect([b.take(), b.take(), b.take(), b.take()]).toEqual([0, 0, 0, 100]);
  });
});

describe('KeyedLimiter', () => {
  it('limits each key on its own and forgets old keys', () => {
    const clock = new ManualClock();
    const l = new KeyedLimiter(1, 1, clock, 2);
    expect(l.take('a')).toBe(0);
    expect(l.take('a')).toBeGreaterThan(0);
    expect(l.take('b')).toBe(0);
    expect(l.take('c')).toBe(0); // evicts 'a'
    expect(l.take('a')).toBe(0);
  });

  it('forgets a key once its bucket has refilled, and only then', () => {
    const clock = new ManualClock();
    const l = new KeyedLimiter(1, 2, clock);
    l.take('a', 2);
    l.take('b');
    expect(l.take('c')).toBe(0);
    expect(l.size).toBe(3); // none of them full yet
    expect(l.take('a')).toBeGreaterThan(0); // 'a' is still spent
    clock.advance(2_000);
    expect(l.take('d')).toBe(0);
    expect(l.size).toBe(1); // a, b and c refilled: no different from new buckets
    expect([l.take('a'), l.take('a'), l.take('a')]).toEqual([0, 0, 1000]);
  });
});

describe('FrameBudget', () => {
  const limits = { ratePerSecond: 10, burst: 5 };

  it('accepts while both the connection and the user have tokens, and refuses with the wait otherwise', () => {
    const clock = new ManualClock();
    const users = new UserBudgets(100, 100, clock);
    const b = new FrameBudget(limits, users.acquire('u'), clock);
    expect([1, 2, 3, 4, 5].map(() => b.take(1).kind)).toEqual(['ok', 'ok', 'ok', 'ok', 'ok']);
    expect(b.take(1)).toEqual({ kind: 'refused', waitMs: 100 });
    clock.advance(100);
    expect(b.take(1).kind).toBe('ok');
  });

  it('never closes a client that waits as told after each refusal, even when the next try is refused again', () => {
    const clock = new ManualClock();
    const users = new UserBudgets(1000, 1000, clock);
    const b = new FrameBudget({ ratePerSecond: 10, burst: 5 }, users.acquire('u'), clock);
    expect(b.take(5).kind).toBe('ok');
    // A big frame, refused in two steps (first its size, then its whole cost), 1000 times over,
    // by a client that waits as told each time: never closed.
    for (let i = 0; i < 1000; i++) {
      const size = b.take(2);
      expect(size.kind).toBe('refused');
      if (size.kind === 'refused') clock.advance(size.waitMs);
      const whole = b.take(5);
      expect(whole.kind).toBe('refused');
      if (whole.kind === 'refused') clock.advance(whole.waitMs);
      expect(b.take(5).kind).toBe('ok');
    }
    // One that does not wait is closed soon enough.
    let d = b.take(5);
    for (let i = 0; i < 100 && d.kind !== 'flood'; i++) d = b.take(5);
    expect(d.kind).toBe('flood');
  });

  it("shares the user's bucket between connections, and tells each to wait its share", () => {
    const clock = new ManualClock();
    const users = new UserBudgets(10, 4, clock);
    const [a, b, c] = [1, 2, 3].map(() => new FrameBudget({ ratePerSecond: 1000, burst: 1000 }, users.acquire('u'), clock));
    expect([a!.take(2).kind, b!.take(2).kind]).toEqual(['ok', 'ok']);
    // The user's 4 tokens are gone: 100 ms for one more, times the 3 connections that share it.
    expect(c!.take(1)).toEqual({ kind: 'refused', waitMs: 300 });
    users.release('u');
    users.release('u');
    users.release('u');
    expect(users.size).toBe(0);
  });

  it('closes a connection that keeps sending after the refusal allowance ran out, however many frames were accepted in between', () => {
    const clock = new ManualClock();
    const users = new UserBudgets(1000, 1000, clock);
    const b = new FrameBudget({ ratePerSecond: 100, burst: 20 }, users.acquire('u'), clock);
    let decision = b.take(1);
    let refusals = 0;
    // A flood: frames every 1 ms; a token refills every 10 ms, so one in ten is accepted.
    for (let i = 0; i < 10_000 && decision.kind !== 'flood'; i++) {
      clock.advance(1);
      decision = b.take(1);
      if (decision.kind === 'refused') refusals++;
    }
    expect(decision.kind).toBe('flood');
    // The allowance (20) refills at a tenth of the rate (10/s): about 20 / (900 - 10) per second of flood.
    expect(refusals).toBeGreaterThanOrEqual(20);
    expect(refusals).toBeLessThan(30);
  });

  it('lets work found later be charged as debt, and refunds work not done', () => {
    const clock = new ManualClock();
    const users = new UserBudgets(1000, 1000, clock);
    const b = new FrameBudget({ ratePerSecond: 10, burst: 10 }, users.acquire('u'), clock);
    b.charge(15);
    expect(b.take(1)).toEqual({ kind: 'refused', waitMs: 600 });
    b.refund(100);
    clock.advance(600); // the told wait holds regardless; then the refund shows (without it, 1 token)
    expect(b.take(10).kind).toBe('ok');
  });

  it('refuses every frame until the told wait is over, so that no later frame overtakes a refused one', () => {
    const clock = new ManualClock();
    const users = new UserBudgets(1000, 1000, clock);
    const b = new FrameBudget({ ratePerSecond: 10, burst: 10 }, users.acquire('u'), clock);
    expect(b.take(8).kind).toBe('ok');
    expect(b.take(5)).toEqual({ kind: 'refused', waitMs: 300 });
    // A cheaper frame right behind it would fit in the 2 tokens left, but waits like it.
    expect(b.take(1)).toEqual({ kind: 'refused', waitMs: 300 });
    clock.advance(299);
    expect(b.take(1)).toEqual({ kind: 'refused', waitMs: 1 });
    clock.advance(1);
    expect(b.take(5).kind).toBe('ok');
  });
});
