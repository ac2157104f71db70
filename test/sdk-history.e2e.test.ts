// End-to-end: history on the device through a real server: paging the Node (PGlite) store across a restart of the client, sealed at rest, and a new device importing the history of an old one (and refusing another user's).
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type HistoryImported, type Message, type MessageStore, type ParleyClient } from '../client-sdk/index.js';
import type { Decoded } from '../client-sdk/content.js';
import { diskKeyStore } from '../client-sdk/e2e.store.disk.js';
import type { KeyStore } from '../client-sdk/e2e.store.js';
import { memoryKeyStore } from '../client-sdk/e2e.store.memory.js';
import { openPgliteMessageStore } from '../client-sdk/history.pglite.js';
import { forms, readAll } from './support/scan.js';
import { type ServerProcess, startServer } from './support/server.js';
import { uniqueName, until } from './support/wait.js';

interface Device {
  client: ParleyClient;
  username: string;
  messages: Message[];
  imported: HistoryImported[];
  errors: Error[];
}

/** Which of `texts` some file under `dir` holds, in any of the forms a leak could take. */
const leaked = async (dir: string, texts: string[]) => {
  const files = await readAll(dir);
  return texts.filter((t) => forms(t).some((f) => files.some((b) => b.includes(f))));
};

/** The messages of every page of a conversation's history, scrolling back `limit` at a time. */
async function allPages(client: ParleyClient, conversationId: string, limit: number): Promise<Message[][]> {
  const pages: Message[][] = [];
  for (let before: number | undefined; ; ) {
    const page = await client.history(conversationId, { ...(before === undefined ? {} : { before }), limit });
    if (page.length === 0) return pages;
    pages.push(page);
    before = page.at(-1)!.seq;
  }
}

/** What a history shows, without the download functions of files. */
const shown = (messages: Message[]) => JSON.parse(JSON.stringify(messages)) as unknown;

describe('SDK: history on the device (real server)', () => {
  let server: ServerProcess;
  let dir: string;
  const open: ParleyClient[] = [];
  const stores: MessageStore[] = [];

  const device = (username: string, options: { keyStore?: KeyStore; messageStore?: MessageStore; historyKey?: Uint8Array } = {}): Device => {
    const client = createClient({ url: server.url, username, password: `pw-${username}`, reconnect: { initialDelayMs: 50, maxDelayMs: 500 }, ...options });
    open.push(client);
    const d: Device = { client, username, messages: [], imported: [], errors: [] };
    client.on('message', (m) => d.messages.push(m));
    client.on('history_imported', (e) => d.imported.push(e));
    client.on('error', (e) => d.errors.push(e));
    return d;
  };
  const user = async (prefix: string, options: Parameters<typeof device>[1] = {}): Promise<Device> => {
    const d = device(uniqueName(prefix), options);
    await d.client.register();
    await d.client.connect();
    return d;
  };
  /** A new device of `d`'s user, approved by `d`, connected. */
  const secondDevice = async (d: Device): Promise<Device> => {
    const fresh = device(d.username, { keyStore: memoryKeyStore() });
    await fresh.client.login();
    await d.client.approveDevice(fresh.client.deviceId!);
    await fresh.client.connect();
    return fresh;
  };

  beforeAll(async () => {
    server = await startServer();
    dir = await mkdtemp(join(tmpdir(), 'parley-sdk-history-'));
  });
  afterAll(async () => {
    for (const c of open) await c.close();
    for (const s of stores) await s.close().catch(() => {});
    await server?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('pages the PGlite store newest first across a restart of the client (same key store and data directory), with actions applied, sealed at rest', async () => {
    const name = uniqueName('alice');
    const keys = join(dir, `${name}.keys.json`);
    const data = join(dir, `${name}.history`);
    const historyKey = new Uint8Array(randomBytes(32));
    const store = await openPgliteMessageStore(data);
    const alice = device(name, { keyStore: diskKeyStore(keys), messageStore: store, historyKey });
    await alice.client.register();
    await alice.client.connect();
    const bob = await user('bob');
    const a = alice.client.userId;
    for (let i = 0; i < 100; i++) await bob.client.sendText(a, `canary-from-bob-${i}`);
    await until(() => alice.messages.length === 100, () => `alice has ${alice.messages.length} of 100`);
    const c = alice.messages[0]!.conversationId;
    for (let i = 0; i < 20; i++) await alice.client.sendText(bob.client.userId, `canary-from-alice-${i}`);
    const first = alice.messages[0]!;
    await bob.client.edit(c, first.id, 'canary-edited');
    await bob.client.react(c, first.id, '🙂');
    await alice.client.react(c, first.id, '👍');
    await until(async () => (await alice.client.message(c, first.id))?.reactions?.length === 2, 'the edit and the reactions applied');
    const before = await allPages(alice.client, c, 50);
    await alice.client.close();
    await store.close();

    expect(await leaked(data, ['canary-from-bob-7', 'canary-from-alice-3', 'canary-edited'])).toEqual([]);

    const reopened = await openPgliteMessageStore(data);
    stores.push(reopened);
    const again = device(name, { keyStore: diskKeyStore(keys), messageStore: reopened, historyKey });
    const pages = await allPages(again.client, c, 50);
    expect(pages.map((p) => p.length)).toEqual([50, 50, 20]);
    expect(shown(pages.flat())).toEqual(shown(before.flat()));
    const seqs = pages.flat().map((m) => m.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => y - x));
    expect(pages[2]!.at(-1)).toMatchObject({ id: first.id, text: 'canary-edited', editedAt: expect.any(Number), reactions: [{ emoji: '🙂', users: [bob.client.userId] }, { emoji: '👍', users: [a] }] });
    expect(pages[0]![0]!.text).toBe('canary-from-alice-19');
    expect(pages[0]![0]!.from).toBe(a);

    // The same device goes on: a new message lands on top of the restored history.
    await again.client.connect();
    await bob.client.sendText(a, 'after the restart');
    await until(() => again.messages.length === 1, 'the restarted client got a new message');
    expect((await again.client.history(c, { limit: 1 }))[0]!.text).toBe('after the restart');
    expect([...alice.errors, ...again.errors]).toEqual([]);
  });

  it('a new device imports the history of an old one: one opaque file on the server, the key over their pairwise session; files still download', async () => {
    const alice = await user('alice');
    const [bob, carol] = [await user('bob'), await user('carol')];
    const [a, b] = [alice.client.userId, bob.client.userId];
    const hello = await alice.client.sendText(b, 'canary-direct-hello');
    await until(() => bob.messages.length === 1, 'bob got it (and so knows the conversation)');
    await bob.client.reply(hello.conversationId, hello.id, 'canary-direct-reply');
    const doomed = await alice.client.sendText(b, 'canary-direct-doomed');
    await alice.client.deleteForEveryone(b, doomed.id);
    const g = await alice.client.createGroup({ name: 'team', members: [b] });
    const gm = await bob.client.sendGroupText(g.id, 'canary-group-text');
    const bytes = new TextEncoder().encode('canary-file-contents');
    await bob.client.sendFile(g.id, bytes, { name: 'notes.txt', type: 'text/plain' });
    await until(() => alice.messages.length === 3, 'alice got the reply, the group text and the file');
    await expect(alice.client.edit(g.id, gm.id, 'not hers')).rejects.toMatchObject({ code: 'forbidden' });
    await alice.client.react(g.id, gm.id, '✅');
    await alice.client.setDisappearing(carol.client.userId, 3600);
    const vanishing = await alice.client.sendText(carol.client.userId, 'canary-disappearing');

    const phone = await secondDevice(alice);
    const sent = await alice.client.sendHistory(phone.client.deviceId!);
    expect(sent.messages).toBe(5); // hello, reply, the deleted one, group text, file: not the disappearing message
    await until(() => phone.imported.length === 1, 'the new device imported the history');
    expect(phone.imported[0]).toEqual({ fromDevice: alice.client.deviceId, messages: 5 });

    for (const c of [hello.conversationId, g.id]) expect(shown(await phone.client.history(c))).toEqual(shown(await alice.client.history(c)));
    expect(await phone.client.history(vanishing.conversationId)).toEqual([]);
    const [file, text] = await phone.client.history(g.id);
    expect(text).toMatchObject({ text: 'canary-group-text', reactions: [{ emoji: '✅', users: [a] }] });
    expect(new TextDecoder().decode(await file!.file!.download())).toBe('canary-file-contents');
    expect(await phone.client.message(hello.conversationId, doomed.id)).toMatchObject({ deleted: true, text: '' });

    // The server held the archive as one more opaque file: no text of the history anywhere in its data.
    expect(await leaked(server.dataDir, ['canary-direct-hello', 'canary-direct-reply', 'canary-direct-doomed', 'canary-group-text', 'canary-file-contents'])).toEqual([]);
    expect(alice.errors).toEqual([]);
    // The new device may sync group messages from before it existed (still stored): it holds no sender key for them.
    for (const e of phone.errors) expect(e).toMatchObject({ code: 'undecryptable', message: expect.stringContaining(g.id) });
  });

  it('refuses a history archive from another user, and to send one to a device that is not the sender’s own', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    await bob.client.sendText(alice.client.userId, 'hello');
    await until(() => alice.messages.length === 1, 'delivered');
    // A modified client of Bob's hands Alice's device a real archive of his history.
    const offer = await (bob.client as unknown as { transfer: { pack(): Promise<Decoded> } }).transfer.pack();
    await (bob.client as unknown as { sendContent(to: string, group: boolean, c: Decoded, x: { forDevice: string }): Promise<unknown> }).sendContent(alice.client.userId, false, offer, {
      forDevice: alice.client.deviceId!,
    });
    await bob.client.sendText(alice.client.userId, 'sent after the offer');
    await until(() => alice.messages.length === 2, 'the message after the offer arrived');
    // (The sender is checked before anything is downloaded, in turn with the messages.)
    expect(alice.imported).toEqual([]);
    expect((await alice.client.history(alice.messages[0]!.conversationId)).map((m) => m.text)).toEqual(['sent after the offer', 'hello']);
    await expect(alice.client.sendHistory(bob.client.deviceId!)).rejects.toMatchObject({ code: 'untrusted_device' });
    await expect(alice.client.sendHistory(alice.client.deviceId!)).rejects.toMatchObject({ code: 'untrusted_device' });
  });
});
