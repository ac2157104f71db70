// This device's prekeys over time: publishing at login, rotating the signed prekey, topping up one-time prekeys.
import { toB64 } from '../protocol/bytes.js';
import type { KeyDirectoryClient } from './e2e.directory.js';
import { generateOneTimePrekeys, generateSignedPrekey, type IdentityKeyPair } from '../protocol/keys.js';
import type { E2eStore } from './e2e.store.js';
import { ParleyError } from './http.js';

/** One-time prekeys generated per upload (the server accepts at most 100 per request). */
export const ONE_TIME_BATCH = 100;
/** Top up when the directory holds fewer than this many (the server warns below 20). */
export const ONE_TIME_LOW = 50;
/** A signed prekey older than this is replaced at the next login. */
export const SIGNED_PREKEY_MAX_AGE_MS = 7 * 24 * 3600_000;
/** Replaced signed prekeys kept, so prekey messages already on their way can still be read. */
export const OLD_SIGNED_PREKEYS_KEPT = 3;

/**
 * The private halves are written to the store before the public halves are published, so a
 * published prekey always has its secret here. Calls are not concurrent: `sync` runs at login;
 * `topUp` is single-flight (concurrent calls share one upload).
 */
export class PrekeyManager {
  private topping: Promise<void> | null = null;

  constructor(
    private readonly store: E2eStore,
    private readonly directory: KeyDirectoryClient,
    private readonly now: () => number,
  ) {}

  /** Makes the directory hold a current signed prekey and enough one-time prekeys for `identity`. */
  async sync(identity: IdentityKeyPair): Promise<void> {
    let spks = await this.store.signedPrekeys();
    let current = spks[0];
    if (!current || this.now() - current.createdAt > SIGNED_PREKEY_MAX_AGE_MS) {
      current = generateSignedPrekey(identity, this.now());
      await this.store.begin().putSignedPrekey(current).commit();
      spks = [current, ...spks];
    }
    const status = await this.directory.status();
    if (status.identityKey !== toB64(identity.publicKey)) {
      throw new ParleyError('invalid_key', 'the server has another identity key for this device');
    }
    const known = status.signedPrekeyId !== null && spks.some((k) => k.id === status.signedPrekeyId);
    if (!known) {
      // Nothing of ours is published (new device, new identity, or the server lost it): start over.
      const oneTime = generateOneTimePrekeys(ONE_TIME_BATCH);
      // The server forgets the old ones now, so their secrets go too (deletes first: an id may recur).
      const tx = this.store.begin();
      for (const id of await this.store.oneTimePrekeyIds()) tx.deleteOneTimePrekey(id);
      tx.putOneTimePrekeys(oneTime);
      await tx.commit();
      await this.directory.publish(identity.publicKey, current, oneTime);
    } else {
      if (status.signedPrekeyId !== current.id) await this.directory.rotate(current);
      if (status.oneTimePrekeys < ONE_TIME_LOW) await this.upload();
    }
    const stale = spks.slice(1 + OLD_SIGNED_PREKEYS_KEPT);
    if (stale.length > 0) {
      const tx = this.store.begin();
      for (const k of stale) tx.deleteSignedPrekey(k.id);
      await tx.commit();
    }
  }

  /** Uploads a batch if the directory is running low (the server's `prekeys_low` frame calls this). */
  topUp(): Promise<void> {
    this.topping ??= (async () => {
      try {
        if ((await this.directory.status()).oneTimePrekeys < ONE_TIME_LOW) await this.upload();
      } finally {
        this.topping = null;
      }
    })();
    return this.topping;
  }

  private async upload(): Promise<void> {
    const taken = new Set(await this.store.oneTimePrekeyIds());
    const oneTime = generateOneTimePrekeys(ONE_TIME_BATCH, taken);
    await this.store.begin().putOneTimePrekeys(oneTime).commit();
    await this.directory.upload(oneTime);
  }
}
