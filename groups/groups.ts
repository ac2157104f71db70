// GroupsManager: what REST and the message path call for groups: the rules, the caches, and the log of changes.
import type { ListedDeviceJson } from '../protocol/frames.js';
import { createHash } from 'node:crypto';
import type { SystemEvent } from '../protocol/frames.js';
import type { Cache } from '../platform/cache.js';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import type { GroupLog } from '../platform/group-log.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import type { GroupRecord } from '../messaging/ports.js';
import { type GroupInfo, type GroupStore, type LockedGroup, type Membership, type MemberRow, type Role, aggregate, sees } from './group-store.js';

export type { GroupRecord } from '../messaging/ports.js';

export interface GroupsOptions {
  /** Most members a group may have. Default 1024. */
  maxMembers: number;
  /** How long a membership stays in the shared cache. Default 10 minutes. */
  cacheTtlMs?: number;
}

const RANK: Record<Role, number> = { member: 0, admin: 1, owner: 2 };

/** A change recorded in a group's stream: its system event, seq, and per-device payloads. */
interface Recorded {
  event: SystemEvent;
  seq: number;
  keys?: Record<string, string>;
}

/**
 * What a client may attach to a change: the group id it proposes (create), and the group's
 * metadata key, encrypted by its `device` for member devices (`keys`, per device).
 */
export interface MetaKeys {
  id?: string;
  device?: string;
  keys?: { device: string; body: string }[];
}

/** Every current member device of a group, by member, and the hash a sender names them by. */
export interface MemberDevices {
  byUser: Map<string, ListedDeviceJson[]>;
  ids: ReadonlySet<string>;
  hash: string;
}

/** 128 bits of SHA-256 over the sorted device ids: what a group send's `devicesHash` must equal. */
export function devicesHash(deviceIds: readonly string[]): string {
  return createHash('sha256').update([...deviceIds].sort().join(',')).digest('hex').slice(0, 32);
}
const LOCAL_TTL_MS = 60_000;
const DEVICES_TTL_MS = 5_000;

/**
 * Rules: members see a group and send to it; admins (and the owner) rename it, add and
 * remove members and make members admins or not; only the owner deletes it or hands
 * ownership on (and stays an admin). Anyone who is not a member gets `not_found`, exactly as
 * for a group that does not exist. Every change is one transaction with its system message
 * and is then appended to the group log, so online members learn of it in order.
 *
 * Caching: memberships live in the shared cache (Redis in a cluster) under
 * `group:<id>:members`, deleted on every change, and briefly in this process. A cached
 * membership may be older than the newest change; that is safe because (a) fan-out asks for
 * at least the version a record was committed under and (b) sends carry the version they
 * were checked against and are refused at commit if it moved.
 */
export class GroupsManager {
  private readonly local = new Map<string, { at: number; m: Membership }>();
  private readonly devices = new Map<string, { at: number; version: number; list: MemberDevices }>();

  constructor(
    private readonly store: GroupStore,
    private readonly cache: Cache,
    private readonly log: GroupLog,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly options: GroupsOptions,
  ) {}

  async create(actor: string, name: string, members: readonly string[], meta: MetaKeys = {}): Promise<GroupInfo> {
    const distinct = new Set([actor, ...members]);
    this.checkSize(distinct.size);
    const keys = await this.memberKeys(meta, async () => new Set([...(await this.store.devicesOf([...distinct])).values()].flat().map((d) => d.id)));
    const device = meta.device && keys ? { device: meta.device } : {};
    const { id, seq } = await this.store.create(actor, name, [...distinct], { ...(meta.id ? { id: meta.id } : {}), ...device, ...(keys ? { keys } : {}) });
    await this.published(id, actor, seq, { kind: 'created', name, users: [...distinct], ...device }, keys);
    return (await this.store.info(id))!;
  }

  /**
   * The per-device payloads (the group's metadata key, encrypted by the acting device) that
   * belong to devices of `userIds`; others are dropped. Undefined when none were given.
   */
  private async memberKeys(meta: MetaKeys, memberDevices: () => Promise<Set<string>>): Promise<Record<string, string> | undefined> {
    if (!meta.keys?.length) return undefined;
    const devices = await memberDevices();
    const keys = Object.fromEntries(meta.keys.filter((k) => devices.has(k.device) && k.device !== meta.device).map((k) => [k.device, k.body]));
    return Object.keys(keys).length > 0 ? keys : undefined;
  }

  /** The group, if `actor` is a member of it now; `not_found` otherwise. */
  async get(actor: string, groupId: string): Promise<GroupInfo> {
    const info = await this.store.info(groupId);
    if (!info || !info.members.some((m) => m.userId === actor)) throw new AppError('not_found', 'no such group');
    return info;
  }

  list(actor: string) {
    return this.store.listFor(actor);
  }

  async rename(actor: string, groupId: string, name: string, meta: MetaKeys = {}): Promise<void> {
    await this.change(actor, groupId, 'admin', async (g) => {
      await g.rename(name);
      // Inside the change's transaction: read through it (on PGlite, a query outside it would wait for it).
      const keys = await this.memberKeys(meta, () => g.deviceIds([...g.members.keys()]));
      const event: SystemEvent = { kind: 'renamed', name, ...(meta.device && keys ? { device: meta.device } : {}) };
      return [{ event, seq: await g.record(actor, event, keys), keys }];
    });
  }

  async addMembers(actor: string, groupId: string, userIds: readonly string[], meta: MetaKeys = {}): Promise<void> {
    await this.change(actor, groupId, 'admin', async (g) => {
      const fresh = [...new Set(userIds)].filter((u) => !g.members.has(u));
      if (fresh.length === 0) throw new AppError('conflict', 'already a member');
      this.checkSize(g.members.size + fresh.length);
      const keys = await this.memberKeys(meta, () => g.deviceIds(fresh));
      const event: SystemEvent = { kind: 'member_added', users: fresh, ...(meta.device && keys ? { device: meta.device } : {}) };
      const seq = await g.record(actor, event, keys);
      await g.add(fresh, seq, actor);
      return [{ event, seq, keys }];
    });
  }

  /** Removes a member (admins remove members; the owner removes anyone but themself). Removing yourself is leaving. */
  async removeMember(actor: string, groupId: string, userId: string): Promise<void> {
    if (userId === actor) return this.leave(actor, groupId);
    await this.change(actor, groupId, 'admin', async (g) => {
      const target = g.members.get(userId);
      if (!target) throw new AppError('not_found', 'not a member');
      if (RANK[target.role] >= RANK[g.members.get(actor)!.role]) {
        throw new AppError('forbidden', `an ${g.members.get(actor)!.role} cannot remove an ${target.role}`);
      }
      const event: SystemEvent = { kind: 'member_removed', users: [userId] };
      const seq = await g.record(actor, event);
      await g.remove([userId], seq);
      return [{ event, seq }];
    });
  }

  /**
   * Leaves the group. An owner who leaves hands the group to the longest-standing admin, or
   * else the longest-standing member; the last member leaving deletes it.
   */
  async leave(actor: string, groupId: string): Promise<void> {
    await this.change(actor, groupId, 'member', async (g) => {
      const rest = [...g.members.values()].filter((m) => m.userId !== actor);
      if (rest.length === 0) {
        const seq = await g.record(actor, { kind: 'deleted' });
        await g.remove([actor], seq);
        await g.markDeleted();
        return [{ event: { kind: 'deleted' }, seq }];
      }
      const event: SystemEvent = { kind: 'member_left', users: [actor] };
      const seq = await g.record(actor, event);
      await g.remove([actor], seq);
      if (g.ownerId === actor) {
        const heir = rest.find((m) => m.role === 'admin') ?? rest[0]!;
        await g.setRole(heir.userId, 'owner');
        const handover: SystemEvent = { kind: 'role_changed', users: [heir.userId], role: 'owner' };
        return [
        { event, seq },
        { event: handover, seq: await g.record(actor, handover) },
      ];
      }
      return [{ event, seq }];
    });
  }

  /** Changes a member's role. Admins make members admins and back; only the owner makes someone the owner (and becomes an admin). */
  async setRole(actor: string, groupId: string, userId: string, role: Role): Promise<void> {
    await this.change(actor, groupId, role === 'owner' ? 'owner' : 'admin', async (g) => {
      const target = g.members.get(userId);
      if (!target) throw new AppError('not_found', 'not a member');
      if (target.role === role) throw new AppError('conflict', `already ${role === 'owner' ? 'the owner' : `an ${role}`}`);
      if (target.role === 'owner') throw new AppError('forbidden', "the owner's role changes only when they hand the group on");
      const event: SystemEvent = { kind: 'role_changed', users: [userId], role };
      await g.setRole(userId, role);
      if (role !== 'owner') return [{ event, seq: await g.record(actor, event) }];
      await g.setRole(actor, 'admin');
      const demoted: SystemEvent = { kind: 'role_changed', users: [actor], role: 'admin' };
      return [
        { event, seq: await g.record(actor, event) },
        { event: demoted, seq: await g.record(actor, demoted) },
      ];
    });
  }

  async delete(actor: string, groupId: string): Promise<void> {
    await this.change(actor, groupId, 'owner', async (g) => {
      const seq = await g.record(actor, { kind: 'deleted' });
      await g.remove([...g.members.keys()], seq);
      await g.markDeleted();
      return [{ event: { kind: 'deleted' }, seq }];
    });
  }

  /**
   * Per-member delivered/read seqs and the aggregates (everyone has it / has read it), for
   * members only. A member who blocks `actor` is left out of the list (not of the aggregates,
   * which are over every member and name nobody).
   */
  async receipts(actor: string, groupId: string) {
    await this.get(actor, groupId);
    const members = await this.store.receipts(groupId, actor);
    const listed = members.filter((m) => !m.blocksViewer).map(({ userId, delivered, read }) => ({ userId, delivered, read }));
    return { ...aggregate(members), members: listed };
  }

  /**
   * Leaves every group the user is a member of (as `leave`: owners hand their groups on, the
   * last member deletes it); for a user whose account is being deleted.
   */
  async leaveAll(userId: string): Promise<void> {
    for (const g of await this.store.listFor(userId)) {
      await this.leave(userId, g.id).catch((err: unknown) => {
        if (!(err instanceof AppError && err.code === 'not_found')) throw err; // left meanwhile
      });
    }
  }


  /**
   * The group's membership with every window, at least as new as `minVersion`: from this
   * process, else the shared cache, else the store. `not_found` when there is no such group.
   */
  async membership(groupId: string, minVersion = 0): Promise<Membership> {
    const now = this.clock.now();
    const held = this.local.get(groupId);
    if (held && held.m.version >= minVersion && now - held.at < LOCAL_TTL_MS) return held.m;
    const key = `group:${groupId}:members`;
    const cached = minVersion === Infinity ? null : await this.cache.get(key);
    let m = cached === null ? null : (JSON.parse(cached) as Membership);
    if (!m || m.version < minVersion) {
      m = await this.store.membership(groupId);
      if (!m) throw new AppError('not_found', 'no such group');
      await this.cache.set(key, JSON.stringify(m), this.options.cacheTtlMs ?? 600_000);
    }
    this.local.set(groupId, { at: now, m });
    if (this.local.size > 10_000) this.local.delete(this.local.keys().next().value!);
    return m;
  }

  /** The users who may see `seq` of the group (its members then), from a membership at least as new as `minVersion`. */
  async audience(groupId: string, minVersion: number, seq: number): Promise<Set<string>> {
    const m = await this.membership(groupId, minVersion);
    return new Set(m.members.filter((r) => sees(r, seq)).map((r) => r.userId));
  }

  /**
   * Whether `userId` is a current member. A cached membership may predate their addition
   * (it was changed through another process), so a miss is checked against the store.
   */
  async currentMembership(groupId: string, userId: string): Promise<Membership | null> {
    const isIn = (m: Membership) => m.members.some((r) => r.userId === userId && r.leftSeq === null);
    const m = await this.membership(groupId);
    if (isIn(m)) return m;
    const fresh = await this.membership(groupId, Infinity);
    return isIn(fresh) ? fresh : null;
  }

  /** Current member rows (no former members). */
  static current(m: Membership): MemberRow[] {
    return m.members.filter((r) => r.leftSeq === null);
  }

  /** The devices of the membership's current members, and the hash of their ids (cached briefly per version). */
  async memberDevices(m: Membership): Promise<MemberDevices> {
    const held = this.devices.get(m.groupId);
    const now = this.clock.now();
    if (held && held.version === m.version && now - held.at < DEVICES_TTL_MS) return held.list;
    const byUser = await this.store.devicesOf(GroupsManager.current(m).map((r) => r.userId));
    const ids = [...byUser.values()].flat().map((d) => d.id);
    const list: MemberDevices = { byUser, ids: new Set(ids), hash: devicesHash(ids) };
    this.devices.set(m.groupId, { at: now, version: m.version, list });
    if (this.devices.size > 1_000) this.devices.delete(this.devices.keys().next().value!);
    return list;
  }

  /** Forgets what this process and the shared cache hold for the group (e.g. after a refused send). */
  async invalidate(groupId: string): Promise<void> {
    this.local.delete(groupId);
    this.devices.delete(groupId);
    try {
      await this.cache.del([`group:${groupId}:members`]);
    } catch (err) {
      this.metrics.backendFailures.inc({ backend: 'cache', operation: 'del' });
      this.logger.error({ err, groupId }, 'membership cache invalidation failed; versions keep fan-out exact');
    }
  }

  private checkSize(n: number): void {
    if (n > this.options.maxMembers) {
      throw new AppError('limit_exceeded', `a group has at most ${this.options.maxMembers} members`, { details: { maxMembers: this.options.maxMembers } });
    }
  }

  /**
   * Runs a change as `actor`, who must be a member with at least `least` role; `fn` returns
   * the system events it recorded with their seqs, which are then published in order.
   */
  private async change(actor: string, groupId: string, least: Role, fn: (g: LockedGroup) => Promise<Recorded[]>): Promise<void> {
    const recorded = await this.store.change(groupId, async (g) => {
      const me = g.members.get(actor);
      if (!me) throw new AppError('not_found', 'no such group');
      if (RANK[me.role] < RANK[least]) throw new AppError('forbidden', `only ${least === 'owner' ? 'the owner' : 'admins'} can do that`);
      return fn(g);
    });
    await this.invalidate(groupId);
    for (const r of recorded) await this.published(groupId, actor, r.seq, r.event, r.keys);
  }

  /** Appends a committed system message to the group log for live fan-out. */
  private async published(groupId: string, actor: string, seq: number, system: SystemEvent, keys?: Record<string, string>): Promise<void> {
    const record: GroupRecord = {
      frame: { type: 'msg', id: `system-${seq}`, conversationId: groupId, groupId, seq, from: actor, fromDevice: null, sentAt: this.clock.now(), body: '', system },
      ...(keys ? { keys } : {}),
      membersVersion: system.kind === 'renamed' ? 0 : seq,
    };
    try {
      await this.log.append([{ key: groupId, value: JSON.stringify(record) }]);
    } catch (err) {
      // Committed already: members get it on their next sync, or when the next message's gap is filled.
      this.metrics.backendFailures.inc({ backend: 'group_log', operation: 'append' });
      this.logger.error({ err, groupId, seq }, 'group change committed but not appended to the group log');
    }
  }
}
