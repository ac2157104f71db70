// REST: group management (create, read, rename, members, roles, leave, delete), member devices and receipts.
import type { FastifyRequest } from 'fastify';
import { z } from 'zod';
import { listedDevice } from './accounts.routes.js';
import type { Routes } from './routes.js';
import { safeText } from '../platform/text.js';
import { GroupsManager } from '../groups/groups.js';

const uuid = z.uuid();
/** A group's name: what the client sends, stored as given. The SDK sends it sealed (client-sdk/e2e.group-meta.ts), so the server holds opaque text. */
const name = safeText(1, 1024);
/** The group's metadata key, encrypted by the calling device for each member device (client-sdk/e2e.group-meta.ts). */
const keys = z
  .array(z.object({ device: uuid, body: z.string().min(1).max(1024).regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64') }))
  .max(8192)
  .optional();
const meta = (req: FastifyRequest, body: { keys?: { device: string; body: string }[] }) => ({ device: req.auth!.deviceId, ...(body.keys ? { keys: body.keys } : {}) });
const role = z.enum(['owner', 'admin', 'member']);
const groupParams = z.object({ groupId: uuid });
const memberParams = z.object({ groupId: uuid, userId: uuid });

const groupInfo = z.object({
  id: uuid,
  name: z.string(),
  ownerId: uuid,
  createdAt: z.number(),
  lastSeq: z.number(),
  membersVersion: z.number(),
  members: z.array(z.object({ userId: uuid, role, joinedSeq: z.number() })),
});

const MEMBER = ['invalid', 'unauthorized', 'not_found', 'unavailable'];
const ADMIN = [...MEMBER, 'forbidden'];

export function groupRoutes(routes: Routes, groups: GroupsManager): void {
  const me = (req: { auth?: { userId: string } }) => req.auth!.userId;

  routes.add({
    method: 'POST',
    url: '/v1/groups',
    summary: 'Create a group; you become its owner. Members are user ids (you are added if missing)',
    tag: 'groups',
    auth: true,
    body: z.object({ id: uuid.optional(), name, members: z.array(uuid).max(100_000).default([]), keys }),
    response: groupInfo,
    status: 201,
    errors: ['invalid', 'unauthorized', 'not_found', 'conflict', 'limit_exceeded', 'unavailable'],
    handler: async ({ body, req }) => groups.create(me(req), body.name, body.members, { ...meta(req, body), ...(body.id ? { id: body.id } : {}) }),
  });

  routes.add({
    method: 'GET',
    url: '/v1/groups',
    summary: 'The groups you are a member of, most recently active first',
    tag: 'groups',
    auth: true,
    response: z.object({ groups: z.array(z.object({ id: uuid, name: z.string(), role, members: z.number(), lastSeq: z.number() })) }),
    errors: ['unauthorized', 'unavailable'],
    handler: async ({ req }) => ({ groups: await groups.list(me(req)) }),
  });

  routes.add({
    method: 'GET',
    url: '/v1/groups/:groupId',
    summary: 'A group you are a member of (anyone else: 404, as for a missing group)',
    tag: 'groups',
    auth: true,
    params: groupParams,
    response: groupInfo,
    errors: MEMBER,
    handler: async ({ params, req }) => groups.get(me(req), params.groupId),
  });

  routes.add({
    method: 'PATCH',
    url: '/v1/groups/:groupId',
    summary: 'Rename a group (admins)',
    tag: 'groups',
    auth: true,
    params: groupParams,
    body: z.object({ name, keys }),
    errors: ADMIN,
    handler: async ({ params, body, req }) => groups.rename(me(req), params.groupId, body.name, meta(req, body)),
  });

  routes.add({
    method: 'DELETE',
    url: '/v1/groups/:groupId',
    summary: 'Delete a group (the owner). Members keep what they received',
    tag: 'groups',
    auth: true,
    params: groupParams,
    errors: ADMIN,
    handler: async ({ params, req }) => groups.delete(me(req), params.groupId),
  });

  routes.add({
    method: 'POST',
    url: '/v1/groups/:groupId/members',
    summary: 'Add members (admins). They receive what is sent from now on',
    tag: 'groups',
    auth: true,
    params: groupParams,
    body: z.object({ userIds: z.array(uuid).min(1).max(10_000), keys }),
    errors: [...ADMIN, 'conflict', 'limit_exceeded'],
    handler: async ({ params, body, req }) => groups.addMembers(me(req), params.groupId, body.userIds, meta(req, body)),
  });

  routes.add({
    method: 'DELETE',
    url: '/v1/groups/:groupId/members/:userId',
    summary: 'Remove a member (admins remove members, the owner anyone); your own id means leave',
    tag: 'groups',
    auth: true,
    params: memberParams,
    errors: ADMIN,
    handler: async ({ params, req }) => groups.removeMember(me(req), params.groupId, params.userId),
  });

  routes.add({
    method: 'PUT',
    url: '/v1/groups/:groupId/members/:userId/role',
    summary: "Change a member's role: admins toggle admin/member; the owner hands ownership on (and becomes an admin)",
    tag: 'groups',
    auth: true,
    params: memberParams,
    body: z.object({ role }),
    errors: [...ADMIN, 'conflict'],
    handler: async ({ params, body, req }) => groups.setRole(me(req), params.groupId, params.userId, body.role),
  });

  routes.add({
    method: 'POST',
    url: '/v1/groups/:groupId/leave',
    summary: 'Leave a group (an owner hands it to the longest-standing admin, else member; the last member deletes it)',
    tag: 'groups',
    auth: true,
    params: groupParams,
    errors: MEMBER,
    handler: async ({ params, req }) => groups.leave(me(req), params.groupId),
  });

  routes.add({
    method: 'GET',
    url: '/v1/groups/:groupId/devices',
    summary: "Every current member's devices and public keys, with the membership version they belong to (to encrypt for)",
    tag: 'groups',
    auth: true,
    params: groupParams,
    response: z.object({
      membersVersion: z.number(),
      devicesHash: z.string(),
      members: z.array(z.object({ userId: uuid, devices: z.array(listedDevice) })),
    }),
    errors: MEMBER,
    handler: async ({ params, req }) => {
      await groups.get(me(req), params.groupId);
      await groups.invalidate(params.groupId); // a client asks after devices_changed: read afresh
      const m = await groups.membership(params.groupId);
      const devices = await groups.memberDevices(m);
      return {
        membersVersion: m.version,
        devicesHash: devices.hash,
        members: GroupsManager.current(m).map((r) => ({ userId: r.userId, devices: devices.byUser.get(r.userId) ?? [] })),
      };
    },
  });

  routes.add({
    method: 'GET',
    url: '/v1/groups/:groupId/receipts',
    summary: 'Per-member delivered and read seqs, and the aggregates: every member has received / read up to',
    tag: 'groups',
    auth: true,
    params: groupParams,
    response: z.object({
      delivered: z.number(),
      read: z.number(),
      members: z.array(z.object({ userId: uuid, delivered: z.number(), read: z.number() })),
    }),
    errors: MEMBER,
    handler: async ({ params, req }) => groups.receipts(me(req), params.groupId),
  });
}
