// Delivery: routes frames to the devices' gateways (one publish per gateway) and keeps this gateway's routes alive.
import { randomUUID } from 'node:crypto';
import type { MsgFrame, ServerFrame } from '../protocol/frames.js';
import { type Broker, gatewayChannel, GROUPS_CHANNEL, PRESENCE_CHANNEL } from '../platform/broker.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import type { Presence, UserStatus } from '../platform/presence.js';

/** A device connected to this gateway. */
export interface LocalDevice {
  readonly userId: string;
  readonly deviceId: string;
  /** A message for this device; the device puts it in seq order itself. */
  deliver(frame: MsgFrame): void;
  /** An ephemeral frame (receipt, typing, presence). */
  send(frame: ServerFrame): void;
  /** Another connection of the same device took over: close this one. */
  replaced(): void;
  /** Deliveries may have been lost (presence or broker outage): catch up from the store. */
  resync(): void;
}

/** What travels on a gateway's channel. */
type Envelope =
  | { t: 'msg'; frames: { device: string; frame: MsgFrame }[] }
  | { t: 'gmsg'; frame: MsgFrame; devices: string[]; keys?: Record<string, string> }
  | { t: 'frame'; devices: string[]; frame: ServerFrame }
  | { t: 'kick'; device: string; connection: string };

/** A large group's message as it is broadcast to every gateway. */
interface GroupBroadcast {
  frame: MsgFrame;
  keys?: Record<string, string>;
  membersVersion: number;
}

/** The users who may see `seq` of a group, from a membership at least as new as `minVersion`. */
export type GroupAudience = (groupId: string, minVersion: number, seq: number) => Promise<ReadonlySet<string>>;

export interface DeliveryOptions {
  gatewayId?: string;
  presenceTtlMs: number;
  heartbeatMs: number;
}

/**
 * Ordering: frames published by one process to one gateway arrive in publish order; each
 * device re-orders messages by seq and fills gaps from the store, so cross-process races
 * never reorder what the app sees. A publish failure is logged and counted, never swallowed:
 * the message is durable already and reaches the device on its next sync.
 */
export class Delivery {
  readonly gatewayId: string;
  private readonly local = new Map<string, { device: LocalDevice; connection: string }>();
  /** Local devices by user, for delivering broadcast group messages without a route lookup. */
  private readonly localByUser = new Map<string, Set<LocalDevice>>();
  private audience: GroupAudience | null = null;
  private readonly presenceSubs = new Map<string, Set<LocalDevice>>();
  private readonly unsubscribe: (() => Promise<void>)[] = [];
  private heartbeat: NodeJS.Timeout | undefined;
  /** Set when presence or the broker failed: the next healthy heartbeat re-registers and resyncs. */
  private degraded = false;

  constructor(
    private readonly presence: Presence,
    private readonly broker: Broker,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    private readonly options: DeliveryOptions,
  ) {
    this.gatewayId = options.gatewayId ?? `gw-${randomUUID().slice(0, 8)}`;
  }

  async start(): Promise<void> {
    this.unsubscribe.push(await this.broker.subscribe(gatewayChannel(this.gatewayId), (m) => this.onEnvelope(m)));
    this.unsubscribe.push(await this.broker.subscribe(PRESENCE_CHANNEL, (m) => this.onPresence(m)));
    this.unsubscribe.push(await this.broker.subscribe(GROUPS_CHANNEL, (m) => void this.onGroupBroadcast(m)));
    this.broker.onReconnect?.(() => {
      this.log.warn('broker reconnected; resyncing local devices');
      this.degraded = true;
      void this.refreshRoutes();
    });
    this.heartbeat = setInterval(() => void this.refreshRoutes(), this.options.heartbeatMs);
    this.heartbeat.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    for (const off of this.unsubscribe.splice(0)) await off().catch(() => {});
  }

  /** Registers a connected device here and in presence; closes any older connection of it. */
  async attach(device: LocalDevice): Promise<string> {
    const connection = randomUUID();
    const older = this.local.get(device.deviceId);
    this.local.set(device.deviceId, { device, connection });
    if (older) this.localByUser.get(older.device.userId)?.delete(older.device);
    let mine = this.localByUser.get(device.userId);
    if (!mine) this.localByUser.set(device.userId, (mine = new Set()));
    mine.add(device);
    if (older) older.device.replaced();
    const [before] = await this.presence.status([device.userId]);
    const previousGateway = await this.presence.connect(
      { userId: device.userId, deviceId: device.deviceId, gatewayId: this.gatewayId },
      this.options.presenceTtlMs,
    );
    if (previousGateway) await this.publish(previousGateway, { t: 'kick', device: device.deviceId, connection });
    if (!before?.online) await this.announce({ userId: device.userId, online: true, lastSeen: before?.lastSeen ?? null });
    return connection;
  }

  /** Forgets a device that disconnected, if this connection still holds it. */
  async detach(device: LocalDevice, connection: string): Promise<void> {
    for (const set of this.presenceSubs.values()) set.delete(device);
    if (this.local.get(device.deviceId)?.connection !== connection) return;
    this.forgetLocal(device.deviceId);
    await this.presence.disconnect({ userId: device.userId, deviceId: device.deviceId, gatewayId: this.gatewayId });
    const [after] = await this.presence.status([device.userId]);
    if (after && !after.online) await this.announce(after);
  }

  /** Delivers a stored message to the online devices among `payloads`' keys, except `exceptDevice`. */
  async deliverMessage(
    userIds: readonly string[],
    base: Omit<MsgFrame, 'body' | 'type'>,
    payloads: Record<string, string>,
    exceptDevice: string,
  ): Promise<void> {
    const byGateway = await this.routesByGateway(userIds, exceptDevice);
    await Promise.all(
      [...byGateway].map(([gw, devices]) => {
        const frames = devices
          .filter((d) => payloads[d] !== undefined)
          .map((d) => ({ device: d, frame: { type: 'msg' as const, ...base, body: payloads[d]! } }));
        return frames.length > 0 ? this.publish(gw, { t: 'msg', frames }) : undefined;
      }),
    );
  }

  /**
   * Delivers a group message (one shared body) to the online devices of `userIds` except
   * `exceptDevice`: one publish per gateway, carrying the frame once and only the per-device
   * keys of that gateway's devices.
   */
  async deliverGroup(userIds: readonly string[], frame: MsgFrame, keys: Record<string, string> | undefined, exceptDevice: string | null): Promise<number> {
    const byGateway = await this.routesByGateway(userIds, exceptDevice ?? undefined);
    let devices = 0;
    await Promise.all(
      [...byGateway].map(([gw, list]) => {
        devices += list.length;
        const mine = keys ? Object.fromEntries(list.filter((d) => keys[d] !== undefined).map((d) => [d, keys[d]!])) : undefined;
        return this.publish(gw, { t: 'gmsg', frame, devices: list, ...(mine ? { keys: mine } : {}) });
      }),
    );
    return devices;
  }

  /**
   * Delivers a large group's message through every gateway at once: one publish on the groups
   * channel, and each gateway hands it to its own devices of the users who may see it (see
   * `useGroupAudience`). No route lookups: for a group of thousands that is the expensive part.
   */
  async broadcastGroup(frame: MsgFrame, keys: Record<string, string> | undefined, membersVersion: number): Promise<void> {
    const message: GroupBroadcast = { frame, ...(keys ? { keys } : {}), membersVersion };
    await this.publishOn(GROUPS_CHANNEL, JSON.stringify(message), { groupId: frame.conversationId });
  }

  /** How this gateway learns who may see a broadcast group message (group memberships). */
  useGroupAudience(audience: GroupAudience): void {
    this.audience = audience;
  }

  /** Sends an ephemeral frame to every online device of `userIds`, except `exceptDevice`. */
  async relay(userIds: readonly string[], frame: ServerFrame, exceptDevice?: string): Promise<void> {
    const byGateway = await this.routesByGateway(userIds, exceptDevice);
    await Promise.all([...byGateway].map(([gw, devices]) => this.publish(gw, { t: 'frame', devices, frame })));
  }

  /** Closes the device's connection wherever it is (e.g. the device was removed). */
  async disconnect(userId: string, deviceId: string): Promise<void> {
    for (const r of await this.presence.routes([userId])) {
      if (r.deviceId === deviceId) await this.publish(r.gatewayId, { t: 'kick', device: deviceId, connection: '' });
    }
  }

  /** Subscribes a local device to presence changes of `userIds` and returns their current status. */
  async watchPresence(device: LocalDevice, userIds: readonly string[]): Promise<UserStatus[]> {
    for (const u of userIds) {
      let set = this.presenceSubs.get(u);
      if (!set) this.presenceSubs.set(u, (set = new Set()));
      set.add(device);
    }
    return this.presence.status(userIds);
  }

  get localDeviceCount(): number {
    return this.local.size;
  }

  private async routesByGateway(userIds: readonly string[], exceptDevice?: string): Promise<Map<string, string[]>> {
    const routes = await this.presence.routes(userIds);
    const byGateway = new Map<string, string[]>();
    for (const r of routes) {
      if (r.deviceId === exceptDevice) continue;
      let list = byGateway.get(r.gatewayId);
      if (!list) byGateway.set(r.gatewayId, (list = []));
      list.push(r.deviceId);
    }
    return byGateway;
  }

  private async publish(gatewayId: string, envelope: Envelope): Promise<void> {
    if (gatewayId === this.gatewayId) {
      this.dispatch(envelope); // no broker hop for our own devices
      return;
    }
    await this.publishOn(gatewayChannel(gatewayId), JSON.stringify(envelope), { gatewayId });
  }

  /** Publishes a delivery; a failure is logged and counted, and the next heartbeat makes local devices catch up. */
  private async publishOn(channel: string, message: string, context: Record<string, string>): Promise<void> {
    try {
      await this.broker.publish(channel, message);
    } catch (err) {
      this.degraded = true;
      this.metrics.backendFailures.inc({ backend: 'broker', operation: 'publish' });
      this.log.error({ err, channel, ...context }, 'publish failed; devices will catch up on sync');
    }
  }

  private async announce(status: UserStatus): Promise<void> {
    try {
      await this.broker.publish(PRESENCE_CHANNEL, JSON.stringify(status));
    } catch (err) {
      this.metrics.backendFailures.inc({ backend: 'broker', operation: 'presence' });
      this.log.error({ err }, 'presence announcement failed');
    }
  }

  private onEnvelope(raw: string): void {
    try {
      this.dispatch(JSON.parse(raw) as Envelope);
    } catch (err) {
      this.log.error({ err }, 'bad envelope on gateway channel');
    }
  }

  private dispatch(e: Envelope): void {
    switch (e.t) {
      case 'msg':
        for (const { device, frame } of e.frames) this.local.get(device)?.device.deliver(frame);
        break;
      case 'gmsg':
        for (const d of e.devices) {
          const key = e.keys?.[d];
          this.local.get(d)?.device.deliver(key === undefined ? e.frame : { ...e.frame, key });
        }
        break;
      case 'frame':
        for (const d of e.devices) this.local.get(d)?.device.send(e.frame);
        break;
      case 'kick': {
        const held = this.local.get(e.device);
        if (held && held.connection !== e.connection) {
          this.forgetLocal(e.device);
          held.device.replaced();
        }
        break;
      }
    }
  }

  private forgetLocal(deviceId: string): void {
    const held = this.local.get(deviceId);
    if (!held) return;
    this.local.delete(deviceId);
    const mine = this.localByUser.get(held.device.userId);
    mine?.delete(held.device);
    if (mine?.size === 0) this.localByUser.delete(held.device.userId);
  }

  private async onGroupBroadcast(raw: string): Promise<void> {
    try {
      const { frame, keys, membersVersion } = JSON.parse(raw) as GroupBroadcast;
      if (!this.audience || this.localByUser.size === 0) return;
      const users = await this.audience(frame.conversationId, membersVersion, frame.seq);
      // Walk whichever is smaller: the audience or this gateway's users.
      const [outer, has] = users.size < this.localByUser.size ? [users, (u: string) => this.localByUser.has(u)] : [this.localByUser.keys(), (u: string) => users.has(u)];
      for (const userId of outer) {
        if (!has(userId)) continue;
        for (const device of this.localByUser.get(userId) ?? []) {
          if (device.deviceId === frame.fromDevice) continue;
          const key = keys?.[device.deviceId];
          device.deliver(key === undefined ? frame : { ...frame, key });
        }
      }
    } catch (err) {
      // The store is the record: the next heartbeat makes this gateway's devices catch up.
      this.degraded = true;
      this.metrics.backendFailures.inc({ backend: 'sql', operation: 'group_audience' });
      this.log.error({ err }, 'group broadcast could not be delivered here');
    }
  }

  private onPresence(raw: string): void {
    try {
      const s = JSON.parse(raw) as UserStatus;
      for (const d of this.presenceSubs.get(s.userId) ?? []) {
        d.send({ type: 'presence', userId: s.userId, online: s.online, lastSeen: s.lastSeen });
      }
    } catch (err) {
      this.log.error({ err }, 'bad presence event');
    }
  }

  /**
   * Heartbeat: extends this gateway's routes. If some were gone (presence lost its data) or an
   * earlier call failed, routes are registered again and every local device catches up from
   * the store, since live deliveries in between may have been lost. Presence is a hint; the
   * store is the record.
   */
  private async refreshRoutes(): Promise<void> {
    const locals = [...this.local.values()];
    try {
      const found = await this.presence.refresh(
        this.gatewayId,
        locals.map((l) => l.device.deviceId),
        this.options.presenceTtlMs,
      );
      if (found === locals.length && !this.degraded) return;
      this.degraded = false;
      for (const l of locals) {
        await this.presence.connect(
          { userId: l.device.userId, deviceId: l.device.deviceId, gatewayId: this.gatewayId },
          this.options.presenceTtlMs,
        );
      }
      for (const l of locals) l.device.resync();
      this.log.warn({ devices: locals.length, found }, 'routes restored; local devices resynced');
    } catch (err) {
      this.degraded = true;
      this.metrics.backendFailures.inc({ backend: 'presence', operation: 'refresh' });
      this.log.error({ err }, 'presence refresh failed');
    }
  }
}
