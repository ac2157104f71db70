// Public surface of the Parley client SDK (browser-safe; the Node disk key store is client-sdk/e2e.store.disk.ts, the Node message store client-sdk/history.pglite.ts).
export { createClient, ParleyClient } from './client.js';
export type {
  ClientEvents,
  ClientOptions,
  ConversationChange,
  DeleteResult,
  DisappearingChange,
  HistoryImported,
  Message,
  MessageDelete,
  MessageEdit,
  MessageReaction,
  Reaction,
  Receipt,
  ReceivedFile,
  SendFileOptions,
  SendFileResult,
  SendResult,
  TextOptions,
  TransportChoice,
  TransportName,
} from './client.types.js';
export { memoryMessageStore } from './history.memory.js';
export { openIdbMessageStore } from './history.idb.js';
export type { IdbMessageStoreOptions } from './history.idb.js';
export type { AccountDevice, BlockedUser, ConversationPage, ConversationSummary, ReportInput, ReportedMessage } from './account.js';
export type { MessageStore, StoredEntry } from './history.js';
export type { Clock } from './clock.js';
export type { FileRef, Progress } from './files.js';
export type { IdentityChange, SessionReset } from './e2e.session-manager.js';
export { formatSafetyNumber } from './e2e.safety-number.js';
export { memoryKeyStore } from './e2e.store.memory.js';
export { idbSecret, openIdbKeyStore } from './e2e.store.idb.js';
export type { IdbKeyStoreOptions } from './e2e.store.idb.js';
export type { JsonValue, KeyChange, KeySection, KeyStore } from './e2e.store.js';
export { ParleyError } from './http.js';
export type { GroupEvent, GroupInfo, GroupReceipt, GroupReceipts, GroupRole, GroupSummary } from './groups.js';
export type { PushPayload, PushTarget } from '../protocol/push.js';
export { CLOSE, PROTOCOL, SOCKETIO_CLOSE_EVENT, SOCKETIO_EVENT, SOCKETIO_PATH, WS_PATH } from '../protocol/frames.js';
