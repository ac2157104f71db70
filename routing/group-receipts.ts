// GroupReceipts: turns members' delivered/read cursors into one aggregate frame per group, not a frame per member.
import type { Delivery } from './delivery.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import { aggregate, type GroupStore } from '../groups/group-store.js';
import { GroupsManager } from '../groups/groups.js';

/**
 * In a group, a receipt per member per message would be a flood (n members acking m messages
 * reach n devices each). Instead, acks and reads only mark the group; every `intervalMs` this
 * worker reads the marked groups' aggregates (the highest seq every current member has
 * received / read, over each member's devices) and, when one moved, sends one
 * `group_receipt` frame to the online member devices. Per-member status is on REST
 * (`GET /v1/groups/{id}/receipts`). Each gateway process runs one; they may send the same
 * aggregate twice, which clients ignore (it did not move).
 */
export class GroupReceipts {
  private readonly dirty = new Set<string>();
  private readonly sent = new Map<string, { delivered: number; read: number }>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | null = null;

  constructor(
    private readonly store: GroupStore,
    private readonly groups: GroupsManager,
    private readonly delivery: Delivery,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly options: { intervalMs: number },
  ) {}

  /** A member's cursor moved in this group. */
  touched(groupId: string): void {
    this.dirty.add(groupId);
  }

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running && this.dirty.size > 0) this.running = this.flush().finally(() => (this.running = null));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.running;
  }

  /** Sends the aggregates of every marked group that moved. */
  async flush(): Promise<void> {
    const groups = [...this.dirty];
    this.dirty.clear();
    for (const groupId of groups) {
      try {
        const members = await this.store.receipts(groupId);
        if (members.length === 0) continue;
        const { delivered, read } = aggregate(members);
        const before = this.sent.get(groupId);
        if (before && before.delivered >= delivered && before.read >= read) continue;
        this.sent.set(groupId, { delivered, read });
        if (this.sent.size > 10_000) this.sent.delete(this.sent.keys().next().value!);
        const current = GroupsManager.current(await this.groups.membership(groupId)).map((m) => m.userId);
        await this.delivery.relay(current, { type: 'group_receipt', conversationId: groupId, delivered, read });
      } catch (err) {
        this.dirty.add(groupId); // try again next round
        this.metrics.backendFailures.inc({ backend: 'sql', operation: 'group_receipts' });
        this.logger.error({ err, groupId }, 'group receipt aggregation failed');
      }
    }
  }
}
