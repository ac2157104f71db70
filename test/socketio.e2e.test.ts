// The Socket.IO transport through a real server: a stock socket.io-client speaks Parley with a WebSocket client, over long-polling and WebSocket; refusals, garbage and shutdown.
import fc from 'fast-check';
import { io, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLOSE, type ErrorFrame, type MsgFrame, type ServerFrame, SOCKETIO_CLOSE_EVENT, SOCKETIO_EVENT, SOCKETIO_PATH } from '../protocol/frames.js';
import { type RawAccount, rawAccount, rawConnect, type RawSession, upgradeStatus } from './support/raw.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

/** A raw Socket.IO session as an app would open it with the stock client. */
interface IoSession {
  socket: Socket;
  frames: ServerFrame[];
  /** The `close` event's `{ code, reason }`, if the server sent one. */
  closeEvent: { code: number; reason: string } | null;
  disconnected: string | null;
  send(value: unknown): void;
  of<T extends ServerFrame['type']>(type: T): Extract<ServerFrame, { type: T }>[];
}

type Transports = ('polling' | 'websocket')[];

function ioSession(url: string, token: string | undefined, transports?: Transports): IoSession {
  const socket = io(url, {
    path: SOCKETIO_PATH,
    ...(token === undefined ? {} : { auth: { token } }),
    ...(transports ? { transports } : {}),
    reconnection: false,
    forceNew: true,
  });
  const s: IoSession = {
    socket,
    frames: [],
    closeEvent: null,
    disconnected: null,
    send: (value) => void socket.emit(SOCKETIO_EVENT, JSON.stringify(value)),
    of: (type) => s.frames.filter((f) => f.type === type) as never,
  };
  socket.on(SOCKETIO_EVENT, (text: string) => s.frames.push(JSON.parse(text) as ServerFrame));
  socket.on(SOCKETIO_CLOSE_EVENT, (c: { code: number; reason: string }) => (s.closeEvent = c));
  socket.on('disconnect', (reason) => (s.disconnected = reason));
  return s;
}

/** Opens a session and waits for `caught_up`. */
async function ioConnect(url: string, token: string, transports?: Transports): Promise<IoSession> {
  const s = ioSession(url, token, transports);
  await until(() => s.of('caught_up').length > 0 || s.disconnected !== null, 'caught_up over Socket.IO');
  expect(s.disconnected).toBeNull();
  return s;
}

/** The connect_error a handshake ends in. */
function refusal(url: string, options: Parameters<typeof io>[1]): Promise<Error & { data?: { code: string; message: string; retryAfterMs?: number } }> {
  return new Promise((resolve) => {
    const socket = io(url, { path: SOCKETIO_PATH, reconnection: false, forceNew: true, ...options });
    socket.on('connect_error', (err) => {
      socket.close();
      resolve(err as never);
    });
    socket.on('connect', () => {
      socket.close();
      resolve(new Error('connected'));
    });
  });
}

const b64 = (text: string) => Buffer.from(text).toString('base64');
const text = (m: MsgFrame) => Buffer.from(m.body, 'base64').toString();

describe('Socket.IO transport', () => {
  let server: ServerProcess;
  const open: { close(): void }[] = [];

  beforeAll(async () => {
    // Budgets high enough that garbage reaches the handlers (the limits have their own tests).
    server = await startServer({
      env: { WS_CONNECT_RATE_PER_MINUTE: '100000', WS_RATE_PER_SECOND: '1000000', WS_RATE_BURST: '1000000', WS_USER_RATE_PER_SECOND: '1000000', WS_USER_RATE_BURST: '1000000' },
    });
  });
  afterAll(async () => {
    for (const s of open) s.close();
    await server?.dispose();
  });

  const track = <T extends IoSession | RawSession>(s: T): T => {
    open.push('socket' in s ? s.socket : s.ws);
    return s;
  };

  /**
   * Alice on Socket.IO, Bob on the WebSocket endpoint: a send and its delivery both ways,
   * acks and read receipts.
   */
  async function exchange(transports: Transports | undefined, expectTransport: string) {
    const alice = await rawAccount(server.url, 'alice');
    const bob = await rawAccount(server.url, 'bob');
    const a = track(await ioConnect(server.url, alice.token, transports));
    const b = track(await rawConnect(server.url, bob.token));
    if (expectTransport === 'websocket') await until(() => a.socket.io.engine.transport.name === 'websocket', 'the upgrade to WebSocket');
    expect(a.socket.io.engine.transport.name).toBe(expectTransport);
    expect(a.frames[0]).toMatchObject({ type: 'ready', userId: alice.userId, deviceId: alice.deviceId });

    a.send({ type: 'send', id: 'to-bob', to: bob.userId, payloads: [{ device: bob.deviceId, body: b64('hello over socket.io') }] });
    await until(() => a.of('sent').length === 1, 'sent');
    const sent = a.of('sent')[0]!;
    expect(sent).toMatchObject({ id: 'to-bob', seq: 1 });
    const atBob = await b.next('msg');
    expect(text(atBob)).toBe('hello over socket.io');
    expect(atBob).toMatchObject({ from: alice.userId, fromDevice: alice.deviceId, seq: 1, conversationId: sent.conversationId });

    b.sendJson({ type: 'ack', conversationId: sent.conversationId, seq: 1 });
    b.sendJson({ type: 'send', id: 'to-alice', to: alice.userId, payloads: [{ device: alice.deviceId, body: b64('and back over ws') }] });
    await until(() => a.of('msg').length === 1 && a.of('receipt').length === 1, 'a message and a receipt');
    expect(a.of('receipt')[0]).toEqual({ type: 'receipt', kind: 'delivered', conversationId: sent.conversationId, seq: 1, by: bob.userId });
    expect(text(a.of('msg')[0]!)).toBe('and back over ws');

    a.send({ type: 'ack', conversationId: sent.conversationId, seq: 2 });
    a.send({ type: 'read', conversationId: sent.conversationId, seq: 2 });
    const readAt = b.frames.length;
    await until(() => b.frames.slice(readAt).some((f) => f.type === 'receipt' && f.kind === 'read'), 'a read receipt at bob');
    a.send({ type: 'ping', id: 'p1' });
    await until(() => a.of('pong').length === 1, 'pong');
    expect(a.of('pong')[0]).toEqual({ type: 'pong', id: 'p1' });
    expect(a.of('error')).toEqual([]);
    a.socket.close();
    b.ws.close();
  }

  it('exchanges frames with a WebSocket client over long-polling only', () => exchange(['polling'], 'polling'));
  it('exchanges frames with a WebSocket client over WebSocket only', () => exchange(['websocket'], 'websocket'));
  it('starts on long-polling and upgrades to WebSocket by default', () => exchange(undefined, 'websocket'));

  it('takes the token from an Authorization header too (non-browser clients)', async () => {
    const carol = await rawAccount(server.url, 'carol');
    const s = io(server.url, { path: SOCKETIO_PATH, transports: ['polling'], extraHeaders: { authorization: `Bearer ${carol.token}` }, reconnection: false, forceNew: true });
    open.push(s);
    const frames: ServerFrame[] = [];
    s.on(SOCKETIO_EVENT, (t: string) => frames.push(JSON.parse(t) as ServerFrame));
    await until(() => frames.some((f) => f.type === 'caught_up'), 'caught_up');
    s.close();
  });

  it('refuses a missing or bad token on both transports: connect_error unauthorized, and 401 before the upgrade', async () => {
    for (const transports of [['polling'], ['websocket']] as Transports[]) {
      const missing = await refusal(server.url, { transports });
      expect(missing.message).toBe('unauthorized');
      expect(missing.data).toMatchObject({ code: 'unauthorized' });
      const bad = await refusal(server.url, { transports, auth: { token: 'not.a.token' } });
      expect(bad.message).toBe('unauthorized');
      expect(bad.data?.code).toBe('unauthorized');
      expect(typeof bad.data?.message).toBe('string');
    }
    expect(await upgradeStatus(server.url, {})).toBe(401);
    expect(await upgradeStatus(server.url, { authorization: 'Bearer not.a.token' })).toBe(401);
  });

  it('answers a connection over the per-user limit with connect_error rate_limited and retryAfterMs', async () => {
    const limited = await startServer({ env: { WS_CONNECT_RATE_PER_MINUTE: '1' } });
    try {
      const dave = await rawAccount(limited.url, 'dave');
      const first = await ioConnect(limited.url, dave.token, ['polling']);
      first.socket.close();
      const err = await refusal(limited.url, { transports: ['polling'], auth: { token: dave.token } });
      expect(err.message).toBe('rate_limited');
      expect(err.data?.code).toBe('rate_limited');
      expect(err.data?.retryAfterMs).toBeGreaterThan(0);
    } finally {
      await limited.dispose();
    }
  });

  describe('garbage from a Socket.IO client', () => {
    let mallory: RawAccount;
    let alice: RawAccount;
    let bob: RawAccount;
    let a: RawSession;
    let b: IoSession;

    beforeAll(async () => {
      mallory = await rawAccount(server.url, 'mallory');
      alice = await rawAccount(server.url, 'alice');
      bob = await rawAccount(server.url, 'bob');
      a = track(await rawConnect(server.url, alice.token));
      b = track(await ioConnect(server.url, bob.token, ['polling']));
    });

    /** The bystanders still talk: a send from alice (WebSocket) reaches bob (Socket.IO polling). */
    async function bystandersTalk(label: string) {
      const before = b.of('msg').length;
      a.sendJson({ type: 'send', id: `by-${label}`.slice(0, 64).replace(/[^A-Za-z0-9_-]/g, '_'), to: bob.userId, payloads: [{ device: bob.deviceId, body: b64(label) }] });
      await until(() => b.of('msg').length > before, `bystander message ${label}`);
      expect(text(b.of('msg').at(-1)!)).toBe(label);
    }

    it('answers non-string arguments, unknown events, extra arguments, binary and deep JSON as invalid frames', async () => {
      for (const transports of [['polling'], ['websocket']] as Transports[]) {
        const m = track(await ioConnect(server.url, mallory.token, transports));
        m.socket.emit(SOCKETIO_EVENT, { type: 'ping' });
        m.socket.emit('hello', '{"type":"ping"}');
        m.socket.emit(SOCKETIO_EVENT, '{"type":"ping"}', 'extra');
        m.socket.emit(SOCKETIO_EVENT, Buffer.from('{"type":"ping"}'));
        m.socket.emit(SOCKETIO_EVENT, '['.repeat(50) + ']'.repeat(50));
        m.socket.emit(SOCKETIO_EVENT, '{"type":');
        m.socket.emit(SOCKETIO_EVENT);
        await until(() => m.of('error').length === 7, () => `seven errors, got ${JSON.stringify(m.of('error'))}`);
        const errors = m.of('error') as ErrorFrame[];
        expect(errors.every((e) => e.code === 'invalid')).toBe(true);
        expect(errors[0]!.message).toMatch(/must be the frame's JSON text/);
        expect(errors[1]!.message).toMatch(/unknown event/);
        expect(errors[2]!.message).toMatch(/exactly one argument/);
        expect(errors[3]!.message).toMatch(/binary/);
        expect(errors[4]!.message).toMatch(/nested deeper/);
        expect(errors[5]!.message).toBe('malformed JSON');
        // Still a working session.
        m.send({ type: 'ping', id: 'still' });
        await until(() => m.of('pong').length === 1, 'pong');
        expect(m.closeEvent).toBeNull();
        m.socket.close();
        await bystandersTalk(`after garbage on ${transports[0]}`);
      }
    });

    it('closes a frame over the size limit with a close event 1009, like the WebSocket endpoint', async () => {
      for (const transports of [['polling'], ['websocket']] as Transports[]) {
        const m = track(await ioConnect(server.url, mallory.token, transports));
        m.send({ type: 'ping', id: 'x'.padEnd(300_000, 'x') });
        await until(() => m.disconnected !== null, 'the session ended');
        expect(m.closeEvent).toEqual({ code: CLOSE.TOO_BIG, reason: 'frame too big' });
        expect(m.disconnected).toBe('io server disconnect');
        await bystandersTalk(`after an oversized frame on ${transports[0]}`);
      }
    });

    it('closes a non-frame event whose packets pass the size limit with 1009 too (its size is charged, not a flat 5)', async () => {
      for (const transports of [['polling'], ['websocket']] as Transports[]) {
        const m = track(await ioConnect(server.url, mallory.token, transports));
        m.socket.emit(SOCKETIO_EVENT, { type: 'ping', id: 'x'.padEnd(300_000, 'x') });
        await until(() => m.disconnected !== null, 'the session ended');
        expect(m.closeEvent).toEqual({ code: CLOSE.TOO_BIG, reason: 'frame too big' });
        await bystandersTalk(`after an oversized object on ${transports[0]}`);
      }
    });

    it('allows one join per connection: a polling request carrying thousands of joins closes that connection after the second', async () => {
      const handshake = await (await fetch(`${server.url}${SOCKETIO_PATH}/?EIO=4&transport=polling`)).text();
      const sid = (JSON.parse(handshake.slice(1)) as { sid: string }).sid;
      const joins = Array.from({ length: 5_000 }, () => '40{"token":"x"}').join('\x1e');
      const post = await fetch(`${server.url}${SOCKETIO_PATH}/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: joins, headers: { 'content-type': 'text/plain' } });
      expect(post.status).toBe(200);
      // The session is gone, or holds at most the two refusals it got before it was closed.
      const poll = await fetch(`${server.url}${SOCKETIO_PATH}/?EIO=4&transport=polling&sid=${sid}`);
      const body = await poll.text();
      if (poll.status === 200) expect(body.split('44{').length - 1).toBeLessThanOrEqual(2);
      else expect(poll.status).toBe(400);
      const again = await fetch(`${server.url}${SOCKETIO_PATH}/?EIO=4&transport=polling&sid=${sid}`);
      expect(again.status).toBe(400); // "Session ID unknown": closed
      await bystandersTalk('after a join flood');
    });

    it('survives a seeded property-based run of hostile events while the bystanders keep talking', async () => {
      const m = track(await ioConnect(server.url, mallory.token, ['websocket']));
      const arg = fc.oneof(
        fc.string({ maxLength: 200 }),
        fc.json({ maxDepth: 4 }),
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 4 }),
        fc.uint8Array({ maxLength: 64 }).map((u) => Buffer.from(u)),
      );
      const event = fc.tuple(fc.oneof(fc.constant(SOCKETIO_EVENT), fc.constant(SOCKETIO_EVENT), fc.string({ minLength: 1, maxLength: 12 })), fc.array(arg, { maxLength: 3 }));
      let emitted = 0;
      await fc.assert(
        fc.asyncProperty(fc.array(event, { minLength: 1, maxLength: 20 }), async (events) => {
          for (const [name, args] of events) {
            // Socket.IO reserves these names on the client; they never reach the server as events.
            if (['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener'].includes(name)) continue;
            m.socket.emit(name, ...args);
            emitted++;
          }
        }),
        { seed: 20_261_126, numRuns: 30 },
      );
      await until(() => m.frames.length > 0, 'answers');
      m.send({ type: 'ping', id: 'end' });
      await until(() => m.of('pong').some((p) => p.id === 'end'), 'the closing pong');
      expect(emitted).toBeGreaterThan(0);
      // Every answer is a documented frame: errors with a code (nothing internal), pongs, or replies to valid frames.
      const codes = new Set((m.of('error') as ErrorFrame[]).map((e) => e.code));
      expect(codes.has('internal')).toBe(false);
      expect(m.closeEvent).toBeNull();
      await bystandersTalk('after the property run');
      m.socket.close();
    });
  });

  it('on shutdown, tells Socket.IO clients close 1001 before disconnecting them', async () => {
    const erin = await rawAccount(server.url, 'erin');
    const frank = await rawAccount(server.url, 'frank');
    const p = track(await ioConnect(server.url, erin.token, ['polling']));
    const w = track(await ioConnect(server.url, frank.token, ['websocket']));
    await server.stop();
    await until(() => p.disconnected !== null && w.disconnected !== null, 'both disconnected');
    expect(p.closeEvent).toEqual({ code: CLOSE.GOING_AWAY, reason: 'server shutting down' });
    expect(w.closeEvent).toEqual({ code: CLOSE.GOING_AWAY, reason: 'server shutting down' });
  });
});
