// End-to-end: encrypted files through a real server process and the SDK (disk blob store; S3 via S3Proxy): round trips, sharing, ranges, limits, tampering, privacy.
import { createHash, randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ciphertextSize, encryptFile, FILE_CHUNK_BYTES, type FileRef, fileRefOf, paddedSize, type Progress } from '../client-sdk/files.js';
import { type Message, ParleyError } from '../client-sdk/index.js';
import { createS3Client } from '../platform/blob-store.s3.js';
import { newUser, type Recorded } from './support/clients.js';
import { startProxy, type Proxy } from './support/proxy.js';
import { forms, readAll } from './support/scan.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

const MiB = 1024 * 1024;
/** The server's upload limit here: room for the 50 MiB file's ciphertext, and a smaller over-limit test. */
const LIMIT = 60 * MiB;
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function rejection(p: Promise<unknown>): Promise<ParleyError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ParleyError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

describe('files (one process, disk blob store)', () => {
  let server: ServerProcess;
  let proxy: Proxy;
  let alice: Recorded, bob: Recorded, carol: Recorded;
  let bobViaProxy: Recorded;
  const canary = `file-canary-${randomBytes(12).toString('hex')}`;
  const nameCanary = `name-canary-${randomBytes(12).toString('hex')}.pdf`;

  const blobsDir = () => join(server.dataDir, 'blobs', 'sha256');
  const stagingDir = () => join(server.dataDir, 'blobs', 'staging');
  const files = async (dir: string) =>
    (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
  const auth = (u: Recorded) => ({ authorization: `Bearer ${u.client.accessToken}` });
  const rawUpload = (u: Recorded, bytes: Uint8Array, hash = sha256(bytes)) =>
    fetch(`${server.url}/v1/files`, {
      method: 'POST',
      body: bytes as Uint8Array<ArrayBuffer>,
      headers: { ...auth(u), 'content-type': 'application/octet-stream', 'x-content-sha256': hash },
    });
  const get = (u: Recorded, id: string, headers: Record<string, string> = {}) => fetch(`${server.url}/v1/files/${id}`, { headers: { ...auth(u), ...headers } });
  /** The next message `u` receives after `count` messages. */
  const nextMessage = async (u: Recorded, count: number): Promise<Message> => {
    await until(() => u.messages.length > count, 'the message arrives');
    return u.messages[count]!;
  };
  const metric = async (name: string) => {
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(name));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };

  beforeAll(async () => {
    server = await startServer({ env: { FILE_MAX_BYTES: String(LIMIT), LOG_LEVEL: 'trace' } });
    proxy = await startProxy(server.port);
    alice = await newUser(server.url, 'alice');
    bob = await newUser(server.url, 'bob');
    carol = await newUser(server.url, 'carol');
    // Bob's second device talks through a proxy the test can cut mid-download.
    bobViaProxy = await newUser(proxy.url, 'bobp');
  });
  afterAll(async () => {
    for (const u of [alice, bob, carol, bobViaProxy]) await u?.client.close();
    await proxy?.close();
    await server?.dispose();
  });

  it('round-trips a small file: name, type and size arrive encrypted, the bytes after checks', async () => {
    const bytes = new TextEncoder().encode(`hello ${canary} `.repeat(100));
    const uploads: Progress[] = [];
    alice.client.on('upload_progress', (p) => uploads.push(p));
    const sent = await alice.client.sendFile(bob.client.userId, bytes, { name: nameCanary, type: 'application/pdf' });
    expect(sent.fileId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(uploads.at(-1)).toMatchObject({ fileId: sent.fileId, name: nameCanary });
    expect(uploads.at(-1)!.loaded).toBe(uploads.at(-1)!.total);

    const m = await nextMessage(bob, 0);
    expect(m).toMatchObject({ id: sent.id, seq: sent.seq, from: alice.client.userId, text: '' });
    expect(m.file).toMatchObject({ id: sent.fileId, name: nameCanary, type: 'application/pdf', size: bytes.length });
    const downloads: Progress[] = [];
    const plain = await m.file!.download({ onProgress: (p) => downloads.push(p) });
    expect(Buffer.from(plain).equals(Buffer.from(bytes))).toBe(true);
    expect(downloads.at(-1)).toMatchObject({ fileId: sent.fileId, loaded: downloads.at(-1)!.total });
    // The uploader can download it too (e.g. from another device).
    expect((await get(alice, sent.fileId)).status).toBe(200);
    // The server holds the padded ciphertext: the size's bucket, not the size.
    const held = Number((await fetch(`${server.url}/v1/files/${sent.fileId}`, { method: 'HEAD', headers: auth(bob) })).headers.get('content-length'));
    expect(held).toBe(ciphertextSize(bytes.length));
    expect(held).toBe(24 + paddedSize(bytes.length) + 17);
    expect(paddedSize(bytes.length)).toBeGreaterThan(bytes.length);
  });

  it('round-trips a 50 MiB file, resuming with a range request when the connection is cut mid-download', async () => {
    const bytes = randomBytes(50 * MiB);
    const before = await metric('parley_file_downloads_total{kind="range"}');
    const sent = await alice.client.sendFile(bobViaProxy.client.userId, bytes, { name: 'big.bin', type: 'application/octet-stream' });
    const m = await nextMessage(bobViaProxy, 0);
    expect(m.file).toMatchObject({ size: 50 * MiB, name: 'big.bin' });
    let cutAt = 0;
    const loaded: number[] = [];
    const plain = await m.file!.download({
      onProgress: (p) => {
        loaded.push(p.loaded);
        if (!cutAt && p.loaded >= 10 * MiB) {
          cutAt = p.loaded;
          proxy.cut(); // every connection through the proxy dies, the download's included
        }
      },
    });
    expect(cutAt).toBeGreaterThan(0);
    expect(sha256(plain)).toBe(sha256(bytes));
    expect(loaded).toEqual([...loaded].sort((a, b) => a - b)); // it carried on, it did not start over
    expect(await metric('parley_file_downloads_total{kind="range"}')).toBeGreaterThan(before);
    expect(sent.fileId).toBe(m.file!.id);
  });

  it('stores two identical uploads once, each under its own id', async () => {
    const cipher = randomBytes(300_000);
    const blobsBefore = (await files(blobsDir())).length;
    const a = await rawUpload(alice, cipher);
    const b = await rawUpload(bob, cipher);
    expect([a.status, b.status]).toEqual([201, 201]);
    const [ida, idb] = [((await a.json()) as { id: string }).id, ((await b.json()) as { id: string }).id];
    expect(ida).not.toBe(idb);
    const blobs = await files(blobsDir());
    expect(blobs.length).toBe(blobsBefore + 1);
    expect(blobs.filter((f) => f.endsWith(sha256(cipher)))).toHaveLength(1);
    // Each uploader reads their own id; neither reads the other's.
    expect(Buffer.from(await (await get(bob, idb)).arrayBuffer()).equals(cipher)).toBe(true);
    expect((await get(bob, ida)).status).toBe(404);
  });

  it('a stranger, an unknown id and a malformed id all get the very same 404', async () => {
    const sent = await alice.client.sendFile(bob.client.userId, randomBytes(1000), { name: 'secret.txt' });
    expect((await get(bob, sent.fileId)).status).toBe(200);
    const answers = await Promise.all(
      [sent.fileId, randomBytes(16).toString('base64url'), 'not-an-id', '..%2F..%2Fetc'].map(async (id) => {
        const r = await get(carol, id);
        return { status: r.status, body: await r.text(), type: r.headers.get('content-type') };
      }),
    );
    for (const a of answers) expect(a).toEqual(answers[0]);
    expect(answers[0]).toMatchObject({ status: 404, body: '{"error":{"code":"not_found","message":"no such file"}}' });
    // Nor can the stranger share it into a conversation of hers, or probe it with HEAD.
    const share = await fetch(`${server.url}/v1/files/${sent.fileId}/shares`, {
      method: 'POST',
      headers: { ...auth(carol), 'content-type': 'application/json' },
      body: JSON.stringify({ userId: alice.client.userId }),
    });
    expect(share.status).toBe(404);
    expect((await fetch(`${server.url}/v1/files/${sent.fileId}`, { method: 'HEAD', headers: auth(carol) })).status).toBe(404);
    expect((await fetch(`${server.url}/v1/files/${sent.fileId}`)).status).toBe(401);
  });

  it('serves byte ranges (206), suffix ranges, HEAD, and 416 past the end', async () => {
    const cipher = randomBytes(100_000);
    const { id } = (await (await rawUpload(alice, cipher)).json()) as { id: string };
    let r = await get(alice, id, { range: 'bytes=1000-1999' });
    expect(r.status).toBe(206);
    expect(r.headers.get('content-range')).toBe('bytes 1000-1999/100000');
    expect(Buffer.from(await r.arrayBuffer()).equals(cipher.subarray(1000, 2000))).toBe(true);
    r = await get(alice, id, { range: 'bytes=-10' });
    expect(r.headers.get('content-range')).toBe('bytes 99990-99999/100000');
    expect(Buffer.from(await r.arrayBuffer()).equals(cipher.subarray(99_990))).toBe(true);
    r = await get(alice, id, { range: 'bytes=99000-' });
    expect((await r.arrayBuffer()).byteLength).toBe(1000);
    r = await get(alice, id, { range: 'bytes=100000-' });
    expect(r.status).toBe(416);
    expect(r.headers.get('content-range')).toBe('bytes */100000');
    r = await get(alice, id, { range: 'bytes=0-9', 'if-range': '"some-other-etag"' });
    expect(r.status).toBe(200); // If-Range does not match: the whole file
    expect(r.headers.get('accept-ranges')).toBe('bytes');
    await r.arrayBuffer();
    r = await fetch(`${server.url}/v1/files/${id}`, { method: 'HEAD', headers: auth(alice) });
    expect([r.status, r.headers.get('content-length'), (await r.arrayBuffer()).byteLength]).toEqual([200, '100000', 0]);
  });

  it('refuses over-limit uploads with 413 and leaves nothing behind', async () => {
    const blobsBefore = await files(blobsDir());
    // Through the SDK: a clear too_large error (it knows the server's limit: nothing is sent).
    const e = await rejection(alice.client.sendFile(bob.client.userId, new Uint8Array(LIMIT), { name: 'huge.bin' }));
    expect(e.code).toBe('too_large');
    expect(e.message).toContain(`the limit is ${LIMIT}`);
    // A raw client that declares too much and starts sending anyway.
    // (Over loopback the whole body could be in flight before the 413 lands, and the client
    // might see the connection close rather than the answer; sending 1 MiB keeps this exact.)
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request(`${server.url}/v1/files`, {
        method: 'POST',
        headers: { ...auth(alice), 'content-type': 'application/octet-stream', 'x-content-sha256': 'a'.repeat(64), 'content-length': LIMIT + 1 },
      });
      req.on('response', (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.write(randomBytes(MiB));
    });
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toEqual({ error: { code: 'too_large', message: `file is over the ${LIMIT}-byte limit`, details: { maxBytes: LIMIT } } });
    expect(await files(stagingDir())).toEqual([]);
    expect(await files(blobsDir())).toEqual(blobsBefore);
  });

  it('an upload cut off mid-stream leaves no staging file and no blob', async () => {
    const blobsBefore = await files(blobsDir());
    const req = request(`${server.url}/v1/files`, {
      method: 'POST',
      headers: { ...auth(alice), 'content-type': 'application/octet-stream', 'x-content-sha256': 'b'.repeat(64), 'content-length': 20 * MiB },
    });
    req.on('error', () => {});
    req.write(randomBytes(4 * MiB));
    await until(async () => (await files(stagingDir())).length === 1, 'the server is writing a staging file');
    req.destroy();
    await until(async () => (await files(stagingDir())).length === 0, 'the staging file is deleted');
    expect(await files(blobsDir())).toEqual(blobsBefore);
    // A body whose hash is not the declared one is refused and not kept either.
    const r = await rawUpload(alice, randomBytes(5000), 'c'.repeat(64));
    expect(r.status).toBe(400);
    expect(await files(stagingDir())).toEqual([]);
    expect(await files(blobsDir())).toEqual(blobsBefore);
  });

  it('a blob altered in storage fails to decrypt', async () => {
    const before = new Set(await files(blobsDir()));
    const count = bob.messages.length;
    await alice.client.sendFile(bob.client.userId, randomBytes(3 * FILE_CHUNK_BYTES), { name: 'photo.jpg', type: 'image/jpeg' });
    const [path] = (await files(blobsDir())).filter((f) => !before.has(f));
    const blob = await readFile(path!);
    blob[24 + FILE_CHUNK_BYTES + 17 + 5]! ^= 0x01; // one bit in the second chunk
    await writeFile(path!, blob);
    const e = await rejection((await nextMessage(bob, count)).file!.download());
    expect(e.code).toBe('undecryptable');
    expect(e.message).toMatch(/chunk 2 failed authentication/);
  });

  it('a truncated or reordered file from a malicious sender is refused', async () => {
    const plain = randomBytes(4 * FILE_CHUNK_BYTES + 10);
    const enc = await encryptFile(plain);
    const whole = Buffer.concat(enc.parts);
    const sealed = FILE_CHUNK_BYTES + 17;
    const truncated = whole.subarray(0, 24 + 4 * sealed); // the final chunk dropped
    const reordered = Buffer.concat([enc.parts[0]!, enc.parts[2]!, enc.parts[1]!, ...enc.parts.slice(3)]);
    const sendCrafted = async (cipher: Uint8Array): Promise<Message> => {
      const r = await rawUpload(alice, cipher);
      const { id } = (await r.json()) as { id: string };
      const share = await fetch(`${server.url}/v1/files/${id}/shares`, {
        method: 'POST',
        headers: { ...auth(alice), 'content-type': 'application/json' },
        body: JSON.stringify({ userId: bob.client.userId }),
      });
      expect(share.status).toBe(201);
      // Announce the original size, and the hash of what was really uploaded.
      const file: FileRef = { ...fileRefOf(enc, id, { name: 'x', type: '' }), hash: sha256(cipher) };
      const count = bob.messages.length;
      await (alice.client as unknown as { sendContent(to: string, group: boolean, c: unknown): Promise<unknown> }).sendContent(bob.client.userId, false, { text: '', file });
      return nextMessage(bob, count);
    };
    const t = await rejection((await sendCrafted(truncated)).file!.download());
    expect(t.code).toBe('integrity');
    const o = await rejection((await sendCrafted(reordered)).file!.download());
    expect(o.code).toBe('undecryptable');
    expect(o.message).toMatch(/altered or reordered/);
  });

  // Last: it stops the server so that everything is flushed to disk.
  it('neither the blob store nor the database holds the plaintext of a file or its name; nor do the logs', async () => {
    expect(bob.messages[0]?.file?.name).toBe(nameCanary); // the canaries were sent (first test)
    await alice.client.close();
    await bob.client.close();
    await server.stop();
    const stored = await readAll(server.dataDir);
    expect((await stat(join(server.dataDir, 'blobs'))).isDirectory()).toBe(true);
    // The scan works: usernames are stored in the clear, so it must find them.
    expect(stored.some((f) => f.includes(alice.username))).toBe(true);
    for (const secret of [canary, nameCanary, 'application/pdf']) {
      for (const form of forms(secret)) expect(stored.some((f) => f.includes(form))).toBe(false);
    }
    const logs = server.logs.join('\n');
    expect(logs).toContain('"msg":"listening"');
    for (const secret of [canary, nameCanary]) for (const form of forms(secret)) expect(logs.includes(form.toString())).toBe(false);
  });
});

const s3 = inject('s3');
if (s3) {
  describe('files on the S3 blob store (S3Proxy)', () => {
    let server: ServerProcess;
    const client = createS3Client({ ...s3, region: 'us-east-1' });
    const bucket = `parley-e2e-${randomBytes(6).toString('hex')}`;
    /** The bucket's objects (S3Proxy's filesystem backend also lists its directories as "…/": left out). */
    const objects = async () =>
      ((await client.send(new ListObjectsV2Command({ Bucket: bucket }))).Contents ?? []).map((o) => o.Key!).filter((k) => !k.endsWith('/'));

    beforeAll(async () => {
      await client.send(new CreateBucketCommand({ Bucket: bucket }));
      server = await startServer({
        env: {
          BLOB_DRIVER: 's3',
          S3_ENDPOINT: s3.endpoint,
          S3_BUCKET: bucket,
          S3_ACCESS_KEY_ID: s3.accessKeyId,
          S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
        },
      });
    });
    afterAll(async () => {
      await server?.dispose();
      for (const key of await objects()) await client.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
      await client.send(new DeleteBucketCommand({ Bucket: bucket }));
      client.destroy();
    });

    it('round-trips a file whose ciphertext lives in the bucket, and only there', async () => {
      const alice = await newUser(server.url, 'alice');
      const bob = await newUser(server.url, 'bob');
      try {
        const bytes = randomBytes(3 * MiB + 5);
        const sent = await alice.client.sendFile(bob.client.userId, bytes, { name: 'on-s3.bin' });
        await until(() => bob.messages.length === 1, 'bob gets the message');
        expect(sha256(await bob.messages[0]!.file!.download())).toBe(sha256(bytes));
        const keys = await objects();
        expect(keys).toHaveLength(1);
        expect(keys[0]).toMatch(/^sha256\/[0-9a-f]{64}$/);
        expect(keys[0]).not.toContain(sent.fileId);
        expect(await readdir(server.dataDir)).not.toContain('blobs');
      } finally {
        await alice.client.close();
        await bob.client.close();
      }
    });
  });
} else {
  describe('files on the S3 blob store (S3Proxy)', () => it.skip(`skipped: ${inject('s3Unavailable')}`, () => {}));
}
