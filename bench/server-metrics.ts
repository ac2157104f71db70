// A few of Parley's own /metrics after the run: group-commit batch sizes, send→commit time, errors, memory.

export interface ServerMetrics {
  messagesSent: number;
  commitBatches: number;
  meanBatch: number;
  meanCommitMs: number;
  errors: Record<string, number>;
  rssMiB: number;
}

/** Sums every sample of `name` (all label sets) in Prometheus text format. */
function sum(text: string, name: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name} `) || line.startsWith(`${name}{`)) total += Number(line.slice(line.lastIndexOf(' ') + 1)) || 0;
  }
  return total;
}

export async function serverMetrics(baseUrl: string): Promise<ServerMetrics> {
  const res = await fetch(new URL('/metrics', baseUrl));
  if (!res.ok) throw new Error(`GET /metrics: HTTP ${res.status}`);
  const text = await res.text();
  const errors: Record<string, number> = {};
  for (const m of text.matchAll(/^parley_errors_total\{([^}]*)\} (\S+)$/gm)) {
    const code = /code="([^"]*)"/.exec(m[1]!)?.[1] ?? '?';
    errors[code] = (errors[code] ?? 0) + Number(m[2]);
  }
  const batches = sum(text, 'parley_commit_batch_size_count');
  const commits = sum(text, 'parley_send_commit_seconds_count');
  return {
    messagesSent: sum(text, 'parley_messages_sent_total'),
    commitBatches: batches,
    meanBatch: batches > 0 ? sum(text, 'parley_commit_batch_size_sum') / batches : 0,
    meanCommitMs: commits > 0 ? (1000 * sum(text, 'parley_send_commit_seconds_sum')) / commits : 0,
    errors,
    rssMiB: sum(text, 'process_resident_memory_bytes') / 2 ** 20,
  };
}

/** One summary over several gateways: counts and memory add up, means are weighted. */
export function mergeMetrics(all: ServerMetrics[]): ServerMetrics {
  const messagesSent = all.reduce((a, m) => a + m.messagesSent, 0);
  const commitBatches = all.reduce((a, m) => a + m.commitBatches, 0);
  const errors: Record<string, number> = {};
  for (const m of all) for (const [c, n] of Object.entries(m.errors)) errors[c] = (errors[c] ?? 0) + n;
  return {
    messagesSent,
    commitBatches,
    meanBatch: commitBatches > 0 ? all.reduce((a, m) => a + m.meanBatch * m.commitBatches, 0) / commitBatches : 0,
    meanCommitMs: messagesSent > 0 ? all.reduce((a, m) => a + m.meanCommitMs * m.messagesSent, 0) / messagesSent : 0,
    errors,
    rssMiB: all.reduce((a, m) => a + m.rssMiB, 0),
  };
}
