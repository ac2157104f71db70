// Reports: what users report to the operator, with the messages they chose to attach; and the operator's reading of them.
import { randomUUID } from 'node:crypto';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { num, type Sql } from '../platform/sql.js';
import type { ReportedMessage } from '../protocol/control.js';

export type { ReportedMessage } from '../protocol/control.js';

export interface NewReport {
  reporterId: string;
  /** The reported user. */
  userId: string;
  conversationId?: string;
  reason: string;
  messages: ReportedMessage[];
}

/** A report as the operator lists it (without the attached messages). */
export interface ReportSummary {
  id: string;
  reporterId: string;
  userId: string;
  conversationId: string | null;
  reason: string;
  messageCount: number;
  createdAt: number;
}

export interface Report extends ReportSummary {
  messages: ReportedMessage[];
}

/** An operator's page of reports: newest first, and where the next page starts (absent on the last one). */
export interface ReportPage {
  reports: ReportSummary[];
  cursor?: string;
}

/**
 * Table `reports` (platform/migrations.ts, version 9). The attached messages are plaintext the
 * reporter decrypted and sent of their own accord: the only plaintext the server holds. Nothing
 * else of a conversation is ever added to a report. Reports have no foreign keys: they stay
 * when either account is deleted, until the operator deletes them.
 */
export class Reports {
  constructor(
    private readonly sql: Sql,
    private readonly clock: Clock,
  ) {}

  /** Files a report; `not_found` when the reported user does not exist (or is the reporter: one cannot report oneself). */
  async file(report: NewReport): Promise<{ id: string }> {
    const id = randomUUID();
    const rows = await this.sql.query(
      `INSERT INTO reports (id, reporter_id, reported_id, conversation_id, reason, messages, created_at)
       SELECT $1, $2, u.id, $4, $5, $6::jsonb, $7 FROM users u WHERE u.id = $3 AND u.id <> $2 RETURNING 1`,
      [id, report.reporterId, report.userId, report.conversationId ?? null, report.reason, JSON.stringify(report.messages), this.clock.now()],
    );
    if (rows.length === 0) throw new AppError('not_found', 'no such user');
    return { id };
  }

  /** Newest first, `limit` at a time; `cursor` is what the previous page returned. */
  async list(limit: number, cursor?: string): Promise<ReportPage> {
    const after = cursor === undefined ? null : decodePageCursor(cursor);
    const rows = await this.sql.query(
      `SELECT id, reporter_id, reported_id, conversation_id, reason, jsonb_array_length(messages) AS n, created_at FROM reports
        WHERE $1::bigint IS NULL OR (created_at, id) < ($1::bigint, $2::uuid)
        ORDER BY created_at DESC, id DESC LIMIT $3`,
      [after?.at ?? null, after?.id ?? null, limit + 1],
    );
    const reports = rows.slice(0, limit).map((r) => summary(r));
    const last = reports.at(-1);
    return rows.length > limit && last ? { reports, cursor: encodePageCursor(last.createdAt, last.id) } : { reports };
  }

  /** One report with its messages; null when there is none. */
  async get(id: string): Promise<Report | null> {
    const [r] = await this.sql.query(
      `SELECT id, reporter_id, reported_id, conversation_id, reason, jsonb_array_length(messages) AS n, created_at, messages FROM reports WHERE id = $1`,
      [id],
    );
    return r ? { ...summary(r), messages: r.messages as ReportedMessage[] } : null;
  }
}

function summary(r: Record<string, unknown>): ReportSummary {
  return {
    id: r.id as string,
    reporterId: r.reporter_id as string,
    userId: r.reported_id as string,
    conversationId: (r.conversation_id as string | null) ?? null,
    reason: r.reason as string,
    messageCount: num(r.n),
    createdAt: num(r.created_at),
  };
}

/** A keyset page cursor (a time and a uuid, the last item's), opaque to clients: base64url JSON. Also the inbox's. */
export const encodePageCursor = (at: number, id: string): string => Buffer.from(JSON.stringify([at, id])).toString('base64url');

/** The time and uuid of a cursor from encodePageCursor; `invalid` for anything else. */
export function decodePageCursor(cursor: string): { at: number; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown[];
    if (Number.isSafeInteger(at) && typeof id === 'string' && /^[0-9a-f-]{36}$/.test(id)) return { at: at as number, id };
  } catch {
    // falls through to the refusal
  }
  throw new AppError('invalid', 'cursor: not one this server gave');
}
