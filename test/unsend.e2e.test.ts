// End-to-end: delete for everyone on the server: tombstones for devices that had not fetched the message (1:1 and groups), who may ask, and the window.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MsgFrame, ServerFrame } from '../protocol/frames.js';
import { rawAccount, rawConnect, rawLogin, type RawAccount, type RawSession } from './support/raw.js';
import { rest } from './support/rest.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

const WINDOW_SECONDS = 3;

describe('delete for everyone (DELETE /v1/conversations/{id}/messages/{seq})', () => {
  let server: ServerProcess;
  let alice: RawAccount;
  let aliceWs: RawSession;
  const sessions: RawSession[] = [];

  beforeAll(async () => {
    server = await startServer({ env: { MESSAGE_UNSEND_WINDOW_SECONDS: String(WINDOW_SECONDS) } });
    alice = await rawAccount(server.url, 'alice');
    aliceWs = await rawConnect(server.url, alice.token);
    sessions.push(aliceWs);
  });
  afterAll(async () => {
    for (const s of sessions) s.ws.close();
    await server?.dispose();
  });

  /** Alice sends one direct message to `to` (one device), and resolves to its `sent`. */
  const send = async (to: RawAccount, body: string) => {
    const id = randomUUID();
    const from = aliceWs.frames.length;
    aliceWs.sendJson({ type: 'send', id, to: to.userId, payloads: [{ device: to.deviceId, body }] });
    await until(() => aliceWs.frames.slice(from).some((f) => f.type === 'sent' && f.id === id), 'sent');
    return aliceWs.frames.slice(from).find((f) => f.type === 'sent' && f.id === id) as Extract<ServerFrame, { type: 'sent' }>;
  };
  const unsend = (token: string, conversationId: string, seq: number) => rest(server.url, 'DELETE', `/v1/conversations/${conversationId}/messages/${seq}`, { token });
  const connect = async (account: RawAccount) => {
    const s = await rawConnect(server.url, account.token);
    sessions.push(s);
    await s.next('caught_up');
    return s;
  };
  const msgs = (s: RawSession) => s.frames.filter((f): f is MsgFrame => f.type === 'msg');

  it('a device that had not fetched the message gets a tombstone in its place; unread does not count it', async () => {
    const bob = await rawAccount(server.url, 'bob');
    const gone = await send(bob, 'Z29uZQ==');
    const kept = await send(bob, 'a2VwdA==');
    expect((await unsend(alice.token, gone.conversationId, gone.seq)).status).toBe(204);
    expect((await unsend(alice.token, gone.conversationId, gone.seq)).status).toBe(204); // again: already done

    const bobWs = await connect(bob);
    expect(msgs(bobWs).map((m) => [m.seq, m.body, m.deleted])).toEqual([
      [gone.seq, '', true],
      [kept.seq, 'a2VwdA==', undefined],
    ]);
    expect(msgs(bobWs)[0]).toMatchObject({ id: expect.any(String), from: alice.userId, fromDevice: alice.deviceId });
    const inbox = await rest(server.url, 'GET', '/v1/conversations', { token: bob.token });
    expect(inbox.body.conversations).toMatchObject([{ id: gone.conversationId, lastSeq: kept.seq, unread: 1 }]);
  });

  it('in a group: the tombstone carries no body and no key', async () => {
    const carol = await rawAccount(server.url, 'carol');
    const group = await rest(server.url, 'POST', '/v1/groups', { token: alice.token, body: { name: 'g', members: [carol.userId] } });
    expect(group.status).toBe(201);
    const id = randomUUID();
    const from = aliceWs.frames.length;
    aliceWs.sendJson({ type: 'group.send', id, group: group.body.id, body: 'c2hhcmVk', payloads: [{ device: carol.deviceId, body: 'a2V5' }] });
    await until(() => aliceWs.frames.slice(from).some((f) => f.type === 'sent' && f.id === id), 'sent');
    const sent = aliceWs.frames.slice(from).find((f) => f.type === 'sent' && f.id === id) as { seq: number };
    expect((await unsend(alice.token, group.body.id, sent.seq)).status).toBe(204);

    const carolWs = await connect(carol);
    const tombstone = msgs(carolWs).find((m) => m.seq === sent.seq);
    expect(tombstone).toMatchObject({ groupId: group.body.id, body: '', deleted: true, from: alice.userId });
    expect(tombstone?.key).toBeUndefined();
  });

  it('past MESSAGE_UNSEND_WINDOW_SECONDS: 403 forbidden, and the message stays', async () => {
    const frank = await rawAccount(server.url, 'frank');
    const sent = await send(frank, 'bGF0ZQ==');
    await until(() => Date.now() > sent.sentAt + WINDOW_SECONDS * 1000 + 50, 'the window passes', WINDOW_SECONDS * 1000 + 5_000);
    const late = await unsend(alice.token, sent.conversationId, sent.seq);
    expect(late.status).toBe(403);
    expect(late.body.error).toMatchObject({ code: 'forbidden', details: { windowSeconds: WINDOW_SECONDS } });
    const frankWs = await connect(frank);
    expect(msgs(frankWs).map((m) => [m.body, m.deleted])).toEqual([['bGF0ZQ==', undefined]]);
  });

  it('only the device that sent it may ask: anyone else, and any message that is not there, get the same 404', async () => {
    const dave = await rawAccount(server.url, 'dave');
    const sent = await send(dave, 'aGk=');
    const aliceOther = await rawLogin(server.url, alice.username, alice.password); // (so this test comes last: alice's sends would need its payload)
    const stranger = await rawAccount(server.url, 'erin');
    const answers = [
      await unsend(dave.token, sent.conversationId, sent.seq), // the recipient
      await unsend(aliceOther.token, sent.conversationId, sent.seq), // the sender's other device
      await unsend(stranger.token, sent.conversationId, sent.seq), // not in the conversation
      await unsend(alice.token, sent.conversationId, sent.seq + 100), // no such seq
      await unsend(alice.token, randomUUID(), 1), // no such conversation
    ];
    expect(answers.map((a) => a.status)).toEqual([404, 404, 404, 404, 404]);
    expect(new Set(answers.map((a) => JSON.stringify(a.body)))).toEqual(new Set([JSON.stringify(answers[0]!.body)]));
    expect(answers[0]!.body.error.code).toBe('not_found');
    expect((await unsend(alice.token, sent.conversationId, 0)).status).toBe(400);
    // It was not erased by any of them.
    const daveWs = await connect(dave);
    expect(msgs(daveWs).map((m) => m.body)).toEqual(['aGk=']);
  });
});
