// Public surface of the Parley client SDK.
export { createClient, memoryKeyStore, ParleyClient } from './client.js';
export type {
  ClientEvents,
  ClientOptions,
  DeviceState,
  KeyStore,
  Message,
  Receipt,
  ReceivedFile,
  SendFileOptions,
  SendFileResult,
  SendResult,
} from './client.js';
export type { FileRef, Progress } from './files.js';
export { ParleyError } from './http.js';
export { CLOSE, PROTOCOL, WS_PATH } from './protocol.js';
