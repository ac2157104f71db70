// The receipt coalescer alone: folding, forward-only cursors, and a failed cursor write kept for the next flush.
import { describe, expect, it } from 'vitest';
import type { MessagesManager } from '../messaging/messages.js';
import type { CursorUpdate, MessageStore } from '../messaging/message-store.js';
import { createLogger } from '../platform/log.js';
import { createMetrics } from '../platform/metrics.js';
import { ReceiptCoalescer } from './receipt-coalescer.js';

function setup(failWrites: number) {
  const writes: CursorUpdate[] = [];
  const receipts: string[] = [];
  let failures = failWrites;
  const store = {
    advanceCursor: async (u: CursorUpdate) => {
      if (failures > 0) {
        failures--;
        throw new Error('store down');
      }
      writes.push(u);
    },
  } as unknown as MessageStore;
  const messages = {
    receipt: async (_reader: unknown, kind: string, conversationId: string, seq: number) => void receipts.push(`${kind} ${conversationId} ${seq}`),
  } as unknown as MessagesManager;
  const coalescer = new ReceiptCoalescer({ store, messages, metrics: createMetrics(), log: createLogger('silent') }, 60_000);
  return { coalescer, writes, receipts };
}

const bob = { userId: 'bob', deviceId: 'b1' };

describe('ReceiptCoalescer', () => {
  it('folds acks and reads per device and conversation into one write and one receipt per kind, cursors only forward', async () => {
    const { coalescer, writes, receipts } = setup(0);
    coalescer.add(bob, 'c1', 3, true, 0);
    coalescer.add(bob, 'c1', 2, false, 0); // an older ack moves nothing back
    coalescer.add(bob, 'c1', 0, false, 2);
    coalescer.add(bob, 'c2', 0, false, 0); // nothing to say: not even pending
    await coalescer.flush();
    expect(writes).toEqual([{ deviceId: 'b1', conversationId: 'c1', delivered: 3, read: 2 }]);
    expect(receipts).toEqual(['delivered c1 3', 'read c1 2']);
  });

  it('keeps what a failed write held, relays nothing for it, and writes it with what came since on the next flush', async () => {
    const { coalescer, writes, receipts } = setup(1);
    coalescer.add(bob, 'c1', 4, true, 0);
    await coalescer.flush();
    expect(writes).toEqual([]);
    expect(receipts).toEqual([]);
    coalescer.add(bob, 'c1', 5, false, 5);
    await coalescer.flush();
    expect(writes).toEqual([{ deviceId: 'b1', conversationId: 'c1', delivered: 5, read: 5 }]);
    expect(receipts).toEqual(['delivered c1 5', 'read c1 5']);
  });
});
