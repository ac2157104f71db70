// Parley processes and users for the scenarios that run many gateways on the real tier (connections, fan-out).
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { Child } from './children.js';

/** The address scripts/services.sh prints for a service it made sure runs (postgres, redis, kafka, s3). */
export function service(name: string): string {
  return execFileSync('bash', ['scripts/services.sh', name], { encoding: 'utf8' }).trim().split('\n').pop()!;
}

/**
 * The environment of Parley gateways on PostgreSQL (`databaseUrl`) and Redis (keys under
 * `redisPrefix`), listening on every address (holders connect from several 127.0.x.y), with a
 * fresh shared JWT_SECRET so a bench can sign its devices' tokens. `extra` adds or overrides.
 */
export function realTierEnv(databaseUrl: string, redisPrefix: string, extra: NodeJS.ProcessEnv = {}): { env: NodeJS.ProcessEnv; secret: string } {
  const secret = randomBytes(32).toString('base64url');
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    HOST: '0.0.0.0',
    PORT: '0',
    LOG_LEVEL: 'info', // for the "listening" line with the port
    SQL_DRIVER: 'postgres',
    DATABASE_URL: databaseUrl,
    SQL_POOL_SIZE: '4',
    PRESENCE_DRIVER: 'redis',
    REDIS_URL: service('redis'),
    REDIS_KEY_PREFIX: redisPrefix,
    JWT_SECRET: secret,
    ...extra,
  };
  return { env, secret };
}

/** Starts `n` gateways (`server.ts`) one after another, the first migrating the schema; resolves with them and their URLs. */
export async function startGateways(env: NodeJS.ProcessEnv, n: number, defer: (fn: () => Promise<unknown>) => void): Promise<{ servers: Child[]; urls: string[] }> {
  const servers: Child[] = [];
  const urls: string[] = [];
  for (let i = 1; i <= n; i++) {
    const s = new Child(`parley-gw${i}`, 'server.ts', [], { env: { ...env, GATEWAY_ID: `gw${i}` } });
    defer(() => s.stop());
    const port = await s.waitFor('listening', (l) => (l.includes('"msg":"listening"') ? (JSON.parse(l).port as number) : undefined), 60_000);
    servers.push(s);
    urls.push(`http://127.0.0.1:${port}`);
  }
  return { servers, urls };
}

/**
 * Inserts `count` users named `<prefix><i>` (i from `first`) with one device each, straight
 * into SQL (registering thousands through scrypt would take long), and returns every device
 * as `{ userId, deviceId, username }`, ordered by username.
 */
export async function insertUsers(databaseUrl: string, prefix: string, first: number, count: number): Promise<{ userId: string; deviceId: string; username: string }[]> {
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`INSERT INTO users (id, username, password_hash, created_at)
                      SELECT gen_random_uuid(), '${prefix}' || g, 'x', 0 FROM generate_series(${first}, ${first + count - 1}) g`);
    await sql.unsafe(`INSERT INTO devices (id, user_id, name, public_key, created_at)
                      SELECT gen_random_uuid(), id, 'bench', 'AQ' || repeat('A', 41) || '=', 0 FROM users WHERE username LIKE '${prefix}%'`);
    const rows = await sql.unsafe<{ user_id: string; id: string; username: string }[]>(
      `SELECT d.user_id, d.id, u.username FROM devices d JOIN users u ON u.id = d.user_id WHERE u.username LIKE '${prefix}%' ORDER BY u.username`,
    );
    return rows.map((r) => ({ userId: r.user_id, deviceId: r.id, username: r.username }));
  } finally {
    await sql.end();
  }
}
