// Unit tests of the content encoding: disappearing timers on messages, the timer control, and types this SDK does not know.
import { describe, expect, it } from 'vitest';
import { decodeContent, encodeContent, MAX_TIMER_SECONDS } from './content.js';

const bytes = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

describe('content', () => {
  it('carries a message timer and the disappearing control', () => {
    expect(decodeContent(encodeContent({ text: 'hi', timer: 30 }))).toEqual({ text: 'hi', timer: 30 });
    expect(decodeContent(encodeContent({ type: 'disappearing', seconds: 60, to: 'bob' }))).toEqual({ type: 'disappearing', seconds: 60, to: 'bob' });
    expect(decodeContent(encodeContent({ type: 'disappearing', seconds: null }))).toEqual({ type: 'disappearing', seconds: null });
  });

  it('ignores a type it does not know (a newer client’s), and refuses malformed timers', () => {
    expect(decodeContent(bytes({ v: 1, type: 'poll', text: 'vote' }))).toBeNull();
    for (const timer of [0, -1, 1.5, '30', MAX_TIMER_SECONDS + 1]) {
      expect(() => decodeContent(bytes({ v: 1, text: 'x', timer }))).toThrow(/timer/);
      expect(() => decodeContent(bytes({ v: 1, type: 'disappearing', seconds: timer }))).toThrow(/timer/);
    }
    expect(() => decodeContent(bytes({ v: 1, type: 'disappearing', seconds: 5, to: 7 }))).toThrow(/malformed/);
  });
});
