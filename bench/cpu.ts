// CPU time of a process by pid, from /proc (Linux only), to tell whether the server or the load generator was the bottleneck.
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime: 100 on every mainstream Linux. */
const CLOCK_TICKS = 100;

/** User + system CPU seconds used so far by the processes, summed, or null where /proc is unavailable. */
export function processCpuSeconds(pids: number[]): number | null {
  let sum = 0;
  for (const pid of pids) {
    const s = oneProcess(pid);
    if (s === null) return null;
    sum += s;
  }
  return sum;
}

function oneProcess(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name start at field 3 (state); utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ticks = Number(fields[11]) + Number(fields[12]);
    return Number.isFinite(ticks) ? ticks / CLOCK_TICKS : null;
  } catch {
    return null;
  }
}
