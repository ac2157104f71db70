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
}

/** Routes kafkajs's own log lines to pino (warn and above; kafkajs never logs record values). */
export function kafkaLogCreator(log: Logger): logCreator {
  return () =>
    ({ level, label, log: entry }) => {
      const { message, ...rest } = entry;
      const fields = { component: 'kafka', label, broker: rest.broker, groupId: rest.groupId, error: rest.error };
      if (level <= KafkaLogLevel.ERROR) log.error(fields, message);
      else if (level === KafkaLogLevel.WARN) log.warn(fields, message);
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
    const full = { partitions: 8, concurrency: 4, retryMs: 250, maxWaitMs: 10, ...options };
    const admin = kafka.admin();
    try {
      await admin.connect();
      await admin.createTopics({ waitForLeaders: true, topics: [{ topic: full.topic, numPartitions: full.partitions }] });
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
