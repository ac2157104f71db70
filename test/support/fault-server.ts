// A Parley server with fault injection, for end-to-end suites only: each PARLEY_FAULT_*_MARKER kills the process once, at one chosen moment.
import { existsSync, writeFileSync } from 'node:fs';
import { serve } from '../../parley.js';

const fanoutMarker = process.env.PARLEY_FAULT_FANOUT_CRASH_MARKER;
const commitMarker = process.env.PARLEY_FAULT_COMMIT_CRASH_MARKER;

/** Once per marker: when the file does not exist yet, writes `content` to it and dies (SIGKILL, nothing flushed). */
function crashOnce(marker: string | undefined, content: () => string): void {
  if (!marker || existsSync(marker)) return;
  writeFileSync(marker, content());
  process.kill(process.pid, 'SIGKILL');
}

/**
 * PARLEY_FAULT_FANOUT_CRASH_MARKER: the fan-out worker writes the batch size to the marker and
 * dies right after delivering a batch and before its offsets are committed.
 * PARLEY_FAULT_COMMIT_CRASH_MARKER: the gateway writes `{ conversationId, seq }` (JSON) to the
 * marker and dies right after a direct message is committed and before it is published to the
 * recipients' gateways (and before the sender is acknowledged).
 * Either is a crash at the worst moment, once.
 */
serve({
  afterFanoutDeliver: (records) => crashOnce(fanoutMarker, () => String(records)),
  afterCommit: (info) => crashOnce(commitMarker, () => JSON.stringify(info)),
}).catch((err) => {
  console.error('parley failed to start:', err);
  process.exit(1);
});
