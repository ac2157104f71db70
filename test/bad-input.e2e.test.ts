// End-to-end: bad input gets a documented error or close code; the process stays up and others are unaffected.
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUser, type Recorded } from './support/clients.js';
import { loginDevice, rawConnect, rawHttp, type RawSession, upgradeStatus } from './support/raw.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

const JWT_SECRET = 'e2e-secret-'.padEnd(40, 'x');
const RATE = 20;
const BURST = 40;

describe('bad input', () => {
  let server: ServerProcess;
  let alice: Recorded;
  let bob: Recorded;
  let token: string;
  const raws: RawSession[] = [];

  const raw = async () => {
    const s = await rawConnect(server.url, token);
    raws.push(s);
    return s;
  };
  const login = async (u: Recorded) => {
    const res = await fetch(`${server.url}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: u.username, password: u.password, device: await loginDevice(server.url, u.username) }),
    });
    return (await res.json()) as { token: string; userId: string; deviceId: string };
  };

  beforeAll(async () => {
    server = await startServer({
      env: {
        JWT_SECRET,
        WS_RATE_PER_SECOND: String(RATE),
        WS_RATE_BURST: String(BURST),
        WS_MAX_PAYLOAD_BYTES: '65536',
        HEARTBEAT_INTERVAL_MS: '300',
        PRESENCE_TTL_MS: '3000',
      },
    });
    alice = await newUser(server.url, 'alice');
    bob = await newUser(server.url, 'bob');
    token = (await login(alice)).token;
  });
  afterAll(async () => {
    for (const s of raws) s.ws.terminate();
    await alice?.client.close();
    await bob?.client.close();
    await server?.dispose();
  });

  /** The server is up and a normal conversation still works. */
  const othersUnaffected = async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const before = bob.messages.length;
    await alice.client.sendText(bob.client.userId, `still fine ${before}`);
    await until(() => bob.messages.length === before + 1, 'normal traffic still flows');
  };

  it('refuses the upgrade with 401 for a missing, bad or expired token, before it completes', async () => {
    expect(await upgradeStatus(server.url, {})).toBe(401);
    expect(await upgradeStatus(server.url, { authorization: 'Bearer not-a-jwt' })).toBe(401);
    const { userId, deviceId } = await login(alice);
    const key = new TextEncoder().encode(JWT_SECRET);
    const expired = await new SignJWT({ did: deviceId })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(userId)
      .setIssuer('parley')
      .setAudience('parley-client')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
      .sign(key);
    expect(await upgradeStatus(server.url, { authorization: `Bearer ${expired}` })).toBe(401);
    const forged = await new SignJWT({ did: deviceId })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(userId)
      .setIssuer('parley')
      .setAudience('parley-client')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('another-secret'.padEnd(40, 'y')));
    expect(await upgradeStatus(server.url, { authorization: `Bearer ${forged}` })).toBe(401);
    expect(await upgradeStatus(server.url, {}, ['parley.v1', `bearer.${token}`])).toBe(0);
    await othersUnaffected();
  });

  it('answers malformed JSON, binary frames, unknown types and missing fields with an invalid error, and stays open', async () => {
    const s = await raw();
    s.ws.send('{not json');
    s.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    s.sendJson({ type: 'teleport' });
    s.sendJson({ type: 'send', id: 'm1', to: bob.client.userId });
    s.sendJson(['an', 'array']);
    await until(() => s.frames.filter((f) => f.type === 'error').length === 5, 'five errors');
    const errors = s.frames.filter((f) => f.type === 'error');
    expect(errors.every((e) => e.code === 'invalid' && e.temporary === false)).toBe(true);
    expect(errors.map((e) => e.message)).toEqual([
      'malformed JSON',
      expect.stringContaining('binary'),
      'unknown frame type "teleport"',
      expect.stringContaining('payloads'),
      'unknown frame type null',
    ]);
    expect(errors[3]!.ref).toBe('m1');
    const n = s.frames.length;
    s.sendJson({ type: 'ping', id: 'p1' });
    expect(await s.next('pong', n)).toEqual({ type: 'pong', id: 'p1' });
    expect(s.closed).toBeNull();
    await othersUnaffected();
  });

  it('survives the frames that used to end the process: null, other bare JSON values, and a type nested thousands deep', async () => {
    const s = await raw();
    for (const text of ['null', '0', 'true', '"send"', '[]', '{"type":null}', '{"type":"send","id":null}']) s.ws.send(text);
    await until(() => s.frames.filter((f) => f.type === 'error').length === 7, 'seven errors');
    await new Promise((r) => setTimeout(r, 600)); // (each costs 5 tokens of a bucket of 40 refilling at 20/s)
    s.ws.send('{"type":'.repeat(6000) + '"send"' + '}'.repeat(6000));
    s.ws.send('['.repeat(20_000) + ']'.repeat(20_000));
    await until(() => s.frames.filter((f) => f.type === 'error').length === 9, 'nine errors');
    const errors = s.frames.filter((f) => f.type === 'error');
    expect(errors.every((e) => e.code === 'invalid')).toBe(true);
    expect(errors.slice(-2).map((e) => e.message)).toEqual([expect.stringContaining('nested deeper'), expect.stringContaining('nested deeper')]);
    expect(errors.every((e) => e.message.length < 600)).toBe(true);
    expect(s.closed).toBeNull();
    expect(server.running).toBe(true);
    await othersUnaffected();
  });

  it('closes with the documented codes the WebSocket library uses: 1007 for invalid UTF-8, 1002 for a protocol error', async () => {
    const s = await raw();
    s.ws.send(Buffer.from([0x7b, 0xff, 0x7d]), { binary: false });
    await until(() => s.closed !== null, 'closed');
    expect(s.closed!.code).toBe(1007);
    // An unmasked client frame is a protocol error (RFC 6455 §5.1): written by hand on the raw socket.
    const t = await raw();
    const socket = (t.ws as unknown as { _socket: import('node:net').Socket })._socket;
    socket.write(Buffer.from([0x81, 0x02, 0x7b, 0x7d]));
    await until(() => t.closed !== null, 'closed');
    expect(t.closed!.code).toBe(1002);
    await othersUnaffected();
  });

  it('closes with 1009 on a frame over the size limit', async () => {
    const s = await raw();
    s.sendJson({ type: 'ping', id: 'x'.repeat(70_000) });
    await until(() => s.closed !== null, 'closed');
    expect(s.closed!.code).toBe(1009);
    await othersUnaffected();
  });

  it('answers a send to a user that does not exist, and a stale device list, without storing anything', async () => {
    const s = await raw();
    s.sendJson({ type: 'send', id: 'ghost', to: randomUUID(), payloads: [{ device: randomUUID(), body: 'AAAA' }] });
    const e1 = await s.next('error');
    expect(e1).toMatchObject({ code: 'not_found', ref: 'ghost', temporary: false });

    const wrongDevice = randomUUID();
    s.sendJson({ type: 'send', id: 'stale', to: bob.client.userId, payloads: [{ device: wrongDevice, body: 'AAAA' }] });
    await until(() => s.frames.filter((f) => f.type === 'error').length === 2, 'second error');
    const e2 = s.frames.filter((f) => f.type === 'error')[1]!;
    expect(e2).toMatchObject({ code: 'devices_changed', ref: 'stale' });
    const details = (e2 as { details?: Record<string, unknown> }).details as { missing: string[]; extra: string[] };
    expect(details.extra).toEqual([wrongDevice]);
    expect(details.missing).toContain(bob.client.deviceId);
    expect(s.frames.some((f) => f.type === 'sent')).toBe(false);

    const bobDevice = bob.client.deviceId!;
    s.sendJson({ type: 'send', id: 'twice', to: bob.client.userId, payloads: [{ device: bobDevice, body: 'AAAA' }, { device: bobDevice, body: 'AAAA' }] });
    await until(() => s.frames.filter((f) => f.type === 'error').length === 3, 'third error');
    expect(s.frames.filter((f) => f.type === 'error')[2]).toMatchObject({ code: 'invalid', ref: 'twice', message: 'a device is listed twice' });
    await othersUnaffected();

    // A message id reused for another recipient is refused, and nothing reaches the other conversation.
    const carol = await newUser(server.url, 'carol');
    const me = (s.frames.find((f) => f.type === 'ready') as { deviceId: string }).deviceId;
    const payloadsFor = async (userIds: string[]) => {
      const out: { device: string; body: string }[] = [];
      for (const u of userIds) {
        const r = await fetch(`${server.url}/v1/users/${u}/devices`, { headers: { authorization: `Bearer ${token}` } });
        for (const d of ((await r.json()) as { devices: { id: string }[] }).devices) if (d.id !== me) out.push({ device: d.id, body: 'AAAA' });
      }
      return out;
    };
    s.sendJson({ type: 'send', id: 'reused', to: bob.client.userId, payloads: await payloadsFor([bob.client.userId, alice.client.userId]) });
    const first = await s.next('sent');
    s.sendJson({ type: 'send', id: 'reused', to: carol.client.userId, payloads: await payloadsFor([carol.client.userId, alice.client.userId]) });
    await until(() => s.frames.filter((f) => f.type === 'error').length === 4, 'fourth error');
    expect(s.frames.filter((f) => f.type === 'error')[3]).toMatchObject({ code: 'conflict', ref: 'reused' });
    const later = await alice.client.sendText(carol.client.userId, 'first real message to carol');
    await until(() => carol.messages.length === 1 || carol.errors.length > 0, 'carol hears from alice');
    expect(carol.messages.map((m) => [m.seq, m.text])).toEqual([[later.seq, 'first real message to carol']]);
    expect(later.seq).toBe(1);
    expect(first.conversationId).not.toBe(later.conversationId);
    await carol.client.close();
  });

  it('refuses acks and reads for conversations the device is not in or seqs it never got', async () => {
    const s = await raw();
    const conversation = (await alice.client.sendText(bob.client.userId, 'for the record')).conversationId;
    s.sendJson({ type: 'ack', conversationId: randomUUID(), seq: 1 });
    const e1 = await s.next('error');
    expect(e1).toMatchObject({ code: 'not_found', ref: 'ack' });
    s.sendJson({ type: 'read', conversationId: conversation, seq: 999_999 });
    await until(() => s.frames.filter((f) => f.type === 'error').length === 2, 'second error');
    expect(s.frames.filter((f) => f.type === 'error')[1]).toMatchObject({ code: 'invalid', ref: 'read' });
  });

  it('rate limits a flood with a retry hint, then closes the flooding connection with 4001', async () => {
    const s = await raw();
    for (let i = 0; i < BURST + 5; i++) s.sendJson({ type: 'ping', id: `f${i}` });
    await until(() => s.frames.some((f) => f.type === 'error' && f.code === 'rate_limited'), 'rate limited');
    const limited = s.frames.find((f) => f.type === 'error' && f.code === 'rate_limited')!;
    expect(limited).toMatchObject({ temporary: true, retryAfterMs: expect.any(Number) });
    expect(s.frames.filter((f) => f.type === 'pong').length).toBeGreaterThanOrEqual(BURST - 1);
    for (let i = 0; i < BURST * 3; i++) s.sendJson({ type: 'ping' });
    await until(() => s.closed !== null, 'flood closed');
    expect(s.closed!.code).toBe(4001);
    await othersUnaffected();
  });

  it('closes a session when its token expires (4501), and a removed device at once (4500), then refuses it', async () => {
    const { userId, deviceId, token: t } = await login(alice);
    const shortLived = await new SignJWT({ did: deviceId })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(userId)
      .setIssuer('parley')
      .setAudience('parley-client')
      .setExpirationTime(Math.floor(Date.now() / 1000) + 2)
      .sign(new TextEncoder().encode(JWT_SECRET));
    const expiring = await rawConnect(server.url, shortLived);
    raws.push(expiring);
    await until(() => expiring.closed !== null, 'expired session closed');
    expect(expiring.closed!.code).toBe(4501);

    const s = await rawConnect(server.url, t);
    raws.push(s);
    const del = await fetch(`${server.url}/v1/devices/${deviceId}`, { method: 'DELETE', headers: { authorization: `Bearer ${t}` } });
    expect(del.status).toBe(204);
    await until(() => s.closed !== null, 'removed device closed');
    expect(s.closed!.code).toBe(4500);
    expect(await upgradeStatus(server.url, { authorization: `Bearer ${t}` })).toBe(401);
    expect((await fetch(`${server.url}/v1/users?username=${alice.username}`, { headers: { authorization: `Bearer ${t}` } })).status).toBe(401);
    const again = await fetch(`${server.url}/v1/devices/${deviceId}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
    expect(again.status).toBe(404);
  });

  it('answers REST errors with the documented shape and statuses', async () => {
    const j = async (res: Response) => ({ status: res.status, body: (await res.json()) as { error: { code: string } } });
    const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
    expect(await j(await fetch(`${server.url}/v1/nowhere`))).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });
    expect(await j(await fetch(`${server.url}/v1/users?username=${alice.username}`))).toMatchObject({ status: 401, body: { error: { code: 'unauthorized' } } });
    expect(await j(await post('/v1/accounts', { username: 'x' }))).toMatchObject({ status: 400, body: { error: { code: 'invalid' } } });
    expect(await j(await post('/v1/accounts', { username: alice.username, password: 'whatever-123' }))).toMatchObject({ status: 409 });
    expect(await j(await post('/v1/sessions', { username: alice.username, password: 'wrong-password', device: await loginDevice(server.url, alice.username, { name: 'd' }) }))).toMatchObject({
      status: 401,
      body: { error: { code: 'unauthorized' } },
    });
    const zeroKey = await post('/v1/sessions', { username: alice.username, password: alice.password, device: { name: 'd', publicKey: 'A'.repeat(43) + '=' } });
    expect(await j(zeroKey)).toMatchObject({ status: 400, body: { error: { code: 'invalid' } } });
    const huge = await fetch(`${server.url}/v1/accounts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'a'.repeat(100_000) }) });
    expect(huge.status).toBe(413);
    const xml = await fetch(`${server.url}/v1/accounts`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<a/>' });
    expect(await j(xml)).toMatchObject({ status: 400, body: { error: { code: 'invalid' } } });
    const bad = await fetch(`${server.url}/v1/accounts`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{oops' });
    expect(bad.status).toBe(400);
    const auth = { authorization: `Bearer ${token}` };
    expect((await fetch(`${server.url}/v1/users/${randomUUID()}/devices`, { headers: auth })).status).toBe(404);
    expect((await fetch(`${server.url}/v1/users/not-a-uuid/devices`, { headers: auth })).status).toBe(400);
    // The framework's and the HTTP parser's own refusals have the same shape.
    expect(await j(await fetch(`${server.url}/v1/users/%zz/devices`, { headers: auth }))).toEqual({ status: 400, body: { error: { code: 'invalid', message: 'malformed URL' } } });
    expect(await j(await fetch(`${server.url}/v1/users/${'a'.repeat(300)}/devices`, { headers: auth }))).toMatchObject({ status: 414, body: { error: { code: 'too_large' } } });
    expect(await j(await fetch(`${server.url}/healthz`, { headers: { 'x-big': 'a'.repeat(20_000) } }))).toMatchObject({ status: 431, body: { error: { code: 'too_large' } } });
    const garbage = await rawHttp(server.port, 'GARBAGE\r\n\r\n');
    expect(garbage).toMatch(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(garbage.slice(garbage.indexOf('\r\n\r\n') + 4))).toEqual({ error: { code: 'invalid', message: 'malformed HTTP request' } });
    await othersUnaffected();
  });
});
