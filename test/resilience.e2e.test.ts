// End-to-end: nothing acknowledged is lost or duplicated across dropped connections and server restarts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type Message } from '../client-sdk/index.js';
import { newUser, type Recorded } from './support/clients.js';
import { startProxy } from './support/proxy.js';
import { type ServerProcess, startServer } from './support/server.js';
import { until } from './support/wait.js';

describe('resilience (one process, embedded defaults)', () => {
  let server: ServerProcess;
  const open: Recorded[] = [];

  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(async () => {
    for (const u of open) await u.client.close();
    await server?.dispose();
  });

  it('a send whose ack was lost is resent with the same id after reconnect and stored once', async () => {
    const bob = await newUser(server.url, 'bob');
    open.push(bob);
    const proxy = await startProxy(server.port);
    const alice = await newUser(proxy.url, 'alice');
    open.push(alice);

    await alice.client.sendText(bob.client.userId, 'warm-up'); // device keys are now cached
    await until(() => bob.messages.length === 1, 'warm-up arrives');
    proxy.dropDownstream(); // the server's ack will never reach alice
    const pending = alice.client.sendText(bob.client.userId, 'exactly once');
    await until(() => bob.messages.length === 2, 'the server committed and delivered it');
    proxy.cut(); // the connection dies with the ack unread
    proxy.restore();

    const result = await pending; // resolved by the resend after reconnect
    expect(result.seq).toBe(bob.messages[1]!.seq);
    expect(result.id).toBe(bob.messages[1]!.id);

    const next = await alice.client.sendText(bob.client.userId, 'after');
    expect(next.seq).toBe(result.seq + 1); // no second copy was stored
    await until(() => bob.messages.length === 3, 'the next message arrives');
    expect(bob.messages.map((m) => m.text)).toEqual(['warm-up', 'exactly once', 'after']);
    await proxy.close();
  });

  it('a server killed between send and delivery loses nothing it acknowledged', async () => {
    const alice = await newUser(server.url, 'alice');
    const bob = await newUser(server.url, 'bob');
    open.push(alice, bob);
    await bob.client.close(); // offline: delivery waits for his next sync

    const acked = [];
    for (let i = 0; i < 20; i++) acked.push(await alice.client.sendText(bob.client.userId, `before crash ${i}`));
    await server.kill(); // SIGKILL: no graceful shutdown, no flush
    await server.start();

    // Alice's SDK reconnects by itself and keeps sending in the same conversation.
    const after = await alice.client.sendText(bob.client.userId, 'after restart');
    expect(after.seq).toBe(acked.at(-1)!.seq + 1);

    await bob.client.connect();
    await until(() => bob.messages.length === 21, 'bob has everything');
    expect(bob.messages.map((m) => m.seq)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
    expect(bob.messages.map((m) => m.text)).toEqual([...acked.map((_, i) => `before crash ${i}`), 'after restart']);
  });

  it('sends queued while the server is down go out after it comes back, once each', async () => {
    const alice = await newUser(server.url, 'alice');
    const bob = await newUser(server.url, 'bob');
    open.push(alice, bob);
    await server.stop();
    const pending = [1, 2, 3].map((i) => alice.client.sendText(bob.client.userId, `queued ${i}`));
    await server.start();
    const results = await Promise.all(pending);
    expect(results.map((r) => r.seq)).toEqual([1, 2, 3]);
    await until(() => bob.messages.length === 3, 'bob gets the queued messages');
    expect(bob.messages.map((m: Message) => m.text)).toEqual(['queued 1', 'queued 2', 'queued 3']);
  });

  it('a device that connects again replaces its older connection', async () => {
    const alice = await newUser(server.url, 'alice');
    open.push(alice);
    const twin = createClient({ url: server.url, username: alice.username, password: alice.password });
    // Same device id and keys as alice's client:
    (twin as unknown as { device: unknown }).device = (alice.client as unknown as { device: unknown }).device;
    const closes: number[] = [];
    alice.client.on('disconnected', (d) => closes.push(d.code));
    await twin.login();
    await twin.connect();
    await until(() => closes.length === 1, 'the older connection is closed');
    expect(closes[0]).toBe(4500);
    await twin.close();
  });
});
