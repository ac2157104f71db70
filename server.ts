// Entry point: the whole platform in one process (parley.ts), configured from the environment, stopped by SIGTERM or SIGINT.
import { serve } from './parley.js';

serve().catch((err) => {
  console.error('parley failed to start:', err);
  process.exit(1);
});
