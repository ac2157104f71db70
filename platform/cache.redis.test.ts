import { randomBytes } from 'node:crypto';
import { describe, inject, it } from 'vitest';
import { cacheContract } from './cache.contract.js';
import { RedisCache } from './cache.redis.js';
import { openRedis } from './redis.js';

const url = inject('redisUrl');

if (url) {
  cacheContract('Redis (two processes’ worth of connections)', async () => {
    const prefix = `parley-test:${randomBytes(6).toString('hex')}:`;
    const [ra, rb] = await Promise.all([openRedis(url, 'cache-a'), openRedis(url, 'cache-b')]);
    return {
      a: new RedisCache(ra!, { prefix }),
      b: new RedisCache(rb!, { prefix }),
      wait: (ms) => new Promise((r) => setTimeout(r, ms)),
      dispose: async () => {
        ra!.disconnect();
        rb!.disconnect();
      },
    };
  });
} else {
  describe('Cache contract: Redis', () => it.skip(`skipped: ${inject('redisUnavailable')}`, () => {}));
}
