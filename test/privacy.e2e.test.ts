// End-to-end: the server never holds plaintext: not in the database files, not in the logs; tokens and passwords are never logged.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUser } from './support/clients.js';
import { forms, readAll } from './support/scan.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

describe('privacy', () => {
  let server: ServerProcess;
  const canaries = Array.from({ length: 5 }, () => `canary-${randomBytes(12).toString('hex')}`);
  let usernames: string[] = [];
  let secrets: string[] = [];

  beforeAll(async () => {
    server = await startServer({ env: { LOG_LEVEL: 'trace' } });
    const alice = await newUser(server.url, 'alice');
    const bob = await newUser(server.url, 'bob');
    usernames = [alice.username, bob.username];
    secrets = [alice.password, bob.password];
    for (const c of canaries) await alice.client.sendText(bob.client.userId, c);
    await until(() => bob.messages.length === canaries.length, 'bob has the canaries');
    expect(bob.messages.map((m) => m.text)).toEqual(canaries);
    await bob.client.markRead(bob.messages[0]!.conversationId, bob.messages.at(-1)!.seq);
    await bob.client.sendText(alice.client.userId, canaries[0]!);
    await until(() => alice.messages.length === 1, 'alice has the reply');
    const tokenHolder = alice.client as unknown as { token: string };
    secrets.push(tokenHolder.token);
    await alice.client.close();
    await bob.client.close();
    await server.stop(); // flush everything to disk
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('no message text appears in the database files, in any form', async () => {
    const files = await readAll(server.dataDir);
    expect(files.length).toBeGreaterThan(10);
    // The scan works: usernames are stored in the clear, so it must find them.
    for (const u of usernames) expect(files.some((f) => f.includes(u))).toBe(true);
    for (const c of canaries) {
      for (const form of forms(c)) expect(files.some((f) => f.includes(form))).toBe(false);
    }
  });

  it('no message text, password or token appears in the logs', async () => {
    const logs = server.logs.join('\n');
    expect(logs).toContain('"msg":"listening"');
    for (const s of [...canaries, ...secrets]) {
      for (const form of forms(s)) expect(logs.includes(form.toString())).toBe(false);
    }
  });
});
