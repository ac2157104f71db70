// One device's session on any transport: parses and answers frames, syncs on connect, and writes messages in seq order.
import { CLOSE, type MsgFrame, type ServerFrame } from '../protocol/frames.js';
import type { MessageStore } from '../messaging/message-store.js';
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
import { DeviceStream } from './device-stream.js';
import type { ReceiptCoalescer } from './receipt-coalescer.js';
import { FrameBudget, type FrameLimits, type UserBudgets } from './rate-limit.js';
import type { SessionSocket } from './transport.js';

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
  /** Called once when the socket has closed (the gateway forgets the session). */
  onClosed?: () => void;
}

/** A live reader this far behind is closed as a slow consumer (it resyncs when it is back). */
const SLOW_CONSUMER_BYTES = 16 << 20;
/** The longest a refused session's reads are paused at once (see pauseReading). */
const MAX_READ_PAUSE_MS = 1_000;
/** After a flood, slow-consumer or internal close, the socket is dropped this soon whatever the peer does. */
const HARD_CLOSE_GRACE_MS = 1_000;
/** A group send is charged one token per this many members it reaches, once the membership is known. */
const MEMBERS_PER_TOKEN = 32;

/**
 * One device's session: frames in (budgets, validation, handlers), frames out, heartbeats and
 * closes. Message order, sync and cursors are its DeviceStream's (gateway/device-stream.ts).
 * The session knows nothing of its transport: it talks to a SessionSocket (gateway/transport.ts).
 */
export class DeviceSession implements LocalDevice {
  private readonly stream: DeviceStream;
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
    const isClosed = () => this.closed;
    this.stream = new DeviceStream(
      {
        send: (frame) => this.send(frame),
        get closed() {
          return isClosed();
        },
        close: (code, reason) => this.close(code, reason),
        get bufferedAmount() {
          return socket.bufferedAmount;
        },
        drained: (ms) => socket.drained(ms),
      },
      userId,
      deviceId,
      deps,
    );
    socket.listen({
      message: (data, isBinary) => this.guard('frame', () => this.onMessage(data, isBinary)),
      invalid: (reason, bytes) => this.guard('frame', () => this.onInvalid(reason, bytes ?? 0)),
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
    this.stream.enqueue(() => this.stream.loadCursors());
    this.connectionId = await this.deps.delivery.attach(this);
    if (this.closed) {
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
      await this.stream.sync();
    });
  }

  deliver(frame: MsgFrame): void {
    this.stream.deliver(frame);
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

  /** Catch up everything the store has past this device's position, e.g. after deliveries may have been lost. */
  resync(): void {
    this.stream.enqueue(() => this.stream.catchUpAll());
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

  /** Something that is not a frame at all: answered and charged like malformed JSON, plus its size. */
  private onInvalid(reason: string, bytes: number): void {
    if (this.closed) return;
    if (this.limit(INVALID_FRAME_COST + sizeTokens(bytes))) this.reply(new AppError('invalid', reason), undefined);
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
