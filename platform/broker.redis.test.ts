import { randomBytes } from 'node:crypto';
import { describe, inject, it } from 'vitest';
import { brokerContract } from './broker.contract.js';
import { RedisBroker } from './broker.redis.js';
import { openRedis } from './redis.js';

const url = inject('redisUrl');

if (url) {
  brokerContract('Redis (two processes’ worth of connections)', async () => {
    const prefix = `parley-test:${randomBytes(6).toString('hex')}:`;
    const clients = await Promise.all(['a-pub', 'a-sub', 'b-pub', 'b-sub'].map((n) => openRedis(url, n)));
    const [aPub, aSub, bPub, bSub] = clients as [typeof clients[0], typeof clients[0], typeof clients[0], typeof clients[0]];
    return {
      a: new RedisBroker(aPub, aSub, { prefix }),
      b: new RedisBroker(bPub, bSub, { prefix }),
      dispose: async () => {
        for (const c of clients) c.disconnect();
      },
    };
  });
} else {
  describe('Broker contract: Redis', () => it.skip(`skipped: ${inject('redisUnavailable')}`, () => {}));
}
