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
/** Our own sender key is replaced after this long (Signal rotates sender keys by age and use as well). */
export const SENDER_KEY_MAX_AGE_MS = 7 * 86_400_000;
/** … or after this many messages. */
export const SENDER_KEY_MAX_MESSAGES = 1000;

/**
 * Own keys are stored under our own device id. A distribution for a key id we already hold is
 * ignored, so a replayed distribution cannot wind a chain back. Callers serialize calls.
 */
export class GroupKeys {
  constructor(
    private readonly store: E2eStore,
    private readonly now: () => number = Date.now,
  ) {}

  /** The distribution message of our current sender key in the group (created, or replaced when too old, on first use). */
  async distribution(groupId: string, myDeviceId: string): Promise<Uint8Array> {
    const own = await this.own(groupId, myDeviceId);
    return senderKeyDistribution(own, own.excluded);
  }

  /** The id of our current sender key in the group (replaced first when too old or too used). */
  async ownKeyId(groupId: string, myDeviceId: string): Promise<number> {
    return (await this.own(groupId, myDeviceId)).keyId;
  }

  /**
   * Replaces our sender key (members or devices left): returns the new distribution, for the
   * remaining members only. It names the departed devices, so every receiver forgets their keys.
   */
  async rotate(groupId: string, myDeviceId: string, excluded: readonly string[] = []): Promise<Uint8Array> {
    const fresh = { ...createSenderKey(groupId, this.now()), excluded: [...excluded] };
    await this.store.begin().putSenderKeys(groupId, myDeviceId, [fresh]).commit();
    return senderKeyDistribution(fresh, fresh.excluded);
  }

  async encrypt(groupId: string, myDeviceId: string, plaintext: Uint8Array): Promise<Uint8Array> {
    const r = senderKeyEncrypt(await this.own(groupId, myDeviceId), plaintext);
    await this.store.begin().putSenderKeys(groupId, myDeviceId, [r.state]).commit();
    return r.message;
  }

  /** Decrypts a group message from `fromDevice`; `unknown_sender_key` when we never got (or lost, or forgot) that key. */
  async decrypt(groupId: string, fromDevice: string, message: Uint8Array): Promise<Uint8Array> {
    const states = await this.store.senderKeys(groupId, fromDevice);
    const keyId = senderKeyIdOf(message);
    const i = states.findIndex((s) => s.keyId === keyId);
    if (i < 0) throw new ParleyError('unknown_sender_key', 'no sender key for this message');
    const r = senderKeyDecrypt(states[i]!, message, this.now());
    states[i] = r.state;
    await this.store.begin().putSenderKeys(groupId, fromDevice, states).commit();
    return r.plaintext;
  }

  /**
   * Adds a distribution received over the pairwise session with `fromDevice` to `tx`, and forgets
   * the keys of the departed devices it names (never our own, nor the sender's); returns its group
   * and those devices. With `expectedGroup`, a distribution for another group is refused.
   */
  async receive(tx: StoreTx, fromDevice: string, distribution: Uint8Array, myDeviceId: string, expectedGroup?: string): Promise<{ groupId: string; excluded: string[] }> {
    const { excluded, ...incoming } = receiveSenderKey(distribution, this.now());
    if (expectedGroup !== undefined && incoming.groupId !== expectedGroup) {
      throw new ParleyError('auth_failed', 'a sender key distribution for another group');
    }
    const states = await this.store.senderKeys(incoming.groupId, fromDevice);
    if (!states.some((s) => s.keyId === incoming.keyId)) {
      tx.putSenderKeys(incoming.groupId, fromDevice, [incoming, ...states].slice(0, SENDER_KEYS_KEPT));
    }
    const departed = excluded.filter((d) => d !== myDeviceId && d !== fromDevice);
    for (const d of departed) tx.putSenderKeys(incoming.groupId, d, []);
    return { groupId: incoming.groupId, excluded: departed };
  }

  /** Forgets these devices' sender keys for the group (they left or were removed): their later messages are refused. */
  async forget(groupId: string, deviceIds: readonly string[]): Promise<void> {
    const tx = this.store.begin();
    for (const d of deviceIds) tx.putSenderKeys(groupId, d, []);
    await tx.commit();
  }

  private async own(groupId: string, myDeviceId: string): Promise<SenderKeyState> {
    const [current] = await this.store.senderKeys(groupId, myDeviceId);
    const now = this.now();
    if (current?.signingSecret && now - current.createdAt < SENDER_KEY_MAX_AGE_MS && current.iteration < SENDER_KEY_MAX_MESSAGES) return current;
    const fresh = createSenderKey(groupId, now);
    await this.store.begin().putSenderKeys(groupId, myDeviceId, [fresh]).commit();
    return fresh;
  }
}
