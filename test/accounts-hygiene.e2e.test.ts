// End-to-end: names refuse invalid Unicode, lookalike usernames are one account, devices per user are capped, and login guesses back off per account.
import { request } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sodiumReady } from '../protocol/bytes.js';
import { loginDevice } from './support/raw.js';
import { type ServerProcess, startServer } from './support/server.js';
import { uniqueName } from './support/wait.js';

const FREE = 2;

interface Answer {
  status: number;
  headers: Headers;
  body: { error?: { code: string; message: string; details?: Record<string, unknown> } } & Record<string, unknown>;
}

describe('accounts hygiene', () => {
  let server: ServerProcess;

  const call = async (method: string, path: string, body?: unknown, token?: string): Promise<Answer> => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : {} };
  };
  const register = (username: string, password = `password-${username}`) => call('POST', '/v1/accounts', { username, password });
  const login = async (username: string, password = `password-${username}`, device: { id?: string; name?: string } = {}) =>
    call('POST', '/v1/sessions', { username, password, device: await loginDevice(server.url, username, { name: 'phone', ...device }) });
  const newUser = async (prefix: string) => {
    const username = uniqueName(prefix);
    expect((await register(username)).status).toBe(201);
    const s = await login(username);
    expect(s.status).toBe(201);
    return { username, token: s.body.token as string, userId: s.body.userId as string, deviceId: s.body.deviceId as string };
  };
  /** A POST sent from another loopback address than 127.0.0.1 (the server sees another client IP). */
  const postFrom = (localAddress: string, path: string, body: unknown) =>
    new Promise<{ status: number; retryAfter: string | undefined; body: Answer['body'] }>((resolve, reject) => {
      const data = JSON.stringify(body);
      const req = request(
        { host: '127.0.0.1', port: server.port, localAddress, method: 'POST', path, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'], body: JSON.parse(text) }));
        },
      );
      req.on('error', reject);
      req.end(data);
    });
  const invalid = { status: 400, body: { error: { code: 'invalid' } } };

  beforeAll(async () => {
    await sodiumReady();
    server = await startServer({ env: { LOGIN_FAILURES_FREE: String(FREE), LOGIN_BACKOFF_MAX_MS: '1000' } });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  describe('names', () => {
    const bad = {
      nul: 'team\u0000name',
      'lone high surrogate': 'team\uD83D',
      'lone low surrogate': '\uDE00team',
      'C0 control': 'bell\u0007',
      newline: 'two\nlines',
      'C1 control': 'next\u0085line',
      DEL: 'del\u007F',
      noncharacter: 'not\uFFFE',
      'plane-end noncharacter': 'not\u{10FFFF}',
    };

    it('refuses invalid Unicode in a group name, a rename and a device name with 400 invalid, and logs no internal error', async () => {
      const owner = await newUser('names');
      for (const [what, name] of Object.entries(bad)) {
        expect(await call('POST', '/v1/groups', { name, members: [] }, owner.token), `create: ${what}`).toMatchObject(invalid);
      }
      const group = await call('POST', '/v1/groups', { name: 'Team', members: [] }, owner.token);
      expect(group.status).toBe(201);
      const groupId = group.body.id as string;
      for (const [what, name] of Object.entries(bad)) {
        expect(await call('PATCH', `/v1/groups/${groupId}`, { name }, owner.token), `rename: ${what}`).toMatchObject(invalid);
      }
      for (const [what, name] of Object.entries(bad)) {
        expect(await login(owner.username, undefined, { name }), `device name: ${what}`).toMatchObject(invalid);
        expect(await login(owner.username, undefined, { id: owner.deviceId, name }), `device name, existing device: ${what}`).toMatchObject(invalid);
      }
      // The message says what is wrong, on which field.
      expect((await call('POST', '/v1/groups', { name: 'a\u0000b' }, owner.token)).body.error!.message).toMatch(/name.*control characters \(U\+0000\)/);
      expect((await call('POST', '/v1/groups', { name: 'a\uDC00' }, owner.token)).body.error!.message).toMatch(/name.*well-formed/);
      // A new password must be well-formed too (a lone surrogate would be hashed as U+FFFD).
      expect(await register(uniqueName('pw'), 'password-\uD800')).toMatchObject(invalid);

      // Good names are stored in NFC and trimmed; the group is unchanged by the refused renames.
      expect((await call('GET', `/v1/groups/${groupId}`, undefined, owner.token)).body.name).toBe('Team');
      expect((await call('PATCH', `/v1/groups/${groupId}`, { name: ' Cafe\u0301 ☕ ' }, owner.token)).status).toBe(204);
      expect((await call('GET', `/v1/groups/${groupId}`, undefined, owner.token)).body.name).toBe('Caf\u00e9 ☕');
      expect((await login(owner.username, undefined, { name: 'Téléphone 📱' })).status).toBe(201);

      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      const failures = server.logs.filter((l) => /"internal"|request failed|"level":(50|60)|\n\s+at /.test(l));
      expect(failures).toEqual([]);
    });
  });

  describe('usernames', () => {
    /** Fullwidth forms: what NFKC folds back to ASCII. */
    const fullwidth = (s: string) => s.replace(/[!-~]/g, (c) => String.fromCodePoint(c.codePointAt(0)! + 0xfee0));

    it('refuses a lookalike of a taken username with the same 409 as the name itself, naming neither', async () => {
      const p = uniqueName('h').replace(/_/g, '') + '_';
      const pairs: [string, string][] = [
        [`${p}alice1`, `${p}alicel`],
        [`${p}b0b`, `${p}bob`],
        [`${p}carol.`, `${p}carol`],
        [`${p}rnike`, `${p}mike`],
        [`${p}dan-x`, `${p}dan__x`],
        [`${p}erin`, fullwidth(`${p}erin`)],
      ];
      for (const [taken, lookalike] of pairs) {
        expect((await register(taken)).status, taken).toBe(201);
        const same = await register(taken);
        const alike = await register(lookalike);
        expect(alike, lookalike).toMatchObject({ status: 409, body: { error: { code: 'conflict', message: 'username is taken' } } });
        expect(alike.body).toEqual(same.body);
        expect(JSON.stringify(alike.body)).not.toContain(p);
      }
      // The other direction too: the plain name is taken by its lookalike.
      expect((await register(`${p}zeta0`)).status).toBe(201);
      expect((await register(`${p}zetao`)).status).toBe(409);
    });

    it('applies NFKC to usernames everywhere, and still matches logins and lookups exactly', async () => {
      const name = uniqueName('nfkc');
      const password = `password-${name}`;
      expect((await register(fullwidth(name), password)).status).toBe(201); // stored as `name`
      const s = await login(name, password);
      expect(s.status).toBe(201);
      expect((await login(fullwidth(name), password)).status).toBe(201);
      const lookup = await call('GET', `/v1/users?username=${encodeURIComponent(fullwidth(name))}`, undefined, s.body.token as string);
      expect(lookup).toMatchObject({ status: 200, body: { id: s.body.userId, username: name } });
      // A lookalike is another (missing) name for login and lookup.
      const b0b = uniqueName('b0b');
      expect((await register(b0b)).status).toBe(201);
      expect((await call('GET', `/v1/users?username=${b0b.replace('0', 'o')}`, undefined, s.body.token as string)).status).toBe(404);
      expect((await login(b0b.replace('0', 'o'), `password-${b0b}`)).status).toBe(401);
      expect(await register('ＡＬＩＣＥ')).toMatchObject(invalid); // NFKC gives uppercase: still not a username
    });
  });

  describe('devices', () => {
    it('refuses a seventh device with 409 limit_exceeded; existing devices may log in again', async () => {
      const user = await newUser('cap'); // device 1
      const devices = [user.deviceId];
      for (let i = 2; i <= 6; i++) {
        const s = await login(user.username);
        expect(s.status, `device ${i}`).toBe(201);
        devices.push(s.body.deviceId as string);
      }
      const seventh = await login(user.username);
      expect(seventh).toMatchObject({ status: 409, body: { error: { code: 'limit_exceeded', details: { maxDevices: 6 } } } });

      const again = await login(user.username, undefined, { id: devices[0] });
      expect(again).toMatchObject({ status: 201, body: { deviceId: devices[0] } });
      const listed = await call('GET', `/v1/users/${user.userId}/devices`, undefined, again.body.token as string);
      expect((listed.body.devices as unknown[]).length).toBe(6);

      expect((await call('DELETE', `/v1/devices/${devices[5]}`, undefined, again.body.token as string)).status).toBe(204);
      expect((await login(user.username)).status).toBe(201);
      expect((await login(user.username)).status).toBe(409);
    });
  });

  describe('login backoff', () => {
    /** FREE wrong passwords, then the right one: the answers, as `status code`. */
    const guess = async (username: string, password: string) => {
      const out: Answer[] = [];
      for (let i = 0; i < FREE; i++) out.push(await login(username, 'wrong-password'));
      out.push(await login(username, password));
      return out;
    };

    it('after the free failures, refuses every attempt for that account with 429 and a wait, from any address, the right password included', async () => {
      const victim = await newUser('victim');
      const bystander = await newUser('bystander');
      const answers = await guess(victim.username, `password-${victim.username}`);
      expect(answers.map((a) => a.status)).toEqual([401, 401, 429]);
      const limited = answers[2]!;
      expect(limited.body.error).toMatchObject({ code: 'rate_limited', details: { retryAfterMs: expect.any(Number) } });
      const wait = limited.body.error!.details!.retryAfterMs as number;
      expect(wait).toBeGreaterThan(0);
      expect(wait).toBeLessThanOrEqual(1000);
      expect(limited.headers.get('retry-after')).toBe('1');

      // From another client address: still refused, so the limit is the account's, not the address's.
      const elsewhere = await postFrom('127.0.0.2', '/v1/sessions', {
        username: victim.username,
        password: `password-${victim.username}`,
        device: await loginDevice(server.url, victim.username, { name: 'laptop' }),
      });
      expect(elsewhere).toMatchObject({ status: 429, retryAfter: '1', body: { error: { code: 'rate_limited' } } });
      // Other accounts are not slowed down.
      expect((await login(bystander.username, undefined, { id: bystander.deviceId })).status).toBe(201);

      // After the wait, the right password gets in, and that ends the streak: failures are free again.
      await new Promise((r) => setTimeout(r, wait + 100));
      expect((await login(victim.username, undefined, { id: victim.deviceId })).status).toBe(201);
      expect((await login(victim.username, 'wrong-password')).status).toBe(401);
      expect((await login(victim.username, undefined, { id: victim.deviceId })).status).toBe(201);
    });

    it('answers an unknown username exactly like a known one', async () => {
      const known = await newUser('known');
      const knownAnswers = await guess(known.username, `password-${known.username}`);
      const unknownAnswers = await guess(uniqueName('ghost'), 'password-whatever');
      const shape = (a: Answer) => ({
        status: a.status,
        code: a.body.error?.code,
        message: a.body.error?.message,
        details: Object.keys(a.body.error?.details ?? {}),
        retryAfter: a.headers.get('retry-after'),
      });
      expect(unknownAnswers.map(shape)).toEqual(knownAnswers.map(shape));
      expect(knownAnswers.map((a) => a.status)).toEqual([401, 401, 429]);
    });
  });
});
