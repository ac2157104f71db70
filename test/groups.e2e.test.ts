// End-to-end: groups through a real server process (embedded defaults: PGlite, in-memory log) and the SDK.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type ClientOptions, createClient, ParleyError } from '../client-sdk/index.js';
import type { MsgFrame } from '../protocol/frames.js';
import { newUser, type Recorded } from './support/clients.js';
import { rawConnect } from './support/raw.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

describe('groups (one process, embedded defaults)', () => {
  let server: ServerProcess;
  const open: Recorded[] = [];
  const user = async (prefix: string, connect = true) => {
    const u = await newUser(server.url, prefix, connect);
    open.push(u);
    return u;
  };
  const texts = (u: Recorded, groupId: string) => u.messages.filter((m) => m.groupId === groupId).map((m) => m.text);
  const rest = async (u: Recorded, method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${u.client.accessToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json().catch(() => null)) as Record<string, unknown> | null };
  };

  beforeAll(async () => {
    server = await startServer({ env: { GROUP_MAX_MEMBERS: '4', GROUP_RECEIPT_INTERVAL_MS: '50' } });
  });
  afterAll(async () => {
    for (const u of open) await u.client.close();
    await server?.dispose();
  });

  it('delivers group messages to every member once, in seq order, with the group id, and the changes in order', async () => {
    const [alice, bob, carol] = await Promise.all([user('alice'), user('bob'), user('carol')]);
    const { id } = await alice.client.createGroup({ name: 'trip', members: [bob.client.userId, carol.client.userId] });
    const sent = [];
    for (let i = 0; i < 20; i++) sent.push(await (i % 2 ? bob : alice).client.sendGroupText(id, `m${i}`));
    expect(sent.map((s) => s.seq)).toEqual(sent.map((_, i) => i + 2)); // seq 1 is 'created'
    await until(() => texts(carol, id).length === 20, 'carol has all 20');
    expect(texts(carol, id)).toEqual(sent.map((_, i) => `m${i}`));
    expect(carol.messages.filter((m) => m.groupId === id).map((m) => m.seq)).toEqual(sent.map((s) => s.seq));
    await until(() => texts(alice, id).length === 10 && texts(bob, id).length === 10, 'each sender has the other’s');
    expect(carol.groupEvents.filter((e) => e.groupId === id)).toMatchObject([{ kind: 'created', seq: 1, name: 'trip', by: alice.client.userId }]);
    const listed = await bob.client.listGroups();
    expect(listed).toEqual([expect.objectContaining({ id, name: 'trip', role: 'member', members: 3 })]);
    // The server holds the name sealed under the group's key, which only member devices have.
    const stored = (await rest(bob, 'GET', `/v1/groups/${id}`)).body!.name as string;
    expect(stored).toMatch(/^pn1\./);
    expect(stored).not.toContain('trip');
    expect(carol.errors).toEqual([]);
  });

  it('a removed member gets nothing sent after the removal; an added one gets what follows the addition', async () => {
    const [alice, bob, carol, dave] = await Promise.all([user('alice'), user('bob'), user('carol'), user('dave')]);
    const { id } = await alice.client.createGroup({ name: 'club', members: [bob.client.userId, carol.client.userId] });
    await alice.client.sendGroupText(id, 'before');
    await alice.client.removeMember(id, carol.client.userId);
    await alice.client.sendGroupText(id, 'after removal');
    await alice.client.addMember(id, dave.client.userId);
    await alice.client.sendGroupText(id, 'after adding dave');
    await until(() => texts(bob, id).length === 2, 'bob has both');
    await until(() => carol.groupEvents.some((e) => e.kind === 'member_removed'), 'carol learns she was removed');
    await until(() => texts(dave, id).length === 1, 'dave has what followed his addition');
    expect(texts(dave, id)).toEqual(['after adding dave']);
    expect(dave.groupEvents.map((e) => e.kind)).toEqual(['member_added']);
    // Carol, even after reconnecting and syncing, never sees what was sent after she left.
    await carol.client.close();
    await carol.client.connect();
    await alice.client.sendGroupText(id, 'still not for carol');
    await until(() => texts(bob, id).length === 4, 'bob has four');
    expect(texts(carol, id)).toEqual(['before']);
    expect(carol.groupEvents.map((e) => e.kind)).toEqual(['created', 'member_removed']);
    // A name set after her removal is sealed under a key she never got, even if a server handed it over.
    await alice.client.renameGroup(id, 'club without carol');
    const sealed = (await rest(alice, 'GET', `/v1/groups/${id}`)).body!.name as string;
    expect(await (carol.client as unknown as { openName(g: string, n: string): Promise<string> }).openName(id, sealed)).toBe('');
    expect((await bob.client.getGroup(id)).name).toBe('club without carol');
    expect((await dave.client.getGroup(id)).name).toBe('club without carol');
    // And she cannot send to it or read it any more: like a stranger.
    await expect(carol.client.sendGroupText(id, 'let me in')).rejects.toMatchObject({ code: 'not_found' });
    expect((await rest(carol, 'GET', `/v1/groups/${id}`)).status).toBe(404);
  });

  it('replaces sender keys when a member is removed: what follows is unreadable to them even if a server handed it over', async () => {
    const [alice, carol] = await Promise.all([user('alice'), user('carol')]);
    // Bob's client records the raw frames it receives, to play a malicious server afterwards.
    const frames: string[] = [];
    class Recording extends WebSocket {
      constructor(url: string, protocols: string[]) {
        super(url, protocols);
        this.addEventListener('message', (ev) => void frames.push(String(ev.data)));
      }
    }
    const bob = createClient({ url: server.url, username: `bob_${Date.now()}`, password: 'password-bob-rec', WebSocket: Recording as unknown as ClientOptions['WebSocket'] });
    const bobTexts: string[] = [];
    bob.on('message', (m) => void bobTexts.push(m.text));
    await bob.register();
    await bob.connect();
    const { id } = await alice.client.createGroup({ name: 'keys', members: [bob.userId, carol.client.userId] });
    await alice.client.sendGroupText(id, 'all three of us');
    await until(() => texts(carol, id).length === 1 && bobTexts.length === 1, 'carol and bob read the first');
    await alice.client.removeMember(id, carol.client.userId);
    await until(() => alice.groupEvents.some((e) => e.kind === 'member_removed'), 'alice saw the removal (and rotated)');
    const after = await alice.client.sendGroupText(id, 'carol must not read this');
    await until(() => bobTexts.includes('carol must not read this'), 'bob reads it with the new key');
    const captured = frames.map((f) => JSON.parse(f) as MsgFrame).find((f) => f.type === 'msg' && f.groupId === id && f.seq === after.seq)!;
    expect(captured.key).toBeDefined(); // the new key travelled to bob with it
    const { key: _forBob, ...forCarol } = captured;
    const errors = carol.errors.length;
    (carol.client as unknown as { onFrame(raw: string): void }).onFrame(JSON.stringify(forCarol));
    await until(() => carol.errors.length > errors, 'carol fails to decrypt it');
    expect(carol.errors.at(-1)).toMatchObject({ code: 'undecryptable', details: { reason: 'unknown_sender_key' } });
    expect(texts(carol, id)).toEqual(['all three of us']);
    await bob.close();
  });

  it('shares a file with a group: members download it, a stranger gets 404', async () => {
    const [alice, bob, eve] = await Promise.all([user('alice'), user('bob'), user('eve')]);
    const { id } = await alice.client.createGroup({ name: 'files', members: [bob.client.userId] });
    const bytes = new Uint8Array(200_000).map((_, i) => (i * 7) % 251);
    const sent = await alice.client.sendFile(id, bytes, { name: 'plan.bin', type: 'application/octet-stream' });
    await until(() => bob.messages.some((m) => m.groupId === id && m.file), 'bob gets the file message');
    const m = bob.messages.find((x) => x.groupId === id && x.file)!;
    expect(m.file).toMatchObject({ name: 'plan.bin', size: bytes.length, id: sent.fileId });
    expect(Buffer.from(await m.file!.download()).equals(Buffer.from(bytes))).toBe(true);
    expect((await rest(eve, 'GET', `/v1/files/${sent.fileId}`)).status).toBe(404);
  });

  it('delivers group messages sent while a member was offline, in order, once, after connect', async () => {
    const [alice, bob] = await Promise.all([user('alice'), user('bob')]);
    const { id } = await alice.client.createGroup({ name: 'offline', members: [bob.client.userId] });
    await bob.client.close();
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => alice.client.sendGroupText(id, `o${i}`)));
    await bob.client.connect();
    await until(() => texts(bob, id).length === 50, 'bob synced 50');
    expect(texts(bob, id)).toEqual(results.map((_, i) => `o${i}`));
    expect(new Set(bob.messages.map((m) => `${m.conversationId}:${m.seq}`)).size).toBe(bob.messages.length);
  });

  it('enforces roles: members cannot manage, admins cannot remove the owner, only the owner deletes or hands ownership on', async () => {
    const [alice, bob, carol] = await Promise.all([user('alice'), user('bob'), user('carol')]);
    const { id } = await alice.client.createGroup({ name: 'roles', members: [bob.client.userId, carol.client.userId] });
    await expect(bob.client.addMember(id, alice.client.userId)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(bob.client.renameGroup(id, 'mine now')).rejects.toMatchObject({ code: 'forbidden' });
    await alice.client.setGroupRole(id, bob.client.userId, 'admin');
    await bob.client.renameGroup(id, 'renamed by bob');
    await expect(bob.client.removeMember(id, alice.client.userId)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(bob.client.deleteGroup(id)).rejects.toMatchObject({ code: 'forbidden' });
    await expect(bob.client.setGroupRole(id, carol.client.userId, 'owner')).rejects.toMatchObject({ code: 'forbidden' });
    await alice.client.setGroupRole(id, carol.client.userId, 'owner');
    // The name is sealed: carol's device reads it once the message that carries its key reached it.
    await until(() => carol.groupEvents.some((e) => e.kind === 'renamed'), 'carol has the rename');
    const g = await carol.client.getGroup(id);
    expect(g.name).toBe('renamed by bob');
    expect(Object.fromEntries(g.members.map((m) => [m.userId, m.role]))).toEqual({
      [alice.client.userId]: 'admin',
      [bob.client.userId]: 'admin',
      [carol.client.userId]: 'owner',
    });
    await until(() => bob.groupEvents.filter((e) => e.groupId === id).length === 5, () => `bob saw every change: ${JSON.stringify(bob.groupEvents)}`);
    expect(bob.groupEvents.map((e) => e.kind)).toEqual(['created', 'role_changed', 'renamed', 'role_changed', 'role_changed']);
    // The owner leaving hands the group on; the group keeps working.
    await carol.client.leaveGroup(id);
    const heir = (await alice.client.getGroup(id)).ownerId; // an admin (both joined first, at creation)
    expect([alice.client.userId, bob.client.userId]).toContain(heir);
    await carol.client.close();
    const [owner, other] = heir === alice.client.userId ? [alice, bob] : [bob, alice];
    await expect(other.client.deleteGroup(id)).rejects.toMatchObject({ code: 'forbidden' });
    await owner.client.deleteGroup(id);
    await until(() => bob.groupEvents.some((e) => e.kind === 'deleted'), 'bob learns it was deleted');
    expect((await rest(bob, 'GET', `/v1/groups/${id}`)).status).toBe(404);
  });

  it('answers a stranger exactly as for a group that does not exist', async () => {
    const [alice, eve] = await Promise.all([user('alice'), user('eve')]);
    const { id } = await alice.client.createGroup({ name: 'private', members: [] });
    const missing = '00000000-0000-4000-8000-000000000000';
    for (const path of ['', '/devices', '/receipts']) {
      const a = await rest(eve, 'GET', `/v1/groups/${id}${path}`);
      const b = await rest(eve, 'GET', `/v1/groups/${missing}${path}`);
      expect(a).toEqual(b);
      expect(a.status).toBe(404);
    }
    const a = await rest(eve, 'POST', `/v1/groups/${id}/members`, { userIds: [eve.client.userId] });
    const b = await rest(eve, 'POST', `/v1/groups/${missing}/members`, { userIds: [eve.client.userId] });
    expect(a).toEqual(b);
    const raw = await rawConnect(server.url, eve.client.accessToken!);
    raw.sendJson({ type: 'group.send', id: 'g1', group: id, body: 'AAAA' });
    raw.sendJson({ type: 'group.send', id: 'g2', group: missing, body: 'AAAA' });
    await until(() => raw.frames.filter((f) => f.type === 'error').length === 2, 'two errors');
    const errors = raw.frames.filter((f) => f.type === 'error').map((f) => ({ ...f, ref: undefined }));
    expect(errors[0]).toEqual(errors[1]);
    expect(errors[0]).toMatchObject({ code: 'not_found' });
    raw.ws.close();
  });

  it('refuses a group past the size limit with a clear error', async () => {
    const users = await Promise.all(Array.from({ length: 5 }, (_, i) => user(`big${i}`, false)));
    const [owner, ...others] = users;
    await expect(owner!.client.createGroup({ name: 'too big', members: others.map((u) => u.client.userId) })).rejects.toMatchObject({
      code: 'limit_exceeded',
      status: 409,
      details: { maxMembers: 4 },
    });
    const { id } = await owner!.client.createGroup({ name: 'fits', members: others.slice(0, 3).map((u) => u.client.userId) });
    const err = await owner!.client.addMember(id, others[3]!.client.userId).catch((e: ParleyError) => e);
    expect(err).toMatchObject({ code: 'limit_exceeded' });
  });

  it('records per-member receipts and sends one aggregate receipt, not one per member', async () => {
    const [alice, bob, carol] = await Promise.all([user('alice'), user('bob'), user('carol')]);
    const { id } = await alice.client.createGroup({ name: 'receipts', members: [bob.client.userId, carol.client.userId] });
    const s = await alice.client.sendGroupText(id, 'did you get this?');
    await until(() => alice.groupReceipts.some((r) => r.groupId === id && r.delivered >= s.seq), 'delivered to all');
    let status = await alice.client.groupReceipts(id);
    expect(status.members.map((m) => m.delivered >= s.seq)).toEqual([true, true, true]);
    expect(status.read).toBe(0);
    await bob.client.markRead(id, s.seq);
    await until(async () => (await alice.client.groupReceipts(id)).members.some((m) => m.userId === bob.client.userId && m.read === s.seq), 'bob read');
    status = await alice.client.groupReceipts(id);
    expect(status.read).toBe(0); // carol has not read it yet
    await carol.client.markRead(id, s.seq);
    await alice.client.markRead(id, s.seq);
    await until(() => alice.groupReceipts.some((r) => r.groupId === id && r.read >= s.seq), 'read by all');
    // Aggregates only: nobody got a per-member receipt frame for the group.
    expect([...alice.receipts, ...bob.receipts].filter((r) => r.conversationId === id && r.by !== bob.client.userId && r.by !== alice.client.userId)).toEqual([]);
  });

  it('relays typing to the other members', async () => {
    const [alice, bob] = await Promise.all([user('alice'), user('bob')]);
    const { id } = await alice.client.createGroup({ name: 'typing', members: [bob.client.userId] });
    const seen: string[] = [];
    bob.client.on('typing', (t) => t.conversationId === id && seen.push(t.from));
    alice.client.setTyping(id, true);
    await until(() => seen.length === 1, 'bob sees alice typing');
    expect(seen).toEqual([alice.client.userId]);
  });
});
