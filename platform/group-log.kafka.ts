// Group-message log on Apache Kafka via kafkajs: the one place kafkajs is used, so the client can be swapped.
import { type Consumer, type Kafka, type Producer, logLevel as KafkaLogLevel, type logCreator, Partitioners } from 'kafkajs';
import { AppError } from './errors.js';
import { GroupCommit } from './group-commit.js';
import type { GroupLog, LogConsumer, LogHandler, LogRecord } from './group-log.js';
import type { Logger } from './log.js';

export interface KafkaGroupLogOptions {
  /** The topic; created at `open` if missing. */
  topic: string;
  /** Partitions when the topic is created. Default 8. */
  partitions?: number;
  /** Partitions one consumer handles at once. Default 4. */
  concurrency?: number;
  /** Pause before handing a failed batch again. Default 250 ms. */
  retryMs?: number;
  /**
   * Longest a fetch waits at the broker. Default 10 ms. Kafka may hold a fetch for this long
   * even when records are waiting (kafkajs#370, #1397), so it bounds the log's added latency.
   */
  maxWaitMs?: number;
  /**
   * How long records (group message ciphertext) stay in the topic, set when the topic is
   * created (`retention.ms`, with `segment.ms` at most an hour so Kafka can delete a closed
   * segment soon after). Default 24 h. A record is gone at most this plus an hour after it was
   * appended; an existing topic keeps its own settings (change them with kafka-configs.sh).
   */
  retentionMs?: number;
}

/**
 * What kafkajs logs at ERROR while it is still recovering by itself: a broker that is starting
 * or restarting refuses connections, has no group coordinator or partition leader yet, or is
 * loading its offsets; kafkajs retries each of these (and restarts a consumer that ran out of
 * retries on them). Matched against the line's message and its `error` field (kafkajs's own
 * texts, from its protocol error table and connection code, as of 2.2.4).
 */
const KAFKA_TRANSIENT = [
  'Connection error',
  'Connection timeout',
  'Closed connection',
  'Connection closed',
  'Failed to connect to seed broker',
  'Failed to connect to broker, reconnecting',
  'Restarting the consumer',
  'The group coordinator is not available',
  "The coordinator is loading and hence can't process requests",
  'This is not the correct coordinator for this group',
  'There is no leader for this topic-partition',
  'This server is not the leader for that topic-partition',
  'This server does not host this topic-partition',
  'The replica is not available for the requested topic-partition',
  'The server disconnected before a response was received',
  'The request timed out',
  'This is not the correct controller for this cluster',
  'fewer in-sync replicas than required',
  'The leader epoch in the request is',
  'The leader high watermark has not caught up',
  'The coordinator is not aware of this member',
];

/** What kafkajs logs at ERROR in its normal course (a rebalance, a topic we create if missing): not a problem at all. */
const KAFKA_EXPECTED = [
  'The group is rebalancing, so a rejoin is needed',
  'The group member needs to have a valid member id',
  'Topic with this name already exists',
];

/** The pino level for one kafkajs log line, or null to drop it (kafkajs's info and debug chatter). */
export function kafkaLogLevel(level: KafkaLogLevel, message: string, error?: unknown): 'error' | 'warn' | 'debug' | null {
  if (level === KafkaLogLevel.WARN) return 'warn';
  if (level !== KafkaLogLevel.ERROR) return null;
  const text = `${message} ${typeof error === 'string' ? error : ''}`;
  if (KAFKA_EXPECTED.some((t) => text.includes(t))) return 'debug';
  if (KAFKA_TRANSIENT.some((t) => text.includes(t))) return 'warn';
  return 'error';
}

/**
 * Routes kafkajs's own log lines to pino (kafkajs never logs record values). Its ERROR lines
 * about conditions it retries by itself (a broker still starting, a coordinator or leader not
 * elected yet, a reconnect) become warnings, its ERROR lines about a rebalance it handles become
 * debug, and anything else stays an error; its info and debug lines are dropped.
 */
export function kafkaLogCreator(log: Logger): logCreator {
  return () =>
    ({ level, label, log: entry }) => {
      const { message, ...rest } = entry;
      const to = kafkaLogLevel(level, message, rest.error);
      if (!to) return;
      const fields = { component: 'kafka', label, broker: rest.broker, groupId: rest.groupId, error: rest.error };
      log[to](fields, message);
    };
}

/**
 * Layout: one topic (default `parley.group-messages`), records keyed by group id, so Kafka's
 * default partitioner keeps each group in one partition, in append order. Values are the
 * JSON the fan-out reads (ciphertext only). Consumers run with auto-commit off: a batch's
 * offset is committed only after the handler resolved; a failing handler is retried in place
 * (heartbeating) until it succeeds or the partition is taken away. Appends go through one
 * producer call at a time (later appends batch up behind it), so records of one group are
 * appended in the order they were submitted, even across producer retries.
 */
export class KafkaGroupLog implements GroupLog {
  private readonly appends: GroupCommit<{ key: string; value: string }, undefined>;
  private readonly consumers = new Set<KafkaConsumerHandle>();

  private constructor(
    private readonly kafka: Kafka,
    private readonly producer: Producer,
    private readonly log: Logger,
    private readonly options: Required<KafkaGroupLogOptions>,
  ) {
    this.appends = new GroupCommit(
      async (records) => {
        try {
          await this.producer.send({ topic: this.options.topic, acks: -1, messages: records });
        } catch (err) {
          throw new AppError('unavailable', 'group log unavailable', { cause: err });
        }
        return records.map(() => undefined);
      },
      { maxBatch: 500 },
    );
  }

  /** Creates the topic if needed and connects the producer. Takes a ready `Kafka` client. */
  static async open(kafka: Kafka, log: Logger, options: KafkaGroupLogOptions): Promise<KafkaGroupLog> {
    const full = { partitions: 8, concurrency: 4, retryMs: 250, maxWaitMs: 10, retentionMs: 86_400_000, ...options };
    const admin = kafka.admin();
    try {
      await admin.connect();
      const configEntries = [
        { name: 'retention.ms', value: String(full.retentionMs) },
        { name: 'segment.ms', value: String(Math.min(full.retentionMs, 3_600_000)) },
      ];
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic: full.topic, numPartitions: full.partitions, configEntries }] });
    } catch (err) {
      throw new AppError('unavailable', `cannot create Kafka topic ${full.topic}`, { cause: err });
    } finally {
      await admin.disconnect().catch(() => {});
    }
    const producer = kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false, maxInFlightRequests: 1, retry: { retries: 3, initialRetryTime: 100 } });
    try {
      await producer.connect();
    } catch (err) {
      throw new AppError('unavailable', 'cannot connect the Kafka producer', { cause: err });
    }
    return new KafkaGroupLog(kafka, producer, log, full);
  }

  append(records: readonly { key: string; value: string }[]): Promise<void> {
    return Promise.all(records.map((r) => this.appends.submit(r))).then(() => undefined);
  }

  async consume(group: string, handler: LogHandler): Promise<LogConsumer> {
    const handle = new KafkaConsumerHandle(this.kafka, this.log, group, handler, this.options);
    this.consumers.add(handle);
    await handle.start();
    return {
      stop: async () => {
        this.consumers.delete(handle);
        await handle.stop();
      },
    };
  }

  async close(): Promise<void> {
    for (const c of this.consumers) await c.stop();
    this.consumers.clear();
    await this.appends.idle();
    await this.producer.disconnect().catch(() => {});
  }
}

/** One consumer-group member; recreated if kafkajs gives up on it (a crash it will not restart from). */
class KafkaConsumerHandle {
  private consumer: Consumer | null = null;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly log: Logger,
    private readonly group: string,
    private readonly handler: LogHandler,
    private readonly options: Required<KafkaGroupLogOptions>,
  ) {}

  async start(): Promise<void> {
    const consumer = this.kafka.consumer({
      groupId: this.group,
      allowAutoTopicCreation: false,
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      maxWaitTimeInMs: this.options.maxWaitMs,
      retry: { retries: 8, initialRetryTime: 200, restartOnFailure: async () => true },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.CRASH, (e) => {
      if (e.payload.restart || this.stopped) return;
      // kafkajs will not restart after a non-retriable error: start a fresh consumer ourselves.
      this.log.error({ component: 'kafka', groupId: this.group, err: e.payload.error }, 'consumer crashed; recreating it');
      clearTimeout(this.restartTimer);
      this.restartTimer = setTimeout(() => void this.restart(), this.options.retryMs * 4);
    });
    await consumer.connect();
    await consumer.subscribe({ topic: this.options.topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.options.concurrency,
      eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary, isRunning, isStale }) => {
        if (batch.messages.length === 0) return;
        const records: LogRecord[] = batch.messages.map((m) => ({
          key: m.key?.toString('utf8') ?? '',
          value: m.value?.toString('utf8') ?? '',
          partition: batch.partition,
          offset: m.offset,
        }));
        for (;;) {
          try {
            await this.handler(records);
            break;
          } catch {
            // The handler logged why; keep the partition and try again unless it moved away.
            if (!isRunning() || isStale() || this.stopped) return;
            await new Promise((r) => setTimeout(r, this.options.retryMs));
            await heartbeat().catch(() => {});
          }
        }
        const last = batch.messages[batch.messages.length - 1]!.offset;
        resolveOffset(last);
        await commitOffsetsIfNecessary({
          topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: (BigInt(last) + 1n).toString() }] }],
        });
      },
    });
  }

  private async restart(): Promise<void> {
    if (this.stopped) return;
    await this.consumer?.disconnect().catch(() => {});
    try {
      await this.start();
    } catch (err) {
      this.log.error({ component: 'kafka', groupId: this.group, err }, 'consumer restart failed; trying again');
      this.restartTimer = setTimeout(() => void this.restart(), this.options.retryMs * 8);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.consumer?.disconnect().catch(() => {});
  }
}
