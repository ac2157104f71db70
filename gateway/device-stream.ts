// One device's stream of messages: per-conversation seq order, gap fill and sync from the store, and its delivered cursors.
import { CLOSE, type MsgFrame, type ServerFrame } from '../protocol/frames.js';
import type { DeviceConversation, MembershipWindow, MessageStore } from '../messaging/message-store.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import { storedToFrame } from './frames.js';

/** Where a stream writes: its device session. */
export interface StreamOutlet {
  /** Writes a frame to the device (nothing once the session has closed). */
  send(frame: ServerFrame): void;
  /** Whether the session has closed: a closed stream reads nothing more from the store. */
  readonly closed: boolean;
  /** Closes the session (a slow consumer, or a failure after which the device resyncs). */
  close(code: number, reason: string): void;
  /** Bytes waiting for the socket. */
  readonly bufferedAmount: number;
  /** Resolves when the socket's buffer drained, or after `ms` at most. */
  drained(ms: number): Promise<void>;
}

export interface DeviceStreamDeps {
  store: MessageStore;
  metrics: Metrics;
  log: Logger;
}

/** A sync page: at most this many rows, and rows until this many bytes of ciphertext (always one). */
const PAGE_ROWS = 500;
const PAGE_BYTES = 1 << 20;
/** Sync writes only while less than this is buffered for the socket. */
const SYNC_HIGH_WATER = 1 << 20;
/** Deliveries waiting behind a sync or gap fill; a device this far behind is closed as a slow consumer (it resyncs). */
const MAX_QUEUED = 20_000;

/** A settled promise: the chain of a stream with nothing queued (one for all streams). */
const IDLE: Promise<void> = Promise.resolve();

/** Where the device stands in one conversation. */
interface Position {
  /** The highest seq it has been given, or that carries nothing for it. */
  covered: number;
  /** The highest seq written to it that it acknowledges: a message with a body, or the end of an `expired` range. */
  lastAckable: number;
  /** Its delivered cursor, as this session moved it. */
  acked: number;
}

/**
 * Ordering per conversation: `covered` is the highest seq this device has been given or that
 * carries nothing for it (its own sends, messages from before it existed). A message whose seq
 * is the next one is written at once; an older one is dropped (already written); a newer one
 * means a gap (another process's delivery overtook), filled by reading the store from
 * `covered`. All of this runs on one promise chain per device session, so sync and live
 * delivery never interleave.
 *
 * Erased messages: seqs missing from the store inside the user's membership window were erased
 * (retention, disappearing messages: messaging/purge.ts). The device is told with one `expired`
 * frame per run of them, written where they were in seq order; it counts as covered and the
 * device acknowledges its `to` like a message. "Exact" means: every seq the store no longer
 * has, that this device was not given and that lies inside its window. The server cannot tell
 * any more whether an erased seq carried something for this device (its own sends and messages
 * from before it existed are reported too); seqs outside the window (before the user joined a
 * group, after they left) are never reported. A sync never stalls on them and never errs.
 *
 * Cursors: an `ack` of seq s moves the delivered cursor to s, or to `covered` when nothing it
 * must acknowledge lies between s and `covered`, so own messages do not hold the cursor back.
 *
 * Memory: an idle connection holds one of these, so what it needs is made when first needed
 * (the positions when the device has a conversation) and the chain of an idle stream is IDLE.
 */
export class DeviceStream {
  /** Positions by conversation; a conversation without one has no position yet. */
  private positions: Map<string, Position> | undefined;
  private chain: Promise<void> = IDLE;
  /** Tasks on `chain` not finished yet; while any are, deliveries queue behind them. */
  private queued = 0;

  constructor(
    private readonly out: StreamOutlet,
    private readonly userId: string,
    private readonly deviceId: string,
    private readonly deps: DeviceStreamDeps,
  ) {}

  /** Runs `task` after everything queued before it; a failure closes the session (1011) so the device resyncs. */
  enqueue(task: () => Promise<unknown>): void {
    if (this.queued >= MAX_QUEUED) {
      this.out.close(CLOSE.SLOW_CONSUMER, 'slow consumer');
      return;
    }
    this.queued++;
    this.chain = this.chain
      .then(task)
      .then(() => undefined)
      .catch((err) => {
        this.deps.log.error({ err, deviceId: this.deviceId }, 'delivery to device failed; closing so it resyncs');
        this.out.close(CLOSE.INTERNAL, 'internal error');
      })
      .finally(() => {
        // Nothing queued after this task: the next one starts from IDLE, and this chain is let go.
        if (--this.queued === 0) this.chain = IDLE;
      });
  }

  /** A live message for this device: written now if it is the next seq and nothing waits, else in order on the chain. */
  deliver(frame: MsgFrame): void {
    if (this.queued === 0 && frame.seq === (this.position(frame.conversationId) ?? -1) + 1) {
      this.write(frame);
      return;
    }
    this.enqueue(() => this.inOrder(frame));
  }

  /**
   * Writes everything the device missed in `conversations` (as loadCursors read them, after the
   * route was registered), then `caught_up`, then the receipts it missed.
   */
  async sync(conversations: readonly DeviceConversation[]): Promise<void> {
    if (this.out.closed) return;
    await this.catchUpAll(conversations);
    this.out.send({ type: 'caught_up' });
    // Receipts are kept for direct conversations only. None in the list (read after the route
    // was registered): a direct conversation made since has all its cursor moves relayed live.
    if (this.out.closed || !conversations.some((c) => c.direct)) return;
    for (const r of await this.deps.store.receiptState(this.userId)) {
      if (r.delivered > 0) this.out.send({ type: 'receipt', kind: 'delivered', conversationId: r.conversationId, seq: r.delivered, by: r.userId });
      if (r.read > 0) this.out.send({ type: 'receipt', kind: 'read', conversationId: r.conversationId, seq: r.read, by: r.userId });
    }
  }

  /**
   * Catches up everything the store has past this device's position in `conversations` (read
   * now if not given), e.g. after deliveries may have been lost.
   */
  async catchUpAll(conversations?: readonly DeviceConversation[]): Promise<void> {
    for (const c of conversations ?? (await this.loadCursors())) {
      if (c.lastSeq > (this.position(c.conversationId) ?? 0)) await this.catchUp(c.conversationId, c.lastSeq);
    }
  }

  /** Reads the device's conversations and cursors; positions only ever move forward. */
  async loadCursors(): Promise<DeviceConversation[]> {
    const conversations = await this.deps.store.deviceConversations(this.deviceId, this.userId);
    for (const c of conversations) {
      const p = this.place(c.conversationId);
      p.covered = Math.max(p.covered, c.delivered);
      p.acked = Math.max(p.acked, c.delivered);
    }
    return conversations;
  }

  /**
   * This device's own message was committed with `seq`: it carries nothing for the device, so
   * it counts as covered if it is the next seq. In groups the aggregate receipt is the least
   * cursor over members, the sender too: the cursor moves past the own message when nothing
   * before it is waiting for an ack.
   */
  ownSent(conversationId: string, seq: number, group: boolean): void {
    this.enqueue(async () => {
      if ((this.position(conversationId) ?? 0) !== seq - 1) return;
      const p = this.place(conversationId);
      p.covered = seq;
      if (group && p.lastAckable <= p.acked) {
        p.acked = seq;
        await this.deps.store.advanceCursor({ deviceId: this.deviceId, conversationId, delivered: seq, read: 0 });
      }
    });
  }

  /** The highest seq this device was given (or that carries nothing for it) in the conversation; undefined if it has none. */
  position(conversationId: string): number | undefined {
    return this.positions?.get(conversationId)?.covered;
  }

  /**
   * An ack or read of `seq`: the delivered cursor it moves to (0: none; see the class comment),
   * and the one before it. Delivered moves only over what this device was given.
   */
  acknowledge(conversationId: string, seq: number): { delivered: number; before: number } {
    const p = this.positions?.get(conversationId);
    const covered = p?.covered ?? 0;
    const delivered = seq > covered ? 0 : seq >= (p?.lastAckable ?? 0) ? covered : seq;
    const before = p?.acked ?? 0;
    if (p && delivered > before) p.acked = delivered;
    return { delivered, before };
  }

  /** The conversation's position, made (at 0) if it has none. */
  private place(conversationId: string): Position {
    const positions = (this.positions ??= new Map());
    let p = positions.get(conversationId);
    if (!p) positions.set(conversationId, (p = { covered: 0, lastAckable: 0, acked: 0 }));
    return p;
  }

  private async inOrder(frame: MsgFrame): Promise<void> {
    if (this.out.closed) return; // a closed session reads nothing more from the store: it syncs when it is back
    const have = this.position(frame.conversationId) ?? 0;
    if (frame.seq <= have) return;
    if (frame.seq === have + 1) {
      this.write(frame);
      return;
    }
    await this.catchUp(frame.conversationId, frame.seq);
  }

  /**
   * Writes what is stored after `covered` for this conversation, up to `until` (a seq that
   * exists: the conversation's last as the device may see it, or a live message's), in pages of
   * rows and bytes, with an `expired` frame where seqs are missing (see the class comment).
   * Before each frame it waits until the socket has room, so a backlog of large messages drains
   * at the reader's pace instead of overflowing the buffer; every round writes at least one
   * frame, and `covered` records exactly where it stopped.
   */
  private async catchUp(conversationId: string, until: number): Promise<void> {
    const p = this.place(conversationId);
    let window: Promise<MembershipWindow> | undefined;
    const windowOf = () => (window ??= this.deps.store.membershipWindow(conversationId, this.userId));
    for (;;) {
      const after = p.covered;
      if (this.out.closed) return;
      if (after >= until) break;
      const rows = await this.deps.store.fetch(conversationId, this.deviceId, this.userId, after, PAGE_ROWS, PAGE_BYTES);
      // None left: everything up to `until` was erased.
      if (rows.length === 0) await this.skipErased(conversationId, p, until, windowOf);
      for (const m of rows) {
        if (m.seq <= p.covered) continue;
        if (m.seq > p.covered + 1) await this.skipErased(conversationId, p, m.seq - 1, windowOf);
        if (this.out.closed) return;
        if (m.body === null && m.system === null) {
          p.covered = m.seq;
          continue;
        }
        await this.roomToWrite();
        if (this.out.closed) return;
        this.write(storedToFrame(m));
      }
      if (rows.length === 0 || this.out.closed) break;
    }
    // Nothing for this device since its last ack: move its cursor past the rows it skipped.
    if (p.lastAckable <= p.acked && p.covered > p.acked) {
      p.acked = p.covered;
      await this.deps.store.advanceCursor({ deviceId: this.deviceId, conversationId, delivered: p.covered, read: 0 });
    }
  }

  /**
   * Seqs `covered + 1 .. to` are not in the store. Those inside the user's membership window
   * were erased: one `expired` frame tells the device, which must acknowledge it. Those outside
   * are not the device's to see. Either way they are covered from now on.
   */
  private async skipErased(conversationId: string, p: Position, to: number, windowOf: () => Promise<MembershipWindow>): Promise<void> {
    const { joinedSeq, leftSeq } = await windowOf();
    const from = Math.max(p.covered + 1, joinedSeq);
    const last = leftSeq === null ? to : Math.min(to, leftSeq);
    if (from <= last) {
      await this.roomToWrite();
      if (this.out.closed) return;
      this.out.send({ type: 'expired', conversationId, from, to: last });
      p.lastAckable = last;
    }
    p.covered = Math.max(p.covered, to);
  }

  /** Resolves once less than SYNC_HIGH_WATER is buffered for the socket (or the session closed). */
  private async roomToWrite(): Promise<void> {
    // At most 100 ms per wait: a safety net that re-checks even if no drain event comes.
    while (!this.out.closed && this.out.bufferedAmount > SYNC_HIGH_WATER) await this.out.drained(100);
  }

  private write(frame: MsgFrame): void {
    const p = this.place(frame.conversationId);
    p.covered = frame.seq;
    p.lastAckable = frame.seq;
    this.deps.metrics.messagesDelivered.inc();
    this.out.send(frame);
  }
}
