// The SDK's group side: REST calls for group management, member device lists, and who has our sender key.
import type { GroupInfo, GroupRole, ListedDeviceJson, SystemEvent } from '../protocol/frames.js';

export type { GroupInfo, GroupRole } from '../protocol/frames.js';

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

/** The group's metadata key encrypted for one member device. */
export interface MetaPayload {
  device: string;
  body: string;
}

/** Every current member device of a group, and the server's hash of that set (sent back with each group message). */
export interface GroupDevices {
  devicesHash: string;
  members: { userId: string; devices: ListedDeviceJson[] }[];
}

/** Group REST calls, and each group's member devices cached until the group changes or the server says they did. */
export class GroupDirectory {
  private readonly devices = new Map<string, GroupDevices>();

  constructor(private readonly call: Call) {}

  create(name: string, members: readonly string[], extra: { id?: string; keys?: MetaPayload[] } = {}): Promise<GroupInfo> {
    return this.call('POST', '/v1/groups', { name, members, ...extra });
  }

  async list(): Promise<GroupSummary[]> {
    return (await this.call<{ groups: GroupSummary[] }>('GET', '/v1/groups')).groups;
  }

  get(groupId: string): Promise<GroupInfo> {
    return this.call('GET', `/v1/groups/${groupId}`);
  }

  rename(groupId: string, name: string, keys?: MetaPayload[]): Promise<void> {
    return this.call('PATCH', `/v1/groups/${groupId}`, { name, ...(keys ? { keys } : {}) });
  }

  addMembers(groupId: string, userIds: readonly string[], keys?: MetaPayload[]): Promise<void> {
    return this.call('POST', `/v1/groups/${groupId}/members`, { userIds, ...(keys ? { keys } : {}) });
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
  async memberDevices(groupId: string): Promise<GroupDevices> {
    const held = this.devices.get(groupId);
    if (held) return held;
    const r = await this.call<GroupDevices>('GET', `/v1/groups/${groupId}/devices`);
    this.devices.set(groupId, r);
    return r;
  }

  /** The group changed (a system message, or the server refused a send with devices_changed). */
  forget(groupId: string): void {
    this.devices.delete(groupId);
  }
}

/**
 * Which member devices hold our current sender key for each group: the ones we distributed it
 * to in an acknowledged message. Rotating (a member left) forgets them all; a device that asks
 * for the key again is forgotten alone. Kept in memory: a restarted client distributes again.
 */
export class SenderKeyTracker {
  private readonly holders = new Map<string, { keyId: number; devices: Set<string> }>();

  /** Of `devices`, those that still need our key `keyId` for the group (all of them once the key changed). */
  missing(groupId: string, keyId: number, devices: readonly string[]): string[] {
    const have = this.holders.get(groupId);
    return have && have.keyId === keyId ? devices.filter((d) => !have.devices.has(d)) : [...devices];
  }

  delivered(groupId: string, keyId: number, devices: readonly string[]): void {
    let have = this.holders.get(groupId);
    if (!have || have.keyId !== keyId) this.holders.set(groupId, (have = { keyId, devices: new Set() }));
    for (const d of devices) have.devices.add(d);
  }

  /** The devices that hold our current key for the group. */
  holding(groupId: string): string[] {
    return [...(this.holders.get(groupId)?.devices ?? [])];
  }

  forget(groupId: string, device?: string): void {
    if (device === undefined) this.holders.delete(groupId);
    else this.holders.get(groupId)?.devices.delete(device);
  }
}
