// REST: where a device's pushes go, the server's VAPID key for Web Push, and muted conversations.
import { z } from 'zod';
import { AppError } from '../platform/errors.js';
import { checkPushEndpoint, checkPushKeys } from '../platform/push.js';
import type { MessagesManager } from '../messaging/messages.js';
import type { Notifier } from '../notifications/notifier.js';
import type { Routes } from './routes.js';

const uuid = z.uuid();

const pushTarget = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('webhook'), token: z.string().min(1).max(4096).regex(/^[\x21-\x7e]+$/, 'printable ASCII, no spaces') }),
  z.object({
    kind: z.literal('webpush'),
    endpoint: z.string().min(1).max(2048),
    // An uncompressed P-256 point (65 bytes) and a 16-byte auth secret, base64url as PushSubscription.toJSON() gives them (checkPushKeys).
    keys: z.object({ p256dh: z.string().min(1).max(128), auth: z.string().min(1).max(64) }),
  }),
]);

export interface PushRouteOptions {
  /** The Web Push VAPID public key (base64url), or null when Web Push is off. */
  vapidPublicKey: string | null;
  /** Whether webhook targets can be served (PUSH_WEBHOOK_URL configured). */
  webhook: boolean;
  endpointHosts: readonly string[];
  allowHttp: boolean;
}

export function pushRoutes(routes: Routes, notifier: Notifier, messages: MessagesManager, options: PushRouteOptions): void {
  const me = (req: { auth?: { userId: string; deviceId: string } }) => req.auth!;
  /** Only the device itself may set its target; any other id answers as a device that does not exist. */
  const ownDevice = (req: { auth?: { userId: string; deviceId: string } }, deviceId: string) => {
    if (deviceId !== me(req).deviceId) throw new AppError('not_found', 'no such device');
  };
  /** A conversation the caller cannot see answers as one that does not exist. */
  const visible = async (userId: string, conversationId: string) => {
    if (!(await messages.isMember(userId, conversationId))) throw new AppError('not_found', 'no such conversation');
  };

  routes.add({
    method: 'PUT',
    url: '/v1/devices/:deviceId/push',
    summary: "Set where this device's pushes go: the app's webhook relay (with the app's token for the device) or a Web Push subscription",
    tag: 'push',
    auth: true,
    params: z.object({ deviceId: uuid }),
    body: pushTarget,
    errors: ['invalid', 'unauthorized', 'not_found'],
    handler: async ({ params, body, req }) => {
      ownDevice(req, params.deviceId);
      if (!notifier.enabled) throw new AppError('invalid', 'push notifications are off on this server (PUSH_DRIVER=none)');
      if (body.kind === 'webhook' && !options.webhook) throw new AppError('invalid', 'this server has no webhook relay configured');
      if (body.kind === 'webpush') {
        if (!options.vapidPublicKey) throw new AppError('invalid', 'Web Push is off on this server');
        const problem = checkPushEndpoint(body.endpoint, options.endpointHosts, options.allowHttp);
        if (problem) throw new AppError('invalid', `endpoint: ${problem}`);
        const badKeys = checkPushKeys(body.keys.p256dh, body.keys.auth);
        if (badKeys) throw new AppError('invalid', `keys: ${badKeys}`);
      }
      await notifier.register(params.deviceId, body);
      return undefined;
    },
  });

  routes.add({
    method: 'DELETE',
    url: '/v1/devices/:deviceId/push',
    summary: "Remove this device's push target (and any push it was owed)",
    tag: 'push',
    auth: true,
    params: z.object({ deviceId: uuid }),
    errors: ['unauthorized', 'not_found'],
    handler: async ({ params, req }) => {
      ownDevice(req, params.deviceId);
      await notifier.unregister(params.deviceId);
      return undefined;
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/push/vapid',
    summary: "The server's VAPID public key: the applicationServerKey for PushManager.subscribe()",
    tag: 'push',
    auth: false,
    response: z.object({ publicKey: z.string() }),
    errors: ['not_found'],
    handler: async () => {
      if (!options.vapidPublicKey) throw new AppError('not_found', 'Web Push is off on this server');
      return { publicKey: options.vapidPublicKey };
    },
  });

  routes.add({
    method: 'PUT',
    url: '/v1/conversations/:conversationId/mute',
    summary: 'Mute a conversation for all of your devices (no pushes) until a time, or until unmuted (until: null)',
    tag: 'push',
    auth: true,
    params: z.object({ conversationId: uuid }),
    body: z.object({ until: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).nullable().default(null) }),
    errors: ['invalid', 'unauthorized', 'not_found'],
    handler: async ({ params, body, req }) => {
      await visible(me(req).userId, params.conversationId);
      await notifier.mute(me(req).userId, params.conversationId, body.until);
      return undefined;
    },
  });

  routes.add({
    method: 'DELETE',
    url: '/v1/conversations/:conversationId/mute',
    summary: 'Unmute a conversation',
    tag: 'push',
    auth: true,
    params: z.object({ conversationId: uuid }),
    errors: ['unauthorized', 'not_found'],
    handler: async ({ params, req }) => {
      await visible(me(req).userId, params.conversationId);
      await notifier.unmute(me(req).userId, params.conversationId);
      return undefined;
    },
  });
}
