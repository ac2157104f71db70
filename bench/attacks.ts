// The abuse bench's frame attacks: hostile garbage, presence lookups of unknown users, a ping flood. Each stops by itself at `until`.
import { randomBytes, randomUUID } from 'node:crypto';
import type { AttackResult } from './abuse-results.js';
import { binaryFrames, median, SessionStats, sessionLoop, Tally, type User } from './attack-clients.js';
import type { AbuseSettings } from './settings.js';

/** What every attack gets: the gateways, the settings, its users (made at setup), and when to stop. */
export interface AttackContext {
  urls: string[];
  abuse: AbuseSettings;
  users: Partial<Record<'garbage' | 'backlogSender' | 'backlogReceiver' | 'presence' | 'devices' | 'peer' | 'flood' | 'victim', User>>;
  /** performance.now() at which the attack stops sending. */
  until: number;
  /** The server's default limits the attacks check against (platform/config.ts). */
  limits: { maxPayloadBytes: number; bodyTimeoutMs: number; loginFailuresFree: number; ratePerSecond: number; userRatePerSecond: number; userBurst: number };
}

export type AttackOutcome = Pick<AttackResult, 'summary' | 'ok' | 'findings'>;

/** Upper bounds whatever the phase length: frames per attack. */
const MAX_FRAMES = 5_000_000;

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (Number.isFinite(n) ? `${n.toFixed(0)} ms` : '-');

/**
 * Hostile frames, about a hundred a cycle: mostly small malformed or mutated ones, some huge
 * (a 240 KB array, deep nesting), now and then one that closes the socket (invalid UTF-8 →
 * 1007 from `ws`, a frame over the payload limit → 1009). `kinds` counts what went out.
 */
function hostileFrames(maxPayloadBytes: number, kinds: Tally): () => Buffer | string | null {
  const deep = '{"type":'.repeat(8000);
  const hugeArray = `[${'0,'.repeat(120_000)}0]`;
  const hugeUsers = JSON.stringify({ type: 'presence.subscribe', users: Array.from({ length: 12_000 }, (_, i) => `not-a-uuid-${i}`) });
  const oversize = `{"type":"ping","id":"${'x'.repeat(maxPayloadBytes)}"}`;
  const bare = ['null', '1', '-0', '1e999', 'true', '"ping"', '[]', '{}', '""', '"\\ud800"', '[{"type":"ping"}]', '{"type":"ping"', '{"__proto__":{"type":"ping"}}', '{"type":"ping","type":"send"}'];
  const odd: unknown[] = [null, -1, 0, 2 ** 53, 1e308, 'x'.repeat(100), '', [], {}, true, '__proto__', 'SEND', [randomUUID()]];
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;
  const base = (): Record<string, unknown> =>
    pick([
      { type: 'send', id: randomBytes(6).toString('hex'), to: randomUUID(), payloads: [{ device: randomUUID(), body: 'AAAA' }] },
      { type: 'group.send', id: randomBytes(6).toString('hex'), group: randomUUID(), body: 'AAAA' },
      { type: 'ack', conversationId: randomUUID(), seq: 1 },
      { type: 'read', conversationId: randomUUID(), seq: 1 },
      { type: 'typing', conversationId: randomUUID(), active: true },
      { type: 'presence.subscribe', users: [randomUUID()] },
      { type: 'ping', id: 'x' },
    ]);
  /** A valid frame with one field dropped, replaced, added or retyped; one in ten left valid (it reaches a handler with unknown ids). */
  const mutated = (): string => {
    const f = base();
    const keys = Object.keys(f);
    const r = Math.random();
    if (r < 0.2) delete f[pick(keys)];
    else if (r < 0.6) f[pick(keys)] = pick(odd);
    else if (r < 0.7) f[`extra${Math.floor(Math.random() * 10)}`] = pick(odd);
    else if (r < 0.9) f.type = pick(['SEND', 'send ', '', 7, null, ['send'], { type: 'send' }, 'ping\u0000']);
    return JSON.stringify(f);
  };
  const weighted: [string, number, () => Buffer | string][] = [
    ['null', 8, () => 'null'],
    ['bare', 12, () => pick(bare)],
    ['mutated', 50, mutated],
    ['binary', 10, () => {
      const b = randomBytes(64);
      binaryFrames.add(b);
      return b;
    }],
    ['deep', 10, () => deep],
    ['huge-array', 5, () => hugeArray],
    ['huge-users', 5, () => hugeUsers],
  ];
  const total = weighted.reduce((a, [, w]) => a + w, 0);
  let i = 0;
  return () => {
    if (++i > MAX_FRAMES) return null;
    if (i % 997 === 0) {
      kinds.add('invalid-utf8');
      return Buffer.from([0x7b, 0x22, 0x74, 0xff, 0xfe, 0xc3, 0x28, 0x7d]); // sent as a text frame
    }
    if (i % 1499 === 0) {
      kinds.add('oversize');
      return oversize;
    }
    let r = Math.random() * total;
    for (const [kind, w, make] of weighted) {
      if ((r -= w) < 0) {
        kinds.add(kind);
        return make();
      }
    }
    return 'null';
  };
}

/** 1. garbage: hostile frames from a few devices of one user, each as fast as its connection drains; reconnects when closed. */
export async function garbage(ctx: AttackContext): Promise<AttackOutcome> {
  const user = ctx.users.garbage!;
  const kinds = new Tally();
  const stats = new SessionStats();
  const next = hostileFrames(ctx.limits.maxPayloadBytes, kinds);
  await Promise.all(
    user.devices.map((d, i) => sessionLoop(ctx.urls[i % ctx.urls.length]!, d.token, ctx.until, stats, (s) => s.pump(next, ctx.until))),
  );
  const sent = [...kinds.counts.values()].reduce((a, n) => a + n, 0);
  const findings = stats.findings();
  return {
    summary:
      `${int(sent)} hostile frames (${kinds}) from ${user.devices.length} devices over ${stats.sessions} sessions; ` +
      `server closes: ${stats.closes}; replies: ${stats.replies}; session lifetime p50 ${ms(median(stats.lifetimes))}`,
    ok: findings.length === 0,
    findings,
  };
}

/**
 * 3. presence: batches of `presenceFrames` presence.subscribe frames, each naming 256 random
 * (unknown) users, pushed as fast as possible; after a batch, waits for its answers and pushes
 * the next; reconnects when closed, until the phase ends.
 */
export async function presence(ctx: AttackContext): Promise<AttackOutcome> {
  const device = ctx.users.presence!.devices[0]!;
  const batch = Array.from({ length: ctx.abuse.presenceFrames }, () =>
    JSON.stringify({ type: 'presence.subscribe', users: Array.from({ length: 256 }, () => randomUUID()) }),
  );
  const stats = new SessionStats();
  let frames = 0;
  await sessionLoop(ctx.urls[0]!, device.token, ctx.until, stats, async (s) => {
    while (s.open && performance.now() < ctx.until && frames < MAX_FRAMES) {
      let k = 0;
      const answered = () => s.received.get('error:not_found') + s.received.get('error:rate_limited') + s.received.get('error:limit_exceeded');
      const before = answered();
      await s.pump(() => (k < batch.length ? (frames++, batch[k++]!) : null), ctx.until);
      // Every frame is answered (not_found: no such contact, or rate_limited) unless the socket closes first.
      while (s.open && answered() - before < k && performance.now() < ctx.until) await new Promise((r) => setTimeout(r, 5));
    }
  });
  const accepted = stats.replies.get('error:not_found');
  const findings = stats.findings();
  for (const [kind, n] of stats.replies.counts) {
    if (!['error:not_found', 'error:rate_limited', 'ready', 'caught_up'].includes(kind)) findings.push(`unexpected reply ${kind} ×${n}`);
  }
  return {
    summary:
      `${int(frames)} presence.subscribe frames × 256 unknown users over ${stats.sessions} sessions: ${int(accepted)} looked up (not_found), ` +
      `${int(stats.replies.get('error:rate_limited'))} rate_limited; server closes: ${stats.closes}`,
    ok: findings.length === 0,
    findings,
  };
}

/**
 * 5. flood: one connection writing `ping` frames as fast as it drains; the server should close it
 * with 4001 soon after the refusals begin. Reconnects and floods again until the phase ends.
 */
export async function flood(ctx: AttackContext): Promise<AttackOutcome> {
  const device = ctx.users.flood!.devices[0]!;
  const stats = new SessionStats();
  /** Per session: ms to the server's close frame, pings written, answers before the close, the code (0: we closed it). */
  const first: { ms: number; written: number; refused: number; pongs: number; code: number }[] = [];
  const ping = '{"type":"ping"}';
  let written = 0;
  const started = performance.now();
  await sessionLoop(ctx.urls[0]!, device.token, ctx.until, stats, async (s) => {
    const t0 = performance.now();
    let mine = 0;
    await s.pump(() => (written < MAX_FRAMES ? (written++, mine++, ping) : null), ctx.until);
    s.finish();
    const code = await s.closed;
    first.push({ ms: s.closingAt - t0, written: mine, refused: s.received.get('error:rate_limited'), pongs: s.received.get('pong'), code: s.closedByUs ? 0 : code });
  });
  const closedBy = first.filter((f) => f.code !== 0);
  const f0 = first[0];
  const findings = stats.findings();
  if (closedBy.some((f) => f.code !== 4001)) findings.push(`flood sessions closed with ${[...new Set(closedBy.map((f) => f.code))].join(', ')}, not only 4001`);
  const rate = written / ((performance.now() - started) / 1000);
  return {
    summary:
      (f0
        ? `first session: ${f0.code === 0 ? 'not closed' : `closed ${f0.code}`} after ${ms(f0.ms)}, ` +
          `${int(f0.written)} pings written, ${int(f0.pongs)} pongs, ${int(f0.refused)} rate_limited before the close; `
        : '') +
      `${stats.sessions} upgrade attempts (${((1000 * stats.sessions) / (performance.now() - started)).toFixed(0)}/s; refused: ${stats.refused}), ` +
      `${closedBy.length} sessions closed by the server (${stats.closes}), p50 ${ms(median(closedBy.map((f) => f.ms)))} to the close ` +
      `and ${int(median(closedBy.map((f) => f.refused)))} rate_limited before it; ${int(written)} pings written (${int(rate)}/s)`,
    ok: closedBy.length > 0 && closedBy.every((f) => f.code === 4001),
    findings,
  };
}
