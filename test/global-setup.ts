// Starts the real services the suites need (via scripts/services.sh), hands their URLs to the tests, and stops afterwards the ones it started.
import { execFile, execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
    /** Debian's Chromium, for the browser tests (installed by scripts/services.sh when missing). */
    chromiumPath: string | null;
    chromiumUnavailable: string | null;
  }
}

/** Starts one service unless it is running; the script notes in `ledger` each one it started. */
async function ensure(ledger: string, name: 'postgres' | 'redis' | 'kafka' | 's3' | 'chromium', label: string): Promise<{ url: string | null; unavailable: string | null }> {
  try {
    const { stdout } = await run('bash', ['scripts/services.sh', name], { timeout: 300_000, env: { ...process.env, PARLEY_SERVICES_LEDGER: ledger } });
    return { url: stdout.trim().split('\n').pop() ?? null, unavailable: null };
  } catch (err) {
    // What the script said goes with the reason, so a CI log shows why (the last lines are enough).
    const said = String((err as { stderr?: unknown }).stderr ?? '').trim().split('\n').slice(-25).join('\n');
    return { url: null, unavailable: `${label} could not be started: ${(err as Error).message.split('\n')[0]}${said ? `\n${said}` : ''}` };
  }
}

/** Stops exactly the services this run started (listed in the ledger), leaving running those it found running. */
async function stopStarted(ledger: string): Promise<void> {
  const names = (await readFile(ledger, 'utf8').catch(() => '')).split('\n').filter(Boolean).map((l) => l.split(' ')[0]);
  if (names.length > 0) {
    console.log(`\n[tests] stopping what this run started: ${names.join(', ')}`);
    await run('bash', ['scripts/services.sh', 'stop', ledger], { timeout: 300_000 });
  }
  await rm(join(ledger, '..'), { recursive: true, force: true });
}

/**
 * Vitest does not run the global teardown when it is interrupted (Ctrl-C, SIGTERM): then the
 * services this run started are stopped on the way out, synchronously.
 */
function stopOnInterrupt(ledger: string): () => void {
  let stopped = false;
  const stopNow = () => {
    if (stopped) return;
    stopped = true;
    try {
      execFileSync('bash', ['scripts/services.sh', 'stop', ledger], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 120_000 });
      rmSync(join(ledger, '..'), { recursive: true, force: true });
    } catch {
      // Leaving; the ledger's services can still be stopped by hand (README, Tests).
    }
  };
  const onSignal = (signal: NodeJS.Signals) => {
    stopNow();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('exit', stopNow);
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  return () => {
    stopped = true;
    process.off('exit', stopNow);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/** Vitest's global setup: the returned function is its teardown, run once every suite has finished. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const ledger = join(await mkdtemp(join(tmpdir(), 'parley-services-')), 'started');
  const disarm = stopOnInterrupt(ledger);
  const [pg, redis, kafka, s3, chromium] = await Promise.all([
    ensure(ledger, 'postgres', 'PostgreSQL'),
    ensure(ledger, 'redis', 'Redis'),
    ensure(ledger, 'kafka', 'Kafka'),
    ensure(ledger, 's3', 'S3 (S3Proxy)'),
    ensure(ledger, 'chromium', 'Chromium'),
  ]);
  // A tier that could not start skips its suites with the reason, except under CI=true.
  const missing = [pg, redis, kafka, s3, chromium].flatMap((s) => (s.unavailable ? [s.unavailable] : []));
  if (missing.length > 0 && process.env.CI === 'true') {
    disarm();
    await stopStarted(ledger);
    throw new Error(`${missing.join('; ')} (CI=true: every tier must run)`);
  }
  for (const reason of missing) console.warn(`\n[tests] ${reason}; its suites are skipped.\n`);
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
  project.provide('chromiumPath', chromium.url);
  project.provide('chromiumUnavailable', chromium.unavailable);
  return () => {
    disarm();
    return stopStarted(ledger);
  };
}
