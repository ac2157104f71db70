// The SDK's message encryption: which devices a send is encrypted to (trusted ones, sender keys for groups) and what a received message opens to.
import { fromB64, toB64 } from '../protocol/bytes.js';
import type { MsgFrame } from '../protocol/frames.js';
import type { ListedDevice } from '../protocol/trust.js';
import type { Clock } from './clock.js';
import { type Decoded, decodeContent } from './content.js';
import { senderKeyRequest, type SessionManager } from './e2e.session-manager.js';
import { EMPTY_REASON, emptyBody, INNER } from './e2e.wire.js';
import type { GroupDirectory, SenderKeyTracker } from './groups.js';
import { ParleyError } from './http.js';
import type { OutboxEntry, SendFrame } from './outbox.js';
import type { TrustManager } from './trust.js';

export interface EnvelopesOptions {
  sessions: SessionManager;
  trust: TrustManager;
  groups: GroupDirectory;
  senderKeys: SenderKeyTracker;
  /** A user's listed devices (cached by the client). */
  devicesOf(userId: string): Promise<ListedDevice[]>;
  /** This user and device. */
  me(): { userId: string; deviceId: string };
  /** Queues a control message (inner kind CONTROL) to one device of a user. */
  sendControl(userId: string, deviceId: string, payload: Uint8Array): void;
  clock: Clock;
}

/** Seals the outbox's sends and opens the inbox's messages, over the device's sessions and trust decisions. */
export class Envelopes {
  private readonly keyRequests = new Map<string, number>();

  constructor(private readonly o: EnvelopesOptions) {}

  /** The frame for a send: per trusted device for a user, or once under our sender key for a group. */
  async seal(entry: OutboxEntry): Promise<SendFrame> {
    if (entry.group) return this.sealForGroup(entry);
    const me = this.o.me();
    const [theirs, mine] = await Promise.all([this.o.devicesOf(entry.to), this.o.devicesOf(me.userId)]);
    const [t, m] = [await this.o.trust.devices(entry.to, theirs), await this.o.trust.devices(me.userId, mine)];
    if (t.blocked) throw new ParleyError('identity_unverified', "this verified contact's identity changed: accept it (acceptIdentity) before sending");
    // To ourselves (our other devices only): each device once.
    const self = entry.to === me.userId;
    const payloads = await this.o.sessions.encryptForDevices(
      [...(self ? [] : [{ userId: entry.to, devices: t.trusted }]), { userId: me.userId, devices: m.trusted }],
      entry.controlFor ? INNER.CONTROL : INNER.CONTENT,
      entry.plaintext,
      entry.controlFor ?? entry.forDevice,
    );
    // The server wants a body per listed device: devices nobody we trust vouched for get an empty one.
    for (const d of self ? m.untrusted : [...t.untrusted, ...m.untrusted]) {
      if (d.id !== me.deviceId) payloads.push({ device: d.id, body: toB64(emptyBody(EMPTY_REASON.UNTRUSTED)) });
    }
    return { type: 'send', id: entry.id, to: entry.to, payloads };
  }

  /** The server acknowledged a group send: the devices it carried our sender key to hold it now. */
  acknowledged(entry: OutboxEntry): void {
    if (entry.group && entry.keyedDevices && entry.keyId !== undefined) this.o.senderKeys.delivered(entry.to, entry.keyId, entry.keyedDevices);
  }

  /**
   * A message's content (or a conversation control), or null when it carried something the SDK
   * handles itself (session_reset, sender keys, a replay) or a content type it does not know.
   */
  async open(f: MsgFrame): Promise<Decoded | null> {
    const from = f.fromDevice!;
    if (f.groupId) {
      // Our copy of the sender's key distribution travels with the message, over our pairwise
      // session; it must be for this group.
      if (f.key) await this.onSenderKey(await this.o.sessions.decrypt(f.from, from, f.key, f.groupId));
      try {
        // The sender is who our session with that device belongs to, never the server's label.
        return decodeContent(await this.o.sessions.groupDecrypt(f.groupId, from, fromB64(f.body), f.from));
      } catch (err) {
        if (err instanceof ParleyError && err.code === 'unknown_sender_key') this.requestSenderKey(f.groupId, f.from, from);
        throw err;
      }
    }
    const r = await this.o.sessions.decrypt(f.from, from, f.body);
    if (r.kind === 'sender_key_request') this.o.senderKeys.forget(r.groupId, from); // our next group message carries it again
    await this.onSenderKey(r);
    return r.kind === 'content' ? decodeContent(r.payload) : null;
  }

  /**
   * Other users left the group or were removed: their keys are forgotten (their later messages
   * are refused), and ours replaced, naming their devices so that members the server did not
   * tell forget them too; the next message distributes the new key to the remaining members.
   */
  async departed(groupId: string, users: readonly string[]): Promise<void> {
    try {
      const devices = await this.o.sessions.senderKeyDevicesOf(groupId, [...users]);
      await this.o.sessions.rotateSenderKey(groupId, devices);
    } finally {
      this.o.senderKeys.forget(groupId);
    }
  }

  /**
   * A group message: the content encrypted once with our sender key for the group (signed),
   * plus our sender key distribution, over the pairwise sessions, for each member device that
   * does not hold it yet. `devicesHash` lets the server refuse it if the member devices
   * changed since we listed them.
   */
  private async sealForGroup(entry: OutboxEntry): Promise<SendFrame> {
    const { sessions, senderKeys } = this.o;
    const groupId = entry.to;
    const g = await this.o.groups.memberDevices(groupId);
    const me = this.o.me().deviceId;
    // Only devices their users vouch for (as we trust them) get our key; blocked contacts get nothing.
    const members = await Promise.all(
      g.members.map(async (m) => {
        const t = await this.o.trust.devices(m.userId, m.devices);
        return { userId: m.userId, devices: t.blocked ? [] : t.trusted.filter((d) => d.id !== me) };
      }),
    );
    const current = new Set(members.flatMap((m) => m.devices.map((d) => d.id)));
    // A device that holds our key and is no longer a trusted member device (removed, left, or
    // its user left): a new key, whose distribution tells everyone to forget that device's.
    const departed = senderKeys.holding(groupId).filter((d) => !current.has(d));
    if (departed.length > 0) {
      await sessions.rotateSenderKey(groupId, departed);
      senderKeys.forget(groupId);
    }
    const keyId = await sessions.ownSenderKeyId(groupId);
    const need = new Set(senderKeys.missing(groupId, keyId, [...current]));
    let payloads: { device: string; body: string }[] = [];
    if (need.size > 0) {
      const recipients = members.map((m) => ({ userId: m.userId, devices: m.devices.filter((d) => need.has(d.id)) })).filter((r) => r.devices.length > 0);
      payloads = await sessions.encryptForDevices(recipients, INNER.SENDER_KEY, await sessions.senderKeyDistribution(groupId));
    }
    const body = toB64(await sessions.groupEncrypt(groupId, entry.plaintext));
    entry.keyedDevices = [...need];
    entry.keyId = keyId;
    return { type: 'group.send', id: entry.id, group: groupId, body, ...(payloads.length > 0 ? { payloads } : {}), devicesHash: g.devicesHash };
  }

  /**
   * A member's new sender key named devices that left the group (the server may not have told
   * us): their keys are forgotten already; ours is replaced if one of them held it.
   */
  private async onSenderKey(r: Awaited<ReturnType<SessionManager['decrypt']>>): Promise<void> {
    if (r.kind !== 'sender_key' || r.excluded.length === 0) return;
    const held = this.o.senderKeys.holding(r.groupId);
    if (!r.excluded.some((d) => held.includes(d))) return;
    await this.o.sessions.rotateSenderKey(r.groupId, r.excluded);
    this.o.senderKeys.forget(r.groupId);
    this.o.groups.forget(r.groupId);
  }

  /** Asks a member's device for its sender key (at most once a minute per device and group). */
  private requestSenderKey(groupId: string, userId: string, deviceId: string): void {
    const k = `${groupId}|${deviceId}`;
    const last = this.keyRequests.get(k);
    if (last !== undefined && this.o.clock.now() - last < 60_000) return;
    this.keyRequests.set(k, this.o.clock.now());
    this.o.sendControl(userId, deviceId, senderKeyRequest(groupId));
  }
}
