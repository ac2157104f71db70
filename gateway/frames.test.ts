// Frame decoding is total and bounded: any bytes give a frame or an `invalid` error with a short message; costs follow the work.
import { describe, expect, it } from 'vitest';
import { decodeFrame, frameCost, frameRef, jsonDepth, MAX_FRAME_DEPTH } from './frames.js';

const decode = (text: string) => decodeFrame(Buffer.from(text), false);
const uuid = '0b7e1f8e-6d0c-4b38-9a62-3f3c1e8e4d11';

describe('jsonDepth', () => {
  it('counts brackets outside strings and stops early past the limit', () => {
    expect(jsonDepth('{"a":[1,{"b":2}]}', 16)).toBe(3);
    expect(jsonDepth('"[[[[[[["', 16)).toBe(0);
    expect(jsonDepth('{"a":"\\\\"}', 16)).toBe(1); // an escaped backslash ends before the quote
    expect(jsonDepth('['.repeat(1_000_000), 16)).toBe(17);
  });
});

describe('decodeFrame', () => {
  it('answers every bare JSON value, deep nesting and garbage with invalid, never a throw', () => {
    for (const text of ['null', '0', 'true', '"x"', '[]', '{}', '{"type":null}', '{"type":{"type":1}}', '{oops', '']) {
      const d = decode(text);
      expect(d.ok).toBe(false);
      if (!d.ok) expect(d.error.code).toBe('invalid');
    }
    const deep = decode('{"type":'.repeat(8000) + '"send"' + '}'.repeat(8000));
    expect(deep).toMatchObject({ ok: false, error: { message: `frame nested deeper than ${MAX_FRAME_DEPTH} levels` } });
    expect(decodeFrame(Buffer.from([1, 2]), true)).toMatchObject({ ok: false });
  });

  it('quotes at most five problems and never echoes a big value', () => {
    const payloads = Array.from({ length: 60 }, () => ({ device: 'not-a-uuid', body: '!' }));
    const d = decode(JSON.stringify({ type: 'send', id: 'm1', to: uuid, payloads }));
    expect(d.ok).toBe(false);
    if (d.ok) return;
    expect(d.ref).toBe('m1');
    expect(d.error.message).toMatch(/and \d+ more$/);
    expect(d.error.message.length).toBeLessThan(1500);
    const big = decode(JSON.stringify({ type: 'x'.repeat(100_000) }));
    expect(big).toMatchObject({ ok: false, error: { message: 'unknown frame type (string)', details: { type: null } } });
  });

  it('accepts valid frames', () => {
    expect(decode(JSON.stringify({ type: 'ping', id: 'p1' }))).toEqual({ ok: true, frame: { type: 'ping', id: 'p1' } });
    expect(decode(JSON.stringify({ type: 'ack', conversationId: uuid, seq: 3 })).ok).toBe(true);
  });
});

describe('frameCost and frameRef', () => {
  it('costs by the work a frame causes, read from the parsed value before validation', () => {
    expect(frameCost({ type: 'ping' })).toBe(1);
    expect(frameCost({ type: 'typing' })).toBe(2);
    expect(frameCost({ type: 'send', payloads: new Array(11) })).toBe(4);
    expect(frameCost({ type: 'presence.subscribe', users: new Array(256) })).toBe(33);
    expect(frameCost({ type: 'presence.subscribe', users: 'not an array' })).toBe(1);
    expect(frameCost(null)).toBe(1);
    expect(frameRef({ type: 'send', id: 'abc' })).toBe('abc');
    expect(frameRef({ type: 'ack', id: 7 })).toBe('ack');
    expect(frameRef({ type: 'teleport' })).toBeUndefined();
  });
});
