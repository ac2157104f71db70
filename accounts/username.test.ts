import { describe, expect, it } from 'vitest';
import { username, usernameSkeleton } from './username.js';

describe('username', () => {
  it('applies NFKC before the rule, so compatibility forms are the plain name', () => {
    expect(username.parse('ａｌｉｃｅ')).toBe('alice'); // fullwidth
    expect(username.parse('ﬁona')).toBe('fiona'); // the fi ligature
    expect(username.parse('bob²')).toBe('bob2'); // superscript two
    expect(username.parse('alice')).toBe('alice');
  });

  it('refuses what is still outside a-z 0-9 _ . - after NFKC, and the wrong lengths', () => {
    for (const bad of ['Alice', 'ＡＬＩＣＥ', 'al ice', 'alicé', 'al\u0000ice', 'al\uD800ice', 'ab', 'a'.repeat(33), 'ｘｘ']) {
      expect(username.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });
});

describe('usernameSkeleton', () => {
  /** Pairs that must collide: each is refused once the other is registered. */
  const alike: [string, string][] = [
    ['alice1', 'alicel'], // 1 → l
    ['b0b', 'bob'], // 0 → o
    ['rnike', 'mike'], // m → rn (UTS #39)
    ['mm', 'rnrn'],
    ['carol.', 'carol'], // separators at the ends are dropped
    ['_carol', 'carol'],
    ['-carol_', 'carol'],
    ['a.b', 'a_b'], // . _ - are one separator
    ['a-b', 'a.b'],
    ['a__b', 'a-b'], // a run counts as one
    ['a._-b', 'a.b'],
    ['l0l', 'lol'],
    ['1o1', 'lol'],
    ['10', 'lo'],
  ];
  it.each(alike)('%s looks like %s', (a, b) => {
    expect(usernameSkeleton(a)).toBe(usernameSkeleton(b));
  });

  /** Pairs that stay distinct. */
  const distinct: [string, string][] = [
    ['alice', 'alicia'],
    ['ab', 'a.b'], // a separator inside the name still counts
    ['bob', 'bobo'],
    ['rn', 'r.n'],
    ['li', 'll'],
    ['o', 'oo'],
  ];
  it.each(distinct)('%s does not look like %s', (a, b) => {
    expect(usernameSkeleton(a)).not.toBe(usernameSkeleton(b));
  });

  it('folds to these exact skeletons', () => {
    expect(usernameSkeleton('mike')).toBe('rnike');
    expect(usernameSkeleton('_b0b.')).toBe('bob');
    expect(usernameSkeleton('j.-_doe__1')).toBe('j.doe.l');
    expect(usernameSkeleton('m0m1')).toBe('rnornl');
    expect(usernameSkeleton('...')).toBe('');
  });
});
