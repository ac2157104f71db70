// Known answers for HMAC-SHA256 (RFC 4231) and HKDF-SHA256 (RFC 5869 appendix A).
import sodium from 'libsodium-wrappers-sumo';
import { describe, expect, it } from 'vitest';
import { sodiumReady } from '../protocol/bytes.js';
import { hkdf, hkdfExpand, hkdfExtract, hmacSha256 } from './e2e.hkdf.js';

const hex = (s: string) => sodium.from_hex(s.replace(/\s+/g, ''));
const toHex = (b: Uint8Array) => sodium.to_hex(b);
const bytes = (from: number, to: number) => Uint8Array.from({ length: to - from + 1 }, (_, i) => from + i);
const fill = (n: number, v: number) => new Uint8Array(n).fill(v);
const text = (s: string) => new TextEncoder().encode(s);

// Ready before the suites are collected: some build their keys at collection time.
await sodiumReady();

describe('HMAC-SHA256: RFC 4231 test cases', () => {
  const cases: [string, Uint8Array, Uint8Array, string][] = [
    ['1', fill(20, 0x0b), text('Hi There'), 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    ['2', text('Jefe'), text('what do ya want for nothing?'), '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
    ['3', fill(20, 0xaa), fill(50, 0xdd), '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe'],
    ['4', bytes(0x01, 0x19), fill(50, 0xcd), '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b'],
    ['6', fill(131, 0xaa), text('Test Using Larger Than Block-Size Key - Hash Key First'), '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
    [
      '7',
      fill(131, 0xaa),
      text('This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.'),
      '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
    ],
  ];
  for (const [name, key, data, mac] of cases) {
    it(`test case ${name}`, () => expect(toHex(hmacSha256(key, data))).toBe(mac));
  }

  it('test case 5 (truncated to 128 bits)', () => {
    expect(toHex(hmacSha256(fill(20, 0x0c), text('Test With Truncation')).subarray(0, 16))).toBe('a3b6167473100ee06e0c796c2955552b');
  });

  it('hashes data given in several parts like the concatenation', () => {
    const data = text('what do ya want for nothing?');
    expect(hmacSha256(text('Jefe'), data.subarray(0, 5), data.subarray(5))).toEqual(hmacSha256(text('Jefe'), data));
  });
});

describe('HKDF-SHA256: RFC 5869 appendix A', () => {
  it('A.1 basic test case', () => {
    const ikm = fill(22, 0x0b);
    const salt = bytes(0x00, 0x0c);
    const info = bytes(0xf0, 0xf9);
    const prk = hkdfExtract(salt, ikm);
    expect(toHex(prk)).toBe('077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5');
    expect(toHex(hkdfExpand(prk, info, 42))).toBe('3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
    expect(hkdf(ikm, salt, info, 42)).toEqual(hkdfExpand(prk, info, 42));
  });

  it('A.2 longer inputs and outputs', () => {
    const prk = hkdfExtract(bytes(0x60, 0xaf), bytes(0x00, 0x4f));
    expect(toHex(prk)).toBe('06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244');
    expect(hkdfExpand(prk, bytes(0xb0, 0xff), 82)).toEqual(
      hex(`b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c
           59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71
           cc30c58179ec3e87c14c01d5c1f3434f1d87`),
    );
  });

  it('A.3 zero-length salt and info', () => {
    const prk = hkdfExtract(new Uint8Array(0), fill(22, 0x0b));
    expect(toHex(prk)).toBe('19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04');
    expect(toHex(hkdfExpand(prk, new Uint8Array(0), 42))).toBe('8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8');
  });

  it('refuses output lengths beyond 255 blocks', () => {
    expect(() => hkdfExpand(new Uint8Array(32), new Uint8Array(0), 255 * 32 + 1)).toThrow(RangeError);
    expect(hkdfExpand(new Uint8Array(32), new Uint8Array(0), 0)).toHaveLength(0);
  });
});
