// Unit tests of the content encoding: disappearing timers on messages, the timer control, message actions, replies and mentions, and types this SDK does not know.
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

  it('carries replies, mentions and the message actions, and refuses malformed ones', () => {
    expect(decodeContent(encodeContent({ text: 'yes', replyTo: 'm1', mentions: ['u1', 'u2', 'u1'] }))).toEqual({ text: 'yes', replyTo: 'm1', mentions: ['u1', 'u2'] });
    expect(decodeContent(encodeContent({ type: 'edit', target: 'm1', text: 'new' }))).toEqual({ type: 'edit', target: 'm1', text: 'new' });
    expect(decodeContent(encodeContent({ type: 'delete', target: 'm1' }))).toEqual({ type: 'delete', target: 'm1' });
    expect(decodeContent(encodeContent({ type: 'reaction', target: 'm1', emoji: '👍' }))).toEqual({ type: 'reaction', target: 'm1', emoji: '👍' });
    expect(decodeContent(encodeContent({ type: 'reaction', target: 'm1', emoji: '👍', remove: true }))).toEqual({ type: 'reaction', target: 'm1', emoji: '👍', remove: true });
    expect(() => decodeContent(bytes({ v: 1, type: 'edit', target: '', text: 'x' }))).toThrow(/id/);
    expect(() => decodeContent(bytes({ v: 1, type: 'edit', target: 'm1' }))).toThrow(/text/);
    expect(() => decodeContent(bytes({ v: 1, type: 'delete', target: 'x'.repeat(201) }))).toThrow(/id/);
    expect(() => decodeContent(bytes({ v: 1, type: 'reaction', target: 'm1', emoji: '' }))).toThrow(/reaction/);
    expect(() => decodeContent(bytes({ v: 1, text: 'x', replyTo: 5 }))).toThrow(/id/);
    expect(() => decodeContent(bytes({ v: 1, text: 'x', mentions: [1] }))).toThrow(/mentions/);
    expect(() => decodeContent(bytes({ v: 1, text: 'x', mentions: Array.from({ length: 257 }, (_, i) => `u${i}`) }))).toThrow(/mentions/);
    expect(() => decodeContent(bytes({ v: 1, type: 'history', file: { id: 'x' }, messages: 1 }))).toThrow(/file/);
  });
});
