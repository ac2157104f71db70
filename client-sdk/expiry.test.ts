// Unit tests of the disappearing-message countdowns, on the manual clock: from the read, across a restart, beyond setTimeout's range, and after a failed erase.
import { describe, expect, it } from 'vitest';
import { ManualClock } from './clock.test-support.js';
import type { KeyStore } from './e2e.store.js';
import { memoryKeyStore } from './e2e.store.memory.js';
import { ExpiryTimers, RETRY_MS, type TimedMessage } from './expiry.js';

function timers(kv: KeyStore, clock: ManualClock, erase?: (m: TimedMessage[]) => Promise<void>) {
  const expired: string[] = [];
  const failures: unknown[] = [];
  const t = new ExpiryTimers({ kv, clock, expired: (m) => expired.push(`${m.conversationId}#${m.seq}`), failed: (e) => failures.push(e), ...(erase ? { erase } : {}) });
  return { t, expired, failures };
}

const m = (seq: number, conversationId = 'c'): TimedMessage => ({ conversationId, id: `id${seq}`, seq });

describe('ExpiryTimers', () => {
  it('counts down from the read, not from the arrival, and tells in seq order once erased', async () => {
    const clock = new ManualClock();
    const kv = memoryKeyStore();
    const { t, expired } = timers(kv, clock);
    await t.start();
    await t.track(m(1), 10, false);
    await t.track(m(2), 10, false);
    await t.track(m(3), 10, false);
    await clock.advance(60_000);
    expect(expired).toEqual([]); // unread: kept
    await t.read('c', 2);
    expect(clock.pending()).toEqual([10_000]);
    await clock.advance(9_999);
    expect(expired).toEqual([]);
    await clock.advance(1);
    expect(expired).toEqual(['c#1', 'c#2']);
    expect((await kv.ids('expiring')).sort()).toEqual(['c|3']);
    expect(clock.pending()).toEqual([]);
  });

  it('starts at once for a message already read (our own), and each conversation reads on its own', async () => {
    const clock = new ManualClock();
    const { t, expired } = timers(memoryKeyStore(), clock);
    await t.start();
    await t.track(m(1, 'a'), 5, true);
    await t.track(m(1, 'b'), 1, false);
    await t.read('a', 9);
    await clock.advance(5_000);
    expect(expired).toEqual(['a#1']);
    await t.read('b', 1);
    await clock.advance(1_000);
    expect(expired).toEqual(['a#1', 'b#1']);
  });

  it('survives a restart: a new instance over the store goes on with the time left, and erases what fell due meanwhile at once', async () => {
    const clock = new ManualClock();
    const kv = memoryKeyStore();
    const first = timers(kv, clock);
    await first.t.start();
    await first.t.track(m(1), 10, true);
    await first.t.track(m(2), 60, true);
    await clock.advance(3_000);
    first.t.stop();
    expect(clock.pending()).toEqual([]);
    await clock.advance(20_000); // the app is not running
    const second = timers(kv, clock);
    await second.t.start();
    await clock.advance(0);
    expect(second.expired).toEqual(['c#1']);
    await clock.advance(36_999);
    expect(second.expired).toEqual(['c#1']);
    await clock.advance(1);
    expect(second.expired).toEqual(['c#1', 'c#2']);
    expect(first.expired).toEqual([]);
  });

  it('re-arms a countdown longer than setTimeout can wait', async () => {
    const clock = new ManualClock();
    const { t, expired } = timers(memoryKeyStore(), clock);
    await t.start();
    const fourWeeks = 28 * 24 * 3600;
    await t.track(m(1), fourWeeks, true);
    expect(clock.pending()).toEqual([2 ** 31 - 1]);
    await clock.advance(2 ** 31 - 1);
    expect(expired).toEqual([]);
    await clock.advance(fourWeeks * 1000 - (2 ** 31 - 1));
    expect(expired).toEqual(['c#1']);
  });

  it('erases through the seam before telling the app, and retries a failed erase', async () => {
    const clock = new ManualClock();
    let fail = true;
    const erased: string[] = [];
    const { t, expired, failures } = timers(memoryKeyStore(), clock, async (ms) => {
      if (fail) throw new Error('disk full');
      erased.push(...ms.map((x) => x.id));
    });
    await t.start();
    await t.track(m(1), 1, true);
    await clock.advance(1_000);
    expect(failures).toHaveLength(1);
    expect(expired).toEqual([]);
    fail = false;
    await clock.advance(RETRY_MS);
    expect(erased).toEqual(['id1']);
    expect(expired).toEqual(['c#1']);
  });

  it('arms nothing while stopped (a service worker only records)', async () => {
    const clock = new ManualClock();
    const { t } = timers(memoryKeyStore(), clock);
    await t.track(m(1), 1, true);
    expect(clock.pending()).toEqual([]);
  });
});
