// One sender/recipient pair over two sockets (WebSocket or Socket.IO): writes prebuilt `send` frames, reports deliveries, and acks the way the SDK does.
import { type EndAddress, type EndSocket, openEnd } from './pair-sockets.js';

/** How to reach one pair's two ends, and what a `send` frame looks like around its client id. */
export interface PairEndpoints {
  sender: EndAddress;
  recipient: EndAddress;
  /** The send frame is `frameHead + id + frameTail`. */
  frameHead: string;
  frameTail: string;
  /** Frame types each socket must receive before the pair is ready ('ready', and for Parley 'caught_up'). */
  setupFrames: string[];
  /** Acknowledge `msg` frames (coalesced per conversation, 10 ms, like the SDK). */
  ack: boolean;
}

/** What a pair reports to whoever drives it. `at` is performance.now() when the frame arrived. */
export interface PairEvents {
  delivered(pair: Pair, id: string, at: number): void;
  accepted(pair: Pair, id: string): void;
  failed(pair: Pair, ref: string | undefined, code: string, message: string): void;
  closed(pair: Pair, end: 'sender' | 'recipient', code: number, reason: string): void;
}

/** The fields of server frames (and of relayed send frames) the bench looks at. */
export interface Frame {
  type?: string;
  id?: string;
  conversationId?: string;
  seq?: number;
  code?: string;
  message?: string;
  ref?: string;
}

const SETUP_TIMEOUT_MS = 30_000;
const ACK_DELAY_MS = 10;

export class Pair {
  /** Send frames written so far (the next client id is derived from it). */
  sent = 0;
  /** Sent and not yet delivered or failed. */
  inFlight = 0;
  /** Resolves once both ends received their setup frames. */
  readonly ready: Promise<void>;
  private readonly sender: EndSocket;
  private readonly recipient: EndSocket;
  private readonly pendingAcks = new Map<string, number>();
  private ackTimer: NodeJS.Timeout | undefined;
  private closing = false;

  constructor(
    readonly index: number,
    private readonly ends: PairEndpoints,
    private readonly events: PairEvents,
  ) {
    this.recipient = openEnd(ends.recipient);
    this.sender = openEnd(ends.sender);
    this.ready = Promise.all([
      this.watch(this.recipient, 'recipient', (f, at) => this.onRecipientFrame(f, at)),
      this.watch(this.sender, 'sender', (f) => this.onSenderFrame(f)),
    ]).then(() => undefined);
  }

  /** Writes one send frame with client id `id`. */
  send(id: string): void {
    this.sender.send(this.ends.frameHead + id + this.ends.frameTail);
    this.sent++;
    this.inFlight++;
  }

  close(): void {
    this.closing = true;
    this.flushAcks();
    this.sender.close();
    this.recipient.close();
  }

  /** Parses every frame on `ws` and resolves once its setup frames arrived; rejects if it fails first. */
  private watch(socket: EndSocket, end: 'sender' | 'recipient', onFrame: (f: Frame, at: number) => void): Promise<void> {
    const waiting = new Set(this.ends.setupFrames);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pair ${this.index} ${end}: no ${[...waiting].join('/')} within ${SETUP_TIMEOUT_MS} ms`)), SETUP_TIMEOUT_MS);
      socket.onText((text, at) => {
        let f: Frame;
        try {
          f = JSON.parse(text) as Frame;
        } catch {
          this.events.failed(this, undefined, 'malformed', `pair ${this.index} ${end} received malformed JSON`);
          return;
        }
        if (waiting.size > 0 && f.type !== undefined && waiting.delete(f.type) && waiting.size === 0) {
          clearTimeout(timer);
          resolve();
        }
        onFrame(f, at);
      });
      socket.onError((err) => {
        clearTimeout(timer);
        reject(new Error(`pair ${this.index} ${end}: ${err.message}`));
      });
      socket.onClose((code, reason) => {
        clearTimeout(timer);
        if (waiting.size > 0) reject(new Error(`pair ${this.index} ${end}: closed during setup (${code} ${reason})`));
        else if (!this.closing) this.events.closed(this, end, code, reason);
      });
    });
  }

  private onRecipientFrame(f: Frame, at: number): void {
    if (f.type === 'msg') {
      this.events.delivered(this, f.id ?? '', at);
      if (this.ends.ack && f.conversationId !== undefined && f.seq !== undefined) this.queueAck(f.conversationId, f.seq);
    } else if (f.type === 'send') {
      this.events.delivered(this, f.id ?? '', at); // the raw relay forwards the send frame as it is
    } else if (f.type === 'error') {
      this.events.failed(this, f.ref, f.code ?? 'unknown', `recipient: ${f.message ?? ''}`);
    }
  }

  private onSenderFrame(f: Frame): void {
    if (f.type === 'sent') this.events.accepted(this, f.id ?? '');
    else if (f.type === 'error') this.events.failed(this, f.ref, f.code ?? 'unknown', `sender: ${f.message ?? ''}`);
  }

  private queueAck(conversationId: string, seq: number): void {
    this.pendingAcks.set(conversationId, Math.max(seq, this.pendingAcks.get(conversationId) ?? 0));
    this.ackTimer ??= setTimeout(() => this.flushAcks(), ACK_DELAY_MS);
  }

  private flushAcks(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    if (!this.recipient.open) return;
    for (const [conversationId, seq] of this.pendingAcks) this.recipient.send(JSON.stringify({ type: 'ack', conversationId, seq }));
    this.pendingAcks.clear();
  }
}
