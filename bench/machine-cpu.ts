// CPU time the whole machine has spent busy (all cores, all processes), from /proc/stat (Linux only).
import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc/stat: 100 on every mainstream Linux (as in bench/cpu.ts). */
const CLOCK_TICKS = 100;

/** Busy CPU seconds summed over every core since boot (everything but idle and iowait), or null without /proc. */
export function machineBusySeconds(): number | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    // cpu  user nice system idle iowait irq softirq steal …
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    const busy = f.slice(0, 8).reduce((a, n) => a + n, 0) - (f[3] ?? 0) - (f[4] ?? 0);
    return Number.isFinite(busy) ? busy / CLOCK_TICKS : null;
  } catch {
    return null;
  }
}
