// REST: the key directory: publish and rotate a device's prekeys, and fetch a user's prekey bundles (rate limited).
import { z } from 'zod';
import { AppError } from '../platform/errors.js';
import type { KeyDirectory } from '../accounts/keys.js';
import type { KeyedLimiter } from './rate-limit.js';
import type { Routes } from './routes.js';

/** Most one-time prekeys per upload request. */
export const MAX_ONE_TIME_PER_UPLOAD = 100;

const uuid = z.uuid();
const key32 = z.string().regex(/^[A-Za-z0-9+/]{43}=$/, '32-byte key in base64');
const signature = z.string().regex(/^[A-Za-z0-9+/]{86}==$/, '64-byte signature in base64');
const keyId = z.number().int().min(1).max(0xffffffff);
const signedPrekey = z.object({ id: keyId, publicKey: key32, signature });
const oneTimePrekey = z.object({ id: keyId, publicKey: key32 });
const bundle = z.object({
  deviceId: uuid,
  identityKey: z.string(),
  signedPrekey: signedPrekey.nullable(),
  oneTimePrekey: oneTimePrekey.nullable(),
});

export function keyRoutes(routes: Routes, keys: KeyDirectory, fetchLimiter: KeyedLimiter): void {
  const me = (req: { auth?: { userId: string; deviceId: string } }) => req.auth!;

  routes.add({
    method: 'PUT',
    url: '/v1/keys',
    summary: "Publish this device's identity key, signed prekey and a fresh set of one-time prekeys (replacing any stored)",
    tag: 'keys',
    auth: true,
    body: z.object({ identityKey: key32, signedPrekey, oneTimePrekeys: z.array(oneTimePrekey).max(MAX_ONE_TIME_PER_UPLOAD).default([]) }),
    response: z.object({ oneTimePrekeys: z.number() }),
    errors: ['invalid', 'unauthorized'],
    handler: async ({ body, req }) => keys.publish(me(req).userId, me(req).deviceId, body.identityKey, body.signedPrekey, body.oneTimePrekeys),
  });

  routes.add({
    method: 'GET',
    url: '/v1/keys',
    summary: 'What the directory holds for this device: its identity key, signed prekey id and one-time prekeys left',
    tag: 'keys',
    auth: true,
    response: z.object({ identityKey: z.string(), signedPrekeyId: z.number().nullable(), oneTimePrekeys: z.number() }),
    errors: ['unauthorized'],
    handler: async ({ req }) => keys.status(me(req).userId, me(req).deviceId),
  });

  routes.add({
    method: 'PUT',
    url: '/v1/keys/signed-prekey',
    summary: "Rotate this device's signed prekey (signed by its identity key)",
    tag: 'keys',
    auth: true,
    body: signedPrekey,
    errors: ['invalid', 'unauthorized'],
    handler: async ({ body, req }) => {
      await keys.rotate(me(req).userId, me(req).deviceId, body);
      return undefined;
    },
  });

  routes.add({
    method: 'POST',
    url: '/v1/keys/one-time-prekeys',
    summary: 'Upload more one-time prekeys for this device',
    tag: 'keys',
    auth: true,
    body: z.object({ prekeys: z.array(oneTimePrekey).min(1).max(MAX_ONE_TIME_PER_UPLOAD) }),
    response: z.object({ oneTimePrekeys: z.number() }),
    errors: ['invalid', 'unauthorized', 'conflict'],
    handler: async ({ body, req }) => keys.addOneTimePrekeys(me(req).userId, me(req).deviceId, body.prekeys),
  });

  routes.add({
    method: 'GET',
    url: '/v1/users/:userId/bundles',
    summary: "A user's prekey bundles, one per device (or per listed device); each one-time prekey is handed out once",
    tag: 'keys',
    auth: true,
    params: z.object({ userId: uuid }),
    query: z.object({
      devices: z
        .string()
        .regex(/^[0-9a-fA-F-]{36}(,[0-9a-fA-F-]{36}){0,63}$/, 'comma-separated device ids, at most 64')
        .optional()
        .describe('only these devices (comma-separated ids)'),
    }),
    response: z.object({ bundles: z.array(bundle) }),
    errors: ['invalid', 'unauthorized', 'not_found', 'rate_limited'],
    handler: async ({ params, query, req }) => {
      const wait = fetchLimiter.take(me(req).userId);
      if (wait > 0) throw new AppError('rate_limited', 'too many bundle fetches', { details: { retryAfterMs: wait } });
      const devices = query.devices?.split(',');
      if (devices && !devices.every((d) => uuid.safeParse(d).success)) throw new AppError('invalid', 'query.devices: not device ids');
      return { bundles: await keys.bundles(params.userId, devices) };
    },
  });
}
