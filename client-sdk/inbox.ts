// The SDK's inbox: messages handled one at a time in arrival order, each seq once per conversation, acks and reads batched, receipts deduplicated.
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
  /** How long acks wait to be sent together. Default 10 ms. */
  ackDelayMs?: number;
  clock?: Clock;
}

/**
 * Messages are handled strictly one after another, in the order the server sent them (its
 * per-conversation seq order); a seq at or below the last one handled in its conversation is a
 * resend and is skipped, but acknowledged again (the server resent it because it had no ack).
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
        await this.options.handle(f);
      }
      this.pendingAcks.set(f.conversationId, Math.max(f.seq, this.pendingAcks.get(f.conversationId) ?? 0));
      this.ackTimer ??= this.clock.setTimeout(() => this.flushAcks(), this.options.ackDelayMs ?? 10);
    });
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
      if (this.options.send({ type: 'ack', conversationId, seq })) this.pendingAcks.delete(conversationId);
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
