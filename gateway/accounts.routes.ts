// REST: accounts, sessions (login), user lookup and device keys.
import { z } from 'zod';
import { isValidIdentityKey } from '../protocol/keys.js';
import { AppError } from '../platform/errors.js';
import { isWellFormed, safeText } from '../platform/text.js';
import type { Accounts } from '../accounts/accounts.js';
import type { Delivery } from '../routing/delivery.js';
import type { KeyedLimiter } from './rate-limit.js';
import type { Routes } from './routes.js';
import { username } from '../accounts/username.js';

/**
 * A password is a secret, not text to show: any characters, not normalized (that would
 * change existing passwords). Only a new one must be well-formed, since a lone surrogate is
 * hashed as U+FFFD and two different passwords would then be one.
 */
export const password = z.string().min(8).max(256);
export const newPassword = password.refine(isWellFormed, 'must be well-formed Unicode (no lone surrogates)');
const deviceName = safeText(1, 64);
const uuid = z.uuid();
/** A device as clients see it: identity key and vouch (docs/protocol.md §7, device trust). */
export const listedDevice = z.object({
  id: uuid,
  publicKey: z.string(),
  vouch: z.object({ by: uuid, signature: z.string() }).nullable(),
});
/** The device's Ed25519 identity key (32 bytes, base64): a canonical point of prime order (libsodium must be ready). */
const publicKey = z
  .string()
  .regex(/^[A-Za-z0-9+/]{43}=$/, '32-byte key in base64')
  .refine((k) => isValidIdentityKey(new Uint8Array(Buffer.from(k, 'base64'))), 'not a valid Ed25519 identity key');

/**
 * `device.proof`: required. Optional in the schema only so that a login without one gets the
 * same `401` as a bad one, not a `400`.
 */
const keyProof = z
  .object({
    challenge: z.string().max(128).describe('from POST /v1/sessions/challenge, as received'),
    signature: z.string().max(128).describe('Ed25519 signature (64 bytes, base64) by publicKey of the login proof bytes'),
  })
  .describe('Required: proof that the device holds the private key of publicKey (docs/protocol.md §1). Missing or wrong: 401');

export function accountRoutes(routes: Routes, accounts: Accounts, delivery: Delivery, authLimiter: KeyedLimiter): void {
  const limit = (ip: string) => {
    const wait = authLimiter.take(ip);
    if (wait > 0) throw new AppError('rate_limited', 'too many attempts', { details: { retryAfterMs: wait } });
  };

  routes.add({
    method: 'POST',
    url: '/v1/accounts',
    summary: 'Create an account',
    tag: 'accounts',
    auth: false,
    body: z.object({ username, password: newPassword }),
    response: z.object({ userId: uuid }),
    status: 201,
    errors: ['invalid', 'conflict', 'rate_limited'],
    early: (req) => limit(req.ip),
    handler: async ({ body }) => accounts.register(body.username, body.password),
  });

  routes.add({
    method: 'POST',
    url: '/v1/sessions/challenge',
    summary: 'A login challenge (valid 2 minutes): sign it with the identity key you log in with, as device.proof',
    tag: 'accounts',
    auth: false,
    response: z.object({
      challenge: z.string().describe('base64; sign it as is (decoded), see docs/protocol.md §1'),
      expiresAt: z.number().describe('ms since the epoch'),
    }),
    status: 201,
    errors: ['rate_limited'],
    early: (req) => limit(req.ip),
    handler: async () => accounts.challenge(),
  });

  routes.add({
    method: 'POST',
    url: '/v1/sessions',
    summary: 'Log in a device; returns a token naming the user and the device',
    tag: 'accounts',
    auth: false,
    body: z.object({
      username,
      password,
      device: z.object({ id: uuid.optional(), name: deviceName, publicKey, proof: keyProof.optional() }),
    }),
    response: z.object({ token: z.string(), expiresAt: z.number(), userId: uuid, deviceId: uuid }),
    status: 201,
    errors: ['invalid', 'unauthorized', 'not_found', 'limit_exceeded', 'rate_limited'],
    early: (req) => limit(req.ip),
    handler: async ({ body }) => {
      const { proof, ...device } = body.device;
      accounts.checkKeyProof(body.username, device.publicKey, proof); // before anything else about the device
      return accounts.login(body.username, body.password, device);
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/users',
    summary: 'Find a user by username',
    tag: 'users',
    auth: true,
    query: z.object({ username }),
    response: z.object({ id: uuid, username: z.string() }),
    errors: ['invalid', 'unauthorized', 'not_found'],
    handler: async ({ query }) => ({ id: await accounts.findUser(query.username), username: query.username }),
  });

  routes.add({
    method: 'GET',
    url: '/v1/users/:userId',
    summary: 'A user’s username, by id, for someone who shares a conversation with them or blocks them (anyone else: the same 404 as an unknown id)',
    tag: 'users',
    auth: true,
    params: z.object({ userId: uuid }),
    response: z.object({ id: uuid, username: z.string() }),
    errors: ['invalid', 'unauthorized', 'not_found'],
    handler: async ({ params, req }) => ({ id: params.userId, username: await accounts.username(params.userId, req.auth!.userId) }),
  });

  routes.add({
    method: 'GET',
    url: '/v1/users/:userId/devices',
    summary: "A user's devices and their public keys (to encrypt for each)",
    tag: 'users',
    auth: true,
    params: z.object({ userId: uuid }),
    response: z.object({ devices: z.array(listedDevice) }),
    errors: ['invalid', 'unauthorized', 'not_found'],
    handler: async ({ params }) => {
      const devices = await accounts.devices(params.userId);
      if (devices.length === 0) throw new AppError('not_found', 'no such user');
      return { devices };
    },
  });

  routes.add({
    method: 'PUT',
    url: '/v1/devices/:deviceId/vouch',
    summary: 'Vouch for one of your devices (or, for your first device, for itself): sign its certificate with this device’s identity key',
    tag: 'accounts',
    auth: true,
    params: z.object({ deviceId: uuid }),
    body: z.object({ signature: z.string().regex(/^[A-Za-z0-9+/]{86}==$/, '64-byte Ed25519 signature in base64') }),
    errors: ['invalid', 'unauthorized', 'not_found'],
    handler: async ({ params, body, req }) => {
      await accounts.vouch(req.auth!.userId, req.auth!.deviceId, params.deviceId, body.signature);
      return undefined;
    },
  });

  routes.add({
    method: 'DELETE',
    url: '/v1/devices/:deviceId',
    summary: 'Remove one of your devices (log out for good)',
    tag: 'accounts',
    auth: true,
    params: z.object({ deviceId: uuid }),
    errors: ['invalid', 'unauthorized', 'not_found'],
    handler: async ({ params, req }) => {
      await accounts.removeDevice(req.auth!.userId, params.deviceId);
      await delivery.disconnect(req.auth!.userId, params.deviceId); // its open socket closes with 4500
      return undefined;
    },
  });
}
