// fast-check arbitraries for hostile WebSocket frames: any JSON value, deep nesting, huge arrays, odd Unicode, and mutations of every valid frame type.
import fc from 'fast-check';

/** Ids the mutations draw from, so that some mutated frames reach real handlers (real users, devices, conversations). */
export interface FuzzIds {
  users: string[];
  devices: string[];
  conversations: string[];
  groups: string[];
}

/** One WebSocket message to send: JSON text, raw (possibly invalid UTF-8) text bytes, or a binary frame. */
export type FuzzMessage = { kind: 'text'; text: string } | { kind: 'bytes'; bytes: Uint8Array } | { kind: 'binary'; bytes: Uint8Array };

const KNOWN_TYPES = ['send', 'group.send', 'ack', 'read', 'typing', 'presence.subscribe', 'ping'] as const;

/** Strings a validator has to survive: empty, huge, control characters, lone surrogates, NUL, RTL marks, emoji, lookalikes. */
export const oddString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 64 }), // any code point, lone surrogates included
  fc.string({ unit: 'grapheme', maxLength: 32 }),
  fc.constantFrom('', '\u0000', '\ud800', '\udfff', 'a\u0000b', '\u202e', '\ufeff', '\uffff', '🦜'.repeat(40), 'l1Il|', '0O', '__proto__', 'constructor', 'toString'),
  fc.integer({ min: 1_000, max: 60_000 }).map((n) => 'A'.repeat(n)),
);

const oddNumber: fc.Arbitrary<number> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -1, 1, 2 ** 53 - 1, 2 ** 53, 2 ** 53 + 2, -(2 ** 53), 1e308, -1e308, 5e-324, 0.5),
);

/** Any JSON value, of every type at the top level. */
export function anyJson(ids: FuzzIds): fc.Arbitrary<unknown> {
  const leaf = fc.oneof(fc.constant(null), fc.boolean(), oddNumber, oddString, fc.constantFrom(...ids.users, ...ids.conversations));
  return fc.letrec<{ value: unknown }>((tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      leaf,
      fc.array(tie('value'), { maxLength: 6 }),
      fc.dictionary(fc.oneof(fc.constantFrom('type', 'id', 'to', 'payloads', 'seq', 'users', '__proto__'), fc.string({ maxLength: 8 })), tie('value'), { maxKeys: 6 }),
    ),
  })).value;
}

/** A valid frame of each type, built from the ids. */
function validFrame(ids: FuzzIds): fc.Arbitrary<Record<string, unknown>> {
  const uuid = fc.constantFrom(...ids.users, ...ids.devices, ...ids.conversations, ...ids.groups);
  const user = fc.constantFrom(...ids.users);
  const device = fc.constantFrom(...ids.devices);
  const conversation = fc.constantFrom(...ids.conversations, ...ids.groups);
  const clientId = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
  const body = fc.base64String({ minLength: 4, maxLength: 400 });
  const seq = fc.integer({ min: 1, max: 50 });
  // Disappearing messages: sometimes none, sometimes a plausible expiry, sometimes any number.
  const expiresAt = fc.option(fc.oneof(fc.integer({ min: 1_000, max: 86_400_000 }).map((ms) => Date.now() + ms), oddNumber), { nil: undefined });
  return fc.oneof(
    fc.record({ type: fc.constant('send'), id: clientId, to: user, payloads: fc.array(fc.record({ device, body }), { minLength: 1, maxLength: 8 }), expiresAt }),
    fc.record({
      type: fc.constant('group.send'),
      id: clientId,
      group: fc.constantFrom(...ids.groups),
      body,
      payloads: fc.array(fc.record({ device, body: fc.base64String({ minLength: 4, maxLength: 40 }) }), { maxLength: 4 }),
      expiresAt,
    }),
    fc.record({ type: fc.constant('ack'), conversationId: conversation, seq }),
    fc.record({ type: fc.constant('read'), conversationId: conversation, seq }),
    fc.record({ type: fc.constant('typing'), conversationId: conversation, active: fc.boolean() }),
    fc.record({ type: fc.constant('presence.subscribe'), users: fc.array(fc.oneof(user, uuid, fc.uuid()), { minLength: 1, maxLength: 256 }) }),
    fc.record({ type: fc.constant('ping'), id: clientId }),
  );
}

/** A valid frame, then one to three mutations: a field dropped, replaced by any value, added, or the type swapped. */
function mutatedFrame(ids: FuzzIds): fc.Arbitrary<unknown> {
  const mutation = fc.oneof(
    fc.record({ op: fc.constant('drop' as const), pick: fc.nat() }),
    fc.record({ op: fc.constant('replace' as const), pick: fc.nat(), value: anyJson(ids) }),
    fc.record({ op: fc.constant('add' as const), key: fc.oneof(fc.string({ maxLength: 10 }), fc.constantFrom('__proto__', 'constructor')), value: anyJson(ids) }),
    fc.record({ op: fc.constant('retype' as const), type: fc.constantFrom<unknown>(...KNOWN_TYPES, 'SEND', 'send ', '', 7, null, ['send'], { type: 'send' }) }),
    fc.record({ op: fc.constant('number' as const), pick: fc.nat(), value: oddNumber }),
  );
  return fc.tuple(validFrame(ids), fc.array(mutation, { minLength: 1, maxLength: 3 })).map(([frame, mutations]) => {
    const f: Record<string, unknown> = { ...frame };
    for (const m of mutations) {
      const keys = Object.keys(f);
      if (m.op === 'drop' && keys.length > 0) delete f[keys[m.pick % keys.length]!];
      else if ((m.op === 'replace' || m.op === 'number') && keys.length > 0) f[keys[m.pick % keys.length]!] = m.value;
      else if (m.op === 'add') Object.defineProperty(f, m.key, { value: m.value, enumerable: true, writable: true, configurable: true });
      else if (m.op === 'retype') f.type = m.type;
    }
    return f;
  });
}

/** Text nested `depth` levels, e.g. `[[[…]]]` or `{"type":{"type":…}}`. */
function deep(ids: FuzzIds): fc.Arbitrary<string> {
  void ids;
  return fc
    .tuple(fc.integer({ min: 10, max: 20_000 }), fc.constantFrom('array', 'type', 'payloads'))
    .map(([depth, shape]) =>
      shape === 'array'
        ? '['.repeat(depth) + ']'.repeat(depth)
        : shape === 'type'
          ? '{"type":'.repeat(depth) + '"send"' + '}'.repeat(depth)
          : '{"type":"send","id":"d","to":"x","payloads":' + '['.repeat(depth) + ']'.repeat(depth) + '}',
    );
}

/** A big array of small things (inside a 256 KiB frame), as a whole frame or as a field of one. */
function huge(ids: FuzzIds): fc.Arbitrary<unknown> {
  return fc.tuple(fc.integer({ min: 100, max: 20_000 }), fc.constantFrom('top', 'payloads', 'users')).map(([n, where]) => {
    if (where === 'top') return Array.from({ length: n }, (_, i) => i);
    if (where === 'users') return { type: 'presence.subscribe', users: Array.from({ length: Math.min(n, 5000) }, (_, i) => ids.users[i % ids.users.length]) };
    return { type: 'send', id: 'huge', to: ids.users[0], payloads: Array.from({ length: Math.min(n, 3000) }, () => ({ device: ids.devices[0], body: 'AAAA' })) };
  });
}

/** Every kind of hostile message, weighted towards the ones that reach deeper into the server. */
export function hostileMessage(ids: FuzzIds): fc.Arbitrary<FuzzMessage> {
  const text = (a: fc.Arbitrary<unknown>) => a.map((v): FuzzMessage => ({ kind: 'text', text: JSON.stringify(v) ?? 'null' }));
  return fc.oneof(
    { weight: 100, arbitrary: text(mutatedFrame(ids)) },
    { weight: 60, arbitrary: text(anyJson(ids)) },
    { weight: 40, arbitrary: text(validFrame(ids)) },
    { weight: 8, arbitrary: deep(ids).map((t): FuzzMessage => ({ kind: 'text', text: t })) },
    { weight: 8, arbitrary: text(huge(ids)) },
    { weight: 10, arbitrary: fc.constantFrom('null', '0', '""', 'true', '[]', '{}', '{"type":null}', '{"type":"send"', '\u0000', ' ').map((t): FuzzMessage => ({ kind: 'text', text: t })) },
    { weight: 6, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes): FuzzMessage => ({ kind: 'binary', bytes })) },
    // Invalid UTF-8 in a text frame: the WebSocket library closes with 1007.
    { weight: 1, arbitrary: fc.constantFrom(new Uint8Array([0xff]), new Uint8Array([0xc3, 0x28]), new Uint8Array([0xed, 0xa0, 0x80])).map((bytes): FuzzMessage => ({ kind: 'bytes', bytes })) },
  );
}
