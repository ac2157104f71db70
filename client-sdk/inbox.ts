// The SDK's inbox: messages and expired ranges handled one at a time in arrival order, each seq once per conversation, acks and reads batched, receipts deduplicated.
import type { ClientFrame, MsgFrame, ServerFrame } from '../protocol/frames.js';
import type { Receipt } from './client.types.js';
import { type Clock, systemClock } from './clock.js';
import type { GroupReceipt } from './groups.js';

export interface InboxOptions {
  /** Decrypts and reports a new message (one not seen before in its conversation). Errors are the handler's to report. */
  handle(f: MsgFrame): Promise<void>;
  /** Puts a frame on the wire; false when not connected. */
  send(frame: Extract<ClientFrame, { type: 'ack' | 'read' }>): boolean;
  /** A handler failed in a way it did not report itself. */
  failed(err: unknown): void;
  /**
   * Whether this message was already reported outside the socket (handlePush, by this client
   * or another over the same key store): then it is not handled again (its keys were used
   * once), only acknowledged. Default: never.
   */
  handledElsewhere?(conversationId: string, seq: number): Promise<boolean>;
  /** An ack for everything up to `seq` went on the wire. */
  acked?(conversationId: string, seq: number): void;
  /** Seqs `from`..`to` were erased on the server before this device got them (an `expired` frame, in order). */
  expired?(range: { conversationId: string; from: number; to: number }): void | Promise<void>;
  /** How long acks wait to be sent together. Default 10 ms. */
  ackDelayMs?: number;
  clock?: Clock;
}

/**
 * Messages are handled strictly one after another, in the order the server sent them (its
 * per-conversation seq order); a seq at or below the last one handled in its conversation is a
 * resend and is skipped, but acknowledged again (the server resent it because it had no ack).
 * A seq that handlePush already reported (`handledElsewhere`) is skipped the same way.
 * Acks are sent after the handler ran, the highest seq per conversation, at most every
 * `ackDelayMs`; reads wait for a connection and go out the highest per conversation.
 */
export class Inbox {
  private readonly lastSeq = new Map<string, number>();
  private readonly pendingAcks = new Map<string, number>();
  private readonly pendingReads = new Map<string, number>();
  private readonly receiptsSeen = new Map<string, number>();
  private ackTimer: unknown = undefined;
  private chain: Promise<void> = Promise.resolve();
  private readonly clock: Clock;

  constructor(private readonly options: InboxOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /** A message from the server: handled after those before it. */
  onMessage(f: MsgFrame): void {
    this.after(async () => {
      if ((this.lastSeq.get(f.conversationId) ?? 0) < f.seq) {
        this.lastSeq.set(f.conversationId, f.seq);
        if (!(await this.options.handledElsewhere?.(f.conversationId, f.seq))) await this.options.handle(f);
      }
      this.ack(f.conversationId, f.seq);
    });
  }

  /**
   * An `expired` range, in its place among the messages: the seqs are skipped (as handled),
   * reported once, and acknowledged, so the server moves this device's cursor past them.
   */
  onExpired(f: Extract<ServerFrame, { type: 'expired' }>): void {
    this.after(async () => {
      if ((this.lastSeq.get(f.conversationId) ?? 0) < f.to) {
        this.lastSeq.set(f.conversationId, f.to);
        await this.options.expired?.({ conversationId: f.conversationId, from: f.from, to: f.to });
      }
      this.ack(f.conversationId, f.to);
    });
  }

  /**
   * Runs `fn` for a message that came outside the socket (a push), in turn with the socket's
   * messages: not when this inbox handled that seq already (null then). It does not count as
   * handled here: seqs before it may still be on their way, and the sync will bring it again
   * (the caller records it for `handledElsewhere`).
   */
  outOfBand<T>(f: MsgFrame, fn: () => Promise<T>): Promise<T | null> {
    return new Promise<T | null>((resolve, reject) => {
      this.after(async () => {
        if ((this.lastSeq.get(f.conversationId) ?? 0) >= f.seq) return resolve(null);
        await fn().then(resolve, reject);
      });
    });
  }

  private ack(conversationId: string, seq: number): void {
    this.pendingAcks.set(conversationId, Math.max(seq, this.pendingAcks.get(conversationId) ?? 0));
    this.ackTimer ??= this.clock.setTimeout(() => this.flushAcks(), this.options.ackDelayMs ?? 10);
  }

  /** Runs `fn` once every message that arrived before it was handled (e.g. 'caught_up'). */
  after(fn: () => void | Promise<void>): void {
    this.chain = this.chain.then(fn).catch((err: unknown) => this.options.failed(err));
  }

  /** Resolves once everything queued so far was handled. */
  idle(): Promise<void> {
    return this.chain;
  }

  /** Marks everything up to `seq` read; sent now if connected, else after the next `ready`. */
  markRead(conversationId: string, seq: number): void {
    this.pendingReads.set(conversationId, Math.max(seq, this.pendingReads.get(conversationId) ?? 0));
    this.flushReads();
  }

  /** Sends the pending acks (those the wire refuses stay pending). */
  flushAcks(): void {
    this.clock.clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    for (const [conversationId, seq] of this.pendingAcks) {
      if (!this.options.send({ type: 'ack', conversationId, seq })) continue;
      this.pendingAcks.delete(conversationId);
      this.options.acked?.(conversationId, seq);
    }
  }

  /** Sends the pending reads (those the wire refuses stay pending). */
  flushReads(): void {
    for (const [conversationId, seq] of this.pendingReads) {
      if (this.options.send({ type: 'read', conversationId, seq })) this.pendingReads.delete(conversationId);
    }
  }

  /** A receipt, or null when it says nothing new (a resend, or older than one already reported). */
  receipt(f: Extract<ServerFrame, { type: 'receipt' }>): Receipt | null {
    const k = `${f.conversationId}|${f.by}|${f.kind}`;
    if ((this.receiptsSeen.get(k) ?? 0) >= f.seq) return null;
    this.receiptsSeen.set(k, f.seq);
    return { kind: f.kind, conversationId: f.conversationId, seq: f.seq, by: f.by };
  }

  /** A group's aggregate receipt, or null when it is not ahead of the last one (ordered by delivered, then read). */
  groupReceipt(f: Extract<ServerFrame, { type: 'group_receipt' }>): GroupReceipt | null {
    const k = `${f.conversationId}|group`;
    const packed = f.delivered * 2 ** 26 + f.read;
    if (packed <= (this.receiptsSeen.get(k) ?? 0)) return null;
    this.receiptsSeen.set(k, packed);
    return { groupId: f.conversationId, delivered: f.delivered, read: f.read };
  }
}
