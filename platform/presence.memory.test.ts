import { ManualClock } from './clock.js';
import { presenceContract } from './presence.contract.js';
import { MemoryPresence } from './presence.memory.js';

presenceContract('memory', async () => {
  const clock = new ManualClock();
  return {
    presence: new MemoryPresence(clock),
    clock,
    expire: async (ms) => clock.advance(ms),
    dispose: async () => {},
  };
});
