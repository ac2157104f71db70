// The message store port: where a device keeps the messages it decrypted (history lives on the device), and the layout a browser app gives it over IndexedDB.

/**
 * One stored entry: a message, or an action on one (an edit, a delete, a reaction), which has
 * its own seq. What the SDK needs to index stays plain: the conversation, the seq, the
 * message's id, the id of the message an action applies to (`target`) and the time the server
 * stored it. Everything else (sender, text, file keys, edits, emoji) is in `body`, which the
 * SDK encrypts when the app gives it a history key (history.records.ts): a store never sees it.
 */
export interface StoredEntry {
  conversationId: string;
  seq: number;
  /** The message's id (the sender's client message id). */
  id: string;
  /** For an action: the id of the message it applies to (in the same conversation); absent for a message. */
  target?: string;
  /** Epoch ms, as the server stamped it. */
  sentAt: number;
  body: Uint8Array;
}

/**
 * Where one device keeps its message history, between runs. Apps choose it
 * (`createClient({ messageStore })`): `memoryMessageStore()` (the default, lost when the
 * process ends) or, in Node, `openPgliteMessageStore(dir)` (client-sdk/history.pglite.ts); a
 * browser app implements it over IndexedDB (below). Contract:
 * - An entry is keyed by (conversationId, seq). `put` stores entries, replacing any held at
 *   the same key; `merge` stores only those not held (an import never overwrites). Both apply
 *   all their entries or none, and are durable when they resolve; calls apply in call order.
 * - `page` returns a conversation's messages (entries without `target`) with seq below
 *   `before` (all when absent), the newest first, at most `limit`.
 * - `message` finds a message (not an action) of the conversation by id; `actions` returns the
 *   actions on the given message ids, ascending seq.
 * - `delete` removes entries by seq (absent ones are no error).
 * - `exportAll` returns every entry, by conversation then ascending seq.
 * - Returned entries are the caller's to modify. `close` releases the store; nothing after it.
 * - One store belongs to one device and one client at a time.
 *
 * **IndexedDB** (a browser app's store, same contract): two object stores, `messages` and
 * `actions`, both with keyPath `['conversationId', 'seq']`; `messages` has an index `byId` on
 * `['conversationId', 'id']`, `actions` an index `byTarget` on `['conversationId', 'target']`.
 * `put`/`merge`/`delete` run in one `readwrite` transaction over both stores (`merge` uses
 * `add` and ignores ConstraintError); `page` opens a cursor on `messages` over
 * `IDBKeyRange.bound([c, 0], [c, before ?? Infinity], false, true)` with direction `'prev'`
 * and stops after `limit`; `actions` reads `byTarget` once per target id. Bodies are stored as
 * they come (Uint8Array): give the client a `historyKey` and they are ciphertext.
 */
export interface MessageStore {
  put(entries: StoredEntry[]): Promise<void>;
  merge(entries: StoredEntry[]): Promise<void>;
  page(conversationId: string, options: { before?: number; limit: number }): Promise<StoredEntry[]>;
  message(conversationId: string, id: string): Promise<StoredEntry | undefined>;
  actions(conversationId: string, targets: readonly string[]): Promise<StoredEntry[]>;
  delete(conversationId: string, seqs: readonly number[]): Promise<void>;
  exportAll(): Promise<StoredEntry[]>;
  close(): Promise<void>;
}
