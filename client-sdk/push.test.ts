// Unit tests of the SDK's push side: what a push payload may carry, and the log of pushed messages that two clients over one key store share.
import { describe, expect, it } from 'vitest';
import type { MsgFrame } from '../protocol/frames.js';
import { memoryKeyStore } from './e2e.store.memory.js';
import { PUSHED_KEPT, PushedLog, pushedMessage } from './push.js';

const frame: MsgFrame = { type: 'msg', id: 'm1', conversationId: 'c1', seq: 4, from: 'u1', fromDevice: 'd1', sentAt: 1, body: 'AAAA' };

describe('pushedMessage', () => {
  it('returns the message of a message push, from JSON text or an object', () => {
    expect(pushedMessage(JSON.stringify({ v: 1, kind: 'message', count: 2, msg: frame }))).toEqual(frame);
    const group = { ...frame, groupId: 'g1', key: 'BBBB', expiresAt: 99 };
    expect(pushedMessage({ v: 1, kind: 'message', count: 1, msg: group })).toEqual(group);
  });

  it('returns null for a wake-up, a group change, and anything malformed', () => {
    const bad: unknown[] = [
      'not json',
      { v: 1, kind: 'wake', count: 3 },
      { v: 2, kind: 'message', count: 1, msg: frame },
      { v: 1, kind: 'message', count: 1, msg: { ...frame, system: { kind: 'renamed' }, fromDevice: null, body: '' } },
      { v: 1, kind: 'message', count: 1, msg: { ...frame, seq: 0 } },
      { v: 1, kind: 'message', count: 1, msg: { ...frame, seq: '4' } },
      { v: 1, kind: 'message', count: 1, msg: { ...frame, body: 7 } },
      { v: 1, kind: 'message', count: 1, msg: { ...frame, conversationId: 'x'.repeat(201) } },
      { v: 1, kind: 'message', count: 1 },
      null,
    ];
    for (const p of bad) expect(pushedMessage(p as string)).toBeNull();
  });

  it('keeps only the fields of a message frame', () => {
    expect(pushedMessage({ v: 1, kind: 'message', count: 1, msg: { ...frame, extra: 'x' } as MsgFrame })).toEqual(frame);
  });
});

describe('PushedLog', () => {
  it('is shared by clients over one store: one records, the other finds it, and it is pruned once acknowledged past', async () => {
    const kv = memoryKeyStore();
    const worker = new PushedLog(kv);
    const page = new PushedLog(kv);
    await worker.add('c', 5);
    await worker.add('c', 3);
    expect(await page.has('c', 5)).toBe(true);
    expect(await page.has('c', 4)).toBe(false);
    expect(await kv.get('pushed', 'c')).toEqual([3, 5]);
    await page.acked('c', 4);
    expect(await kv.get('pushed', 'c')).toEqual([5]);
    // Only a conversation where it skipped something is pruned by an ack (no store access otherwise).
    await page.acked('c', 9);
    expect(await kv.get('pushed', 'c')).toEqual([5]);
    await page.forget('c', 5);
    expect(await kv.ids('pushed')).toEqual([]);
  });

  it(`keeps the newest ${PUSHED_KEPT} seqs of a conversation`, async () => {
    const log = new PushedLog(memoryKeyStore());
    for (let s = 1; s <= PUSHED_KEPT + 2; s++) await log.add('c', s);
    expect(await log.has('c', 1)).toBe(false);
    expect(await log.has('c', 3)).toBe(true);
    expect(await log.has('c', PUSHED_KEPT + 2)).toBe(true);
  });
});
