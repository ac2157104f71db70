// The append transaction: assigns gap-free seqs to a batch of messages and inserts them, idempotently by client id.
import { AppError } from '../platform/errors.js';
import { num, type SqlTx } from '../platform/sql.js';
import type { SystemEvent } from '../protocol/frames.js';

export type { SystemEvent } from '../protocol/frames.js';

/**
 * A message to append. Direct messages carry one ciphertext per recipient device in
 * `payloads`; group messages carry one shared ciphertext in `body` and, optionally, a small
 * per-device payload (the message key sealed for that device) in `payloads`.
 */
export interface AppendInput {
  conversationId: string;
  senderId: string;
  senderDeviceId: string;
  clientId: string;
  payloads: Record<string, string>;
  body?: string;
  /** The membership version the sender encrypted for: refused with `devices_changed` if it moved. */
  membersVersion?: number;
}

export interface AppendResult {
  conversationId: string;
  seq: number;
  sentAt: number;
  /** True when this client id had already been stored: the original seq is returned. */
  duplicate: boolean;
  /** The conversation's membership version when this message was committed. */
  membersVersion: number;
}

const key = (d: string, c: string) => `${d}\u0000${c}`;

/**
 * Appends a batch in one transaction: reads which client ids are stored already (those return
 * their original seq), locks the conversations in id order, refuses sends encrypted for an
 * older membership, bumps `last_seq` by each conversation's count and inserts the rows.
 * Returns one result or AppError per input, in order.
 */
export async function appendBatchTx(tx: SqlTx, items: AppendInput[], now: number): Promise<(AppendResult | AppError)[]> {
  const existing = await tx.query(
    `SELECT m.sender_device_id AS d, m.client_id AS c, m.conversation_id, m.seq, m.sent_at, cv.members_version
       FROM messages m JOIN json_to_recordset($1::json) AS k(d uuid, c text)
         ON m.sender_device_id = k.d AND m.client_id = k.c
       JOIN conversations cv ON cv.id = m.conversation_id`,
    [JSON.stringify(items.map((i) => ({ d: i.senderDeviceId, c: i.clientId })))],
  );
  const done = new Map<string, AppendResult>();
  for (const r of existing) {
    done.set(key(r.d as string, r.c as string), {
      conversationId: r.conversation_id as string,
      seq: num(r.seq),
      sentAt: num(r.sent_at),
      duplicate: true,
      membersVersion: num(r.members_version),
    });
  }

  // Fresh items, first occurrence of each client id only.
  let fresh: AppendInput[] = [];
  const seen = new Set<string>();
  for (const i of items) {
    const k = key(i.senderDeviceId, i.clientId);
    if (done.has(k) || seen.has(k)) continue;
    seen.add(k);
    fresh.push(i);
  }

  const refused = new Map<string, AppError>();
  if (fresh.some((i) => i.membersVersion !== undefined)) {
    // Lock first, then compare: membership changes take the same row lock (appendSystemTx).
    const ids = [...new Set(fresh.map((i) => i.conversationId))].sort();
    const rows = await tx.query(
      `SELECT id, members_version FROM conversations WHERE id IN (SELECT value::uuid FROM json_array_elements_text($1::json)) ORDER BY id FOR UPDATE`,
      [JSON.stringify(ids)],
    );
    const version = new Map(rows.map((r) => [r.id as string, num(r.members_version)]));
    fresh = fresh.filter((i) => {
      const v = version.get(i.conversationId);
      if (i.membersVersion === undefined || v === undefined || v === i.membersVersion) return true;
      refused.set(key(i.senderDeviceId, i.clientId), new AppError('devices_changed', 'the group changed; encrypt for its current members', { details: { membersVersion: v } }));
      seen.delete(key(i.senderDeviceId, i.clientId));
      return false;
    });
  }

  const counts = new Map<string, number>();
  for (const i of fresh) counts.set(i.conversationId, (counts.get(i.conversationId) ?? 0) + 1);
  const assigned = new Map<string, AppendResult>();
  if (fresh.length > 0) {
    const bumped = await tx.query(
      `WITH v AS (SELECT * FROM json_to_recordset($1::json) AS v(id uuid, n int)),
            locked AS (SELECT c.id FROM conversations c JOIN v ON v.id = c.id ORDER BY c.id FOR UPDATE OF c)
       UPDATE conversations c SET last_seq = c.last_seq + v.n
         FROM v WHERE c.id = v.id AND c.id IN (SELECT id FROM locked)
       RETURNING c.id, c.last_seq, c.members_version`,
      [JSON.stringify([...counts].map(([id, n]) => ({ id, n })))],
    );
    const next = new Map<string, number>();
    const versions = new Map<string, number>();
    for (const r of bumped) {
      next.set(r.id as string, num(r.last_seq) - (counts.get(r.id as string) ?? 0) + 1);
      versions.set(r.id as string, num(r.members_version));
    }
    const rows: unknown[] = [];
    for (const i of fresh) {
      const seq = next.get(i.conversationId);
      if (seq === undefined) continue; // conversation missing: reported below
      next.set(i.conversationId, seq + 1);
      assigned.set(key(i.senderDeviceId, i.clientId), {
        conversationId: i.conversationId,
        seq,
        sentAt: now,
        duplicate: false,
        membersVersion: versions.get(i.conversationId) ?? 0,
      });
      rows.push({
        conversation_id: i.conversationId,
        seq,
        sender_id: i.senderId,
        sender_device_id: i.senderDeviceId,
        client_id: i.clientId,
        payloads: i.payloads,
        body: i.body ?? null,
        sent_at: now,
      });
    }
    if (rows.length > 0) {
      await tx.query(
        `INSERT INTO messages (conversation_id, seq, sender_id, sender_device_id, client_id, payloads, body, sent_at)
         SELECT conversation_id, seq, sender_id, sender_device_id, client_id, payloads, body, sent_at
           FROM json_to_recordset($1::json)
             AS m(conversation_id uuid, seq bigint, sender_id uuid, sender_device_id uuid, client_id text, payloads jsonb, body text, sent_at bigint)`,
        [JSON.stringify(rows)],
      );
    }
  }

  return items.map((i) => {
    const k = key(i.senderDeviceId, i.clientId);
    const d = done.get(k);
    if (d) return d;
    const r = refused.get(k);
    if (r) return r;
    const a = assigned.get(k);
    if (!a) return new AppError('not_found', 'no such conversation');
    // A second copy of the same client id within this batch is a duplicate of the first.
    if (seen.delete(k)) return a;
    return { ...a, duplicate: true };
  });
}

/**
 * Appends a batch of direct messages (no membership version to check) in ONE statement, so
 * one round trip and one implicit commit per batch: it reads which client ids are stored
 * already (those return their original seq), locks the conversations in id order, bumps
 * `last_seq` by each conversation's count and inserts the rows with their seqs. The same
 * results as appendBatchTx for such a batch.
 */
export async function appendDirectBatch(db: SqlTx, items: AppendInput[], now: number): Promise<(AppendResult | AppError)[]> {
  const rows = await db.query(
    `WITH k AS (
       SELECT * FROM json_to_recordset($1::json)
         AS k(i int, conversation_id uuid, sender_id uuid, sender_device_id uuid, client_id text, payloads jsonb, body text)
     ),
     existing AS (
       SELECT k.i, m.conversation_id, m.seq, m.sent_at, cv.members_version
         FROM k JOIN messages m ON m.sender_device_id = k.sender_device_id AND m.client_id = k.client_id
         JOIN conversations cv ON cv.id = m.conversation_id
     ),
     firsts AS (
       SELECT DISTINCT ON (k.sender_device_id, k.client_id) k.*
         FROM k WHERE NOT EXISTS (SELECT 1 FROM existing e WHERE e.i = k.i)
        ORDER BY k.sender_device_id, k.client_id, k.i
     ),
     numbered AS (
       SELECT f.*, row_number() OVER (PARTITION BY f.conversation_id ORDER BY f.i) AS r,
              count(*) OVER (PARTITION BY f.conversation_id) AS n
         FROM firsts f
     ),
     locked AS (
       SELECT c.id FROM conversations c
        WHERE c.id IN (SELECT conversation_id FROM numbered) ORDER BY c.id FOR UPDATE
     ),
     bumped AS (
       UPDATE conversations c SET last_seq = c.last_seq + v.n
         FROM (SELECT DISTINCT conversation_id, n FROM numbered) v
        WHERE c.id = v.conversation_id AND c.id IN (SELECT id FROM locked)
        RETURNING c.id, c.last_seq, c.members_version
     ),
     inserted AS (
       INSERT INTO messages (conversation_id, seq, sender_id, sender_device_id, client_id, payloads, body, sent_at)
       SELECT nb.conversation_id, b.last_seq - nb.n + nb.r, nb.sender_id, nb.sender_device_id, nb.client_id, nb.payloads, nb.body, $2::bigint
         FROM numbered nb JOIN bumped b ON b.id = nb.conversation_id
       RETURNING 1
     )
     SELECT true AS duplicate, e.i, e.conversation_id, e.seq, e.sent_at, e.members_version FROM existing e
     UNION ALL
     SELECT false, nb.i, nb.conversation_id, b.last_seq - nb.n + nb.r, $2::bigint, b.members_version
       FROM numbered nb JOIN bumped b ON b.id = nb.conversation_id`,
    [
      JSON.stringify(
        items.map((it, i) => ({
          i,
          conversation_id: it.conversationId,
          sender_id: it.senderId,
          sender_device_id: it.senderDeviceId,
          client_id: it.clientId,
          payloads: it.payloads,
          body: it.body ?? null,
        })),
      ),
      now,
    ],
  );
  const byIndex = new Map<number, AppendResult>();
  for (const r of rows) {
    byIndex.set(num(r.i), {
      conversationId: r.conversation_id as string,
      seq: num(r.seq),
      sentAt: num(r.sent_at),
      duplicate: r.duplicate === true,
      membersVersion: num(r.members_version),
    });
  }
  // A later copy of a client id in this batch gets the first copy's result, as a duplicate.
  const firstOf = new Map<string, AppendResult>();
  return items.map((it, i) => {
    const k = key(it.senderDeviceId, it.clientId);
    const own = byIndex.get(i);
    if (own) {
      firstOf.set(k, own);
      return own;
    }
    const first = firstOf.get(k);
    if (first) return { ...first, duplicate: true };
    return new AppError('not_found', 'no such conversation');
  });
}

/**
 * Appends a system message inside the caller's transaction (a membership or name change and
 * its record commit together). Takes the conversation's row lock, so it serializes with sends;
 * `membership` also moves `members_version` to the new seq. Returns the seq.
 */
export async function appendSystemTx(
  tx: SqlTx,
  conversationId: string,
  actorId: string,
  event: SystemEvent,
  now: number,
  membership: boolean,
  keys: Record<string, string> = {},
): Promise<number> {
  const [row] = await tx.query(
    membership
      ? `UPDATE conversations SET last_seq = last_seq + 1, members_version = last_seq + 1 WHERE id = $1 RETURNING last_seq`
      : `UPDATE conversations SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq`,
    [conversationId],
  );
  if (!row) throw new AppError('not_found', 'no such conversation');
  const seq = num(row.last_seq);
  await tx.query(
    `INSERT INTO messages (conversation_id, seq, sender_id, sender_device_id, client_id, payloads, sent_at, system)
     VALUES ($1, $2, $3, NULL, $4, $7::jsonb, $5, $6::jsonb)`,
    [conversationId, seq, actorId, `system-${seq}`, now, JSON.stringify(event), JSON.stringify(keys)],
  );
  return seq;
}
