// Bench settings: the BENCH_* environment variables and CLI flags (documented at the top of run.ts), validated once.
import { BENCH_TRANSPORTS, type BenchTransport } from './pair-sockets.js';

export interface Settings {
  /** Sender/recipient pairs (2 × pairs connections, 2 × pairs users on Parley). */
  pairs: number;
  /** Messages in the max-throughput scenario, spread evenly over the pairs. */
  messages: number;
  /** Messages per pair sent but not yet delivered, at most, in the max-throughput scenario. */
  window: number;
  /** Messages sent (same shape as the max-throughput scenario) before measuring; not reported. */
  warmup: number;
  /** Total send rate of the fixed-rate scenario, messages per second over all pairs. */
  rate: number;
  /** How long the fixed-rate scenario sends. */
  rateSeconds: number;
  /** Characters of message text before encryption. */
  textChars: number;
  /** Parley's SQL driver. */
  sql: 'pglite' | 'postgres';
  /** Admin URL of the PostgreSQL server the bench creates (and drops) a fresh database on. */
  pgAdminUrl: string;
  /** Parley gateway processes: 1, or several on PostgreSQL + Redis (`--cluster`). */
  gateways: number;
  /** Extra configuration for Parley's servers (BENCH_SERVER_ENV, `NAME=value` pairs separated by commas). */
  serverEnv: Record<string, string>;
  /** How the 1:1 scenarios reach Parley, each against a fresh server, in this order (BENCH_TRANSPORTS). */
  transports: BenchTransport[];
  /** Which scenario: the 1:1 ones, or the one its flag names (SCENARIO_FLAGS). */
  scenario: 'messages' | 'connections' | 'fanout' | 'crypto' | 'files' | 'abuse' | 'soak' | 'inbox' | 'history' | 'web';
  /** Idle connections to hold in the connections scenario. */
  connections: number;
  /** Fan-out: online members of the group, gateway processes, spaced messages and their interval, burst size. */
  groupMembers: number;
  fanoutGateways: number;
  fanoutMessages: number;
  fanoutIntervalMs: number;
  fanoutBurst: number;
  /** `--files`: files per HTTP direction, their size in MiB, and how many go through the SDK. */
  files: number;
  fileMiB: number;
  sdkFiles: number;
  /** `--abuse`: a bystander pair beside each attack (see bench/abuse.ts). */
  abuse: AbuseSettings;
  /** `--soak`: steady traffic with the message purge on, then off (see bench/soak.ts). */
  soak: SoakSettings;
  /** `--web`: the web client in Chromium beside the SDK (see bench/web.ts). */
  web: WebSettings;
}

export interface WebSettings {
  /** Signed-in page loads timed, and the chats the user has (each must be listed). */
  loads: number;
  chats: number;
  /** Messages sent one at a time, through the web client and then through the SDK alone. */
  messages: number;
}

export interface SoakSettings {
  /** How long each run sends, and its total rate (messages per second, round-robin over BENCH_PAIRS pairs). */
  seconds: number;
  rate: number;
  /** Share of the pairs whose recipient is an offline device with a Web Push subscription (0 to 1). */
  offline: number;
  /** Seconds between samples of the database and the server. */
  sampleSeconds: number;
  /** MESSAGE_SWEEP_INTERVAL_MS of the purge-on run. */
  sweepMs: number;
  /** Each offline device comes online for a short visit (sync, ack) every this many seconds; 0: never. */
  wakeSeconds: number;
}

/** The attacks of `--abuse`, in the order they run (the variant that ignores retryAfterMs last: it leaves the server busy longest). */
export const ATTACKS = ['garbage', 'backlog', 'presence', 'devices', 'flood', 'stalled', 'logins', 'devices-ignoring'] as const;
export type Attack = (typeof ATTACKS)[number];
export const ABUSE_TARGETS = ['embedded', 'cluster'] as const;

export interface AbuseSettings {
  /** Which targets and attacks run (BENCH_ABUSE_TARGETS, BENCH_ABUSE_ATTACKS: comma-separated). */
  targets: (typeof ABUSE_TARGETS)[number][];
  attacks: Attack[];
  /** Gateway processes of the cluster target. */
  gateways: number;
  /** How long each attack phase lasts (longer where the attack needs it: stalled bodies), and each idle phase. */
  seconds: number;
  idleSeconds: number;
  /** The bystander sends one message every this many ms, alternately in each direction. */
  intervalMs: number;
  /** garbage: connections (devices of one user) pushing hostile frames. */
  garbageConnections: number;
  /** backlog: messages waiting for the offline user, and the base64 characters of each body. */
  backlogMessages: number;
  backlogBodyChars: number;
  /** presence: subscribe frames per batch (256 random users each). */
  presenceFrames: number;
  /** stalled: HTTP connections that stall in their request body. */
  stalledConnections: number;
  /** logins: source addresses (127.0.0.2 …) guessing the password of one username. */
  loginAddresses: number;
}

/** The flags that run another scenario instead of the 1:1 ones (see run.ts). */
const SCENARIO_FLAGS = {
  '--connections': 'connections',
  '--fanout': 'fanout',
  '--crypto': 'crypto',
  '--files': 'files',
  '--abuse': 'abuse',
  '--soak': 'soak',
  '--inbox': 'inbox',
  '--history': 'history',
  '--web': 'web',
} as const satisfies Record<string, Settings['scenario']>;

export class SettingsError extends Error {
  override name = 'SettingsError';
}

/** A comma-separated subset of `all` (all of it when unset), in `all`'s order. */
function list<T extends string>(env: Record<string, string | undefined>, name: string, all: readonly T[]): T[] {
  const raw = env[name];
  if (raw === undefined || raw === '') return [...all];
  const picked = raw.split(',').map((x) => x.trim());
  const unknown = picked.filter((x) => !(all as readonly string[]).includes(x));
  if (unknown.length > 0 || picked.length === 0) throw new SettingsError(`${name}=${raw}: expected a comma-separated subset of ${all.join(',')}`);
  return all.filter((x) => picked.includes(x));
}

function int(env: Record<string, string | undefined>, name: string, def: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new SettingsError(`${name}=${raw}: expected an integer from ${min} to ${max}`);
  return n;
}

export function loadSettings(env: Record<string, string | undefined>, argv: readonly string[]): Settings {
  for (const a of argv) {
    if (!['--postgres', '--cluster', ...Object.keys(SCENARIO_FLAGS)].includes(a)) {
      throw new SettingsError(`unknown argument ${a} (flags: --postgres, --cluster, ${Object.keys(SCENARIO_FLAGS).join(', ')})`);
    }
  }
  const cluster = argv.includes('--cluster');
  // The soak measures the database's size and rows from outside the server: PostgreSQL unless BENCH_SQL says otherwise.
  const sql = argv.includes('--postgres') || cluster ? 'postgres' : (env.BENCH_SQL ?? (argv.includes('--soak') ? 'postgres' : 'pglite'));
  if (sql !== 'pglite' && sql !== 'postgres') throw new SettingsError(`BENCH_SQL=${sql}: expected pglite or postgres`);
  const pgAdminUrl = env.BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const pgHost = new URL(pgAdminUrl).hostname;
  if (sql === 'postgres' && pgHost !== '127.0.0.1' && pgHost !== 'localhost') {
    throw new SettingsError(`BENCH_PG_URL must point at 127.0.0.1 (got ${pgHost}): the bench runs on loopback only`);
  }
  return {
    pairs: int(env, 'BENCH_PAIRS', 50, 1, 2000),
    messages: int(env, 'BENCH_MESSAGES', 20_000, 1, 10_000_000),
    window: int(env, 'BENCH_WINDOW', 32, 1, 10_000),
    warmup: int(env, 'BENCH_WARMUP', 2_000, 0, 10_000_000),
    rate: int(env, 'BENCH_RATE', 2_000, 1, 1_000_000),
    rateSeconds: int(env, 'BENCH_RATE_SECONDS', 5, 1, 600),
    textChars: int(env, 'BENCH_TEXT_CHARS', 100, 1, 30_000),
    sql,
    pgAdminUrl,
    serverEnv: serverEnv(env.BENCH_SERVER_ENV),
    gateways: cluster ? int(env, 'BENCH_GATEWAYS', 2, 2, 16) : 1,
    transports: list(env, 'BENCH_TRANSPORTS', BENCH_TRANSPORTS),
    scenario: Object.entries(SCENARIO_FLAGS).find(([flag]) => argv.includes(flag))?.[1] ?? 'messages',
    connections: int(env, 'BENCH_CONNECTIONS', 100_000, 1, 200_000),
    groupMembers: int(env, 'BENCH_GROUP_MEMBERS', 10_000, 1, 100_000),
    fanoutGateways: int(env, 'BENCH_GATEWAYS', 2, 1, 16),
    fanoutMessages: int(env, 'BENCH_FANOUT_MESSAGES', 10, 1, 1_000),
    fanoutIntervalMs: int(env, 'BENCH_FANOUT_INTERVAL_MS', 1_000, 0, 60_000),
    fanoutBurst: int(env, 'BENCH_FANOUT_BURST', 10, 1, 1_000),
    files: int(env, 'BENCH_FILES', 5, 1, 100),
    fileMiB: int(env, 'BENCH_FILE_MIB', 50, 1, 1024),
    sdkFiles: int(env, 'BENCH_SDK_FILES', 2, 0, 100),
    abuse: abuseSettings(env),
    soak: {
      seconds: int(env, 'BENCH_SOAK_SECONDS', 120, 10, 3_600),
      rate: int(env, 'BENCH_SOAK_RATE', 500, 1, 100_000),
      offline: share(env, 'BENCH_SOAK_OFFLINE', 0.2),
      sampleSeconds: int(env, 'BENCH_SOAK_SAMPLE_SECONDS', 10, 1, 600),
      sweepMs: int(env, 'BENCH_SOAK_SWEEP_MS', 2_000, 100, 600_000),
      wakeSeconds: int(env, 'BENCH_SOAK_WAKE_SECONDS', 30, 0, 3_600),
    },
    web: {
      loads: int(env, 'BENCH_WEB_LOADS', 20, 1, 1_000),
      chats: int(env, 'BENCH_WEB_CHATS', 20, 1, 500),
      messages: int(env, 'BENCH_WEB_MESSAGES', 200, 1, 100_000),
    },
  };
}

/** A share from 0 to 1. */
function share(env: Record<string, string | undefined>, name: string, def: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0 || n > 1) throw new SettingsError(`${name}=${raw}: expected a number from 0 to 1`);
  return n;
}

function abuseSettings(env: Record<string, string | undefined>): AbuseSettings {
  const seconds = int(env, 'BENCH_ABUSE_SECONDS', 8, 1, 600);
  return {
    targets: list(env, 'BENCH_ABUSE_TARGETS', ABUSE_TARGETS),
    attacks: list(env, 'BENCH_ABUSE_ATTACKS', ATTACKS),
    gateways: int(env, 'BENCH_GATEWAYS', 2, 1, 16),
    seconds,
    idleSeconds: int(env, 'BENCH_ABUSE_IDLE_SECONDS', seconds, 1, 600),
    intervalMs: int(env, 'BENCH_ABUSE_INTERVAL_MS', 20, 1, 10_000),
    garbageConnections: int(env, 'BENCH_ABUSE_GARBAGE_CONNECTIONS', 4, 1, 6),
    backlogMessages: int(env, 'BENCH_ABUSE_BACKLOG_MESSAGES', 330, 1, 100_000),
    backlogBodyChars: int(env, 'BENCH_ABUSE_BACKLOG_BODY_CHARS', 60_000, 4, 65_536),
    presenceFrames: int(env, 'BENCH_ABUSE_PRESENCE_FRAMES', 400, 1, 100_000),
    stalledConnections: int(env, 'BENCH_ABUSE_STALLED', 200, 1, 10_000),
    loginAddresses: int(env, 'BENCH_ABUSE_LOGIN_ADDRESSES', 8, 1, 250),
  };
}

/** `NAME=value,NAME2=value2` → an object; names must look like environment variables. */
function serverEnv(raw: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (raw ?? '').split(',').filter((p) => p.trim() !== '')) {
    const eq = pair.indexOf('=');
    const name = eq > 0 ? pair.slice(0, eq).trim() : '';
    if (!/^[A-Z][A-Z0-9_]*$/.test(name)) throw new SettingsError(`BENCH_SERVER_ENV: expected NAME=value pairs separated by commas (got "${pair}")`);
    out[name] = pair.slice(eq + 1);
  }
  return out;
}
