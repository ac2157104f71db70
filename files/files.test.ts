// FileService and RetentionSweeper on a real SQL store (PGlite; PostgreSQL when reachable) and the disk blob store, with a manual clock.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { MessageStore } from '../messaging/message-store.js';
import { ManualClock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import { createLogger } from '../platform/log.js';
import { createMetrics } from '../platform/metrics.js';
import { migrate } from '../platform/migrations.js';
import type { Sql } from '../platform/sql.js';
import { PgliteSql } from '../platform/sql.pglite.js';
import { PostgresSql } from '../platform/sql.postgres.js';
import { createTestDatabase } from '../platform/test-databases.js';
import { DiskBlobStore } from '../platform/blob-store.disk.js';
import { FileService } from './files.js';
import { RetentionSweeper } from './retention-sweeper.js';

const DAY = 86_400_000;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const upload = (files: FileService, user: string, bytes: Buffer, claimed = sha256(bytes)) =>
  files.upload(user, Readable.from([bytes]), { size: bytes.length, sha256: claimed });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return err instanceof AppError ? err.code : `not an AppError: ${String(err)}`;
  }
  return 'resolved';
}

function fileServiceSuite(name: string, open: () => Promise<{ sql: Sql; dispose: () => Promise<void> }>): void {
  describe(`FileService on ${name}`, () => {
    let sql: Sql;
    let dispose: () => Promise<void>;
    let root: string;
    let blobs: DiskBlobStore;
    let files: FileService;
    let clock: ManualClock;
    let sweeper: RetentionSweeper;
    let alice: string, bob: string, carol: string;
    const log = createLogger('silent');
    const metrics = createMetrics();

    /** Every file in the blob store's directory: blobs and staging leftovers. */
    const stored = async () => (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name);

    // One database per suite (PGlite takes seconds to open); each test starts from empty file tables.
    beforeAll(async () => {
      ({ sql, dispose } = await open());
      await migrate(sql);
    });
    afterAll(async () => {
      await sql.close();
      await dispose();
    });

    beforeEach(async () => {
      await sql.query(`DELETE FROM file_shares`);
      await sql.query(`DELETE FROM files`);
      await sql.query(`DELETE FROM blobs`);
      clock = new ManualClock();
      root = await mkdtemp(join(tmpdir(), 'parley-files-'));
      blobs = await DiskBlobStore.open(root);
      files = new FileService(sql, blobs, new MessageStore(sql, clock, { shards: 1 }), clock, metrics, log, {
        maxBytes: 1024 * 1024,
        retentionMs: 30 * DAY,
      });
      sweeper = new RetentionSweeper(files, clock, log, metrics, { intervalMs: 60_000 });
      [alice, bob, carol] = [randomUUID(), randomUUID(), randomUUID()];
      for (const [i, u] of [alice, bob, carol].entries()) {
        await sql.query(`INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, 'x', 0)`, [u, `user${i}_${u.slice(0, 8)}`]);
        await sql.query(`INSERT INTO devices (id, user_id, name, public_key, created_at) VALUES ($1, $2, 'd', 'k', 0)`, [randomUUID(), u]);
      }
    });
    afterEach(async () => {
      await sweeper.stop();
      await rm(root, { recursive: true, force: true });
    });

    it('stores an upload under its hash and lets only the uploader and the share see it', async () => {
      const bytes = randomBytes(10_000);
      const r = await upload(files, alice, bytes);
      expect(r).toMatchObject({ size: 10_000, deduplicated: false });
      expect(r.id).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(await stored()).toEqual([sha256(bytes)]);
      expect(await files.find(alice, r.id)).toMatchObject({ id: r.id, size: 10_000 });
      expect(await files.find(bob, r.id)).toBeNull();
      expect(await code(files.share(bob, r.id, { userId: alice }))).toBe('not_found'); // bob cannot see it, so cannot share it

      const { conversationId } = await files.share(alice, r.id, { userId: bob });
      expect(conversationId).toBe(MessageStore.directConversationId(alice, bob));
      expect(await files.find(bob, r.id)).not.toBeNull();
      expect(await files.find(carol, r.id)).toBeNull();
      // Sharing again is harmless; carol may not share into a conversation she is not in.
      await files.share(bob, r.id, { conversationId });
      expect(await code(files.share(alice, r.id, { conversationId: MessageStore.directConversationId(bob, carol) }))).toBe('not_found');
      expect(await code(files.share(alice, r.id, { userId: randomUUID() }))).toBe('not_found');
      expect(await code(files.share(alice, r.id, { userId: alice }))).toBe('invalid');
      const chunks: Buffer[] = [];
      for await (const c of await files.read((await files.find(bob, r.id))!, { start: 10, end: 19 })) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(bytes.subarray(10, 20))).toBe(true);
    });

    it('stores identical uploads once, with one reference each', async () => {
      const bytes = randomBytes(5_000);
      const a = await upload(files, alice, bytes);
      const b = await upload(files, bob, bytes);
      expect(b.deduplicated).toBe(true);
      expect(a.id).not.toBe(b.id);
      expect(await stored()).toEqual([sha256(bytes)]);
      const [row] = await sql.query(`SELECT refs FROM blobs WHERE hash = $1`, [sha256(bytes)]);
      expect(Number(row!.refs)).toBe(2);
      expect(await files.find(bob, a.id)).toBeNull(); // same bytes, still separate files
    });

    it('refuses a wrong hash, a short body and an oversized upload, leaving nothing stored', async () => {
      const bytes = randomBytes(2_000);
      expect(await code(upload(files, alice, bytes, sha256(Buffer.from('something else'))))).toBe('invalid');
      expect(await code(files.upload(alice, Readable.from([bytes]), { size: 2_001, sha256: sha256(bytes) }))).toBe('invalid');
      expect(await code(upload(files, alice, randomBytes(1024 * 1024 + 1)))).toBe('too_large');
      expect(await stored()).toEqual([]);
      expect(await sql.query(`SELECT * FROM files`)).toEqual([]);
    });

    it('sweeps expired files, then purges blobs nobody references, and keeps the rest', async () => {
      const onlyA = randomBytes(3_000);
      const shared = randomBytes(4_000);
      const a = await upload(files, alice, onlyA);
      await files.share(alice, a.id, { userId: bob });
      const b = await upload(files, alice, shared);
      clock.advance(20 * DAY);
      const c = await upload(files, bob, shared); // same blob, uploaded later: expires later
      expect(await sweeper.sweep()).toEqual({ files: 0, blobs: 0, staged: 0 });

      clock.advance(10 * DAY); // a and b are 30 days old: expired; c is 10 days old
      expect(await sweeper.sweep()).toEqual({ files: 2, blobs: 1, staged: 0 });
      expect(await stored()).toEqual([sha256(shared)]); // onlyA's blob is gone, the shared one kept
      expect(await files.find(alice, a.id)).toBeNull();
      expect(await files.find(bob, a.id)).toBeNull();
      expect(await files.find(alice, b.id)).toBeNull();
      expect(await files.find(bob, c.id)).not.toBeNull();
      expect(await sql.query(`SELECT * FROM file_shares`)).toEqual([]);

      clock.advance(20 * DAY);
      expect(await sweeper.sweep()).toEqual({ files: 1, blobs: 1, staged: 0 });
      expect(await stored()).toEqual([]);
      expect(await sql.query(`SELECT * FROM blobs`)).toEqual([]);
    });

    it('a sweep finishes what a crash left: an unreferenced row whose object may or may not exist', async () => {
      const bytes = randomBytes(1_000);
      const hash = sha256(bytes);
      // As if a process died after promoting (placeholder row, object present) …
      await sql.query(`INSERT INTO blobs (hash, size, refs, created_at) VALUES ($1, 1000, 0, 0)`, [hash]);
      await blobs.promote(await blobs.stage(Readable.from([bytes]), bytes.length), hash);
      // … and another after deleting the object but before deleting the row.
      await sql.query(`INSERT INTO blobs (hash, size, refs, created_at) VALUES ($1, 1, 0, 0)`, [sha256(Buffer.from('x'))]);
      expect(await sweeper.sweep()).toMatchObject({ blobs: 2 });
      expect(await stored()).toEqual([]);
      expect(await sql.query(`SELECT * FROM blobs`)).toEqual([]);
      // An upload of the same content afterwards stores it afresh.
      const r = await upload(files, alice, bytes);
      expect(r.deduplicated).toBe(false);
      expect(await stored()).toEqual([hash]);
    });

    it('re-uploading content whose blob awaits deletion brings the blob back instead of losing it', async () => {
      const bytes = randomBytes(1_000);
      const first = await upload(files, alice, bytes);
      clock.advance(31 * DAY);
      expect(await files.expireFiles(clock.now())).toBe(1); // refs 0 now, the object not yet purged
      const again = await upload(files, bob, bytes);
      expect(again.deduplicated).toBe(false); // refs were 0: the object was (re)promoted
      expect(await sweeper.sweep()).toMatchObject({ blobs: 0 });
      expect(await stored()).toEqual([sha256(bytes)]);
      expect(await files.find(bob, again.id)).not.toBeNull();
      expect(await files.find(alice, first.id)).toBeNull();
    });
  });
}

fileServiceSuite('PGlite', async () => ({ sql: await PgliteSql.open(), dispose: async () => {} }));

const adminUrl = inject('postgresAdminUrl');
if (adminUrl) {
  fileServiceSuite('PostgreSQL', async () => {
    const db = await createTestDatabase(adminUrl);
    return { sql: new PostgresSql(db.url, { max: 4 }), dispose: db.drop };
  });
} else {
  describe('FileService on PostgreSQL', () => it.skip(`skipped: ${inject('postgresUnavailable')}`, () => {}));
}
