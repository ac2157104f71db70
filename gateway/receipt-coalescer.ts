// Acks and reads folded per device and conversation: one cursor write and one relayed receipt per short interval.
import type { MessagesManager, Sender } from '../messaging/messages.js';
import type { MessageStore } from '../messaging/message-store.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';

/** How long acks and reads wait to be folded together. Short enough that nobody sees it. */
export const RECEIPT_INTERVAL_MS = 25;
/** After a failed cursor write, the next attempt waits this long (the store is probably down). */
const RETRY_MS = 1_000;

/** What one device told about one conversation since the last flush. */
interface Folded {
  reader: Sender;
  conversationId: string;
  /** The delivered cursor to write (0: none). */
  delivered: number;
  /** The delivered cursor moved past what was relayed before: relay a `delivered` receipt. */
  deliveredMoved: boolean;
  /** The read cursor to write and relay (0: none). */
  read: number;
}

export interface ReceiptCoalescerDeps {
  store: MessageStore;
  messages: MessagesManager;
  metrics: Metrics;
  log: Logger;
}

/**
 * One per gateway. Every `RECEIPT_INTERVAL_MS` the folded acks and reads of all its devices
 * are written as one batch of cursors (one statement), and only once that is durable are
 * their receipts relayed, all in the same turn (so routing sends them in one publish per
 * gateway). Cursors and receipt seqs only move forward, and flushes run one after another,
 * so the receipts a device gets for one conversation are in seq order and each seq at most
 * once per kind. A failed write keeps the folded values for the next flush (nothing is
 * relayed before it is durable); meanwhile the device is simply sent those messages again
 * on its next sync (at least once on the wire).
 */
export class ReceiptCoalescer {
  private pending = new Map<string, Folded>();
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: ReceiptCoalescerDeps,
    private readonly intervalMs = RECEIPT_INTERVAL_MS,
  ) {}

  /**
   * Folds an ack or read in: `delivered` is the delivered cursor it moves to (0: none) and
   * `moved` whether that passed what the device had acknowledged before; `read` the read seq
   * (0 for an ack).
   */
  add(reader: Sender, conversationId: string, delivered: number, moved: boolean, read: number): void {
    if (delivered === 0 && read === 0) return;
    this.fold({ reader, conversationId, delivered, deliveredMoved: moved, read });
    this.schedule(this.intervalMs);
  }

  /** Merges into what is pending for the same device and conversation: cursors only move forward. */
  private fold({ reader, conversationId, delivered, deliveredMoved: moved, read }: Folded): void {
    const key = `${reader.deviceId}\u0000${conversationId}`;
    const f = this.pending.get(key);
    if (f) {
      f.delivered = Math.max(f.delivered, delivered);
      f.deliveredMoved ||= moved;
      f.read = Math.max(f.read, read);
    } else {
      this.pending.set(key, { reader, conversationId, delivered, deliveredMoved: moved, read });
    }
  }

  private schedule(ms: number): void {
    if (this.timer) return;
    this.timer = setTimeout(() => void this.flush(), ms);
    this.timer.unref();
  }

  /** Writes and relays everything folded so far; resolves when done (flushes run one after another). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = [...this.pending.values()];
    this.pending = new Map();
    this.flushing = this.flushing.then(() => (batch.length > 0 ? this.write(batch) : undefined));
    return this.flushing;
  }

  private async write(batch: Folded[]): Promise<void> {
    const { store, messages, metrics, log } = this.deps;
    try {
      await Promise.all(
        batch.map((f) => store.advanceCursor({ deviceId: f.reader.deviceId, conversationId: f.conversationId, delivered: f.delivered, read: f.read })),
      );
    } catch (err) {
      metrics.backendFailures.inc({ backend: 'sql', operation: 'cursors' });
      log.error({ err, cursors: batch.length }, 'cursor write failed; retrying with the next flush');
      for (const f of batch) this.fold(f);
      // The store is probably down: the next attempt (with whatever came meanwhile) waits longer.
      clearTimeout(this.timer);
      this.timer = undefined;
      this.schedule(RETRY_MS);
      return;
    }
    await Promise.all(
      batch.flatMap((f) => [
        f.deliveredMoved && f.delivered > 0 ? messages.receipt(f.reader, 'delivered', f.conversationId, f.delivered) : undefined,
        f.read > 0 ? messages.receipt(f.reader, 'read', f.conversationId, f.read) : undefined,
      ]).map((p) =>
        p?.catch((err: unknown) => {
          // Receipts are ephemeral: the other side reads the cursors on its next sync.
          metrics.backendFailures.inc({ backend: 'broker', operation: 'receipt' });
          log.error({ err }, 'receipt relay failed');
        }),
      ),
    );
  }
}
