// The inbox: a user's conversations by last activity, paged, with this device's cursors and the user's unread count, in one query per page.
import { decodePageCursor, encodePageCursor } from '../accounts/reports.js';
import { num, type Sql } from '../platform/sql.js';
import type { ConversationPage, ConversationSummary } from '../protocol/control.js';

export type { ConversationPage } from '../protocol/control.js';

/** One conversation as the inbox lists it. */
export type ConversationEntry = ConversationSummary;

/**
 * The page's SQL. `mine`: every direct conversation of the user and every group they are a
 * member of now (groups they left or that were deleted are not listed), with its last activity:
 * the send time of its newest message in message_index (one backward index probe each; the purge
 * always keeps a conversation's newest index row). Sorted and cut to the page; only then, for
 * the page's rows: the peer or the group, this device's cursors, the user's read cursor (the
 * highest over their devices: a read on one device counts for all, as in WhatsApp) and the
 * unread count over message_index after it: not the user's own, not system messages, not
 * deleted for everyone, not hidden from them by a block, in a group not from a member they
 * block, and not before they joined.
 */
const PAGE = `
  WITH mine AS (
    SELECT c.id, c.kind, c.last_seq, m.joined_seq, m.role,
           coalesce((SELECT mi.sent_at FROM message_index mi WHERE mi.conversation_id = c.id AND mi.seq <= c.last_seq
                      ORDER BY mi.seq DESC LIMIT 1), c.created_at) AS activity
      FROM conversation_members m JOIN conversations c ON c.id = m.conversation_id
     WHERE m.user_id = $1 AND m.left_seq IS NULL
  ),
  page AS (
    SELECT * FROM mine WHERE $3::bigint IS NULL OR (activity, id) < ($3::bigint, $4::uuid)
     ORDER BY activity DESC, id DESC LIMIT $5
  ),
  my_devices AS (SELECT id FROM devices WHERE user_id = $1)
  SELECT p.id, p.kind, p.last_seq, p.activity, p.role, g.name,
         (SELECT o.user_id FROM conversation_members o WHERE p.kind = 'direct' AND o.conversation_id = p.id AND o.user_id <> $1 LIMIT 1) AS peer,
         coalesce(dc.delivered_seq, 0) AS delivered, coalesce(dc.read_seq, 0) AS read,
         (SELECT count(*) FROM message_index mi
           WHERE mi.conversation_id = p.id AND mi.seq > greatest(r.read, p.joined_seq) AND mi.seq <= p.last_seq
             AND mi.sender_id <> $1 AND NOT mi.system AND NOT mi.deleted AND mi.hidden_for IS DISTINCT FROM $1
             AND (p.kind = 'direct' OR NOT EXISTS (SELECT 1 FROM blocks b WHERE b.user_id = $1 AND b.blocked_id = mi.sender_id))) AS unread
    FROM page p
    LEFT JOIN groups g ON g.id = p.id
    LEFT JOIN device_cursors dc ON dc.device_id = $2 AND dc.conversation_id = p.id
    CROSS JOIN LATERAL (
      SELECT coalesce(max(x.read_seq), 0) AS read FROM my_devices d JOIN device_cursors x ON x.device_id = d.id AND x.conversation_id = p.id
    ) r
   ORDER BY p.activity DESC, p.id DESC`;

/**
 * Reads the inbox (tables: conversations, conversation_members, groups, device_cursors, blocks,
 * and message_index, platform/migrations.ts version 9). Pages are keyset-paged on (last
 * activity, id), newest first: a conversation that gets a message while a client walks the
 * pages moves to the top and is not met again in that walk (the client learns of it live).
 */
export class Conversations {
  constructor(private readonly sql: Sql) {}

  /** At most `limit` of the user's conversations, newest activity first, after `cursor` (from the previous page). */
  async list(userId: string, deviceId: string, options: { limit: number; cursor?: string }): Promise<ConversationPage> {
    const after = options.cursor === undefined ? null : decodePageCursor(options.cursor);
    const rows = await this.sql.query(PAGE, [userId, deviceId, after?.at ?? null, after?.id ?? null, options.limit + 1]);
    const conversations = rows.slice(0, options.limit).map(entry);
    const last = conversations.at(-1);
    return rows.length > options.limit && last ? { conversations, cursor: encodePageCursor(last.lastActivityAt, last.id) } : { conversations };
  }
}

function entry(r: Record<string, unknown>): ConversationEntry {
  const kind = r.kind as 'direct' | 'group';
  return {
    id: r.id as string,
    kind,
    ...(kind === 'direct' && r.peer ? { peer: r.peer as string } : {}),
    ...(kind === 'group' ? { group: { name: (r.name as string | null) ?? '', role: r.role as string } } : {}),
    lastSeq: num(r.last_seq),
    lastActivityAt: num(r.activity),
    delivered: num(r.delivered),
    read: num(r.read),
    unread: num(r.unread),
  };
}
