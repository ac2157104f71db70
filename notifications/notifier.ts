// Notifier: pushes for devices without a live connection: a coalesced queue in the database that every process's worker drains.
import type { PushPayload, PushTarget } from '../protocol/push.js';
import type { MsgFrame } from '../protocol/frames.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import { PUSH_PAYLOAD_MAX, type PushOutcome, type PushSender, type StoredPushTarget } from '../platform/push.js';
import { GroupCommit } from '../platform/group-commit.js';
import { Periodic } from '../platform/periodic.js';
import { num, type Sql } from '../platform/sql.js';
import type { NoticeSink, StoredNotice } from '../messaging/ports.js';

export interface NotifierOptions {
  /** At most one push per device per this interval; what arrives meanwhile is folded into the next one. */
  coalesceMs: number;
  /** How long a message waits for the device to acknowledge it live before it is pushed. */
  delayMs: number;
  /** How often the worker looks for due pushes. */
  pollMs: number;
  /** How long a claimed push belongs to the process sending it; after that another may send it. Default 30 s. */
  leaseMs?: number;
  /** Pushes claimed per round. Default 100. */
  batch?: number;
  /** Pushes in flight at once per process. Default 16. */
  concurrency?: number;
  /** Temporary failures before a push is given up (the device still syncs when it connects). Default 8. */
  maxAttempts?: number;
}

/** A claimed push, with what sending it needs. */
interface Claimed {
  deviceId: string;
  conversationId: string;
  seq: number;
  count: number;
  attempts: number;
  version: number;
}

/** The JSON of a content-free push standing for `count` messages. */
function wake(count: number): string {
  return JSON.stringify({ v: 1, kind: 'wake', count } satisfies PushPayload);
}

/** Backoff after the n-th temporary failure: 2^n s up to 10 minutes, or what the push service asked for if longer. */
export function retryDelayMs(attempts: number, retryAfterMs = 0): number {
  return Math.max(retryAfterMs, Math.min(1000 * 2 ** attempts, 600_000));
}

/**
 * The queue (push_pending, migrations.ts version 8) holds at most one row per device: the push
 * it is owed. Only devices live delivery did not reach are noticed (so a conversation between
 * connected devices costs nothing here); a stored message for such devices with a push target
 * upserts their rows in one statement per group commit (what arrives while one runs goes in
 * the next; muted conversations are skipped in the same statement): a new row is due after `delayMs`, and not before `coalesceMs` after the device's last push; an existing
 * row only takes the newer message and counts it. The worker claims due rows (FOR UPDATE SKIP
 * LOCKED, with a lease), skips devices whose delivered cursor already passed the message (they
 * got it live), sends, and deletes the row if no message arrived meanwhile (else re-arms it
 * after the interval).
 *
 * Exactly how often: a message is pushed at most once, except that a process dying after a
 * push service accepted a push and before the row was deleted leaves the row claimed; after
 * the lease another process sends it again. So each crash can repeat at most the pushes it had
 * in flight (at most `concurrency`, one per device), and they carry the same collapse key (Web
 * Push `Topic`), so a push service replaces rather than adds them. A process dying between a
 * commit and the upsert loses that message's push (never duplicates it); the device syncs
 * everything when it connects.
 */
export class Notifier implements NoticeSink {
  /** Notices of one turn (and of any that arrive while an upsert runs) go in one upsert. */
  private readonly upserts: GroupCommit<StoredNotice, undefined>;
  private readonly rounds: Periodic<number>;

  constructor(
    private readonly sql: Sql,
    private readonly clock: Clock,
    private readonly sender: PushSender | null,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly options: NotifierOptions,
  ) {
    this.upserts = new GroupCommit(async (notices: StoredNotice[]) => {
      await this.enqueue(notices);
      return notices.map(() => undefined);
    }, { maxBatch: 1024 });
    this.rounds = new Periodic(() => this.drain(), {
      intervalMs: options.pollMs,
      onError: (err) => {
        this.metrics.backendFailures.inc({ backend: 'sql', operation: 'push_worker' });
        this.log.error({ err }, 'push round failed');
      },
    });
  }

  /** Whether pushes can be sent at all (PUSH_DRIVER is not `none`). */
  get enabled(): boolean {
    return this.sender !== null;
  }

  /** A message was stored: queued for the next upsert, which runs after this event-loop turn. */
  stored(notice: StoredNotice): void {
    if (!this.sender) return;
    this.upserts.submit(notice).catch((err: unknown) => {
      this.metrics.backendFailures.inc({ backend: 'sql', operation: 'push_enqueue' });
      this.log.error({ err }, 'a push could not be queued; the device syncs when it connects');
    });
  }

  /** Waits until every notice given so far is queued. */
  idle(): Promise<void> {
    return this.upserts.idle();
  }

  /** Sets where the device's pushes go (replacing any earlier target). */
  async register(deviceId: string, target: PushTarget): Promise<void> {
    const t = target.kind === 'webhook' ? { token: target.token } : { endpoint: target.endpoint, p256dh: target.keys.p256dh, auth: target.keys.auth };
    await this.sql.query(
      `INSERT INTO push_targets (device_id, kind, token, endpoint, p256dh, auth, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (device_id) DO UPDATE SET kind = excluded.kind, token = excluded.token, endpoint = excluded.endpoint,
         p256dh = excluded.p256dh, auth = excluded.auth, created_at = excluded.created_at`,
      [deviceId, target.kind, t.token ?? null, t.endpoint ?? null, t.p256dh ?? null, t.auth ?? null, this.clock.now()],
    );
  }

  /** Removes the device's push target and whatever push it was owed. */
  async unregister(deviceId: string): Promise<void> {
    await this.sql.transaction(async (tx) => {
      await tx.query(`DELETE FROM push_pending WHERE device_id = $1`, [deviceId]);
      await tx.query(`DELETE FROM push_targets WHERE device_id = $1`, [deviceId]);
    });
  }

  /**
   * Mutes a conversation for the user until `until` (null: until unmuted). What the server
   * learns: that this user muted this conversation, and until when.
   */
  async mute(userId: string, conversationId: string, until: number | null): Promise<void> {
    if (until !== null && until <= this.clock.now()) throw new AppError('invalid', 'until: must be in the future (or null)');
    await this.sql.query(
      `INSERT INTO conversation_mutes (user_id, conversation_id, until) VALUES ($1, $2, $3)
       ON CONFLICT (user_id, conversation_id) DO UPDATE SET until = excluded.until`,
      [userId, conversationId, until],
    );
  }

  async unmute(userId: string, conversationId: string): Promise<void> {
    await this.sql.query(`DELETE FROM conversation_mutes WHERE user_id = $1 AND conversation_id = $2`, [userId, conversationId]);
  }

  /** Sends due pushes every `pollMs`. */
  start(): void {
    if (this.sender) this.rounds.start();
  }

  /** Stops the worker and waits for the round in progress and the queued upserts. */
  async stop(): Promise<void> {
    const stopped = this.rounds.stop();
    await this.idle();
    await stopped;
  }

  /** One round now: claims due pushes (until a round comes back short) and sends them. Returns how many were handled. */
  runOnce(): Promise<number> {
    return this.rounds.run();
  }

  /** One upsert for a turn's notices: direct ones name devices, group ones users (expanded to their devices here). */
  private async enqueue(notices: StoredNotice[]): Promise<void> {
    const now = this.clock.now();
    const rows = notices.map((n, i) => ({ i, c: n.conversationId, s: n.seq, d: n.devices ?? null, u: n.users ?? null, r: n.reached ?? null }));
    const queued = await this.sql.query(
      `WITH n AS (SELECT * FROM json_to_recordset($1::json) AS n(i int, c uuid, s bigint, d json, u json, r json)),
       addressed AS (
         SELECT n.i, n.c, n.s, dv.id AS device_id, dv.user_id
           FROM n CROSS JOIN LATERAL json_array_elements_text(n.d) AS x(id)
           JOIN devices dv ON dv.id = x.id::uuid
         UNION ALL
         SELECT n.i, n.c, n.s, dv.id, dv.user_id
           FROM n CROSS JOIN LATERAL json_array_elements_text(n.u) AS x(id)
           JOIN devices dv ON dv.user_id = x.id::uuid
          WHERE NOT EXISTS (SELECT 1 FROM json_array_elements_text(n.r) AS y(id) WHERE y.id = dv.id::text)
       ),
       wanted AS (
         SELECT DISTINCT ON (a.device_id) a.device_id, a.c, a.s, count(*) OVER (PARTITION BY a.device_id) AS k, t.last_sent_at
           FROM addressed a JOIN push_targets t ON t.device_id = a.device_id
          WHERE NOT EXISTS (SELECT 1 FROM conversation_mutes m
                             WHERE m.user_id = a.user_id AND m.conversation_id = a.c AND (m.until IS NULL OR m.until > $2::bigint))
          ORDER BY a.device_id, a.i DESC
       )
       INSERT INTO push_pending (device_id, conversation_id, seq, count, due_at)
       SELECT device_id, c, s, k, greatest($2::bigint + $3::bigint, last_sent_at + $4::bigint) FROM wanted
       ON CONFLICT (device_id) DO UPDATE
         SET conversation_id = excluded.conversation_id, seq = excluded.seq,
             count = push_pending.count + excluded.count, version = push_pending.version + 1
       RETURNING (xmax <> 0) AS coalesced`,
      [JSON.stringify(rows), now, this.options.delayMs, this.options.coalesceMs],
    );
    const coalesced = queued.filter((r) => r.coalesced === true).length;
    if (queued.length > 0) this.metrics.pushesQueued.inc(queued.length - coalesced);
    if (coalesced > 0) this.metrics.pushesCoalesced.inc(coalesced);
  }

  private async drain(): Promise<number> {
    const batch = this.options.batch ?? 100;
    let total = 0;
    for (;;) {
      const claimed = await this.claim(batch);
      total += claimed.length;
      if (claimed.length > 0) await this.sendAll(claimed);
      if (claimed.length < batch || !this.rounds.active) return total;
    }
  }

  /** Claims up to `limit` due pushes for this process (a lease of `leaseMs`); rows another process holds are skipped. */
  private async claim(limit: number): Promise<Claimed[]> {
    const now = this.clock.now();
    // The interval is enforced here too: a row made while the device's previous push was being
    // recorded (its new last_sent_at not yet committed) was given too early a due time; it is
    // moved to the end of the interval instead of being sent.
    const rows = await this.sql.query(
      `WITH due AS (
         SELECT p.device_id, coalesce(t.last_sent_at, 0) + $4::bigint <= $1::bigint AS ready, coalesce(t.last_sent_at, 0) + $4::bigint AS allowed_at
           FROM push_pending p LEFT JOIN push_targets t ON t.device_id = p.device_id
          WHERE p.due_at <= $1::bigint AND p.claimed_until <= $1::bigint
          ORDER BY p.due_at LIMIT $2 FOR UPDATE OF p SKIP LOCKED
       )
       UPDATE push_pending p
          SET claimed_until = CASE WHEN due.ready THEN $1::bigint + $3::bigint ELSE 0 END,
              due_at = CASE WHEN due.ready THEN p.due_at ELSE due.allowed_at END
         FROM due WHERE p.device_id = due.device_id
       RETURNING p.device_id, p.conversation_id, p.seq, p.count, p.attempts, p.version, due.ready`,
      [now, limit, this.options.leaseMs ?? 30_000, this.options.coalesceMs],
    );
    return rows.filter((r) => r.ready === true).map((r) => ({
      deviceId: r.device_id as string,
      conversationId: r.conversation_id as string,
      seq: num(r.seq),
      count: Number(r.count),
      attempts: Number(r.attempts),
      version: Number(r.version),
    }));
  }

  /** Sends claimed pushes, `concurrency` at a time, with what one read tells about each device and its newest message. */
  private async sendAll(claimed: Claimed[]): Promise<void> {
    const details = await this.sql.query(
      `SELECT p.device_id, t.kind, t.token, t.endpoint, t.p256dh, t.auth, coalesce(dc.delivered_seq, 0) AS delivered,
              m.client_id, m.sender_id, m.sender_device_id, m.sent_at, m.expires_at, m.system, m.deleted_at, c.kind AS conversation_kind,
              EXISTS (SELECT 1 FROM blocks b JOIN devices dv ON dv.user_id = b.user_id
                       WHERE dv.id = p.device_id AND b.blocked_id = m.sender_id) AS blocked,
              CASE WHEN m.sender_device_id = p.device_id THEN NULL ELSE coalesce(m.body, m.payloads ->> p.device_id::text) END AS body,
              CASE WHEN m.body IS NULL THEN NULL ELSE m.payloads ->> p.device_id::text END AS key
         FROM json_to_recordset($1::json) AS p(device_id uuid, conversation_id uuid, seq bigint)
         LEFT JOIN push_targets t ON t.device_id = p.device_id
         LEFT JOIN device_cursors dc ON dc.device_id = p.device_id AND dc.conversation_id = p.conversation_id
         LEFT JOIN messages m ON m.conversation_id = p.conversation_id AND m.seq = p.seq
         LEFT JOIN conversations c ON c.id = p.conversation_id`,
      [JSON.stringify(claimed.map((c) => ({ device_id: c.deviceId, conversation_id: c.conversationId, seq: c.seq })))],
    );
    const byDevice = new Map(details.map((d) => [d.device_id as string, d]));
    let next = 0;
    const worker = async () => {
      while (next < claimed.length) {
        const c = claimed[next++]!;
        await this.sendOne(c, byDevice.get(c.deviceId)).catch((err: unknown) => {
          this.metrics.backendFailures.inc({ backend: 'sql', operation: 'push_finish' });
          this.log.error({ err }, 'push bookkeeping failed; the lease expires and it is tried again');
        });
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 16, claimed.length) }, worker));
  }

  private async sendOne(c: Claimed, d: Record<string, unknown> | undefined): Promise<void> {
    if (!d || d.kind === null || d.kind === undefined) {
      await this.finish(c, 'gone_target'); // the target was removed meanwhile
      return;
    }
    if (num(d.delivered) >= c.seq || d.blocked === true) {
      // The device got it live meanwhile, or it is a group message from someone its user blocks
      // (one ciphertext for every member, so it is stored for them; their client drops it).
      await this.finish(c, 'delivered');
      return;
    }
    const target: StoredPushTarget = {
      deviceId: c.deviceId,
      kind: d.kind as 'webhook' | 'webpush',
      token: (d.token as string | null) ?? null,
      endpoint: (d.endpoint as string | null) ?? null,
      p256dh: (d.p256dh as string | null) ?? null,
      auth: (d.auth as string | null) ?? null,
    };
    const payload = target.kind === 'webpush' ? this.payload(c, d) : undefined;
    let outcome: PushOutcome;
    try {
      outcome = await this.sender!.send({ target, count: c.count, ...(payload ? { payload } : {}) });
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message } }, 'push adapter threw; retried later');
      outcome = { result: 'retry' };
    }
    this.metrics.pushesSent.inc({ adapter: target.kind, outcome: outcome.result });
    if (outcome.result === 'sent') await this.sent(c);
    else if (outcome.result === 'gone') await this.finish(c, 'gone');
    else if (outcome.result === 'retry' && c.attempts + 1 < (this.options.maxAttempts ?? 8)) await this.retry(c, outcome.retryAfterMs);
    else await this.finish(c, 'dropped');
  }

  /**
   * What a Web Push carries: this device's own ciphertext of the newest message when it fits
   * (it is encrypted to this device already), else a content-free wake-up. System messages
   * (group changes) carry only a wake-up: their names are sealed for the device in other ways.
   * So do disappearing messages (a push service may keep an undelivered push for its TTL, and
   * their ciphertext must not outlive its expiry anywhere) and messages deleted for everyone.
   */
  private payload(c: Claimed, d: Record<string, unknown>): string {
    const body = d.body as string | null | undefined;
    const disappearing = d.expires_at !== null && d.expires_at !== undefined;
    const deleted = d.deleted_at !== null && d.deleted_at !== undefined;
    if (typeof body !== 'string' || body === '' || d.system !== null || d.client_id === null || d.client_id === undefined || disappearing || deleted) {
      return wake(c.count);
    }
    const key = d.key as string | null;
    const msg: MsgFrame = {
      type: 'msg',
      id: d.client_id as string,
      conversationId: c.conversationId,
      seq: c.seq,
      from: d.sender_id as string,
      fromDevice: (d.sender_device_id as string | null) ?? null,
      sentAt: num(d.sent_at),
      body,
      ...(d.conversation_kind === 'group' ? { groupId: c.conversationId } : {}),
      ...(key ? { key } : {}),
    };
    const full: PushPayload = { v: 1, kind: 'message', count: c.count, msg };
    const text = JSON.stringify(full);
    return Buffer.byteLength(text) <= PUSH_PAYLOAD_MAX ? text : wake(c.count);
  }

  /** Sent: the row goes unless a message arrived meanwhile, which is then due after the interval. */
  private async sent(c: Claimed): Promise<void> {
    const now = this.clock.now();
    await this.sql.transaction(async (tx) => {
      await tx.query(`UPDATE push_targets SET last_sent_at = $2 WHERE device_id = $1`, [c.deviceId, now]);
      const gone = await tx.query(`DELETE FROM push_pending WHERE device_id = $1 AND version = $2 RETURNING 1`, [c.deviceId, c.version]);
      if (gone.length === 0) {
        await tx.query(
          `UPDATE push_pending SET claimed_until = 0, attempts = 0, count = greatest(count - $2, 1), due_at = $3 WHERE device_id = $1`,
          [c.deviceId, c.count, now + this.options.coalesceMs],
        );
      }
    });
  }

  private async retry(c: Claimed, retryAfterMs?: number): Promise<void> {
    const due = this.clock.now() + retryDelayMs(c.attempts, retryAfterMs);
    await this.sql.query(`UPDATE push_pending SET claimed_until = 0, attempts = attempts + 1, due_at = $2 WHERE device_id = $1`, [c.deviceId, due]);
  }

  /** The push is over without being sent: delivered live, the target gone (dropped with it), or given up. */
  private async finish(c: Claimed, why: 'delivered' | 'gone' | 'gone_target' | 'dropped'): Promise<void> {
    if (why === 'gone') {
      this.log.info({ deviceId: c.deviceId }, 'push target is gone (404/410); removed');
      await this.unregister(c.deviceId);
      return;
    }
    if (why === 'dropped') this.log.warn({ deviceId: c.deviceId, attempts: c.attempts + 1 }, 'push given up; the device syncs when it connects');
    // A message that arrived meanwhile keeps the row, released for the next round.
    const gone = await this.sql.query(`DELETE FROM push_pending WHERE device_id = $1 AND version = $2 RETURNING 1`, [c.deviceId, c.version]);
    if (gone.length === 0) await this.sql.query(`UPDATE push_pending SET claimed_until = 0 WHERE device_id = $1`, [c.deviceId]);
  }
}
