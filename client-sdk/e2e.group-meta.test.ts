// Group names sealed under the group's metadata key: round trip, bound to their group and key, and the key's wire form.
import { describe, expect, it } from 'vitest';
import { sodiumReady } from '../protocol/bytes.js';
import { decodeMetaKey, encodeMetaKey, isSealedName, newGroupMetaKey, openGroupName, sealedNameKeyId, sealGroupName } from './e2e.group-meta.js';

await sodiumReady();

describe('group names sealed for members', () => {
  it('opens with the key it was sealed with, for the group it was sealed for', () => {
    const k = newGroupMetaKey();
    const sealed = sealGroupName('g1', k, 'Trip to Lisbon 🏖');
    expect(isSealedName(sealed)).toBe(true);
    expect(sealed).not.toContain('Lisbon');
    expect(sealedNameKeyId(sealed)).toBe(k.id);
    expect(openGroupName('g1', k, sealed)).toBe('Trip to Lisbon 🏖');
    expect(sealGroupName('g1', k, 'x')).not.toBe(sealGroupName('g1', k, 'x')); // random nonces
  });

  it('refuses a name moved to another group, opened with another key, or altered', () => {
    const k = newGroupMetaKey();
    const sealed = sealGroupName('g1', k, 'plans');
    expect(() => openGroupName('g2', k, sealed)).toThrow(expect.objectContaining({ code: 'auth_failed' }));
    expect(() => openGroupName('g1', newGroupMetaKey(), sealed)).toThrow(expect.objectContaining({ code: 'auth_failed' }));
    const altered = sealed.slice(0, -2) + (sealed.endsWith('A') ? 'BB' : 'AA');
    expect(() => openGroupName('g1', k, altered)).toThrow(expect.objectContaining({ code: 'auth_failed' }));
    expect(sealedNameKeyId('plain name')).toBeNull();
    expect(sealedNameKeyId('pn1.!!')).toBeNull();
  });

  it('carries the key with the group it belongs to', () => {
    const k = newGroupMetaKey();
    expect(decodeMetaKey(encodeMetaKey('g1', k))).toEqual({ groupId: 'g1', key: k });
    expect(() => decodeMetaKey(new Uint8Array([1, 0, 0]))).toThrow(expect.objectContaining({ code: 'malformed' }));
  });
});
