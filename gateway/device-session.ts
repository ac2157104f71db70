// One device's session on any transport: parses and answers frames, syncs on connect, and writes messages in seq order.
import { CLOSE, type MsgFrame, type ServerFrame } from '../protocol/frames.js';
import type { DeviceConversation, MessageStore } from '../messaging/message-store.js';
import type { MessagesManager } from '../messaging/messages.js';
import type { Clock } from '../platform/clock.js';
import { AppError, toAppError } from '../platform/errors.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import type { Delivery, LocalDevice } from '../routing/delivery.js';
import {
  assertNever,
  frameCost,
  frameRef,
  INVALID_FRAME_COST,
  parseFrameJson,
  type ParsedFrame,
  serializeFrame,
  sizeTokens,
  sniffSendId,
  storedToFrame,
  validateFrame,
} from './frames.js';
import { FrameBudget, type FrameLimits, type UserBudgets } from './rate-limit.js';
import type { SessionSocket } from './transport.js';

/** What a device session needs: the message path, observability, and this gateway's budgets and limits. */
export interface DeviceSessionDeps {
  store: MessageStore;
  messages: MessagesManager;
  delivery: Delivery;
  metrics: Metrics;
  log: Logger;
  clock: Clock;
  /** The per-user frame buckets of this gateway. */
  budgets: UserBudgets;
  limits: FrameLimits & { maxPayloadBytes: number; heartbeatMs: number; maxPresenceWatch: number };
  /** Called once when the socket has closed (the gateway forgets the session). */
  onClosed?: () => void;
}

/** A sync page: at most this many rows, and rows until this many bytes of ciphertext (always one). */
const PAGE_ROWS = 500;
const PAGE_BYTES = 1 << 20;
/** Sync writes only while less than this is buffered for the socket; a live reader this far behind is closed. */
const SYNC_HIGH_WATER = 1 << 20;
const SLOW_CONSUMER_BYTES = 16 << 20;
/** Deliveries waiting behind a sync or gap fill; a device this far behind is closed as a slow consumer (it resyncs). */
const MAX_QUEUED = 20_000;
/** The longest a refused session's reads are paused at once (see pauseReading). */
const MAX_READ_PAUSE_MS = 1_000;
/** After a flood, slow-consumer or internal close, the socket is dropped this soon whatever the peer does. */
const HARD_CLOSE_GRACE_MS = 1_000;
/** A group send is charged one token per this many members it reaches, once the membership is known. */
const MEMBERS_PER_TOKEN = 32;

/**
 * Ordering per conversation: `covered` is the highest seq this device has been given or that
 * carries nothing for it (its own sends, messages from before it existed). A message whose seq
 * is the next one is written at once; an older one is dropped (already written); a newer one
 * means a gap (another process's delivery overtook), filled by reading the store from
 * `covered`. All of this runs on one promise chain per connection, so sync and live delivery
 * never interleave.
 *
 * Cursors: an `ack` of seq s moves the delivered cursor to s, or to `covered` when nothing with
 * a body lies between s and `covered`, so own messages do not hold the cursor back.
 *
 * The session knows nothing of its transport: it talks to a SessionSocket (gateway/transport.ts).
 */
export class DeviceSession implements LocalDevice {
  private readonly covered = new Map<string, number>();
  private readonly lastBody = new Map<string, number>();
  private readonly acked = new Map<string, number>();
  private chain: Promise<void> = Promise.resolve();
  /** Tasks on `chain` not finished yet; while any are, deliveries queue behind them. */
  private queued = 0;
  private sendOrder: Promise<void> = Promise.resolve();
  private readonly budget: FrameBudget;
  private readonly watching = new Set<string>();
  private closed = false;
  private readPause: NodeJS.Timeout | undefined;
  /** Reads were paused since the last heartbeat, so a missing pong proves nothing. */
  private pausedThisBeat = false;
  private connectionId = '';
  private alive = true;
  private readonly pinger: NodeJS.Timeout;

  constructor(
    private readonly socket: SessionSocket,
    readonly userId: string,
    readonly deviceId: string,
    private readonly tokenExpiresAt: number,
    private readonly deps: DeviceSessionDeps,
  ) {
    this.budget = new FrameBudget(deps.limits, deps.budgets.acquire(userId), deps.clock);
    socket.listen({
      message: (data, isBinary) => this.guard('frame', () => this.onMessage(data, isBinary)),
      invalid: (reason) => this.guard('frame', () => this.onInvalid(reason)),
      pong: () => (this.alive = true),
      close: () => void this.onClose(),
    });
    this.pinger = setInterval(() => this.guard('heartbeat', () => this.heartbeat()), deps.limits.heartbeatMs);
    this.pinger.unref();
  }

  /** Announces the session, registers the route, then syncs everything the device missed. */
  async open(): Promise<void> {
    this.deps.metrics.connections.inc();
    // Cursors first, on the chain: a live message that arrives while the route is being
    // registered then finds them loaded and is not mistaken for a gap from seq 0.
    this.enqueue(() => this.loadCursors());
    this.connectionId = await this.deps.delivery.attach(this);
    if (this.closed) {
      // The socket closed while we registered it: undo the route now rather than wait for its TTL.
      await this.deps.delivery.detach(this, this.connectionId);
      return;
    }
    this.enqueue(async () => {
      this.send({
        type: 'ready',
        userId: this.userId,
        deviceId: this.deviceId,
        heartbeatMs: this.deps.limits.heartbeatMs,
        maxPayloadBytes: this.deps.limits.maxPayloadBytes,
      });
      await this.sync();
    });
  }

  deliver(frame: MsgFrame): void {
    // Fast path (most live deliveries): nothing queued and the next seq: write it now, in order.
    if (this.queued === 0 && frame.seq === (this.covered.get(frame.conversationId) ?? -1) + 1) {
      this.write(frame);
      return;
    }
    this.enqueue(() => this.inOrder(frame));
  }

  send(frame: ServerFrame): void {
    if (this.closed || !this.socket.open) return;
    if (this.socket.bufferedAmount > SLOW_CONSUMER_BYTES) {
      this.close(CLOSE.SLOW_CONSUMER, 'slow consumer');
      return;
    }
    this.socket.send(serializeFrame(frame));
  }

  replaced(): void {
    this.close(CLOSE.REPLACED, 'replaced by a newer connection of this device');
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.close(code, reason);
    if (code === CLOSE.FLOOD || code === CLOSE.SLOW_CONSUMER || code === CLOSE.INTERNAL) {
      // Read nothing more from this peer, and do not wait for its close frame (a flooder
      // would keep us parsing until the library's 30 s close timeout).
      this.socket.pauseReading();
      setTimeout(() => this.socket.terminate(), HARD_CLOSE_GRACE_MS).unref();
    }
  }

  private enqueue(task: () => Promise<unknown>): void {
    if (this.queued >= MAX_QUEUED) {
      this.close(CLOSE.SLOW_CONSUMER, 'slow consumer');
      return;
    }
    this.queued++;
    this.chain = this.chain
      .then(task)
      .then(() => undefined)
      .catch((err) => {
        this.deps.log.error({ err, deviceId: this.deviceId }, 'delivery to device failed; closing so it resyncs');
        this.close(CLOSE.INTERNAL, 'internal error');
      })
      .finally(() => this.queued--);
  }

  /** Catch up everything the store has past this device's position, e.g. after deliveries may have been lost. */
  resync(): void {
    this.enqueue(() => this.catchUpAll());
  }

  private async sync(): Promise<void> {
    await this.catchUpAll();
    this.send({ type: 'caught_up' });
    for (const r of await this.deps.store.receiptState(this.userId)) {
      if (r.delivered > 0) this.send({ type: 'receipt', kind: 'delivered', conversationId: r.conversationId, seq: r.delivered, by: r.userId });
      if (r.read > 0) this.send({ type: 'receipt', kind: 'read', conversationId: r.conversationId, seq: r.read, by: r.userId });
    }
  }

  private async catchUpAll(): Promise<void> {
    for (const c of await this.loadCursors()) {
      if (c.lastSeq > (this.covered.get(c.conversationId) ?? 0)) await this.catchUp(c.conversationId, c.lastSeq);
    }
  }

  /** Reads the device's conversations and cursors; positions only ever move forward. */
  private async loadCursors(): Promise<DeviceConversation[]> {
    const conversations = await this.deps.store.deviceConversations(this.deviceId, this.userId);
    for (const c of conversations) {
      this.covered.set(c.conversationId, Math.max(this.covered.get(c.conversationId) ?? 0, c.delivered));
      this.acked.set(c.conversationId, Math.max(this.acked.get(c.conversationId) ?? 0, c.delivered));
    }
    return conversations;
  }

  private async inOrder(frame: MsgFrame): Promise<void> {
    if (this.closed) return; // a closed connection reads nothing more from the store: it syncs when it is back
    const have = this.covered.get(frame.conversationId) ?? 0;
    if (frame.seq <= have) return;
    if (frame.seq === have + 1) {
      this.write(frame);
      return;
    }
    await this.catchUp(frame.conversationId, frame.seq);
  }

  /**
   * Writes what is stored after `covered` for this conversation, up to `until` (or all of it),
   * in pages of rows and bytes. Before each message it waits until the socket has room, so a
   * backlog of large messages drains at the reader's pace instead of overflowing the buffer;
   * every round writes at least one message, and `covered` records exactly where it stopped.
   */
  private async catchUp(conversationId: string, until = Number.MAX_SAFE_INTEGER): Promise<void> {
    for (;;) {
      const after = this.covered.get(conversationId) ?? 0;
      if (this.closed) return;
      if (after >= until) break;
      const rows = await this.deps.store.fetch(conversationId, this.deviceId, this.userId, after, PAGE_ROWS, PAGE_BYTES);
      for (const m of rows) {
        if (m.seq <= (this.covered.get(conversationId) ?? 0)) continue;
        if (m.body === null && m.system === null) {
          this.covered.set(conversationId, m.seq);
          continue;
        }
        await this.roomToWrite();
        if (this.closed) return;
        this.write(storedToFrame(m));
      }
      if (rows.length === 0 || this.closed) break;
    }
    // Nothing for this device since its last ack: move its cursor past the rows it skipped.
    const covered = this.covered.get(conversationId) ?? 0;
    const acked = this.acked.get(conversationId) ?? 0;
    if ((this.lastBody.get(conversationId) ?? 0) <= acked && covered > acked) {
      this.acked.set(conversationId, covered);
      await this.deps.store.advanceCursor({ deviceId: this.deviceId, conversationId, delivered: covered, read: 0 });
    }
  }

  /** Resolves once less than SYNC_HIGH_WATER is buffered for the socket (or it closed). */
  private async roomToWrite(): Promise<void> {
    // At most 100 ms per wait: a safety net that re-checks even if no drain event comes.
    while (!this.closed && this.socket.bufferedAmount > SYNC_HIGH_WATER) await this.socket.drained(100);
  }

  private write(frame: MsgFrame): void {
    this.covered.set(frame.conversationId, frame.seq);
    this.lastBody.set(frame.conversationId, frame.seq);
    this.deps.metrics.messagesDelivered.inc();
    this.send(frame);
  }

  /**
   * Runs a socket event handler so that nothing it throws can escape: an unexpected throw is
   * logged with its stack, counted, and closes only this session (1011).
   */
  private guard(where: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.crashed(where, err);
    }
  }

  private crashed(where: string, err: unknown): void {
    this.deps.metrics.handlerCrashes.inc({ where });
    this.deps.log.error({ err, deviceId: this.deviceId, where }, 'connection handler failed; closing this connection');
    this.close(CLOSE.INTERNAL, 'internal error');
  }

  private onMessage(data: string | Buffer, isBinary: boolean): void {
    if (this.closed) return;
    // A big frame pays for its size before anything parses it: refused, it is never parsed.
    const sizeCost = sizeTokens(typeof data === 'string' ? Buffer.byteLength(data) : data.length);
    if (sizeCost > 0 && !this.limit(sizeCost, sniffSendId(data))) return;
    const json = parseFrameJson(data, isBinary);
    if (!json.ok) {
      if (this.limit(INVALID_FRAME_COST)) this.reply(json.error, undefined);
      return;
    }
    // Charged before validation: a refused frame is not validated.
    const cost = frameCost(json.raw);
    if (!this.limit(cost, frameRef(json.raw))) {
      this.budget.refund(sizeCost); // refused: it will be sent again, and pay again
      return;
    }
    const decoded = validateFrame(json.raw);
    if (!decoded.ok) {
      this.budget.charge(Math.max(0, INVALID_FRAME_COST - cost));
      this.reply(decoded.error, decoded.ref);
      return;
    }
    const frame = decoded.frame;
    const ref = frame.type === 'send' || frame.type === 'group.send' ? frame.id : frame.type;
    const started = performance.now();
    this.handle(frame)
      .catch((err) => this.reply(err, ref))
      .catch((err) => this.crashed('reply', err))
      .finally(() => this.deps.metrics.frameSeconds.observe({ type: frame.type }, (performance.now() - started) / 1000));
  }

  /** Something that is not a frame at all: answered and charged like malformed JSON. */
  private onInvalid(reason: string): void {
    if (this.closed) return;
    if (this.limit(INVALID_FRAME_COST)) this.reply(new AppError('invalid', reason), undefined);
  }

  /** Takes `cost` from the budget; on refusal answers `rate_limited`, and closes with FLOOD once refusals run out. */
  private limit(cost: number, ref?: string): boolean {
    const d = this.budget.take(cost);
    if (d.kind === 'ok') return true;
    if (d.kind === 'flood') {
      this.deps.metrics.errors.inc({ code: 'flood', transport: this.socket.transport });
      this.close(CLOSE.FLOOD, 'too many frames');
      return false;
    }
    this.reply(new AppError('rate_limited', 'too many frames', { details: { retryAfterMs: d.waitMs } }), ref, d.waitMs);
    this.pauseReading(d.waitMs);
    return false;
  }

  /**
   * Backpressure: while the budget is spent, read nothing more from the socket (at most
   * MAX_READ_PAUSE_MS at a time, so pongs keep the heartbeat alive). What the client sends
   * meanwhile waits in the network buffers, where it costs this server nothing; a client that
   * keeps sending regardless is slowed by TCP itself, and closed once refusals of the frames
   * already read pile up (the flood allowance).
   */
  private pauseReading(ms: number): void {
    if (this.readPause || this.closed) return;
    this.socket.pauseReading();
    this.pausedThisBeat = true;
    this.readPause = setTimeout(() => {
      this.readPause = undefined;
      if (!this.closed) this.socket.resumeReading();
    }, Math.min(ms, MAX_READ_PAUSE_MS));
    this.readPause.unref();
  }

  private async handle(frame: ParsedFrame): Promise<void> {
    const me = { userId: this.userId, deviceId: this.deviceId };
    switch (frame.type) {
      case 'send':
      case 'group.send': {
        // Checks run one send at a time, so this device's sends are committed in frame order.
        const submitted = this.sendOrder.then(async () => {
          if (frame.type === 'send') return this.deps.messages.submit(me, frame);
          const s = await this.deps.messages.submitGroup(me, frame);
          this.budget.charge(Math.floor(s.audience / MEMBERS_PER_TOKEN));
          return s;
        });
        this.sendOrder = submitted.then(
          () => undefined,
          () => undefined,
        );
        const r = await (await submitted).done;
        this.send({ type: 'sent', id: frame.id, conversationId: r.conversationId, seq: r.seq, sentAt: r.sentAt });
        // Our own message carries nothing for us: count it as covered if it is the next seq.
        this.enqueue(async () => {
          const c = r.conversationId;
          if ((this.covered.get(c) ?? 0) !== r.seq - 1) return;
          this.covered.set(c, r.seq);
          // In groups the aggregate receipt is the least cursor over members, the sender too:
          // move ours past our own message when nothing before it is waiting for an ack.
          if (frame.type === 'group.send' && (this.lastBody.get(c) ?? 0) <= (this.acked.get(c) ?? 0)) {
            this.acked.set(c, r.seq);
            await this.deps.store.advanceCursor({ deviceId: this.deviceId, conversationId: c, delivered: r.seq, read: 0 });
          }
        });
        return;
      }
      case 'ack':
      case 'read': {
        const conversationId = frame.conversationId;
        const covered = this.covered.get(conversationId);
        if (covered === undefined && !(await this.deps.messages.isMember(this.userId, conversationId))) {
          throw new AppError('not_found', 'no such conversation');
        }
        if (frame.type === 'ack' && frame.seq > (covered ?? 0)) {
          throw new AppError('invalid', `seq ${frame.seq} has not been delivered to this device`);
        }
        if (frame.type === 'read' && frame.seq > (await this.deps.store.lastSeq(conversationId))) {
          throw new AppError('invalid', `seq ${frame.seq} does not exist in this conversation`);
        }
        // Delivered moves only over what this device was given (see the class comment).
        const delivered =
          frame.seq > (covered ?? 0) ? 0 : frame.seq >= (this.lastBody.get(conversationId) ?? 0) ? covered! : frame.seq;
        const before = this.acked.get(conversationId) ?? 0;
        if (delivered > before) this.acked.set(conversationId, delivered);
        await this.deps.store.advanceCursor({ deviceId: this.deviceId, conversationId, delivered, read: frame.type === 'read' ? frame.seq : 0 });
        if (frame.type === 'read') await this.deps.messages.receipt(me, 'read', conversationId, frame.seq);
        else if (delivered > before) await this.deps.messages.receipt(me, 'delivered', conversationId, delivered);
        return;
      }
      case 'typing':
        await this.deps.messages.typing(me, frame.conversationId, frame.active);
        return;
      case 'presence.subscribe': {
        const fresh = [...new Set(frame.users)].filter((u) => !this.watching.has(u));
        if (this.watching.size + fresh.length > this.deps.limits.maxPresenceWatch) {
          throw new AppError('limit_exceeded', `at most ${this.deps.limits.maxPresenceWatch} users watched per connection`, {
            details: { maxWatched: this.deps.limits.maxPresenceWatch },
          });
        }
        const { visible, hidden } = await this.deps.messages.visiblePresence(this.userId, frame.users);
        for (const u of visible) this.watching.add(u);
        if (hidden.length > 0) {
          this.reply(new AppError('not_found', 'no such contact', { details: { users: hidden } }), 'presence.subscribe');
        }
        if (visible.length === 0) return;
        for (const s of await this.deps.delivery.watchPresence(this, visible)) this.send({ type: 'presence', ...s });
        return;
      }
      case 'ping':
        this.send(frame.id === undefined ? { type: 'pong' } : { type: 'pong', id: frame.id });
        return;
      default:
        return assertNever(frame);
    }
  }

  private reply(err: unknown, ref: string | undefined, retryAfterMs?: number): void {
    const e = toAppError(err);
    this.deps.metrics.errors.inc({ code: e.code, transport: this.socket.transport });
    if (e.code === 'internal' || e.code === 'unavailable') this.deps.log.error({ err, deviceId: this.deviceId }, 'frame failed');
    this.send({
      type: 'error',
      code: e.code,
      message: e.code === 'internal' ? 'internal error' : e.message,
      ...(ref === undefined ? {} : { ref }),
      temporary: e.temporary,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
      ...(e.details && e.code !== 'internal' && e.code !== 'unavailable' ? { details: e.details } : {}),
    });
  }

  private heartbeat(): void {
    if (this.deps.clock.now() >= this.tokenExpiresAt) {
      // A session does not outlive its token: the client logs in again and reconnects.
      this.close(CLOSE.UNAUTHORIZED, 'token expired');
      return;
    }
    // Transports without `ping` run their own heartbeats and close dead peers themselves.
    if (!this.socket.ping) return;
    // While reads were paused (backpressure) the peer's pong may be waiting unread: not a dead peer.
    const paused = this.pausedThisBeat || this.readPause !== undefined;
    this.pausedThisBeat = false;
    if (!this.alive && !paused) {
      // Say why if the peer can still hear it, then drop the socket regardless.
      this.close(CLOSE.HEARTBEAT_TIMEOUT, 'heartbeat timeout');
      setTimeout(() => this.socket.terminate(), 1000).unref();
      return;
    }
    this.alive = false;
    this.socket.ping();
  }

  private async onClose(): Promise<void> {
    this.closed = true;
    this.deps.onClosed?.();
    clearInterval(this.pinger);
    clearTimeout(this.readPause);
    this.deps.budgets.release(this.userId);
    this.deps.metrics.connections.dec();
    if (this.connectionId) {
      // (If open() is still attaching, it detaches itself when it sees `closed`.)
      await this.deps.delivery.detach(this, this.connectionId).catch((err) => {
        this.deps.metrics.backendFailures.inc({ backend: 'presence', operation: 'detach' });
        this.deps.log.error({ err }, 'presence detach failed');
      });
    }
  }
}
