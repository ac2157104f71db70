// End-to-end: the same 1:1, group, receipt, offline and reconnect scenarios over WebSocket, and through a proxy that refuses WebSocket upgrades, where the SDK falls back to Socket.IO long-polling.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type TransportName } from '../client-sdk/index.js';
import { newUser, type Recorded } from './support/clients.js';
import { type NoUpgradeProxy, startNoUpgradeProxy } from './support/no-upgrade-proxy.js';
import { type ServerProcess, startServer } from './support/server.js';
import { uniqueName, until } from './support/wait.js';

/** How the clients of a scenario reach the server, and the transport they must end up on. */
interface Path {
  name: string;
  url: () => string;
  transport: TransportName;
}

let server: ServerProcess;
let forbidding: NoUpgradeProxy;
let dropping: NoUpgradeProxy;
const open: Recorded[] = [];

const paths: Path[] = [
  { name: 'directly: WebSocket', url: () => server.url, transport: 'websocket' },
  { name: 'through a proxy answering upgrades 403: Socket.IO long-polling', url: () => forbidding.url, transport: 'socket.io:polling' },
  { name: 'through a proxy dropping upgrades: Socket.IO long-polling', url: () => dropping.url, transport: 'socket.io:polling' },
];

async function user(path: Path, prefix: string, connect = true): Promise<Recorded> {
  const u = await newUser(path.url(), prefix, connect);
  open.push(u);
  if (connect) expect(u.client.transport).toBe(path.transport);
  return u;
}

const texts = (u: Recorded, conversationId?: string) => u.messages.filter((m) => conversationId === undefined || m.conversationId === conversationId).map((m) => m.text);

/** Shared scenarios: each runs against every path. */
const scenarios: Record<string, (path: Path) => Promise<void>> = {
  '1:1 both ways, once each, in order': async (path) => {
    const alice = await user(path, 'alice');
    const bob = await user(path, 'bob');
    const sent = [];
    for (let i = 0; i < 10; i++) sent.push(await alice.client.sendText(bob.client.userId, `hello ${i}`));
    expect(sent.map((s) => s.seq)).toEqual(sent.map((_, i) => i + 1));
    await until(() => bob.messages.length === 10, 'bob has all ten');
    expect(texts(bob)).toEqual(sent.map((_, i) => `hello ${i}`));
    expect(bob.messages[0]).toMatchObject({ id: sent[0]!.id, from: alice.client.userId, seq: 1 });
    await bob.client.sendText(alice.client.userId, 'hi alice');
    await until(() => alice.messages.length === 1, 'alice has the reply');
    expect(texts(alice)).toEqual(['hi alice']);
    expect([alice.client.transport, bob.client.transport]).toEqual([path.transport, path.transport]);
    expect([...alice.errors, ...bob.errors]).toEqual([]);
  },

  'group messages and changes to every member': async (path) => {
    const [alice, bob, carol] = await Promise.all([user(path, 'alice'), user(path, 'bob'), user(path, 'carol')]);
    const { id } = await alice.client.createGroup({ name: 'over ' + path.transport, members: [bob.client.userId, carol.client.userId] });
    const sent = [];
    for (let i = 0; i < 6; i++) sent.push(await (i % 2 ? bob : alice).client.sendGroupText(id, `g${i}`));
    await until(() => texts(carol, id).length === 6, 'carol has all six');
    expect(texts(carol, id)).toEqual(sent.map((_, i) => `g${i}`));
    await until(() => texts(alice, id).length === 3 && texts(bob, id).length === 3, 'each sender has the other’s');
    expect(carol.groupEvents.filter((e) => e.groupId === id)).toMatchObject([{ kind: 'created', name: 'over ' + path.transport }]);
    expect(carol.errors).toEqual([]);
  },

  'delivered and read receipts, 1:1 and group': async (path) => {
    const alice = await user(path, 'alice');
    const bob = await user(path, 'bob');
    const s = await alice.client.sendText(bob.client.userId, 'receipt me');
    await until(() => alice.receipts.some((r) => r.kind === 'delivered' && r.seq === s.seq && r.by === bob.client.userId), 'delivered receipt');
    await until(() => bob.messages.length === 1, 'bob has it');
    await bob.client.markRead(s.conversationId, s.seq);
    await until(() => alice.receipts.some((r) => r.kind === 'read' && r.seq === s.seq), 'read receipt');
    const { id } = await alice.client.createGroup({ name: 'receipts', members: [bob.client.userId] });
    const g = await alice.client.sendGroupText(id, 'group receipt me');
    await until(() => texts(bob, id).length === 1, 'bob has the group message');
    await bob.client.markRead(id, g.seq);
    await alice.client.markRead(id, g.seq);
    await until(() => alice.groupReceipts.some((r) => r.groupId === id && r.read >= g.seq), 'read by every member');
  },

  'messages sent while a device was offline arrive once, in order, after it reconnects': async (path) => {
    const alice = await user(path, 'alice');
    const bob = await user(path, 'bob');
    await bob.client.close();
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => alice.client.sendText(bob.client.userId, `offline ${i}`)));
    let caughtUp = 0;
    bob.client.on('caught_up', () => caughtUp++);
    await bob.client.connect();
    expect(bob.client.transport).toBe(path.transport);
    await until(() => caughtUp === 1 && bob.messages.length === 30, 'bob caught up');
    expect(bob.messages.map((m) => m.seq)).toEqual(results.map((r) => r.seq));
    expect(texts(bob)).toEqual(results.map((_, i) => `offline ${i}`));
    await bob.client.close();
    await bob.client.connect();
    await until(() => caughtUp === 2, 'bob caught up again');
    expect(bob.messages).toHaveLength(30); // nothing twice
  },

  'after a server restart the clients reconnect by themselves; sends made meanwhile go out once': async (path) => {
    const alice = await user(path, 'alice');
    const bob = await user(path, 'bob');
    await alice.client.sendText(bob.client.userId, 'before');
    await until(() => bob.messages.length === 1, 'bob has the first');
    const reconnected: string[] = [];
    alice.client.on('connected', () => reconnected.push('alice'));
    bob.client.on('connected', () => reconnected.push('bob'));
    await server.kill();
    const pending = [1, 2, 3].map((i) => alice.client.sendText(bob.client.userId, `while down ${i}`));
    await server.start();
    const results = await Promise.all(pending);
    expect(results.map((r) => r.seq)).toEqual([2, 3, 4]);
    await until(() => bob.messages.length === 4, 'bob has everything');
    expect(texts(bob)).toEqual(['before', 'while down 1', 'while down 2', 'while down 3']);
    await until(() => reconnected.length === 2, 'both reconnected');
    expect([alice.client.transport, bob.client.transport]).toEqual([path.transport, path.transport]);
  },

  'a device that connects again replaces its older connection, which is told why (4500) and stays closed': async (path) => {
    const alice = await user(path, 'alice');
    const twin = createClient({ url: path.url(), username: alice.username, password: alice.password });
    // Same device id and keys as alice's client:
    (twin as unknown as { device: unknown }).device = (alice.client as unknown as { device: unknown }).device;
    const closes: { code: number; willReconnect: boolean }[] = [];
    alice.client.on('disconnected', (d) => closes.push({ code: d.code, willReconnect: d.willReconnect }));
    await twin.login();
    await twin.connect();
    expect(twin.transport).toBe(path.transport);
    await until(() => closes.length === 1, 'the older connection is closed');
    expect(closes).toEqual([{ code: 4500, willReconnect: false }]);
    expect(alice.client.connected).toBe(false);
    await twin.close();
  },
};

beforeAll(async () => {
  server = await startServer();
  forbidding = await startNoUpgradeProxy(server.port, { refuse: 'forbid' });
  dropping = await startNoUpgradeProxy(server.port, { refuse: 'drop' });
});
afterAll(async () => {
  for (const u of open) await u.client.close();
  await forbidding?.close();
  await dropping?.close();
  await server?.dispose();
});

for (const path of paths) {
  describe(`transport 'auto' ${path.name}`, () => {
    for (const [name, run] of Object.entries(scenarios)) {
      // The dropping proxy differs from the 403 one only in how the upgrade fails: one scenario is enough there.
      if (path === paths[2] && name !== '1:1 both ways, once each, in order') continue;
      it(name, () => run(path));
    }
  });
}

describe('transports side by side', () => {
  it('a WebSocket client and a long-polling client talk to each other', async () => {
    const alice = await user(paths[0]!, 'alice');
    const bob = await user(paths[1]!, 'bob');
    await alice.client.sendText(bob.client.userId, 'from websocket');
    await bob.client.sendText(alice.client.userId, 'from polling');
    await until(() => alice.messages.length === 1 && bob.messages.length === 1, 'both have theirs');
    expect([texts(alice), texts(bob)]).toEqual([['from polling'], ['from websocket']]);
    expect(forbidding.upgradesRefused).toBeGreaterThan(0);
  });

  it("'socketio' without a proxy upgrades from long-polling to WebSocket, and says so", async () => {
    const seen: TransportName[] = [];
    const client = createClient({ url: server.url, username: uniqueName('probe'), password: 'password-probe', transport: 'socketio' });
    client.on('transport', (t) => seen.push(t));
    await client.register();
    await client.connect();
    await until(() => client.transport === 'socket.io:websocket', () => `upgraded (transports seen: ${seen.join(', ')})`);
    // Socket.IO may finish its upgrade before the session is accepted: then polling is never reported.
    expect([['socket.io:polling', 'socket.io:websocket'], ['socket.io:websocket']]).toContainEqual(seen);
    const peer = await user(paths[0]!, 'peer');
    const got: string[] = [];
    client.on('message', (m) => got.push(m.text));
    await peer.client.sendText(client.userId, 'over the upgraded socket');
    await until(() => got.length === 1, 'delivered after the upgrade');
    await client.close();
  });

  it("'websocket' through the blocking proxy does not fall back", async () => {
    const u = await newUser(forbidding.url, 'ws_only', false);
    const client = createClient({ url: forbidding.url, username: u.username, password: u.password, transport: 'websocket', reconnect: { initialDelayMs: 20, maxDelayMs: 50 } });
    await client.login();
    const refusedBefore = forbidding.upgradesRefused;
    void client.connect().catch(() => {});
    await until(() => forbidding.upgradesRefused >= refusedBefore + 3, 'it keeps retrying the WebSocket');
    expect(client.connected).toBe(false);
    expect(client.transport).toBeNull();
    await client.close();
  });
});
