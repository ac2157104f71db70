// The presence port: which gateway holds each connected device, and when each user was last seen.

/** Where one connected device can be reached. */
export interface Route {
  userId: string;
  deviceId: string;
  gatewayId: string;
}

/** Whether a user has any device connected, and when the last one left (epoch ms). */
export interface UserStatus {
  userId: string;
  online: boolean;
  lastSeen: number | null;
}

/** What `connect` found: the gateway that held the device before (if another), and the user's status just before. */
export interface Connected {
  previousGateway: string | null;
  wasOnline: boolean;
  lastSeen: number | null;
}

/** Live routes with each user's route version (in the order asked), read before the routes. */
export interface VersionedRoutes {
  routes: Route[];
  versions: (string | null)[];
}

/**
 * Presence is a hint for routing, never the record: losing it loses no message, because
 * devices that look offline get everything on their next sync.
 *
 * Contract (presence.contract.ts runs it against every adapter):
 * - `connect` records `deviceId → gatewayId` for `ttlMs`; connecting again (any gateway)
 *   replaces the route and refreshes the TTL. It resolves to the gateway that held the device
 *   before, if any and different, so that gateway can close its stale socket, and to the
 *   user's status just before (as `status` would have said), so a gateway can announce a user
 *   who came online without a second call.
 * - `refresh` extends the TTL of routes held by `gatewayId` and returns how many it found;
 *   a route that has moved to another gateway is left alone.
 * - A route not refreshed within its TTL disappears: a dead gateway stops owning its devices.
 * - `disconnect` removes the route only if `gatewayId` still holds it, and records last seen.
 * - `routes` returns the live routes of every device of the given users (any order).
 * - `status` reports online (any live route) and last seen for each user asked about, in order;
 *   a user never seen is offline with lastSeen null.
 * - Route versions: every `connect` and every `disconnect` that removes a route gives the
 *   user a new version, a token never handed out before (not even across a restart of the
 *   store); `refresh` and expiry do not. `versions` reads them (null: none recorded), and
 *   `routesAt` reads the versions before the routes, so a gateway that caches the routes
 *   with that version and later finds the version unchanged knows no device of the user
 *   connected or moved since.
 */
export interface Presence {
  connect(route: Route, ttlMs: number): Promise<Connected>;
  refresh(gatewayId: string, deviceIds: readonly string[], ttlMs: number): Promise<number>;
  disconnect(route: Route): Promise<void>;
  routes(userIds: readonly string[]): Promise<Route[]>;
  routesAt(userIds: readonly string[]): Promise<VersionedRoutes>;
  versions(userIds: readonly string[]): Promise<(string | null)[]>;
  status(userIds: readonly string[]): Promise<UserStatus[]>;
  close(): Promise<void>;
}
