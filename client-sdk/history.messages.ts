// The device's message history over a MessageStore: records what the client reports, applies actions (checking who may), pages messages as they now stand, and exports and imports it all.
import { sodiumReady } from '../protocol/bytes.js';
import type { Message, MessageDelete, MessageEdit, MessageReaction, ReceivedFile } from './client.types.js';
import type { FileRef } from './files.js';
import { fold, mayApply } from './history.fold.js';
import type { MessageStore, StoredEntry } from './history.js';
import { type ActionRecord, EntryCodec, type HistoryRecord, isActionRecord, type MessageRecord } from './history.records.js';

export interface MessageHistoryOptions {
  store: MessageStore;
  /** The app's history key (32 bytes), or null: bodies are stored as they are. */
  key: Uint8Array | null;
  /** A file reference, as the app gets it. */
  file(ref: FileRef): ReceivedFile;
}

/** What an action did, for the client's events. */
export type ActionEvent = { kind: 'edit'; event: MessageEdit } | { kind: 'delete'; event: MessageDelete } | { kind: 'reaction'; event: MessageReaction };

/** Messages imported per merge (and settled per query). */
const IMPORT_CHUNK = 1000;

/**
 * One device's history. Messages and actions are entries of the store, each at its own seq;
 * what a message shows (edits, reactions, deletion) is folded from the actions on it when it is
 * read (history.fold.ts), so entries can arrive in any order (an action before its message,
 * from an import) and every device converges. A delete for everyone also erases the message's
 * content and its other actions from the store, at once or when the message arrives. Changes
 * run one at a time.
 */
export class MessageHistory {
  private readonly codec: EntryCodec;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: MessageHistoryOptions) {
    this.codec = new EntryCodec(o.key);
  }

  /** Records a message the client reported (received or sent); returns it as it stands (a delete or reactions may have come first). */
  addMessage(r: MessageRecord): Promise<Message> {
    return this.serial(async () => {
      const pending = await this.actionsOn(r.conversationId, [r.id]);
      const deleted = pending.some((a) => a.action.type === 'delete' && mayApply(r, a));
      // Edits and deletes by anyone but the sender will never apply: not kept.
      const drop = pending.filter((a) => (deleted ? a.action.type !== 'delete' : !mayApply(r, a)));
      const kept = deleted ? erased(r) : r;
      await this.o.store.put([this.codec.seal(kept)]);
      await this.o.store.delete(r.conversationId, drop.map((a) => a.seq));
      return this.view(kept, pending.filter((a) => !drop.includes(a)));
    });
  }

  /**
   * Records an action; the event to report, or null when it is ignored: an edit or delete of a
   * message by someone other than its sender, anything on a deleted message, or (in a
   * disappearing conversation, `disappearing`) an action on a message this device no longer
   * holds. An action on a message not held yet is kept until it arrives; only a reaction is
   * reported then (an edit or delete cannot be checked without the message).
   */
  addAction(a: ActionRecord, disappearing: boolean): Promise<ActionEvent | null> {
    return this.serial(async () => {
      const target = await this.record(a.conversationId, a.action.target);
      if (!target) {
        if (disappearing) return null;
        await this.o.store.put([this.codec.seal(a)]);
        return a.action.type === 'reaction' ? { kind: 'reaction', event: reactionEvent(a, null) } : null;
      }
      if (!mayApply(target, a) || target.deleted) return null;
      if (a.action.type === 'delete') {
        await this.erase(target, a);
        return { kind: 'delete', event: { conversationId: a.conversationId, messageId: target.id, by: a.from, seq: a.seq, message: this.view(erased(target), []) } };
      }
      await this.o.store.put([this.codec.seal(a)]);
      const message = this.view(target, await this.actionsOn(a.conversationId, [target.id]));
      const act = a.action;
      return act.type === 'edit'
        ? { kind: 'edit', event: { conversationId: a.conversationId, messageId: target.id, by: a.from, text: act.text, seq: a.seq, message } }
        : { kind: 'reaction', event: reactionEvent(a, message) };
    });
  }

  /** A conversation's messages, newest first: seqs below `before` (all when absent), at most `limit`, each as it now stands. */
  async page(conversationId: string, options: { before?: number; limit: number }): Promise<Message[]> {
    await this.chain;
    await sodiumReady();
    const messages = (await this.o.store.page(conversationId, options)).map((e) => this.codec.open(e) as MessageRecord);
    const actions = await this.actionsOn(conversationId, messages.map((m) => m.id));
    return messages.map((m) => this.view(m, actions.filter((a) => a.action.target === m.id)));
  }

  /** One message as it now stands, or null when this device does not hold it. */
  async message(conversationId: string, id: string): Promise<Message | null> {
    await this.chain;
    const m = await this.record(conversationId, id);
    return m ? this.view(m, await this.actionsOn(conversationId, [id])) : null;
  }

  /** The held message's sender and seq (for checks before an edit or delete), or null. */
  async held(conversationId: string, id: string): Promise<Pick<MessageRecord, 'from' | 'seq' | 'deleted'> | null> {
    await this.chain;
    return this.record(conversationId, id);
  }

  /** The other user of a direct conversation, as its newest messages name it, or null. */
  async peerOf(conversationId: string): Promise<string | null> {
    await this.chain;
    await sodiumReady();
    const newest = (await this.o.store.page(conversationId, { limit: 50 })).map((e) => this.codec.open(e) as MessageRecord);
    return newest.find((m) => m.peer !== undefined)?.peer ?? null;
  }

  /** Erases disappearing messages (their time is up) and the actions on them. */
  eraseAll(messages: readonly { conversationId: string; id: string; seq: number }[]): Promise<void> {
    return this.serial(async () => {
      for (const m of messages) {
        const actions = await this.o.store.actions(m.conversationId, [m.id]);
        await this.o.store.delete(m.conversationId, [m.seq, ...actions.map((a) => a.seq)]);
      }
    });
  }

  /** Every record for an archive, but disappearing messages (and the actions on them), which stay on the device that has their timers. */
  async exportRecords(): Promise<HistoryRecord[]> {
    await this.chain;
    await sodiumReady();
    const records = (await this.o.store.exportAll()).map((e) => this.codec.open(e));
    const timed = new Set(records.filter((r): r is MessageRecord => !isActionRecord(r) && r.timer !== undefined).map((r) => `${r.conversationId}|${r.id}`));
    return records.filter((r) => !timed.has(`${r.conversationId}|${isActionRecord(r) ? r.action.target : r.id}`));
  }

  /**
   * Imports records (another device's archive), keeping every entry this device holds already
   * (by conversation and seq); a delete in either erases its message. Returns how many messages
   * the archive held.
   */
  importRecords(records: readonly HistoryRecord[]): Promise<number> {
    return this.serial(async () => {
      await sodiumReady();
      for (let i = 0; i < records.length; i += IMPORT_CHUNK) await this.o.store.merge(records.slice(i, i + IMPORT_CHUNK).map((r) => this.codec.seal(r)));
      const messages = records.filter((r): r is MessageRecord => !isActionRecord(r));
      await this.settleDeletes(messages);
      return messages.length;
    });
  }

  close(): Promise<void> {
    return this.serial(() => this.o.store.close());
  }

  /** After an import: messages with a delete by their sender (from either side) are erased. */
  private async settleDeletes(messages: readonly MessageRecord[]): Promise<void> {
    const byConversation = new Map<string, MessageRecord[]>();
    for (const m of messages) byConversation.set(m.conversationId, [...(byConversation.get(m.conversationId) ?? []), m]);
    for (const [conversationId, list] of byConversation) {
      for (let i = 0; i < list.length; i += IMPORT_CHUNK) {
        const chunk = list.slice(i, i + IMPORT_CHUNK);
        const actions = await this.actionsOn(conversationId, chunk.map((m) => m.id));
        for (const m of chunk) {
          const del = actions.find((a) => a.action.target === m.id && a.action.type === 'delete' && mayApply(m, a));
          const held = del ? await this.record(conversationId, m.id) : null;
          if (del && held && !held.deleted) await this.erase(held, del);
        }
      }
    }
  }

  /** A delete for everyone: the message's content and its other actions leave the store; the delete stays (an import must not bring the message back). */
  private async erase(target: MessageRecord, del: ActionRecord): Promise<void> {
    const others = (await this.actionsOn(target.conversationId, [target.id])).filter((a) => a.seq !== del.seq);
    await this.o.store.put([this.codec.seal(erased(target)), this.codec.seal(del)]);
    await this.o.store.delete(target.conversationId, others.map((a) => a.seq));
  }

  private async record(conversationId: string, id: string): Promise<MessageRecord | null> {
    await sodiumReady();
    const e = await this.o.store.message(conversationId, id);
    return e ? (this.codec.open(e) as MessageRecord) : null;
  }

  private async actionsOn(conversationId: string, ids: string[]): Promise<ActionRecord[]> {
    await sodiumReady();
    const entries: StoredEntry[] = ids.length === 0 ? [] : await this.o.store.actions(conversationId, ids);
    return entries.map((e) => this.codec.open(e) as ActionRecord);
  }

  /** The app's Message: the record with its actions folded in. */
  private view(m: MessageRecord, actions: readonly ActionRecord[]): Message {
    const f = fold(m, actions);
    return {
      id: m.id,
      from: m.from,
      fromDevice: m.fromDevice,
      conversationId: m.conversationId,
      ...(m.groupId ? { groupId: m.groupId } : {}),
      seq: m.seq,
      text: f.text,
      sentAt: m.sentAt,
      ...(f.file ? { file: this.o.file(f.file) } : {}),
      ...(m.timer ? { timer: m.timer } : {}),
      ...(m.expiresAt !== undefined ? { expiresAt: m.expiresAt } : {}),
      ...(m.replyTo && !f.deleted ? { replyTo: m.replyTo } : {}),
      ...(m.mentions && !f.deleted ? { mentions: m.mentions } : {}),
      ...(f.editedAt !== undefined ? { editedAt: f.editedAt } : {}),
      ...(f.deleted ? { deleted: true as const } : {}),
      ...(f.reactions.length > 0 ? { reactions: f.reactions } : {}),
    };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}

/** What stays of a message deleted for everyone: who sent it, where, when; no content. */
function erased(m: MessageRecord): MessageRecord {
  const { text: _t, file: _f, replyTo: _r, mentions: _m, ...kept } = m;
  return { ...kept, text: '', deleted: true };
}

function reactionEvent(a: ActionRecord, message: Message | null): MessageReaction {
  const act = a.action as Extract<ActionRecord['action'], { type: 'reaction' }>;
  return { conversationId: a.conversationId, messageId: act.target, by: a.from, emoji: act.emoji, added: !act.remove, seq: a.seq, message };
}
