// The memory message store against the shared contract.
import { messageStoreContract } from './history.contract.js';
import { memoryMessageStore } from './history.memory.js';

messageStoreContract('memory', { create: async () => memoryMessageStore() });
