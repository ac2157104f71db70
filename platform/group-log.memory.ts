// In-memory group-message log: the embedded default. Single process only; nothing survives a restart.
import { type GroupLog, type LogConsumer, type LogHandler, type LogRecord, partitionOf } from './group-log.js';

interface Member {
  handler: LogHandler;
  stopped: boolean;
}

interface ConsumerGroup {
  /** Next offset to hand out per partition (committed position). */
  committed: number[];
  members: Member[];
  /** Partitions being handled right now, so one partition is never handled twice at once. */
  busy: Set<number>;
}

/**
 * Partitions are arrays; a consumer group's members share the partitions round-robin
 * (partition p belongs to member p mod n) and are re-balanced whenever one joins or leaves.
 * Records stay in memory for the life of the process (the store is the record; this log
 * only feeds live fan-out), trimmed once every group has committed past them.
 */
export class MemoryGroupLog implements GroupLog {
  private readonly partitions: { base: number; records: { key: string; value: string }[] }[];
  private readonly groups = new Map<string, ConsumerGroup>();
  private closed = false;

  constructor(options: { partitions?: number; retryMs?: number } = {}) {
    this.partitions = Array.from({ length: options.partitions ?? 4 }, () => ({ base: 0, records: [] }));
    this.retryMs = options.retryMs ?? 200;
  }

  private readonly retryMs: number;

  async append(records: readonly { key: string; value: string }[]): Promise<void> {
    for (const r of records) this.partitions[partitionOf(r.key, this.partitions.length)]!.records.push({ key: r.key, value: r.value });
    for (const name of this.groups.keys()) this.pump(name);
  }

  async consume(group: string, handler: LogHandler): Promise<LogConsumer> {
    let g = this.groups.get(group);
    if (!g) this.groups.set(group, (g = { committed: this.partitions.map((part) => part.base), members: [], busy: new Set() }));
    const member: Member = { handler, stopped: false };
    g.members.push(member);
    this.pump(group);
    return {
      stop: async () => {
        member.stopped = true;
        g.members = g.members.filter((m) => m !== member);
        this.pump(group);
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const g of this.groups.values()) for (const m of g.members) m.stopped = true;
    this.groups.clear();
  }

  /** Hands every partition with uncommitted records to its current owner, one batch at a time. */
  private pump(group: string): void {
    const g = this.groups.get(group);
    if (!g || this.closed) return;
    this.partitions.forEach((part, p) => {
      if (g.busy.has(p) || g.members.length === 0) return;
      const from = g.committed[p]!;
      const end = part.base + part.records.length;
      if (from >= end) return;
      const owner = g.members[p % g.members.length]!;
      const batch: LogRecord[] = part.records.slice(from - part.base, Math.min(end, from + 500) - part.base).map((r, i) => ({
        key: r.key,
        value: r.value,
        partition: p,
        offset: String(from + i),
      }));
      g.busy.add(p);
      void (async () => {
        let ok = false;
        try {
          // A macrotask boundary, like a network hop: appends in one tick join one batch.
          await new Promise((r) => setImmediate(r));
          if (!owner.stopped) {
            await owner.handler(batch);
            ok = !owner.stopped;
          }
        } catch {
          // Handed again after a pause (the handler logs its own failures).
          await new Promise((r) => setTimeout(r, this.retryMs));
        }
        if (ok) g.committed[p] = from + batch.length;
        g.busy.delete(p);
        this.trim(p);
        this.pump(group);
      })();
    });
  }

  private trim(p: number): void {
    const part = this.partitions[p]!;
    let low = Infinity;
    for (const g of this.groups.values()) low = Math.min(low, g.committed[p]!);
    if (!Number.isFinite(low) || low - part.base < 1024) return;
    part.records.splice(0, low - part.base);
    part.base = low;
  }
}
