// The abuse bench's bystander process: two users chatting over plain `ws`, one message every interval alternately each way, timed send → deliver.
// Usage (bench/abuse.ts does this): node --import tsx bench/abuse-bystander.ts '<AbuseChildRequest as JSON>'. Commands on stdin:
// `start <phase>` starts sending; `stop <phase>` stops, waits for what is in flight, and prints a BystanderResult line.
// Exits when stdin closes (parent gone).
import { createInterface } from 'node:readline';
import WebSocket, { type RawData } from 'ws';
import type { AbuseChildRequest, BystanderResult } from './abuse-results.js';
import { parleyEndpoints } from './endpoints.js';
import type { Frame } from './pairs.js';
import { summarize } from './stats.js';

const request = JSON.parse(process.argv[2] ?? '{}') as AbuseChildRequest;
const log = (line: string) => process.stderr.write(`[bystander] ${line}\n`);
process.stdin.on('end', () => process.exit(1));

/** After `stop`, how long to wait for messages still on their way before calling them lost. */
const GRACE_MS = 10_000;
const ACK_DELAY_MS = 10;
const RECONNECT_MS = 250;
const SETUP_TIMEOUT_MS = 30_000;

/** The user and device a session token names (the claims platform/tokens.ts signs: `sub`, `did`). */
function claims(protocols: string[]): { userId: string; deviceId: string } {
  const token = protocols.find((p) => p.startsWith('bearer.'))!.slice('bearer.'.length);
  const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { sub: string; did: string };
  return { userId: payload.sub, deviceId: payload.did };
}

interface Phase {
  index: number;
  label: string;
  startedAt: number;
  lastSendAt: number;
  cpu0: NodeJS.CpuUsage;
  sent: number;
  delivered: number;
  duplicated: number;
  outOfOrder: number;
  late: number;
  skipped: number;
  latencies: number[];
  errors: Record<string, number>;
  closes: string[];
  /** The highest message number delivered per direction. */
  lastN: { a: number; b: number };
}


/** One user's socket: reconnects (same token) when the server closes it, acks like the SDK. */
class End {
  ws!: WebSocket;
  private readonly pendingAcks = new Map<string, number>();
  private ackTimer: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(
    readonly name: 'A' | 'B',
    private readonly url: string,
    private readonly protocols: string[],
  ) {}

  /** Connects; resolves once `caught_up` arrived. */
  connect(): Promise<void> {
    const ws = new WebSocket(this.url, this.protocols, { perMessageDeflate: false });
    this.ws = ws;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: no caught_up within ${SETUP_TIMEOUT_MS} ms`)), SETUP_TIMEOUT_MS);
      ws.on('message', (data: RawData) => {
        const at = performance.now();
        const f = JSON.parse((data as Buffer).toString('utf8')) as Frame;
        if (f.type === 'caught_up') {
          clearTimeout(timer);
          resolve();
        }
        this.onFrame(f, at);
      });
      ws.on('error', (err) => log(`${this.name}: socket error ${err.message}`));
      ws.on('close', (code, reason) => {
        clearTimeout(timer);
        reject(new Error(`${this.name}: closed ${code} during setup`));
        if (this.stopping) return;
        const what = `${this.name} ${code} ${reason.toString()}`.trim();
        log(`the server closed ${what}; reconnecting`);
        current?.closes.push(what);
        setTimeout(() => this.connect().catch((err: Error) => log(`reconnect failed: ${err.message}`)), RECONNECT_MS);
      });
    });
  }

  send(text: string): boolean {
    if (this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(text);
    return true;
  }

  close(): void {
    this.stopping = true;
    this.ws.close(1000, 'bench done');
  }

  private onFrame(f: Frame, at: number): void {
    if (f.type === 'msg') {
      delivered(f.id ?? '', at);
      if (f.conversationId !== undefined && f.seq !== undefined) this.queueAck(f.conversationId, f.seq);
    } else if (f.type === 'error' && current) {
      current.errors[f.code ?? '?'] = (current.errors[f.code ?? '?'] ?? 0) + 1;
      if (f.ref !== undefined) failed.add(f.ref);
    }
  }

  private queueAck(conversationId: string, seq: number): void {
    this.pendingAcks.set(conversationId, Math.max(seq, this.pendingAcks.get(conversationId) ?? 0));
    this.ackTimer ??= setTimeout(() => {
      this.ackTimer = undefined;
      if (this.ws.readyState !== WebSocket.OPEN) return; // the next connect resends what was not acked
      for (const [c, s] of this.pendingAcks) this.ws.send(JSON.stringify({ type: 'ack', conversationId: c, seq: s }));
      this.pendingAcks.clear();
    }, ACK_DELAY_MS);
  }
}

/** Send time by message id `q<phase><a|b><n>` (a: A → B, b: B → A). */
const sentAt = new Map<string, number>();
const seen = new Set<string>();
const failed = new Set<string>();
let current: Phase | null = null;
let phases = 0;
/** Duplicates and late deliveries between phases: counted in the next one. */
const between = { duplicated: 0, late: 0 };

function delivered(id: string, at: number): void {
  const m = /^q(\d+)([ab])(\d+)$/.exec(id);
  if (!m) return;
  const p = current;
  const [phase, dir, n] = [Number(m[1]), m[2] as 'a' | 'b', Number(m[3])];
  if (seen.has(id)) {
    (p ?? between).duplicated++;
    return;
  }
  seen.add(id);
  if (!p || phase !== p.index) {
    (p ?? between).late++;
    return;
  }
  p.delivered++;
  p.latencies.push(at - sentAt.get(id)!);
  if (n < p.lastN[dir]) p.outOfOrder++;
  p.lastN[dir] = Math.max(p.lastN[dir], n);
}

async function main(): Promise<void> {
  const { urls, settings } = request;
  const abuse = settings.abuse;
  // One pair made exactly as the throughput bench makes its pairs: two users registered through
  // the SDK, a Double Ratchet body encrypted once for the recipient's device, the sender on the
  // first gateway and the recipient on the next (in a cluster every message crosses gateways).
  const [pair] = await parleyEndpoints(urls, { ...settings, pairs: 1 }, log);
  if (!pair) throw new Error('no bystander pair');
  const [s, r] = [pair.sender, pair.recipient];
  if (s.kind !== 'ws' || r.kind !== 'ws') throw new Error('the bystander speaks plain WebSocket');
  const ends = { A: new End('A', s.url, s.protocols), B: new End('B', r.url, r.protocols) };
  // B → A reuses that body (the server never decrypts) for A's only device, which is all B must
  // encrypt for: A has no other device and B has none besides the sending one.
  const aToB = JSON.parse(`${pair.frameHead}x${pair.frameTail}`) as { payloads: { body: string }[] };
  const a = claims(s.protocols);
  const tails = { a: pair.frameTail, b: '",' + JSON.stringify({ to: a.userId, payloads: [{ device: a.deviceId, body: aToB.payloads[0]!.body }] }).slice(1) };
  await Promise.all([ends.A.connect(), ends.B.connect()]);
  console.log(JSON.stringify({ bystanderReady: true, frameBytes: Buffer.byteLength(`{"type":"send","id":"q0a0${tails.a}`) }));

  let ticker: NodeJS.Timeout | undefined;
  const start = (label: string) => {
    const p: Phase = {
      index: ++phases,
      label,
      startedAt: performance.now(),
      lastSendAt: performance.now(),
      cpu0: process.cpuUsage(),
      sent: 0,
      delivered: 0,
      duplicated: between.duplicated,
      outOfOrder: 0,
      late: between.late,
      skipped: 0,
      latencies: [],
      errors: {},
      closes: [],
      lastN: { a: -1, b: -1 },
    };
    current = p;
    between.duplicated = between.late = 0;
    let k = 0;
    let due = performance.now();
    const tick = () => {
      const dir = k % 2 === 0 ? 'a' : 'b';
      const id = `q${p.index}${dir}${k >> 1}`;
      const t0 = performance.now();
      if ((dir === 'a' ? ends.A : ends.B).send(`{"type":"send","id":"${id}${tails[dir]}`)) {
        sentAt.set(id, t0);
        p.sent++;
        p.lastSendAt = t0;
      } else p.skipped++;
      k++;
      // The next slot, never a burst to catch up after the event loop was held up.
      due = Math.max(due + abuse.intervalMs, performance.now());
      ticker = setTimeout(tick, due - performance.now());
    };
    tick();
  };
  const stop = async (label: string): Promise<BystanderResult> => {
    const p = current;
    if (!p || p.label !== label) throw new Error(`stop ${label}: the phase running is ${p?.label ?? 'none'}`);
    clearTimeout(ticker);
    const cpu = process.cpuUsage(p.cpu0);
    const wall = performance.now() - p.startedAt;
    const deadline = performance.now() + GRACE_MS;
    const waiting = () => [...sentAt.keys()].filter((id) => id.startsWith(`q${p.index}`) && !seen.has(id) && !failed.has(id)).length;
    while (waiting() > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    current = null;
    return {
      phase: label,
      seconds: (p.lastSendAt - p.startedAt) / 1000,
      sent: p.sent,
      delivered: p.delivered,
      lost: p.sent - p.delivered,
      duplicated: p.duplicated,
      outOfOrder: p.outOfOrder,
      late: p.late,
      skipped: p.skipped,
      latency: summarize(p.latencies),
      errors: p.errors,
      closes: p.closes,
      cpu: (cpu.user + cpu.system) / 1000 / wall,
    };
  };

  for await (const line of createInterface({ input: process.stdin })) {
    const [cmd, label] = line.trim().split(' ');
    if (cmd === 'start' && label) start(label);
    else if (cmd === 'stop' && label) console.log(JSON.stringify({ stopped: label, result: await stop(label) }));
  }
  ends.A.close();
  ends.B.close();
}

main().catch((err: unknown) => {
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
