// MessagesManager: what the gateway calls to send, acknowledge and mark read; it checks, persists and delivers.
import type { ClientFrame, DevicePayload, ReceiptKind } from '../protocol/frames.js';
import type { Accounts } from '../accounts/accounts.js';
import type { Blocks } from '../accounts/blocks.js';
import { AppError } from '../platform/errors.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import { type AppendResult, MessageStore } from './message-store.js';
import { currentMembers, type DeviceRelay, type GroupMessaging, type GroupRecord, type NoticeSink } from './ports.js';

type SendFrame = Extract<ClientFrame, { type: 'send' }>;
type GroupSendFrame = Extract<ClientFrame, { type: 'group.send' }>;

/** The devices a send's payloads name; `invalid` if one is named twice. */
function payloadDevices(payloads: readonly DevicePayload[]): Set<string> {
  const given = new Set(payloads.map((p) => p.device));
  if (given.size !== payloads.length) throw new AppError('invalid', 'a device is listed twice');
  return given;
}

/** Which expected devices a send's payloads leave out, and which they name that are not expected. */
function coverage(expected: ReadonlySet<string>, payloads: readonly DevicePayload[]): { missing: string[]; extra: string[] } {
  const given = payloadDevices(payloads);
  return { missing: [...expected].filter((d) => !given.has(d)), extra: [...given].filter((d) => !expected.has(d)) };
}

export interface Sender {
  userId: string;
  deviceId: string;
}

export interface MessagesOptions {
  /**
   * Called for each direct send once its commit resolved and before live delivery is handed
   * to the relay. For fault-injection tests only (test/support/fault-server.ts); unset in production.
   */
  afterCommit?: (info: { conversationId: string; seq: number }) => void;
  /** Told of each new direct message, for pushes to devices that are not connected. */
  notices?: NoticeSink;
  /**
   * Disappearing messages: how far ahead a send's `expiresAt` may be (MESSAGE_RETENTION_DAYS in
   * ms, since nothing outlives the retention period anyway). Default 30 days.
   */
  expiry?: { maxAheadMs: number };
  /** Who blocks whom (see the class comment); unset: nobody blocks anybody. */
  blocks?: Pick<Blocks, 'blockedBy' | 'blockersAmong'>;
}

const NOBODY: ReadonlySet<string> = new Set();

const DEFAULT_MAX_AHEAD_MS = 30 * 86_400_000;

/**
 * The sender comes from the authenticated connection, never from the frame. A send must
 * carry exactly one ciphertext per current device of the recipient and per other device of
 * the sender; otherwise it fails with `devices_changed` listing what is missing and extra,
 * and the client re-encrypts. A resend of a stored client id is acknowledged with the
 * original seq and delivered again (the earlier delivery may have died with its gateway).
 *
 * Blocking. A direct message from a user the recipient blocks passes the same checks and gets
 * the same `sent` with a real seq (the sender learns nothing), but it is stored without the
 * recipient's copies: only the sender's other devices get it, the recipient's devices get
 * nothing live, on sync or by push, and it never counts as unread for them (the index records
 * whom it was hidden from). The row keeps the seq gap-free; its recipient-side trace is that
 * the conversation's `lastSeq` moves. A blocker's typing and receipts are not relayed to the
 * users they block, and their presence is hidden from them (`not_found`, as for a stranger).
 * Group messages are one ciphertext for every member, so they are not filtered here: the
 * blocker's client drops a blocked member's group messages (docs/protocol.md). Block lists
 * come from a per-process cache (accounts/blocks.ts): another process follows within seconds.
 */
export class MessagesManager {
  constructor(
    private readonly store: MessageStore,
    private readonly accounts: Accounts,
    private readonly delivery: DeviceRelay,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly group: GroupMessaging,
    private readonly options: MessagesOptions = {},
  ) {}

  /** Checks and persists a send; resolves once durable. */
  async send(sender: Sender, frame: SendFrame): Promise<AppendResult> {
    return (await this.submit(sender, frame)).done;
  }

  /**
   * Checks a send and queues it for the group commit without waiting for the commit: calls
   * made one after another are committed in that order (the gateway chains them per
   * connection so a device's messages keep their order), while commits still batch.
   */
  async submit(sender: Sender, frame: SendFrame): Promise<{ done: Promise<AppendResult> }> {
    this.checkExpiry(frame.expiresAt);
    const started = performance.now();
    const [theirs, mine, blockedByThem] = await Promise.all([
      this.accounts.devices(frame.to),
      this.accounts.devices(sender.userId),
      this.blockedBy(frame.to),
    ]);
    if (theirs.length === 0) throw new AppError('not_found', 'no such user');

    const expected = new Set([...theirs, ...mine].map((d) => d.id).filter((id) => id !== sender.deviceId));
    const { missing, extra } = coverage(expected, frame.payloads);
    if (missing.length > 0 || extra.length > 0) {
      throw new AppError('devices_changed', 'encrypt for exactly the current devices', { details: { missing, extra } });
    }

    // Blocked: stored and delivered for the sender's other devices only (see the class comment).
    const hidden = blockedByThem.has(sender.userId) ? new Set(theirs.map((d) => d.id)) : NOBODY;
    const payloads = Object.fromEntries(frame.payloads.filter((p) => !hidden.has(p.device)).map((p) => [p.device, p.body]));
    const conversationId = await this.store.ensureDirect(sender.userId, frame.to);
    const appended = this.store.append({
      conversationId,
      senderId: sender.userId,
      senderDeviceId: sender.deviceId,
      clientId: frame.id,
      payloads,
      ...(frame.expiresAt === undefined ? {} : { expiresAt: frame.expiresAt }),
    });
    const recipients = hidden.size > 0 ? [] : theirs.map((d) => d.id).filter((id) => id !== sender.deviceId);
    return { done: appended.then((result) => this.committed(sender, frame, payloads, recipients, result, started)) };
  }

  private committed(sender: Sender, frame: SendFrame, payloads: Record<string, string>, recipients: readonly string[], result: AppendResult, started: number): AppendResult {
    const conversationId = result.conversationId;
    if (result.duplicate && conversationId !== MessageStore.directConversationId(sender.userId, frame.to)) {
      // The id was used before for another conversation: never deliver this copy there.
      throw new AppError('conflict', 'this message id was already used for another conversation');
    }
    this.metrics.sendCommitSeconds.observe((performance.now() - started) / 1000);
    if (!result.duplicate) this.metrics.messagesSent.inc();

    const base = {
      id: frame.id,
      conversationId: result.conversationId,
      seq: result.seq,
      from: sender.userId,
      fromDevice: sender.deviceId,
      sentAt: result.sentAt,
      ...(frame.expiresAt === undefined ? {} : { expiresAt: frame.expiresAt }),
    };
    this.options.afterCommit?.({ conversationId, seq: result.seq });
    // Pushes only for the recipient devices live delivery did not reach (none when it failed).
    const notify = !result.duplicate && this.options.notices && recipients.length > 0 ? this.options.notices : null;
    const offline = (reached: ReadonlySet<string>) => {
      const devices = recipients.filter((d) => !reached.has(d));
      if (devices.length > 0) notify!.stored({ conversationId, seq: result.seq, devices });
    };
    this.delivery.deliverMessage(frame.to === sender.userId ? [frame.to] : [frame.to, sender.userId], base, payloads, sender.deviceId).then(
      (reached) => notify && offline(reached),
      (err) => {
        if (notify) offline(new Set());
        this.log.error({ err, conversationId }, 'live delivery failed; recipients will sync');
      },
    );
    return result;
  }

  /**
   * Checks a group send and queues it for the group commit, like `submit`. The sender must be
   * a member now. Per-device payloads (sender key distributions, for the devices that lack
   * the sender's key) may only name current member devices other than the sending one; a
   * `devicesHash` must match the current member devices. Either failing is `devices_changed`,
   * and so is a membership change between this check and the commit. Once durable the message
   * is appended to the group log, and only then acknowledged, so an acknowledged group message
   * always reaches the fan-out.
   */
  async submitGroup(sender: Sender, frame: GroupSendFrame): Promise<{ done: Promise<AppendResult>; audience: number }> {
    const started = performance.now();
    this.checkExpiry(frame.expiresAt);
    const { groups, log } = this.group;
    const membership = await groups.currentMembership(frame.group, sender.userId).catch((err) => {
      if (err instanceof AppError && err.code === 'not_found') return null;
      throw err;
    });
    if (!membership) throw new AppError('not_found', 'no such group');
    const payloads = frame.payloads ?? [];
    if (payloads.length > 0 || frame.devicesHash !== undefined) {
      const devices = await groups.memberDevices(membership);
      const extra = [...payloadDevices(payloads)].filter((d) => !devices.ids.has(d) || d === sender.deviceId);
      if (extra.length > 0 || (frame.devicesHash !== undefined && frame.devicesHash !== devices.hash)) {
        await groups.invalidate(frame.group);
        throw new AppError('devices_changed', 'the group’s member devices changed; list them again and encrypt for them', {
          details: { extra, membersVersion: membership.version },
        });
      }
    }
    const keys = Object.fromEntries(payloads.map((p) => [p.device, p.body]));
    const appended = this.store.append({
      conversationId: frame.group,
      senderId: sender.userId,
      senderDeviceId: sender.deviceId,
      clientId: frame.id,
      payloads: keys,
      body: frame.body,
      membersVersion: membership.version,
      ...(frame.expiresAt === undefined ? {} : { expiresAt: frame.expiresAt }),
    });
    const done = appended.then(
      async (result) => {
        if (result.duplicate && result.conversationId !== frame.group) {
          throw new AppError('conflict', 'this message id was already used for another conversation');
        }
        const record: GroupRecord = {
          frame: {
            type: 'msg',
            id: frame.id,
            conversationId: frame.group,
            groupId: frame.group,
            seq: result.seq,
            from: sender.userId,
            fromDevice: sender.deviceId,
            sentAt: result.sentAt,
            body: frame.body,
            ...(frame.expiresAt === undefined ? {} : { expiresAt: frame.expiresAt }),
          },
          ...(payloads.length > 0 ? { keys } : {}),
          membersVersion: result.membersVersion,
        };
        // A resend of a stored message is logged again: the first append may have failed.
        await log.append([{ key: frame.group, value: JSON.stringify(record) }]);
        this.metrics.sendCommitSeconds.observe((performance.now() - started) / 1000);
        if (!result.duplicate) this.metrics.messagesSent.inc();
        return result;
      },
      async (err) => {
        if (err instanceof AppError && err.code === 'devices_changed') await groups.invalidate(frame.group);
        throw err;
      },
    );
    return { done, audience: currentMembers(membership).length };
  }

  /**
   * A disappearing message's `expiresAt` must lie after now (the store's clock, which also
   * stamps `sentAt`) and at most `expiry.maxAheadMs` ahead; `invalid` otherwise. The purge erases
   * the message at that time whether or not its devices fetched it.
   */
  private checkExpiry(expiresAt: number | undefined): void {
    if (expiresAt === undefined) return;
    const now = this.store.clock.now();
    const maxAheadMs = this.options.expiry?.maxAheadMs ?? DEFAULT_MAX_AHEAD_MS;
    if (expiresAt <= now) {
      throw new AppError('invalid', 'expiresAt must be later than the server’s time', { details: { now } });
    }
    if (expiresAt > now + maxAheadMs) {
      throw new AppError('invalid', `expiresAt may be at most ${maxAheadMs / 86_400_000} days ahead (the retention period)`, {
        details: { now, maxAheadMs },
      });
    }
  }

  /**
   * Direct conversations: relays a receipt to the other member's devices (and, for reads, the
   * reader's other devices). Groups: marks the group for the aggregate receipt (see
   * GroupReceipts) and tells the reader's other devices about reads.
   */
  async receipt(reader: Sender, kind: ReceiptKind, conversationId: string, seq: number): Promise<void> {
    const frame = { type: 'receipt' as const, kind, conversationId, seq, by: reader.userId };
    if ((await this.store.kind(conversationId)) === 'group') {
      this.group.receipts.touched(conversationId);
      if (kind === 'read') await this.delivery.relay([reader.userId], frame, reader.deviceId);
      return;
    }
    const [members, blocked] = await Promise.all([this.store.members(conversationId), this.blockedBy(reader.userId)]);
    const others = members.filter((m) => m !== reader.userId && !blocked.has(m));
    const to = kind === 'read' ? [...others, reader.userId] : others;
    await this.delivery.relay(to, frame, reader.deviceId);
  }

  /** Whether the user can see the conversation (a member now, or up to when they left a group). */
  isMember(userId: string, conversationId: string): Promise<boolean> {
    return this.store.hasSeen(userId, conversationId);
  }

  /** Relays a typing indicator to the other current members; never stored. */
  async typing(sender: Sender, conversationId: string, active: boolean): Promise<void> {
    let members: readonly string[];
    if ((await this.store.kind(conversationId)) === 'group') {
      const m = await this.group.groups.currentMembership(conversationId, sender.userId).catch(() => null);
      members = m ? currentMembers(m) : [];
      if (members.includes(sender.userId) && members.length > this.group.typingMaxMembers) return;
    } else {
      members = await this.store.members(conversationId);
    }
    if (!members.includes(sender.userId)) throw new AppError('not_found', 'no such conversation');
    // Neither those the sender blocks nor those who block the sender (one cached list for a
    // direct chat's peer, one query for a group's members).
    const blocked = await this.blockedBy(sender.userId);
    const candidates = members.filter((m) => m !== sender.userId && !blocked.has(m));
    const blockers =
      candidates.length === 1
        ? (await this.blockedBy(candidates[0]!)).has(sender.userId)
          ? new Set(candidates)
          : NOBODY
        : candidates.length > 1
          ? ((await this.options.blocks?.blockersAmong(sender.userId, candidates)) ?? NOBODY)
          : NOBODY;
    const others = candidates.filter((m) => !blockers.has(m));
    if (others.length > 0) await this.delivery.relay(others, { type: 'typing', conversationId, from: sender.userId, active });
  }

  /**
   * Of `userIds`, those `userId` may see the presence of: people they share a direct
   * conversation with and who do not block them. One query each for the whole list, however
   * many of them are unknown.
   */
  async visiblePresence(userId: string, userIds: readonly string[]): Promise<{ visible: string[]; hidden: string[] }> {
    const others = [...new Set(userIds)].filter((u) => u !== userId);
    const [shared, blockers] = await Promise.all([
      this.store.directPeers(userId, others),
      this.options.blocks?.blockersAmong(userId, others) ?? new Set<string>(),
    ]);
    const visible: string[] = [];
    const hidden: string[] = [];
    for (const u of userIds) (shared.has(u) && !blockers.has(u) ? visible : hidden).push(u);
    return { visible, hidden };
  }

  /** The users `userId` blocks (none without a block list). */
  private blockedBy(userId: string): Promise<ReadonlySet<string>> {
    return this.options.blocks?.blockedBy(userId) ?? Promise.resolve(NOBODY);
  }
}
