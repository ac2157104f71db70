// Heartbeats of many sessions on one timer per period, spread over the period.

/** Something that beats once per period (a device session: ping, token expiry). */
export interface Beating {
  beat(): void;
}

/** Heartbeats run every this often, each time for the sessions of one slot (at least 16 slots per period). */
const BEAT_TICK_MS = 100;

/**
 * The heartbeats of every session with the same period, on one timer instead of an interval
 * per session. The period is cut into slots of about BEAT_TICK_MS, visited in turn (so the
 * pings of many sessions are spread over the period, not sent in bursts); a session joins the
 * slot visited last, so it beats once per period, the first time between (1 - 1/slots) and one
 * period after it joined. The timer runs only while some session is in.
 */
export class HeartbeatWheel {
  private static readonly wheels = new Map<number, HeartbeatWheel>();
  private readonly slots: Set<Beating>[];
  /** The slot visited last. */
  private current = 0;
  private size = 0;
  private timer: NodeJS.Timeout | undefined;

  private constructor(private readonly periodMs: number) {
    this.slots = Array.from({ length: Math.max(16, Math.ceil(periodMs / BEAT_TICK_MS)) }, () => new Set());
  }

  /** The wheel of sessions that beat every `periodMs`. */
  static of(periodMs: number): HeartbeatWheel {
    let w = HeartbeatWheel.wheels.get(periodMs);
    if (!w) HeartbeatWheel.wheels.set(periodMs, (w = new HeartbeatWheel(periodMs)));
    return w;
  }

  /** Adds a session; returns its slot, for `remove`. */
  add(session: Beating): number {
    this.slots[this.current]!.add(session);
    if (this.size++ === 0) {
      this.timer = setInterval(() => this.tick(), this.periodMs / this.slots.length);
      this.timer.unref();
    }
    return this.current;
  }

  remove(session: Beating, slot: number): void {
    if (this.slots[slot]!.delete(session) && --this.size === 0) clearInterval(this.timer);
  }

  private tick(): void {
    this.current = (this.current + 1) % this.slots.length;
    for (const session of this.slots[this.current]!) session.beat();
  }
}
