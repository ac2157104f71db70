// The in-memory message store: the default; the history is lost when the process ends.
import type { MessageStore, StoredEntry } from './history.js';

/** One conversation's entries, with the indexes the port's reads need. */
interface Conversation {
  entries: Map<number, StoredEntry>;
  /** Seqs of messages (not actions), ascending. */
  messages: number[];
  /** Message id → seq. */
  ids: Map<string, number>;
  /** Target message id → seqs of the actions on it. */
  targets: Map<string, Set<number>>;
}

const copy = (e: StoredEntry): StoredEntry => ({ ...e, body: e.body.slice() });

/** The first index in ascending `seqs` whose value is >= `seq`. */
function lowerBound(seqs: number[], seq: number): number {
  let lo = 0;
  let hi = seqs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (seqs[mid]! < seq) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Entries per conversation in a map by seq, with a sorted array of message seqs for paging
 * (a page is a binary search and a slice) and maps by id and by target.
 * @example createClient({ url, username, password, messageStore: memoryMessageStore() })
 */
export function memoryMessageStore(): MessageStore {
  const conversations = new Map<string, Conversation>();
  const conversation = (id: string): Conversation => {
    let c = conversations.get(id);
    if (!c) conversations.set(id, (c = { entries: new Map(), messages: [], ids: new Map(), targets: new Map() }));
    return c;
  };

  const remove = (c: Conversation, seq: number): void => {
    const e = c.entries.get(seq);
    if (!e) return;
    c.entries.delete(seq);
    if (e.target === undefined) {
      c.messages.splice(lowerBound(c.messages, seq), 1);
      if (c.ids.get(e.id) === seq) c.ids.delete(e.id);
    } else {
      const set = c.targets.get(e.target)!;
      set.delete(seq);
      if (set.size === 0) c.targets.delete(e.target);
    }
  };

  const insert = (e: StoredEntry): void => {
    const c = conversation(e.conversationId);
    remove(c, e.seq);
    c.entries.set(e.seq, copy(e));
    if (e.target === undefined) {
      c.messages.splice(lowerBound(c.messages, e.seq), 0, e.seq);
      c.ids.set(e.id, e.seq);
    } else {
      let set = c.targets.get(e.target);
      if (!set) c.targets.set(e.target, (set = new Set()));
      set.add(e.seq);
    }
  };

  return {
    put: async (entries) => {
      for (const e of entries) insert(e);
    },
    merge: async (entries) => {
      for (const e of entries) if (!conversations.get(e.conversationId)?.entries.has(e.seq)) insert(e);
    },
    page: async (conversationId, { before, limit }) => {
      const c = conversations.get(conversationId);
      if (!c) return [];
      const end = before === undefined ? c.messages.length : lowerBound(c.messages, before);
      return c.messages
        .slice(Math.max(0, end - limit), end)
        .reverse()
        .map((s) => copy(c.entries.get(s)!));
    },
    message: async (conversationId, id) => {
      const c = conversations.get(conversationId);
      const seq = c?.ids.get(id);
      return seq === undefined ? undefined : copy(c!.entries.get(seq)!);
    },
    actions: async (conversationId, targets) => {
      const c = conversations.get(conversationId);
      if (!c) return [];
      const seqs = [...new Set(targets)].flatMap((t) => [...(c.targets.get(t) ?? [])]);
      return seqs.sort((a, b) => a - b).map((s) => copy(c.entries.get(s)!));
    },
    delete: async (conversationId, seqs) => {
      const c = conversations.get(conversationId);
      if (c) for (const s of seqs) remove(c, s);
    },
    exportAll: async () =>
      [...conversations.keys()]
        .sort()
        .flatMap((id) => {
          const c = conversations.get(id)!;
          return [...c.entries.keys()].sort((a, b) => a - b).map((s) => copy(c.entries.get(s)!));
        }),
    close: async () => {},
  };
}
