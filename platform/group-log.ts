// The group-message log port: an ordered, durable, partitioned log that fan-out workers consume as a group.

/** A record as a consumer sees it. `offset` is opaque and only grows within a partition. */
export interface LogRecord {
  key: string;
  value: string;
  partition: number;
  offset: string;
}

/** Called with records of one partition, in offset order. Reject to have them handed again. */
export type LogHandler = (records: LogRecord[]) => Promise<void>;

export interface LogConsumer {
  /** Leaves the consumer group; records it had not committed go to the remaining consumers. */
  stop(): Promise<void>;
}

/**
 * One topic of keyed records (the group id is the key), e.g. Kafka's "group messages".
 *
 * Contract (group-log.contract.ts runs it against every adapter):
 * - `append` resolves once the log holds every record durably (Kafka: acknowledged by all
 *   in-sync replicas); it rejects with an `unavailable` AppError otherwise, and then some of the
 *   records may or may not be in the log (consumers must tolerate duplicates).
 * - Records with the same key go to the same partition and are handed to consumers in append
 *   order. There is no order across keys.
 * - `consume(group, handler)` joins consumer group `group`; each partition is consumed by one
 *   member of the group at a time. A new group starts at the beginning of the log.
 * - At least once: a batch's offsets are committed only after `handler` resolved. If the
 *   handler rejects, the same records are handed again (after a short pause), never skipped;
 *   if a consumer stops or dies before committing, its records are handed to another member
 *   (or to the next one that joins).
 */
export interface GroupLog {
  append(records: readonly { key: string; value: string }[]): Promise<void>;
  consume(group: string, handler: LogHandler): Promise<LogConsumer>;
  close(): Promise<void>;
}

/** Stable partition for a key (FNV-1a), shared by the adapters that choose partitions themselves. */
export function partitionOf(key: string, partitions: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % partitions;
}
