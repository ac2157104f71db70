// Runs the real server (server.ts) as a child process for end-to-end suites, and restarts or kills it.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

export interface ServerProcess {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  /** Every log line the process printed (stdout and stderr), across restarts. */
  readonly logs: string[];
  /** Whether the process is running (false after it crashed or was stopped). */
  readonly running: boolean;
  /** SIGTERM and wait (graceful). */
  stop(): Promise<void>;
  /** SIGKILL and wait (a crash). */
  kill(): Promise<void>;
  /** Starts it again on the same port and data directory. */
  start(): Promise<void>;
  /** Stops it and removes its data directory. */
  dispose(): Promise<void>;
}

export async function startServer(options: { env?: Record<string, string>; /** The entry script; default server.ts. */ entry?: string } = {}): Promise<ServerProcess> {
  const dataDir = await mkdtemp(join(tmpdir(), 'parley-e2e-'));
  const logs: string[] = [];
  let child: ChildProcess | null = null;
  let port = 0;

  const launch = async () => {
    const proc = spawn(process.execPath, ['--import', 'tsx', options.entry ?? 'server.ts'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? '',
        HOST: '127.0.0.1',
        PORT: String(port),
        DATA_DIR: dataDir,
        LOG_LEVEL: 'info',
        AUTH_RATE_PER_MINUTE: '100000',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    port = await new Promise<number>((resolvePort, reject) => {
      let buffer = '';
      const onData = (chunk: Buffer) => {
        buffer += chunk.toString('utf8');
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          logs.push(line);
          if (line.includes('"msg":"listening"')) resolvePort(JSON.parse(line).port as number);
        }
      };
      proc.stdout!.on('data', onData);
      proc.stderr!.on('data', (c: Buffer) => logs.push(c.toString('utf8')));
      proc.once('exit', (code) => reject(new Error(`server exited early with ${code}:\n${logs.slice(-20).join('\n')}`)));
    });
  };

  const waitExit = (signal: NodeJS.Signals) =>
    new Promise<void>((done) => {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return done();
      // A server that does not stop within 15 s is killed, so no suite leaves one behind.
      const stuck = setTimeout(() => c.kill('SIGKILL'), 15_000);
      c.once('exit', () => {
        clearTimeout(stuck);
        done();
      });
      c.kill(signal);
    });

  await launch();
  return {
    get url() {
      return `http://127.0.0.1:${port}`;
    },
    get port() {
      return port;
    },
    dataDir,
    logs,
    get running() {
      const c = child as ChildProcess | null;
      return c !== null && c.exitCode === null && c.signalCode === null;
    },
    stop: () => waitExit('SIGTERM'),
    kill: () => waitExit('SIGKILL'),
    start: launch,
    dispose: async () => {
      await waitExit('SIGTERM');
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
