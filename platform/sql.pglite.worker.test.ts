// PgliteSql on its worker thread: values, errors, transaction isolation, a free event loop, a dead worker, close.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from './errors.js';
import { type Row, type SqlTx } from './sql.js';
import { PgliteSql } from './sql.pglite.js';

/** A CPU-bound statement that keeps PGlite busy for a good while (hundreds of ms). */
const HEAVY = `SELECT count(*)::int AS n FROM generate_series(1, 3000000)`;

/** A promise and the function that resolves it. */
function gate(): { open: () => void; opened: Promise<void> } {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, opened };
}

describe('PgliteSql on a worker thread', () => {
  let sql: PgliteSql;

  beforeAll(async () => {
    sql = await PgliteSql.open();
    await sql.query(`CREATE TABLE w (k text PRIMARY KEY, v text NOT NULL)`);
  });
  afterAll(async () => {
    await sql?.close();
  });

  it('returns parameters and row values exactly as in-process PGlite does', async () => {
    const text = `SELECT $1::text AS t, $2::int AS i, $3::bool AS b, $4::jsonb AS jb, $5::json AS j, $6::bigint AS big,
        9007199254740991::bigint AS safe, $7::bytea AS bytes, $8::text AS nothing, $9::float8 AS f, 1.50::numeric AS num,
        '2024-02-03T04:05:06.789Z'::timestamptz AS at, ARRAY[1, 2]::int[] AS ints, ARRAY['a', NULL] AS texts, false AS no`;
    const params = ['x', 42, true, JSON.stringify({ k: [1, 'two', null] }), '[3]', '9223372036854775807', new Uint8Array([0, 255]), null, 1.5];
    const local = new PGlite();
    try {
      const expected = (await local.query<Row>(text, params)).rows;
      const rows = await sql.query(text, params);
      expect(rows).toEqual(expected);
      expect(rows[0]!.big).toBe(9223372036854775807n); // past 2^53 PGlite gives a bigint; it survives the thread hop
      expect(rows[0]!.safe).toBe(9007199254740991);
      expect(rows[0]!.jb).toEqual({ k: [1, 'two', null] });
      expect(rows[0]!.at).toBeInstanceOf(Date);
    } finally {
      await local.close();
    }
  });

  it('carries the SQLSTATE across the thread: a unique violation is conflict, others internal', async () => {
    await sql.query(`INSERT INTO w VALUES ('dup', '1')`);
    const conflict = await sql.query(`INSERT INTO w VALUES ('dup', '2')`).catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(AppError);
    expect(conflict).toMatchObject({ code: 'conflict', temporary: false, cause: { code: '23505', constraint: 'w_pkey' } });
    expect((conflict as AppError & { cause: Error }).cause.message).toMatch(/duplicate key/);

    const notNull = await sql.query(`INSERT INTO w VALUES ('n', NULL)`).catch((e: unknown) => e);
    expect(notNull).toMatchObject({ name: 'AppError', code: 'internal', cause: { code: '23502' } });

    const inTx = await sql.transaction((tx) => tx.query(`INSERT INTO w VALUES ('dup', '3')`)).catch((e: unknown) => e);
    expect(inTx).toMatchObject({ name: 'AppError', code: 'conflict' });
  });

  it('keeps plain queries out of an open transaction: a concurrent read never sees its uncommitted rows', async () => {
    const events: string[] = [];
    const inserted = gate();
    const tx = sql
      .transaction(async (t) => {
        await t.query(`INSERT INTO w VALUES ('rolled-back', 'x')`);
        inserted.open();
        // Were the read posted now, it would run on the one connection inside this transaction.
        for (let i = 0; i < 5; i++) await t.query(`SELECT 1`);
        throw new Error('undo');
      })
      .catch((err: Error) => events.push(`tx: ${err.message}`));
    await inserted.opened; // (from outside the transaction, as another request would)
    const read = sql.query(`SELECT count(*)::int AS n FROM w WHERE k = 'rolled-back'`).finally(() => events.push('read'));
    await tx;
    expect(await read).toEqual([{ n: 0 }]);
    expect(events).toEqual(['tx: undo', 'read']);
  });

  it('refuses a plain query from inside a transaction’s own callback instead of waiting for itself forever', async () => {
    const inside = await sql.transaction(async () => sql.query(`SELECT 1`).catch((e: unknown) => e));
    expect(inside).toMatchObject({ code: 'internal', message: expect.stringContaining('use its tx') });
    expect(await sql.query<{ n: number }>(`SELECT 1 AS n`)).toEqual([{ n: 1 }]);
  });

  it('lets a read that arrived during a transaction see the committed state only after COMMIT', async () => {
    const inserted = gate();
    const release = gate();
    let txHandle!: SqlTx;
    const events: string[] = [];
    const tx = sql.transaction(async (t) => {
      txHandle = t;
      await t.query(`INSERT INTO w VALUES ('committed', 'x')`);
      inserted.open();
      await release.opened;
      return 'done';
    });
    await inserted.opened;
    let readSettled = false;
    const read = sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM w WHERE k = 'committed'`).finally(() => {
      readSettled = true;
      events.push('read');
    });
    // A round trip on the transaction: the worker has run everything posted before it, so an
    // unqueued read would have come back by now.
    await txHandle.query(`SELECT 1`);
    expect(readSettled).toBe(false);
    release.open();
    events.push(`tx: ${await tx}`);
    expect(await read).toEqual([{ n: 1 }]);
    expect(events).toEqual(['tx: done', 'read']);
  });

  it('leaves the event loop free while the database works', async () => {
    const order: string[] = [];
    const heavy = sql.query(HEAVY).then((rows) => {
      order.push('query');
      return rows;
    });
    // In-process PGlite would finish the statement in microtasks, before any callback scheduled here.
    setImmediate(() => order.push('setImmediate'));
    expect(await heavy).toEqual([{ n: 3_000_000 }]);
    expect(order).toEqual(['setImmediate', 'query']);
  });
});

describe('PgliteSql when its worker dies', () => {
  it('rejects pending, queued and later calls as unavailable, and close says so too', async () => {
    const victim = await PgliteSql.open();
    const unavailable = { name: 'AppError', code: 'unavailable', temporary: true };
    const began = gate();
    const release = gate();
    const tx = victim.transaction(async (t) => {
      await t.query(`SELECT 1`);
      began.open();
      await release.opened;
      await t.query(`SELECT 2`);
    });
    await began.opened;
    const queued = victim.query(`SELECT 3`); // waits behind the transaction
    const queuedTx = victim.transaction((t) => t.query(`SELECT 4`)); // so does this one
    await victim.crashWorkerForTest();
    release.open();
    await expect(tx).rejects.toMatchObject(unavailable);
    await expect(queued).rejects.toMatchObject(unavailable);
    await expect(queuedTx).rejects.toMatchObject(unavailable);
    await expect(victim.query(`SELECT 5`)).rejects.toMatchObject(unavailable);
    await expect(victim.transaction(async () => 1)).rejects.toMatchObject(unavailable);
    await expect(victim.close()).rejects.toMatchObject(unavailable);
  });

  it('rejects a statement the worker is running when it dies', async () => {
    const victim = await PgliteSql.open();
    const heavy = victim.query(HEAVY);
    await victim.crashWorkerForTest();
    await expect(heavy).rejects.toMatchObject({ name: 'AppError', code: 'unavailable' });
    await victim.close().catch(() => {});
  });
});

describe('PgliteSql open and close', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'parley-pglite-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('closes after the work in flight, cleanly enough to reopen the directory, and refuses calls after', async () => {
    const first = await PgliteSql.open(dir);
    await first.query(`CREATE TABLE kept (v text)`);
    const insert = first.transaction((tx) => tx.query(`INSERT INTO kept VALUES ('persisted') RETURNING v`));
    const closed = first.close();
    expect(await insert).toEqual([{ v: 'persisted' }]);
    await closed;
    await expect(first.query(`SELECT 1`)).rejects.toMatchObject({ name: 'AppError', code: 'unavailable' });

    const second = await PgliteSql.open(dir);
    try {
      expect(await second.query(`SELECT v FROM kept`)).toEqual([{ v: 'persisted' }]);
    } finally {
      await second.close();
    }
  });

  it('rejects open with the error PGlite failed with', async () => {
    await expect(PgliteSql.open('/dev/null/not-a-directory')).rejects.toMatchObject({ code: 'ENOTDIR' });
  });
});
