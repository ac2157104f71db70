// A message as it stands after the actions on it: edits and a delete by its sender only, reactions by anyone, in seq order.
import type { Reaction } from './client.types.js';
import type { FileRef } from './files.js';
import type { ActionRecord, MessageRecord } from './history.records.js';

/** What the actions change of a message. */
export interface Folded {
  text: string;
  file?: FileRef;
  editedAt?: number;
  deleted?: true;
  reactions: Reaction[];
}

/**
 * Whether an action may apply to this message: an edit or a delete only by the message's own
 * sender (anyone else's is forged or a mistake, and ignored), a reaction by anyone who could
 * send it into the conversation.
 */
export function mayApply(m: Pick<MessageRecord, 'from'>, a: ActionRecord): boolean {
  return a.action.type === 'reaction' || a.from === m.from;
}

/** The message with `actions` (any order) applied in seq order. Every device holding the same entries folds them to the same result. */
export function fold(m: MessageRecord, actions: readonly ActionRecord[]): Folded {
  const valid = actions.filter((a) => a.action.target === m.id && mayApply(m, a)).sort((x, y) => x.seq - y.seq);
  if (m.deleted || valid.some((a) => a.action.type === 'delete')) return { text: '', deleted: true, reactions: [] };
  const out: Folded = { text: m.text, ...(m.file ? { file: m.file } : {}), reactions: [] };
  const reactions = new Map<string, string[]>();
  for (const a of valid) {
    const act = a.action;
    if (act.type === 'edit') {
      out.text = act.text;
      out.editedAt = a.sentAt;
    } else if (act.type === 'reaction') {
      const users = (reactions.get(act.emoji) ?? []).filter((u) => u !== a.from);
      if (!act.remove) users.push(a.from);
      if (users.length > 0) reactions.set(act.emoji, users);
      else reactions.delete(act.emoji);
    }
  }
  out.reactions = [...reactions].map(([emoji, users]) => ({ emoji, users }));
  return out;
}
