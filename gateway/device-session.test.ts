// The device session in process: an in-memory socket on the real message path (PGlite, memory broker and presence), one gateway and two.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CLOSE, type ErrorFrame, type MsgFrame, type ServerFrame } from '../protocol/frames.js';
import { Accounts } from '../accounts/accounts.js';
import { GroupStore } from '../groups/group-store.js';
import { GroupsManager } from '../groups/groups.js';
import { MessageStore } from '../messaging/message-store.js';
import { MessagesManager } from '../messaging/messages.js';
import { MemoryBroker } from '../platform/broker.memory.js';
import { MemoryCache } from '../platform/cache.memory.js';
import { ManualClock } from '../platform/clock.js';
import { MemoryGroupLog } from '../platform/group-log.memory.js';
import { createLogger } from '../platform/log.js';
import { createMetrics } from '../platform/metrics.js';
import { migrate } from '../platform/migrations.js';
import { MemoryPresence } from '../platform/presence.memory.js';
import { PgliteSql } from '../platform/sql.pglite.js';
import { Tokens } from '../platform/tokens.js';
import { Delivery } from '../routing/delivery.js';
import { GroupReceipts } from '../routing/group-receipts.js';
import { DeviceSession } from './device-session.js';
import { ReceiptCoalescer } from './receipt-coalescer.js';
import { UserBudgets } from './rate-limit.js';
import type { SessionSocket, SocketHandlers } from './transport.js';

/** A socket in memory: records what the session sends, and lets a test play the peer. */
class MemorySocket implements SessionSocket {
  readonly transport = 'ws' as const;
  open = true;
  bufferedAmount = 0;
  readonly frames: ServerFrame[] = [];
  closedWith: { code: number; reason: string } | null = null;
  terminated = false;
  paused = false;
  /** Pings received; a muted peer answers none. */
  pings = 0;
  muted = false;
  private handlers!: SocketHandlers;

  listen(handlers: SocketHandlers): void {
    this.handlers = handlers;
  }
  send(text: string): void {
    this.frames.push(JSON.parse(text) as ServerFrame);
  }
  close(code: number, reason: string): void {
    this.closedWith = { code, reason };
    this.open = false;
    // The peer's close frame comes back later, as over a network.
    setImmediate(() => this.handlers.onClose());
  }
  terminate(): void {
    this.terminated = true;
  }
  pauseReading(): void {
    this.paused = true;
  }
  resumeReading(): void {
    this.paused = false;
  }
  drained(maxWaitMs: number): Promise<void> {
    return new Promise((r) => setTimeout(r, Math.min(maxWaitMs, 5)));
  }
  ping(): void {
    this.pings++;
    if (!this.muted) setImmediate(() => this.handlers.onPong());
  }

  /** The peer sends a frame. */
  frame(value: unknown): void {
    this.handlers.onMessage(JSON.stringify(value), false);
  }
  raw(data: string | Buffer, isBinary = false): void {
    this.handlers.onMessage(data, isBinary);
  }
  invalid(reason: string): void {
    this.handlers.onInvalid(reason);
  }
  of<T extends ServerFrame['type']>(type: T): Extract<ServerFrame, { type: T }>[] {
    return this.frames.filter((f) => f.type === type) as never;
  }
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const b64 = (text: string) => Buffer.from(text).toString('base64');

interface Gateway {
  delivery: Delivery;
  messages: MessagesManager;
  receipts: ReceiptCoalescer;
  budgets: UserBudgets;
}

describe('DeviceSession', () => {
  const clock = new ManualClock(1_767_000_000_000);
  const log = createLogger('silent');
  const metrics = createMetrics();
  const broker = new MemoryBroker();
  const presence = new MemoryPresence(clock);
  let sql: PgliteSql;
  let store: MessageStore;
  let accounts: Accounts;
  let g1: Gateway;
  let g2: Gateway;
  const sessions: DeviceSession[] = [];

  async function gateway(gatewayId: string): Promise<Gateway> {
    const delivery = new Delivery(presence, broker, log, metrics, { gatewayId, presenceTtlMs: 60_000, heartbeatMs: 30_000 });
    await delivery.start();
    const groupStore = new GroupStore(sql, clock);
    const groupLog = new MemoryGroupLog();
    const groups = new GroupsManager(groupStore, new MemoryCache(clock), groupLog, clock, metrics, log, { maxMembers: 100 });
    const receipts = new GroupReceipts(groupStore, groups, delivery, metrics, log, { intervalMs: 1_000 });
    const messages = new MessagesManager(store, accounts, delivery, metrics, log, { groups, log: groupLog, receipts, typingMaxMembers: 20 });
    return { delivery, messages, receipts: new ReceiptCoalescer({ store, messages, metrics, log }), budgets: new UserBudgets(1_000, 1_000, clock) };
  }

  beforeAll(async () => {
    sql = await PgliteSql.open();
    await migrate(sql);
    store = new MessageStore(sql, clock, { batchMax: 64, shards: 1 });
    const tokens = new Tokens('a-test-secret-that-is-long-enough-0123456789', 3600, clock);
    accounts = new Accounts(sql, tokens, clock, { cache: new MemoryCache(clock), maxDevices: 6, loginFailuresFree: 5, loginBackoffMaxMs: 60_000 });
    g1 = await gateway('g1');
    g2 = await gateway('g2');
  });
  afterAll(async () => {
    for (const s of sessions) s.close(CLOSE.GOING_AWAY, 'done');
    await g1.delivery.stop();
    await g2.delivery.stop();
    await store.flush();
    await sql.close();
  });

  /** A user with one device, straight in the tables (the session never sees passwords). */
  async function user(): Promise<{ userId: string; deviceId: string }> {
    const userId = randomUUID();
    const deviceId = randomUUID();
    const name = `u${userId.slice(0, 8)}`;
    await sql.query(`INSERT INTO users (id, username, username_skeleton, password_hash, created_at) VALUES ($1, $2, $2, 'x', $3)`, [userId, name, clock.now()]);
    await sql.query(`INSERT INTO devices (id, user_id, name, public_key, created_at) VALUES ($1, $2, 'test', $3, $4)`, [
      deviceId,
      userId,
      b64(deviceId),
      clock.now(),
    ]);
    return { userId, deviceId };
  }

  function connect(
    who: { userId: string; deviceId: string },
    options: { gw?: Gateway; rate?: number; burst?: number; heartbeatMs?: number; expiresAt?: number } = {},
  ): { socket: MemorySocket; session: DeviceSession; ready: Promise<void> } {
    const gw = options.gw ?? g1;
    const socket = new MemorySocket();
    const session = new DeviceSession(socket, who.userId, who.deviceId, options.expiresAt ?? Number.MAX_SAFE_INTEGER, {
      store,
      messages: gw.messages,
      delivery: gw.delivery,
      receipts: gw.receipts,
      metrics,
      log,
      clock,
      budgets: gw.budgets,
      limits: {
        ratePerSecond: options.rate ?? 1_000,
        burst: options.burst ?? 1_000,
        maxPayloadBytes: 262_144,
        heartbeatMs: options.heartbeatMs ?? 60_000,
        maxPresenceWatch: 100,
      },
    });
    sessions.push(session);
    const ready = session.open().then(() => until(() => socket.of('caught_up').length > 0, 'caught_up'));
    return { socket, session, ready };
  }

  /** Sends `n` direct messages from `from` to `to` through the real message path; returns their seqs. */
  async function sendMany(gw: Gateway, from: { userId: string; deviceId: string }, to: { userId: string; deviceId: string }, n: number, size = 8, alsoDevices: string[] = []) {
    const seqs: number[] = [];
    for (let i = 0; i < n; i++) {
      const body = b64(`${i}:`.padEnd(size, '.'));
      const payloads = [to.deviceId, ...alsoDevices].map((device) => ({ device, body }));
      const r = await gw.messages.send(from, { type: 'send', id: `m${i}-${randomUUID().slice(0, 8)}`, to: to.userId, payloads });
      seqs.push(r.seq);
    }
    return seqs;
  }

  const msgs = (s: MemorySocket) => s.of('msg') as MsgFrame[];
  const errors = (s: MemorySocket) => s.of('error') as ErrorFrame[];

  it('sends ready, syncs a backlog bigger than one page in seq order, then caught_up', async () => {
    const alice = await user();
    const bob = await user();
    const seqs = await sendMany(g1, alice, bob, 520);
    const { socket, ready } = connect(bob);
    await ready;
    expect(socket.frames[0]).toMatchObject({ type: 'ready', userId: bob.userId, deviceId: bob.deviceId, heartbeatMs: 60_000 });
    expect(msgs(socket).map((m) => m.seq)).toEqual(seqs);
    const caughtUpAt = socket.frames.findIndex((f) => f.type === 'caught_up');
    expect(caughtUpAt).toBe(seqs.length + 1);
  });

  it('pages a sync by bytes: large messages all arrive, in order, while the socket drains', async () => {
    const alice = await user();
    const bob = await user();
    const seqs = await sendMany(g1, alice, bob, 40, 45_000); // ~2.4 MB of ciphertext: more than one 1 MiB page
    const { socket, ready } = connect(bob);
    // A reader that is behind: more than the sync high-water mark is buffered at first.
    socket.bufferedAmount = 2 << 20;
    setTimeout(() => (socket.bufferedAmount = 0), 50);
    await ready;
    expect(msgs(socket).map((m) => m.seq)).toEqual(seqs);
    expect(socket.closedWith).toBeNull();
  });

  it('delivers live messages in order, drops a repeated older seq, and fills a gap from the store', async () => {
    const alice = await user();
    const bob = await user();
    const { socket, session, ready } = connect(bob);
    await ready;
    await sendMany(g1, alice, bob, 3);
    await until(() => msgs(socket).length === 3, 'three live messages');
    const third = msgs(socket)[2]!;
    // An older seq again (another process's late delivery): dropped.
    session.deliver({ ...msgs(socket)[1]! });
    // Messages 4 and 5 are stored but their deliveries are lost; 6 arrives: 4 and 5 come from the store first.
    const conversationId = third.conversationId;
    const stored = [];
    for (const i of [4, 5, 6]) {
      stored.push(
        await store.append({ conversationId, senderId: alice.userId, senderDeviceId: alice.deviceId, clientId: `gap${i}`, payloads: { [bob.deviceId]: b64(`gap ${i}`) } }),
      );
    }
    session.deliver({ type: 'msg', id: 'x', conversationId, seq: stored[2]!.seq, from: alice.userId, fromDevice: alice.deviceId, sentAt: 0, body: b64('gap 6') });
    await until(() => msgs(socket).length === 6, 'the gap filled');
    await new Promise((r) => setTimeout(r, 20));
    expect(msgs(socket).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(msgs(socket).slice(3).map((m) => Buffer.from(m.body, 'base64').toString())).toEqual(['gap 4', 'gap 5', 'gap 6']);
  });

  it('moves the delivered cursor on ack, tells the sender, and refuses an ack past what was delivered', async () => {
    const alice = await user();
    const bob = await user();
    const a = connect(alice);
    const b = connect(bob);
    await Promise.all([a.ready, b.ready]);
    await sendMany(g1, alice, bob, 2);
    await until(() => msgs(b.socket).length === 2, 'two messages');
    const conversationId = msgs(b.socket)[0]!.conversationId;
    b.socket.frame({ type: 'ack', conversationId, seq: 2 });
    await until(() => a.socket.of('receipt').length > 0, 'a delivered receipt');
    expect(a.socket.of('receipt')[0]).toEqual({ type: 'receipt', kind: 'delivered', conversationId, seq: 2, by: bob.userId });
    const [cursor] = await store.deviceConversations(bob.deviceId, bob.userId);
    expect(cursor).toMatchObject({ conversationId, delivered: 2 });
    b.socket.frame({ type: 'ack', conversationId, seq: 9 });
    await until(() => errors(b.socket).length > 0, 'an error');
    expect(errors(b.socket)[0]).toMatchObject({ code: 'invalid', ref: 'ack' });
    b.socket.frame({ type: 'read', conversationId, seq: 2 });
    await until(() => a.socket.of('receipt').some((r) => r.kind === 'read'), 'a read receipt');
  });

  it('folds a burst of acks and reads into few cursor writes and receipts: each device gets them in seq order, each seq once', async () => {
    const alice = await user();
    const bob = await user();
    const a = connect(alice);
    const b = connect(bob);
    await Promise.all([a.ready, b.ready]);
    // Bob's second device sees his reads.
    const bobLaptop = { userId: bob.userId, deviceId: randomUUID() };
    await sql.query(`INSERT INTO devices (id, user_id, name, public_key, created_at) VALUES ($1, $2, 'laptop', $3, $4)`, [bobLaptop.deviceId, bob.userId, b64(bobLaptop.deviceId), clock.now()]);
    const l = connect(bobLaptop, { gw: g2 });
    await l.ready;
    const n = 40;
    await sendMany(g1, alice, bob, n, 8, [bobLaptop.deviceId]);
    await until(() => msgs(b.socket).length === n, 'every message');
    const conversationId = msgs(b.socket)[0]!.conversationId;
    const cursorWrites = vi.spyOn(store, 'advanceCursor');
    for (let seq = 1; seq <= n; seq++) {
      b.socket.frame({ type: 'ack', conversationId, seq });
      if (seq % 2 === 0) b.socket.frame({ type: 'read', conversationId, seq });
    }
    await until(() => a.socket.of('receipt').some((r) => r.kind === 'read' && r.seq === n), 'the last read receipt');
    await until(() => a.socket.of('receipt').some((r) => r.kind === 'delivered' && r.seq === n), 'the last delivered receipt');
    await until(() => l.socket.of('receipt').some((r) => r.kind === 'read' && r.seq === n), 'the last read, on bob’s laptop');
    for (const socket of [a.socket, l.socket]) {
      for (const kind of ['delivered', 'read'] as const) {
        const seqs = socket.of('receipt').filter((r) => r.kind === kind).map((r) => r.seq);
        expect(seqs).toEqual([...new Set(seqs)].sort((x, y) => x - y)); // in order, each once
      }
    }
    expect(l.socket.of('receipt').filter((r) => r.kind === 'delivered')).toEqual([]); // delivered is for the sender
    // Folded: far fewer than the 60 frames.
    expect(a.socket.of('receipt').length).toBeLessThan(10);
    expect(cursorWrites.mock.calls.length).toBeLessThan(10);
    cursorWrites.mockRestore();
    const [cursor] = await store.deviceConversations(bob.deviceId, bob.userId);
    expect(cursor).toMatchObject({ conversationId, delivered: n });
  });

  it('answers invalid input: malformed JSON, binary, deep nesting, unknown types, bad fields and non-frames', async () => {
    const bob = await user();
    const { socket, ready } = connect(bob);
    await ready;
    socket.raw('{nope');
    socket.raw(Buffer.from([1, 2, 3]), true);
    socket.raw('['.repeat(40) + ']'.repeat(40));
    socket.frame({ type: 'teleport' });
    socket.frame({ type: 'ack', conversationId: 'not-a-uuid', seq: 1 });
    socket.invalid('unknown event');
    await until(() => errors(socket).length === 6, 'six errors');
    const got = errors(socket);
    expect(got.map((e) => e.code)).toEqual(['invalid', 'invalid', 'invalid', 'invalid', 'invalid', 'invalid']);
    expect(got[0]!.message).toBe('malformed JSON');
    expect(got[1]!.message).toMatch(/binary/);
    expect(got[2]!.message).toMatch(/nested deeper/);
    expect(got[3]).toMatchObject({ message: 'unknown frame type "teleport"', details: { type: 'teleport' } });
    expect(got[4]).toMatchObject({ ref: 'ack' });
    expect(got[5]!.message).toBe('unknown event');
    socket.frame({ type: 'ping', id: 'p1' });
    await until(() => socket.of('pong').length === 1, 'a pong');
    expect(socket.closedWith).toBeNull();
  });

  it('refuses frames over budget with rate_limited and pauses reads; a flood is closed with 4001 and dropped', async () => {
    const bob = await user();
    const { socket, ready } = connect(bob, { rate: 1, burst: 3 });
    await ready;
    for (let i = 0; i < 4; i++) socket.frame({ type: 'ping', id: `p${i}` });
    await until(() => errors(socket).length === 1, 'a refusal');
    expect(socket.of('pong')).toHaveLength(3);
    expect(errors(socket)[0]).toMatchObject({ code: 'rate_limited', ref: 'p3', temporary: true });
    expect(errors(socket)[0]!.retryAfterMs).toBeGreaterThan(0);
    expect(socket.paused).toBe(true);
    // Sending on regardless of the told wait (the clock does not move): the flood allowance runs out.
    for (let i = 0; i < 10 && socket.closedWith === null; i++) socket.frame({ type: 'ping' });
    expect(socket.closedWith).toEqual({ code: CLOSE.FLOOD, reason: 'too many frames' });
    await until(() => socket.terminated, 'the socket dropped after the grace period', 3_000);
  });

  it('a client that waits as told is served again', async () => {
    const bob = await user();
    const { socket, ready } = connect(bob, { rate: 1, burst: 1 });
    await ready;
    socket.frame({ type: 'ping', id: 'a' });
    socket.frame({ type: 'ping', id: 'b' });
    await until(() => errors(socket).length === 1, 'a refusal');
    clock.advance(errors(socket)[0]!.retryAfterMs!);
    socket.frame({ type: 'ping', id: 'b' });
    await until(() => socket.of('pong').length === 2, 'the second pong');
    expect(socket.closedWith).toBeNull();
  });

  it('closes a slow consumer with 4003 and drops it', async () => {
    const alice = await user();
    const bob = await user();
    const { socket, ready } = connect(bob);
    await ready;
    socket.bufferedAmount = 17 << 20;
    await sendMany(g1, alice, bob, 1);
    await until(() => socket.closedWith !== null, 'a close');
    expect(socket.closedWith).toEqual({ code: CLOSE.SLOW_CONSUMER, reason: 'slow consumer' });
    await until(() => socket.terminated, 'dropped', 3_000);
  });

  it('closes a session whose token expired with 4501 at the next heartbeat', async () => {
    const bob = await user();
    const { socket, ready } = connect(bob, { heartbeatMs: 20, expiresAt: clock.now() + 1 });
    await ready;
    clock.advance(10);
    await until(() => socket.closedWith !== null, 'a close');
    expect(socket.closedWith).toEqual({ code: CLOSE.UNAUTHORIZED, reason: 'token expired' });
  });

  it('pings every heartbeat: a peer that answers stays open, one that stops answering is closed with 4002 and dropped', async () => {
    const bob = await user();
    const carol = await user();
    const live = connect(bob, { heartbeatMs: 20 });
    const silent = connect(carol, { heartbeatMs: 20 });
    await Promise.all([live.ready, silent.ready]);
    silent.socket.muted = true;
    await until(() => silent.socket.closedWith !== null, 'the silent peer closed');
    expect(silent.socket.closedWith).toEqual({ code: CLOSE.HEARTBEAT_TIMEOUT, reason: 'heartbeat timeout' });
    const pings = live.socket.pings;
    await until(() => live.socket.pings >= pings + 3, 'three more pings');
    expect(live.socket.closedWith).toBeNull();
    await until(() => silent.socket.terminated, 'the silent peer dropped', 3_000);
  });

  it('replaces an older session of the same device with 4500', async () => {
    const bob = await user();
    const first = connect(bob);
    await first.ready;
    const second = connect(bob);
    await second.ready;
    await until(() => first.socket.closedWith !== null, 'the old session closed');
    expect(first.socket.closedWith!.code).toBe(CLOSE.REPLACED);
    expect(second.socket.closedWith).toBeNull();
  });

  it('two gateways on one broker: a message sent on one reaches a session on the other, in order', async () => {
    const alice = await user();
    const bob = await user();
    const a = connect(alice, { gw: g1 });
    const b = connect(bob, { gw: g2 });
    await Promise.all([a.ready, b.ready]);
    // Alice sends over her session on g1, as frames; bob is on g2.
    for (let i = 0; i < 30; i++) {
      a.socket.frame({ type: 'send', id: `c${i}`, to: bob.userId, payloads: [{ device: bob.deviceId, body: b64(`cross ${i}`) }] });
    }
    await until(() => a.socket.of('sent').length === 30, 'thirty sent');
    await until(() => msgs(b.socket).length === 30, 'thirty delivered on the other gateway');
    expect(msgs(b.socket).map((m) => m.seq)).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    expect(msgs(b.socket).map((m) => Buffer.from(m.body, 'base64').toString())).toEqual(Array.from({ length: 30 }, (_, i) => `cross ${i}`));
    // The receipt travels back across gateways too.
    b.socket.frame({ type: 'ack', conversationId: msgs(b.socket)[0]!.conversationId, seq: 30 });
    await until(() => a.socket.of('receipt').length === 1, 'a receipt on g1');
    expect(a.socket.of('receipt')[0]).toMatchObject({ kind: 'delivered', seq: 30, by: bob.userId });
  });
});
