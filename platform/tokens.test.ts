import { describe, expect, it } from 'vitest';
import { ManualClock } from './clock.js';
import { Tokens } from './tokens.js';

const SECRET = 'x'.repeat(32);

describe('Tokens', () => {
  it('round-trips user and device', async () => {
    const t = new Tokens(SECRET, 60, new ManualClock());
    const { token } = await t.issue({ userId: 'u1', deviceId: 'd1' });
    expect(await t.verify(token)).toMatchObject({ userId: 'u1', deviceId: 'd1' });
  });

  it('rejects missing, forged and expired tokens as unauthorized', async () => {
    const clock = new ManualClock();
    const t = new Tokens(SECRET, 60, clock);
    const { token } = await t.issue({ userId: 'u1', deviceId: 'd1' });
    await expect(t.verify(undefined)).rejects.toMatchObject({ code: 'unauthorized' });
    const forged = new Tokens('y'.repeat(32), 60, clock);
    await expect(forged.verify(token)).rejects.toMatchObject({ code: 'unauthorized' });
    await expect(t.verify(token.slice(0, -2))).rejects.toMatchObject({ code: 'unauthorized' });
    clock.advance(61_000);
    await expect(t.verify(token)).rejects.toMatchObject({ code: 'unauthorized', details: { expired: true } });
  });
});
