// The schema, as ordered migrations that run identically on PGlite and PostgreSQL 15.
import type { Sql } from './sql.js';

/**
 * Tables (times are epoch milliseconds in bigint, from the injected clock):
 * - users, devices: accounts and their devices; each device has its own public key.
 * - conversations: one row per conversation with `last_seq`, the gap-free sequence counter.
 * - conversation_members: who belongs to a conversation.
 * - messages: each message stored once per conversation; `payloads` maps a recipient device
 *   id to that device's ciphertext (base64). Idempotency: unique (sender_device_id, client_id).
 * - device_cursors: per device and conversation, the delivered and read high-water marks.
 * - settings: server-generated values (e.g. the token signing key when JWT_SECRET is unset).
 *
 * Version 2 (groups):
 * - groups: a group's name, owner and deletion time; its id is its conversation's id.
 * - conversation_members gains `role` (owner | admin | member) and the member's window on the
 *   conversation: `joined_seq` (the first seq they may see: the system message that added
 *   them) and `left_seq` (the last: the one that removed them; null while a member). A member
 *   who is added again gets a new window; what was sent while they were out stays invisible.
 * - conversations gains `members_version`: the seq of the last membership change, so a send
 *   encrypted for an older member list is refused at commit time.
 * - messages gains `body` (one ciphertext shared by every member device, group messages) and
 *   `system` (a server-authored membership or name change, no ciphertext); a system message
 *   has no sender device.
 *
 * Version 3 (key directory):
 * - signed_prekeys: per device, its current signed prekey and the identity key that signed it
 *   (a bundle is served only while that still equals the device's registered public key).
 * - one_time_prekeys: per device, unused one-time prekeys; a bundle fetch deletes the one it
 *   hands out (accounts/keys.ts).
 *
 * Version 4 (files):
 * - blobs: one row per stored ciphertext blob, keyed by its SHA-256 (hex), with `refs` = the
 *   number of `files` rows that use it. A row with refs 0 is awaiting deletion from the blob
 *   store (see files/files.ts for the locking protocol).
 * - files: an uploaded file: a random public id (base64url, 128 bits), its blob, uploader,
 *   ciphertext size and when it expires.
 * - file_shares: the conversations a file was shared in; their members may download it.
 *
 * Version 5 (membership windows for files):
 * - file_shares gains `shared_seq`: the conversation's `last_seq` when the file was shared.
 *   A member may download it only if that share falls inside their membership window
 *   (joined_seq <= shared_seq + 1, and shared_seq < left_seq once they left), exactly as a
 *   message at seq shared_seq + 1 would. Sharing again adds a row at the new seq (so a later
 *   member gets a file sent again), hence the key. Shares from before version 5 count as 0.
 *
 * Version 6 (lookalike usernames):
 * - users gains `username_skeleton`, unique: two accounts may not have usernames that look
 *   alike. The rule (accounts/username.ts, `usernameSkeleton`, computes the same for new
 *   accounts): in the NFKC-normalized username, `0`→`o`, `1`→`l`, `m`→`rn` (as Unicode UTS #39
 *   confusables map them); `.` `_` `-` are one separator and a run of them is one; separators
 *   at either end are dropped. So `alice1`/`alicel`, `b0b`/`bob`, `carol.`/`carol`,
 *   `rnike`/`mike` and `a__b`/`a-b` collide. Logins and lookups still match `username` exactly.
 *   Existing accounts that already collide keep working: the oldest (created_at, then id)
 *   gets the skeleton, the later ones keep NULL (the unique index allows many NULLs).
 *
 * Version 7 (device vouching):
 * - devices gains `vouched_by` and `vouch_signature`: which device of the same user vouched
 *   for this one (itself for a user's first device) and its Ed25519 signature over the
 *   device certificate (protocol/trust.ts). Clients encrypt only to devices vouched
 *   for by devices they already trust; the server stores and checks, but is not trusted.
 *   A device that logs in again with a new key loses its vouch.
 *
 * Version 8 (notifications, retention, disappearing messages):
 * - push_targets: per device, where its pushes go: `kind` webhook (the app's own relay, with
 *   the app's opaque device `token`) or webpush (an RFC 8030 `endpoint` with the
 *   subscription's `p256dh` and `auth` keys); `last_sent_at` is when it was last pushed.
 * - push_pending: at most one row per device: the push it is owed (coalesced). `seq` and
 *   `conversation_id` name the newest message it is for, `count` how many it stands for,
 *   `due_at` when it may be sent (coalescing interval, retry backoff), `claimed_until` the lease
 *   of the process sending it, `attempts` the temporary failures so far, `version` bumped by
 *   each new message so a sender deletes only what it sent.
 * - conversation_mutes: per user and conversation, muted until `until` (null: until unmuted).
 * - messages gains `expires_at`: when a disappearing message's ciphertext must be erased.
 * - device_cursors gains `swept_seq`: the delivered cursor the message purge last handled for
 *   this device (messaging/purge.ts): a cursor with delivered_seq > swept_seq has acknowledged
 *   messages the purge has not erased yet. Only the purge writes it; it is not indexed, so
 *   cursor writes stay as cheap as before.
 *
 * Version 9 (the inbox, blocking, reports, accounts, delete for everyone):
 * - message_index: one small row per message (no ciphertext): sender, time, whether it is a
 *   system message, `hidden_for` (the user a blocked sender's direct message was stored for
 *   without their copies) and `deleted` (deleted for everyone). The inbox counts unread
 *   messages and orders conversations by last activity from it, because the purge erases
 *   message rows once delivered, long before they are read. A statement trigger on `messages`
 *   writes it in the same statement as the append (so it is never out of step), one insert per
 *   batch; the purge deletes rows every member has read past, and rows older than the
 *   retention period, but always keeps a conversation's last one (its last activity).
 * - blocks: who blocks whom, since when (both sides cascade with the users).
 * - reports: what a user reported to the operator: the reported user, the conversation, the
 *   reason and the messages the reporter chose to attach (plaintext they decrypted: the only
 *   plaintext the server ever holds, and only by the reporter's action). No foreign keys:
 *   reports outlive both accounts, for the operator.
 * - devices gains `last_seen_at` (last connect, disconnect or login) and `tokens_not_before`
 *   (epoch seconds: tokens issued before it are refused; set when another device changed the
 *   password, or when the account is deleted).
 * - messages gains `deleted_at`: deleted for everyone. Its ciphertext is gone (every payload
 *   and the body replaced by '', the device keys kept so the acked purge still sees whom it
 *   was for) and devices that fetch it get a tombstone.
 * - groups.owner_id may be null and is set null when its user is deleted (a deleted group keeps
 *   its last owner otherwise; a live group is always handed on first).
 */
export const MIGRATIONS: readonly string[] = [
  `CREATE TABLE users (
     id uuid PRIMARY KEY,
     username text NOT NULL UNIQUE,
     password_hash text NOT NULL,
     created_at bigint NOT NULL
   );
   CREATE TABLE devices (
     id uuid PRIMARY KEY,
     user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
     name text NOT NULL,
     public_key text NOT NULL,
     created_at bigint NOT NULL
   );
   CREATE INDEX devices_user_idx ON devices (user_id);
   CREATE TABLE conversations (
     id uuid PRIMARY KEY,
     kind text NOT NULL,
     last_seq bigint NOT NULL DEFAULT 0,
     created_at bigint NOT NULL
   );
   CREATE TABLE conversation_members (
     conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
     user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
     PRIMARY KEY (conversation_id, user_id)
   );
   CREATE INDEX conversation_members_user_idx ON conversation_members (user_id);
   CREATE TABLE messages (
     conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
     seq bigint NOT NULL,
     sender_id uuid NOT NULL,
     sender_device_id uuid NOT NULL,
     client_id text NOT NULL,
     payloads jsonb NOT NULL,
     sent_at bigint NOT NULL,
     PRIMARY KEY (conversation_id, seq),
     UNIQUE (sender_device_id, client_id)
   );
   CREATE TABLE device_cursors (
     device_id uuid NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
     conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
     delivered_seq bigint NOT NULL DEFAULT 0,
     read_seq bigint NOT NULL DEFAULT 0,
     PRIMARY KEY (device_id, conversation_id)
   );
   CREATE INDEX device_cursors_conversation_idx ON device_cursors (conversation_id);
   CREATE TABLE settings (
     key text PRIMARY KEY,
     value text NOT NULL
   );`,
  `CREATE TABLE groups (
     id uuid PRIMARY KEY REFERENCES conversations(id) ON DELETE CASCADE,
     name text NOT NULL,
     owner_id uuid NOT NULL REFERENCES users(id),
     created_at bigint NOT NULL,
     deleted_at bigint
   );
   ALTER TABLE conversations ADD COLUMN members_version bigint NOT NULL DEFAULT 0;
   ALTER TABLE conversation_members ADD COLUMN role text NOT NULL DEFAULT 'member';
   ALTER TABLE conversation_members ADD COLUMN joined_seq bigint NOT NULL DEFAULT 0;
   ALTER TABLE conversation_members ADD COLUMN left_seq bigint;
   ALTER TABLE conversation_members ADD COLUMN joined_at bigint NOT NULL DEFAULT 0;
   ALTER TABLE messages ALTER COLUMN sender_device_id DROP NOT NULL;
   ALTER TABLE messages ADD COLUMN body text;
   ALTER TABLE messages ADD COLUMN system jsonb`,
  `CREATE TABLE signed_prekeys (
     device_id uuid PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
     identity_key text NOT NULL,
     key_id bigint NOT NULL,
     public_key text NOT NULL,
     signature text NOT NULL,
     updated_at bigint NOT NULL
   );
   CREATE TABLE one_time_prekeys (
     device_id uuid NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
     key_id bigint NOT NULL,
     public_key text NOT NULL,
     PRIMARY KEY (device_id, key_id)
   );`,
  `CREATE TABLE blobs (
     hash text PRIMARY KEY,
     size bigint NOT NULL,
     refs int NOT NULL DEFAULT 0,
     created_at bigint NOT NULL
   );
   CREATE INDEX blobs_unreferenced_idx ON blobs (hash) WHERE refs <= 0;
   CREATE TABLE files (
     id text PRIMARY KEY,
     blob_hash text NOT NULL REFERENCES blobs(hash),
     uploader_id uuid NOT NULL,
     size bigint NOT NULL,
     created_at bigint NOT NULL,
     expires_at bigint NOT NULL
   );
   CREATE INDEX files_expires_idx ON files (expires_at);
   CREATE TABLE file_shares (
     file_id text NOT NULL REFERENCES files(id) ON DELETE CASCADE,
     conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
     PRIMARY KEY (file_id, conversation_id)
   );`,
  `ALTER TABLE file_shares ADD COLUMN shared_seq bigint NOT NULL DEFAULT 0;
   ALTER TABLE file_shares DROP CONSTRAINT file_shares_pkey;
   ALTER TABLE file_shares ADD PRIMARY KEY (file_id, conversation_id, shared_seq)`,
  `ALTER TABLE users ADD COLUMN username_skeleton text;
   UPDATE users SET username_skeleton = ranked.skeleton
     FROM (SELECT id, skeleton, row_number() OVER (PARTITION BY skeleton ORDER BY created_at, id) AS n
             FROM (SELECT id, created_at,
                          btrim(regexp_replace(replace(translate(username, '01_-', 'ol..'), 'm', 'rn'), '[.]+', '.', 'g'), '.') AS skeleton
                     FROM users) AS folded) AS ranked
    WHERE users.id = ranked.id AND ranked.n = 1;
   CREATE UNIQUE INDEX users_username_skeleton_idx ON users (username_skeleton)`,
  `ALTER TABLE devices ADD COLUMN vouched_by uuid;
   ALTER TABLE devices ADD COLUMN vouch_signature text`,
  `CREATE TABLE push_targets (
     device_id uuid PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
     kind text NOT NULL,
     token text,
     endpoint text,
     p256dh text,
     auth text,
     created_at bigint NOT NULL,
     last_sent_at bigint NOT NULL DEFAULT 0
   );
   CREATE TABLE push_pending (
     device_id uuid PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
     conversation_id uuid NOT NULL,
     seq bigint NOT NULL,
     count int NOT NULL DEFAULT 1,
     due_at bigint NOT NULL,
     claimed_until bigint NOT NULL DEFAULT 0,
     attempts int NOT NULL DEFAULT 0,
     version int NOT NULL DEFAULT 1
   );
   CREATE INDEX push_pending_due_idx ON push_pending (due_at);
   CREATE TABLE conversation_mutes (
     user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
     conversation_id uuid NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
     until bigint,
     PRIMARY KEY (user_id, conversation_id)
   );
   ALTER TABLE messages ADD COLUMN expires_at bigint;
   CREATE INDEX messages_expires_idx ON messages (expires_at) WHERE expires_at IS NOT NULL;
   CREATE INDEX messages_sent_at_idx ON messages (sent_at);
   ALTER TABLE device_cursors ADD COLUMN swept_seq bigint NOT NULL DEFAULT 0`,
  // The trigger function's body is an E'' string whose semicolons are written \073, so that
  // splitStatements (which splits on ';') leaves it whole.
  `CREATE TABLE message_index (
     conversation_id uuid NOT NULL,
     seq bigint NOT NULL,
     sender_id uuid NOT NULL,
     sent_at bigint NOT NULL,
     system boolean NOT NULL,
     hidden_for uuid,
     deleted boolean NOT NULL DEFAULT false,
     PRIMARY KEY (conversation_id, seq)
   );
   INSERT INTO message_index (conversation_id, seq, sender_id, sent_at, system)
   SELECT conversation_id, seq, sender_id, sent_at, system IS NOT NULL FROM messages;
   CREATE TABLE blocks (
     user_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
     blocked_id uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
     created_at bigint NOT NULL,
     PRIMARY KEY (user_id, blocked_id)
   );
   CREATE INDEX blocks_blocked_idx ON blocks (blocked_id);
   CREATE FUNCTION parley_index_messages() RETURNS trigger LANGUAGE plpgsql AS E'BEGIN
     INSERT INTO message_index (conversation_id, seq, sender_id, sent_at, system, hidden_for)
     SELECT a.conversation_id, a.seq, a.sender_id, a.sent_at, a.system IS NOT NULL,
            CASE WHEN a.body IS NULL AND a.system IS NULL THEN (
              SELECT b.user_id FROM blocks b
                JOIN conversation_members cm ON cm.conversation_id = a.conversation_id AND cm.user_id = b.user_id
               WHERE b.blocked_id = a.sender_id
                 AND NOT EXISTS (SELECT 1 FROM devices d WHERE d.user_id = b.user_id AND a.payloads ? d.id::text)
               LIMIT 1) END
       FROM added a\\073
     RETURN NULL\\073
   END';
   CREATE TRIGGER messages_index AFTER INSERT ON messages REFERENCING NEW TABLE AS added
     FOR EACH STATEMENT EXECUTE FUNCTION parley_index_messages();
   CREATE TABLE reports (
     id uuid PRIMARY KEY,
     reporter_id uuid NOT NULL,
     reported_id uuid NOT NULL,
     conversation_id uuid,
     reason text NOT NULL,
     messages jsonb NOT NULL,
     created_at bigint NOT NULL
   );
   CREATE INDEX reports_created_idx ON reports (created_at, id);
   ALTER TABLE devices ADD COLUMN last_seen_at bigint;
   ALTER TABLE devices ADD COLUMN tokens_not_before bigint NOT NULL DEFAULT 0;
   ALTER TABLE messages ADD COLUMN deleted_at bigint;
   ALTER TABLE groups ALTER COLUMN owner_id DROP NOT NULL;
   ALTER TABLE groups DROP CONSTRAINT groups_owner_id_fkey;
   ALTER TABLE groups ADD CONSTRAINT groups_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES users(id) ON DELETE SET NULL`,
];

/**
 * Brings the schema up to date. Safe to run from several processes at once: an advisory
 * lock serializes them, and each migration commits together with its version row.
 */
export async function migrate(sql: Sql): Promise<number> {
  return sql.transaction(async (tx) => {
    await tx.query(`SELECT pg_advisory_xact_lock(727274)`);
    await tx.query(`CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, applied_at bigint NOT NULL)`);
    const rows = await tx.query<{ v: number | null }>(`SELECT max(version) AS v FROM schema_migrations`);
    const current = Number(rows[0]?.v ?? 0);
    for (let v = current + 1; v <= MIGRATIONS.length; v++) {
      for (const statement of splitStatements(MIGRATIONS[v - 1]!)) await tx.query(statement);
      await tx.query(`INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`, [v, Date.now()]);
    }
    return MIGRATIONS.length;
  });
}

/** Our migrations hold no semicolons inside literals, so splitting on `;` is exact. */
function splitStatements(script: string): string[] {
  return script
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}
