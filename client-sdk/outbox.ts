// The SDK's outbox: sends wait here, go out in order within an in-flight window, and are resent with the same id until the server acknowledges them.
import type { ClientFrame, ErrorFrame, ServerFrame } from '../protocol/frames.js';
import type { SendResult } from './client.types.js';
import { ParleyError } from './http.js';
import { type Clock, systemClock } from './clock.js';

/** A frame that carries a message (what the outbox sends). */
export type SendFrame = Extract<ClientFrame, { type: 'send' | 'group.send' }>;

/** One send, from `enqueue` until the server acknowledges it (`sent`) or refuses it for good. */
export interface OutboxEntry {
  id: string;
  /** A user id, or a group id when `group` is set. */
  to: string;
  group: boolean;
  plaintext: Uint8Array;
  /** Set for a control message (session_reset, sender_key_request) to this one device of `to` (the others get an empty body). */
  controlFor?: string;
  /** Set for content for this one device of `to` only (a history offer to another device of ours; the others get an empty body). */
  forDevice?: string;
  /** A disappearing message's timer (seconds): its frame asks the server to erase it that long after it is sealed (`expiresAt`). */
  timer?: number;
  /** Group sends: the devices this frame distributes our sender key to (they hold it once it is acknowledged). */
  keyedDevices?: string[];
  /** Group sends: the id of the sender key it was made with. */
  keyId?: number;
  /** The encrypted frame, kept for resends; dropped when the recipients' devices changed. */
  frame?: SendFrame;
  inFlight: boolean;
}

/** Error codes after which the same request may succeed later. (`internal` is a server bug: not retried.) */
export const TEMPORARY = new Set(['unavailable', 'rate_limited']);

export interface OutboxOptions {
  /** Encrypts an entry for its recipients' current devices (may set `keyedDevices` and `keyId`). */
  encrypt(entry: OutboxEntry): Promise<SendFrame>;
  /** Puts a frame on the wire; false when not connected. */
  send(frame: SendFrame): boolean;
  /** Whether the server has said `ready` on the current connection. */
  isReady(): boolean;
  /** The server's frame size limit (from `ready`). */
  maxPayloadBytes(): number;
  /** The server answered `devices_changed` for this entry: forget the device lists it was encrypted for. */
  devicesChanged(entry: OutboxEntry): void;
  /** The server acknowledged this entry. */
  acknowledged(entry: OutboxEntry, result: SendResult): void;
  /** Unacknowledged sends allowed on the wire at once. Default 64. */
  maxInFlight?: number;
  clock?: Clock;
  newId?: () => string;
}

/**
 * Sends in the order they were made: at most `maxInFlight` unacknowledged frames on the wire,
 * the rest waiting. After a reconnect every unacknowledged send goes out again with its id (the
 * server stores it once). `devices_changed` re-encrypts for the new device list; `rate_limited`
 * and `unavailable` hold the whole outbox for the server's `retryAfterMs` (so order is kept);
 * any other error rejects that send.
 */
export class Outbox {
  private readonly entries = new Map<string, OutboxEntry & { resolve(r: SendResult): void; reject(e: ParleyError): void }>();
  private pumping: Promise<void> = Promise.resolve();
  private pausedUntil = 0;
  private resumeTimer: unknown = undefined;
  private readonly clock: Clock;

  constructor(private readonly options: OutboxOptions) {
    this.clock = options.clock ?? systemClock;
  }

  /** Sends waiting or unacknowledged. */
  get size(): number {
    return this.entries.size;
  }

  /** Sends on the wire without an answer yet. */
  get inFlight(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.inFlight) n++;
    return n;
  }

  /** Queues a send; resolves with the server's acknowledgement, rejects when it is refused for good. */
  enqueue(to: string, group: boolean, plaintext: Uint8Array, extra: Pick<OutboxEntry, 'controlFor' | 'forDevice' | 'timer'> = {}): Promise<SendResult> {
    return new Promise<SendResult>((resolve, reject) => {
      const id = this.options.newId?.() ?? crypto.randomUUID();
      this.entries.set(id, { id, to, group, plaintext, ...extra, inFlight: false, resolve, reject });
      void this.pump();
    });
  }

  /** The connection closed: whatever was on the wire goes out again after the next `ready`. */
  disconnected(): void {
    for (const e of this.entries.values()) e.inFlight = false;
  }

  /** The client is closing: no timer of the outbox keeps the process alive (sends stay queued for a later connect). */
  close(): void {
    this.clock.clearTimeout(this.resumeTimer);
    this.resumeTimer = undefined;
  }

  /** The server acknowledged a send. */
  onSent(f: Extract<ServerFrame, { type: 'sent' }>): void {
    const e = this.entries.get(f.id);
    if (!e) return;
    this.entries.delete(f.id);
    const result = { id: f.id, conversationId: f.conversationId, seq: f.seq, sentAt: f.sentAt };
    this.options.acknowledged(e, result);
    e.resolve(result);
    void this.pump();
  }

  /** An error frame: true when it answered one of our sends (and was handled here). */
  onError(f: ErrorFrame): boolean {
    const entry = f.ref ? this.entries.get(f.ref) : undefined;
    if (!entry) return false;
    if (f.code === 'devices_changed') {
      // Someone added or removed a device (or a group member): refetch and encrypt again.
      this.options.devicesChanged(entry);
      entry.frame = undefined;
      entry.inFlight = false;
      void this.pump();
      return true;
    }
    if (f.temporary && TEMPORARY.has(f.code)) {
      entry.inFlight = false;
      this.pause(f.retryAfterMs ?? 500);
      return true;
    }
    this.entries.delete(entry.id);
    entry.reject(new ParleyError(f.code, f.message, undefined, f.details));
    void this.pump();
    return true;
  }

  /** Sends what the window allows, in order; one pass at a time. Call it after `ready`. */
  pump(): Promise<void> {
    this.pumping = this.pumping.then(() => this.pumpOnce());
    return this.pumping;
  }

  private pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.clock.now() + ms);
    this.clock.clearTimeout(this.resumeTimer);
    this.resumeTimer = undefined;
    this.resumeLater();
  }

  /** Pumps again once the pause is over. (A timer may fire a little before the clock says so: then it waits again.) */
  private resumeLater(): void {
    if (this.resumeTimer !== undefined) return;
    this.resumeTimer = this.clock.setTimeout(() => {
      this.resumeTimer = undefined;
      void this.pump();
    }, Math.max(1, this.pausedUntil - this.clock.now()));
  }

  private async pumpOnce(): Promise<void> {
    const max = this.options.maxInFlight ?? 64;
    let inFlight = this.inFlight;
    for (const entry of this.entries.values()) {
      if (this.clock.now() < this.pausedUntil) {
        this.resumeLater();
        return;
      }
      if (!this.options.isReady() || inFlight >= max) return;
      if (entry.inFlight) continue;
      entry.inFlight = true;
      inFlight++;
      try {
        entry.frame ??= await this.options.encrypt(entry);
      } catch (err) {
        const e = err instanceof ParleyError ? err : new ParleyError('invalid', (err as Error).message);
        if (TEMPORARY.has(e.code)) {
          // The server is unreachable or busy: keep the send, try again later (or on reconnect).
          entry.inFlight = false;
          this.pause(500);
          return;
        }
        this.entries.delete(entry.id);
        inFlight--;
        entry.reject(e);
        continue;
      }
      if (!this.options.isReady()) {
        entry.inFlight = false;
        return;
      }
      if (JSON.stringify(entry.frame).length > this.options.maxPayloadBytes()) {
        // The server would close the connection (1009) and the resend would do it again.
        this.entries.delete(entry.id);
        inFlight--;
        entry.reject(new ParleyError('too_large', 'message too large for this server'));
        continue;
      }
      if (!this.options.send(entry.frame)) {
        entry.inFlight = false;
        return;
      }
    }
  }
}
