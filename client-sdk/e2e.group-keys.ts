// This device's Sender Keys in the key store: its own per group, and the ones other members distributed to it.
import {
  createSenderKey,
  receiveSenderKey,
  senderKeyDecrypt,
  senderKeyDistribution,
  senderKeyEncrypt,
  senderKeyIdOf,
  type SenderKeyState,
} from './e2e.sender-keys.js';
import type { E2eStore, StoreTx } from './e2e.store.js';
import { ParleyError } from './http.js';

/** Sender keys kept per (group, sender device): the current one and a few rotated ones, for late messages. */
export const SENDER_KEYS_KEPT = 5;

/**
 * Own keys are stored under our own device id. A distribution for a key id we already hold is
 * ignored, so a replayed distribution cannot wind a chain back. Callers serialize calls.
 */
export class GroupKeys {
  constructor(private readonly store: E2eStore) {}

  /** The distribution message of our current sender key in the group (created on first use). */
  async distribution(groupId: string, myDeviceId: string): Promise<Uint8Array> {
    return senderKeyDistribution(await this.own(groupId, myDeviceId));
  }

  /** Replaces our sender key (after a member left): returns the new distribution, for the remaining members only. */
  async rotate(groupId: string, myDeviceId: string): Promise<Uint8Array> {
    const fresh = createSenderKey(groupId);
    await this.store.begin().putSenderKeys(groupId, myDeviceId, [fresh]).commit();
    return senderKeyDistribution(fresh);
  }

  async encrypt(groupId: string, myDeviceId: string, plaintext: Uint8Array): Promise<Uint8Array> {
    const r = senderKeyEncrypt(await this.own(groupId, myDeviceId), plaintext);
    await this.store.begin().putSenderKeys(groupId, myDeviceId, [r.state]).commit();
    return r.message;
  }

  /** Decrypts a group message from `fromDevice`; `unknown_sender_key` when we never got (or lost) that key. */
  async decrypt(groupId: string, fromDevice: string, message: Uint8Array): Promise<Uint8Array> {
    const states = await this.store.senderKeys(groupId, fromDevice);
    const keyId = senderKeyIdOf(message);
    const i = states.findIndex((s) => s.keyId === keyId);
    if (i < 0) throw new ParleyError('unknown_sender_key', 'no sender key for this message');
    const r = senderKeyDecrypt(states[i]!, message);
    states[i] = r.state;
    await this.store.begin().putSenderKeys(groupId, fromDevice, states).commit();
    return r.plaintext;
  }

  /** Adds a distribution received over the pairwise session with `fromDevice` to `tx`; returns its group. */
  async receive(tx: StoreTx, fromDevice: string, distribution: Uint8Array): Promise<string> {
    const incoming = receiveSenderKey(distribution);
    const states = await this.store.senderKeys(incoming.groupId, fromDevice);
    if (!states.some((s) => s.keyId === incoming.keyId)) {
      tx.putSenderKeys(incoming.groupId, fromDevice, [incoming, ...states].slice(0, SENDER_KEYS_KEPT));
    }
    return incoming.groupId;
  }

  /** Forgets a member's sender keys (they left or were removed): their later messages are refused. */
  async forget(groupId: string, deviceId: string): Promise<void> {
    await this.store.begin().putSenderKeys(groupId, deviceId, []).commit();
  }

  private async own(groupId: string, myDeviceId: string): Promise<SenderKeyState> {
    const [current] = await this.store.senderKeys(groupId, myDeviceId);
    if (current?.signingSecret) return current;
    const fresh = createSenderKey(groupId);
    await this.store.begin().putSenderKeys(groupId, myDeviceId, [fresh]).commit();
    return fresh;
  }
}
