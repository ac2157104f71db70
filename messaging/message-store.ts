// MessageStore: conversations, messages (stored once, gap-free seq) and per-device cursors, over the SQL port.
import { createHash } from 'node:crypto';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { GroupCommit } from '../platform/group-commit.js';
import { num, type Sql } from '../platform/sql.js';
import { type AppendInput, type AppendResult, appendBatch, type SystemEvent } from './append.js';

export type { AppendInput, AppendResult, SystemEvent } from './append.js';

/**
 * A stored message as one device sees it. `body` is null when it carries nothing for that
 * device (its own sends, a direct message from before it existed) unless it is a system
 * message. Group messages have `group` set, a shared `body` and maybe a per-device `key`.
 */
export interface StoredMessage {
  conversationId: string;
  seq: number;
  id: string;
  from: string;
  fromDevice: string | null;
  sentAt: number;
  body: string | null;
  key: string | null;
  system: SystemEvent | null;
  group: boolean;
  /** A disappearing message: when it is erased (epoch ms); null for others. */
  expiresAt: number | null;
  /** Deleted for everyone by its sender: a tombstone, `body` '' (for the devices it was for) and no key. */
  deleted?: true;
}

/** What became of a delete for everyone (MessageStore.unsend). */
export type UnsendOutcome = 'deleted' | 'not_found' | 'too_late';

export interface DeviceConversation {
  conversationId: string;
  /** The last seq this device may see: the conversation's, or where the user's membership ended. */
  lastSeq: number;
  delivered: number;
  /** A direct conversation (receipts are kept for these: see receiptState), not a group. */
  direct: boolean;
}

/** The seqs of a conversation a user may see: `joinedSeq` through `leftSeq` (null: still a member). */
export interface MembershipWindow {
  joinedSeq: number;
  leftSeq: number | null;
}

export interface CursorUpdate {
  deviceId: string;
  conversationId: string;
  delivered: number;
  read: number;
}

export interface ReceiptState {
  conversationId: string;
  userId: string;
  delivered: number;
  read: number;
}

/** A stable shard for a conversation id (uuid: its last 8 hex digits). */
function shardOf(conversationId: string, shards: number): number {
  return shards === 1 ? 0 : parseInt(conversationId.slice(-8), 16) % shards;
}

/**
 * Storage model (see migrations.ts for the tables):
 * - Appends go through a group commit: one statement per batch (append.ts) takes the
 *   conversations' row locks in id order, refuses sends for an older membership version,
 *   bumps `last_seq` by the batch's count, and inserts the rows, so `seq` is gap-free per
 *   conversation and a send is acknowledged only once durable. Batches are sharded by
 *   conversation: shards commit concurrently (PostgreSQL uses several connections), while
 *   one conversation's sends stay in one shard, in submission order.
 * - A client id already stored for the sending device returns the original seq (idempotent).
 * - Cursor writes are batched the same way and only ever move forward (greatest()).
 * - Rows are erased by the purge (messaging/purge.ts): acknowledged, too old, or expired. A seq
 *   at or below `last_seq` with no row was erased; `fetch` never returns an expired message.
 */
export class MessageStore {
  /** One group commit per shard; a conversation always uses the same shard, so its sends commit in order. */
  private readonly appends: GroupCommit<AppendInput, AppendResult | AppError>[];
  private readonly cursors: GroupCommit<CursorUpdate, void>;
  private readonly knownDirect = new Map<string, string>();
  private readonly membersCache = new Map<string, readonly string[]>();
  private readonly kinds = new Map<string, 'direct' | 'group'>();

  constructor(
    private readonly sql: Sql,
    /** Stamps `sent_at` and hides expired messages; the message path checks a send's expiry against it too. */
    readonly clock: Clock,
    options: { batchMax?: number; onBatch?: (size: number) => void; shards?: number; lingerMs?: number } = {},
  ) {
    this.appends = Array.from(
      { length: Math.max(1, options.shards ?? 4) },
      () =>
        new GroupCommit((items: AppendInput[]) => this.appendBatch(items), {
          maxBatch: options.batchMax,
          onBatch: options.onBatch,
          lingerMs: options.lingerMs,
        }),
    );
    this.cursors = new GroupCommit((items) => this.writeCursors(items), { maxBatch: 1024 });
  }

  /** The id of the direct conversation between two users: the same whichever of them asks. */
  static directConversationId(a: string, b: string): string {
    const [lo, hi] = a < b ? [a, b] : [b, a];
    const h = createHash('sha256').update(`parley:direct:${lo}:${hi}`).digest();
    h[6] = (h[6]! & 0x0f) | 0x80; // UUID version 8 (custom)
    h[8] = (h[8]! & 0x3f) | 0x80; // RFC 4122 variant
    const x = h.subarray(0, 16).toString('hex');
    return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
  }

  /** Creates the direct conversation of two existing users if it does not exist; returns its id. */
  async ensureDirect(a: string, b: string): Promise<string> {
    const pair = a < b ? `${a}:${b}` : `${b}:${a}`;
    const known = this.knownDirect.get(pair);
    if (known) return known;
    const id = MessageStore.directConversationId(a, b);
    await this.sql.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO conversations (id, kind, last_seq, created_at) VALUES ($1, 'direct', 0, $2) ON CONFLICT (id) DO NOTHING`,
        [id, this.clock.now()],
      );
      await tx.query(
        `INSERT INTO conversation_members (conversation_id, user_id) VALUES ($1, $2), ($1, $3) ON CONFLICT DO NOTHING`,
        [id, a, b],
      );
    });
    this.knownDirect.set(pair, id);
    this.membersCache.set(id, a === b ? [a] : [a, b]);
    return id;
  }

  /**
   * Current member user ids of a conversation ([] when it does not exist). Direct memberships
   * never change, so they are cached; group memberships are read each time (groups/ caches them).
   */
  async members(conversationId: string): Promise<readonly string[]> {
    const cached = this.membersCache.get(conversationId);
    if (cached) return cached;
    const rows = await this.sql.query<{ user_id: string; kind: string }>(
      `SELECT m.user_id, c.kind FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
        WHERE m.conversation_id = $1 AND m.left_seq IS NULL ORDER BY m.user_id`,
      [conversationId],
    );
    const members = rows.map((r) => r.user_id);
    if (members.length > 0 && rows[0]!.kind === 'direct') this.membersCache.set(conversationId, members);
    return members;
  }

  /** Of `others`, the users `userId` shares a direct conversation with: one query for the whole list. */
  async directPeers(userId: string, others: readonly string[]): Promise<Set<string>> {
    if (others.length === 0) return new Set();
    const byConversation = new Map(others.map((u) => [MessageStore.directConversationId(userId, u), u]));
    const rows = await this.sql.query<{ conversation_id: string }>(
      `SELECT conversation_id FROM conversation_members
        WHERE user_id = $1 AND conversation_id IN (SELECT json_array_elements_text($2::json)::uuid)`,
      [userId, JSON.stringify([...byConversation.keys()])],
    );
    return new Set(rows.map((r) => byConversation.get(r.conversation_id)!).filter((u) => u !== undefined));
  }

  /** Whether the conversation is direct or a group (null when it does not exist). Kinds never change, so they are cached. */
  async kind(conversationId: string): Promise<'direct' | 'group' | null> {
    const known = this.kinds.get(conversationId);
    if (known) return known;
    const [row] = await this.sql.query<{ kind: 'direct' | 'group' }>(`SELECT kind FROM conversations WHERE id = $1`, [conversationId]);
    if (!row) return null;
    this.kinds.set(conversationId, row.kind);
    if (this.kinds.size > 100_000) this.kinds.delete(this.kinds.keys().next().value!);
    return row.kind;
  }

  /** Whether the user can see (part of) the conversation: a member now, or one who left (up to leaving). */
  async hasSeen(userId: string, conversationId: string): Promise<boolean> {
    if (this.membersCache.get(conversationId)?.includes(userId)) return true;
    const rows = await this.sql.query(`SELECT 1 FROM conversation_members WHERE conversation_id = $1 AND user_id = $2`, [conversationId, userId]);
    return rows.length > 0;
  }

  /** The conversation's highest seq (0 when it has none or does not exist). */
  async lastSeq(conversationId: string): Promise<number> {
    const [row] = await this.sql.query(`SELECT last_seq FROM conversations WHERE id = $1`, [conversationId]);
    return num(row?.last_seq);
  }

  /** Appends a message durably; resolves once committed. Rejects with the store's AppError. */
  async append(input: AppendInput): Promise<AppendResult> {
    const r = await this.appends[shardOf(input.conversationId, this.appends.length)]!.submit(input);
    if (r instanceof AppError) throw r;
    return r;
  }

  /** The device's conversations with the last seq it may see and its delivered cursor. */
  async deviceConversations(deviceId: string, userId: string): Promise<DeviceConversation[]> {
    const rows = await this.sql.query(
      `SELECT c.id, least(c.last_seq, coalesce(m.left_seq, c.last_seq)) AS last_seq, coalesce(dc.delivered_seq, 0) AS delivered,
              c.kind = 'direct' AS direct
         FROM conversation_members m
         JOIN conversations c ON c.id = m.conversation_id
         LEFT JOIN device_cursors dc ON dc.device_id = $1 AND dc.conversation_id = m.conversation_id
        WHERE m.user_id = $2`,
      [deviceId, userId],
    );
    return rows.map((r) => ({ conversationId: r.id as string, lastSeq: num(r.last_seq), delivered: num(r.delivered), direct: r.direct === true }));
  }

  /**
   * The user's current membership window: from the system message that added them to a group
   * (0 for a direct conversation, or when they are not a member) to the one that removed them
   * (null while a member). Read only when a device's sync finds seqs missing, to tell erased
   * messages from ones it may never see.
   */
  async membershipWindow(conversationId: string, userId: string): Promise<MembershipWindow> {
    const [row] = await this.sql.query(`SELECT joined_seq, left_seq FROM conversation_members WHERE conversation_id = $1 AND user_id = $2`, [
      conversationId,
      userId,
    ]);
    return { joinedSeq: num(row?.joined_seq), leftSeq: row?.left_seq === null || row?.left_seq === undefined ? null : num(row.left_seq) };
  }

  /**
   * Messages after `afterSeq` that the user may see (within their membership window), in seq
   * order, as `deviceId` sees them: at most `limit` rows and, when `maxBytes` is given, only the
   * rows that start before `maxBytes` bytes of ciphertext (body and key) were returned: always
   * the first row, however big, so that paging by bytes always makes progress. A disappearing
   * message is left out from its expiry on, even before the purge erased it. Seqs that are
   * missing in between were erased (messaging/purge.ts).
   */
  async fetch(
    conversationId: string,
    deviceId: string,
    userId: string,
    afterSeq: number,
    limit: number,
    maxBytes = Number.MAX_SAFE_INTEGER,
  ): Promise<StoredMessage[]> {
    // The window sum runs over the LIMITed page only (not the whole backlog), then cuts it by bytes.
    const rows = await this.sql.query(
      `SELECT * FROM (
         SELECT p.*, coalesce(octet_length(p.body), 0) + coalesce(octet_length(p.key), 0) AS size,
                sum(coalesce(octet_length(p.body), 0) + coalesce(octet_length(p.key), 0)) OVER (ORDER BY p.seq) AS upto
           FROM (
             SELECT m.seq, m.client_id, m.sender_id, m.sender_device_id, m.sent_at, m.system, m.expires_at, m.deleted_at, c.kind,
                    CASE WHEN m.system IS NOT NULL OR m.sender_device_id = $3::uuid THEN NULL ELSE coalesce(m.body, m.payloads ->> $3::text) END AS body,
                    CASE WHEN (m.body IS NULL AND m.system IS NULL) OR m.deleted_at IS NOT NULL THEN NULL ELSE m.payloads ->> $3::text END AS key
               FROM messages m
               JOIN conversations c ON c.id = m.conversation_id
               JOIN conversation_members cm ON cm.conversation_id = m.conversation_id AND cm.user_id = $5
              WHERE m.conversation_id = $1 AND m.seq > $2 AND m.seq >= cm.joined_seq AND (cm.left_seq IS NULL OR m.seq <= cm.left_seq)
                AND (m.expires_at IS NULL OR m.expires_at > $7)
              ORDER BY m.seq LIMIT $4
           ) p
       ) page
       WHERE page.upto - page.size < $6::bigint
       ORDER BY page.seq`,
      [conversationId, afterSeq, deviceId, limit, userId, maxBytes, this.clock.now()],
    );
    return rows.map((r) => ({
      conversationId,
      seq: num(r.seq),
      id: r.client_id as string,
      from: r.sender_id as string,
      fromDevice: (r.sender_device_id as string | null) ?? null,
      sentAt: num(r.sent_at),
      body: (r.body as string | null) ?? null,
      key: (r.key as string | null) ?? null,
      system: (r.system as SystemEvent | null) ?? null,
      group: r.kind === 'group',
      expiresAt: r.expires_at === null || r.expires_at === undefined ? null : num(r.expires_at),
      ...(r.deleted_at === null || r.deleted_at === undefined ? {} : { deleted: true as const }),
    }));
  }

  /** Moves cursors forward (never back); batched. Resolves once durable. */
  advanceCursor(update: CursorUpdate): Promise<void> {
    return this.cursors.submit(update);
  }

  /**
   * For each direct conversation of `userId`, the other member's highest delivered and read seq
   * over their devices; none from a member who blocks `userId` (a blocker's receipts are hidden).
   */
  async receiptState(userId: string): Promise<ReceiptState[]> {
    const rows = await this.sql.query(
      `SELECT dc.conversation_id, d.user_id, max(dc.delivered_seq) AS delivered, max(dc.read_seq) AS read
         FROM conversation_members m
         JOIN conversations c ON c.id = m.conversation_id AND c.kind = 'direct'
         JOIN device_cursors dc ON dc.conversation_id = m.conversation_id
         JOIN devices d ON d.id = dc.device_id
        WHERE m.user_id = $1 AND d.user_id <> $1
          AND NOT EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = d.user_id AND b.blocked_id = $1)
        GROUP BY dc.conversation_id, d.user_id`,
      [userId],
    );
    return rows.map((r) => ({
      conversationId: r.conversation_id as string,
      userId: r.user_id as string,
      delivered: num(r.delivered),
      read: num(r.read),
    }));
  }

  /**
   * Deletes a message for everyone: only the device that sent it (`deviceId`), and only until
   * `sentAfter` (the send time the window still allows). Its ciphertext is erased for the
   * devices that have not fetched it (every payload and the shared body become '', the device
   * keys stay so the acked purge still sees whom it was for) and the row stays, so seqs stay
   * gap-free and those devices get a tombstone. A message that is not this device's, is a
   * system message, or is no longer stored is `not_found` (the same answer); one past the
   * window is `too_late`. Deleting again is `deleted` whatever the window.
   */
  async unsend(conversationId: string, seq: number, deviceId: string, sentAfter: number): Promise<UnsendOutcome> {
    return this.sql.transaction(async (tx) => {
      const [row] = await tx.query(
        `SELECT sent_at, deleted_at FROM messages WHERE conversation_id = $1 AND seq = $2 AND sender_device_id = $3 AND system IS NULL FOR UPDATE`,
        [conversationId, seq, deviceId],
      );
      if (!row) return 'not_found';
      if (row.deleted_at !== null) return 'deleted';
      if (num(row.sent_at) < sentAfter) return 'too_late';
      await tx.query(
        `UPDATE messages SET deleted_at = $3, body = CASE WHEN body IS NULL THEN NULL ELSE '' END,
                payloads = (SELECT coalesce(jsonb_object_agg(k, ''), '{}'::jsonb) FROM jsonb_object_keys(payloads) AS k)
          WHERE conversation_id = $1 AND seq = $2`,
        [conversationId, seq, this.clock.now()],
      );
      await tx.query(`UPDATE message_index SET deleted = true WHERE conversation_id = $1 AND seq = $2`, [conversationId, seq]);
      return 'deleted';
    });
  }

  /**
   * Erases what a user whose account is being deleted has on the message side: every direct
   * conversation of theirs, whole (its messages both ways, cursors, shares, mutes: the schema's
   * cascades), every message they sent to a group that is still stored (their groups' system
   * messages stay: the other members' clients need them), and their devices' sealed keys in
   * group messages. Members who had not fetched those group messages get `expired` for them.
   * Run before the user row is deleted (it finds the conversations through the user's
   * memberships, and the devices by the user).
   */
  async eraseUser(userId: string): Promise<void> {
    const direct = await this.sql.transaction(async (tx) => {
      const gone = await tx.query<{ id: string }>(
        `DELETE FROM conversations WHERE kind = 'direct' AND id IN (SELECT conversation_id FROM conversation_members WHERE user_id = $1) RETURNING id`,
        [userId],
      );
      const ids = JSON.stringify(gone.map((r) => r.id));
      await tx.query(`DELETE FROM message_index WHERE conversation_id IN (SELECT value::uuid FROM json_array_elements_text($1::json))`, [ids]);
      const groups = `(SELECT conversation_id FROM conversation_members WHERE user_id = $1)`;
      await tx.query(`DELETE FROM messages WHERE conversation_id IN ${groups} AND sender_id = $1 AND system IS NULL`, [userId]);
      // What others sent its devices in groups (sealed keys) goes too.
      await tx.query(
        `UPDATE messages m SET payloads = m.payloads - d.ids
           FROM (SELECT array_agg(id::text) AS ids FROM devices WHERE user_id = $1) d
          WHERE m.conversation_id IN ${groups} AND d.ids IS NOT NULL AND m.payloads ?| d.ids`,
        [userId],
      );
      await tx.query(`DELETE FROM message_index WHERE conversation_id IN ${groups} AND sender_id = $1 AND NOT system`, [userId]);
      return gone.map((r) => r.id);
    });
    for (const id of direct) {
      this.membersCache.delete(id);
      this.kinds.delete(id);
    }
    const gone = new Set(direct);
    for (const [pair, id] of this.knownDirect) if (gone.has(id)) this.knownDirect.delete(pair);
  }

  /** Waits for batched writes in flight. */
  async flush(): Promise<void> {
    for (const a of this.appends) await a.idle();
    await this.cursors.idle();
  }

  private async appendBatch(items: AppendInput[]): Promise<(AppendResult | AppError)[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        // One statement, which commits on its own.
        return await appendBatch(this.sql, items, this.clock.now());
      } catch (err) {
        // A concurrent process may have stored one of these client ids (conflict) or the lock
        // order may have deadlocked: retrying re-reads the duplicates and re-assigns seqs.
        const retryable = err instanceof AppError && (err.code === 'conflict' || err.details?.retry === true);
        if (!retryable || attempt >= 3) throw err;
      }
    }
  }

  private async writeCursors(items: CursorUpdate[]): Promise<void[]> {
    const merged = new Map<string, CursorUpdate>();
    for (const u of items) {
      const k = `${u.deviceId}:${u.conversationId}`;
      const m = merged.get(k);
      if (!m) merged.set(k, { ...u });
      else {
        m.delivered = Math.max(m.delivered, u.delivered);
        m.read = Math.max(m.read, u.read);
      }
    }
    await this.sql.query(
      `INSERT INTO device_cursors (device_id, conversation_id, delivered_seq, read_seq)
       SELECT d, c, dl, rd FROM json_to_recordset($1::json) AS v(d uuid, c uuid, dl bigint, rd bigint)
       ON CONFLICT (device_id, conversation_id) DO UPDATE
         SET delivered_seq = greatest(device_cursors.delivered_seq, excluded.delivered_seq),
             read_seq = greatest(device_cursors.read_seq, excluded.read_seq)`,
      [JSON.stringify([...merged.values()].map((u) => ({ d: u.deviceId, c: u.conversationId, dl: u.delivered, rd: u.read })))],
    );
    return items.map(() => undefined);
  }
}
