// The SDK's REST calls for the inbox, blocks, reports, the account and delete for everyone (docs/protocol.md §1).

import type { ConversationPage, ConversationSummary, ReportedMessage } from '../protocol/control.js';

export type { ConversationPage, ConversationSummary, ReportedMessage };

/** How the client makes an authenticated REST call (its `call`, which fails over between gateways). */
export type RestCall = <T>(method: string, path: string, options: { body?: unknown; token?: string }) => Promise<T>;

export interface BlockedUser {
  userId: string;
  /** Epoch ms. */
  since: number;
}

export interface ReportInput {
  /** The user reported. */
  userId: string;
  conversationId?: string;
  /** At most 1 000 characters. */
  reason: string;
  /** At most 50; these become readable by the operator. Nothing else of the conversation is sent. */
  messages?: ReportedMessage[];
}

export interface AccountDevice {
  id: string;
  name: string;
  createdAt: number;
  lastSeenAt: number;
  /** This device. */
  current: boolean;
}

const path = (s: string) => encodeURIComponent(s);

/**
 * The account side of the client: plain REST calls, each with a fresh token. Errors are the
 * server's (`ParleyError` with its code): e.g. `unauthorized` for a wrong password,
 * `rate_limited` for too many reports, `forbidden` for a delete for everyone past the window.
 * @example const api = new AccountApi({ call, freshToken }); const { conversations } = await api.conversations({ limit: 20 });
 */
export class AccountApi {
  constructor(private readonly rest: { call: RestCall; freshToken: () => Promise<string> }) {}

  /** A page of your conversations, most recent activity first. */
  async conversations(options: { limit?: number; cursor?: string } = {}): Promise<ConversationPage> {
    const q = new URLSearchParams();
    if (options.limit !== undefined) q.set('limit', String(options.limit));
    if (options.cursor !== undefined) q.set('cursor', options.cursor);
    const query = q.toString();
    return this.send<ConversationPage>('GET', `/v1/conversations${query ? `?${query}` : ''}`);
  }

  /** Blocks a user: they are not told; their messages to you reach none of your devices. */
  async block(userId: string): Promise<void> {
    await this.send('POST', '/v1/blocks', { userId });
  }

  async unblock(userId: string): Promise<void> {
    await this.send('DELETE', `/v1/blocks/${path(userId)}`);
  }

  /** The users you block, newest first. */
  async blocks(): Promise<BlockedUser[]> {
    return (await this.send<{ blocks: BlockedUser[] }>('GET', '/v1/blocks')).blocks;
  }

  /** Reports a user to the operator, with the decrypted messages you choose to attach; resolves to the report's id. */
  async report(report: ReportInput): Promise<string> {
    return (await this.send<{ id: string }>('POST', '/v1/reports', report)).id;
  }

  /** Changes the password; every other device of yours is logged out (its sockets close with 4500). Log in with `next` from now on. */
  async changePassword(current: string, next: string): Promise<void> {
    await this.send('PUT', '/v1/account/password', { current, new: next });
  }

  /** Your devices with their names and when each was last seen. */
  async devices(): Promise<AccountDevice[]> {
    return (await this.send<{ devices: AccountDevice[] }>('GET', '/v1/account/devices')).devices;
  }

  /** Deletes the account for good (this device's socket closes too). */
  async deleteAccount(password: string): Promise<void> {
    await this.send('DELETE', '/v1/account', { password });
  }

  /**
   * Erases a message this device sent, for the devices that have not fetched it yet (they get a
   * tombstone); the devices that have it learn of the deletion from your encrypted delete
   * action, which is sent separately. `not_found` when it is not this device's or no longer
   * stored (every device has it), `forbidden` past the server's window.
   */
  async unsend(conversationId: string, seq: number): Promise<void> {
    await this.send('DELETE', `/v1/conversations/${path(conversationId)}/messages/${seq}`);
  }

  private async send<T = void>(method: string, url: string, body?: unknown): Promise<T> {
    const token = await this.rest.freshToken();
    return this.rest.call<T>(method, url, body === undefined ? { token } : { body, token });
  }
}
