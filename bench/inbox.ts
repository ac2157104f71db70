// The inbox scenario: GET /v1/conversations latency for a user with 1,000 conversations on PostgreSQL, the first page and a full walk.
//
// One server (`node --import tsx server.ts`) on a fresh PostgreSQL database (BENCH_PG_URL's
// server). The user registers through the SDK; then SQL seeds, in bulk, what months of use
// would leave: BENCH_INBOX_CONVERSATIONS [1000] conversations (4 in 5 direct, each with its
// own peer; 1 in 5 groups of 8), BENCH_INBOX_MESSAGES [30] messages in each from both sides
// (through the messages table, so the inbox's index is written by its trigger as for real
// sends), the user's device having read two thirds of them. Then, one request at a time
// over HTTP with the user's token: BENCH_INBOX_ROUNDS [200] first pages (50 conversations)
// and BENCH_INBOX_WALKS [20] full walks (every page, following the cursor). Latencies are
// client-side (request to parsed body), after a warm-up of 20 requests.
//
// Run alone with `npx tsx bench/inbox.ts` (under the machine lock), or as a scenario of bench/run.ts.
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import postgres from 'postgres';
import { createTestDatabase } from '../platform/test-databases.js';
import { registerDevice } from './accounts.js';
import { Child } from './children.js';
import { summarize, type LatencySummary } from './stats.js';

type Defer = (fn: () => Promise<unknown>) => void;

export interface InboxBenchOptions {
  pgAdminUrl: string;
  conversations: number;
  messages: number;
  rounds: number;
  walks: number;
}

const PAGE = 50;
const GROUP_SIZE = 8;

export function inboxOptions(env: NodeJS.ProcessEnv): InboxBenchOptions {
  const int = (name: string, def: number) => {
    const v = Number(env[name] ?? def);
    if (!Number.isSafeInteger(v) || v < 1) throw new Error(`${name}: a positive whole number`);
    return v;
  };
  return {
    pgAdminUrl: env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    conversations: int('BENCH_INBOX_CONVERSATIONS', 1000),
    messages: int('BENCH_INBOX_MESSAGES', 30),
    rounds: int('BENCH_INBOX_ROUNDS', 200),
    walks: int('BENCH_INBOX_WALKS', 20),
  };
}

/** Seeds the conversations of `me` (and `device`) in a few bulk statements. */
async function seed(sql: postgres.Sql, me: string, device: string, o: InboxBenchOptions): Promise<{ direct: number; groups: number }> {
  const groups = Math.floor(o.conversations / 5);
  const direct = o.conversations - groups;
  const peers = Array.from({ length: direct + GROUP_SIZE - 1 }, () => randomUUID());
  const now = Date.now();
  await sql`INSERT INTO users (id, username, password_hash, created_at)
            SELECT id::uuid, 'peer-' || left(id, 12), 'x', ${now} FROM unnest(${peers}::text[]) AS id`;
  const convs = Array.from({ length: o.conversations }, (_, i) => ({ id: randomUUID(), kind: i < direct ? 'direct' : 'group' }));
  await sql`INSERT INTO conversations (id, kind, last_seq, created_at)
            SELECT c.id::uuid, c.kind, ${o.messages}, ${now - 86_400_000} FROM json_to_recordset(${JSON.stringify(convs)}::text::json) AS c(id text, kind text)`;
  const groupIds = convs.slice(direct).map((c) => c.id);
  await sql`INSERT INTO groups (id, name, owner_id, created_at) SELECT g::uuid, 'pn1.sealed', ${me}, ${now} FROM unnest(${groupIds}::text[]) AS g`;
  // Members: me everywhere; each direct conversation its own peer; each group the same seven others.
  const members = [
    ...convs.map((c) => ({ c: c.id, u: me })),
    ...convs.slice(0, direct).map((c, i) => ({ c: c.id, u: peers[i]! })),
    ...groupIds.flatMap((g) => peers.slice(direct).map((u) => ({ c: g, u }))),
  ];
  await sql`INSERT INTO conversation_members (conversation_id, user_id, joined_seq) SELECT m.c::uuid, m.u::uuid, 0 FROM json_to_recordset(${JSON.stringify(members)}::text::json) AS m(c text, u text)`;
  // Messages: odd seqs from me, even ones from the other side (in a group, its first other member); sent a minute apart, conversations interleaved.
  await sql`INSERT INTO messages (conversation_id, seq, sender_id, sender_device_id, client_id, payloads, body, sent_at)
            SELECT c.id, s, CASE WHEN s % 2 = 1 THEN ${me}::uuid ELSE m.user_id END, NULL, 'seed-' || s,
                   '{}'::jsonb, CASE WHEN c.kind = 'group' THEN 'c2hhcmVk' END, ${now}::bigint - (${o.messages} - s) * 60000 - row_number() OVER () % 997
              FROM conversations c
              CROSS JOIN LATERAL (SELECT user_id FROM conversation_members WHERE conversation_id = c.id AND user_id <> ${me} LIMIT 1) m
              CROSS JOIN generate_series(1, ${o.messages}) AS s`;
  const read = Math.floor((o.messages * 2) / 3);
  await sql`INSERT INTO device_cursors (device_id, conversation_id, delivered_seq, read_seq) SELECT ${device}, id, ${o.messages}, ${read} FROM conversations`;
  await sql`ANALYZE`;
  return { direct, groups };
}

async function get(url: string, token: string, cursor?: string): Promise<{ conversations: unknown[]; cursor?: string }> {
  const res = await fetch(`${url}/v1/conversations?limit=${PAGE}${cursor ? `&cursor=${cursor}` : ''}`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`GET /v1/conversations: ${res.status} ${await res.text()}`);
  return (await res.json()) as { conversations: unknown[]; cursor?: string };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

const line = (what: string, s: LatencySummary) =>
  `${what.padEnd(34)} p50 ${s.p50.toFixed(2).padStart(7)} ms   p99 ${s.p99.toFixed(2).padStart(7)} ms   max ${s.max.toFixed(2).padStart(7)} ms   (${s.count} runs)`;

export async function benchInbox(o: InboxBenchOptions, defer: Defer): Promise<void> {
  const db = await createTestDatabase(o.pgAdminUrl);
  defer(db.drop);
  const server = new Child('parley-inbox', 'server.ts', [], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', SQL_DRIVER: 'postgres', DATABASE_URL: db.url },
  });
  defer(() => server.stop());
  const port = await server.waitFor('listening', (l) => (l.includes('"msg":"listening"') ? (JSON.parse(l).port as number) : undefined), 60_000);
  const url = `http://127.0.0.1:${port}`;
  const me = await registerDevice(url, `inbox-${process.pid}`);
  const sql = postgres(db.url, { max: 1, onnotice: () => {} });
  defer(() => sql.end());
  const { direct, groups } = await seed(sql, me.userId, me.deviceId, o);

  let pages = 0;
  const walk = async () => {
    let cursor: string | undefined;
    let seen = 0;
    pages = 0;
    do {
      const page = await get(url, me.token, cursor);
      seen += page.conversations.length;
      pages++;
      cursor = page.cursor;
    } while (cursor);
    if (seen !== o.conversations) throw new Error(`a walk saw ${seen} of ${o.conversations} conversations`);
  };
  for (let i = 0; i < 20; i++) await get(url, me.token);
  const first: number[] = [];
  for (let i = 0; i < o.rounds; i++) first.push(await timed(() => get(url, me.token)));
  const walks: number[] = [];
  for (let i = 0; i < o.walks; i++) walks.push(await timed(walk));

  console.log(
    `inbox: ${o.conversations.toLocaleString('en-US')} conversations (${direct} direct, ${groups} groups of ${GROUP_SIZE}), ` +
      `${o.messages} messages each, a third unread; PostgreSQL, one request at a time over HTTP`,
  );
  console.log(line(`first page (${PAGE})`, summarize(first)));
  console.log(line(`full walk (${pages} pages)`, summarize(walks)));
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const cleanups: (() => Promise<unknown>)[] = [];
  benchInbox(inboxOptions(process.env), (fn) => void cleanups.push(fn))
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    })
    .finally(async () => {
      for (const fn of cleanups.reverse()) await fn().catch((err: unknown) => console.error(`cleanup: ${String(err)}`));
    });
}
