// MessagesManager: what the gateway calls to send, acknowledge and mark read; it checks, persists and delivers.
import type { ClientFrame, ReceiptKind } from '../client-sdk/protocol.js';
import type { Accounts } from '../gateway/accounts.js';
import type { Delivery } from '../gateway/delivery.js';
import { AppError } from '../platform/errors.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import { type AppendResult, MessageStore } from './message-store.js';

type SendFrame = Extract<ClientFrame, { type: 'send' }>;

export interface Sender {
  userId: string;
  deviceId: string;
}

/**
 * The sender comes from the authenticated connection, never from the frame. A send must
 * carry exactly one ciphertext per current device of the recipient and per other device of
 * the sender; otherwise it fails with `devices_changed` listing what is missing and extra,
 * and the client re-encrypts. A resend of a stored client id is acknowledged with the
 * original seq and delivered again (the earlier delivery may have died with its gateway).
 */
export class MessagesManager {
  constructor(
    private readonly store: MessageStore,
    private readonly accounts: Accounts,
    private readonly delivery: Delivery,
    private readonly metrics: Metrics,
    private readonly log: Logger,
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
    if (frame.to === sender.userId) throw new AppError('invalid', 'cannot send a direct message to yourself');
    const started = performance.now();
    const [theirs, mine] = await Promise.all([this.accounts.devices(frame.to), this.accounts.devices(sender.userId)]);
    if (theirs.length === 0) throw new AppError('not_found', 'no such user');

    const expected = new Set([...theirs, ...mine].map((d) => d.id).filter((id) => id !== sender.deviceId));
    const given = new Set(frame.payloads.map((p) => p.device));
    const missing = [...expected].filter((d) => !given.has(d));
    const extra = [...given].filter((d) => !expected.has(d));
    if (given.size !== frame.payloads.length) throw new AppError('invalid', 'a device is listed twice');
    if (missing.length > 0 || extra.length > 0) {
      throw new AppError('devices_changed', 'encrypt for exactly the current devices', { details: { missing, extra } });
    }

    const payloads = Object.fromEntries(frame.payloads.map((p) => [p.device, p.body]));
    const conversationId = await this.store.ensureDirect(sender.userId, frame.to);
    const appended = this.store.append({
      conversationId,
      senderId: sender.userId,
      senderDeviceId: sender.deviceId,
      clientId: frame.id,
      payloads,
    });
    return { done: appended.then((result) => this.committed(sender, frame, payloads, result, started)) };
  }

  private committed(sender: Sender, frame: SendFrame, payloads: Record<string, string>, result: AppendResult, started: number): AppendResult {
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
    };
    this.delivery
      .deliverMessage([frame.to, sender.userId], base, payloads, sender.deviceId)
      .catch((err) => this.log.error({ err, conversationId }, 'live delivery failed; recipients will sync'));
    return result;
  }

  /** Relays a receipt to the other members' devices (and, for reads, the reader's other devices). */
  async receipt(reader: Sender, kind: ReceiptKind, conversationId: string, seq: number): Promise<void> {
    const members = await this.store.members(conversationId);
    const others = members.filter((m) => m !== reader.userId);
    const to = kind === 'read' ? [...others, reader.userId] : others;
    await this.delivery.relay(to, { type: 'receipt', kind, conversationId, seq, by: reader.userId }, reader.deviceId);
  }

  /** Whether the user belongs to the conversation. */
  async isMember(userId: string, conversationId: string): Promise<boolean> {
    return (await this.store.members(conversationId)).includes(userId);
  }

  /** Relays a typing indicator to the other members; never stored. */
  async typing(sender: Sender, conversationId: string, active: boolean): Promise<void> {
    const members = await this.store.members(conversationId);
    if (!members.includes(sender.userId)) throw new AppError('not_found', 'no such conversation');
    const others = members.filter((m) => m !== sender.userId);
    await this.delivery.relay(others, { type: 'typing', conversationId, from: sender.userId, active });
  }

  /** Of `userIds`, those `userId` may see the presence of: people they share a conversation with. */
  async visiblePresence(userId: string, userIds: readonly string[]): Promise<{ visible: string[]; hidden: string[] }> {
    const visible: string[] = [];
    const hidden: string[] = [];
    for (const u of userIds) {
      const members = u === userId ? [] : await this.store.members(MessageStore.directConversationId(userId, u));
      (members.includes(userId) && members.includes(u) ? visible : hidden).push(u);
    }
    return { visible, hidden };
  }
}
