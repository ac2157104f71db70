// The narrow interfaces the message path needs from the layers around it; the composition root hands it the concrete ones.
import type { MsgFrame, ServerFrame } from '../protocol/frames.js';
import type { GroupLog } from '../platform/group-log.js';

/** Live delivery to users' devices, wherever they are connected (routing/delivery.ts). */
export interface DeviceRelay {
  /** Delivers a stored message to every online device of `userIds` except `exceptDevice`, each with its own payload; resolves to the devices it was handed to. */
  deliverMessage(userIds: readonly string[], base: Omit<MsgFrame, 'body' | 'type'>, payloads: Record<string, string>, exceptDevice?: string): Promise<ReadonlySet<string>>;
  /** Sends a frame that is not stored (receipts, typing) to every device of `userIds` except `exceptDevice`. */
  relay(userIds: readonly string[], frame: ServerFrame, exceptDevice?: string): Promise<void>;
}

/** A group's membership rows as the message path reads them (current and former members). */
export interface GroupView {
  groupId: string;
  /** The seq of the last membership change. */
  version: number;
  members: readonly { userId: string; leftSeq: number | null }[];
}

/** Memberships and member devices of groups (groups/groups.ts). */
export interface GroupDirectory {
  /** The membership, if `userId` is a current member; null or `not_found` otherwise. */
  currentMembership(groupId: string, userId: string): Promise<GroupView | null>;
  /** The current members' devices: their ids and the hash a group send's `devicesHash` must equal. */
  memberDevices(membership: GroupView): Promise<{ ids: ReadonlySet<string>; hash: string }>;
  /** Drops what is cached of the group, after a send found it out of date. */
  invalidate(groupId: string): Promise<void>;
}

/** Aggregate group receipts (routing/group-receipts.ts): told which groups have new receipts. */
export interface ReceiptSink {
  touched(conversationId: string): void;
}

/** What the group log carries for each message of a group (ciphertext only), keyed by group id. */
export interface GroupRecord {
  frame: MsgFrame;
  /** Per-device sealed message keys, when the sender included them. */
  keys?: Record<string, string>;
  /** The membership version the message was committed under. */
  membersVersion: number;
}

/** The group side of messaging: memberships and the log that feeds the fan-out workers. */
export interface GroupMessaging {
  groups: GroupDirectory;
  log: GroupLog;
  receipts: ReceiptSink;
  /** Groups larger than this get no typing indicators (each would reach every member). */
  typingMaxMembers: number;
}

/** The user ids of a membership's current members. */
export function currentMembers(m: GroupView): string[] {
  return m.members.filter((r) => r.leftSeq === null).map((r) => r.userId);
}

/**
 * A newly stored message, as notifications need it: who it is for, among the devices live
 * delivery did not reach. Direct: `devices`, the recipient devices it carries a ciphertext for
 * (not the sender's own). Group: `users`, the members who may see it (not the sender); the
 * notifier expands them to their devices, less `reached`.
 */
export interface StoredNotice {
  conversationId: string;
  seq: number;
  devices?: readonly string[];
  users?: readonly string[];
  /** Group: devices of `users` that live delivery reached (no push for them). */
  reached?: readonly string[];
}

/** Told of each newly stored message, so devices without a live connection get a push (notifications/). */
export interface NoticeSink {
  stored(notice: StoredNotice): void;
}
