// In-memory presence: the embedded default. Single process only.
import type { Clock } from './clock.js';
import type { Connected, Presence, Route, UserStatus, VersionedRoutes } from './presence.js';

interface Entry {
  route: Route;
  expiresAt: number;
}

/** Expiry is checked lazily on read against the injected clock; nothing runs in the background. */
export class MemoryPresence implements Presence {
  private readonly byDevice = new Map<string, Entry>();
  private readonly byUser = new Map<string, Set<string>>();
  private readonly lastSeen = new Map<string, number>();
  private readonly routeVersions = new Map<string, string>();
  private nextVersion = 0;

  constructor(private readonly clock: Clock) {}

  async connect(route: Route, ttlMs: number): Promise<Connected> {
    const [before] = await this.status([route.userId]);
    const prev = this.live(route.deviceId);
    this.byDevice.set(route.deviceId, { route: { ...route }, expiresAt: this.clock.now() + ttlMs });
    let devices = this.byUser.get(route.userId);
    if (!devices) this.byUser.set(route.userId, (devices = new Set()));
    devices.add(route.deviceId);
    this.bump(route.userId);
    return {
      previousGateway: prev && prev.route.gatewayId !== route.gatewayId ? prev.route.gatewayId : null,
      wasOnline: before!.online,
      lastSeen: before!.lastSeen,
    };
  }

  async refresh(gatewayId: string, deviceIds: readonly string[], ttlMs: number): Promise<number> {
    let n = 0;
    for (const id of deviceIds) {
      const e = this.live(id);
      if (e && e.route.gatewayId === gatewayId) {
        e.expiresAt = this.clock.now() + ttlMs;
        n++;
      }
    }
    return n;
  }

  async disconnect(route: Route): Promise<void> {
    const e = this.byDevice.get(route.deviceId);
    if (!e || e.route.gatewayId !== route.gatewayId) return;
    this.byDevice.delete(route.deviceId);
    this.byUser.get(route.userId)?.delete(route.deviceId);
    this.lastSeen.set(route.userId, this.clock.now());
    this.bump(route.userId);
  }

  async routesAt(userIds: readonly string[]): Promise<VersionedRoutes> {
    const versions = await this.versions(userIds);
    return { routes: await this.routes(userIds), versions };
  }

  async versions(userIds: readonly string[]): Promise<(string | null)[]> {
    return userIds.map((u) => this.routeVersions.get(u) ?? null);
  }

  async routes(userIds: readonly string[]): Promise<Route[]> {
    const out: Route[] = [];
    for (const u of userIds) {
      for (const d of this.byUser.get(u) ?? []) {
        const e = this.live(d);
        if (e) out.push({ ...e.route });
      }
    }
    return out;
  }

  async status(userIds: readonly string[]): Promise<UserStatus[]> {
    return userIds.map((userId) => {
      let online = false;
      for (const d of this.byUser.get(userId) ?? []) if (this.live(d)) online = true;
      return { userId, online, lastSeen: this.lastSeen.get(userId) ?? null };
    });
  }

  async close(): Promise<void> {}

  private bump(userId: string): void {
    this.routeVersions.set(userId, String(++this.nextVersion));
  }

  /** The entry if it has not expired; an expired one is removed and counts as last seen. */
  private live(deviceId: string): Entry | undefined {
    const e = this.byDevice.get(deviceId);
    if (!e) return undefined;
    if (e.expiresAt > this.clock.now()) return e;
    this.byDevice.delete(deviceId);
    this.byUser.get(e.route.userId)?.delete(deviceId);
    this.lastSeen.set(e.route.userId, e.expiresAt);
    return undefined;
  }
}
