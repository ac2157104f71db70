// Fuzzing the REST routes added for pushes, mutes, the inbox, blocks, reports, the account and delete for everyone, while a bystander pair keeps talking.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../platform/errors.js';
import { newUser, type Recorded } from './support/clients.js';
import { anyJson, type FuzzIds, oddString } from './support/fuzz-frames.js';
import { rawAccount, type RawAccount } from './support/raw.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

/** Replay a failure with FUZZ_SEED=<seed> (and the same FUZZ_REST_RUNS). */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_126);
const RUNS = Number(process.env.FUZZ_REST_RUNS ?? 60);
const BATCH = 40;
const DOCUMENTED_CODES = new Set<string>(ERROR_CODES);

/** A string as a URL component; a lone surrogate (which encodeURIComponent refuses) goes as the invalid UTF-8 bytes of one. */
function component(s: string): string {
  return s
    .split(/([\ud800-\udfff])/)
    .map((part) => (/^[\ud800-\udfff]$/.test(part) ? '%ED%A0%80' : encodeURIComponent(part)))
    .join('');
}

/** One hostile request; `stranger` marks one aimed at someone else's device or conversation, which must never succeed. */
interface FuzzRequest {
  method: 'GET' | 'PUT' | 'POST' | 'DELETE';
  path: string;
  body?: string;
  stranger: boolean;
}

describe('fuzzing the REST routes of pushes, mutes, the inbox, blocks, reports and accounts', () => {
  let server: ServerProcess;
  let alice: Recorded;
  let bob: Recorded;
  let mallory: RawAccount;
  let theirConversation: string;
  const ids: FuzzIds = { users: [], devices: [], conversations: [], groups: [] };

  beforeAll(async () => {
    server = await startServer({ env: { REPORT_RATE_PER_HOUR: '10000' } });
    [alice, bob] = [await newUser(server.url, 'alice'), await newUser(server.url, 'bob')];
    mallory = await rawAccount(server.url, 'mallory');
    theirConversation = (await alice.client.sendText(bob.client.userId, 'before')).conversationId;
    ids.users.push(alice.client.userId, bob.client.userId, mallory.userId);
    ids.devices.push(alice.client.deviceId!, bob.client.deviceId!, mallory.deviceId);
    ids.conversations.push(theirConversation);
  });
  afterAll(async () => {
    for (const u of [alice, bob]) await u?.client.close();
    await server?.dispose();
  });

  /** Path segments: real ids (theirs and the attacker's), random uuids, and odd strings. */
  const segment = (): fc.Arbitrary<string> =>
    fc.oneof(fc.constantFrom(...ids.users, ...ids.devices, ...ids.conversations), fc.uuid(), oddString.map((s) => component(s.slice(0, 200))));
  /** A body: any JSON (deep, huge, odd), or a plausible one with a field replaced. */
  const body = (plausible: Record<string, unknown>): fc.Arbitrary<string> =>
    fc.oneof(
      anyJson(ids).map((v) => JSON.stringify(v) ?? 'null'),
      fc.tuple(fc.constantFrom(...Object.keys(plausible)), anyJson(ids)).map(([k, v]) => JSON.stringify({ ...plausible, [k]: v })),
      fc.constant(JSON.stringify(plausible)),
      fc.integer({ min: 10, max: 5_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
      fc.integer({ min: 100, max: 20_000 }).map((n) => JSON.stringify({ ...plausible, messages: Array.from({ length: n }, () => ({ id: 'x', seq: 1, text: 't', sentAt: 1, from: ids.users[0] })) })),
    );
  const request = (): fc.Arbitrary<FuzzRequest> => {
    const own = mallory.deviceId;
    const isStranger = (s: string) => s === theirConversation || s === alice.client.deviceId || s === bob.client.deviceId;
    const at = (method: FuzzRequest['method'], path: (seg: string) => string, b?: Record<string, unknown>, strangerCounts = true) =>
      fc.tuple(fc.oneof(segment(), fc.constant(own)), b ? body(b) : fc.constant(undefined)).map(([seg, text]): FuzzRequest => ({
        method,
        path: path(seg),
        ...(text === undefined ? {} : { body: text }),
        stranger: strangerCounts && isStranger(seg),
      }));
    return fc.oneof(
      at('PUT', (d) => `/v1/devices/${d}/push`, { kind: 'webpush', endpoint: 'https://fcm.googleapis.com/fcm/send/x', keys: { p256dh: 'A'.repeat(87), auth: 'A'.repeat(22) } }),
      at('PUT', (d) => `/v1/devices/${d}/push`, { kind: 'webhook', token: 'tok' }),
      at('DELETE', (d) => `/v1/devices/${d}/push`),
      at('PUT', (c) => `/v1/conversations/${c}/mute`, { until: null }),
      at('DELETE', (c) => `/v1/conversations/${c}/mute`),
      at('DELETE', (c) => `/v1/conversations/${c}/messages/1`),
      fc.tuple(oddString, oddString).map(([l, c]): FuzzRequest => ({ method: 'GET', path: `/v1/conversations?limit=${component(l.slice(0, 100))}&cursor=${component(c.slice(0, 300))}`, stranger: false })),
      // A username by id: any id, any odd segment (who may see whom: test/usernames.e2e.test.ts).
      at('GET', (u) => `/v1/users/${u}`, undefined, false),
      at('POST', () => '/v1/blocks', { userId: ids.users[0] }, false),
      at('DELETE', (u) => `/v1/blocks/${u}`, undefined, false),
      at('POST', () => '/v1/reports', { userId: ids.users[0], reason: 'r', conversationId: theirConversation }, false),
      at('POST', () => '/v1/reports', { userId: ids.users[0], reason: 'r', messages: [{ id: 'm1', seq: 1, text: 't', sentAt: 1, from: ids.users[0] }] }, false),
      at('PUT', () => '/v1/account/password', { current: 'wrong-password', new: 'another-password' }, false),
      at('DELETE', () => '/v1/account', { password: 'wrong-password' }, false),
      fc.constant<FuzzRequest>({ method: 'GET', path: '/v1/push/vapid', stranger: false }),
    );
  };

  it('answers every request with a documented status and code, never lets a stranger act on others, and the bystanders lose nothing', async () => {
    let fuzzing = true;
    const sent: string[] = [];
    const talk = (async () => {
      for (let n = 0; fuzzing || n < 5; n++) {
        sent.push(`m${n}`);
        await alice.client.sendText(bob.client.userId, `m${n}`);
      }
    })();
    const statuses = new Map<number, number>();
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(request(), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
          await Promise.all(
            batch.map(async (r) => {
              const res = await fetch(`${server.url}${r.path}`, {
                method: r.method,
                headers: { authorization: `Bearer ${mallory.token}`, ...(r.body === undefined ? {} : { 'content-type': 'application/json' }) },
                ...(r.body === undefined ? {} : { body: r.body }),
              });
              const text = await res.text();
              statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
              expect(res.status, `${r.method} ${r.path.slice(0, 120)}: ${text.slice(0, 200)}`).toBeLessThan(500);
              if (r.stranger) expect(res.status, `${r.method} ${r.path} on another user's device or conversation`).toBeGreaterThanOrEqual(400);
              if (res.status >= 400) {
                const code = (JSON.parse(text) as { error: { code: string } }).error.code;
                expect(DOCUMENTED_CODES.has(code), `undocumented code ${code}`).toBe(true);
              }
            }),
          );
          expect(server.running).toBe(true);
        }),
        { seed: SEED, numRuns: RUNS, endOnFailure: true },
      );
    } finally {
      fuzzing = false;
      await talk;
    }
    console.log(`fuzz-rest: seed ${SEED}, ${RUNS} batches of ${BATCH}; statuses ${JSON.stringify(Object.fromEntries(statuses))}`);
    expect([...statuses.keys()].some((s) => s < 300)).toBe(true); // some requests reached the handlers and succeeded

    // The process is well, the attacker's account still stands (no guessed password), and the bystanders lost nothing.
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect(server.logs.filter((l) => l.includes('"level":50') || l.includes('"level":60'))).toEqual([]);
    const texts = () => bob.messages.filter((m) => m.from === alice.client.userId).map((m) => m.text);
    await until(() => texts().length >= sent.length + 1, 'bob has every message');
    expect(texts()).toEqual(['before', ...sent]);
    expect(bob.errors).toEqual([]);
  }, 300_000);
});
