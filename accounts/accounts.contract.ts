// The Accounts contract, run on every SQL driver: lookalike usernames (and migration 6's backfill), the device cap, the login backoff.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryCache } from '../platform/cache.memory.js';
import { ManualClock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { migrate, MIGRATIONS } from '../platform/migrations.js';
import type { SqlFactory } from '../platform/sql.contract.js';
import type { Sql } from '../platform/sql.js';
import { Tokens } from '../platform/tokens.js';
import { until } from '../test/support/wait.js';
import { Accounts } from './accounts.js';
import { usernameSkeleton } from './username.js';

const MAX_DEVICES = 3;
const FREE = 2;
const KEY = 'A'.repeat(43) + '='; // not checked here: the route validates keys

const errorOf = async (p: Promise<unknown>) => {
  const e = await p.then(
    () => null,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AppError);
  return e as AppError;
};

/** Applies migrations 1–5 only, the way `migrate` does, so a test can run 6 over existing rows. */
async function migrateThrough5(sql: Sql): Promise<void> {
  await sql.query(`CREATE TABLE schema_migrations (version int PRIMARY KEY, applied_at bigint NOT NULL)`);
  for (let v = 1; v <= 5; v++) {
    for (const statement of MIGRATIONS[v - 1]!.split(';').map((s) => s.trim()).filter(Boolean)) await sql.query(statement);
    await sql.query(`INSERT INTO schema_migrations (version, applied_at) VALUES ($1, 0)`, [v]);
  }
}

/** A small deterministic generator, so a failure reproduces. */
function seeded(seed: number): () => number {
  return () => ((seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31);
}

export function accountsContract(name: string, factory: () => Promise<SqlFactory>): void {
  describe(`Accounts: ${name}`, () => {
    const factories: SqlFactory[] = [];
    const opened: Sql[] = [];
    let sql: Sql;
    let clock: ManualClock;
    let accounts: Accounts;
    const open = async () => {
      const f = await factory();
      factories.push(f);
      const s = await f.open();
      opened.push(s);
      return s;
    };

    beforeAll(async () => {
      sql = await open();
      await migrate(sql);
      clock = new ManualClock();
      accounts = new Accounts(sql, new Tokens('contract-secret'.padEnd(40, 'x'), 3600, clock), clock, {
        cache: new MemoryCache(clock),
        maxDevices: MAX_DEVICES,
        loginFailuresFree: FREE,
        loginBackoffMaxMs: 4000,
      });
    });
    afterAll(async () => {
      for (const s of opened) await s.close();
      for (const f of factories) await f.dispose();
    });

    const device = (id?: string) => ({ ...(id ? { id } : {}), name: 'phone', publicKey: KEY });

    it('migration 6 folds existing usernames exactly as usernameSkeleton does, keeping the oldest of lookalikes', async () => {
      const db = await open();
      await migrateThrough5(db);
      const random = seeded(6);
      const alphabet = 'abclmnor01._-';
      const names = new Set(['alice1', 'alicel', 'b0b', 'bob', 'carol.', 'carol', '_carol_', 'rnike', 'mike', 'a.b', 'a__b', 'a-_.b', 'm0m1', '...', '___']);
      while (names.size < 400) {
        const length = 3 + Math.floor(random() * 6);
        names.add(Array.from({ length }, () => alphabet[Math.floor(random() * alphabet.length)]).join(''));
      }
      const rows = [...names].map((username) => ({ id: randomUUID(), username, createdAt: Math.floor(random() * 50) }));
      for (const r of rows) {
        await db.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, 'x', $3)`, [r.id, r.username, r.createdAt]);
      }
      expect(await migrate(db)).toBe(MIGRATIONS.length);

      const stored = new Map(
        (await db.query<{ id: string; username_skeleton: string | null }>(`SELECT id, username_skeleton FROM users`)).map((r) => [r.id, r.username_skeleton]),
      );
      const oldest = new Map<string, (typeof rows)[number]>();
      for (const r of rows) {
        const s = usernameSkeleton(r.username);
        const o = oldest.get(s);
        if (!o || r.createdAt < o.createdAt || (r.createdAt === o.createdAt && r.id < o.id)) oldest.set(s, r);
      }
      expect(oldest.size).toBeLessThan(rows.length); // the generated names do collide
      for (const r of rows) {
        const expected = oldest.get(usernameSkeleton(r.username)) === r ? usernameSkeleton(r.username) : null;
        expect(stored.get(r.id), r.username).toBe(expected);
      }
      // The SQL folding agrees with TypeScript on every name, winners or not.
      const folded = await db.query<{ username: string; s: string }>(
        `SELECT username, btrim(regexp_replace(replace(translate(username, '01_-', 'ol..'), 'm', 'rn'), '[.]+', '.', 'g'), '.') AS s FROM users`,
      );
      for (const f of folded) expect(f.s, f.username).toBe(usernameSkeleton(f.username));
    });

    it('refuses a username that looks like a taken one with the same conflict as the exact name', async () => {
      const suffix = randomUUID().slice(0, 6).replace(/[01m]/g, 'x');
      await accounts.register(`alice1${suffix}`, 'password-1');
      await accounts.register(`b0b${suffix}`, 'password-1');
      await accounts.register(`carol.${suffix}`, 'password-1');
      await accounts.register(`rnike${suffix}`, 'password-1');
      for (const lookalike of [`alice1${suffix}`, `alicel${suffix}`, `bob${suffix}`, `b0b${suffix}`, `carol_${suffix}`, `carol${suffix}`.replace('carol', 'carol..'), `mike${suffix}`, `_rnike${suffix}`]) {
        const e = await errorOf(accounts.register(lookalike, 'password-2'));
        expect(e.code, lookalike).toBe('conflict');
        expect(e.message).toBe('username is taken');
      }
      // Login and lookup stay exact.
      await expect(accounts.findUser(`alicel${suffix}`)).rejects.toMatchObject({ code: 'not_found' });
      expect(await accounts.findUser(`alice1${suffix}`)).toEqual(expect.any(String));
      expect((await errorOf(accounts.login(`alicel${suffix}`, 'password-1', device()))).code).toBe('unauthorized');
    });

    it('caps new devices per user; an existing device may always log in again', async () => {
      const name = `cap_${randomUUID().slice(0, 8)}`;
      await accounts.register(name, 'password-1');
      const sessions = [];
      for (let i = 0; i < MAX_DEVICES; i++) sessions.push(await accounts.login(name, 'password-1', device()));
      const e = await errorOf(accounts.login(name, 'password-1', device()));
      expect(e.code).toBe('limit_exceeded');
      expect(e.details).toEqual({ maxDevices: MAX_DEVICES });
      expect(e.temporary).toBe(false);
      const again = await accounts.login(name, 'password-1', device(sessions[0]!.deviceId));
      expect(again.deviceId).toBe(sessions[0]!.deviceId);
      await accounts.removeDevice(again.userId, sessions[1]!.deviceId);
      expect((await accounts.login(name, 'password-1', device())).deviceId).not.toBe(sessions[1]!.deviceId);
      expect(await accounts.devices(again.userId)).toHaveLength(MAX_DEVICES);
    });

    it('never passes the cap with concurrent logins', async () => {
      // Free failures enough that the backoff admits every concurrent check (it bounds them at the free count).
      const roomy = new Accounts(sql, new Tokens('contract-secret'.padEnd(40, 'x'), 3600, clock), clock, {
        cache: new MemoryCache(clock),
        maxDevices: MAX_DEVICES,
        loginFailuresFree: 100,
        loginBackoffMaxMs: 4000,
      });
      const name = `race_${randomUUID().slice(0, 8)}`;
      const { userId } = await roomy.register(name, 'password-1');
      const logins = Array.from({ length: 8 }, () => roomy.login(name, 'password-1', device()));
      if (sql.driver === 'postgres') {
        // Make the race certain: from another connection, hold every insert into devices until
        // all eight logins wait on a lock. Unlocked code would have counted 0 devices in each.
        const other = await factories[0]!.open();
        opened.push(other);
        await other.transaction(async (tx) => {
          await tx.query(`LOCK TABLE devices IN SHARE ROW EXCLUSIVE MODE`);
          const waiting = async () => Number((await tx.query<{ n: unknown }>(`SELECT count(*) AS n FROM pg_locks WHERE NOT granted`))[0]!.n);
          await until(async () => (await waiting()) >= logins.length, 'every login waits on a lock');
        });
      }
      const outcomes = await Promise.allSettled(logins);
      expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(MAX_DEVICES);
      for (const o of outcomes) if (o.status === 'rejected') expect((o.reason as AppError).code).toBe('limit_exceeded');
      const [row] = await sql.query<{ n: unknown }>(`SELECT count(*) AS n FROM devices WHERE user_id = $1`, [userId]);
      expect(Number(row!.n)).toBe(MAX_DEVICES);
    });

    it('slows down guessing for a username, known or not, with the same answers', async () => {
      const known = `guess_${randomUUID().slice(0, 8)}`;
      await accounts.register(known, 'password-1');
      const unknown = `nobody_${randomUUID().slice(0, 8)}`;
      const answers = async (username: string) => {
        const out: string[] = [];
        for (let i = 0; i < FREE; i++) out.push((await errorOf(accounts.login(username, 'wrong-password', device()))).code);
        const limited = await errorOf(accounts.login(username, 'password-1', device()));
        out.push(`${limited.code} ${String(limited.details?.retryAfterMs)}`);
        return out;
      };
      const fromKnown = await answers(known);
      expect(fromKnown).toEqual(['unauthorized', 'unauthorized', 'rate_limited 1000']);
      expect(await answers(unknown)).toEqual(fromKnown);
      clock.advance(1000);
      expect((await accounts.login(known, 'password-1', device())).userId).toEqual(expect.any(String));
      expect((await errorOf(accounts.login(known, 'wrong-password', device()))).code).toBe('unauthorized'); // reset
    });
  });
}
