// The SDK's public types: what a client emits, returns and is configured with.
import type { IdentityChange, SessionReset } from './e2e.session-manager.js';
import type { KeyStore } from './e2e.store.js';
import type { MessageStore } from './history.js';
import type { Progress } from './files.js';
import type { GroupEvent, GroupReceipt } from './groups.js';
import type { ParleyError } from './http.js';
import type { ReceiptKind } from '../protocol/frames.js';
import type { DeviceEvent } from './trust.js';
import type { Clock } from './clock.js';
import type { SocketCtor, TransportChoice, TransportName } from './socket.js';

export type { SocketCtor, SocketLike, TransportChoice, TransportName } from './socket.js';

export interface Message {
  id: string;
  from: string;
  fromDevice: string;
  conversationId: string;
  /** Set for group messages (the group's id, which is also its conversation id). */
  groupId?: string;
  seq: number;
  text: string;
  sentAt: number;
  /** Present when the message carries a file. */
  file?: ReceivedFile;
  /**
   * A disappearing message: seconds after it was read (markRead, or a read on another of your
   * devices) the SDK erases its copy and emits 'expire'; the app deletes its own then.
   */
  timer?: number;
  /** A disappearing message: when the server erases it (epoch ms), whether or not every device fetched it. */
  expiresAt?: number;
  /** A reply: the id of the message it quotes (in this conversation; `client.message(conversationId, id)` finds it if this device holds it). */
  replyTo?: string;
  /** Users mentioned in the text (user ids). */
  mentions?: string[];
  /** Edited by its sender (history and action events): `text` is the latest edit's, made at this time (epoch ms). */
  editedAt?: number;
  /** Deleted for everyone by its sender: `text` is '' and nothing else of it is kept. */
  deleted?: true;
  /** Reactions (history and action events), each emoji with the users who reacted with it, in the order they did. */
  reactions?: Reaction[];
}

export interface Reaction {
  emoji: string;
  users: string[];
}

/** Sending options for text. */
export interface TextOptions {
  /** Users mentioned in the text (user ids), carried inside the encryption. */
  mentions?: string[];
}

/** A message's sender changed its text (only the sender can: edits by anyone else are ignored). `seq`: the edit's own. */
export interface MessageEdit {
  conversationId: string;
  messageId: string;
  by: string;
  text: string;
  seq: number;
  /** The message as this device holds it now, with the edit applied. */
  message: Message;
}

/**
 * A message was deleted for everyone by its sender (deletes by anyone else are ignored). `seq`:
 * the delete's own; for a tombstone (the message was erased before this device fetched it) the
 * deleted message's, and `message` is null.
 */
export interface MessageDelete {
  conversationId: string;
  messageId: string;
  by: string;
  seq: number;
  message: Message | null;
}

/** A member added (`added`) or took back a reaction. `message`: with the reactions now, null when this device does not hold it. */
export interface MessageReaction {
  conversationId: string;
  messageId: string;
  by: string;
  emoji: string;
  added: boolean;
  seq: number;
  message: Message | null;
}

/** Another device of yours handed this one its history (sendHistory there): its archive held `messages` messages, now in this device's history (where this device held one already, its own copy stays). */
export interface HistoryImported {
  fromDevice: string;
  messages: number;
}

/** A conversation's disappearing-message timer changed (`seconds` null: off), set by member `by`. */
export interface DisappearingChange {
  conversationId: string;
  seconds: number | null;
  by: string;
}

/** A file in a received message. Its key and hash stay inside the SDK. */
export interface ReceivedFile {
  id: string;
  name: string;
  /** Media type as the sender gave it ('' when unknown). */
  type: string;
  /** Plaintext bytes. */
  size: number;
  /**
   * Fetches, checks and decrypts the file: the plaintext bytes. Rejects with `integrity`
   * (truncated, extended, or not the ciphertext that was sent) or `undecryptable` (a chunk
   * altered or reordered), `not_found` when it expired or is not shared with you.
   */
  download(options?: { onProgress?: (p: Progress) => void }): Promise<Uint8Array>;
}

export interface SendFileOptions {
  name: string;
  /** Media type, e.g. image/png. Default ''. */
  type?: string;
  /** Called as the ciphertext goes out (also emitted as the client event 'upload_progress'). */
  onProgress?: (p: Progress) => void;
}

export interface Receipt {
  kind: ReceiptKind;
  conversationId: string;
  /** Every message up to and including this seq has been delivered to / read by `by`. */
  seq: number;
  by: string;
}

export interface SendResult {
  id: string;
  conversationId: string;
  seq: number;
  /** When the server stored it (epoch ms). */
  sentAt: number;
}

/** A delete for everyone: sent, and whether the server erased the original's ciphertext for devices that had not fetched it (false: its window had passed, or it was gone already). */
export interface DeleteResult extends SendResult {
  erased: boolean;
}

export interface SendFileResult extends SendResult {
  fileId: string;
}

/**
 * A conversation moved, for a chat list drawn from `conversations()` without polling: a new
 * message in it (`message`: from someone else, one more unread), your own send (`sent`), or you
 * read up to `seq` on this or another of your devices (`read`: unread is 0 up to there).
 */
export interface ConversationChange {
  conversationId: string;
  seq: number;
  cause: 'message' | 'sent' | 'read';
  /** When the message was sent (`message`, `sent`). */
  at?: number;
}

export interface ClientEvents extends Record<string, unknown> {
  message: Message;
  conversation: ConversationChange;
  receipt: Receipt;
  typing: { conversationId: string; from: string; active: boolean };
  presence: { userId: string; online: boolean; lastSeen: number | null };
  connected: { deviceId: string };
  disconnected: { code: number; reason: string; willReconnect: boolean };
  /** The connection's transport changed: a (re)connect on another one, or Socket.IO's upgrade from long-polling to WebSocket. */
  transport: TransportName;
  caught_up: Record<string, never>;
  /** A group changed (created, renamed, members added/removed/left, roles, deleted), in the group's seq order. */
  group: GroupEvent;
  /** Every current member of a group has received / read up to these seqs. */
  group_receipt: GroupReceipt;
  /** Bytes of a file's ciphertext sent so far (sendFile); the last event of an upload carries its `fileId`. */
  upload_progress: Progress;
  /** Bytes of a file's ciphertext received so far (file.download()). */
  download_progress: Progress;
  /** Problems that belong to no call: an undecryptable message, a server error frame. */
  error: ParleyError;
  /**
   * A contact's device now has another identity key than before, or all of a contact's
   * devices were replaced by new ones (reinstalled, or keys substituted: compare safety
   * numbers). `blocked`: the contact was verified, so nothing is sent to them until
   * `acceptIdentity(userId)`.
   */
  identity_changed: IdentityChange & { blocked?: boolean };
  /** A contact's (or your own) new device was vouched for by a device already trusted: it gets copies from now on. Fired before anything is encrypted to it. */
  device_added: DeviceEvent;
  /** A device listed for a user that none of the devices you trust vouched for (e.g. added by the server): it gets no copies and nothing from it is accepted. */
  device_untrusted: DeviceEvent;
  /** A new device of your own waits for approval: call `approveDevice(deviceId)` if it is yours. */
  device_pending: DeviceEvent;
  /** A session with a device was started again: we could not decrypt its message ('me'), or it could not decrypt ours ('peer'). */
  session_reset: SessionReset;
  /**
   * A member set a conversation's disappearing timer (you too: after your setDisappearing was
   * stored). From then on your sends there carry it. In the conversation's seq order, once per change.
   */
  disappearing: DisappearingChange;
  /**
   * A disappearing message's time is up (its timer, counted from when it was read; your own
   * sends from when they were stored): the SDK erased its copy; delete yours.
   */
  expire: { conversationId: string; id: string; seq: number };
  /** Seqs `from`..`to` of a conversation were erased on the server (retention, disappearing timers) before this device got them: they will never come. */
  expired: { conversationId: string; from: number; to: number };
  /** A message was edited by its sender (another device of yours included; not for edits made on this device). */
  edit: MessageEdit;
  /** A message was deleted for everyone by its sender, or arrived as a tombstone. */
  delete: MessageDelete;
  /** A reaction was added or taken back. */
  reaction: MessageReaction;
  /** Another of your devices handed this one its history. */
  history_imported: HistoryImported;
}

export interface ClientOptions {
  /**
   * The server's base URL, e.g. http://localhost:8080, or several gateways of one cluster:
   * the client uses one at a time and moves to the next when it cannot reach it.
   */
  url: string | string[];
  username: string;
  password: string;
  deviceName?: string;
  /**
   * Where this device keeps its identity, prekeys and sessions (client-sdk/e2e.store.ts).
   * Default `memoryKeyStore()`: each client object is then a new device. In Node,
   * `diskKeyStore(path)` from client-sdk/e2e.store.disk.ts keeps the device across runs.
   */
  keyStore?: KeyStore;
  /**
   * Where this device keeps the messages it reported (client-sdk/history.ts), for
   * `client.history()`. Default `memoryMessageStore()` (lost when the process ends). In Node,
   * `await openPgliteMessageStore(dir)` from client-sdk/history.pglite.ts keeps it across
   * runs; a browser app implements the interface over IndexedDB. The app closes it (after
   * `client.close()`): the client may connect again after a close.
   */
  messageStore?: MessageStore;
  /**
   * 32 bytes (e.g. from the platform's keychain): each stored message's content is encrypted
   * under it (XChaCha20-Poly1305); ids, conversation ids, seqs and times stay plain for
   * indexing. Without it the store holds the content as it is.
   */
  historyKey?: Uint8Array;
  /** Reconnect backoff: doubles from `initialDelayMs` to `maxDelayMs`, with jitter. */
  reconnect?: { initialDelayMs?: number; maxDelayMs?: number };
  /** Unacknowledged sends allowed on the wire at once (the rest wait in the outbox). Default 64. */
  maxInFlight?: number;
  /** A WebSocket constructor; defaults to the global one, or the `ws` package in Node. */
  WebSocket?: SocketCtor;
  /**
   * How to reach the gateway. Default `'auto'`: WebSocket first (the token in the
   * `bearer.<token>` subprotocol); when the upgrade fails in a way that is not a refusal by
   * our server (a proxy answers it with an HTTP error or drops it; a browser, which hides the
   * reason, falls back on any failure before the socket opened), the client tries Socket.IO
   * on the same gateway at once: long-polling first, upgrading to WebSocket where the path
   * allows. Once Socket.IO worked it stays on it. A 401 (token refused) logs in again and
   * does not fall back; 429 and 503 retry WebSocket after the backoff. `'websocket'` and
   * `'socketio'` use that transport only. `client.transport` tells which one is in use.
   * Long-polling through a load balancer needs sticky sessions (docs/protocol.md).
   */
  transport?: TransportChoice;
  /** Time for backoff, batching and retries (tests inject a fake). Default: the system clock. */
  clock?: Clock;
  /** Random numbers in [0, 1) for the backoff's jitter (tests inject a fixed one). Default Math.random. */
  random?: () => number;
}

