// The pairs' endpoints per target: the raw relay's URLs, or Parley users registered through the SDK, each with a prebuilt encrypted send frame.
import { randomBytes, randomUUID } from 'node:crypto';
import { sodiumReady as ready, toB64 } from '../protocol/bytes.js';
import { generateIdentity, generateSignedPrekey } from '../protocol/keys.js';
import { ratchetEncrypt } from '../client-sdk/e2e.ratchet.js';
import { INNER, MESSAGE_PREFIX, packInner } from '../client-sdk/e2e.wire.js';
import { x3dhInitiate } from '../client-sdk/e2e.x3dh.js';
import { PROTOCOL, WS_PATH } from '../protocol/frames.js';
import { devicesOf, mapLimit, registerDevice } from './accounts.js';
import type { BenchTransport, EndAddress } from './pair-sockets.js';
import type { PairEndpoints } from './pairs.js';
import type { Settings } from './settings.js';

/** Registrations at once: each costs the server two scrypt hashes. */
const SETUP_CONCURRENCY = 8;

/** The bench's made-up sides of a session (the server never decrypts). */
const BENCH_PARTIES = { initiator: { userId: 'bench-a', deviceId: 'bench-a1' }, responder: { userId: 'bench-b', deviceId: 'bench-b1' } };

const FRAME_HEAD = '{"type":"send","id":"';

/** The plaintext the SDK's sendText would encrypt, for a text of `textChars` characters. */
export function plaintext(textChars: number): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ v: 1, text: 'x'.repeat(textChars) }));
}

/**
 * A body as the SDK sends it once a session exists (a Double Ratchet message, type 0x01, of the
 * padded plaintext), from a session set up locally: the server never decrypts, so the bench
 * makes one per pair and reuses it, like the sealed frames before it.
 */
export function ratchetBody(text: Uint8Array): string {
  const alice = generateIdentity();
  const bob = generateIdentity();
  const spk = generateSignedPrekey(bob, 0);
  const bundle = { deviceId: 'bench', identityKey: bob.publicKey, signedPrekey: { id: spk.id, publicKey: spk.keyPair.publicKey, signature: spk.signature }, oneTimePrekey: null };
  return toB64(ratchetEncrypt(x3dhInitiate(alice, bundle, BENCH_PARTIES).state, packInner(INNER.CONTENT, text), MESSAGE_PREFIX).message);
}

/** `frameHead + id + frameTail` is `{"type":"send","id":…,"to":…,"payloads":[…]}`. */
export function frameTail(to: string, payloads: { device: string; body: string }[]): string {
  return '",' + JSON.stringify({ to, payloads }).slice(1);
}

/** Raw relay: same frame shape and ciphertext size as Parley's (ids and keys made up locally). */
export async function rawEndpoints(url: string, settings: Settings): Promise<PairEndpoints[]> {
  await ready();
  const text = plaintext(settings.textChars);
  return Array.from({ length: settings.pairs }, (_, i) => {
    const payloads = [{ device: randomUUID(), body: ratchetBody(text) }];
    return {
      sender: { kind: 'ws', url: `${url}/?pair=${i}&role=sender`, protocols: [] },
      recipient: { kind: 'ws', url: `${url}/?pair=${i}&role=recipient`, protocols: [] },
      frameHead: FRAME_HEAD,
      frameTail: frameTail(randomUUID(), payloads),
      setupFrames: ['ready'],
      ack: false,
    };
  });
}

/**
 * Parley: registers 2 × pairs users (one device each) with the SDK, then, for each sender, fetches
 * the devices to encrypt for (the recipient's, and the sender's other devices: none) and makes
 * one Double Ratchet body per device once; every message of the pair reuses it. Both ends
 * connect over `transport`: the WebSocket endpoint, or Socket.IO (upgrading, or polling only).
 */
export async function parleyEndpoints(urls: string[], settings: Settings, log: (line: string) => void, transport: BenchTransport = 'ws'): Promise<PairEndpoints[]> {
  const url = urls[0]!;
  await ready();
  const prefix = `b${randomBytes(4).toString('hex')}`;
  const names = Array.from({ length: settings.pairs }, (_, i) => [`${prefix}-s${i}`, `${prefix}-r${i}`]).flat();
  const started = performance.now();
  const devices = await mapLimit(names, SETUP_CONCURRENCY, (name) => registerDevice(url, name));
  log(`registered ${devices.length} users via the SDK in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  // With several gateways, a pair's sender and recipient sit on different ones (round robin).
  const address = (i: number, token: string): EndAddress =>
    transport === 'ws'
      ? { kind: 'ws', url: Object.assign(new URL(WS_PATH, urls[i % urls.length]), { protocol: 'ws:' }).toString(), protocols: [PROTOCOL, `bearer.${token}`] }
      : { kind: 'socketio', url: urls[i % urls.length]!, token, pollingOnly: transport === 'polling' };
  const text = plaintext(settings.textChars);
  return mapLimit(Array.from({ length: settings.pairs }, (_, i) => i), SETUP_CONCURRENCY, async (i) => {
    const sender = devices[2 * i]!;
    const recipient = devices[2 * i + 1]!;
    const [theirs, mine] = await Promise.all([devicesOf(url, sender.token, recipient.userId), devicesOf(url, sender.token, sender.userId)]);
    const payloads = [...theirs, ...mine]
      .filter((d) => d.id !== sender.deviceId)
      .map((d) => ({ device: d.id, body: ratchetBody(text) }));
    return {
      sender: address(i, sender.token),
      recipient: address(i + 1, recipient.token),
      frameHead: FRAME_HEAD,
      frameTail: frameTail(recipient.userId, payloads),
      setupFrames: ['ready', 'caught_up'],
      ack: true,
    };
  });
}
