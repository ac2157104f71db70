// MessagePurge: the background worker that erases message ciphertext once acknowledged, once too old, and at a disappearing message's expiry.
import type { Clock } from '../platform/clock.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import { Periodic } from '../platform/periodic.js';
import { num, type Sql } from '../platform/sql.js';

export interface MessagePurgeOptions {
  /** MESSAGE_RETENTION: `acked` erases acknowledged copies and old messages, `days` only old ones, `off` neither (expiry always runs). */
  policy: 'acked' | 'days' | 'off';
  /** MESSAGE_RETENTION_DAYS in ms: a message sent longer ago than this is erased (policies acked and days). */
  retentionMs: number;
  /** Time between runs. */
  intervalMs: number;
  /** At most this many rows erased per reason per run (and rows examined, and conversations visited, for `acked`). */
  batch: number;
  /**
   * VACUUM the tables a run erased rows from (messages, message_index). For PGlite, which has no autovacuum
   * worker: without it the space of erased rows is never reused and its files only grow.
   * PostgreSQL leaves this to autovacuum.
   */
  vacuum?: boolean;
}

/** Rows erased by one run, by reason. */
export interface PurgeResult {
  acked: number;
  age: number;
  expired: number;
}

type Reason = keyof PurgeResult;

/** The lowest uuid: where the walk over conversations starts (conversation ids are random or hashed, never nil). */
const NIL = '00000000-0000-0000-0000-000000000000';

/** Ciphertext bytes of message row `m`: its shared body and every per-device payload. */
const rowBytes = (m: string) => `coalesce(octet_length(${m}.body), 0) + (SELECT coalesce(sum(octet_length(e.value)), 0) FROM jsonb_each_text(${m}.payloads) e)`;

/**
 * `visited(id, n)`: the conversations that hold rows of `table`, after `$1`, at most `$2`, one
 * index probe each (a loose index scan over conversation_id).
 */
const walk = (table: 'messages' | 'message_index') => `
  WITH RECURSIVE visited(id, n) AS (
    SELECT (SELECT conversation_id FROM ${table} WHERE conversation_id > $1::uuid ORDER BY conversation_id LIMIT 1), 1
    UNION ALL
    SELECT (SELECT t.conversation_id FROM ${table} t WHERE t.conversation_id > v.id ORDER BY t.conversation_id LIMIT 1), v.n + 1
      FROM visited v WHERE v.id IS NOT NULL AND v.n < $2
  )`;

/** The conversations that hold rows, from after `$1`, at most `$2`, with their kind and whether a device's cursor moved since it was swept. */
const VISIT = `${walk('messages')}
  SELECT v.id, c.kind,
         EXISTS (SELECT 1 FROM device_cursors dc WHERE dc.conversation_id = v.id AND dc.delivered_seq > dc.swept_seq) AS moved
    FROM visited v JOIN conversations c ON c.id = v.id
   ORDER BY v.n`;

/** The moved cursors of conversation `$1`, claimed: a second process skips this conversation's cursors while they are worked on. */
const ITEMS = `items AS (
    SELECT device_id, delivered_seq, swept_seq FROM device_cursors
     WHERE conversation_id = $1 AND delivered_seq > swept_seq
     FOR UPDATE SKIP LOCKED
  )`;

/**
 * A direct conversation `$1`, at most `$2` rows: each row in a moved cursor's range that still
 * holds that device's payload loses the payloads of every device that has acknowledged it (or
 * no longer exists) in one rewrite, or is deleted when none is left. A cursor's `swept_seq`
 * moves to where its range was fully handled: not past a row another process had locked, nor
 * past the budget.
 */
const DIRECT = `
  WITH ${ITEMS},
  cand AS (
    SELECT m.seq FROM messages m
     WHERE m.conversation_id = $1
       AND m.seq > (SELECT min(swept_seq) FROM items) AND m.seq <= (SELECT max(delivered_seq) FROM items)
       AND EXISTS (SELECT 1 FROM items i WHERE m.seq > i.swept_seq AND m.seq <= i.delivered_seq AND m.payloads ? i.device_id::text)
     ORDER BY m.seq LIMIT $2
  ),
  claimed AS (
    SELECT m.seq, m.payloads FROM messages m
     WHERE m.conversation_id = $1 AND m.seq IN (SELECT seq FROM cand)
     FOR UPDATE SKIP LOCKED
  ),
  verdict AS (
    SELECT c.seq, c.payloads, (SELECT count(*) FROM jsonb_object_keys(c.payloads)) AS keys,
           ARRAY(SELECT k.key FROM jsonb_object_keys(c.payloads) AS k(key)
                  WHERE EXISTS (SELECT 1 FROM items i WHERE i.device_id = k.key::uuid AND i.delivered_seq >= c.seq)
                     OR EXISTS (SELECT 1 FROM device_cursors dc WHERE dc.device_id = k.key::uuid AND dc.conversation_id = $1 AND dc.delivered_seq >= c.seq)
                     OR NOT EXISTS (SELECT 1 FROM devices d WHERE d.id = k.key::uuid)) AS acked
      FROM claimed c
  ),
  gone AS (
    DELETE FROM messages m USING verdict v
     WHERE m.conversation_id = $1 AND m.seq = v.seq AND cardinality(v.acked) = v.keys
     RETURNING ${rowBytes('m')} AS bytes
  ),
  stripped AS (
    UPDATE messages m SET payloads = m.payloads - v.acked
      FROM verdict v
     WHERE m.conversation_id = $1 AND m.seq = v.seq AND cardinality(v.acked) > 0 AND cardinality(v.acked) < v.keys
     RETURNING (SELECT coalesce(sum(octet_length(e.value)), 0) FROM jsonb_each_text(v.payloads) e WHERE e.key = ANY (v.acked)) AS bytes
  ),
  page AS (SELECT count(*) >= $2 AS full_page, max(seq) AS last FROM cand),
  swept AS (
    UPDATE device_cursors dc
       SET swept_seq = greatest(dc.swept_seq, least(
             i.delivered_seq,
             coalesce((SELECT min(c.seq) - 1 FROM cand c WHERE c.seq > i.swept_seq AND c.seq NOT IN (SELECT seq FROM claimed)), i.delivered_seq),
             CASE WHEN p.full_page THEN p.last ELSE i.delivered_seq END))
      FROM items i, page p
     WHERE dc.device_id = i.device_id AND dc.conversation_id = $1
     RETURNING 1
  )
  SELECT (SELECT count(*) FROM gone) AS rows,
         (SELECT coalesce(sum(bytes), 0) FROM gone) + (SELECT coalesce(sum(bytes), 0) FROM stripped) AS bytes,
         (SELECT count(*) FROM claimed) AS examined,
         (SELECT count(*) FROM swept) AS swept`;

/**
 * A group conversation `$1`, at most `$2` rows: deletes the rows before the first seq that some
 * device it is for has not acknowledged (each device's first such seq is one index probe), then
 * marks the moved cursors swept unless the budget cut the deletion short.
 */
const GROUP = `
  WITH ${ITEMS},
  holds AS (
    SELECT (SELECT m.seq FROM messages m
             WHERE m.conversation_id = $1
               AND m.seq > greatest(coalesce(dc.delivered_seq, 0), cm.joined_seq - 1)
               AND (cm.left_seq IS NULL OR m.seq <= cm.left_seq)
               AND m.sent_at >= d.created_at
             ORDER BY m.seq LIMIT 1) AS seq
      FROM conversation_members cm
      JOIN devices d ON d.user_id = cm.user_id
      LEFT JOIN device_cursors dc ON dc.device_id = d.id AND dc.conversation_id = $1
     WHERE cm.conversation_id = $1 AND EXISTS (SELECT 1 FROM items)
  ),
  claimed AS (
    SELECT seq FROM messages
     WHERE conversation_id = $1 AND EXISTS (SELECT 1 FROM items)
       AND seq < coalesce((SELECT min(seq) FROM holds), 9223372036854775807)
     ORDER BY seq LIMIT $2
     FOR UPDATE SKIP LOCKED
  ),
  gone AS (
    DELETE FROM messages m USING claimed c WHERE m.conversation_id = $1 AND m.seq = c.seq
    RETURNING ${rowBytes('m')} AS bytes
  ),
  swept AS (
    UPDATE device_cursors dc SET swept_seq = i.delivered_seq FROM items i
     WHERE dc.device_id = i.device_id AND dc.conversation_id = $1 AND (SELECT count(*) FROM claimed) < $2
     RETURNING 1
  )
  SELECT (SELECT count(*) FROM gone) AS rows,
         (SELECT coalesce(sum(bytes), 0) FROM gone) AS bytes,
         (SELECT count(*) FROM claimed) AS examined,
         (SELECT count(*) FROM swept) AS swept`;

/** Deletes up to `$2` rows whose `column` is at or before `$1` (index order), claimed so that concurrent runs never both count one. */
const eraseBefore = (column: 'expires_at' | 'sent_at') => `
  WITH doomed AS (
    SELECT conversation_id, seq FROM messages WHERE ${column} <= $1 ORDER BY ${column} LIMIT $2 FOR UPDATE SKIP LOCKED
  ),
  gone AS (
    DELETE FROM messages m USING doomed d WHERE m.conversation_id = d.conversation_id AND m.seq = d.seq
    RETURNING ${rowBytes('m')} AS bytes
  )
  SELECT count(*) AS rows, coalesce(sum(bytes), 0) AS bytes FROM gone`;
const EXPIRED = eraseBefore('expires_at');
const AGED = eraseBefore('sent_at');

/**
 * message_index (the inbox's record of every message: no ciphertext) for at most `$2`
 * conversations from after `$1`: deletes the rows every current member with a device has read
 * past (their highest read cursor over their devices, or where they joined), and those sent at
 * or before `$3`; but never a conversation's newest row (its last activity). A conversation that
 * no longer exists loses them all.
 */
const INDEX = `${walk('message_index')},
  floors AS (
    SELECT v.id, v.n, c.id IS NULL AS gone,
           (SELECT max(x.seq) FROM message_index x WHERE x.conversation_id = v.id) AS newest,
           (SELECT min(greatest(coalesce(r.read, 0), cm.joined_seq))
              FROM conversation_members cm
              CROSS JOIN LATERAL (SELECT max(dc.read_seq) AS read FROM devices d
                                    JOIN device_cursors dc ON dc.device_id = d.id AND dc.conversation_id = v.id
                                   WHERE d.user_id = cm.user_id) r
             WHERE cm.conversation_id = v.id AND cm.left_seq IS NULL
               AND EXISTS (SELECT 1 FROM devices d WHERE d.user_id = cm.user_id)) AS floor
      FROM visited v LEFT JOIN conversations c ON c.id = v.id
     WHERE v.id IS NOT NULL
  ),
  gone AS (
    DELETE FROM message_index mi USING floors f
     WHERE mi.conversation_id = f.id AND (f.gone OR (mi.seq < f.newest AND (mi.seq <= f.floor OR mi.sent_at <= $3::bigint)))
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM gone) AS rows, (SELECT count(*) FROM floors) AS visited,
         (SELECT id FROM floors ORDER BY n DESC LIMIT 1) AS last`;

/**
 * Erases message ciphertext from the database (the row, or one device's entry of `payloads`),
 * each run in this order:
 *
 * - expired: disappearing messages whose `expires_at` has passed, under every policy, whether or
 *   not any device fetched them (MessageStore.fetch already hides them from that instant).
 * - age (policies acked and days): messages sent more than `retentionMs` ago, for the devices
 *   that never came back.
 * - acked (policy acked): a device's copy once that device acknowledged it (delivered cursor ≥
 *   seq), the whole row once every device it is for did. "For": a direct message is for the
 *   devices its `payloads` name (the recipient's and the sender's other devices at send time;
 *   a device removed since counts as having acknowledged). A group message or membership
 *   change is for every device of every member whose window (joined_seq..left_seq) covers the
 *   seq and that was created at or before the message was sent (a device added later cannot
 *   decrypt it and does not hold it back), the sending device included (its cursor passes its
 *   own messages as it acks: DeviceStream.ownSent). Group rows carry one shared ciphertext, so
 *   they are erased whole and in seq order: up to the first seq a device it is for has not
 *   acknowledged (a device that never comes back holds the rows after it until the age limit).
 *
 * - index (every policy): message_index rows (platform/migrations.ts, version 9: metadata the
 *   inbox counts unread messages with, no ciphertext) once every member has read past them, or
 *   once older than `retentionMs` (policies acked and days); each conversation keeps its newest.
 *
 * Delete for everyone leaves a row whose payloads are all '' under their device keys
 * (MessageStore.unsend): it holds no ciphertext, and the acked pass erases it like any other
 * row as its devices acknowledge the tombstone.
 *
 * Cost. The purge adds nothing to the message path (the inbox's index is written by its own
 * trigger, in the append's statement), no extra index or write per ack. The purge finds work by `device_cursors.swept_seq` (the delivered cursor it last
 * handled): a run walks the conversations that still hold rows (one index probe each, from
 * where the last run stopped, at most `batch`), and works only on those where a cursor moved
 * since. A direct row is read once per device that acknowledges it and rewritten at most once
 * per run (every acknowledged payload dropped together), or deleted outright when all its
 * devices acknowledged: never once per device when the row can go whole. Rows held back by a
 * device that is away are not read again until a cursor moves in their range.
 *
 * Concurrency: every row and cursor is claimed with FOR UPDATE SKIP LOCKED in the statement that
 * erases it, so processes that purge at once never both erase (or count) one row, and a cursor
 * is marked swept only up to the rows that were actually handled.
 *
 * What erased means: the row (or the payload entry) is deleted by SQL, so no query returns it
 * again. The bytes stay in the database's files until VACUUM reclaims the dead tuples (and
 * their TOAST chunks) and the pages are reused, in the WAL until its segments are recycled, and
 * in base backups and archived WAL until those age out: the operator's backup retention bounds
 * how long an erased message survives there (keep it below MESSAGE_RETENTION_DAYS, and let
 * autovacuum run).
 *
 * Idempotent sends: the uniqueness of (sender device, client id) lives in the rows, so once a
 * row is erased a resend with its client id is stored again as a new message with a new seq.
 * A resend comes only from a sender that never saw `sent`; the SDK drops a message id it has
 * already shown, so at worst a device that did not keep its history shows it again.
 *
 * @example const purge = new MessagePurge(sql, clock, log, metrics, { policy: 'acked', retentionMs: 30 * 86_400_000, intervalMs: 60_000, batch: 5_000 }); purge.start();
 */
export class MessagePurge {
  private readonly runs: Periodic<PurgeResult>;
  /** The walk over conversations continues after this id (per process; several processes overlap harmlessly). */
  private resume = NIL;
  /** The same for the walk over message_index. */
  private indexResume = NIL;

  constructor(
    private readonly sql: Sql,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly options: MessagePurgeOptions,
  ) {
    this.runs = new Periodic(() => this.purge(), {
      intervalMs: options.intervalMs,
      firstMs: Math.min(5_000, options.intervalMs),
      onError: (err) => {
        this.log.error({ err }, 'message purge failed');
        this.metrics.backendFailures.inc({ backend: 'sql', operation: 'purge' });
      },
    });
  }

  /** Runs soon after start, then every `intervalMs`. */
  start(): void {
    this.runs.start();
  }

  /** Stops scheduling and waits for a run in progress. */
  stop(): Promise<void> {
    return this.runs.stop();
  }

  /** One run now (after any run in progress): rows erased by reason. Rejects if a step fails (start() logs and counts that instead). */
  runOnce(): Promise<PurgeResult> {
    return this.runs.run();
  }

  private async purge(): Promise<PurgeResult> {
    const { policy, retentionMs, batch } = this.options;
    const now = this.clock.now();
    const result: PurgeResult = { acked: 0, age: 0, expired: 0 };
    result.expired = await this.erase('expired', EXPIRED, [now, batch]);
    if (policy !== 'off') result.age = await this.erase('age', AGED, [now - retentionMs - 1, batch]);
    if (policy === 'acked') result.acked = await this.purgeAcked();
    const index = await this.purgeIndex(policy === 'off' ? -1 : now - retentionMs - 1);
    const messages = result.acked + result.age + result.expired;
    if (messages + index > 0) this.log.info({ ...result, index }, 'message purge');
    if (this.options.vacuum && messages > 0) await this.sql.query('VACUUM messages');
    if (this.options.vacuum && index > 0) await this.sql.query('VACUUM message_index');
    return result;
  }

  /** One step of the walk over message_index (see INDEX); returns the rows deleted. */
  private async purgeIndex(sentBefore: number): Promise<number> {
    const [row] = await this.sql.query(INDEX, [this.indexResume, this.options.batch, sentBefore]);
    this.indexResume = num(row?.visited) < this.options.batch ? NIL : (row!.last as string);
    return num(row?.rows);
  }

  /** Runs one erasing statement and counts what it erased. */
  private async erase(reason: Reason, text: string, params: unknown[]): Promise<number> {
    const [row] = await this.sql.query(text, params);
    const rows = num(row?.rows);
    this.count(reason, rows, num(row?.bytes));
    return rows;
  }

  /** Visits conversations from where the last run stopped and purges those whose cursors moved, within the run's budget. */
  private async purgeAcked(): Promise<number> {
    const { batch } = this.options;
    const visited = await this.sql.query<{ id: string; kind: string; moved: boolean }>(VISIT, [this.resume, batch]);
    let budget = batch;
    let erased = 0;
    let done = this.resume;
    for (const c of visited) {
      if (c.moved) {
        const [row] = await this.sql.query(c.kind === 'group' ? GROUP : DIRECT, [c.id, budget]);
        erased += num(row?.rows);
        this.count('acked', num(row?.rows), num(row?.bytes));
        budget -= num(row?.examined);
        // The budget ran out in this conversation: it may have more, so the next run starts with it.
        if (budget <= 0) {
          this.resume = done;
          return erased;
        }
      }
      done = c.id;
    }
    // Fewer than asked for: the walk reached the last conversation and starts over next run.
    this.resume = visited.length < batch ? NIL : done;
    return erased;
  }

  private count(reason: Reason, rows: number, bytes: number): void {
    if (rows > 0) this.metrics.messagesPurged.inc({ reason }, rows);
    if (bytes > 0) this.metrics.messageBytesPurged.inc({ reason }, bytes);
  }

}
