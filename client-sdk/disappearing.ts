// Disappearing messages on the device: each conversation's timer as its members set it, kept in the key store so it survives a restart.
import type { JsonValue, KeyStore } from './e2e.store.js';

/** A conversation's timer, as the member's control message with the highest seq set it. */
export interface DisappearingSetting {
  conversationId: string;
  /** Seconds, or null: off. */
  seconds: number | null;
  /** The user who set it. */
  by: string;
  /** The seq of the control message that set it (a change with a lower seq is older: ignored). */
  seq: number;
  /** Direct conversations: the other user (sends go to a user id). Null for groups. */
  peer: string | null;
}

type Obj = Record<string, JsonValue>;

/**
 * Timers per conversation, in the key store's `disappearing` section: `c:<conversationId>` holds
 * the setting, and for a direct conversation `u:<other user>` holds the same record, so a send
 * to a user (the SDK sends direct messages by user id) finds its timer in one read. Read from
 * the store each time, never cached: a service worker's handlePush may apply a change while a
 * page's client is running over the same store.
 *
 * Every device applies the same control messages in seq order (the server's order of the
 * conversation), so all converge on the change with the highest seq, whatever order two
 * members' concurrent changes reached them in.
 */
export class DisappearingSettings {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly kv: KeyStore) {}

  /** The conversation's setting, or null if no member ever set one. */
  async get(conversationId: string): Promise<DisappearingSetting | null> {
    return parse(await this.kv.get('disappearing', `c:${conversationId}`));
  }

  /** The timer (seconds) for a send to a group or a user, or null: none. */
  async forSend(to: string, group: boolean): Promise<number | null> {
    const s = parse(await this.kv.get('disappearing', group ? `c:${to}` : `u:${to}`));
    return s?.seconds ?? null;
  }

  /**
   * Applies a member's change; true when it is newer than the setting held (the caller then
   * reports it), false for an older change or one already applied (a resend, or the sender's
   * own device hearing of it again).
   */
  apply(s: DisappearingSetting): Promise<boolean> {
    const run = this.chain.then(async () => {
      const held = await this.get(s.conversationId);
      if (held && held.seq >= s.seq) return false;
      const peer = s.peer ?? held?.peer ?? null;
      const record: JsonValue = { c: s.conversationId, seconds: s.seconds, by: s.by, seq: s.seq, peer };
      await this.kv.write([
        { section: 'disappearing', id: `c:${s.conversationId}`, value: record },
        ...(peer ? [{ section: 'disappearing' as const, id: `u:${peer}`, value: record }] : []),
      ]);
      return true;
    });
    this.chain = run.catch(() => undefined);
    return run;
  }
}

function parse(v: JsonValue | undefined): DisappearingSetting | null {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return null;
  const o = v as Obj;
  return {
    conversationId: o.c as string,
    seconds: typeof o.seconds === 'number' ? o.seconds : null,
    by: o.by as string,
    seq: o.seq as number,
    peer: typeof o.peer === 'string' ? o.peer : null,
  };
}
