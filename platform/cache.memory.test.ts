import { cacheContract } from './cache.contract.js';
import { MemoryCache } from './cache.memory.js';
import { ManualClock } from './clock.js';

cacheContract('memory', async () => {
  const clock = new ManualClock();
  const cache = new MemoryCache(clock);
  return { a: cache, b: cache, wait: async (ms) => clock.advance(ms), dispose: () => cache.close() };
});
