// `npx tsx bench/history.ts`: the SDK's Node message store (PGlite) with 100,000 messages: the fill rate, and the latency of history() pages at random points.
//
// One conversation of BENCH_HISTORY_MESSAGES messages (100,000; 100-character texts, sealed
// under a history key), with a reaction on every 20th, recorded one at a time as the client
// records what it receives (each a lookup of actions on it and a one-row transaction).
// Then BENCH_HISTORY_PAGES (1,000) calls of client.history(conversation, { before, limit: 50 })
// with `before` uniform over the conversation (each opens 50 bodies and folds their
// reactions), after 50 warm-up calls, and the same for the newest page (no `before`), which
// is what a chat opens with. Data in a temporary directory, removed afterwards.
import { pathToFileURL } from 'node:url';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes, sodiumReady } from '../protocol/bytes.js';
import { createClient } from '../client-sdk/client.js';
import { MessageHistory } from '../client-sdk/history.messages.js';
import { openPgliteMessageStore } from '../client-sdk/history.pglite.js';
import { machine } from './report.js';
import { summarize } from './stats.js';

const MESSAGES = Number(process.env.BENCH_HISTORY_MESSAGES ?? 100_000);
const PAGES = Number(process.env.BENCH_HISTORY_PAGES ?? 1_000);
const LIMIT = 50;
const CONVERSATION = '0192f0c1-6b8e-8a4e-9d3c-5f2e7a1b9c40';
const USERS = ['0192f0c1-0000-8000-8000-00000000000a', '0192f0c1-0000-8000-8000-00000000000b'];

async function sizeOf(dir: string): Promise<number> {
  let total = 0;
  for (const e of await readdir(dir, { withFileTypes: true, recursive: true })) if (e.isFile()) total += (await stat(join(e.parentPath, e.name))).size;
  return total;
}

/** Latencies (ms) of `n` calls of `fn`, after `warmup` unmeasured ones. */
async function timeCalls(n: number, warmup: number, fn: () => Promise<unknown>): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    out.push(performance.now() - t);
  }
  return out;
}

/** `npm run bench -- --history` (or `npx tsx bench/history.ts`): fills the Node store and times history() pages. */
export async function benchHistory(): Promise<void> {
  await sodiumReady();
  console.log(machine());
  const dir = await mkdtemp(join(tmpdir(), 'parley-bench-history-'));
  try {
    const key = randomBytes(32);
    const store = await openPgliteMessageStore(dir);
    const history = new MessageHistory({ store, key, file: () => ({}) as never });
    const text = 'x'.repeat(100);
    const started = performance.now();
    let reactions = 0;
    for (let seq = 1, m = 0; m < MESSAGES; seq++, m++) {
      const from = USERS[m % 2]!;
      await history.addMessage({ conversationId: CONVERSATION, seq, id: `m${seq}`, sentAt: 1_700_000_000_000 + seq, from, fromDevice: 'd', text });
      if (m % 20 === 19) {
        seq++;
        reactions++;
        await history.addAction({ conversationId: CONVERSATION, seq, id: `a${seq}`, sentAt: 1_700_000_000_000 + seq, from: USERS[(m + 1) % 2]!, fromDevice: 'd', action: { type: 'reaction', target: `m${seq - 1}`, emoji: '👍' } }, false);
      }
      if (m % 10_000 === 9_999) console.log(`  ${(m + 1).toLocaleString('en-US')} messages in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
    const fillSeconds = (performance.now() - started) / 1000;
    const lastSeq = MESSAGES + reactions;

    const client = createClient({ url: 'http://127.0.0.1:9', username: 'bench', password: 'bench', messageStore: store, historyKey: key });
    const random = await timeCalls(PAGES, 50, async () => {
      const before = LIMIT + 1 + Math.floor(Math.random() * (lastSeq - LIMIT));
      const page = await client.history(CONVERSATION, { before, limit: LIMIT });
      if (page.length !== LIMIT) throw new Error(`a page of ${page.length} messages`);
    });
    const newest = await timeCalls(PAGES, 50, () => client.history(CONVERSATION, { limit: LIMIT }));
    await client.close();
    await store.close();
    const bytes = await sizeOf(dir);
    const reopenStarted = performance.now();
    const again = await openPgliteMessageStore(dir);
    const reopenMs = performance.now() - reopenStarted;
    await again.close();

    const r = summarize(random);
    const n = summarize(newest);
    console.log('');
    console.log(`fill: ${MESSAGES.toLocaleString('en-US')} messages + ${reactions.toLocaleString('en-US')} reactions, one at a time, in ${fillSeconds.toFixed(1)} s: ${Math.round((MESSAGES + reactions) / fillSeconds).toLocaleString('en-US')} entries/s`);
    console.log(`store on disk: ${(bytes / 2 ** 20).toFixed(1)} MiB; reopen (PGlite start) ${reopenMs.toFixed(0)} ms`);
    console.log('');
    console.log(`| history(conversation, { before, limit: ${LIMIT} }) | calls | p50 ms | p99 ms | max ms |`);
    console.log('|---|---|---|---|---|');
    console.log(`| random \`before\` | ${r.count} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${r.max.toFixed(2)} |`);
    console.log(`| newest page (no \`before\`) | ${n.count} | ${n.p50.toFixed(2)} | ${n.p99.toFixed(2)} | ${n.max.toFixed(2)} |`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await benchHistory();
