import { brokerContract } from './broker.contract.js';
import { MemoryBroker } from './broker.memory.js';

brokerContract('memory', async () => {
  const broker = new MemoryBroker();
  return { a: broker, b: broker, dispose: () => broker.close() };
});
