// End-to-end on PostgreSQL: blocking, reports and the operator API, password change revoking other sessions, the device list, and account deletion checked in the database.
import { randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { AccountApi } from '../client-sdk/account.js';
import { request } from '../client-sdk/http.js';
import { CLOSE, type ServerFrame } from '../protocol/frames.js';
import type { PushPayload } from '../protocol/push.js';
import { createTestDatabase } from '../platform/test-databases.js';
import { newUser, type Recorded } from './support/clients.js';
import { type PushService, startPushService } from './support/push-service.js';
import { loginDevice, rawConnect, rawLogin, type RawSession, upgradeStatus } from './support/raw.js';
import { rest } from './support/rest.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

const adminUrl = inject('postgresAdminUrl');
const ADMIN_TOKEN = `admin-${randomUUID()}-${randomUUID()}`;
const REPORTS_PER_HOUR = 3;

describe.skipIf(adminUrl === null)('blocking, reports, password, devices and account deletion (PostgreSQL)', () => {
  let db: { url: string; drop(): Promise<void> };
  let sql: postgres.Sql;
  let server: ServerProcess;
  let pushService: PushService;
  const users: Recorded[] = [];
  const sockets: RawSession[] = [];

  beforeAll(async () => {
    db = await createTestDatabase(adminUrl!);
    sql = postgres(db.url, { max: 1, onnotice: () => {} });
    pushService = await startPushService();
    server = await startServer({
      env: {
        SQL_DRIVER: 'postgres',
        DATABASE_URL: db.url,
        SQL_POOL_SIZE: '4',
        ADMIN_TOKEN,
        REPORT_RATE_PER_HOUR: String(REPORTS_PER_HOUR),
        PUSH_ENDPOINT_HOSTS: new URL(pushService.origin).hostname,
        PUSH_ALLOW_HTTP: 'true',
        PUSH_DELAY_MS: '0',
        PUSH_COALESCE_MS: '0',
        PUSH_POLL_MS: '50',
      },
    });
  });
  afterAll(async () => {
    for (const s of sockets) s.ws.close();
    for (const u of users) await u.client.close();
    await server?.dispose();
    await pushService?.close();
    await sql?.end();
    await db?.drop();
  });

  const user = async (prefix: string, connect = true) => {
    const u = await newUser(server.url, prefix, connect);
    users.push(u);
    return u;
  };
  /** The SDK's AccountApi for a client, over its own token. */
  const api = (u: Recorded) => new AccountApi({ call: (method, path, options) => request(server.url, method, path, options), freshToken: async () => u.client.accessToken! });
  /** Another device of the user, logged in over REST and connected raw, caught up. */
  const otherDevice = async (u: Recorded) => {
    const login = await rawLogin(server.url, u.username, u.password);
    const ws = await rawConnect(server.url, login.token);
    sockets.push(ws);
    await ws.next('caught_up');
    return { ...login, ws };
  };
  const framesOf = <T extends ServerFrame['type']>(ws: RawSession, type: T) => ws.frames.filter((f): f is Extract<ServerFrame, { type: T }> => f.type === type);

  it('blocking: the blocked sender sees nothing unusual; the blocker gets nothing live, on sync or by push; presence, typing and receipts are hidden; adds are refused like unknown users', async () => {
    const [alice, bob, carol] = [await user('alice', false), await user('bob'), await user('carol')];
    const subscription = pushService.subscribe();
    await alice.client.registerPush({ kind: 'webpush', ...subscription });
    const before = await bob.client.sendText(alice.client.userId, 'before the block');
    await pushService.waitFor(1, subscription.endpoint);
    const bobOther = await otherDevice(bob);

    await api(alice).block(bob.client.userId);
    await api(alice).block(bob.client.userId); // again: no change
    expect(await api(alice).blocks()).toEqual([{ userId: bob.client.userId, since: expect.any(Number) }]);

    // Bob: the same `sent`, the next seq, no error; his other device gets its copy as always.
    const blocked = await bob.client.sendText(alice.client.userId, 'while blocked');
    expect(blocked).toMatchObject({ conversationId: before.conversationId, seq: before.seq + 1 });
    await until(() => framesOf(bobOther.ws, 'msg').some((m) => m.seq === blocked.seq && m.conversationId === blocked.conversationId), "bob's other device gets his message");
    // Alice: no push for it (the next push is carol's message, alone), and nothing on sync.
    const marker = await carol.client.sendText(alice.client.userId, 'after the block');
    const pushes = await pushService.waitFor(2, subscription.endpoint);
    const second = JSON.parse(pushes[1]!.payload) as PushPayload;
    expect(second).toMatchObject({ count: 1, msg: { conversationId: marker.conversationId, seq: marker.seq } });
    await alice.client.connect();
    await until(() => alice.messages.some((m) => m.id === marker.id) && alice.messages.some((m) => m.id === before.id), 'alice syncs');
    expect(alice.messages.map((m) => m.text)).not.toContain('while blocked');
    const inbox = await api(alice).conversations();
    expect(inbox.conversations.find((c) => c.id === before.conversationId)).toMatchObject({ lastSeq: blocked.seq, unread: 1 });

    // Presence: hidden from bob, as for a stranger.
    bobOther.ws.sendJson({ type: 'presence.subscribe', users: [alice.client.userId] });
    expect(await bobOther.ws.next('error')).toMatchObject({ code: 'not_found', ref: 'presence.subscribe', details: { users: [alice.client.userId] } });
    // Typing: carol (in a group with both) gets alice's, bob gets none, in the group or 1:1.
    const { id: groupId } = await carol.client.createGroup({ name: 'three', members: [alice.client.userId, bob.client.userId] });
    const carolOther = await otherDevice(carol);
    alice.client.setTyping(before.conversationId, true);
    alice.client.setTyping(groupId, true);
    await until(() => framesOf(carolOther.ws, 'typing').some((t) => t.from === alice.client.userId), 'carol sees alice typing');
    expect(framesOf(bobOther.ws, 'typing')).toEqual([]);
    // Nor does bob's typing reach alice, who blocks him (1:1 or in the group); carol gets it.
    const aliceOther = await otherDevice(alice);
    bob.client.setTyping(before.conversationId, true);
    bob.client.setTyping(groupId, true);
    await until(() => framesOf(carolOther.ws, 'typing').some((t) => t.from === bob.client.userId), 'carol sees bob typing');
    expect(framesOf(aliceOther.ws, 'typing').filter((t) => t.from === bob.client.userId)).toEqual([]);
    // Receipts: alice's reads reach carol, not bob.
    await alice.client.markRead(before.conversationId, before.seq);
    await alice.client.markRead(marker.conversationId, marker.seq);
    await until(() => carol.receipts.some((r) => r.kind === 'read' && r.seq === marker.seq), 'carol gets alice’s read receipt');
    expect(framesOf(bobOther.ws, 'receipt').filter((r) => r.by === alice.client.userId && r.kind === 'read')).toEqual([]);
    expect(bob.receipts.filter((r) => r.kind === 'read' && r.by === alice.client.userId)).toEqual([]);
    expect(bob.receipts.filter((r) => r.by === alice.client.userId && r.seq >= blocked.seq)).toEqual([]);
    // Nor in the receipt snapshot of a new connection (the message after it comes after the snapshot).
    const again = await rawConnect(server.url, bobOther.token);
    sockets.push(again);
    await again.next('caught_up');
    const late = await carol.client.sendText(bob.client.userId, 'after your snapshot');
    await until(() => framesOf(again, 'msg').some((m) => m.seq === late.seq && m.conversationId === late.conversationId), 'the message after the snapshot');
    expect(framesOf(again, 'receipt').filter((r) => r.by === alice.client.userId)).toEqual([]);

    // Bob cannot add alice to a group: the same answer as for a user that does not exist.
    const unknown = randomUUID();
    const create = async (member: string) => rest(server.url, 'POST', '/v1/groups', { token: bob.client.accessToken!, body: { name: 'x', members: [member] } });
    const [refused, noSuchUser] = [await create(alice.client.userId), await create(unknown)];
    expect(refused).toEqual(noSuchUser);
    expect(refused.status).toBe(404);
    const { id: bobsGroup } = await bob.client.createGroup({ name: 'bob’s', members: [carol.client.userId] });
    const add = (member: string) => rest(server.url, 'POST', `/v1/groups/${bobsGroup}/members`, { token: bob.client.accessToken!, body: { userIds: [member] } });
    expect(await add(alice.client.userId)).toEqual(await add(unknown));

    // Unblocked: bob's messages reach alice again.
    await api(alice).unblock(bob.client.userId);
    expect(await api(alice).blocks()).toEqual([]);
    const afterwards = await bob.client.sendText(alice.client.userId, 'after the unblock');
    await until(() => alice.messages.some((m) => m.id === afterwards.id), 'alice receives it');
    expect(bob.errors).toEqual([]);
    expect((await rest(server.url, 'POST', '/v1/blocks', { token: alice.client.accessToken!, body: { userId: alice.client.userId } })).status).toBe(400);
    expect((await rest(server.url, 'POST', '/v1/blocks', { token: alice.client.accessToken!, body: { userId: unknown } })).status).toBe(404);
  });

  it('reports: the reporter attaches what they choose; the operator API reads them with ADMIN_TOKEN only; reports are rate-limited per user', async () => {
    const [dave, erin] = [await user('dave'), await user('erin')];
    const sent = await erin.client.sendText(dave.client.userId, 'an abusive message');
    await until(() => dave.messages.some((m) => m.id === sent.id), 'dave receives it');
    const m = dave.messages.find((x) => x.id === sent.id)!;
    const id = await api(dave).report({
      userId: erin.client.userId,
      conversationId: m.conversationId,
      reason: 'harassment',
      messages: [{ id: m.id, seq: m.seq, text: m.text, sentAt: m.sentAt, from: m.from }],
    });

    const admin = (path: string, token?: string) => rest(server.url, 'GET', path, token === undefined ? {} : { token });
    expect((await admin('/v1/admin/reports')).status).toBe(401);
    expect((await admin('/v1/admin/reports', `${ADMIN_TOKEN}x`)).status).toBe(401);
    expect((await admin('/v1/admin/reports', dave.client.accessToken!)).status).toBe(401); // a user's token is not the operator's
    const list = await admin('/v1/admin/reports?limit=10', ADMIN_TOKEN);
    expect(list.status).toBe(200);
    expect(list.body.reports).toContainEqual({
      id,
      reporterId: dave.client.userId,
      userId: erin.client.userId,
      conversationId: m.conversationId,
      reason: 'harassment',
      messageCount: 1,
      createdAt: expect.any(Number),
    });
    const one = await admin(`/v1/admin/reports/${id}`, ADMIN_TOKEN);
    expect(one.body.messages).toEqual([{ id: m.id, seq: m.seq, text: 'an abusive message', sentAt: m.sentAt, from: erin.client.userId }]);
    expect((await admin(`/v1/admin/reports/${randomUUID()}`, ADMIN_TOKEN)).status).toBe(404);

    // What cannot be reported (another user files these: each counts against the rate, as any attempt does, but for invalid bodies).
    const ivy = await user('ivy');
    const file = (u: Recorded, body: unknown) => rest(server.url, 'POST', '/v1/reports', { token: u.client.accessToken!, body });
    const elsewhere = await ivy.client.sendText(erin.client.userId, 'not dave’s conversation');
    expect((await file(dave, { userId: erin.client.userId, reason: 'x'.repeat(1001) })).status).toBe(400);
    const many = Array.from({ length: 51 }, (_, i) => ({ id: `m${i}`, seq: i + 1, text: 't', sentAt: 0, from: erin.client.userId }));
    expect((await file(dave, { userId: erin.client.userId, reason: 'x', messages: many })).status).toBe(400);
    expect((await file(ivy, { userId: erin.client.userId, conversationId: m.conversationId, reason: 'x' })).status).toBe(404); // not ivy's conversation
    expect((await file(ivy, { userId: randomUUID(), reason: 'x' })).status).toBe(404);
    expect((await file(ivy, { userId: ivy.client.userId, reason: 'x' })).status).toBe(404); // oneself
    expect((await file(ivy, { userId: erin.client.userId, conversationId: elsewhere.conversationId, reason: 'x' })).status).toBe(429);
    // Dave's rate: REPORT_RATE_PER_HOUR, the first report included.
    const statuses: number[] = [];
    for (let i = 1; i <= REPORTS_PER_HOUR; i++) statuses.push((await file(dave, { userId: erin.client.userId, reason: `again ${i}` })).status);
    expect(statuses).toEqual([...Array<number>(REPORTS_PER_HOUR - 1).fill(201), 429]);
  });

  it('a password change ends every other device’s sessions (REST 401, socket closed with 4500, no reconnect) and this one carries on; the other logs in again with the new password', async () => {
    const frank = await user('frank');
    const other = await otherDevice(frank);
    const statusOf = async (token: string) => (await rest(server.url, 'GET', '/v1/account/devices', { token })).status;
    expect(await statusOf(other.token)).toBe(200);
    const wrong = await rest(server.url, 'PUT', '/v1/account/password', { token: frank.client.accessToken!, body: { current: 'not-the-password', new: 'a new password' } });
    expect(wrong.status).toBe(401);

    const changedAt = Date.now();
    await api(frank).changePassword(frank.password, 'a new password');
    await until(() => other.ws.closed !== null, 'the other device’s socket closes');
    expect(other.ws.closed!.code).toBe(CLOSE.REPLACED);
    expect(await statusOf(other.token)).toBe(401);
    expect(await upgradeStatus(server.url, { authorization: `Bearer ${other.token}` })).toBe(401);
    // This device: REST and its socket go on.
    expect(await statusOf(frank.client.accessToken!)).toBe(200);
    const still = await frank.client.sendText((await user('gina')).client.userId, 'still here');
    expect(still.seq).toBeGreaterThan(0);

    // The devices list: names, which one is this, and the other's last seen (its socket closing).
    await until(async () => {
      const { devices } = (await rest(server.url, 'GET', '/v1/account/devices', { token: frank.client.accessToken! })).body;
      return devices.find((d: { id: string }) => d.id === other.deviceId)?.lastSeenAt >= changedAt;
    }, 'the other device was last seen when its socket closed');
    const devices = await api(frank).devices();
    expect(devices.map((d) => [d.id, d.current])).toEqual([
      [frank.client.deviceId, true],
      [other.deviceId, false],
    ]);
    expect(devices.every((d) => d.name.length > 0 && d.lastSeenAt >= d.createdAt)).toBe(true);

    // The other device logs in again (the same device) with the new password; the old one fails.
    const login = async (password: string) =>
      rest(server.url, 'POST', '/v1/sessions', { body: { username: frank.username, password, device: await loginDevice(server.url, frank.username, { id: other.deviceId }) } });
    expect((await login(frank.password)).status).toBe(401);
    const again = await login('a new password');
    expect(again.status).toBe(201);
    expect(await statusOf(again.body.token)).toBe(200);
  });

  it('deleting an account erases its devices, keys, memberships, messages, pushes, mutes, blocks and uploads (checked in the database); its groups are handed on; its id then answers 404 everywhere', async () => {
    const [hank, ida, jo] = [await user('hank'), await user('ida', false), await user('jo')];
    const hankOther = await otherDevice(hank);
    const { id: groupId } = await hank.client.createGroup({ name: 'hank’s', members: [ida.client.userId, jo.client.userId] });
    await hank.client.sendGroupText(groupId, 'to the group, unread by ida');
    const direct = await hank.client.sendText(ida.client.userId, 'to ida, undelivered');
    await jo.client.sendText(hank.client.userId, 'to hank');
    await hank.client.sendFile(jo.client.userId, Buffer.from('a file hank uploaded'), { name: 'f.txt', type: 'text/plain' });
    await hank.client.registerPush({ kind: 'webpush', ...pushService.subscribe() });
    await hank.client.mute(groupId);
    await api(hank).block(jo.client.userId);
    await api(jo).block(hank.client.userId);
    await api(jo).report({ userId: hank.client.userId, reason: 'kept for the operator' });
    const hankId = hank.client.userId;
    const [{ blob_hash: blob }] = (await sql`SELECT blob_hash FROM files WHERE uploader_id = ${hankId}`) as unknown as [{ blob_hash: string }];
    const deviceIds = [hank.client.deviceId!, hankOther.deviceId];

    const wrong = await rest(server.url, 'DELETE', '/v1/account', { token: hank.client.accessToken!, body: { password: 'not-the-password' } });
    expect(wrong.status).toBe(401);
    expect((await sql`SELECT count(*)::int AS n FROM users WHERE id = ${hankId}`)[0]!.n).toBe(1);

    await api(hank).deleteAccount(hank.password);
    await until(() => hankOther.ws.closed !== null, 'hank’s other socket closes');
    expect(hankOther.ws.closed!.code).toBe(CLOSE.REPLACED);

    const count = async (query: Promise<{ n: number }[]>) => (await query)[0]!.n;
    expect({
      users: await count(sql`SELECT count(*)::int AS n FROM users WHERE id = ${hankId}`),
      devices: await count(sql`SELECT count(*)::int AS n FROM devices WHERE id = ANY(${deviceIds}::uuid[]) OR user_id = ${hankId}`),
      signedPrekeys: await count(sql`SELECT count(*)::int AS n FROM signed_prekeys WHERE device_id = ANY(${deviceIds}::uuid[])`),
      oneTimePrekeys: await count(sql`SELECT count(*)::int AS n FROM one_time_prekeys WHERE device_id = ANY(${deviceIds}::uuid[])`),
      cursors: await count(sql`SELECT count(*)::int AS n FROM device_cursors WHERE device_id = ANY(${deviceIds}::uuid[])`),
      memberships: await count(sql`SELECT count(*)::int AS n FROM conversation_members WHERE user_id = ${hankId}`),
      directConversations: await count(sql`SELECT count(*)::int AS n FROM conversations WHERE id = ${direct.conversationId}`),
      messagesSent: await count(sql`SELECT count(*)::int AS n FROM messages WHERE sender_id = ${hankId} AND system IS NULL`),
      messagesFor: await count(sql`SELECT count(*)::int AS n FROM messages WHERE payloads ?| ${deviceIds}::text[]`),
      indexed: await count(sql`SELECT count(*)::int AS n FROM message_index WHERE sender_id = ${hankId} AND NOT system`),
      pushTargets: await count(sql`SELECT count(*)::int AS n FROM push_targets WHERE device_id = ANY(${deviceIds}::uuid[])`),
      pendingPushes: await count(sql`SELECT count(*)::int AS n FROM push_pending WHERE device_id = ANY(${deviceIds}::uuid[])`),
      mutes: await count(sql`SELECT count(*)::int AS n FROM conversation_mutes WHERE user_id = ${hankId}`),
      blocks: await count(sql`SELECT count(*)::int AS n FROM blocks WHERE user_id = ${hankId} OR blocked_id = ${hankId}`),
      files: await count(sql`SELECT count(*)::int AS n FROM files WHERE uploader_id = ${hankId}`),
      blobs: await count(sql`SELECT count(*)::int AS n FROM blobs WHERE hash = ${blob}`),
    }).toEqual({
      users: 0, devices: 0, signedPrekeys: 0, oneTimePrekeys: 0, cursors: 0, memberships: 0, directConversations: 0, messagesSent: 0, messagesFor: 0,
      indexed: 0, pushTargets: 0, pendingPushes: 0, mutes: 0, blocks: 0, files: 0, blobs: 0,
    });
    // The group lives on, handed to a member (the longest-standing; ida and jo joined together); its record says hank left.
    const [group] = await sql`SELECT owner_id, deleted_at FROM groups WHERE id = ${groupId}`;
    expect(group!.deleted_at).toBeNull();
    const heir = [ida, jo].find((u) => u.client.userId === group!.owner_id)!;
    expect(heir).toBeDefined();
    const changes = await sql`SELECT system FROM messages WHERE conversation_id = ${groupId} AND system IS NOT NULL ORDER BY seq`;
    expect(changes.slice(0, 3).map((r) => r.system)).toMatchObject([
      { kind: 'created' },
      { kind: 'member_left', users: [hankId] },
      { kind: 'role_changed', users: [heir.client.userId], role: 'owner' },
    ]);
    // Reports about it stay, for the operator.
    expect(await count(sql`SELECT count(*)::int AS n FROM reports WHERE reported_id = ${hankId}`)).toBe(1);

    // Its id answers 404 everywhere; its tokens 401.
    const as = (u: Recorded) => u.client.accessToken!;
    expect((await rest(server.url, 'GET', '/v1/account/devices', { token: hankOther.token })).status).toBe(401);
    expect((await rest(server.url, 'GET', `/v1/users/${hankId}/devices`, { token: as(jo) })).status).toBe(404);
    expect((await rest(server.url, 'GET', `/v1/users/${hankId}/bundles`, { token: as(jo) })).status).toBe(404);
    expect((await rest(server.url, 'GET', `/v1/users?username=${hank.username}`, { token: as(jo) })).status).toBe(404);
    expect((await rest(server.url, 'POST', '/v1/blocks', { token: as(jo), body: { userId: hankId } })).status).toBe(404);
    expect((await rest(server.url, 'POST', '/v1/reports', { token: as(jo), body: { userId: hankId, reason: 'x' } })).status).toBe(404);
    expect((await rest(server.url, 'POST', `/v1/groups/${groupId}/members`, { token: as(heir), body: { userIds: [hankId] } })).status).toBe(404);
    expect((await api(jo).conversations()).conversations.map((c) => c.peer)).not.toContain(hankId);
  });
});
