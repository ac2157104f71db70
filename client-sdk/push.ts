// Push on the SDK side: reading a Web Push payload (hostile input) and remembering which messages handlePush decrypted, so that the sync skips them.
import type { MsgFrame } from '../protocol/frames.js';
import type { PushPayload } from '../protocol/push.js';
import type { JsonValue, KeyStore } from './e2e.store.js';

/** Seqs remembered per conversation: a device offline for longer than this many pushes gets the oldest ones reported again by the sync (as duplicates the ratchet drops, or errors). */
export const PUSHED_KEPT = 256;

const str = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= 200;
const int = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * The message a push carries, or null: a `wake` push, a system message (handled by the sync,
 * which has the group's context), or anything malformed. The payload comes through the push
 * service, so it is checked field by field, as a frame from the socket would be trusted no more.
 */
export function pushedMessage(payload: string | PushPayload): MsgFrame | null {
  let p: unknown = payload;
  if (typeof payload === 'string') {
    try {
      p = JSON.parse(payload);
    } catch {
      return null;
    }
  }
  const o = (p ?? {}) as Record<string, unknown>;
  if (o.v !== 1 || o.kind !== 'message') return null;
  const m = (o.msg ?? {}) as Record<string, unknown>;
  const ok =
    m.type === 'msg' &&
    str(m.id) &&
    str(m.conversationId) &&
    int(m.seq) &&
    m.seq > 0 &&
    str(m.from) &&
    str(m.fromDevice) &&
    int(m.sentAt) &&
    typeof m.body === 'string' &&
    m.body.length > 0 &&
    m.system === undefined &&
    (m.groupId === undefined || str(m.groupId)) &&
    (m.key === undefined || typeof m.key === 'string') &&
    (m.expiresAt === undefined || int(m.expiresAt));
  if (!ok) return null;
  const f: MsgFrame = { type: 'msg', id: m.id as string, conversationId: m.conversationId as string, seq: m.seq as number, from: m.from as string, fromDevice: m.fromDevice as string, sentAt: m.sentAt as number, body: m.body as string };
  if (m.groupId !== undefined) f.groupId = m.groupId as string;
  if (m.key !== undefined) f.key = m.key as string;
  if (m.expiresAt !== undefined) f.expiresAt = m.expiresAt as number;
  return f;
}

/**
 * The messages handlePush decrypted, per conversation, in the key store's `pushed` section (id:
 * the conversation id; value: its seqs, ascending, at most PUSHED_KEPT). A Double Ratchet or
 * sender key is used once: when the same message comes again through the sync, the inbox of
 * whichever client over this store receives it skips it (but acknowledges it) instead of
 * failing to decrypt it. A seq is forgotten once the inbox acknowledged past it, or the server
 * said it expired.
 */
export class PushedLog {
  /** Conversations where this client skipped a pushed seq: only those are pruned after an ack (no read of the store per ack). */
  private readonly skipped = new Set<string>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly kv: KeyStore) {}

  /** Remembers that handlePush reported this message. */
  add(conversationId: string, seq: number): Promise<void> {
    return this.update(conversationId, (seqs) => [...seqs.filter((s) => s !== seq), seq].sort((a, b) => a - b).slice(-PUSHED_KEPT));
  }

  /** Whether handlePush reported this message (read from the store: another client may have written it). */
  async has(conversationId: string, seq: number): Promise<boolean> {
    await this.chain;
    const found = (await this.seqs(conversationId)).includes(seq);
    if (found) this.skipped.add(conversationId);
    return found;
  }

  /** Everything up to `seq` is acknowledged (or expired): those seqs can no longer come again. */
  forget(conversationId: string, seq: number): Promise<void> {
    return this.update(conversationId, (seqs) => seqs.filter((s) => s > seq));
  }

  /** An ack went out: prunes the conversation if this client skipped pushed seqs in it. */
  acked(conversationId: string, seq: number): Promise<void> {
    if (!this.skipped.has(conversationId)) return Promise.resolve();
    this.skipped.delete(conversationId);
    return this.forget(conversationId, seq);
  }

  private async seqs(conversationId: string): Promise<number[]> {
    const v = await this.kv.get('pushed', conversationId);
    return Array.isArray(v) ? v.filter((s): s is number => typeof s === 'number') : [];
  }

  /** One read-modify-write at a time; writes only when something changed. */
  private update(conversationId: string, fn: (seqs: number[]) => number[]): Promise<void> {
    const run = this.chain.then(async () => {
      const before = await this.seqs(conversationId);
      const after = fn(before);
      if (after.length === before.length && after.every((s, i) => s === before[i])) return;
      await this.kv.write([after.length === 0 ? { section: 'pushed', id: conversationId } : { section: 'pushed', id: conversationId, value: after as JsonValue }]);
    });
    this.chain = run.catch(() => undefined);
    return run;
  }
}
