import { describe, expect, it } from 'vitest';
import { wrapSqlError } from './sql.js';

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
