// GroupStore: groups, their members and roles, and per-member receipts, over the SQL port.
import { listedDevice, type ListedDeviceJson } from '../protocol/frames.js';
import { randomUUID } from 'node:crypto';
import { appendSystemTx, type SystemEvent } from '../messaging/append.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { num, type Sql, type SqlTx } from '../platform/sql.js';

import type { GroupInfo, GroupRole } from '../protocol/frames.js';

export type { GroupInfo } from '../protocol/frames.js';
export type Role = GroupRole;

/** One member's place in a group: their role and the window of seqs they may see. */
export interface MemberRow {
  userId: string;
  role: Role;
  joinedSeq: number;
  /** The last seq they may see (the system message that took them out); null while a member. */
  leftSeq: number | null;
}

/** Every membership row of a group (current and former), as of `version`. */
export interface Membership {
  groupId: string;
  /** The seq of the last membership change. */
  version: number;
  members: MemberRow[];
}

export interface MemberReceipts {
  userId: string;
  delivered: number;
  read: number;
}

const jsonIds = (ids: readonly string[]) => JSON.stringify([...ids]);
const IDS = `(SELECT value::uuid FROM json_array_elements_text($2::json))`;

/** The highest seqs every one of `members` has received and read (0 when there are none). */
export function aggregate(members: readonly MemberReceipts[]): { delivered: number; read: number } {
  if (members.length === 0) return { delivered: 0, read: 0 };
  return { delivered: Math.min(...members.map((m) => m.delivered)), read: Math.min(...members.map((m) => m.read)) };
}

/** Whether `seq` lies in the member's window. */
export function sees(m: MemberRow, seq: number): boolean {
  return m.joinedSeq <= seq && (m.leftSeq === null || seq <= m.leftSeq);
}

/**
 * A group inside a change transaction: its row is locked (the same lock every send to it takes),
 * so checks made here hold until commit. Each change is recorded as a system message.
 */
export class LockedGroup {
  constructor(
    private readonly tx: SqlTx,
    private readonly now: number,
    readonly id: string,
    readonly name: string,
    readonly ownerId: string,
    /** Current members by user id. */
    readonly members: Map<string, MemberRow>,
  ) {}

  /**
   * Records the change as the group's next message; membership changes also move its version.
   * `keys`: per member device, what the acting device encrypted for it (the group's metadata key).
   */
  record(actorId: string, event: SystemEvent, keys?: Record<string, string>): Promise<number> {
    const membership = event.kind !== 'renamed';
    return appendSystemTx(this.tx, this.id, actorId, event, this.now, membership, keys);
  }

  /**
   * Adds (or re-adds) users as members from `seq` on; `not_found` if any user does not exist,
   * or blocks `addedBy`: the same answer, so a refused add does not tell a block from a typo.
   */
  async add(userIds: readonly string[], seq: number, addedBy: string | null = null): Promise<void> {
    const rows = await this.tx.query(
      `INSERT INTO conversation_members (conversation_id, user_id, role, joined_seq, left_seq, joined_at)
       SELECT $1, u.id, 'member', $3, NULL, $4 FROM users u
        WHERE u.id IN ${IDS} AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = u.id AND b.blocked_id = $5)
       ON CONFLICT (conversation_id, user_id) DO UPDATE
         SET role = 'member', joined_seq = excluded.joined_seq, left_seq = NULL, joined_at = excluded.joined_at
       RETURNING user_id`,
      [this.id, jsonIds(userIds), seq, this.now, addedBy],
    );
    if (rows.length !== new Set(userIds).size) throw new AppError('not_found', 'no such user');
  }

  /** Ends the users' membership at `seq` (they still see that system message). */
  async remove(userIds: readonly string[], seq: number): Promise<void> {
    await this.tx.query(`UPDATE conversation_members SET left_seq = $3 WHERE conversation_id = $1 AND user_id IN ${IDS} AND left_seq IS NULL`, [
      this.id,
      jsonIds(userIds),
      seq,
    ]);
  }

  async setRole(userId: string, role: Role): Promise<void> {
    await this.tx.query(`UPDATE conversation_members SET role = $3 WHERE conversation_id = $1 AND user_id = $2`, [this.id, userId, role]);
    if (role === 'owner') await this.tx.query(`UPDATE groups SET owner_id = $2 WHERE id = $1`, [this.id, userId]);
  }

  /** The device ids of these users, read inside the change's transaction. */
  async deviceIds(userIds: readonly string[]): Promise<Set<string>> {
    const rows = await this.tx.query<{ id: string }>(`SELECT id FROM devices WHERE user_id IN (SELECT value::uuid FROM json_array_elements_text($1::json))`, [
      jsonIds(userIds),
    ]);
    return new Set(rows.map((r) => r.id));
  }

  async rename(name: string): Promise<void> {
    await this.tx.query(`UPDATE groups SET name = $2 WHERE id = $1`, [this.id, name]);
  }

  async markDeleted(): Promise<void> {
    await this.tx.query(`UPDATE groups SET deleted_at = $2 WHERE id = $1`, [this.id, this.now]);
  }
}

/**
 * Tables (platform/migrations.ts, version 2): `groups` (name, owner, deleted_at), and the
 * group's conversation in `conversations` (same id) with its members in
 * `conversation_members` (role and seq window). Deleted groups keep their rows so members'
 * devices can still sync the stream up to the `deleted` system message.
 */
export class GroupStore {
  constructor(
    private readonly sql: Sql,
    private readonly clock: Clock,
  ) {}

  /**
   * Creates a group owned by `ownerId` with the other members; returns its id and the `created`
   * seq (1). `options.id` proposes the id (a uuid; `conflict` when taken), so a client can bind
   * its encrypted metadata to the group before it exists.
   */
  async create(
    ownerId: string,
    name: string,
    memberIds: readonly string[],
    options: { id?: string; device?: string; keys?: Record<string, string> } = {},
  ): Promise<{ id: string; seq: number }> {
    const id = options.id ?? randomUUID();
    const now = this.clock.now();
    const others = [...new Set(memberIds)].filter((u) => u !== ownerId);
    return this.sql.transaction(async (tx) => {
      await tx.query(`INSERT INTO conversations (id, kind, last_seq, created_at) VALUES ($1, 'group', 0, $2)`, [id, now]);
      await tx.query(`INSERT INTO groups (id, name, owner_id, created_at) VALUES ($1, $2, $3, $4)`, [id, name, ownerId, now]);
      const g = new LockedGroup(tx, now, id, name, ownerId, new Map());
      const event: SystemEvent = { kind: 'created', name, users: [ownerId, ...others], ...(options.device ? { device: options.device } : {}) };
      const seq = await g.record(ownerId, event, options.keys);
      await g.add([ownerId, ...others], seq, ownerId);
      await g.setRole(ownerId, 'owner');
      return { id, seq };
    });
  }

  /** The group as its members see it; null when it does not exist or was deleted. */
  async info(groupId: string): Promise<GroupInfo | null> {
    const [g] = await this.sql.query(
      `SELECT g.name, g.owner_id, g.created_at, c.last_seq, c.members_version
         FROM groups g JOIN conversations c ON c.id = g.id WHERE g.id = $1 AND g.deleted_at IS NULL`,
      [groupId],
    );
    if (!g) return null;
    const members = await this.sql.query(
      `SELECT user_id, role, joined_seq FROM conversation_members
        WHERE conversation_id = $1 AND left_seq IS NULL ORDER BY joined_at, user_id`,
      [groupId],
    );
    return {
      id: groupId,
      name: g.name as string,
      ownerId: g.owner_id as string,
      createdAt: num(g.created_at),
      lastSeq: num(g.last_seq),
      membersVersion: num(g.members_version),
      members: members.map((m) => ({ userId: m.user_id as string, role: m.role as Role, joinedSeq: num(m.joined_seq) })),
    };
  }

  /** The groups the user is a member of now, newest activity first. */
  async listFor(userId: string): Promise<{ id: string; name: string; role: Role; members: number; lastSeq: number }[]> {
    const rows = await this.sql.query(
      `SELECT g.id, g.name, m.role, c.last_seq,
              (SELECT count(*) FROM conversation_members x WHERE x.conversation_id = g.id AND x.left_seq IS NULL) AS n
         FROM conversation_members m
         JOIN groups g ON g.id = m.conversation_id AND g.deleted_at IS NULL
         JOIN conversations c ON c.id = g.id
        WHERE m.user_id = $1 AND m.left_seq IS NULL
        ORDER BY c.last_seq DESC, g.id`,
      [userId],
    );
    return rows.map((r) => ({ id: r.id as string, name: r.name as string, role: r.role as Role, members: num(r.n), lastSeq: num(r.last_seq) }));
  }

  /** Every membership row with its window; null when the group does not exist. */
  async membership(groupId: string): Promise<Membership | null> {
    const rows = await this.sql.query(
      `SELECT c.members_version, m.user_id, m.role, m.joined_seq, m.left_seq
         FROM conversations c LEFT JOIN conversation_members m ON m.conversation_id = c.id
        WHERE c.id = $1 AND c.kind = 'group'`,
      [groupId],
    );
    if (rows.length === 0) return null;
    return {
      groupId,
      version: num(rows[0]!.members_version),
      members: rows
        .filter((r) => r.user_id !== null)
        .map((r) => ({
          userId: r.user_id as string,
          role: r.role as Role,
          joinedSeq: num(r.joined_seq),
          leftSeq: r.left_seq === null ? null : num(r.left_seq),
        })),
    };
  }

  /**
   * Runs a change with the group locked; `not_found` when it does not exist or was deleted.
   * Whatever `fn` records commits with it, atomically.
   */
  async change<T>(groupId: string, fn: (g: LockedGroup) => Promise<T>): Promise<T> {
    return this.sql.transaction(async (tx) => {
      const [g] = await tx.query(
        `SELECT g.name, g.owner_id FROM conversations c JOIN groups g ON g.id = c.id
          WHERE c.id = $1 AND g.deleted_at IS NULL FOR UPDATE OF c`,
        [groupId],
      );
      if (!g) throw new AppError('not_found', 'no such group');
      const rows = await tx.query(
        `SELECT user_id, role, joined_seq FROM conversation_members WHERE conversation_id = $1 AND left_seq IS NULL ORDER BY joined_at, user_id`,
        [groupId],
      );
      const members = new Map(
        rows.map((r) => [r.user_id as string, { userId: r.user_id as string, role: r.role as Role, joinedSeq: num(r.joined_seq), leftSeq: null }]),
      );
      return fn(new LockedGroup(tx, this.clock.now(), groupId, g.name as string, g.owner_id as string, members));
    });
  }

  /**
   * Each current member's highest delivered and read seq over their devices (members without
   * devices are left out). With `viewer`, a member who blocks the viewer is marked `blocksViewer`
   * (their receipts are hidden from the users they block).
   */
  async receipts(groupId: string, viewer?: string): Promise<(MemberReceipts & { blocksViewer?: true })[]> {
    const rows = await this.sql.query(
      `SELECT m.user_id, coalesce(max(dc.delivered_seq), 0) AS delivered, coalesce(max(dc.read_seq), 0) AS read,
              EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = m.user_id AND b.blocked_id = $2::uuid) AS blocks_viewer
         FROM conversation_members m
         JOIN devices d ON d.user_id = m.user_id
         LEFT JOIN device_cursors dc ON dc.device_id = d.id AND dc.conversation_id = m.conversation_id
        WHERE m.conversation_id = $1 AND m.left_seq IS NULL
        GROUP BY m.user_id
        ORDER BY m.user_id`,
      [groupId, viewer ?? null],
    );
    return rows.map((r) => ({
      userId: r.user_id as string,
      delivered: num(r.delivered),
      read: num(r.read),
      ...(r.blocks_viewer === true ? { blocksViewer: true as const } : {}),
    }));
  }

  /** The devices (id and public key) of each of the users. */
  async devicesOf(userIds: readonly string[]): Promise<Map<string, ListedDeviceJson[]>> {
    const rows = await this.sql.query<{ user_id: string; id: string; public_key: string; vouched_by: string | null; vouch_signature: string | null }>(
      `SELECT user_id, id, public_key, vouched_by, vouch_signature FROM devices WHERE user_id IN (SELECT value::uuid FROM json_array_elements_text($1::json))
        ORDER BY user_id, created_at, id`,
      [jsonIds(userIds)],
    );
    const out = new Map<string, ListedDeviceJson[]>();
    for (const r of rows) {
      let list = out.get(r.user_id);
      if (!list) out.set(r.user_id, (list = []));
      list.push(listedDevice(r.id, r.public_key, r.vouched_by, r.vouch_signature));
    }
    return out;
  }
}
