// End-to-end: a login must prove possession of the identity key it registers, so no one can claim another user's key as a device of their own.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromB64, sodiumReady, toB64 } from '../protocol/bytes.js';
import { generateIdentity, type IdentityKeyPair } from '../protocol/keys.js';
import { type LoginProof, signLoginProof } from '../protocol/login-proof.js';
import { LOGIN_CHALLENGE_KEY_LABEL, LOGIN_CHALLENGE_TTL_MS, LoginChallenges } from '../accounts/login-challenges.js';
import { ManualClock } from '../platform/clock.js';
import { Tokens } from '../platform/tokens.js';
import { newUser, type Recorded } from './support/clients.js';
import { loginDevice, loginProof } from './support/raw.js';
import { type ServerProcess, startServer } from './support/server.js';
import { uniqueName } from './support/wait.js';

/** Known to the test, so it can mint challenges as the server would (with a clock of its choosing). */
const JWT_SECRET = 'login-proof-secret-'.padEnd(40, 'x');
const ERROR_KEYS = ['code', 'message'];

interface Answer {
  status: number;
  body: { error?: { code: string; message: string; details?: Record<string, unknown> } } & Record<string, unknown>;
}

describe('login proves possession of the identity key', () => {
  let server: ServerProcess;
  const clients: Recorded[] = [];

  const post = async (path: string, body?: unknown, token?: string): Promise<Answer> => {
    const res = await fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Answer['body'] };
  };
  const get = async (path: string, token: string): Promise<Answer> => {
    const res = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, body: (await res.json()) as Answer['body'] };
  };
  /** An account with one device logged in over REST with `identity`. */
  const account = async (prefix: string, identity: IdentityKeyPair = generateIdentity()) => {
    const username = uniqueName(prefix);
    const password = `password-${username}`;
    expect((await post('/v1/accounts', { username, password })).status).toBe(201);
    const s = await post('/v1/sessions', { username, password, device: await loginDevice(server.url, username, { name: 'first' }, identity) });
    expect(s.status).toBe(201);
    return { username, password, identity, token: s.body.token as string, userId: s.body.userId as string, deviceId: s.body.deviceId as string };
  };
  const login = (u: { username: string; password: string }, device: Record<string, unknown>) =>
    post('/v1/sessions', { username: u.username, password: u.password, device: { name: 'claim', ...device } });
  const refused = { status: 401, body: { error: { code: 'unauthorized', message: 'proof of key possession failed' } } };
  /** A challenge minted with the server's key at a time of our choosing. */
  const mintChallenge = (at: number, secret = JWT_SECRET) =>
    new LoginChallenges(new Tokens(secret, 3600, new ManualClock(at)).deriveKey(LOGIN_CHALLENGE_KEY_LABEL), new ManualClock(at)).issue().challenge;

  beforeAll(async () => {
    await sodiumReady();
    server = await startServer({ env: { JWT_SECRET } });
  });
  afterAll(async () => {
    for (const c of clients) await c.client.close();
    await server?.dispose();
  });

  it('hands out a challenge: 201, 57 bytes in base64, valid for about 2 minutes; documented in the OpenAPI', async () => {
    const before = Date.now();
    const a = await post('/v1/sessions/challenge');
    expect(a.status).toBe(201);
    expect(fromB64(a.body.challenge as string).length).toBe(57);
    expect(a.body.expiresAt).toBeGreaterThanOrEqual(before + LOGIN_CHALLENGE_TTL_MS - 1_000);
    expect(a.body.expiresAt).toBeLessThanOrEqual(Date.now() + LOGIN_CHALLENGE_TTL_MS + 1_000);
    expect((await post('/v1/sessions/challenge')).body.challenge).not.toBe(a.body.challenge);

    const spec = (await (await fetch(`${server.url}/openapi.json`)).json()) as { paths: Record<string, Record<string, unknown>> };
    expect(spec.paths['/v1/sessions/challenge']).toHaveProperty('post');
    expect(JSON.stringify(spec.paths['/v1/sessions'])).toContain('"proof"');
  });

  it("refuses to register another user's public key as your device: you cannot sign for it", async () => {
    const bob = await account('bob');
    const mallory = await account('mallory');
    const bobKey = toB64(bob.identity.publicKey);

    // No proof at all; a proof signed with her own key; a signature over Bob's key by her key.
    expect(await login(mallory, { publicKey: bobKey })).toMatchObject(refused);
    expect(await login(mallory, { publicKey: bobKey, proof: await loginProof(server.url, mallory.username, mallory.identity) })).toMatchObject(refused);
    const challenge = (await post('/v1/sessions/challenge')).body.challenge as string;
    const ownKeySignsBobs = signLoginProof({ publicKey: bob.identity.publicKey, secretKey: mallory.identity.secretKey }, challenge, mallory.username);
    expect(await login(mallory, { publicKey: bobKey, proof: ownKeySignsBobs })).toMatchObject(refused);
    // Bob's own proof (as a server or an eavesdropper might have seen it) is bound to his username.
    const bobsProof = await loginProof(server.url, bob.username, bob.identity);
    expect(await login(mallory, { publicKey: bobKey, proof: bobsProof })).toMatchObject(refused);
    // Nor may she swap Bob's key into one of her existing devices.
    expect(await login(mallory, { id: mallory.deviceId, publicKey: bobKey, proof: bobsProof })).toMatchObject(refused);

    const devices = (await get(`/v1/users/${mallory.userId}/devices`, mallory.token)).body.devices as { id: string; publicKey: string }[];
    expect(devices.map((d) => [d.id, d.publicKey])).toEqual([[mallory.deviceId, toB64(mallory.identity.publicKey)]]);
  });

  it('refuses a proof for another username or key, a tampered or foreign challenge or signature, and an expired challenge', async () => {
    const alice = await account('alice');
    const key = toB64(alice.identity.publicKey);
    const other = generateIdentity();
    const fresh = () => post('/v1/sessions/challenge').then((a) => a.body.challenge as string);

    // For another username (the same key and a valid challenge).
    expect(await login(alice, { publicKey: key, proof: signLoginProof(alice.identity, await fresh(), uniqueName('someone')) })).toMatchObject(refused);
    // For another key: signed by `other`, presented with Alice's key, and the reverse.
    expect(await login(alice, { publicKey: key, proof: signLoginProof(other, await fresh(), alice.username) })).toMatchObject(refused);
    expect(await login(alice, { publicKey: toB64(other.publicKey), proof: signLoginProof(alice.identity, await fresh(), alice.username) })).toMatchObject(refused);

    // A tampered challenge, correctly signed: its MAC no longer matches (in the random part, the expiry, the MAC).
    for (const at of [5, 20, 40]) {
      const bytes = fromB64(await fresh());
      bytes[at]! ^= 1;
      expect(await login(alice, { publicKey: key, proof: signLoginProof(alice.identity, toB64(bytes), alice.username) }), `byte ${at}`).toMatchObject(refused);
    }
    // A challenge made with another server's secret; one the server never issued; a garbled one.
    expect(await login(alice, { publicKey: key, proof: signLoginProof(alice.identity, mintChallenge(Date.now(), 'another-secret-'.padEnd(40, 'y')), alice.username) })).toMatchObject(refused);
    expect(await login(alice, { publicKey: key, proof: signLoginProof(alice.identity, toB64(new Uint8Array(57)), alice.username) })).toMatchObject(refused);
    expect(await login(alice, { publicKey: key, proof: { challenge: 'not base64!', signature: 'x' } })).toMatchObject(refused);
    // A tampered signature.
    const good = signLoginProof(alice.identity, await fresh(), alice.username);
    const sig = fromB64(good.signature);
    sig[10]! ^= 1;
    expect(await login(alice, { publicKey: key, proof: { ...good, signature: toB64(sig) } })).toMatchObject(refused);
    expect(await login(alice, { publicKey: key, proof: { ...good, signature: toB64(sig.subarray(0, 63)) } })).toMatchObject(refused);

    // Expired: a genuine challenge (the server's key) that ran out; an answer the client can act on.
    const old = mintChallenge(Date.now() - LOGIN_CHALLENGE_TTL_MS - 1_000);
    const expired = await login(alice, { publicKey: key, proof: signLoginProof(alice.identity, old, alice.username) });
    expect(expired).toMatchObject({ status: 401, body: { error: { code: 'unauthorized', details: { expired: true } } } });

    // A refused proof looks like a wrong password: the same status, code and fields.
    const wrongPassword = await post('/v1/sessions', { username: alice.username, password: 'wrong-password', device: await loginDevice(server.url, alice.username) });
    const badProof = await login(alice, { publicKey: key });
    expect(wrongPassword).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
    expect(Object.keys(wrongPassword.body.error!)).toEqual(ERROR_KEYS);
    expect(Object.keys(badProof.body.error!)).toEqual(ERROR_KEYS);

    // The same proof, presented again within its lifetime, still logs in: a replay only re-registers
    // the key its holder signed for, for the user it signed for.
    const proof: LoginProof = signLoginProof(alice.identity, await fresh(), alice.username);
    const first = await login(alice, { id: alice.deviceId, publicKey: key, proof });
    const again = await login(alice, { id: alice.deviceId, publicKey: key, proof });
    expect([first.status, again.status]).toEqual([201, 201]);
    // None of the refused attempts added a device.
    expect(((await get(`/v1/users/${alice.userId}/devices`, first.body.token as string)).body.devices as unknown[]).length).toBe(1);
  });

  it('an SDK client registers, logs in with a proof, connects, and logs the same device in again', async () => {
    const alice = await newUser(server.url, 'alice'); // register() → login() → connect()
    clients.push(alice);
    expect(alice.client.connected).toBe(true);
    const device = alice.client.deviceId;
    await alice.client.login(); // again: the same device, a new challenge
    expect(alice.client.deviceId).toBe(device);
    const listed = (await get(`/v1/users/${alice.client.userId}/devices`, alice.client.accessToken!)).body.devices as { id: string; publicKey: string }[];
    expect(listed.map((d) => d.id)).toEqual([device]);
    expect(server.logs.filter((l) => /"internal"|request failed|"level":(50|60)/.test(l))).toEqual([]);
  });
});

describe('login challenges are rate-limited per address', () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServer({ env: { AUTH_RATE_PER_MINUTE: '3' } });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('with the other auth routes: 429 with Retry-After once the address used its allowance', async () => {
    const statuses: number[] = [];
    let last: Response | undefined;
    for (let i = 0; i < 4; i++) {
      last = await fetch(`${server.url}/v1/sessions/challenge`, { method: 'POST' });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([201, 201, 201, 429]);
    expect(last!.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(((await last!.json()) as Answer['body']).error).toMatchObject({ code: 'rate_limited', details: { retryAfterMs: expect.any(Number) } });
  });
});
