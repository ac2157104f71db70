// MessageStore: conversations, messages (stored once, gap-free seq) and per-device cursors, over the SQL port.
import { createHash } from 'node:crypto';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { GroupCommit } from '../platform/group-commit.js';
import { num, type Sql, type SqlTx } from '../platform/sql.js';

/** A message to append. `payloads` maps each recipient device id to its ciphertext (base64). */
export interface AppendInput {
  conversationId: string;
  senderId: string;
  senderDeviceId: string;
  clientId: string;
  payloads: Record<string, string>;
}

export interface AppendResult {
  conversationId: string;
  seq: number;
  sentAt: number;
  /** True when this client id had already been stored: the original seq is returned. */
  duplicate: boolean;
}

/** A stored message as one device sees it: `body` is null when it carries nothing for that device. */
export interface StoredMessage {
  conversationId: string;
  seq: number;
  id: string;
  from: string;
  fromDevice: string;
  sentAt: number;
  body: string | null;
}

export interface DeviceConversation {
  conversationId: string;
  lastSeq: number;
  delivered: number;
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
 * - Appends go through a group commit: one transaction per batch takes the conversations'
 *   row locks in id order, bumps `last_seq` by the batch's count, and inserts the rows, so
 *   `seq` is gap-free per conversation and a send is acknowledged only once durable. Batches
 *   are sharded by conversation: shards commit concurrently (PostgreSQL uses several
 *   connections), while one conversation's sends stay in one shard, in submission order.
 * - A client id already stored for the sending device returns the original seq (idempotent).
 * - Cursor writes are batched the same way and only ever move forward (greatest()).
 */
export class MessageStore {
  /** One group commit per shard; a conversation always uses the same shard, so its sends commit in order. */
  private readonly appends: GroupCommit<AppendInput, AppendResult | AppError>[];
  private readonly cursors: GroupCommit<CursorUpdate, void>;
  private readonly knownDirect = new Map<string, string>();
  private readonly membersCache = new Map<string, readonly string[]>();

  constructor(
    private readonly sql: Sql,
    private readonly clock: Clock,
    options: { batchMax?: number; onBatch?: (size: number) => void; shards?: number } = {},
  ) {
    this.appends = Array.from(
      { length: Math.max(1, options.shards ?? 4) },
      () => new GroupCommit((items: AppendInput[]) => this.appendBatch(items), { maxBatch: options.batchMax, onBatch: options.onBatch }),
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

  /** Member user ids of a conversation ([] when it does not exist). Direct memberships never change, so they are cached. */
  async members(conversationId: string): Promise<readonly string[]> {
    const cached = this.membersCache.get(conversationId);
    if (cached) return cached;
    const rows = await this.sql.query<{ user_id: string }>(
      `SELECT user_id FROM conversation_members WHERE conversation_id = $1 ORDER BY user_id`,
      [conversationId],
    );
    const members = rows.map((r) => r.user_id);
    if (members.length > 0) this.membersCache.set(conversationId, members);
    return members;
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

  /** The device's conversations with their last seq and the device's delivered cursor. */
  async deviceConversations(deviceId: string, userId: string): Promise<DeviceConversation[]> {
    const rows = await this.sql.query(
      `SELECT c.id, c.last_seq, coalesce(dc.delivered_seq, 0) AS delivered
         FROM conversation_members m
         JOIN conversations c ON c.id = m.conversation_id
         LEFT JOIN device_cursors dc ON dc.device_id = $1 AND dc.conversation_id = m.conversation_id
        WHERE m.user_id = $2`,
      [deviceId, userId],
    );
    return rows.map((r) => ({ conversationId: r.id as string, lastSeq: num(r.last_seq), delivered: num(r.delivered) }));
  }

  /** Messages after `afterSeq`, in seq order, with this device's ciphertext (or null). */
  async fetch(conversationId: string, deviceId: string, afterSeq: number, limit: number): Promise<StoredMessage[]> {
    const rows = await this.sql.query(
      `SELECT seq, client_id, sender_id, sender_device_id, sent_at, payloads ->> $3 AS body
         FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $4`,
      [conversationId, afterSeq, deviceId, limit],
    );
    return rows.map((r) => ({
      conversationId,
      seq: num(r.seq),
      id: r.client_id as string,
      from: r.sender_id as string,
      fromDevice: r.sender_device_id as string,
      sentAt: num(r.sent_at),
      body: (r.body as string | null) ?? null,
    }));
  }

  /** Moves cursors forward (never back); batched. Resolves once durable. */
  advanceCursor(update: CursorUpdate): Promise<void> {
    return this.cursors.submit(update);
  }

  /** For each conversation of `userId`, the other members' highest delivered and read seq over their devices. */
  async receiptState(userId: string): Promise<ReceiptState[]> {
    const rows = await this.sql.query(
      `SELECT dc.conversation_id, d.user_id, max(dc.delivered_seq) AS delivered, max(dc.read_seq) AS read
         FROM conversation_members m
         JOIN device_cursors dc ON dc.conversation_id = m.conversation_id
         JOIN devices d ON d.id = dc.device_id
        WHERE m.user_id = $1 AND d.user_id <> $1
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

  /** Waits for batched writes in flight. */
  async flush(): Promise<void> {
    for (const a of this.appends) await a.idle();
    await this.cursors.idle();
  }

  private async appendBatch(items: AppendInput[]): Promise<(AppendResult | AppError)[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.sql.transaction((tx) => this.appendTx(tx, items));
      } catch (err) {
        // A concurrent process may have stored one of these client ids (conflict) or the lock
        // order may have deadlocked: retrying re-reads the duplicates and re-assigns seqs.
        const retryable = err instanceof AppError && (err.code === 'conflict' || err.details?.retry === true);
        if (!retryable || attempt >= 3) throw err;
      }
    }
  }

  private async appendTx(tx: SqlTx, items: AppendInput[]): Promise<(AppendResult | AppError)[]> {
    const key = (d: string, c: string) => `${d}\u0000${c}`;
    const existing = await tx.query(
      `SELECT m.sender_device_id AS d, m.client_id AS c, m.conversation_id, m.seq, m.sent_at
         FROM messages m JOIN json_to_recordset($1::json) AS k(d uuid, c text)
           ON m.sender_device_id = k.d AND m.client_id = k.c`,
      [JSON.stringify(items.map((i) => ({ d: i.senderDeviceId, c: i.clientId })))],
    );
    const done = new Map<string, AppendResult>();
    for (const r of existing) {
      done.set(key(r.d as string, r.c as string), {
        conversationId: r.conversation_id as string,
        seq: num(r.seq),
        sentAt: num(r.sent_at),
        duplicate: true,
      });
    }

    // Fresh items, first occurrence of each client id only; count per conversation.
    const fresh: AppendInput[] = [];
    const seen = new Set<string>();
    const counts = new Map<string, number>();
    for (const i of items) {
      const k = key(i.senderDeviceId, i.clientId);
      if (done.has(k) || seen.has(k)) continue;
      seen.add(k);
      fresh.push(i);
      counts.set(i.conversationId, (counts.get(i.conversationId) ?? 0) + 1);
    }

    const now = this.clock.now();
    const assigned = new Map<string, AppendResult>();
    if (fresh.length > 0) {
      const bumped = await tx.query(
        `WITH v AS (SELECT * FROM json_to_recordset($1::json) AS v(id uuid, n int)),
              locked AS (SELECT c.id FROM conversations c JOIN v ON v.id = c.id ORDER BY c.id FOR UPDATE OF c)
         UPDATE conversations c SET last_seq = c.last_seq + v.n
           FROM v WHERE c.id = v.id AND c.id IN (SELECT id FROM locked)
         RETURNING c.id, c.last_seq`,
        [JSON.stringify([...counts].map(([id, n]) => ({ id, n })))],
      );
      const next = new Map<string, number>();
      for (const r of bumped) next.set(r.id as string, num(r.last_seq) - (counts.get(r.id as string) ?? 0) + 1);
      const rows: unknown[] = [];
      for (const i of fresh) {
        const seq = next.get(i.conversationId);
        if (seq === undefined) continue; // conversation missing: reported below
        next.set(i.conversationId, seq + 1);
        assigned.set(key(i.senderDeviceId, i.clientId), { conversationId: i.conversationId, seq, sentAt: now, duplicate: false });
        rows.push({
          conversation_id: i.conversationId,
          seq,
          sender_id: i.senderId,
          sender_device_id: i.senderDeviceId,
          client_id: i.clientId,
          payloads: i.payloads,
          sent_at: now,
        });
      }
      if (rows.length > 0) {
        await tx.query(
          `INSERT INTO messages (conversation_id, seq, sender_id, sender_device_id, client_id, payloads, sent_at)
           SELECT conversation_id, seq, sender_id, sender_device_id, client_id, payloads, sent_at
             FROM json_to_recordset($1::json)
               AS m(conversation_id uuid, seq bigint, sender_id uuid, sender_device_id uuid, client_id text, payloads jsonb, sent_at bigint)`,
          [JSON.stringify(rows)],
        );
      }
    }

    return items.map((i) => {
      const k = key(i.senderDeviceId, i.clientId);
      const d = done.get(k);
      if (d) return d;
      const a = assigned.get(k);
      if (!a) return new AppError('not_found', 'no such conversation');
      // A second copy of the same client id within this batch is a duplicate of the first.
      if (seen.delete(k)) return a;
      return { ...a, duplicate: true };
    });
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
