// Public surface of the Parley client SDK.
export { createClient, memoryKeyStore, ParleyClient } from './client.js';
export type { ClientEvents, ClientOptions, DeviceState, KeyStore, Message, Receipt, SendResult } from './client.js';
export { ParleyError } from './http.js';
export type { GroupEvent, GroupInfo, GroupReceipt, GroupReceipts, GroupRole, GroupSummary } from './groups.js';
export { CLOSE, PROTOCOL, WS_PATH } from './protocol.js';
