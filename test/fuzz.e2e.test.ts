// Fuzzing the WebSocket gateway through a real server: tens of thousands of hostile frames over several connections, while a bystander pair keeps talking.
import fc from 'fast-check';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sodiumReady } from '../protocol/bytes.js';
import { ERROR_CODES } from '../platform/errors.js';
import { newUser, type Recorded } from './support/clients.js';
import { type FuzzIds, type FuzzMessage, hostileMessage } from './support/fuzz-frames.js';
import { loginDevice, rawConnect, type RawSession } from './support/raw.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

/** Replay a failure with FUZZ_SEED=<seed> (and the same FUZZ_RUNS / FUZZ_BATCH). */
const SEED = Number(process.env.FUZZ_SEED ?? 20_261_126);
const RUNS = Number(process.env.FUZZ_RUNS ?? 100);
const BATCH = Number(process.env.FUZZ_BATCH ?? 300);
const CONNECTIONS = 4;
/** Close codes a hostile connection may see: all documented, none a crash (1011). */
const ALLOWED_CLOSES = new Set([1002, 1007, 1009, 4001, 4003]);
const DOCUMENTED_CODES = new Set<string>(ERROR_CODES);

describe('fuzzing the gateway', () => {
  let server: ServerProcess;
  let alice: Recorded;
  let bob: Recorded;
  const attackers: { token: string; session: RawSession | null; closes: number[] }[] = [];
  const errorCodes = new Map<string, number>();
  let sent = 0;

  const login = async (u: Recorded) => {
    const res = await fetch(`${server.url}/v1/sessions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: u.username, password: u.password, device: await loginDevice(server.url, u.username, { name: 'fuzz' }) }),
    });
    expect(res.status).toBe(201);
    return (await res.json()) as { token: string; userId: string; deviceId: string };
  };

  beforeAll(async () => {
    await sodiumReady();
    server = await startServer({
      env: {
        // High enough that the frames reach the handlers; the limits have their own tests.
        WS_RATE_PER_SECOND: '1000000',
        WS_RATE_BURST: '1000000',
        WS_USER_RATE_PER_SECOND: '1000000',
        WS_USER_RATE_BURST: '1000000',
        WS_CONNECT_RATE_PER_MINUTE: '100000', // the attackers reconnect after every 1007 / 1009
      },
    });
    alice = await newUser(server.url, 'alice');
    bob = await newUser(server.url, 'bob');
    const mallory = await newUser(server.url, 'mallory');
    const trudy = await newUser(server.url, 'trudy');
    // Real conversations for the mutated frames to aim at: a direct one and a group.
    const direct = await mallory.client.sendText(trudy.client.userId, 'hi');
    const group = await mallory.client.createGroup({ name: 'fuzz', members: [trudy.client.userId] });
    await mallory.client.close();
    await trudy.client.close();
    const devices: string[] = [alice.client.deviceId!, bob.client.deviceId!, mallory.client.deviceId!, trudy.client.deviceId!];
    for (let i = 0; i < CONNECTIONS; i++) {
      const s = await login(i % 2 === 0 ? mallory : trudy);
      devices.push(s.deviceId);
      attackers.push({ token: s.token, session: null, closes: [] });
    }
    ids.users.push(alice.client.userId, bob.client.userId, mallory.client.userId, trudy.client.userId);
    ids.devices.push(...devices);
    ids.conversations.push(direct.conversationId);
    ids.groups.push(group.id);
  });
  afterAll(async () => {
    for (const a of attackers) a.session?.ws.terminate();
    await alice?.client.close();
    await bob?.client.close();
    await server?.dispose();
  });

  const ids: FuzzIds = { users: [], devices: [], conversations: [], groups: [] };

  /** The attacker's open session, reconnecting (same device) after the server closed the last one. */
  const session = async (i: number): Promise<RawSession> => {
    const a = attackers[i]!;
    if (a.session && a.session.closed === null && a.session.ws.readyState === WebSocket.OPEN) return a.session;
    if (a.session?.closed) a.closes.push(a.session.closed.code);
    a.session = await rawConnect(server.url, a.token);
    return a.session;
  };

  const deliver = (s: RawSession, m: FuzzMessage) => {
    if (m.kind === 'text') s.ws.send(m.text);
    else s.ws.send(Buffer.from(m.bytes), { binary: m.kind === 'binary' });
    sent++;
  };

  /** Every error frame so far has a documented code, and none is a server failure. */
  const checkFrames = (s: RawSession, from: number) => {
    for (const f of s.frames.slice(from)) {
      if (f.type !== 'error') continue;
      errorCodes.set(f.code, (errorCodes.get(f.code) ?? 0) + 1);
      expect(DOCUMENTED_CODES.has(f.code), `undocumented error code ${f.code}`).toBe(true);
      expect(['internal', 'unavailable']).not.toContain(f.code);
    }
  };

  it(
    'stays up, answers only with documented codes, and a bystander pair loses nothing',
    async () => {
      console.log(`fuzz: seed ${SEED}, ${RUNS} batches of ${BATCH} frames over ${CONNECTIONS} connections (replay: FUZZ_SEED=${SEED})`);
      // The bystanders talk throughout, one message at a time in each direction.
      let fuzzing = true;
      const fromAlice: string[] = [];
      const fromBob: string[] = [];
      const talk = (async () => {
        for (let n = 0; fuzzing || n < 10; n++) {
          const a = `a${n}`;
          fromAlice.push(a);
          await alice.client.sendText(bob.client.userId, a);
          const b = `b${n}`;
          fromBob.push(b);
          await bob.client.sendText(alice.client.userId, b);
          await new Promise((r) => setTimeout(r, 20));
        }
      })();

      try {
        await fc.assert(
          fc.asyncProperty(fc.array(fc.tuple(fc.nat(CONNECTIONS - 1), hostileMessage(ids)), { minLength: BATCH, maxLength: BATCH }), async (batch) => {
            const starts = await Promise.all(attackers.map(async (_, i) => ({ s: await session(i), from: 0 })));
            for (const x of starts) x.from = x.s.frames.length;
            for (const [i, m] of batch) {
              const s = attackers[i]!.session!;
              if (s.ws.readyState !== WebSocket.OPEN) continue; // closed mid-batch: the rest of its frames wait for the next batch
              deliver(s, m);
            }
            // A ping per connection: its pong means the server read everything before it.
            await Promise.all(
              starts.map(async ({ s }, i) => {
                const n = s.frames.length;
                s.sendJson({ type: 'ping', id: `sync${i}` });
                await until(() => s.frames.slice(n).some((f) => f.type === 'pong') || s.closed !== null, 'a pong or a close', 30_000);
              }),
            );
            for (const { s, from } of starts) {
              checkFrames(s, from);
              if (s.closed) expect(ALLOWED_CLOSES.has(s.closed.code), `close code ${s.closed.code}`).toBe(true);
            }
            expect(server.running).toBe(true);
          }),
          { seed: SEED, numRuns: RUNS, endOnFailure: true },
        );
      } finally {
        fuzzing = false;
        await talk;
      }

      // The process is up and nothing in it crashed.
      expect(server.running).toBe(true);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      expect(metrics).not.toMatch(/^parley_handler_crashes_total\{[^}]*\} [1-9]/m);
      expect(server.logs.filter((l) => l.includes('"level":50') || l.includes('"level":60'))).toEqual([]);
      console.log(`fuzz: ${sent} frames sent; errors by code ${JSON.stringify(Object.fromEntries(errorCodes))}; closes ${JSON.stringify(attackers.map((a) => a.closes))}`);
      expect(sent).toBeGreaterThanOrEqual(RUNS * BATCH * 0.9);

      // The bystanders saw every message once, in order.
      const texts = (r: Recorded, from: string) => r.messages.filter((m) => m.from === from).map((m) => m.text);
      await until(() => texts(bob, alice.client.userId).length >= fromAlice.length && texts(alice, bob.client.userId).length >= fromBob.length, 'bystanders caught up');
      expect(texts(bob, alice.client.userId)).toEqual(fromAlice);
      expect(texts(alice, bob.client.userId)).toEqual(fromBob);
      // Attackers may send the bystanders garbage of their own (undecryptable, reported as such);
      // nothing may go wrong in the bystanders' own conversation.
      const theirs = bob.messages.find((m) => m.from === alice.client.userId)!.conversationId;
      for (const e of [...alice.errors, ...bob.errors]) {
        expect((e as { code?: string }).code).toBe('undecryptable');
        expect(e.message).not.toContain(theirs);
      }
    },
    300_000,
  );
});
