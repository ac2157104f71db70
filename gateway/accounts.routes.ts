// REST: accounts, sessions (login), user lookup and device keys.
import { z } from 'zod';
import { isValidIdentityKey } from '../client-sdk/e2e.keys.js';
import { AppError } from '../platform/errors.js';
import { isWellFormed, safeText } from '../platform/text.js';
import type { Accounts } from './accounts.js';
import type { Delivery } from './delivery.js';
import type { KeyedLimiter } from './rate-limit.js';
import type { Routes } from './routes.js';
import { username } from './username.js';

/**
 * A password is a secret, not text to show: any characters, not normalized (that would
 * change existing passwords). Only a new one must be well-formed, since a lone surrogate is
 * hashed as U+FFFD and two different passwords would then be one.
 */
const password = z.string().min(8).max(256);
const newPassword = password.refine(isWellFormed, 'must be well-formed Unicode (no lone surrogates)');
const deviceName = safeText(1, 64);
const uuid = z.uuid();
/** The device's Ed25519 identity key (32 bytes, base64): a canonical point of prime order (libsodium must be ready). */
const publicKey = z
  .string()
  .regex(/^[A-Za-z0-9+/]{43}=$/, '32-byte key in base64')
  .refine((k) => isValidIdentityKey(new Uint8Array(Buffer.from(k, 'base64'))), 'not a valid Ed25519 identity key');

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
    url: '/v1/sessions',
    summary: 'Log in a device; returns a token naming the user and the device',
    tag: 'accounts',
    auth: false,
    body: z.object({
      username,
      password,
      device: z.object({ id: uuid.optional(), name: deviceName, publicKey }),
    }),
    response: z.object({ token: z.string(), expiresAt: z.number(), userId: uuid, deviceId: uuid }),
    status: 201,
    errors: ['invalid', 'unauthorized', 'not_found', 'limit_exceeded', 'rate_limited'],
    early: (req) => limit(req.ip),
    handler: async ({ body }) => accounts.login(body.username, body.password, body.device),
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
    url: '/v1/users/:userId/devices',
    summary: "A user's devices and their public keys (to encrypt for each)",
    tag: 'users',
    auth: true,
    params: z.object({ userId: uuid }),
    response: z.object({ devices: z.array(z.object({ id: uuid, publicKey: z.string() })) }),
    errors: ['invalid', 'unauthorized', 'not_found'],
    handler: async ({ params }) => {
      const devices = await accounts.devices(params.userId);
      if (devices.length === 0) throw new AppError('not_found', 'no such user');
      return { devices };
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
