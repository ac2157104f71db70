// The memory key store against the shared contract.
import { keyStoreContract } from './e2e.store.contract.js';
import { memoryKeyStore } from './e2e.store.memory.js';

keyStoreContract('memory', { create: async () => memoryKeyStore() });
