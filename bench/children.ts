// The bench's child processes: `node --import tsx <script>` from the repo root, read line by line, and never left running after the bench.
import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

export const ROOT = resolve(import.meta.dirname, '..');

/** Lines kept per stream (the server may log a lot when something goes wrong). */
const KEEP_LINES = 2_000;

/** A child's output line as JSON (a log line), or undefined when it is not JSON. */
export function jsonLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

export interface ChildOptions {
  env: NodeJS.ProcessEnv;
  /** Copy its stderr to ours as it comes (the load generator's progress). */
  echoStderr?: boolean;
  /** Extra arguments for node itself (before the script), e.g. `--cpu-prof`. */
  nodeArgs?: string[];
}

export class Child {
  readonly stdout: string[] = [];
  readonly stderr: string[] = [];
  /** Resolves with the exit code, or the signal that ended it. */
  readonly exited: Promise<number | string>;
  private readonly proc: ChildProcess;
  private readonly lineListeners = new Set<(line: string) => void>();

  constructor(
    readonly name: string,
    script: string,
    args: readonly string[],
    options: ChildOptions,
  ) {
    // stdin stays an open pipe: our own children exit when it closes, i.e. when the bench dies.
    this.proc = spawn(process.execPath, [...(options.nodeArgs ?? []), '--import', 'tsx', script, ...args], { cwd: ROOT, env: options.env, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(this.proc);
    this.exited = new Promise((done) => {
      this.proc.once('error', (err) => {
        live.delete(this.proc);
        done(`spawn error: ${err.message}`);
      });
      this.proc.once('exit', (code, signal) => {
        live.delete(this.proc);
        done(code ?? signal ?? 'unknown');
      });
    });
    createInterface({ input: this.proc.stdout! }).on('line', (line) => {
      keep(this.stdout, line);
      for (const l of this.lineListeners) l(line);
    });
    createInterface({ input: this.proc.stderr! }).on('line', (line) => {
      keep(this.stderr, line);
      if (options.echoStderr) process.stderr.write(`${line}\n`);
    });
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  /** The first stdout line (past or future) that `match` maps to a value; rejects if the process exits first or on timeout. */
  waitFor<T>(what: string, match: (line: string) => T | undefined, timeoutMs: number): Promise<T> {
    for (const line of this.stdout) {
      const v = match(line);
      if (v !== undefined) return Promise.resolve(v);
    }
    return new Promise<T>((resolvePromise, reject) => {
      const finish = (err: Error | null, value?: T) => {
        clearTimeout(timer);
        this.lineListeners.delete(onLine);
        if (err) reject(err);
        else resolvePromise(value as T);
      };
      const onLine = (line: string) => {
        const v = match(line);
        if (v !== undefined) finish(null, v);
      };
      const timer = setTimeout(() => finish(new Error(`${this.name}: no ${what} within ${timeoutMs} ms\n${this.tail()}`)), timeoutMs);
      this.lineListeners.add(onLine);
      void this.exited.then((how) => finish(new Error(`${this.name} exited (${how}) before ${what}\n${this.tail()}`)));
    });
  }

  /** Resolves with the exit code or signal; kills it (SIGKILL) and rejects after timeoutMs. */
  async finished(timeoutMs: number): Promise<number | string> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.proc.kill('SIGKILL');
        reject(new Error(`${this.name} still running after ${Math.round(timeoutMs / 1000)} s; killed\n${this.tail()}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes one line to its stdin. */
  writeLine(line: string): void {
    this.proc.stdin?.write(`${line}\n`);
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  async stop(graceMs = 5_000): Promise<void> {
    if (!live.has(this.proc)) return;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** The last lines it printed, for error messages. */
  tail(n = 20): string {
    return [...this.stdout.slice(-n), ...this.stderr.slice(-n)].map((l) => `  ${this.name}| ${l}`).join('\n');
  }
}

/** SIGKILLs every child still running (on an interrupt). */
export function killAll(): void {
  for (const p of live) p.kill('SIGKILL');
}

function keep(lines: string[], line: string): void {
  lines.push(line);
  if (lines.length > KEEP_LINES) lines.splice(0, lines.length - KEEP_LINES);
}

/** Set for the server so a bench measures throughput, not the abuse limits. */
export const UNLIMITED = '1000000';

/**
 * A bench's Parley process: loopback, any free port, its own data directory, the "listening"
 * line (with the port) logged at info, and the abuse limits out of the way.
 */
export function parleyEnv(dataDir: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '',
    HOST: '127.0.0.1',
    PORT: '0',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'info',
    AUTH_RATE_PER_MINUTE: UNLIMITED,
    WS_RATE_PER_SECOND: UNLIMITED,
    WS_RATE_BURST: UNLIMITED,
    WS_USER_RATE_PER_SECOND: UNLIMITED,
    WS_USER_RATE_BURST: UNLIMITED,
  };
}
