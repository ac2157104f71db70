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
  validateFrame,
} from './frames.js';
import { DeviceStream, type StreamOutlet } from './device-stream.js';
import type { ReceiptCoalescer } from './receipt-coalescer.js';
import { HeartbeatWheel } from './heartbeats.js';
import { FrameBudget, type FrameLimits, type UserBudgets } from './rate-limit.js';
import type { SessionSocket, SocketHandlers } from './transport.js';

/** What a device session needs: the message path, observability, and this gateway's budgets and limits. */
export interface DeviceSessionDeps {
  store: MessageStore;
  messages: MessagesManager;
  delivery: Delivery;
  /** This gateway's folding of acks and reads into cursor writes and receipts. */
  receipts: ReceiptCoalescer;
  metrics: Metrics;
  log: Logger;
  clock: Clock;
  /** The per-user frame buckets of this gateway. */
  budgets: UserBudgets;
  limits: FrameLimits & { maxPayloadBytes: number; heartbeatMs: number; maxPresenceWatch: number };
  /** Called once when a session's socket has closed (the gateway forgets the session). */
  onClosed?: (session: DeviceSession) => void;
}

/** A live reader this far behind is closed as a slow consumer (it resyncs when it is back). */
const SLOW_CONSUMER_BYTES = 16 << 20;
/** The longest a refused session's reads are paused at once (see pauseReading). */
const MAX_READ_PAUSE_MS = 1_000;
/** After a flood, slow-consumer or internal close, the socket is dropped this soon whatever the peer does. */
const HARD_CLOSE_GRACE_MS = 1_000;
/** A group send is charged one token per this many members it reaches, once the membership is known. */
const MEMBERS_PER_TOKEN = 32;
/** A settled promise: the send order of a session that has sent nothing (one for all sessions). */
const SETTLED: Promise<void> = Promise.resolve();
/**
 * One device's session: frames in (budgets, validation, handlers), frames out, heartbeats and
 * closes. Message order, sync and cursors are its DeviceStream's (gateway/device-stream.ts).
 * The session knows nothing of its transport: it talks to a SessionSocket (gateway/transport.ts).
 *
 * Memory: a gateway holds one per connection, most of them idle, so a session is its own
 * socket handlers and its stream's outlet (no closures of its own), shares its deps with every
 * session of the gateway, beats on a shared wheel, and makes what it may never need (the
 * presence watch list, the stream's positions, the budget's buckets) only when first needed.
 */
export class DeviceSession implements LocalDevice, StreamOutlet, SocketHandlers {
  private readonly stream: DeviceStream;
  private sendOrder: Promise<void> = SETTLED;
  private readonly budget: FrameBudget;
  /** Users whose presence this session watches; made on the first subscribe. */
  private watching: Set<string> | undefined;
  private ended = false;
  private readPause: NodeJS.Timeout | undefined;
  /** Reads were paused since the last heartbeat, so a missing pong proves nothing. */
  private pausedThisBeat = false;
  private connectionId = '';
  private alive = true;
  private readonly beatSlot: number;

  constructor(
    private readonly socket: SessionSocket,
    readonly userId: string,
    readonly deviceId: string,
    private readonly tokenExpiresAt: number,
    private readonly deps: DeviceSessionDeps,
  ) {
    this.budget = new FrameBudget(deps.limits, deps.budgets.acquire(userId), deps.clock);
    this.stream = new DeviceStream(this, userId, deviceId, deps);
    socket.listen(this);
    this.beatSlot = HeartbeatWheel.of(deps.limits.heartbeatMs).add(this);
  }

  /**
   * Registers the route, then reads the device's conversations and cursors, then says `ready`
   * and syncs everything the device missed. The read comes after the route (Delivery's proof
   * that a stale route cache loses no live message rests on that order); it is queued on the
   * stream before anything can be delivered, so live messages that arrive while the route is
   * being registered wait for it and are not mistaken for a gap from seq 0.
   */
  async open(): Promise<void> {
    this.deps.metrics.connections.inc();
    const attaching = this.deps.delivery.attach(this);
    let conversations: DeviceConversation[] = [];
    this.stream.enqueue(async () => {
      // (If attaching fails or the socket closed meanwhile, open() handles it and nothing is read.)
      const attached = await attaching.then(
        () => !this.ended,
        () => false,
      );
      if (attached) conversations = await this.stream.loadCursors();
    });
    this.connectionId = await attaching;
    if (this.ended) {
      // The socket closed while we registered it: undo the route now rather than wait for its TTL.
      await this.deps.delivery.detach(this, this.connectionId);
      return;
    }
    this.stream.enqueue(async () => {
      this.send({
        type: 'ready',
        userId: this.userId,
        deviceId: this.deviceId,
        heartbeatMs: this.deps.limits.heartbeatMs,
        maxPayloadBytes: this.deps.limits.maxPayloadBytes,
      });
      await this.stream.sync(conversations);
    });
  }

  deliver(frame: MsgFrame): void {
    this.stream.deliver(frame);
  }

  send(frame: ServerFrame): void {
    if (this.ended || !this.socket.open) return;
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
    if (this.ended) return;
    this.ended = true;
    this.socket.close(code, reason);
    if (code === CLOSE.FLOOD || code === CLOSE.SLOW_CONSUMER || code === CLOSE.INTERNAL) {
      // Read nothing more from this peer, and do not wait for its close frame (a flooder
      // would keep us parsing until the library's 30 s close timeout).
      this.socket.pauseReading();
      setTimeout(() => this.socket.terminate(), HARD_CLOSE_GRACE_MS).unref();
    }
  }

  /** Whether the session has closed (or is closing): nothing more is written or read for it. */
  get closed(): boolean {
    return this.ended;
  }

  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  drained(maxWaitMs: number): Promise<void> {
    return this.socket.drained(maxWaitMs);
  }

  /** Catch up everything the store has past this device's position, e.g. after deliveries may have been lost. */
  resync(): void {
    this.stream.enqueue(() => this.stream.catchUpAll());
  }

  // The socket's events (SocketHandlers). Nothing a handler throws escapes: an unexpected throw
  // is logged with its stack, counted, and closes only this session (1011).

  onMessage(data: string | Buffer, isBinary: boolean): void {
    try {
      this.received(data, isBinary);
    } catch (err) {
      this.crashed('frame', err);
    }
  }

  /** Something that is not a frame at all: answered and charged like malformed JSON, plus its size. */
  onInvalid(reason: string, bytes = 0): void {
    try {
      if (this.ended) return;
      if (this.limit(INVALID_FRAME_COST + sizeTokens(bytes))) this.reply(new AppError('invalid', reason), undefined);
    } catch (err) {
      this.crashed('frame', err);
    }
  }

  onPong(): void {
    this.alive = true;
  }

  onClose(): void {
    void this.closedSocket();
  }

  /** One heartbeat (from the wheel): token expiry, then liveness. */
  beat(): void {
    try {
      this.heartbeat();
    } catch (err) {
      this.crashed('heartbeat', err);
    }
  }

  private crashed(where: string, err: unknown): void {
    this.deps.metrics.handlerCrashes.inc({ where });
    this.deps.log.error({ err, deviceId: this.deviceId, where }, 'connection handler failed; closing this connection');
    this.close(CLOSE.INTERNAL, 'internal error');
  }

  private received(data: string | Buffer, isBinary: boolean): void {
    if (this.ended) return;
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
    if (this.readPause || this.ended) return;
    this.socket.pauseReading();
    this.pausedThisBeat = true;
    this.readPause = setTimeout(() => {
      this.readPause = undefined;
      if (!this.ended) this.socket.resumeReading();
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
        this.stream.ownSent(r.conversationId, r.seq, frame.type === 'group.send');
        return;
      }
      case 'ack':
      case 'read': {
        const conversationId = frame.conversationId;
        const covered = this.stream.position(conversationId);
        if (covered === undefined && !(await this.deps.messages.isMember(this.userId, conversationId))) {
          throw new AppError('not_found', 'no such conversation');
        }
        if (frame.type === 'ack' && frame.seq > (covered ?? 0)) {
          throw new AppError('invalid', `seq ${frame.seq} has not been delivered to this device`);
        }
        if (frame.type === 'read' && frame.seq > (await this.deps.store.lastSeq(conversationId))) {
          throw new AppError('invalid', `seq ${frame.seq} does not exist in this conversation`);
        }
        const { delivered, before } = this.stream.acknowledge(conversationId, frame.seq);
        // Folded with this device's other acks and reads: written and relayed within RECEIPT_INTERVAL_MS.
        this.deps.receipts.add(me, conversationId, delivered, frame.type === 'ack' && delivered > before, frame.type === 'read' ? frame.seq : 0);
        return;
      }
      case 'typing':
        await this.deps.messages.typing(me, frame.conversationId, frame.active);
        return;
      case 'presence.subscribe': {
        const watching = (this.watching ??= new Set());
        const fresh = [...new Set(frame.users)].filter((u) => !watching.has(u));
        if (watching.size + fresh.length > this.deps.limits.maxPresenceWatch) {
          throw new AppError('limit_exceeded', `at most ${this.deps.limits.maxPresenceWatch} users watched per connection`, {
            details: { maxWatched: this.deps.limits.maxPresenceWatch },
          });
        }
        const { visible, hidden } = await this.deps.messages.visiblePresence(this.userId, frame.users);
        for (const u of visible) watching.add(u);
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

  private async closedSocket(): Promise<void> {
    this.ended = true;
    this.deps.onClosed?.(this);
    HeartbeatWheel.of(this.deps.limits.heartbeatMs).remove(this, this.beatSlot);
    clearTimeout(this.readPause);
    this.deps.budgets.release(this.userId);
    this.deps.metrics.connections.dec();
    if (this.connectionId) {
      // (If open() is still attaching, it detaches itself when it sees `ended`.)
      await this.deps.delivery.detach(this, this.connectionId).catch((err) => {
        this.deps.metrics.backendFailures.inc({ backend: 'presence', operation: 'detach' });
        this.deps.log.error({ err }, 'presence detach failed');
      });
    }
  }
}
