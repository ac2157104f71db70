// The Node message store: the history in an embedded PostgreSQL (PGlite, WASM) with a data directory. Node only: browsers never load this module.
import { PGlite, type Transaction } from '@electric-sql/pglite';
import type { MessageStore, StoredEntry } from './history.js';
import { ParleyError } from './http.js';

/** Rows per INSERT statement (6 parameters each, well under PostgreSQL's 65,535). */
const ROWS_PER_INSERT = 1000;

interface Row {
  conversation_id: string;
  seq: number;
  id: string;
  target: string | null;
  sent_at: number;
  body: Uint8Array;
}

const entry = (r: Row): StoredEntry => ({
  conversationId: r.conversation_id,
  seq: Number(r.seq),
  id: r.id,
  ...(r.target === null ? {} : { target: r.target }),
  sentAt: Number(r.sent_at),
  body: r.body,
});

/** A driver error as the SDK's error (the statement's text stays out of it: it says nothing the caller needs). */
function wrap(err: unknown): ParleyError {
  return err instanceof ParleyError ? err : new ParleyError('unavailable', `message store: ${(err as Error).message}`);
}

export interface PgliteMessageStoreOptions {
  /** The schema that holds the store's table (created if missing). Default `parley_history`. */
  schema?: string;
  /** Whether `close()` closes `db` too. Default false: the caller made it, the caller closes it. */
  ownsDb?: boolean;
}

/**
 * Opens the store in `dataDir` (created if missing), on a PGlite of its own, closed by
 * `close()`. Never open one data directory from two processes (or two stores).
 * @example createClient({ url, username, password, keyStore: diskKeyStore('./me.keys.json'), messageStore: await openPgliteMessageStore('./me.history'), historyKey })
 */
export async function openPgliteMessageStore(dataDir: string): Promise<MessageStore> {
  let db: PGlite;
  try {
    db = await PGlite.create(dataDir);
  } catch (err) {
    throw wrap(err);
  }
  return pgliteMessageStore(db, { ownsDb: true });
}

/**
 * A MessageStore over a ready PGlite. Layout, in `schema` (default `parley_history`):
 * `entries (conversation_id text, seq bigint, id text, target text NULL, sent_at bigint,
 * body bytea, PRIMARY KEY (conversation_id, seq))`, with partial indexes for the reads:
 * `(conversation_id, seq) WHERE target IS NULL` (paging messages, newest first),
 * `(conversation_id, id) WHERE target IS NULL` (a message by id) and
 * `(conversation_id, target) WHERE target IS NOT NULL` (the actions on messages). Ids, seqs
 * and times are plain; `body` is what the SDK gives it (ciphertext under a history key).
 * A write is one transaction, committed to the data directory before it resolves.
 */
export async function pgliteMessageStore(db: PGlite, options: PgliteMessageStoreOptions = {}): Promise<MessageStore> {
  const schema = options.schema ?? 'parley_history';
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(schema)) throw new ParleyError('invalid', `not a schema name: ${schema}`);
  const t = `${schema}.entries`;
  try {
    await db.exec(`
      CREATE SCHEMA IF NOT EXISTS ${schema};
      CREATE TABLE IF NOT EXISTS ${t} (
        conversation_id text NOT NULL,
        seq bigint NOT NULL,
        id text NOT NULL,
        target text,
        sent_at bigint NOT NULL,
        body bytea NOT NULL,
        PRIMARY KEY (conversation_id, seq)
      );
      CREATE INDEX IF NOT EXISTS entries_messages ON ${t} (conversation_id, seq) WHERE target IS NULL;
      CREATE INDEX IF NOT EXISTS entries_ids ON ${t} (conversation_id, id) WHERE target IS NULL;
      CREATE INDEX IF NOT EXISTS entries_targets ON ${t} (conversation_id, target) WHERE target IS NOT NULL;
    `);
  } catch (err) {
    throw wrap(err);
  }

  /**
   * Writes run one after another, in call order, each in its own transaction (a single
   * statement is one by itself: no BEGIN and COMMIT round trips); reads wait for the writes
   * called before them.
   */
  let writes: Promise<unknown> = Promise.resolve();
  const write = (statements: { text: string; params: unknown[] }[]): Promise<void> => {
    const run = writes
      .then(async () => {
        if (statements.length === 1) await db.query(statements[0]!.text, statements[0]!.params);
        else
          await db.transaction(async (tx: Transaction) => {
            for (const q of statements) await tx.query(q.text, q.params);
          });
      })
      .then(
      () => undefined,
      (err: unknown) => {
        throw wrap(err);
      },
    );
    writes = run.catch(() => undefined);
    return run;
  };
  const read = async <T>(text: string, params: unknown[], map: (rows: Row[]) => T): Promise<T> => {
    await writes;
    try {
      return map((await db.query<Row>(text, params)).rows);
    } catch (err) {
      throw wrap(err);
    }
  };

  /** One INSERT per ROWS_PER_INSERT entries, all in one transaction. */
  const insert = (conflict: string) => (entries: StoredEntry[]) => {
    if (entries.length === 0) return Promise.resolve();
    const statements: { text: string; params: unknown[] }[] = [];
    for (let i = 0; i < entries.length; i += ROWS_PER_INSERT) {
      const params: unknown[] = [];
      const values = entries.slice(i, i + ROWS_PER_INSERT).map((e) => {
        params.push(e.conversationId, e.seq, e.id, e.target ?? null, e.sentAt, e.body);
        const n = params.length;
        return `($${n - 5}, $${n - 4}, $${n - 3}, $${n - 2}, $${n - 1}, $${n})`;
      });
      statements.push({ text: `INSERT INTO ${t} (conversation_id, seq, id, target, sent_at, body) VALUES ${values.join(', ')} ON CONFLICT (conversation_id, seq) ${conflict}`, params });
    }
    return write(statements);
  };

  return {
    put: insert('DO UPDATE SET id = EXCLUDED.id, target = EXCLUDED.target, sent_at = EXCLUDED.sent_at, body = EXCLUDED.body'),
    merge: insert('DO NOTHING'),
    page: (conversationId, { before, limit }) =>
      read(
        `SELECT * FROM ${t} WHERE conversation_id = $1 AND target IS NULL AND seq < $2 ORDER BY seq DESC LIMIT $3`,
        [conversationId, before ?? Number.MAX_SAFE_INTEGER, limit],
        (rows) => rows.map(entry),
      ),
    message: (conversationId, id) =>
      read(`SELECT * FROM ${t} WHERE conversation_id = $1 AND id = $2 AND target IS NULL LIMIT 1`, [conversationId, id], (rows) => (rows[0] ? entry(rows[0]) : undefined)),
    actions: (conversationId, targets) =>
      targets.length === 0
        ? Promise.resolve([])
        : read(`SELECT * FROM ${t} WHERE conversation_id = $1 AND target = ANY($2::text[]) ORDER BY seq`, [conversationId, [...new Set(targets)]], (rows) => rows.map(entry)),
    delete: (conversationId, seqs) =>
      seqs.length === 0 ? Promise.resolve() : write([{ text: `DELETE FROM ${t} WHERE conversation_id = $1 AND seq = ANY($2::bigint[])`, params: [conversationId, [...seqs]] }]),
    exportAll: () => read(`SELECT * FROM ${t} ORDER BY conversation_id, seq`, [], (rows) => rows.map(entry)),
    close: async () => {
      await writes;
      if (options.ownsDb && !db.closed) await db.close();
    },
  };
}
