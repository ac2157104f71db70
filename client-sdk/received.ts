// What a received message becomes once decrypted: a Message for the app (with its disappearing timer tracked), or a conversation control applied on this device.
import type { MsgFrame } from '../protocol/frames.js';
import type { DisappearingChange, Message } from './client.types.js';
import { type Decoded, isControl } from './content.js';
import type { DisappearingSettings, DisappearingSetting } from './disappearing.js';
import type { ExpiryTimers } from './expiry.js';
import type { FileRef } from './files.js';
import type { ReceivedFile } from './client.types.js';

export interface ReceivedOptions {
  /** Decrypts and decodes a message (null: nothing for the app, e.g. a session reset). Throws when it cannot. */
  open(f: MsgFrame): Promise<Decoded | null>;
  settings: DisappearingSettings;
  timers: ExpiryTimers;
  /** A file reference, as the app gets it. */
  file(ref: FileRef): ReceivedFile;
  /** The logged-in user. */
  me(): string;
  /** A conversation's timer changed (the client's 'disappearing' event). */
  changed(e: DisappearingChange): void;
}

/**
 * One path for every decrypted message, whether it came through the socket's inbox or a push
 * (handlePush): both must do the same with it, because its keys are used once.
 */
export class ReceivedMessages {
  /** Direct conversations' other users, as messages showed them (setDisappearing may name a conversation by its id). */
  private readonly peers = new Map<string, string>();

  constructor(private readonly o: ReceivedOptions) {}

  /** The app's Message, or null when the message was a control (applied here) or nothing for the app. */
  async open(f: MsgFrame): Promise<Message | null> {
    const d = await this.o.open(f);
    if (!d) return null;
    const me = this.o.me();
    if (!f.groupId && f.from !== me) this.peers.set(f.conversationId, f.from);
    if (isControl(d)) {
      // A direct conversation's other user: the sender, or for the sender's own devices the one it names.
      const peer = f.groupId ? null : f.from !== me ? f.from : (d.to ?? null);
      await this.apply({ conversationId: f.conversationId, seconds: d.seconds, by: f.from, seq: f.seq, peer });
      return null;
    }
    if (d.timer) await this.o.timers.track({ conversationId: f.conversationId, id: f.id, seq: f.seq }, d.timer, f.from === me);
    return {
      id: f.id,
      from: f.from,
      fromDevice: f.fromDevice!,
      conversationId: f.conversationId,
      ...(f.groupId ? { groupId: f.groupId } : {}),
      seq: f.seq,
      text: d.text,
      sentAt: f.sentAt,
      ...(d.file ? { file: this.o.file(d.file) } : {}),
      ...(d.timer ? { timer: d.timer } : {}),
      ...(f.expiresAt !== undefined ? { expiresAt: f.expiresAt } : {}),
    };
  }

  /** Applies a timer change (received, or our own once the server stored it) and reports it if it is the newest. */
  async apply(s: DisappearingSetting): Promise<void> {
    if (s.peer) this.peers.set(s.conversationId, s.peer);
    if (await this.o.settings.apply(s)) this.o.changed({ conversationId: s.conversationId, seconds: s.seconds, by: s.by });
  }

  /** The other user of a direct conversation this device knows, or null. */
  async peerOf(conversationId: string): Promise<string | null> {
    return this.peers.get(conversationId) ?? (await this.o.settings.get(conversationId))?.peer ?? null;
  }
}
