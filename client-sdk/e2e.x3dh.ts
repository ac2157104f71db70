// X3DH session setup from a prekey bundle (Signal's specification, X25519 from Ed25519 identities, HKDF-SHA256).
import sodium from 'libsodium-wrappers-sumo';
import { concat, u32, utf8 } from '../protocol/bytes.js';
import { hkdf } from './e2e.hkdf.js';
import {
  dh,
  generateX25519,
  type IdentityKeyPair,
  identitySecretToX25519,
  identityToX25519,
  type OneTimePrekey,
  type PrekeyBundle,
  type SignedPrekey,
  verifySignedPrekey,
} from '../protocol/keys.js';
import { initInitiator, initResponder, type RatchetState } from './e2e.ratchet.js';
import { encodePrekeyPrefix, type PrekeyHeader } from './e2e.wire.js';
import { ParleyError } from './http.js';

const INFO = utf8('Parley X3DH v1');
/** X3DH prepends 32 0xFF bytes to the DH outputs (domain separation from XEdDSA for X25519). */
const F = new Uint8Array(32).fill(0xff);
const SALT = new Uint8Array(32);

function sharedSecret(dhs: Uint8Array[]): Uint8Array {
  const ikm = concat(F, ...dhs);
  const sk = hkdf(ikm, SALT, INFO, 32);
  sodium.memzero(ikm);
  for (const d of dhs) sodium.memzero(d);
  return sk;
}

/** Who a session is between: each side's user and device, bound into its associated data. */
export interface SessionParties {
  initiator: { userId: string; deviceId: string };
  responder: { userId: string; deviceId: string };
}

/**
 * The associated data of every message of a session: both identity keys (initiator first) and
 * both sides' user and device ids, so a session (and each message) is bound to who it is
 * between: a key registered under another user or device cannot be used to misbind it.
 */
export function sessionAd(initiatorKey: Uint8Array, responderKey: Uint8Array, p: SessionParties): Uint8Array {
  const id = (s: string) => {
    const b = utf8(s);
    return concat(u32(b.length), b);
  };
  return concat(initiatorKey, responderKey, id(p.initiator.userId), id(p.initiator.deviceId), id(p.responder.userId), id(p.responder.deviceId));
}

export interface X3dhInitiation {
  state: RatchetState;
  /** Prefix for every message of this session until the peer answers (a 0x02 prekey message). */
  prekeyPrefix: Uint8Array;
  /** Our ephemeral public key: identifies this session on both ends. */
  baseKey: Uint8Array;
}

/**
 * The initiator's half: verifies the bundle's signed prekey (a bad signature aborts with
 * `bad_signature`), computes DH1..DH4, derives SK with HKDF and starts the Double Ratchet.
 * The associated data is sessionAd: both Ed25519 identity keys and both sides' ids.
 */
export function x3dhInitiate(our: IdentityKeyPair, bundle: PrekeyBundle, parties: SessionParties): X3dhInitiation {
  const spk = bundle.signedPrekey;
  if (!verifySignedPrekey(bundle.identityKey, spk.id, spk.publicKey, spk.signature)) {
    throw new ParleyError('bad_signature', 'the signed prekey is not signed by the identity key');
  }
  const theirIdentity = identityToX25519(bundle.identityKey);
  const ephemeral = generateX25519();
  const dhs = [dh(identitySecretToX25519(our), spk.publicKey), dh(ephemeral.secretKey, theirIdentity), dh(ephemeral.secretKey, spk.publicKey)];
  if (bundle.oneTimePrekey) dhs.push(dh(ephemeral.secretKey, bundle.oneTimePrekey.publicKey));
  sodium.memzero(ephemeral.secretKey);
  const ad = sessionAd(our.publicKey, bundle.identityKey, parties);
  const header: PrekeyHeader = {
    identityKey: our.publicKey,
    baseKey: ephemeral.publicKey,
    signedPrekeyId: spk.id,
    oneTimePrekeyId: bundle.oneTimePrekey?.id ?? 0,
  };
  return { state: initInitiator(sharedSecret(dhs), ad, spk.publicKey), prekeyPrefix: encodePrekeyPrefix(header), baseKey: ephemeral.publicKey };
}

/**
 * The responder's half, from the fields of a prekey message and our private prekeys. The
 * caller decrypts the message with the returned state and keeps it (and deletes the one-time
 * prekey) only if that succeeds.
 */
export function x3dhRespond(
  our: IdentityKeyPair,
  signedPrekey: SignedPrekey,
  oneTimePrekey: OneTimePrekey | null,
  header: PrekeyHeader,
  parties: SessionParties,
): RatchetState {
  const theirIdentity = identityToX25519(header.identityKey);
  const spkSecret = signedPrekey.keyPair.secretKey;
  const dhs = [dh(spkSecret, theirIdentity), dh(identitySecretToX25519(our), header.baseKey), dh(spkSecret, header.baseKey)];
  if (oneTimePrekey) dhs.push(dh(oneTimePrekey.keyPair.secretKey, header.baseKey));
  return initResponder(sharedSecret(dhs), sessionAd(header.identityKey, our.publicKey, parties), signedPrekey.keyPair);
}
