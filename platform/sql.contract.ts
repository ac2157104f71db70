// The SQL client contract, run against every driver (PGlite always, PostgreSQL where reachable).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from './errors.js';
import { migrate } from './migrations.js';
import { num, type Sql } from './sql.js';

/** A fresh, empty database and a way to drop it. */
export interface SqlFactory {
  open(): Promise<Sql>;
  dispose(): Promise<void>;
}

export function sqlContract(name: string, factory: () => Promise<SqlFactory>): void {
  describe(`Sql contract: ${name}`, () => {
    let f: SqlFactory;
    let sql: Sql;

    beforeAll(async () => {
      f = await factory();
      sql = await f.open();
      await migrate(sql);
    });
    afterAll(async () => {
      await sql?.close();
      await f?.dispose();
    });

    it('runs parameterized queries and returns rows', async () => {
      const rows = await sql.query<{ a: number; b: string }>(`SELECT $1::int AS a, $2::text AS b`, [41, 'x']);
      expect(rows).toEqual([{ a: 41, b: 'x' }]);
      expect(await sql.query(`SELECT 1 WHERE false`)).toEqual([]);
    });

    it('reads int8 columns as numbers through num()', async () => {
      const rows = await sql.query(`SELECT 9007199254740991::bigint AS big`);
      expect(num(rows[0]!.big)).toBe(9007199254740991);
    });

    it('accepts JSON parameters cast to json and jsonb', async () => {
      const rows = await sql.query<{ id: number; t: string }>(
        `SELECT * FROM json_to_recordset($1::json) AS v(id int, t text) ORDER BY id`,
        [JSON.stringify([{ id: 2, t: 'b' }, { id: 1, t: 'a' }])],
      );
      expect(rows).toEqual([{ id: 1, t: 'a' }, { id: 2, t: 'b' }]);
      const j = await sql.query<{ v: unknown }>(`SELECT ($1::jsonb) -> 'k' AS v`, [JSON.stringify({ k: [1, 'two'] })]);
      expect(j[0]!.v).toEqual([1, 'two']);
    });

    it('commits a transaction and rolls it back on throw', async () => {
      await sql.transaction(async (tx) => {
        await tx.query(`INSERT INTO settings (key, value) VALUES ('a', '1')`);
      });
      await expect(
        sql.transaction(async (tx) => {
          await tx.query(`INSERT INTO settings (key, value) VALUES ('b', '2')`);
          throw new Error('boom');
        }),
      ).rejects.toThrow('boom');
      const rows = await sql.query<{ key: string }>(`SELECT key FROM settings ORDER BY key`);
      expect(rows.map((r) => r.key)).toEqual(['a']);
    });

    it('reports a unique violation as conflict', async () => {
      const err = await sql.query(`INSERT INTO settings (key, value) VALUES ('a', 'again')`).catch((e) => e);
      expect(err).toBeInstanceOf(AppError);
      expect(err.code).toBe('conflict');
      expect(err.temporary).toBe(false);
    });

    it('wraps other driver errors as internal AppErrors', async () => {
      const err = await sql.query(`SELECT * FROM no_such_table`).catch((e) => e);
      expect(err).toBeInstanceOf(AppError);
      expect(err.code).toBe('internal');
      expect(err.cause).toBeDefined();
    });

    it('serializes concurrent increments in transactions without losing any', async () => {
      await sql.query(`INSERT INTO settings (key, value) VALUES ('counter', '0')`);
      await Promise.all(
        Array.from({ length: 20 }, () =>
          sql.transaction(async (tx) => {
            const [r] = await tx.query<{ value: string }>(`SELECT value FROM settings WHERE key = 'counter' FOR UPDATE`);
            await tx.query(`UPDATE settings SET value = $1 WHERE key = 'counter'`, [String(Number(r!.value) + 1)]);
          }),
        ),
      );
      const [r] = await sql.query<{ value: string }>(`SELECT value FROM settings WHERE key = 'counter'`);
      expect(r!.value).toBe('20');
    });

    it('migrates idempotently', async () => {
      expect(await migrate(sql)).toBeGreaterThan(0);
      const rows = await sql.query(`SELECT count(*)::int AS n FROM schema_migrations`);
      expect(rows[0]!.n).toBe(await migrate(sql));
    });
  });
}
