// Delivery: routes frames to the devices' gateways (one publish per gateway) and keeps this gateway's routes alive.
import { randomUUID } from 'node:crypto';
import type { MsgFrame, ServerFrame } from '../protocol/frames.js';
import { type Broker, gatewayChannel, GROUPS_CHANNEL, PRESENCE_CHANNEL } from '../platform/broker.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import type { Presence, Route, UserStatus } from '../platform/presence.js';

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

/** What travels on a gateway's channel: one publish carries everything a flush has for that gateway. */
type Envelope = { t: 'out'; msgs?: MsgItem[]; groups?: GroupItem[]; frames?: FrameItem[] } | { t: 'kick'; device: string; connection: string };

/** A stored message for one device (its own body). */
interface MsgItem {
  device: string;
  frame: MsgFrame;
}
/** A group message for several devices: the frame once, and only the per-device keys of these devices. */
interface GroupItem {
  frame: MsgFrame;
  devices: string[];
  keys?: Record<string, string>;
}
/** An ephemeral frame (receipt, typing, ...) for several devices. */
interface FrameItem {
  devices: string[];
  frame: ServerFrame;
}

/** What a flush sends to one gateway, built up by the flush's jobs. */
class GatewayBatch {
  readonly msgs: MsgItem[] = [];
  readonly groups: GroupItem[] = [];
  readonly frames: FrameItem[] = [];

  get empty(): boolean {
    return this.msgs.length === 0 && this.groups.length === 0 && this.frames.length === 0;
  }

  envelope(): Envelope {
    return {
      t: 'out',
      ...(this.msgs.length > 0 ? { msgs: this.msgs } : {}),
      ...(this.groups.length > 0 ? { groups: this.groups } : {}),
      ...(this.frames.length > 0 ? { frames: this.frames } : {}),
    };
  }
}

/** One delivery waiting for the next flush: the users it is for, and how it fills a gateway's batch. */
interface Job {
  users: readonly string[];
  except: string | undefined;
  /** Adds this job's share for `devices` (all connected to one gateway) to `batch`; returns how many devices it addressed. */
  add(batch: GatewayBatch, devices: readonly string[]): number;
  resolve(devices: number): void;
  reject(err: unknown): void;
}

/** What a gateway remembers of one user's routes, and the route version they were read at. */
interface CachedRoutes {
  version: string | null;
  routes: readonly Route[];
  readAt: number;
}

/** At most this many users' routes are cached per gateway (oldest dropped first). */
const ROUTE_CACHE_MAX = 100_000;

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
 * Batching: deliveries asked for in one turn of the event loop (a commit batch resolves all
 * its messages at once) are flushed together: one route lookup for all their users and one
 * publish per destination gateway, in the order asked.
 *
 * Routes are cached per user with the user's route version (see Presence). A flush uses the
 * cache and, in parallel with its publishes, reads the versions of the users it served from
 * it (one command); a user whose version changed is read again and the flush forwards to the
 * devices it had missed or sent to the wrong gateway. Why a stale cache never loses a live
 * delivery: a device's session registers its route (which changes the version) before it
 * reads its sync from the store, and a flush starts only after its messages committed. So a
 * message committed after the sync read is flushed after the version changed, and the flush
 * sees the change and forwards; one committed before it is in the sync. A device that left a
 * gateway is simply not found there (the frame is dropped; the device syncs where it is).
 *
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
  private readonly routeCache = new Map<string, CachedRoutes>();
  /** Deliveries asked for since the last flush. */
  private pending: Job[] = [];
  private flushScheduled = false;
  /** Flushes issue their publishes one after another, so one gateway gets them in the order asked. */
  private flushing: Promise<void> = Promise.resolve();

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
    // Copied flat: randomUUID() builds its string of ~14 pieces (~450 B, kept as long as the connection).
    const connection = Buffer.from(randomUUID(), 'latin1').toString('latin1');
    const older = this.local.get(device.deviceId);
    this.local.set(device.deviceId, { device, connection });
    if (older) this.localByUser.get(older.device.userId)?.delete(older.device);
    let mine = this.localByUser.get(device.userId);
    if (!mine) this.localByUser.set(device.userId, (mine = new Set()));
    mine.add(device);
    if (older) older.device.replaced();
    this.routeCache.delete(device.userId);
    const { previousGateway, wasOnline, lastSeen } = await this.presence.connect(
      { userId: device.userId, deviceId: device.deviceId, gatewayId: this.gatewayId },
      this.options.presenceTtlMs,
    );
    if (previousGateway) await this.publish(previousGateway, { t: 'kick', device: device.deviceId, connection });
    if (!wasOnline) await this.announce({ userId: device.userId, online: true, lastSeen });
    return connection;
  }

  /** Forgets a device that disconnected, if this connection still holds it. */
  async detach(device: LocalDevice, connection: string): Promise<void> {
    for (const set of this.presenceSubs.values()) set.delete(device);
    if (this.local.get(device.deviceId)?.connection !== connection) return;
    this.forgetLocal(device.deviceId);
    this.routeCache.delete(device.userId);
    await this.presence.disconnect({ userId: device.userId, deviceId: device.deviceId, gatewayId: this.gatewayId });
    const [after] = await this.presence.status([device.userId]);
    if (after && !after.online) await this.announce(after);
  }

  /**
   * Delivers a stored message to the online devices among `payloads`' keys, except
   * `exceptDevice`; resolves to the devices it was handed to (their gateways' publishes issued).
   */
  async deliverMessage(
    userIds: readonly string[],
    base: Omit<MsgFrame, 'body' | 'type'>,
    payloads: Record<string, string>,
    exceptDevice: string,
  ): Promise<ReadonlySet<string>> {
    const reached = new Set<string>();
    await this.enqueue(userIds, exceptDevice, (batch, devices) => {
      let n = 0;
      for (const device of devices) {
        const body = payloads[device];
        if (body === undefined) continue;
        batch.msgs.push({ device, frame: { type: 'msg', ...base, body } });
        reached.add(device);
        n++;
      }
      return n;
    });
    return reached;
  }

  /**
   * Delivers a group message (one shared body) to the online devices of `userIds` except
   * `exceptDevice`: per gateway the frame once, with only the per-device keys of that
   * gateway's devices. Resolves to the number of devices addressed.
   */
  async deliverGroup(userIds: readonly string[], frame: MsgFrame, keys: Record<string, string> | undefined, exceptDevice: string | null): Promise<ReadonlySet<string>> {
    const reached = new Set<string>();
    await this.enqueue(userIds, exceptDevice ?? undefined, (batch, devices) => {
      const mine = keys ? Object.fromEntries(devices.filter((d) => keys[d] !== undefined).map((d) => [d, keys[d]!])) : undefined;
      batch.groups.push({ frame, devices: [...devices], ...(mine ? { keys: mine } : {}) });
      for (const d of devices) reached.add(d);
      return devices.length;
    });
    return reached;
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
    await this.enqueue(userIds, exceptDevice, (batch, devices) => {
      batch.frames.push({ devices: [...devices], frame });
      return devices.length;
    });
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

  /** Queues a delivery for the next flush; resolves once its publishes were issued, to the number of devices addressed. */
  private enqueue(users: readonly string[], except: string | undefined, add: Job['add']): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.pending.push({ users, except, add, resolve, reject });
      if (this.flushScheduled) return;
      this.flushScheduled = true;
      // After this turn's callbacks: a commit batch resolves all its messages in one turn.
      setImmediate(() => {
        const jobs = this.pending;
        this.pending = [];
        this.flushScheduled = false;
        this.flushing = this.flushing
          .then(() => this.flush(jobs))
          .catch((err) => {
            // A local device's handler threw: its jobs fail (resolved ones stay resolved), later flushes go on.
            for (const j of jobs) j.reject(err);
            this.log.error({ err }, 'delivery flush failed; devices will catch up on sync');
          });
      });
    });
  }

  /**
   * One flush: routes for every user of the jobs (cache, then one read for the misses), one
   * publish per gateway, and a check of the cached users' versions that forwards what a stale
   * entry missed. Resolves once the publishes were issued (the check runs on after it).
   */
  private async flush(jobs: Job[]): Promise<void> {
    const users = [...new Set(jobs.flatMap((j) => j.users))];
    let served: Map<string, readonly Route[]>;
    let fromCache: { userId: string; version: string | null }[];
    try {
      ({ served, fromCache } = await this.lookup(users));
    } catch (err) {
      for (const j of jobs) j.reject(err);
      return;
    }
    const batches = new Map<string, GatewayBatch>();
    for (const job of jobs) job.resolve(this.fill(job, served, batches, () => true));
    const published = this.publishAll(batches);
    if (fromCache.length > 0) void this.verify(jobs, served, fromCache);
    await published;
  }

  /** Adds each job's share to the batches of the gateways its users' devices are on (only routes `wanted` accepts). */
  private fill(job: Job, served: ReadonlyMap<string, readonly Route[]>, batches: Map<string, GatewayBatch>, wanted: (r: Route) => boolean): number {
    const byGateway = new Map<string, string[]>();
    for (const u of job.users) {
      for (const r of served.get(u) ?? []) {
        if (r.deviceId === job.except || !wanted(r)) continue;
        let list = byGateway.get(r.gatewayId);
        if (!list) byGateway.set(r.gatewayId, (list = []));
        list.push(r.deviceId);
      }
    }
    let n = 0;
    for (const [gw, devices] of byGateway) {
      let batch = batches.get(gw);
      if (!batch) batches.set(gw, (batch = new GatewayBatch()));
      n += job.add(batch, devices);
    }
    return n;
  }

  /** Routes of `users`: fresh cache entries as they are, the rest read (with their versions) in one call. */
  private async lookup(users: readonly string[]): Promise<{ served: Map<string, readonly Route[]>; fromCache: { userId: string; version: string | null }[] }> {
    const served = new Map<string, readonly Route[]>();
    const fromCache: { userId: string; version: string | null }[] = [];
    const misses: string[] = [];
    const oldest = performance.now() - this.options.presenceTtlMs;
    for (const u of users) {
      const hit = this.routeCache.get(u);
      if (hit && hit.readAt >= oldest) {
        served.set(u, hit.routes);
        fromCache.push({ userId: u, version: hit.version });
      } else {
        misses.push(u);
      }
    }
    if (misses.length > 0) {
      for (const [u, routes] of await this.readRoutes(misses)) served.set(u, routes);
    }
    return { served, fromCache };
  }

  /** Reads users' routes and versions from presence and caches them. */
  private async readRoutes(users: readonly string[]): Promise<Map<string, Route[]>> {
    const { routes, versions } = await this.presence.routesAt(users);
    const byUser = new Map<string, Route[]>(users.map((u) => [u, []]));
    for (const r of routes) byUser.get(r.userId)?.push(r);
    const readAt = performance.now();
    users.forEach((u, i) => {
      this.routeCache.delete(u); // re-inserted last: the Map's order is the eviction order
      this.routeCache.set(u, { version: versions[i] ?? null, routes: byUser.get(u)!, readAt });
    });
    for (const oldest of this.routeCache.keys()) {
      if (this.routeCache.size <= ROUTE_CACHE_MAX) break;
      this.routeCache.delete(oldest);
    }
    return byUser;
  }

  /**
   * Reads the versions of the users a flush served from the cache; for each whose version
   * changed, reads the routes again and sends the flush's jobs to the devices the cached
   * routes did not reach (new devices, or devices now on another gateway).
   */
  private async verify(jobs: Job[], served: ReadonlyMap<string, readonly Route[]>, fromCache: { userId: string; version: string | null }[]): Promise<void> {
    try {
      const now = await this.presence.versions(fromCache.map((c) => c.userId));
      const stale = fromCache.filter((c, i) => (now[i] ?? null) !== c.version).map((c) => c.userId);
      if (stale.length === 0) return;
      this.metrics.routeCacheStale.inc(stale.length);
      for (const u of stale) this.routeCache.delete(u);
      const fresh = await this.readRoutes(stale);
      const reached = new Set<string>();
      for (const u of stale) for (const r of served.get(u) ?? []) reached.add(`${r.deviceId}@${r.gatewayId}`);
      const batches = new Map<string, GatewayBatch>();
      for (const job of jobs) {
        if (job.users.some((u) => fresh.has(u))) this.fill(job, fresh, batches, (r) => !reached.has(`${r.deviceId}@${r.gatewayId}`));
      }
      await this.publishAll(batches);
    } catch (err) {
      // Presence failed: the heartbeat re-registers routes and makes devices catch up from the store.
      this.degraded = true;
      this.metrics.backendFailures.inc({ backend: 'presence', operation: 'route_versions' });
      this.log.error({ err }, 'route versions could not be checked; devices will catch up on sync');
    }
  }

  /** Publishes each non-empty batch to its gateway (our own devices directly). */
  private async publishAll(batches: ReadonlyMap<string, GatewayBatch>): Promise<void> {
    const sends: Promise<void>[] = [];
    for (const [gw, batch] of batches) if (!batch.empty) sends.push(this.publish(gw, batch.envelope()));
    await Promise.all(sends);
  }

  private async publish(gatewayId: string, envelope: Envelope): Promise<void> {
    if (gatewayId === this.gatewayId) {
      this.dispatch(envelope); // no broker hop for our own devices
      return;
    }
    this.metrics.deliveryPublishes.inc();
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
    if (e.t === 'kick') {
      const held = this.local.get(e.device);
      if (held && held.connection !== e.connection) {
        this.forgetLocal(e.device);
        held.device.replaced();
      }
      return;
    }
    for (const { device, frame } of e.msgs ?? []) this.local.get(device)?.device.deliver(frame);
    for (const g of e.groups ?? []) {
      for (const d of g.devices) {
        const key = g.keys?.[d];
        this.local.get(d)?.device.deliver(key === undefined ? g.frame : { ...g.frame, key });
      }
    }
    for (const f of e.frames ?? []) for (const d of f.devices) this.local.get(d)?.device.send(f.frame);
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
