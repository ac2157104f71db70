// Wire protocol v1: the JSON frames exchanged over the WebSocket at /v1/ws or Socket.IO (docs/protocol.md).

export const PROTOCOL = 'parley.v1';
export const WS_PATH = '/v1/ws';
/** The Socket.IO transport's path (Socket.IO's default, so stock clients need no option). */
export const SOCKETIO_PATH = '/socket.io';
/** The Socket.IO event carrying one Parley frame, as its JSON text, in both directions. */
export const SOCKETIO_EVENT = 'frame';
/** The Socket.IO event the server emits, with `{code, reason}`, right before it disconnects a session. */
export const SOCKETIO_CLOSE_EVENT = 'close';

/** One ciphertext for one recipient device (base64; the layout is in client-sdk/e2e.wire.ts and docs/protocol.md §7). */
export interface DevicePayload {
  device: string;
  body: string;
}

/** A server-authored change to a group, delivered in the group's stream as a message without ciphertext. */
export interface SystemEvent {
  kind: 'created' | 'renamed' | 'member_added' | 'member_removed' | 'member_left' | 'role_changed' | 'deleted';
  /** The users the change concerns (added, removed, left, role changed), when there are any. */
  users?: string[];
  /** `created` and `renamed`: the group's name as the acting client set it (the SDK seals it: e2e.group-meta.ts). */
  name?: string;
  role?: string;
  /**
   * The device that made the change, when it gave its group's metadata key to member devices
   * with it: their copies travel as this message's per-device `key`, encrypted by this device.
   */
  device?: string;
}

export type GroupRole = 'owner' | 'admin' | 'member';

/**
 * A device as `GET /v1/users/{id}/devices` lists it: its Ed25519 identity key, and the vouch
 * of the device of the same user that approved it (itself for the user's first device; null
 * until one does). Clients trust only what vouches show them (protocol/trust.ts).
 */
export interface ListedDeviceJson {
  id: string;
  publicKey: string;
  vouch: { by: string; signature: string } | null;
}

/** A device as listed, from its stored fields (a vouch needs both its signer and its signature). */
export function listedDevice(id: string, publicKey: string, vouchedBy: string | null, signature: string | null): ListedDeviceJson {
  return { id, publicKey, vouch: vouchedBy && signature ? { by: vouchedBy, signature } : null };
}

/** A group as its members see it (REST `GET /v1/groups/{id}`). */
export interface GroupInfo {
  id: string;
  name: string;
  ownerId: string;
  createdAt: number;
  lastSeq: number;
  /** The seq of the last membership change. */
  membersVersion: number;
  /** Current members, oldest first. */
  members: { userId: string; role: GroupRole; joinedSeq: number }[];
}

/**
 * `expiresAt` (epoch ms) on a send: a disappearing message. The server erases its ciphertext at
 * that time whether or not every device fetched it (docs/protocol.md, "Disappearing messages").
 */
export type ClientFrame =
  | { type: 'send'; id: string; to: string; payloads: DevicePayload[]; expiresAt?: number }
  | { type: 'group.send'; id: string; group: string; body: string; payloads?: DevicePayload[]; devicesHash?: string; expiresAt?: number }
  | { type: 'ack'; conversationId: string; seq: number }
  | { type: 'read'; conversationId: string; seq: number }
  | { type: 'typing'; conversationId: string; active: boolean }
  | { type: 'presence.subscribe'; users: string[] }
  | { type: 'ping'; id?: string };

export type ReceiptKind = 'delivered' | 'read';

export type ServerFrame =
  | { type: 'ready'; userId: string; deviceId: string; heartbeatMs: number; maxPayloadBytes: number }
  | { type: 'sent'; id: string; conversationId: string; seq: number; sentAt: number }
  | MsgFrame
  | { type: 'caught_up' }
  /**
   * Seqs `from`..`to` of the conversation are no longer stored (retention, disappearing
   * messages, delete for everyone) and this device had not been given them: it skips them and
   * carries on. Sent in seq order, where those messages would have been.
   */
  | { type: 'expired'; conversationId: string; from: number; to: number }
  | { type: 'receipt'; kind: ReceiptKind; conversationId: string; seq: number; by: string }
  | { type: 'group_receipt'; conversationId: string; delivered: number; read: number }
  | { type: 'typing'; conversationId: string; from: string; active: boolean }
  | { type: 'presence'; userId: string; online: boolean; lastSeen: number | null }
  | { type: 'pong'; id?: string }
  /** The directory is running out of this device's one-time prekeys: upload more (sent to the owner's online devices). */
  | { type: 'prekeys_low'; deviceId: string; remaining: number }
  | ErrorFrame;

/**
 * A message for this device. Direct: `body` is this device's ciphertext. Group (`groupId`
 * set): `body` is the ciphertext shared by all members and `key`, when present, this device's
 * sealed message key. System (`system` set): a group change; `body` is '' and `fromDevice` null.
 */
export interface MsgFrame {
  type: 'msg';
  id: string;
  conversationId: string;
  seq: number;
  from: string;
  fromDevice: string | null;
  sentAt: number;
  body: string;
  groupId?: string;
  key?: string;
  system?: SystemEvent;
  /** A disappearing message: when the server erases it (the sender's `expiresAt`). */
  expiresAt?: number;
  /**
   * A tombstone: the sender deleted this message for everyone before this device fetched it
   * (`DELETE /v1/conversations/{id}/messages/{seq}`); its ciphertext is gone and `body` is ''.
   */
  deleted?: true;
}

export interface ErrorFrame {
  type: 'error';
  code: string;
  message: string;
  /** The `id` of the send (or the `type` of the frame) this error answers. */
  ref?: string;
  temporary: boolean;
  retryAfterMs?: number;
  details?: Record<string, unknown>;
}

/**
 * Close codes. 4000–4499: the client should reconnect (with backoff); 4500–4999: it should not
 * reconnect without a change (new login, fixed client). 1001/1006/1011 reconnect; 1009 means
 * the client sent a frame over the server's limit.
 */
export const CLOSE = {
  GOING_AWAY: 1001,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  FLOOD: 4001,
  HEARTBEAT_TIMEOUT: 4002,
  SLOW_CONSUMER: 4003,
  REPLACED: 4500,
  UNAUTHORIZED: 4501,
} as const;

/** Whether a client should reconnect after the socket closed with `code`. */
export function shouldReconnect(code: number): boolean {
  return !(code >= 4500 && code <= 4999);
}
