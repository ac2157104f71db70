// Blocks on PGlite: blocking rules, the cap per user, the list, the cache a change drops at once, and who among many blocks someone.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../platform/clock.js';
import { migrate } from '../platform/migrations.js';
import { PgliteSql } from '../platform/sql.pglite.js';
import { Blocks } from './blocks.js';

describe('Blocks', () => {
  let sql: PgliteSql;
  let blocks: Blocks;
  const clock = new ManualClock();
  const [alice, bob, carol] = [randomUUID(), randomUUID(), randomUUID()];

  beforeAll(async () => {
    sql = await PgliteSql.open();
    await migrate(sql);
    for (const u of [alice, bob, carol]) await sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, 'x', 0)`, [u, `u${u.slice(0, 8)}`]);
    blocks = new Blocks(sql, clock);
  });
  afterAll(() => sql?.close());

  it('caps the users one user blocks (limit_exceeded), also when the blocks come at once; blocking again at the cap is no change', async () => {
    const capped = new Blocks(sql, clock, 3);
    const me = randomUUID();
    const others = Array.from({ length: 8 }, () => randomUUID());
    for (const u of [me, ...others]) await sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, 'x', 0)`, [u, `c${u.slice(0, 8)}`]);
    const results = await Promise.allSettled(others.map((o) => capped.block(me, o)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'limit_exceeded', details: { maxBlocks: 3 } });
    const held = (await capped.list(me)).map((b) => b.userId);
    expect(held).toHaveLength(3);
    await capped.block(me, held[0]!); // already blocked: fine at the cap
    await capped.unblock(me, held[0]!);
    await capped.block(me, others.find((o) => !held.includes(o))!);
    expect(await capped.list(me)).toHaveLength(3);
  });

  it('blocks and unblocks, idempotently, keeping the first time; refuses oneself (invalid) and unknown users (not_found)', async () => {
    expect(await blocks.blockedBy(alice)).toEqual(new Set());
    await blocks.block(alice, bob);
    const since = clock.now();
    clock.advance(1000);
    await blocks.block(alice, bob);
    await blocks.block(alice, carol);
    expect(await blocks.list(alice)).toEqual([
      { userId: carol, since: since + 1000 },
      { userId: bob, since },
    ]);
    // The change was made here: the cached list is dropped at once.
    expect(await blocks.blockedBy(alice)).toEqual(new Set([bob, carol]));
    await blocks.unblock(alice, carol);
    await blocks.unblock(alice, carol); // not blocked: no error
    expect(await blocks.blockedBy(alice)).toEqual(new Set([bob]));
    await expect(blocks.block(alice, alice)).rejects.toMatchObject({ code: 'invalid' });
    await expect(blocks.block(alice, randomUUID())).rejects.toMatchObject({ code: 'not_found' });
  });

  it('answers who among many blocks someone in one query; a change made elsewhere shows within the cache time', async () => {
    await blocks.block(carol, bob);
    expect(await blocks.blockersAmong(bob, [alice, carol, randomUUID()])).toEqual(new Set([alice, carol]));
    expect(await blocks.blockersAmong(bob, [])).toEqual(new Set());
    await sql.query(`DELETE FROM blocks WHERE user_id = $1`, [alice]); // as another process would
    expect(await blocks.blockedBy(alice)).toEqual(new Set([bob])); // still cached
    clock.advance(5_000);
    expect(await blocks.blockedBy(alice)).toEqual(new Set());
  });
});
