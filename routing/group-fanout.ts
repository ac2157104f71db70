// GroupFanout: a worker in the fan-out consumer group; delivers each logged group message to its members' online devices.
import type { Delivery } from './delivery.js';
import { AppError } from '../platform/errors.js';
import type { GroupLog, LogConsumer, LogRecord } from '../platform/group-log.js';
import type { Logger } from '../platform/log.js';
import type { Metrics } from '../platform/metrics.js';
import { sees } from '../groups/group-store.js';
import type { GroupRecord, GroupsManager } from '../groups/groups.js';
import type { NoticeSink } from '../messaging/ports.js';

export interface GroupFanoutOptions {
  /** The consumer group every fan-out worker joins. Default `parley-fanout`. */
  consumerGroup?: string;
  /**
   * Called after a batch was delivered and before its offsets are committed (its records'
   * count). Fault-injection tests use it to kill the worker at that point; unset in production.
   */
  afterDeliver?: (records: number) => void | Promise<void>;
  /**
   * Groups with at least this many members who may see a message are broadcast to every
   * gateway, each delivering to its own devices; smaller ones are routed device by device
   * (one publish per gateway holding any). Default 100.
   */
  broadcastMinMembers?: number;
  /** Told of each group message (system messages too, for the users they concern), for pushes to members' devices that are not connected. */
  notices?: NoticeSink;
}

/**
 * At least once, shown once: offsets are committed after a batch was delivered, so a worker
 * that dies in between hands the batch to the next one, which delivers it again; devices drop
 * seqs they already have (gateway connections and the SDK both keep per-conversation order),
 * so a redelivery changes nothing for the app.
 *
 * Membership is read at least as new as the version each message was committed under, and
 * each member's seq window decides whether they get it: a member removed before the message
 * does not, a member added before it does. A presence or broker outage skips live delivery
 * (counted and logged; devices catch up from the store when routing recovers) rather than
 * stalling the group's partition. A store outage fails the batch, which is handed again.
 */
export class GroupFanout {
  private consumer: LogConsumer | null = null;

  constructor(
    private readonly log: GroupLog,
    private readonly groups: GroupsManager,
    private readonly delivery: Delivery,
    private readonly metrics: Metrics,
    private readonly logger: Logger,
    private readonly options: GroupFanoutOptions = {},
  ) {}

  async start(): Promise<void> {
    this.consumer = await this.log.consume(this.options.consumerGroup ?? 'parley-fanout', (records) => this.handle(records));
  }

  async stop(): Promise<void> {
    await this.consumer?.stop();
    this.consumer = null;
  }

  private async handle(records: LogRecord[]): Promise<void> {
    for (const r of records) {
      let rec: GroupRecord;
      try {
        rec = JSON.parse(r.value) as GroupRecord;
      } catch (err) {
        this.logger.error({ err, partition: r.partition, offset: r.offset }, 'unreadable group record skipped');
        continue;
      }
      await this.deliver(rec);
    }
    await this.options.afterDeliver?.(records.length);
  }

  /**
   * Pushes for members not connected: a message to everyone who may see it but its sender; a
   * system message only to the users it names (added, removed, ...). A record handed again
   * after a worker died is coalesced into the push already owed.
   */
  private notify(frame: GroupRecord['frame'], users: readonly string[], reached: ReadonlySet<string>): void {
    const sink = this.options.notices;
    if (!sink) return;
    const to = frame.system ? users.filter((u) => frame.system!.users?.includes(u) && u !== frame.from) : users.filter((u) => u !== frame.from);
    if (to.length > 0) sink.stored({ conversationId: frame.conversationId, seq: frame.seq, users: to, reached: [...reached] });
  }

  private async deliver(rec: GroupRecord): Promise<void> {
    const { frame } = rec;
    let membership;
    try {
      membership = await this.groups.membership(frame.conversationId, rec.membersVersion);
    } catch (err) {
      if (err instanceof AppError && err.code === 'not_found') return; // the group is gone entirely
      this.metrics.backendFailures.inc({ backend: 'sql', operation: 'fanout_membership' });
      this.logger.error({ err, groupId: frame.conversationId }, 'fan-out cannot read the membership; the batch is retried');
      throw err;
    }
    const users = membership.members.filter((m) => sees(m, frame.seq)).map((m) => m.userId);
    // What live delivery reached gets no push; a broadcast (no route lookups) or a failure leaves
    // it to the notifier, which checks each device's cursor after PUSH_DELAY_MS.
    let reached: ReadonlySet<string> = new Set();
    try {
      if (users.length >= (this.options.broadcastMinMembers ?? 100)) {
        await this.delivery.broadcastGroup(frame, rec.keys, rec.membersVersion);
        this.metrics.groupFanoutBroadcasts.inc();
        return;
      }
      reached = await this.delivery.deliverGroup(users, frame, rec.keys, frame.fromDevice);
      this.metrics.groupFanoutDevices.inc(reached.size);
    } catch (err) {
      this.metrics.backendFailures.inc({ backend: 'presence', operation: 'fanout' });
      this.logger.error({ err, groupId: frame.conversationId, seq: frame.seq }, 'live group delivery failed; members will catch up from the store');
    } finally {
      this.notify(frame, users, reached);
    }
  }
}
