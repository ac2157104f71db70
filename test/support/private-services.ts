// Private Redis and PostgreSQL servers on free loopback ports, owned by one suite so it may stop and restart them.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

export interface PrivateService {
  readonly url: string;
  stop(): Promise<void>;
  start(): Promise<void>;
  dispose(): Promise<void>;
}

/** A throwaway redis-server (no persistence: a restart loses every key, like a crashed cache). */
export async function privateRedis(): Promise<PrivateService> {
  const port = await freePort();
  let child: ChildProcess | null = null;
  const start = async () => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    for (let i = 0; i < 200; i++) {
      try {
        const { stdout } = await run('redis-cli', ['-p', String(port), 'ping']);
        if (stdout.includes('PONG')) return;
      } catch {
        /* not yet */
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error('private redis did not start');
  };
  const stop = async () => {
    const c = child;
    child = null;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((r) => {
      c.once('exit', () => r());
      c.kill('SIGKILL');
    });
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, start, stop, dispose: stop };
}

async function pgBin(name: string): Promise<string> {
  const versions = (await readdir('/usr/lib/postgresql')).sort();
  return join('/usr/lib/postgresql', versions.at(-1)!, 'bin', name);
}

/** A throwaway PostgreSQL cluster (run as the `postgres` OS user when we are root, as PostgreSQL requires). */
export async function privatePostgres(): Promise<PrivateService> {
  const port = await freePort();
  const dir = await mkdtemp(join(tmpdir(), 'parley-pg-'));
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { stdout } = await run('id', ['-u', 'postgres']);
    const { stdout: gid } = await run('id', ['-g', 'postgres']);
    await chown(dir, Number(stdout.trim()), Number(gid.trim()));
    await chmod(dir, 0o700);
  }
  const pg = async (bin: string, args: string[]) => {
    const path = await pgBin(bin);
    return asRoot ? run('runuser', ['-u', 'postgres', '--', path, ...args]) : run(path, args);
  };
  const data = join(dir, 'data');
  await pg('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync']);
  const start = async () => {
    await pg('pg_ctl', ['-D', data, '-l', join(dir, 'log'), '-w', '-o', `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off`, 'start']);
  };
  const stop = async () => {
    await pg('pg_ctl', ['-D', data, '-m', 'fast', '-w', 'stop']).catch(() => {});
  };
  await start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start,
    stop,
    dispose: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A throwaway single-node Kafka broker (KRaft) on free ports, started and stopped with the
 * project's own scripts/services.sh (the jars it fetched for the shared broker are reused).
 * `url` is the bootstrap address `127.0.0.1:<port>`.
 */
export async function privateKafka(): Promise<PrivateService> {
  const [port, controller] = [await freePort(), await freePort()];
  const dir = await mkdtemp(join(tmpdir(), 'parley-kafka-'));
  const env = { ...process.env, PARLEY_KAFKA_PORT: String(port), PARLEY_KAFKA_CONTROLLER_PORT: String(controller), PARLEY_KAFKA_DIR: dir };
  const script = join(import.meta.dirname, '..', '..', 'scripts', 'services.sh');
  const start = async () => {
    await run('bash', [script, 'kafka'], { env, timeout: 180_000 });
  };
  const stop = async () => {
    await run('bash', [script, 'kafka-stop'], { env, timeout: 60_000 });
  };
  await start();
  return {
    url: `127.0.0.1:${port}`,
    start,
    stop,
    dispose: async () => {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
