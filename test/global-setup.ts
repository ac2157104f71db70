// Starts the real services the suites need (via scripts/services.sh) and hands their URLs to the tests.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { TestProject } from 'vitest/node';

const run = promisify(execFile);

declare module 'vitest' {
  export interface ProvidedContext {
    postgresAdminUrl: string | null;
    postgresUnavailable: string | null;
    redisUrl: string | null;
    redisUnavailable: string | null;
    kafkaBrokers: string | null;
    kafkaUnavailable: string | null;
    /** The S3-compatible server (S3Proxy) and its credentials; tests create and delete their own buckets. */
    s3: { endpoint: string; accessKeyId: string; secretAccessKey: string } | null;
    s3Unavailable: string | null;
  }
}

/** Starts one service; on failure, skips its suites with the reason, except under CI=true. */
async function ensure(name: 'postgres' | 'redis' | 'kafka' | 's3', label: string): Promise<{ url: string | null; unavailable: string | null }> {
  try {
    const { stdout } = await run('bash', ['scripts/services.sh', name], { timeout: 300_000 });
    return { url: stdout.trim().split('\n').pop() ?? null, unavailable: null };
  } catch (err) {
    const reason = `${label} could not be started: ${(err as Error).message.split('\n')[0]}`;
    if (process.env.CI === 'true') throw new Error(`${reason} (CI=true: every tier must run)`);
    console.warn(`\n[tests] ${reason}; ${label} suites are skipped.\n`);
    return { url: null, unavailable: reason };
  }
}

export default async function setup(project: TestProject): Promise<void> {
  const [pg, redis, kafka, s3] = await Promise.all([
    ensure('postgres', 'PostgreSQL'),
    ensure('redis', 'Redis'),
    ensure('kafka', 'Kafka'),
    ensure('s3', 'S3 (S3Proxy)'),
  ]);
  project.provide('postgresAdminUrl', pg.url);
  project.provide('postgresUnavailable', pg.unavailable);
  project.provide('redisUrl', redis.url);
  project.provide('redisUnavailable', redis.unavailable);
  project.provide('kafkaBrokers', kafka.url);
  project.provide('kafkaUnavailable', kafka.unavailable);
  // The credentials scripts/services.sh configures S3Proxy with (same defaults, same overrides).
  project.provide(
    's3',
    s3.url
      ? {
          endpoint: s3.url,
          accessKeyId: process.env.PARLEY_S3_ACCESS_KEY_ID ?? 'parley-test',
          secretAccessKey: process.env.PARLEY_S3_SECRET_ACCESS_KEY ?? 'parley-test-secret',
        }
      : null,
  );
  project.provide('s3Unavailable', s3.unavailable);
}
