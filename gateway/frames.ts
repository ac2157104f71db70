// Zod schemas for inbound frames: every client frame is parsed here before anything acts on it.
import { z } from 'zod';
import type { ClientFrame } from '../client-sdk/protocol.js';

const uuid = z.uuid();
const seq = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER);

/** Body limit per device ciphertext (base64 chars); the frame as a whole is capped by WS_MAX_PAYLOAD_BYTES. */
export const MAX_BODY_CHARS = 65_536;
export const MAX_DEVICES_PER_SEND = 64;
/** Per-device payloads in a group send (sealed message keys); the frame limit usually binds first. */
export const MAX_DEVICES_PER_GROUP_SEND = 8192;
export const MAX_KEY_CHARS = 1024;

const clientId = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, _ and - only');
const base64 = (max: number) => z.string().min(1).max(max).regex(/^[A-Za-z0-9+/]+={0,2}$/, 'base64');

export const clientFrameSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('send'),
    id: clientId,
    to: uuid,
    payloads: z
      .array(z.object({ device: uuid, body: base64(MAX_BODY_CHARS) }))
      .min(1)
      .max(MAX_DEVICES_PER_SEND),
  }),
  z.object({
    type: z.literal('group.send'),
    id: clientId,
    group: uuid,
    body: base64(MAX_BODY_CHARS),
    payloads: z.array(z.object({ device: uuid, body: base64(MAX_KEY_CHARS) })).max(MAX_DEVICES_PER_GROUP_SEND).optional(),
    devicesHash: z.string().regex(/^[0-9a-f]{32}$/, '32 hex digits').optional(),
  }),
  z.object({ type: z.literal('ack'), conversationId: uuid, seq }),
  z.object({ type: z.literal('read'), conversationId: uuid, seq }),
  z.object({ type: z.literal('typing'), conversationId: uuid, active: z.boolean() }),
  z.object({ type: z.literal('presence.subscribe'), users: z.array(uuid).min(1).max(256) }),
  z.object({ type: z.literal('ping'), id: z.string().max(64).optional() }),
]);

export const KNOWN_FRAME_TYPES: ReadonlySet<string> = new Set(clientFrameSchema.options.map((o) => o.shape.type.value));

// The SDK's frame types and these schemas must agree; this fails to compile if they drift.
type Parsed = z.infer<typeof clientFrameSchema>;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
export const framesAgree: Same<Parsed, ClientFrame> = true;
