// End-to-end: Signal-style sessions through a real server: the key directory, out-of-order delivery, lost state, identity changes, safety numbers.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromB64, sodiumReady, toB64 } from '../protocol/bytes.js';
import { generateIdentity, generateSignedPrekey } from '../protocol/keys.js';
import { diskKeyStore } from '../client-sdk/e2e.store.disk.js';
import { createClient, type IdentityChange, type Message, type ParleyClient, ParleyError, type SessionReset } from '../client-sdk/index.js';
import type { ClientFrame } from '../protocol/frames.js';
import { newUser, type Recorded } from './support/clients.js';
import { type ServerProcess, startServer } from './support/server.js';
import { uniqueName, until } from './support/wait.js';

const FETCH_LIMIT = 150;

/** Everything one SDK client reports, for assertions. */
function watch(client: ParleyClient) {
  const seen = { messages: [] as Message[], errors: [] as ParleyError[], resets: [] as SessionReset[], identity: [] as IdentityChange[] };
  client.on('message', (m) => seen.messages.push(m));
  client.on('error', (e) => seen.errors.push(e));
  client.on('session_reset', (r) => seen.resets.push(r));
  client.on('identity_changed', (c) => seen.identity.push(c));
  return seen;
}

describe('end-to-end encryption through a real server', () => {
  let server: ServerProcess;
  let dir: string;
  const clients: ParleyClient[] = [];
  const user = async (prefix: string) => {
    const u = await newUser(server.url, prefix);
    clients.push(u.client);
    return u;
  };
  const api = async <T>(token: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: T }> => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, json: (res.status === 204 ? undefined : await res.json()) as T };
  };
  const keyStatus = (u: Recorded) => api<{ oneTimePrekeys: number; signedPrekeyId: number | null; identityKey: string }>(u.client.accessToken!, 'GET', '/v1/keys');
  /** Rewrites a disk key store's file (the client using it must be closed). */
  const editStore = async (path: string, edit: (sections: Record<string, Record<string, unknown>>) => void) => {
    const file = JSON.parse(await readFile(path, 'utf8')) as { v: number; sections: Record<string, Record<string, unknown>> };
    edit(file.sections);
    await writeFile(path, JSON.stringify(file));
  };

  beforeAll(async () => {
    await sodiumReady();
    dir = await mkdtemp(join(tmpdir(), 'parley-e2e-keys-'));
    server = await startServer({ env: { KEY_FETCH_RATE_PER_MINUTE: String(FETCH_LIMIT) } });
  });
  afterAll(async () => {
    for (const c of clients) await c.close();
    await server?.dispose();
    await rm(dir, { recursive: true, force: true });
  });

  it('sets up a session from the directory: the first message spends one one-time prekey, later ones none', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const before = (await keyStatus(bob)).json.oneTimePrekeys;
    expect(before).toBe(100);
    await alice.client.sendText(bob.client.userId, 'first');
    await alice.client.sendText(bob.client.userId, 'second');
    await until(() => bob.messages.length === 2, 'bob reads both');
    expect(bob.messages.map((m) => m.text)).toEqual(['first', 'second']);
    expect((await keyStatus(bob)).json.oneTimePrekeys).toBe(before - 1);
    const reply = await bob.client.sendText(alice.client.userId, 'reply'); // Bob answers on the session Alice built
    await until(() => alice.messages.length === 1, 'alice reads the reply');
    expect(reply.seq).toBe(3);
    expect((await keyStatus(alice)).json.oneTimePrekeys).toBe(100);
    expect(bob.errors).toEqual([]);
  });

  it('decrypts messages the server stored out of encryption order', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    await alice.client.sendText(bob.client.userId, 'hello'); // the session exists now
    await until(() => bob.messages.length === 1, 'first message');
    // Encrypt three messages in order, then put them on the wire in another order (as a resend after a reconnect can).
    const sdk = alice.client as unknown as {
      encryptFor(e: { id: string; to: string; plaintext: Uint8Array }): Promise<Extract<ClientFrame, { type: 'send' }>>;
      sendFrame(f: ClientFrame): boolean;
    };
    const frames = [];
    for (const text of ['m0', 'm1', 'm2']) {
      frames.push(await sdk.encryptFor({ id: crypto.randomUUID(), to: bob.client.userId, plaintext: new TextEncoder().encode(JSON.stringify({ v: 1, text })) }));
    }
    for (const i of [2, 0, 1]) sdk.sendFrame(frames[i]!);
    await until(() => bob.messages.length === 4, 'three more messages');
    expect(bob.messages.slice(1).map((m) => m.text)).toEqual(['m2', 'm0', 'm1']);
    expect(bob.errors).toEqual([]);
  });

  it('a device that lost its sessions gets an error, resets the session, and reads what follows', async () => {
    const alice = await user('alice');
    const aliceSeen = watch(alice.client);
    const name = uniqueName('bob');
    const path = join(dir, `${name}.keys.json`);
    const bob = createClient({ url: server.url, username: name, password: 'password-' + name, keyStore: diskKeyStore(path), reconnect: { initialDelayMs: 50, maxDelayMs: 500 } });
    const bobSeen = watch(bob);
    await bob.register();
    await bob.connect();
    await alice.client.sendText(bob.userId, 'before');
    await until(() => bobSeen.messages.length === 1, 'bob reads before');
    await bob.sendText(alice.client.userId, 'ack');
    await until(() => alice.messages.length === 1, 'alice reads ack');
    await bob.close();

    // Sessions gone (say, restored from an old backup); identity, device id and prekeys kept.
    await editStore(path, (s) => {
      delete s.sessions;
      delete s.identities;
    });
    const again = createClient({ url: server.url, username: name, password: 'password-' + name, keyStore: diskKeyStore(path) });
    clients.push(again);
    const againSeen = watch(again);
    await again.login();
    expect(again.deviceId).toBe(bob.deviceId);
    await again.connect();

    await alice.client.sendText(bob.userId, 'lost');
    await until(() => againSeen.errors.length === 1, 'an undecryptable error, not silence');
    expect(againSeen.errors[0]).toMatchObject({ code: 'undecryptable', details: { reason: 'no_session' } });
    expect(againSeen.resets).toEqual([{ userId: alice.client.userId, deviceId: alice.client.deviceId, initiatedBy: 'me' }]);
    await until(() => aliceSeen.resets.length === 1, 'alice learns of the reset');
    expect(aliceSeen.resets[0]).toEqual({ userId: bob.userId, deviceId: bob.deviceId, initiatedBy: 'peer' });
    expect(alice.messages.map((m) => m.text)).toEqual(['ack']); // the control message is not shown as a message

    await alice.client.sendText(bob.userId, 'after the reset');
    await until(() => againSeen.messages.length === 1, 'bob reads again');
    expect(againSeen.messages[0]!.text).toBe('after the reset');
    await again.sendText(alice.client.userId, 'and back');
    await until(() => alice.messages.length === 2, 'alice reads bob again');
  });

  it('a device that lost everything comes back as a new device and gets new messages', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    await alice.client.sendText(bob.client.userId, 'to the old device');
    await until(() => bob.messages.length === 1, 'delivered');
    const fresh = createClient({ url: server.url, username: bob.username, password: bob.password });
    clients.push(fresh);
    const freshSeen = watch(fresh);
    await fresh.login();
    await fresh.connect();
    expect(fresh.deviceId).not.toBe(bob.client.deviceId);
    await bob.client.approveDevice(fresh.deviceId!); // on Bob's old device
    await alice.client.sendText(bob.client.userId, 'to both devices'); // devices_changed, then a new session
    await until(() => freshSeen.messages.length === 1 && bob.messages.length === 2, 'both devices read it');
    expect(freshSeen.messages[0]!.text).toBe('to both devices');
    expect(freshSeen.errors).toEqual([]);
  });

  it('raises identity_changed when a contact reinstalls with a new identity key, and safety numbers follow', async () => {
    const alice = await user('alice');
    const aliceSeen = watch(alice.client);
    const name = uniqueName('bob');
    const path = join(dir, `${name}.keys.json`);
    const bob = createClient({ url: server.url, username: name, password: 'password-' + name, keyStore: diskKeyStore(path) });
    const bobSeen = watch(bob);
    await bob.register();
    await bob.connect();
    await alice.client.sendText(bob.userId, 'hello old bob');
    await until(() => bobSeen.messages.length === 1, 'delivered');
    const numberBefore = await alice.client.safetyNumber(bob.userId);
    expect(numberBefore).toMatch(/^\d{60}$/);
    expect(await bob.safetyNumber(alice.client.userId)).toBe(numberBefore);
    const oldKey = (await keyStatus({ client: bob } as Recorded)).json.identityKey;
    await bob.close();

    // Reinstalled: same device id, a new identity key, nothing else.
    const identity = generateIdentity();
    await editStore(path, (s) => {
      for (const k of Object.keys(s)) if (k !== 'device') delete s[k];
      const d = s.device!.self as Record<string, unknown>;
      d.pub = toB64(identity.publicKey);
      d.sec = toB64(identity.secretKey);
    });
    const again = createClient({ url: server.url, username: name, password: 'password-' + name, keyStore: diskKeyStore(path) });
    clients.push(again);
    const againSeen = watch(again);
    await again.login();
    await again.connect();
    expect(again.deviceId).toBe(bob.deviceId);

    await alice.client.sendText(bob.userId, 'hello new bob?'); // still on the old session: undecryptable, so Bob resets
    await until(() => aliceSeen.identity.length === 1, 'identity_changed at alice');
    expect(aliceSeen.identity[0]).toMatchObject({ userId: bob.userId, deviceId: bob.deviceId, previousKey: oldKey, currentKey: toB64(identity.publicKey) });
    await until(() => aliceSeen.resets.length === 1, 'reset reached alice');
    await alice.client.sendText(bob.userId, 'hello new bob');
    await until(() => againSeen.messages.length === 1, 'new bob reads');
    expect(againSeen.messages[0]!.text).toBe('hello new bob');

    const numberAfter = await alice.client.safetyNumber(bob.userId);
    expect(numberAfter).not.toBe(numberBefore);
    expect(await again.safetyNumber(alice.client.userId)).toBe(numberAfter);
    expect(bobSeen.errors).toEqual([]);
  });

  it('safety numbers match on both sides and cover every device', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const n = await alice.client.safetyNumber(bob.client.userId);
    expect(n).toMatch(/^\d{60}$/);
    expect(await bob.client.safetyNumber(alice.client.userId)).toBe(n);
    const phone = createClient({ url: server.url, username: bob.username, password: bob.password });
    clients.push(phone);
    await phone.login();
    // Not approved yet: not Bob's as far as anyone can tell, so the numbers stay.
    expect(await alice.client.safetyNumber(bob.client.userId)).toBe(n);
    await bob.client.approveDevice(phone.deviceId!);
    const withPhone = await alice.client.safetyNumber(bob.client.userId);
    expect(withPhone).not.toBe(n);
    expect(await phone.safetyNumber(alice.client.userId)).toBe(withPhone);
    expect(await bob.client.safetyNumber(alice.client.userId)).toBe(withPhone);
  });

  it('key directory over HTTP: checks uploads, hands out one-time prekeys once, tops up on prekeys_low, rate limits fetches', async () => {
    const bob = await user('bob');
    const carol = await user('carol');
    const dave = await user('dave');
    const token = (u: Recorded) => u.client.accessToken!;
    // An upload signed by another key is refused.
    const mallory = generateIdentity();
    const forged = generateSignedPrekey(mallory, 0);
    const bad = await api(token(carol), 'PUT', '/v1/keys/signed-prekey', { id: forged.id, publicKey: toB64(forged.keyPair.publicKey), signature: toB64(forged.signature) });
    expect(bad).toMatchObject({ status: 400, json: { error: { code: 'invalid' } } });
    // A user that does not exist and one without devices get the same answer.
    const missing = await api(token(carol), 'GET', `/v1/users/${crypto.randomUUID()}/bundles`);
    expect(missing).toEqual({ status: 404, json: { error: { code: 'not_found', message: 'no such user' } } });
    const noDevice = await api(token(carol), 'GET', `/v1/users/${bob.client.userId}/bundles?devices=${crypto.randomUUID()}`);
    expect(noDevice).toEqual(missing);

    // Concurrent fetches never share a one-time prekey.
    const fetched = await Promise.all(
      Array.from({ length: 20 }, () => api<{ bundles: { oneTimePrekey: { id: number } | null }[] }>(token(carol), 'GET', `/v1/users/${bob.client.userId}/bundles`)),
    );
    const ids = fetched.map((r) => r.json.bundles[0]!.oneTimePrekey!.id);
    expect(new Set(ids).size).toBe(20);
    // Run Bob's one-time prekeys down below the low watermark: his SDK hears prekeys_low and uploads more.
    for (let i = 0; i < 65; i++) await api(token(carol), 'GET', `/v1/users/${bob.client.userId}/bundles`);
    await until(async () => (await keyStatus(bob)).json.oneTimePrekeys >= 100, 'bob topped up his prekeys');
    // Carol has now fetched 85 times; Dave hits the limit on his own.
    // (The bucket refills at FETCH_LIMIT per minute while this runs, so allow for a few more.)
    let status = 0;
    let granted = 0;
    let retryAfter: string | null = null;
    for (let i = 0; i < 2 * FETCH_LIMIT && status !== 429; i++) {
      const res = await fetch(`${server.url}/v1/users/${carol.client.userId}/bundles`, { headers: { authorization: `Bearer ${token(dave)}` } });
      status = res.status;
      if (status === 200) granted++;
      retryAfter = res.headers.get('retry-after');
      await res.body?.cancel();
    }
    expect(status).toBe(429);
    expect(granted).toBeGreaterThanOrEqual(FETCH_LIMIT);
    expect(Number(retryAfter)).toBeGreaterThan(0);
    expect((await api(token(carol), 'GET', `/v1/users/${dave.client.userId}/bundles`)).status).toBe(200);
  });

  it('puts only opaque Double Ratchet bodies on the wire', async () => {
    const alice = await user('alice');
    const bob = await user('bob');
    const bodies: string[] = [];
    const sdk = bob.client as unknown as { onFrame(raw: string): void };
    const original = sdk.onFrame.bind(sdk);
    sdk.onFrame = (raw: string) => {
      const f = JSON.parse(raw) as { type: string; body?: string };
      if (f.type === 'msg') bodies.push(f.body!);
      original(raw);
    };
    await alice.client.sendText(bob.client.userId, 'secret one');
    await alice.client.sendText(bob.client.userId, 'secret two');
    await until(() => bob.messages.length === 2, 'delivered');
    const raw = bodies.map(fromB64);
    expect(raw.map((b) => b[0])).toEqual([2, 2]); // prekey messages until Bob answers
    expect(raw.every((b) => !Buffer.from(b).includes(Buffer.from('secret')))).toBe(true);
    expect(raw[0]!.length).toBe(raw[1]!.length); // padded: equal-length texts, equal-length bodies
  });
});
