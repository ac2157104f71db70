// PGlite has no autovacuum: the purge's `vacuum` option is what lets the space of erased rows be reused.
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../platform/clock.js';
import { createLogger } from '../platform/log.js';
import { createMetrics } from '../platform/metrics.js';
import { migrate } from '../platform/migrations.js';
import { PgliteSql } from '../platform/sql.pglite.js';
import { num } from '../platform/sql.js';
import { MessageStore } from './message-store.js';
import { MessagePurge } from './purge.js';

/** The messages table's size after a fill of disappearing messages, and after a second fill once the purge erased the first. */
async function sizesAfterTwoFills(vacuum: boolean): Promise<{ first: number; second: number }> {
  const sql = await PgliteSql.open();
  try {
    await migrate(sql);
    const clock = new ManualClock();
    const [alice, bob, aliceDev, bobDev] = [randomUUID(), randomUUID(), randomUUID(), randomUUID()];
    for (const [u, n] of [[alice, 'alice'], [bob, 'bob']] as const) await sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, 'x', 0)`, [u, n]);
    for (const [d, u] of [[aliceDev, alice], [bobDev, bob]] as const) await sql.query(`INSERT INTO devices (id, user_id, name, public_key, created_at) VALUES ($1, $2, 'd', 'k', 0)`, [d, u]);
    const store = new MessageStore(sql, clock);
    const conversationId = await store.ensureDirect(alice, bob);
    const purge = new MessagePurge(sql, clock, createLogger('silent'), createMetrics(), { policy: 'off', retentionMs: 86_400_000, intervalMs: 60_000, batch: 10_000, vacuum });
    const size = async () => num((await sql.query(`SELECT pg_total_relation_size('messages') AS n`))[0]!.n);
    const fill = async () => {
      const ciphertext = 'x'.repeat(1500);
      await Promise.all(
        Array.from({ length: 1000 }, () =>
          store.append({ conversationId, senderId: alice, senderDeviceId: aliceDev, clientId: randomUUID(), payloads: { [bobDev]: ciphertext }, expiresAt: clock.now() + 1000 }),
        ),
      );
      await store.flush();
    };
    await fill();
    const first = await size();
    clock.advance(2000);
    expect((await purge.runOnce()).expired).toBe(1000);
    await fill();
    return { first, second: await size() };
  } finally {
    await sql.close();
  }
}

describe('MessagePurge on PGlite: vacuum after erasing', () => {
  it('lets the next messages reuse the erased rows’ space (without it the table grows by all of it)', async () => {
    const withVacuum = await sizesAfterTwoFills(true);
    const without = await sizesAfterTwoFills(false);
    expect(withVacuum.second).toBeLessThanOrEqual(withVacuum.first * 1.2);
    expect(without.second).toBeGreaterThan(without.first * 1.5);
  }, 60_000);
});
