// `npm run bench -- --crypto`: CPU cost of the end-to-end encryption in Node (libsodium WASM), in µs per operation.
//
// Scenarios, each after a warm-up, timed over BENCH_CRYPTO_OPS operations (several rounds; the
// median round is reported, with the spread):
//   message       encrypt + decrypt one message in the same sending chain (no DH step)
//   ratchet step  encrypt + decrypt with the senders alternating, so every message is a DH ratchet step
//   x3dh          a session set up from a bundle: signature check and four DHs on each side
//   sender key    group message: encrypt + sign, then verify + decrypt by one member
//   sdk message   a 1:1 message through the SessionManager with an in-memory key store (includes
//                 (de)serializing the session state on each side), one recipient device; once
//                 without and once with the device trust check the client does on each message
//   device link   a device's vouch: Ed25519 signature over its certificate, and its verification
//   trust         deciding which of a contact's 6 vouched devices to trust (first contact)
// The plaintext is the SDK's content for a BENCH_TEXT_CHARS-character text (100), padded as sent.
import { sodiumReady, toB64 } from '../protocol/bytes.js';
import { type DeviceEntry, SessionManager } from '../client-sdk/e2e.session-manager.js';
import { decodeBundle, type KeyDirectoryClient } from '../client-sdk/e2e.directory.js';
import { generateIdentity, generateOneTimePrekeys, generateSignedPrekey, type PrekeyBundle } from '../protocol/keys.js';
import { ratchetDecrypt, ratchetEncrypt, type RatchetState } from '../client-sdk/e2e.ratchet.js';
import { createSenderKey, receiveSenderKey, senderKeyDecrypt, senderKeyDistribution, senderKeyEncrypt, type SenderKeyState } from '../client-sdk/e2e.sender-keys.js';
import { memoryKeyStore } from '../client-sdk/e2e.store.memory.js';
import { INNER, MESSAGE_PREFIX, packInner, parseBody } from '../client-sdk/e2e.wire.js';
import { evaluateTrust, type ListedDevice, vouchFor, vouchValid } from '../protocol/trust.js';
import { x3dhInitiate, x3dhRespond } from '../client-sdk/e2e.x3dh.js';
import { TrustManager } from '../client-sdk/trust.js';
import { machine } from './report.js';

/** Made-up sides of the sessions measured here. */
const PARTIES = { initiator: { userId: 'alice', deviceId: 'a1' }, responder: { userId: 'bob', deviceId: 'b1' } };

const ROUNDS = 5;

interface Result {
  name: string;
  ops: number;
  usPerOp: number;
  spread: [number, number];
}

async function time(name: string, ops: number, op: () => void | Promise<void>): Promise<Result> {
  for (let i = 0; i < Math.max(50, ops / 10); i++) await op();
  const perRound: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const started = performance.now();
    for (let i = 0; i < ops; i++) await op();
    perRound.push(((performance.now() - started) * 1000) / ops);
  }
  perRound.sort((a, b) => a - b);
  return { name, ops: ops * ROUNDS, usPerOp: perRound[Math.floor(ROUNDS / 2)]!, spread: [perRound[0]!, perRound[ROUNDS - 1]!] };
}

function bundleOf(): { identity: ReturnType<typeof generateIdentity>; bundle: PrekeyBundle; spk: ReturnType<typeof generateSignedPrekey> } {
  const identity = generateIdentity();
  const spk = generateSignedPrekey(identity, 0);
  const bundle: PrekeyBundle = {
    deviceId: 'bob',
    identityKey: identity.publicKey,
    signedPrekey: { id: spk.id, publicKey: spk.keyPair.publicKey, signature: spk.signature },
    oneTimePrekey: null,
  };
  return { identity, bundle, spk };
}

/** Alice's and Bob's ratchet states after X3DH and one message each way. */
function session(): { alice: RatchetState; bob: RatchetState } {
  const aliceId = generateIdentity();
  const b = bundleOf();
  const init = x3dhInitiate(aliceId, b.bundle, PARTIES);
  const first = ratchetEncrypt(init.state, packInner(INNER.CONTENT, new Uint8Array(1)), init.prekeyPrefix);
  const parsed = parseBody(first.message);
  if (parsed.type !== 'prekey') throw new Error('expected a prekey message');
  const bob = ratchetDecrypt(x3dhRespond(b.identity, b.spk, null, parsed.header, PARTIES), first.message, parsed.at).state;
  return { alice: first.state, bob };
}

/**
 * Two SessionManagers over memory stores and an in-memory directory, Alice having a session with
 * Bob; with `trusted`, each checks the sender's device against its trust (as the client does).
 */
async function managers(trusted = false): Promise<{ alice: SessionManager; bobDevices: DeviceEntry[]; bob: SessionManager }> {
  const published = new Map<string, Parameters<KeyDirectoryClient['publish']>>();
  const list = new Map<string, ListedDevice[]>();
  const make = async (userId: string, deviceId: string) => {
    const directory: KeyDirectoryClient = {
      status: async () => ({ identityKey: list.get(userId)![0]!.publicKey, signedPrekeyId: null, oneTimePrekeys: 0 }),
      publish: async (...args) => {
        published.set(deviceId, args);
        return { oneTimePrekeys: args[2].length };
      },
      rotate: async () => {},
      upload: async () => ({ oneTimePrekeys: 0 }),
      bundles: async (uid) =>
        list.get(uid)!.map((d) => {
          const [ik, spk, otks] = published.get(d.id)!;
          const otk = otks.pop();
          return decodeBundle({
            deviceId: d.id,
            identityKey: toB64(ik),
            signedPrekey: { id: spk.id, publicKey: toB64(spk.keyPair.publicKey), signature: toB64(spk.signature) },
            oneTimePrekey: otk ? { id: otk.id, publicKey: toB64(otk.keyPair.publicKey) } : null,
          });
        }),
    };
    const box: { trust?: TrustManager } = {};
    const m = new SessionManager({
      store: memoryKeyStore(),
      directory,
      devicesOf: async (u) => list.get(u)!,
      sendReset: () => {},
      onIdentityChanged: () => {},
      onSessionReset: () => {},
      ...(trusted ? { trusted: (u: string, dev: string, k: Uint8Array) => box.trust!.isTrusted(u, dev, k) } : {}),
    });
    const d = await m.loadDevice();
    list.set(userId, [{ id: deviceId, publicKey: toB64(d.identity.publicKey), vouch: { by: deviceId, signature: vouchFor(d.identity, userId, deviceId, d.identity.publicKey) } }]);
    await m.useDevice({ ...d, deviceId, userId });
    const none = () => {};
    box.trust = new TrustManager({
      store: m.store,
      listDevices: async (u) => list.get(u)!,
      me: () => ({ userId, deviceId, identity: d.identity }),
      putVouch: async () => {},
      onDeviceAdded: none,
      onDeviceUntrusted: none,
      onDevicePending: none,
      onIdentityChanged: none,
    });
    await m.publishKeys();
    return m;
  };
  const alice = await make('alice', 'a1');
  const bob = await make('bob', 'b1');
  const bobDevices = list.get('bob')!;
  const [first] = await alice.encryptForDevices([{ userId: 'bob', devices: bobDevices }], INNER.CONTENT, new Uint8Array(1));
  await bob.decrypt('alice', 'a1', first!.body);
  return { alice, bob, bobDevices };
}

export async function benchCrypto(): Promise<void> {
  await sodiumReady();
  const ops = Number(process.env.BENCH_CRYPTO_OPS ?? 2000);
  if (!Number.isInteger(ops) || ops < 10) throw new Error(`BENCH_CRYPTO_OPS=${process.env.BENCH_CRYPTO_OPS}: expected an integer ≥ 10`);
  const chars = Number(process.env.BENCH_TEXT_CHARS ?? 100);
  const content = new TextEncoder().encode(JSON.stringify({ v: 1, text: 'x'.repeat(chars) }));
  const plaintext = packInner(INNER.CONTENT, content);
  console.log(machine());
  console.log(`config: ${chars}-char text (${plaintext.length}-byte padded plaintext), ${ROUNDS} rounds of ${ops} ops per scenario, median round`);

  const results: Result[] = [];
  {
    let { alice, bob } = session();
    results.push(
      await time('message (same chain): encrypt + decrypt', ops, () => {
        const e = ratchetEncrypt(alice, plaintext, MESSAGE_PREFIX);
        alice = e.state;
        bob = ratchetDecrypt(bob, e.message, 1).state;
      }),
    );
  }
  {
    const ends = session();
    let turn: 'alice' | 'bob' = 'alice';
    results.push(
      await time('ratchet step (senders alternate): encrypt + decrypt', ops, () => {
        const other = turn === 'alice' ? 'bob' : 'alice';
        const e = ratchetEncrypt(ends[turn], plaintext, MESSAGE_PREFIX);
        ends[turn] = e.state;
        ends[other] = ratchetDecrypt(ends[other], e.message, 1).state;
        turn = other;
      }),
    );
  }
  {
    const aliceId = generateIdentity();
    const b = bundleOf();
    const [otk] = generateOneTimePrekeys(1);
    const bundle = { ...b.bundle, oneTimePrekey: { id: otk!.id, publicKey: otk!.keyPair.publicKey } };
    results.push(
      await time('x3dh: initiate + respond (with one-time prekey)', Math.max(10, Math.floor(ops / 4)), () => {
        const init = x3dhInitiate(aliceId, bundle, PARTIES);
        x3dhRespond(b.identity, b.spk, otk!, { identityKey: aliceId.publicKey, baseKey: init.baseKey, signedPrekeyId: b.spk.id, oneTimePrekeyId: otk!.id }, PARTIES);
      }),
    );
  }
  {
    let own = createSenderKey('bench-group');
    let member: SenderKeyState = receiveSenderKey(senderKeyDistribution(own));
    results.push(
      await time('sender key: encrypt + sign, verify + decrypt', ops, () => {
        const e = senderKeyEncrypt(own, plaintext);
        own = e.state;
        member = senderKeyDecrypt(member, e.message).state;
      }),
    );
  }
  for (const trusted of [false, true]) {
    const { alice, bob, bobDevices } = await managers(trusted);
    results.push(
      await time(`sdk message: SessionManager encrypt + decrypt (memory store${trusted ? ', with the device trust check' : ''})`, Math.max(10, Math.floor(ops / 2)), async () => {
        const [p] = await alice.encryptForDevices([{ userId: 'bob', devices: bobDevices }], INNER.CONTENT, content);
        await bob.decrypt('alice', 'a1', p!.body);
      }),
    );
  }
  {
    const voucher = generateIdentity();
    const device = generateIdentity();
    const listed: ListedDevice[] = [{ id: 'v', publicKey: toB64(voucher.publicKey), vouch: null }];
    results.push(
      await time('device link: vouch (sign the certificate) + verify it', ops, () => {
        const d: ListedDevice = { id: 'd', publicKey: toB64(device.publicKey), vouch: { by: 'v', signature: vouchFor(voucher, 'u', 'd', device.publicKey) } };
        if (!vouchValid('u', d, listed)) throw new Error('vouch did not verify');
      }),
    );
  }
  {
    const root = generateIdentity();
    const devices: ListedDevice[] = [{ id: 'd0', publicKey: toB64(root.publicKey), vouch: { by: 'd0', signature: vouchFor(root, 'u', 'd0', root.publicKey) } }];
    for (let i = 1; i < 6; i++) {
      const k = generateIdentity();
      devices.push({ id: `d${i}`, publicKey: toB64(k.publicKey), vouch: { by: 'd0', signature: vouchFor(root, 'u', `d${i}`, k.publicKey) } });
    }
    results.push(
      await time('trust: a contact with 6 vouched devices, first contact', Math.max(10, Math.floor(ops / 4)), () => {
        if (evaluateTrust('u', devices, null).trusted.length !== 6) throw new Error('expected 6 trusted devices');
      }),
    );
  }

  console.log('');
  console.log('| scenario | µs/op (median round) | ops/s | rounds min–max µs |');
  console.log('|---|---|---|---|');
  for (const r of results) {
    console.log(`| ${r.name} | ${r.usPerOp.toFixed(0)} | ${Math.round(1e6 / r.usPerOp).toLocaleString('en-US')} | ${r.spread[0].toFixed(0)}–${r.spread[1].toFixed(0)} |`);
  }
}
