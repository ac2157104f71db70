// Presence on Redis (ioredis): routes with TTLs shared by every gateway process.
import type { Redis } from 'ioredis';
import type { Clock } from './clock.js';
import { AppError } from './errors.js';
import { randomUUID } from 'node:crypto';
import type { Connected, Presence, Route, UserStatus, VersionedRoutes } from './presence.js';

/**
 * Key layout (prefix default `parley:`):
 * - `{p}route:{deviceId}` → gateway id, with a PX TTL; heartbeats extend it (PEXPIRE) only
 *   while the same gateway holds it, so a dead gateway's routes vanish within the TTL.
 * - `{p}devices:{userId}` → set of the user's device ids that may be online; members whose
 *   route key is gone are pruned lazily on read.
 * - `{p}seen:{userId}` → last seen, epoch ms: written on disconnect, and when a route is
 *   found expired (then it is the time that was noticed, at most one TTL late).
 * - `{p}rv:{userId}` → the user's route version: a fresh random token written by every
 *   connect and every disconnect that removed a route, in the same script, so a version read
 *   after a connect returned always differs from one read before it (even if Redis lost its
 *   data in between: a token is never reused).
 * Single Redis (or a primary with replicas); multi-key scripts assume no Redis Cluster.
 * Every command failure is an `unavailable` AppError.
 */
export interface RedisPresenceOptions {
  /** Key prefix. Default `parley:`. */
  prefix?: string;
}

// Also reads the user's status just before, as status() does (pruning expired devices and
// recording when that was noticed), so announcing a user who came online needs no second call.
const CONNECT = `
local prev = redis.call('GET', KEYS[1])
local online = 0
for _, d in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if redis.call('EXISTS', ARGV[6] .. d) == 1 then
    online = 1
  else
    redis.call('SREM', KEYS[2], d)
    redis.call('SET', KEYS[4], ARGV[5])
  end
end
local seen = redis.call('GET', KEYS[4])
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SET', KEYS[3], ARGV[4])
if not prev or prev == ARGV[1] then prev = false end
return {prev, online, seen}`;

const REFRESH = `
local n = 0
for i, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('PEXPIRE', k, ARGV[2]); n = n + 1 end
end
return n`;

const DISCONNECT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('SREM', KEYS[2], ARGV[2])
  redis.call('SET', KEYS[3], ARGV[3])
  redis.call('SET', KEYS[4], ARGV[4])
  return 1
end
return 0`;

/** Refresh scripts take at most this many keys, so one call never blocks Redis for long. */
const REFRESH_CHUNK = 1000;

export class RedisPresence implements Presence {
  private readonly p: string;

  constructor(
    private readonly redis: Redis,
    private readonly clock: Clock,
    options: RedisPresenceOptions = {},
  ) {
    this.p = options.prefix ?? 'parley:';
  }

  async connect(route: Route, ttlMs: number): Promise<Connected> {
    const [prev, online, seen] = (await this.run(() =>
      this.redis.eval(
        CONNECT,
        4,
        this.routeKey(route.deviceId),
        this.devicesKey(route.userId),
        this.versionKey(route.userId),
        this.seenKey(route.userId),
        route.gatewayId,
        ttlMs,
        route.deviceId,
        randomUUID(),
        this.clock.now(),
        this.routeKey(''),
      ),
    )) as [string | null, number, string | null];
    return { previousGateway: typeof prev === 'string' ? prev : null, wasOnline: online === 1, lastSeen: seen ? Number(seen) : null };
  }

  async refresh(gatewayId: string, deviceIds: readonly string[], ttlMs: number): Promise<number> {
    let n = 0;
    for (let i = 0; i < deviceIds.length; i += REFRESH_CHUNK) {
      const keys = deviceIds.slice(i, i + REFRESH_CHUNK).map((d) => this.routeKey(d));
      n += Number(await this.run(() => this.redis.eval(REFRESH, keys.length, ...keys, gatewayId, ttlMs)));
    }
    return n;
  }

  async disconnect(route: Route): Promise<void> {
    await this.run(() =>
      this.redis.eval(
        DISCONNECT,
        4,
        this.routeKey(route.deviceId),
        this.devicesKey(route.userId),
        this.seenKey(route.userId),
        this.versionKey(route.userId),
        route.gatewayId,
        route.deviceId,
        this.clock.now(),
        randomUUID(),
      ),
    );
  }

  async routes(userIds: readonly string[]): Promise<Route[]> {
    return (await this.live(userIds, false)).routes;
  }

  async routesAt(userIds: readonly string[]): Promise<VersionedRoutes> {
    return this.live(userIds, true);
  }

  async versions(userIds: readonly string[]): Promise<(string | null)[]> {
    if (userIds.length === 0) return [];
    return this.run(() => this.redis.mget(userIds.map((u) => this.versionKey(u))));
  }

  async status(userIds: readonly string[]): Promise<UserStatus[]> {
    const { routes } = await this.live(userIds, false);
    const seen = userIds.length > 0 ? await this.run(() => this.redis.mget(userIds.map((u) => this.seenKey(u)))) : [];
    const online = new Set(routes.map((r) => r.userId));
    return userIds.map((userId, i) => ({ userId, online: online.has(userId), lastSeen: seen[i] ? Number(seen[i]) : null }));
  }

  async close(): Promise<void> {}

  /**
   * Live routes of the users' devices (and, if asked, their route versions, read first in the
   * same pipeline); prunes devices whose route expired and records last seen.
   */
  private async live(userIds: readonly string[], withVersions: boolean): Promise<VersionedRoutes> {
    if (userIds.length === 0) return { routes: [], versions: [] };
    const replies = await this.run(async () => {
      const pipe = this.redis.pipeline();
      if (withVersions) pipe.mget(userIds.map((u) => this.versionKey(u)));
      for (const u of userIds) pipe.smembers(this.devicesKey(u));
      return (await pipe.exec())!.map(([err, v]) => {
        if (err) throw err;
        return v;
      });
    });
    const versions = withVersions ? (replies.shift() as (string | null)[]) : [];
    const members = replies as string[][];
    const candidates: { userId: string; deviceId: string }[] = [];
    userIds.forEach((userId, i) => {
      for (const deviceId of members[i] ?? []) candidates.push({ userId, deviceId });
    });
    if (candidates.length === 0) return { routes: [], versions };
    const gateways = await this.run(() => this.redis.mget(candidates.map((c) => this.routeKey(c.deviceId))));
    const routes: Route[] = [];
    const expired: { userId: string; deviceId: string }[] = [];
    candidates.forEach((c, i) => {
      const g = gateways[i];
      if (g) routes.push({ userId: c.userId, deviceId: c.deviceId, gatewayId: g });
      else expired.push(c);
    });
    if (expired.length > 0) {
      const now = String(this.clock.now());
      await this.run(async () => {
        const pipe = this.redis.pipeline();
        for (const e of expired) {
          pipe.srem(this.devicesKey(e.userId), e.deviceId);
          pipe.set(this.seenKey(e.userId), now);
        }
        await pipe.exec();
      });
    }
    return { routes, versions };
  }

  private routeKey(deviceId: string): string {
    return `${this.p}route:${deviceId}`;
  }
  private devicesKey(userId: string): string {
    return `${this.p}devices:${userId}`;
  }
  private seenKey(userId: string): string {
    return `${this.p}seen:${userId}`;
  }
  private versionKey(userId: string): string {
    return `${this.p}rv:${userId}`;
  }

  private async run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw new AppError('unavailable', 'presence store unavailable', { cause: err });
    }
  }
}
