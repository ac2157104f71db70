// End-to-end: GET /v1/users/{id} (client.username) tells a username only to someone with a reason to know it.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUser, type Recorded } from './support/clients.js';
import { type ServerProcess, startServer } from './support/server.js';

describe('usernames by id (real server)', () => {
  let server: ServerProcess;
  const users: Recorded[] = [];

  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    for (const u of users) await u.client.close();
    await server?.dispose();
  });

  it('answers yourself, the people you share a conversation with and those you block; anyone else gets the 404 of an unknown id', async () => {
    const [alice, bob, carol, dave] = [await newUser(server.url, 'alice'), await newUser(server.url, 'bob'), await newUser(server.url, 'carol'), await newUser(server.url, 'dave')];
    users.push(alice, bob, carol, dave);
    const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code);
    // A stranger's id (carol has nothing to do with alice yet) says nothing more than an unknown one.
    expect(await code(carol.client.username(alice.client.userId))).toBe('not_found');
    expect(await code(carol.client.username(randomUUID()))).toBe('not_found');
    expect(await alice.client.username(alice.client.userId)).toBe(alice.username);

    await alice.client.sendText(bob.client.userId, 'hi');
    expect(await bob.client.username(alice.client.userId)).toBe(alice.username);
    expect(await alice.client.username(bob.client.userId)).toBe(bob.username);

    await dave.client.createGroup({ name: 'g', members: [carol.client.userId] });
    expect(await carol.client.username(dave.client.userId)).toBe(dave.username);

    await bob.client.block(carol.client.userId);
    expect(await bob.client.username(carol.client.userId)).toBe(carol.username);
    expect(await code(carol.client.username(bob.client.userId))).toBe('not_found');
  });
});
