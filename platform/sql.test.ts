import { describe, expect, it } from 'vitest';
import { AppError } from './errors.js';
import { runTransaction, wrapSqlError } from './sql.js';

describe('wrapSqlError', () => {
  it('classifies by SQLSTATE, and anything without one as the connection’s fault', () => {
    const code = (c?: string) => wrapSqlError(Object.assign(new Error('x'), c === undefined ? {} : { code: c }));
    expect(code('23505')).toMatchObject({ code: 'conflict', temporary: false });
    expect(code('40P01')).toMatchObject({ code: 'unavailable', details: { retry: true } });
    expect(code('57P01')).toMatchObject({ code: 'unavailable', temporary: true });
    expect(code('08006')).toMatchObject({ code: 'unavailable' });
    expect(code('42P01')).toMatchObject({ code: 'internal' });
    for (const c of ['ECONNREFUSED', 'EPIPE', 'ECONNRESET', 'CONNECTION_CLOSED', 'CONNECT_TIMEOUT', undefined]) {
      expect(code(c)).toMatchObject({ code: 'unavailable', temporary: true });
    }
  });
});

describe('runTransaction', () => {
  const failingRollback = (cause: Error) => async (body: (raw: null) => Promise<unknown>) => {
    await body(null).catch(() => {});
    throw cause; // the driver's ROLLBACK failed too: it rejects with its own error
  };

  it('wraps a driver error that replaces the one the body threw (e.g. ROLLBACK on a dead connection)', async () => {
    const closed = Object.assign(new Error('write CONNECTION_CLOSED'), { code: 'CONNECTION_CLOSED' });
    const run = runTransaction(failingRollback(closed), async () => [], async () => {
      throw new AppError('unavailable', 'database unavailable');
    });
    await expect(run).rejects.toMatchObject({ name: 'AppError', code: 'unavailable', temporary: true });
  });

  it('passes what the body itself threw through untouched', async () => {
    const mine = new AppError('not_found', 'no such thing');
    const run = runTransaction(async (body: (raw: null) => Promise<unknown>) => body(null), async () => [], async () => {
      throw mine;
    });
    await expect(run).rejects.toBe(mine);
  });
});
