// Reports on PGlite: filing (only about someone else who exists), the operator's pages newest first, and cursors.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../platform/clock.js';
import { migrate } from '../platform/migrations.js';
import { PgliteSql } from '../platform/sql.pglite.js';
import { Reports } from './reports.js';

describe('Reports', () => {
  let sql: PgliteSql;
  let reports: Reports;
  const clock = new ManualClock();
  const [alice, bob] = [randomUUID(), randomUUID()];

  beforeAll(async () => {
    sql = await PgliteSql.open();
    await migrate(sql);
    for (const u of [alice, bob]) await sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, 'x', 0)`, [u, `u${u.slice(0, 8)}`]);
    reports = new Reports(sql, clock);
  });
  afterAll(() => sql?.close());

  it('files reports about another existing user and pages them newest first; the messages come only with one report', async () => {
    const message = { id: 'm1', seq: 3, text: 'what was said', sentAt: 5, from: bob };
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      clock.advance(1000);
      ids.push((await reports.file({ reporterId: alice, userId: bob, reason: `r${i}`, messages: i === 0 ? [message] : [] })).id);
    }
    await expect(reports.file({ reporterId: alice, userId: alice, reason: 'x', messages: [] })).rejects.toMatchObject({ code: 'not_found' });
    await expect(reports.file({ reporterId: alice, userId: randomUUID(), reason: 'x', messages: [] })).rejects.toMatchObject({ code: 'not_found' });

    const first = await reports.list(2);
    expect(first.reports.map((r) => r.reason)).toEqual(['r4', 'r3']);
    const second = await reports.list(2, first.cursor);
    const third = await reports.list(2, second.cursor);
    expect([...second.reports, ...third.reports].map((r) => r.id)).toEqual([ids[2], ids[1], ids[0]]);
    expect(third.cursor).toBeUndefined();
    expect(third.reports.at(-1)).toMatchObject({ reporterId: alice, userId: bob, conversationId: null, messageCount: 1 });
    expect(third.reports.at(-1)).not.toHaveProperty('messages');
    expect(await reports.get(ids[0]!)).toMatchObject({ id: ids[0], messages: [message] });
    expect(await reports.get(randomUUID())).toBeNull();
    await expect(reports.list(2, 'not-a-cursor')).rejects.toMatchObject({ code: 'invalid' });
  });
});
