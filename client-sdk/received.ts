// What a received message becomes once decrypted: a Message for the app (kept in the history, its disappearing timer tracked), an action on an earlier message, or a control applied on this device.
import type { MsgFrame } from '../protocol/frames.js';
import type { DisappearingChange, Message } from './client.types.js';
import { type Decoded, type HistoryOffer, isAction, isContent } from './content.js';
import type { DisappearingSettings, DisappearingSetting } from './disappearing.js';
import type { ExpiryTimers } from './expiry.js';
import type { ActionEvent, MessageHistory } from './history.messages.js';

export interface ReceivedOptions {
  /** Decrypts and decodes a message (null: nothing for the app, e.g. a session reset). Throws when it cannot. */
  open(f: MsgFrame): Promise<Decoded | null>;
  settings: DisappearingSettings;
  timers: ExpiryTimers;
  history: MessageHistory;
  /** The logged-in user. */
  me(): string;
  /** Whether the user blocks `userId` (their group messages are dropped: the server delivers a group's one ciphertext to every member). */
  blocked(userId: string): boolean;
  /** A conversation's timer changed (the client's 'disappearing' event). */
  changed(e: DisappearingChange): void;
  /** An action applied (or a tombstone): the client's 'edit', 'delete' or 'reaction' event. */
  acted(e: ActionEvent): void;
  /** Another device offered its history: the client checks who sent it before it imports anything. */
  offered(f: MsgFrame, offer: HistoryOffer): void;
}

/**
 * One path for every decrypted message, whether it came through the socket's inbox or a push
 * (handlePush): both must do the same with it, because its keys are used once.
 */
export class ReceivedMessages {
  /** Direct conversations' other users, as messages showed them (setDisappearing may name a conversation by its id). */
  private readonly peers = new Map<string, string>();

  constructor(private readonly o: ReceivedOptions) {}

  /**
   * The app's Message (now in the history), or null when the message was an action, a control
   * or a tombstone (applied here), nothing for the app, or from a group member the user blocks.
   */
  async open(f: MsgFrame): Promise<Message | null> {
    if (f.groupId && this.o.blocked(f.from)) return this.dropped(f);
    if (f.deleted) return this.tombstone(f);
    const d = await this.o.open(f);
    if (!d) return null;
    const me = this.o.me();
    if (!f.groupId && f.from !== me) this.peers.set(f.conversationId, f.from);
    const meta = { conversationId: f.conversationId, seq: f.seq, id: f.id, sentAt: f.sentAt, from: f.from, fromDevice: f.fromDevice! };
    if (isContent(d)) {
      if (d.timer) await this.o.timers.track({ conversationId: f.conversationId, id: f.id, seq: f.seq }, d.timer, f.from === me);
      const peer = f.groupId ? undefined : f.from !== me ? f.from : this.peers.get(f.conversationId);
      return this.o.history.addMessage({
        ...meta,
        ...(f.groupId ? { groupId: f.groupId } : {}),
        ...(peer ? { peer } : {}),
        text: d.text,
        ...(d.file ? { file: d.file } : {}),
        ...(d.timer ? { timer: d.timer } : {}),
        ...(f.expiresAt !== undefined ? { expiresAt: f.expiresAt } : {}),
        ...(d.replyTo ? { replyTo: d.replyTo } : {}),
        ...(d.mentions ? { mentions: d.mentions } : {}),
      });
    }
    if (isAction(d)) {
      const e = await this.o.history.addAction({ ...meta, action: d }, f.expiresAt !== undefined);
      if (e) this.o.acted(e);
    } else if (d.type === 'disappearing') {
      // A direct conversation's other user: the sender, or for the sender's own devices the one it names.
      const peer = f.groupId ? null : f.from !== me ? f.from : (d.to ?? null);
      await this.apply({ conversationId: f.conversationId, seconds: d.seconds, by: f.from, seq: f.seq, peer });
    } else {
      this.o.offered(f, d);
    }
    return null;
  }

  /** Applies a timer change (received, or our own once the server stored it) and reports it if it is the newest. */
  async apply(s: DisappearingSetting): Promise<void> {
    if (s.peer) this.peers.set(s.conversationId, s.peer);
    if (await this.o.settings.apply(s)) this.o.changed({ conversationId: s.conversationId, seconds: s.seconds, by: s.by });
  }

  /** Remembers a direct conversation's other user (from a send to them). */
  sentTo(conversationId: string, userId: string): void {
    this.peers.set(conversationId, userId);
  }

  /** The other user of a direct conversation this device knows, or null. */
  async peerOf(conversationId: string): Promise<string | null> {
    return this.peers.get(conversationId) ?? (await this.o.settings.get(conversationId))?.peer ?? (await this.o.history.peerOf(conversationId));
  }

  /**
   * A group message from a member the user blocks: no message, action or tombstone for the app
   * or the history, and no error. It is still decrypted (and its content discarded) so that the
   * group's keys stay in step: the sender key that came with it, and the key's chain, which
   * after an unblock would otherwise have to skip (and keep keys for) every message dropped.
   * A timer change still applies: it is the group's, like a membership change.
   */
  private async dropped(f: MsgFrame): Promise<null> {
    if (f.deleted) return null;
    const d = await this.o.open(f).catch(() => null);
    if (d && !isContent(d) && d.type === 'disappearing') await this.apply({ conversationId: f.conversationId, seconds: d.seconds, by: f.from, seq: f.seq, peer: null });
    return null;
  }

  /**
   * The sender deleted this message for everyone before this device fetched it: the seq is
   * seen (the inbox acknowledges it), the history shows a deleted message, the app hears 'delete'.
   */
  private async tombstone(f: MsgFrame): Promise<null> {
    await this.o.history.addMessage({
      conversationId: f.conversationId,
      seq: f.seq,
      id: f.id,
      sentAt: f.sentAt,
      from: f.from,
      fromDevice: f.fromDevice ?? '',
      ...(f.groupId ? { groupId: f.groupId } : f.from !== this.o.me() ? { peer: f.from } : {}),
      text: '',
      deleted: true,
    });
    this.o.acted({ kind: 'delete', event: { conversationId: f.conversationId, messageId: f.id, by: f.from, seq: f.seq, message: null } });
    return null;
  }
}
