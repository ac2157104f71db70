// End-to-end on the embedded default: the server on PGlite (in its worker thread) killed right after the last ack restarts with every message.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SendResult } from '../client-sdk/index.js';
import { newUser, type Recorded } from './support/clients.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

describe('PGlite in its worker thread survives a SIGKILL (one process, embedded defaults)', () => {
  let server: ServerProcess;
  const users: Recorded[] = [];

  beforeAll(async () => {
    server = await startServer(); // no SQL_DRIVER: PGlite, in the temporary DATA_DIR startServer made
  });
  afterAll(async () => {
    for (const u of users) await u.client.close();
    await server?.dispose();
  });

  it('200 acknowledged messages, the recipient offline for the second half: after a kill and a restart he gets each once, in order, and sending goes on', async () => {
    const alice = await newUser(server.url, 'alice');
    const bob = await newUser(server.url, 'bob');
    users.push(alice, bob);
    const texts = Array.from({ length: 200 }, (_, i) => `message ${i}`);
    const sendAll = (part: string[]) => Promise.all(part.map((t) => alice.client.sendText(bob.client.userId, t)));

    // The first half while Bob is online (pipelined, so commits batch)…
    const acked: SendResult[] = await sendAll(texts.slice(0, 100));
    await until(() => bob.messages.length === 100, () => `bob has the first half live (has ${bob.messages.length})`);
    // …the second half while he is offline; the server dies right after the last ack.
    await bob.client.close();
    acked.push(...(await sendAll(texts.slice(100))));
    await server.kill(); // SIGKILL: no graceful shutdown, PGlite is not closed
    expect(server.running).toBe(false);
    expect(acked.map((a) => a.seq)).toEqual(texts.map((_, i) => i + 1));

    await server.start(); // same port, same DATA_DIR
    expect(server.logs.filter((l) => l.includes('"msg":"listening"'))).toHaveLength(2);
    let caughtUp = 0;
    bob.client.on('caught_up', () => caughtUp++);
    await bob.client.connect();
    await until(() => caughtUp >= 1, 'bob caught up after the restart');
    await until(() => bob.messages.length >= 200, () => `bob has all 200 (has ${bob.messages.length})`);

    // New messages both ways after the restart; Alice's SDK reconnected by itself.
    const after = await alice.client.sendText(bob.client.userId, 'after the restart');
    expect(after.seq).toBe(201);
    await until(() => bob.messages.some((m) => m.id === after.id), 'bob gets the first message after the restart');
    const reply = await bob.client.sendText(alice.client.userId, 'reply after the restart');
    expect(reply.seq).toBe(202);
    await until(() => alice.messages.some((m) => m.id === reply.id), 'alice gets the reply');

    // Every message exactly once, in seq order (anything delivered twice would sit before the last one).
    expect(bob.messages.map((m) => m.seq)).toEqual([...acked, after].map((a) => a.seq));
    expect(bob.messages.map((m) => m.id)).toEqual([...acked, after].map((a) => a.id));
    expect(bob.messages.map((m) => m.text)).toEqual([...texts, 'after the restart']);
    expect(alice.messages.map((m) => m.text)).toEqual(['reply after the restart']);
    expect(bob.errors).toEqual([]);
    expect(alice.errors).toEqual([]);
  });
});
