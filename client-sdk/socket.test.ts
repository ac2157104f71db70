// Unit tests of the socket: backoff with injected jitter, gateway failover, re-login on refusal, and the WebSocket → Socket.IO fallback.
import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ManualClock, settle } from './clock.test-support.js';
import { backoffDelay, Gateways, ParleySocket } from './socket.js';
import { ParleyError } from './http.js';
import { classifyUpgradeFailure, openWebSocket, type SocketCtor, type TransportChoice, type Wire, type WireClose, type WireHandlers } from './socket.wires.js';

interface Dialed {
  transport: 'websocket' | 'socketio';
  base: string;
  token: string;
  on: WireHandlers;
  wire: Wire & { sent: string[]; closed: boolean };
}

function setup(options: { urls?: string[]; transport?: TransportChoice; random?: number; /** Dials that throw before any wire exists. */ dialErrors?: Error[] } = {}) {
  const clock = new ManualClock();
  const dials: Dialed[] = [];
  let tokens = 0;
  let refusals = 0;
  const events: string[] = [];
  const socket = new ParleySocket({
    gateways: new Gateways(options.urls ?? ['http://a', 'http://b']),
    token: { get: async () => `t${tokens === refusals ? ++tokens : tokens}`, refused: () => void refusals++ },
    ...(options.transport ? { transport: options.transport } : {}),
    reconnect: { initialDelayMs: 100, maxDelayMs: 1000 },
    clock,
    random: () => options.random ?? 0.5,
    dial: async (transport, base, token, on) => {
      const thrown = options.dialErrors?.shift();
      if (thrown) throw thrown;
      const wire = {
        sent: [] as string[],
        closed: false,
        get isOpen() {
          return !this.closed;
        },
        send(text: string) {
          this.sent.push(text);
        },
        close(code: number, reason: string) {
          this.closed = true;
          on.close({ code, reason, opened: true });
        },
      };
      dials.push({ transport, base, token, on, wire });
      return wire;
    },
  });
  socket.on('close', (e) => events.push(`close ${e.code} ${e.willReconnect ? 'retry' : 'final'}`));
  socket.on('failed', (e) => events.push(`failed ${e.code}`));
  socket.on('transport', (t) => events.push(`transport ${t}`));
  const last = () => dials.at(-1)!;
  const fail = (ev: Omit<WireClose, 'opened'> & { opened?: boolean }) => last().on.close({ opened: false, ...ev });
  return { clock, socket, dials, events, last, fail, refusals: () => refusals };
}

describe('backoffDelay', () => {
  it('doubles from the initial delay up to the maximum, with half of it random', () => {
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, 100, 1000, () => 0))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, 100, 1000, () => 0.999999)).map(Math.round)).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
});

describe('classifyUpgradeFailure', () => {
  it('tells a refusal by our server from an unreachable host and from a blocked upgrade', () => {
    expect(classifyUpgradeFailure('Unexpected server response: 401')).toEqual({ kind: 'unauthorized' });
    expect(classifyUpgradeFailure('Unexpected server response: 429')).toEqual({ kind: 'refused' });
    expect(classifyUpgradeFailure('connect ECONNREFUSED 127.0.0.1:1')).toEqual({ kind: 'unreachable' });
    expect(classifyUpgradeFailure('Unexpected server response: 403')).toEqual({ kind: 'blocked' });
    expect(classifyUpgradeFailure('socket hang up')).toEqual({ kind: 'blocked' });
    expect(classifyUpgradeFailure('')).toEqual({ kind: 'blocked' }); // a browser says nothing
  });
});

describe('ParleySocket', () => {
  it('retries with backoff and jitter, moving to the next gateway after each failure, and starts over once ready', async () => {
    const t = setup({ random: 0 });
    t.socket.open();
    await settle();
    expect(t.dials.map((d) => d.base)).toEqual(['http://a']);
    for (const expected of [50, 100, 200]) {
      t.fail({ code: 1006, reason: '', failure: { kind: 'unreachable' } });
      expect(t.clock.pending()).toEqual([expected]);
      await t.clock.advance(expected);
    }
    expect(t.dials.map((d) => d.base)).toEqual(['http://a', 'http://b', 'http://a', 'http://b']);
    t.last().on.open('websocket');
    t.socket.markReady();
    t.last().on.close({ code: 1011, reason: 'internal', opened: true });
    expect(t.clock.pending()).toEqual([50]); // the attempt count started over
    expect(t.events).toContain('close 1011 retry');
  });

  it('stays on the gateway after an ordinary close of a ready session, and leaves it when it goes away', async () => {
    const t = setup({ random: 0 });
    t.socket.open();
    await settle();
    t.last().on.open('websocket');
    t.socket.markReady();
    t.last().on.close({ code: 4001, reason: 'flood', opened: true });
    await t.clock.advance(50);
    expect(t.last().base).toBe('http://a');
    t.last().on.open('websocket');
    t.socket.markReady();
    t.last().on.close({ code: 1001, reason: 'going away', opened: true });
    await t.clock.advance(50);
    expect(t.last().base).toBe('http://b');
  });

  it('waits at least retryAfterMs when the server refuses for now', async () => {
    const t = setup({ random: 0 });
    t.socket.open();
    await settle();
    t.fail({ code: 1006, reason: 'rate_limited', failure: { kind: 'refused', retryAfterMs: 3000 } });
    expect(t.clock.pending()).toEqual([3000]);
  });

  it('retries when the transport cannot be loaded for now (a browser offline), and gives up on any other dial error', async () => {
    const t = setup({ random: 0, dialErrors: [new ParleyError('unavailable', 'cannot load the transport')] });
    t.socket.open();
    await settle();
    expect(t.dials).toHaveLength(0);
    expect(t.clock.pending()).toEqual([50]); // the backoff's first delay
    await t.clock.advance(50);
    await settle();
    expect(t.dials).toHaveLength(1);
    expect(t.events).toEqual([]);

    const broken = setup({ dialErrors: [new TypeError('not a constructor')] });
    broken.socket.open();
    await settle();
    expect(broken.events).toEqual(['failed invalid']);
    expect(broken.clock.pending()).toEqual([]);
  });

  it('logs in again after a refused token, on the same transport (a 401 is no reason to fall back)', async () => {
    const t = setup();
    t.socket.open();
    await settle();
    expect(t.last().token).toBe('t1');
    t.fail({ code: 1006, reason: '', failure: { kind: 'unauthorized' } });
    expect(t.refusals()).toBe(1);
    await t.clock.advance(1000);
    expect(t.last()).toMatchObject({ transport: 'websocket', token: 't2' });
  });

  it("'auto': a blocked WebSocket upgrade falls back to Socket.IO on the same gateway at once, and stays there once it worked", async () => {
    const t = setup();
    t.socket.open();
    await settle();
    t.fail({ code: 1006, reason: '', failure: { kind: 'blocked' } });
    await settle();
    expect(t.dials.map((d) => [d.transport, d.base])).toEqual([
      ['websocket', 'http://a'],
      ['socketio', 'http://a'],
    ]);
    expect(t.clock.pending()).toEqual([]); // no backoff before the fallback
    t.last().on.open('socket.io:polling');
    t.last().on.transport('socket.io:websocket');
    expect(t.socket.transport).toBe('socket.io:websocket');
    t.socket.markReady();
    t.last().on.close({ code: 1006, reason: 'transport close', opened: true });
    await t.clock.advance(1000);
    expect(t.last().transport).toBe('socketio');
    expect(t.events.filter((e) => e.startsWith('transport'))).toEqual(['transport socket.io:polling', 'transport socket.io:websocket']);
  });

  it("'auto': when Socket.IO fails too before it ever worked, the next attempt tries WebSocket again", async () => {
    const t = setup();
    t.socket.open();
    await settle();
    t.fail({ code: 1006, reason: '', failure: { kind: 'blocked' } });
    await settle();
    t.fail({ code: 1006, reason: 'xhr poll error', failure: { kind: 'unreachable' } });
    await t.clock.advance(1000);
    expect(t.dials.map((d) => d.transport)).toEqual(['websocket', 'socketio', 'websocket']);
  });

  it("'websocket' never falls back; 'socketio' never tries WebSocket", async () => {
    const ws = setup({ transport: 'websocket' });
    ws.socket.open();
    await settle();
    ws.fail({ code: 1006, reason: '', failure: { kind: 'blocked' } });
    await ws.clock.advance(1000);
    expect(ws.dials.map((d) => d.transport)).toEqual(['websocket', 'websocket']);
    const io = setup({ transport: 'socketio' });
    io.socket.open();
    await settle();
    io.fail({ code: 1006, reason: '', failure: { kind: 'unreachable' } });
    await io.clock.advance(1000);
    expect(io.dials.map((d) => d.transport)).toEqual(['socketio', 'socketio']);
  });

  it('gives up on forbidden and on a final close code, and stops retrying after close()', async () => {
    const t = setup();
    t.socket.open();
    await settle();
    t.fail({ code: 1006, reason: '', failure: { kind: 'forbidden', message: 'origin not allowed' } });
    expect(t.events).toEqual(['close 1006 final', 'failed forbidden']);
    expect(t.clock.pending()).toEqual([]);

    const r = setup();
    r.socket.open();
    await settle();
    r.last().on.open('websocket');
    r.socket.markReady();
    r.last().on.close({ code: 4500, reason: 'replaced', opened: true });
    expect(r.events).toEqual(['transport websocket', 'close 4500 final', 'failed closed']);

    const c = setup();
    c.socket.open();
    await settle();
    c.last().on.open('websocket');
    expect(c.socket.send('x')).toBe(true);
    await c.socket.close();
    expect(c.last().wire.closed).toBe(true);
    expect(c.socket.send('y')).toBe(false);
    expect(c.clock.pending()).toEqual([]);
    expect(c.dials).toHaveLength(1);
  });

  it('gives up a WebSocket handshake nobody answers, as blocked (so auto falls back), instead of waiting for good', async () => {
    // Something that accepts connections and never says a word: a proxy holding the upgrade.
    const held = new Set<import('node:net').Socket>();
    const hole = createServer((c) => void held.add(c));
    await new Promise<void>((r) => hole.listen(0, '127.0.0.1', r));
    const port = (hole.address() as { port: number }).port;
    try {
      const closed = await new Promise<WireClose>((resolve) => {
        openWebSocket(WebSocket as unknown as SocketCtor, `http://127.0.0.1:${port}`, 't', {
          open: () => resolve({ code: 0, reason: 'opened?', opened: true }),
          frame: () => {},
          transport: () => {},
          close: resolve,
        }, 200);
      });
      expect(closed.opened).toBe(false);
      expect(closed.failure).toEqual({ kind: 'blocked' });
    } finally {
      for (const c of held) c.destroy();
      await new Promise((r) => hole.close(r));
    }
  });
});
