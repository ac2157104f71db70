// The abuse bench attacker's tools: users made over REST, raw WebSockets that push frames as fast as they drain and count what comes back.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket, { type RawData } from 'ws';
import { toB64 } from '../protocol/bytes.js';
import { generateIdentity, type IdentityKeyPair } from '../protocol/keys.js';
import { type LoginProof, signLoginProof } from '../protocol/login-proof.js';
import { ParleyError, request } from '../client-sdk/http.js';
import { PROTOCOL, WS_PATH } from '../protocol/frames.js';
import { ROOT } from './children.js';

/** One logged-in device of an attacking user. */
export interface Device {
  userId: string;
  deviceId: string;
  token: string;
}

export interface User {
  username: string;
  password: string;
  userId: string;
  devices: Device[];
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A fresh Ed25519 identity key as a login sends it (libsodium must be ready). */
export function publicKey(): string {
  return toB64(generateIdentity().publicKey);
}

export function wsUrl(httpUrl: string): string {
  return Object.assign(new URL(WS_PATH, httpUrl), { protocol: 'ws:' }).toString();
}

/**
 * A login's `device.publicKey` and `device.proof` for `username`: a challenge from `url`
 * (valid 2 minutes, on any gateway, and reusable until then), signed with `identity`.
 */
export async function provenKey(url: string, username: string, identity: IdentityKeyPair = generateIdentity()): Promise<{ publicKey: string; proof: LoginProof }> {
  const { challenge } = await request<{ challenge: string }>(url, 'POST', '/v1/sessions/challenge');
  return { publicKey: toB64(identity.publicKey), proof: signLoginProof(identity, challenge, username) };
}

/** POST /v1/sessions: a new device of `username`. Throws ParleyError (with `status`) when refused. */
export async function login(url: string, username: string, password: string): Promise<Device> {
  const s = await request<{ token: string; userId: string; deviceId: string }>(url, 'POST', '/v1/sessions', {
    body: { username, password, device: { name: 'attacker', ...(await provenKey(url, username)) } },
  });
  return { userId: s.userId, deviceId: s.deviceId, token: s.token };
}

/** Registers `username` and logs in `devices` devices, one after another (the cap is checked per login). */
export async function newUser(url: string, username: string, devices: number): Promise<User> {
  const password = `attacker-password-${username}`;
  const { userId } = await request<{ userId: string }>(url, 'POST', '/v1/accounts', { body: { username, password } });
  const list: Device[] = [];
  for (let i = 0; i < devices; i++) list.push(await login(url, username, password));
  return { username, password, userId, devices: list };
}

/** `"<status> <code>"` of a refused REST call, for the report. */
export function refusal(err: unknown): string {
  return err instanceof ParleyError ? `${err.status ?? '?'} ${err.code}` : String(err);
}

/** Counts by key, printed as `a×3 b×1`. */
export class Tally {
  readonly counts = new Map<string, number>();

  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  toString(): string {
    return [...this.counts].map(([k, n]) => `${k}×${n}`).join(' ') || 'none';
  }
}

/**
 * What a server frame is, from its first bytes (`msg`, `pong`, `error:rate_limited` …), without
 * parsing it: the server serializes `type` first and an error's `code` second, and a flood
 * brings back tens of thousands of frames a second that the attacker must not spend its CPU on.
 */
export function kindOf(data: RawData): string {
  const head = (data as Buffer).toString('latin1', 0, 64);
  const m = /^\{"type":"([a-z_.]+)"(?:,"code":"([a-z_]+)")?/.exec(head);
  return m ? (m[2] ? `${m[1]}:${m[2]}` : m[1]!) : 'unparsed';
}

/**
 * The close codes (§10's table) and error codes (§9's table of codes, the rows with an HTTP
 * status) that docs/protocol.md lists, read when the attacker starts: a finding is what the
 * docs of the tree under test do not describe.
 */
export const DOCUMENTED = (() => {
  const text = readFileSync(join(ROOT, 'docs/protocol.md'), 'utf8');
  const section = (n: number) => text.slice(text.indexOf(`\n## ${n}. `), text.indexOf(`\n## ${n + 1}. `));
  return {
    closes: new Set([...section(10).matchAll(/^\| (\d{4}) \|/gm)].map((m) => Number(m[1]))),
    errors: new Set([...section(9).matchAll(/^\| `([a-z_]+)` \| [^|]+ \| (\d{3}) \|/gm)].map((m) => m[1]!)),
  };
})();

/**
 * One attacking connection. `opened` resolves true once the upgrade succeeded (false if it was
 * refused: `refused` says how); `closed` resolves with the close code. Every frame that comes
 * back is counted by kind in `received`; `onFrame` sees each one too.
 */
export class AttackSocket {
  readonly ws: WebSocket;
  readonly opened: Promise<boolean>;
  readonly closed: Promise<number>;
  readonly received = new Tally();
  readonly startedAt = performance.now();
  /** When the socket stopped being open (the server's close frame arrived; seen by `pump`, else at the close). */
  closingAt = 0;
  closedAt = 0;
  /** A refused upgrade's Retry-After, in ms (0 when none). */
  retryAfterMs = 0;
  closeReason = '';
  refused = '';
  onFrame?: (kind: string, data: RawData) => void;

  constructor(httpUrl: string, token: string) {
    this.ws = new WebSocket(wsUrl(httpUrl), [PROTOCOL, `bearer.${token}`], { perMessageDeflate: false });
    this.ws.on('message', (data) => {
      const kind = kindOf(data);
      this.received.add(kind);
      this.onFrame?.(kind, data);
    });
    this.ws.on('unexpected-response', (_req, res) => {
      this.refused = `upgrade answered HTTP ${res.statusCode}`;
      this.retryAfterMs = 1000 * (Number(res.headers['retry-after']) || 0);
      res.resume();
      this.ws.terminate();
    });
    this.ws.on('error', (err) => (this.refused ||= `socket error: ${err.message}`));
    this.opened = new Promise((resolve) => {
      this.ws.once('open', () => resolve(true));
      this.ws.once('close', () => resolve(false));
    });
    this.closed = new Promise((resolve) =>
      this.ws.once('close', (code, reason) => {
        this.closedAt = performance.now();
        this.closingAt ||= this.closedAt;
        this.closeReason = reason.toString();
        resolve(code);
      }),
    );
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Pushes frames from `next` (null: none left) as fast as the socket drains, until it closes or `until` passes. */
  pump(next: () => string | Buffer | null, until: number, highWater = 1 << 20): Promise<void> {
    return new Promise((resolve) => {
      const loop = () => {
        if (!this.open) this.closingAt ||= performance.now();
        if (!this.open || performance.now() >= until) return resolve();
        for (let n = 0; n < 1000 && this.ws.bufferedAmount < highWater; n++) {
          const f = next();
          if (f === null) return resolve();
          // A Buffer goes out as a text frame unless it is marked binary (invalid UTF-8 text on purpose).
          if (typeof f === 'string') this.ws.send(f);
          else this.ws.send(f, { binary: binaryFrames.has(f) });
        }
        // Yield so replies are read; wait a little when the socket is full rather than spin.
        if (this.ws.bufferedAmount >= highWater) setTimeout(loop, 1);
        else setImmediate(loop);
      };
      loop();
    });
  }

  /** Whether we closed it (the attack ended), not the server. */
  closedByUs = false;

  /**
   * Ends the session from our side: closes it if it is still open (time is up), or, when the
   * server's close frame already came, drops our end at once instead of waiting for the server
   * to end the socket (it may hold it a while); the close code stays the server's.
   */
  finish(): void {
    if (this.open) this.close();
    else if (this.ws.readyState === WebSocket.CLOSING) this.ws.terminate();
  }

  close(): void {
    this.closedByUs = true;
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close(1000, 'attack over');
  }
}

/** Buffers to send as binary frames (all other Buffers go out as text). */
export const binaryFrames = new WeakSet<Buffer>();

/** A close code the protocol does not list, for the findings. */
export function undocumentedClose(code: number): boolean {
  return !DOCUMENTED.closes.has(code);
}

/** The p50 of a list (NaN when empty). */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? Number.NaN : s[Math.floor((s.length - 1) / 2)]!;
}

/** What the sessions of one attack met: upgrades refused, closes by code (the server's only), replies by kind, how long each lived. */
export class SessionStats {
  sessions = 0;
  readonly refused = new Tally();
  readonly closes = new Tally();
  readonly replies = new Tally();
  /** ms from the upgrade request to the server's close, per session the server closed. */
  readonly lifetimes: number[] = [];

  /** Closes and replies that the protocol does not document or that mean the server failed. */
  findings(): string[] {
    const out: string[] = [];
    for (const [code, n] of this.closes.counts) {
      if (undocumentedClose(Number(code))) out.push(`${n} session(s) closed with ${code}, a code docs/protocol.md §10 does not list`);
      if (code === '1011') out.push(`${n} session(s) closed with 1011 (internal error)`);
    }
    for (const [kind, n] of this.replies.counts) {
      if (kind === 'error:internal' || kind === 'error:unavailable') out.push(`${n} ${kind} error frame(s)`);
      if (kind.startsWith('error:') && !DOCUMENTED.errors.has(kind.slice(6))) out.push(`${n} ${kind} error frame(s), a code docs/protocol.md §9 does not list`);
    }
    for (const [why, n] of this.refused.counts) if (!why.endsWith(' 429')) out.push(`${n} upgrade(s) failed: ${why}`);
    return out;
  }
}

/**
 * Connects `token`'s device to `url` again and again until `until`, letting `run` drive each
 * session (it returns when the session is over or time is up); tallies into `stats`.
 */
export async function sessionLoop(
  url: string,
  token: string,
  until: number,
  stats: SessionStats,
  run: (s: AttackSocket) => Promise<void>,
  /** Wait this long after the server closed a session before the next (an honest client backs off; attackers do not). */
  backoffMs = 0,
  /** Stop early once this holds (the work is done). */
  done: () => boolean = () => false,
): Promise<void> {
  while (performance.now() < until && !done()) {
    const s = new AttackSocket(url, token);
    stats.sessions++;
    if (!(await s.opened)) {
      stats.refused.add(s.refused || 'closed before the upgrade');
      // An attacker comes back at once (a little later, not to spin); an honest client waits as told.
      await sleep(Math.min(backoffMs > 0 ? Math.max(backoffMs, s.retryAfterMs) : 50, until - performance.now()));
      continue;
    }
    await run(s);
    s.finish();
    const code = await s.closed;
    for (const [k, n] of s.received.counts) stats.replies.add(k, n);
    if (!s.closedByUs) {
      stats.closes.add(String(code));
      stats.lifetimes.push(s.closedAt - s.startedAt);
      if (backoffMs > 0) await sleep(Math.min(backoffMs, until - performance.now()));
    }
  }
}
