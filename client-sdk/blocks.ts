// The users this user blocks, as the client knows them, so that it can drop their group messages (the server drops their direct messages itself).
import type { AccountApi, BlockedUser } from './account.js';

/**
 * Why the client keeps the list: the server stores a blocked user's direct messages for nobody,
 * but a group message is one ciphertext for every member, so the server delivers it and the
 * blocker's client drops it.
 *
 * The list is fetched from the server (`GET /v1/blocks`) before the first group message of each
 * connection, so a block made on another of the user's devices applies here from this device's
 * next reconnect; this client's own block and unblock calls apply at once (when they resolve).
 * A client that never connected (a service worker's handlePush) knows only what its own calls told it.
 * @example const blocks = new BlockList(accountApi); await blocks.current(); if (blocks.has(f.from)) drop(f);
 */
export class BlockList {
  private readonly users = new Set<string>();
  private stale = true;
  /** Changes made by this client while a fetch was out, per fetch: its answer may predate them, so they are applied over it. */
  private readonly during = new Set<Map<string, boolean>>();

  constructor(private readonly api: Pick<AccountApi, 'block' | 'unblock' | 'blocks'>) {}

  /** Whether this user blocks `userId`, as far as this client knows. */
  has(userId: string): boolean {
    return this.users.has(userId);
  }

  /** A new connection: the list is fetched again before the next group message (current()). */
  reconnected(): void {
    this.stale = true;
  }

  /** Fetches the list if this connection has not yet (a failed fetch is tried again at the next call; the old list stands meanwhile). */
  async current(): Promise<void> {
    if (!this.stale) return;
    this.stale = false;
    try {
      await this.list();
    } catch (err) {
      this.stale = true;
      throw err;
    }
  }

  /** The users blocked, newest first, from the server; the client's list becomes it. */
  async list(): Promise<BlockedUser[]> {
    const changes = new Map<string, boolean>();
    this.during.add(changes);
    try {
      const blocked = await this.api.blocks();
      this.users.clear();
      for (const b of blocked) this.users.add(b.userId);
      for (const [userId, on] of changes) this.mark(userId, on);
      return blocked;
    } finally {
      this.during.delete(changes);
    }
  }

  async block(userId: string): Promise<void> {
    await this.api.block(userId);
    this.set(userId, true);
  }

  async unblock(userId: string): Promise<void> {
    await this.api.unblock(userId);
    this.set(userId, false);
  }

  private set(userId: string, on: boolean): void {
    this.mark(userId, on);
    for (const changes of this.during) changes.set(userId, on);
  }

  private mark(userId: string, on: boolean): void {
    if (on) this.users.add(userId);
    else this.users.delete(userId);
  }
}
