// The SDK's group side: REST calls for group management, member device lists, and group message encryption.
import { decryptShared, encryptShared, open, seal } from './crypto.js';
import type { DevicePayload, GroupInfo, GroupRole, SystemEvent } from './protocol.js';

export type { GroupInfo, GroupRole } from './protocol.js';

export interface GroupSummary {
  id: string;
  name: string;
  role: GroupRole;
  members: number;
  lastSeq: number;
}

/** A change to a group, in the group's order (`seq`): emitted as 'group'. */
export interface GroupEvent extends SystemEvent {
  groupId: string;
  seq: number;
  /** Who made the change. */
  by: string;
  sentAt: number;
}

/** The aggregate receipt of a group: every current member has received / read up to these seqs. */
export interface GroupReceipt {
  groupId: string;
  delivered: number;
  read: number;
}

export interface GroupReceipts {
  delivered: number;
  read: number;
  members: { userId: string; delivered: number; read: number }[];
}

type Call = <T>(method: string, path: string, body?: unknown) => Promise<T>;
type Devices = { userId: string; devices: { id: string; publicKey: string }[] }[];

/** Group REST calls, and each group's member devices cached until the group changes or the server says they did. */
export class GroupDirectory {
  private readonly devices = new Map<string, Devices>();

  constructor(private readonly call: Call) {}

  create(name: string, members: readonly string[]): Promise<GroupInfo> {
    return this.call('POST', '/v1/groups', { name, members });
  }

  async list(): Promise<GroupSummary[]> {
    return (await this.call<{ groups: GroupSummary[] }>('GET', '/v1/groups')).groups;
  }

  get(groupId: string): Promise<GroupInfo> {
    return this.call('GET', `/v1/groups/${groupId}`);
  }

  rename(groupId: string, name: string): Promise<void> {
    return this.call('PATCH', `/v1/groups/${groupId}`, { name });
  }

  addMembers(groupId: string, userIds: readonly string[]): Promise<void> {
    return this.call('POST', `/v1/groups/${groupId}/members`, { userIds });
  }

  removeMember(groupId: string, userId: string): Promise<void> {
    return this.call('DELETE', `/v1/groups/${groupId}/members/${userId}`);
  }

  setRole(groupId: string, userId: string, role: GroupRole): Promise<void> {
    return this.call('PUT', `/v1/groups/${groupId}/members/${userId}/role`, { role });
  }

  leave(groupId: string): Promise<void> {
    return this.call('POST', `/v1/groups/${groupId}/leave`);
  }

  delete(groupId: string): Promise<void> {
    return this.call('DELETE', `/v1/groups/${groupId}`);
  }

  receipts(groupId: string): Promise<GroupReceipts> {
    return this.call('GET', `/v1/groups/${groupId}/receipts`);
  }

  /** Every current member device of the group (cached). */
  async memberDevices(groupId: string): Promise<Devices> {
    const held = this.devices.get(groupId);
    if (held) return held;
    const r = await this.call<{ members: Devices }>('GET', `/v1/groups/${groupId}/devices`);
    this.devices.set(groupId, r.members);
    return r.members;
  }

  /** The group changed (a system message, or the server refused a send with devices_changed). */
  forget(groupId: string): void {
    this.devices.delete(groupId);
  }
}

/** Encrypts content once and seals its key for every member device but `myDeviceId`. */
export function encryptForGroup(plaintext: Uint8Array, members: Devices, mySecretKey: string, myDeviceId: string): { body: string; payloads: DevicePayload[] } {
  const { key, body } = encryptShared(plaintext);
  const payloads = members
    .flatMap((m) => m.devices)
    .filter((d) => d.id !== myDeviceId)
    .map((d) => ({ device: d.id, body: seal(key, d.publicKey, mySecretKey) }));
  return { body, payloads };
}

/** Opens this device's sealed key (from the sender device) and decrypts the shared body. */
export function decryptGroupMessage(body: string, sealedKey: string, senderPublicKey: string, mySecretKey: string): Uint8Array {
  return decryptShared(body, open(sealedKey, senderPublicKey, mySecretKey));
}
