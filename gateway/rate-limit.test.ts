import { describe, expect, it } from 'vitest';
import { ManualClock } from '../platform/clock.js';
import { KeyedLimiter, TokenBucket } from './rate-limit.js';

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
});
