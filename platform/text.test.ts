import { describe, expect, it } from 'vitest';
import { isWellFormed, safeText, textProblem } from './text.js';

const name = safeText(1, 10);
const issue = (value: unknown) => {
  const r = name.safeParse(value);
  return r.success ? null : r.error.issues.map((i) => i.message).join('; ');
};

describe('safeText', () => {
  it('accepts ordinary text in any script, emoji included, normalized to NFC and trimmed', () => {
    expect(name.parse('  Team ')).toBe('Team');
    expect(name.parse('Cafe\u0301')).toBe('Café'); // e + combining acute → é
    expect(name.parse('Cafe\u0301')).toBe(name.parse('Café'));
    expect(name.parse('日本語 👩‍💻')).toBe('日本語 👩‍💻');
    expect(name.parse('\u{1F600}')).toBe('😀'); // a surrogate pair is one well-formed character
    expect(name.parse('\uFFFD')).toBe('\uFFFD'); // the replacement character is a character
  });

  it('refuses NUL and every other C0 and C1 control, DEL included', () => {
    for (const c of ['\u0000', '\u0001', '\t', '\n', '\r', '\u001B', '\u001F', '\u007F', '\u0080', '\u0085', '\u009F']) {
      expect(issue(`a${c}b`), JSON.stringify(c)).toMatch(/control characters/);
    }
    expect(issue('a\u0000b')).toContain('U+0000');
  });

  it('refuses lone surrogates (ill-formed UTF-16), high or low, anywhere', () => {
    for (const s of ['\uD800', 'a\uD83D', '\uDE00b', 'a\uDC00\uD800b', '\uDE00\uD83D']) {
      expect(issue(s), JSON.stringify(s)).toMatch(/well-formed Unicode/);
      expect(isWellFormed(s)).toBe(false);
    }
    expect(isWellFormed('a\uD83D\uDE00b')).toBe(true);
    expect(issue('\uD83D')).toContain('U+D83D');
  });

  it('refuses the noncharacters', () => {
    for (const c of ['\uFDD0', '\uFDEF', '\uFFFE', '\uFFFF', '\u{1FFFE}', '\u{10FFFF}']) {
      expect(issue(`x${c}`), c.codePointAt(0)!.toString(16)).toMatch(/noncharacters/);
    }
    expect(issue('\uFDCF')).toBeNull(); // just below the block: an ordinary (unassigned) code point
  });

  it('bounds the length after normalizing and trimming', () => {
    expect(issue('   ')).toMatch(/>=1|at least|too small/i);
    expect(issue('a'.repeat(11))).toMatch(/<=10|at most|too big/i);
    expect(name.parse(` ${'a'.repeat(10)} `)).toBe('a'.repeat(10));
    expect(issue(42)).not.toBeNull();
  });

  it('names the first offending code point', () => {
    expect(textProblem('ok')).toBeNull();
    expect(textProblem('a\u0085\u0000')).toBe('must not contain control characters (U+0085)');
    expect(textProblem('\u{10FFFF}')).toBe('must not contain noncharacters (U+10FFFF)');
    expect(textProblem('\uDFFF')).toBe('must be well-formed Unicode (lone surrogate U+DFFF)');
  });
});
