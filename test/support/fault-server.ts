// A Parley server with fault injection, for end-to-end suites only: PARLEY_FAULT_FANOUT_CRASH_MARKER kills the fan-out worker once.
import { existsSync, writeFileSync } from 'node:fs';
import { serve } from '../../parley.js';

const marker = process.env.PARLEY_FAULT_FANOUT_CRASH_MARKER;

/**
 * When the marker file does not exist yet, the worker creates it (with the batch size) and
 * kills itself (SIGKILL) right after delivering a batch and before its offsets are committed:
 * a crash at the worst moment, once.
 */
serve({
  afterFanoutDeliver: (records) => {
    if (!marker || existsSync(marker)) return;
    writeFileSync(marker, String(records));
    process.kill(process.pid, 'SIGKILL');
  },
}).catch((err) => {
  console.error('parley failed to start:', err);
  process.exit(1);
});
