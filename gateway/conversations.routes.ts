// REST: the inbox (a user's conversations by last activity) and delete for everyone.
import { z } from 'zod';
import type { Clock } from '../platform/clock.js';
import { AppError } from '../platform/errors.js';
import type { Conversations } from '../messaging/conversations.js';
import type { MessageStore } from '../messaging/message-store.js';
import type { Routes } from './routes.js';

const uuid = z.uuid();
/** Inbox pages: this many conversations unless asked otherwise, at most MAX_PAGE. */
const DEFAULT_PAGE = 50;
const MAX_PAGE = 200;

const conversation = z.object({
  id: uuid,
  kind: z.enum(['direct', 'group']),
  peer: uuid.optional().describe('direct: the other user'),
  group: z.object({ name: z.string().describe('opaque: sealed by the clients (docs/protocol.md §16)'), role: z.string() }).optional(),
  lastSeq: z.number(),
  lastActivityAt: z.number().describe('when its last message was sent (or it was created), epoch ms'),
  delivered: z.number().describe("this device's delivered cursor"),
  read: z.number().describe("this device's read cursor"),
  unread: z.number().describe("messages after the user's read cursor (the highest over their devices) that others sent and the user may see"),
});

export interface ConversationRouteOptions {
  /** MESSAGE_UNSEND_WINDOW_SECONDS, in ms. */
  unsendWindowMs: number;
}

export function conversationRoutes(routes: Routes, conversations: Conversations, store: MessageStore, clock: Clock, options: ConversationRouteOptions): void {
  routes.add({
    method: 'GET',
    url: '/v1/conversations',
    summary: 'Your conversations (direct, and groups you are a member of), most recent activity first, with this device’s cursors and unread counts',
    tag: 'conversations',
    auth: true,
    query: z.object({
      limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE),
      cursor: z.string().max(200).optional().describe('the previous page’s `cursor`'),
    }),
    response: z.object({ conversations: z.array(conversation), cursor: z.string().optional().describe('absent on the last page') }),
    errors: ['invalid', 'unauthorized'],
    handler: async ({ query, req }) => conversations.list(req.auth!.userId, req.auth!.deviceId, query),
  });

  routes.add({
    method: 'DELETE',
    url: '/v1/conversations/:conversationId/messages/:seq',
    summary:
      'Delete for everyone: erases a message you sent from this device, for the devices that have not fetched it (they get a tombstone), within MESSAGE_UNSEND_WINDOW_SECONDS',
    tag: 'conversations',
    auth: true,
    params: z.object({ conversationId: uuid, seq: z.coerce.number().int().min(1).max(Number.MAX_SAFE_INTEGER) }),
    errors: ['invalid', 'unauthorized', 'not_found', 'forbidden'],
    handler: async ({ params, req }) => {
      const outcome = await store.unsend(params.conversationId, params.seq, req.auth!.deviceId, clock.now() - options.unsendWindowMs);
      if (outcome === 'not_found') throw new AppError('not_found', 'no such message of this device');
      if (outcome === 'too_late') {
        throw new AppError('forbidden', 'too late to delete this message for everyone', { details: { windowSeconds: options.unsendWindowMs / 1000 } });
      }
      return undefined;
    },
  });
}
