// The SDK's sealed group names: each group's name key, given to member devices with the group's changes, and names sealed and opened with it.
import type { ListedDevice } from '../protocol/trust.js';
import { encodeMetaKey, type GroupMetaKey, newGroupMetaKey, openGroupName, sealedNameKeyId, sealGroupName } from './e2e.group-meta.js';
import type { SessionManager } from './e2e.session-manager.js';
import { INNER } from './e2e.wire.js';
import type { GroupDirectory, GroupEvent, MetaPayload } from './groups.js';
import type { TrustManager } from './trust.js';

export interface GroupNamesOptions {
  groups: GroupDirectory;
  sessions: SessionManager;
  trust: TrustManager;
  /** A user's listed devices (cached by the client). */
  devicesOf(userId: string): Promise<ListedDevice[]>;
  /** The logged-in user's id. */
  me(): string;
}

/**
 * A group's name is sealed under a key of the group's, so the server stores opaque text. A new
 * key reaches the member devices only with the group change that introduces it (created,
 * renamed, member_added), encrypted over the acting device's pairwise sessions, and is kept
 * only once the server accepted that change: a key nobody got must never seal a name.
 */
export class GroupNames {
  constructor(private readonly o: GroupNamesOptions) {}

  /** Creates a group (a client-chosen id binds the keys to it) with its name sealed under a new key. */
  async create(name: string, members: readonly string[]): Promise<{ id: string }> {
    const id = crypto.randomUUID();
    const key = newGroupMetaKey();
    const keys = await this.payloads(id, key, [this.o.me(), ...members]);
    const g = await this.o.groups.create(sealGroupName(id, key, name), members, { id, keys });
    await this.o.sessions.addGroupMetaKey(id, key);
    return { id: g.id };
  }

  /** Adds a member, giving their devices the current name key. */
  async add(groupId: string, userId: string): Promise<void> {
    const key = await this.o.sessions.groupMetaKey(groupId);
    const keys = key ? await this.payloads(groupId, key, [userId]) : undefined;
    return this.o.groups.addMembers(groupId, [userId], keys);
  }

  /** Renames the group under its key (a new one, given to every member device, if this device has none). */
  async rename(groupId: string, name: string): Promise<void> {
    const held = await this.o.sessions.groupMetaKey(groupId);
    const key = held ?? newGroupMetaKey();
    const keys = held ? undefined : await this.payloads(groupId, key, (await this.o.groups.get(groupId)).members.map((m) => m.userId));
    await this.o.groups.rename(groupId, sealGroupName(groupId, key, name), keys);
    if (!held) await this.o.sessions.addGroupMetaKey(groupId, key);
  }

  /** A group name as the server holds it, opened with the group's key when it is sealed ('' until the key arrives). */
  async open(groupId: string, name: string): Promise<string> {
    const keyId = sealedNameKeyId(name);
    if (keyId === null) return name; // set in plaintext by another client
    const key = await this.o.sessions.groupMetaKeyById(groupId, keyId);
    if (!key) return '';
    try {
      return openGroupName(groupId, key, name);
    } catch {
      return '';
    }
  }

  /**
   * After someone left or was removed: a new name key for the remaining members, the name
   * sealed again under it (a `renamed` message that carries the key). Done by the remover, and
   * by the owner when a member leaves; skipped when this device cannot open the current name.
   */
  async rotate(groupId: string): Promise<void> {
    const g = await this.o.groups.get(groupId);
    const keyId = sealedNameKeyId(g.name);
    const old = keyId === null ? null : await this.o.sessions.groupMetaKeyById(groupId, keyId);
    if (!old) return;
    const key = newGroupMetaKey();
    const keys = await this.payloads(groupId, key, g.members.map((m) => m.userId));
    await this.o.groups.rename(groupId, sealGroupName(groupId, key, openGroupName(groupId, old, g.name)), keys);
    await this.o.sessions.addGroupMetaKey(groupId, key);
  }

  /** When a member left, the owner's device replaces the name key, once: unless the name was sealed again since. */
  async memberLeft(e: GroupEvent): Promise<void> {
    const g = await this.o.groups.get(e.groupId);
    if (g.ownerId !== this.o.me()) return;
    const keyId = sealedNameKeyId(g.name);
    const current = keyId === null ? null : await this.o.sessions.groupMetaKeyById(e.groupId, keyId);
    if (current && current.createdAt * 1000 < e.sentAt) await this.rotate(e.groupId);
  }

  /** The group's name key, encrypted over the pairwise sessions for the trusted devices of `userIds` (and our other devices). */
  private async payloads(groupId: string, key: GroupMetaKey, userIds: readonly string[]): Promise<MetaPayload[]> {
    const recipients = [];
    for (const u of new Set(userIds)) {
      const t = await this.o.trust.devices(u, await this.o.devicesOf(u));
      if (!t.blocked) recipients.push({ userId: u, devices: t.trusted });
    }
    return this.o.sessions.encryptForDevices(recipients, INNER.GROUP_META, encodeMetaKey(groupId, key));
  }
}
