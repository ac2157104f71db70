// The device's clock for disappearing messages: each timed message's countdown starts when it was read, and at zero the device's copy is erased and the app told.
import type { Clock } from './clock.js';
import type { JsonValue, KeyStore } from './e2e.store.js';

/** A disappearing message this device holds. */
export interface TimedMessage {
  conversationId: string;
  id: string;
  seq: number;
}

export interface ExpiryOptions {
  kv: KeyStore;
  clock: Clock;
  /** The message's time is up: the app deletes what it shows and keeps of it (the client's 'expire' event). */
  expired(m: TimedMessage): void;
  /** Erases the SDK's own copy of these messages (the message history's) before the app hears of it; the timer record goes too. */
  erase?(messages: TimedMessage[]): Promise<void>;
  /** The store (or the erase) failed: reported, and tried again after RETRY_MS. */
  failed(err: unknown): void;
}

/** How long after a failed erase the due messages are tried again. */
export const RETRY_MS = 1000;

/** The longest a platform timer may wait (setTimeout's 32-bit limit, ~24.8 days): longer waits are re-armed. */
const MAX_DELAY_MS = 2 ** 31 - 1;

/** One record of the `expiring` section: the timer (ms) and, once read, when the message goes. */
interface Entry extends TimedMessage {
  timerMs: number;
  at: number | null;
}

/**
 * Timers of timed messages, in the key store's `expiring` section (id `<conversationId>|<seq>`,
 * value `{c, s, id, t: timer ms, at: epoch ms or null while unread}`), so a countdown survives a
 * restart and a message that a service worker's handlePush reported starts its countdown when
 * the page marks it read. A message stays until it was read (on this device, or on another
 * device of the user); one timer is armed for the earliest deadline, from `start()` until
 * `stop()`.
 */
export class ExpiryTimers {
  private armed: Map<string, Entry> | null = null;
  private loading: Promise<Map<string, Entry>> | null = null;
  private timer: unknown = undefined;
  private running = false;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: ExpiryOptions) {}

  /** Arms the earliest countdown (counting time that passed while stopped: overdue messages go at once). */
  start(): Promise<void> {
    this.running = true;
    return this.serial(async () => this.rearm(await this.load()));
  }

  /** Disarms (the client closed): nothing keeps the process alive; countdowns go on from the store at the next start. */
  stop(): void {
    this.running = false;
    this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** A timed message arrived (`read`: already read, e.g. one this user sent). */
  track(m: TimedMessage, timerSeconds: number, read: boolean): Promise<void> {
    return this.serial(async () => {
      const e: Entry = { ...m, timerMs: timerSeconds * 1000, at: read ? this.o.clock.now() + timerSeconds * 1000 : null };
      await this.o.kv.write([{ section: 'expiring', id: key(m), value: toJson(e) }]);
      if (e.at !== null) await this.arm([e]);
    });
  }

  /** Everything up to `seq` in the conversation was read: their countdowns start now. */
  read(conversationId: string, seq: number): Promise<void> {
    return this.serial(async () => {
      const prefix = `${conversationId}|`;
      const started: Entry[] = [];
      for (const id of await this.o.kv.ids('expiring')) {
        if (!id.startsWith(prefix) || Number(id.slice(prefix.length)) > seq) continue;
        const e = fromJson(await this.o.kv.get('expiring', id));
        if (e && e.at === null) started.push({ ...e, at: this.o.clock.now() + e.timerMs });
      }
      if (started.length === 0) return;
      await this.o.kv.write(started.map((e) => ({ section: 'expiring' as const, id: key(e), value: toJson(e) })));
      await this.arm(started);
    });
  }

  private async arm(entries: Entry[]): Promise<void> {
    const armed = await this.load();
    for (const e of entries) armed.set(key(e), e);
    this.rearm(armed);
  }

  /** The armed countdowns, loaded from the store once. */
  private load(): Promise<Map<string, Entry>> {
    this.loading ??= (async () => {
      const m = new Map<string, Entry>();
      for (const id of await this.o.kv.ids('expiring')) {
        const e = fromJson(await this.o.kv.get('expiring', id));
        if (e && e.at !== null) m.set(id, e);
      }
      return (this.armed = m);
    })();
    return this.loading;
  }

  /** One platform timer, for the earliest deadline (re-armed in steps when it is beyond setTimeout's range). */
  private rearm(armed: Map<string, Entry>): void {
    this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.running || armed.size === 0) return;
    const next = Math.min(...[...armed.values()].map((e) => e.at!));
    this.after(Math.min(Math.max(0, next - this.o.clock.now()), MAX_DELAY_MS));
  }

  private after(ms: number): void {
    this.timer = this.o.clock.setTimeout(() => {
      this.serial(() => this.fire()).catch((err: unknown) => {
        this.o.failed(err);
        if (this.running) this.after(RETRY_MS);
      });
    }, ms);
  }

  /** Erases what is due (from the store, then the seam), tells the app in seq order, and arms the next. */
  private async fire(): Promise<void> {
    this.timer = undefined;
    const armed = this.armed!;
    const now = this.o.clock.now();
    const due = [...armed.values()].filter((e) => e.at! <= now).sort((a, b) => a.seq - b.seq);
    if (due.length > 0) {
      await this.o.kv.write(due.map((e) => ({ section: 'expiring' as const, id: key(e) })));
      const gone = due.map(({ conversationId, id, seq }) => ({ conversationId, id, seq }));
      await this.o.erase?.(gone);
      for (const e of due) armed.delete(key(e));
      for (const m of gone) this.o.expired(m);
    }
    this.rearm(armed);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }
}

const key = (m: { conversationId: string; seq: number }) => `${m.conversationId}|${m.seq}`;

function toJson(e: Entry): JsonValue {
  return { c: e.conversationId, s: e.seq, id: e.id, t: e.timerMs, at: e.at };
}

function fromJson(v: JsonValue | undefined): Entry | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
  const at = v.at;
  return { conversationId: v.c as string, seq: v.s as number, id: v.id as string, timerMs: v.t as number, at: typeof at === 'number' ? at : null };
}
