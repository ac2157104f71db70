// A raw protocol client (plain `ws`) for tests that must send what the SDK never would.
import { connect } from 'node:net';
import WebSocket from 'ws';
import { sodiumReady, toB64 } from '../../protocol/bytes.js';
import { generateIdentity, type IdentityKeyPair } from '../../protocol/keys.js';
import { type LoginProof, signLoginProof } from '../../protocol/login-proof.js';
import type { ServerFrame } from '../../protocol/frames.js';
import { uniqueName, until } from './wait.js';

export interface RawSession {
  ws: WebSocket;
  frames: ServerFrame[];
  closed: { code: number; reason: string } | null;
  sendJson(value: unknown): void;
  /** Waits for the first frame (after index `from`) that matches. */
  next<T extends ServerFrame['type']>(type: T, from?: number): Promise<Extract<ServerFrame, { type: T }>>;
}

export function wsUrl(httpUrl: string): string {
  return httpUrl.replace(/^http/, 'ws') + '/v1/ws';
}

/** Opens a raw session; resolves after `ready`. */
export async function rawConnect(httpUrl: string, token: string): Promise<RawSession> {
  const ws = new WebSocket(wsUrl(httpUrl), ['parley.v1', `bearer.${token}`]);
  const s: RawSession = {
    ws,
    frames: [],
    closed: null,
    sendJson: (v) => ws.send(JSON.stringify(v)),
    next: async (type, from = 0) => {
      let found: ServerFrame | undefined;
      await until(() => (found = s.frames.slice(from).find((f) => f.type === type)) !== undefined || s.closed !== null, `a ${type} frame`);
      if (!found) throw new Error(`closed (${s.closed?.code}) before a ${type} frame`);
      return found as never;
    },
  };
  ws.on('message', (d) => s.frames.push(JSON.parse(d.toString())));
  ws.on('close', (code, reason) => (s.closed = { code, reason: reason.toString() }));
  await s.next('ready');
  return s;
}

/** The HTTP status an upgrade attempt is refused with (0 if it was accepted). */
export function upgradeStatus(httpUrl: string, headers: Record<string, string>, protocols: string[] = ['parley.v1']): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(wsUrl(httpUrl), protocols, { headers });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? -1);
      ws.terminate();
    });
    ws.on('open', () => {
      resolve(0);
      ws.close();
    });
    ws.on('error', () => {});
  });
}

export interface RawAccount {
  username: string;
  password: string;
  userId: string;
  deviceId: string;
  token: string;
}

/** Creates an account over REST and logs in one device with a fresh identity key (no prekeys: for raw protocol tests). */
export async function rawAccount(httpUrl: string, prefix: string): Promise<RawAccount> {
  const username = uniqueName(prefix);
  const password = `password-${username}`;
  const res = await fetch(`${httpUrl}/v1/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  if (res.status !== 201) throw new Error(`account ${username}: ${res.status} ${await res.text()}`);
  return { username, password, ...(await rawLogin(httpUrl, username, password)) };
}

/** Fetches a login challenge (`POST /v1/sessions/challenge`) and signs it for `username` with `identity`: a `device.proof`. */
export async function loginProof(httpUrl: string, username: string, identity: IdentityKeyPair): Promise<LoginProof> {
  await sodiumReady();
  const res = await fetch(`${httpUrl}/v1/sessions/challenge`, { method: 'POST' });
  if (res.status !== 201) throw new Error(`login challenge: ${res.status} ${await res.text()}`);
  const { challenge } = (await res.json()) as { challenge: string };
  return signLoginProof(identity, challenge, username);
}

/**
 * The `device` of a `POST /v1/sessions` body, proven: a fresh identity key (or `identity`), its
 * public key and a signed challenge. `fields` adds `id` and `name` (default `raw`).
 * @example body: { username, password, device: await loginDevice(url, username, { name: 'phone' }) }
 */
export async function loginDevice(
  httpUrl: string,
  username: string,
  fields: { id?: string; name?: string } = {},
  identity?: IdentityKeyPair,
): Promise<{ id?: string; name: string; publicKey: string; proof: LoginProof }> {
  await sodiumReady();
  const key = identity ?? generateIdentity();
  return { name: 'raw', ...fields, publicKey: toB64(key.publicKey), proof: await loginProof(httpUrl, username, key) };
}

/** Logs in a new device of an existing account. */
export async function rawLogin(httpUrl: string, username: string, password: string): Promise<{ userId: string; deviceId: string; token: string }> {
  const device = await loginDevice(httpUrl, username);
  const res = await fetch(`${httpUrl}/v1/sessions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password, device }),
  });
  if (res.status !== 201) throw new Error(`login ${username}: ${res.status} ${await res.text()}`);
  return (await res.json()) as { userId: string; deviceId: string; token: string };
}

/** Writes `request` on a fresh TCP connection and resolves to everything the server answered before it closed. */
export function rawHttp(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    let data = '';
    socket.on('data', (d) => (data += d.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}
