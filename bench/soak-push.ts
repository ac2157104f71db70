// The soak's devices on the wire (plain `ws`, acks like the SDK's) and its offline recipients: a local Web Push service, push targets registered through the SDK, and short periodic visits.
import { createClient } from '../client-sdk/index.js';
import { PROTOCOL, WS_PATH } from '../protocol/frames.js';
import { type PushService, startPushService } from '../test/support/push-service.js';
import { type BenchDevice, mapLimit } from './accounts.js';
import { openEnd } from './pair-sockets.js';
import type { Frame } from './pairs.js';

/** The frames the soak looks at: Frame, plus the end of an `expired` range (acknowledged like a message). */
export interface SoakFrame extends Frame {
  to?: number;
}

/** Acks are coalesced per conversation for this long, as the SDK does. */
const ACK_DELAY_MS = 10;
const SETUP_TIMEOUT_MS = 30_000;
/** Registrations at once: each costs the server two scrypt hashes. */
const SETUP_CONCURRENCY = 8;
/** How long a visiting device stays once it caught up: an app opened briefly (its acks land meanwhile). */
const VISIT_MS = 2_000;

/** A connected device: writes frames; closing sends the acks still pending first. */
export interface DeviceLink {
  send(text: string): void;
  close(): void;
}

/**
 * Connects as a device over the WebSocket endpoint and resolves once the server said
 * `caught_up` (its sync is written). Every `msg` and `expired` frame is acknowledged (the
 * highest seq per conversation, coalesced); every frame goes to `onFrame`, and a close after
 * setup to `onClose`.
 */
export function connectDevice(url: string, token: string, onFrame: (f: SoakFrame) => void, onClose: (code: number, reason: string) => void = () => {}): Promise<DeviceLink> {
  const ws = Object.assign(new URL(WS_PATH, url), { protocol: 'ws:' }).toString();
  const socket = openEnd({ kind: 'ws', url: ws, protocols: [PROTOCOL, `bearer.${token}`] });
  const acks = new Map<string, number>();
  let timer: NodeJS.Timeout | undefined;
  let ready = false;
  let closing = false;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (socket.open) for (const [conversationId, seq] of acks) socket.send(JSON.stringify({ type: 'ack', conversationId, seq }));
    acks.clear();
  };
  const link: DeviceLink = {
    send: (text) => socket.send(text),
    close: () => {
      closing = true;
      flush();
      socket.close();
    },
  };
  return new Promise<DeviceLink>((resolve, reject) => {
    const setup = setTimeout(() => reject(new Error(`no caught_up within ${SETUP_TIMEOUT_MS} ms`)), SETUP_TIMEOUT_MS);
    socket.onText((text) => {
      let f: SoakFrame;
      try {
        f = JSON.parse(text) as SoakFrame;
      } catch {
        return; // the server writes JSON only
      }
      const ackable = f.type === 'msg' ? f.seq : f.type === 'expired' ? f.to : undefined;
      if (ackable !== undefined && f.conversationId !== undefined) {
        acks.set(f.conversationId, Math.max(ackable, acks.get(f.conversationId) ?? 0));
        timer ??= setTimeout(flush, ACK_DELAY_MS);
      }
      onFrame(f);
      if (f.type === 'caught_up' && !ready) {
        ready = true;
        clearTimeout(setup);
        resolve(link);
      }
    });
    socket.onError((err) => {
      clearTimeout(setup);
      reject(err);
    });
    socket.onClose((code, reason) => {
      clearTimeout(setup);
      clearTimeout(timer);
      if (!ready) reject(new Error(`closed during setup (${code} ${reason})`));
      else if (!closing) onClose(code, reason);
    });
  });
}

/** The offline recipients of one run and the push service their subscriptions point at. */
export interface OfflineRecipients {
  devices: BenchDevice[];
  service: PushService;
}

/**
 * Starts a local RFC 8030 push service (test/support/push-service.ts: it checks VAPID and
 * decrypts every RFC 8291 payload) and registers one user per name through the SDK, each with
 * a fresh subscription at that service as its push target (`client.registerPush`). The devices
 * never connect here; the SDK clients are closed and their tokens kept for the visits.
 */
export async function offlineRecipients(url: string, names: readonly string[]): Promise<OfflineRecipients> {
  const service = await startPushService();
  try {
    const devices = await mapLimit(names, SETUP_CONCURRENCY, async (username) => {
      const client = createClient({ url, username, password: `bench-password-${username}`, deviceName: 'bench-offline' });
      await client.register();
      await client.registerPush({ kind: 'webpush', ...service.subscribe() });
      const { accessToken: token, deviceId } = client;
      await client.close();
      if (typeof token !== 'string' || !deviceId) throw new Error('the SDK logged in but exposed no token or device id');
      return { username, userId: client.userId, deviceId, token };
    });
    return { devices, service };
  } catch (err) {
    await service.close();
    throw err;
  }
}

/**
 * The offline devices' visits: every `wakeMs / devices` ms the next device in turn connects,
 * syncs what waited for it, acknowledges it and stays VISIT_MS, then leaves; so each device
 * visits once per `wakeMs`, staggered, as phones that open the app now and then. Its rows can
 * then be purged (policy acked); between visits it gets pushes.
 */
export class Visits {
  visits = 0;
  /** Messages (and expired ranges) the visits synced. */
  synced = 0;
  failures = 0;
  readonly errorSamples: string[] = [];
  private timer: NodeJS.Timeout | undefined;
  private next = 0;
  private readonly inProgress = new Map<number, Promise<void>>();

  constructor(
    private readonly url: string,
    private readonly devices: readonly BenchDevice[],
    private readonly wakeMs: number,
  ) {}

  start(): void {
    if (this.devices.length === 0 || this.wakeMs === 0) return;
    this.timer = setInterval(() => this.visitNext(), this.wakeMs / this.devices.length);
  }

  /** Stops starting visits and waits for those in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all(this.inProgress.values());
  }

  private visitNext(): void {
    const i = this.next;
    this.next = (this.next + 1) % this.devices.length;
    if (this.inProgress.has(i)) return; // still there from its last turn (wakeMs shorter than a visit)
    const visit = this.visit(this.devices[i]!)
      .catch((err: unknown) => {
        this.failures++;
        if (this.errorSamples.length < 3) this.errorSamples.push(err instanceof Error ? err.message : String(err));
      })
      .finally(() => this.inProgress.delete(i));
    this.inProgress.set(i, visit);
  }

  private async visit(device: BenchDevice): Promise<void> {
    const link = await connectDevice(this.url, device.token, (f) => {
      if (f.type === 'msg' || f.type === 'expired') this.synced++;
    });
    this.visits++;
    await new Promise((r) => setTimeout(r, VISIT_MS));
    link.close();
  }
}
