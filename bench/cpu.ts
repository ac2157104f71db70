// CPU time of processes and process trees by pid, from /proc (Linux only): the server's, the engines' and the load generator's share of the work.
import { readdirSync, readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime: 100 on every mainstream Linux. */
const CLOCK_TICKS = 100;

/** User + system CPU seconds used so far by the processes, summed, or null where /proc is unavailable. */
export function processCpuSeconds(pids: number[]): number | null {
  let sum = 0;
  for (const pid of pids) {
    const s = readStat(pid);
    if (s === null) return null;
    sum += s.own;
  }
  return sum;
}

/**
 * CPU seconds so far of each root's whole process tree (the root and every descendant), one
 * entry per root, null where the root is gone or /proc is unavailable; /proc is read once.
 *
 * A tree's figure is, over its live processes, user + system time plus the time of children
 * they have already reaped (cutime + cstime). So a process that starts and exits between two
 * readings (a PostgreSQL backend, a forked save) still counts: its time moves into its
 * parent's children-time when reaped. Threads are included (the figures are per process).
 */
export function treeCpuSeconds(roots: readonly number[]): (number | null)[] {
  const all = new Map<number, Stat>();
  const children = new Map<number, number[]>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((n) => /^\d+$/.test(n));
  } catch {
    return roots.map(() => null);
  }
  for (const name of pids) {
    const pid = Number(name);
    const s = readStat(pid);
    if (s === null) continue; // exited while we looked
    all.set(pid, s);
    const siblings = children.get(s.ppid);
    if (siblings) siblings.push(pid);
    else children.set(s.ppid, [pid]);
  }
  return roots.map((root) => {
    if (!all.has(root)) return null;
    let sum = 0;
    const todo = [root];
    const seen = new Set<number>();
    while (todo.length > 0) {
      const pid = todo.pop()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      const s = all.get(pid);
      if (!s) continue;
      sum += s.own + s.reaped;
      todo.push(...(children.get(pid) ?? []));
    }
    return sum;
  });
}

/** The parent pid and command name of a process, or null where it is not visible here. */
export function processInfo(pid: number): { ppid: number; comm: string } | null {
  const s = readStat(pid);
  return s && { ppid: s.ppid, comm: s.comm };
}

interface Stat {
  comm: string;
  ppid: number;
  /** utime + stime, seconds. */
  own: number;
  /** cutime + cstime: children waited for, seconds. */
  reaped: number;
}

function readStat(pid: number): Stat | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name start at field 3 (state): ppid is field 4,
    // utime, stime, cutime and cstime are fields 14 to 17.
    const close = stat.lastIndexOf(')');
    const fields = stat.slice(close + 2).split(' ');
    const [ppid, utime, stime, cutime, cstime] = [fields[1], fields[11], fields[12], fields[13], fields[14]].map(Number) as [number, number, number, number, number];
    if (![ppid, utime, stime, cutime, cstime].every(Number.isFinite)) return null;
    return { comm: stat.slice(stat.indexOf('(') + 1, close), ppid, own: (utime + stime) / CLOCK_TICKS, reaped: (cutime + cstime) / CLOCK_TICKS };
  } catch {
    return null;
  }
}
