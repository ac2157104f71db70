// Blocks on PGlite: blocking rules, the list, the cache a change drops at once, and who among many blocks someone.
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
