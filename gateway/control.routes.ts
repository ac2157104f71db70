// REST: what users control — blocks, reports, their password, devices and account — and the operator's reading of reports.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { Accounts } from '../accounts/accounts.js';
import type { Blocks } from '../accounts/blocks.js';
import type { Reports } from '../accounts/reports.js';
import type { GroupsManager } from '../groups/groups.js';
import type { MessageStore } from '../messaging/message-store.js';
import type { MessagesManager } from '../messaging/messages.js';
import { AppError } from '../platform/errors.js';
import { isWellFormed, safeText } from '../platform/text.js';
import { newPassword, password } from './accounts.routes.js';
import type { Delivery } from '../routing/delivery.js';
import type { KeyedLimiter } from './rate-limit.js';
import type { Routes } from './routes.js';

const uuid = z.uuid();
/** Text a reporter quotes: any line breaks, but well-formed Unicode and no NUL (which PostgreSQL refuses in text and jsonb). */
const quotedText = (max: number) =>
  z.string().max(max).refine((t) => isWellFormed(t) && !t.includes('\u0000'), 'must be well-formed Unicode without NUL');

const reportBody = z.object({
  userId: uuid.describe('the user reported'),
  conversationId: uuid.optional().describe('where it happened: a conversation you are (or were) in'),
  reason: safeText(1, 1000),
  messages: z
    .array(
      z.object({
        id: z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/, 'a message id: letters, digits, _ and - only'),
        seq: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
        text: quotedText(16_000),
        sentAt: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER),
        from: uuid,
      }),
    )
    .max(50)
    .default([])
    .describe('decrypted messages you choose to disclose to the operator (at most 50): the only plaintext the server ever keeps'),
});
const reportSummary = z.object({
  id: uuid,
  reporterId: uuid,
  userId: uuid,
  conversationId: uuid.nullable(),
  reason: z.string(),
  messageCount: z.number(),
  createdAt: z.number(),
});

export interface ControlDeps {
  accounts: Accounts;
  blocks: Blocks;
  reports: Reports;
  messages: MessagesManager;
  store: MessageStore;
  groups: GroupsManager;
  delivery: Delivery;
  /** Erases a deleted account's uploads (marked expired with it), when files are served: the retention sweep, run now. */
  sweepFiles?: () => Promise<unknown>;
  /** Reports per user (REPORT_RATE_PER_HOUR). */
  reportLimiter: KeyedLimiter;
  /** ADMIN_TOKEN: the operator API is served only when it is set. */
  adminToken?: string;
}

export function controlRoutes(routes: Routes, deps: ControlDeps): void {
  blockRoutes(routes, deps);
  reportRoutes(routes, deps);
  if (deps.adminToken) operatorRoutes(routes, deps.reports, deps.adminToken);
  accountControlRoutes(routes, deps);
}

function blockRoutes(routes: Routes, { blocks }: ControlDeps): void {
  routes.add({
    method: 'POST',
    url: '/v1/blocks',
    summary: 'Block a user: their messages to you are acknowledged as usual but reach none of your devices; your presence, typing and receipts are hidden from them',
    tag: 'control',
    auth: true,
    body: z.object({ userId: uuid }),
    errors: ['invalid', 'unauthorized', 'not_found', 'limit_exceeded'],
    handler: async ({ body, req }) => {
      await blocks.block(req.auth!.userId, body.userId);
      return undefined;
    },
  });

  routes.add({
    method: 'DELETE',
    url: '/v1/blocks/:userId',
    summary: 'Unblock a user (no error if they were not blocked)',
    tag: 'control',
    auth: true,
    params: z.object({ userId: uuid }),
    errors: ['invalid', 'unauthorized'],
    handler: async ({ params, req }) => {
      await blocks.unblock(req.auth!.userId, params.userId);
      return undefined;
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/blocks',
    summary: 'The users you block, newest first',
    tag: 'control',
    auth: true,
    response: z.object({ blocks: z.array(z.object({ userId: uuid, since: z.number() })) }),
    errors: ['unauthorized'],
    handler: async ({ req }) => ({ blocks: await blocks.list(req.auth!.userId) }),
  });
}

function reportRoutes(routes: Routes, { reports, messages, reportLimiter }: ControlDeps): void {
  routes.add({
    method: 'POST',
    url: '/v1/reports',
    summary: 'Report a user to the operator, with the decrypted messages you choose to attach',
    tag: 'control',
    auth: true,
    body: reportBody,
    response: z.object({ id: uuid }),
    status: 201,
    errors: ['invalid', 'unauthorized', 'not_found', 'rate_limited'],
    handler: async ({ body, req }) => {
      const reporterId = req.auth!.userId;
      const wait = reportLimiter.take(reporterId);
      if (wait > 0) throw new AppError('rate_limited', 'too many reports; wait', { details: { retryAfterMs: wait } });
      if (body.conversationId !== undefined && !(await messages.isMember(reporterId, body.conversationId))) {
        throw new AppError('not_found', 'no such conversation');
      }
      return reports.file({ reporterId, ...body });
    },
  });
}

/** The operator API: authenticated by ADMIN_TOKEN, compared in constant time (as SHA-256 digests, so lengths do not leak either). */
function operatorRoutes(routes: Routes, reports: Reports, adminToken: string): void {
  const expected = createHash('sha256').update(adminToken).digest();
  const operator = (req: FastifyRequest) => {
    const h = req.headers.authorization;
    const given = createHash('sha256').update(h?.startsWith('Bearer ') ? h.slice(7) : '').digest();
    if (!timingSafeEqual(given, expected)) throw new AppError('unauthorized', 'operator token required');
  };

  routes.add({
    method: 'GET',
    url: '/v1/admin/reports',
    summary: 'Operator: reports, newest first (Authorization: Bearer <ADMIN_TOKEN>)',
    tag: 'operator',
    auth: false,
    early: operator,
    query: z.object({ limit: z.coerce.number().int().min(1).max(100).default(50), cursor: z.string().max(200).optional() }),
    response: z.object({ reports: z.array(reportSummary), cursor: z.string().optional() }),
    errors: ['invalid', 'unauthorized'],
    handler: async ({ query }) => reports.list(query.limit, query.cursor),
  });

  routes.add({
    method: 'GET',
    url: '/v1/admin/reports/:id',
    summary: 'Operator: one report with the messages the reporter attached',
    tag: 'operator',
    auth: false,
    early: operator,
    params: z.object({ id: uuid }),
    response: reportSummary.extend({ messages: z.array(z.object({ id: z.string(), seq: z.number(), text: z.string(), sentAt: z.number(), from: z.string() })) }),
    errors: ['invalid', 'unauthorized', 'not_found'],
    handler: async ({ params }) => {
      const report = await reports.get(params.id);
      if (!report) throw new AppError('not_found', 'no such report');
      return report;
    },
  });
}

function accountControlRoutes(routes: Routes, deps: ControlDeps): void {
  const { accounts, delivery } = deps;
  /** Closes the devices' open sockets wherever they are (4500). */
  const closeSockets = async (userId: string, deviceIds: readonly string[]) => {
    for (const d of deviceIds) await delivery.disconnect(userId, d);
  };

  routes.add({
    method: 'PUT',
    url: '/v1/account/password',
    summary: "Change your password: every other device's sessions end (tokens refused, sockets closed with 4500); this one carries on",
    tag: 'accounts',
    auth: true,
    body: z.object({ current: password, new: newPassword }),
    errors: ['invalid', 'unauthorized', 'rate_limited'],
    handler: async ({ body, req }) => {
      const { userId, deviceId } = req.auth!;
      await closeSockets(userId, await accounts.changePassword(userId, deviceId, body.current, body.new));
      return undefined;
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/account/devices',
    summary: 'Your devices, with their names and when each was last seen',
    tag: 'accounts',
    auth: true,
    response: z.object({
      devices: z.array(z.object({ id: uuid, name: z.string(), createdAt: z.number(), lastSeenAt: z.number(), current: z.boolean() })),
    }),
    errors: ['unauthorized'],
    handler: async ({ req }) => ({
      devices: (await accounts.ownDevices(req.auth!.userId)).map((d) => ({ ...d, current: d.id === req.auth!.deviceId })),
    }),
  });

  routes.add({
    method: 'DELETE',
    url: '/v1/account',
    summary: 'Delete your account: devices, keys, memberships (groups you own are handed on), your stored messages, pushes, mutes, blocks and uploads',
    tag: 'accounts',
    auth: true,
    body: z.object({ password }),
    errors: ['invalid', 'unauthorized', 'rate_limited'],
    handler: async ({ body, req }) => {
      await deleteAccount(deps, req.auth!.userId, body.password);
      return undefined;
    },
  });
}

/**
 * Deletes an account, in an order that may be run again after a failure part way (the account
 * and its password stay until the last SQL step): the password is checked; every session is
 * revoked and every socket closed (nothing of it reconnects); it leaves every group (an owner's
 * group is handed on, as when an owner leaves); its conversations and stored messages are
 * erased (MessageStore.eraseUser); the user row goes with its devices, keys, cursors, push
 * targets, mutes and blocks; last, its uploads are erased through the file service. Reports
 * filed by or about it stay, for the operator.
 */
async function deleteAccount(deps: ControlDeps, userId: string, password: string): Promise<void> {
  const { accounts, delivery, groups, store, sweepFiles } = deps;
  await accounts.checkPassword(userId, password);
  for (const d of await accounts.revokeAll(userId)) await delivery.disconnect(userId, d);
  await groups.leaveAll(userId);
  await store.eraseUser(userId);
  await accounts.deleteAccount(userId);
  await sweepFiles?.();
}
