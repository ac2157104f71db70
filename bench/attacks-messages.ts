// The abuse bench's message attacks: a large backlog drained at connect, and one user's six devices sending as fast as allowed (or faster).
import { randomBytes } from 'node:crypto';
import type { RawData } from 'ws';
import { frameCost } from '../gateway/frames.js';
import { AttackSocket, type Device, SessionStats, sessionLoop, Tally } from './attack-clients.js';
import type { AttackContext, AttackOutcome } from './attacks.js';

/** Sends in flight per connection, as the SDK's outbox would pipeline them (the SDK allows 64). */
const BACKLOG_WINDOW = 16;
const DEVICE_WINDOW = 8;
/** The backlog attack fills and drains once; it may run this much past the phase before it gives up. */
const BACKLOG_OVERRUN_MS = 30_000;
/** The greedy devices ack what their sibling devices send them this often (each ack costs them budget). */
const DEVICE_ACK_MS = 500;
const PEER_ACK_MS = 10;
/** The obeying devices wait this long after a close before reconnecting, as the SDK's first backoff step does (docs/protocol.md §10). */
const HONEST_BACKOFF_MS = 250;

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const secs = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const base64 = (chars: number) => randomBytes(Math.ceil((chars * 3) / 4) + 3).toString('base64').replace(/=/g, '').slice(0, chars);

/** conversationId and seq of a `msg` frame from its first bytes (the server writes type, id, conversationId, seq first). */
function position(data: RawData): { conversationId: string; seq: number } | null {
  const m = /"conversationId":"([0-9a-f-]{36})","seq":(\d+)/.exec((data as Buffer).toString('latin1', 0, 300));
  return m ? { conversationId: m[1]!, seq: Number(m[2]) } : null;
}

/** Acks the highest seq per conversation every `everyMs`, like the SDK (10 ms) or lazier. */
function acker(s: AttackSocket, everyMs: number): (data: RawData) => void {
  const pending = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  return (data) => {
    const p = position(data);
    if (!p) return;
    pending.set(p.conversationId, Math.max(p.seq, pending.get(p.conversationId) ?? 0));
    timer ??= setTimeout(() => {
      timer = undefined;
      if (!s.open) return;
      for (const [conversationId, seq] of pending) s.ws.send(JSON.stringify({ type: 'ack', conversationId, seq }));
      pending.clear();
    }, everyMs);
  };
}

/**
 * Sends messages (ids from `ids`, null when there are no more) with up to `maxWindow` in
 * flight, obeying every `rate_limited`: nothing more on this connection until `retryAfterMs`
 * has passed, then the refused id again, and the window starts again from one and grows by one
 * per accepted send (so a refusal is not followed by a burst the bucket cannot take). Resolves
 * when all are answered, the socket closed, or `until` passed. Counts answers into `answers`.
 */
function obeyingSender(
  s: AttackSocket,
  frame: (id: string) => string,
  ids: () => string | null,
  maxWindow: number,
  until: number,
  answers: Tally,
  onSent?: (id: string) => void,
): Promise<void> {
  return new Promise((done) => {
    const resend: string[] = [];
    let window = maxWindow;
    let inFlight = 0;
    let pausedUntil = 0;
    let timer: NodeJS.Timeout | undefined;
    let exhausted = false;
    const pump = () => {
      if (!s.open || performance.now() >= until) return done();
      const wait = pausedUntil - performance.now();
      if (wait > 0) {
        timer ??= setTimeout(() => {
          timer = undefined;
          pump();
        }, wait);
        return;
      }
      while (inFlight < window) {
        const id = resend.shift() ?? (exhausted ? null : ids());
        if (id === null) {
          exhausted = true;
          if (inFlight === 0) done();
          return;
        }
        s.ws.send(frame(id));
        inFlight++;
      }
    };
    const previous = s.onFrame;
    s.onFrame = (kind, data) => {
      previous?.(kind, data);
      if (kind === 'sent') {
        answers.add('sent');
        if (onSent) onSent(/"id":"([^"]*)"/.exec((data as Buffer).toString('latin1', 0, 120))?.[1] ?? '');
        window = Math.min(maxWindow, window + 1);
      } else if (kind.startsWith('error:')) {
        const e = JSON.parse(data.toString()) as { ref?: string; retryAfterMs?: number };
        if (e.ref === 'ack') return answers.add(`ack ${kind}`); // not one of our sends
        if (kind === 'error:rate_limited') {
          resend.push(e.ref ?? '');
          window = 1;
          pausedUntil = Math.max(pausedUntil, performance.now() + (e.retryAfterMs ?? 100));
          answers.add('rate_limited');
        } else answers.add(kind);
      } else return;
      inFlight--;
      pump();
    };
    void s.closed.then(() => done());
    pump();
  });
}

/**
 * 2. backlog: a user who is offline receives `backlogMessages` messages of `backlogBodyChars`
 * base64 characters (the sender obeys the limits), then connects and drains them, acking like
 * the SDK; reports the time to `caught_up`.
 */
export async function backlog(ctx: AttackContext): Promise<AttackOutcome> {
  const sender = ctx.users.backlogSender!.devices[0]!;
  const receiver = ctx.users.backlogReceiver!.devices[0]!;
  const total = ctx.abuse.backlogMessages;
  const hardStop = ctx.until + BACKLOG_OVERRUN_MS;
  const tail = `","to":"${receiver.userId}","payloads":[{"device":"${receiver.deviceId}","body":"${base64(ctx.abuse.backlogBodyChars)}"}]}`;
  const findings: string[] = [];

  // The sender behaves like the SDK: a window of sends, every retryAfterMs obeyed, and after a
  // close it reconnects (250 ms later) and resends what was not acknowledged, with the same ids.
  const t0 = performance.now();
  const pending = new Set(Array.from({ length: total }, (_, k) => `bl${k}`));
  const answers = new Tally();
  const stats = new SessionStats();
  await sessionLoop(
    ctx.urls[0]!,
    sender.token,
    hardStop,
    stats,
    async (s) => {
      const queue = [...pending];
      let k = 0;
      await obeyingSender(s, (id) => `{"type":"send","id":"${id}${tail}`, () => (k < queue.length ? queue[k++]! : null), BACKLOG_WINDOW, hardStop, answers, (id) => pending.delete(id));
    },
    HONEST_BACKOFF_MS,
    () => pending.size === 0,
  );
  const fillMs = performance.now() - t0;
  const stored = total - pending.size;
  findings.push(...stats.findings());
  if (pending.size > 0) findings.push(`only ${stored} of ${total} backlog messages were stored (${answers}) before the attack gave up`);
  if (stats.closes.counts.size > 0) {
    findings.push(
      `the sender, which waited out every retryAfterMs, was closed by the server: ${stats.closes}` +
        (stats.closes.get('4001') > 0 ? ' (flood: its refusals outran the allowance although it obeyed each wait)' : ''),
    );
  }

  const t1 = performance.now();
  const r = new AttackSocket(ctx.urls[1 % ctx.urls.length]!, receiver.token);
  let readyAt = 0;
  let caughtUpAt = 0;
  let got = 0;
  let bytes = 0;
  const ack = acker(r, PEER_ACK_MS);
  const caughtUp = new Promise<void>((resolve) => {
    r.onFrame = (kind, data) => {
      if (kind === 'ready') readyAt = performance.now();
      else if (kind === 'msg') {
        got++;
        bytes += (data as Buffer).length;
        ack(data);
      } else if (kind === 'caught_up') {
        caughtUpAt = performance.now();
        resolve();
      }
    };
    void r.closed.then(() => resolve());
    setTimeout(resolve, Math.max(0, hardStop - performance.now()));
  });
  await caughtUp;
  await new Promise((res) => setTimeout(res, 2 * PEER_ACK_MS)); // the last ack leaves
  const closedEarly = !r.open;
  r.close();
  const code = await r.closed;
  if (closedEarly) findings.push(`the receiver's socket was closed by the server (${code} ${r.closeReason}) during the drain`);
  if (caughtUpAt > 0 && got !== stored) findings.push(`${got} messages drained before caught_up, ${stored} stored`);
  return {
    summary:
      `fill: ${stored}/${total} messages of ${int(ctx.abuse.backlogBodyChars)} base64 chars stored in ${secs(fillMs)} over ${stats.sessions} session(s) ` +
      `(${answers.get('rate_limited')} rate_limited, each waited out; server closes: ${stats.closes}); ` +
      `drain: ready after ${readyAt ? secs(readyAt - t1) : 'never'}, caught_up ${caughtUpAt ? `reached after ${secs(caughtUpAt - t1)}` : 'NOT reached'} ` +
      `with ${got} messages (${(bytes / 2 ** 20).toFixed(1)} MiB)`,
    ok: caughtUpAt > 0 && got === total && stats.closes.counts.size === 0,
    findings,
  };
}

/**
 * 4. devices: one user's 6 devices (the cap) each sending valid sends to a peer, encrypted (as
 * far as the server can tell) for exactly the right devices: the peer's one and the 5 siblings.
 * `obey`: a window of 8 and every `retryAfterMs` honoured (greedy but within the rules); else
 * the variant that ignores refusals and writes as fast as the socket drains, reconnecting when closed.
 */
export async function devices(ctx: AttackContext, obey: boolean): Promise<AttackOutcome> {
  const user = ctx.users.devices!;
  const peer = ctx.users.peer!.devices[0]!;
  const body = base64(256);
  const tag = obey ? 'o' : 'i';
  const tails = new Map<Device, string>(
    user.devices.map((d) => {
      const targets = [peer.deviceId, ...user.devices.filter((x) => x !== d).map((x) => x.deviceId)];
      return [d, `","to":"${peer.userId}","payloads":${JSON.stringify(targets.map((device) => ({ device, body })))}}`];
    }),
  );

  const p = new AttackSocket(ctx.urls[0]!, peer.token);
  if (!(await p.opened)) return { summary: `the peer could not connect: ${p.refused}`, ok: false, findings: [`peer upgrade: ${p.refused}`] };
  const peerAck = acker(p, PEER_ACK_MS);
  // Distinct messages of this phase (a resync may bring an earlier phase's unacknowledged tail again).
  const reached = new Set<string>();
  p.onFrame = (kind, data) => {
    if (kind !== 'msg') return;
    const id = /^\{"type":"msg","id":"([^"]*)"/.exec((data as Buffer).toString('latin1', 0, 100))?.[1];
    if (id?.startsWith(tag)) reached.add(id);
    peerAck(data);
  };

  const stats = new SessionStats();
  const answers = new Tally();
  let written = 0;
  const started = performance.now();
  await Promise.all(
    user.devices.map((d, i) => {
      let n = 0;
      const session = randomBytes(3).toString('hex');
      const frame = (id: string) => `{"type":"send","id":"${id}${tails.get(d)}`;
      return sessionLoop(ctx.urls[i % ctx.urls.length]!, d.token, ctx.until, stats, async (s) => {
        if (obey) {
          const ack = acker(s, DEVICE_ACK_MS);
          s.onFrame = (kind, data) => kind === 'msg' && ack(data);
          await obeyingSender(s, frame, () => (written++, `${tag}${session}d${i}n${n++}`), DEVICE_WINDOW, ctx.until, answers);
        } else {
          await s.pump(() => (written++, frame(`${tag}${session}d${i}n${n++}`)), ctx.until, 64 * 1024);
        }
      }, obey ? HONEST_BACKOFF_MS : 0);
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const delivered = reached.size;
  await new Promise((r) => setTimeout(r, 2 * PEER_ACK_MS)); // the peer's last ack leaves
  p.close();
  // The ignoring variant rarely sees its `sent` answers (the server closes the socket first): count what reached the peer.
  const acknowledged = obey ? answers.get('sent') : stats.replies.get('sent');
  const refused = obey ? answers.get('rate_limited') : stats.replies.get('error:rate_limited');
  const other = [...(obey ? answers : stats.replies).counts].filter(([k]) => k.startsWith('error:') && k !== 'error:rate_limited');
  const findings = stats.findings();
  if (other.length > 0) findings.push(`error frames other than rate_limited: ${other.map(([k, v]) => `${k}×${v}`).join(' ')}`);
  const floods = stats.closes.get('4001');
  // What the per-user budget lets through: its burst plus its rate over the phase, per gateway
  // the devices are spread over (each gateway keeps its own bucket), at the cost of one send.
  const cost = frameCost({ type: 'send', id: 'x', to: peer.userId, payloads: user.devices.map((d) => ({ device: d.deviceId, body })) });
  const gateways = Math.min(ctx.urls.length, user.devices.length);
  const bound = Math.floor((gateways * (ctx.limits.userBurst + ctx.limits.userRatePerSecond * seconds)) / cost);
  if (delivered > bound) {
    findings.push(
      `the peer received ${int(delivered)} messages, more than the per-user budget allows (${int(bound)}: burst ${ctx.limits.userBurst} + ` +
        `${ctx.limits.userRatePerSecond}/s × ${seconds.toFixed(1)} s, ÷ cost ${cost}, × ${gateways} gateway(s)): the user's bucket starts full again ` +
        `whenever all of the user's connections on a gateway have closed at once (after flood closes), so reconnecting buys a fresh burst`,
    );
  }
  if (obey && floods > 0) {
    findings.push(
      `${floods} flood close(s) (4001) of devices that waited out every retryAfterMs (${DEVICE_WINDOW} sends in flight, back to 1 after each refusal): ` +
        `${int(refused)} refusals in ${seconds.toFixed(1)} s over ${user.devices.length} devices, more than the refusal allowance refills (a tenth of WS_RATE_PER_SECOND: ${ctx.limits.ratePerSecond / 10}/s per connection)`,
    );
  }
  return {
    summary:
      `${user.devices.length} devices × ${user.devices.length} payloads: ${int(written)} new sends written, ${int(acknowledged)} acknowledged (sent), ` +
      `the peer received ${int(delivered)} (${int(delivered / seconds)}/s); ${int(refused)} rate_limited${obey ? ' (each waited out)' : ' (ignored)'}` +
      `${obey ? `, acks: ${answers.get('ack error:rate_limited')} refused` : ''}; server closes: ${stats.closes} over ${stats.sessions} sessions`,
    ok: (obey ? floods === 0 && other.length === 0 : floods > 0) && delivered <= bound,
    findings,
  };
}
