import { randomBytes } from 'node:crypto';
import { describe, inject, it } from 'vitest';
import { ManualClock } from './clock.js';
import { presenceContract } from './presence.contract.js';
import { RedisPresence } from './presence.redis.js';
import { openRedis } from './redis.js';

const url = inject('redisUrl');

if (url) {
  presenceContract('Redis', async () => {
    const clock = new ManualClock();
    const redis = await openRedis(url, 'presence-test');
    const prefix = `parley-test:${randomBytes(6).toString('hex')}:`;
    return {
      presence: new RedisPresence(redis, clock, { prefix }),
      clock,
      expire: async (ms) => {
        clock.advance(ms);
        await new Promise((r) => setTimeout(r, ms));
      },
      dispose: async () => {
        const keys = await redis.keys(`${prefix}*`);
        if (keys.length > 0) await redis.del(...keys);
        redis.disconnect();
      },
    };
  });
} else {
  describe('Presence contract: Redis', () => it.skip(`skipped: ${inject('redisUnavailable')}`, () => {}));
}
