import { groupLogContract } from './group-log.contract.js';
import { MemoryGroupLog } from './group-log.memory.js';

let n = 0;
groupLogContract('memory', async () => {
  const log = new MemoryGroupLog({ partitions: 3, retryMs: 10 });
  return { log, group: () => `g${n++}`, dispose: () => log.close() };
});
