// Blocks: who blocks whom. The message path asks it on every direct send, typing indicator and receipt, so lists are cached briefly.
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { num, type Sql } from '../platform/sql.js';

/** How long a user's block list may be served from this process's cache (other processes see a change within this). */
const CACHE_MS = 5_000;
/** At most this many users' lists are cached per process (oldest dropped first). */
const CACHE_MAX = 100_000;
const NONE: ReadonlySet<string> = new Set();

export interface Block {
  userId: string;
  /** When the block was made (epoch ms). */
  since: number;
}

/**
 * Table `blocks` (platform/migrations.ts, version 9): (user_id, blocked_id) with its time; both
 * cascade when either account is deleted. What a block does is decided by the message path
 * (messaging/messages.ts) and groups (groups/groups.ts); this only stores and answers.
 *
 * Caching: `blockedBy(userId)` (the users `userId` blocks) is cached per process for CACHE_MS
 * and dropped at once on this process when `userId` changes it; other processes follow within
 * CACHE_MS. `blockersAmong` is read from the table each time (it runs on rarer paths: a
 * presence subscribe, a group add).
 */
export class Blocks {
  private readonly cache = new Map<string, { at: number; blocked: ReadonlySet<string> }>();

  constructor(
    private readonly sql: Sql,
    private readonly clock: Clock,
    /** Users one user may block (BLOCKS_MAX_PER_USER): the list, its cache and `GET /v1/blocks` stay bounded. */
    private readonly maxPerUser = 1000,
  ) {}

  /**
   * `userId` blocks `blockedId` (again: no change). `invalid` for oneself, `not_found` for a user
   * that does not exist, `limit_exceeded` past `maxPerUser` (details.maxBlocks). The blocker's
   * row is locked first, so concurrent blocks by one user count one after another and never
   * pass the cap together.
   */
  async block(userId: string, blockedId: string): Promise<void> {
    if (userId === blockedId) throw new AppError('invalid', 'you cannot block yourself');
    await this.sql.transaction(async (tx) => {
      await tx.query(`SELECT id FROM users WHERE id = $1 FOR UPDATE`, [userId]);
      const [row] = await tx.query<{ n: unknown; held: boolean }>(
        `SELECT count(*) AS n, bool_or(blocked_id = $2) AS held FROM blocks WHERE user_id = $1`,
        [userId, blockedId],
      );
      if (row?.held === true) return; // blocked already: no change
      if (num(row?.n) >= this.maxPerUser) {
        throw new AppError('limit_exceeded', `at most ${this.maxPerUser} blocked users: unblock one first`, { details: { maxBlocks: this.maxPerUser } });
      }
      const rows = await tx.query(
        `INSERT INTO blocks (user_id, blocked_id, created_at) SELECT $1, u.id, $3 FROM users u WHERE u.id = $2
         ON CONFLICT (user_id, blocked_id) DO NOTHING RETURNING 1`,
        [userId, blockedId, this.clock.now()],
      );
      if (rows.length === 0) throw new AppError('not_found', 'no such user');
    });
    this.cache.delete(userId);
  }

  /** Lifts a block; lifting one that does not exist is not an error. */
  async unblock(userId: string, blockedId: string): Promise<void> {
    await this.sql.query(`DELETE FROM blocks WHERE user_id = $1 AND blocked_id = $2`, [userId, blockedId]);
    this.cache.delete(userId);
  }

  /** The users `userId` blocks, newest first. */
  async list(userId: string): Promise<Block[]> {
    const rows = await this.sql.query(`SELECT blocked_id, created_at FROM blocks WHERE user_id = $1 ORDER BY created_at DESC, blocked_id`, [userId]);
    return rows.map((r) => ({ userId: r.blocked_id as string, since: num(r.created_at) }));
  }

  /** The users `userId` blocks (cached, see the class comment). */
  async blockedBy(userId: string): Promise<ReadonlySet<string>> {
    const held = this.cache.get(userId);
    const now = this.clock.now();
    if (held && now - held.at < CACHE_MS) return held.blocked;
    const rows = await this.sql.query<{ blocked_id: string }>(`SELECT blocked_id FROM blocks WHERE user_id = $1`, [userId]);
    const blocked = rows.length === 0 ? NONE : new Set(rows.map((r) => r.blocked_id));
    this.cache.delete(userId);
    this.cache.set(userId, { at: now, blocked });
    if (this.cache.size > CACHE_MAX) this.cache.delete(this.cache.keys().next().value!);
    return blocked;
  }

  /** Of `userIds`, those who block `blockedId`: one query for the whole list. */
  async blockersAmong(blockedId: string, userIds: readonly string[]): Promise<Set<string>> {
    if (userIds.length === 0) return new Set();
    const rows = await this.sql.query<{ user_id: string }>(
      `SELECT user_id FROM blocks WHERE blocked_id = $1 AND user_id IN (SELECT value::uuid FROM json_array_elements_text($2::json))`,
      [blockedId, JSON.stringify([...new Set(userIds)])],
    );
    return new Set(rows.map((r) => r.user_id));
  }
}
